"""HDLC frames of IEC 62056-46 (frame format type 3): the codec, not the state machine.

A frame on the wire (brief §2.1)::

    7E | format (2) | destination (1, 2, 4) | source (1, 2, 4) | control | [HCS | info] | FCS | 7E

* The format field is ``1010 S LLLLLLLLLLL``: type 3, the segmentation bit S (more segments
  follow) and the number of bytes between the flags. The length delimits the frame, so no
  octet stuffing is applied.
* Addresses carry 7 bits per byte; bit 0 set marks the last byte (brief §2.2). A client is one
  byte (its SAP); a server is its logical (upper) and physical (lower) address on 1, 2 or 4
  bytes. :class:`HdlcAddress` handles all of them.
* The control byte gives the frame type, the P/F bit and the sequence numbers N(S), N(R)
  modulo 8 (brief §2.3); :class:`FrameType` values are the control bytes with P/F, N(S),
  N(R) at zero.
* HCS and FCS are CRC-16/X-25, sent low byte first (brief §2.4). The HCS covers format to
  control and exists only when an information field follows; the FCS covers everything
  between the flags before it. :func:`decode_frame` checks both and names the one that fails.
* The information field of I and UI frames starts with the LLC header ``E6 E6 00``
  (client to server) or ``E6 E7 00`` (server to client) (brief §2.5); it is split off into
  :attr:`HdlcFrame.llc`. SNRM and UA may carry the negotiation parameters of brief §2.6,
  encoded by :func:`encode_parameters` / :func:`decode_parameters`.

:class:`HdlcFrameSplitter` finds the frames in a serial byte stream (sans-IO): it skips noise
outside frames, accepts a flag shared between two frames and reports a damaged frame as a
:class:`~cosemcast.errors.DecodeError`, after which it carries on with the next frame.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from cosemcast.errors import DecodeError, EncodeError
from cosemcast.link.hdlc_parameters import (
    DEFAULT_MAX_INFO_LENGTH,
    DEFAULT_WINDOW_SIZE,
    HdlcParameters,
    decode_parameters,
    encode_parameters,
)

__all__ = [
    "DEFAULT_MAX_INFO_LENGTH",
    "DEFAULT_WINDOW_SIZE",
    "FLAG",
    "MAX_FRAME_LENGTH",
    "FrameType",
    "HdlcAddress",
    "HdlcFrame",
    "HdlcFrameSplitter",
    "HdlcParameters",
    "LlcHeader",
    "decode_frame",
    "decode_parameters",
    "encode_frame",
    "encode_parameters",
    "fcs16",
]

FLAG: Final = 0x7E
# 11-bit length field of the format field (brief §2.1).
MAX_FRAME_LENGTH: Final = 0x7FF
_FORMAT_TYPE_3: Final = 0xA000
_SEGMENTED: Final = 0x0800
_POLL_FINAL: Final = 0x10
# format (2) + destination (1) + source (1) + control (1) + FCS (2).
_MIN_FRAME_LENGTH: Final = 7


# --- FCS-16 --------------------------------------------------------------------------------------


def _fcs_table() -> tuple[int, ...]:
    # CRC-16/X-25, polynomial 0x1021 processed reflected as 0x8408 (RFC 1662, brief §2.4).
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_FCS_TABLE: Final = _fcs_table()


def fcs16(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/X-25 of ``data`` (init FFFF, reflected, final XOR FFFF; "123456789" gives 906E).

    HDLC sends the value low byte first: ``fcs16(x).to_bytes(2, "little")``.
    """
    crc = 0xFFFF
    table = _FCS_TABLE
    for byte in bytes(data):
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFF


def _fcs_bytes(data: bytes) -> bytes:
    return fcs16(data).to_bytes(2, "little")


