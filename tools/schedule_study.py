#!/usr/bin/env python3
"""cosemcast schedule study: upstream messages per second after a broadcast and around the
quarter-hour reporting instants, with and without upstream scheduling (EP 2671052 [0032],
[0044]-[0046]; specs/scheduling.md §8).

Scenarios. *broadcast*: at t = 0 every meter must acknowledge a broadcast (a firmware
activation); unscheduled, all answer on receipt (within --jitter-s seconds); scheduled, the
broadcast carries a group command, one respond-within order per location group, and each
meter answers at its group's delay plus its own deterministic offset. *reporting*: every meter
pushes a C1 at each quarter hour (and its k C2s at the first, a fleet-wide Kp renewal);
scheduled, each at its offset in --report-window-s. Peak-to-mean = busiest second / (total
messages / horizon).

Modes. ``--mode model`` (default) is the statistical model: offsets as uniform choices,
per-second counts sampled as multinomials without numpy, so 10,000,000 meters take a second;
it also prints the model's 0.05 %/50 %/99.95 % band of the peak. ``--mode real`` builds every
message for real (C1 and C2 with PayloadSealer and random keys, the acknowledgement under the
head-end's global key, the group command decoded and applied by each meter's upstream-schedule
object) and counts it in its second, up to 100,000 meters; it then runs the model for the same
parameters and checks: equal totals, the real peak inside the model's band, and a chi-square
test of the per-second occupancy (exit status 1 if a check fails). ``--verify`` has the
head-ends open every message too. ``--png FILE`` draws both scenarios (needs matplotlib:
``pip install 'cosemcast[plot]'``; without it the PNG is skipped with a note).

Usage: ``python tools/schedule_study.py --meters 10000000 [--mode real --meters 20000]
[--groups 4] [--json] [--png study.png]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from cosemcast.scheduling.study import (
    BAND_QUANTILES,
    Comparison,
    StudyParams,
    StudyResult,
    compare,
    model,
)

MAX_REAL_METERS = 100_000


def _plot(result: StudyResult, path: str) -> str | None:
    """Write the PNG; the reason when it cannot (matplotlib missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install 'cosemcast[plot]'): no PNG written"
    p = result.params
    fig, axes = plt.subplots(2, 1, figsize=(12, 8.5))
    for ax, scenario in zip(axes, (result.broadcast, result.reporting), strict=True):
        for scheme, style in (("unscheduled", "tab:red"), ("scheduled", "tab:blue")):
            series = scenario.series(scheme)
            per_s = series.messages_per_s
            xs = [i for i, v in enumerate(per_s) if v] or [0]
            ys = [per_s[i] for i in xs] if any(per_s) else [0]
            label = (
                f"{scheme}: peak {series.peak:,}/s, mean {series.mean:,.1f}/s, "
                f"peak/mean {series.peak_to_mean:,.1f}"
            )
            if scheme == "unscheduled":
                ax.vlines(xs, 0.8, ys, colors=style, linewidth=2.5, label=label)
            else:
                ax.plot(range(len(per_s)), per_s, color=style, linewidth=0.6, label=label)
        ax.axhline(
            scenario.scheduled.mean,
            color="grey",
            linestyle="--",
            linewidth=0.8,
            label="mean over the horizon (both schemes)",
        )
        ax.set_yscale("log")
        top = max(scenario.unscheduled.peak, scenario.scheduled.peak, 1)
        ax.set_ylim(0.8, top * 300)  # room for the legend above the bars
        ax.set_xlim(-10, scenario.horizon_s + 10)
        ax.set_xlabel(
            "seconds after the broadcast"
            if scenario.name == "broadcast"
            else "seconds after the first quarter hour"
        )
        ax.set_ylabel("upstream messages / s")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="upper right")
        if scenario.name == "broadcast":
            ax.set_title(
                f"after a broadcast: {p.meters:,} acknowledgements; scheduled by a group command, "
                f"{p.groups} group(s), {p.ack_window_s:,} s window",
                fontsize=10,
            )
        else:
            ax.set_title(
                f"quarter-hour reporting, {p.periods} instants: C1 every {p.period_s} s "
                f"(+ {p.head_ends} C2s at the first); scheduled over {p.report_window_s} s",
                fontsize=10,
            )
    kind = "statistical model" if result.mode == "model" else "real messages"
    fig.suptitle(f"{p.meters:,} meters, {kind} (seed {p.seed})", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def _report(result: StudyResult, seconds: float) -> list[str]:
    p, s = result.params, result.sizes
    ip = f"UDP/IPv{p.ip_version} + wrapper" if p.ip_version else "wrapper"
    mode = "statistical model" if result.mode == "model" else "real messages"
    lines = [
        f"{p.meters:,} meters, k = {p.head_ends} head-ends; reporting every {p.period_s} s "
        f"({p.periods} instants), report window {p.report_window_s} s; broadcast "
        f"acknowledgements within {p.ack_window_s} s in {p.groups} group(s); unscheduled "
        f"jitter {p.jitter_s} s; {mode}, seed {p.seed} ({seconds:.1f} s)",
        f"message sizes, real messages + {ip}: C1 {s['c1']} B, C2 {s['c2']} B, ack {s['ack']} B",
        f"group command in the broadcast: {result.group_command_hex}",
        "",
        f"{'scenario':11}{'scheme':13}{'messages':>12}{'horizon s':>11}{'mean/s':>12}"
        f"{'peak/s':>12}{'peak/mean':>11}{'peak kB/s':>13}  model peak band "
        f"({', '.join(f'{q:.2%}' for q in BAND_QUANTILES)})",
    ]
    for scenario in (result.broadcast, result.reporting):
        for scheme in ("unscheduled", "scheduled"):
            series = scenario.series(scheme)
            band = scenario.band_scheduled if scheme == "scheduled" else scenario.band_unscheduled
            band_text = ", ".join(f"{b:,}" for b in band) if band else "-"
            lines.append(
                f"{scenario.name:11}{scheme:13}{series.total:>12,}{scenario.horizon_s:>11,}"
                f"{series.mean:>12,.1f}{series.peak:>12,}{series.peak_to_mean:>11,.2f}"
                f"{series.peak_bytes / 1e3:>13,.1f}  {band_text}"
            )
    steady = result.reporting.steady()
    if steady is not None:
        un_s, sc_s = steady["unscheduled"], steady["scheduled"]
        lines.append(
            f"reporting from {result.reporting.steady_from_s} s on (C1 only, no C2 burst): "
            f"unscheduled peak {un_s['peak_per_s']:,.0f}/s, peak/mean "
            f"{un_s['peak_to_mean']:,.2f}; scheduled peak {sc_s['peak_per_s']:,.0f}/s, "
            f"peak/mean {sc_s['peak_to_mean']:,.2f}"
        )
    for scenario in (result.broadcast, result.reporting):
        un, sc = scenario.unscheduled, scenario.scheduled
        if sc.peak:
            lines.append(
                f"{scenario.name}: scheduling divides the peak by {un.peak / sc.peak:,.1f} "
                f"({un.peak:,}/s -> {sc.peak:,}/s)"
            )
    return lines


def _comparison_lines(comparison: Comparison) -> list[str]:
    lines = ["", "real messages against the statistical model of the same parameters:"]
    for check, passed, detail in comparison.checks:
        lines.append(f"  [{'ok' if passed else 'FAIL'}] {check}: {detail}")
    lines.append("every check passed" if comparison.ok else "A CHECK FAILED")
    return lines


def main(argv: list[str] | None = None) -> int:
    doc = (__doc__ or "").split("\n\n")
    parser = argparse.ArgumentParser(
        description=doc[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(doc[1:4]),
    )
    parser.add_argument(
        "--meters", type=int, default=10_000_000, help="N meters (default 10,000,000)"
    )
    parser.add_argument(
        "--mode",
        choices=("model", "real"),
        default="model",
        help="statistical model, or real messages (at most 100,000 meters)",
    )
    parser.add_argument("--head-ends", type=int, default=3, help="k per meter (default 3)")
    parser.add_argument("--period-s", type=int, default=900, help="reporting period (900)")
    parser.add_argument("--periods", type=int, default=4, help="reporting instants (default 4)")
    parser.add_argument(
        "--report-window-s", type=int, default=900, help="spreading window of reports (900)"
    )
    parser.add_argument(
        "--ack-window-s",
        type=int,
        default=3600,
        help="window of the acknowledgements after a broadcast (3600)",
    )
    parser.add_argument(
        "--groups", type=int, default=4, help="location groups in the group command (4)"
    )
    parser.add_argument(
        "--jitter-s",
        type=int,
        default=1,
        help="unscheduled meters send within this many seconds of the instant (1: same second)",
    )
    parser.add_argument(
        "--register-values", type=int, default=4, help="registers per reading (default 4)"
    )
    parser.add_argument("--ip", type=int, choices=(4, 6), help="count UDP and IPv4/IPv6 headers")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--verify", action="store_true", help="real mode: the head-ends open every message"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--png", metavar="FILE", help="write a plot of both scenarios")
    args = parser.parse_args(argv)
    try:
        params = StudyParams(
            args.meters,
            args.head_ends,
            args.period_s,
            args.periods,
            args.report_window_s,
            args.ack_window_s,
            args.groups,
            args.jitter_s,
            args.register_values,
            args.ip,
            args.seed,
        )
    except ValueError as exc:
        parser.error(str(exc))
    if args.mode == "real" and args.meters > MAX_REAL_METERS:
        parser.error(f"--mode real takes at most {MAX_REAL_METERS:,} meters")
    started = time.perf_counter()
    comparison = None
    if args.mode == "real":
        from cosemcast.scheduling.realsim import simulate_real

        result = simulate_real(params, verify=args.verify)
        comparison = compare(result, model(params, result.sizes))
    else:
        result = model(params)
    elapsed = time.perf_counter() - started
    png_note = _plot(result, args.png) if args.png else None
    if args.json:
        out: dict[str, Any] = result.to_json() | {"elapsed_s": round(elapsed, 3)}
        if comparison is not None:
            out["comparison"] = {"ok": comparison.ok, "checks": comparison.to_json()}
        if args.png:
            out["png"] = None if png_note else args.png
            if png_note:
                out["png_note"] = png_note
        print(json.dumps(out, indent=2))
    else:
        lines = _report(result, elapsed)
        if comparison is not None:
            lines += _comparison_lines(comparison)
        if args.png:
            lines.append("")
            lines.append(png_note or f"plot written to {args.png}")
        print("\n".join(lines))
    return 0 if comparison is None or comparison.ok else 1


if __name__ == "__main__":
    sys.exit(main())
