#!/usr/bin/env python3
"""cosemcast traffic study: upstream messages and bytes of the shared-payload scheme against
per-head-end encryption, for N meters, k head-ends, R readings a day and a Kp renewal period.

Classic: every reading is sent k times, each a general-glo-ciphering DATA-NOTIFICATION under
one head-end's key. Shared (specs/shared-payload.md): one C1 per reading for all head-ends,
plus k C2s (and k downstream acknowledgements) each time Kp is drawn. Message sizes come from
real messages sealed with cosemcast's code and framed in the DLMS wrapper (``--ip`` adds
UDP/IP headers). The reference point is Itron's 10 million meters at about 24,000 upstream
messages a second (DESIGN.md §1), read as R·k messages per meter a day.

``--simulate-meters M`` checks the model: M real meters and k real head-ends run for
``--simulate-days`` days; every C1 is opened by every head-end, every classic message
deciphered, and the counted messages, bytes and meter AES work are compared with the model's
prediction for the same period (counts must match exactly). ``--plot study.png`` draws
messages/s and bytes/s of both schemes against k = 1..6 (needs matplotlib:
``pip install 'cosemcast[plot]'``).

Usage: ``python tools/traffic_study.py --meters N --head-ends K --readings-per-day R
--kp-renewal-h H [--json] [--plot study.png] [--simulate-meters M]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from typing import Any

from cosemcast.sharedpayload.traffic import (
    ITRON_METERS,
    ITRON_UPSTREAM_PER_S,
    SECONDS_PER_DAY,
    SimulationResult,
    StudyParams,
    StudyResult,
    model,
    simulate,
)

MAX_PLOT_HEAD_ENDS = 6
BYTES_NOTE = (
    "Bytes match exactly here because every field of the simulated reading has a fixed width. "
    "Real traffic differs when readings have variable-length data (octet-strings, arrays), "
    "when a ciphered content crosses 127 or 255 bytes (the A-XDR length grows), with agreed-key "
    "C2s (88 instead of 24 key bytes), C2 retransmissions after lost acknowledgements, "
    "IP options, link-layer framing or fragmentation."
)


def _plot(result: StudyResult, path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit(
            "--plot needs matplotlib: pip install 'cosemcast[plot]' (or 'matplotlib>=3.7')"
        ) from None
    params = result.params
    ks = list(range(1, MAX_PLOT_HEAD_ENDS + 1))
    rows = [model(replace(params, head_ends=k), result.sizes) for k in ks]
    classic_msgs = [r.classic.upstream_messages / SECONDS_PER_DAY for r in rows]
    shared_msgs = [r.shared.upstream_messages / SECONDS_PER_DAY for r in rows]
    classic_bytes = [r.classic.upstream_bytes / SECONDS_PER_DAY / 1e6 for r in rows]
    shared_bytes = [r.shared.upstream_bytes / SECONDS_PER_DAY / 1e6 for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    left.plot(ks, classic_msgs, "o-", label="classic (k ciphered pushes per reading)")
    left.plot(ks, shared_msgs, "s-", label="shared (1 C1 per reading + k C2 per renewal)")
    scale = params.meters / ITRON_METERS
    itron = result.itron
    left.plot(
        [itron.implied_head_ends],
        [ITRON_UPSTREAM_PER_S * scale],
        "r*",
        markersize=14,
        label=f"Itron 24,000 msg/s per 10 M meters (k = {itron.implied_head_ends:.2f} at R = "
        f"{params.readings_per_day})",
    )
    left.plot(
        [itron.implied_head_ends],
        [itron.shared_upstream_per_s * scale],
        "g*",
        markersize=14,
        label=f"shared scheme at the Itron point: {itron.shared_upstream_per_s * scale:,.0f}/s",
    )
    left.set_xlabel("head-ends per meter (k)")
    left.set_ylabel("upstream messages / s")
    left.set_ylim(bottom=0)
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    right.plot(ks, classic_bytes, "o-", label="classic")
    right.plot(ks, shared_bytes, "s-", label="shared (C1 + C2)")
    right.set_xlabel("head-ends per meter (k)")
    right.set_ylabel("upstream MB / s")
    right.set_ylim(bottom=0)
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    ip = f"UDP/IPv{params.ip_version}" if params.ip_version else "wrapper"
    fig.suptitle(
        f"{params.meters:,} meters, R = {params.readings_per_day}/day, Kp renewed every "
        f"{params.kp_renewal_h:g} h; sizes from real messages ({ip} framing: classic "
        f"{result.sizes.classic} B, C1 {result.sizes.c1} B, C2 {result.sizes.c2} B)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _rate(value: float) -> str:
    if value >= 1e6 or float(value).is_integer():
        return f"{value:>20,.0f}"
    return f"{value:>20,.1f}"


def _report(result: StudyResult, simulation: SimulationResult | None) -> str:
    p, s = result.params, result.sizes
    classic, shared = result.classic, result.shared
    ip = f"UDP/IPv{p.ip_version} + wrapper" if p.ip_version else "wrapper"
    lines = [
        f"{p.meters:,} meters, k = {p.head_ends} head-ends, R = {p.readings_per_day} readings/day, "
        f"Kp renewed every {p.kp_renewal_h:g} h ({result.readings_per_key} readings per key, "
        f"{result.draws_per_meter_per_day:g} draw(s) per meter a day)",
        f"message sizes, real messages + {ip} ({s.frame_overhead} B): reading plaintext "
        f"{s.reading_plaintext} B; classic {s.classic} B, C1 {s.c1} B, C2 {s.c2} B, ack {s.ack} B",
        "",
        f"{'':30}{'classic':>20}{'shared':>20}{'shared/classic':>16}",
    ]
    day = float(SECONDS_PER_DAY)
    rows: list[tuple[str, float, float]] = [
        ("upstream messages / day", classic.upstream_messages, shared.upstream_messages),
        ("upstream messages / s", classic.upstream_messages / day, shared.upstream_messages / day),
        ("upstream bytes / day", classic.upstream_bytes, shared.upstream_bytes),
        ("upstream bytes / s", classic.upstream_bytes / day, shared.upstream_bytes / day),
        ("downstream acks / day", classic.downstream_messages, shared.downstream_messages),
        ("meter GCM calls / day", classic.gcm_calls, shared.gcm_calls),
        ("meter AES blocks / day", classic.aes_blocks, shared.aes_blocks),
        ("meter key wraps / day", classic.key_wraps, shared.key_wraps),
    ]
    for name, a, b in rows:
        ratio = f"{b / a:>16.3f}" if a else f"{'-':>16}"
        lines.append(f"{name:30}{_rate(a)}{_rate(b)}{ratio}")
    per_meter = 1 / p.meters if p.meters else 0.0
    lines.append(
        f"per meter and day: classic {classic.upstream_messages * per_meter:g} messages, "
        f"{classic.upstream_bytes * per_meter:,.0f} B; shared "
        f"{shared.upstream_messages * per_meter:g} messages, "
        f"{shared.upstream_bytes * per_meter:,.0f} B"
    )
    it = result.itron
    implied = ", ".join(f"k={k}: R={r:g}" for k, r in it.implied_readings_per_day.items())
    lines += [
        "",
        f"Itron reference (DESIGN.md §1): {it.meters:,} meters, {it.upstream_per_s:,.0f} upstream "
        f"msg/s = {it.messages_per_meter_per_day:g} messages per meter a day = R·k.",
        f"  at R = {it.readings_per_day}: k = {it.implied_head_ends:g}; R implied per k: {implied}",
        f"  shared scheme for the same meters, R and k: {it.shared_upstream_per_s:,.0f} msg/s "
        f"({it.shared_upstream_per_s / it.upstream_per_s:.1%} of 24,000)",
        f"  its C2 acknowledgements add {it.shared_downstream_per_s:,.0f} msg/s downstream "
        "(Itron quotes about 200 downstream msg/s)",
    ]
    if simulation is not None:
        lines += ["", *_simulation_report(simulation)]
    return "\n".join(lines)


def _simulation_report(sim: SimulationResult) -> list[str]:
    lines = [
        f"simulation: {sim.meters} real meters for {sim.days} day(s); {sim.c1_opened:,} C1 "
        f"openings by the head-ends and {sim.classic_opened:,} classic messages deciphered, "
        f"{sim.c2_retransmissions} C2 retransmissions",
        f"{'':34}{'measured':>20}{'model':>20}",
    ]
    for scheme, measured, predicted in (
        ("classic", sim.classic, sim.predicted_classic),
        ("shared", sim.shared, sim.predicted_shared),
    ):
        for field in ("upstream_messages", "upstream_bytes", "downstream_messages", "aes_blocks"):
            a, b = getattr(measured, field), getattr(predicted, field)
            mark = "" if a == b else "  MISMATCH"
            lines.append(f"{scheme + ' ' + field:34}{_rate(a)}{_rate(b)}{mark}")
    lines.append("every count matches the model" if sim.matches else "MISMATCH against the model")
    lines.append(BYTES_NOTE)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join((__doc__ or "").split("\n\n")[1:3]),
    )
    parser.add_argument("--meters", type=int, default=ITRON_METERS, help="N (default 10,000,000)")
    parser.add_argument("--head-ends", type=int, default=3, help="k per meter (default 3)")
    parser.add_argument("--readings-per-day", type=int, default=96, help="R (default 96)")
    parser.add_argument(
        "--kp-renewal-h", type=float, default=24.0, help="Kp renewal period in hours (default 24)"
    )
    parser.add_argument(
        "--register-values", type=int, default=4, help="registers per reading (default 4)"
    )
    parser.add_argument(
        "--ip", type=int, choices=(4, 6), help="add UDP and IPv4/IPv6 headers to every message"
    )
    parser.add_argument(
        "--ack-payloads", action="store_true", help="head-ends acknowledge every C1 too"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--plot", metavar="PNG", help="write a plot of both schemes (matplotlib)")
    parser.add_argument(
        "--simulate-meters",
        type=int,
        default=0,
        metavar="M",
        help="check the model with M real meters (e.g. 200; R must divide 86400)",
    )
    parser.add_argument("--simulate-days", type=int, default=1, help="simulated days (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the simulation")
    args = parser.parse_args(argv)
    try:
        params = StudyParams(
            args.meters,
            args.head_ends,
            args.readings_per_day,
            args.kp_renewal_h,
            args.register_values,
            args.ip,
            args.ack_payloads,
        )
        if args.simulate_meters < 0 or args.simulate_days < 1:
            raise ValueError("--simulate-meters must be >= 0 and --simulate-days >= 1")
        result = model(params)
        simulation = None
        if args.simulate_meters:
            simulation = simulate(
                params, meters=args.simulate_meters, days=args.simulate_days, seed=args.seed
            )
    except ValueError as exc:
        parser.error(str(exc))
    if args.plot:
        _plot(result, args.plot)
    if args.json:
        out: dict[str, Any] = {"model": result.to_json()}
        if simulation is not None:
            out["simulation"] = simulation.to_json() | {"bytes_note": BYTES_NOTE}
        if args.plot:
            out["plot"] = args.plot
        print(json.dumps(out, indent=2))
    else:
        print(_report(result, simulation))
        if args.plot:
            print(f"\nplot written to {args.plot}")
    return 0 if simulation is None or simulation.matches else 1


if __name__ == "__main__":
    sys.exit(main())
