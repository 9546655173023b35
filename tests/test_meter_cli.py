"""``cosemcast meter``: the config command, the help with the public test keys, and
``meter serve`` run as a real subprocess, read over TCP and stopped with SIGINT (twice, on
the same state file; once with --json-log and accelerated time)."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cosemcast.association import Associate, AssociationEstablished, Release
from cosemcast.axdr.types import OctetString
from cosemcast.cli.main import main
from cosemcast.meter import default_config_text
from test_meter_support import (
    AK,
    CLOCK,
    EK,
    ENERGY,
    KEK,
    ClientStores,
    management_settings,
    public_settings,
    tcp_client,
)

SRC = Path(__file__).resolve().parents[1] / "src"


def test_meter_config_prints_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["meter", "config"]) == 0
    assert capsys.readouterr().out == default_config_text()


def test_meter_config_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.toml"
    good.write_text(default_config_text())
    assert main(["meter", "config", "--check", str(good)]) == 0
    assert f"{good}: ok" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text(default_config_text().replace("sap = 17", "sap = 200"))
    assert main(["meter", "config", "--check", str(bad)]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"error: {bad}: [logical_devices[0].clients[1]] sap: 200 is outside")


def test_serve_help_prints_the_public_test_keys(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["meter", "serve", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "PUBLIC TEST KEYS" in out and "password 12345678" in out
    for key in (EK, AK, KEK):
        assert key.hex().upper() in out
    for option in ("--tcp", "--udp", "--serial", "--mode-e", "--config", "--state", "--speed"):
        assert option in out


def test_mode_e_needs_a_serial_port(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["meter", "serve", "--mode-e"]) == 2
    assert "--mode-e needs --serial" in capsys.readouterr().err


class Served:
    """``cosemcast meter serve`` in a subprocess; stderr lines are collected by a thread."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(SRC), PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cosemcast", "meter", "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert self.process.stderr is not None
        stream = self.process.stderr
        threading.Thread(target=lambda: [self.lines.put(x) for x in stream], daemon=True).start()

    def wait_for(self, pattern: str, timeout_s: float = 30.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
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

    def address(self) -> tuple[str, int]:
        found = self.wait_for(r"serving TCP on ([\d.]+):(\d+)")
        return found.group(1), int(found.group(2))

    def interrupt(self) -> str:
        self.process.send_signal(signal.SIGINT)
        hung = False
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            hung = True
        finally:
            if self.process.poll() is None:
                self.process.kill()
        assert self.process.stderr is not None
        time.sleep(0.1)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        log = "".join(self.seen)
        assert not hung, f"the meter did not stop within 30 s of SIGINT; its log:\n{log[-4000:]}"
        return log


def test_serve_runs_answers_and_stops_on_sigint(tmp_path: Path) -> None:
    state = tmp_path / "meter.sqlite3"
    served = Served("--tcp", "127.0.0.1:0", "--state", str(state))
    try:
        address = served.address()
        served.wait_for("meter ready")
        public = tcp_client(address, public_settings())
        assert isinstance(public.request(Associate()), AssociationEstablished)
        first = public.get(ENERGY)
        assert isinstance(first, int) and first >= 1520400
        public.request(Release())
        public.close()
        stores = ClientStores(tmp_path / "client")
        management = tcp_client(address, management_settings(), stores)
        assert isinstance(management.request(Associate()), AssociationEstablished)
        assert isinstance(management.get(CLOCK), OctetString)
        management.close()
        stores.close()
    finally:
        log = served.interrupt()
    assert served.process.returncode == 0, log
    assert "stopped" in log and "Traceback" not in log
    for key in (EK, AK):
        assert key.hex() not in log.lower()

    again = Served("--tcp", "127.0.0.1:0", "--state", str(state), "--json-log", "--speed", "3600")
    try:
        address = again.address()
        client = tcp_client(address, public_settings())
        assert isinstance(client.request(Associate()), AssociationEstablished)
        assert client.get(ENERGY) >= first  # type: ignore[operator]
        before = OctetString(client.get(CLOCK)).as_datetime().to_datetime()
        time.sleep(1.0)
        after = OctetString(client.get(CLOCK)).as_datetime().to_datetime()
        assert (after - before).total_seconds() > 1200  # an hour of meter time per second
        client.close()
    finally:
        log = again.interrupt()
    assert again.process.returncode == 0, log
    records = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any("stopped" in r["message"] for r in records)
