"""HDLC connection state machine (IEC 62056-46): client and server talking in memory.

brief = ../shared/reference/DLMS_BRIEF.md. Published frames (brief §10.1) are checked byte for
byte where our stack must produce them; the rest are properties: every APDU arrives once and
in order, whatever frames the wire loses, corrupts or repeats, with the negotiated information
length and window honoured. Time is fake: the harness jumps to the next timer, never sleeps.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cosemcast.errors import LocalProtocolError
from cosemcast.link.hdlc import (
    FrameType,
    HdlcAddress,
    HdlcFrame,
    HdlcParameters,
    decode_frame,
    decode_parameters,
    encode_frame,
)
from cosemcast.link.hdlc_connection import (
    ApduReceived,
    Connected,
    Disconnected,
    DisconnectReason,
    Event,
    HdlcConnection,
    LinkParameters,
    LinkState,
    NeedData,
    Role,
)
from cosemcast.link.hdlc_state import STATES_BY_ROLE, TRANSITIONS, CommandAction, FrameAction

CLIENT_16 = HdlcAddress.client(16)
SERVER_1 = HdlcAddress.server(1)
SERVER_1_17 = HdlcAddress(1, 17, 2)


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def client(server: HdlcAddress = SERVER_1_17, **kwargs: object) -> HdlcConnection:
    return HdlcConnection(
        Role.CLIENT,
        client_address=CLIENT_16,
        server_address=server,
        **kwargs,  # type: ignore[arg-type]
    )


def server(address: HdlcAddress = SERVER_1_17, **kwargs: object) -> HdlcConnection:
    return HdlcConnection(
        Role.SERVER,
        client_address=CLIENT_16,
        server_address=address,
        **kwargs,  # type: ignore[arg-type]
    )


def events(conn: HdlcConnection) -> list[Event]:
    out: list[Event] = []
    while not isinstance(event := conn.next_event(), NeedData):
        out.append(event)
    return out


def frames(data: bytes) -> list[bytes]:
    """Split concatenated frames as our encoder writes them (each with both flags)."""
    out, pos = [], 0
    while pos < len(data):
        assert data[pos] == 0x7E
        length = ((data[pos + 1] << 8) | data[pos + 2]) & 0x7FF
        out.append(data[pos : pos + length + 2])
        pos += length + 2
    return out


# --- published frames (brief §10.1) -------------------------------------------------------------

SNRM_A = h("7E A0 07 03 21 93 0F 01 7E")  # §10.1 a (Gurux Go test + several clients)
SNRM_B = h("7EA00802232193BD647E")  # §10.1 b (DC tests/test_hdlc TestSnrmFrame)
UA_C = h("7EA01F21022373E6C781801205019A06019A070400000001080400000001CCA27E")  # §10.1 c (DC)
# §10.1 d (DC TestInformationFrame): I-frame N(S)=0 N(R)=0 with an AARQ.
I_AARQ_D = h(
    "7EA02C02232110AF9FE6E600601DA109060760857405080101BE10040E01000000065F1F0400001E1DFFFFC5E47E"
)
AARQ = h("601DA109060760857405080101BE10040E01000000065F1F0400001E1DFFFF")
# §10.1 e (DC TestInformationResponseFrame): the server's I-frame N(S)=0 N(R)=1 with the AARE.
I_AARE_E = h(
    "7EA0382102233034E7E6E7006129A109060760857405080101A203020100A305A103020100BE10040E"
    "0800065F1F0400001E1D04C80007B86A7E"
)
AARE = h("6129A109060760857405080101A203020100A305A103020100BE10040E0800065F1F0400001E1D04C80007")
# §10.1 m [DERIVED]: I-frame N(S)=1 N(R)=1 with the GB glo-get-request of §5.3.
I_GLO_GET_M = h(
    "7EA02D02232132FB96E6E600C81E3001234567411312FF935A47566827C467BC7D825C3BE4A77C3FCC056B6BC5237E"
)
GLO_GET = h("C81E3001234567411312FF935A47566827C467BC7D825C3BE4A77C3FCC056B6B")
# §10.1 l [DERIVED]: DISC, UA (empty), DM for (1,17) <-> 16.
DISC_L, UA_L, DM_L = h("7EA00802232153B1A27E"), h("7EA008210223737A437E"), h("7EA0082102231F10EA7E")
# DC tests/test_hdlc/test_hdlc.py TestUnnumberedInformationFrame (brief §10.1 k): a UI push
# (control 13) from server (4, 65) to client 32 carrying a DATA-NOTIFICATION of 27 registers.
UI_PUSH_K = h(
    "7EA2434108831385EBE6E7000F4000000000011B020209060000010000FF090C07E30C1001073B28FF8000FF02030906"
    "0100010700FF060000046202020F00161B020309060100020700FF060000000002020F00161B020309060100030700FF"
    "06000005E302020F00161D020309060100040700FF060000000002020F00161D0203090601001F0700FF10000002020F"
    "FF1621020309060100330700FF10004B02020FFF1621020309060100470700FF10000002020FFF162102030906010020"
    "0700FF12090302020FFF1623020309060100340700FF1209C302020FFF1623020309060100480700FF12090402020FFF"
    "1623020309060100150700FF060000000002020F00161B020309060100160700FF060000000002020F00161B02030906"
    "0100170700FF060000000002020F00161D020309060100180700FF060000000002020F00161D020309060100290700FF"
    "060000046202020F00161B0203090601002A0700FF060000000002020F00161B0203090601002B0700FF06000005E202"
    "020F00161D0203090601002C0700FF060000000002020F00161D0203090601003D0700FF060000000002020F00161B02"
    "03090601003E0700FF060000000002020F00161B0203090601003F0700FF060000000002020F00161D02030906010040"
    "0700FF060000000002020F00161D020309060100010800FF060099598602020F00161E020309060100020800FF060000"
    "000802020F00161E020309060100030800FF060064ED4B02020F001620020309060100040800FF060000000502020F00"
    "1620BE407E"
)


def test_client_snrm_vectors() -> None:
    assert client(SERVER_1).connect(now=0) == SNRM_A
    assert client(SERVER_1_17).connect(now=0) == SNRM_B


def test_client_session_against_dc_vectors() -> None:
    c = client()
    c.connect(now=0)
    c.receive_data(UA_C, now=0.1)
    # UA c offers 154 bytes and window 1 each way (brief §10.1 c, §2.6: TX/RX swapped).
    assert events(c) == [Connected(LinkParameters(154, 154, 1, 1), CLIENT_16, SERVER_1_17)]
    assert c.send_apdu(AARQ, now=0.2) == I_AARQ_D
    c.receive_data(I_AARE_E, now=0.3)
    assert events(c) == [ApduReceived(AARE)]
    assert c.data_to_send() == b""  # complete answer: nothing to poll
    assert c.send_apdu(GLO_GET, now=0.4) == I_GLO_GET_M
    assert c.disconnect(now=0.5) == DISC_L
    c.receive_data(UA_L, now=0.6)
    assert events(c) == [Disconnected(DisconnectReason.LOCAL)]
    assert c.state is LinkState.DISCONNECTED


def test_server_session_against_dc_vectors() -> None:
    s = server()
    s.receive_data(SNRM_B, now=0)
    assert events(s) == [Connected(LinkParameters(), CLIENT_16, SERVER_1_17)]
    ua = decode_frame(s.data_to_send())
    assert ua.frame_type is FrameType.UA
    # An SNRM without parameters means the defaults: 128 bytes, window 1 (brief §2.6).
    assert decode_parameters(ua.information).with_defaults() == HdlcParameters(128, 128, 1, 1)
    s.receive_data(I_AARQ_D, now=0.1)
    assert events(s) == [ApduReceived(AARQ)]
    assert s.data_to_send() == b""  # the poll is held for the answer
    assert s.send_apdu(AARE, now=0.2) == I_AARE_E
    s.receive_data(DISC_L, now=0.3)
    assert events(s) == [Disconnected(DisconnectReason.PEER, "DISC from the client")]
    assert s.data_to_send() == UA_L
    s.receive_data(DISC_L, now=0.4)  # DISC without a link: DM
    assert events(s) == []
    assert s.data_to_send() == DM_L


def test_jd_exchanges_with_odd_addresses() -> None:
    # Brief §10.1 h, i, j (JD FcsCalcTest): client 58 (0x75), server 74 (0x95), three
    # consecutive GET/SET exchanges with N(S) = 2, 3, 4; the vectors list the bytes between
    # the flags and the FCS after them.
    jd_client, jd_server = HdlcAddress(58), HdlcAddress(74)
    c = HdlcConnection(Role.CLIENT, client_address=jd_client, server_address=jd_server)
    s = HdlcConnection(Role.SERVER, client_address=jd_client, server_address=jd_server)
    s.receive_data(c.connect(now=0), now=0)
    events(s)
    c.receive_data(s.data_to_send(), now=0)
    events(c)
    for _ in range(2):  # exchanges N(S) = 0 and 1
        s.receive_data(c.send_apdu(b"\xc0\x01", now=0), now=0)
        events(s)
        c.receive_data(s.send_apdu(b"\xc4\x01", now=0), now=0)
        events(c)
    for request, fcs_request, response, fcs_response in [
        (
            "A0199575546835E6E600C0018100080000010000FF0100",
            "0DFD",
            "A018759574E9E8E6E700C401810009060000010000FF",
            "FD49",
        ),
        (
            "A0199575767837E6E600C0018100080000010000FF0200",
            "65D7",
            "A01E7595966F67E6E700C4018100090C07D20C04030A060BFF007800",
            "F330",
        ),
        (
            "A027957598B8DBE6E600C1018100080000010000FF0200090C07D20C04030A060BFF007800",
            "62FB",
            "A0107595B85101E6E700C5018100",
            "36CF",
        ),
    ]:
        wire_request = b"\x7e" + h(request + fcs_request) + b"\x7e"
        wire_response = b"\x7e" + h(response + fcs_response) + b"\x7e"
        assert c.send_apdu(h(request)[10:], now=0) == wire_request
        s.receive_data(wire_request, now=0)
        assert events(s) == [ApduReceived(h(request)[10:])]
        assert s.send_apdu(h(response)[10:], now=0) == wire_response
        c.receive_data(wire_response, now=0)
        assert events(c) == [ApduReceived(h(response)[10:])]


def test_ui_push_vector_reaches_the_client() -> None:
    c = HdlcConnection(
        Role.CLIENT, client_address=HdlcAddress(32), server_address=HdlcAddress(4, 65, 2)
    )
    c.receive_data(UI_PUSH_K, now=0)  # accepted in any state, even without a link
    (event,) = events(c)
    assert isinstance(event, ApduReceived) and event.unnumbered
    assert event.apdu[:1] == b"\x0f" and len(event.apdu) == 566
    assert c.data_to_send() == b""


# --- the transition table ----------------------------------------------------------------------


def test_table_covers_every_frame_in_every_state() -> None:
    for role, states in STATES_BY_ROLE.items():
        for state, frame_type in itertools.product(states, FrameType):
            assert (role, state, frame_type) in TRANSITIONS, (role, state, frame_type)
    for role, state, _ in TRANSITIONS:
        assert state in STATES_BY_ROLE[role]
    for (role, _, trigger), transition in TRANSITIONS.items():
        assert transition.next_state in STATES_BY_ROLE[role]
        expected = FrameAction if isinstance(trigger, FrameType) else CommandAction
        assert isinstance(transition.action, expected)


def test_commands_outside_the_table_are_local_errors() -> None:
    with pytest.raises(LocalProtocolError):
        server().connect(now=0)
    with pytest.raises(LocalProtocolError):
        client().send_apdu(b"\xc0", now=0)  # not connected
    c = client()
    c.connect(now=0)
    with pytest.raises(LocalProtocolError):
        c.send_apdu(b"\xc0", now=0)  # still connecting
    assert client().disconnect(now=0) == b""  # already disconnected: nothing to do


# --- in-memory harness --------------------------------------------------------------------------

DROP, DUPLICATE = "drop", "duplicate"
Fault = str | int  # DROP, DUPLICATE, or a bit to flip (taken modulo the frame's bit count)


@dataclass
class Wire:
    """One direction: counts frames and applies the fault planned for each index."""

    faults: dict[int, Fault] = field(default_factory=dict)
    sent: list[HdlcFrame] = field(default_factory=list)
    count: int = 0

    def carry(self, data: bytes) -> bytes:
        out = bytearray()
        for raw in frames(data):
            self.sent.append(decode_frame(raw, split_llc=False))
            fault = self.faults.get(self.count)
            self.count += 1
            if fault == DROP:
                continue
            if fault == DUPLICATE:
                out += raw + raw
            elif isinstance(fault, int):
                bit = fault % (8 * len(raw))
                damaged = bytearray(raw)
                damaged[bit // 8] ^= 1 << (bit % 8)
                out += damaged
            else:
                out += raw
        return bytes(out)


def check_bursts(sent: list[HdlcFrame], parameters: LinkParameters) -> None:
    """Every I-frame fits the negotiated length; a burst (up to P/F) fits the window."""
    run = 0
    for frame in sent:
        if frame.frame_type is FrameType.I:
            assert len(frame.information) <= parameters.max_info_length_transmit
            run += 1
            assert run <= parameters.window_size_transmit
        if frame.poll_final:
            run = 0


def response_to(request: bytes) -> bytes:
    return request[::-1] + bytes(range(256)) * (len(request) % 7)


@dataclass
class Session:
    client: HdlcConnection
    server: HdlcConnection
    to_server: Wire = field(default_factory=Wire)
    to_client: Wire = field(default_factory=Wire)
    now: float = 0.0
    requests_seen: list[bytes] = field(default_factory=list)
    responses_seen: list[bytes] = field(default_factory=list)
    pushes_seen: list[bytes] = field(default_factory=list)
    disconnects: list[Disconnected] = field(default_factory=list)

    def run(
        self,
        requests: list[bytes],
        respond: Callable[[bytes], bytes] = response_to,
        *,
        max_steps: int = 20_000,
    ) -> None:
        pending = list(requests)
        to_server = self.client.connect(now=self.now)
        for _ in range(max_steps):
            if to_server:
                self.server.receive_data(self.to_server.carry(to_server), now=self.now)
            to_client = b""
            for event in events(self.server):
                if isinstance(event, ApduReceived):
                    self.requests_seen.append(event.apdu)
                    to_client += self.server.send_apdu(respond(event.apdu), now=self.now)
            to_client += self.server.data_to_send()
            if to_client:
                self.client.receive_data(self.to_client.carry(to_client), now=self.now)
            to_server = b""
            for event in events(self.client):
                if isinstance(event, Disconnected):
                    self.disconnects.append(event)
                    return
                if isinstance(event, ApduReceived) and event.unnumbered:
                    self.pushes_seen.append(event.apdu)
                    continue
                if isinstance(event, ApduReceived):
                    self.responses_seen.append(event.apdu)
                if pending:
                    to_server += self.client.send_apdu(pending.pop(0), now=self.now)
            to_server += self.client.data_to_send()
            if not pending and len(self.responses_seen) == len(requests):
                return
            if not to_server and not to_client:
                timer = self.client.get_timer()
                assert timer is not None, "deadlock: nobody has anything to send"
                self.now = max(self.now, timer)
                to_server = self.client.handle_timer(self.now)
        raise AssertionError("the session did not finish")


def new_session(
    client_parameters: HdlcParameters | None = None,
    server_limits: HdlcParameters | None = None,
    *,
    max_retries: int = 3,
    faults_to_server: dict[int, Fault] | None = None,
    faults_to_client: dict[int, Fault] | None = None,
) -> Session:
    return Session(
        client(parameters=client_parameters, max_retries=max_retries),
        server(parameters=server_limits),
        Wire(faults_to_server or {}),
        Wire(faults_to_client or {}),
    )


def check_complete(session: Session, requests: list[bytes]) -> None:
    assert session.disconnects == []
    assert session.requests_seen == requests
    assert session.responses_seen == [response_to(r) for r in requests]
    check_bursts(session.to_server.sent, session.client.parameters)
    check_bursts(session.to_client.sent, session.server.parameters)


# --- negotiation --------------------------------------------------------------------------------


def test_negotiation_takes_the_smaller_value_in_each_direction() -> None:
    session = new_session(HdlcParameters(1024, 256, 7, 3), HdlcParameters(512, 2030, 2, 7))
    session.run([b"\xc0\x01"])
    # Client view: transmit min(1024, server receive 2030), receive min(256, server transmit
    # 512); windows: transmit min(7, server receive 7), receive min(3, server transmit 2).
    assert session.client.parameters == LinkParameters(1024, 256, 7, 2)
    assert session.server.parameters == LinkParameters(256, 1024, 2, 7)


def test_snrm_proposal_is_sent_and_swapped_in_the_ua() -> None:
    c = client(parameters=HdlcParameters(300, 200, 4, 5))
    snrm = decode_frame(c.connect(now=0))
    assert decode_parameters(snrm.information) == HdlcParameters(300, 200, 4, 5)
    s = server()
    s.receive_data(encode_frame(snrm), now=0)
    events(s)
    ua = decode_parameters(decode_frame(s.data_to_send()).information)
    assert ua == HdlcParameters(200, 300, 5, 4)


# --- segmentation -------------------------------------------------------------------------------


@pytest.mark.parametrize("window", [1, 7])
def test_long_apdus_are_segmented_both_ways(window: int) -> None:
    request = bytes(i * 31 % 256 for i in range(5000))
    parameters = HdlcParameters(128, 128, window, window)
    session = new_session(parameters)
    session.run([request, b"\xc0"], respond=lambda r: r[::-1] if len(r) > 1 else b"\x7e" * 4000)
    assert session.requests_seen == [request, b"\xc0"]
    assert session.responses_seen == [request[::-1], b"\x7e" * 4000]
    assert session.client.parameters == LinkParameters(128, 128, window, window)
    i_frames = [f for f in session.to_server.sent if f.frame_type is FrameType.I]
    assert len(i_frames) == -(-(5000 + 3) // 128) + 1  # LLC counts in the information field
    assert all(f.segmented for f in i_frames[:39]) and not i_frames[39].segmented
    check_bursts(session.to_server.sent, session.client.parameters)
    check_bursts(session.to_client.sent, session.server.parameters)
    if window == 1:
        # Brief §2.7: each non-final segment is answered by RR; the client pulls with RR.
        rr_from_server = [f for f in session.to_client.sent if f.frame_type is FrameType.RR]
        rr_from_client = [f for f in session.to_server.sent if f.frame_type is FrameType.RR]
        assert len(rr_from_server) == 39
        assert len(rr_from_client) == -(-(5000 + 3) // 128) - 1 + -(-(4000 + 3) // 128) - 1


# --- loss, corruption, duplication ----------------------------------------------------------------

faults = st.dictionaries(
    st.integers(0, 60),
    st.one_of(st.just(DROP), st.just(DUPLICATE), st.integers(0, 1 << 16)),
    max_size=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    requests=st.lists(st.binary(min_size=1, max_size=1500), min_size=1, max_size=4),
    client_info=st.integers(16, 300),
    server_info=st.integers(16, 300),
    client_window=st.integers(1, 7),
    server_window=st.integers(1, 7),
    faults_to_server=faults,
    faults_to_client=faults,
)
def test_transfer_survives_loss_corruption_and_duplicates(
    requests: list[bytes],
    client_info: int,
    server_info: int,
    client_window: int,
    server_window: int,
    faults_to_server: dict[int, Fault],
    faults_to_client: dict[int, Fault],
) -> None:
    session = new_session(
        HdlcParameters(client_info, server_info, client_window, server_window),
        max_retries=30,
        faults_to_server=faults_to_server,
        faults_to_client=faults_to_client,
    )
    session.run(requests)
    check_complete(session, requests)


def test_duplicate_i_frames_are_discarded() -> None:
    # Every frame both ways arrives twice.
    requests = [bytes([n]) * 300 for n in range(1, 6)]
    session = new_session(
        HdlcParameters(64, 64, 3, 3),
        faults_to_server=dict.fromkeys(range(200), DUPLICATE),
        faults_to_client=dict.fromkeys(range(200), DUPLICATE),
    )
    session.run(requests)
    check_complete(session, requests)
    assert session.server.duplicate_frames > 0 and session.client.duplicate_frames > 0


def test_corrupted_frame_is_dropped_and_recovered_by_the_timer() -> None:
    session = new_session(faults_to_server={1: 40})  # flip a bit of the first I-frame
    session.run([b"\xc0\x01\x81\x00"])
    check_complete(session, [b"\xc0\x01\x81\x00"])
    assert session.server.dropped_frames == 1
    assert session.client.retransmissions == 1
    assert session.now == pytest.approx(3.0)  # one response timeout


# --- timers -------------------------------------------------------------------------------------


def test_snrm_is_retried_then_the_link_times_out() -> None:
    c = client(response_timeout_s=2.0, max_retries=2)
    first = c.connect(now=10.0)
    assert c.get_timer() == 12.0
    assert c.handle_timer(11.9) == b""  # not yet
    assert c.handle_timer(12.0) == first
    assert c.handle_timer(14.0) == first
    assert c.handle_timer(16.0) == b""
    assert events(c) == [
        Disconnected(DisconnectReason.TIMEOUT, "no answer after 2 retransmissions")
    ]
    assert c.state is LinkState.DISCONNECTED and c.get_timer() is None


def test_dm_refuses_the_link() -> None:
    c = client()
    c.connect(now=0)
    c.receive_data(encode_frame(HdlcFrame(FrameType.DM, CLIENT_16, SERVER_1_17)), now=0)
    assert events(c) == [Disconnected(DisconnectReason.REFUSED, "SNRM answered by DM")]


def test_client_polls_a_slow_server() -> None:
    session = new_session()
    c, s = session.client, session.server
    s.receive_data(c.connect(now=0), now=0)
    events(s)
    c.receive_data(s.data_to_send(), now=0)
    events(c)
    s.receive_data(c.send_apdu(b"\xc0\x01", now=0), now=0)
    assert events(s) == [ApduReceived(b"\xc0\x01")]
    assert s.data_to_send() == b""  # the server holds the token for its answer
    # The application is slow: the client times out and repeats its I-frame; the server,
    # polled again with nothing to send, answers RR.
    s.receive_data(c.handle_timer(3.0), now=3.0)
    assert events(s) == []
    rr = decode_frame(s.data_to_send())
    assert (rr.frame_type, rr.receive_sequence, rr.poll_final) == (FrameType.RR, 1, True)
    c.receive_data(encode_frame(rr), now=3.0)
    assert events(c) == []
    assert c.get_timer() == 6.0  # the answer is still owed: poll again later
    assert s.send_apdu(b"\xc4\x01", now=4.0) == b""  # not polled: queued
    poll = c.handle_timer(6.0)
    assert decode_frame(poll).frame_type is FrameType.RR
    s.receive_data(poll, now=6.0)
    events(s)
    c.receive_data(s.data_to_send(), now=6.0)
    assert events(c) == [ApduReceived(b"\xc4\x01")]
    assert c.get_timer() is None


def test_server_inactivity_timeout() -> None:
    s = server(inactivity_timeout_s=120.0)
    assert s.get_timer() is None
    s.receive_data(SNRM_B, now=5.0)
    events(s)
    assert s.get_timer() == 125.0
    s.handle_timer(125.0)
    assert events(s) == [Disconnected(DisconnectReason.INACTIVITY, "no frame from the client")]


# --- errors from the peer -----------------------------------------------------------------------


def test_invalid_nr_gets_frmr_and_the_client_drops_the_link() -> None:
    s = server()
    s.receive_data(SNRM_B, now=0)
    events(s)
    s.data_to_send()
    bad = HdlcFrame(FrameType.RR, SERVER_1_17, CLIENT_16, receive_sequence=3)  # nothing sent
    s.receive_data(encode_frame(bad), now=0)
    assert [type(e) for e in events(s)] == [Disconnected]
    frmr = decode_frame(s.data_to_send())
    assert frmr.frame_type is FrameType.FRMR
    assert frmr.information == bytes((bad.control, 0, 0x08))  # Z: invalid N(R)
    assert s.state is LinkState.FRAME_REJECT
    s.receive_data(encode_frame(bad), now=0)  # repeated until SNRM or DISC
    assert events(s) == []
    assert decode_frame(s.data_to_send()).frame_type is FrameType.FRMR
    c = client()
    c.connect(now=0)
    c.receive_data(UA_C, now=0)
    events(c)
    c.receive_data(encode_frame(frmr), now=0)
    assert events(c) == [
        Disconnected(DisconnectReason.FRAME_REJECT, frmr.information.hex(" ").upper())
    ]
    s.receive_data(SNRM_B, now=0)  # SNRM clears the frame-reject condition
    assert [type(e) for e in events(s)] == [Connected]


def test_snrm_on_an_established_link_resets_it() -> None:
    s = server()
    s.receive_data(SNRM_B + SNRM_B, now=0)  # a retransmitted SNRM is answered quietly
    assert [type(e) for e in events(s)] == [Connected]
    assert len(frames(s.data_to_send())) == 2
    s.receive_data(I_AARQ_D, now=0)
    events(s)
    s.receive_data(SNRM_B, now=0)
    assert [type(e) for e in events(s)] == [Disconnected, Connected]


def test_other_clients_get_dm_while_the_link_is_up() -> None:
    s = server()
    s.receive_data(SNRM_B, now=0)
    events(s)
    s.data_to_send()
    other = HdlcAddress.client(1)
    s.receive_data(encode_frame(HdlcFrame(FrameType.SNRM, SERVER_1_17, other)), now=0)
    assert events(s) == []
    dm = decode_frame(s.data_to_send())
    assert (dm.frame_type, dm.destination) == (FrameType.DM, other)
    s.receive_data(encode_frame(HdlcFrame(FrameType.SNRM, HdlcAddress(2, 17, 2), other)), now=0)
    assert events(s) == []
    assert s.data_to_send() == b"" and s.ignored_frames == 2


def test_ui_push_both_ways_and_segmented() -> None:
    session = new_session(HdlcParameters(64, 64, 1, 1))
    session.run([b"\xc0"])
    c, s = session.client, session.server
    push = b"\x0f" + bytes(range(200))
    c.receive_data(s.send_ui(push, now=1), now=1)
    assert events(c) == [ApduReceived(push, unnumbered=True)]
    ui = [decode_frame(f, split_llc=False) for f in frames(s.send_ui(push, now=1))]
    assert [f.segmented for f in ui] == [True, True, True, False]
    s.receive_data(c.send_ui(b"\x0f\x01", now=1), now=1)
    assert events(s) == [ApduReceived(b"\x0f\x01", unnumbered=True)]


# --- arbitrary input ----------------------------------------------------------------------------

any_frame = st.builds(
    HdlcFrame,
    st.sampled_from(list(FrameType)),
    st.sampled_from([SERVER_1_17, CLIENT_16, SERVER_1]),
    st.sampled_from([SERVER_1_17, CLIENT_16]),
    st.booleans(),
    st.integers(0, 7),
    st.integers(0, 7),
    st.booleans(),
    st.none(),
    st.binary(max_size=40),
)


def _valid(frame: HdlcFrame) -> HdlcFrame:
    kind = frame.frame_type
    return HdlcFrame(
        kind,
        frame.destination,
        frame.source,
        frame.poll_final,
        frame.send_sequence if kind is FrameType.I else 0,
        frame.receive_sequence if kind in (FrameType.I, FrameType.RR, FrameType.RNR) else 0,
        frame.segmented,
        None,
        frame.information if kind in (FrameType.I, FrameType.UI, FrameType.FRMR) else b"",
    )


@settings(max_examples=300, deadline=None)
@given(
    role=st.sampled_from(list(Role)),
    connect_first=st.booleans(),
    inputs=st.lists(st.one_of(any_frame.map(_valid), st.binary(max_size=30)), max_size=25),
)
def test_any_frame_sequence_in_any_state_is_handled(
    role: Role, connect_first: bool, inputs: list[HdlcFrame | bytes]
) -> None:
    """h2-style: arbitrary (state x frame) sequences never raise; the output is valid frames."""
    conn = client() if role is Role.CLIENT else server()
    if connect_first and role is Role.CLIENT:
        conn.connect(now=0)
    elif connect_first:
        conn.receive_data(SNRM_B, now=0)
    for now, item in enumerate(inputs):
        data = encode_frame(item) if isinstance(item, HdlcFrame) else item
        conn.receive_data(data, now=float(now))
        events(conn)
        for raw in frames(conn.data_to_send()):
            decode_frame(raw)
        conn.handle_timer(float(now))
        if conn.state is LinkState.CONNECTED:
            for raw in frames(conn.send_apdu(b"\xc0\x01", now=float(now))):
                decode_frame(raw)


def test_damaged_length_field_is_discarded_after_the_inter_octet_timeout() -> None:
    s = server(inter_octet_timeout_s=0.5)
    damaged = bytearray(SNRM_B)
    damaged[2] |= 0x40  # the length now promises 72 bytes: the splitter waits for them
    s.receive_data(bytes(damaged), now=0.0)
    s.receive_data(SNRM_B, now=0.1)  # within the inter-octet time: still part of that frame
    assert events(s) == []
    s.receive_data(SNRM_B, now=3.0)  # the client's retransmission, after a silence
    assert [type(e) for e in events(s)] == [Connected]
    assert s.dropped_frames == 1


def test_splitter_discard_partial_keeps_a_trailing_flag() -> None:
    from cosemcast.link.hdlc import HdlcFrameSplitter

    splitter = HdlcFrameSplitter()
    splitter.receive_data(SNRM_B[:5])
    assert splitter.next_raw_frame() is None
    assert splitter.discard_partial() == 5
    splitter.receive_data(b"\x7e")
    assert splitter.discard_partial() == 0
    splitter.receive_data(SNRM_B[1:])  # the kept flag opens the next frame
    assert splitter.next_raw_frame() == SNRM_B


def test_server_without_physical_address_answers_any_physical_address() -> None:
    s = server(SERVER_1)  # logical 1, any physical address
    s.receive_data(SNRM_B, now=0)  # addressed to (1, 17)
    assert events(s) == [Connected(LinkParameters(), CLIENT_16, SERVER_1_17)]
    assert decode_frame(s.data_to_send()).source == SERVER_1_17  # answered as addressed
    strict = server(HdlcAddress(1, 18, 2))
    strict.receive_data(SNRM_B, now=0)
    assert events(strict) == [] and strict.data_to_send() == b""


def test_a_disconnected_server_answers_dm_to_whoever_polls() -> None:
    s = server(SERVER_1)
    other = HdlcAddress.client(1)
    s.receive_data(encode_frame(HdlcFrame(FrameType.RR, SERVER_1_17, other)), now=0)
    assert events(s) == []
    dm = decode_frame(s.data_to_send())
    assert (dm.frame_type, dm.destination, dm.source) == (FrameType.DM, other, SERVER_1_17)
    s.receive_data(encode_frame(HdlcFrame(FrameType.RR, SERVER_1, other, poll_final=False)), now=0)
    assert events(s) == [] and s.data_to_send() == b""  # not polled: no answer
