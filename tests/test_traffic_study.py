"""The traffic study (issue 4 item 5): model arithmetic by hand, simulation against the model,
and tools/traffic_study.py as a command.

The hand figures below follow the byte layouts of brief §5.4 (general-glo-ciphering) and
specs/shared-payload.md §4.1, §4.2, §6.1 (C1, C2, acknowledgement), not the code under test.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosemcast.sharedpayload.traffic import (
    StudyParams,
    aes_blocks_for_gcm,
    itron_reference,
    measure_message_sizes,
    model,
    predict,
    simulate,
)

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "traffic_study.py"
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def _reading_plaintext(values: int) -> int:
    # DATA-NOTIFICATION: 0F, long-invoke-id (4), 0C + date-time (12), 02 n, n x (06 + u32).
    return 1 + 4 + 1 + 12 + 2 + 5 * values


@pytest.mark.parametrize("values", [0, 1, 4, 10])
def test_message_sizes_follow_the_byte_layouts(values: int) -> None:
    p = _reading_plaintext(values)
    sizes = measure_message_sizes(values)
    assert sizes.reading_plaintext == p
    # DB, 08 ST, len, SC, IC(4), ciphertext, tag(12)
    assert sizes.classic_apdu == 1 + 9 + 1 + 1 + 4 + p + 12
    # DD, 08 kp_id, 08 ST, 00 00 00, 00 (no key-info), len, SC, IC(4), ciphertext, tag(12)
    assert sizes.c1_apdu == 1 + 9 + 9 + 3 + 1 + 1 + 1 + 4 + p + 12
    # C2 plaintext: 0F 00000000 00 02 05 09 08 <8> 06 <4> 06 <4> 06 <4> 11 <1> (35 bytes)
    assert sizes.c2_plaintext == 35
    # DD, 3 x (08 + 8), 00 00, 01 01 00 18 + 24-byte wrapped Kp, len, SC, IC, 35, tag
    assert sizes.c2_apdu == 1 + 27 + 2 + 4 + 24 + 1 + 1 + 4 + 35 + 12
    # DD, 3 x (08 + 8), 00 00 00, len, 10, IC, 32-byte ACTION body, tag
    assert sizes.ack_apdu == 1 + 27 + 3 + 1 + 1 + 4 + 32 + 12
    assert sizes.frame_overhead == 8
    assert measure_message_sizes(values, 4).frame_overhead == 8 + 8 + 20
    assert measure_message_sizes(values, 6).frame_overhead == 8 + 8 + 40


def test_aes_block_count() -> None:
    assert [aes_blocks_for_gcm(n) for n in (0, 1, 16, 17, 40)] == [2, 3, 3, 4, 5]


def test_model_small_case_by_hand() -> None:
    # 2 meters, 3 head-ends, 4 readings a day (every 6 h), Kp every 12 h: 2 readings per
    # key, 2 draws per meter and day.
    result = model(StudyParams(2, 3, 4, 12))
    assert result.readings_per_key == 2
    assert result.draws_per_meter_per_day == 2
    classic, shared = result.classic, result.shared
    assert classic.upstream_messages == 2 * 4 * 3
    assert classic.upstream_bytes == 24 * (68 + 8)
    assert classic.downstream_messages == 0
    assert classic.aes_blocks == 24 * 5  # ceil(40/16) + 2 per reading and head-end
    assert shared.upstream_messages == 2 * (4 + 2 * 3)
    assert shared.upstream_bytes == 2 * (4 * (81 + 8) + 6 * (111 + 8))
    assert shared.downstream_messages == 2 * 6
    assert shared.downstream_bytes == 12 * (81 + 8)
    assert shared.gcm_calls == 2 * (4 + 6 + 6)
    # per meter: 4 C1 x 5 + 6 C2 x (5 + 12 wrap) + 6 ack checks x 2
    assert shared.aes_blocks == 2 * (20 + 102 + 12)
    assert shared.key_wraps == shared.kdf_calls == 12
    per_s = shared.per_second()
    assert per_s["upstream_messages"] == pytest.approx(20 / 86_400)


def test_model_acknowledged_payloads_and_ip() -> None:
    result = model(StudyParams(1, 2, 4, 24, ack_payloads=True, ip_version=6))
    assert result.draws_per_meter_per_day == 1
    # 2 C2 acks + 4 readings x 2 head-ends
    assert result.shared.downstream_messages == 10
    assert result.shared.upstream_bytes == 4 * (81 + 56) + 2 * (111 + 56)


@pytest.mark.parametrize(
    ("readings", "hours", "per_key"),
    [(96, 24, 96), (96, 6, 24), (96, 1.1, 5), (96, 0.1, 1), (24, 48, 48), (1440, 0.1, 6)],
)
def test_readings_per_key(readings: int, hours: float, per_key: int) -> None:
    assert StudyParams(1, 1, readings, hours).readings_per_key == per_key


def test_itron_reference() -> None:
    ref = itron_reference(96, 96)
    assert ref.messages_per_meter_per_day == pytest.approx(24_000 * 86_400 / 10_000_000)
    assert ref.implied_head_ends == pytest.approx(2.16)
    assert ref.implied_readings_per_day[3] == pytest.approx(69.12)
    assert ref.shared_upstream_per_s == pytest.approx(10_000_000 * (96 + 2.16) / 86_400)
    assert ref.shared_downstream_per_s == pytest.approx(10_000_000 * 2.16 / 86_400)


@settings(max_examples=50, deadline=None)
@given(
    readings=st.sampled_from([1, 4, 24, 48, 96, 144, 288]),
    hours=st.sampled_from([1, 2, 6, 12, 24]),
    head_ends=st.integers(1, 6),
    days=st.integers(1, 4),
)
def test_finite_prediction_agrees_with_steady_state(
    readings: int, hours: int, head_ends: int, days: int
) -> None:
    params = StudyParams(7, head_ends, readings, hours)
    per_key = params.readings_per_key
    total = readings * days
    classic, shared = predict(params, days)
    steady = model(params)
    assert classic.upstream_messages == steady.classic.upstream_messages * days
    if total % per_key == 0:
        assert shared.upstream_messages == pytest.approx(steady.shared.upstream_messages * days)
    else:
        assert shared.upstream_messages > steady.shared.upstream_messages * days


def test_simulation_counts_equal_the_model() -> None:
    sim = simulate(StudyParams(1, 3, 96, 24), meters=20)
    assert sim.classic.upstream_messages == 20 * 96 * 3
    assert sim.shared.upstream_messages == 20 * (96 + 3)
    assert sim.c1_opened == sim.classic_opened == 20 * 96 * 3
    assert sim.c2_retransmissions == 0
    assert sim.classic == sim.predicted_classic
    assert sim.shared == sim.predicted_shared
    assert sim.matches


@pytest.mark.parametrize(
    ("hours", "days", "ack_payloads", "ip"),
    [(6, 1, False, None), (1.1, 2, True, 6), (48, 2, False, 4)],
)
def test_simulation_other_policies(
    hours: float, days: int, ack_payloads: bool, ip: int | None
) -> None:
    params = StudyParams(1, 2, 48, hours, 2, ip, ack_payloads)
    sim = simulate(params, meters=3, days=days, seed=7)
    assert sim.matches, sim.to_json()
    readings = 48 * days
    draws = -(-readings // params.readings_per_key)
    assert sim.shared.key_wraps == 3 * 2 * draws


def test_simulation_needs_whole_second_intervals() -> None:
    with pytest.raises(ValueError, match="86400"):
        simulate(StudyParams(1, 1, 7, 24), meters=1)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_command_help() -> None:
    done = _run("--help")
    assert done.returncode == 0
    for option in ("--meters", "--head-ends", "--readings-per-day", "--kp-renewal-h", "--plot"):
        assert option in done.stdout


def test_command_json_parses_and_matches_the_model() -> None:
    done = _run(
        "--meters", "1000", "--head-ends", "3", "--readings-per-day", "96",
        "--kp-renewal-h", "24", "--json", "--simulate-meters", "5",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    expected = model(StudyParams(1000, 3, 96, 24)).to_json()
    assert out["model"]["per_day"] == expected["per_day"]
    assert out["model"]["per_second"]["classic"]["upstream_messages"] == pytest.approx(
        1000 * 96 * 3 / 86_400
    )
    assert out["simulation"]["matches"] is True
    assert out["simulation"]["measured"]["shared"]["upstream_messages"] == 5 * (96 + 3)


def test_command_text_report() -> None:
    done = _run("--meters", "500", "--head-ends", "2", "--simulate-meters", "3")
    assert done.returncode == 0, done.stderr
    assert "Itron reference" in done.stdout
    assert "every count matches the model" in done.stdout


def test_command_rejects_bad_parameters() -> None:
    done = _run("--head-ends", "0")
    assert done.returncode == 2
    assert "head_ends" in done.stderr


def test_plot_without_matplotlib_says_how_to_install(tmp_path: Path) -> None:
    script = (
        "import runpy, sys; sys.modules['matplotlib'] = None; "
        f"sys.argv = ['traffic_study.py', '--plot', {str(tmp_path / 'x.png')!r}]; "
        f"runpy.run_path({str(TOOL)!r}, run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode != 0
    assert "pip install" in done.stderr
    assert not (tmp_path / "x.png").exists()


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is not installed (extra 'plot')")
def test_plot_writes_a_png(tmp_path: Path) -> None:
    target = tmp_path / "study.png"
    done = _run("--meters", "10000000", "--plot", str(target))
    assert done.returncode == 0, done.stderr
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert target.stat().st_size > 10_000
