"""Sans-IO association layer: client and server state machines on whole APDUs (brief §4-§8).

:class:`ClientConnection` and :class:`ServerConnection` take request events and APDU bytes,
and return APDU bytes and result events (h11 style); time, randomness and the
invocation-counter stores are passed in. :class:`AssociationSettings` describes an
association, :class:`ServerBackend` is what the server asks of the object model.
"""

from cosemcast.association._state import ClientState, ServerState
from cosemcast.association.backend import (
    CURRENT_ASSOCIATION,
    REPLY_TO_HLS_AUTHENTICATION,
    AccessContext,
    ServerBackend,
)
from cosemcast.association.client import ClientConnection
from cosemcast.association.events import *  # noqa: F403
from cosemcast.association.events import __all__ as _events_all
from cosemcast.association.server import ServerConnection
from cosemcast.association.settings import (
    DEFAULT_CONFORMANCE,
    AssociationSettings,
    Ciphering,
    GlobalKeys,
    SecurityPolicy,
    SecuritySettings,
)

__all__ = [
    "CURRENT_ASSOCIATION",
    "DEFAULT_CONFORMANCE",
    "REPLY_TO_HLS_AUTHENTICATION",
    "AccessContext",
    "AssociationSettings",
    "Ciphering",
    "ClientConnection",
    "ClientState",
    "GlobalKeys",
    "SecurityPolicy",
    "SecuritySettings",
    "ServerBackend",
    "ServerConnection",
    "ServerState",
    *_events_all,
]
