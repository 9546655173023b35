"""``cosemcast read``: associate with a meter, read (or write, or invoke), release.

One invocation is one association: connect (``--tcp``, ``--udp`` or ``--serial`` with optional
``--mode-e``), associate with the credentials of ``--keys`` overridden by ``--client-sap``,
``--server-sap``, ``--auth`` and ``--password``, do one thing, release:

* ``cosemcast read OBIS [OBIS ...]``: a Register (class 3/4) prints value, scaler and unit; a
  Profile generic (class 7) prints its buffer (``--from``/``--to`` select by time; progress on
  stderr when the answer comes in several blocks); anything else prints attribute 2.
  ``--attribute N`` reads that attribute instead, ``--class C`` names the class (else the
  client guesses from the OBIS code and falls back to the object list);
* ``--list``: the association's object list with the access rights;
* ``--set OBIS:ATTR=VALUE`` writes, ``--action OBIS:METHOD[=VALUE]`` invokes (decision: options
  of ``read`` rather than sub-commands, so the connection options are given once);
  VALUE is ``TYPE:TEXT`` (``u32:1000``, ``octets:0A0B``, ``string:abc``, ``null``, ...; see
  ``--help``).

``--json`` prints JSON (one object, or an array when several OBIS codes are read).
``--pcap FILE`` writes the session's traffic to a pcap file while it runs
(:mod:`cosemcast.capture.tap`; a serial session gets link type 147, specs/pcap.md).

Exit status (``specs/client.md``): 0 done; 1 bad configuration (``--keys`` file, missing key)
or another error; 2 usage; 3 the meter refused the association or its answer did not
authenticate (wrong password or key); 4 the meter refused the request (data-access or action
result, exception-response, confirmed-service-error); 5 the meter cannot be reached (refused,
timed out, link failure). Library imports happen inside the handler (fast ``--help``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import time
from typing import TYPE_CHECKING, Any, Final

from cosemcast.cli._read_output import (
    data_text,
    object_list_json,
    object_list_text,
    profile_json,
    profile_text,
    register_json,
    register_text,
)

if TYPE_CHECKING:
    from cosemcast.axdr.types import Data
    from cosemcast.cli.render import JsonValue
    from cosemcast.client import Credentials, DlmsClient, ReadProgress
    from cosemcast.obis import Obis

__all__ = [
    "EXIT_NOT_REACHED",
    "EXIT_REFUSED",
    "EXIT_REJECTED",
    "parse_value",
    "register",
    "run",
]

EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_REJECTED: Final = 3
EXIT_REFUSED: Final = 4
EXIT_NOT_REACHED: Final = 5
DEFAULT_PORT: Final = 4059

_VALUE_TYPES: Final = (
    "null, true, false, u8:N, u16:N, u32:N, u64:N, i8:N, i16:N, i32:N, i64:N, enum:N, "
    "f32:X, f64:X, octets:HEX, string:TEXT, utf8:TEXT, datetime:ISO-8601, axdr:HEX "
    "(a whole A-XDR Data encoding, for structures and arrays)"
)

_DESCRIPTION = """\
Associate with a meter, read registers, profiles or the object list (or write an attribute,
or invoke a method), and release."""

_EPILOG = f"""\
examples:
  cosemcast read --tcp 127.0.0.1:4059 1-0:1.8.0.255
  cosemcast read --tcp 127.0.0.1:4059 1-0:99.1.0.255 --from 2026-11-24T00:00 --to 2026-11-25
  cosemcast read --tcp 127.0.0.1:4059 --list --json
  cosemcast read --tcp 127.0.0.1:4059 --client-sap 17 --auth lls --password 12345678 \\
      0-0:96.1.0.255
  cosemcast read --tcp 127.0.0.1:4059 --keys management.toml \\
      --action 0-0:96.3.10.255:1=i8:0                 (remote_disconnect)
  cosemcast read --serial /dev/ttyUSB0 --mode-e 0-0:96.1.0.255

--keys FILE: [client] settings and [[keys]] tables (the `decode --keys` format), see
specs/client.md. Options given on the command line override the file.
VALUE of --set/--action: {_VALUE_TYPES}.
Times of --from/--to without an offset are the meter's local time.

