"""The meter in injected time, without sockets: load-curve integration, profile captures and
their catch-up, clock changes, the breaker, persistence of every kind of state, and the load
curve itself (exact integral checked against numeric integration; additivity by Hypothesis)."""

from __future__ import annotations

import datetime as dt
import itertools
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosemcast.axdr.types import DoubleLongUnsigned, OctetString
from cosemcast.cosem import Clock, DataObject, DisconnectControl, ProfileGeneric, Register
from cosemcast.meter import SoftwareMeter
from cosemcast.meter.loadcurve import LoadCurve
from cosemcast.meter.state import MeterState, MeterStateError
from cosemcast.obis import Obis
from test_meter_support import START, FakeClock

ENERGY = Obis.parse("1-0:1.8.0.255")
POWER = Obis.parse("1-0:1.7.0.255")
PROFILE = Obis.parse("1-0:99.1.0.255")
CLOCK = Obis.parse("0-0:1.0.0.255")
SERIAL = Obis.parse("0-0:96.1.0.255")
BREAKER = Obis.parse("0-0:96.3.10.255")
SETUP = Obis.parse("0-0:43.0.0.255")
HOUSEHOLD = (
    (0.0, 260.0), (5.0, 220.0), (6.5, 450.0), (7.5, 1400.0), (8.5, 600.0), (12.0, 750.0),
    (13.5, 500.0), (17.0, 650.0), (19.0, 1900.0), (21.0, 1300.0), (23.0, 450.0),
)  # fmt: skip
CONSTANT = """
[[load_curves]]
name = "flat"
points = [[0, 1200]]

[[logical_devices]]
server_sap = 1
system_title = "4D4D4D0000000001"
manufacturer_id = "CSC"

  [[logical_devices.clients]]
  sap = 16

  [[logical_devices.objects]]
  class = "clock"

  [[logical_devices.objects]]
  class = "register"
  obis = "1-0:1.8.0.255"
  unit = "Wh"
  energy_of = "flat"

  [[logical_devices.objects]]
  class = "profile"
  obis = "1-0:99.1.0.255"
  capture_objects = ["8/0-0:1.0.0.255/2", "3/1-0:1.8.0.255/2"]
  capture_period = 900
  profile_entries = 10
"""


def obj(meter: SoftwareMeter, obis: Obis) -> object:
    found = meter.devices[1].model.by_obis(obis)
    assert found is not None
    return found


def energy(meter: SoftwareMeter) -> int:
    register = obj(meter, ENERGY)
    assert isinstance(register, Register)
    return int(register.value)  # type: ignore[call-overload]


def profile(meter: SoftwareMeter) -> ProfileGeneric:
    found = obj(meter, PROFILE)
    assert isinstance(found, ProfileGeneric)
    return found


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def flat_config(tmp_path: Path) -> Path:
    path = tmp_path / "flat.toml"
    path.write_text(CONSTANT)
    return path


def test_a_constant_load_integrates_exactly(
    tmp_path: Path, clock: FakeClock, flat_config: Path
) -> None:
    with SoftwareMeter.from_config(flat_config, tmp_path / "s.sqlite3", clock=clock) as meter:
        for _ in range(7):
            clock.advance(minutes=10)
            meter.advance_to()
        assert energy(meter) == 1400  # 1200 W for 70 minutes
        rows = profile(meter).buffer
        assert [row[1] for row in rows] == [300, 600, 900, 1200]  # at 10:15 .. 11:00 UTC


def test_small_and_large_steps_give_the_same_energy(tmp_path: Path) -> None:
    totals = []
    for name, step_s in (("small", 37.0), ("large", 86_400.0)):
        clock = FakeClock()
        with SoftwareMeter.from_config(None, tmp_path / f"{name}.sqlite3", clock=clock) as meter:
            while clock.now < START + dt.timedelta(days=1):
                clock.advance(seconds=step_s)
                meter.advance_to(min(clock.now, START + dt.timedelta(days=1)))
            totals.append(meter.devices[1].curves[0].energy_wh)
    assert totals[0] == pytest.approx(totals[1], abs=1e-6)
    curve = LoadCurve("d", HOUSEHOLD)
    assert totals[0] - 1520400 == pytest.approx(curve.daily_wh, abs=1e-6)


def test_time_never_goes_back(tmp_path: Path, clock: FakeClock) -> None:
    with SoftwareMeter.from_config(None, tmp_path / "s.sqlite3", clock=clock) as meter:
        meter.advance_to(START + dt.timedelta(hours=1))
        before = energy(meter), len(profile(meter).buffer), meter.source_time
        meter.advance_to(START)
        assert (energy(meter), len(profile(meter).buffer), meter.source_time) == before


