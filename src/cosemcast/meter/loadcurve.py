"""Load curves: the power a simulated household draws over its day, and the energy it uses.

Theory of operation. A :class:`LoadCurve` is a list of ``(hour, watts)`` points over one day;
the power between two points follows the straight line joining them, and the day wraps (the
last point joins the first one of the next day). A single point is a constant load. Energy is
the exact integral of that piecewise-linear power (trapezoids), computed from a cumulative
table, so advancing by one second or by one year costs the same and gives the same total.

The day is the meter's *normal* local day, UTC minus the clock's time_zone without daylight
saving (decision, copy to specs/): with daylight saving the local wall-clock day has 23 or 25
hours, and integrating over real elapsed time on a shape keyed by wall-clock hours would lose
or double an hour at each transition.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
from dataclasses import dataclass, field

__all__ = ["DAY_S", "LoadCurve"]

DAY_S = 86_400.0
_WH_PER_WS = 1.0 / 3600.0
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class LoadCurve:
    """A daily power shape; ``points`` are ``(hour 0 <= h < 24, watts >= 0)``, hours rising."""

    name: str
    points: tuple[tuple[float, float], ...]
    _knots: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _watts: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _cumulative_ws: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.points:
            raise ValueError("a load curve needs at least one (hour, watts) point")
        hours = [h for h, _ in self.points]
        if any(not 0 <= h < 24 for h in hours) or any(b <= a for a, b in itertools.pairwise(hours)):
            raise ValueError("load curve hours must rise strictly within 0 <= hour < 24")
        if any(w < 0 for _, w in self.points):
            raise ValueError("load curve watts must not be negative")
        first_s, first_w = self.points[0][0] * 3600, self.points[0][1]
        last_s, last_w = self.points[-1][0] * 3600, self.points[-1][1]
        wrap_span = DAY_S - last_s + first_s
        # Power at midnight: on the line from the last point to the first one of the next day.
        midnight_w = last_w + (first_w - last_w) * (DAY_S - last_s) / wrap_span
        knots = [0.0] + [h * 3600 for h, _ in self.points] + [DAY_S]
        watts = [midnight_w] + [w for _, w in self.points] + [midnight_w]
        cumulative = [0.0]
        for i in range(1, len(knots)):
            cumulative.append(
                cumulative[-1] + (knots[i] - knots[i - 1]) * (watts[i] + watts[i - 1]) / 2
            )
        object.__setattr__(self, "_knots", tuple(knots))
        object.__setattr__(self, "_watts", tuple(watts))
        object.__setattr__(self, "_cumulative_ws", tuple(cumulative))

    @property
    def daily_wh(self) -> float:
        """Energy of one whole day, in Wh."""
        return self._cumulative_ws[-1] * _WH_PER_WS

    def power_at(self, seconds_of_day: float) -> float:
        """Watts at ``seconds_of_day`` (taken modulo one day)."""
        s = seconds_of_day % DAY_S
        i = max(1, bisect.bisect_right(self._knots, s))
        i = min(i, len(self._knots) - 1)
        a, b = self._knots[i - 1], self._knots[i]
        wa, wb = self._watts[i - 1], self._watts[i]
        return wa if b == a else wa + (wb - wa) * (s - a) / (b - a)

    def _within_day_ws(self, s: float) -> float:
        """Watt-seconds from midnight to ``s`` (0 <= s <= one day)."""
        i = max(1, bisect.bisect_right(self._knots, s))
        i = min(i, len(self._knots) - 1)
        a = self._knots[i - 1]
        return self._cumulative_ws[i - 1] + (s - a) * (self._watts[i - 1] + self.power_at(s)) / 2

    def _running_ws(self, t: float) -> float:
        days, s = divmod(t, DAY_S)
        return days * self._cumulative_ws[-1] + self._within_day_ws(s)

    def energy_wh(self, start: dt.datetime, end: dt.datetime, *, time_zone_min: int) -> float:
        """Wh used from ``start`` to ``end`` (aware; 0 when end <= start) on the normal local
        day of a clock whose time_zone (UTC - local, minutes) is ``time_zone_min``."""
        if end <= start:
            return 0.0
        shift = -time_zone_min * 60.0
        t0 = (start - _EPOCH).total_seconds() + shift
        t1 = (end - _EPOCH).total_seconds() + shift
        return (self._running_ws(t1) - self._running_ws(t0)) * _WH_PER_WS

    def power_now(self, moment: dt.datetime, *, time_zone_min: int) -> float:
        """Watts at ``moment`` (aware) on the normal local day (see :meth:`energy_wh`)."""
        return self.power_at((moment - _EPOCH).total_seconds() - time_zone_min * 60.0)
