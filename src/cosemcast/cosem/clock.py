"""Clock, interface class 8 (version 0).

Attributes: 1 logical_name, 2 time (octet-string(12) date-time, local time with deviation and
clock status), 3 time_zone (long, minutes), 4 status (unsigned, clock_status bits), 5
daylight_savings_begin and 6 daylight_savings_end (octet-string(12), wildcards allowed), 7
daylight_savings_deviation (integer, minutes), 8 daylight_savings_enabled (boolean), 9
clock_base (enum). Methods: 1 adjust_to_quarter, 2 adjust_to_measuring_period, 3
adjust_to_minute, 4 adjust_to_preset_time (all integer(0)), 5 preset_adjusting_time
(structure {preset_time, validity_interval_start, validity_interval_end}), 6 shift_time (long
seconds, -900..900).

Theory of operation. The clock never reads the wall clock: it is given a ``time_source``
(returning an aware datetime) and keeps an ``offset`` (a timedelta) that every adjustment
changes; the meter's time is ``time_source() + offset``. Persisting ``offset`` is all a meter
needs to keep its time across restarts. :meth:`Clock.now` returns that time as an aware
datetime in the meter's local offset, which is what every other object takes as ``now``.

Decisions (copy to specs/):

* ``time_zone`` uses the sign of the date-time deviation (brief §9.3): minutes UTC − local
  normal time, so CET is -60. While daylight saving is active the deviation written in the
  time attribute is ``time_zone - daylight_savings_deviation`` and status bit 7 is set.
* Daylight-saving dates are resolved per year from the begin/end date-times: a wildcard year
  means every year; day FE is the last and FD the second-last day of the month; with a
  day_of_week the transition is the first such weekday on or after the day (on or before it
  for FE/FD); unspecified hour/minute/second are 0. Both bounds are compared with local
  normal time (begin inclusive, end exclusive); begin after end (southern hemisphere) wraps.
* A written time with unspecified deviation is taken as meter local time.
* adjust_to_preset_time outside the validity interval, or with no preset, is
  ``other-reason``; adjust_to_measuring_period without a configured period is
  ``object-unavailable``.
"""

from __future__ import annotations

import calendar
import datetime as dt
import enum
from collections.abc import Callable, Mapping

from cosemcast.apdu.common import ActionResult, DataAccessResult, SelectiveAccess
from cosemcast.association.backend import AccessContext
from cosemcast.axdr.types import (
    ClockStatus,
    CosemDateTime,
    Data,
    Enumerated,
    Integer,
    Long,
    Unsigned,
)
from cosemcast.cosem.access import AccessRights
from cosemcast.cosem.base import (
    LOGICAL_NAME,
    AttributeSpec,
    CosemObject,
    MethodSpec,
    want_no_parameter,
)
from cosemcast.cosem.common import (
    ValueRejected,
    datetime_octets,
    want_bool,
    want_datetime,
    want_int,
    want_structure,
)
from cosemcast.obis import Obis

__all__ = ["CLOCK_OBIS", "Clock", "ClockBase"]

_UTC = dt.UTC
CLOCK_OBIS = Obis(0, 0, 1, 0, 0, 255)
_NO_STATUS = ClockStatus(0)
_MIN_YEAR, _MAX_YEAR = 2, 9998
_QUARTER_S = 900
_MAX_SHIFT_S = 900


class ClockBase(enum.IntEnum):
    NOT_DEFINED = 0
    INTERNAL_CRYSTAL = 1
    MAINS_50_HZ = 2
    MAINS_60_HZ = 3
    GPS = 4
    RADIO_CONTROLLED = 5


def _resolve_transition(when: CosemDateTime, year: int) -> dt.datetime | None:
    """The naive local-normal moment of a daylight-saving transition in ``year`` (see module)."""
    if when.year is not None and when.year != year:
        return None
    if when.month is None or not 1 <= when.month <= 12:
        return None
    last = calendar.monthrange(year, when.month)[1]
    backwards = when.day in (0xFE, 0xFD)
    if when.day is None:
        day = 1
    elif when.day == 0xFE:
        day = last
    elif when.day == 0xFD:
        day = last - 1
    elif 1 <= when.day <= last:
        day = when.day
    else:
        return None
    base = dt.date(year, when.month, day)
    if when.day_of_week is not None and 1 <= when.day_of_week <= 7:
        shift = (when.day_of_week - base.isoweekday()) % 7
        if backwards and shift:
            shift -= 7
        base += dt.timedelta(days=shift)
    try:
        return dt.datetime(
            base.year, base.month, base.day, when.hour or 0, when.minute or 0, when.second or 0
        )
    except ValueError:
        return None


