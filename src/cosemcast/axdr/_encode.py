"""A-XDR encoding of COSEM Data (brief §9): the exact Python type of each value picks its tag.

Integers are range-checked here (the typed classes do not check on construction); plain
``int`` is refused because it has no wire type. Lengths are written in the shortest form.
"""

from __future__ import annotations

import struct
from typing import Any

from cosemcast.axdr._decode import MAX_DEPTH
from cosemcast.axdr.types import (
    Array,
    Bcd,
    BitString,
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
    DontCare,
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
    Structure,
    TypeDescription,
    Unsigned,
    Utf8String,
)
from cosemcast.errors import EncodeError

__all__ = ["encode_data", "encode_datetime_bytes", "encode_length"]

_S_DT = struct.Struct(">HBBBBBBBhB")
_S_I8 = struct.Struct(">b")
_S_I16 = struct.Struct(">h")
_S_U16 = struct.Struct(">H")
_S_I32 = struct.Struct(">i")
_S_U32 = struct.Struct(">I")
_S_I64 = struct.Struct(">q")
_S_U64 = struct.Struct(">Q")
_S_F32 = struct.Struct(">f")
_S_F64 = struct.Struct(">d")


def encode_length(n: int) -> bytes:
    """The shortest A-XDR/BER encoding of a length."""
    if n < 0x80:
        if n < 0:
            raise EncodeError(f"negative length {n}")
        return bytes((n,))
    if n <= 0xFF:
        return bytes((0x81, n))
    if n <= 0xFFFF:
        return b"\x82" + n.to_bytes(2, "big")
    if n <= 0xFFFFFF:
        return b"\x83" + n.to_bytes(3, "big")
    if n <= 0xFFFFFFFF:
        return b"\x84" + n.to_bytes(4, "big")
    raise EncodeError(f"length {n} does not fit in 4 bytes")


def _ff(v: int | None) -> int:
    return 0xFF if v is None else v


def encode_datetime_bytes(v: CosemDateTime) -> bytes:
    """The 12 raw bytes of a date-time (no tag)."""
    try:
        return _S_DT.pack(
            0xFFFF if v.year is None else v.year,
            _ff(v.month),
            _ff(v.day),
            _ff(v.day_of_week),
            _ff(v.hour),
            _ff(v.minute),
            _ff(v.second),
            _ff(v.hundredths),
            -0x8000 if v.deviation is None else v.deviation,
            0xFF if v.clock_status is None else int(v.clock_status),
        )
    except struct.error as exc:
        raise EncodeError(f"date-time field out of range: {exc}") from exc


_INT_FORMATS: dict[type, struct.Struct] = {
    Integer: _S_I8,
    Long: _S_I16,
    DoubleLong: _S_I32,
    Long64: _S_I64,
    Unsigned: struct.Struct(">B"),
    LongUnsigned: _S_U16,
    DoubleLongUnsigned: _S_U32,
    Long64Unsigned: _S_U64,
    Enumerated: struct.Struct(">B"),
    Bcd: struct.Struct(">B"),
    DeltaInteger: _S_I8,
    DeltaLong: _S_I16,
    DeltaDoubleLong: _S_I32,
    DeltaUnsigned: struct.Struct(">B"),
    DeltaLongUnsigned: _S_U16,
    DeltaDoubleLongUnsigned: _S_U32,
}


def _int_class_of(value: object) -> type | None:
    for cls in type(value).__mro__:
        if cls in _INT_FORMATS:
            return cls
    return None


