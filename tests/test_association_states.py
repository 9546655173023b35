"""The transition tables, and Hypothesis over (state x event): whatever a peer sends or the
application asks in any state, the client raises nothing but DlmsError and the server
raises nothing at all (it answers errors instead) (STYLE §1-2, h2's state-machine tests)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosemcast.apdu.acse import MechanismName
from cosemcast.apdu.common import CosemAttributeDescriptorWithSelection
from cosemcast.apdu.initiate import Conformance
from cosemcast.association import (
    NEED_DATA,
    Action,
    Associate,
    Ciphering,
    ClientConnection,
    ClientRequest,
    ClientState,
    Get,
    GetList,
    Release,
    ServerConnection,
    ServerState,
    Set,
)
from cosemcast.association._state import (
    CLIENT_TRANSITIONS,
    SERVER_SERVES,
    SERVER_TRANSITIONS,
    ClientInput,
    ServerInput,
    client_transition,
    server_transition,
)
from cosemcast.association.settings import DEFAULT_CONFORMANCE
from cosemcast.axdr.types import OctetString
from cosemcast.errors import DlmsError, LocalProtocolError, RemoteProtocolError
from test_association_support import (
    BLOB,
    ECHO,
    ENERGY,
    SERIAL,
    DictBackend,
    Pair,
    counting_rng,
    settings_pair,
)

BIG = OctetString(bytes(range(256)) * 3)
GBT = DEFAULT_CONFORMANCE | Conformance.GENERAL_BLOCK_TRANSFER

# --- the tables ----------------------------------------------------------------------------------


def test_client_table_covers_every_state_and_error_is_final() -> None:
    assert set(CLIENT_TRANSITIONS) == set(ClientState)
    assert CLIENT_TRANSITIONS[ClientState.ERROR] == {}
    for state, row in CLIENT_TRANSITIONS.items():
        if state is not ClientState.ERROR:
            assert row[ClientInput.FAILURE] is ClientState.ERROR


@pytest.mark.parametrize("state", list(ClientState))
@pytest.mark.parametrize("event", list(ClientInput))
def test_client_transition_is_the_table_or_a_protocol_error(
    state: ClientState, event: ClientInput
) -> None:
    target = CLIENT_TRANSITIONS[state].get(event)
    if target is not None:
        assert client_transition(state, event) is target
    elif event.name.startswith("SEND_"):
        with pytest.raises(LocalProtocolError):
            client_transition(state, event)
    else:
        with pytest.raises(RemoteProtocolError):
            client_transition(state, event)


def test_server_tables_cover_every_state() -> None:
    assert set(SERVER_TRANSITIONS) == set(ServerState) == set(SERVER_SERVES)
    for state in ServerState:
        # an AARQ and an RLRQ are served everywhere and lead where the table says
        assert SERVER_TRANSITIONS[state][ServerInput.AARQ_REJECTED] is ServerState.IDLE
        assert SERVER_TRANSITIONS[state][ServerInput.RELEASED] is ServerState.IDLE
        assert ServerInput.REFUSED in SERVER_TRANSITIONS[state]
    with pytest.raises(LocalProtocolError):
        server_transition(ServerState.IDLE, ServerInput.HLS_PASSED)


# --- in-memory counters (fast enough for Hypothesis) ---------------------------------------------


class MemoryCounters:
    """Both counter protocols over dicts."""

    def __init__(self) -> None:
        self.sent: dict[str, int] = {}
        self.highest: dict[str, int] = {}

    def next(self, key_id: str) -> int:
        value = self.sent.get(key_id, 0)
        self.sent[key_id] = value + 1
        return value

    def check(self, key_id: str, invocation_counter: int) -> None:
        from cosemcast.errors import ReplayError

        if invocation_counter <= self.highest.get(key_id, -1):
            raise ReplayError("replay", received=invocation_counter)

    def check_and_update(self, key_id: str, invocation_counter: int) -> None:
        self.check(key_id, invocation_counter)
        self.highest[key_id] = invocation_counter


CONFIGS = {
    "plain-lls": dict(mechanism=MechanismName.LOW),
    "glo-gmac": dict(mechanism=MechanismName.HIGH_GMAC, ciphering=Ciphering.GLOBAL),
    "general-gbt": dict(
        mechanism=MechanismName.HIGH_GMAC,
        ciphering=Ciphering.GENERAL_GLOBAL,
        conformance=GBT,
    ),
}


def new_pair(config: str, *, small: bool = True) -> Pair:
    kwargs = dict(CONFIGS[config])
    if small:
        kwargs.update(client_pdu=90, server_pdu=90)
    client_settings, server_settings = settings_pair(**kwargs)  # type: ignore[arg-type]
    client_counters, server_counters = MemoryCounters(), MemoryCounters()
    client = ClientConnection(
        client_settings,
        counters=client_counters,
        received_counters=client_counters,
        rng=counting_rng(1),
    )
    backend = DictBackend()
    server = ServerConnection(
        server_settings,
        backend,
        counters=server_counters,
        received_counters=server_counters,
        rng=counting_rng(50),
    )
    return Pair(client, server, backend)


def to_server(pair: Pair, apdu: bytes) -> list[bytes]:
    pair.server.receive_data(apdu)
    while pair.server.next_event() is not NEED_DATA:
        pass
    return pair.server.data_to_send()


def to_client(pair: Pair, apdus: list[bytes]) -> list[bytes]:
    for apdu in apdus:
        pair.client.receive_data(apdu)
    while pair.client.next_event() is not NEED_DATA:
        pass
    return pair.client.data_to_send()


def step(pair: Pair, request: ClientRequest, rounds: int) -> None:
    """Send ``request`` and let ``rounds`` round trips happen (fewer if it ends earlier)."""
    outgoing = [pair.client.send(request)]
    for _ in range(rounds):
        if not outgoing:
            return
        answers = [a for apdu in outgoing for a in to_server(pair, apdu)]
        outgoing = to_client(pair, answers)


def reach(config: str, name: str) -> Pair:
    """A fresh pair whose client and server are in the named situation."""
    pair = new_pair(config)
    if name == "idle":
        return pair
    if name == "associating":
        pair.client.send(Associate())
        return pair
    if name == "authenticating":
        step(pair, Associate(), 1)
        return pair
    step(pair, Associate(), 3)
    if name == "associated":
        return pair
    if name == "awaiting":
        pair.client.send(Get(ENERGY))
    elif name == "get-blocks":
        step(pair, Get(BLOB), 2)
    elif name == "set-blocks":
        step(pair, Set(BLOB, BIG), 2)
    elif name == "action-blocks":
        step(pair, Action(ECHO, BIG), 2)
    elif name == "releasing":
        pair.client.send(Release())
    elif name == "error":
        pair.client.receive_data(b"\xff")
        with pytest.raises(DlmsError):
            pair.client.next_event()
    return pair


SITUATIONS = [
    "idle",
    "associating",
    "authenticating",
    "associated",
    "awaiting",
    "get-blocks",
    "set-blocks",
    "action-blocks",
    "releasing",
    "error",
]


@functools.cache
def traffic(config: str) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """Every APDU of a session that exercises everything: (client->server, server->client)."""
    pair = new_pair(config)
    items = (
        CosemAttributeDescriptorWithSelection(ENERGY),
        CosemAttributeDescriptorWithSelection(SERIAL),
    )
    for request in (
        Associate(),
        Get(ENERGY),
        Get(BLOB),
        GetList(items),
        Set(BLOB, BIG),
        Action(ECHO, BIG),
        Release(),
    ):
        outgoing = [pair.client.send(request)]
        while outgoing:
            pair.log.extend(("C", a) for a in outgoing)
            answers = [a for apdu in outgoing for a in to_server(pair, apdu)]
            pair.log.extend(("S", a) for a in answers)
            outgoing = to_client(pair, answers)
    return tuple(pair.sent_by("C")), tuple(pair.sent_by("S"))


@st.composite
def peer_apdus(draw: st.DrawFn, config: str, direction: int) -> bytes:
    pool = traffic(config)[direction]
    kind = draw(st.sampled_from(["valid", "truncated", "flipped", "random"]))
    if kind == "random":
        return draw(st.binary(min_size=0, max_size=80))
    apdu = draw(st.sampled_from(pool))
    if kind == "truncated" and len(apdu) > 1:
        return apdu[: draw(st.integers(0, len(apdu) - 1))]
    if kind == "flipped":
        at = draw(st.integers(0, len(apdu) - 1))
        return apdu[:at] + bytes((apdu[at] ^ draw(st.integers(1, 255)),)) + apdu[at + 1 :]
    return apdu


REQUESTS: list[Callable[[], ClientRequest]] = [
    Associate,
    lambda: Get(ENERGY),
    lambda: Get(BLOB),
    lambda: Set(BLOB, BIG),
    lambda: Action(ECHO),
    Release,
]


@settings(max_examples=300, deadline=None)
@given(
    config=st.sampled_from(sorted(CONFIGS)),
    situation=st.sampled_from(SITUATIONS),
    data=st.data(),
)
def test_client_raises_only_dlms_errors_in_any_state(
    config: str, situation: str, data: st.DataObject
) -> None:
    pair = reach(config, situation)
    for _ in range(data.draw(st.integers(1, 3))):
        if data.draw(st.booleans()):
            request = data.draw(st.sampled_from(REQUESTS))()
            try:
                pair.client.send(request)
            except DlmsError:
                pass
        else:
            pair.client.receive_data(data.draw(peer_apdus(config, 1)))
            try:
                while pair.client.next_event() is not NEED_DATA:
                    pass
            except DlmsError:
                pass
            pair.client.data_to_send()
        assert isinstance(pair.client.state, ClientState)


@settings(max_examples=300, deadline=None)
@given(
    config=st.sampled_from(sorted(CONFIGS)),
    situation=st.sampled_from(["idle", "authenticating", "associated", "get-blocks", "set-blocks"]),
    data=st.data(),
)
def test_server_never_raises_and_always_answers(
    config: str, situation: str, data: st.DataObject
) -> None:
    pair = reach(config, situation)
    for _ in range(data.draw(st.integers(1, 4))):
        apdu = data.draw(peer_apdus(config, 0))
        answers = to_server(pair, apdu)
        is_gbt = apdu[:1] == b"\xe0"
        assert answers or is_gbt, (situation, apdu.hex())
        assert isinstance(pair.server.state, ServerState)
