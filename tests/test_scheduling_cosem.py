"""The upstream-schedule interface class 8964 (specs/scheduling.md §7): direct access, access
rights, and a real DlmsClient (HLS-GMAC, ciphered) doing GET, SET and ACTION over TCP on
127.0.0.1 against an ObjectModel served by the library's own server layers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cosemcast.apdu.common import ActionResult, DataAccessResult
from cosemcast.axdr import (
    Array,
    DoubleLongUnsigned,
    Integer,
    LongUnsigned,
    OctetString,
    Structure,
    Unsigned,
)
from cosemcast.client import ActionError, Authentication, DataAccessError, DlmsClient
from cosemcast.cosem import AccessRights
from cosemcast.cosem.base import CosemObject, class_for
from cosemcast.scheduling import (
    UPSTREAM_SCHEDULE_CLASS_ID,
    UPSTREAM_SCHEDULE_OBIS,
    GroupCommand,
    GroupOrder,
    MeterIdentity,
    Order,
    ResponseWindow,
    UpstreamSchedule,
    UpstreamScheduleObject,
)
from test_client_support import MANAGEMENT, PUBLIC, TestMeter, build_model, credentials
from test_cosem_fixtures import ctx

IDENTITY = MeterIdentity(bytes.fromhex("4D4D4D0000BC614E"), b"FW-1.4.2", b"TOU-2")
CLASS = UPSTREAM_SCHEDULE_CLASS_ID


def make(**kwargs: object) -> UpstreamScheduleObject:
    return UpstreamScheduleObject(
        IDENTITY,
        access={PUBLIC: AccessRights.read_only(), MANAGEMENT: AccessRights.full()},
        **kwargs,  # type: ignore[arg-type]
    )


def test_registered_class_and_defaults() -> None:
    assert class_for(CLASS) is UpstreamScheduleObject
    obj = make(groups=(3, 7))
    assert obj.logical_name == UPSTREAM_SCHEDULE_OBIS
    assert obj.get(ctx(PUBLIC), 1) == OctetString(bytes.fromhex("0000800500FF"))
    assert obj.get(ctx(PUBLIC), 2) == DoubleLongUnsigned(0)
    assert obj.get(ctx(PUBLIC), 3) is None
    assert obj.get(ctx(PUBLIC), 4) == Array((LongUnsigned(3), LongUnsigned(7)))
    assert obj.get(ctx(PUBLIC), 5) == Structure((DoubleLongUnsigned(0), DoubleLongUnsigned(0)))
    assert obj.get(ctx(PUBLIC), 6) == DoubleLongUnsigned(0)
    assert obj.get(ctx(PUBLIC), 7) == Structure(
        (OctetString(IDENTITY.system_title), OctetString(b"FW-1.4.2"), OctetString(b"TOU-2"))
    )


def test_writes_and_the_effective_offset() -> None:
    obj = make()
    manager = ctx(MANAGEMENT)
    assert obj.set(manager, 2, DoubleLongUnsigned(900)) == DataAccessResult.SUCCESS
    assert obj.get(manager, 6) == DoubleLongUnsigned(IDENTITY.offset(900))
    assert obj.report_instant(1_800) == 1_800 + IDENTITY.offset(900)
    assert obj.set(manager, 3, DoubleLongUnsigned(42)) == DataAccessResult.SUCCESS
    assert obj.get(manager, 6) == DoubleLongUnsigned(42)
    assert obj.set(manager, 3, None) == DataAccessResult.SUCCESS
    assert obj.get(manager, 6) == DoubleLongUnsigned(IDENTITY.offset(900))
    pair = Structure((DoubleLongUnsigned(60), DoubleLongUnsigned(600)))
    assert obj.set(manager, 5, pair) == DataAccessResult.SUCCESS
    assert obj.schedule.response == ResponseWindow(60, 600)
    assert obj.response_instant(10) == 10 + 60 + IDENTITY.offset(600)
    assert obj.set(manager, 4, Array((LongUnsigned(5),))) == DataAccessResult.SUCCESS
    assert obj.groups == (5,)


@pytest.mark.parametrize(
    ("attribute", "value", "result"),
    [
        (2, Unsigned(5), DataAccessResult.TYPE_UNMATCHED),
        (3, OctetString(b"x"), DataAccessResult.TYPE_UNMATCHED),
        (4, Array((LongUnsigned(0),)), DataAccessResult.OTHER_REASON),
        (4, Array((LongUnsigned(4), LongUnsigned(4))), DataAccessResult.OTHER_REASON),
        (4, Array(tuple(LongUnsigned(g) for g in range(1, 66))), DataAccessResult.OTHER_REASON),
        (4, Array((Unsigned(4),)), DataAccessResult.TYPE_UNMATCHED),
        (5, Structure((DoubleLongUnsigned(1),)), DataAccessResult.TYPE_UNMATCHED),
        (6, DoubleLongUnsigned(1), DataAccessResult.READ_WRITE_DENIED),
        (7, Structure(()), DataAccessResult.READ_WRITE_DENIED),
    ],
)
def test_bad_writes_change_nothing(attribute: int, value: object, result: DataAccessResult) -> None:
    obj = make(groups=(9,))
    before = (obj.schedule, obj.groups)
    assert obj.set(ctx(MANAGEMENT), attribute, value) == result  # type: ignore[arg-type]
    assert (obj.schedule, obj.groups) == before


def test_the_public_client_may_read_but_not_write_or_invoke() -> None:
    obj = make()
    assert obj.set(ctx(PUBLIC), 2, DoubleLongUnsigned(5)) == DataAccessResult.READ_WRITE_DENIED
    command = GroupCommand((GroupOrder(0, Order.set_window(5)),)).to_data()
    assert obj.action(ctx(PUBLIC), 1, command) == (ActionResult.READ_WRITE_DENIED, None)
    assert obj.schedule == UpstreamSchedule()


def test_group_command_applies_only_this_meters_entry() -> None:
    obj = make(groups=(12,))
    seen: list[Order] = []
    changes: list[CosemObject] = []
    obj.on_order = lambda _obj, order: seen.append(order)
    obj.on_change = changes.append
    command = GroupCommand(
        (
            GroupOrder(7, Order.set_window(100)),
            GroupOrder(12, Order.respond_within(1200, 1200)),
            GroupOrder(0, Order.set_window(840)),
        )
    )
    assert obj.action(ctx(MANAGEMENT), 1, command.to_data()) == (ActionResult.SUCCESS, None)
    assert obj.schedule == UpstreamSchedule(response=ResponseWindow(1200, 1200))
    assert seen == [Order.respond_within(1200, 1200)] and obj.last_order == seen[0]
    assert changes == [obj]
    other = GroupCommand((GroupOrder(7, Order.set_window(100)),))
    assert obj.action(ctx(MANAGEMENT), 1, other.to_data()) == (ActionResult.SUCCESS, None)
    assert obj.schedule.window_s == 0 and len(seen) == 1


def test_malformed_group_commands_are_refused() -> None:
    obj = make(groups=(1,))
    manager = ctx(MANAGEMENT)
    assert obj.action(manager, 1, Integer(0)) == (ActionResult.TYPE_UNMATCHED, None)
    bad = Array((Structure((LongUnsigned(1),)),))
    assert obj.action(manager, 1, bad) == (ActionResult.OTHER_REASON, None)
    assert obj.action(manager, 2, None) == (ActionResult.OBJECT_UNDEFINED, None)
    assert obj.schedule == UpstreamSchedule()


@pytest.fixture
def meter(tmp_path: Path) -> Iterator[tuple[TestMeter, UpstreamScheduleObject]]:
    model = build_model()
    obj = make(groups=(4,))
    model.add(obj)
    instance = TestMeter(tmp_path / "meter", model=model)
    yield instance, obj
    instance.close()


def test_through_a_real_client(
    meter: tuple[TestMeter, UpstreamScheduleObject], tmp_path: Path
) -> None:
    server, obj = meter
    creds = credentials(Authentication.HLS_GMAC, tmp_path)
    command = GroupCommand(
        (
            GroupOrder(3, Order.set_window(60)),
            GroupOrder(4, Order.set_window(900)),
            GroupOrder(0, Order.set_offset(7)),
        )
    )
    with DlmsClient.tcp("127.0.0.1", server.tcp_port, creds) as client:
        client.associate()
        assert client.get(UPSTREAM_SCHEDULE_OBIS, 2, class_id=CLASS) == 0
        assert client.action(UPSTREAM_SCHEDULE_OBIS, 1, command.to_data(), class_id=CLASS) is None
        assert client.get(UPSTREAM_SCHEDULE_OBIS, 2, class_id=CLASS) == 900
        effective = client.get(UPSTREAM_SCHEDULE_OBIS, 6, class_id=CLASS)
        assert effective == IDENTITY.offset(900)
        client.set(UPSTREAM_SCHEDULE_OBIS, 3, DoubleLongUnsigned(123), class_id=CLASS)
        assert client.get(UPSTREAM_SCHEDULE_OBIS, 6, class_id=CLASS) == 123
        with pytest.raises(ActionError) as refused:
            client.action(UPSTREAM_SCHEDULE_OBIS, 1, Integer(0), class_id=CLASS)
        assert refused.value.result is ActionResult.TYPE_UNMATCHED
        with pytest.raises(DataAccessError) as denied:
            client.set(UPSTREAM_SCHEDULE_OBIS, 6, DoubleLongUnsigned(1), class_id=CLASS)
        assert denied.value.result is DataAccessResult.READ_WRITE_DENIED
        listed = {entry.logical_name: entry.class_id for entry in client.object_list()}
        assert listed[UPSTREAM_SCHEDULE_OBIS] == CLASS
    assert obj.schedule == UpstreamSchedule(window_s=900, explicit_offset_s=123)
    assert obj.report_instant(0) == 123
