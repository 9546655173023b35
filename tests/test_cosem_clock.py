"""Clock (class 8): injected time, offset, time zone, daylight saving, methods."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.common import ActionResult, DataAccessResult
from cosemcast.apdu.set import SetRequestNormal
from cosemcast.axdr import (
    ClockStatus,
    CosemDateTime,
    Integer,
    Long,
    OctetString,
    Structure,
    Unsigned,
    decode_data,
    encode_data,
)
from cosemcast.axdr.codec import encode_datetime_bytes
from cosemcast.cosem import AccessRights, Clock, ClockBase
from cosemcast.obis import Obis
from strategies import datetimes
from test_cosem_fixtures import CLOCK, MANAGEMENT, PUBLIC, FakeTime, ctx, small_meter

UTC = dt.UTC


def make_clock(moment: dt.datetime, **kwargs: object) -> tuple[Clock, FakeTime]:
    time = FakeTime(moment)
    clock = Clock(CLOCK, time_source=time, access={None: AccessRights.full()}, **kwargs)  # type: ignore[arg-type]
    return clock, time


def time_bytes(clock: Clock) -> bytes:
    value = clock.read(2)
    assert isinstance(value, OctetString)
    return bytes(value)


# brief §10.3: SET normal of Clock.time, DC test_set.py; the value is 2021-01-24 14:48:57.80
# with deviation -60 (CET, brief §9.3).
def test_set_time_vector_from_dc() -> None:
    request = decode_apdu(bytes.fromhex("C101C100080000010000FF0200090C07E50118FF0E303950FFC400"))
    assert isinstance(request, SetRequestNormal)
    model, time = small_meter(dt.datetime(2000, 1, 1, tzinfo=UTC))
    clock = model.clock
    assert clock is not None
    clock.time_zone = -60
    result = model.set_attribute(
        ctx(MANAGEMENT), request.cosem_attribute_descriptor, None, request.value
    )
    assert result == DataAccessResult.SUCCESS
    assert clock.utc_now() == dt.datetime(2021, 1, 24, 13, 48, 57, 800000, tzinfo=UTC)
    assert time() == dt.datetime(2000, 1, 1, tzinfo=UTC)
    # Read back: the same bytes except the day of week (7, Sunday) that the vector leaves FF.
    assert time_bytes(clock) == bytes.fromhex("07E50118070E303950FFC400")


# brief §10.1 row i: GET Clock.time response of JD FcsCalcTest, 2002-12-04 Wed 10:06:11,
# hundredths unspecified, deviation +120.
def test_get_time_vector_from_jd() -> None:
    value = decode_data(bytes.fromhex("090C07D20C04030A060BFF007800"))
    clock, _ = make_clock(dt.datetime(2020, 1, 1, tzinfo=UTC), time_zone=120)
    assert clock.write(2, value) == DataAccessResult.SUCCESS
    # deviation is UTC - local (brief §9.3): UTC = 10:06:11 + 120 min.
    assert clock.utc_now() == dt.datetime(2002, 12, 4, 12, 6, 11, tzinfo=UTC)
    assert time_bytes(clock) == bytes.fromhex("07D20C04030A060B00007800")


def test_time_follows_the_injected_source() -> None:
    clock, time = make_clock(dt.datetime(2024, 3, 1, 12, 0, tzinfo=UTC))
    clock.set_time(dt.datetime(2024, 3, 1, 12, 10, tzinfo=UTC))
    assert clock.offset == dt.timedelta(minutes=10)
    time.advance(3600)
    assert clock.utc_now() == dt.datetime(2024, 3, 1, 13, 10, tzinfo=UTC)
    naive = FakeTime(dt.datetime(2024, 3, 1, 12, 0))
    assert Clock(time_source=naive).utc_now().tzinfo == UTC


def test_written_time_without_deviation_is_local() -> None:
    clock, _ = make_clock(dt.datetime(2024, 1, 1, tzinfo=UTC), time_zone=-60)
    local = CosemDateTime(2024, 1, 2, None, 8, 0, 0, 0, None, None)
    assert clock.write(2, OctetString(encode_datetime_bytes(local))) == DataAccessResult.SUCCESS
    assert clock.utc_now() == dt.datetime(2024, 1, 2, 7, 0, tzinfo=UTC)
    assert clock.write(2, local) == DataAccessResult.SUCCESS
    assert clock.write(2, OctetString(b"short")) == DataAccessResult.OTHER_REASON
    assert clock.write(2, Unsigned(1)) == DataAccessResult.TYPE_UNMATCHED
    wild = CosemDateTime(None, 1, 2, None, 8, 0, 0, 0, None, None)
    assert clock.write(2, wild) == DataAccessResult.OTHER_REASON


def dst_clock(moment: dt.datetime) -> Clock:
    # Last Sunday of March 02:00 to last Sunday of October 03:00, CET (time_zone -60).
    clock, _ = make_clock(
        moment,
        time_zone=-60,
        daylight_savings_begin=CosemDateTime(None, 3, 0xFE, 7, 2, 0, 0, 0, None, None),
        daylight_savings_end=CosemDateTime(None, 10, 0xFE, 7, 3, 0, 0, 0, None, None),
        daylight_savings_deviation=60,
        daylight_savings_enabled=True,
    )
    return clock


@pytest.mark.parametrize(
    ("utc", "deviation", "dst"),
    [
        (dt.datetime(2024, 1, 15, 12, 0, tzinfo=UTC), -60, False),
        (dt.datetime(2024, 7, 1, 12, 0, tzinfo=UTC), -120, True),
        # 2024-03-31 is the last Sunday of March: 01:59 local normal time, then 02:00.
        (dt.datetime(2024, 3, 31, 0, 59, tzinfo=UTC), -60, False),
        (dt.datetime(2024, 3, 31, 1, 0, tzinfo=UTC), -120, True),
        # 2024-10-27 is the last Sunday of October.
        (dt.datetime(2024, 10, 27, 1, 59, tzinfo=UTC), -120, True),
        (dt.datetime(2024, 10, 27, 2, 0, tzinfo=UTC), -60, False),
    ],
)
def test_daylight_saving(utc: dt.datetime, deviation: int, dst: bool) -> None:
    clock = dst_clock(utc)
    shown = OctetString(time_bytes(clock)).as_datetime()
    assert shown.deviation == deviation
    assert (
        bool(shown.clock_status and shown.clock_status & ClockStatus.DAYLIGHT_SAVING_ACTIVE) == dst
    )
    assert shown.to_datetime() == utc
    assert clock.read(4) == Unsigned(0x80 if dst else 0)
    assert clock.now().utcoffset() == dt.timedelta(minutes=-deviation)


def test_daylight_saving_disabled_or_unresolvable() -> None:
    clock = dst_clock(dt.datetime(2024, 7, 1, tzinfo=UTC))
    clock.daylight_savings_enabled = False
    assert clock.deviation_at(clock.utc_now()) == -60
    clock.daylight_savings_enabled = True
    clock.daylight_savings_begin = CosemDateTime(2023, 3, 26, None, 2, 0, 0, 0, None, None)
    assert clock.deviation_at(clock.utc_now()) == -60


def test_other_attributes_and_writes() -> None:
    clock, _ = make_clock(dt.datetime(2024, 1, 1, tzinfo=UTC))
    assert clock.read(3) == Long(0)
    assert clock.write(3, Long(-60)) == DataAccessResult.SUCCESS
    assert clock.write(3, Long(800)) == DataAccessResult.OTHER_REASON
    assert clock.write(3, Integer(1)) == DataAccessResult.TYPE_UNMATCHED
    assert clock.write(7, Integer(30)) == DataAccessResult.SUCCESS
    assert clock.write(8, True) == DataAccessResult.SUCCESS
    begin = CosemDateTime(None, 3, 0xFE, 7, 2, 0, 0, 0, None, None)
    assert clock.write(5, OctetString(encode_datetime_bytes(begin))) == DataAccessResult.SUCCESS
    assert clock.daylight_savings_begin == begin
    assert clock.read(6) == OctetString(bytes.fromhex("FFFFFFFFFFFFFFFFFF8000FF"))
    assert encode_data(clock.read(9)) == bytes([0x16, ClockBase.INTERNAL_CRYSTAL])
    assert clock.write(9, Unsigned(1)) == DataAccessResult.READ_WRITE_DENIED
    assert clock.write(4, Unsigned(1)) == DataAccessResult.READ_WRITE_DENIED


def test_access_rights_on_time() -> None:
    model, _ = small_meter()
    clock = model.clock
    assert clock is not None
    new_time = OctetString(bytes.fromhex("07E50118FF0E303950FFC400"))
    assert clock.set(ctx(PUBLIC), 2, new_time) == DataAccessResult.READ_WRITE_DENIED
    assert clock.action(ctx(PUBLIC), 6, Long(1)) == (ActionResult.READ_WRITE_DENIED, None)
    assert isinstance(clock.get(ctx(PUBLIC), 2), OctetString)


@pytest.mark.parametrize(
    ("start", "method", "expected"),
    [
        (
            dt.datetime(2024, 1, 1, 10, 7, 29, tzinfo=UTC),
            1,
            dt.datetime(2024, 1, 1, 10, 0, tzinfo=UTC),
        ),
        (
            dt.datetime(2024, 1, 1, 10, 7, 30, tzinfo=UTC),
            1,
            dt.datetime(2024, 1, 1, 10, 15, tzinfo=UTC),
        ),
        (
            dt.datetime(2024, 1, 1, 10, 52, 40, tzinfo=UTC),
            1,
            dt.datetime(2024, 1, 1, 11, 0, tzinfo=UTC),
        ),
        (
            dt.datetime(2024, 1, 1, 10, 7, 29, tzinfo=UTC),
            3,
            dt.datetime(2024, 1, 1, 10, 7, tzinfo=UTC),
        ),
        (
            dt.datetime(2024, 1, 1, 10, 7, 30, tzinfo=UTC),
            3,
            dt.datetime(2024, 1, 1, 10, 8, tzinfo=UTC),
        ),
        (
            dt.datetime(2024, 1, 1, 10, 44, 0, tzinfo=UTC),
            2,
            dt.datetime(2024, 1, 1, 10, 30, tzinfo=UTC),
        ),
        (
            dt.datetime(2024, 1, 1, 10, 46, 0, tzinfo=UTC),
            2,
            dt.datetime(2024, 1, 1, 11, 0, tzinfo=UTC),
        ),
    ],
)
def test_adjust_methods(start: dt.datetime, method: int, expected: dt.datetime) -> None:
    clock, _ = make_clock(start, measuring_period=dt.timedelta(minutes=30))
    assert clock.action(ctx(), method, Integer(0)) == (ActionResult.SUCCESS, None)
    assert clock.utc_now() == expected


def test_adjust_to_measuring_period_needs_a_period() -> None:
    clock, _ = make_clock(dt.datetime(2024, 1, 1, tzinfo=UTC))
    assert clock.invoke(2, Integer(0)) == (ActionResult.OBJECT_UNAVAILABLE, None)
    assert clock.invoke(1, OctetString(b"")) == (ActionResult.TYPE_UNMATCHED, None)


def test_shift_time() -> None:
    clock, _ = make_clock(dt.datetime(2024, 1, 1, tzinfo=UTC))
    assert clock.invoke(6, Long(-900)) == (ActionResult.SUCCESS, None)
    assert clock.offset == dt.timedelta(seconds=-900)
    assert clock.invoke(6, Long(901)) == (ActionResult.OTHER_REASON, None)
    assert clock.invoke(6, Integer(5)) == (ActionResult.TYPE_UNMATCHED, None)
    assert clock.offset == dt.timedelta(seconds=-900)


def test_preset_adjusting_time() -> None:
    clock, _ = make_clock(dt.datetime(2024, 1, 1, 12, 0, tzinfo=UTC))

    def octets(hour: int, minute: int) -> OctetString:
        return OctetString(
            encode_datetime_bytes(CosemDateTime(2024, 1, 1, None, hour, minute, 0, 0, 0, None))
        )

    assert clock.invoke(4, Integer(0)) == (ActionResult.OTHER_REASON, None)
    window = Structure((octets(12, 30), octets(12, 20), octets(12, 40)))
    assert clock.invoke(5, window) == (ActionResult.SUCCESS, None)
    assert clock.invoke(4, Integer(0)) == (ActionResult.OTHER_REASON, None)
    clock.shift(dt.timedelta(minutes=25))
    assert clock.invoke(4, Integer(0)) == (ActionResult.SUCCESS, None)
    assert clock.utc_now() == dt.datetime(2024, 1, 1, 12, 30, tzinfo=UTC)
    assert clock.invoke(5, Structure((octets(1, 0),))) == (ActionResult.TYPE_UNMATCHED, None)


def test_clock_defaults_to_the_standard_obis() -> None:
    clock = Clock(time_source=FakeTime(dt.datetime(2024, 1, 1, tzinfo=UTC)))
    assert clock.logical_name == Obis(0, 0, 1, 0, 0, 255)
    assert repr(clock) == "Clock('0-0:1.0.0.255')"


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(st.sampled_from([2, 5, 6]), datetimes),
        max_size=4,
    ),
    st.tuples(datetimes, datetimes, datetimes),
    st.integers(-720, 720),
    st.booleans(),
    st.integers(-120, 120),
)
def test_any_date_time_never_breaks_the_clock(
    writes: list[tuple[int, CosemDateTime]],
    preset: tuple[CosemDateTime, CosemDateTime, CosemDateTime],
    zone: int,
    dst: bool,
    dst_deviation: int,
) -> None:
    clock, _ = make_clock(dt.datetime(2024, 3, 31, 1, 0, tzinfo=UTC))
    clock.write(3, Long(zone))
    clock.write(8, dst)
    clock.write(7, Integer(dst_deviation))
    for attribute_id, value in writes:
        result = clock.write(attribute_id, OctetString(encode_datetime_bytes(value)))
        assert isinstance(result, DataAccessResult)
    clock.invoke(5, Structure(OctetString(encode_datetime_bytes(p)) for p in preset))
    for method in (1, 3, 4, 6):
        result, _ = clock.invoke(method, Long(1) if method == 6 else Integer(0))
        assert isinstance(result, ActionResult)
    for attribute_id in range(1, 10):
        encode_data(clock.read(attribute_id))
