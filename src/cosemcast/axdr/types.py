"""Typed COSEM data values (Blue Book "Data" CHOICE; brief §9.2).

Design: a decoded value keeps its wire type so that it re-encodes to the same bytes, and
is still a plain Python value to work with.

* Integer types are ``int`` subclasses (``Unsigned(5) + 1 == 6``); octet-string is a
  ``bytes`` subclass; visible-string and utf8-string are ``str`` subclasses; float32/64 are
  ``float`` subclasses; array and structure are ``tuple`` subclasses. Construction is as cheap
  as the builtin's, which is what makes decoding fast. Ranges are checked when encoding
  (the decoder can only produce in-range values).
* ``None`` is null-data; Python ``bool`` is boolean; :data:`DONT_CARE` is dont-care.
* bit-string, bcd, compact-array and the date/time types are small frozen classes.

Because integer classes compare as ints, ``Unsigned(5) == Long(5)``; use :func:`same_data`
when the wire type matters too.
"""

from __future__ import annotations

import datetime as _dt
import enum
from dataclasses import dataclass, field
from typing import ClassVar, Final, TypeAlias

__all__ = [
    "DONT_CARE",
    "Array",
    "Bcd",
    "BitString",
    "ClockStatus",
    "CompactArray",
    "CosemDate",
    "CosemDateTime",
    "CosemTime",
    "Data",
    "DataType",
    "DeltaDoubleLong",
    "DeltaDoubleLongUnsigned",
    "DeltaInteger",
    "DeltaLong",
    "DeltaLongUnsigned",
    "DeltaUnsigned",
    "DontCare",
    "DoubleLong",
    "DoubleLongUnsigned",
    "Enumerated",
    "Float32",
    "Float64",
    "Integer",
    "Long",
    "Long64",
    "Long64Unsigned",
    "LongUnsigned",
    "OctetString",
    "Structure",
    "TypeDescription",
    "Unsigned",
    "Utf8String",
    "VisibleString",
    "same_data",
]


class DataType(enum.IntEnum):
    """A-XDR Data CHOICE tags (brief §9.2)."""

    NULL_DATA = 0
    ARRAY = 1
    STRUCTURE = 2
    BOOLEAN = 3
    BIT_STRING = 4
    DOUBLE_LONG = 5
    DOUBLE_LONG_UNSIGNED = 6
    OCTET_STRING = 9
    VISIBLE_STRING = 10
    UTF8_STRING = 12
    BCD = 13
    INTEGER = 15
    LONG = 16
    UNSIGNED = 17
    LONG_UNSIGNED = 18
    COMPACT_ARRAY = 19
    LONG64 = 20
    LONG64_UNSIGNED = 21
    ENUM = 22
    FLOAT32 = 23
    FLOAT64 = 24
    DATE_TIME = 25
    DATE = 26
    TIME = 27
    DELTA_INTEGER = 28
    DELTA_LONG = 29
    DELTA_DOUBLE_LONG = 30
    DELTA_UNSIGNED = 31
    DELTA_LONG_UNSIGNED = 32
    DELTA_DOUBLE_LONG_UNSIGNED = 33
    DONT_CARE = 255


# --- fixed-width integers --------------------------------------------------------------------


class _FixedInt(int):
    __slots__ = ()
    TAG: ClassVar[DataType]
    MIN: ClassVar[int]
    MAX: ClassVar[int]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({int(self)})"

    # str() and f-strings show the plain number; repr() shows the wire type.
    __str__ = int.__repr__
    __format__ = int.__format__


class Integer(_FixedInt):
    """integer: int8."""

    __slots__ = ()
    TAG = DataType.INTEGER
    MIN, MAX = -128, 127


class Long(_FixedInt):
    """long: int16."""

    __slots__ = ()
    TAG = DataType.LONG
    MIN, MAX = -32768, 32767


class DoubleLong(_FixedInt):
    """double-long: int32."""

    __slots__ = ()
    TAG = DataType.DOUBLE_LONG
    MIN, MAX = -(1 << 31), (1 << 31) - 1