def test_a_long_gap_captures_only_what_the_buffer_keeps(
    tmp_path: Path, clock: FakeClock, flat_config: Path
) -> None:
    with SoftwareMeter.from_config(flat_config, tmp_path / "s.sqlite3", clock=clock) as meter:
        clock.advance(days=40)
        meter.advance_to()
        rows = profile(meter).buffer
        assert len(rows) == 10
        last = OctetString(rows[-1][0]).as_datetime()
        assert (last.day, last.hour, last.minute) == (10, 10, 0)  # June 10th, 10:00 UTC
        assert rows[-1][1] == 1200 * 24 * 40
        stamps = [OctetString(r[0]).as_datetime().to_datetime() for r in rows]
        assert all(b - a == dt.timedelta(minutes=15) for a, b in itertools.pairwise(stamps))


def test_setting_the_clock_replans_captures_and_persists(
    tmp_path: Path, clock: FakeClock, flat_config: Path
) -> None:
    state = tmp_path / "s.sqlite3"
    with SoftwareMeter.from_config(flat_config, state, clock=clock) as meter:
        meter_clock = obj(meter, CLOCK)
        assert isinstance(meter_clock, Clock)
        meter_clock.set_time(START + dt.timedelta(hours=5))
        meter_clock.changed()
        clock.advance(minutes=20)
        meter.advance_to()
        rows = profile(meter).buffer
        assert len(rows) == 1  # 15:15 meter time only, no burst for the skipped hours
        stamp = OctetString(rows[0][0]).as_datetime()
        assert (stamp.hour, stamp.minute) == (15, 15)
        assert energy(meter) == 400  # energy follows real elapsed time
    with SoftwareMeter.from_config(flat_config, state, clock=clock) as meter:
        restored = obj(meter, CLOCK)
        assert isinstance(restored, Clock)
        assert restored.now() == START + dt.timedelta(hours=5, minutes=20)


@pytest.mark.parametrize(
    ("start", "before", "after"),
    [
        # EU summer time starts 2024-03-31 01:00 UTC (02:00 CET -> 03:00 CEST) and ends
        # 2024-10-27 01:00 UTC (03:00 CEST -> 02:00 CET).
        (dt.datetime(2024, 3, 31, 0, 0, tzinfo=dt.UTC), (1, 45, -60), (3, 0, -120)),
        (dt.datetime(2024, 10, 27, 0, 0, tzinfo=dt.UTC), (2, 45, -120), (2, 0, -60)),
    ],
)
def test_captures_stay_every_15_minutes_across_daylight_saving_changes(
    tmp_path: Path, start: dt.datetime, before: tuple[int, int, int], after: tuple[int, int, int]
) -> None:
    clock = FakeClock(start)
    with SoftwareMeter.from_config(None, tmp_path / "s.sqlite3", clock=clock) as meter:
        for _ in range(8):
            clock.advance(minutes=15)
            meter.advance_to()
        stamps = [OctetString(row[0]).as_datetime() for row in profile(meter).buffer]
    moments = [s.to_datetime() for s in stamps]
    assert len(moments) == 8
    assert all(b - a == dt.timedelta(minutes=15) for a, b in itertools.pairwise(moments))
    assert (stamps[2].hour, stamps[2].minute, stamps[2].deviation) == before
    assert (stamps[3].hour, stamps[3].minute, stamps[3].deviation) == after
    assert stamps[2].clock_status != stamps[3].clock_status


def test_the_breaker_stops_and_resumes_energy(tmp_path: Path, clock: FakeClock) -> None:
    with SoftwareMeter.from_config(None, tmp_path / "s.sqlite3", clock=clock) as meter:
        breaker = obj(meter, BREAKER)
        power = obj(meter, POWER)
        assert isinstance(breaker, DisconnectControl) and isinstance(power, Register)
        clock.advance(minutes=30)
        meter.advance_to()
        assert power.value != 0
        breaker.invoke(1)
        start = energy(meter)
        clock.advance(hours=2)
        meter.advance_to()
        assert energy(meter) == start and power.value == 0
        breaker.invoke(2)  # remote_reconnect: mode 1 goes to ready_for_reconnection
        breaker.manual_reconnect()
        clock.advance(hours=1)
        meter.advance_to()
        assert energy(meter) > start and power.value != 0


