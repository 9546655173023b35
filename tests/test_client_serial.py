"""The client over HDLC on a pseudo-terminal pair, with the IEC 62056-21 mode E sign-on, at
every authentication level; and HDLC completing when the meter's frames are lost or
corrupted on the way (the client retransmits / asks again)."""

from __future__ import annotations

import asyncio
import os
import threading
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from cosemcast.client import AsyncDlmsClient, Authentication, DlmsClient
from cosemcast.link.hdlc import HdlcAddress
from cosemcast.link.mode_e import Identification
from cosemcast.transport.serial import HdlcPeer, HdlcSerialLink, HdlcSerialServer
from cosemcast.transport.serial_port import FdPort
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

METER_ID = Identification("CSC", "6", "CLIENTPTY")  # mode E, up to 19200 Bd


class LossyPort(FdPort):
    """The meter's end of the line: drops the frames numbered in ``drop`` and flips a bit in
    those numbered in ``corrupt`` (counting the HDLC frames written after the sign-on)."""

    def __init__(self, fd: int, drop: set[int], corrupt: set[int]) -> None:
        super().__init__(fd)
        self.drop, self.corrupt = drop, corrupt
        self.frames = 0

    def write(self, data: bytes, /) -> int:
        if data[:1] == b"\x7e":
            self.frames += 1
            if self.frames in self.drop:
                return len(data)
            if self.frames in self.corrupt:
                middle = len(data) // 2
                data = data[:middle] + bytes([data[middle] ^ 0x10]) + data[middle + 1 :]
        return super().write(data)


@pytest.fixture
def meter(tmp_path: Path) -> Iterator[TestMeter]:
    instance = TestMeter(tmp_path / "meter")
    yield instance
    instance.close()


@pytest.fixture
def line() -> Iterator[tuple[int, str]]:
    """(meter's master fd, client's slave path) of a pseudo-terminal pair."""
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(slave)


def serve(meter: TestMeter, port: FdPort) -> tuple[HdlcSerialServer, threading.Thread]:
    def handler(peer: HdlcPeer, request: bytes) -> bytes | None:
        answers = meter.answers(peer, peer.client_address.logical, request)
        assert len(answers) <= 1
        return answers[0] if answers else None

    server = HdlcSerialServer(
        port,
        handler,
        server_addresses=(HdlcAddress.server(1),),
        mode_e=METER_ID,
        on_disconnect=meter.forget,
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def stop(server: HdlcSerialServer, thread: threading.Thread) -> None:
    server.close()
    thread.join(5)


def test_every_authentication_level_over_hdlc_with_mode_e(
    meter: TestMeter, tmp_path: Path, line: tuple[int, str]
) -> None:
    master, slave_path = line
    server, thread = serve(meter, FdPort(master))
    try:
        for auth in Authentication:
            with DlmsClient.serial(
                slave_path,
                credentials(auth, tmp_path),
                mode_e=True,
                handover_delay_s=0.05,
                timeout_s=20,
            ) as client:
                client.associate()
                assert isinstance(client.link, HdlcSerialLink)
                assert client.link.identification == METER_ID  # the mode E sign-on happened
                assert client.link.baud_rate == 19200
                assert client.read_register(ENERGY).raw == ENERGY_RAW
                assert client.get(SERIAL) == SERIAL_NUMBER
                profile = client.read_profile(PROFILE)  # ~1.5 kB: many HDLC segments
                rows = [row[1] for row in profile.rows]
                assert rows == [profile_row(i)[1] for i in range(PROFILE_ROWS)]
    finally:
        stop(server, thread)


def test_hdlc_completes_when_frames_are_lost_or_corrupted(
    meter: TestMeter, tmp_path: Path, line: tuple[int, str]
) -> None:
    master, slave_path = line
    port = LossyPort(master, drop={3, 9, 14}, corrupt={6, 11, 20})
    server, thread = serve(meter, port)
    try:
        with DlmsClient.serial(
            slave_path,
            credentials(Authentication.HLS_GMAC, tmp_path),
            mode_e=True,
            handover_delay_s=0.05,
            hdlc_timeout_s=0.3,
            timeout_s=30,
        ) as client:
            client.associate()
            profile = client.read_profile(PROFILE)
            assert len(profile.rows) == PROFILE_ROWS
            assert client.get(SERIAL) == SERIAL_NUMBER
        assert port.frames > 20
    finally:
        stop(server, thread)


def test_the_async_client_over_hdlc(
    meter: TestMeter, tmp_path: Path, line: tuple[int, str]
) -> None:
    master, slave_path = line
    server, thread = serve(meter, FdPort(master))

    async def session() -> None:
        client = await AsyncDlmsClient.serial(
            slave_path,
            credentials(Authentication.LLS, tmp_path),
            mode_e=True,
            handover_delay_s=0.05,
            timeout_s=20,
        )
        async with client:
            await client.associate()
            assert (await client.read_register(ENERGY)).raw == ENERGY_RAW

    try:
        asyncio.run(session())
    finally:
        stop(server, thread)
