"""Classic pcap files: read and write, and reassemble the DLMS conversations inside.

Theory of operation. A pcap file is a 24-byte global header (magic ``A1B2C3D4`` for
microsecond or ``A1B23C4D`` for nanosecond timestamps, in either byte order; link type) and
records of ``ts_sec, ts_frac, captured_length, original_length`` followed by the bytes
(libpcap file format, draft-ietf-opsawg-pcap). :func:`read_pcap` yields :class:`Packet`\\ s for
the link types Ethernet (1), raw IP (101, 12, 14), BSD loopback (0) and Linux cooked (113), with
IPv4/IPv6 and TCP/UDP decoded. :func:`tcp_streams` reassembles each TCP direction in sequence
order (dropping retransmitted bytes) so that wrapper frames split across segments, or several
in one segment, come out whole. :class:`PcapWriter` writes Ethernet/IPv4 (or IPv6) records
with zero checksums (the capture tap, ``captures/generate.py`` and the tests use it).

Only this module and ``transport/`` touch files and sockets below the CLI; everything here is
deterministic over its input bytes and raises only :class:`~cosemcast.errors.DecodeError` on a
malformed file.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from cosemcast.errors import DecodeError

__all__ = [
    "LINKTYPE_ETHERNET",
    "Packet",
    "PcapWriter",
    "TcpSegment",
    "read_pcap",
    "tcp_streams",
]

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
_RAW_ALIASES = {12, 14, LINKTYPE_RAW}

_MAGIC_US = 0xA1B2C3D4
_MAGIC_NS = 0xA1B23C4D


@dataclass(frozen=True, slots=True)
class Packet:
    """One captured IP packet carrying TCP or UDP."""

    index: int
    timestamp: float
    src: str
    dst: str
    protocol: str  # "tcp" or "udp"
    sport: int
    dport: int
    payload: bytes
    seq: int = 0
    flags: int = 0


@dataclass(slots=True)
class TcpSegment:
    """Reassembled bytes of one TCP direction, with the time of the first segment."""

    src: str
    dst: str
    sport: int
    dport: int
    data: bytearray = field(default_factory=bytearray)
    # (offset in data, timestamp, packet index) for each segment that added bytes
    marks: list[tuple[int, float, int]] = field(default_factory=list)


def _ip4(raw: bytes) -> str:
    return ".".join(str(b) for b in raw)


def _ip6(raw: bytes) -> str:
    return ":".join(f"{int.from_bytes(raw[i : i + 2], 'big'):x}" for i in range(0, 16, 2))


def _parse_ip(data: bytes, index: int, ts: float) -> Packet | None:
    if not data:
        return None
    version = data[0] >> 4
    if version == 4:
        if len(data) < 20:
            raise DecodeError(f"packet {index}: truncated IPv4 header")
        ihl = (data[0] & 0x0F) * 4
        total = int.from_bytes(data[2:4], "big")
        proto = data[9]
        src, dst = _ip4(data[12:16]), _ip4(data[16:20])
        body = data[ihl : total if total else None]
    elif version == 6:
        if len(data) < 40:
            raise DecodeError(f"packet {index}: truncated IPv6 header")
        proto = data[6]
        src, dst = _ip6(data[8:24]), _ip6(data[24:40])
        body = data[40 : 40 + int.from_bytes(data[4:6], "big")]
    else:
        return None
    if proto == 6:
        if len(body) < 20:
            raise DecodeError(f"packet {index}: truncated TCP header")
        sport, dport, seq = struct.unpack_from(">HHI", body)
        offset = (body[12] >> 4) * 4
        return Packet(index, ts, src, dst, "tcp", sport, dport, bytes(body[offset:]), seq, body[13])
    if proto == 17:
        if len(body) < 8:
            raise DecodeError(f"packet {index}: truncated UDP header")
        sport, dport, length = struct.unpack_from(">HHH", body)
        return Packet(index, ts, src, dst, "udp", sport, dport, bytes(body[8:length]))
    return None


def _link_payload(linktype: int, frame: bytes, index: int) -> bytes | None:
    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            raise DecodeError(f"packet {index}: truncated Ethernet header")
        ethertype = int.from_bytes(frame[12:14], "big")
        pos = 14
        if ethertype == 0x8100 and len(frame) >= 18:  # one VLAN tag
            ethertype = int.from_bytes(frame[16:18], "big")
            pos = 18
        return frame[pos:] if ethertype in (0x0800, 0x86DD) else None
    if linktype in _RAW_ALIASES:
        return frame
    if linktype == LINKTYPE_NULL:
        return frame[4:]
    if linktype == LINKTYPE_LINUX_SLL:
        if len(frame) < 16:
            raise DecodeError(f"packet {index}: truncated Linux cooked header")
        return frame[16:]
    raise DecodeError(f"link type {linktype} is not supported (Ethernet, raw IP, loopback, SLL)")


def read_pcap(source: str | Path | BinaryIO) -> Iterator[Packet]:
    """The TCP/UDP packets of a classic pcap file, in file order."""
    data = Path(source).read_bytes() if isinstance(source, (str, Path)) else source.read()
    if len(data) < 24:
        raise DecodeError("not a pcap file: shorter than the 24-byte global header", offset=0)
    magic_le = int.from_bytes(data[:4], "little")
    if magic_le in (_MAGIC_US, _MAGIC_NS):
        endian = "<"
        magic = magic_le
    else:
        magic = int.from_bytes(data[:4], "big")
        if magic not in (_MAGIC_US, _MAGIC_NS):
            raise DecodeError(
                "not a classic pcap file (pcapng is not supported: convert it with "
                "'editcap -F pcap IN OUT')",
                offset=0,
            )
        endian = ">"
    divisor = 1e9 if magic == _MAGIC_NS else 1e6
    linktype = struct.unpack_from(endian + "I", data, 20)[0] & 0x0FFFFFFF
    record = struct.Struct(endian + "IIII")
    pos, index = 24, 0
    while pos < len(data):
        if pos + 16 > len(data):
            raise DecodeError("truncated pcap record header", offset=pos)
        sec, frac, caplen, _origlen = record.unpack_from(data, pos)
        pos += 16
        if pos + caplen > len(data):
            raise DecodeError(f"truncated pcap record {index + 1}", offset=pos)
        frame = data[pos : pos + caplen]
        pos += caplen
        index += 1
        ip = _link_payload(linktype, frame, index)
        if ip is None:
            continue
        packet = _parse_ip(ip, index, sec + frac / divisor)
        if packet is not None:
            yield packet


def tcp_streams(packets: Iterator[Packet] | list[Packet]) -> list[TcpSegment]:
    """Reassemble each TCP direction (in order of first appearance)."""
    streams: dict[tuple[str, str, int, int], TcpSegment] = {}
    next_seq: dict[tuple[str, str, int, int], int] = {}
    for p in packets:
        if p.protocol != "tcp":
            continue
        key = (p.src, p.dst, p.sport, p.dport)
        stream = streams.get(key)
        if stream is None:
            stream = streams[key] = TcpSegment(p.src, p.dst, p.sport, p.dport)
        syn = bool(p.flags & 0x02)
        if syn:
            next_seq[key] = (p.seq + 1) & 0xFFFFFFFF
            continue
        if not p.payload:
            continue
        expected = next_seq.get(key, p.seq)
        skip = (expected - p.seq) & 0xFFFFFFFF
        if skip >= len(p.payload) and skip < 0x80000000:
            continue  # a retransmission of bytes we already have
        if skip >= 0x80000000:
            skip = 0  # a gap (lost capture data): take what we have
        stream.marks.append((len(stream.data), p.timestamp, p.index))
        stream.data += p.payload[skip:]
        next_seq[key] = (p.seq + len(p.payload)) & 0xFFFFFFFF
    return list(streams.values())


class PcapWriter:
    """Write packets to a classic pcap file (Ethernet link type, microsecond timestamps)."""

    def __init__(self, path: str | Path) -> None:
        self._file = Path(path).open("wb")  # noqa: SIM115 - closed in close()
        self._file.write(struct.pack("<IHHiIII", _MAGIC_US, 2, 4, 0, 0, 262144, LINKTYPE_ETHERNET))
        self._seq: dict[tuple[str, str, int, int], int] = {}

    def _frame(self, src: str, dst: str, proto: int, l4: bytes) -> bytes:
        eth = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01"
        if ":" in src or ":" in dst:
            ip = struct.pack(
                ">IHBB16s16s",
                6 << 28,
                len(l4),
                proto,
                64,
                ipaddress.IPv6Address(src).packed,
                ipaddress.IPv6Address(dst).packed,
            )
            return eth + b"\x86\xdd" + ip + l4
        ip = struct.pack(
            ">BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(l4),
            0,
            0x4000,
            64,
            proto,
            0,
            ipaddress.IPv4Address(src).packed,
            ipaddress.IPv4Address(dst).packed,
        )
        return eth + b"\x08\x00" + ip + l4

    def _record(self, timestamp: float, frame: bytes) -> None:
        sec = int(timestamp)
        usec = round((timestamp - sec) * 1e6)
        if usec >= 1_000_000:
            sec, usec = sec + 1, usec - 1_000_000
        self._file.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)

    def write_udp(
        self, timestamp: float, src: str, sport: int, dst: str, dport: int, payload: bytes
    ) -> None:
        l4 = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload
        self._record(timestamp, self._frame(src, dst, 17, l4))

    def write_tcp(
        self, timestamp: float, src: str, sport: int, dst: str, dport: int, payload: bytes
    ) -> None:
        """One TCP segment (PSH|ACK) continuing this direction's sequence numbers."""
        key = (src, dst, sport, dport)
        seq = self._seq.get(key, 1)
        self._seq[key] = (seq + len(payload)) & 0xFFFFFFFF
        ack = self._seq.get((dst, src, dport, sport), 1)
        l4 = struct.pack(">HHIIBBHHH", sport, dport, seq, ack, 5 << 4, 0x18, 65535, 0, 0)
        self._record(timestamp, self._frame(src, dst, 6, l4 + payload))

    def write_tcp_segment(
        self,
        timestamp: float,
        src: str,
        sport: int,
        dst: str,
        dport: int,
        *,
        seq: int,
        ack: int,
        flags: int,
        payload: bytes = b"",
    ) -> None:
        """One TCP segment with explicit sequence and acknowledgement numbers and flags."""
        l4 = struct.pack(
            ">HHIIBBHHH",
            sport,
            dport,
            seq & 0xFFFFFFFF,
            ack & 0xFFFFFFFF,
            5 << 4,
            flags,
            65535,
            0,
            0,
        )
        self._record(timestamp, self._frame(src, dst, 6, l4 + payload))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