# --- addresses -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HdlcAddress:
    """An HDLC address of 1, 2 or 4 bytes (brief §2.2).

    ``logical`` is the client SAP, or the server's upper HDLC address (logical device);
    ``physical`` is the server's lower HDLC address, absent on 1-byte addresses. On 2 bytes
    each part has 7 bits, on 4 bytes 14 bits.
    """

    logical: int
    physical: int | None = None
    size: int = 1

    def __post_init__(self) -> None:
        if self.size not in (1, 2, 4):
            raise ValueError(f"an HDLC address is 1, 2 or 4 bytes, not {self.size}")
        limit = 0x3FFF if self.size == 4 else 0x7F
        if not 0 <= self.logical <= limit:
            raise ValueError(f"logical address {self.logical} does not fit in {self.size} byte(s)")
        if self.size == 1:
            if self.physical is not None:
                raise ValueError("a 1-byte HDLC address has no physical part")
        elif self.physical is None or not 0 <= self.physical <= limit:
            raise ValueError(
                f"physical address {self.physical} does not fit in {self.size} byte(s)"
            )

    @classmethod
    def client(cls, sap: int) -> HdlcAddress:
        """A client address: its SAP on one byte (public client 16 is ``21``)."""
        return cls(sap)

    @classmethod
    def server(cls, logical: int, physical: int | None = None) -> HdlcAddress:
        """A server address on the fewest bytes that hold it."""
        if physical is None:
            return cls(logical)
        size = 2 if logical <= 0x7F and physical <= 0x7F else 4
        return cls(logical, physical, size)

    def __str__(self) -> str:
        where = f"logical {self.logical}"
        if self.physical is not None:
            where += f", physical {self.physical}"
        return f"{where} [{self.encode().hex(' ').upper()}]"

    def encode(self) -> bytes:
        if self.size == 1:
            return bytes(((self.logical << 1) | 1,))
        assert self.physical is not None
        if self.size == 2:
            return bytes((self.logical << 1, (self.physical << 1) | 1))
        upper, lower = self.logical, self.physical
        return bytes(
            ((upper >> 7) << 1, (upper & 0x7F) << 1, (lower >> 7) << 1, ((lower & 0x7F) << 1) | 1)
        )


def _scan_address(buf: bytes, pos: int, end: int, which: str) -> int:
    """The end of the address starting at ``pos`` (bit 0 set marks its last byte)."""
    for i in range(pos, min(pos + 4, end)):
        if buf[i] & 1:
            return i + 1
    if end - pos < 4:
        raise DecodeError(
            f"frame ends inside the {which} address",
            offset=end,
            expected=f"a {which} address byte with bit 0 set",
        )
    raise DecodeError(
        f"{which} address longer than 4 bytes",
        offset=pos,
        expected="an address of 1, 2 or 4 bytes",
    )


def _header_end(buf: bytes, pos: int, end: int) -> int | None:
    """End of format-to-control when the address bytes are well formed, else ``None``."""
    try:
        return _scan_address(buf, _scan_address(buf, pos, end, "destination"), end, "source") + 1
    except DecodeError:
        return None


def _address_from(raw: bytes, offset: int, which: str) -> HdlcAddress:
    v = [b >> 1 for b in raw]
    if len(raw) == 1:
        return HdlcAddress(v[0])
    if len(raw) == 2:
        return HdlcAddress(v[0], v[1], 2)
    if len(raw) == 4:
        return HdlcAddress((v[0] << 7) | v[1], (v[2] << 7) | v[3], 4)
    raise DecodeError(
        f"{which} address of {len(raw)} bytes", offset=offset, expected="1, 2 or 4 bytes"
    )


# --- control field -------------------------------------------------------------------------------


class FrameType(enum.IntEnum):
    """HDLC frame types; each value is the control byte with P/F, N(S), N(R) = 0 (brief §2.3)."""

    I = 0x00  # noqa: E741
    RR = 0x01
    RNR = 0x05
    SNRM = 0x83
    DISC = 0x43
    UA = 0x63
    DM = 0x0F
    FRMR = 0x87
    UI = 0x03


