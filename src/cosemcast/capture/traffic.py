"""The DLMS frames of a capture file, conversation by conversation.

Theory of operation. :func:`read_capture` reads a classic pcap file of any link type
:mod:`cosemcast.capture.pcap` knows (Ethernet, raw IP, loopback, Linux cooked) or a serial
capture (:mod:`cosemcast.capture.serial_pcap`) and returns every DLMS frame in it as a
:class:`CapturedFrame`, in time order, each tagged with its :class:`Conversation`:

* TCP (port 4059 by default): each direction is reassembled in sequence order and cut into
  IEC 62056-47 wrapper frames (brief §1). A frame is dated by the segment that completes it.
  A header with a wrong version or length loses the framing; the frame is reported malformed
  with its stream offset and the stream resynchronises on the next offset where a header and
  a decodable APDU follow. A conversation is one TCP connection, both directions.
* UDP: one wrapper frame per datagram; a conversation is one pair of endpoints.
* Serial: one conversation for the line. Each record holds HDLC frames (brief §2), whose
  HCS/FCS are checked; the information fields of segmented I/UI frames are joined per
  direction and the APDU is attached to the last segment. Records that are not HDLC (the
  IEC 62056-21 mode E sign-on) are kept as text.

Nothing is decoded above the link layer: :attr:`CapturedFrame.apdu` holds the APDU bytes and
:attr:`CapturedFrame.error` a malformed frame's :class:`~cosemcast.errors.DecodeError`, whose
offset counts from the start of what :attr:`CapturedFrame.where` names. A malformed frame never
stops the reading; only an unreadable file raises :class:`DecodeError`.
"""

from __future__ import annotations

import bisect
import io
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final, Literal

from cosemcast.apdu import decode_apdu
from cosemcast.capture.pcap import Packet, TcpSegment, read_pcap, tcp_streams
from cosemcast.capture.serial_pcap import (
    LINKTYPE_DLMS_SERIAL,
    SerialDirection,
    SerialRecord,
    read_pcap_header,
    read_serial_pcap,
)
from cosemcast.errors import DecodeError
from cosemcast.link.hdlc import (
    FLAG,
    FrameType,
    HdlcAddress,
    HdlcFrame,
    HdlcFrameSplitter,
    LlcHeader,
    decode_frame,
)
from cosemcast.link.wrapper import DLMS_PORT, HEADER_LENGTH, WrapperFrame

__all__ = [
    "Capture",
    "CapturedFrame",
    "Conversation",
    "Transport",
    "hdlc_address_text",
    "read_capture",
]

Transport = Literal["tcp", "udp", "serial"]

_WRAPPER_VERSION: Final = b"\x00\x01"
_TO_SERVER: Final = frozenset({FrameType.SNRM, FrameType.DISC})
_TO_CLIENT: Final = frozenset({FrameType.UA, FrameType.DM, FrameType.FRMR})


@dataclass(frozen=True, slots=True)
class Conversation:
    """One TCP connection, one pair of UDP endpoints, or the serial line."""

    index: int
    transport: Transport
    first: str
    second: str

    def __str__(self) -> str:
        return f"{self.transport.upper()} {self.first} <-> {self.second}"


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    """One frame found in a capture (or one malformed stretch of bytes).

    ``apdu`` is the complete APDU the frame carries (for HDLC, the reassembled APDU on the
    last segment); ``apdu_offset`` is where its first byte sits in what ``where`` names.
    ``segments`` counts the HDLC segments joined into ``apdu``. ``text`` holds the bytes of
    a serial record that is not HDLC. ``to_server`` is ``None`` when the direction is unknown.
    """

    conversation: Conversation
    timestamp: float
    packet: int
    source: str
    destination: str
    where: str
    link: WrapperFrame | HdlcFrame | None = None
    apdu: bytes | None = None
    apdu_offset: int | None = None
    segments: int = 0
    text: bytes | None = None
    error: DecodeError | None = None
    to_server: bool | None = None


