"""Strict reading of the fixed-shape A-XDR structures of specs/supervision.md §5.1 and §7.1.

The bodies are signed or MACed as bytes, so the decoder accepts exactly one encoding per value:
it decodes with the general A-XDR codec, checks the shape element by element (exact wire type,
octet-string length), then re-encodes and requires the same bytes (no long-form lengths, no
trailing data).
"""

from __future__ import annotations

from collections.abc import Sequence

from cosemcast.axdr import Data, OctetString, Structure, decode_data, encode_data
from cosemcast.errors import DecodeError

__all__ = ["Shape", "as_bytes", "as_int", "read_structure"]

# An element is described by its A-XDR class, or by an octet-string length.
Shape = Sequence[type | int]


def read_structure(raw: bytes, shape: Shape, what: str) -> tuple[Data, ...]:
    """Decode ``raw`` as a structure of exactly ``shape``; raise :class:`DecodeError` otherwise."""
    value = decode_data(raw)
    if type(value) is not Structure or len(value) != len(shape):
        raise DecodeError(
            f"{what} is not a structure of {len(shape)} elements",
            offset=0,
            expected=f"02 {len(shape):02X}",
        )
    for index, (element, expected) in enumerate(zip(value, shape, strict=True)):
        if isinstance(expected, int):
            if type(element) is not OctetString or len(element) != expected:
                raise DecodeError(
                    f"{what} element {index} is not a {expected}-byte octet-string",
                    expected=f"09 {expected:02X}",
                )
        elif type(element) is not expected:
            raise DecodeError(
                f"{what} element {index} is a {type(element).__name__}",
                expected=expected.__name__,
            )
    if encode_data(value) != bytes(raw):
        raise DecodeError(f"{what} is not in its canonical encoding", expected="shortest lengths")
    return tuple(value)


def as_int(value: Data) -> int:
    """An integer element already checked by :func:`read_structure`, as a plain ``int``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise DecodeError(f"expected an integer element, got {type(value).__name__}")
    return int(value)


def as_bytes(value: Data) -> bytes:
    """An octet-string element already checked by :func:`read_structure`, as ``bytes``."""
    if not isinstance(value, bytes):
        raise DecodeError(f"expected an octet-string element, got {type(value).__name__}")
    return bytes(value)
