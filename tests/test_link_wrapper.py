"""IEC 62056-47 wrapper: the published UDP vector, TCP stream reassembly, malformed headers.

brief = ../shared/reference/DLMS_BRIEF.md.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosemcast.errors import DecodeError, EncodeError, LocalProtocolError
from cosemcast.link.wrapper import WrapperDecoder, WrapperFrame

# brief §10.6 / §10.5: DC tests/test_udp_message.py (header) and
# tests/test_general_global_cipher.py (the 70-byte general-glo-ciphering push).
PUSH_APDU = bytes.fromhex(
    "DB082F192291991641033B30000001E5025CE9D2271FD78BE8C204211A916A9D7F587E0A7A814CADEA89E959"
    "3F01F92EA8C087B5BDFDEFEAB6BECF282DFE49C08F5BE6DC8400"
)
UDP_DATAGRAM = bytes.fromhex("0001000100010046") + PUSH_APDU

frames = st.builds(
    WrapperFrame,
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.binary(min_size=1, max_size=300),
)


def test_published_udp_vector_decodes() -> None:
    assert len(PUSH_APDU) == 70
    frame = WrapperFrame.decode(UDP_DATAGRAM)
    assert frame == WrapperFrame(source_wport=1, destination_wport=1, apdu=PUSH_APDU)


def test_published_udp_vector_encodes() -> None:
    assert WrapperFrame(1, 1, PUSH_APDU).encode() == UDP_DATAGRAM


def test_public_client_to_management_device_header() -> None:
    # brief §1: wPorts are SAPs, public client 16 = 0x0010, logical device 1.
    assert WrapperFrame(0x10, 0x01, b"\xc0").encode() == bytes.fromhex("0001 0010 0001 0001 C0")


@pytest.mark.parametrize(
    ("datagram", "offset", "what"),
    [
        (bytes.fromhex("0002000100010001C0"), 0, "version 2"),
        (bytes.fromhex("0000000100010001C0"), 0, "version 0"),
        (bytes.fromhex("0001000100010000"), 6, "zero length"),
        (bytes.fromhex("0001000100010002C0"), 6, "length longer than the data"),
        (bytes.fromhex("0001000100010001C0C0"), 6, "length shorter than the data"),
        (bytes.fromhex("00010001"), 4, "truncated header"),
    ],
)
def test_malformed_datagram(datagram: bytes, offset: int, what: str) -> None:
    with pytest.raises(DecodeError) as info:
        WrapperFrame.decode(datagram)
    assert info.value.offset == offset, what


@pytest.mark.parametrize(
    "frame",
    [WrapperFrame(-1, 1, b"\xc0"), WrapperFrame(1, 0x10000, b"\xc0"), WrapperFrame(1, 1, b"")],
)
def test_encode_rejects_out_of_range(frame: WrapperFrame) -> None:
    with pytest.raises(EncodeError):
        frame.encode()


def test_encode_rejects_oversized_apdu() -> None:
    with pytest.raises(EncodeError):
        WrapperFrame(1, 1, bytes(0x10000)).encode()


@given(frames)
def test_round_trip(frame: WrapperFrame) -> None:
    assert WrapperFrame.decode(frame.encode()) == frame


@given(st.binary(max_size=80))
def test_arbitrary_datagram_only_decode_error(data: bytes) -> None:
    try:
        WrapperFrame.decode(data)
    except DecodeError:
        pass


@given(st.lists(frames, max_size=6), st.data())
def test_stream_reassembly_in_arbitrary_chunks(
    frame_list: list[WrapperFrame], data: st.DataObject
) -> None:
    stream = b"".join(f.encode() for f in frame_list)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    decoder = WrapperDecoder()
    received: list[WrapperFrame] = []
    previous = 0
    for cut in [*cuts, len(stream)]:
        if cut > previous:  # an empty chunk would mean end of stream
            decoder.receive_data(stream[previous:cut])
        previous = cut
        while (frame := decoder.next_frame()) is not None:
            received.append(frame)
    assert received == frame_list
    assert decoder.buffered == 0
    decoder.receive_data(b"")
    assert decoder.next_frame() is None


def test_stream_byte_by_byte_published_vector() -> None:
    decoder = WrapperDecoder()
    out = []
    for byte in UDP_DATAGRAM * 2:
        decoder.receive_data(bytes((byte,)))
        frame = decoder.next_frame()
        if frame is not None:
            out.append(frame)
    assert [f.apdu for f in out] == [PUSH_APDU, PUSH_APDU]


def test_stream_bad_version_fails_early_with_stream_offset() -> None:
    decoder = WrapperDecoder()
    decoder.receive_data(UDP_DATAGRAM + b"\x00\x02")
    assert decoder.next_frame() is not None
    with pytest.raises(DecodeError) as info:
        decoder.next_frame()
    assert info.value.offset == len(UDP_DATAGRAM)
    assert "version" in str(info.value)
    # The stream has lost its framing: the decoder refuses further use.
    with pytest.raises(LocalProtocolError):
        decoder.next_frame()
    with pytest.raises(LocalProtocolError):
        decoder.receive_data(b"\x00")


def test_stream_absurd_length_rejected_before_buffering() -> None:
    decoder = WrapperDecoder(max_apdu_length=1024)
    decoder.receive_data(bytes.fromhex("0001001000010401"))  # 1025 > 1024
    with pytest.raises(DecodeError) as info:
        decoder.next_frame()
    assert info.value.offset == 6


def test_stream_zero_length_rejected() -> None:
    decoder = WrapperDecoder()
    decoder.receive_data(bytes.fromhex("0001001000010000"))
    with pytest.raises(DecodeError):
        decoder.next_frame()


def test_stream_end_inside_frame() -> None:
    decoder = WrapperDecoder()
    decoder.receive_data(UDP_DATAGRAM[:20])
    assert decoder.next_frame() is None
    decoder.receive_data(b"")
    with pytest.raises(DecodeError) as info:
        decoder.next_frame()
    assert info.value.offset == 20
    with pytest.raises(LocalProtocolError):
        decoder.receive_data(b"more")


def test_max_apdu_length_is_validated() -> None:
    with pytest.raises(ValueError):
        WrapperDecoder(max_apdu_length=0)


@given(st.lists(st.binary(min_size=1, max_size=40), max_size=8))
def test_stream_arbitrary_bytes_only_decode_error(chunks: list[bytes]) -> None:
    decoder = WrapperDecoder()
    try:
        for chunk in chunks:
            decoder.receive_data(chunk)
            while decoder.next_frame() is not None:
                pass
    except DecodeError:
        pass


@given(st.binary(min_size=8, max_size=8))
def test_header_struct_path_matches_construct_schema(raw: bytes) -> None:
    # The hot-path struct read and the normative construct schema agree on every header.
    from cosemcast.link._schemas import WRAPPER_HEADER
    from cosemcast.link.wrapper import _HEADER_STRUCT

    parsed = WRAPPER_HEADER.parse(raw)
    assert _HEADER_STRUCT.unpack(raw) == (
        parsed.version,
        parsed.source_wport,
        parsed.destination_wport,
        parsed.length,
    )
