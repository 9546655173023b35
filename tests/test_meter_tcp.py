"""The software meter served over real TCP (and UDP) sockets on 127.0.0.1, read by the
association ClientConnection: every client of the default configuration, ciphering, key
transfer, restarts and clients that drop mid-request. Time is a FakeClock; the only real
waits are socket round trips (bounded polls)."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.acse import AcseServiceUser
from cosemcast.apdu.ciphered import ServiceSpecificCiphered
from cosemcast.apdu.common import (
    ActionResult,
    CosemAttributeDescriptor,
    CosemMethodDescriptor,
    DataAccessResult,
    GetDataError,
)
from cosemcast.apdu.notifications import ExceptionResponse, ExceptionServiceError
from cosemcast.association import (
    Action,
    Associate,
    AssociationEstablished,
    AssociationReleased,
    AssociationSettings,
    Get,
    GetResult,
    MethodResult,
    Release,
    Set,
    SetResult,
)
from cosemcast.axdr.types import (
    ClockStatus,
    CosemDateTime,
    DoubleLongUnsigned,
    Enumerated,
    Integer,
    Long,
    OctetString,
    Structure,
)
from cosemcast.cosem import KeyId, clock_range, key_transfer_parameters, parse_object_list
from cosemcast.cosem.common import datetime_octets
from cosemcast.errors import AssociationRejected
from cosemcast.meter import SoftwareMeter
from cosemcast.meter.loadcurve import LoadCurve
from cosemcast.obis import Obis
from cosemcast.transport.udp import UdpWrapperLink
from test_meter_support import (
    AK,
    CLOCK,
    DISCONNECT_STATE,
    EK,
    ENERGY,
    ENERGY_SCALER_UNIT,
    KEK,
    KEY_TRANSFER,
    METER_TITLE,
    OBJECT_LIST,
    PASSWORD,
    PROFILE,
    REMOTE_DISCONNECT,
    SERIAL,
    START,
    Client,
    ClientStores,
    FakeClock,
    client_connection,
    lls_settings,
    management_settings,
    public_settings,
    tcp_client,
)

# The default configuration's load curve (default_meter.toml), restated independently.
HOUSEHOLD = [
    (0, 260), (5, 220), (6.5, 450), (7.5, 1400), (8.5, 600), (12, 750), (13.5, 500),
    (17, 650), (19, 1900), (21, 1300), (23, 450),
]  # fmt: skip
SECURITY_SETUP_POLICY = CosemAttributeDescriptor(64, Obis.parse("0-0:43.0.0.255"), 2)
CEST = -120


def numeric_energy_wh(seconds: float, step_s: float = 1.0) -> float:
    """Energy of the household curve from START over ``seconds``, by midpoint-rule numeric
    integration of the power (CET normal time), independent of LoadCurve's exact integral."""
    curve = LoadCurve("check", tuple((float(h), float(w)) for h, w in HOUSEHOLD))
    start_s = (START.hour + 1) * 3600 + START.minute * 60
    total, t = 0.0, 0.0
    while t < seconds:
        total += curve.power_at(start_s + t + step_s / 2) * step_s
        t += step_s
    return total / 3600


def expected_energy(seconds: float) -> int:
    return 1520400 + int(numeric_energy_wh(seconds))


def wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "meter.sqlite3"


@pytest.fixture
def meter(state: Path, clock: FakeClock) -> Iterator[SoftwareMeter]:
    with SoftwareMeter.from_config(None, state, clock=clock) as meter:
        yield meter


def served(meter: SoftwareMeter) -> tuple[str, int]:
    return meter.serve_tcp("127.0.0.1", 0).address


def associated(client: Client) -> Client:
    assert isinstance(client.request(Associate()), AssociationEstablished)
    return client


def server_counters(client: Client) -> list[int]:
    """The invocation counters of the meter's ciphered answers seen by ``client``."""
    counters = []
    for direction, apdu in client.log:
        decoded = decode_apdu(apdu)
        if direction == "<" and isinstance(decoded, ServiceSpecificCiphered):
            counters.append(decoded.invocation_counter)
    return counters


def test_public_client_reads_clock_energy_serial_and_profile(
    meter: SoftwareMeter, clock: FakeClock
) -> None:
    client = associated(tcp_client(served(meter), public_settings()))
    try:
        # 2024-05-01 10:00 UTC is a Wednesday, 12:00 CEST (deviation -120, DST status bit).
        noon = CosemDateTime(2024, 5, 1, 3, 12, 0, 0, 0, CEST, ClockStatus(0x80))
        assert client.get(CLOCK) == datetime_octets(noon)
        assert client.get(SERIAL) == OctetString(b"CSC0000012345")
        assert client.get(ENERGY) == DoubleLongUnsigned(1520400)
        assert client.get(ENERGY_SCALER_UNIT) == Structure((Integer(0), Enumerated(30)))
        assert client.get(PROFILE) == ()

        clock.advance(hours=1)
        meter.advance_to()
        energy = client.get(ENERGY)
        assert energy == expected_energy(3600)
        rows = client.get(PROFILE)
        assert isinstance(rows, tuple) and len(rows) == 4
        stamps = [OctetString(row[0]).as_datetime() for row in rows]
        assert [(s.hour, s.minute, s.deviation) for s in stamps] == [
            (12, 15, CEST),
            (12, 30, CEST),
            (12, 45, CEST),
            (13, 0, CEST),
        ]
        for i, row in enumerate(rows, start=1):
            assert row[1] == expected_energy(900 * i)
        assert rows[-1][1] == energy

        selection = clock_range(stamps[2].to_datetime(), stamps[3].to_datetime())
        assert client.get_selected(PROFILE, selection) == rows[2:]
        assert isinstance(client.request(Release()), AssociationReleased)
    finally:
        client.close()


