"""The scapy layers of HDLC frames (IEC 62056-46) and of serial captures (link type 147).

Theory of operation. :class:`Hdlc` shows one frame of brief §2: the flags, the format field
(type, segmentation bit S, length), the destination and source addresses (1, 2 or 4 bytes),
the control byte with its frame type, P/F and sequence numbers, the HCS when an information
field follows, and the FCS. The layout is declared field by field; the frame is then checked
by the project's codec (:func:`cosemcast.link.hdlc.decode_frame`), whose verdict (``ok``, or
the failing check and its offset) is the ``check`` field. ``post_build`` fills in the length,
HCS and FCS of a frame built by hand.

The information field of an I or UI frame starts with the LLC header (:class:`DlmsLlc`,
brief §2.5) and holds an APDU; when the S bit says more segments follow, or when the frame
is a continuation segment without LLC, it is an :class:`HdlcSegment` instead. Segments are
joined by :class:`HdlcSession` (``sniff(offline=..., session=HdlcSession)``) or
:func:`reassemble_hdlc`, which end the last segment in a :class:`HdlcReassembled` layer
carrying the whole APDU. SNRM/UA information fields are :class:`HdlcParametersLayer`.

:class:`DlmsSerial` is the 1-byte pseudo-header of cosemcast's serial captures
(:mod:`cosemcast.capture.serial_pcap`); records without one (they start with ``7E``) are
dissected as :class:`Hdlc` directly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Final

from scapy.config import conf
from scapy.fields import (
    AnyField,
    BitEnumField,
    BitField,
    ByteEnumField,
    ConditionalField,
    Field,
    StrField,
    XByteField,
    XLEShortField,
)
from scapy.packet import Packet
from scapy.sessions import DefaultSession

from cosemcast.capture.serial_pcap import SerialDirection
from cosemcast.dissect.apdu import DlmsApdu, HexField
from cosemcast.errors import DecodeError
from cosemcast.link.hdlc import FLAG, FrameType, HdlcAddress, decode_frame, fcs16
from cosemcast.link.hdlc_parameters import decode_parameters

__all__ = [
    "DlmsLlc",
    "DlmsSerial",
    "DlmsSerialBytes",
    "Hdlc",
    "HdlcParametersLayer",
    "HdlcReassembled",
    "HdlcSegment",
    "HdlcSession",
    "HdlcTruncated",
    "reassemble_hdlc",
]

_POLL_FINAL: Final = 0x10
_LLC_HEADERS: Final = (b"\xe6\xe6\x00", b"\xe6\xe7\x00")
_MAX_ADDRESS: Final = 4
_TRAILER: Final = 3  # FCS (2) and the closing flag


def _address(raw: bytes) -> HdlcAddress | None:
    """An address of brief §2.2 from its bytes (bit 0 marks the last byte)."""
    v = [b >> 1 for b in raw]
    try:
        if len(raw) == 1:
            return HdlcAddress(v[0])
        if len(raw) == 2:
            return HdlcAddress(v[0], v[1], 2)
        if len(raw) == 4:
            return HdlcAddress((v[0] << 7) | v[1], (v[2] << 7) | v[3], 4)
    except ValueError:
        return None
    return None


def control_text(control: int) -> str:
    """Frame type, P/F and sequence numbers of a control byte (brief §2.3)."""
    pf = " P/F" if control & _POLL_FINAL else ""
    if control & 0x01 == 0:
        return f"I N(S)={(control >> 1) & 7} N(R)={control >> 5}{pf}"
    if control & 0x03 == 0x01:
        kind = {0x01: "RR", 0x05: "RNR"}.get(control & 0x0F, "REJ/SREJ (not used)")
        return f"{kind} N(R)={control >> 5}{pf}"
    try:
        return FrameType(control & ~_POLL_FINAL & 0xFF).name + pf
    except ValueError:
        return f"unknown (0x{control:02X})"


def _is_information_frame(control: int) -> bool:
    return control & 0x01 == 0 or control & ~_POLL_FINAL & 0xFF == FrameType.UI


class HdlcAddressField(Field[bytes, bytes]):
    """An HDLC address of 1, 2 or 4 bytes; shown decoded (logical/physical)."""

    def __init__(self, name: str, default: bytes | HdlcAddress) -> None:
        super().__init__(name, default)

    def any2i(self, pkt: Packet | None, x: Any) -> bytes:
        if isinstance(x, HdlcAddress):
            return x.encode()
        return bytes(x) if x is not None else b""

    def i2m(self, pkt: Packet | None, x: bytes | None) -> bytes:
        return bytes(x or b"")

    def addfield(self, pkt: Packet, s: bytes, val: bytes | None) -> bytes:
        return s + self.i2m(pkt, val)

    def getfield(self, pkt: Packet, s: bytes) -> tuple[bytes, bytes]:
        for i in range(min(_MAX_ADDRESS, len(s))):
            if s[i] & 1:
                return s[i + 1 :], bytes(s[: i + 1])
        cut = min(_MAX_ADDRESS, len(s))
        return s[cut:], bytes(s[:cut])

    def i2len(self, pkt: Packet, x: Any) -> int:
        return len(x or b"")

    def i2repr(self, pkt: Packet | None, x: bytes) -> str:
        raw = bytes(x or b"")
        address = _address(raw)
        return str(address) if address is not None else f"malformed [{raw.hex(' ').upper()}]"


class _ControlField(XByteField):
    def i2repr(self, pkt: Packet | None, x: int) -> str:
        return f"0x{x:02X} {control_text(x)}" if isinstance(x, int) else repr(x)


class _TrailerValue(Field[Any, Any]):
    """A field stored after the payload (FCS, closing flag): set by ``Hdlc.post_dissect``."""

    __slots__ = ["shown_as"]

    def __init__(self, name: str, default: int | None, shown_as: str) -> None:
        super().__init__(name, default)
        self.shown_as = shown_as

    def getfield(self, pkt: Packet, s: bytes) -> tuple[bytes, Any]:
        return s, None

    def addfield(self, pkt: Packet, s: bytes, val: Any) -> bytes:
        return s

    def i2repr(self, pkt: Packet | None, x: Any) -> str:
        return "none" if x is None else self.shown_as.format(x)


class _CheckField(Field[Any, Any]):
    """The codec's verdict on the frame (consumes nothing)."""

    def getfield(self, pkt: Packet, s: bytes) -> tuple[bytes, Any]:
        return s, None

    def addfield(self, pkt: Packet, s: bytes, val: Any) -> bytes:
        return s

    def i2repr(self, pkt: Packet | None, x: Any) -> str:
        return "not checked" if x is None else str(x)


