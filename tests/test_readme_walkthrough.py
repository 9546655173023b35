"""The README's supervision walkthrough, run as a person would: separate processes, real ports.

A supervision centre, one meter and two head-ends (supplier, grid operator) as `cosemcast`
processes on 127.0.0.1; the owner asks the meter for an enrollment request per head-end, each
head-end forwards it to the centre (`supervision assign --headend-db --relay`), and both
head-ends then write the same shared payloads (same kp_id and invocation counter, same values).
Only the port numbers differ from the README (free ones are picked so tests can run anywhere).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

MANAGEMENT = """\
[client]
client_sap = 1
auth = "hls-gmac"
system_title = "4142434445464748"

[[keys]]
system_title = "4142434445464748"
ek = "000102030405060708090A0B0C0D0E0F"
ak = "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"
"""
SUPPLIER = "5355505000000001"
GRID = "4752494400000001"


def _free(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(cwd: Path, *args: str, timeout: float = 60) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "cosemcast", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"cosemcast {' '.join(args)}: {done.stderr}"
    return done.stdout


@pytest.fixture
def background(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.send_signal(signal.SIGTERM)
    for process in started:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _start(cwd: Path, log: str, started: list[subprocess.Popen[bytes]], *args: str) -> None:
    out = open(cwd / log, "wb")  # noqa: SIM115 - closed with the process
    started.append(
        subprocess.Popen(
            [sys.executable, "-m", "cosemcast", *args], cwd=cwd, stdout=out, stderr=out
        )
    )


def _wait_for(path: Path, lines: int, timeout_s: float) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
            if len(rows) >= lines:
                return rows
        time.sleep(0.25)
    raise AssertionError(f"{path.name}: fewer than {lines} readings after {timeout_s} s")


def test_centre_meter_and_two_head_ends(
    tmp_path: Path, background: list[subprocess.Popen[bytes]]
) -> None:
    meter_port, centre_port = _free(socket.SOCK_STREAM), _free(socket.SOCK_STREAM)
    supplier_port, grid_port, group_port = (_free(socket.SOCK_DGRAM) for _ in range(3))
    group = f"239.255.{os.getpid() % 250 + 1}.7"
    config = _cli(tmp_path, "meter", "config", "--supervised")
    config = (
        config.replace("127.0.0.1:4061", f"127.0.0.1:{supplier_port}")
        .replace("127.0.0.1:4062", f"127.0.0.1:{grid_port}")
        .replace("239.192.0.1:4059", f"{group}:{group_port}")
        .replace("push_interval_s = 20 ", "push_interval_s = 2  ")
    )
    (tmp_path / "meter.toml").write_text(config)
    (tmp_path / "management.toml").write_text(MANAGEMENT)
    (tmp_path / "meters.csv").write_text(
        "system_title,kt\n4D4D4D0000BC614E,000102030405060708090A0B0C0D0E0F\n"
    )
    _cli(
        tmp_path,
        "supervision",
        "init",
        "--centre-id",
        "5355504500000001",
        "--generate-master-key",
        "--master-key-file",
        "master.key",
        "--public-key-out",
        "centre.pem",
    )
    _cli(tmp_path, "supervision", "import", "--master-key-file", "master.key", "meters.csv")
    for title, name in ((SUPPLIER, "supplier"), (GRID, "grid")):
        _cli(
            tmp_path,
            "supervision",
            "head-end",
            "add",
            "--master-key-file",
            "master.key",
            title,
            "--name",
            name,
            "--credentials-out",
            f"{name}-channel.toml",
            "--centre",
            f"127.0.0.1:{centre_port}",
        )
        (tmp_path / f"{name}-keys.toml").write_text(f'system_title = "{title}"\n')
    _start(
        tmp_path,
        "centre.log",
        background,
        "supervision",
        "serve",
        "--master-key-file",
        "master.key",
        "--listen",
        f"127.0.0.1:{centre_port}",
    )
    _start(
        tmp_path,
        "meter.log",
        background,
        "meter",
        "serve",
        "--config",
        "meter.toml",
        "--state",
        "meter.sqlite3",
        "--tcp",
        f"127.0.0.1:{meter_port}",
        "--udp",
        f"127.0.0.1:{meter_port}",
    )
    for name, port in (("supplier", supplier_port), ("grid", grid_port)):
        _start(
            tmp_path,
            f"{name}.log",
            background,
            "headend",
            "listen",
            "--udp",
            f"127.0.0.1:{port}",
            "--group",
            f"{group}:{group_port}",
            "--interface",
            "127.0.0.1",
            "--keys",
            f"{name}-keys.toml",
            "--db",
            f"{name}.sqlite3",
            "--out",
            f"{name}.jsonl",
        )
    time.sleep(2.0)  # the listeners bind
    for process in background:
        assert process.poll() is None, (tmp_path / "meter.log").read_text()
    for title, name in ((SUPPLIER, "supplier"), (GRID, "grid")):
        answer = _cli(
            tmp_path,
            "read",
            "--tcp",
            f"127.0.0.1:{meter_port}",
            "--keys",
            "management.toml",
            "--counters",
            "owner.sqlite3",
            "--action",
            f"0-0:128.3.0.255:2=axdr:02020908{title}1601",
            "--json",
        )
        enrollment = json.loads(answer)["return"]["value"]
        assigned = json.loads(
            _cli(
                tmp_path,
                "supervision",
                "assign",
                "--credentials",
                f"{name}-channel.toml",
                "--headend-db",
                f"{name}.sqlite3",
                "--relay",
                f"127.0.0.1:{meter_port}",
                enrollment,
            )
        )
        assert assigned["meter_id"] == "4D4D4D0000BC614E"
        assert "ks" not in assigned
    supplier = _wait_for(tmp_path / "supplier.jsonl", 2, 60)
    grid = _wait_for(tmp_path / "grid.jsonl", 2, 60)
    common = {(r["kp_id"], r["invocation_counter"]) for r in supplier} & {
        (r["kp_id"], r["invocation_counter"]) for r in grid
    }
    assert common, "the two head-ends read no C1 in common"
    key = sorted(common)[-1]
    same = [r["values"] for r in supplier + grid if (r["kp_id"], r["invocation_counter"]) == key]
    assert len(same) == 2 and same[0] == same[1]
    listed = _cli(
        tmp_path, "supervision", "list", "--master-key-file", "master.key", "assignments", "--json"
    )
    assert listed.count("4D4D4D0000BC614E") >= 2
