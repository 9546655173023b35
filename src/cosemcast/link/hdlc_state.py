"""States, events and the transition table of the HDLC connection (IEC 62056-46, NRM).

One table for both roles, keyed by (role, state, trigger). A trigger is either the type of a
frame that arrived from the peer (:class:`~cosemcast.link.hdlc.FrameType`) or a call of the
local API (:class:`Command`). Each entry names the action the connection runs
(:class:`FrameAction` or :class:`CommandAction`) and the state it moves to; the handlers
leave the table only to fall into an error state (a refused SNRM stays ``DISCONNECTED``, an
invalid N(R) at the server goes to ``FRAME_REJECT``, at the client to ``DISCONNECTED``).

The client is the primary station: it opens the link with SNRM and closes it with DISC, and it
polls (P = 1). The server is the secondary: it answers SNRM and DISC with UA (or DM when it is
disconnected) and sends only when polled, marking its last frame with F = 1 (brief §2.3).
UI frames (pushes) are accepted in every state. Every (role, state, frame type) pair has an
entry, so the protocol can be read from the table; a command without an entry is a
:class:`~cosemcast.errors.LocalProtocolError`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from cosemcast.link.hdlc import (
    DEFAULT_MAX_INFO_LENGTH,
    DEFAULT_WINDOW_SIZE,
    FrameType,
    HdlcAddress,
    HdlcParameters,
)

__all__ = [
    "DEFAULT_SERVER_LIMITS",
    "MAX_INFORMATION_LENGTH",
    "MAX_WINDOW",
    "NEED_DATA",
    "STATES_BY_ROLE",
    "TRANSITIONS",
    "Action",
    "ApduReceived",
    "Command",
    "CommandAction",
    "Connected",
    "DisconnectReason",
    "Disconnected",
    "Event",
    "FrameAction",
    "LinkParameters",
    "LinkState",
    "NeedData",
    "Role",
    "Transition",
    "Trigger",
    "link_parameters",
    "negotiate",
    "swapped",
]

# --- events -------------------------------------------------------------------------------------


class NeedData(enum.Enum):
    """The type of :data:`NEED_DATA`."""

    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = NeedData.NEED_DATA
"""Returned by ``next_event`` when more bytes are needed to produce an event."""


class DisconnectReason(enum.Enum):
    LOCAL = "local"  # we asked (DISC answered by UA/DM; server: disconnect())
    PEER = "peer"  # the peer closed the link (DISC at the server, DM/DISC at the client)
    REFUSED = "refused"  # SNRM answered by DM or FRMR
    TIMEOUT = "timeout"  # no answer after max_retries polls
    FRAME_REJECT = "frame_reject"  # the peer sent FRMR
    PROTOCOL_ERROR = "protocol_error"  # the peer broke the protocol (invalid N(R), ...)
    INACTIVITY = "inactivity"  # server: no frame within inactivity_timeout_s
    RESET = "reset"  # server: SNRM on an established link


@dataclass(frozen=True, slots=True)
class LinkParameters:
    """Negotiated HDLC parameters, seen from this station (brief §2.6)."""

    max_info_length_transmit: int = DEFAULT_MAX_INFO_LENGTH
    max_info_length_receive: int = DEFAULT_MAX_INFO_LENGTH
    window_size_transmit: int = DEFAULT_WINDOW_SIZE
    window_size_receive: int = DEFAULT_WINDOW_SIZE


# Largest information field negotiated (JD clamps to 128..2030, brief §2.6); the frame length
# (11 bits, brief §2.1) bounds it further for 4-byte addresses.
MAX_INFORMATION_LENGTH: Final = 2030
MAX_WINDOW: Final = 7  # N(S), N(R) count modulo 8
DEFAULT_SERVER_LIMITS: Final = HdlcParameters(
    MAX_INFORMATION_LENGTH, MAX_INFORMATION_LENGTH, MAX_WINDOW, MAX_WINDOW
)


def link_parameters(p: HdlcParameters) -> LinkParameters:
    """Parameters as received, defaults filled in (brief §2.6), clamped to what HDLC allows."""
    d = p.with_defaults()
    values = (
        d.max_info_length_transmit,
        d.max_info_length_receive,
        d.window_size_transmit,
        d.window_size_receive,
    )
    limits = (MAX_INFORMATION_LENGTH, MAX_INFORMATION_LENGTH, MAX_WINDOW, MAX_WINDOW)
    a, b, c, e = (min(max(v or 1, 1), limit) for v, limit in zip(values, limits, strict=True))
    return LinkParameters(a, b, c, e)


def swapped(p: LinkParameters) -> LinkParameters:
    """The same parameters seen from the other station (a UA's TX is the client's RX)."""
    return LinkParameters(
        p.max_info_length_receive,
        p.max_info_length_transmit,
        p.window_size_receive,
        p.window_size_transmit,
    )


def negotiate(proposal: LinkParameters, limits: LinkParameters) -> LinkParameters:
    """The server's view: each direction gets the smaller of the client's proposal (seen from
    the client) and the server's own limits."""
    offered = swapped(proposal)
    return LinkParameters(
        min(offered.max_info_length_transmit, limits.max_info_length_transmit),
        min(offered.max_info_length_receive, limits.max_info_length_receive),
        min(offered.window_size_transmit, limits.window_size_transmit),
        min(offered.window_size_receive, limits.window_size_receive),
    )