class Long64(_FixedInt):
    """long64: int64."""

    __slots__ = ()
    TAG = DataType.LONG64
    MIN, MAX = -(1 << 63), (1 << 63) - 1


class Unsigned(_FixedInt):
    """unsigned: uint8."""

    __slots__ = ()
    TAG = DataType.UNSIGNED
    MIN, MAX = 0, 255


class LongUnsigned(_FixedInt):
    """long-unsigned: uint16."""

    __slots__ = ()
    TAG = DataType.LONG_UNSIGNED
    MIN, MAX = 0, 0xFFFF


class DoubleLongUnsigned(_FixedInt):
    """double-long-unsigned: uint32."""

    __slots__ = ()
    TAG = DataType.DOUBLE_LONG_UNSIGNED
    MIN, MAX = 0, 0xFFFFFFFF


class Long64Unsigned(_FixedInt):
    """long64-unsigned: uint64."""

    __slots__ = ()
    TAG = DataType.LONG64_UNSIGNED
    MIN, MAX = 0, (1 << 64) - 1


class Enumerated(_FixedInt):
    """enum: uint8 (named ``Enumerated`` so as not to shadow :mod:`enum`)."""

    __slots__ = ()
    TAG = DataType.ENUM
    MIN, MAX = 0, 255


class Bcd(_FixedInt):
    """bcd: one byte, kept as its raw value 0..255 (``0x42`` carries the digits 4 and 2)."""

    __slots__ = ()
    TAG = DataType.BCD
    MIN, MAX = 0, 255


class DeltaInteger(_FixedInt):
    __slots__ = ()
    TAG = DataType.DELTA_INTEGER
    MIN, MAX = -128, 127


class DeltaLong(_FixedInt):
    __slots__ = ()
    TAG = DataType.DELTA_LONG
    MIN, MAX = -32768, 32767


class DeltaDoubleLong(_FixedInt):
    __slots__ = ()
    TAG = DataType.DELTA_DOUBLE_LONG
    MIN, MAX = -(1 << 31), (1 << 31) - 1


class DeltaUnsigned(_FixedInt):
    __slots__ = ()
    TAG = DataType.DELTA_UNSIGNED
    MIN, MAX = 0, 255


class DeltaLongUnsigned(_FixedInt):
    __slots__ = ()
    TAG = DataType.DELTA_LONG_UNSIGNED
    MIN, MAX = 0, 0xFFFF


class DeltaDoubleLongUnsigned(_FixedInt):
    __slots__ = ()
    TAG = DataType.DELTA_DOUBLE_LONG_UNSIGNED
    MIN, MAX = 0, 0xFFFFFFFF


# --- floats, strings, containers -------------------------------------------------------------


class Float32(float):
    """float32 (IEEE 754 single). The value is the exact double of the single-precision number."""

    __slots__ = ()
    TAG: ClassVar[DataType] = DataType.FLOAT32

    def __repr__(self) -> str:
        return f"Float32({float(self)!r})"

    __str__ = float.__repr__


class Float64(float):
    __slots__ = ()
    TAG: ClassVar[DataType] = DataType.FLOAT64

    def __repr__(self) -> str:
        return f"Float64({float(self)!r})"

    __str__ = float.__repr__


class OctetString(bytes):
    """octet-string."""

    __slots__ = ()
    TAG: ClassVar[DataType] = DataType.OCTET_STRING

    def __repr__(self) -> str:
        return f"OctetString(bytes.fromhex({self.hex().upper()!r}))"

    def as_datetime(self) -> CosemDateTime:
        """Interpret a 12-byte octet-string as a COSEM date-time (Blue Book 4.1.6.1)."""
        from cosemcast.axdr.codec import decode_datetime_bytes

        return decode_datetime_bytes(self)


class VisibleString(str):
    """visible-string. Bytes are mapped 1:1 (Latin-1), so any octets round-trip unchanged."""

    __slots__ = ()
    TAG: ClassVar[DataType] = DataType.VISIBLE_STRING

    def __repr__(self) -> str:
        return f"VisibleString({str(self)!r})"


