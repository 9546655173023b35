"""Our pcap reader/writer: round trips, TCP reassembly, malformed files (libpcap format)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosemcast.capture.pcap import PcapWriter, read_pcap, tcp_streams
from cosemcast.errors import DecodeError
from cosemcast.link.wrapper import WrapperDecoder, WrapperFrame


def test_udp_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "u.pcap"
    frame = WrapperFrame(1, 16, bytes.fromhex("0F00000001000600000001")).encode()
    with PcapWriter(path) as w:
        w.write_udp(1700000000.25, "127.0.0.1", 40000, "239.1.2.3", 4059, frame)
    (p,) = list(read_pcap(path))
    assert (p.protocol, p.src, p.dst, p.sport, p.dport) == (
        "udp",
        "127.0.0.1",
        "239.1.2.3",
        40000,
        4059,
    )
    assert p.payload == frame
    assert p.timestamp == pytest.approx(1700000000.25)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=6), st.data())
def test_tcp_stream_reassembles_split_frames(
    tmp_path_factory: pytest.TempPathFactory, apdus: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(WrapperFrame(16, 1, a).encode() for a in apdus)
    cuts = sorted(data.draw(st.sets(st.integers(1, len(stream) - 1), max_size=8)))
    pieces = [stream[i:j] for i, j in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    path = tmp_path_factory.mktemp("t") / "t.pcap"
    with PcapWriter(path) as w:
        for n, piece in enumerate(pieces):
            w.write_tcp(n, "127.0.0.1", 50000, "127.0.0.1", 4059, piece)
    (s,) = tcp_streams(list(read_pcap(path)))
    decoder = WrapperDecoder()
    decoder.receive_data(bytes(s.data))
    got = []
    while (f := decoder.next_frame()) is not None:
        got.append(f.apdu)
    assert got == apdus


def test_retransmitted_segment_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "r.pcap"
    with PcapWriter(path) as w:
        w.write_tcp(0, "10.0.0.1", 1, "10.0.0.2", 4059, b"abc")
        w._seq[("10.0.0.1", "10.0.0.2", 1, 4059)] = 1  # send the same bytes again
        w.write_tcp(1, "10.0.0.1", 1, "10.0.0.2", 4059, b"abc")
        w.write_tcp(2, "10.0.0.1", 1, "10.0.0.2", 4059, b"def")
    (s,) = tcp_streams(list(read_pcap(path)))
    assert bytes(s.data) == b"abcdef"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x0a\x0d\x0d\x0a" + bytes(20),  # pcapng
        struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + bytes(10),
        struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
        + struct.pack("<IIII", 0, 0, 100, 100)
        + bytes(5),
    ],
)
def test_malformed_files_raise_decode_error(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "bad.pcap"
    path.write_bytes(raw)
    with pytest.raises(DecodeError):
        list(read_pcap(path))
