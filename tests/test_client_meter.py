"""The client against the real software meter (``cosemcast.meter.SoftwareMeter`` with the
shipped default configuration, plus an HLS-ECDSA client added for these tests): TCP, UDP
and HDLC with mode E over a pseudo-terminal, every authentication level, suite 0 glo
ciphering, a restart mid-session with monotonic counters, and ``cosemcast read`` run by a
subprocess. Keys: the default configuration's public test keys (Green Book EK/AK, brief
§5.3), the meter's system title 4D4D4D0000BC614E."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tty
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.ciphered import ServiceSpecificCiphered
from cosemcast.axdr.types import CosemDateTime
from cosemcast.client import Authentication, Credentials, DlmsClient
from cosemcast.cosem.units import Unit
from cosemcast.errors import AssociationRejected, TransportError
from cosemcast.meter import SoftwareMeter, default_config_text
from cosemcast.transport.serial_port import FdPort
from test_client_support import (
    AK,
    CLIENT_TITLE,
    EK,
    METER_TITLE,
    RecordingLink,
    signing_key,
    tcp_client,
    write_pem,
)

START = dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)  # 12:00 CEST at the meter
ENERGY, SERIAL, PROFILE = "1-0:1.8.0.255", "0-0:96.1.0.255", "1-0:99.1.0.255"
ECDSA_SAP = 3


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> dt.datetime:
        return self.now


def config(tmp_path: Path) -> Path:
    """The default configuration with an HLS-ECDSA client (suite 1) appended."""
    write_pem(tmp_path / "meter-sign.pem", signing_key("meter"))
    write_pem(tmp_path / "client-sign.pub.pem", signing_key("client"), public=True)
    path = tmp_path / "meter.toml"
    path.write_text(
        default_config_text()
        + f"""
  [[logical_devices.clients]]
  sap = {ECDSA_SAP}
  name = "ecdsa"
  authentication = "hls-ecdsa"
  access = "full"

    [logical_devices.clients.security]
    security_setup = "0-0:43.0.1.255"
    suite = 1
    ciphering = "glo"
    ek = "{EK.hex()}"
    ak = "{AK.hex()}"
    signing_key = "meter-sign.pem"
    client_signing_key = "client-sign.pub.pem"
