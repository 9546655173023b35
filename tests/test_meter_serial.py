"""The software meter over HDLC on a pseudo-terminal pair, behind the IEC 62056-21 mode E
sign-on: in process (the meter on the master side, the client on /dev/pts/N through pyserial,
including a push in UI frames) and as ``cosemcast meter serve --serial /dev/pts/N --mode-e``
(the client on the master side). Every wait is bounded."""

from __future__ import annotations

import os
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.notifications import DataNotification
from cosemcast.association import Associate, AssociationEstablished, AssociationSettings, Release
from cosemcast.axdr.types import OctetString
from cosemcast.link.hdlc import HdlcAddress
from cosemcast.link.mode_e import Identification
from cosemcast.meter import SoftwareMeter, default_config_text
from cosemcast.transport.serial import FdPort, HdlcSerialLink, open_serial
from test_meter_cli import Served
from test_meter_support import (
    ENERGY,
    SERIAL,
    Client,
    ClientStores,
    FakeClock,
    client_connection,
    management_settings,
    public_settings,
)

METER_ID = Identification("MMM", "5", "COSEMCAST-EM1")  # the default configuration's


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, str]]:
    """(master fd, slave path); the slave stays open (raw) so the master never sees EIO."""
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(slave)
        os.close(master)


def hdlc_client(
    port: object, settings: AssociationSettings, stores: ClientStores | None = None
) -> Client:
    link = HdlcSerialLink(
        port,  # type: ignore[arg-type]
        client_address=HdlcAddress.client(settings.client_sap),
        server_address=HdlcAddress.server(settings.server_sap),
        mode_e=True,
        handover_delay_s=0.05,
        response_timeout_s=1.0,
    )
    link.connect(timeout_s=15)
    assert link.identification == METER_ID
    return Client(link, client_connection(settings, stores), timeout_s=10)


def test_mode_e_hdlc_public_and_management_clients_and_a_push(
    tmp_path: Path, pty_pair: tuple[int, str]
) -> None:
    master, slave_path = pty_pair
    config = tmp_path / "meter.toml"
    config.write_text(
        default_config_text()
        .replace('transport = "udp"', 'transport = "hdlc"')
        .replace('destination = "127.0.0.1:4060"', 'destination = ""')
        .replace('protection = "general-glo"', 'protection = "none"')
    )
    clock = FakeClock()
    with SoftwareMeter.from_config(config, tmp_path / "s.sqlite3", clock=clock) as meter:
        meter.serve_serial(FdPort(os.dup(master)), mode_e=True)
        public = hdlc_client(open_serial(slave_path), public_settings())
        try:
            assert isinstance(public.request(Associate()), AssociationEstablished)
            assert public.get(SERIAL) == OctetString(b"CSC0000012345")
            assert public.get(ENERGY) == 1520400
            clock.advance(minutes=15)
            meter.advance_to()
            assert isinstance(public.link, HdlcSerialLink)
            push = decode_apdu(public.link.receive_push(10))
            assert isinstance(push, DataNotification)
            public.request(Release())
        finally:
            public.close()
        stores = ClientStores(tmp_path / "client")
        management = hdlc_client(open_serial(slave_path), management_settings(), stores)
        try:
            assert isinstance(management.request(Associate()), AssociationEstablished)
            assert management.get(ENERGY) == public_energy_after_15_minutes(meter)
            assert [apdu[0] for _, apdu in management.log[-2:]] == [0xC8, 0xCC]
        finally:
            management.close()
            stores.close()


def public_energy_after_15_minutes(meter: SoftwareMeter) -> int:
    register = meter.devices[1].curves[0].register
    return int(register.value)  # type: ignore[call-overload]


def test_cli_serves_a_serial_port_with_mode_e(tmp_path: Path, pty_pair: tuple[int, str]) -> None:
    master, slave_path = pty_pair
    served = Served("--serial", slave_path, "--mode-e", "--state", str(tmp_path / "s.sqlite3"))
    try:
        served.wait_for("meter ready")
        client = hdlc_client(FdPort(os.dup(master)), public_settings())
        try:
            assert isinstance(client.request(Associate()), AssociationEstablished)
            assert client.get(SERIAL) == OctetString(b"CSC0000012345")
        finally:
            client.close()
    finally:
        log = served.interrupt()
    assert served.process.returncode == 0, log
