"""Push setup (class 40): push object list, notification body, callback, attributes."""

from __future__ import annotations

import datetime as dt

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.common import ActionResult, DataAccessResult
from cosemcast.apdu.notifications import DataNotification
from cosemcast.axdr import (
    Array,
    CosemDateTime,
    DoubleLongUnsigned,
    Enumerated,
    Integer,
    LongUnsigned,
    OctetString,
    Structure,
    Unsigned,
)
from cosemcast.axdr.codec import encode_datetime_bytes
from cosemcast.cosem import (
    AccessRights,
    CaptureObjectDefinition,
    CommunicationWindow,
    MessageType,
    PushSetup,
    Register,
    SendDestinationAndMethod,
    TransportService,
)
from cosemcast.obis import Obis
from test_cosem_fixtures import (
    CLOCK_TIME,
    ENERGY,
    ENERGY_VALUE,
    MANAGEMENT,
    PUBLIC,
    ctx,
    small_meter,
)

PUSH = Obis.parse("0-1:25.9.0.255")
START = dt.datetime(2024, 6, 1, 8, 0, tzinfo=dt.UTC)


def meter_with_push() -> tuple[PushSetup, list[Structure]]:
    model, _ = small_meter(START)
    energy = model.by_obis(ENERGY)
    assert isinstance(energy, Register)
    energy.value = DoubleLongUnsigned(1234)
    push = PushSetup(
        PUSH,
        [CaptureObjectDefinition(40, PUSH, 1), CLOCK_TIME, ENERGY_VALUE],
        send_destination_and_method=SendDestinationAndMethod(
            TransportService.UDP, b"239.1.2.3:4059", MessageType.A_XDR_ENCODED_XDLMS_APDU
        ),
        access={PUBLIC: AccessRights.read_only(), MANAGEMENT: AccessRights.full()},
    )
    model.add(push)
    sent: list[Structure] = []
    push.on_push = lambda _p, body: sent.append(body)
    return push, sent


def test_push_builds_the_body_and_calls_back() -> None:
    push, sent = meter_with_push()
    assert push.action(ctx(PUBLIC), 1, Integer(0)) == (ActionResult.READ_WRITE_DENIED, None)
    assert push.action(ctx(MANAGEMENT), 1, Integer(0)) == (ActionResult.SUCCESS, None)
    [body] = sent
    assert body[0] == PUSH.to_bytes()
    assert isinstance(body[1], OctetString)
    assert body[1].as_datetime().to_datetime() == START
    assert body[2] == DoubleLongUnsigned(1234)


def test_notification_round_trip() -> None:
    push, _ = meter_with_push()
    body = push.notification_body()
    stamp = CosemDateTime.from_datetime(START)
    apdu = push.notification(body, invoke_id=7, date_time=stamp)
    decoded = decode_apdu(apdu.encode())
    assert isinstance(decoded, DataNotification)
    assert decoded.notification_body == body
    assert decoded.long_invoke_id_and_priority.invoke_id == 7
    assert decoded.date_time == stamp


def test_push_without_a_sender_and_missing_objects() -> None:
    push, _ = meter_with_push()
    push.on_push = None
    assert push.invoke(1) == (ActionResult.TEMPORARY_FAILURE, None)
    push.push_object_list = (
        CaptureObjectDefinition(3, Obis.parse("1-0:2.8.0.255"), 2),
        CaptureObjectDefinition(3, ENERGY, 2, 1),
        CaptureObjectDefinition(3, ENERGY, 3, 2),
        CaptureObjectDefinition(3, ENERGY, 7),
    )
    assert push.push() == Structure([None, None, Enumerated(30), None])
    alone = PushSetup(push_object_list=[ENERGY_VALUE])
    assert alone.notification_body() == Structure([None])


def test_attributes_round_trip() -> None:
    push, _ = meter_with_push()
    c = ctx(MANAGEMENT)
    start = OctetString(
        encode_datetime_bytes(CosemDateTime(None, None, None, None, 22, 0, 0, 0, None, None))
    )
    end = OctetString(
        encode_datetime_bytes(CosemDateTime(None, None, None, None, 6, 0, 0, 0, None, None))
    )
    writes = {
        2: Array([CLOCK_TIME.to_data()]),
        3: Structure([Enumerated(200), OctetString(b"+3312345"), Enumerated(130)]),
        4: Array([Structure([start, end])]),
        5: LongUnsigned(30),
        6: Unsigned(3),
        7: LongUnsigned(120),
    }
    for attribute_id, value in writes.items():
        assert push.set(c, attribute_id, value) == DataAccessResult.SUCCESS, attribute_id
        assert push.get(ctx(PUBLIC), attribute_id) == value, attribute_id
    assert push.send_destination_and_method == SendDestinationAndMethod(200, b"+3312345", 130)
    assert push.set(ctx(PUBLIC), 5, LongUnsigned(1)) == DataAccessResult.READ_WRITE_DENIED
    assert push.set(c, 6, LongUnsigned(1)) == DataAccessResult.TYPE_UNMATCHED
    assert push.set(c, 3, Structure([Enumerated(0)])) == DataAccessResult.TYPE_UNMATCHED
    assert push.set(c, 4, Array([Structure([start, OctetString(b"x")])])) == (
        DataAccessResult.OTHER_REASON
    )


def test_communication_window() -> None:
    push, _ = meter_with_push()
    assert push.in_window(START)

    def window(h1: int, h2: int) -> CommunicationWindow:
        return CommunicationWindow(
            CosemDateTime(None, None, None, None, h1, 0, 0, 0, None, None),
            CosemDateTime(None, None, None, None, h2, 0, 0, 0, None, None),
        )

    push.communication_window = (window(22, 6),)
    assert push.in_window(dt.datetime(2024, 6, 1, 23, 0))
    assert push.in_window(dt.datetime(2024, 6, 1, 5, 59))
    assert not push.in_window(dt.datetime(2024, 6, 1, 12, 0))
    push.communication_window = (window(9, 10), window(12, 13))
    assert push.in_window(dt.datetime(2024, 6, 1, 12, 30))
    assert not push.in_window(dt.datetime(2024, 6, 1, 11, 0))
    push.communication_window = (
        CommunicationWindow(
            CosemDateTime(None, 2, 30, None, 0, 0, 0, 0, None, None),
            CosemDateTime(None, 2, 30, None, 1, 0, 0, 0, None, None),
        ),
    )
    assert not push.in_window(dt.datetime(2024, 6, 1, 0, 30))
