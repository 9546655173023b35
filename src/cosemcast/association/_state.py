"""The transition tables of the association client and server (brief §4, §7.1).

Theory of operation. Each state machine is a table ``{state: {input: next state}}``. An
*input* is either something the application asked for (the client's ``SEND_*``) or what an
APDU from the peer turned out to mean once it was decoded, deciphered and checked (for
instance ``AARE_NEEDS_HLS``: an accepted AARE that asks for the reply_to_HLS pass). A pair
missing from the table is a protocol error: :class:`LocalProtocolError` for the
application's requests, :class:`RemoteProtocolError` for the peer's APDUs. Block-transfer
progress is a state of its own (``SENDING_BLOCKS`` / ``RECEIVING_BLOCKS`` on the server,
``AWAITING_RESPONSE`` with ``BLOCK`` inputs on the client); general-block-transfer sits below
these tables (:mod:`cosemcast.association.blocks`) and never changes their state.

Read the client table as the four-pass association of brief §7.1:
``IDLE --SEND_ASSOCIATE--> ASSOCIATING --AARE_NEEDS_HLS--> AUTHENTICATING --HLS_ACCEPTED-->
ASSOCIATED``; requests then go ``ASSOCIATED --SEND_REQUEST--> AWAITING_RESPONSE --RESULT-->
ASSOCIATED``, and ``SEND_RELEASE`` / ``RLRE`` close. Any security or decoding failure puts the
client in ``ERROR``, from which nothing leaves: the transport must be closed.

The server answers every APDU (errors included) and never enters an error state; what each
state *serves* is :data:`SERVER_SERVES`, anything else is refused with an
exception-response.
"""

from __future__ import annotations

import enum
from typing import Final

from cosemcast.apdu.acse import AARQ, RLRQ
from cosemcast.apdu.action import (
    ActionRequestNextPBlock,
    ActionRequestNormal,
    ActionRequestWithFirstPBlock,
    ActionRequestWithList,
    ActionRequestWithListAndFirstPBlock,
    ActionRequestWithPBlock,
)
from cosemcast.apdu.get import GetRequestNext, GetRequestNormal, GetRequestWithList
from cosemcast.apdu.set import (
    SetRequestNormal,
    SetRequestWithDataBlock,
    SetRequestWithFirstDataBlock,
    SetRequestWithList,
    SetRequestWithListAndFirstDataBlock,
)
from cosemcast.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "CLIENT_TRANSITIONS",
    "REQUEST_KINDS",
    "SERVER_SERVES",
    "SERVER_TRANSITIONS",
    "ClientInput",
    "ClientState",
    "RequestKind",
    "ServerInput",
    "ServerState",
    "client_transition",
    "server_transition",
]


class ClientState(enum.Enum):
    IDLE = "idle"
    ASSOCIATING = "associating"
    AUTHENTICATING = "authenticating"
    ASSOCIATED = "associated"
    AWAITING_RESPONSE = "awaiting-response"
    RELEASING = "releasing"
    ERROR = "error"


class ClientInput(enum.Enum):
    SEND_ASSOCIATE = "send AARQ"
    SEND_REQUEST = "send GET/SET/ACTION"
    SEND_RELEASE = "send RLRQ"
    AARE_ACCEPTED = "AARE accepted"
    AARE_NEEDS_HLS = "AARE accepted, HLS pass required"
    AARE_REJECTED = "AARE rejected"
    HLS_ACCEPTED = "f(CtoS) verified"
    HLS_REFUSED = "server refused f(StoC)"
    BLOCK = "one block exchanged, transfer continues"
    RESULT = "response complete"
    NOTIFICATION = "unsolicited notification"
    RLRE = "RLRE"
    FAILURE = "security, decoding or protocol failure"


_C = ClientState
_CI = ClientInput

CLIENT_TRANSITIONS: Final[dict[ClientState, dict[ClientInput, ClientState]]] = {
    _C.IDLE: {
        _CI.SEND_ASSOCIATE: _C.ASSOCIATING,
        _CI.NOTIFICATION: _C.IDLE,
        _CI.FAILURE: _C.ERROR,
    },
    _C.ASSOCIATING: {
        _CI.AARE_ACCEPTED: _C.ASSOCIATED,
        _CI.AARE_NEEDS_HLS: _C.AUTHENTICATING,
        _CI.AARE_REJECTED: _C.IDLE,
        _CI.FAILURE: _C.ERROR,
    },
    _C.AUTHENTICATING: {
        _CI.BLOCK: _C.AUTHENTICATING,
        _CI.HLS_ACCEPTED: _C.ASSOCIATED,
        _CI.HLS_REFUSED: _C.IDLE,
        _CI.FAILURE: _C.ERROR,
    },
    _C.ASSOCIATED: {
        _CI.SEND_REQUEST: _C.AWAITING_RESPONSE,
        _CI.SEND_RELEASE: _C.RELEASING,
        _CI.NOTIFICATION: _C.ASSOCIATED,
        _CI.FAILURE: _C.ERROR,
    },
    _C.AWAITING_RESPONSE: {
        _CI.BLOCK: _C.AWAITING_RESPONSE,
        _CI.RESULT: _C.ASSOCIATED,
        _CI.NOTIFICATION: _C.AWAITING_RESPONSE,
        _CI.FAILURE: _C.ERROR,
    },
    _C.RELEASING: {
        _CI.RLRE: _C.IDLE,
        _CI.RESULT: _C.ASSOCIATED,  # the RLRQ was answered with an error: still associated
        _CI.NOTIFICATION: _C.RELEASING,
        _CI.FAILURE: _C.ERROR,
    },
    _C.ERROR: {},
}