def test_public_client_sees_no_security_and_cannot_write(meter: SoftwareMeter) -> None:
    client = associated(tcp_client(served(meter), public_settings()))
    try:
        names = {entry.logical_name for entry in parse_object_list(client.get(OBJECT_LIST))}
        assert Obis.parse("1-0:99.1.0.255") in names and Obis.parse("0-0:1.0.0.255") in names
        assert Obis.parse("0-0:43.0.0.255") not in names
        result = client.request(Get(SECURITY_SETUP_POLICY))
        assert result == GetResult(GetDataError(DataAccessResult.OBJECT_UNDEFINED))
        denied = client.request(Set(SERIAL, OctetString(b"hacked")))
        assert denied == SetResult(DataAccessResult.READ_WRITE_DENIED)
        assert client.get(SERIAL) == OctetString(b"CSC0000012345")
    finally:
        client.close()


def test_lls_client_with_right_and_wrong_password(
    meter: SoftwareMeter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    address = served(meter)
    client = associated(tcp_client(address, lls_settings()))
    try:
        assert client.get(ENERGY) == 1520400
    finally:
        client.close()
    wrong = tcp_client(address, lls_settings(b"87654321"))
    try:
        with pytest.raises(AssociationRejected) as info:
            wrong.request(Associate())
        assert info.value.diagnostic == AcseServiceUser.AUTHENTICATION_FAILURE
    finally:
        wrong.close()
    assert "refused" in caplog.text
    assert PASSWORD.decode() not in caplog.text and "87654321" not in caplog.text


def test_management_client_with_hls_gmac_and_suite_0_ciphering(
    meter: SoftwareMeter, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stores = ClientStores(tmp_path / "client")
    client = tcp_client(served(meter), management_settings(), stores)
    try:
        established = client.request(Associate())
        assert isinstance(established, AssociationEstablished)
        assert established.server_system_title == METER_TITLE
        start = len(client.log)
        assert client.get(ENERGY) == 1520400
        # glo-get-request C8 and glo-get-response CC (brief §4.1, §5.4), never plain C0/C4.
        assert [apdu[0] for _, apdu in client.log[start:]] == [0xC8, 0xCC]
        assert client.get(SECURITY_SETUP_POLICY) == Enumerated(0x6C)  # bits 2, 3, 5, 6
        names = {entry.logical_name for entry in parse_object_list(client.get(OBJECT_LIST))}
        assert Obis.parse("0-0:43.0.0.255") in names
        assert isinstance(client.request(Release()), AssociationReleased)
    finally:
        client.close()
        stores.close()
    for key in (EK, AK):
        assert key.hex() not in caplog.text.lower()


def test_wrong_management_key_is_rejected(meter: SoftwareMeter, tmp_path: Path) -> None:
    stores = ClientStores(tmp_path / "client")
    client = tcp_client(served(meter), management_settings(ek=bytes(16)), stores)
    try:
        with pytest.raises(AssociationRejected):
            client.request(Associate())
    finally:
        client.close()
        stores.close()


def test_unknown_client_sap_and_logical_device_are_refused(meter: SoftwareMeter) -> None:
    address = served(meter)
    for client_sap, server_sap in ((99, 1), (16, 7)):
        settings = AssociationSettings(client_sap=client_sap, server_sap=server_sap)
        client = tcp_client(address, settings)
        try:
            with pytest.raises(AssociationRejected) as info:
                client.request(Associate())
            assert info.value.diagnostic == AcseServiceUser.NO_REASON_GIVEN
        finally:
            client.close()


def test_restart_keeps_values_buffer_clock_disconnect_and_monotonic_counters(
    state: Path, clock: FakeClock, tmp_path: Path
) -> None:
    stores = ClientStores(tmp_path / "client")
    with SoftwareMeter.from_config(None, state, clock=clock) as meter:
        client = associated(tcp_client(served(meter), management_settings(), stores))
        clock.advance(hours=3)
        meter.advance_to()
        energy = client.get(ENERGY)
        assert energy == expected_energy(3 * 3600)
        rows = client.get(PROFILE)
        assert isinstance(rows, tuple) and len(rows) == 12
        # Shift the meter's clock by +60 s (shift_time) and open the breaker.
        shifted = client.request(
            Action(
                CosemMethodDescriptor(8, Obis.parse("0-0:1.0.0.255"), 6),
                Long(60),
            )
        )
        assert isinstance(shifted, MethodResult) and shifted.result is ActionResult.SUCCESS
        opened = client.request(Action(REMOTE_DISCONNECT, Integer(0)))
        assert isinstance(opened, MethodResult) and opened.result is ActionResult.SUCCESS
        assert client.get(DISCONNECT_STATE) is False
        time_before = client.get(CLOCK)
        replayable = [apdu for direction, apdu in client.log if direction == ">"][-1]
        counters_before = server_counters(client)
        client.close()
    with SoftwareMeter.from_config(None, state, clock=clock) as meter:
        client = associated(tcp_client(served(meter), management_settings(), stores))
        try:
            assert client.get(ENERGY) == energy
            assert client.get(PROFILE) == rows
            assert client.get(CLOCK) == time_before
            assert client.get(DISCONNECT_STATE) is False
            clock.advance(hours=1)
            meter.advance_to()
            assert client.get(ENERGY) == energy  # supply off: no energy
            after = server_counters(client)
            assert after and min(after) > max(counters_before)
            assert after == sorted(after) and len(set(after)) == len(after)
            # A request captured before the restart is a replay now.
            client.link.send_apdu(replayable)
            answer = decode_apdu(client.link.receive_apdu(5))
            assert isinstance(answer, ExceptionResponse)
            assert answer.service_error is ExceptionServiceError.INVOCATION_COUNTER_ERROR
        finally:
            client.close()
    stores.close()


def test_key_transfer_applies_to_new_associations_and_survives_restart(
    state: Path, clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    new_ek = bytes(range(0x40, 0x50))
    new_ak = bytes(range(0x50, 0x60))
    stores = ClientStores(tmp_path / "client")
    with SoftwareMeter.from_config(None, state, clock=clock) as meter:
        address = served(meter)
        client = associated(tcp_client(address, management_settings(), stores))
        parameters = key_transfer_parameters(
            KEK,
            {KeyId.GLOBAL_UNICAST_ENCRYPTION_KEY: new_ek, KeyId.AUTHENTICATION_KEY: new_ak},
        )
        result = client.request(Action(KEY_TRANSFER, parameters))
        assert isinstance(result, MethodResult) and result.result is ActionResult.SUCCESS
        assert client.get(ENERGY) == 1520400  # the current association keeps its keys
        client.request(Release())
        client.close()
        old = tcp_client(address, management_settings(), stores)
        try:
            with pytest.raises(AssociationRejected):
                old.request(Associate())
        finally:
            old.close()
        new = associated(tcp_client(address, management_settings(ek=new_ek, ak=new_ak), stores))
        new.close()
    with SoftwareMeter.from_config(None, state, clock=clock) as meter:
        again = associated(
            tcp_client(served(meter), management_settings(ek=new_ek, ak=new_ak), stores)
        )
        try:
            assert again.get(ENERGY) == 1520400
        finally:
            again.close()
    stores.close()
    text = caplog.text.lower()
    assert "key_transfer" in text
    for key in (new_ek, new_ak, KEK):
        assert key.hex() not in text


def test_a_client_dropping_mid_request_leaves_the_state_consistent(
    state: Path, clock: FakeClock, tmp_path: Path
) -> None:
    with SoftwareMeter.from_config(None, state, clock=clock) as meter:
        address = served(meter)
        stores = ClientStores(tmp_path / "client")
        client = associated(tcp_client(address, management_settings(), stores))
        # Send the remote_disconnect and vanish without reading the answer.
        client.link.send_apdu(client.connection.send(Action(REMOTE_DISCONNECT, Integer(0))))
        client.close()
        # Half a wrapper frame, then gone.
        with socket.create_connection(address, timeout=5) as raw:
            raw.sendall(bytes.fromhex("0001001000010020C001"))
        reader = associated(tcp_client(address, public_settings()))
        try:
            wait_for(lambda: reader.get(DISCONNECT_STATE) is False)
            assert reader.get(ENERGY) == 1520400
        finally:
            reader.close()
        stores.close()
    with SoftwareMeter.from_config(None, state, clock=clock) as meter:
        reader = associated(tcp_client(served(meter), public_settings()))
        try:
            assert reader.get(DISCONNECT_STATE) is False
        finally:
            reader.close()


def test_the_meter_serves_udp(meter: SoftwareMeter) -> None:
    server = meter.serve_udp("127.0.0.1", 0)
    link = UdpWrapperLink.connect(*server.address, client_wport=16, server_wport=1)
    client = associated(Client(link, client_connection(public_settings())))
    try:
        assert client.get(SERIAL) == OctetString(b"CSC0000012345")
        assert client.get(ENERGY) == 1520400
    finally:
        client.close()


def test_two_clients_at_once_over_tcp(meter: SoftwareMeter, tmp_path: Path) -> None:
    address = served(meter)
    stores = ClientStores(tmp_path / "client")
    first = associated(tcp_client(address, public_settings()))
    second = associated(tcp_client(address, management_settings(), stores))
    try:
        assert first.get(ENERGY) == second.get(ENERGY) == 1520400
        assert first.get(SERIAL) == second.get(SERIAL)
    finally:
        first.close()
        second.close()
        stores.close()
