"""``cosemcast headend listen --workers N``: the sharded head-end (specs §9.4).

The parent starts N worker processes (:class:`~cosemcast.headend.shard.ShardedHeadEnd`),
waits for Ctrl-C or SIGTERM, stops them (each flushes its last batch) and prints every
worker's statistics to stderr. Readings go to ``--out`` (appended by every worker) or stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading

__all__ = ["listen_sharded"]


def listen_sharded(args: argparse.Namespace, stop: threading.Event) -> int:
    from cosemcast.errors import DlmsError
    from cosemcast.headend.shard import ShardedHeadEnd

    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.udp is None or args.tcp is not None:
        print("error: --workers needs --udp and does not shard --tcp", file=sys.stderr)
        return 2
    if getattr(args, "pcap", None) is not None:
        print("error: --pcap captures one process; not with --workers", file=sys.stderr)
        return 2
    group = None
    if args.group is not None:
        group = (args.group[0], args.group[1] or args.udp[1])
    sharded = ShardedHeadEnd(
        workers=args.workers,
        keys=args.keys,
        db=args.db,
        udp=args.udp,
        group=group,
        interface=args.interface,
        out=args.out,
        log_level=logging.INFO,
        sink=getattr(args, "sink", None),
    )
    try:
        sharded.start()
    except DlmsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"head-end listening with {args.workers} workers on udp "
        f"{sharded.address[0] if sharded.address else '?'}:"
        f"{sharded.address[1] if sharded.address else '?'}",
        file=sys.stderr,
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        stats = sharded.stop()
    if args.json_log:
        print(json.dumps({"stats": stats}, sort_keys=True), file=sys.stderr)
    else:
        for index, worker in enumerate(stats):
            print(f"worker {index} statistics:", file=sys.stderr)
            for name in sorted(worker):
                print(f"  {name:32} {worker[name]}", file=sys.stderr)
    return 0