def _header_length(pkt: Packet) -> int:
    """Format, addresses and control: what the HCS covers."""
    return 2 + len(pkt.destination or b"") + len(pkt.source or b"") + 1


def _has_hcs(pkt: Packet) -> bool:
    if pkt.length is not None:
        return bool(pkt.length > _header_length(pkt) + 2)
    return len(pkt.payload) > 0


def _header_fits(data: bytes) -> bool:
    """Whether ``data`` holds every header field :class:`Hdlc` reads (flag to HCS)."""
    if len(data) < 3 or data[0] != FLAG:
        return False
    pos = 3
    for _ in ("destination", "source"):
        window = data[pos : pos + _MAX_ADDRESS]
        ends = [i for i, b in enumerate(window) if b & 1]
        pos += ends[0] + 1 if ends else len(window)
    header = pos  # format, addresses and control: what the HCS covers
    length = int.from_bytes(data[1:3], "big") & 0x7FF
    needed = pos + 1 + (2 if length > header + 2 else 0)
    return len(data) >= needed


class HdlcTruncated(Packet):
    """Bytes too short to hold an HDLC header, or that do not start with the 7E flag."""

    name = "HDLC frame (malformed)"
    fields_desc: ClassVar[list[AnyField]] = [HexField("data", b"")]

    def mysummary(self) -> str:
        return "HDLC malformed: truncated header or no 7E flag"