@dataclass(frozen=True, slots=True)
class Capture:
    """Every DLMS frame of a capture file, in time order."""

    link_type: int
    packets: int
    start_time: float
    conversations: tuple[Conversation, ...]
    frames: tuple[CapturedFrame, ...]


def hdlc_address_text(address: HdlcAddress) -> str:
    """``16`` for a client or a 1-byte server address, ``1/17`` for logical/physical."""
    if address.physical is None:
        return str(address.logical)
    return f"{address.logical}/{address.physical}"


def read_capture(path: str | Path, *, ports: Collection[int] | None = (DLMS_PORT,)) -> Capture:
    """Read ``path`` (classic pcap) and return its DLMS frames; ``ports`` select TCP/UDP.

    ``ports=None`` finds the wrapper on any port (:func:`_wrapper_flows`): what the project's
    own captures (``--pcap``) need, whose ports are whatever the sockets got.
    """
    data = Path(path).read_bytes()
    header = read_pcap_header(data)
    if header.link_type == LINKTYPE_DLMS_SERIAL:
        records = list(read_serial_pcap(io.BytesIO(data)))
        frames = _serial_frames(records)
        count = len(records)
        first_time = records[0].timestamp if records else 0.0
    else:
        packets = list(read_pcap(io.BytesIO(data)))
        count = packets[-1].index if packets else 0
        first_time = packets[0].timestamp if packets else 0.0
        if ports is None:
            flows = _wrapper_flows(packets)
            selected = [p for p in packets if _flow(p) in flows]
        else:
            selected = [p for p in packets if p.sport in ports or p.dport in ports]
        frames = _ip_frames(selected)
    frames.sort(key=lambda f: (f.timestamp, f.packet))
    # Number the conversations in order of their first frame.
    numbered: dict[Conversation, Conversation] = {}
    for f in frames:
        if f.conversation not in numbered:
            numbered[f.conversation] = replace(f.conversation, index=len(numbered) + 1)
    ordered = tuple(replace(f, conversation=numbered[f.conversation]) for f in frames)
    return Capture(header.link_type, count, first_time, tuple(numbered.values()), ordered)


# --- TCP and UDP ---------------------------------------------------------------------------------


def _flow(p: Packet) -> tuple[str, frozenset[tuple[str, int]]]:
    return p.protocol, frozenset(((p.src, p.sport), (p.dst, p.dport)))


def _wrapper_flows(packets: Iterable[Packet]) -> set[tuple[str, frozenset[tuple[str, int]]]]:
    """Flows (either direction) in which some packet starts with a wrapper header: version 1
    and, for UDP, a length that is exactly the rest of the datagram (brief §1)."""
    found: set[tuple[str, frozenset[tuple[str, int]]]] = set()
    for p in packets:
        payload = p.payload
        if len(payload) <= HEADER_LENGTH or payload[:2] != _WRAPPER_VERSION:
            continue
        length = int.from_bytes(payload[6:8], "big")
        if p.protocol == "udp" and length != len(payload) - HEADER_LENGTH:
            continue
        if p.protocol == "tcp" and length == 0:
            continue
        found.add(_flow(p))
    return found


@dataclass(slots=True)
class _Conversations:
    """Numbers conversations in order of first appearance."""

    by_key: dict[tuple[str, frozenset[str]], Conversation] = field(default_factory=dict)

    def get(self, transport: Transport, source: str, destination: str) -> Conversation:
        key = (transport, frozenset((source, destination)))
        found = self.by_key.get(key)
        if found is None:
            found = Conversation(len(self.by_key) + 1, transport, source, destination)
            self.by_key[key] = found
        return found


def _endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _ip_frames(packets: list[Packet]) -> list[CapturedFrame]:
    conversations = _Conversations()
    frames: list[CapturedFrame] = []
    for p in packets:
        if p.protocol == "udp":
            frames.append(_udp_frame(p, conversations))
    for stream in tcp_streams(packets):
        frames.extend(_tcp_frames(stream, conversations))
    return frames