_SEND_INPUTS = frozenset((_CI.SEND_ASSOCIATE, _CI.SEND_REQUEST, _CI.SEND_RELEASE))


def client_transition(state: ClientState, event: ClientInput) -> ClientState:
    """The client's next state, or the protocol error the pair is."""
    target = CLIENT_TRANSITIONS[state].get(event)
    if target is None:
        if event in _SEND_INPUTS:
            raise LocalProtocolError(f"cannot {event.value} in state {state.value}")
        raise RemoteProtocolError(f"unexpected {event.value} in state {state.value}")
    return target


class ServerState(enum.Enum):
    IDLE = "idle"
    AUTHENTICATING = "authenticating"
    ASSOCIATED = "associated"
    SENDING_BLOCKS = "sending-blocks"
    RECEIVING_BLOCKS = "receiving-blocks"


class RequestKind(enum.Enum):
    """What a (deciphered, reassembled) request asks for."""

    ASSOCIATE = "AARQ"
    RELEASE = "RLRQ"
    HLS_REPLY = "reply_to_HLS_authentication"
    GET = "GET"
    GET_NEXT = "GET next block"
    SET = "SET"
    SET_BLOCK = "SET datablock"
    ACTION = "ACTION"
    ACTION_BLOCK = "ACTION pblock"
    ACTION_NEXT = "ACTION next pblock"
    OTHER = "an APDU the server does not serve"


class ServerInput(enum.Enum):
    AARQ_ACCEPTED = "AARQ accepted"
    AARQ_NEEDS_HLS = "AARQ accepted, HLS pass pending"
    AARQ_REJECTED = "AARQ rejected"
    HLS_PASSED = "f(StoC) verified"
    HLS_FAILED = "f(StoC) refused"
    ANSWERED = "complete answer sent"
    BLOCK_SENT = "answer block sent, more to come"
    BLOCK_RECEIVED = "request block acknowledged, more to come"
    REFUSED = "error answer sent"
    RELEASED = "RLRE sent"


_S = ServerState
_K = RequestKind
_SI = ServerInput

_ASSOCIATE_OUTCOMES: Final[dict[ServerInput, ServerState]] = {
    _SI.AARQ_ACCEPTED: _S.ASSOCIATED,
    _SI.AARQ_NEEDS_HLS: _S.AUTHENTICATING,
    _SI.AARQ_REJECTED: _S.IDLE,
    _SI.RELEASED: _S.IDLE,
}
_SERVING: Final[dict[ServerInput, ServerState]] = {
    **_ASSOCIATE_OUTCOMES,
    _SI.ANSWERED: _S.ASSOCIATED,
    _SI.BLOCK_SENT: _S.SENDING_BLOCKS,
    _SI.BLOCK_RECEIVED: _S.RECEIVING_BLOCKS,
    _SI.REFUSED: _S.ASSOCIATED,  # an error answer also abandons a block transfer
}

SERVER_TRANSITIONS: Final[dict[ServerState, dict[ServerInput, ServerState]]] = {
    _S.IDLE: {**_ASSOCIATE_OUTCOMES, _SI.REFUSED: _S.IDLE},
    _S.AUTHENTICATING: {
        **_ASSOCIATE_OUTCOMES,
        _SI.HLS_PASSED: _S.ASSOCIATED,
        _SI.HLS_FAILED: _S.IDLE,
        _SI.REFUSED: _S.AUTHENTICATING,
    },
    _S.ASSOCIATED: _SERVING,
    _S.SENDING_BLOCKS: _SERVING,
    _S.RECEIVING_BLOCKS: _SERVING,
}

REQUEST_KINDS: Final[dict[type, RequestKind]] = {
    AARQ: _K.ASSOCIATE,
    RLRQ: _K.RELEASE,
    GetRequestNormal: _K.GET,
    GetRequestWithList: _K.GET,
    GetRequestNext: _K.GET_NEXT,
    SetRequestNormal: _K.SET,
    SetRequestWithList: _K.SET,
    SetRequestWithFirstDataBlock: _K.SET,
    SetRequestWithListAndFirstDataBlock: _K.SET,
    SetRequestWithDataBlock: _K.SET_BLOCK,
    ActionRequestNormal: _K.ACTION,
    ActionRequestWithList: _K.ACTION,
    ActionRequestWithFirstPBlock: _K.ACTION,
    ActionRequestWithListAndFirstPBlock: _K.ACTION,
    ActionRequestWithPBlock: _K.ACTION_BLOCK,
    ActionRequestNextPBlock: _K.ACTION_NEXT,
}
"""What each request APDU asks for; the server picks the reply_to_HLS_authentication ACTION
out while authenticating."""

_ALWAYS: Final = frozenset((_K.ASSOCIATE, _K.RELEASE))
_SERVICES: Final = frozenset((_K.GET, _K.SET, _K.ACTION))

SERVER_SERVES: Final[dict[ServerState, frozenset[RequestKind]]] = {
    _S.IDLE: _ALWAYS,
    _S.AUTHENTICATING: _ALWAYS | {_K.HLS_REPLY},
    _S.ASSOCIATED: _ALWAYS | _SERVICES,
    _S.SENDING_BLOCKS: _ALWAYS | _SERVICES | {_K.GET_NEXT, _K.ACTION_NEXT},
    _S.RECEIVING_BLOCKS: _ALWAYS | _SERVICES | {_K.SET_BLOCK, _K.ACTION_BLOCK},
}


def server_transition(state: ServerState, event: ServerInput) -> ServerState:
    """The server's next state; a missing pair is a bug in the server, not in the peer."""
    target = SERVER_TRANSITIONS[state].get(event)
    if target is None:
        raise LocalProtocolError(f"server cannot take {event.value} in state {state.value}")
    return target
