"""Interoperability: the Gurux client (pip ``gurux-dlms``, GPL; used only as an independent
peer when installed locally, never a project dependency) against our software meter over
TCP, with no security, LLS and HLS-GMAC with security suite 0 and glo ciphering. Gurux's
client object builds and parses the frames; this file only moves its bytes over a socket and
checks the values it reads (its own parsers) against the meter's configuration and against
what our client reads. Skipped, not failed, when gurux-dlms is not installed.

Peer facts: gurux's client uses invocation counter n inside f(StoC) and n+1 for the APDU
that carries it, and protects its requests with service-specific glo-ciphering (C8/CB).
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

gurux = pytest.importorskip("gurux_dlms")
from gurux_dlms import GXByteBuffer, GXReplyData  # noqa: E402
from gurux_dlms.enums import Authentication, InterfaceType, Security  # noqa: E402
from gurux_dlms.objects import (  # noqa: E402
    GXDLMSClock,
    GXDLMSData,
    GXDLMSProfileGeneric,
    GXDLMSRegister,
)
from gurux_dlms.secure import GXDLMSSecureClient  # noqa: E402

from cosemcast.client import Authentication as Auth  # noqa: E402
from cosemcast.client import Credentials, DlmsClient  # noqa: E402
from cosemcast.meter import SoftwareMeter  # noqa: E402

START = dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)
NOW = START + dt.timedelta(hours=2)
EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")  # the default config's public test keys
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
LEVELS = {
    "none": (16, Authentication.NONE, None),
    "lls": (17, Authentication.LOW, "12345678"),
    "hls-gmac": (1, Authentication.HIGH_GMAC, None),
}


class FakeClock:
    now = START

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def meter(tmp_path: Path) -> Iterator[tuple[str, int]]:
    clock = FakeClock()
    with SoftwareMeter.from_config(None, tmp_path / "meter.sqlite3", clock=clock) as m:
        clock.now = NOW
        m.advance_to()
        yield m.serve_tcp("127.0.0.1", 0).address


class GuruxSession:
    """A Gurux client object whose frames go over one TCP connection."""

    def __init__(self, host: str, port: int, level: str) -> None:
        sap, authentication, password = LEVELS[level]
        self.client = GXDLMSSecureClient(
            True, sap, 1, authentication, password, InterfaceType.WRAPPER
        )
        if authentication == Authentication.HIGH_GMAC:
            ciphering = self.client.ciphering
            ciphering.security = Security.AUTHENTICATION_ENCRYPTION
            ciphering.systemTitle = bytearray(b"GURUXCLI")
            ciphering.blockCipherKey = bytearray(EK)
            ciphering.authenticationKey = bytearray(AK)
        self.sock = socket.create_connection((host, port), timeout=5)
        self.reply = GXReplyData()

    def _transfer(self, frame: Any) -> None:
        self.sock.sendall(frame)
        received = GXByteBuffer()
        while not self.client.getData(received, self.reply):
            chunk = self.sock.recv(65536)
            assert chunk, "the meter closed the connection"
            received.set(chunk)

    def exchange(self, frames: Any) -> Any:
        for frame in frames:
            self.reply.clear()
            self._transfer(frame)
            while self.reply.isMoreData():
                self._transfer(self.client.receiverReady(self.reply))
        return self.reply

    def associate(self) -> None:
        self.client.parseAareResponse(self.exchange(self.client.aarqRequest()).data)
        if self.client.getIsAuthenticationRequired():
            answer = self.exchange(self.client.getApplicationAssociationRequest())
            self.client.parseApplicationAssociationResponse(answer.data)

    def read(self, obj: Any, attribute: int) -> None:
        self.client.updateValue(
            obj, attribute, self.exchange(self.client.read(obj, attribute)).value
        )

    def rows(self, profile: Any, start: dt.datetime, end: dt.datetime) -> Any:
        answer = self.exchange(self.client.readRowsByRange(profile, start, end))
        self.client.updateValue(profile, 2, answer.value)
        return profile.buffer

    def close(self) -> None:
        try:
            self.exchange(self.client.releaseRequest())
        finally:
            self.sock.close()


@pytest.mark.parametrize("level", list(LEVELS))
def test_gurux_reads_our_meter(meter: tuple[str, int], tmp_path: Path, level: str) -> None:
    host, port = meter
    session = GuruxSession(host, port, level)
    try:
        session.associate()
        energy = GXDLMSRegister("1.0.1.8.0.255")
        session.read(energy, 3)
        session.read(energy, 2)
        serial = GXDLMSData("0.0.96.1.0.255")
        session.read(serial, 2)
        clock = GXDLMSClock("0.0.1.0.0.255")
        session.read(clock, 2)
        profile = GXDLMSProfileGeneric("1.0.99.1.0.255")
        session.read(profile, 3)
        rows = session.rows(profile, START, START + dt.timedelta(hours=1))
    finally:
        session.close()
    assert bytes(serial.value) == b"CSC0000012345"
    assert int(energy.unit) == 30 and energy.scaler == 1.0  # Wh, 10^0
    assert energy.value > 1520400
    assert clock.time.value.astimezone(dt.UTC) == NOW
    assert [row[0].value.astimezone(dt.UTC) for row in rows] == [
        START + dt.timedelta(minutes=15 * i) for i in range(1, 5)
    ]
    auth = {"none": Auth.NONE, "lls": Auth.LLS}.get(level, Auth.HLS_GMAC)
    creds = Credentials(
        client_sap=LEVELS[level][0],
        auth=auth,
        password=b"12345678" if auth is Auth.LLS else b"",
        system_title=b"CSCCHECK" if auth.hls else None,
        unicast_key=EK if auth.hls else None,
        authentication_key=AK if auth.hls else None,
        counters=tmp_path / "ours.sqlite",
    )
    with DlmsClient.tcp(host, port, creds) as ours:
        ours.associate()
        assert ours.read_register("1-0:1.8.0.255").raw == energy.value
        ours_rows = ours.read_profile(
            "1-0:99.1.0.255", from_=START, to=START + dt.timedelta(hours=1)
        )
        assert [row[1] for row in ours_rows.rows] == [row[1] for row in rows]
