"""``cosemcast demo``: centre, head-ends and meters on loopback, checked on what they decoded.

Everything is real (TCP/UDP sockets on 127.0.0.1, multicast on the loopback interface, SQLite
files); the test skips only when the kernel refuses multicast on 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cosemcast.demo import DemoOptions, run_demo
from cosemcast.errors import TransportError


def _run(tmp_path: Path, **options: object) -> object:
    try:
        return run_demo(DemoOptions(workdir=tmp_path, **options))  # type: ignore[arg-type]
    except TransportError as exc:
        pytest.skip(f"the kernel refuses multicast on 127.0.0.1: {exc}")


def test_three_head_ends_read_the_same_shared_payloads(tmp_path: Path) -> None:
    result = _run(tmp_path, meters=2, seconds=4.0, max_payloads=3)
    from cosemcast.demo.run import DemoResult

    assert isinstance(result, DemoResult)
    supplier, grid, water = result.head_ends
    first, second = result.meters
    # Assignments went through the centre: 3 for the first meter, 2 for the second.
    assert [(p.meter, p.head_end) for p in result.provisioned] == [
        (first, "supplier"),
        (first, "grid operator"),
        (first, "water company"),
        (second, "supplier"),
        (second, "grid operator"),
    ]
    assert {p.delivery.split(" (")[0] for p in result.provisioned} == {
        "relayed by the head-end",
        "delivered by the centre",
    }
    for head_end in (supplier, grid):
        assert set(head_end.assigned) == {first, second}
        assert head_end.readings.get(first, 0) >= 3
        assert head_end.stats["rejected"] == 0
    # The same reading (same kp_id and IC, same values) reached every assigned head-end.
    assert supplier.last[first] == grid.last[first] == water.last[first]
    assert water.assigned == (first,)
    assert second not in water.readings
    assert water.stats["not_assigned"] >= 3  # it receives the second meter's C1s, cannot read them
    # Counted from the end of provisioning: any Kp drawn then was drawn by the policy
    # (max_payloads=3), not by an assignment.
    shared, classic = result.shared, result.classic
    assert shared["keys_drawn"] >= 1
    # The classic side carried exactly the readings the meters sealed, once per head-end.
    assert classic["sent"] == classic["verified"]
    assert supplier.classic_verified == grid.classic_verified == shared["c1_sealed"]
    assert 1 <= water.classic_verified < shared["c1_sealed"]
    assert classic["sent"] == 2 * shared["c1_sealed"] + water.classic_verified
    assert shared["c1_sent"] + shared["c2_sent"] < classic["sent"]
    assert shared["acks_received"] >= 1 and shared["acks_rejected"] == 0


def test_demo_cli_json(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cosemcast",
            "demo",
            "--json",
            "-q",
            "--meters",
            "1",
            "--seconds",
            "2.5",
            "--keep",
            str(tmp_path / "work"),
            "--pcap",
            str(tmp_path / "demo.pcap"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode == 1 and "multicast" in done.stderr:
        pytest.skip(done.stderr)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    names = [h["name"] for h in report["head_ends"]]
    assert names == ["supplier", "grid operator", "water company"]
    meter = report["meters"][0]
    readings = [h["readings"].get(meter, 0) for h in report["head_ends"]]
    assert min(readings) >= 1
    assert report["comparison"]["upstream messages"]["classic"] > 0

    def keys_of(node: object) -> set[str]:
        if isinstance(node, dict):
            return set(node) | {k for v in node.values() for k in keys_of(v)}
        if isinstance(node, list):
            return {k for v in node for k in keys_of(v)}
        return set()

    assert not keys_of(report) & {"ks", "kt", "ki", "kp", "ek", "ak"}
    assert (tmp_path / "work" / "centre.sqlite3").exists()
    # The capture holds every party's traffic on whatever ports they got: `cosemcast pcap`
    # finds it without --port (HLS associations, the init message ACTION, C1s and C2s).
    decoded = subprocess.run(
        [sys.executable, "-m", "cosemcast", "pcap", "--json", str(tmp_path / "demo.pcap")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    frames = [json.loads(line) for line in decoded.stdout.splitlines()]
    kinds = {f["apdu_type"] for f in frames}
    assert {"aarq", "aare", "general-ciphering"} <= kinds, kinds
    assert not [f for f in frames if f["status"] == "malformed"]


def test_demo_cli_rejects_bad_options() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cosemcast", "demo", "--meters", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--meters" in done.stderr
