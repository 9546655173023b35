"""How the software meter's time moves: integration, captures and pushes in due order.

Theory of operation. The meter's *source time* (:attr:`TimeStepper.source_now`, UTC) only moves
forward, through :meth:`TimeStepper.step` (the meter calls it from
:meth:`~cosemcast.meter.meter.SoftwareMeter.advance_to`, on a timer with the real, possibly
accelerated, clock, or with fake time in tests, and before every request). Each Clock object
reads the source time plus its own offset (changed by a SET of the clock or its methods);
:meth:`~TimeStepper.to_meter` and :meth:`~TimeStepper.to_source` convert between the two.

A step walks the due events in order: registers integrate their load curve up to the event (no
energy while the Disconnect control has the supply off), then the profile captures or the push
setup pushes at that meter time; the next due time is the next period boundary after it,
aligned on local midnight. A clock change or a new capture_period re-plans from the new time.
Before each event, and at the end, the upstream schedule releases the sends it held until then
(the meter's ``release`` callback); a push fired at a reporting instant runs inside the
meter's ``reporting`` context.

Catch-up (decisions, copy to specs/): after a stop, the meter behaves as if it had run: energy
integrates over the gap, and every missed profile period is captured (at most
``profile_entries`` of them, the older ones would be dropped anyway); missed pushes are not
sent, except the latest one when it falls within one interval of the present.

It has no lock of its own: the meter calls it only under ``SoftwareMeter._lock``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager

from cosemcast.cosem.profile import ProfileGeneric
from cosemcast.cosem.shared_payload import SharedPayload
from cosemcast.meter.build import LogicalDevice, Scheduled, next_boundary, register_value

__all__ = ["TimeStepper"]

_log = logging.getLogger("cosemcast.meter")

_UTC = dt.UTC


class TimeStepper:
    """The source time of a meter's logical devices and the schedule of their due events."""

    __slots__ = ("_release", "_reporting", "devices", "source_now")

    def __init__(
        self,
        devices: Mapping[int, LogicalDevice],
        source_now: dt.datetime,
        *,
        release: Callable[[dt.datetime], None],
        reporting: Callable[[LogicalDevice, dt.datetime], AbstractContextManager[None]],
    ) -> None:
        self.devices = devices
        self.source_now = source_now
        self._release = release
        self._reporting = reporting

    def __repr__(self) -> str:
        return f"TimeStepper(source_now={self.source_now.isoformat()})"

    def step(self, target: dt.datetime) -> None:
        """Advance to ``target`` (source time, UTC): integrate, capture and push in order."""
        if target <= self.source_now:
            return
        for device in self.devices.values():
            for item in (*device.profiles, *device.pushes):
                self._plan(device, item, target)
        while True:
            due = self._earliest()
            if due is None or due[0] > target:
                break
            moment, device, item = due
            self._release(moment)
            self._integrate(max(moment, self.source_now))
            self._fire(device, item, target)
        self._release(target)
        self._integrate(target)

    # --- clock conversions ------------------------------------------------------------------

    def meter_now(self, device: LogicalDevice) -> dt.datetime:
        """The time of ``device``'s clock (the source time without a clock)."""
        return device.clock.now() if device.clock is not None else self.source_now

    def to_meter(self, device: LogicalDevice, source: dt.datetime) -> dt.datetime:
        if device.clock is None:
            return source
        return device.clock.local(source + device.clock.offset)

    def to_source(self, device: LogicalDevice, meter: dt.datetime) -> dt.datetime:
        offset = device.clock.offset if device.clock is not None else dt.timedelta(0)
        return meter.astimezone(_UTC) - offset

    # --- due events -------------------------------------------------------------------------

    @staticmethod
    def _period(item: Scheduled) -> int:
        if isinstance(item.obj, ProfileGeneric):
            return item.obj.capture_period
        return item.period_s

    def _plan(self, device: LogicalDevice, item: Scheduled, target: dt.datetime) -> None:
        """(Re)compute ``item.next_due`` when unknown, or when the clock or period changed;
        skip profile periods that would be dropped from the buffer anyway."""
        period = self._period(item)
        offset = device.clock.offset if device.clock is not None else dt.timedelta(0)
        if item.basis != (offset, period):
            item.basis = (offset, period)
            item.next_due = next_boundary(self.meter_now(device), period)
        if (
            item.next_due is not None
            and isinstance(item.obj, ProfileGeneric)
            and period > 0
            and (self.to_meter(device, target) - item.next_due).total_seconds()
            > period * (item.obj.profile_entries + 1)
        ):
            keep_from = self.to_meter(device, target) - dt.timedelta(
                seconds=period * item.obj.profile_entries
            )
            item.next_due = next_boundary(keep_from, period)

    def _earliest(self) -> tuple[dt.datetime, LogicalDevice, Scheduled] | None:
        best: tuple[dt.datetime, LogicalDevice, Scheduled] | None = None
        for device in self.devices.values():
            for item in (*device.profiles, *device.pushes):
                if item.next_due is None:
                    continue
                when = self.to_source(device, item.next_due)
                if best is None or when < best[0]:
                    best = (when, device, item)
        return best

    def _integrate(self, until: dt.datetime) -> None:
        start = self.source_now
        for device in self.devices.values():
            offset = device.clock.offset if device.clock is not None else dt.timedelta(0)
            for follower in device.curves:
                register = follower.register
                scale = 10.0**register.scaler
                if follower.energy:
                    if device.supply_on:
                        follower.energy_wh += follower.curve.energy_wh(
                            start + offset, until + offset, time_zone_min=device.time_zone
                        )
                    amount = follower.energy_wh / scale
                else:
                    watts = follower.curve.power_now(until + offset, time_zone_min=device.time_zone)
                    amount = (watts if device.supply_on else 0.0) / scale
                    if isinstance(register.value, int):
                        amount = round(amount)
                register.value = register_value(register.value, amount)
        self.source_now = max(start, until)

    def _fire(self, device: LogicalDevice, item: Scheduled, target: dt.datetime) -> None:
        due = item.next_due
        assert due is not None
        local = device.clock.local(due) if device.clock is not None else due
        item.next_due = next_boundary(local, self._period(item))
        obj = item.obj
        if isinstance(obj, ProfileGeneric):
            obj.capture(now=due)
            return
        period = self._period(item)
        latest = (target - self.to_source(device, due)).total_seconds() < period
        if isinstance(obj, SharedPayload):
            if latest:
                obj.capture(now=due)
            return
        if latest and obj.in_window(due):
            with self._reporting(device, due):
                obj.push(now=due)
        elif not latest:
            _log.debug("push %s due at %s skipped (catching up)", obj.logical_name, due)