def test_every_kind_of_state_survives_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    state = tmp_path / "s.sqlite3"
    with SoftwareMeter.from_config(None, state, clock=clock) as meter:
        clock.advance(hours=6)
        meter.advance_to()
        serial = obj(meter, SERIAL)
        assert isinstance(serial, DataObject)
        assert serial.write(2, OctetString(b"CHANGED")) == 0
        register = obj(meter, ENERGY)
        assert isinstance(register, Register)
        assert register.write(2, DoubleLongUnsigned(5)) == 0  # a client's SET of the value
        association = meter.devices[1].clients[17].association
        assert association.write(7, OctetString(b"new-password")) == 0
        rows = list(profile(meter).buffer)
        source = meter.source_time
    with SoftwareMeter.from_config(None, state, clock=clock) as meter:
        assert meter.source_time == source
        assert profile(meter).buffer == rows and len(rows) == 24
        restored = obj(meter, SERIAL)
        assert isinstance(restored, DataObject) and restored.value == b"CHANGED"
        assert energy(meter) == 5
        assert meter.devices[1].curves[0].energy_wh == 5.0
        settings = meter.devices[1].settings_for(17)
        assert settings is not None and settings.secret == b"new-password"
        clock.advance(minutes=15)
        meter.advance_to()
        assert len(profile(meter).buffer) == 25 and energy(meter) > 5


def test_a_stop_is_caught_up_on_restart(
    tmp_path: Path, clock: FakeClock, flat_config: Path
) -> None:
    state = tmp_path / "s.sqlite3"
    with SoftwareMeter.from_config(flat_config, state, clock=clock) as meter:
        meter.advance_to()
    clock.advance(hours=1)
    with SoftwareMeter.from_config(flat_config, state, clock=clock) as meter:
        meter.advance_to()
        assert energy(meter) == 1200
        assert len(profile(meter).buffer) == 4


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    MeterState(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meter_schema_version SET version = 99")
    with pytest.raises(MeterStateError, match="newer"):
        MeterState(path)


# --- the load curve ------------------------------------------------------------------------------

HOURS = st.lists(
    st.tuples(st.integers(0, 23 * 4).map(lambda q: q / 4), st.floats(0, 5000)),
    min_size=1,
    max_size=8,
    unique_by=lambda p: p[0],
).map(lambda points: tuple(sorted(points)))


def test_power_interpolates_and_wraps_at_midnight() -> None:
    curve = LoadCurve("c", ((6.0, 100.0), (18.0, 300.0)))
    assert curve.power_at(6 * 3600) == 100 and curve.power_at(12 * 3600) == 200
    assert curve.power_at(0) == curve.power_at(86_400) == 200  # halfway from 18:00 to 06:00
    assert curve.daily_wh == pytest.approx(200 * 24)


def test_the_exact_integral_matches_numeric_integration() -> None:
    curve = LoadCurve("c", ((1.5, 300.0), (7.0, 2000.0), (20.25, 50.0)))
    step = 10.0
    numeric = sum(curve.power_at(t + step / 2) * step for t in range(0, 86_400, 10)) / 3600
    assert curve.daily_wh == pytest.approx(numeric, rel=1e-9)


@settings(max_examples=200, deadline=None)
@given(HOURS, st.floats(0, 3 * 86_400), st.floats(0, 3 * 86_400), st.integers(-720, 720))
def test_energy_is_additive_and_non_negative(
    points: tuple[tuple[float, float], ...], a: float, b: float, zone: int
) -> None:
    curve = LoadCurve("h", points)
    t0 = START
    t1 = t0 + dt.timedelta(seconds=min(a, b))
    t2 = t0 + dt.timedelta(seconds=max(a, b))
    whole = curve.energy_wh(t0, t2, time_zone_min=zone)
    parts = curve.energy_wh(t0, t1, time_zone_min=zone) + curve.energy_wh(
        t1, t2, time_zone_min=zone
    )
    assert whole >= 0
    assert whole == pytest.approx(parts, rel=1e-9, abs=1e-6)
    assert whole <= max(w for _, w in points) * (t2 - t0).total_seconds() / 3600 + 1e-6


@pytest.mark.parametrize(
    "points",
    [(), ((24.0, 1.0),), ((5.0, 1.0), (5.0, 2.0)), ((6.0, 1.0), (5.0, 2.0)), ((1.0, -1.0),)],
)
def test_bad_load_curves_are_refused(points: tuple[tuple[float, float], ...]) -> None:
    with pytest.raises(ValueError):
        LoadCurve("bad", points)
