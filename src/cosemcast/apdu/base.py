"""Shared machinery of the APDU codecs: the tag registry and a bounds-checked reader.

Every APDU is a frozen, slotted dataclass with a class attribute ``TAG`` (its first byte)
and an ``encode() -> bytes`` method. Each APDU module registers a decoder for its tags with
:func:`register`; :func:`decode_apdu` dispatches on the first byte. Decoders read through
:class:`Reader`, which checks every read against the end of the buffer and raises
:class:`~cosemcast.errors.DecodeError` with the absolute offset and what was expected, so
arbitrary bytes can only ever produce a ``DecodeError``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import ClassVar, Protocol, TypeVar

from cosemcast.axdr.codec import decode_data_at, decode_length, encode_length
from cosemcast.axdr.types import Data
from cosemcast.errors import DecodeError
from cosemcast.obis import Obis

__all__ = [
    "Apdu",
    "Reader",
    "decode_apdu",
    "encode_octet_string",
    "register",
    "registered_tags",
]

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")


class Apdu(Protocol):
    """What every APDU dataclass provides."""

    TAG: ClassVar[int]

    def encode(self) -> bytes: ...


_A = TypeVar("_A")
_DECODERS: dict[int, Callable[[Reader], Apdu]] = {}


def register(*tags: int) -> Callable[[Callable[[Reader], _A]], Callable[[Reader], _A]]:
    """Decorator: register ``fn(reader) -> Apdu`` as the decoder of APDUs with these tags.

    The reader is positioned just after the tag byte; the decoder must consume the APDU
    exactly (``decode_apdu`` rejects trailing bytes).
    """

    def deco(fn: Callable[[Reader], _A]) -> Callable[[Reader], _A]:
        for tag in tags:
            if tag in _DECODERS:
                raise RuntimeError(f"APDU tag 0x{tag:02X} registered twice")
            _DECODERS[tag] = fn  # type: ignore[assignment]
        return fn

    return deco


def registered_tags() -> frozenset[int]:
    return frozenset(_DECODERS)


def decode_apdu(data: bytes | bytearray | memoryview) -> Apdu:
    """Decode one whole APDU (ACSE or xDLMS, plain or ciphered) from ``data``."""
    if not _loaded:
        _load_all()
    buf = data if type(data) is bytes else bytes(data)
    if not buf:
        raise DecodeError("empty input, expected an APDU tag", offset=0, expected="APDU tag")
    decoder = _DECODERS.get(buf[0])
    if decoder is None:
        raise DecodeError(f"unknown APDU tag 0x{buf[0]:02X}", offset=0, expected="an APDU tag")
    reader = Reader(buf, 1)
    apdu = decoder(reader)
    reader.expect_end()
    return apdu


_loaded = False


def _load_all() -> None:
    # Importing the APDU modules registers their decoders.
    global _loaded
    import cosemcast.apdu  # noqa: F401

    _loaded = True


def encode_octet_string(value: bytes) -> bytes:
    """A-XDR OCTET STRING without a Data tag: length ‖ bytes."""
    return encode_length(len(value)) + value


class Reader:
    """A cursor over ``buf[pos:end]`` whose every read is bounds-checked."""

    __slots__ = ("buf", "end", "pos")

    def __init__(self, buf: bytes, pos: int = 0, end: int | None = None) -> None:
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end

    def remaining(self) -> int:
        return self.end - self.pos

    def at_end(self) -> bool:
        return self.pos >= self.end

    def fail(
        self, message: str, expected: str | None = None, offset: int | None = None
    ) -> DecodeError:
        return DecodeError(
            message, offset=self.pos if offset is None else offset, expected=expected
        )

    def _need(self, n: int, what: str) -> int:
        pos = self.pos
        if pos + n > self.end:
            raise DecodeError(f"truncated input, expected {what}", offset=pos, expected=what)
        self.pos = pos + n
        return pos

    def u8(self, what: str = "a byte") -> int:
        pos = self._need(1, what)
        return self.buf[pos]

    def i8(self, what: str = "a signed byte") -> int:
        pos = self._need(1, what)
        return int(_I8.unpack_from(self.buf, pos)[0])

    def u16(self, what: str = "2 bytes") -> int:
        pos = self._need(2, what)
        return int(_U16.unpack_from(self.buf, pos)[0])

    def i16(self, what: str = "2 bytes") -> int:
        pos = self._need(2, what)
        return int(_I16.unpack_from(self.buf, pos)[0])

    def u32(self, what: str = "4 bytes") -> int:
        pos = self._need(4, what)
        return int(_U32.unpack_from(self.buf, pos)[0])

    def raw(self, n: int, what: str = "bytes") -> bytes:
        pos = self._need(n, f"{n} {what}")
        return self.buf[pos : pos + n]

    def peek(self, what: str = "a byte") -> int:
        if self.pos >= self.end:
            raise DecodeError(f"truncated input, expected {what}", offset=self.pos, expected=what)
        return self.buf[self.pos]

    def length(self) -> int:
        n, self.pos = decode_length(self.buf, self.pos, self.end)
        return n

    def octet_string(self, what: str = "an octet-string") -> bytes:
        n = self.length()
        return self.raw(n, f"bytes of {what}")

    def obis(self) -> Obis:
        return Obis.from_bytes(self.raw(6, "OBIS bytes"))

    def optional(self, what: str = "an OPTIONAL flag") -> bool:
        """OPTIONAL/DEFAULT presence flag: 00 absent, 01 present (brief §9.1)."""
        pos = self.pos
        flag = self.u8(what)
        if flag > 1:
            raise DecodeError(
                f"presence flag 0x{flag:02X} is neither 00 nor 01", offset=pos, expected=what
            )
        return flag == 1

    def boolean(self, what: str = "a boolean") -> bool:
        return self.u8(what) != 0

    def data(self) -> Data:
        value, self.pos = decode_data_at(self.buf, self.pos, self.end)
        return value

    def rest(self) -> bytes:
        pos, self.pos = self.pos, self.end
        return self.buf[pos : self.end]

    def sub(self, n: int, what: str) -> Reader:
        """A reader over the next ``n`` bytes (offsets stay absolute); skips them here."""
        pos = self._need(n, f"{n} bytes of {what}")
        return Reader(self.buf, pos, pos + n)

    def expect_end(self) -> None:
        if self.pos != self.end:
            raise DecodeError(
                f"{self.end - self.pos} unexpected trailing bytes", offset=self.pos, expected="end"
            )