class Hdlc(Packet):
    """One HDLC frame of frame format type 3 (brief §2), both flags included."""

    @classmethod
    def dispatch_hook(cls, _pkt: bytes | None = None, *args: Any, **kargs: Any) -> type[Packet]:
        if _pkt is not None and not _header_fits(bytes(_pkt)):
            return HdlcTruncated
        return cls

    name = "HDLC (IEC 62056-46)"
    fields_desc: ClassVar[list[AnyField]] = [
        XByteField("flag", FLAG),
        BitEnumField("format_type", 0xA, 4, {0xA: "type 3"}),
        BitField("segmented", 0, 1),
        BitField("length", None, 11),
        HdlcAddressField("destination", b"\x03"),
        HdlcAddressField("source", b"\x21"),
        _ControlField("control", 0x93),
        ConditionalField(XLEShortField("hcs", None), _has_hcs),
        _TrailerValue("fcs", None, "0x{:04x}"),
        _TrailerValue("end_flag", FLAG, "0x{:02x}"),
        _CheckField("check", None),
    ]

    def pre_dissect(self, s: bytes) -> bytes:
        length = (int.from_bytes(s[1:3], "big") & 0x7FF) if len(s) >= 3 else len(s)
        object.__setattr__(self, "_frame_bytes", bytes(s[: length + 2]))
        return s

    def post_dissect(self, s: bytes) -> bytes:
        frame: bytes = self.__dict__.get("_frame_bytes", b"")
        consumed = 1 + _header_length(self) + (2 if self.hcs is not None else 0)
        info_length = len(frame) - consumed - _TRAILER
        if len(frame) == (self.length or 0) + 2 and info_length >= 0:
            trailer = s[info_length : info_length + _TRAILER]
            self.fields["fcs"] = int.from_bytes(trailer[:2], "little")
            self.fields["end_flag"] = trailer[2]
            s = s[:info_length] + s[info_length + _TRAILER :]
            object.__setattr__(self, "_info_length", info_length)
        else:
            object.__setattr__(self, "_info_length", len(s))
        try:
            decode_frame(frame, split_llc=False)
            self.fields["check"] = "ok (HCS and FCS verified by cosemcast.link.hdlc)"
        except DecodeError as exc:
            self.fields["check"] = f"malformed at offset {exc.offset}: {exc.message}"
        self.raw_packet_cache = None
        return s

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        n = self.__dict__.get("_info_length", len(s))
        return s[:n], s[n:]

    def guess_payload_class(self, payload: bytes) -> type[Packet]:
        control = self.control
        if _is_information_frame(control):
            if bytes(payload[:3]) in _LLC_HEADERS:
                return DlmsLlc
            return HdlcSegment
        if control & ~_POLL_FINAL & 0xFF in (FrameType.SNRM, FrameType.UA):
            return HdlcParametersLayer
        return conf.raw_layer

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        header = bytearray(pkt[1:])
        hcs_present = self.hcs is not None or bool(pay)
        header_end = _header_length(self)
        if self.length is None:
            length = header_end + (2 if hcs_present else 0) + len(pay) + 2
            fmt = int.from_bytes(header[0:2], "big") & 0xF800 | length
            header[0:2] = fmt.to_bytes(2, "big")
        if hcs_present and self.hcs is None and len(header) >= header_end + 2:
            header[header_end : header_end + 2] = fcs16(bytes(header[:header_end])).to_bytes(
                2, "little"
            )
        body = bytes(header) + pay
        fcs = self.fcs if self.fcs is not None else fcs16(body)
        end_flag = self.end_flag if self.end_flag is not None else FLAG
        return pkt[:1] + body + fcs.to_bytes(2, "little") + bytes((end_flag,))

    def mysummary(self) -> str:
        return f"HDLC {control_text(self.control)}"


class DlmsLlc(Packet):
    """The LLC header of I/UI information fields (brief §2.5)."""

    @classmethod
    def dispatch_hook(cls, _pkt: bytes | None = None, *args: Any, **kargs: Any) -> type[Packet]:
        if _pkt is not None and len(_pkt) < len(_LLC_HEADERS[0]):
            return HdlcSegment
        return cls

    name = "DLMS LLC"
    fields_desc: ClassVar[list[AnyField]] = [
        XByteField("destination_lsap", 0xE6),
        ByteEnumField("source_lsap", 0xE6, {0xE6: "command (E6)", 0xE7: "response (E7)"}),
        XByteField("quality", 0x00),
    ]

    def guess_payload_class(self, payload: bytes) -> type[Packet]:
        under = self.underlayer
        if isinstance(under, Hdlc) and under.segmented:
            return HdlcSegment
        return DlmsApdu


