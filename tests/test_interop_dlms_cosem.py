"""Interoperability: the dlms-cosem client (pip ``dlms-cosem==21.3.2``, its last MIT release,
used only as an independent peer) against our software meter over TCP, with no security,
LLS and HLS-GMAC with security suite 0. Every value it reads is decoded by dlms-cosem's own
parsers and checked against the meter's configuration and against what our client reads.
Skipped, not failed, when dlms-cosem is not installed.

Peer facts met on the way (``specs/client.md`` §interop):

* dlms-cosem protects its requests with general-glo-ciphering (DB) and uses the same
  invocation counter inside f(StoC) and for the APDU carrying it; our meter answers each
  request in the form it came in, so the HLS pass-4 answer is a general-glo-ciphering too.
* dlms-cosem keeps "the last meter counter seen" starting at 0 and refuses a received
  counter that is not above it, so a meter whose first counter under a key is 0 (ours) is
  refused by a fresh dlms-cosem client; it is told here that nothing was seen yet (-1).
* dlms-cosem does not persist its own counter: a second session from 0 is a replay, which
  our meter refuses; starting from where the first session stopped is accepted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

dc_client = pytest.importorskip("dlms_cosem.clients.dlms_client")
from dlms_cosem import cosem, enumerations, exceptions, time, utils  # noqa: E402
from dlms_cosem.cosem.capture_object import CaptureObject  # noqa: E402
from dlms_cosem.cosem.selective_access import RangeDescriptor  # noqa: E402

from cosemcast.client import Authentication, Credentials, DlmsClient  # noqa: E402
from cosemcast.meter import SoftwareMeter  # noqa: E402

START = dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)
EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")  # the default config's public test keys
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
PEER_TITLE = b"DLMSCOSM"
Mechanism = enumerations.AuthenticationMechanism
Interface = enumerations.CosemInterface

CLOCK = cosem.CosemAttribute(Interface.CLOCK, cosem.Obis(0, 0, 1, 0, 0), 2)
ENERGY = cosem.CosemAttribute(Interface.REGISTER, cosem.Obis(1, 0, 1, 8, 0), 2)
SCALER_UNIT = cosem.CosemAttribute(Interface.REGISTER, cosem.Obis(1, 0, 1, 8, 0), 3)
SERIAL = cosem.CosemAttribute(Interface.DATA, cosem.Obis(0, 0, 96, 1, 0), 2)
PROFILE = cosem.CosemAttribute(Interface.PROFILE_GENERIC, cosem.Obis(1, 0, 99, 1, 0), 2)


NOW = START + dt.timedelta(hours=2)


class FakeClock:
    now = START

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def meter(tmp_path: Path) -> Iterator[tuple[SoftwareMeter, str, int]]:
    clock = FakeClock()
    with SoftwareMeter.from_config(None, tmp_path / "meter.sqlite3", clock=clock) as m:
        clock.now = NOW
        m.advance_to()  # energy integrates the load curve, the profile captures every 15 min
        host, port = m.serve_tcp("127.0.0.1", 0).address
        yield m, host, port


PEERS: dict[str, dict[str, Any]] = {
    "none": {"client_logical_address": 16},
    "lls": {
        "client_logical_address": 17,
        "authentication_method": Mechanism.LLS,
        "password": b"12345678",
    },
    "hls-gmac": {
        "client_logical_address": 1,
        "authentication_method": Mechanism.HLS_GMAC,
        "encryption_key": EK,
        "authentication_key": AK,
        "client_system_title": PEER_TITLE,
        "security_suite": 0,
    },
}


def peer(host: str, port: int, level: str, **changes: Any) -> Any:
    return dc_client.DlmsClient.with_tcp_transport(
        host=host, port=port, server_logical_address=1, timeout=5, **(PEERS[level] | changes)
    )


def ours(host: str, port: int, level: str, tmp_path: Path) -> DlmsClient:
    auth = {"none": Authentication.NONE, "lls": Authentication.LLS}.get(
        level, Authentication.HLS_GMAC
    )
    creds = Credentials(
        client_sap=PEERS[level]["client_logical_address"],
        auth=auth,
        password=b"12345678" if level == "lls" else b"",
        system_title=b"CSCCHECK" if auth.hls else None,
        unicast_key=EK if auth.hls else None,
        authentication_key=AK if auth.hls else None,
        counters=tmp_path / "ours.sqlite",
    )
    return DlmsClient.tcp(host, port, creds)


@pytest.mark.parametrize("level", ["none", "lls", "hls-gmac"])
def test_dlms_cosem_reads_our_meter(
    meter: tuple[SoftwareMeter, str, int], tmp_path: Path, level: str
) -> None:
    _, host, port = meter
    with peer(host, port, level).session() as client:
        clock, _status = time.datetime_from_bytes(utils.parse_as_dlms_data(client.get(CLOCK)))
        energy = utils.parse_as_dlms_data(client.get(ENERGY))
        scaler_unit = utils.parse_as_dlms_data(client.get(SCALER_UNIT))
        serial = utils.parse_as_dlms_data(client.get(SERIAL))
        window = RangeDescriptor(
            restricting_object=CaptureObject(CLOCK),
            from_value=START,
            to_value=START + dt.timedelta(hours=1),
        )
        rows = utils.parse_as_dlms_data(client.get(PROFILE, access_descriptor=window))
    assert clock == NOW  # read as 14:00 CEST, an aware datetime
    assert serial == b"CSC0000012345"
    assert scaler_unit == [0, 30]  # scaler 0, unit Wh
    assert energy > 1520400  # the configured start value, advanced by the load curve
    stamps = [time.datetime_from_bytes(row[0])[0] for row in rows]
    assert stamps == [START + dt.timedelta(minutes=15 * i) for i in range(1, 5)]
    with ours(host, port, level, tmp_path) as check:
        check.associate()
        assert check.get("1-0:1.8.0.255", 2, 3) == energy
        assert check.get("0-0:96.1.0.255", 2, 1) == serial
        profile = check.read_profile(
            "1-0:99.1.0.255", from_=START, to=START + dt.timedelta(hours=1)
        )
        assert [row[1] for row in profile.rows] == [row[1] for row in rows]


def test_dlms_cosem_counters_are_checked_by_our_meter(
    meter: tuple[SoftwareMeter, str, int],
) -> None:
    _, host, port = meter
    first = peer(host, port, "hls-gmac")
    with first.session() as client:
        client.get(SERIAL)
        used = client.client_invocation_counter
    again = peer(host, port, "hls-gmac")  # dlms-cosem starts from 0 again: a replay
    with (  # the meter refuses the AARQ's replayed counter
        pytest.raises(exceptions.DlmsClientException, match="REJECTED_PERMANENT"),
        again.session() as client,
    ):
        client.get(SERIAL)
    again.disconnect()
    onwards = peer(host, port, "hls-gmac", client_initial_invocation_counter=used + 10)
    with onwards.session() as client:
        assert utils.parse_as_dlms_data(client.get(SERIAL)) == b"CSC0000012345"
