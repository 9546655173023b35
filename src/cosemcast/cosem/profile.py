"""Profile generic, interface class 7 (version 1): a buffer of captured rows.

Attributes: 1 logical_name, 2 buffer (array of structure, one element per capture object;
selective access by range, selector 1, and by entry, selector 2 — see selective.py), 3
capture_objects (array of capture_object_definition), 4 capture_period (double-long-unsigned
seconds; 0 = captured only on demand), 5 sort_method (enum), 6 sort_object
(capture_object_definition), 7 entries_in_use and 8 profile_entries (double-long-unsigned).
Methods: 1 reset (empty the buffer), 2 capture (take a row now); both integer(0).

Theory of operation. :meth:`ProfileGeneric.capture` reads every capture object from the
object model it belongs to (through :meth:`CosemObject.read`, without access checks, at the
given meter time) and stores the row according to the sort method, dropping the entry the
sort method designates once ``profile_entries`` rows are held. Timing is the meter's job:
:meth:`ProfileGeneric.next_capture_after` tells it when the next period boundary falls. The
``on_capture`` callback hands each new row to the owner for persistence, and
:meth:`ProfileGeneric.load_buffer` restores rows.

Decisions (copy to specs/):

* A capture object that is missing from the model, unreadable, or whose data_index selects
  nothing is captured as null-data.
* fifo keeps the buffer oldest first and drops the oldest; lifo keeps it newest first and
  drops the oldest; largest / smallest / nearest_to_zero / farest_from_zero keep the buffer
  ordered by the sort object's value (the first column without a sort object; rows that are
  not numbers sort last) and drop the last entry.
* Writing capture_objects, sort_method or sort_object empties the buffer (the rows no longer
  match); writing profile_entries drops entries as captures would; profile_entries above
  ``capacity`` is ``other-reason``.
* Periods are aligned on local midnight of the meter's time.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Iterable, Mapping, Sequence

from cosemcast.apdu.common import ActionResult, DataAccessResult, SelectiveAccess
from cosemcast.association.backend import AccessContext
from cosemcast.axdr.types import (
    Array,
    CosemDateTime,
    Data,
    DoubleLongUnsigned,
    Enumerated,
    Structure,
)
from cosemcast.cosem.access import AccessRights
from cosemcast.cosem.base import (
    LOGICAL_NAME,
    AttributeSpec,
    CosemObject,
    MethodSpec,
    want_no_parameter,
)
from cosemcast.cosem.clock import Clock
from cosemcast.cosem.common import (
    CaptureObjectDefinition,
    ValueRejected,
    want_array,
    want_enum,
    want_int,
)
from cosemcast.cosem.selective import (
    RangeDescriptor,
    order_key,
    parse_selective_access,
    select_entries,
    select_range,
)
from cosemcast.obis import Obis

__all__ = ["ProfileGeneric", "SortMethod"]

Row = tuple[Data, ...]
_CLOCK = Obis(0, 0, 1, 0, 0, 255)


class SortMethod(enum.IntEnum):
    FIFO = 1
    LIFO = 2
    LARGEST = 3
    SMALLEST = 4
    NEAREST_TO_ZERO = 5
    FAREST_FROM_ZERO = 6


def _capture_object_array(items: Sequence[CaptureObjectDefinition]) -> Array:
    return Array(c.to_data() for c in items)


class ProfileGeneric(CosemObject):
    """Profile generic (class 7); see the module docstring."""

    CLASS_ID = 7
    VERSION = 1
    ATTRIBUTES = (
        LOGICAL_NAME,
        AttributeSpec(2, "buffer", "array", selectors=(1, 2)),
        AttributeSpec(3, "capture_objects", "array", writable=True),
        AttributeSpec(4, "capture_period", "double-long-unsigned", writable=True),
        AttributeSpec(5, "sort_method", "enum", writable=True),
        AttributeSpec(6, "sort_object", "capture_object_definition", writable=True),
        AttributeSpec(7, "entries_in_use", "double-long-unsigned"),
        AttributeSpec(8, "profile_entries", "double-long-unsigned", writable=True),
    )
    METHODS = (MethodSpec(1, "reset"), MethodSpec(2, "capture"))

    def __init__(
        self,
        logical_name: Obis | str,
        capture_objects: Sequence[CaptureObjectDefinition] = (),
        *,
        capture_period: int = 0,
        profile_entries: int = 1000,
        capacity: int = 100_000,
        sort_method: SortMethod = SortMethod.FIFO,
        sort_object: CaptureObjectDefinition | None = None,
        access: Mapping[int | None, AccessRights] | None = None,
    ) -> None:
        super().__init__(logical_name, access=access)
        if not 0 <= profile_entries <= capacity:
            raise ValueError(f"profile_entries {profile_entries} exceeds capacity {capacity}")
        self.capture_objects: tuple[CaptureObjectDefinition, ...] = tuple(capture_objects)
        self.capture_period = capture_period
        self.profile_entries = profile_entries
        self.capacity = capacity
        self.sort_method = sort_method
        self.sort_object = sort_object
        self.buffer: list[Row] = []
        self.on_capture: Callable[[ProfileGeneric, Row], None] | None = None

    # --- buffer management ---------------------------------------------------------------------

    @property
    def entries_in_use(self) -> int:
        return len(self.buffer)

    def reset(self) -> None:
        self.buffer.clear()

    def load_buffer(self, rows: Iterable[Sequence[Data]]) -> None:
        """Restore persisted rows (in buffer order)."""
        self.buffer = [tuple(r) for r in rows]
        self._trim()

    def capture(self, now: dt.datetime | None = None) -> Row:
        """Read every capture object at the meter time ``now`` and store the row."""
        moment = self._now(now)
        row = tuple(self._capture_value(c, moment) for c in self.capture_objects)
        self._store(row)
        if self.on_capture is not None:
            self.on_capture(self, row)
        return row

    def next_capture_after(self, now: dt.datetime) -> dt.datetime | None:
        """The next period boundary strictly after ``now`` (``None`` if capture_period is 0)."""
        if self.capture_period <= 0:
            return None
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        elapsed = (now - midnight).total_seconds()
        periods = int(elapsed // self.capture_period) + 1
        return midnight + dt.timedelta(seconds=periods * self.capture_period)

    def _capture_value(self, item: CaptureObjectDefinition, now: dt.datetime) -> Data:
        if self.model is not None and self.model.find(item.class_id, item.logical_name) is self:
            return None  # a profile does not capture its own buffer
        return self.captured_value(item, now)

    def _sort_column(self) -> int:
        if self.sort_object is not None and self.sort_object in self.capture_objects:
            return self.capture_objects.index(self.sort_object)
        return 0

    def _sort_key(self, row: Row) -> tuple[int, float]:
        column = self._sort_column()
        value = row[column] if column < len(row) else None
        key = order_key(value)
        if key is None or key[0] != 0:
            return (1, 0.0)
        number = float(key[1])
        match self.sort_method:
            case SortMethod.LARGEST:
                return (0, -number)
            case SortMethod.SMALLEST:
                return (0, number)
            case SortMethod.NEAREST_TO_ZERO:
                return (0, abs(number))
            case _:
                return (0, -abs(number))

    def _store(self, row: Row) -> None:
        if self.sort_method == SortMethod.FIFO:
            self.buffer.append(row)
        elif self.sort_method == SortMethod.LIFO:
            self.buffer.insert(0, row)
        else:
            key = self._sort_key(row)
            position = len(self.buffer)
            for i, existing in enumerate(self.buffer):
                if key < self._sort_key(existing):
                    position = i
                    break
            self.buffer.insert(position, row)
        self._trim()

    def _trim(self) -> None:
        excess = len(self.buffer) - self.profile_entries
        if excess <= 0:
            return
        if self.sort_method == SortMethod.FIFO:
            del self.buffer[:excess]
        else:
            del self.buffer[len(self.buffer) - excess :]

    # --- attributes and methods ----------------------------------------------------------------

    def _clock_to_utc(self) -> Callable[[CosemDateTime], dt.datetime] | None:
        clock = self.model.find(Clock.CLASS_ID, _CLOCK) if self.model is not None else None
        return clock.to_utc if isinstance(clock, Clock) else None

    def _read(
        self,
        attribute_id: int,
        selection: SelectiveAccess | None,
        ctx: AccessContext | None,
        now: dt.datetime | None,
    ) -> Data | DataAccessResult:
        match attribute_id:
            case 2:
                if selection is None:
                    return Array(Structure(row) for row in self.buffer)
                descriptor = parse_selective_access(selection)
                if isinstance(descriptor, RangeDescriptor):
                    return select_range(
                        self.buffer, self.capture_objects, descriptor, self._clock_to_utc()
                    )
                return select_entries(self.buffer, self.capture_objects, descriptor)
            case 3:
                return _capture_object_array(self.capture_objects)
            case 4:
                return DoubleLongUnsigned(self.capture_period)
            case 5:
                return Enumerated(self.sort_method)
            case 6:
                if self.sort_object is None:
                    return CaptureObjectDefinition(0, Obis(0, 0, 0, 0, 0, 0), 0, 0).to_data()
                return self.sort_object.to_data()
            case 7:
                return DoubleLongUnsigned(self.entries_in_use)
            case _:
                return DoubleLongUnsigned(self.profile_entries)

    def _write(self, attribute_id: int, value: Data, ctx: AccessContext | None) -> DataAccessResult:
        match attribute_id:
            case 3:
                items = tuple(CaptureObjectDefinition.from_data(v) for v in want_array(value))
                self.capture_objects = items
                self.reset()
            case 4:
                self.capture_period = want_int(value, DoubleLongUnsigned)
            case 5:
                self.sort_method = SortMethod(want_enum(value, range(1, 7)))
                self.reset()
            case 6:
                item = CaptureObjectDefinition.from_data(value)
                self.sort_object = None if item.class_id == 0 else item
                self.reset()
            case _:
                entries = want_int(value, DoubleLongUnsigned)
                if entries > self.capacity:
                    raise ValueRejected(f"profile_entries {entries} exceeds capacity")
                self.profile_entries = entries
                self._trim()
        return DataAccessResult.SUCCESS

    def _invoke(
        self, method_id: int, params: Data | None, ctx: AccessContext | None
    ) -> tuple[ActionResult, Data | None]:
        want_no_parameter(params)
        if method_id == 1:
            self.reset()
        else:
            self.capture()
        return ActionResult.SUCCESS, None
