"""The small subset of BER (X.690) that the ACSE APDUs use (brief §4.2).

Only definite lengths: the short form (``< 0x80``) and the long form ``0x81 n``, ``0x82 nn``,
... up to four length octets. A long form where the short one would do (``0x81 0x05``) is
accepted, because real meters send it; we always write the shortest form. The indefinite form
(``0x80``) is a DecodeError. Identifier octets may use the high-tag-number form
(``xx 1F ...``) so that unknown elements can be skipped; every tag the ACSE codec knows fits in
one octet.
"""

from __future__ import annotations

import enum
from typing import TypeVar

from cosemcast.apdu.base import Reader
from cosemcast.axdr.codec import encode_length

__all__ = [
    "INTEGER",
    "OCTET_STRING",
    "OID",
    "encode_bit_string",
    "encode_integer",
    "expect",
    "explicit_integer",
    "explicit_octets",
    "read_bit_string",
    "read_element",
    "read_enum",
    "read_explicit_integer",
    "read_explicit_octets",
    "read_fields",
    "read_integer",
    "read_oid",
    "tlv",
]

INTEGER = 0x02
OCTET_STRING = 0x04
OID = 0x06

_E = TypeVar("_E", bound=enum.IntEnum)

_MAX_TAG_OCTETS = 4


def tlv(tag: int, content: bytes) -> bytes:
    """One element with a single-octet identifier and the shortest definite length."""
    return bytes((tag,)) + encode_length(len(content)) + content


def read_element(reader: Reader, what: str = "a BER element") -> tuple[int, int, Reader]:
    """Read identifier and length; return ``(tag, start, content_reader)``.

    ``tag`` is the identifier octets as a big-endian number (the octet itself for low tag
    numbers); ``start`` is the offset of the identifier, so ``buf[start:content.end]`` is the
    raw element. The content is skipped in ``reader``.
    """
    start = reader.pos
    tag = reader.u8(f"the tag of {what}")
    if tag & 0x1F == 0x1F:
        for _ in range(_MAX_TAG_OCTETS):
            octet = reader.u8(f"a tag octet of {what}")
            tag = (tag << 8) | octet
            if not octet & 0x80:
                break
        else:
            raise reader.fail("BER tag is longer than 5 octets", expected=what, offset=start)
    length = reader.length()
    return tag, start, reader.sub(length, what)


def expect(reader: Reader, tag: int, what: str) -> Reader:
    """Read an element that must have identifier ``tag``; return its content reader."""
    pos = reader.pos
    got, _, content = read_element(reader, what)
    if got != tag:
        raise reader.fail(
            f"expected tag 0x{tag:02X} for {what}, got 0x{got:02X}", expected=what, offset=pos
        )
    return content


def read_integer(reader: Reader, what: str) -> int:
    """The whole content as a two's-complement INTEGER (at least one octet)."""
    if reader.at_end():
        raise reader.fail(f"empty INTEGER for {what}", expected=what)
    return int.from_bytes(reader.rest(), "big", signed=True)


def encode_integer(value: int) -> bytes:
    """The shortest two's-complement content octets of an INTEGER."""
    return value.to_bytes(max(1, (value + (value < 0)).bit_length() // 8 + 1), "big", signed=True)


def read_bit_string(reader: Reader, what: str) -> tuple[int, bytes]:
    """BIT STRING content: ``(unused_bits, data)``; unused bits must be 0..7 (0 if no data)."""
    pos = reader.pos
    unused = reader.u8(f"the unused-bits octet of {what}")
    data = reader.rest()
    if unused > 7 or (unused and not data):
        raise reader.fail(
            f"invalid BIT STRING: {unused} unused bits in {len(data)} octets",
            expected=what,
            offset=pos,
        )
    return unused, data


def encode_bit_string(bits: int, width: int) -> bytes:
    """BIT STRING content of named bits (bit 0 = ``1 << (width - 1)``), trailing zeros cut.

    ``width`` is a multiple of 8. X.690 §11.2.2 (DER for named bit lists): the encoding ends
    at the last set bit, so ``0x80`` of width 8 is ``07 80``.
    """
    if bits == 0:
        return b"\x00"
    used = width - ((bits & -bits).bit_length() - 1)
    nbytes = (used + 7) // 8
    return bytes((nbytes * 8 - used,)) + (bits >> (width - nbytes * 8)).to_bytes(nbytes, "big")


def explicit_octets(tag: int, value: bytes) -> bytes:
    """``[n] EXPLICIT OCTET STRING``: ``tag len 04 len value``."""
    return tlv(tag, tlv(OCTET_STRING, value))


def explicit_integer(tag: int, value: int) -> bytes:
    """``[n] EXPLICIT INTEGER``: ``tag len 02 len value``."""
    return tlv(tag, tlv(INTEGER, encode_integer(value)))


def read_explicit_octets(reader: Reader, what: str) -> bytes:
    """The whole content must be one OCTET STRING element; return its octets."""
    value = expect(reader, OCTET_STRING, what).rest()
    reader.expect_end()
    return value


def read_explicit_integer(reader: Reader, what: str) -> int:
    """The whole content must be one INTEGER element; return its value."""
    value = read_integer(expect(reader, INTEGER, what), what)
    reader.expect_end()
    return value


def read_oid(reader: Reader, what: str) -> bytes:
    """OBJECT IDENTIFIER content octets (kept raw; at least one octet)."""
    if reader.at_end():
        raise reader.fail(f"empty OBJECT IDENTIFIER for {what}", expected=what)
    return reader.rest()


def read_enum(cls: type[_E], value: int, reader: Reader, pos: int, what: str) -> _E:
    """``cls(value)``, or a DecodeError at ``pos`` naming ``what``."""
    try:
        return cls(value)
    except ValueError as exc:
        raise reader.fail(f"unknown {what} {value}", expected=what, offset=pos) from exc


def read_fields(
    content: Reader, known: frozenset[int], what: str
) -> tuple[dict[int, Reader], tuple[bytes, ...]]:
    """Split a SEQUENCE body into ``{tag: content}`` for ``known`` tags and raw others.

    A known tag seen twice is a DecodeError; elements may come in any order.
    """
    fields: dict[int, Reader] = {}
    other: list[bytes] = []
    while not content.at_end():
        pos = content.pos
        tag, start, sub = read_element(content, f"an element of the {what}")
        if tag in known:
            if tag in fields:
                raise content.fail(f"tag 0x{tag:02X} appears twice in the {what}", offset=pos)
            fields[tag] = sub
        else:
            other.append(content.buf[start : sub.end])
    return fields, tuple(other)
