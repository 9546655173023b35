"""The asyncio client end to end over TCP and UDP on 127.0.0.1 (the same operations as the
blocking client, driven over the asyncio transports)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from cosemcast.apdu.common import DataAccessResult
from cosemcast.axdr.types import Integer, OctetString
from cosemcast.client import AsyncDlmsClient, Authentication, DataAccessError, ReadProgress
from cosemcast.errors import AssociationRejected, ReplayError
from test_client_support import (
    ENERGY,
    ENERGY_RAW,
    NOTE,
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


@pytest.mark.parametrize("transport", ["tcp", "udp"])
@pytest.mark.parametrize("auth", list(Authentication))
def test_async_client_reads_at_each_level(
    meter: TestMeter, tmp_path: Path, auth: Authentication, transport: str
) -> None:
    creds = credentials(auth, tmp_path, max_pdu_size=256)
    steps: list[ReadProgress] = []

    async def session() -> None:
        if transport == "tcp":
            client = await AsyncDlmsClient.tcp("127.0.0.1", meter.tcp_port, creds)
        else:
            client = await AsyncDlmsClient.udp("127.0.0.1", meter.udp_port, creds, timeout_s=5)
        async with client:
            await client.associate()
            assert (await client.read_register(ENERGY)).raw == ENERGY_RAW
            assert await client.get(SERIAL) == SERIAL_NUMBER
            values = await client.get_many([(SERIAL, 2), ("1-0:1.9.0.255", 2)])
            assert values[0] == SERIAL_NUMBER and isinstance(values[1], DataAccessError)
            profile = await client.read_profile(PROFILE, progress=steps.append)
            assert [r[1] for r in profile.rows] == [profile_row(i)[1] for i in range(PROFILE_ROWS)]
            assert any(e.logical_name == ENERGY for e in await client.object_list())
            if auth.hls:
                await client.set(NOTE, 2, OctetString(b"async"))
                assert await client.get(NOTE) == b"async"
                assert await client.action(ENERGY, 1, Integer(0)) is None
            else:
                with pytest.raises(DataAccessError) as denied:
                    await client.set(NOTE, 2, OctetString(b"async"))
                assert denied.value.result is DataAccessResult.READ_WRITE_DENIED

    asyncio.run(session())
    assert len(steps) > 2


def test_async_rejection_and_replay(meter: TestMeter, tmp_path: Path) -> None:
    async def wrong_password() -> None:
        creds = credentials(Authentication.LLS, tmp_path, password=b"nope")
        async with await AsyncDlmsClient.tcp("127.0.0.1", meter.tcp_port, creds) as client:
            with pytest.raises(AssociationRejected):
                await client.associate()

    async def concurrent_reads() -> None:
        creds = credentials(Authentication.HLS_GMAC, tmp_path)
        async with await AsyncDlmsClient.tcp("127.0.0.1", meter.tcp_port, creds) as client:
            await client.associate()
            values = await asyncio.gather(*(client.get(SERIAL) for _ in range(5)))
            assert values == [SERIAL_NUMBER] * 5  # serialised by the client's lock

    asyncio.run(wrong_password())
    asyncio.run(concurrent_reads())
    amnesiac = TestMeter(tmp_path / "fresh")  # counters restart at 0: already seen

    async def replayed() -> None:
        creds = credentials(Authentication.HLS_GMAC, tmp_path)
        async with await AsyncDlmsClient.tcp("127.0.0.1", amnesiac.tcp_port, creds) as client:
            with pytest.raises(ReplayError):
                await client.associate()

    try:
        asyncio.run(replayed())
    finally:
        amnesiac.close()