class HdlcSegment(Packet):
    """Part of a segmented APDU (brief §2.7); join them with HdlcSession/reassemble_hdlc."""

    name = "HDLC segment"
    fields_desc: ClassVar[list[AnyField]] = [HexField("data", b"")]


class HdlcReassembled(Packet):
    """Stands for the segments the last one completes; its payload is the whole APDU.

    It occupies no bytes: building a reassembled packet writes the joined APDU in place of
    the last segment's information field.
    """

    name = "HDLC reassembled APDU"
    fields_desc: ClassVar[list[AnyField]] = [_CheckField("segments", None)]


class _ParametersField(StrField):
    def i2repr(self, pkt: Packet | None, x: bytes) -> str:
        try:
            return repr(decode_parameters(bytes(x or b"")))
        except DecodeError as exc:
            return f"malformed: {exc}"


class HdlcParametersLayer(Packet):
    """SNRM/UA negotiation parameters (brief §2.6), decoded by the project's codec."""

    name = "HDLC parameters"
    fields_desc: ClassVar[list[AnyField]] = [_ParametersField("parameters", b"")]


class DlmsSerialBytes(Packet):
    """Serial bytes that are not HDLC (the IEC 62056-21 mode E sign-on)."""

    name = "serial bytes (not HDLC)"
    fields_desc: ClassVar[list[AnyField]] = [StrField("data", b"")]


class DlmsSerial(Packet):
    """The pseudo-header of a cosemcast serial capture record (link type 147)."""

    name = "DLMS serial record"
    fields_desc: ClassVar[list[AnyField]] = [
        ByteEnumField(
            "link_direction",
            SerialDirection.CLIENT_TO_SERVER,
            {int(d): d.name.lower().replace("_", "-") for d in SerialDirection},
        )
    ]

    @classmethod
    def dispatch_hook(cls, _pkt: bytes | None = None, *args: Any, **kargs: Any) -> type[Packet]:
        if _pkt and _pkt[0] == FLAG:
            return Hdlc.dispatch_hook(_pkt)
        return cls

    def guess_payload_class(self, payload: bytes) -> type[Packet]:
        return Hdlc if payload[:1] == bytes((FLAG,)) else DlmsSerialBytes


class HdlcSession(DefaultSession):
    """Joins segmented APDUs: the last segment's packet ends in an :class:`HdlcReassembled`.

    ``sniff(offline="serial.pcap", session=HdlcSession)``; segments are keyed by the frame's
    source and destination addresses.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending: dict[tuple[bytes, bytes], list[bytes]] = {}

    def process(self, pkt: Packet) -> Packet | None:
        packet: Packet | None = super().process(pkt)
        if packet is None or Hdlc not in packet:
            return packet
        frame = packet[Hdlc]
        if not _is_information_frame(frame.control):
            return packet
        key = (bytes(frame.source), bytes(frame.destination))
        parts = self.pending.setdefault(key, [])
        if frame.haslayer(HdlcSegment):
            parts.append(bytes(frame[HdlcSegment].data))
        elif frame.haslayer(DlmsApdu) and not parts:
            return packet
        if frame.segmented:
            return packet
        if not parts:
            return packet
        joined = b"".join(parts)
        count = len(parts)
        parts.clear()
        holder = frame[HdlcSegment].underlayer if frame.haslayer(HdlcSegment) else frame
        holder.remove_payload()
        holder.add_payload(HdlcReassembled(segments=count) / DlmsApdu(joined))
        return packet


def reassemble_hdlc(packets: Iterable[Packet]) -> list[Packet]:
    """The packets, with each last segment ending in an :class:`HdlcReassembled` APDU."""
    session = HdlcSession()
    out = []
    for packet in packets:
        result = session.process(packet)
        if result is not None:
            out.append(result)
    return out
