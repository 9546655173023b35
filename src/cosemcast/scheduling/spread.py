"""The deterministic upstream offset of a meter (specs/scheduling.md §3; EP 2671052 [0045]).

Theory of operation. Every meter of a fleet that reports at the same nominal instant (the
quarter hour) or answers the same broadcast would transmit in the same second. Each meter
instead adds an offset in ``[0, window_s)`` seconds that is a fixed function of what the patent
lists in [0045]: its unique identifier (the system title), its firmware version and its tariff
subscription. The head-end can compute the same offset, so it knows when to expect each meter
and notices one that stays silent; a meter keeps its slot from one period to the next.

The function: ``SHA-256(label ‖ inputs ‖ counter)`` read as four big-endian 64-bit words;
the first word below ``2^64 - (2^64 mod window_s)`` gives ``word mod window_s`` (rejection
sampling, so every offset is equally likely: no modulo bias). A rejection happens with
probability below ``window_s / 2^64`` (< 2^-32); the next word, then the next counter, is
used. The inputs are length-prefixed so that no two different triples hash alike.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MAX_WINDOW_S",
    "SPREAD_LABEL",
    "MeterIdentity",
    "spread_input",
    "spread_offset",
    "uniform_below",
]

SPREAD_LABEL: Final = b"cosemcast/upstream-spread/v1\x00"
# Windows are double-long-unsigned seconds on the wire (specs §4).
MAX_WINDOW_S: Final = 0xFFFF_FFFF
_WORDS: Final = struct.Struct(">4Q")
_U16: Final = struct.Struct(">H")
_U32: Final = struct.Struct(">I")
_SPACE: Final = 1 << 64


def _as_bytes(value: bytes | str, name: str) -> bytes:
    raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if len(raw) > 0xFFFF:
        raise ValueError(f"{name} is {len(raw)} bytes, at most 65535")
    return raw


def spread_input(system_title: bytes, firmware_version: bytes | str, tariff: bytes | str) -> bytes:
    """The hashed message without its counter: ``label ‖ 08 ‖ ST ‖ u16 n ‖ firmware ‖ u16 m ‖
    tariff`` (strings as UTF-8)."""
    if len(system_title) != 8:
        raise ValueError(f"a system title is 8 bytes, got {len(system_title)}")
    firmware = _as_bytes(firmware_version, "firmware_version")
    plan = _as_bytes(tariff, "tariff")
    return b"".join(
        (
            SPREAD_LABEL,
            b"\x08",
            bytes(system_title),
            _U16.pack(len(firmware)),
            firmware,
            _U16.pack(len(plan)),
            plan,
        )
    )


def _words(message: bytes) -> Iterator[int]:
    counter = 0
    while True:
        yield from _WORDS.unpack(hashlib.sha256(message + _U32.pack(counter)).digest())
        counter += 1


def uniform_below(words: Iterable[int], bound: int) -> int:
    """The first 64-bit word below the largest multiple of ``bound``, reduced mod ``bound``."""
    if not 1 <= bound <= _SPACE:
        raise ValueError(f"bound must be in 1..2^64, got {bound}")
    limit = _SPACE - _SPACE % bound
    for word in words:
        if word < limit:
            return word % bound
    raise ValueError("the word source ran out")


def spread_offset(
    system_title: bytes, firmware_version: bytes | str, tariff: bytes | str, window_s: int
) -> int:
    """This meter's offset in ``[0, window_s)`` seconds; 0 when ``window_s`` is 0 or 1."""
    if not 0 <= window_s <= MAX_WINDOW_S:
        raise ValueError(f"window_s must be in 0..{MAX_WINDOW_S}, got {window_s}")
    message = spread_input(system_title, firmware_version, tariff)
    if window_s <= 1:
        return 0
    return uniform_below(_words(message), window_s)


@dataclass(frozen=True, slots=True)
class MeterIdentity:
    """The inputs of :func:`spread_offset`: system title, active firmware identifier
    (1-0:0.2.0.255) and tariff subscription (Activity calendar calendar_name_active)."""

    system_title: bytes
    firmware_version: bytes
    tariff: bytes

    def __post_init__(self) -> None:
        spread_input(self.system_title, self.firmware_version, self.tariff)

    def offset(self, window_s: int) -> int:
        return spread_offset(self.system_title, self.firmware_version, self.tariff, window_s)
