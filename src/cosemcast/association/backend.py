"""What the association server asks of the object model (issue 3 contracts).

Theory of operation. :class:`~cosemcast.association.server.ServerConnection` decodes,
deciphers, checks and reassembles requests, then calls a :class:`ServerBackend` once per
attribute or method (with-list requests become one call per item), and encodes, protects
and, when needed, splits the answer. The backend sees whole values only: no blocks, no
ciphering. Each call gets an :class:`AccessContext` describing who asks and how, so access
rights can depend on the client SAP, the mechanism and whether the request was ciphered.

The server handles Association LN (class 15, 0.0.40.0.0.255) method 1
``reply_to_HLS_authentication`` itself (brief §7.1); every other request reaches the backend.
A backend answers errors with :class:`DataAccessResult` / :class:`ActionResult` values;
exceptions it raises propagate to the caller of ``next_event``.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Protocol

from cosemcast.apdu.acse import MechanismName
from cosemcast.apdu.common import (
    ActionResult,
    CosemAttributeDescriptor,
    CosemMethodDescriptor,
    DataAccessResult,
    SelectiveAccess,
)
from cosemcast.axdr.types import Data
from cosemcast.obis import Obis

__all__ = ["CURRENT_ASSOCIATION", "REPLY_TO_HLS_AUTHENTICATION", "AccessContext", "ServerBackend"]

CURRENT_ASSOCIATION = Obis(0, 0, 40, 0, 0, 255)
"""Association LN instance of the current association (brief §7.1)."""

REPLY_TO_HLS_AUTHENTICATION = CosemMethodDescriptor(15, CURRENT_ASSOCIATION, 1)
"""Association LN (class 15) method 1 ``reply_to_HLS_authentication`` (brief §7.1)."""


@dataclass(frozen=True, slots=True)
class AccessContext:
    """Who is asking: the client SAP, its mechanism, whether LLS/HLS completed (False for the
    lowest level), its system title, whether this request arrived ciphered, and the time
    the caller passed to ``receive_data``."""

    client_sap: int
    mechanism: MechanismName
    authenticated: bool
    client_system_title: bytes | None
    ciphered: bool
    now: datetime.datetime | None = None


class ServerBackend(Protocol):
    """The object model behind a server association (``cosem.ObjectModel`` implements it)."""

    def get_attribute(
        self,
        ctx: AccessContext,
        descriptor: CosemAttributeDescriptor,
        selection: SelectiveAccess | None,
    ) -> Data | DataAccessResult: ...

    def set_attribute(
        self,
        ctx: AccessContext,
        descriptor: CosemAttributeDescriptor,
        selection: SelectiveAccess | None,
        value: Data,
    ) -> DataAccessResult: ...

    def invoke_method(
        self,
        ctx: AccessContext,
        descriptor: CosemMethodDescriptor,
        parameters: Data | None,
    ) -> tuple[ActionResult, Data | None]: ...
