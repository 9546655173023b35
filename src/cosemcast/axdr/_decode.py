"""A-XDR decoding of COSEM Data (IEC 61334-6 A-XDR as used by the Blue Book; brief §9).

Theory of operation. The decoder is hand-written for speed (STYLE.md §6): one function per
tag, found through a 256-entry table, each taking ``(buf, pos, end, depth)`` and returning
``(value, new_pos)``. Every read is bounds-checked against ``end`` before it happens, so any
malformed input raises :class:`~cosemcast.errors.DecodeError` naming the offset and what was
expected there; nesting is limited to :data:`MAX_DEPTH`. Containers decode fixed-width
scalars inline, and flat structures whose layout was seen before are read with a learned
row template (one ``struct`` call; see :class:`_RowTemplate`).

Length rule (§9.1): a length or count below 0x80 is one byte; otherwise ``0x80 | n`` followed
by ``n`` big-endian bytes (we read up to n = 4).
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable
from typing import Any

from cosemcast.axdr.types import (
    DONT_CARE,
    Array,
    Bcd,
    BitString,
    ClockStatus,
    CompactArray,
    CosemDate,
    CosemDateTime,
    CosemTime,
    Data,
    DataType,
    DeltaDoubleLong,
    DeltaDoubleLongUnsigned,
    DeltaInteger,
    DeltaLong,
    DeltaLongUnsigned,
    DeltaUnsigned,
    DoubleLong,
    DoubleLongUnsigned,
    Enumerated,
    Float32,
    Float64,
    Integer,
    Long,
    Long64,
    Long64Unsigned,
    LongUnsigned,
    OctetString,
    Structure,
    TypeDescription,
    Unsigned,
    Utf8String,
    VisibleString,
)
from cosemcast.errors import DecodeError

__all__ = [
    "MAX_DEPTH",
    "decode_data",
    "decode_data_at",
    "decode_datetime_bytes",
    "decode_length",
]

MAX_DEPTH = 32

_Buf = bytes
_Decoder = Callable[[_Buf, int, int, int], tuple[Any, int]]

_S_I8 = struct.Struct(">b")
_S_I16 = struct.Struct(">h")
_S_U16 = struct.Struct(">H")
_S_I32 = struct.Struct(">i")
_S_U32 = struct.Struct(">I")
_S_I64 = struct.Struct(">q")
_S_U64 = struct.Struct(">Q")
_S_F32 = struct.Struct(">f")
_S_F64 = struct.Struct(">d")
_S_DT = struct.Struct(">HBBBBBBBhB")


def _truncated(pos: int, what: str) -> DecodeError:
    return DecodeError(f"truncated input, expected {what}", offset=pos, expected=what)


# --- lengths ---------------------------------------------------------------------------------


def decode_length(buf: _Buf, pos: int, end: int) -> tuple[int, int]:
    """Read an A-XDR/BER length at ``pos``; return ``(length, next_pos)``."""
    if pos >= end:
        raise _truncated(pos, "a length")
    first = buf[pos]
    if first < 0x80:
        return first, pos + 1
    n = first & 0x7F
    if n == 0 or n > 4:
        raise DecodeError(
            f"invalid length prefix 0x{first:02X}", offset=pos, expected="a length of 1..4 bytes"
        )
    stop = pos + 1 + n
    if stop > end:
        raise _truncated(pos + 1, f"{n} length bytes")
    return int.from_bytes(buf[pos + 1 : stop], "big"), stop


# --- decoding --------------------------------------------------------------------------------

_TABLE: list[_Decoder] = []


def _unknown(buf: _Buf, pos: int, end: int, depth: int) -> tuple[Any, int]:
    tag = buf[pos - 1]
    raise DecodeError(f"unknown data tag 0x{tag:02X}", offset=pos - 1, expected="a Data tag")


def _fixed(cls: Callable[[Any], Any], st: struct.Struct, what: str) -> _Decoder:
    size = st.size
    unpack = st.unpack_from

    def dec(buf: _Buf, pos: int, end: int, depth: int) -> tuple[Any, int]:
        stop = pos + size
        if stop > end:
            raise _truncated(pos, what)
        return cls(unpack(buf, pos)[0]), stop

    return dec


def _byte(cls: Callable[[int], Any], what: str) -> _Decoder:
    def dec(buf: _Buf, pos: int, end: int, depth: int) -> tuple[Any, int]:
        if pos >= end:
            raise _truncated(pos, what)
        return cls(buf[pos]), pos + 1

    return dec


def _null(buf: _Buf, pos: int, end: int, depth: int) -> tuple[Any, int]:
    return None, pos


def _dont_care(buf: _Buf, pos: int, end: int, depth: int) -> tuple[Any, int]:
    return DONT_CARE, pos


def _boolean(buf: _Buf, pos: int, end: int, depth: int) -> tuple[Any, int]:
    if pos >= end:
        raise _truncated(pos, "a boolean byte")
    return buf[pos] != 0, pos + 1


_OCT = OctetString
# tag -> (class, unpack_from, size) for the fixed-width scalars decoded inline in containers.
_FIXED: list[tuple[Callable[[Any], Any], Callable[[Any, int], tuple[Any, ...]], int] | None] = [
    None
] * 256
for _tag, _cls, _st in (
    (DataType.DOUBLE_LONG, DoubleLong, _S_I32),
    (DataType.DOUBLE_LONG_UNSIGNED, DoubleLongUnsigned, _S_U32),
    (DataType.INTEGER, Integer, _S_I8),
    (DataType.LONG, Long, _S_I16),
    (DataType.UNSIGNED, Unsigned, struct.Struct(">B")),
    (DataType.LONG_UNSIGNED, LongUnsigned, _S_U16),
    (DataType.LONG64, Long64, _S_I64),
    (DataType.LONG64_UNSIGNED, Long64Unsigned, _S_U64),
    (DataType.ENUM, Enumerated, struct.Struct(">B")),
    (DataType.FLOAT32, Float32, _S_F32),
    (DataType.FLOAT64, Float64, _S_F64),
):
    _FIXED[_tag] = (_cls, _st.unpack_from, _st.size)


def _sequence(cls: type[Array] | type[Structure], what: str) -> _Decoder:
    def dec(buf: _Buf, pos: int, end: int, depth: int) -> tuple[Any, int]:
        if depth >= MAX_DEPTH:
            raise DecodeError(f"data nested deeper than {MAX_DEPTH} levels", offset=pos)
        start = pos
        n, pos = decode_length(buf, pos, end)
        if n > end - pos:
            raise DecodeError(
                f"{what} of {n} elements cannot fit in the {end - pos} bytes left",
                offset=start,
                expected=f"{n} elements",
            )
        depth += 1
        items: list[Any] = []
        append = items.append
        table = _TABLE
        # Inline fast paths: fixed-width scalars and short octet-strings, which dominate
        # profile rows and notifications, skip the per-element function call.
        fixed = _FIXED
        for _ in range(n):
            if pos >= end:
                raise _truncated(pos, f"an element of the {what}")
            tag = buf[pos]
            spec = fixed[tag]
            if spec is not None:
                kind, unpack, size = spec
                stop = pos + 1 + size
                if stop > end:
                    raise _truncated(pos + 1, f"{size} bytes of {kind.__name__}")
                append(kind(unpack(buf, pos + 1)[0]))
                pos = stop
            elif tag == 9 and pos + 1 < end and buf[pos + 1] < 0x80:
                start_oct = pos + 2
                pos = start_oct + buf[pos + 1]
                if pos > end:
                    raise _truncated(start_oct, f"an octet-string of {pos - start_oct} bytes")
                append(_OCT(buf[start_oct:pos]))
            else:
                value, pos = table[tag](buf, pos + 1, end, depth)
                append(value)
        return cls(items), pos

    return dec


class _RowTemplate:
    """The byte layout of one flat structure, to decode rows of the same shape in one step.

    Profile buffers and pushes are arrays of structures whose rows share one layout: the
    same tags, and octet-strings of the same length. The template records every layout byte
    (the structure header, each tag, each octet-string length) with its offset; a later row
    whose bytes at those offsets are equal has, by the A-XDR rules, exactly this layout, so
    its values are read with one precompiled ``struct`` call. Any other row is decoded by the
    generic path. Only scalars of fixed width and octet-strings shorter than 128 bytes qualify.
    """

    __slots__ = ("build", "check", "expected", "length", "unpack")

    def __init__(self, buf: _Buf, pos: int, end: int) -> None:
        if pos + 2 > end or buf[pos] != DataType.STRUCTURE or buf[pos + 1] >= 0x80:
            raise _NoTemplate
        count = buf[pos + 1]
        offsets = [0, 1]
        fmt = ">"
        kinds: list[Callable[[Any], Any]] = []
        p = pos + 2
        for _ in range(count):
            if p >= end:
                raise _NoTemplate
            tag = buf[p]
            spec = _FIXED[tag]
            offsets.append(p - pos)
            if spec is not None:
                kind, _unpack, size = spec
                fmt += "x" + _FORMAT_CHAR[tag]
                p += 1 + size
            elif tag == DataType.OCTET_STRING and p + 1 < end and buf[p + 1] < 0x80:
                offsets.append(p + 1 - pos)
                size = buf[p + 1]
                kind = _OCT
                fmt += f"xx{size}s"
                p += 2 + size
            else:
                raise _NoTemplate
            kinds.append(kind)
        if p > end or len(offsets) < 3:
            raise _NoTemplate
        self.length = p - pos
        self.check = operator.itemgetter(*offsets)
        self.expected = self.check(buf[pos:p])
        self.unpack = struct.Struct(fmt[0] + "xx" + fmt[1:]).unpack_from
        # A constructor specialised to this row's types, compiled once per template.
        namespace: dict[str, Any] = {"Structure": Structure}
        args = []
        for i, kind in enumerate(kinds):
            namespace[f"k{i}"] = kind
            args.append(f"k{i}(v[{i}])")
        exec(f"def build(v):\n    return Structure(({', '.join(args)},))", namespace)
        self.build = namespace["build"]


class _NoTemplate(Exception):
    pass


_FORMAT_CHAR: dict[int, str] = {
    DataType.DOUBLE_LONG: "i",
    DataType.DOUBLE_LONG_UNSIGNED: "I",
    DataType.INTEGER: "b",
    DataType.LONG: "h",
    DataType.UNSIGNED: "B",
    DataType.LONG_UNSIGNED: "H",
    DataType.LONG64: "q",
    DataType.LONG64_UNSIGNED: "Q",
    DataType.ENUM: "B",
    DataType.FLOAT32: "f",
    DataType.FLOAT64: "d",
}


# Learned row templates, by structure element count. Bounded: at most _MAX_SHAPES layouts
# per count are ever compiled, and a count whose structures are not flat stops being tried.
_MAX_SHAPES = 4
_SHAPES: dict[int, list[_RowTemplate]] = {}
_NOT_FLAT: dict[int, int] = {}


def _match_template(buf: _Buf, base: int, end: int, count: int) -> tuple[Any, int] | None:
    """Decode the structure at ``base`` (its tag) with a learned template, if one fits."""
    for template in _SHAPES.get(count, ()):
        stop = base + template.length
        if stop <= end and template.check(buf[base:stop]) == template.expected:
            return template.build(template.unpack(buf, base)), stop
    return None


def _learn_template(buf: _Buf, base: int, end: int, count: int) -> None:
    shapes = _SHAPES.setdefault(count, [])
    if len(shapes) >= _MAX_SHAPES or _NOT_FLAT.get(count, 0) > 16:
        return
    try:
        shapes.append(_RowTemplate(buf, base, end))
    except _NoTemplate:
        _NOT_FLAT[count] = _NOT_FLAT.get(count, 0) + 1


def _decode_structure_fast(buf: _Buf, pos: int, end: int, depth: int) -> tuple[Any, int]:
    """structure: a learned template when one fits, else the generic path (then learn)."""
    if pos < end:
        count = buf[pos]
        if count < 0x80 and count >= 2:
            hit = _match_template(buf, pos - 1, end, count)
            if hit is not None:
                return hit
            value, stop = _decode_structure_generic(buf, pos, end, depth)
            _learn_template(buf, pos - 1, stop, count)
            return value, stop
    return _decode_structure_generic(buf, pos, end, depth)


def _octets(buf: _Buf, pos: int, end: int, depth: int) -> tuple[Any, int]:
    n, pos = decode_length(buf, pos, end)
    stop = pos + n
    if stop > end:
        raise _truncated(pos, f"an octet-string of {n} bytes")
    return OctetString(buf[pos:stop]), stop


def _visible(buf: _Buf, pos: int, end: int, depth: int) -> tuple[Any, int]:
    n, pos = decode_length(buf, pos, end)
    stop = pos + n
    if stop > end:
        raise _truncated(pos, f"a visible-string of {n} bytes")
    return VisibleString(buf[pos:stop].decode("latin-1")), stop


def _utf8(buf: _Buf, pos: int, end: int, depth: int) -> tuple[Any, int]:
    n, pos = decode_length(buf, pos, end)
    stop = pos + n
    if stop > end:
        raise _truncated(pos, f"a utf8-string of {n} bytes")
    try:
        text = buf[pos:stop].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(
            "utf8-string is not valid UTF-8", offset=pos + exc.start, expected="UTF-8"
        ) from exc
    return Utf8String(text), stop


def _bit_string(buf: _Buf, pos: int, end: int, depth: int) -> tuple[Any, int]:
    bits, pos = decode_length(buf, pos, end)
    n = (bits + 7) // 8
    stop = pos + n
    if stop > end:
        raise _truncated(pos, f"a bit-string of {bits} bits")
    return BitString(bytes(buf[pos:stop]), bits), stop


_STATUS = [ClockStatus(i) for i in range(256)]


def _dt_fields(buf: _Buf, pos: int) -> CosemDateTime:
    y, mo, d, wd, h, mi, s, hs, dev, st = _S_DT.unpack_from(buf, pos)
    return CosemDateTime(
        None if y == 0xFFFF else y,
        None if mo == 0xFF else mo,
        None if d == 0xFF else d,
        None if wd == 0xFF else wd,
        None if h == 0xFF else h,
        None if mi == 0xFF else mi,
        None if s == 0xFF else s,
        None if hs == 0xFF else hs,
        None if dev == -0x8000 else dev,
        None if st == 0xFF else _STATUS[st],
    )


def _date_time(buf: _Buf, pos: int, end: int, depth: int) -> tuple[Any, int]:
    if pos + 12 > end:
        raise _truncated(pos, "12 date-time bytes")
    return _dt_fields(buf, pos), pos + 12


def _date(buf: _Buf, pos: int, end: int, depth: int) -> tuple[Any, int]:
    if pos + 5 > end:
        raise _truncated(pos, "5 date bytes")
    y = (buf[pos] << 8) | buf[pos + 1]
    mo, d, wd = buf[pos + 2], buf[pos + 3], buf[pos + 4]
    value = CosemDate(
        None if y == 0xFFFF else y,
        None if mo == 0xFF else mo,
        None if d == 0xFF else d,
        None if wd == 0xFF else wd,
    )
    return value, pos + 5


def _time(buf: _Buf, pos: int, end: int, depth: int) -> tuple[Any, int]:
    if pos + 4 > end:
        raise _truncated(pos, "4 time bytes")
    h, mi, s, hs = buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]
    value = CosemTime(
        None if h == 0xFF else h,
        None if mi == 0xFF else mi,
        None if s == 0xFF else s,
        None if hs == 0xFF else hs,
    )
    return value, pos + 4


def _type_description(buf: _Buf, pos: int, end: int, depth: int) -> tuple[TypeDescription, int]:
    if depth >= MAX_DEPTH:
        raise DecodeError(f"type description nested deeper than {MAX_DEPTH} levels", offset=pos)
    if pos >= end:
        raise _truncated(pos, "a type description")
    tag = buf[pos]
    try:
        dtype = DataType(tag)
    except ValueError:
        raise DecodeError(
            f"unknown type 0x{tag:02X} in a compact-array description",
            offset=pos,
            expected="a Data type",
        ) from None
    pos += 1
    if dtype is DataType.ARRAY:
        if pos + 2 > end:
            raise _truncated(pos, "the element count of an array description")
        count = (buf[pos] << 8) | buf[pos + 1]
        element, pos = _type_description(buf, pos + 2, end, depth + 1)
        return TypeDescription(dtype, count=count, element=element), pos
    if dtype is DataType.STRUCTURE:
        n, pos = decode_length(buf, pos, end)
        if n > end - pos:
            raise _truncated(pos, f"{n} member descriptions")
        members = []
        for _ in range(n):
            member, pos = _type_description(buf, pos, end, depth + 1)
            members.append(member)
        return TypeDescription(dtype, members=tuple(members)), pos
    if dtype is DataType.COMPACT_ARRAY:
        raise DecodeError("a compact-array cannot contain a compact-array", offset=pos - 1)
    return TypeDescription(dtype), pos


def _untagged(desc: TypeDescription, buf: _Buf, pos: int, end: int, depth: int) -> tuple[Any, int]:
    """Decode one compact-array element of type ``desc`` (no tag on the wire)."""
    if depth >= MAX_DEPTH:
        raise DecodeError(f"data nested deeper than {MAX_DEPTH} levels", offset=pos)
    tag = desc.tag
    if tag == DataType.ARRAY:
        assert desc.element is not None
        items = []
        for _ in range(desc.count):
            value, pos = _untagged(desc.element, buf, pos, end, depth + 1)
            items.append(value)
        return Array(items), pos
    if tag == DataType.STRUCTURE:
        members = []
        for member in desc.members:
            value, pos = _untagged(member, buf, pos, end, depth + 1)
            members.append(value)
        return Structure(members), pos
    return _TABLE[tag](buf, pos, end, depth)


def _compact_array(buf: _Buf, pos: int, end: int, depth: int) -> tuple[Any, int]:
    desc, pos = _type_description(buf, pos, end, depth + 1)
    n, pos = decode_length(buf, pos, end)
    stop = pos + n
    if stop > end:
        raise _truncated(pos, f"{n} bytes of compact-array contents")
    values = []
    while pos < stop:
        value, pos = _untagged(desc, buf, pos, stop, depth + 1)
        values.append(value)
    if _is_zero_size(desc) and n:
        raise DecodeError("compact-array of zero-size elements has contents", offset=pos)
    return CompactArray(desc, tuple(values)), stop


def _is_zero_size(desc: TypeDescription) -> bool:
    if desc.tag in (DataType.NULL_DATA, DataType.DONT_CARE):
        return True
    if desc.tag == DataType.ARRAY:
        return desc.count == 0 or (desc.element is not None and _is_zero_size(desc.element))
    if desc.tag == DataType.STRUCTURE:
        return all(_is_zero_size(m) for m in desc.members)
    return False


def _build_table() -> None:
    table: list[_Decoder] = [_unknown] * 256
    table[DataType.NULL_DATA] = _null
    table[DataType.ARRAY] = _sequence(Array, "array")
    table[DataType.STRUCTURE] = _decode_structure_fast
    table[DataType.BOOLEAN] = _boolean
    table[DataType.BIT_STRING] = _bit_string
    table[DataType.DOUBLE_LONG] = _fixed(DoubleLong, _S_I32, "4 double-long bytes")
    table[DataType.DOUBLE_LONG_UNSIGNED] = _fixed(
        DoubleLongUnsigned, _S_U32, "4 double-long-unsigned bytes"
    )
    table[DataType.OCTET_STRING] = _octets
    table[DataType.VISIBLE_STRING] = _visible
    table[DataType.UTF8_STRING] = _utf8
    table[DataType.BCD] = _byte(Bcd, "a bcd byte")
    table[DataType.INTEGER] = _fixed(Integer, _S_I8, "an integer byte")
    table[DataType.LONG] = _fixed(Long, _S_I16, "2 long bytes")
    table[DataType.UNSIGNED] = _byte(Unsigned, "an unsigned byte")
    table[DataType.LONG_UNSIGNED] = _fixed(LongUnsigned, _S_U16, "2 long-unsigned bytes")
    table[DataType.COMPACT_ARRAY] = _compact_array
    table[DataType.LONG64] = _fixed(Long64, _S_I64, "8 long64 bytes")
    table[DataType.LONG64_UNSIGNED] = _fixed(Long64Unsigned, _S_U64, "8 long64-unsigned bytes")
    table[DataType.ENUM] = _byte(Enumerated, "an enum byte")
    table[DataType.FLOAT32] = _fixed(Float32, _S_F32, "4 float32 bytes")
    table[DataType.FLOAT64] = _fixed(Float64, _S_F64, "8 float64 bytes")
    table[DataType.DATE_TIME] = _date_time
    table[DataType.DATE] = _date
    table[DataType.TIME] = _time
    table[DataType.DELTA_INTEGER] = _fixed(DeltaInteger, _S_I8, "a delta-integer byte")
    table[DataType.DELTA_LONG] = _fixed(DeltaLong, _S_I16, "2 delta-long bytes")
    table[DataType.DELTA_DOUBLE_LONG] = _fixed(DeltaDoubleLong, _S_I32, "4 delta-double-long bytes")
    table[DataType.DELTA_UNSIGNED] = _byte(DeltaUnsigned, "a delta-unsigned byte")
    table[DataType.DELTA_LONG_UNSIGNED] = _fixed(
        DeltaLongUnsigned, _S_U16, "2 delta-long-unsigned bytes"
    )
    table[DataType.DELTA_DOUBLE_LONG_UNSIGNED] = _fixed(
        DeltaDoubleLongUnsigned, _S_U32, "4 delta-double-long-unsigned bytes"
    )
    table[DataType.DONT_CARE] = _dont_care
    _TABLE[:] = table


_decode_structure_generic = _sequence(Structure, "structure")
_build_table()


def decode_data_at(buf: bytes, pos: int = 0, end: int | None = None) -> tuple[Data, int]:
    """Decode one Data value at ``pos``; return ``(value, next_pos)``.

    ``buf`` must be ``bytes`` (APDU decoders convert once at their entry point).
    """
    if end is None:
        end = len(buf)
    if pos >= end:
        raise _truncated(pos, "a Data tag")
    value: Data
    value, pos = _TABLE[buf[pos]](buf, pos + 1, end, 0)
    return value, pos


def decode_data(data: bytes | bytearray | memoryview) -> Data:
    """Decode exactly one Data value; trailing bytes are an error."""
    buf = bytes(data)
    value, pos = decode_data_at(buf, 0, len(buf))
    if pos != len(buf):
        raise DecodeError(
            f"{len(buf) - pos} trailing bytes after the Data value", offset=pos, expected="end"
        )
    return value


def decode_datetime_bytes(raw: bytes) -> CosemDateTime:
    """Decode 12 raw date-time bytes (as carried inside an octet-string)."""
    if len(raw) != 12:
        raise DecodeError(f"a date-time is 12 bytes, got {len(raw)}", offset=0)
    return _dt_fields(bytes(raw), 0)
