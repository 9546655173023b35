"""Pushes of the software meter: on their interval to a UdpPushReceiver (general-glo
ciphered under the management keys), on demand through the push method, inside and outside
their window, after a gap, over the client's own TCP connection; counters stay fresh across
a restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.common import ActionResult
from cosemcast.apdu.general import GeneralGloCiphering
from cosemcast.apdu.notifications import DataNotification
from cosemcast.association import Action, Associate, AssociationEstablished, MethodResult
from cosemcast.axdr.types import Integer, OctetString, Structure
from cosemcast.errors import ResponseTimeout
from cosemcast.meter import SoftwareMeter, default_config_text
from cosemcast.obis import Obis
from cosemcast.security.gcm import SymmetricKeys
from cosemcast.security.protection import decipher_apdu
from cosemcast.transport.udp import UdpPushReceiver
from test_meter_support import (
    AK,
    EK,
    METER_TITLE,
    PUSH,
    ClientStores,
    FakeClock,
    management_settings,
    public_settings,
    tcp_client,
)


@pytest.fixture
def receiver() -> Iterator[UdpPushReceiver]:
    with UdpPushReceiver(0, host="127.0.0.1") as receiver:
        yield receiver


def config_to(tmp_path: Path, receiver: UdpPushReceiver, **replace: str) -> Path:
    text = default_config_text().replace("127.0.0.1:4060", f"127.0.0.1:{receiver.address[1]}")
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "meter.toml"
    path.write_text(text)
    return path


def received_notification(receiver: UdpPushReceiver) -> tuple[DataNotification, int]:
    """The next push, deciphered with the management keys, and its invocation counter."""
    _, frame = receiver.receive(5)
    assert (frame.source_wport, frame.destination_wport) == (1, 1)
    ciphered = decode_apdu(frame.apdu)
    assert isinstance(ciphered, GeneralGloCiphering)
    assert ciphered.system_title == METER_TITLE and ciphered.security_control == 0x30
    plain = decipher_apdu(
        ciphered, keys=SymmetricKeys(EK, AK), system_title=METER_TITLE, require_authentication=True
    )
    notification = decode_apdu(plain.plain)
    assert isinstance(notification, DataNotification)
    return notification, ciphered.invocation_counter


def nothing_more(receiver: UdpPushReceiver) -> bool:
    try:
        receiver.receive(0.3)
    except ResponseTimeout:
        return True
    return False


def test_the_push_setup_pushes_on_its_interval_ciphered(
    tmp_path: Path, receiver: UdpPushReceiver
) -> None:
    clock = FakeClock()
    state = tmp_path / "s.sqlite3"
    with SoftwareMeter.from_config(config_to(tmp_path, receiver), state, clock=clock) as meter:
        clock.advance(minutes=14)
        meter.advance_to()
        assert nothing_more(receiver)
        clock.advance(minutes=2)
        meter.advance_to()
        first, first_ic = received_notification(receiver)
        body = first.notification_body
        assert isinstance(body, Structure) and len(body) == 4
        assert body[0] == OctetString(Obis.parse("0-0:25.9.0.255").to_bytes())
        assert body[1] == OctetString(b"CSC0000012345")
        stamp = OctetString(body[2]).as_datetime()
        assert (stamp.hour, stamp.minute, stamp.deviation) == (12, 15, -120)
        assert first.date_time is not None and first.date_time.minute == 15
        clock.advance(minutes=15)
        meter.advance_to()
        second, second_ic = received_notification(receiver)
        assert second_ic > first_ic
        assert second.long_invoke_id_and_priority.invoke_id == (
            first.long_invoke_id_and_priority.invoke_id + 1
        )
        assert body[3] < second.notification_body[3]  # type: ignore[index, operator]
    with SoftwareMeter.from_config(config_to(tmp_path, receiver), state, clock=clock) as meter:
        clock.advance(minutes=15)
        meter.advance_to()
        _, third_ic = received_notification(receiver)
        assert third_ic > second_ic


def test_after_a_gap_only_the_latest_push_is_sent(
    tmp_path: Path, receiver: UdpPushReceiver
) -> None:
    clock = FakeClock()
    config = config_to(tmp_path, receiver)
    with SoftwareMeter.from_config(config, tmp_path / "s.sqlite3", clock=clock) as meter:
        clock.advance(hours=5, minutes=5)
        meter.advance_to()
        notification, _ = received_notification(receiver)
        assert notification.date_time is not None
        assert (notification.date_time.hour, notification.date_time.minute) == (17, 0)
        assert nothing_more(receiver)


def test_no_push_outside_the_window(tmp_path: Path, receiver: UdpPushReceiver) -> None:
    clock = FakeClock()
    config = config_to(
        tmp_path, receiver, **{"interval = 900": 'interval = 900\n  windows = [["13:00", "14:00"]]'}
    )
    with SoftwareMeter.from_config(config, tmp_path / "s.sqlite3", clock=clock) as meter:
        for _ in range(4):  # 12:15 .. 13:00 local: only 13:00 is inside
            clock.advance(minutes=15)
            meter.advance_to()
        notification, _ = received_notification(receiver)
        assert notification.date_time is not None and notification.date_time.hour == 13
        assert nothing_more(receiver)


def test_the_push_method_pushes_now(tmp_path: Path, receiver: UdpPushReceiver) -> None:
    clock = FakeClock()
    config = config_to(tmp_path, receiver)
    with SoftwareMeter.from_config(config, tmp_path / "s.sqlite3", clock=clock) as meter:
        stores = ClientStores(tmp_path / "client")
        client = tcp_client(meter.serve_tcp("127.0.0.1", 0).address, management_settings(), stores)
        try:
            assert isinstance(client.request(Associate()), AssociationEstablished)
            result = client.request(Action(PUSH, Integer(0)))
            assert isinstance(result, MethodResult) and result.result is ActionResult.SUCCESS
            notification, _ = received_notification(receiver)
            assert notification.notification_body[1] == OctetString(b"CSC0000012345")  # type: ignore[index]
        finally:
            client.close()
            stores.close()


def test_a_tcp_push_goes_over_the_clients_connection(
    tmp_path: Path, receiver: UdpPushReceiver
) -> None:
    clock = FakeClock()
    config = config_to(
        tmp_path,
        receiver,
        **{
            'transport = "udp"': 'transport = "tcp"',
            f'destination = "127.0.0.1:{receiver.address[1]}"': 'destination = ""',
            "client_sap = 1   ": "client_sap = 16  ",
            'protection = "general-glo"': 'protection = "none"',
        },
    )
    with SoftwareMeter.from_config(config, tmp_path / "s.sqlite3", clock=clock) as meter:
        client = tcp_client(meter.serve_tcp("127.0.0.1", 0).address, public_settings())
        try:
            assert isinstance(client.request(Associate()), AssociationEstablished)
            clock.advance(minutes=15)
            meter.advance_to()
            push = decode_apdu(client.link.receive_apdu(5))
            assert isinstance(push, DataNotification)
            assert push.notification_body[1] == OctetString(b"CSC0000012345")  # type: ignore[index]
        finally:
            client.close()
