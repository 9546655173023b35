"""Serial HDLC captures: classic pcap files of link type 147 (``LINKTYPE_USER0``).

Theory of operation. A serial line (optical probe, RS-485) carries no IP, so its captures need
a link type of their own. tcpdump.org registers none for IEC 62056-46 HDLC, and the PPP/LAPB
link types assume other framing, so cosemcast uses the first private link type,
``LINKTYPE_USER0`` (147), which Wireshark hands to any dissector through its "User DLTs"
table (``specs/pcap.md`` gives the tshark options). Each record is::

    pseudo-header (1 byte) | the bytes seen on the line

* The pseudo-header's bit 0 is the direction: 0 = sent by the client (head-end, probe) to the
  server (meter), 1 = sent by the server. Bits 1-7 are reserved and written as zero; a reader
  rejects a record whose reserved bits are set.
* The writer puts exactly one HDLC frame, both ``7E`` flags included, in a record; bytes that
  are not HDLC (the IEC 62056-21 mode E sign-on before the hand-over to HDLC) go in records of
  their own, and never begin with ``7E``.
* A record that begins with ``7E`` has no pseudo-header: the raw-frame convention some
  Wireshark DLMS plugins use for ``USER0``. The reader accepts it with an unknown direction.

Timestamps are microseconds (magic ``A1B2C3D4``) when written; both magics and both byte
orders are read. Everything here is deterministic over the file's bytes and raises only
:class:`~cosemcast.errors.DecodeError` on a malformed file.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from cosemcast.errors import DecodeError

__all__ = [
    "LINKTYPE_DLMS_SERIAL",
    "LINKTYPE_USER0",
    "PcapHeader",
    "SerialDirection",
    "SerialPcapWriter",
    "SerialRecord",
    "read_pcap_header",
    "read_serial_pcap",
]

LINKTYPE_USER0: Final = 147
# The link type of cosemcast's serial captures (module docstring; specs/pcap.md).
LINKTYPE_DLMS_SERIAL: Final = LINKTYPE_USER0

_MAGIC_US: Final = 0xA1B2C3D4
_MAGIC_NS: Final = 0xA1B23C4D
_FLAG: Final = 0x7E
_DIRECTION_BIT: Final = 0x01
_GLOBAL_HEADER_LENGTH: Final = 24
_RECORD_HEADER_LENGTH: Final = 16


class SerialDirection(enum.IntEnum):
    """Who sent the bytes of a serial record (bit 0 of the pseudo-header)."""

    CLIENT_TO_SERVER = 0
    SERVER_TO_CLIENT = 1


@dataclass(frozen=True, slots=True)
class PcapHeader:
    """What the 24-byte global header of a classic pcap file says."""

    link_type: int
    endian: str  # "<" or ">"
    nanoseconds: bool
    snap_length: int


@dataclass(frozen=True, slots=True)
class SerialRecord:
    """One record of a serial capture. ``direction`` is ``None`` for a raw-frame record."""

    index: int
    timestamp: float
    direction: SerialDirection | None
    data: bytes


def _read_bytes(source: str | Path | BinaryIO) -> bytes:
    if isinstance(source, (str, Path)):
        return Path(source).read_bytes()
    return source.read()


def read_pcap_header(data: bytes) -> PcapHeader:
    """Parse the global header of a classic pcap file (libpcap format)."""
    if len(data) < _GLOBAL_HEADER_LENGTH:
        raise DecodeError("not a pcap file: shorter than the 24-byte global header", offset=0)
    for endian in ("<", ">"):
        magic = struct.unpack_from(endian + "I", data)[0]
        if magic in (_MAGIC_US, _MAGIC_NS):
            snap, link = struct.unpack_from(endian + "II", data, 16)
            # The top bits of the link-type word carry the FCS length flags (pcap draft §4).
            return PcapHeader(link & 0x0FFFFFFF, endian, magic == _MAGIC_NS, snap)
    raise DecodeError(
        "not a classic pcap file (pcapng is not supported: convert it with "
        "'editcap -F pcap IN OUT')",
        offset=0,
        expected="magic A1B2C3D4 or A1B23C4D",
    )


def read_serial_pcap(source: str | Path | BinaryIO) -> Iterator[SerialRecord]:
    """The records of a serial capture (link type 147), in file order."""
    data = _read_bytes(source)
    header = read_pcap_header(data)
    if header.link_type != LINKTYPE_DLMS_SERIAL:
        raise DecodeError(
            f"link type {header.link_type} is not a serial DLMS capture",
            offset=20,
            expected=f"link type {LINKTYPE_DLMS_SERIAL} (USER0)",
        )
    record = struct.Struct(header.endian + "IIII")
    divisor = 1e9 if header.nanoseconds else 1e6
    pos, index = _GLOBAL_HEADER_LENGTH, 0
    while pos < len(data):
        if pos + _RECORD_HEADER_LENGTH > len(data):
            raise DecodeError("truncated pcap record header", offset=pos)
        sec, frac, caplen, _original = record.unpack_from(data, pos)
        pos += _RECORD_HEADER_LENGTH
        if pos + caplen > len(data):
            raise DecodeError(f"truncated pcap record {index + 1}", offset=pos)
        body = data[pos : pos + caplen]
        index += 1
        yield _serial_record(index, sec + frac / divisor, body, pos)
        pos += caplen


def _serial_record(index: int, timestamp: float, body: bytes, offset: int) -> SerialRecord:
    if not body:
        raise DecodeError(f"record {index} is empty", offset=offset, expected="a pseudo-header")
    if body[0] == _FLAG:
        return SerialRecord(index, timestamp, None, body)
    if body[0] & ~_DIRECTION_BIT:
        raise DecodeError(
            f"record {index}: pseudo-header 0x{body[0]:02X} has reserved bits set",
            offset=offset,
            expected="00 (client to server) or 01 (server to client)",
        )
    return SerialRecord(index, timestamp, SerialDirection(body[0] & _DIRECTION_BIT), body[1:])


class SerialPcapWriter:
    """Write a serial capture: one record per HDLC frame or per non-HDLC chunk."""

    def __init__(self, path: str | Path) -> None:
        self._file = Path(path).open("wb")  # noqa: SIM115 - closed in close()
        self._file.write(
            struct.pack("<IHHiIII", _MAGIC_US, 2, 4, 0, 0, 65535, LINKTYPE_DLMS_SERIAL)
        )

    def write(self, timestamp: float, direction: SerialDirection, data: bytes) -> None:
        """One record: the pseudo-header for ``direction``, then ``data`` as seen on the line."""
        if not data:
            raise ValueError("a serial record carries at least one byte")
        sec = int(timestamp)
        usec = round((timestamp - sec) * 1e6)
        if usec >= 1_000_000:
            sec, usec = sec + 1, usec - 1_000_000
        body = bytes((int(direction),)) + bytes(data)
        self._file.write(struct.pack("<IIII", sec, usec, len(body), len(body)) + body)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SerialPcapWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
