"""Client-side views: typed readings from the Data a meter returns.

Theory of operation. A client reads attributes as raw COSEM :data:`~cosemcast.axdr.Data`;
these helpers give them meaning without a server-side object:

* :class:`RegisterValue` combines a Register value with its scaler_unit (brief §9.4): the
  physical value is ``raw × 10^scaler`` in the unit of units.py, exact (``Decimal``) for
  integer registers;
* :func:`parse_profile_buffer` maps Profile generic buffer rows onto their capture objects and
  turns date-time columns (octet-string(12), brief §9.3) into :class:`CosemDateTime`;
* :func:`parse_object_list` (re-exported from object_list.py) gives the (class_id, version,
  OBIS, access rights) of every object of an association;
* the selective-access builders of selective.py (:func:`clock_range`,
  :func:`range_selection`, :func:`entry_selection`) make the access-selection a client sends.

Malformed meter data raises :class:`~cosemcast.errors.DecodeError`.

Decisions (copy to specs/): a column is a date-time when its capture object is Clock.time
(8/2), Extended register capture_time (4/5) or Demand register capture_time and
start_time_current (5/6, 5/7), or when the meter already sent a date-time; a null-data
date-time is filled in as the previous row's time plus capture_period when the caller gives
capture_period (meters compress regular timestamps that way), else left null.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from cosemcast.axdr.types import Array, CosemDateTime, Data, Float32, Float64, Integer, OctetString
from cosemcast.cosem.common import (
    CaptureObjectDefinition,
    TypeUnmatched,
    ValueRejected,
    want_array,
    want_datetime,
    want_enum,
    want_int,
    want_structure,
)
from cosemcast.cosem.object_list import ObjectListEntry, parse_object_list
from cosemcast.cosem.selective import clock_range, entry_selection, range_selection
from cosemcast.cosem.units import Unit, as_unit, unit_symbol
from cosemcast.errors import DecodeError

__all__ = [
    "DATETIME_ATTRIBUTES",
    "ObjectListEntry",
    "ProfileBuffer",
    "RegisterValue",
    "clock_range",
    "entry_selection",
    "parse_capture_objects",
    "parse_object_list",
    "parse_profile_buffer",
    "parse_scaler_unit",
    "range_selection",
]

DATETIME_ATTRIBUTES: Final = frozenset({(8, 2), (4, 5), (5, 6), (5, 7)})


def _decode_error(what: str, exc: Exception) -> DecodeError:
    return DecodeError(f"malformed {what}: {exc}", expected=what)


def parse_scaler_unit(value: Data) -> tuple[int, Unit | int]:
    """``structure {scaler integer, unit enum}`` → (scaler, unit)."""
    try:
        s = want_structure(value, 2)
        return want_int(s[0], Integer), as_unit(want_enum(s[1]))
    except (TypeUnmatched, ValueRejected) as exc:
        raise _decode_error("scaler_unit", exc) from exc


@dataclass(frozen=True, slots=True)
class RegisterValue:
    """A register reading: raw value, scaler and unit."""

    raw: Data
    scaler: int = 0
    unit: Unit | int = Unit.COUNT

    @classmethod
    def from_data(cls, value: Data, scaler_unit: Data) -> RegisterValue:
        scaler, unit = parse_scaler_unit(scaler_unit)
        return cls(value, scaler, unit)

    @property
    def value(self) -> Decimal | float | Data:
        """``raw × 10^scaler``: a Decimal for integers, a float for floats, else ``raw``."""
        raw = self.raw
        if isinstance(raw, Float32 | Float64):
            return float(raw) * 10.0**self.scaler
        if isinstance(raw, int) and not isinstance(raw, bool):
            if self.scaler >= 0:
                return Decimal(int(raw) * 10**self.scaler)
            return Decimal(int(raw)).scaleb(self.scaler)
        return raw

    @property
    def unit_symbol(self) -> str:
        return unit_symbol(int(self.unit))

    def __str__(self) -> str:
        value = self.value
        text = value.hex() if isinstance(value, bytes) else str(value)
        symbol = self.unit_symbol
        return f"{text} {symbol}" if symbol else text


def parse_capture_objects(value: Data) -> tuple[CaptureObjectDefinition, ...]:
    try:
        return tuple(CaptureObjectDefinition.from_data(v) for v in want_array(value))
    except (TypeUnmatched, ValueRejected) as exc:
        raise _decode_error("capture_objects", exc) from exc


@dataclass(frozen=True, slots=True)
class ProfileBuffer:
    """Profile generic rows with the capture object of every column."""

    columns: tuple[CaptureObjectDefinition, ...]
    rows: tuple[tuple[Data, ...], ...]

    def column(self, definition: CaptureObjectDefinition) -> tuple[Data, ...]:
        index = self.columns.index(definition)
        return tuple(row[index] for row in self.rows)


def _is_datetime_column(column: CaptureObjectDefinition) -> bool:
    return column.data_index == 0 and (column.class_id, column.attribute_index) in (
        DATETIME_ATTRIBUTES
    )


def parse_profile_buffer(
    buffer: Data,
    capture_objects: Data | Sequence[CaptureObjectDefinition],
    *,
    capture_period: int | None = None,
) -> ProfileBuffer:
    """Map buffer rows to ``capture_objects`` (already selected columns, if any)."""
    if isinstance(capture_objects, Array):
        columns = parse_capture_objects(capture_objects)
    elif isinstance(capture_objects, list | tuple):
        columns = tuple(c for c in capture_objects if isinstance(c, CaptureObjectDefinition))
        if len(columns) != len(capture_objects):
            raise DecodeError("capture_objects must be an array or capture object definitions")
    else:
        raise DecodeError("capture_objects must be an array or capture object definitions")
    is_time = [_is_datetime_column(c) for c in columns]
    previous: list[CosemDateTime | None] = [None] * len(columns)
    rows = []
    try:
        for entry in want_array(buffer):
            row = want_structure(entry, len(columns))
            out: list[Data] = []
            for i, cell in enumerate(row):
                if is_time[i] or isinstance(cell, CosemDateTime):
                    cell = _time_cell(cell, previous[i], capture_period)
                    previous[i] = cell if isinstance(cell, CosemDateTime) else None
                out.append(cell)
            rows.append(tuple(out))
    except (TypeUnmatched, ValueRejected) as exc:
        raise _decode_error("profile buffer", exc) from exc
    return ProfileBuffer(columns, tuple(rows))


def _time_cell(cell: Data, previous: CosemDateTime | None, capture_period: int | None) -> Data:
    if cell is None:
        if previous is None or not capture_period:
            return None
        try:
            moment = previous.to_datetime() + dt.timedelta(seconds=capture_period)
        except ValueError:
            return None
        return CosemDateTime.from_datetime(moment, clock_status=previous.clock_status)
    if (isinstance(cell, OctetString) and len(cell) == 12) or isinstance(cell, CosemDateTime):
        return want_datetime(cell)
    return cell
