"""The DLMS/COSEM client: blocking (:class:`DlmsClient`) and asyncio (:class:`AsyncDlmsClient`).

Both open one association with a meter over TCP, UDP or a serial line (HDLC, optionally after
the IEC 62056-21 mode E sign-on) and read, write and invoke COSEM attributes and methods with
typed results and typed errors. :class:`Credentials` (a TOML file: the ``[[keys]]`` key file
plus a ``[client]`` table) says who the client is and how it authenticates; ``specs/client.md``
documents the behaviour and ``cosemcast read`` is its command line.
"""

from cosemcast.client._core import (
    AttributeRef,
    ReadProgress,
    guess_class_id,
)
from cosemcast.client.aio import AsyncDlmsClient
from cosemcast.client.client import DlmsClient
from cosemcast.client.credentials import Authentication, Credentials, default_counters_path
from cosemcast.client.errors import (
    ActionError,
    DataAccessError,
    ExceptionResponseError,
    RequestFailed,
    ServiceErrorResponse,
)

__all__ = [
    "ActionError",
    "AsyncDlmsClient",
    "AttributeRef",
    "Authentication",
    "Credentials",
    "DataAccessError",
    "DlmsClient",
    "ExceptionResponseError",
    "ReadProgress",
    "RequestFailed",
    "ServiceErrorResponse",
    "default_counters_path",
    "guess_class_id",
]