class Utf8String(str):
    __slots__ = ()
    TAG: ClassVar[DataType] = DataType.UTF8_STRING

    def __repr__(self) -> str:
        return f"Utf8String({str(self)!r})"


class Array(tuple["Data", ...]):
    """array: elements of one type (not enforced, as meters do not always comply)."""

    __slots__ = ()
    TAG: ClassVar[DataType] = DataType.ARRAY

    def __repr__(self) -> str:
        return f"Array({list(self)!r})"


class Structure(tuple["Data", ...]):
    """structure: an ordered list of elements of any type."""

    __slots__ = ()
    TAG: ClassVar[DataType] = DataType.STRUCTURE

    def __repr__(self) -> str:
        return f"Structure({list(self)!r})"


class DontCare:
    """dont-care (tag FF). Use the singleton :data:`DONT_CARE`."""

    __slots__ = ()
    TAG: ClassVar[DataType] = DataType.DONT_CARE
    _instance: ClassVar[DontCare | None] = None

    def __new__(cls) -> DontCare:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DONT_CARE"


DONT_CARE: Final = DontCare()


@dataclass(frozen=True, slots=True)
class BitString:
    """bit-string: ``bit_length`` bits, most significant bit of ``data[0]`` first.

    The length on the wire counts bits (brief §9.2); unused trailing bits are zero.
    """

    data: bytes
    bit_length: int
    TAG: ClassVar[DataType] = DataType.BIT_STRING

    def __post_init__(self) -> None:
        if self.bit_length < 0 or (self.bit_length + 7) // 8 != len(self.data):
            raise ValueError(
                f"bit-string of {self.bit_length} bits needs {(self.bit_length + 7) // 8} bytes, "
                f"got {len(self.data)}"
            )

    @classmethod
    def from_bits(cls, bits: str) -> BitString:
        """``BitString.from_bits("1011")``."""
        if any(c not in "01" for c in bits):
            raise ValueError("bit-string text may only contain 0 and 1")
        n = len(bits)
        padded = bits + "0" * (-n % 8)
        data = bytes(int(padded[i : i + 8], 2) for i in range(0, len(padded), 8))
        return cls(data, n)

    def to_bits(self) -> str:
        return "".join(f"{b:08b}" for b in self.data)[: self.bit_length]

    def __getitem__(self, index: int) -> bool:
        if not 0 <= index < self.bit_length:
            raise IndexError(index)
        return bool(self.data[index // 8] & (0x80 >> (index % 8)))


class ClockStatus(enum.IntFlag):
    """clock_status bits (brief §9.3)."""

    INVALID_VALUE = 0x01
    DOUBTFUL_VALUE = 0x02
    DIFFERENT_CLOCK_BASE = 0x04
    INVALID_CLOCK_STATUS = 0x08
    DAYLIGHT_SAVING_ACTIVE = 0x80


# Special values of the date fields (Blue Book 4.1.6.1; month FD/FE single-sourced, brief §13).
DAYLIGHT_SAVINGS_END: Final = 0xFD
DAYLIGHT_SAVINGS_BEGIN: Final = 0xFE
SECOND_LAST_DAY: Final = 0xFD
LAST_DAY: Final = 0xFE


@dataclass(frozen=True, slots=True)
class CosemDate:
    """date (5 bytes). ``None`` marks a field that is not specified (FF / FFFF)."""

    year: int | None
    month: int | None
    day: int | None
    day_of_week: int | None = None
    TAG: ClassVar[DataType] = DataType.DATE

    def to_date(self) -> _dt.date:
        if self.year is None or self.month is None or self.day is None:
            raise ValueError("date has unspecified fields")
        return _dt.date(self.year, self.month, self.day)


@dataclass(frozen=True, slots=True)
class CosemTime:
    """time (4 bytes). ``None`` marks a field that is not specified (FF)."""

    hour: int | None
    minute: int | None
    second: int | None = None
    hundredths: int | None = None
    TAG: ClassVar[DataType] = DataType.TIME


@dataclass(frozen=True, slots=True)
class CosemDateTime:
    """date-time (12 bytes, brief §9.3).

    ``deviation`` is the wire value in minutes, **UTC minus local time** (CET is -60), or
    ``None`` when not specified (0x8000). ``clock_status`` is ``None`` when not specified (FF).
    """

    year: int | None
    month: int | None
    day: int | None
    day_of_week: int | None
    hour: int | None
    minute: int | None
    second: int | None
    hundredths: int | None
    deviation: int | None = None
    clock_status: ClockStatus | None = field(default=None)
    TAG: ClassVar[DataType] = DataType.DATE_TIME

    @classmethod
    def from_datetime(
        cls, value: _dt.datetime, *, clock_status: ClockStatus | None = None
    ) -> CosemDateTime:
        """From a Python datetime; an aware one sets the deviation (UTC - local, in minutes)."""
        deviation = None
        off = value.utcoffset()
        if off is not None:
            deviation = -int(off.total_seconds() // 60)
        return cls(
            value.year,
            value.month,
            value.day,
            value.isoweekday(),
            value.hour,
            value.minute,
            value.second,
            value.microsecond // 10000,
            deviation,
            clock_status,
        )

    def to_datetime(self) -> _dt.datetime:
        """As a Python datetime, aware when the deviation is specified."""
        fields = (self.year, self.month, self.day, self.hour, self.minute)
        if any(f is None for f in fields) or self.month is None or self.month > 12:
            raise ValueError("date-time has unspecified or special fields")
        assert self.year is not None and self.day is not None
        assert self.hour is not None and self.minute is not None
        if self.day > 31:
            raise ValueError("date-time has a special day-of-month")
        tz = None
        if self.deviation is not None:
            tz = _dt.timezone(_dt.timedelta(minutes=-self.deviation))
        return _dt.datetime(
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second or 0,
            (self.hundredths or 0) * 10000,
            tzinfo=tz,
        )

    def __str__(self) -> str:
        def part(v: int | None, width: int) -> str:
            return "*" * width if v is None else f"{v:0{width}d}"

        text = (
            f"{part(self.year, 4)}-{part(self.month, 2)}-{part(self.day, 2)} "
            f"{part(self.hour, 2)}:{part(self.minute, 2)}:{part(self.second, 2)}"
        )
        if self.hundredths:
            text += f".{self.hundredths:02d}"
        if self.deviation is not None:
            local = -self.deviation
            sign = "+" if local >= 0 else "-"
            text += f" UTC{sign}{abs(local) // 60:02d}:{abs(local) % 60:02d}"
        if self.clock_status:
            text += f" status={int(self.clock_status):#04x}"
        return text


@dataclass(frozen=True, slots=True)
class TypeDescription:
    """The type of each element of a compact-array (Blue Book compact-array).

    ``tag`` is the element type; for ``ARRAY`` ``count`` and ``element`` describe the inner
    array; for ``STRUCTURE`` ``members`` lists the member types.
    """

    tag: DataType
    count: int = 0
    element: TypeDescription | None = None
    members: tuple[TypeDescription, ...] = ()


@dataclass(frozen=True, slots=True)
class CompactArray:
    """compact-array: ``values`` are decoded according to ``description``."""

    description: TypeDescription
    values: tuple[Data, ...]
    TAG: ClassVar[DataType] = DataType.COMPACT_ARRAY


Data: TypeAlias = (
    None
    | bool
    | _FixedInt
    | Float32
    | Float64
    | OctetString
    | VisibleString
    | Utf8String
    | Array
    | Structure
    | BitString
    | CompactArray
    | CosemDate
    | CosemTime
    | CosemDateTime
    | DontCare
    | bytes
    | str
)


def same_data(a: object, b: object) -> bool:
    """Equal in value *and* wire type, recursively (``Unsigned(5)`` is not ``Long(5)``)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(same_data(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, CompactArray) and isinstance(b, CompactArray):
        return a.description == b.description and same_data(a.values, b.values)
    if isinstance(a, float) and a != a:  # NaN
        return b != b
    return a == b