exit status: 0 done, 1 configuration or other error, 2 usage, 3 association refused or
answer not authentic (password, keys), 4 request refused by the meter, 5 meter not reached."""


class _Usage(Exception):
    """A command-line mistake found after argparse (exit 2)."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "read",
        help="read a meter (registers, profiles, object list), or set/action",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    link = parser.add_argument_group("connection (one of)").add_mutually_exclusive_group(
        required=True
    )
    link.add_argument("--tcp", metavar="HOST[:PORT]", help="TCP with the wrapper (port 4059)")
    link.add_argument("--udp", metavar="HOST[:PORT]", help="UDP with the wrapper (port 4059)")
    link.add_argument("--serial", metavar="PORT", help="HDLC on a serial port or pyserial URL")
    serial = parser.add_argument_group("serial line")
    serial.add_argument("--mode-e", action="store_true", help="IEC 62056-21 mode E sign-on")
    serial.add_argument("--baud", type=int, default=9600, help="HDLC rate without mode E")
    serial.add_argument("--server-physical", type=int, metavar="N", help="HDLC lower address")
    association = parser.add_argument_group("association")
    association.add_argument("--keys", metavar="FILE", help="credentials TOML")
    association.add_argument("--client-sap", type=int, metavar="N", help="default 16")
    association.add_argument("--server-sap", type=int, metavar="N", help="logical device, 1")
    association.add_argument("--auth", choices=("none", "lls", "hls-gmac", "hls-ecdsa"))
    association.add_argument("--password", help="LLS password (better: in --keys)")
    association.add_argument("--counters", metavar="FILE", help="invocation-counter file")
    association.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS")
    what = parser.add_argument_group("what to do")
    what.add_argument("obis", nargs="*", metavar="OBIS", help="objects to read")
    what.add_argument("--attribute", type=int, metavar="N", help="attribute to read")
    what.add_argument("--class", dest="class_id", type=int, metavar="C", help="class id")
    what.add_argument("--from", dest="start", metavar="TIME", help="profile rows from")
    what.add_argument("--to", dest="end", metavar="TIME", help="profile rows up to")
    what.add_argument("--list", action="store_true", help="print the object list")
    what.add_argument("--set", metavar="OBIS:ATTR=VALUE", help="write an attribute")
    what.add_argument("--action", metavar="OBIS:METHOD[=VALUE]", help="invoke a method")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    parser.add_argument(
        "--pcap",
        metavar="FILE",
        help="write the session's traffic to FILE (pcap: Ethernet for TCP/UDP, link type 147 "
        "for --serial; specs/pcap.md)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cosemcast.capture.tap import capturing
    from cosemcast.client import RequestFailed
    from cosemcast.errors import (
        AssociationRejected,
        ConfigurationError,
        ReplayError,
        SecurityError,
        TransportError,
    )

    try:
        with capturing(args.pcap, ip=not args.serial, serial=bool(args.serial)):
            return _run(args)
    except _Usage as exc:
        return _fail(str(exc), EXIT_USAGE)
    except ConfigurationError as exc:
        return _fail(str(exc), EXIT_ERROR)
    except AssociationRejected as exc:
        hint = "check --auth, --client-sap, the password and the keys in --keys"
        return _fail(f"{exc}; {hint}", EXIT_REJECTED)
    except ReplayError as exc:
        hint = (
            "the meter's invocation counter went backwards under the same key: a replay, or a "
            "meter whose state was reset while it kept its keys. Never accept that from a real "
            "meter; for a test meter you reset on purpose, use a new --counters file"
        )
        return _fail(f"{exc}; {hint}", EXIT_REJECTED)
    except SecurityError as exc:
        return _fail(f"{exc}; check the keys (ek, ak) in --keys", EXIT_REJECTED)
    except RequestFailed as exc:
        return _fail(str(exc), EXIT_REFUSED)
    except TransportError as exc:
        return _fail(_transport_hint(exc), EXIT_NOT_REACHED)
    except OSError as exc:
        if args.pcap is None or exc.filename != args.pcap:
            raise
        return _fail(f"--pcap {args.pcap}: {exc.strerror or exc}", EXIT_USAGE)


def _fail(message: str, status: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status


def _transport_hint(exc: Exception) -> str:
    from cosemcast.errors import ResponseTimeout

    text = str(exc)
    if isinstance(exc.__cause__, ConnectionRefusedError):
        return f"{text} Start one with `cosemcast meter serve`."
    if isinstance(exc, ResponseTimeout):
        return f"{text} (check --client-sap/--server-sap; --timeout sets the wait)"
    return text


# --- arguments -----------------------------------------------------------------------------------


def _host_port(text: str, option: str) -> tuple[str, int]:
    match = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?|([^:]+)(?::(\d+))?", text)
    if match is None:
        raise _Usage(f"{option} wants HOST[:PORT], got {text!r}")
    host = match.group(1) or match.group(3)
    port = match.group(2) or match.group(4)
    number = DEFAULT_PORT if port is None else int(port)
    if not 0 < number < 65536:
        raise _Usage(f"{option}: port {number} is not 1..65535")
    return host, number


def _obis(text: str) -> Obis:
    from cosemcast.obis import Obis

    try:
        return Obis.parse(text)
    except ValueError as exc:
        raise _Usage(str(exc)) from None


def _time(text: str | None, option: str) -> dt.datetime | None:
    if text is None:
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise _Usage(f"{option} wants an ISO 8601 time such as 2026-11-24T00:00") from None


def _target(text: str, option: str) -> tuple[Obis, int, str | None]:
    """``OBIS:N[=VALUE]`` → (OBIS, N, VALUE or None)."""
    left, equals, value = text.partition("=")
    obis_text, colon, number = left.rpartition(":")
    if not colon or not number.isdigit():
        raise _Usage(f"{option} wants OBIS:N[=VALUE] such as 0-0:96.99.0.255:2=u8:5")
    return _obis(obis_text), int(number), value if equals else None


_INT_TYPES: Final = {
    "u8": "Unsigned",
    "u16": "LongUnsigned",
    "u32": "DoubleLongUnsigned",
    "u64": "Long64Unsigned",
    "i8": "Integer",
    "i16": "Long",
    "i32": "DoubleLong",
    "i64": "Long64",
    "enum": "Enumerated",
}


def parse_value(text: str) -> Data:
    """A ``--set``/``--action`` VALUE (``TYPE:TEXT``) as COSEM Data; :class:`ValueError`."""
    from cosemcast.axdr import types
    from cosemcast.axdr.codec import decode_data
    from cosemcast.cosem.common import datetime_octets
    from cosemcast.errors import DecodeError

    if text in ("null", "true", "false"):
        return None if text == "null" else text == "true"
    kind, colon, body = text.partition(":")
    if not colon:
        raise ValueError(f"a value is TYPE:TEXT; types: {_VALUE_TYPES}")
    if kind in _INT_TYPES:
        cls = getattr(types, _INT_TYPES[kind])
        number = int(body, 0)
        if not cls.MIN <= number <= cls.MAX:
            raise ValueError(f"{kind} holds {cls.MIN}..{cls.MAX}, not {number}")
        value: Data = cls(number)
        return value
    try:
        if kind in ("f32", "f64"):
            return (types.Float32 if kind == "f32" else types.Float64)(float(body))
        if kind == "octets":
            return types.OctetString(_hex(kind, body))
        if kind == "string":
            body.encode("ascii")
            return types.VisibleString(body)
        if kind == "utf8":
            return types.Utf8String(body)
        if kind == "datetime":
            moment = dt.datetime.fromisoformat(body)
            return datetime_octets(types.CosemDateTime.from_datetime(moment))
        if kind == "axdr":
            return decode_data(_hex(kind, body))
    except (UnicodeEncodeError, DecodeError) as exc:
        raise ValueError(f"{kind}: {exc}") from exc
    raise ValueError(f"unknown value type {kind!r}; types: {_VALUE_TYPES}")


def _hex(kind: str, body: str) -> bytes:
    try:
        return bytes.fromhex(body)
    except ValueError:
        digits = len(body.replace(" ", ""))
        raise ValueError(
            f"{kind}: {body[:40]!r}{'...' if len(body) > 40 else ''} is not hex (an even number "
            f"of digits 0-9 A-F; got {digits} characters)"
        ) from None


def credentials_from_args(args: argparse.Namespace, path: str | None) -> Credentials:
    """Credentials from the file ``path`` (or the defaults) with the association options of
    ``args`` applied (also used by ``cosemcast headend pull``)."""
    import dataclasses

    from cosemcast.client import Authentication, Credentials

    base = Credentials.load(path) if path else Credentials()
    changes: dict[str, Any] = {}
    if args.client_sap is not None:
        changes["client_sap"] = args.client_sap
    if args.server_sap is not None:
        changes["server_sap"] = args.server_sap
    if getattr(args, "server_physical", None) is not None:
        changes["server_physical_address"] = args.server_physical
    if args.auth is not None:
        changes["auth"] = Authentication(args.auth)
    if args.password is not None:
        changes["password"] = args.password.encode("utf-8")
    if args.counters is not None:
        from pathlib import Path

        changes["counters"] = Path(args.counters)
    return dataclasses.replace(base, **changes)


def _connect(args: argparse.Namespace, credentials: Credentials) -> DlmsClient:
    from cosemcast.client import DlmsClient

    if args.tcp:
        host, port = _host_port(args.tcp, "--tcp")
        return DlmsClient.tcp(host, port, credentials, timeout_s=args.timeout)
    if args.udp:
        host, port = _host_port(args.udp, "--udp")
        return DlmsClient.udp(host, port, credentials, timeout_s=args.timeout)
    return DlmsClient.serial(
        args.serial,
        credentials,
        mode_e=args.mode_e,
        baud_rate=args.baud,
        timeout_s=args.timeout,
    )


# --- the work ------------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    chosen = [bool(args.obis), args.list, args.set is not None, args.action is not None]
    if sum(chosen) != 1:
        raise _Usage("give OBIS codes to read, or --list, or --set, or --action (one of them)")
    if (args.start or args.end) and not args.obis:
        raise _Usage("--from/--to select profile rows: give the profile's OBIS code")
    start, end = _time(args.start, "--from"), _time(args.end, "--to")
    reads = [_obis(text) for text in args.obis]
    write = None if args.set is None else _target(args.set, "--set")
    invoke = None if args.action is None else _target(args.action, "--action")
    if write is not None and write[2] is None:
        raise _Usage("--set wants OBIS:ATTR=VALUE")
    try:
        value = None if write is None else parse_value(str(write[2]))
        parameter = None if invoke is None or invoke[2] is None else parse_value(invoke[2])
    except ValueError as exc:
        raise _Usage(str(exc)) from None
    credentials = credentials_from_args(args, args.keys)
    credentials.association_settings()  # configuration errors before connecting
    with _connect(args, credentials) as client:
        client.associate()
        if args.list:
            _print(args, object_list_json(client.object_list()), object_list_text)
        elif write is not None:
            client.set(write[0], write[1], value, args.class_id)
            done = {"obis": str(write[0]), "attribute": write[1], "result": "success"}
            _print(args, done, lambda d: f"{d['obis']} attribute {d['attribute']}: written")
        elif invoke is not None:
            _invoke(args, client, invoke, parameter)
        else:
            results = [_read_one(args, client, obis, start, end) for obis in reads]
            if args.json:
                print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
    return 0


def _print(args: argparse.Namespace, document: Any, text: Any) -> None:
    print(json.dumps(document, indent=2) if args.json else text(document))


def _invoke(
    args: argparse.Namespace,
    client: DlmsClient,
    invoke: tuple[Obis, int, str | None],
    parameter: Data,
) -> None:
    from cosemcast.apdu.common import ABSENT
    from cosemcast.cli.render import to_jsonable

    obis, method, given = invoke
    returned = client.action(obis, method, ABSENT if given is None else parameter, args.class_id)
    document: dict[str, JsonValue] = {"obis": str(obis), "method": method, "result": "success"}
    if returned is not None:
        document["return"] = to_jsonable(returned, data=True)
    text = f"{obis} method {method}: done"
    if returned is not None:
        text += f", returned {data_text(returned)}"
    _print(args, document, lambda _: text)


def _read_one(
    args: argparse.Namespace,
    client: DlmsClient,
    obis: Obis,
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> JsonValue:
    from cosemcast.cli.render import data_type_name, to_jsonable
    from cosemcast.client import guess_class_id

    class_id = args.class_id if args.class_id is not None else guess_class_id(obis)
    if args.attribute is None and class_id in (3, 4):
        reading = client.read_register(obis, args.class_id)
        if not args.json:
            print(register_text(obis, reading))
        return register_json(obis, reading)
    if args.attribute is None and class_id == 7:
        progress = None if args.no_progress else _Progress()
        try:
            buffer = client.read_profile(
                obis, from_=start, to=end, progress=progress, class_id=args.class_id
            )
        finally:
            if progress is not None:
                progress.finish()
        document = profile_json(obis, buffer)
        if not args.json:
            print(profile_text(document))
        return document
    attribute = 2 if args.attribute is None else args.attribute
    value = client.get(obis, attribute, args.class_id)
    if not args.json:
        type_name = data_type_name(value) or ("null-data" if value is None else "boolean")
        text = data_text(value)
        if isinstance(value, tuple):
            print(f"{obis} attribute {attribute}:{text}")
        else:
            print(f"{obis} attribute {attribute}: {text} ({type_name})")
    return {"obis": str(obis), "attribute": attribute, "data": to_jsonable(value, data=True)}


# --- output --------------------------------------------------------------------------------------


class _Progress:
    """Blocks of a long answer, on stderr: rewritten in place on a terminal, else one line
    every second and a last one."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last: ReadProgress | None = None
        self.shown_at = 0.0

    def __call__(self, progress: ReadProgress) -> None:
        self.last = progress
        if progress.apdus < 2:
            return
        now = time.monotonic()
        if self.tty:
            print(f"\r{self._text(progress)}", end="", file=sys.stderr, flush=True)
        elif now - self.shown_at >= 1.0:
            self.shown_at = now
            print(self._text(progress), file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self.last is not None and self.last.apdus >= 2:
            end = "\r" if self.tty else ""
            print(f"{end}{self._text(self.last)}, done", file=sys.stderr, flush=True)

    @staticmethod
    def _text(progress: ReadProgress) -> str:
        return f"profile: {progress.apdus} blocks, {progress.bytes_received} bytes received"
