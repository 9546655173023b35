"""``cosemcast demo``: the shared-payload scheme end to end on loopback (:mod:`cosemcast.demo`).

Progress lines go to stderr as the demo provisions and runs; the report (what each head-end
decoded, and shared payload against classic per-head-end encryption, counted from the run)
goes to stdout, as text or, with ``--json``, as one JSON document.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cosemcast.demo.run import DemoResult

__all__ = ["register"]

_EPILOG = """\
examples:
  cosemcast demo                       # 3 meters, 3 head-ends, 8 s
  cosemcast demo --meters 10 --seconds 20
  cosemcast demo --json > demo.json    # the same figures for machines
  cosemcast demo --keep /tmp/demo      # keep the SQLite files and meter configurations
  cosemcast demo --pcap demo.pcap && cosemcast pcap demo.pcap   # every message on the wire

Everything runs on 127.0.0.1 with fresh keys: a supervision centre (TCP, HLS-GMAC channel per
head-end), three head-ends (UDP unicast + one multicast group) and the meters (TCP + UDP).
The meters' time runs --speed times faster than real time, so 15-minute readings come every
second at the default speed of 900."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run meters, three head-ends and a supervision centre on loopback",
        description="Show the EP 2671052 shared-payload scheme end to end: head-ends assigned "
        "through the supervision centre, one C1 per reading for all of them, one C2 per "
        "head-end per payload key; and what the same readings cost with classic "
        "per-head-end encryption.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--meters", type=int, default=3, metavar="N", help="meters (default 3)")
    parser.add_argument(
        "--seconds", type=float, default=8.0, metavar="S", help="how long to run (default 8)"
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=900.0,
        metavar="X",
        help="meter seconds per real second (default 900)",
    )
    parser.add_argument(
        "--push-interval",
        type=int,
        default=900,
        metavar="S",
        help="seconds of meter time between readings (default 900)",
    )
    parser.add_argument(
        "--renew-every",
        type=int,
        default=8,
        metavar="N",
        help="draw a new Kp every N C1s (default 8; 0: only when the head-ends change)",
    )
    parser.add_argument("--group", metavar="IPV4", help="multicast group (default: a random one)")
    parser.add_argument("--keep", metavar="DIR", type=Path, help="work in DIR and keep it")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--pcap", metavar="FILE", type=Path, help="capture every party's traffic to FILE"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what every party does")
    parser.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from cosemcast.demo.run import DemoOptions, run_demo
    from cosemcast.errors import DlmsError

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("  log: %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("cosemcast")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if args.verbose else logging.ERROR)
    logger.propagate = False
    try:
        options = DemoOptions(
            meters=args.meters,
            seconds=args.seconds,
            speed=args.speed,
            push_interval_s=args.push_interval,
            max_payloads=args.renew_every,
            group=args.group,
            workdir=args.keep,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    from cosemcast.capture.tap import capturing

    try:
        with capturing(args.pcap):
            result = run_demo(options, progress)
    except (DlmsError, OSError) as exc:
        print(
            f"error: the demo failed: {exc}\n"
            "(it needs 127.0.0.1 with UDP multicast on loopback; try --group 239.255.1.1 or -v)",
            file=sys.stderr,
        )
        return 1
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    if args.json:
        print(json.dumps(to_json(result), indent=2, sort_keys=True))
    else:
        print(to_text(result))
    return 0


def _comparison(result: DemoResult) -> list[tuple[str, int, int]]:
    shared, classic = result.shared, result.classic
    return [
        ("upstream messages", shared["c1_sent"] + shared["c2_sent"], classic["sent"]),
        ("upstream bytes (wrapper frames)", shared["bytes_sent"], classic["bytes_sent"]),
        ("meter AES operations", shared["aes_operations"], classic["aes_operations"]),
    ]


def to_json(result: DemoResult) -> dict[str, object]:
    """The report as plain JSON types."""
    return {
        "options": {
            "meters": result.options.meters,
            "seconds": result.options.seconds,
            "speed": result.options.speed,
            "push_interval_s": result.options.push_interval_s,
            "renew_every": result.options.max_payloads,
        },
        "elapsed_s": round(result.elapsed_s, 3),
        "centre": result.centre,
        "group": result.group,
        "meters": [m.hex().upper() for m in result.meters],
        "provisioned": [
            {
                "meter": p.meter.hex().upper(),
                "head_end": p.head_end,
                "sequence": p.sequence,
                "delivery": p.delivery,
            }
            for p in result.provisioned
        ],
        "head_ends": [
            {
                "name": h.name,
                "system_title": h.system_title.hex().upper(),
                "assigned": [m.hex().upper() for m in h.assigned],
                "readings": {m.hex().upper(): n for m, n in sorted(h.readings.items())},
                "last": {
                    m.hex().upper(): {
                        "serial": r.serial,
                        "date_time": r.date_time,
                        "energy_wh": r.energy_wh,
                        "power_w": r.power_w,
                        "kp_id": r.kp_id,
                        "invocation_counter": r.invocation_counter,
                    }
                    for m, r in sorted(h.last.items())
                },
                "stats": h.stats,
                "classic_verified": h.classic_verified,
            }
            for h in result.head_ends
        ],
        "provisioning": result.provisioning,
        "shared": result.shared,
        "classic": result.classic,
        "comparison": {
            name: {"shared": s, "classic": c, "ratio": round(s / c, 3) if c else None}
            for name, s, c in _comparison(result)
        },
    }


def to_text(result: DemoResult) -> str:
    """The report as the console shows it."""
    lines: list[str] = []
    options = result.options
    lines.append(
        f"cosemcast demo: {options.meters} meters, {len(result.head_ends)} head-ends, "
        f"{result.elapsed_s:.1f} s on loopback (meter time x{options.speed:g}); "
        f"C1 multicast to {result.group}, supervision centre on tcp {result.centre}"
    )
    lines.append("")
    lines.append(f"assignments made through the supervision centre: {len(result.provisioned)}")
    for head_end in result.head_ends:
        stats = head_end.stats
        lines.append("")
        lines.append(
            f"{head_end.name} ({head_end.system_title.hex().upper()}): "
            f"assigned to {len(head_end.assigned)} meter(s); received {stats.get('received', 0)} "
            f"messages, opened {stats.get('opened', 0)} C1s, accepted "
            f"{stats.get('controls_accepted', 0)} C2s, sent {stats.get('acks_sent', 0)} acks, "
            f"{stats.get('not_assigned', 0)} C1s of meters not assigned to it (unreadable), "
            f"rejected {stats.get('rejected', 0)}"
        )
        for meter in result.meters:
            reading = head_end.last.get(meter)
            if reading is None:
                lines.append(f"  meter {meter.hex().upper()}  no readings (not assigned)")
                continue
            lines.append(
                f"  meter {meter.hex().upper()}  {head_end.readings.get(meter, 0):3d} readings, "
                f"last: serial {reading.serial}, {reading.date_time}, "
                f"energy {reading.energy_wh} Wh, power {reading.power_w} W "
                f"(kp_id {reading.kp_id}, IC {reading.invocation_counter})"
            )
    shared, setup = result.shared, result.provisioning
    lines.append("")
    lines.append(
        f"while being assigned the meters sent {setup.get('c1_sent', 0)} C1s and "
        f"{setup.get('c2_sent', 0)} C2s ({setup.get('keys_drawn', 0)} Kp drawn: each new "
        "head-end renews Kp); from then on, both schemes carried the same readings:"
    )
    lines.append(
        f"meters sent {shared['c1_sent']} C1s (each once for all its head-ends) and "
        f"{shared['c2_sent']} C2s (one per head-end per Kp; {shared['keys_drawn']} Kp drawn), "
        f"received {shared['acks_received']} acks"
    )
    lines.append(
        f"classic: the same {shared['c1_sealed']} readings sealed per head-end, "
        f"{result.classic['sent']} messages sent, {result.classic['verified']} verified by "
        "the head-ends"
    )
    lines.append("")
    lines.append(f"{'measured over this run':34} {'shared':>10} {'classic':>10} {'ratio':>7}")
    for name, s, c in _comparison(result):
        ratio = f"{s / c:.2f}" if c else "-"
        lines.append(f"{name:34} {s:>10,} {c:>10,} {ratio:>7}")
    lines.append(
        "(C2s go out only when Kp changes; the upstream saving grows with the number of "
        "head-ends per meter and the readings per Kp: tools/traffic_study.py)"
    )
    return "\n".join(lines)
