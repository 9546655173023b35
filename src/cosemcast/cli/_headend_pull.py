"""``cosemcast headend pull``: read a meter's C2s and buffered C1s with GET and open them.

One invocation is one association with the meter (``--meter tcp://HOST:PORT`` or
``udp://HOST:PORT``; the association options are those of ``cosemcast read``: ``--credentials``
a client credentials TOML, ``--client-sap``, ``--server-sap``, ``--auth``, ``--password``).
The head-end side is that of ``cosemcast headend listen``: ``--keys`` (system title, Ks per
meter, private key), ``--db`` (keys, replay windows, readings), ``--out`` (JSON lines, default
stdout). The acknowledgements go back to the meter over the same link. A summary goes to
stderr. Exit status as ``cosemcast read``: 0 done, 1 configuration or other error, 3 the meter
refused the association, 4 it refused a request, 5 it cannot be reached.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from cosemcast.cli.read import credentials_from_args

if TYPE_CHECKING:
    from cosemcast.client import Credentials, DlmsClient

__all__ = ["add_pull_command"]

_EPILOG = """\
examples:
  cosemcast headend pull --meter tcp://127.0.0.1:4059 --keys supplier.toml
  cosemcast headend pull --meter udp://10.0.0.7:4059 --keys grid.toml --db grid.sqlite3 \\
      --credentials reader.toml --out readings.jsonl

The meter's Payload key control object (0-0:128.2.0.255) lists a C2 per head-end and key; the
head-end keeps its own. Its Shared payload object (0-0:128.1.0.255) holds the sealed C1s not
yet pushed. C1s already received by push are refused as replays (counted, not an error)."""


def _meter(text: str) -> tuple[str, str, int]:
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "tcp", text
    host, sep, port = rest.rpartition(":")
    if scheme not in ("tcp", "udp") or not sep or not port.isdigit() or not host:
        raise argparse.ArgumentTypeError(f"{text!r} is not tcp://HOST:PORT or udp://HOST:PORT")
    return scheme, host.strip("[]"), int(port)


def add_pull_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``pull`` to the ``cosemcast headend`` commands."""
    pull = commands.add_parser(
        "pull",
        help="read C2s and buffered C1s from a meter with GET (no pushes needed)",
        description="Associate with a meter, GET its payload key control entries for this "
        "head-end and its buffered C1s, open them and write the readings.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pull.add_argument("--meter", metavar="URL", type=_meter, required=True, help="tcp:// or udp://")
    pull.add_argument("--keys", metavar="FILE", type=Path, required=True, help="key file (TOML)")
    pull.add_argument("--db", metavar="FILE", type=Path, default=Path("headend.sqlite3"))
    pull.add_argument("--out", metavar="FILE", type=Path, help="JSON lines file (default stdout)")
    pull.add_argument("--credentials", metavar="FILE", help="client credentials TOML")
    pull.add_argument("--client-sap", type=int, metavar="N", help="default 16 (public)")
    pull.add_argument("--server-sap", type=int, metavar="N", help="logical device, default 1")
    pull.add_argument("--auth", choices=("none", "lls", "hls-gmac", "hls-ecdsa"))
    pull.add_argument("--password", help="LLS password (better: in --credentials)")
    pull.add_argument("--counters", metavar="FILE", help="invocation-counter file")
    pull.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS")
    pull.add_argument("--json", action="store_true", help="print the summary as JSON")
    pull.set_defaults(handler=_pull)


def _connect(args: argparse.Namespace, credentials: Credentials) -> DlmsClient:
    from cosemcast.client import DlmsClient

    scheme, host, port = args.meter
    if scheme == "udp":
        return DlmsClient.udp(host, port, credentials, timeout_s=args.timeout)
    return DlmsClient.tcp(host, port, credentials, timeout_s=args.timeout)


def _status(exc: Exception) -> int:
    from cosemcast.client.errors import RequestFailed
    from cosemcast.errors import AssociationRejected, SecurityError, TransportError

    if isinstance(exc, TransportError):
        return 5
    if isinstance(exc, AssociationRejected | SecurityError):
        return 3
    if isinstance(exc, RequestFailed):
        return 4
    return 1


def _pull(args: argparse.Namespace) -> int:
    from cosemcast.errors import DlmsError
    from cosemcast.headend import HeadEnd, ReadingSink, SqliteHeadEndStore
    from cosemcast.headend.keys import load_keys
    from cosemcast.headend.pull import pull_from_meter

    out: TextIO | None = None
    try:
        keys = load_keys(args.keys)
        credentials = credentials_from_args(args, args.credentials)
        credentials.association_settings()
        out = open(args.out, "a", encoding="utf-8") if args.out is not None else None  # noqa: SIM115
        with SqliteHeadEndStore(
            args.db, system_title=keys.system_title, keep_readings=True
        ) as store:
            for meter, entry in keys.meters.items():
                store.set_credentials(
                    meter,
                    shared_key=entry.shared_key,
                    agreement_public_key=entry.agreement_public_key,
                )
            sink = ReadingSink(stream=out if out is not None else sys.stdout)  # rows: the store
            head_end = HeadEnd(
                keys.system_title,
                store,
                sink,
                agreement_private_key=keys.private_key,
                allow_unauthenticated_agreement=keys.allow_unauthenticated_agreement,
            )
            try:
                with _connect(args, credentials) as client:
                    client.associate()
                    result = pull_from_meter(client, head_end)
                    client.release()
            finally:
                sink.close()
    except DlmsError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return _status(exc)
    finally:
        if out is not None:
            out.close()
    summary = dataclasses.asdict(result)
    if args.json:
        print(json.dumps(summary, sort_keys=True), file=sys.stderr)
    else:
        print("pull:", ", ".join(f"{k} {v}" for k, v in summary.items()), file=sys.stderr)
    return 0