@dataclass(frozen=True, slots=True)
class Connected:
    """The link is up (client: UA received; server: UA sent)."""

    parameters: LinkParameters
    client_address: HdlcAddress
    server_address: HdlcAddress


@dataclass(frozen=True, slots=True)
class ApduReceived:
    """A complete APDU, LLC header removed; ``unnumbered`` for a UI frame (a push)."""

    apdu: bytes
    unnumbered: bool = False


@dataclass(frozen=True, slots=True)
class Disconnected:
    reason: DisconnectReason
    detail: str = ""


Event = Connected | ApduReceived | Disconnected


# --- states and triggers ------------------------------------------------------------------------


class Role(enum.Enum):
    CLIENT = "client"  # primary station
    SERVER = "server"  # secondary station


class LinkState(enum.Enum):
    DISCONNECTED = "disconnected"  # normal disconnected mode (NDM)
    CONNECTING = "connecting"  # client: SNRM sent, waiting for UA or DM
    CONNECTED = "connected"  # normal response mode (NRM)
    DISCONNECTING = "disconnecting"  # client: DISC sent, waiting for UA or DM
    FRAME_REJECT = "frame_reject"  # server: FRMR sent, waiting for SNRM or DISC


class Command(enum.Enum):
    """Calls of the local API that change or depend on the link state."""

    CONNECT = "connect"
    DISCONNECT = "disconnect"
    SEND_APDU = "send_apdu"
    SEND_UI = "send_ui"


Trigger = FrameType | Command


class FrameAction(enum.Enum):
    """What to do with a frame from the peer."""

    IGNORE = "ignore"
    # Client side.
    LINK_ESTABLISHED = "link_established"  # UA to our SNRM: apply the negotiated parameters
    LINK_REFUSED = "link_refused"  # DM or FRMR to our SNRM
    LINK_RELEASED = "link_released"  # UA or DM to our DISC
    PEER_DISCONNECTED = "peer_disconnected"  # DM or DISC while connected
    # Server side.
    ACCEPT_SNRM = "accept_snrm"  # negotiate, answer UA
    RESET_LINK = "reset_link"  # SNRM while connected: a retransmission, or a link reset
    ACCEPT_DISC = "accept_disc"  # answer UA, disconnect
    ANSWER_DM = "answer_dm"  # polled while disconnected
    REPEAT_FRMR = "repeat_frmr"  # polled in the frame-reject condition
    # Both sides.
    FRAME_REJECTED = "frame_rejected"  # FRMR from the peer
    RECEIVE_I = "receive_i"
    RECEIVE_SUPERVISORY = "receive_supervisory"  # RR, RNR
    RECEIVE_UI = "receive_ui"


class CommandAction(enum.Enum):
    """What to do for a call of the local API."""

    IGNORE = "ignore"
    SEND_SNRM = "send_snrm"
    SEND_DISC = "send_disc"
    DROP_LINK = "drop_link"  # server: forget the link locally (a secondary sends no DISC)
    QUEUE_APDU = "queue_apdu"
    SEND_UI = "send_ui"


Action = FrameAction | CommandAction


@dataclass(frozen=True, slots=True)
class Transition:
    action: Action
    next_state: LinkState


def _t(action: Action, next_state: LinkState) -> Transition:
    return Transition(action, next_state)


_C, _S = Role.CLIENT, Role.SERVER
_DISC, _CONN, _UP, _DOWN, _FRMR = (
    LinkState.DISCONNECTED,
    LinkState.CONNECTING,
    LinkState.CONNECTED,
    LinkState.DISCONNECTING,
    LinkState.FRAME_REJECT,
)
_FA = FrameAction
_CA = CommandAction
_F = FrameType
_K = Command

