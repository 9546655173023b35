"""``cosemcast supervision``: run and administer the supervision centre (specs/supervision.md).

Admin commands open the registry (``--db``) with the master key (``--master-key-file`` or the
environment variable ``COSEMCAST_SUPERVISION_MASTER_KEY``); ``serve`` runs the service until
Ctrl-C or SIGTERM. ``assign`` is the head-end's side and needs only its credentials file;
``deliver`` loads an initialization message into a meter (Fig. 6b). Keys are never printed,
except ``Ks`` by ``assign --reveal-ks``.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cosemcast.supervision.atrest import MasterKey
    from cosemcast.supervision.registry import Registry

__all__ = ["register"]

_ENV = "COSEMCAST_SUPERVISION_MASTER_KEY"

_EPILOG = f"""\
examples (centre):
  cosemcast supervision init --centre-id 5355504500000001 --generate-master-key \\
      --master-key-file master.key --public-key-out centre.pem
  cosemcast supervision import --master-key-file master.key meters.csv
  cosemcast supervision head-end add --master-key-file master.key 48454E4400000001 \\
      --name supplier --credentials-out supplier-channel.toml
  cosemcast supervision list --master-key-file master.key assignments --json
  cosemcast supervision serve --master-key-file master.key --listen 0.0.0.0:4063
  cosemcast supervision deliver --master-key-file master.key --meter 10.0.0.7:4059 \\
      4D414E0100BC614E

example (head-end):
  cosemcast supervision assign --credentials supplier-channel.toml \\
      --headend-keys supplier-keys.toml ENROLLMENT_HEX