def _udp_frame(p: Packet, conversations: _Conversations) -> CapturedFrame:
    source, destination = _endpoint(p.src, p.sport), _endpoint(p.dst, p.dport)
    conversation = conversations.get("udp", source, destination)
    where = f"UDP datagram in packet {p.index}"
    try:
        frame = WrapperFrame.decode(p.payload)
    except DecodeError as exc:
        return CapturedFrame(
            conversation, p.timestamp, p.index, source, destination, where, error=exc
        )
    return CapturedFrame(
        conversation,
        p.timestamp,
        p.index,
        source,
        destination,
        where,
        link=frame,
        apdu=frame.apdu,
        apdu_offset=HEADER_LENGTH,
    )


def _tcp_frames(stream: TcpSegment, conversations: _Conversations) -> Iterable[CapturedFrame]:
    source = _endpoint(stream.src, stream.sport)
    destination = _endpoint(stream.dst, stream.dport)
    conversation = conversations.get("tcp", source, destination)
    where = f"the TCP stream {source} -> {destination}"
    data = bytes(stream.data)
    starts = [offset for offset, _, _ in stream.marks]

    def dated(end: int) -> tuple[float, int]:
        i = max(bisect.bisect_right(starts, max(end - 1, 0)) - 1, 0)
        _, timestamp, packet = stream.marks[i]
        return timestamp, packet

    pos = 0
    while pos < len(data):
        frame, end, error = _next_wrapper(data, pos)
        if error is not None:
            timestamp, packet = dated(pos + 1)
            yield CapturedFrame(
                conversation, timestamp, packet, source, destination, where, error=error
            )
        else:
            timestamp, packet = dated(end)
            yield CapturedFrame(
                conversation,
                timestamp,
                packet,
                source,
                destination,
                where,
                link=frame,
                apdu=frame.apdu if frame is not None else None,
                apdu_offset=pos + HEADER_LENGTH,
            )
        pos = end


def _next_wrapper(data: bytes, pos: int) -> tuple[WrapperFrame | None, int, DecodeError | None]:
    """(frame, where the next one starts, error) for the wrapper frame at ``pos``."""
    remaining = len(data) - pos
    if remaining >= HEADER_LENGTH:
        length = int.from_bytes(data[pos + 6 : pos + 8], "big")
        end = pos + HEADER_LENGTH + length
        if end <= len(data) or data[pos : pos + 2] != _WRAPPER_VERSION:
            try:
                return WrapperFrame.decode(data[pos : min(end, len(data))]), end, None
            except DecodeError as exc:
                resync = _resynchronise(data, pos + 1)
                return None, resync, _shifted(exc, pos, f" ({resync - pos} bytes skipped)")
    return (
        None,
        len(data),
        DecodeError(
            f"the capture ends inside a wrapper frame ({remaining} bytes)",
            offset=len(data),
            expected="the rest of the frame",
        ),
    )


def _resynchronise(data: bytes, start: int) -> int:
    """The next offset where a wrapper header and a decodable APDU follow (else the end)."""
    pos = data.find(_WRAPPER_VERSION, start)
    while 0 <= pos <= len(data) - HEADER_LENGTH:
        length = int.from_bytes(data[pos + 6 : pos + 8], "big")
        end = pos + HEADER_LENGTH + length
        if length and end <= len(data):
            try:
                decode_apdu(data[pos + HEADER_LENGTH : end])
            except DecodeError:
                pass
            else:
                return pos
        pos = data.find(_WRAPPER_VERSION, pos + 1)
    return len(data)


def _shifted(exc: DecodeError, base: int, suffix: str = "") -> DecodeError:
    offset = None if exc.offset is None else base + exc.offset
    shifted = DecodeError(exc.message + suffix, offset=offset, expected=exc.expected)
    shifted.__cause__ = exc
    return shifted


