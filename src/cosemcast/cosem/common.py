"""Value types and checks shared by the interface classes.

Theory of operation. Attribute values arrive as COSEM :data:`~cosemcast.axdr.Data`. Each class
converts what a client writes into typed Python values with the ``want_*`` checks below; a
value of the wrong wire type raises :class:`TypeUnmatched` and a well-typed but unacceptable
value raises :class:`ValueRejected`. :class:`~cosemcast.cosem.base.CosemObject` turns them into
``type-unmatched`` and ``other-reason`` results, so neither ever leaves the package.

Type checks are strict on the wire type (an ``Unsigned`` is not a ``LongUnsigned``): the Blue
Book fixes each attribute's type, and a server that accepts anything hides client bugs.

:class:`CaptureObjectDefinition` is the ``structure {class_id long-unsigned, logical_name
octet-string, attribute_index integer, data_index long-unsigned}`` used by Profile generic
(capture_objects, sort_object, selective access) and Push setup (push_object_list).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TypeVar

from cosemcast.axdr.codec import decode_datetime_bytes, encode_datetime_bytes
from cosemcast.axdr.types import (
    Array,
    CompactArray,
    CosemDateTime,
    Data,
    DataType,
    Enumerated,
    Integer,
    LongUnsigned,
    OctetString,
    Structure,
)
from cosemcast.errors import DecodeError, DlmsError, EncodeError
from cosemcast.obis import Obis

__all__ = [
    "CaptureObjectDefinition",
    "TypeUnmatched",
    "ValueRejected",
    "datetime_octets",
    "pick_element",
    "to_aware",
    "want_array",
    "want_bool",
    "want_datetime",
    "want_enum",
    "want_int",
    "want_obis",
    "want_octet_string",
    "want_same_type",
    "want_simple",
    "want_structure",
    "wire_tag",
]

_I = TypeVar("_I", bound=int)


class TypeUnmatched(DlmsError):
    """A value has the wrong wire type for the attribute or method (internal; see module)."""


class ValueRejected(DlmsError):
    """A value has the right type but is not acceptable (internal; see module)."""


def wire_tag(value: Data) -> int:
    """The A-XDR tag a value encodes with (``bytes`` is octet-string, ``str`` visible-string)."""
    if value is None:
        return DataType.NULL_DATA
    if isinstance(value, bool):
        return DataType.BOOLEAN
    tag = getattr(type(value), "TAG", None)
    if tag is not None:
        return int(tag)
    if isinstance(value, bytes):
        return DataType.OCTET_STRING
    return DataType.VISIBLE_STRING


def want_same_type(value: Data, current: Data) -> Data:
    """``value`` if it has the wire type of ``current`` (any type when ``current`` is null)."""
    if current is not None and wire_tag(value) != wire_tag(current):
        raise TypeUnmatched(
            f"expected {DataType(wire_tag(current)).name}, got {type(value).__name__}"
        )
    return value


def want_simple(value: Data) -> Data:
    """A value of a simple type (not array, structure or compact-array)."""
    if isinstance(value, Array | Structure | CompactArray):
        raise TypeUnmatched(f"expected a simple type, got {type(value).__name__}")
    return value


def want_int(value: Data, cls: type[_I], *, low: int | None = None, high: int | None = None) -> int:
    if not isinstance(value, cls) or isinstance(value, bool):
        raise TypeUnmatched(f"expected {cls.__name__}, got {type(value).__name__}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueRejected(f"{cls.__name__} {int(value)} is outside {low}..{high}")
    return int(value)


def want_enum(value: Data, allowed: frozenset[int] | range | None = None) -> int:
    code = want_int(value, Enumerated)
    if allowed is not None and code not in allowed:
        raise ValueRejected(f"enum value {code} is not allowed here")
    return code


def want_bool(value: Data) -> bool:
    if not isinstance(value, bool):
        raise TypeUnmatched(f"expected boolean, got {type(value).__name__}")
    return value


def want_octet_string(value: Data, length: int | None = None) -> bytes:
    if not isinstance(value, OctetString):
        raise TypeUnmatched(f"expected octet-string, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise ValueRejected(f"expected an octet-string of {length} bytes, got {len(value)}")
    return bytes(value)


def want_obis(value: Data) -> Obis:
    return Obis.from_bytes(want_octet_string(value, 6))


def want_structure(value: Data, count: int) -> Structure:
    if not isinstance(value, Structure):
        raise TypeUnmatched(f"expected structure, got {type(value).__name__}")
    if len(value) != count:
        raise TypeUnmatched(f"expected a structure of {count} elements, got {len(value)}")
    return value


def want_array(value: Data) -> Array:
    if not isinstance(value, Array):
        raise TypeUnmatched(f"expected array, got {type(value).__name__}")
    return value


def want_datetime(value: Data) -> CosemDateTime:
    """A date-time given as octet-string(12) (Blue Book attribute form) or as date-time (tag 19)."""
    if isinstance(value, CosemDateTime):
        return value
    raw = want_octet_string(value)
    try:
        return decode_datetime_bytes(raw)
    except DecodeError as exc:
        raise ValueRejected(f"not a 12-byte date-time: {exc}") from exc


def datetime_octets(value: CosemDateTime) -> OctetString:
    """A date-time as the octet-string(12) that COSEM attributes carry (brief §9.3)."""
    return OctetString(encode_datetime_bytes(value))


def to_aware(value: CosemDateTime) -> dt.datetime:
    """A fully specified date-time as an aware datetime; no deviation is read as UTC.

    Raises :class:`ValueRejected` when fields are unspecified or special.
    """
    try:
        moment = value.to_datetime()
        if moment.tzinfo is None:
            return moment.replace(tzinfo=dt.UTC)
        moment.astimezone(dt.UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueRejected(f"date-time {value} is not a point in time") from exc
    return moment


def pick_element(value: Data, data_index: int) -> Data:
    """Element ``data_index`` (1-based) of an array or structure; 0 selects the whole value."""
    if data_index == 0:
        return value
    if isinstance(value, Array | Structure) and 1 <= data_index <= len(value):
        return value[data_index - 1]
    raise ValueRejected(f"data_index {data_index} does not select an element")


@dataclass(frozen=True, slots=True)
class CaptureObjectDefinition:
    """One captured (or pushed) attribute: class, logical name, attribute, element (0 = all)."""

    class_id: int
    logical_name: Obis
    attribute_index: int
    data_index: int = 0

    def to_data(self) -> Structure:
        for name, v, lo, hi in (
            ("class_id", self.class_id, 0, 0xFFFF),
            ("attribute_index", self.attribute_index, -128, 127),
            ("data_index", self.data_index, 0, 0xFFFF),
        ):
            if not lo <= v <= hi:
                raise EncodeError(f"capture object {name} {v} is outside {lo}..{hi}")
        return Structure(
            (
                LongUnsigned(self.class_id),
                OctetString(self.logical_name.to_bytes()),
                Integer(self.attribute_index),
                LongUnsigned(self.data_index),
            )
        )

    @classmethod
    def from_data(cls, value: Data) -> CaptureObjectDefinition:
        """Parse the structure; raises :class:`TypeUnmatched` / :class:`ValueRejected`."""
        s = want_structure(value, 4)
        return cls(
            want_int(s[0], LongUnsigned),
            want_obis(s[1]),
            want_int(s[2], Integer),
            want_int(s[3], LongUnsigned),
        )

    def __str__(self) -> str:
        text = f"{self.class_id}/{self.logical_name}/{self.attribute_index}"
        return text if self.data_index == 0 else f"{text}[{self.data_index}]"
