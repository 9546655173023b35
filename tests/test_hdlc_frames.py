"""HDLC frame codec (IEC 62056-46): the published frames of brief §10.1, CRC, addresses,
SNRM/UA parameters, damaged frames and the stream splitter.

brief = ../shared/reference/DLMS_BRIEF.md. Each vector cites the source the brief gives.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosemcast.errors import DecodeError, EncodeError
from cosemcast.link.hdlc import (
    FrameType,
    HdlcAddress,
    HdlcFrame,
    HdlcFrameSplitter,
    HdlcParameters,
    LlcHeader,
    decode_frame,
    decode_parameters,
    encode_frame,
    encode_parameters,
    fcs16,
)

I, RR, SNRM, DISC, UA, DM = (  # noqa: E741
    FrameType.I,
    FrameType.RR,
    FrameType.SNRM,
    FrameType.DISC,
    FrameType.UA,
    FrameType.DM,
)
CLIENT_16 = HdlcAddress.client(16)
SERVER_1 = HdlcAddress.server(1)
SERVER_1_17 = HdlcAddress(1, 17, 2)
SERVER_1_17_WIDE = HdlcAddress(1, 17, 4)
# JD FcsCalcTest uses odd addresses: 0x95 (74) and 0x75 (58).
JD_SERVER = HdlcAddress(74)
JD_CLIENT = HdlcAddress(58)
CMD, RSP = LlcHeader.COMMAND, LlcHeader.RESPONSE


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def flags(body_without_flags: str) -> bytes:
    return b"\x7e" + h(body_without_flags) + b"\x7e"


# (frame on the wire, expected decoded frame, parameters carried in SNRM/UA or None)
VECTORS: list[tuple[str, bytes, HdlcFrame, HdlcParameters | None]] = [
    # a: SNRM to server 1, client 16, no info. Brief §10.1 a (Gurux Go test + several clients).
    ("a", h("7E A0 07 03 21 93 0F 01 7E"), HdlcFrame(SNRM, SERVER_1, CLIENT_16), None),
    # b: SNRM to (1,17) on 2 bytes. Brief §10.1 b (DC tests/test_hdlc TestSnrmFrame).
    ("b", h("7EA00802232193BD647E"), HdlcFrame(SNRM, SERVER_1_17, CLIENT_16), None),
    # c: UA with parameters 154/154, windows 1. Brief §10.1 c (DC TestUAFrame).
    (
        "c",
        h("7EA01F21022373E6C781801205019A06019A070400000001080400000001CCA27E"),
        HdlcFrame(
            UA,
            CLIENT_16,
            SERVER_1_17,
            information=h("81801205019A06019A070400000001080400000001"),
        ),
        HdlcParameters(154, 154, 1, 1),
    ),
    # d: I-frame N(S)=0 N(R)=0 carrying an AARQ. Brief §10.1 d (DC TestInformationFrame).
    (
        "d",
        h(
            "7EA02C02232110AF9FE6E600601DA109060760857405080101BE10040E01000000065F1F0400001E1D"
            "FFFFC5E47E"
        ),
        HdlcFrame(
            I,
            SERVER_1_17,
            CLIENT_16,
            llc=CMD,
            information=h("601DA109060760857405080101BE10040E01000000065F1F0400001E1DFFFF"),
        ),
        None,
    ),
    # e: I-frame from the server (N(S)=0, N(R)=1) carrying an AARE. Brief §10.1 e (DC).
    (
        "e",
        h(
            "7EA0382102233034E7E6E7006129A109060760857405080101A203020100A305A103020100BE10040E"
            "0800065F1F0400001E1D04C80007B86A7E"
        ),
        HdlcFrame(
            I,
            CLIENT_16,
            SERVER_1_17,
            receive_sequence=1,
            llc=RSP,
            information=h(
                "6129A109060760857405080101A203020100A305A103020100BE10040E0800065F1F0400001E1D"
                "04C80007"
            ),
        ),
        None,
    ),
    # f: SNRM with the 4-byte server address 00 02 00 23. Brief §10.1 f (JD FcsCalcTest).
    ("f", flags("A00A000200232193 1871"), HdlcFrame(SNRM, SERVER_1_17_WIDE, CLIENT_16), None),
    # g: UA, parameter values on 2 bytes (128). Brief §10.1 g (JD FcsCalcTest).
    (
        "g",
        flags("A023210002002373F6C5 8180140502008006020080070400000001080400000001 CE6A"),
        HdlcFrame(
            UA,
            CLIENT_16,
            SERVER_1_17_WIDE,
            information=h("8180140502008006020080070400000001080400000001"),
        ),
        HdlcParameters(128, 128, 1, 1),
    ),
    # h: GET Clock.logical_name and its response. Brief §10.1 h (JD FcsCalcTest).
    (
        "h request",
        flags("A0199575546835E6E600C0018100080000010000FF0100 0DFD"),
        HdlcFrame(
            I,
            JD_SERVER,
            JD_CLIENT,
            send_sequence=2,
            receive_sequence=2,
            llc=CMD,
            information=h("C0018100080000010000FF0100"),
        ),
        None,
    ),
    (
        "h response",
        flags("A018759574E9E8E6E700C401810009060000010000FF FD49"),
        HdlcFrame(
            I,
            JD_CLIENT,
            JD_SERVER,
            send_sequence=2,
            receive_sequence=3,
            llc=RSP,
            information=h("C401810009060000010000FF"),
        ),
        None,
    ),
    # i: GET Clock.time and its response. Brief §10.1 i (JD FcsCalcTest).
    (
        "i request",
        flags("A0199575767837E6E600C0018100080000010000FF0200 65D7"),
        HdlcFrame(
            I,
            JD_SERVER,
            JD_CLIENT,
            send_sequence=3,
            receive_sequence=3,
            llc=CMD,
            information=h("C0018100080000010000FF0200"),
        ),
        None,
    ),
    (
        "i response",
        flags("A01E7595966F67E6E700C4018100090C07D20C04030A060BFF007800 F330"),
        HdlcFrame(
            I,
            JD_CLIENT,
            JD_SERVER,
            send_sequence=3,
            receive_sequence=4,
            llc=RSP,
            information=h("C4018100090C07D20C04030A060BFF007800"),
        ),
        None,
    ),
    # j: SET Clock.time and the success response. Brief §10.1 j (JD FcsCalcTest).
    (
        "j request",
        flags("A027957598B8DBE6E600C1018100080000010000FF0200090C07D20C04030A060BFF007800 62FB"),
        HdlcFrame(
            I,
            JD_SERVER,
            JD_CLIENT,
            send_sequence=4,
            receive_sequence=4,
            llc=CMD,
            information=h("C1018100080000010000FF0200090C07D20C04030A060BFF007800"),
        ),
        None,
    ),
    (
        "j response",
        flags("A0107595B85101E6E700C5018100 36CF"),
        HdlcFrame(
            I,
            JD_CLIENT,
            JD_SERVER,
            send_sequence=4,
            receive_sequence=5,
            llc=RSP,
            information=h("C5018100"),
        ),
        None,
    ),
    # l: DISC, UA (empty), RR N(R)=2, DM for (1,17) <-> 16. Brief §10.1 l [DERIVED].
    ("l DISC", h("7EA00802232153B1A27E"), HdlcFrame(DISC, SERVER_1_17, CLIENT_16), None),
    ("l UA", h("7EA008210223737A437E"), HdlcFrame(UA, CLIENT_16, SERVER_1_17), None),
    (
        "l RR",
        h("7EA00802232151A3817E"),
        HdlcFrame(RR, SERVER_1_17, CLIENT_16, receive_sequence=2),
        None,
    ),
    ("l DM", h("7EA0082102231F10EA7E"), HdlcFrame(DM, CLIENT_16, SERVER_1_17), None),
    # m: I-frame N(S)=1 N(R)=1 with the GB glo-get-request of brief §5.3. Brief §10.1 m [DERIVED].
    (
        "m",
        h(
            "7EA02D02232132FB96E6E600C81E3001234567411312FF935A47566827C467BC7D825C3BE4A77C3F"
            "CC056B6BC5237E"
        ),
        HdlcFrame(
            I,
            SERVER_1_17,
            CLIENT_16,
            send_sequence=1,
            receive_sequence=1,
            llc=CMD,
            information=h("C81E3001234567411312FF935A47566827C467BC7D825C3BE4A77C3FCC056B6B"),
        ),
        None,
    ),
]
IDS = [v[0] for v in VECTORS]


@pytest.mark.parametrize(("name", "wire", "frame", "params"), VECTORS, ids=IDS)
def test_vector_decodes(
    name: str, wire: bytes, frame: HdlcFrame, params: HdlcParameters | None
) -> None:
    assert decode_frame(wire) == frame
    # JD lists frames without flags: both forms decode alike.
    assert decode_frame(wire[1:-1]) == frame


@pytest.mark.parametrize(("name", "wire", "frame", "params"), VECTORS, ids=IDS)
def test_vector_encodes(
    name: str, wire: bytes, frame: HdlcFrame, params: HdlcParameters | None
) -> None:
    assert encode_frame(frame) == wire
    assert frame.encode() == wire


@pytest.mark.parametrize(("name", "wire", "frame", "params"), VECTORS, ids=IDS)
def test_vector_parameters(
    name: str, wire: bytes, frame: HdlcFrame, params: HdlcParameters | None
) -> None:
    if params is None:
        return
    decoded = decode_parameters(frame.information)
    assert decoded == params
    assert decoded.values() == params.values()
    assert encode_parameters(decoded) == frame.information


def test_vector_control_bytes() -> None:
    # brief §2.3: I 10/32/54, RR 51 (N(R)=2), SNRM 93, DISC 53, UA 73, DM 1F.
    assert HdlcFrame(I, SERVER_1, CLIENT_16).control == 0x10
    assert HdlcFrame(I, SERVER_1, CLIENT_16, send_sequence=1, receive_sequence=1).control == 0x32
    assert HdlcFrame(I, SERVER_1, CLIENT_16, send_sequence=2, receive_sequence=2).control == 0x54
    assert HdlcFrame(RR, SERVER_1, CLIENT_16, receive_sequence=2).control == 0x51
    assert HdlcFrame(FrameType.RNR, SERVER_1, CLIENT_16).control == 0x15
    assert HdlcFrame(FrameType.FRMR, SERVER_1, CLIENT_16).control == 0x97
    assert HdlcFrame(FrameType.UI, SERVER_1, CLIENT_16).control == 0x13
    assert HdlcFrame(FrameType.UI, SERVER_1, CLIENT_16, poll_final=False).control == 0x03
    assert [HdlcFrame(t, SERVER_1, CLIENT_16).control for t in (SNRM, DISC, UA, DM)] == [
        0x93,
        0x53,
        0x73,
        0x1F,
    ]


# --- CRC -----------------------------------------------------------------------------------------


def _fcs16_bitwise(data: bytes) -> int:
    # The bit-at-a-time reference of brief §2.4, an independent check of the table.
    c = 0xFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ 0x8408 if c & 1 else c >> 1
    return c ^ 0xFFFF


def test_crc_check_value() -> None:
    # brief §2.4: CRC("123456789") = 0x906E, sent as 6E 90 [CALC].
    assert fcs16(b"123456789") == 0x906E
    assert fcs16(b"123456789").to_bytes(2, "little") == h("6E90")


def test_crc_dc_vector() -> None:
    # brief §2.4: CRC(03 3F) is sent as 5B EC (DC TestCrc).
    assert fcs16(h("033F")).to_bytes(2, "little") == h("5BEC")


@given(st.binary(max_size=300))
def test_crc_receiver_residue(data: bytes) -> None:
    # brief §2.4: CRC over data ‖ FCS leaves 0xF0B8 before the final XOR (JD GOOD_FCS).
    assert fcs16(data + fcs16(data).to_bytes(2, "little")) ^ 0xFFFF == 0xF0B8


@given(st.binary(max_size=300))
def test_crc_table_matches_bitwise_reference(data: bytes) -> None:
    assert fcs16(data) == _fcs16_bitwise(data)


# --- addresses -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "wire"),
    [
        # brief §2.2 [X2]: public client 16 -> 21, management client 1 -> 03,
        # logical device 1 -> 03, (1,17) -> 02 23 on 2 bytes and 00 02 00 23 on 4 (DC, JD).
        (HdlcAddress.client(16), "21"),
        (HdlcAddress.client(1), "03"),
        (HdlcAddress.server(1), "03"),
        (HdlcAddress.server(1, 17), "0223"),
        (HdlcAddress(1, 17, 4), "00020023"),
        (HdlcAddress(0x3FFF, 0x3FFE, 4), "FEFEFEFD"),
    ],
)
def test_address_vectors(address: HdlcAddress, wire: str) -> None:
    assert address.encode() == h(wire)
    frame = HdlcFrame(SNRM, address, CLIENT_16)
    assert decode_frame(frame.encode()).destination == address


def test_server_address_picks_the_smallest_size() -> None:
    assert HdlcAddress.server(1).size == 1
    assert HdlcAddress.server(1, 17).size == 2
    assert HdlcAddress.server(1, 0x80) == HdlcAddress(1, 0x80, 4)
    assert HdlcAddress.server(0x100, 17).size == 4


@pytest.mark.parametrize(
    "args",
    [(0x80, None, 1), (1, 5, 1), (1, None, 2), (1, 0x80, 2), (0x4000, 1, 4), (1, 1, 3), (-1,)],
)
def test_address_validation(args: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        HdlcAddress(*args)


def test_three_byte_address_is_rejected() -> None:
    body = h("A009 02 02 23 21 93")
    wire = b"\x7e" + body + fcs16(body).to_bytes(2, "little") + b"\x7e"
    with pytest.raises(DecodeError) as info:
        decode_frame(wire)
    assert info.value.offset == 3


# --- format field and segmentation ---------------------------------------------------------------


def test_segmentation_bit() -> None:
    frame = HdlcFrame(I, SERVER_1_17, CLIENT_16, segmented=True, llc=CMD, information=b"\xc0")
    wire = frame.encode()
    assert wire[1] == 0xA8  # brief §2.1: A8 = type 3 with S set
    assert decode_frame(wire) == frame


def test_continuation_segment_keeps_e6_bytes_without_llc_split() -> None:
    frame = HdlcFrame(I, SERVER_1_17, CLIENT_16, information=h("E6E600C0"))
    assert decode_frame(frame.encode(), split_llc=False) == frame
    assert decode_frame(frame.encode()).llc is CMD


def test_payload_offset() -> None:
    wire = VECTORS[3][1]  # d
    frame = decode_frame(wire)
    assert wire[frame.payload_offset :][: len(frame.information)] == frame.information


# --- damaged and malformed frames ----------------------------------------------------------------


def _refcs(wire: bytes) -> bytes:
    body = wire[1:-3]
    return b"\x7e" + body + fcs16(body).to_bytes(2, "little") + b"\x7e"


def test_fcs_corruption_in_information_names_fcs() -> None:
    wire = bytearray(VECTORS[3][1])
    wire[20] ^= 0x01
    with pytest.raises(DecodeError) as info:
        decode_frame(bytes(wire))
    assert "FCS" in info.value.message
    assert info.value.offset == len(wire) - 3


def test_fcs_corruption_in_fcs_bytes() -> None:
    wire = bytearray(VECTORS[0][1])  # SNRM, no information field
    wire[-2] ^= 0xFF
    with pytest.raises(DecodeError, match="FCS"):
        decode_frame(bytes(wire))


def test_hcs_corruption_names_hcs() -> None:
    wire = bytearray(VECTORS[3][1])
    wire[7] ^= 0x40  # first HCS byte (7E A0 2C 02 23 21 10 | AF 9F)
    with pytest.raises(DecodeError) as info:
        decode_frame(_refcs(bytes(wire)))  # FCS made valid again: only the HCS is wrong
    assert "HCS" in info.value.message
    assert info.value.offset == 7


def test_damaged_header_names_hcs() -> None:
    wire = bytearray(VECTORS[3][1])
    wire[6] ^= 0x20  # control byte: both checks fail, the header is to blame
    with pytest.raises(DecodeError) as info:
        decode_frame(bytes(wire))
    assert "HCS" in info.value.message


@pytest.mark.parametrize(
    ("wire", "what"),
    [
        (b"", "empty"),
        (h("7E"), "single flag"),
        (h("7EA00703 21930F01"), "no closing flag"),
        (h("7EB00703 21930F017E"), "format type 0xB"),
        (h("7EA00803 21930F017E"), "length too long"),
        (h("7EA00203 7E"), "length too short"),
    ],
)
def test_malformed_frames(wire: bytes, what: str) -> None:
    with pytest.raises(DecodeError):
        decode_frame(wire)


def test_information_on_rr_is_rejected_on_decode() -> None:
    body = h("A00A 03 21 31")
    body += fcs16(body).to_bytes(2, "little") + b"\x01"
    wire = b"\x7e" + body + fcs16(body).to_bytes(2, "little") + b"\x7e"
    with pytest.raises(DecodeError, match="information"):
        decode_frame(wire)


def test_reject_frames_are_not_supported() -> None:
    body = h("A007 03 21 19")  # REJ
    wire = b"\x7e" + body + fcs16(body).to_bytes(2, "little") + b"\x7e"
    with pytest.raises(DecodeError, match="REJ"):
        decode_frame(wire)


@pytest.mark.parametrize(
    "frame",
    [
        HdlcFrame(I, SERVER_1, CLIENT_16, send_sequence=8),
        HdlcFrame(RR, SERVER_1, CLIENT_16, send_sequence=1),
        HdlcFrame(SNRM, SERVER_1, CLIENT_16, receive_sequence=1),
        HdlcFrame(RR, SERVER_1, CLIENT_16, information=b"\x00"),
        HdlcFrame(SNRM, SERVER_1, CLIENT_16, llc=CMD),
        HdlcFrame(I, SERVER_1, CLIENT_16, information=bytes(2040)),
    ],
)
def test_encode_errors(frame: HdlcFrame) -> None:
    with pytest.raises(EncodeError):
        encode_frame(frame)


# --- properties ----------------------------------------------------------------------------------

addresses = st.one_of(
    st.integers(0, 0x7F).map(HdlcAddress),
    st.tuples(st.integers(0, 0x7F), st.integers(0, 0x7F)).map(lambda t: HdlcAddress(*t, 2)),
    st.tuples(st.integers(0, 0x3FFF), st.integers(0, 0x3FFF)).map(lambda t: HdlcAddress(*t, 4)),
)
seq = st.integers(0, 7)


@st.composite
def hdlc_frames(draw: st.DrawFn) -> HdlcFrame:
    frame_type = draw(st.sampled_from(list(FrameType)))
    ns = draw(seq) if frame_type is I else 0
    nr = draw(seq) if frame_type in (I, RR, FrameType.RNR) else 0
    llc = None
    info = b""
    if frame_type in (I, FrameType.UI):
        llc = draw(st.sampled_from([None, CMD, RSP]))
        info = draw(st.binary(max_size=200))
        if llc is None and info[:3] in (CMD.value, RSP.value):
            info = b"\x00" + info
    elif frame_type in (SNRM, UA, FrameType.FRMR):
        info = draw(st.binary(max_size=40))
    return HdlcFrame(
        frame_type,
        draw(addresses),
        draw(addresses),
        draw(st.booleans()),
        ns,
        nr,
        draw(st.booleans()),
        llc,
        info,
    )


@given(hdlc_frames())
def test_round_trip(frame: HdlcFrame) -> None:
    assert decode_frame(encode_frame(frame)) == frame


@given(st.binary(max_size=60))
def test_arbitrary_bytes_only_decode_error(data: bytes) -> None:
    for candidate in (data, b"\x7e" + data + b"\x7e"):
        try:
            decode_frame(candidate)
        except DecodeError:
            pass


@given(st.binary(max_size=60))
def test_arbitrary_bytes_with_plausible_header(data: bytes) -> None:
    body = (0xA000 | (len(data) + 2)).to_bytes(2, "big") + data
    try:
        decode_frame(b"\x7e" + body + b"\x7e")
    except DecodeError:
        pass
    # With a valid FCS the header parsing itself is exercised.
    body = (0xA000 | (len(data) + 4)).to_bytes(2, "big") + data
    try:
        decode_frame(b"\x7e" + body + fcs16(body).to_bytes(2, "little") + b"\x7e")
    except DecodeError:
        pass


@given(hdlc_frames(), st.data())
def test_any_single_byte_change_is_detected(frame: HdlcFrame, data: st.DataObject) -> None:
    wire = bytearray(encode_frame(frame))
    i = data.draw(st.integers(0, len(wire) - 1))
    wire[i] ^= data.draw(st.integers(1, 255))
    with pytest.raises(DecodeError):
        decode_frame(bytes(wire))


@given(hdlc_frames(), st.data())
def test_truncation_is_detected(frame: HdlcFrame, data: st.DataObject) -> None:
    wire = encode_frame(frame)
    n = data.draw(st.integers(0, len(wire) - 1))
    with pytest.raises(DecodeError):
        decode_frame(wire[:n])


# --- parameters ----------------------------------------------------------------------------------

optional_values = st.one_of(st.none(), st.integers(0, 0xFFFFFFFF))


@given(
    st.builds(HdlcParameters, optional_values, optional_values, optional_values, optional_values)
)
def test_parameters_round_trip(params: HdlcParameters) -> None:
    decoded = decode_parameters(encode_parameters(params))
    assert decoded == params
    assert encode_parameters(decoded) == encode_parameters(params)


def test_parameters_defaults() -> None:
    assert encode_parameters(HdlcParameters()) == b""
    assert decode_parameters(b"") == HdlcParameters()
    # brief §2.6: defaults are max info 128 bytes, window 1 (GXP GXHdlcSettings).
    assert decode_parameters(b"").with_defaults() == HdlcParameters(128, 128, 1, 1)


def test_parameters_default_widths_follow_gurux() -> None:
    # brief §10.1 c: lengths on 1 byte, windows on 4 (DC TestUAFrame).
    assert encode_parameters(HdlcParameters(154, 154, 1, 1)) == h(
        "81801205019A06019A070400000001080400000001"
    )


@pytest.mark.parametrize(
    "info",
    [
        "81",
        "82801205019A",
        "81811205019A",
        "8180030501",
        "81800305019A9A",
        "8180030901 9A",
        "81800505019A05019A",
        "8180030500",
        "81800505059A9A9A9A9A",
    ],
)
def test_parameters_malformed(info: str) -> None:
    with pytest.raises(DecodeError):
        decode_parameters(h(info))


@given(st.binary(max_size=30))
def test_parameters_arbitrary_bytes_only_decode_error(data: bytes) -> None:
    for candidate in (data, h("8180") + bytes((len(data),)) + data):
        try:
            decode_parameters(candidate)
        except DecodeError:
            pass


# --- stream splitter -----------------------------------------------------------------------------


def test_splitter_separate_and_shared_flags_and_noise() -> None:
    a, b, c = VECTORS[0][1], VECTORS[3][1], VECTORS[4][1]
    stream = b"\x00\xff" + a + b"\x7e\x7e" + b + c[1:] + b"junk"
    splitter = HdlcFrameSplitter()
    splitter.receive_data(stream)
    frames = []
    while (frame := splitter.next_frame()) is not None:
        frames.append(frame)
    assert frames == [decode_frame(a), decode_frame(b), decode_frame(c)]
    assert splitter.discarded == 2 + 4


@given(st.lists(hdlc_frames(), max_size=5), st.data())
def test_splitter_arbitrary_chunks(frame_list: list[HdlcFrame], data: st.DataObject) -> None:
    stream = b"".join(f.encode() for f in frame_list)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    splitter = HdlcFrameSplitter()
    out: list[HdlcFrame] = []
    previous = 0
    for cut in [*cuts, len(stream)]:
        splitter.receive_data(stream[previous:cut])
        previous = cut
        while (frame := splitter.next_frame()) is not None:
            out.append(frame)
    assert out == frame_list


def test_splitter_reports_damaged_frame_and_continues() -> None:
    good, other = VECTORS[0][1], VECTORS[1][1]
    damaged = bytearray(VECTORS[3][1])
    damaged[20] ^= 0x01
    splitter = HdlcFrameSplitter()
    splitter.receive_data(good + bytes(damaged) + other)
    assert splitter.next_frame() == decode_frame(good)
    with pytest.raises(DecodeError) as info:
        splitter.next_frame()
    assert info.value.offset == len(good) + len(damaged) - 3
    assert splitter.next_frame() == decode_frame(other)
    assert splitter.next_frame() is None


@given(st.lists(st.binary(max_size=40), max_size=6))
def test_splitter_arbitrary_bytes_only_decode_error(chunks: list[bytes]) -> None:
    splitter = HdlcFrameSplitter()
    for chunk in chunks:
        splitter.receive_data(chunk)
        for _ in range(len(chunk) + 2):
            try:
                if splitter.next_frame() is None:
                    break
            except DecodeError:
                pass
