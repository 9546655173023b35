"""The schedule study (issue 7 item 2): the statistical model by hand, the real-message mode
message by message, the model against real messages at 2,000 meters, and
tools/schedule_study.py as a command."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.action import ActionRequestNormal
from cosemcast.scheduling import GroupCommand, Order
from cosemcast.scheduling.realsim import meter_identity, simulate_real
from cosemcast.scheduling.study import (
    StudyParams,
    compare,
    group_plan,
    measure_ack_size,
    model,
)
from cosemcast.sharedpayload.traffic import measure_message_sizes

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "schedule_study.py"
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def test_group_plan_gives_each_group_its_own_slice() -> None:
    plan = group_plan(StudyParams(10, groups=4, ack_window_s=3600))
    assert [e.group for e in plan.entries] == [1, 2, 3, 4]
    assert [e.order for e in plan.entries] == [Order.respond_within(g * 900, 900) for g in range(4)]


def test_ack_size_follows_the_byte_layout() -> None:
    # DATA-NOTIFICATION: 0F, long-invoke-id (4), 0C + date-time (12), 02 02, 09 08 + 8, 16 06
    plain = 1 + 4 + 1 + 12 + 2 + 10 + 2
    # general-glo-ciphering: DB, 08 ST, length, SC, IC (4), ciphertext, tag (12); wrapper 8
    assert measure_ack_size() == 1 + 9 + 1 + 1 + 4 + plain + 12 + 8
    assert measure_ack_size(4) == measure_ack_size() + 8 + 20


def test_model_by_hand() -> None:
    n, k = 1000, 3
    params = StudyParams(n, head_ends=k, periods=3, groups=4)
    result = model(params)
    sizes = measure_message_sizes(4)
    assert result.sizes == {"c1": sizes.c1, "c2": sizes.c2, "ack": measure_ack_size()}
    bc, rp = result.broadcast, result.reporting
    assert bc.horizon_s == 3600 and rp.horizon_s == 3 * 900
    # Unscheduled, jitter 1: everything in the nominal second.
    assert bc.unscheduled.by_kind["ack"][0] == n and bc.unscheduled.peak == n
    assert bc.unscheduled.peak_to_mean == 3600
    per_s = rp.unscheduled.messages_per_s
    assert [per_s[p * 900] for p in range(3)] == [n * (1 + k), n, n]
    assert sum(per_s) == n * (3 + k)
    assert rp.unscheduled.peak_to_mean == pytest.approx(n * (1 + k) / (n * (3 + k) / 2700))
    # Scheduled: the same totals, each group inside its own slice of the window.
    acks = bc.scheduled.by_kind["ack"]
    assert [sum(acks[g * 900 : (g + 1) * 900]) for g in range(4)] == [250] * 4
    assert rp.scheduled.totals == rp.unscheduled.totals == {"c1": 3 * n, "c2": k * n, "ack": 0}
    assert rp.scheduled.total_bytes == n * (3 * sizes.c1 + k * sizes.c2)
    # Each reporting period repeats the same slots; the first also carries the C2s.
    c1 = rp.scheduled.by_kind["c1"]
    assert c1[0:900] == c1[900:1800] == c1[1800:2700]
    assert rp.scheduled.by_kind["c2"][0:900] == [k * x for x in c1[0:900]]
    assert result.group_command_hex.startswith("C3010123040000800500FF0101")


def test_model_is_reproducible_and_scales_to_ten_million() -> None:
    params = StudyParams(10_000_000)
    first, again = model(params), model(params)
    assert first.broadcast.scheduled.by_kind == again.broadcast.scheduled.by_kind
    other = model(replace(params, seed=1))
    assert other.broadcast.scheduled.by_kind != first.broadcast.scheduled.by_kind
    for scenario in (first.broadcast, first.reporting):
        band = scenario.band_scheduled
        assert band is not None and band[0] <= scenario.scheduled.peak <= band[-1]
        assert scenario.scheduled.total == scenario.unscheduled.total
        assert scenario.unscheduled.peak / scenario.scheduled.peak > 100


def test_real_messages_go_out_exactly_at_their_slots() -> None:
    """Every acknowledgement and C1 is counted at group delay + the meter's own offset,
    recomputed here from each meter's identity."""
    params = StudyParams(300, head_ends=2, periods=2, period_s=600, report_window_s=540, groups=3)
    result = simulate_real(params, verify=True)
    w = params.group_window_s
    expected_acks = Counter((i % 3) * w + meter_identity(i).offset(w) for i in range(params.meters))
    acks = result.broadcast.scheduled.by_kind["ack"]
    assert {s: c for s, c in enumerate(acks) if c} == dict(expected_acks)
    slots = Counter(meter_identity(i).offset(540) for i in range(params.meters))
    c1 = result.reporting.scheduled.by_kind["c1"]
    c2 = result.reporting.scheduled.by_kind["c2"]
    for p in range(2):
        assert {s - p * 600: c for s, c in enumerate(c1) if c and p * 600 <= s < (p + 1) * 600} == (
            dict(slots)
        )
    assert {s: c for s, c in enumerate(c2) if c} == {s: 2 * c for s, c in slots.items()}
    assert result.reporting.unscheduled.by_kind["c1"][0] == 300
    assert result.extra["verified"] == {
        "c1_opened": 2 * 2 * 2 * 300,
        "c2_accepted": 2 * 2 * 300,
        "acks_deciphered": 2 * 300,
    }
    broadcast = decode_apdu(bytes.fromhex(result.group_command_hex))
    assert isinstance(broadcast, ActionRequestNormal)
    plan = GroupCommand.from_data(broadcast.method_invocation_parameters)  # type: ignore[arg-type]
    assert plan == group_plan(params)


def test_model_against_real_messages_at_2000_meters() -> None:
    params = StudyParams(2000, groups=4)
    real = simulate_real(params)
    comparison = compare(real, model(params, real.sizes))
    assert comparison.ok, comparison.checks
    assert len(comparison.checks) == 9
    # The checks can fail: the same real run against the model of a half-width window.
    wrong = model(replace(params, report_window_s=450, ack_window_s=1800), real.sizes)
    failed = [name for name, passed, _ in compare(real, wrong).checks if not passed]
    assert "scheduled per-second occupancy (chi-square)" in failed


def _tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_tool_help() -> None:
    done = _tool("--help")
    assert done.returncode == 0
    for option in ("--meters", "--mode", "--groups", "--png", "--json", "--verify"):
        assert option in done.stdout


def test_tool_model_json() -> None:
    done = _tool("--meters", "50000", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["mode"] == "model" and out["params"]["meters"] == 50_000
    broadcast = out["broadcast"]
    assert broadcast["unscheduled"]["peak_per_s"] == 50_000
    assert broadcast["unscheduled"]["peak_to_mean"] == 3600
    low, _, high = broadcast["scheduled"]["model_peak_band"]
    assert low <= broadcast["scheduled"]["peak_per_s"] <= high
    assert out["reporting"]["steady"]["scheduled"]["peak_to_mean"] < 2


def test_tool_real_mode_and_limits(tmp_path: Path) -> None:
    png = tmp_path / "study.png"
    done = _tool("--mode", "real", "--meters", "400", "--png", str(png))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every check passed" in done.stdout
    if HAS_MATPLOTLIB:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"plot written to {png}" in done.stdout
    else:
        assert "matplotlib is not installed" in done.stdout
    refused = _tool("--mode", "real", "--meters", "100001")
    assert refused.returncode == 2 and "at most 100,000" in refused.stderr
    assert _tool("--groups", "0").returncode == 2