_SUPERVISORY: Final = frozenset({FrameType.RR, FrameType.RNR})
_UNNUMBERED: Final = {int(t): t for t in FrameType if t & 0x03 == 0x03}
# Frame types that may carry an information field (IEC 62056-46; FRMR carries its reason).
_WITH_INFORMATION: Final = frozenset(
    {FrameType.I, FrameType.UI, FrameType.SNRM, FrameType.UA, FrameType.FRMR}
)
_WITH_LLC: Final = frozenset({FrameType.I, FrameType.UI})


def _parse_control(control: int, offset: int) -> tuple[FrameType, bool, int, int]:
    """(frame type, P/F, N(S), N(R)) of a control byte."""
    poll_final = bool(control & _POLL_FINAL)
    if control & 0x01 == 0:
        return FrameType.I, poll_final, (control >> 1) & 0x07, control >> 5
    if control & 0x03 == 0x01:
        kind = control & 0x0F
        if kind == FrameType.RR:
            return FrameType.RR, poll_final, 0, control >> 5
        if kind == FrameType.RNR:
            return FrameType.RNR, poll_final, 0, control >> 5
        raise DecodeError(
            f"supervisory frame 0x{control:02X} (REJ/SREJ) is not used by IEC 62056-46",
            offset=offset,
            expected="RR or RNR",
        )
    frame_type = _UNNUMBERED.get(control & ~_POLL_FINAL & 0xFF)
    if frame_type is None:
        raise DecodeError(
            f"unknown unnumbered control byte 0x{control:02X}",
            offset=offset,
            expected="SNRM, DISC, UA, DM, FRMR or UI",
        )
    return frame_type, poll_final, 0, 0


# --- frames --------------------------------------------------------------------------------------


class LlcHeader(enum.Enum):
    """The LLC header at the start of I and UI information fields (brief §2.5)."""

    COMMAND = b"\xe6\xe6\x00"  # client to server
    RESPONSE = b"\xe6\xe7\x00"  # server to client, pushes included


_LLC_BY_BYTES: Final = {h.value: h for h in LlcHeader}


@dataclass(frozen=True, slots=True)
class HdlcFrame:
    """One HDLC frame. ``information`` excludes the LLC header, which is in ``llc``.

    ``send_sequence`` is N(S) (I frames only), ``receive_sequence`` N(R) (I, RR, RNR);
    ``segmented`` is the S bit of the format field: more segments of this APDU follow.
    """

    frame_type: FrameType
    destination: HdlcAddress
    source: HdlcAddress
    poll_final: bool = True
    send_sequence: int = 0
    receive_sequence: int = 0
    segmented: bool = False
    llc: LlcHeader | None = None
    information: bytes = b""

    @property
    def control(self) -> int:
        """The control byte (brief §2.3)."""
        control = int(self.frame_type) | (_POLL_FINAL if self.poll_final else 0)
        if self.frame_type is FrameType.I:
            control |= self.send_sequence << 1
        if self.frame_type is FrameType.I or self.frame_type in _SUPERVISORY:
            control |= self.receive_sequence << 5
        return control

    @property
    def information_field(self) -> bytes:
        """The information field as sent: LLC header ‖ information."""
        return (self.llc.value if self.llc is not None else b"") + self.information

    @property
    def payload_offset(self) -> int:
        """Where ``information`` starts in :meth:`encode`'s output (opening flag included)."""
        header = 3 + len(self.destination.encode()) + len(self.source.encode()) + 1
        return header + 2 + (3 if self.llc is not None else 0)

    def encode(self) -> bytes:
        return encode_frame(self)


