"""The blocking client over UDP (IEC 62056-47 wrapper) on 127.0.0.1, at every authentication
level, against the assembled meter of ``test_client_support``."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from cosemcast.client import Authentication, DlmsClient
from cosemcast.errors import ResponseTimeout, TransportError
from test_client_support import (
    ENERGY,
    ENERGY_RAW,
    PROFILE,
    PROFILE_ROWS,
    SERIAL,
    SERIAL_NUMBER,
    TestMeter,
    credentials,
    profile_row,
)


@pytest.fixture
def meter(tmp_path: Path) -> Iterator[TestMeter]:
    instance = TestMeter(tmp_path / "meter")
    yield instance
    instance.close()


@pytest.mark.parametrize("auth", list(Authentication))
def test_each_authentication_level_over_udp(
    meter: TestMeter, tmp_path: Path, auth: Authentication
) -> None:
    creds = credentials(auth, tmp_path, max_pdu_size=256)
    with DlmsClient.udp("127.0.0.1", meter.udp_port, creds, timeout_s=5.0) as client:
        client.associate()
        assert client.read_register(ENERGY).raw == ENERGY_RAW
        assert client.get(SERIAL) == SERIAL_NUMBER
        profile = client.read_profile(PROFILE)  # several blocks of at most 256 bytes
        assert [row[1] for row in profile.rows] == [profile_row(i)[1] for i in range(PROFILE_ROWS)]


def test_a_silent_udp_meter_is_a_timeout(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        creds = credentials(Authentication.NONE, tmp_path)
        with (
            DlmsClient.udp("127.0.0.1", port, creds, timeout_s=0.3) as client,
            pytest.raises(ResponseTimeout),
        ):
            client.associate()
        assert silent.recv(4096)[:2] == b"\x00\x01"  # the AARQ did go out, in a wrapper


def test_no_udp_meter_at_all_is_a_refusal(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    creds = credentials(Authentication.NONE, tmp_path)
    with (
        DlmsClient.udp("127.0.0.1", port, creds, timeout_s=2.0) as client,
        pytest.raises(TransportError, match="refused"),
    ):
        client.associate()
