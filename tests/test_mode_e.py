"""IEC 62056-21 mode E sign-on (brief §3): messages, every baud-rate character, malformed
identifications, and the client and meter state machines with fake time.

brief = ../shared/reference/DLMS_BRIEF.md. Each vector cites its source.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosemcast.errors import DecodeError, EncodeError, RemoteProtocolError, ResponseTimeout
from cosemcast.link.hdlc_state import NeedData
from cosemcast.link.mode_e import (
    BAUD_RATES,
    Acknowledgement,
    Identification,
    IdentificationReceived,
    ModeEClient,
    ModeEEvent,
    ModeEServer,
    RequestReceived,
    SwitchToHdlc,
    baud_rate_character,
    decode_acknowledgement,
    decode_identification,
    decode_request,
    encode_request,
)

# Brief §3 item 2 (GXP initializeOpticalHead, GXC): the request without address.
REQUEST = bytes.fromhex("2F 3F 21 0D 0A")
# pwitab/iec62056-21 tests/test_data.py TestRequestMessage: with a device address.
REQUEST_WITH_ADDRESS = b"/?45678903!\r\n"
# pwitab/iec62056-21 tests/test_data.py TestIdentificationMessage: an Elster meter offering
# 19200 Bd ("6") with the enhanced identification \2.
IDENTIFICATION_ELS = b"/Els6\\2EK280\r\n"
# Brief §3 item 4 (Gurux C/Python/.NET): the acknowledgement selecting 9600 Bd in mode E.
ACK_9600 = bytes.fromhex("06 32 35 32 0D 0A")
# pwitab/iec62056-21 tests/test_data.py TestAckOptionSelectMessage: mode C, 9600 Bd, programming.
ACK_MODE_C = b"\x06051\r\n"

METER = Identification("ABC", "5", "SOFTMETER1")


def with_even_parity(data: bytes) -> bytes:
    """What an IO reading 8 bits delivers from a 7E1 line: the parity bit in bit 7."""
    return bytes(b | (0x80 if bin(b).count("1") % 2 else 0) for b in data)


def drain(machine: ModeEClient | ModeEServer) -> list[ModeEEvent]:
    out: list[ModeEEvent] = []
    while not isinstance(event := machine.next_event(), NeedData):
        out.append(event)
    return out


# --- messages -----------------------------------------------------------------------------------


def test_request_vectors() -> None:
    assert encode_request() == REQUEST
    assert encode_request("45678903") == REQUEST_WITH_ADDRESS
    assert decode_request(REQUEST) == ""
    assert decode_request(REQUEST_WITH_ADDRESS) == "45678903"


def test_identification_vector() -> None:
    identification = decode_identification(IDENTIFICATION_ELS)
    assert identification == Identification("Els", "6", "EK280", "2")
    assert identification.baud_rate == 19200 and identification.hdlc_capable
    assert identification.encode() == IDENTIFICATION_ELS


def test_acknowledgement_vectors() -> None:
    assert Acknowledgement("5").encode() == ACK_9600
    assert decode_acknowledgement(ACK_9600) == Acknowledgement("5", "2", "2")
    mode_c = decode_acknowledgement(ACK_MODE_C)
    assert (mode_c.protocol, mode_c.baud_rate, mode_c.mode) == ("0", 9600, "1")
    assert not mode_c.selects_hdlc


@pytest.mark.parametrize(
    ("char", "rate"),
    [("0", 300), ("1", 600), ("2", 1200), ("3", 2400), ("4", 4800), ("5", 9600), ("6", 19200)],
)
def test_every_baud_rate_character(char: str, rate: int) -> None:
    # Brief §3 item 3 (GXP/GXC tables): modes C and E.
    identification = decode_identification(f"/XYZ{char}\\2Ident\r\n".encode())
    assert identification.baud_rate == rate
    assert baud_rate_character(rate) == char
    assert decode_acknowledgement(b"\x062" + char.encode() + b"2\r\n").baud_rate == rate


def test_identification_without_enhanced_sequence() -> None:
    identification = decode_identification(b"/LGZ4ZMF100AC\r\n")  # mode C style
    assert identification == Identification("LGZ", "4", "ZMF100AC", None)
    assert not identification.hdlc_capable


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"ABC5\\2X\r\n",  # no start character
        b"/ABC5\\2X",  # no CR LF
        b"/ABC5\\2X\n",
        b"/AB\r\n",
        b"/A1C5\\2X\r\n",  # manufacturer not letters
        b"/ABC7\\2X\r\n",  # reserved baud-rate character
        b"/ABCA\\2X\r\n",  # mode B character
        b"/ABC5\\\r\n",  # backslash without its digit
        b"/ABC5\\xX\r\n",
        b"/ABC5\\2X/Y\r\n",  # "/" inside the identification
        b"/ABC5\\2X\x01Y\r\n",  # control character
    ],
)
def test_malformed_identification(line: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_identification(line)


@pytest.mark.parametrize(
    "line", [b"/?1!\n", b"/1!\r\n", b"/?" + b"1" * 33 + b"!\r\n", b"/?1\x02!\r\n"]
)
def test_malformed_request(line: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_request(line)


@pytest.mark.parametrize("line", [b"\x06252\r", b"\x0625X\r\n", b"\x06292\r\n", b"\x15252\r\n"])
def test_malformed_acknowledgement(line: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_acknowledgement(line)


def test_encoders_refuse_what_cannot_be_sent() -> None:
    for bad in (
        Identification("AB", "5", "X"),
        Identification("ABC", "9", "X"),
        Identification("ABC", "5", "X/Y"),
        Identification("ABC", "5", "X", "x"),
        Identification("ABC", "5", "\\2X", None),  # would read back as enhanced
    ):
        with pytest.raises(EncodeError):
            bad.encode()
    with pytest.raises(EncodeError):
        encode_request("1!2")
    with pytest.raises(EncodeError):
        baud_rate_character(115200)


identifications = st.builds(
    Identification,
    st.text(
        st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"),
        min_size=3,
        max_size=3,
    ),
    st.sampled_from(sorted(BAUD_RATES)),
    st.text(
        st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="/!"), max_size=16
    ).filter(lambda t: not t.startswith("\\")),
    st.one_of(st.none(), st.sampled_from("0123456789")),
)


@given(identifications)
def test_identification_round_trip(identification: Identification) -> None:
    assert decode_identification(identification.encode()) == identification


@given(st.binary(max_size=40))
def test_arbitrary_bytes_raise_only_decode_error(data: bytes) -> None:
    for decoder in (decode_identification, decode_request, decode_acknowledgement):
        try:
            decoder(data)
        except DecodeError:
            pass


@given(identifications, st.data())
def test_mutated_identifications_raise_only_decode_error(
    identification: Identification, data: st.DataObject
) -> None:
    line = bytearray(identification.encode())
    cut = data.draw(st.integers(0, len(line)))
    position = data.draw(st.integers(0, len(line) - 1))
    line[position] = data.draw(st.integers(0, 255))
    for candidate in (bytes(line), bytes(line[:cut])):
        try:
            decode_identification(candidate)
        except DecodeError:
            pass


# --- the client ---------------------------------------------------------------------------------


def test_client_sign_on_with_echo_noise_and_parity_bits() -> None:
    client = ModeEClient()
    assert client.start(now=0) == REQUEST
    assert client.get_timer() == 2.0
    # The optical head echoes the request; noise precedes the identification.
    wire = with_even_parity(REQUEST + b"\x00\x7f" + IDENTIFICATION_ELS)
    for i in range(0, len(wire), 3):  # arrives in pieces
        client.receive_data(wire[i : i + 3], now=0.5)
    assert drain(client) == [
        IdentificationReceived(Identification("Els", "6", "EK280", "2")),
        SwitchToHdlc(19200),
    ]
    assert client.data_to_send() == b"\x06262\r\n"
    assert client.get_timer() is None


def test_client_caps_the_baud_rate() -> None:
    client = ModeEClient(max_baud_rate=9600)
    client.start(now=0)
    client.receive_data(IDENTIFICATION_ELS, now=0.1)
    assert drain(client)[-1] == SwitchToHdlc(9600)
    assert client.data_to_send() == ACK_9600  # brief §3 item 4
    slow = ModeEClient(max_baud_rate=5000)
    slow.start(now=0)
    slow.receive_data(IDENTIFICATION_ELS, now=0.1)
    assert drain(slow)[-1] == SwitchToHdlc(4800)


def test_client_with_device_address() -> None:
    assert ModeEClient(device_address="45678903").start(now=0) == REQUEST_WITH_ADDRESS


def test_client_refuses_a_meter_without_hdlc() -> None:
    client = ModeEClient()
    client.start(now=0)
    client.receive_data(b"/LGZ4ZMF100AC\r\n", now=0.1)
    with pytest.raises(RemoteProtocolError):
        client.next_event()
    assert client.data_to_send() == b""


def test_client_malformed_identification() -> None:
    client = ModeEClient()
    client.start(now=0)
    client.receive_data(b"/AB15\\2X\r\n", now=0.1)
    with pytest.raises(DecodeError):
        client.next_event()


def test_client_repeats_the_request_then_times_out() -> None:
    client = ModeEClient(response_timeout_s=1.5, max_retries=2)
    client.start(now=10)
    assert client.handle_timer(11.0) == b""
    assert client.handle_timer(11.5) == REQUEST
    assert client.get_timer() == 13.0
    assert client.handle_timer(13.0) == REQUEST
    with pytest.raises(ResponseTimeout):
        client.handle_timer(14.5)


@given(st.lists(st.binary(max_size=20), max_size=10))
def test_client_fed_arbitrary_bytes_raises_only_protocol_errors(chunks: list[bytes]) -> None:
    client = ModeEClient()
    client.start(now=0)
    for chunk in chunks:
        client.receive_data(chunk, now=0)
        try:
            drain(client)
        except (DecodeError, RemoteProtocolError):
            return


# --- the meter ----------------------------------------------------------------------------------


def test_meter_sign_on_and_leftover_hdlc_bytes() -> None:
    meter = ModeEServer(METER)
    meter.receive_data(with_even_parity(b"\x00" + REQUEST), now=0)
    assert drain(meter) == [RequestReceived("")]
    assert meter.data_to_send() == b"/ABC5\\2SOFTMETER1\r\n"
    assert meter.get_timer() == 3.0
    snrm = bytes.fromhex("7EA00802232193BD647E")  # brief §10.1 b, sent right after the ACK
    meter.receive_data(with_even_parity(ACK_9600) + snrm, now=0.5)
    assert drain(meter) == [SwitchToHdlc(9600)]
    assert meter.baud_rate == 9600
    assert meter.leftover() == snrm  # 8-bit bytes untouched
    assert meter.get_timer() is None


def test_meter_device_addresses() -> None:
    meter = ModeEServer(METER, device_address="0045678903")
    meter.receive_data(b"/?12345678!\r\n", now=0)
    assert drain(meter) == []  # another device: silence
    meter.receive_data(REQUEST_WITH_ADDRESS, now=0)  # leading zeros may be left out
    assert drain(meter) == [RequestReceived("45678903")]


def test_meter_refuses_mode_c_and_too_fast_rates() -> None:
    meter = ModeEServer(METER)
    meter.receive_data(REQUEST + ACK_MODE_C, now=0)
    with pytest.raises(RemoteProtocolError):
        drain(meter)
    meter.receive_data(REQUEST + b"\x06262\r\n", now=0)  # 19200 > 9600 offered
    with pytest.raises(RemoteProtocolError):
        drain(meter)
    meter.data_to_send()
    meter.receive_data(REQUEST + ACK_9600, now=0)  # it still answers afterwards
    assert drain(meter) == [RequestReceived(""), SwitchToHdlc(9600)]


def test_meter_malformed_request_then_recovers() -> None:
    meter = ModeEServer(METER)
    meter.receive_data(b"/?1\x02!\r\n", now=0)
    with pytest.raises(DecodeError):
        drain(meter)
    meter.receive_data(REQUEST, now=1)
    assert drain(meter) == [RequestReceived("")]


def test_meter_forgets_a_request_without_acknowledgement() -> None:
    meter = ModeEServer(METER, acknowledgement_timeout_s=2.0)
    meter.receive_data(REQUEST, now=0)
    drain(meter)
    meter.handle_timer(2.0)
    meter.receive_data(ACK_9600, now=2.1)  # too late: ignored
    assert drain(meter) == []


def test_client_and_meter_in_memory() -> None:
    client, meter = ModeEClient(), ModeEServer(Identification("XYZ", "6", "M1"))
    meter.receive_data(client.start(now=0), now=0)
    assert drain(meter) == [RequestReceived("")]
    client.receive_data(meter.data_to_send(), now=0.2)
    events = drain(client)
    assert events[-1] == SwitchToHdlc(19200)
    meter.receive_data(client.data_to_send(), now=0.3)
    assert drain(meter) == [SwitchToHdlc(19200)]
