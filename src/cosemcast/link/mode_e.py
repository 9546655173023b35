"""IEC 62056-21 protocol mode E, sans-IO: the optical-port sign-on that hands over to HDLC.

The exchange (brief §3), at 300 Bd, 7 data bits, even parity, 1 stop bit::

    client  /?!CR LF                    request; an optional device address goes before "!"
    meter   /XXXZ\\WIdent CR LF          identification: manufacturer XXX, baud-rate character Z,
                                        enhanced identification \\W (W = 2: HDLC available)
    client  ACK 2 Z 2 CR LF             acknowledgement/option select: protocol control "2"
                                        (HDLC procedure), Z (the rate chosen), mode "2" (binary)

After the acknowledgement both sides switch to the rate of Z and to 8N1, and HDLC follows.
Z is ``0``..``6`` = 300..19200 Bd in modes C and E. The characters are 7-bit: the parity bit is
masked off what is received, so an IO that delivers 8-bit bytes works too.

:class:`ModeEClient` and :class:`ModeEServer` (the meter) follow the h11 manner:
``receive_data(bytes, now=...)``, ``next_event()`` returning an event or
:data:`~cosemcast.link.hdlc_state.NEED_DATA`, ``data_to_send()``; timers through
``get_timer()`` / ``handle_timer(now)``. On :class:`SwitchToHdlc` the IO must first send
``data_to_send()`` at the sign-on settings, wait until it has left the line, then switch.
A malformed message raises :class:`~cosemcast.errors.DecodeError`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from cosemcast.errors import DecodeError, EncodeError, RemoteProtocolError, ResponseTimeout
from cosemcast.link.hdlc_state import NEED_DATA, NeedData

__all__ = [
    "ACK",
    "BAUD_RATES",
    "SIGN_ON_BAUD_RATE",
    "Acknowledgement",
    "Identification",
    "IdentificationReceived",
    "ModeEClient",
    "ModeEServer",
    "RequestReceived",
    "SwitchToHdlc",
    "baud_rate_character",
    "decode_acknowledgement",
    "decode_identification",
    "decode_request",
    "encode_request",
]

SIGN_ON_BAUD_RATE: Final = 300
# Baud-rate character Z in modes C and E (brief §3, GXP/GXC tables).
BAUD_RATES: Final = {"0": 300, "1": 600, "2": 1200, "3": 2400, "4": 4800, "5": 9600, "6": 19200}
ACK: Final = 0x06
_CRLF: Final = b"\r\n"
_HDLC_PROCEDURE: Final = "2"  # protocol control character V (brief §3 item 4)
_BINARY_MODE: Final = "2"  # mode control character Y
_HDLC_CAPABLE: Final = "2"  # enhanced identification W (UA page, IEC 62056-21 6.3.2 item 24)
_MAX_LINE: Final = 64  # a longer line without CR LF is garbage
_MAX_ADDRESS: Final = 32  # IEC 62056-21: a device address has up to 32 characters


def baud_rate_character(baud_rate: int) -> str:
    """The Z character of a baud rate of modes C/E."""
    for char, rate in BAUD_RATES.items():
        if rate == baud_rate:
            return char
    raise EncodeError(f"{baud_rate} Bd has no mode E baud-rate character")


def _baud_rate(char: str, offset: int) -> int:
    rate = BAUD_RATES.get(char)
    if rate is None:
        raise DecodeError(
            f"baud-rate character {char!r} is not one of modes C/E",
            offset=offset,
            expected="0 to 6 (300 to 19200 Bd)",
        )
    return rate


def _text(raw: bytes, offset: int, what: str) -> str:
    for i, b in enumerate(raw):
        if not 0x20 <= b <= 0x7E or b in b"/!":
            raise DecodeError(
                f"character 0x{b:02X} in the {what}",
                offset=offset + i,
                expected="printable characters other than / and !",
            )
    return raw.decode("ascii")


# --- messages -----------------------------------------------------------------------------------


def encode_request(device_address: str = "") -> bytes:
    """The request message ``/?[address]!CR LF`` (brief §3 item 2)."""
    raw = device_address.encode("ascii", errors="replace")
    if len(raw) > _MAX_ADDRESS or any(not 0x20 <= b <= 0x7E or b in b"/!?" for b in raw):
        raise EncodeError(f"invalid IEC 62056-21 device address {device_address!r}")
    return b"/?" + raw + b"!" + _CRLF


def decode_request(line: bytes) -> str:
    """The device address of a request message (empty: any device)."""
    if not line.startswith(b"/?"):
        raise DecodeError("not a request message", offset=0, expected="/?")
    if not line.endswith(b"!" + _CRLF):
        raise DecodeError("request without '!' CR LF", offset=len(line), expected="!\\r\\n")
    address = line[2:-3]
    if len(address) > _MAX_ADDRESS:
        raise DecodeError(
            f"device address of {len(address)} characters",
            offset=2,
            expected=f"at most {_MAX_ADDRESS}",
        )
    return _text(address, 2, "device address")


@dataclass(frozen=True, slots=True)
class Identification:
    """The meter's identification message ``/XXXZ[\\W]Ident CR LF`` (brief §3 item 3)."""

    manufacturer: str
    baud_rate_character: str
    identification: str
    enhanced: str | None = _HDLC_CAPABLE

    @property
    def baud_rate(self) -> int:
        return _baud_rate(self.baud_rate_character, 4)

    @property
    def hdlc_capable(self) -> bool:
        """``\\2``: the meter offers the HDLC procedure (mode E)."""
        return self.enhanced == _HDLC_CAPABLE

    def encode(self) -> bytes:
        if len(self.manufacturer) != 3 or not self.manufacturer.isascii():
            raise EncodeError(f"manufacturer id {self.manufacturer!r} is not 3 letters")
        if self.baud_rate_character not in BAUD_RATES:
            raise EncodeError(f"baud-rate character {self.baud_rate_character!r}")
        if self.enhanced is not None and not (len(self.enhanced) == 1 and self.enhanced.isdigit()):
            raise EncodeError(f"enhanced identification {self.enhanced!r} is not a digit")
        enhanced = "" if self.enhanced is None else "\\" + self.enhanced
        text = f"/{self.manufacturer}{self.baud_rate_character}{enhanced}{self.identification}"
        line = text.encode("ascii", errors="replace") + _CRLF
        try:
            same = decode_identification(line) == self  # the receiver's checks
        except DecodeError as exc:
            raise EncodeError(f"identification {text!r} cannot be sent: {exc}") from exc
        if not same:
            raise EncodeError(f"identification {text!r} would be read back differently")
        return line