def encode_frame(frame: HdlcFrame) -> bytes:
    """The frame with both flags, HCS (when an information field follows) and FCS."""
    for name, value in (("N(S)", frame.send_sequence), ("N(R)", frame.receive_sequence)):
        if not 0 <= value <= 7:
            raise EncodeError(f"{name} = {value} is outside 0..7")
    if frame.send_sequence and frame.frame_type is not FrameType.I:
        raise EncodeError(f"a {frame.frame_type.name} frame has no N(S)")
    if frame.receive_sequence and not (
        frame.frame_type is FrameType.I or frame.frame_type in _SUPERVISORY
    ):
        raise EncodeError(f"a {frame.frame_type.name} frame has no N(R)")
    info = frame.information_field
    if info and frame.frame_type not in _WITH_INFORMATION:
        raise EncodeError(f"a {frame.frame_type.name} frame carries no information field")
    if frame.llc is not None and frame.frame_type not in _WITH_LLC:
        raise EncodeError(f"a {frame.frame_type.name} frame carries no LLC header")
    addresses = frame.destination.encode() + frame.source.encode() + bytes((frame.control,))
    length = 2 + len(addresses) + (2 + len(info) if info else 0) + 2
    if length > MAX_FRAME_LENGTH:
        raise EncodeError(
            f"HDLC frame of {length} bytes exceeds {MAX_FRAME_LENGTH}; segment the APDU"
        )
    fmt = _FORMAT_TYPE_3 | (_SEGMENTED if frame.segmented else 0) | length
    header = fmt.to_bytes(2, "big") + addresses
    body = header + _fcs_bytes(header) + info if info else header
    return bytes((FLAG,)) + body + _fcs_bytes(body) + bytes((FLAG,))


def decode_frame(data: bytes | bytearray | memoryview, *, split_llc: bool = True) -> HdlcFrame:
    """Decode one frame, with its two flags or without them (as JD's vectors list them).

    Offsets in errors count from ``data[0]``. With ``split_llc`` an I or UI information field
    that starts with an LLC header has it split off; pass ``False`` for the continuation
    segments of a segmented APDU, which carry no LLC header.
    """
    buf = bytes(data)
    start, end = 0, len(buf)
    if buf[:1] == b"\x7e":
        if len(buf) < 2 or buf[-1] != FLAG:
            raise DecodeError("no closing flag", offset=len(buf), expected="7E")
        start, end = 1, len(buf) - 1
    if end - start < 2:
        raise DecodeError(
            "truncated HDLC frame", offset=end, expected="the frame format field (A0..AF)"
        )
    fmt = int.from_bytes(buf[start : start + 2], "big")
    if fmt & 0xF000 != _FORMAT_TYPE_3:
        raise DecodeError(
            f"frame format field {fmt:04X} is not type 3",
            offset=start,
            expected="a format field A0..AF",
        )
    length = fmt & MAX_FRAME_LENGTH
    if length != end - start:
        raise DecodeError(
            f"format field gives a frame length of {length}, {end - start} bytes present",
            offset=start,
            expected=f"{length} bytes between the flags",
        )
    if length < _MIN_FRAME_LENGTH:
        raise DecodeError(
            f"frame length {length} is too short",
            offset=start,
            expected=f"at least {_MIN_FRAME_LENGTH} bytes",
        )
    fcs_at = end - 2
    destination_at = start + 2
    if buf[fcs_at:end] != _fcs_bytes(buf[start:fcs_at]):
        # Name the HCS when the header is the damaged part (the FCS covers it too).
        which, at = "FCS", fcs_at
        header_end = _header_end(buf, destination_at, fcs_at)
        if (
            header_end is not None
            and fcs_at - header_end >= 3
            and buf[header_end : header_end + 2] != _fcs_bytes(buf[start:header_end])
        ):
            which, at = "HCS", header_end
        raise DecodeError(
            f"{which} check failed: the frame is damaged", offset=at, expected=f"a valid {which}"
        )
    source_at = _scan_address(buf, destination_at, fcs_at, "destination")
    control_at = _scan_address(buf, source_at, fcs_at, "source")
    header_end = control_at + 1
    if header_end > fcs_at:
        raise DecodeError(
            "frame ends before its control field", offset=fcs_at, expected="a control byte"
        )
    between = fcs_at - header_end
    if 0 < between < 3:
        raise DecodeError(
            f"{between} byte(s) between the control field and the FCS",
            offset=header_end,
            expected="none, or an HCS and an information field",
        )
    has_info = between > 0
    if has_info and buf[header_end : header_end + 2] != _fcs_bytes(buf[start:header_end]):
        raise DecodeError(
            "HCS check failed: the header is damaged", offset=header_end, expected="a valid HCS"
        )
    destination = _address_from(buf[destination_at:source_at], destination_at, "destination")
    source = _address_from(buf[source_at:control_at], source_at, "source")
    frame_type, poll_final, ns, nr = _parse_control(buf[control_at], control_at)
    info = buf[header_end + 2 : fcs_at] if has_info else b""
    if info and frame_type not in _WITH_INFORMATION:
        raise DecodeError(
            f"a {frame_type.name} frame with an information field",
            offset=header_end,
            expected="no information field",
        )
    llc = _LLC_BY_BYTES.get(info[:3]) if split_llc and frame_type in _WITH_LLC else None
    if llc is not None:
        info = info[3:]
    return HdlcFrame(
        frame_type,
        destination,
        source,
        poll_final,
        ns,
        nr,
        bool(fmt & _SEGMENTED),
        llc,
        info,
    )