# --- serial HDLC ---------------------------------------------------------------------------------


def _direction(record: SerialRecord, frame: HdlcFrame) -> bool | None:
    if record.direction is not None:
        return record.direction is SerialDirection.CLIENT_TO_SERVER
    if frame.llc is not None:
        return frame.llc is LlcHeader.COMMAND
    if frame.frame_type in _TO_SERVER:
        return True
    if frame.frame_type in _TO_CLIENT:
        return False
    return None


@dataclass(slots=True)
class _SerialState:
    """Segments waiting for their last one, and the direction learnt for each address pair."""

    pending: dict[tuple[str, str], list[bytes]] = field(default_factory=dict)
    to_server: dict[tuple[str, str], bool] = field(default_factory=dict)


def _serial_frames(records: list[SerialRecord]) -> list[CapturedFrame]:
    line = Conversation(1, "serial", "client", "server")
    state = _SerialState()
    frames: list[CapturedFrame] = []
    for record in records:
        where = f"serial record {record.index}"
        if not record.data or record.data[0] != FLAG:
            to_server = (
                None
                if record.direction is None
                else record.direction is SerialDirection.CLIENT_TO_SERVER
            )
            frames.append(
                CapturedFrame(
                    line,
                    record.timestamp,
                    record.index,
                    "client" if to_server else "server",
                    "server" if to_server else "client",
                    where,
                    text=record.data,
                    to_server=to_server,
                )
            )
            continue
        frames.extend(_record_frames(record, line, where, state))
    return frames


def _record_frames(
    record: SerialRecord, line: Conversation, where: str, state: _SerialState
) -> Iterable[CapturedFrame]:
    splitter = HdlcFrameSplitter()
    splitter.receive_data(record.data)
    while (raw := splitter.next_raw_frame()) is not None:
        yield _hdlc_frame(record, line, where, raw, splitter.last_frame_offset, state)
    left = splitter.discard_partial()
    if splitter.discarded:
        yield CapturedFrame(
            line,
            record.timestamp,
            record.index,
            "?",
            "?",
            where,
            error=DecodeError(
                f"{splitter.discarded} byte(s) of the record are not part of a whole HDLC frame",
                offset=len(record.data) - left if left else None,
                expected="7E-delimited frames whose length field fits the record",
            ),
        )


def _hdlc_frame(
    record: SerialRecord,
    line: Conversation,
    where: str,
    raw: bytes,
    offset: int,
    state: _SerialState,
) -> CapturedFrame:
    try:
        frame = decode_frame(raw, split_llc=False)
    except DecodeError as exc:
        return CapturedFrame(
            line, record.timestamp, record.index, "?", "?", where, error=_shifted(exc, offset)
        )
    source, destination = hdlc_address_text(frame.source), hdlc_address_text(frame.destination)
    key = (source, destination)
    parts = state.pending.setdefault(key, [])
    if frame.frame_type in (FrameType.I, FrameType.UI) and frame.information and not parts:
        # The first segment (or a whole APDU) starts with the LLC header, brief §2.5.
        frame = decode_frame(raw)
    to_server = _direction(record, frame)
    if to_server is None:
        to_server = state.to_server.get(key)
    else:
        state.to_server[key] = to_server
        state.to_server[(destination, source)] = not to_server
    base = CapturedFrame(
        line,
        record.timestamp,
        record.index,
        source,
        destination,
        where,
        link=frame,
        to_server=to_server,
    )
    if frame.frame_type not in (FrameType.I, FrameType.UI) or not frame.information_field:
        return base
    parts.append(frame.information)
    if frame.segmented:
        return replace(base, segments=len(parts))
    apdu = b"".join(parts)
    count = len(parts)
    parts.clear()
    apdu_offset = offset + frame.payload_offset if count == 1 else None
    return replace(base, apdu=apdu, apdu_offset=apdu_offset, segments=count)