def decode_identification(line: bytes) -> Identification:
    """Parse ``/XXXZ[\\W]Ident CR LF``; every deviation raises :class:`DecodeError`."""
    if not line.startswith(b"/"):
        raise DecodeError("identification does not start with '/'", offset=0, expected="/")
    if not line.endswith(_CRLF):
        raise DecodeError("identification without CR LF", offset=len(line), expected="\\r\\n")
    if len(line) < 7:
        raise DecodeError("identification too short", offset=len(line), expected="/XXXZ...")
    manufacturer = line[1:4]
    if not all(0x41 <= (b & 0xDF) <= 0x5A for b in manufacturer):
        raise DecodeError(
            f"manufacturer id {manufacturer!r} is not 3 letters", offset=1, expected="A-Z"
        )
    char = chr(line[4])
    _baud_rate(char, 4)
    body, pos, enhanced = line[5:-2], 5, None
    if body[:1] == b"\\":
        if len(body) < 2 or not 0x30 <= body[1] <= 0x39:
            raise DecodeError(
                "enhanced identification without its digit",
                offset=6,
                expected="\\ and a digit",
            )
        enhanced = chr(body[1])
        body, pos = body[2:], 7
    return Identification(
        manufacturer.decode("ascii"), char, _text(body, pos, "identification"), enhanced
    )


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """The acknowledgement/option-select message ``ACK V Z Y CR LF`` (brief §3 item 4)."""

    baud_rate_character: str
    protocol: str = _HDLC_PROCEDURE
    mode: str = _BINARY_MODE

    @property
    def baud_rate(self) -> int:
        return _baud_rate(self.baud_rate_character, 2)

    @property
    def selects_hdlc(self) -> bool:
        """V = 2 and Y = 2: the HDLC procedure in binary mode (mode E)."""
        return self.protocol == _HDLC_PROCEDURE and self.mode == _BINARY_MODE

    def encode(self) -> bytes:
        chars = (self.protocol, self.baud_rate_character, self.mode)
        if not all(len(c) == 1 and c.isdigit() for c in chars):
            raise EncodeError(f"acknowledgement characters {chars!r} are not digits")
        return bytes((ACK,)) + "".join(chars).encode("ascii") + _CRLF


def decode_acknowledgement(line: bytes) -> Acknowledgement:
    if len(line) != 6 or line[0] != ACK or not line.endswith(_CRLF):
        raise DecodeError(
            "not an acknowledgement/option-select message", offset=0, expected="06 V Z Y 0D 0A"
        )
    for i in (1, 2, 3):
        if not 0x30 <= line[i] <= 0x39:
            raise DecodeError(f"character 0x{line[i]:02X}", offset=i, expected="a digit")
    _baud_rate(chr(line[2]), 2)
    return Acknowledgement(chr(line[2]), chr(line[1]), chr(line[3]))


