"""Selective access to a Profile generic buffer: by range (selector 1) and by entry (selector 2).

Both descriptors travel as the access-parameters Data of a Selective-Access-Descriptor
(brief §4.5, ``01 <selector> <Data>``):

* range_descriptor (selector 1)::

      structure { restricting_object capture_object_definition,
                  from_value  Data,   -- oldest / smallest value to return
                  to_value    Data,   -- newest / largest value to return
                  selected_values array of capture_object_definition }  -- empty = all columns

* entry_descriptor (selector 2)::

      structure { from_entry double-long-unsigned,          -- 1 = first entry
                  to_entry double-long-unsigned,            -- 0 = the last entry
                  from_selected_value long-unsigned,        -- 1 = first column
                  to_selected_value long-unsigned }         -- 0 = the last column

A client builds them with :func:`range_selection`, :func:`clock_range` and
:func:`entry_selection`; a server parses them with :func:`parse_selective_access` and applies
them to its rows with :func:`select_range` / :func:`select_entries`.

Decisions (copy to specs/):

* Range bounds are inclusive. Values compare as numbers (integers and floats), as points in
  time (a date-time, or an octet-string of 12 bytes holding one; no deviation means the
  ``to_utc`` the caller supplies, by default UTC), or as byte/text strings; a row whose
  restricting value does not compare with the bounds is left out; bounds of different
  kinds are ``other-reason``.
* Entry numbers: ``from_entry`` 0 is read as 1; an empty intersection gives an empty array.
* A selected column that is not among the capture objects is ``other-reason``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from cosemcast.apdu.common import SelectiveAccess
from cosemcast.axdr.types import (
    Array,
    CosemDateTime,
    Data,
    DoubleLongUnsigned,
    LongUnsigned,
    OctetString,
    Structure,
)
from cosemcast.cosem.common import (
    CaptureObjectDefinition,
    TypeUnmatched,
    ValueRejected,
    datetime_octets,
    to_aware,
    want_array,
    want_datetime,
    want_int,
    want_structure,
)
from cosemcast.errors import EncodeError
from cosemcast.obis import Obis

__all__ = [
    "CLOCK_TIME",
    "EntryDescriptor",
    "RangeDescriptor",
    "clock_range",
    "entry_selection",
    "order_key",
    "parse_selective_access",
    "range_selection",
    "select_entries",
    "select_range",
]

CLOCK_TIME = CaptureObjectDefinition(8, Obis(0, 0, 1, 0, 0, 255), 2, 0)

Row = tuple[Data, ...]
ToUtc = Callable[[CosemDateTime], dt.datetime]


@dataclass(frozen=True, slots=True)
class RangeDescriptor:
    """range_descriptor (selector 1)."""

    restricting_object: CaptureObjectDefinition
    from_value: Data
    to_value: Data
    selected_values: tuple[CaptureObjectDefinition, ...] = ()
    SELECTOR: ClassVar[int] = 1

    def to_data(self) -> Structure:
        return Structure(
            (
                self.restricting_object.to_data(),
                self.from_value,
                self.to_value,
                Array(c.to_data() for c in self.selected_values),
            )
        )

    def to_selective_access(self) -> SelectiveAccess:
        return SelectiveAccess(self.SELECTOR, self.to_data())

    @classmethod
    def from_data(cls, value: Data) -> RangeDescriptor:
        s = want_structure(value, 4)
        return cls(
            CaptureObjectDefinition.from_data(s[0]),
            s[1],
            s[2],
            tuple(CaptureObjectDefinition.from_data(c) for c in want_array(s[3])),
        )


@dataclass(frozen=True, slots=True)
class EntryDescriptor:
    """entry_descriptor (selector 2); 0 in ``to_entry``/``to_selected_value`` means the last."""

    from_entry: int = 1
    to_entry: int = 0
    from_selected_value: int = 1
    to_selected_value: int = 0
    SELECTOR: ClassVar[int] = 2

    def to_data(self) -> Structure:
        if not (
            0 <= self.from_entry <= 0xFFFFFFFF
            and 0 <= self.to_entry <= 0xFFFFFFFF
            and 0 <= self.from_selected_value <= 0xFFFF
            and 0 <= self.to_selected_value <= 0xFFFF
        ):
            raise EncodeError("entry_descriptor field out of range")
        return Structure(
            (
                DoubleLongUnsigned(self.from_entry),
                DoubleLongUnsigned(self.to_entry),
                LongUnsigned(self.from_selected_value),
                LongUnsigned(self.to_selected_value),
            )
        )

    def to_selective_access(self) -> SelectiveAccess:
        return SelectiveAccess(self.SELECTOR, self.to_data())

    @classmethod
    def from_data(cls, value: Data) -> EntryDescriptor:
        s = want_structure(value, 4)
        return cls(
            want_int(s[0], DoubleLongUnsigned),
            want_int(s[1], DoubleLongUnsigned),
            want_int(s[2], LongUnsigned),
            want_int(s[3], LongUnsigned),
        )


def parse_selective_access(selection: SelectiveAccess) -> RangeDescriptor | EntryDescriptor:
    """The descriptor carried by ``selection``; :class:`ValueRejected` for another selector,
    :class:`TypeUnmatched` for malformed parameters."""
    if selection.selector == RangeDescriptor.SELECTOR:
        return RangeDescriptor.from_data(selection.parameters)
    if selection.selector == EntryDescriptor.SELECTOR:
        return EntryDescriptor.from_data(selection.parameters)
    raise ValueRejected(f"access selector {selection.selector} is not supported")


# --- client-side builders --------------------------------------------------------------------


def range_selection(
    restricting_object: CaptureObjectDefinition,
    from_value: Data,
    to_value: Data,
    selected_values: Sequence[CaptureObjectDefinition] = (),
) -> SelectiveAccess:
    return RangeDescriptor(
        restricting_object, from_value, to_value, tuple(selected_values)
    ).to_selective_access()


def _as_octets(moment: dt.datetime | CosemDateTime) -> OctetString:
    if isinstance(moment, dt.datetime):
        moment = CosemDateTime.from_datetime(moment)
    return datetime_octets(moment)


def clock_range(
    start: dt.datetime | CosemDateTime,
    end: dt.datetime | CosemDateTime,
    *,
    clock: CaptureObjectDefinition = CLOCK_TIME,
    selected_values: Sequence[CaptureObjectDefinition] = (),
) -> SelectiveAccess:
    """The usual load-profile read: rows whose clock time is within ``start``..``end``."""
    return range_selection(clock, _as_octets(start), _as_octets(end), selected_values)


def entry_selection(
    from_entry: int = 1,
    to_entry: int = 0,
    from_selected_value: int = 1,
    to_selected_value: int = 0,
) -> SelectiveAccess:
    return EntryDescriptor(
        from_entry, to_entry, from_selected_value, to_selected_value
    ).to_selective_access()


# --- server-side application -----------------------------------------------------------------


def _utc_default(value: CosemDateTime) -> dt.datetime:
    return to_aware(value)


def order_key(value: Data, to_utc: ToUtc | None = None) -> tuple[int, Any] | None:
    """A sortable key for ``value`` with its kind first, or ``None`` when it has no order."""
    convert = to_utc or _utc_default
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return (0, value)
    if isinstance(value, CosemDateTime) or (isinstance(value, OctetString) and len(value) == 12):
        try:
            return (1, convert(want_datetime(value)))
        except (ValueRejected, TypeUnmatched):
            return None if isinstance(value, CosemDateTime) else (2, bytes(value))
    if isinstance(value, bytes):
        return (2, bytes(value))
    if isinstance(value, str):
        return (3, str(value))
    return None


def _columns(
    columns: Sequence[CaptureObjectDefinition], selected: Sequence[CaptureObjectDefinition]
) -> list[int]:
    if not selected:
        return list(range(len(columns)))
    indexes = []
    for wanted in selected:
        try:
            indexes.append(list(columns).index(wanted))
        except ValueError:
            raise ValueRejected(f"selected value {wanted} is not captured") from None
    return indexes


def select_range(
    rows: Sequence[Row],
    columns: Sequence[CaptureObjectDefinition],
    descriptor: RangeDescriptor,
    to_utc: ToUtc | None = None,
) -> Array:
    """The rows whose restricting value lies within the bounds, in buffer order."""
    try:
        column = list(columns).index(descriptor.restricting_object)
    except ValueError:
        raise ValueRejected(
            f"restricting object {descriptor.restricting_object} is not captured"
        ) from None
    low = order_key(descriptor.from_value, to_utc)
    high = order_key(descriptor.to_value, to_utc)
    if low is None or high is None or low[0] != high[0]:
        raise ValueRejected("range bounds are not comparable values of one kind")
    wanted = _columns(columns, descriptor.selected_values)
    out = []
    for row in rows:
        key = order_key(row[column], to_utc) if column < len(row) else None
        if key is not None and key[0] == low[0] and low[1] <= key[1] <= high[1]:
            out.append(Structure(row[i] for i in wanted))
    return Array(out)


def select_entries(
    rows: Sequence[Row], columns: Sequence[CaptureObjectDefinition], descriptor: EntryDescriptor
) -> Array:
    first = max(descriptor.from_entry, 1) - 1
    last = descriptor.to_entry if descriptor.to_entry else len(rows)
    first_col = max(descriptor.from_selected_value, 1) - 1
    last_col = descriptor.to_selected_value if descriptor.to_selected_value else len(columns)
    return Array(Structure(row[first_col:last_col]) for row in rows[first:last])