"""
    )
    return path


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def meter(tmp_path: Path, clock: FakeClock) -> Iterator[SoftwareMeter]:
    with SoftwareMeter.from_config(config(tmp_path), tmp_path / "meter.sqlite3", clock=clock) as m:
        clock.now = START + dt.timedelta(hours=2)
        m.advance_to()  # eight load-profile rows
        yield m


def creds(auth: Authentication, tmp_path: Path, **changes: object) -> Credentials:
    values: dict[str, object] = {
        "auth": auth,
        "counters": tmp_path / "client-counters.sqlite",
        "client_sap": {
            Authentication.NONE: 16,
            Authentication.LLS: 17,
            Authentication.HLS_GMAC: 1,
            Authentication.HLS_ECDSA: ECDSA_SAP,
        }[auth],
    }
    if auth is Authentication.LLS:
        values["password"] = b"12345678"
    if auth.hls:
        values.update(system_title=CLIENT_TITLE, unicast_key=EK, authentication_key=AK)
        values["server_system_title"] = METER_TITLE
    if auth is Authentication.HLS_ECDSA:
        values.update(
            signing_key=signing_key("client"), server_signing_key=signing_key("meter").public_key()
        )
    values.update(changes)
    return Credentials(**values)  # type: ignore[arg-type]


def read_everything(client: DlmsClient) -> None:
    client.associate()
    energy = client.read_register(ENERGY)
    assert energy.unit is Unit.WATT_HOUR and energy.scaler == 0
    assert isinstance(energy.value, Decimal) and energy.value > 1520400  # it advanced
    assert client.get(SERIAL) == b"CSC0000012345"
    profile = client.read_profile(PROFILE, from_=START, to=START + dt.timedelta(hours=1))
    assert len(profile.rows) == 4
    stamps = [row[0] for row in profile.rows]
    assert all(isinstance(s, CosemDateTime) for s in stamps)
    assert [s.to_datetime() for s in stamps if isinstance(s, CosemDateTime)] == [
        START + dt.timedelta(minutes=15 * i) for i in range(1, 5)
    ]
    values = [row[1] for row in profile.rows]
    assert values == sorted(values)
    assert any(str(entry.logical_name) == PROFILE for entry in client.object_list())


@pytest.mark.parametrize("auth", list(Authentication))
def test_tcp_and_udp_at_every_level(
    meter: SoftwareMeter, tmp_path: Path, auth: Authentication
) -> None:
    tcp = meter.serve_tcp("127.0.0.1", 0).address
    udp = meter.serve_udp("127.0.0.1", 0).address
    with DlmsClient.tcp(*tcp, creds(auth, tmp_path)) as client:
        read_everything(client)
    with DlmsClient.udp(*udp, creds(auth, tmp_path), timeout_s=5) as client:
        read_everything(client)


def test_hdlc_with_mode_e_on_a_pseudo_terminal(meter: SoftwareMeter, tmp_path: Path) -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        meter.serve_serial(FdPort(master), mode_e=True)
        for auth in (Authentication.NONE, Authentication.HLS_GMAC):
            with DlmsClient.serial(
                os.ttyname(slave), creds(auth, tmp_path), handover_delay_s=0.05, timeout_s=20
            ) as client:
                read_everything(client)
    finally:
        os.close(slave)


def test_wrong_credentials_are_rejected(meter: SoftwareMeter, tmp_path: Path) -> None:
    address = meter.serve_tcp("127.0.0.1", 0).address
    wrong = [
        creds(Authentication.LLS, tmp_path, password=b"00000000"),
        creds(Authentication.HLS_GMAC, tmp_path, authentication_key=bytes(16)),
    ]
    for bad in wrong:
        with DlmsClient.tcp(*address, bad) as client, pytest.raises(AssociationRejected):
            client.associate()


def test_a_restart_mid_session_keeps_counters_monotonic(tmp_path: Path, clock: FakeClock) -> None:
    path, state = config(tmp_path), tmp_path / "meter.sqlite3"
    management = creds(Authentication.HLS_GMAC, tmp_path)
    answers: list[list[int]] = []
    first = SoftwareMeter.from_config(path, state, clock=clock)
    try:
        client, link = tcp_client_to(first, management)
        client.associate()
        client.get(SERIAL)
        answers.append(counters_of(link.received))
        first.close()  # mid-session
        with pytest.raises(TransportError):
            client.get(SERIAL)
        client.close()
    finally:
        first.close()
    with SoftwareMeter.from_config(path, state, clock=clock) as second:
        client, link = tcp_client_to(second, management)
        with client:
            client.associate()
            assert client.get(SERIAL) == b"CSC0000012345"
        answers.append(counters_of(link.received))
    assert min(answers[1]) > max(answers[0])


def tcp_client_to(
    meter: SoftwareMeter, credentials: Credentials
) -> tuple[DlmsClient, RecordingLink]:
    return tcp_client(meter.serve_tcp("127.0.0.1", 0).address[1], credentials)


def counters_of(apdus: list[bytes]) -> list[int]:
    found = []
    for apdu in apdus:
        decoded = decode_apdu(apdu)
        user = getattr(decoded, "user_information", decoded)
        if isinstance(user, ServiceSpecificCiphered):
            found.append(user.invocation_counter)
    return found


def test_cosemcast_read_against_the_software_meter(meter: SoftwareMeter, tmp_path: Path) -> None:
    host, port = meter.serve_tcp("127.0.0.1", 0).address
    keys = tmp_path / "management.toml"
    keys.write_text(
        f"""
[client]
client_sap = 1
auth = "hls-gmac"
system_title = "{CLIENT_TITLE.hex()}"

[[keys]]
system_title = "{CLIENT_TITLE.hex()}"
ek = "{EK.hex()}"
ak = "{AK.hex()}"
"""
    )
    env = dict(os.environ, COSEMCAST_STATE_DIR=str(tmp_path / "state"))

    def read(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cosemcast", "read", "--tcp", f"{host}:{port}", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )

    text = read(ENERGY)
    assert text.returncode == 0, text.stderr
    assert "scaler: 0" in text.stdout and "unit:   Wh (30)" in text.stdout
    document = json.loads(read("--keys", str(keys), ENERGY, "--json").stdout)
    assert document["unit_symbol"] == "Wh" and document["raw"] > 1520400
    window = ("--from", "2024-05-01T10:00+00:00", "--to", "2024-05-01T11:00+00:00")
    profile = json.loads(read(PROFILE, *window, "--json").stdout)
    assert len(profile["rows"]) == 4
    listing = read("--list", "--keys", str(keys))
    assert listing.returncode == 0 and "0-0:43.0.0.255" in listing.stdout


def test_cosemcast_read_over_a_serial_line_with_mode_e(
    meter: SoftwareMeter, tmp_path: Path
) -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        meter.serve_serial(FdPort(master), mode_e=True)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "cosemcast",
                "read",
                "--serial",
                os.ttyname(slave),
                "--mode-e",
                ENERGY,
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ, COSEMCAST_STATE_DIR=str(tmp_path / "state")),
            check=False,
        )
    finally:
        os.close(slave)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["unit_symbol"] == "Wh" and document["raw"] > 1520400
