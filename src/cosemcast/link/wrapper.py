"""The IEC 62056-47 wrapper (DLMS over TCP and UDP), sans-IO.

Every APDU travels behind an 8-byte header (brief §1)::

    version u16 (= 1) | source wPort u16 | destination wPort u16 | length u16 | APDU

There is no HDLC and no LLC. On UDP one datagram carries one frame, so
:meth:`WrapperFrame.decode` takes exactly one frame. On TCP frames arrive as a byte stream cut
anywhere; :class:`WrapperDecoder` buffers what :meth:`~WrapperDecoder.receive_data` hands it
and :meth:`~WrapperDecoder.next_frame` returns each complete frame, or ``None`` while one is
still incomplete (the h11 pattern). The decoder never touches a socket.

A TCP stream that carries a wrong version or an absurd length has lost its framing and
cannot be resynchronised (the header has no flag or checksum), so the decoder reports a
:class:`~cosemcast.errors.DecodeError` with the stream offset and then refuses further use.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from cosemcast.errors import DecodeError, EncodeError, LocalProtocolError
from cosemcast.link._schemas import WRAPPER_HEADER, WRAPPER_HEADER_LENGTH

__all__ = [
    "DLMS_PORT",
    "HEADER_LENGTH",
    "MAX_APDU_LENGTH",
    "WRAPPER_VERSION",
    "WrapperDecoder",
    "WrapperFrame",
]

WRAPPER_VERSION: Final = 1
HEADER_LENGTH: Final = WRAPPER_HEADER_LENGTH
# IANA port of DLMS/COSEM over TCP and UDP (brief §1).
DLMS_PORT: Final = 4059
# The length field is a u16; the negotiated max-PDU-size is a u16 too (brief §4.3).
MAX_APDU_LENGTH: Final = 0xFFFF


@dataclass(frozen=True, slots=True)
class WrapperFrame:
    """One wrapper frame: the two wPorts (SAPs, brief §1) and the APDU it carries."""

    source_wport: int
    destination_wport: int
    apdu: bytes

    def encode(self) -> bytes:
        for name, port in (("source", self.source_wport), ("destination", self.destination_wport)):
            if not 0 <= port <= 0xFFFF:
                raise EncodeError(f"{name} wPort {port} does not fit in a u16")
        if not 1 <= len(self.apdu) <= MAX_APDU_LENGTH:
            raise EncodeError(
                f"wrapper APDU of {len(self.apdu)} bytes: the length field allows 1..65535"
            )
        header = WRAPPER_HEADER.build(
            {
                "version": WRAPPER_VERSION,
                "source_wport": self.source_wport,
                "destination_wport": self.destination_wport,
                "length": len(self.apdu),
            }
        )
        return bytes(header) + bytes(self.apdu)

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> WrapperFrame:
        """Decode exactly one frame (a UDP datagram); the length must match the data."""
        buf = data if type(data) is bytes else bytes(data)
        length, source, destination = _parse_header(buf, 0, MAX_APDU_LENGTH)
        if len(buf) != HEADER_LENGTH + length:
            raise DecodeError(
                f"wrapper length field says {length} APDU bytes, {len(buf) - HEADER_LENGTH} follow",
                offset=6,
                expected=f"{HEADER_LENGTH + length} bytes in all",
            )
        return cls(source, destination, buf[HEADER_LENGTH:])


_HEADER_STRUCT = struct.Struct(">HHHH")


def _parse_header(buf: bytes, base: int, max_length: int) -> tuple[int, int, int]:
    """Check the header at ``buf[0:8]``; return (length, source, destination).

    ``base`` is added to every offset reported (the stream position of ``buf[0]``).
    """
    if len(buf) < HEADER_LENGTH:
        raise DecodeError(
            f"truncated wrapper header: {len(buf)} of 8 bytes",
            offset=base + len(buf),
            expected="an 8-byte wrapper header",
        )
    # Hot path (every datagram of a head-end): the layout of WRAPPER_HEADER read with a
    # precompiled struct; the length is checked above, so it cannot fail. A test checks both
    # readings agree.
    version, source, destination, length = _HEADER_STRUCT.unpack_from(buf)
    _check_version(version, base)
    if not 1 <= length <= max_length:
        raise DecodeError(
            f"wrapper length {length} is outside 1..{max_length}",
            offset=base + 6,
            expected=f"an APDU length of 1..{max_length}",
        )
    return length, source, destination


def _check_version(version: int, offset: int) -> None:
    if version != WRAPPER_VERSION:
        raise DecodeError(f"wrapper version {version}", offset=offset, expected="version 1 (00 01)")


class WrapperDecoder:
    """Reassemble wrapper frames from a TCP byte stream (sans-IO).

    ``max_apdu_length`` bounds the length field (use the negotiated max-PDU-size to reject
    oversized frames before buffering them). ``receive_data(b"")`` signals end of stream;
    a frame left incomplete then raises :class:`DecodeError`.
    """

    __slots__ = ("_buffer", "_closed", "_consumed", "_failure", "max_apdu_length")

    def __init__(self, *, max_apdu_length: int = MAX_APDU_LENGTH) -> None:
        if not 1 <= max_apdu_length <= MAX_APDU_LENGTH:
            raise ValueError(f"max_apdu_length must be 1..65535, got {max_apdu_length}")
        self.max_apdu_length = max_apdu_length
        self._buffer = bytearray()
        self._consumed = 0
        self._closed = False
        self._failure: DecodeError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as a frame."""
        return len(self._buffer)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        self._check_usable()
        if not data:
            self._closed = True
            return
        if self._closed:
            raise LocalProtocolError("data received after end of stream")
        self._buffer += data

    def next_frame(self) -> WrapperFrame | None:
        """The next complete frame, or ``None`` until more data arrives."""
        self._check_usable()
        buf = self._buffer
        try:
            if len(buf) >= 2:
                # Fail on the version as soon as it is visible, before waiting for more.
                _check_version((buf[0] << 8) | buf[1], self._consumed)
            if len(buf) < HEADER_LENGTH:
                self._check_eof()
                return None
            length, source, destination = _parse_header(
                bytes(buf[:HEADER_LENGTH]), self._consumed, self.max_apdu_length
            )
            total = HEADER_LENGTH + length
            if len(buf) < total:
                self._check_eof()
                return None
        except DecodeError as exc:
            self._failure = exc
            raise
        apdu = bytes(buf[HEADER_LENGTH:total])
        del buf[:total]
        self._consumed += total
        return WrapperFrame(source, destination, apdu)

    def _check_eof(self) -> None:
        if self._closed and self._buffer:
            raise DecodeError(
                f"stream ended inside a wrapper frame ({len(self._buffer)} bytes left)",
                offset=self._consumed + len(self._buffer),
                expected="the rest of the frame",
            )

    def _check_usable(self) -> None:
        if self._failure is not None:
            raise LocalProtocolError(
                f"the wrapper stream failed earlier ({self._failure}); open a new connection"
            )