# --- stream splitting ---------------------------------------------------------------------------


class HdlcFrameSplitter:
    """Find HDLC frames in a byte stream from a serial line (sans-IO).

    Feed bytes with :meth:`receive_data`; :meth:`next_frame` returns the next frame or
    ``None`` until one is complete. Bytes outside frames (noise, a mode E hand-over tail) are
    skipped and counted in :attr:`discarded` (flags are not counted). A frame whose closing flag
    is missing is skipped too; a frame whose HCS or FCS fails raises :class:`DecodeError`
    with its stream offset, and the splitter continues after it on the next call.
    """

    __slots__ = ("_buffer", "_consumed", "discarded", "last_frame_offset", "split_llc")

    def __init__(self, *, split_llc: bool = True) -> None:
        self.split_llc = split_llc
        self.discarded = 0
        self.last_frame_offset = 0
        self._buffer = bytearray()
        self._consumed = 0

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        self._buffer += data

    def _drop(self, n: int, *, count: bool = True) -> None:
        del self._buffer[:n]
        self._consumed += n
        if count:
            self.discarded += n

    def discard_partial(self) -> int:
        """Drop what is buffered towards an incomplete frame; returns the bytes dropped.

        For a receiver whose inter-octet timeout has expired: a damaged length field would
        otherwise keep the splitter waiting for bytes that never come. Call it only after
        :meth:`next_raw_frame` has returned ``None``. A trailing flag is kept, since it may
        open the next frame.
        """
        keep = 1 if self._buffer[-1:] == bytes((FLAG,)) else 0
        n = len(self._buffer) - keep
        if n > 0:
            self._drop(n)
        return max(n, 0)

    def next_raw_frame(self) -> bytes | None:
        """The next candidate frame, flags included, unchecked; ``None`` until complete.

        Its stream offset is then in :attr:`last_frame_offset`.
        """
        buf = self._buffer
        while True:
            flag_at = buf.find(FLAG)
            if flag_at < 0:
                self._drop(len(buf))
                return None
            if flag_at:
                self._drop(flag_at)
            if len(buf) < 3:
                return None
            if buf[1] == FLAG:
                self._drop(1, count=False)
                continue
            length = ((buf[1] << 8) | buf[2]) & MAX_FRAME_LENGTH
            if buf[1] & 0xF0 != 0xA0 or length < _MIN_FRAME_LENGTH:
                self._drop(1, count=False)
                continue
            if len(buf) < length + 2:
                return None
            if buf[length + 1] != FLAG:
                self._drop(1, count=False)
                continue
            raw = bytes(buf[: length + 2])
            self.last_frame_offset = self._consumed
            # The closing flag may also open the next frame: keep it.
            self._drop(length + 1, count=False)
            return raw

    def next_frame(self) -> HdlcFrame | None:
        raw = self.next_raw_frame()
        if raw is None:
            return None
        try:
            return decode_frame(raw, split_llc=self.split_llc)
        except DecodeError as exc:
            raise DecodeError(
                exc.message,
                offset=None if exc.offset is None else self.last_frame_offset + exc.offset,
                expected=exc.expected,
            ) from exc