TRANSITIONS: Final[dict[tuple[Role, LinkState, Trigger], Transition]] = {
    # --- client (primary) ---------------------------------------------------------------------
    # Disconnected: late answers are ignored; pushes are still delivered.
    (_C, _DISC, _F.I): _t(_FA.IGNORE, _DISC),
    (_C, _DISC, _F.RR): _t(_FA.IGNORE, _DISC),
    (_C, _DISC, _F.RNR): _t(_FA.IGNORE, _DISC),
    (_C, _DISC, _F.SNRM): _t(_FA.IGNORE, _DISC),
    (_C, _DISC, _F.DISC): _t(_FA.IGNORE, _DISC),
    (_C, _DISC, _F.UA): _t(_FA.IGNORE, _DISC),
    (_C, _DISC, _F.DM): _t(_FA.IGNORE, _DISC),
    (_C, _DISC, _F.FRMR): _t(_FA.IGNORE, _DISC),
    (_C, _DISC, _F.UI): _t(_FA.RECEIVE_UI, _DISC),
    (_C, _DISC, _K.CONNECT): _t(_CA.SEND_SNRM, _CONN),
    (_C, _DISC, _K.DISCONNECT): _t(_CA.IGNORE, _DISC),
    (_C, _DISC, _K.SEND_UI): _t(_CA.SEND_UI, _DISC),
    # Connecting: SNRM sent (retransmitted on timeout).
    (_C, _CONN, _F.I): _t(_FA.IGNORE, _CONN),
    (_C, _CONN, _F.RR): _t(_FA.IGNORE, _CONN),
    (_C, _CONN, _F.RNR): _t(_FA.IGNORE, _CONN),
    (_C, _CONN, _F.SNRM): _t(_FA.IGNORE, _CONN),
    (_C, _CONN, _F.DISC): _t(_FA.IGNORE, _CONN),
    (_C, _CONN, _F.UA): _t(_FA.LINK_ESTABLISHED, _UP),
    (_C, _CONN, _F.DM): _t(_FA.LINK_REFUSED, _DISC),
    (_C, _CONN, _F.FRMR): _t(_FA.LINK_REFUSED, _DISC),
    (_C, _CONN, _F.UI): _t(_FA.RECEIVE_UI, _CONN),
    (_C, _CONN, _K.DISCONNECT): _t(_CA.SEND_DISC, _DOWN),
    (_C, _CONN, _K.SEND_UI): _t(_CA.SEND_UI, _CONN),
    # Connected.
    (_C, _UP, _F.I): _t(_FA.RECEIVE_I, _UP),
    (_C, _UP, _F.RR): _t(_FA.RECEIVE_SUPERVISORY, _UP),
    (_C, _UP, _F.RNR): _t(_FA.RECEIVE_SUPERVISORY, _UP),
    (_C, _UP, _F.SNRM): _t(_FA.IGNORE, _UP),
    (_C, _UP, _F.DISC): _t(_FA.PEER_DISCONNECTED, _DISC),
    (_C, _UP, _F.UA): _t(_FA.IGNORE, _UP),  # a late UA to a retransmitted SNRM
    (_C, _UP, _F.DM): _t(_FA.PEER_DISCONNECTED, _DISC),
    (_C, _UP, _F.FRMR): _t(_FA.FRAME_REJECTED, _DISC),
    (_C, _UP, _F.UI): _t(_FA.RECEIVE_UI, _UP),
    (_C, _UP, _K.DISCONNECT): _t(_CA.SEND_DISC, _DOWN),
    (_C, _UP, _K.SEND_APDU): _t(_CA.QUEUE_APDU, _UP),
    (_C, _UP, _K.SEND_UI): _t(_CA.SEND_UI, _UP),
    # Disconnecting: DISC sent (retransmitted on timeout); DM also confirms (the UA was lost).
    (_C, _DOWN, _F.I): _t(_FA.IGNORE, _DOWN),
    (_C, _DOWN, _F.RR): _t(_FA.IGNORE, _DOWN),
    (_C, _DOWN, _F.RNR): _t(_FA.IGNORE, _DOWN),
    (_C, _DOWN, _F.SNRM): _t(_FA.IGNORE, _DOWN),
    (_C, _DOWN, _F.DISC): _t(_FA.IGNORE, _DOWN),
    (_C, _DOWN, _F.UA): _t(_FA.LINK_RELEASED, _DISC),
    (_C, _DOWN, _F.DM): _t(_FA.LINK_RELEASED, _DISC),
    (_C, _DOWN, _F.FRMR): _t(_FA.LINK_RELEASED, _DISC),
    (_C, _DOWN, _F.UI): _t(_FA.RECEIVE_UI, _DOWN),
    (_C, _DOWN, _K.DISCONNECT): _t(_CA.IGNORE, _DOWN),
    (_C, _DOWN, _K.SEND_UI): _t(_CA.SEND_UI, _DOWN),
    # The client never enters FRAME_REJECT: on an FRMR it drops the link.
    # --- server (secondary) -------------------------------------------------------------------
    # Disconnected: only SNRM opens the link; a poll is answered with DM.
    (_S, _DISC, _F.I): _t(_FA.ANSWER_DM, _DISC),
    (_S, _DISC, _F.RR): _t(_FA.ANSWER_DM, _DISC),
    (_S, _DISC, _F.RNR): _t(_FA.ANSWER_DM, _DISC),
    (_S, _DISC, _F.SNRM): _t(_FA.ACCEPT_SNRM, _UP),
    (_S, _DISC, _F.DISC): _t(_FA.ANSWER_DM, _DISC),
    (_S, _DISC, _F.UA): _t(_FA.IGNORE, _DISC),
    (_S, _DISC, _F.DM): _t(_FA.IGNORE, _DISC),
    (_S, _DISC, _F.FRMR): _t(_FA.IGNORE, _DISC),
    (_S, _DISC, _F.UI): _t(_FA.RECEIVE_UI, _DISC),
    (_S, _DISC, _K.DISCONNECT): _t(_CA.IGNORE, _DISC),
    (_S, _DISC, _K.SEND_UI): _t(_CA.SEND_UI, _DISC),
    # Connected.
    (_S, _UP, _F.I): _t(_FA.RECEIVE_I, _UP),
    (_S, _UP, _F.RR): _t(_FA.RECEIVE_SUPERVISORY, _UP),
    (_S, _UP, _F.RNR): _t(_FA.RECEIVE_SUPERVISORY, _UP),
    (_S, _UP, _F.SNRM): _t(_FA.RESET_LINK, _UP),
    (_S, _UP, _F.DISC): _t(_FA.ACCEPT_DISC, _DISC),
    (_S, _UP, _F.UA): _t(_FA.IGNORE, _UP),  # responses are not sent by a primary
    (_S, _UP, _F.DM): _t(_FA.IGNORE, _UP),
    (_S, _UP, _F.FRMR): _t(_FA.FRAME_REJECTED, _DISC),
    (_S, _UP, _F.UI): _t(_FA.RECEIVE_UI, _UP),
    (_S, _UP, _K.DISCONNECT): _t(_CA.DROP_LINK, _DISC),
    (_S, _UP, _K.SEND_APDU): _t(_CA.QUEUE_APDU, _UP),
    (_S, _UP, _K.SEND_UI): _t(_CA.SEND_UI, _UP),
    # Frame reject: FRMR sent; only SNRM (link reset) or DISC clears it.
    (_S, _FRMR, _F.I): _t(_FA.REPEAT_FRMR, _FRMR),
    (_S, _FRMR, _F.RR): _t(_FA.REPEAT_FRMR, _FRMR),
    (_S, _FRMR, _F.RNR): _t(_FA.REPEAT_FRMR, _FRMR),
    (_S, _FRMR, _F.SNRM): _t(_FA.ACCEPT_SNRM, _UP),
    (_S, _FRMR, _F.DISC): _t(_FA.ACCEPT_DISC, _DISC),
    (_S, _FRMR, _F.UA): _t(_FA.IGNORE, _FRMR),
    (_S, _FRMR, _F.DM): _t(_FA.IGNORE, _FRMR),
    (_S, _FRMR, _F.FRMR): _t(_FA.IGNORE, _FRMR),
    (_S, _FRMR, _F.UI): _t(_FA.RECEIVE_UI, _FRMR),
    (_S, _FRMR, _K.DISCONNECT): _t(_CA.DROP_LINK, _DISC),
    (_S, _FRMR, _K.SEND_UI): _t(_CA.SEND_UI, _FRMR),
    # The server never enters CONNECTING or DISCONNECTING.
}

STATES_BY_ROLE: Final[dict[Role, frozenset[LinkState]]] = {
    Role.CLIENT: frozenset({_DISC, _CONN, _UP, _DOWN}),
    Role.SERVER: frozenset({_DISC, _UP, _FRMR}),
}