# --- events -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IdentificationReceived:
    identification: Identification


@dataclass(frozen=True, slots=True)
class RequestReceived:
    device_address: str


@dataclass(frozen=True, slots=True)
class SwitchToHdlc:
    """Send ``data_to_send()`` (client: the acknowledgement), then switch to ``baud_rate`` 8N1."""

    baud_rate: int


ModeEEvent = IdentificationReceived | RequestReceived | SwitchToHdlc


class _State(enum.Enum):
    IDLE = "idle"
    AWAIT_IDENTIFICATION = "await_identification"
    AWAIT_REQUEST = "await_request"
    AWAIT_ACKNOWLEDGEMENT = "await_acknowledgement"
    DONE = "done"


_STRIP_PARITY: Final = bytes(b & 0x7F for b in range(256))


class _LineBuffer:
    """Lines of 7-bit characters (the parity bit masked off); the raw bytes stay buffered
    until a line is taken, so what follows the sign-on reaches HDLC unchanged."""

    def __init__(self) -> None:
        self.raw = bytearray()

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self.raw += data

    def skip(self, prefix: bytes) -> None:
        if bytes(self.raw[: len(prefix)]).translate(_STRIP_PARITY) == prefix:
            del self.raw[: len(prefix)]

    def line(self, start: bytes) -> bytes | None:
        """The next line that starts with a byte of ``start``; noise before it is dropped."""
        text = bytes(self.raw).translate(_STRIP_PARITY)
        first = min((i for i in (text.find(c) for c in start) if i >= 0), default=-1)
        if first < 0:
            self.raw.clear()
            return None
        del self.raw[:first]
        text = text[first:]
        end = text.find(_CRLF)
        if end < 0:
            if len(text) > _MAX_LINE:
                self.raw.clear()
                raise DecodeError(
                    f"no CR LF within {_MAX_LINE} characters after {text[:16]!r}",
                    offset=_MAX_LINE,
                    expected="\\r\\n",
                )
            return None
        del self.raw[: end + 2]
        return text[: end + 2]

    def take(self) -> bytes:
        data = bytes(self.raw)
        self.raw.clear()
        return data


class ModeEClient:
    """The client (head-end or hand-held) side of the mode E sign-on.

    ``max_baud_rate`` caps the rate the meter offers; ``response_timeout_s`` is how long to wait
    for the identification before repeating the request, ``max_retries`` times.
    """

    def __init__(
        self,
        *,
        device_address: str = "",
        max_baud_rate: int | None = None,
        response_timeout_s: float = 2.0,
        max_retries: int = 2,
    ) -> None:
        if max_baud_rate is not None and max_baud_rate < SIGN_ON_BAUD_RATE:
            raise ValueError(f"max_baud_rate {max_baud_rate} is below {SIGN_ON_BAUD_RATE} Bd")
        self.request = encode_request(device_address)
        self.max_baud_rate = max_baud_rate
        self.response_timeout_s = response_timeout_s
        self.max_retries = max_retries
        self.identification: Identification | None = None
        self.baud_rate = SIGN_ON_BAUD_RATE
        self._state = _State.IDLE
        self._lines = _LineBuffer()
        self._out = bytearray()
        self._events: list[ModeEEvent] = []
        self._deadline: float | None = None
        self._retries = 0

    def start(self, *, now: float) -> bytes:
        """The request message; send it at 300 Bd 7E1."""
        self._state = _State.AWAIT_IDENTIFICATION
        self._deadline = now + self.response_timeout_s
        self._retries = 0
        return self.request

    def receive_data(self, data: bytes | bytearray | memoryview, *, now: float) -> None:
        self._lines.feed(data)

    def next_event(self) -> ModeEEvent | NeedData:
        """Raises :class:`DecodeError` on a malformed identification and
        :class:`RemoteProtocolError` when the meter does not offer HDLC (no ``\\2``)."""
        if self._events:
            return self._events.pop(0)
        if self._state is not _State.AWAIT_IDENTIFICATION:
            return NEED_DATA
        self._lines.skip(self.request)  # an optical head echoes what it sends
        line = self._lines.line(b"/")
        while line == self.request:
            line = self._lines.line(b"/")
        if line is None:
            return NEED_DATA
        identification = decode_identification(line)
        if not identification.hdlc_capable:
            self._state = _State.IDLE
            self._deadline = None
            raise RemoteProtocolError(
                f"meter {identification.manufacturer} {identification.identification!r} does "
                "not offer the HDLC procedure (no \\2 enhanced identification)"
            )
        limit = min(identification.baud_rate, self.max_baud_rate or identification.baud_rate)
        rate = max(r for r in BAUD_RATES.values() if r <= limit)
        self.identification = identification
        self.baud_rate = rate
        self._out += Acknowledgement(baud_rate_character(rate)).encode()
        self._state = _State.DONE
        self._deadline = None
        self._events.append(SwitchToHdlc(rate))
        return IdentificationReceived(identification)

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def leftover(self) -> bytes:
        """Bytes received after the identification (they belong to the HDLC link)."""
        return self._lines.take()

    def get_timer(self) -> float | None:
        return self._deadline

    def handle_timer(self, now: float) -> bytes:
        """Repeat the request when the identification is late; raises
        :class:`~cosemcast.errors.ResponseTimeout` after ``max_retries`` repeats."""
        if self._deadline is None or now < self._deadline:
            return b""
        self._retries += 1
        if self._retries > self.max_retries:
            self._deadline = None
            self._state = _State.IDLE
            raise ResponseTimeout(
                f"no IEC 62056-21 identification after {self.max_retries + 1} requests"
            )
        self._lines.take()
        self._deadline = now + self.response_timeout_s
        return self.request


