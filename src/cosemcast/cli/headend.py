"""``cosemcast headend listen``: receive shared-payload pushes and write the decoded readings.

The parser lives here; the head-end is imported inside the handler. Readings go to stdout as
JSON lines (or to ``--out``) and into the ``readings`` table of ``--db``; log lines and the
final statistics go to stderr. Ctrl-C (SIGINT) or SIGTERM stops cleanly.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TextIO

from cosemcast.cli._headend_pull import add_pull_command

__all__ = ["register"]

_EPILOG = """\
examples:
  cosemcast headend listen --udp 127.0.0.1:4059 --keys supplier.toml
  cosemcast headend listen --udp 0.0.0.0:4059 --group 239.192.0.1 --tcp 0.0.0.0:4059 \\
      --keys grid.toml --out readings.jsonl --db grid.sqlite3 --json-log

key file (TOML; keys are secrets, protect the file):
  system_title = "4D4D4D0000000001"
  private_key = "headend.pem"            # optional, P-256, for public-key C2s
  [meters.4D4D4D0000BC614E]
  ks = "000102030405060708090A0B0C0D0E0F"  # or agreement_public_key = "04..." (X9.62 hex)

The database keeps payload keys, replay windows and parked C1s: stop the head-end and start
it again on the same --db and nothing is lost. It stores keys in clear: protect it too."""


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def _group(text: str) -> tuple[str, int]:
    group, sep, port = text.partition(":")
    if sep and (not port.isdigit() or not 0 <= int(port) <= 65535):
        raise argparse.ArgumentTypeError(f"{text!r} is not GROUP[:PORT]")
    return group, int(port) if sep else 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "headend",
        help="run a shared-payload head-end (receive C1/C2, write readings)",
        description="A head-end of the EP 2671052 shared-payload scheme.",
    )
    commands = parser.add_subparsers(title="headend commands", metavar="COMMAND")
    listen = commands.add_parser(
        "listen",
        help="receive pushes over UDP (unicast, multicast) and TCP",
        description="Receive C1 and C2 pushes, acknowledge, and write decoded readings until "
        "Ctrl-C; then print statistics to stderr.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    listen.add_argument(
        "--udp", metavar="HOST:PORT", type=_host_port, help="unicast UDP address (and ack source)"
    )
    listen.add_argument(
        "--group",
        metavar="GROUP[:PORT]",
        type=_group,
        help="also join this IPv4 multicast group (port: the --udp port by default)",
    )
    listen.add_argument(
        "--interface",
        metavar="IPV4",
        default="0.0.0.0",
        help="interface for the multicast join (default: the kernel's choice)",
    )
    listen.add_argument("--tcp", metavar="HOST:PORT", type=_host_port, help="TCP wrapper address")
    listen.add_argument("--keys", metavar="FILE", type=Path, required=True, help="key file (TOML)")
    listen.add_argument("--out", metavar="FILE", type=Path, help="JSON lines file (default stdout)")
    listen.add_argument(
        "--db",
        metavar="FILE",
        type=Path,
        default=Path("headend.sqlite3"),
        help="SQLite state and readings (default: %(default)s)",
    )
    listen.add_argument("--json-log", action="store_true", help="log JSON lines instead of text")
    listen.add_argument(
        "--workers",
        metavar="N",
        type=int,
        default=1,
        help="shard the ingest over N processes on the --udp port, one --db file each "
        "(UDP only; specs/shared-payload.md §9.4)",
    )
    listen.add_argument("--pcap", metavar="FILE", type=Path, help="capture the traffic to FILE")
    listen.add_argument(
        "--key-cache",
        metavar="N",
        type=int,
        default=65_536,
        help="payload keys kept in memory (default %(default)s); set it above the number of "
        "meters that push within one reporting period, or every C1 reads the database",
    )
    listen.add_argument(
        "--sink",
        metavar="URL",
        help="also publish every reading to NATS JetStream, nats://HOST:PORT[,HOST:PORT][/STREAM]"
        " (pip install 'cosemcast[nats]'; specs/deployment.md)",
    )
    listen.set_defaults(handler=_listen)
    add_pull_command(commands)
    parser.set_defaults(handler=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            }
        )


def _listen(args: argparse.Namespace) -> int:
    from cosemcast.capture.tap import capturing
    from cosemcast.headend import HeadEnd, HeadEndService, ReadingSink, SqliteHeadEndStore
    from cosemcast.headend.headend import SERVICE_GROUP_COMMIT
    from cosemcast.headend.keys import load_keys

    if args.udp is None and args.tcp is None:
        print("error: give --udp, --tcp or both", file=sys.stderr)
        return 2
    if args.group is not None and args.udp is None:
        print("error: --group needs --udp (acknowledgements leave from it)", file=sys.stderr)
        return 2
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonFormatter()
        if args.json_log
        else logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    )
    logger = logging.getLogger("cosemcast")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    out: TextIO | None = None
    try:
        if args.sink is not None and args.workers != 1:
            print("error: --sink is not passed to shard workers yet (--workers 1)", file=sys.stderr)
            return 2
        if args.workers != 1:
            from cosemcast.cli._headend_shard import listen_sharded

            return listen_sharded(args, stop)
        keys = load_keys(args.keys)
        out = open(args.out, "a", encoding="utf-8") if args.out is not None else None  # noqa: SIM115
        if args.key_cache < 1:
            print("error: --key-cache must be at least 1", file=sys.stderr)
            return 2
        with SqliteHeadEndStore(
            args.db, system_title=keys.system_title, keep_readings=True, cache_size=args.key_cache
        ) as store:
            for meter, entry in keys.meters.items():
                store.set_credentials(
                    meter,
                    shared_key=entry.shared_key,
                    agreement_public_key=entry.agreement_public_key,
                )
            also = []
            if args.sink is not None:
                from cosemcast.headend.sink_nats import NatsJetStreamSink, NatsSinkConfig

                try:
                    config = NatsSinkConfig.from_url(args.sink)
                except ValueError as exc:
                    print(f"error: --sink: {exc}", file=sys.stderr)
                    return 2
                also.append(NatsJetStreamSink(config))
            # rows: the store
            sink = ReadingSink(stream=out if out is not None else sys.stdout, also=also)
            head_end = HeadEnd(
                keys.system_title,
                store,
                sink,
                agreement_private_key=keys.private_key,
                allow_unauthenticated_agreement=keys.allow_unauthenticated_agreement,
                group_commit=SERVICE_GROUP_COMMIT,
            )
            group = None
            if args.group is not None:
                group = (args.group[0], args.group[1] or args.udp[1])
            service = HeadEndService(
                head_end, udp=args.udp, group=group, interface=args.interface, tcp=args.tcp
            )
            try:
                with capturing(args.pcap):
                    service.start()
                    while not stop.wait(0.5):
                        pass
            finally:
                service.close()
                sink.close()
            stats = head_end.stats()
        if args.json_log:
            print(json.dumps({"stats": stats}, sort_keys=True), file=sys.stderr)
        else:
            print("head-end statistics:", file=sys.stderr)
            for name in sorted(stats):
                print(f"  {name:32} {stats[name]}", file=sys.stderr)
    finally:
        if out is not None:
            out.close()
        for sig, old in previous.items():
            signal.signal(sig, old)
        logger.removeHandler(handler)
    return 0
