"""The head-end's side of the channel, and delivery of initialization messages to meters.

Theory of operation (specs/supervision.md §8.1, §8.3). :class:`SupervisionClient` is a
:class:`~cosemcast.client.DlmsClient` with the head-end's channel settings (:mod:`.channel`):
it opens an HLS-GMAC, glo-ciphered association with the centre and calls the supervision
service object (:mod:`.wire`). :meth:`SupervisionClient.assign` forwards a meter's enrollment
request (claim 7) and returns the :class:`~cosemcast.supervision.wire.Assignment` (``Ks`` and
the sealed initialization message); a refusal raises the registry's error class with the
centre's reason.

:func:`deliver_init_message` loads an initialization message into a meter through its
assignment object (class 8962, ``0-0:128.3.0.255``, method 1): the centre does it straight
(Fig. 6b, ``cosemcast supervision deliver``), a head-end relays the same bytes
(:func:`relay_init_message`, Fig. 6c, claim 10). The message protects itself (encrypted under
``Ki``, signed, time-stamped, sequenced), so any association the meter grants that method
will do.
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import Self

from cosemcast.axdr.types import OctetString
from cosemcast.client import DlmsClient
from cosemcast.errors import DecodeError
from cosemcast.supervision.channel import DEFAULT_PORT, ChannelKeys, client_settings
from cosemcast.supervision.wire import (
    ASSIGNMENT_CLASS_ID,
    ASSIGNMENT_OBIS,
    LOAD_INIT_MESSAGE,
    SERVICE_CLASS_ID,
    SERVICE_OBIS,
    Assignment,
    ServiceMethod,
    ServiceRefusal,
    decode_service_result,
)

__all__ = ["SupervisionClient", "deliver_init_message", "relay_init_message"]


class SupervisionClient:
    """A head-end's association with the supervision centre; use it as a context manager.

    ``counters`` is the head-end's invocation-counter file (SQLite); it must persist across
    runs, since the same keys are used every time. ``centre_id``, when given, pins the
    centre's system title.
    """

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_PORT,
        *,
        head_end_id: bytes,
        ek: bytes,
        ak: bytes,
        counters: str | os.PathLike[str],
        centre_id: bytes | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.head_end_id = bytes(head_end_id)
        settings = client_settings(
            head_end_id=self.head_end_id, keys=ChannelKeys(ek, ak), centre_id=centre_id
        )
        self._client = DlmsClient.tcp(host, port, settings, counters=counters, timeout_s=timeout_s)
        try:
            established = self._client.associate()
        except BaseException:
            self._client.close()
            raise
        self.centre_id = established.server_system_title

    def __repr__(self) -> str:
        return f"SupervisionClient(head_end_id={self.head_end_id.hex().upper()})"

    def _call(self, method: ServiceMethod, parameter: bytes) -> Assignment:
        returned = self._client.action(
            SERVICE_OBIS, method, OctetString(parameter), class_id=SERVICE_CLASS_ID
        )
        result = decode_service_result(returned)
        if isinstance(result, ServiceRefusal):
            raise result.error()
        return result

    def assign(self, enrollment: bytes) -> Assignment:
        """Claim 7: be assigned to the meter whose enrollment request this is."""
        return self._call(ServiceMethod.ASSIGN, enrollment)

    def reissue(self, meter_id: bytes) -> Assignment:
        """A new initialization message for an active assignment (same Ks; specs §8.4)."""
        return self._call(ServiceMethod.REISSUE, meter_id)

    def centre_public_key(self) -> bytes:
        """The centre's current signing key, X9.62 uncompressed (attribute 3)."""
        value = self._client.get(SERVICE_OBIS, 3, class_id=SERVICE_CLASS_ID)
        if type(value) is not OctetString:
            raise DecodeError("attribute 3 is not an octet-string", expected="octet-string")
        return bytes(value)

    def close(self) -> None:
        """Release the association and close the connection."""
        self._client.__exit__(None, None, None)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._client.__exit__(exc_type, exc, tb)


def deliver_init_message(meter: DlmsClient, init_message: bytes) -> None:
    """Load ``init_message`` into the meter behind ``meter`` (an associated client; Fig. 6b).

    The meter's refusals (bad tag or signature, window, sequence) arrive as
    :class:`~cosemcast.client.errors.ActionError`.
    """
    meter.action(
        ASSIGNMENT_OBIS,
        LOAD_INIT_MESSAGE,
        OctetString(init_message),
        class_id=ASSIGNMENT_CLASS_ID,
    )


def relay_init_message(meter: DlmsClient, init_message: bytes) -> None:
    """A head-end relays the centre's message to the meter (Fig. 6c, claim 10): same bytes."""
    deliver_init_message(meter, init_message)