class ModeEServer:
    """The meter side: answers a request with its identification and waits for the
    acknowledgement. A request for another device address is ignored; a request or
    acknowledgement that does not parse raises :class:`DecodeError` and the meter waits for a
    new request; an option select other than mode E raises :class:`RemoteProtocolError`.
    """

    def __init__(
        self,
        identification: Identification,
        *,
        device_address: str = "",
        acknowledgement_timeout_s: float = 3.0,
    ) -> None:
        identification.encode()
        self.identification = identification
        self.device_address = device_address
        self.acknowledgement_timeout_s = acknowledgement_timeout_s
        self.baud_rate = SIGN_ON_BAUD_RATE
        self._state = _State.AWAIT_REQUEST
        self._lines = _LineBuffer()
        self._out = bytearray()
        self._deadline: float | None = None
        self._now = 0.0

    def receive_data(self, data: bytes | bytearray | memoryview, *, now: float) -> None:
        self._now = now
        self._lines.feed(data)

    def _addressed_to_us(self, address: str) -> bool:
        # IEC 62056-21: leading zeros of the address may be omitted.
        return not address or address.lstrip("0") == self.device_address.lstrip("0")

    def next_event(self) -> ModeEEvent | NeedData:
        while self._state is not _State.DONE:
            line = self._lines.line(b"/\x06")
            if line is None:
                return NEED_DATA
            event: ModeEEvent | None
            if line.startswith(b"/"):
                event = self._on_request(line)
            elif self._state is _State.AWAIT_ACKNOWLEDGEMENT:
                event = self._on_acknowledgement(line)
            else:
                continue
            if event is not None:
                return event
        return NEED_DATA

    def _on_request(self, line: bytes) -> RequestReceived | None:
        try:
            address = decode_request(line)
        except DecodeError:
            self._restart()
            raise
        if not self._addressed_to_us(address):
            return None
        self._out += self.identification.encode()
        self._state = _State.AWAIT_ACKNOWLEDGEMENT
        self._deadline = self._now + self.acknowledgement_timeout_s
        return RequestReceived(address)

    def _on_acknowledgement(self, line: bytes) -> SwitchToHdlc:
        try:
            ack = decode_acknowledgement(line)
        except DecodeError:
            self._restart()
            raise
        if not ack.selects_hdlc:
            self._restart()
            raise RemoteProtocolError(
                f"option select V={ack.protocol} Y={ack.mode}: only mode E (2, 2) is served"
            )
        if ack.baud_rate > self.identification.baud_rate:
            self._restart()
            raise RemoteProtocolError(
                f"the client selected {ack.baud_rate} Bd, above the "
                f"{self.identification.baud_rate} Bd offered"
            )
        self.baud_rate = ack.baud_rate
        self._state = _State.DONE
        self._deadline = None
        return SwitchToHdlc(ack.baud_rate)

    def _restart(self) -> None:
        self._state = _State.AWAIT_REQUEST
        self._deadline = None

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def leftover(self) -> bytes:
        """Bytes received after the acknowledgement (they belong to the HDLC link)."""
        return self._lines.take()

    def get_timer(self) -> float | None:
        return self._deadline

    def handle_timer(self, now: float) -> None:
        """No acknowledgement in time: wait for a new request."""
        if self._deadline is not None and now >= self._deadline:
            self._restart()
