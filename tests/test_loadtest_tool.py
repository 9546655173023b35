"""Tiny runs of the scale tools (issue 7 item 5): tools/loadtest.py and tools/keystore_fill.py.

Both run as real processes, as a user runs them (the load test starts its own sender process
and head-end service on 127.0.0.1); the tests check what they report and what they built, not
how fast: timings are the tools' business.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cosemcast.headend import HeadEndStoreError, SqliteHeadEndStore

TOOLS = Path(__file__).resolve().parent.parent / "tools"


def run_tool(name: str, *args: str, timeout_s: float = 120.0) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, str(TOOLS / name), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_loadtest_delivers_every_reading_once_and_intact() -> None:
    code, result = run_tool("loadtest.py", "--meters", "200", "--seconds", "2", "--rate", "300")
    sender = result["sender"]
    assert sender["c2_acknowledged"] == 200
    assert sender["c2_bad_acks"] == 0
    assert sender["c1_sent"] >= 300  # the rate over 2 s, give or take a slow start
    assert result["received"] == sender["c1_sent"]
    assert result["lost"] == result["duplicates"] == result["misdecoded"] == 0
    assert code == 0
    stats = result["head_end_stats"]
    assert stats["controls_accepted"] == 200
    assert stats["opened"] == sender["c1_sent"]
    assert stats["rejected"] == 0
    latency = result["latency_ms"]
    assert 0 <= latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert result["rss_mib"] > 0


def test_loadtest_reports_tampered_c1s_as_lost() -> None:
    """The sender flips a tag bit of every 7th C1: the head-end must refuse those, and the tool
    must count exactly them as lost and exit non-zero."""
    code, result = run_tool(
        "loadtest.py",
        "--meters",
        "50",
        "--seconds",
        "1",
        "--rate",
        "200",
        "--corrupt-every",
        "7",
        "--drain-s",
        "1",
    )
    sender = result["sender"]
    corrupted = sender["corrupted"]
    assert corrupted == sender["c1_sent"] // 7 > 0
    assert result["lost"] == corrupted
    assert result["received"] == sender["c1_sent"] - corrupted
    assert result["head_end_stats"]["rejected.authentication_failed"] == corrupted
    assert result["misdecoded"] == result["duplicates"] == 0
    assert code == 1


def test_keystore_fill_builds_real_stores_and_reports(tmp_path: Path) -> None:
    directory = tmp_path / "ks"
    code, result = run_tool(
        "keystore_fill.py",
        "--dir",
        str(directory),
        "--meters",
        "1000",
        "--head-ends",
        "2",
        "--batch",
        "300",
        "--lookups",
        "500",
        "--add-sample",
        "50",
    )
    assert code == 0
    assert result["fill"]["meters_written"] == 2000
    assert result["fill"]["rows_written"] == 4000
    query = result["query"]
    assert query["meters_per_head_end"] == [1000, 1000]
    assert query["wrong_or_missing"] == 0
    assert query["lookups"] == 500
    assert result["disk"]["total_bytes"] == sum(result["disk"]["files"].values()) > 0
    assert result["add_per_s"] > 0

    # The files are head-end stores the library opens and reads like its own.
    sys.path.insert(0, str(TOOLS))
    try:
        import keystore_fill
    finally:
        sys.path.remove(str(TOOLS))
    for h in range(2):
        path = directory / f"headend-{h}.sqlite"
        with SqliteHeadEndStore(path, system_title=keystore_fill.head_end_title(h)) as store:
            assert store.key_count() == 1000
            for m in (0, 499, 999):
                expected = keystore_fill.key_row(h, m)
                got = store.get(expected.meter_system_title, expected.kp_id)
                assert got is not None
                # The replay window is the store's business (cached, committed in groups).
                assert replace(got, replay=None) == replace(expected, replay=None)
                assert (
                    store.shared_key(expected.meter_system_title)
                    == (keystore_fill.material(h, m)[:16])
                )
        with pytest.raises(HeadEndStoreError, match="belongs to head-end"):
            SqliteHeadEndStore(path, system_title=keystore_fill.head_end_title(h + 5))


def test_keystore_fill_resumes_an_interrupted_fill(tmp_path: Path) -> None:
    directory = tmp_path / "ks"
    common = ["--dir", str(directory), "--head-ends", "1", "--lookups", "100", "--add-sample", "0"]
    run_tool("keystore_fill.py", "--meters", "400", *common)
    code, result = run_tool("keystore_fill.py", "--meters", "1000", *common)
    assert code == 0
    assert result["fill"]["per_head_end"][0]["resumed_from"] == 400
    assert result["fill"]["meters_written"] == 600
    conn = sqlite3.connect(directory / "headend-0.sqlite")
    try:
        assert conn.execute("SELECT count(*) FROM credentials").fetchone()[0] == 1000
        assert conn.execute("SELECT count(*) FROM payload_keys").fetchone()[0] == 1000
    finally:
        conn.close()
