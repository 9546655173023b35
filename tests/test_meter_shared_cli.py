"""``cosemcast headend pull`` as a process against a software meter on real time and TCP.

The meter has one head-end without a push destination (pull only); the test seals two C1s
ahead through the Shared payload object's capture and runs the command, which must write both
readings, acknowledge the C2 over the same connection, and refuse the same C1s on a second run
(replays). ``cosemcast meter config --shared`` prints an example that ``--check`` accepts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from cosemcast.meter import SoftwareMeter, default_config_text
from cosemcast.meter.config import parse_config
from test_meter_support import METER_TITLE

HEAD_END = bytes.fromhex("4D4D4D0000000001")
KS = bytes.fromhex("303132333435363738393A3B3C3D3E3F")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cosemcast", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_pull_reads_the_buffer_and_acknowledges(tmp_path: Path) -> None:
    text = default_config_text() + (
        "\n[shared_payload]\n"
        'c1_destination = "127.0.0.1:9"\n'
        "push_interval_s = 0\n"
        "[[shared_payload.head_ends]]\n"
        f'system_title = "{HEAD_END.hex()}"\n'
        f'ks = "{KS.hex()}"\n'
    )
    keys = tmp_path / "keys.toml"
    keys.write_text(
        f'system_title = "{HEAD_END.hex()}"\n'
        f'[meters.{METER_TITLE.hex().upper()}]\nks = "{KS.hex()}"\n'
    )
    out = tmp_path / "readings.jsonl"
    with SoftwareMeter(parse_config(text), tmp_path / "m.sqlite3") as meter:
        server = meter.serve_tcp("127.0.0.1", 0)
        unit = meter.shared
        assert unit is not None
        meter.apply(unit.shared_payload.capture)
        meter.apply(unit.shared_payload.capture)
        command = (
            "headend", "pull", "--meter", f"tcp://127.0.0.1:{server.address[1]}",
            "--keys", str(keys), "--db", str(tmp_path / "h.sqlite3"), "--out", str(out), "--json",
        )  # fmt: skip
        first = run(*command)
        assert first.returncode == 0, first.stderr
        summary = json.loads(first.stderr.strip().splitlines()[-1])
        assert summary["controls"] == 1 and summary["opened"] == 2 and summary["acks_sent"] == 1
        deadline = time.monotonic() + 10
        while unit.stats()["acks_received"] < 1:
            assert time.monotonic() < deadline, "the acknowledgement did not arrive"
            time.sleep(0.02)
        assert all(c.acknowledged for c in unit.sealer.controls)
        again = run(*command)
        assert again.returncode == 0, again.stderr
        repeat = json.loads(again.stderr.strip().splitlines()[-1])
        assert repeat["opened"] == 0 and repeat["rejected"] == 2
    readings = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["meter"] for r in readings] == [METER_TITLE.hex().upper()] * 2
    assert readings[0]["invocation_counter"] < readings[1]["invocation_counter"]


def test_pull_reports_an_unreachable_meter(tmp_path: Path) -> None:
    keys = tmp_path / "keys.toml"
    keys.write_text(f'system_title = "{HEAD_END.hex()}"\n')
    result = run(
        "headend", "pull", "--meter", "tcp://127.0.0.1:9", "--keys", str(keys),
        "--db", str(tmp_path / "h.sqlite3"), "--timeout", "2",
    )  # fmt: skip
    assert result.returncode == 5, result.stderr


def test_the_shared_example_is_printed_and_checks(tmp_path: Path) -> None:
    printed = run("meter", "config", "--shared")
    assert printed.returncode == 0 and "[shared_payload]" in printed.stdout
    path = tmp_path / "shared.toml"
    path.write_text(printed.stdout)
    checked = run("meter", "config", "--check", str(path))
    assert checked.returncode == 0, checked.stderr
    assert "shared payload on logical device 1" in checked.stdout