def _encode_body(value: object, out: bytearray, depth: int) -> None:
    """Append the encoding of ``value`` without its tag (for compact-array contents)."""
    if depth > MAX_DEPTH:
        raise EncodeError(f"data nested deeper than {MAX_DEPTH} levels")
    cls = _int_class_of(value) if isinstance(value, int) and not isinstance(value, bool) else None
    if cls is not None:
        v: Any = value
        try:
            out += _INT_FORMATS[cls].pack(v)
        except struct.error:
            raise EncodeError(
                f"{cls.__name__} value {int(v)} is out of range "
                f"{getattr(cls, 'MIN', '?')}..{getattr(cls, 'MAX', '?')}"
            ) from None
        return
    if value is None or isinstance(value, DontCare):
        return
    if isinstance(value, bool):
        out.append(1 if value else 0)
    elif isinstance(value, Float32):
        out += _S_F32.pack(value)
    elif isinstance(value, Float64):
        out += _S_F64.pack(value)
    elif isinstance(value, (bytes, bytearray)):
        out += encode_length(len(value))
        out += value
    elif isinstance(value, Utf8String):
        raw = value.encode("utf-8")
        out += encode_length(len(raw))
        out += raw
    elif isinstance(value, str):
        try:
            raw = value.encode("latin-1")
        except UnicodeEncodeError:
            raise EncodeError(
                "visible-string holds characters beyond Latin-1; use Utf8String"
            ) from None
        out += encode_length(len(raw))
        out += raw
    elif isinstance(value, (Array, Structure)):
        out += encode_length(len(value))
        for item in value:
            _encode_tagged(item, out, depth + 1)
    elif isinstance(value, BitString):
        out += encode_length(value.bit_length)
        out += value.data
    elif isinstance(value, CosemDateTime):
        out += encode_datetime_bytes(value)
    elif isinstance(value, CosemDate):
        try:
            y = 0xFFFF if value.year is None else value.year
            out += struct.pack(">HBBB", y, _ff(value.month), _ff(value.day), _ff(value.day_of_week))
        except struct.error as exc:
            raise EncodeError(f"date field out of range: {exc}") from exc
    elif isinstance(value, CosemTime):
        try:
            out += struct.pack(
                ">BBBB",
                _ff(value.hour),
                _ff(value.minute),
                _ff(value.second),
                _ff(value.hundredths),
            )
        except struct.error as exc:
            raise EncodeError(f"time field out of range: {exc}") from exc
    elif isinstance(value, CompactArray):
        _encode_type_description(value.description, out)
        contents = bytearray()
        for item in value.values:
            _encode_untagged(value.description, item, contents, depth + 1)
        out += encode_length(len(contents))
        out += contents
    else:
        raise EncodeError(_no_type_message(value))


def _no_type_message(value: object) -> str:
    if isinstance(value, int):
        return (
            f"plain int {value!r} has no wire type: wrap it, e.g. Unsigned({value}), "
            f"LongUnsigned({value}) or DoubleLong({value})"
        )
    return f"cannot encode {type(value).__name__} as COSEM Data"


def _tag_of(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        return DataType.BOOLEAN
    tag = getattr(type(value), "TAG", None)
    if tag is not None:
        return int(tag)
    if isinstance(value, (bytes, bytearray)):
        return DataType.OCTET_STRING
    if isinstance(value, str):
        return DataType.VISIBLE_STRING
    raise EncodeError(_no_type_message(value))


def _encode_tagged(value: object, out: bytearray, depth: int) -> None:
    out.append(_tag_of(value))
    _encode_body(value, out, depth)


def _encode_type_description(desc: TypeDescription, out: bytearray) -> None:
    out.append(desc.tag)
    if desc.tag == DataType.ARRAY:
        if desc.element is None or not 0 <= desc.count <= 0xFFFF:
            raise EncodeError("array type description needs an element type and a count")
        out += desc.count.to_bytes(2, "big")
        _encode_type_description(desc.element, out)
    elif desc.tag == DataType.STRUCTURE:
        out += encode_length(len(desc.members))
        for member in desc.members:
            _encode_type_description(member, out)


def _encode_untagged(desc: TypeDescription, value: object, out: bytearray, depth: int) -> None:
    if desc.tag == DataType.ARRAY:
        if not isinstance(value, (Array, tuple)) or len(value) != desc.count:
            raise EncodeError(f"compact-array element must be an array of {desc.count}")
        assert desc.element is not None
        for item in value:
            _encode_untagged(desc.element, item, out, depth + 1)
    elif desc.tag == DataType.STRUCTURE:
        if not isinstance(value, tuple) or len(value) != len(desc.members):
            raise EncodeError(f"compact-array element must be a structure of {len(desc.members)}")
        for member, item in zip(desc.members, value, strict=True):
            _encode_untagged(member, item, out, depth + 1)
    else:
        if _tag_of(value) != desc.tag:
            raise EncodeError(
                f"compact-array element {value!r} does not match type {DataType(desc.tag).name}"
            )
        _encode_body(value, out, depth)


def encode_data(value: Data | object) -> bytes:
    """Encode one Data value with its tag."""
    out = bytearray()
    _encode_tagged(value, out, 0)
    return bytes(out)
