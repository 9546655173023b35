"""Shared pieces of the upstream-schedule meter tests (tests/test_meter_schedule*.py).

Meters are built from the shipped default configuration with their own system title, the
active firmware identifier as a Data object ``1-0:0.2.0.255`` (so the spreading input is read
from the object model), the management client's global broadcast key, a ``[shared_payload]``
table whose C1s and C2s go to a test-owned UDP socket (the class 40 push too), and a
``[schedule]`` table. The inputs ``FW-1.4.2`` / ``TOU-2`` and the titles ``…614E`` / ``…614F``
are those of specs/scheduling.md §9 (offsets 496 and 120 in 900 s).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cosemcast.errors import ResponseTimeout
from cosemcast.link.wrapper import WrapperFrame
from cosemcast.meter import SoftwareMeter, default_config_text
from cosemcast.meter.config import parse_config
from cosemcast.meter.schedule import UpstreamScheduleUnit
from cosemcast.transport.udp import UdpPushReceiver
from test_meter_support import START, FakeClock

WAIT_S = 10.0
SRC = Path(__file__).resolve().parents[1] / "src"
TITLE_A = bytes.fromhex("4D4D4D0000BC614E")
TITLE_B = bytes.fromhex("4D4D4D0000BC614F")
FIRMWARE = "FW-1.4.2"
TARIFF = "TOU-2"
HEAD_END = bytes.fromhex("4D4D4D0000000001")
BROADCAST_KEY = bytes.fromhex("B0B1B2B3B4B5B6B7B8B9BABBBCBDBEBF")
NOMINAL = START + dt.timedelta(minutes=15)  # 12:15 local: the first push instant


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Sink:
    """A UDP socket that records every wrapper frame pushed to it."""

    def __init__(self) -> None:
        self.receiver = UdpPushReceiver(0, host="127.0.0.1")
        self.destination = f"127.0.0.1:{self.receiver.address[1]}"

    def take(self, count: int) -> list[WrapperFrame]:
        """The next ``count`` frames, each within the bounded wait."""
        return [self.receiver.receive(WAIT_S)[1] for _ in range(count)]

    def quiet(self, timeout_s: float = 0.3) -> bool:
        """True when nothing arrives within ``timeout_s`` (a check, not a synchronisation)."""
        try:
            self.receiver.receive(timeout_s)
        except ResponseTimeout:
            return True
        return False

    def close(self) -> None:
        self.receiver.close()


def ks(head_end: bytes, meter: bytes) -> bytes:
    return hashlib.sha256(b"Ks" + head_end + meter).digest()[:16]


def meter_text(
    title: bytes,
    sink: Sink,
    *,
    groups: tuple[int, ...] = (),
    window_s: int = 900,
    group: tuple[str, int] | None = None,
    extra: str = "",
) -> str:
    text = default_config_text()
    text = text.replace('system_title = "4D4D4D0000BC614E"', f'system_title = "{title.hex()}"')
    text = text.replace('destination = "127.0.0.1:4060"', f'destination = "{sink.destination}"')
    kek = 'kek = "000102030405060708090A0B0C0D0E0F"'
    assert kek in text
    text = text.replace(kek, f'{kek}\n    broadcast_key = "{BROADCAST_KEY.hex()}"')
    lines = [
        "  [[logical_devices.objects]]",
        'class = "data"',
        'obis = "1-0:0.2.0.255"',
        'type = "octet-string"',
        f'value = "{FIRMWARE}"',
        "[shared_payload]",
        f'c1_destination = "{sink.destination}"',
        "push_interval_s = 900",
        "retry_interval_s = 30",
        'capture_objects = ["1/0-0:96.1.0.255/2", "3/1-0:1.8.0.255/2"]',
        "[[shared_payload.head_ends]]",
        f'system_title = "{HEAD_END.hex()}"',
        f'destination = "{sink.destination}"',
        f'ks = "{ks(HEAD_END, title).hex()}"',
        "[schedule]",
        f"window_s = {window_s}",
        f'tariff = "{TARIFF}"',
        f"groups = {list(groups)}",
        "broadcast_client_sap = 1",
    ]
    if group is not None:
        lines += [f'group = "{group[0]}:{group[1]}"', 'interface = "127.0.0.1"']
    return text + "\n" + "\n".join(lines) + "\n" + extra


def open_meter(text: str, state: Path, clock: FakeClock) -> SoftwareMeter:
    meter = SoftwareMeter(parse_config(text), state, clock=clock)
    meter.serve_udp("127.0.0.1", 0)
    meter.serve_tcp("127.0.0.1", 0)
    return meter


def unit(meter: SoftwareMeter) -> UpstreamScheduleUnit:
    assert meter.schedule is not None
    return meter.schedule


def at(meter: SoftwareMeter, clock: FakeClock, moment: dt.datetime) -> None:
    clock.now = moment
    meter.advance_to()


class Served:
    """``cosemcast meter serve`` in a subprocess, its stderr lines collected by a thread."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(SRC), PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cosemcast", "meter", "serve", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        stream = self.process.stderr
        assert stream is not None

        def pump() -> None:
            for line in stream:
                self.lines.put(line)

        threading.Thread(target=pump, daemon=True).start()

    def wait_for(self, pattern: str) -> re.Match[str]:
        deadline = time.monotonic() + 3 * WAIT_S
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {pattern!r} in {self.seen}"
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found

    def stop(self) -> str:
        """SIGINT, a bounded wait, and the whole log."""
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(15)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(5)
        while True:
            try:
                self.seen.append(self.lines.get(timeout=0.5))
            except queue.Empty:
                return "".join(self.seen)