The master key is 32 bytes: a file of 64 hex digits (or 32 raw bytes), or ${_ENV}. It never
enters the database; without it nothing in the database can be opened. The database
(--db, default supervision.sqlite3) keeps every secret sealed under it, and an append-only
audit log of every decision (list audit)."""


def _title(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 8:
        raise argparse.ArgumentTypeError(f"{text!r} is not a system title (16 hex digits)")
    return raw


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def _admin(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="FILE",
        type=Path,
        default=Path("supervision.sqlite3"),
        help="registry database (default: %(default)s)",
    )
    parser.add_argument(
        "--master-key-file",
        metavar="FILE",
        type=Path,
        help=f"the master key (default: the environment variable {_ENV})",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "supervision",
        help="the supervision centre: registry, assignment service, init messages",
        description="The supervision centre of EP 2671052: it alone knows each meter's Kt; "
        "head-ends ask it over an authenticated DLMS channel to be assigned to meters that "
        "chose them, and get Ks; meters get a signed initialization message.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(title="supervision commands", metavar="COMMAND")

    init = commands.add_parser("init", help="create the registry: centre ID and signing key")
    _admin(init)
    init.add_argument("--centre-id", type=_title, required=True, help="centre system title")
    init.add_argument(
        "--generate-master-key",
        action="store_true",
        help="draw a master key and write it to --master-key-file (must not exist)",
    )
    init.add_argument("--public-key-out", metavar="FILE", type=Path, help="write the PEM here")
    init.set_defaults(handler=_init)

    manifest = commands.add_parser(
        "import", help="import meters from a maker's manifest (CSV or TOML; all or nothing)"
    )
    _admin(manifest)
    manifest.add_argument("manifest", type=Path, help="system_title,kt[,ki] CSV or [[meter]] TOML")
    manifest.set_defaults(handler=_import)

    head_end = commands.add_parser("head-end", help="register head-ends").add_subparsers(
        title="head-end commands", metavar="COMMAND"
    )
    add = head_end.add_parser("add", help="register a head-end and write its channel keys")
    _admin(add)
    add.add_argument("head_end_id", type=_title, help="the head-end's system title")
    add.add_argument("--name", required=True, help="who it is (shown by list)")
    add.add_argument(
        "--credentials-out", metavar="FILE", type=Path, required=True, help="written mode 0600"
    )
    add.add_argument(
        "--centre",
        metavar="HOST:PORT",
        default="127.0.0.1:4063",
        help="where the head-end will reach the centre (default: %(default)s)",
    )
    add.set_defaults(handler=_add_head_end)

    listing = commands.add_parser("list", help="meters, head-ends, assignments or the audit log")
    _admin(listing)
    listing.add_argument(
        "what", choices=("meters", "head-ends", "assignments", "audit"), nargs="?", default="meters"
    )
    listing.add_argument("--json", action="store_true", help="one JSON document on stdout")
    listing.set_defaults(handler=_list)

    revoke = commands.add_parser(
        "revoke", help="revoke a head-end (all its meters) or one assignment"
    )
    _admin(revoke)
    revoke.add_argument("--head-end", type=_title, required=True, metavar="ID")
    revoke.add_argument("--meter", type=_title, metavar="ID", help="only this meter's assignment")
    revoke.set_defaults(handler=_revoke)

    rotate = commands.add_parser("rotate-key", help="replace the centre's signing key")
    _admin(rotate)
    rotate.add_argument("--public-key-out", metavar="FILE", type=Path, help="write the new PEM")
    rotate.set_defaults(handler=_rotate)

    serve = commands.add_parser("serve", help="run the service until Ctrl-C")
    _admin(serve)
    serve.add_argument(
        "--listen", type=_host_port, default=("127.0.0.1", 4063), metavar="HOST:PORT"
    )
    serve.set_defaults(handler=_serve)

    assign = commands.add_parser("assign", help="(head-end) forward an enrollment, get Ks")
    assign.add_argument("--credentials", type=Path, required=True, metavar="FILE")
    assign.add_argument("enrollment", help="the meter's enrollment request, hex")
    assign.add_argument(
        "--headend-keys", type=Path, metavar="FILE", help="add Ks to this headend key file"
    )
    assign.add_argument(
        "--headend-db",
        type=Path,
        metavar="FILE",
        help="add Ks to this head-end database (a running 'headend listen --db FILE' uses it "
        "at once)",
    )
    assign.add_argument(
        "--message-out", type=Path, metavar="FILE", help="write the init message (hex) to FILE"
    )
    assign.add_argument(
        "--relay",
        type=_host_port,
        metavar="HOST:PORT",
        help="relay the init message to the meter at HOST:PORT over TCP (Fig. 6c; public "
        "client 16, the message protects itself)",
    )
    assign.add_argument("--reveal-ks", action="store_true", help="print Ks (a secret) too")
    assign.set_defaults(handler=_assign)

    deliver = commands.add_parser("deliver", help="load a meter's init message into it (6b)")
    _admin(deliver)
    deliver.add_argument("meter_id", type=_title)
    deliver.add_argument("--meter", type=_host_port, required=True, metavar="HOST:PORT")
    deliver.add_argument("--keys", type=Path, metavar="FILE", help="client credentials (TOML)")
    deliver.add_argument("--sequence", type=int, help="which message (default: the latest)")
    deliver.set_defaults(handler=_deliver)

    parser.set_defaults(handler=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _now() -> int:
    return int(time.time())


def _master_key(args: argparse.Namespace) -> MasterKey:
    from cosemcast.errors import ConfigurationError
    from cosemcast.supervision.atrest import MasterKey

    if args.master_key_file is not None:
        return MasterKey.from_file(args.master_key_file)
    try:
        return MasterKey.from_env(_ENV)
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"no master key: give --master-key-file FILE or set {_ENV} (64 hex digits); "
            "'cosemcast supervision init --generate-master-key --master-key-file FILE' "
            "makes one"
        ) from exc


def _open(args: argparse.Namespace, *, create: bool = False) -> Registry:
    from cosemcast.errors import ConfigurationError
    from cosemcast.supervision.registry import Registry

    if not create and not args.db.exists():
        raise ConfigurationError(
            f"{args.db}: no registry; create it with 'cosemcast supervision init' (or give --db)"
        )
    return Registry(args.db, _master_key(args))


def _init(args: argparse.Namespace) -> int:
    import secrets

    from cosemcast.errors import ConfigurationError
    from cosemcast.supervision.credentials import write_private
    from cosemcast.supervision.registry import key_fingerprint

    if args.generate_master_key:
        if args.master_key_file is None:
            raise ConfigurationError("--generate-master-key needs --master-key-file FILE")
        if args.master_key_file.exists():
            raise ConfigurationError(f"{args.master_key_file} exists; not overwriting a key")
        write_private(args.master_key_file, secrets.token_hex(32).upper() + "\n")
        print(f"master key written to {args.master_key_file} (mode 0600; back it up)")
    with _open(args, create=True) as registry:
        registry.initialise(centre_id=args.centre_id, now=_now())
        fingerprint = key_fingerprint(registry.centre_public_key())
        print(
            f"registry {args.db}: centre {args.centre_id.hex().upper()}, signing key {fingerprint}"
        )
        if args.public_key_out is not None:
            args.public_key_out.write_bytes(registry.centre_public_key_pem())
            print(f"public key (give it to the meters) written to {args.public_key_out}")
    return 0


def _import(args: argparse.Namespace) -> int:
    with _open(args) as registry:
        count = registry.import_manifest(args.manifest, now=_now())
    print(f"imported {count} meters from {args.manifest}")
    return 0


def _add_head_end(args: argparse.Namespace) -> int:
    from cosemcast.errors import ConfigurationError
    from cosemcast.supervision.channel import ChannelKeys
    from cosemcast.supervision.credentials import ChannelCredentials, write_private

    host, port = _host_port(args.centre)
    if args.credentials_out.exists():
        raise ConfigurationError(f"{args.credentials_out} exists; not overwriting credentials")
    keys = ChannelKeys.generate()
    name = args.head_end_id.hex().upper()
    with _open(args) as registry:
        registry.register_head_end(
            args.head_end_id, name=args.name, credential=keys.credential, now=_now()
        )
        credentials = ChannelCredentials(
            args.head_end_id,
            registry.centre_id(),
            host,
            port,
            Path(f"{name}.counters"),
            keys,
        )
    write_private(args.credentials_out, credentials.to_toml(counters_name=f"{name}.counters"))
    print(f"head-end {name} ({args.name}) registered; its credentials: {args.credentials_out}")
    return 0


def _listing(registry: Registry, what: str) -> list[dict[str, Any]]:
    def hexa(value: bytes | None) -> str | None:
        return None if value is None else value.hex().upper()

    if what == "meters":
        return [
            {"meter_id": hexa(m.meter_id), "status": m.status, "last_sequence": m.last_sequence}
            for m in registry.meters()
        ]
    if what == "head-ends":
        return [
            {"head_end_id": hexa(h.head_end_id), "name": h.name, "status": h.status}
            for h in registry.head_ends()
        ]
    if what == "assignments":
        return [
            {
                "meter_id": hexa(a.meter_id),
                "head_end_id": hexa(a.head_end_id),
                "action": a.action.name.lower().replace("_", "-"),
                "sequence": a.sequence,
                "state": a.state,
                "not_before": a.not_before,
                "not_after": a.not_after,
            }
            for a in registry.assignments()
        ]
    return [
        {
            "id": e.id,
            "at": e.at,
            "actor": e.actor,
            "operation": e.operation,
            "meter_id": hexa(e.meter_id),
            "head_end_id": hexa(e.head_end_id),
            "decision": e.decision,
            "detail": e.detail,
        }
        for e in registry.audit_log()
    ]


def _list(args: argparse.Namespace) -> int:
    with _open(args) as registry:
        rows = _listing(registry, args.what)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    if not rows:
        print(f"no {args.what}")
        return 0
    columns = list(rows[0])
    text = [["-" if r[c] is None else str(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in text)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for cells in text:
        print("  ".join(v.ljust(w) for v, w in zip(cells, widths, strict=True)).rstrip())
    return 0


def _revoke(args: argparse.Namespace) -> int:
    with _open(args) as registry:
        if args.meter is None:
            issued = registry.revoke_head_end(args.head_end, now=_now())
        else:
            issued = [
                registry.revoke_assignment(
                    meter_id=args.meter, head_end_id=args.head_end, now=_now()
                )
            ]
    target = args.head_end.hex().upper()
    print(f"revoked head-end {target} on {len(issued)} meter(s)")
    for item in issued:
        print(
            f"  meter {item.meter_id.hex().upper()}: revoke message sequence {item.sequence} "
            "(deliver it: cosemcast supervision deliver)"
        )
    return 0


def _rotate(args: argparse.Namespace) -> int:
    from cosemcast.supervision.registry import key_fingerprint

    with _open(args) as registry:
        old = key_fingerprint(registry.centre_public_key())
        new = registry.rotate_signing_key(now=_now())
        if args.public_key_out is not None:
            args.public_key_out.write_bytes(registry.centre_public_key_pem())
    print(f"signing key {old} retired; {key_fingerprint(new)} signs from now on")
    print(
        "meters accept only messages signed with the key they hold: give them the new public "
        "key before delivering new messages (specs/supervision.md §3.5)"
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    from cosemcast.supervision.service import SupervisionService

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("cosemcast")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with _open(args) as registry:
            host, port = args.listen
            with SupervisionService(registry, host, port) as service:
                print(f"listening on {service.address[0]}:{service.address[1]}", flush=True)
                stop.wait()
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        logger.removeHandler(handler)
    return 0


def _assign(args: argparse.Namespace) -> int:
    from cosemcast.errors import ConfigurationError
    from cosemcast.supervision.client import SupervisionClient
    from cosemcast.supervision.credentials import ChannelCredentials, add_head_end_key

    try:
        enrollment = bytes.fromhex(args.enrollment)
    except ValueError as exc:
        raise ConfigurationError("the enrollment request is not hex") from exc
    creds = ChannelCredentials.load(args.credentials)
    with SupervisionClient(
        creds.host,
        creds.port,
        head_end_id=creds.head_end_id,
        ek=creds.keys.ek,
        ak=creds.keys.ak,
        counters=creds.counters,
        centre_id=creds.centre_id,
    ) as centre:
        assignment = centre.assign(enrollment)
    meter = assignment.meter_id.hex().upper()
    result: dict[str, Any] = {
        "meter_id": meter,
        "action": assignment.action.name.lower().replace("_", "-"),
        "sequence": assignment.sequence,
        "not_before": assignment.not_before,
        "not_after": assignment.not_after,
        "init_message": assignment.init_message.hex().upper(),
    }
    if args.reveal_ks:
        result["ks"] = assignment.ks.hex().upper()
    if args.headend_keys is not None:
        add_head_end_key(
            args.headend_keys,
            head_end_id=creds.head_end_id,
            meter_id=assignment.meter_id,
            ks=assignment.ks,
        )
        result["headend_keys"] = str(args.headend_keys)
    if args.headend_db is not None:
        from cosemcast.headend import SqliteHeadEndStore

        with SqliteHeadEndStore(args.headend_db, system_title=creds.head_end_id) as store:
            store.set_credentials(assignment.meter_id, shared_key=assignment.ks)
        result["headend_db"] = str(args.headend_db)
    if args.message_out is not None:
        args.message_out.write_text(assignment.init_message.hex().upper() + "\n", "ascii")
    if args.relay is not None:
        from cosemcast.association import AssociationSettings
        from cosemcast.client import DlmsClient
        from cosemcast.supervision.client import relay_init_message

        host, port = args.relay
        with DlmsClient.tcp(host, port, AssociationSettings(client_sap=16, server_sap=1)) as link:
            link.associate()
            relay_init_message(link, assignment.init_message)
        result["relayed_to"] = f"{host}:{port}"
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


def _deliver(args: argparse.Namespace) -> int:
    from cosemcast.client import Credentials, DlmsClient
    from cosemcast.errors import ConfigurationError
    from cosemcast.supervision.client import deliver_init_message

    with _open(args) as registry:
        records = registry.assignments(args.meter_id)
        if args.sequence is not None:
            records = [r for r in records if r.sequence == args.sequence]
        if not records:
            raise ConfigurationError(
                f"no initialization message for meter {args.meter_id.hex().upper()}"
                + ("" if args.sequence is None else f" with sequence {args.sequence}")
            )
        record = records[-1]
        message = registry.init_message(meter_id=args.meter_id, sequence=record.sequence)
    credentials = Credentials.load(args.keys) if args.keys is not None else Credentials()
    host, port = args.meter
    with DlmsClient.tcp(host, port, credentials) as meter:
        meter.associate()
        deliver_init_message(meter, message)
    print(
        f"meter {args.meter_id.hex().upper()} loaded message {record.sequence} "
        f"({record.action.name.lower().replace('_', '-')} head-end "
        f"{record.head_end_id.hex().upper()})"
    )
    return 0