def _round_to(seconds: float, step: float) -> float:
    """Delta that moves ``seconds`` to the nearest multiple of ``step`` (half rounds up)."""
    return (int(seconds / step + 0.5)) * step - seconds


class Clock(CosemObject):
    """Clock (class 8); see the module docstring."""

    CLASS_ID = 8
    VERSION = 0
    ATTRIBUTES = (
        LOGICAL_NAME,
        AttributeSpec(2, "time", "octet-string(12)", writable=True),
        AttributeSpec(3, "time_zone", "long", writable=True),
        AttributeSpec(4, "status", "unsigned"),
        AttributeSpec(5, "daylight_savings_begin", "octet-string(12)", writable=True),
        AttributeSpec(6, "daylight_savings_end", "octet-string(12)", writable=True),
        AttributeSpec(7, "daylight_savings_deviation", "integer", writable=True),
        AttributeSpec(8, "daylight_savings_enabled", "boolean", writable=True),
        AttributeSpec(9, "clock_base", "enum"),
    )
    METHODS = (
        MethodSpec(1, "adjust_to_quarter"),
        MethodSpec(2, "adjust_to_measuring_period"),
        MethodSpec(3, "adjust_to_minute"),
        MethodSpec(4, "adjust_to_preset_time"),
        MethodSpec(5, "preset_adjusting_time", "structure"),
        MethodSpec(6, "shift_time", "long"),
    )

    def __init__(
        self,
        logical_name: Obis | str = CLOCK_OBIS,
        *,
        time_source: Callable[[], dt.datetime],
        offset: dt.timedelta = dt.timedelta(0),
        time_zone: int = 0,
        status: ClockStatus = _NO_STATUS,
        daylight_savings_begin: CosemDateTime | None = None,
        daylight_savings_end: CosemDateTime | None = None,
        daylight_savings_deviation: int = 60,
        daylight_savings_enabled: bool = False,
        clock_base: ClockBase = ClockBase.INTERNAL_CRYSTAL,
        measuring_period: dt.timedelta | None = None,
        access: Mapping[int | None, AccessRights] | None = None,
    ) -> None:
        super().__init__(logical_name, access=access)
        self.time_source = time_source
        self.offset = offset
        self.time_zone = time_zone
        self.status = status
        self.daylight_savings_begin = daylight_savings_begin
        self.daylight_savings_end = daylight_savings_end
        self.daylight_savings_deviation = daylight_savings_deviation
        self.daylight_savings_enabled = daylight_savings_enabled
        self.clock_base = clock_base
        self.measuring_period = measuring_period
        self.preset: tuple[CosemDateTime, CosemDateTime, CosemDateTime] | None = None

    # --- time arithmetic -----------------------------------------------------------------------

    def utc_now(self) -> dt.datetime:
        """The meter's time in UTC: ``time_source() + offset``."""
        source = self.time_source()
        if source.tzinfo is None:
            source = source.replace(tzinfo=_UTC)
        return source.astimezone(_UTC) + self.offset

    def dst_active(self, utc: dt.datetime) -> bool:
        if not self.daylight_savings_enabled:
            return False
        begin_spec, end_spec = self.daylight_savings_begin, self.daylight_savings_end
        if begin_spec is None or end_spec is None:
            return False
        normal = (utc - dt.timedelta(minutes=self.time_zone)).replace(tzinfo=None)
        begin = _resolve_transition(begin_spec, normal.year)
        end = _resolve_transition(end_spec, normal.year)
        if begin is None or end is None:
            return False
        if begin <= end:
            return begin <= normal < end
        return normal >= begin or normal < end

    def deviation_at(self, utc: dt.datetime) -> int:
        """The date-time deviation (UTC − local, minutes) in force at ``utc``."""
        if self.dst_active(utc):
            return self.time_zone - self.daylight_savings_deviation
        return self.time_zone

    def local(self, moment: dt.datetime) -> dt.datetime:
        """``moment`` as an aware datetime in the meter's local offset at that instant."""
        utc = moment.astimezone(_UTC) if moment.tzinfo else moment.replace(tzinfo=_UTC)
        zone = dt.timezone(dt.timedelta(minutes=-self.deviation_at(utc)))
        return utc.astimezone(zone)

    def now(self) -> dt.datetime:
        """The meter's time, aware, in its local offset."""
        return self.local(self.utc_now())

    def to_cosem(self, moment: dt.datetime) -> CosemDateTime:
        """``moment`` as the date-time attribute 2 shows it (deviation and clock status)."""
        local = self.local(moment)
        utc = local.astimezone(_UTC)
        status = self.status | (
            ClockStatus.DAYLIGHT_SAVING_ACTIVE if self.dst_active(utc) else ClockStatus(0)
        )
        return CosemDateTime.from_datetime(local, clock_status=ClockStatus(status))

    def to_utc(self, value: CosemDateTime) -> dt.datetime:
        """A fully specified date-time as UTC; no deviation means meter local time.

        Raises the internal ValueRejected for unspecified fields and for years outside
        1..9998 (so that offsets and deviations stay within Python's datetime range).
        """
        if value.year is None or not _MIN_YEAR <= value.year <= _MAX_YEAR:
            raise ValueRejected(f"date-time {value} is outside the supported years")
        try:
            naive = value.to_datetime()
        except ValueError as exc:
            raise ValueRejected(f"date-time {value} is not a point in time") from exc
        if naive.tzinfo is not None:
            return naive.astimezone(_UTC)
        guess = naive.replace(tzinfo=_UTC) + dt.timedelta(minutes=self.time_zone)
        return naive.replace(tzinfo=_UTC) + dt.timedelta(minutes=self.deviation_at(guess))

    def set_time(self, moment: dt.datetime) -> None:
        """Make the meter's time ``moment`` now (by changing ``offset``)."""
        self.offset += moment.astimezone(_UTC) - self.utc_now()

    def shift(self, delta: dt.timedelta) -> None:
        self.offset += delta

    # --- attributes and methods ----------------------------------------------------------------

    def _read(
        self,
        attribute_id: int,
        selection: SelectiveAccess | None,
        ctx: AccessContext | None,
        now: dt.datetime | None,
    ) -> Data | DataAccessResult:
        moment = now if now is not None else self.utc_now()
        match attribute_id:
            case 2:
                return datetime_octets(self.to_cosem(moment))
            case 3:
                return Long(self.time_zone)
            case 4:
                utc = moment.astimezone(_UTC)
                dst = ClockStatus.DAYLIGHT_SAVING_ACTIVE if self.dst_active(utc) else 0
                return Unsigned(int(self.status) | dst)
            case 5:
                return datetime_octets(self.daylight_savings_begin or _unspecified())
            case 6:
                return datetime_octets(self.daylight_savings_end or _unspecified())
            case 7:
                return Integer(self.daylight_savings_deviation)
            case 8:
                return self.daylight_savings_enabled
            case _:
                return Enumerated(self.clock_base)

    def _write(self, attribute_id: int, value: Data, ctx: AccessContext | None) -> DataAccessResult:
        match attribute_id:
            case 2:
                self.set_time(self.to_utc(want_datetime(value)))
            case 3:
                self.time_zone = want_int(value, Long, low=-720, high=720)
            case 5:
                self.daylight_savings_begin = want_datetime(value)
            case 6:
                self.daylight_savings_end = want_datetime(value)
            case 7:
                self.daylight_savings_deviation = want_int(value, Integer, low=-120, high=120)
            case _:
                self.daylight_savings_enabled = want_bool(value)
        return DataAccessResult.SUCCESS

    def _invoke(
        self, method_id: int, params: Data | None, ctx: AccessContext | None
    ) -> tuple[ActionResult, Data | None]:
        if method_id == 5:
            s = want_structure(params, 3)
            preset = (want_datetime(s[0]), want_datetime(s[1]), want_datetime(s[2]))
            self.to_utc(preset[0])
            self.preset = preset
            return ActionResult.SUCCESS, None
        if method_id == 6:
            seconds = want_int(params, Long, low=-_MAX_SHIFT_S, high=_MAX_SHIFT_S)
            self.shift(dt.timedelta(seconds=seconds))
            return ActionResult.SUCCESS, None
        want_no_parameter(params)
        local = self.now()
        if method_id == 4:
            return self._adjust_to_preset(local)
        if method_id == 2:
            if self.measuring_period is None:
                return ActionResult.OBJECT_UNAVAILABLE, None
            step = self.measuring_period.total_seconds()
            midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
            since = (local - midnight).total_seconds()
        else:
            step = _QUARTER_S if method_id == 1 else 60
            since = local.minute * 60 + local.second + local.microsecond / 1e6
        self.shift(dt.timedelta(seconds=_round_to(since, step)))
        return ActionResult.SUCCESS, None

    def _adjust_to_preset(self, local: dt.datetime) -> tuple[ActionResult, Data | None]:
        if self.preset is None:
            return ActionResult.OTHER_REASON, None
        preset_time, start, end = self.preset
        if not self.to_utc(start) <= local <= self.to_utc(end):
            return ActionResult.OTHER_REASON, None
        self.set_time(self.to_utc(preset_time))
        self.preset = None
        return ActionResult.SUCCESS, None


def _unspecified() -> CosemDateTime:
    return CosemDateTime(None, None, None, None, None, None, None, None, None, None)
