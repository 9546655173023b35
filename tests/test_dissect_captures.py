"""Serial captures (link type 147), frame extraction and APDU summaries, without scapy.

The pcap global header and record layout follow the libpcap format (draft-ietf-opsawg-pcap);
link type 147 is LINKTYPE_USER0 (tcpdump.org link-layer header types). The pseudo-header is
our decision (specs/pcap.md §1).
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosemcast.apdu import decode_apdu, registered_tags
from cosemcast.capture.pcap import PcapWriter
from cosemcast.capture.serial_pcap import (
    LINKTYPE_DLMS_SERIAL,
    SerialDirection,
    SerialPcapWriter,
    read_pcap_header,
    read_serial_pcap,
)
from cosemcast.capture.summary import TAG_NAMES, apdu_facts, apdu_kind, apdu_tag_name, invoke_id
from cosemcast.capture.traffic import read_capture
from cosemcast.errors import DecodeError
from cosemcast.link.wrapper import WrapperFrame

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
GET_REQUEST = bytes.fromhex("C001C1000100002B0100FF0200")  # brief §10.3 (DC test_get.py)


def test_serial_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "s.pcap"
    with SerialPcapWriter(path) as w:
        w.write(10.5, SerialDirection.CLIENT_TO_SERVER, b"\x7e\xa0\x07\x03\x21\x93\x0f\x01\x7e")
        w.write(11.25, SerialDirection.SERVER_TO_CLIENT, b"/ABC5\\2x\r\n")
    data = path.read_bytes()
    header = read_pcap_header(data)
    assert header.link_type == LINKTYPE_DLMS_SERIAL == 147
    assert data[24 + 16] == 0x00  # the pseudo-header of the first record
    first, second = read_serial_pcap(path)
    assert (first.index, first.timestamp, first.direction) == (
        1,
        10.5,
        SerialDirection.CLIENT_TO_SERVER,
    )
    assert first.data[0] == 0x7E and second.direction is SerialDirection.SERVER_TO_CLIENT
    assert second.data == b"/ABC5\\2x\r\n"


def _file(records: list[bytes], link: int = 147, magic: int = 0xA1B2C3D4) -> bytes:
    out = struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 65535, link)
    for n, body in enumerate(records):
        out += struct.pack("<IIII", n, 500, len(body), len(body)) + body
    return out


def test_records_without_pseudo_header_and_nanoseconds() -> None:
    (record,) = read_serial_pcap(io.BytesIO(_file([b"\x7e\xa0"], magic=0xA1B23C4D)))
    assert record.direction is None and record.data == b"\x7e\xa0"
    assert record.timestamp == pytest.approx(500e-9)


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (_file([b"\x02\x7e"]), "reserved bits"),
        (_file([b""]), "empty"),
        (_file([b"\x00\x7e"])[:-1], "truncated pcap record"),
        (_file([b"\x00\x7e"])[:-5], "truncated pcap record header"),
        (_file([], link=1), "not a serial DLMS capture"),
        (b"\x0a\x0d\x0d\x0a" + bytes(30), "pcapng"),
        (b"\xd4\xc3", "shorter than"),
    ],
)
def test_malformed_serial_files(data: bytes, what: str) -> None:
    with pytest.raises(DecodeError, match=what):
        list(read_serial_pcap(io.BytesIO(data)))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_arbitrary_serial_files_raise_only_decode_error(body: bytes) -> None:
    for data in (body, _file([body]), _file([body[:10], body[10:]])):
        try:
            list(read_serial_pcap(io.BytesIO(data)))
        except DecodeError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=5), st.booleans())
def test_arbitrary_records_read_as_frames_or_errors(
    tmp_path_factory: pytest.TempPathFactory, records: list[bytes], serial: bool
) -> None:
    path = tmp_path_factory.mktemp("c") / "c.pcap"
    if serial:
        path.write_bytes(_file([b"\x00" + r for r in records]))
    else:
        with PcapWriter(path) as w:
            for n, r in enumerate(records):
                w.write_tcp(n, "10.0.0.1", 5000, "10.0.0.2", 4059, r)
                w.write_udp(n, "10.0.0.2", 4059, "10.0.0.1", 4059, r)
    capture = read_capture(path)
    for frame in capture.frames:
        assert (frame.error is None) or frame.apdu is None


def test_udp_and_tcp_conversations_are_numbered_by_first_frame(tmp_path: Path) -> None:
    path = tmp_path / "c.pcap"
    frame = WrapperFrame(16, 1, GET_REQUEST).encode()
    with PcapWriter(path) as w:
        w.write_udp(2.0, "10.0.0.9", 4059, "239.1.1.1", 4059, frame)
        w.write_tcp(1.0, "10.0.0.1", 5000, "10.0.0.2", 4059, frame)
        w.write_tcp(3.0, "10.0.0.2", 4059, "10.0.0.1", 5000, frame)
        w.write_udp(4.0, "10.0.0.1", 9999, "10.0.0.2", 9999, frame)  # not port 4059
    capture = read_capture(path)
    assert [str(c) for c in capture.conversations] == [
        "TCP 10.0.0.1:5000 <-> 10.0.0.2:4059",
        "UDP 10.0.0.9:4059 <-> 239.1.1.1:4059",
    ]
    assert [f.conversation.index for f in capture.frames] == [1, 2, 1]
    assert len(read_capture(path, ports=(9999,)).frames) == 1


def test_every_registered_tag_has_a_name() -> None:
    for tag in registered_tags():
        assert not apdu_tag_name(tag).startswith("unknown"), hex(tag)
    assert TAG_NAMES[0xDD] == "general-ciphering" and TAG_NAMES[0xC8] == "glo-get-request"
    assert apdu_tag_name(0x99) == "unknown 0x99"


def test_summaries_of_every_sample_apdu() -> None:
    for path in sorted(CAPTURES.glob("*.pcap")):
        for frame in read_capture(path).frames:
            if frame.apdu is None:
                continue
            apdu = decode_apdu(frame.apdu)
            assert apdu_kind(apdu) == apdu_kind(type(apdu))
            assert isinstance(apdu_facts(apdu), str)
    get = decode_apdu(GET_REQUEST)
    assert apdu_kind(get) == "get-request-normal" and invoke_id(get) == 1
    assert apdu_facts(get) == "0-0:43.1.0.255 attribute 2 (class 1)"
