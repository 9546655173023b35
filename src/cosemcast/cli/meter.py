"""``cosemcast meter``: run the software meter (``serve``) or print its configuration (``config``).

The parser lives here; the meter itself is imported inside the handlers, so ``cosemcast
--help`` stays fast. The test keys of the default configuration are printed by
``cosemcast meter serve --help``: they are public test values, listed so that nobody
mistakes them for hidden defaults.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Final

__all__ = ["DEFAULT_KEYS_HELP", "register"]

DEFAULT_KEYS_HELP: Final = """\
default configuration (`cosemcast meter config` prints it), PUBLIC TEST KEYS, never for a
real meter:
  logical device (server SAP) 1, meter system title 4D4D4D0000BC614E
  client SAP 16  public      no security
  client SAP 17  reader      LLS, password 12345678
  client SAP 1   management  HLS-GMAC, security suite 0, glo- ciphering, policy
                             authenticated + encrypted requests and responses
                             EK  000102030405060708090A0B0C0D0E0F
                             AK  D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF
                             KEK 000102030405060708090A0B0C0D0E0F (master key)
  objects: clock 0-0:1.0.0.255, serial number 0-0:96.1.0.255, energy 1-0:1.8.0.255 (Wh),
  power 1-0:1.7.0.255 (W), voltage 1-0:32.7.0.255, load profile 1-0:99.1.0.255 (15 min),
  push setup 0-0:25.9.0.255 (UDP 127.0.0.1:4060 every 15 min, general-glo ciphered),
  disconnect control 0-0:96.3.10.255, association LN 0-0:40.0.0.255, security setup
  0-0:43.0.0.255 (management)"""

_SERVE_EPILOG = f"""\
examples:
  cosemcast meter serve                                  the default meter on 127.0.0.1:4059
  cosemcast meter serve --tcp 0.0.0.0:4059 --udp 127.0.0.1:4059 --state my.sqlite3
  cosemcast meter serve --serial /dev/ttyUSB0 --mode-e   behind an optical probe
  cosemcast meter serve --speed 100                      a day in about 15 minutes

{DEFAULT_KEYS_HELP}

The state file keeps counters, keys, register values, the profile buffer and the clock
offset: stop the meter (Ctrl-C) and start it again on the same --state and nothing is lost."""


def _host_port(text: str) -> tuple[str, int]:
    from cosemcast.meter.serve import parse_host_port

    try:
        return parse_host_port(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 1e6:
        raise argparse.ArgumentTypeError("the speed must be above 0 and at most 1e6")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "meter",
        help="run the software meter, or print its default configuration",
        description="A DLMS/COSEM software meter configured by a TOML file.",
    )
    commands = parser.add_subparsers(title="meter commands", metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="serve the meter over TCP, UDP or a serial line",
        description="Run the software meter until Ctrl-C. Without a transport option it "
        "serves TCP on 127.0.0.1:4059. Log lines go to stderr (keys never appear in them).",
        epilog=_SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--tcp", metavar="HOST:PORT", type=_host_port, help="serve TCP here")
    serve.add_argument("--udp", metavar="HOST:PORT", type=_host_port, help="serve UDP here")
    serve.add_argument(
        "--serial", metavar="PORT", help="serve HDLC on this serial port or pyserial URL"
    )
    serve.add_argument(
        "--mode-e",
        action="store_true",
        help="with --serial: start each session with the IEC 62056-21 mode E sign-on",
    )
    serve.add_argument(
        "--config", metavar="FILE", type=Path, help="meter configuration (default: the shipped one)"
    )
    serve.add_argument(
        "--state",
        metavar="FILE",
        type=Path,
        default=Path("meter.sqlite3"),
        help="SQLite state file, created if missing (default: %(default)s)",
    )
    serve.add_argument(
        "--speed",
        metavar="N",
        type=_speed,
        default=1.0,
        help="run the meter's time N times faster than real time (demos)",
    )
    serve.add_argument("--json-log", action="store_true", help="log JSON lines instead of text")
    serve.add_argument(
        "--pcap",
        metavar="FILE",
        type=Path,
        help="capture the meter's traffic to FILE (serial with TCP/UDP: FILE-serial.pcap too)",
    )
    serve.set_defaults(handler=_serve)
    config = commands.add_parser(
        "config",
        help="print the default configuration (or check a file)",
        description="Print the shipped default configuration, to copy and edit.",
    )
    config.add_argument(
        "--check", metavar="FILE", type=Path, help="check FILE instead and print a summary"
    )
    config.add_argument(
        "--shared",
        action="store_true",
        help="print the example with the shared-payload scheme ([shared_payload]) instead",
    )
    config.add_argument(
        "--supervised",
        action="store_true",
        help="print the shared-payload example whose head-ends are assigned by a supervision "
        "centre ([supervision]; README walkthrough) instead",
    )
    config.set_defaults(handler=_config)
    parser.set_defaults(handler=lambda args: _usage(parser))


_SUPERVISED = """
# No head-end is configured here: the supervision centre assigns them (specs/supervision.md).
# The meter checks each initialization message with the centre's public key, then derives
# Ks = F(Kt, I0) itself; the head-ends' addresses come from the table below.
[supervision]
kt = "000102030405060708090A0B0C0D0E0F"   # the meter's secret Kt: PUBLIC TEST VALUE
centre_public_key = "centre.pem"          # written by `cosemcast supervision init`
clock_tolerance_s = 300
renewal_timeout_s = 0                     # validity counter ([0049]); 0: off

  [[supervision.head_ends]]
  system_title = "5355505000000001"       # supplier
  destination = "127.0.0.1:4061"

  [[supervision.head_ends]]
  system_title = "4752494400000001"       # grid operator
  destination = "127.0.0.1:4062"
"""


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _serve(args: argparse.Namespace) -> int:
    from cosemcast.meter.serve import ServeOptions, run_serve

    if args.mode_e and args.serial is None:
        print("error: --mode-e needs --serial", file=sys.stderr)
        return 2
    from cosemcast.capture.tap import capturing

    serial = args.serial is not None
    with capturing(args.pcap, ip=bool(args.tcp or args.udp) or not serial, serial=serial):
        return run_serve(
            ServeOptions(
                config=args.config,
                state=args.state,
                tcp=args.tcp,
                udp=args.udp,
                serial=args.serial,
                mode_e=args.mode_e,
                speed=args.speed,
                json_log=args.json_log,
            )
        )


def _config(args: argparse.Namespace) -> int:
    from cosemcast.meter.config import default_config_text, load_config

    if args.check is None:
        if args.shared or args.supervised:
            from importlib import resources

            example = resources.files("cosemcast.meter").joinpath("shared_meter.toml")
            text = example.read_text("utf-8")
            if args.supervised:
                text = text.split("\n  [[shared_payload.head_ends]]", 1)[0] + _SUPERVISED
                text = text.replace(
                    "push_interval_s = 900     ",
                    "push_interval_s = 20      ",
                    1,
                ).replace("(0: only on demand)", "(20 s for the walkthrough; 900 in service)", 1)
            sys.stdout.write(text)
            return 0
        sys.stdout.write(default_config_text())
        return 0
    config = load_config(args.check)
    for device in config.devices:
        clients = ", ".join(f"{c.sap} ({c.authentication.value})" for c in device.clients)
        print(
            f"logical device {device.server_sap}: {len(device.objects)} objects; clients {clients}"
        )
    if config.shared_payload is not None:
        shared = config.shared_payload
        print(
            f"shared payload on logical device {shared.server_sap}: C1 to "
            f"{shared.c1_destination}, {len(shared.head_ends)} head-end(s)"
        )
    print(f"{args.check}: ok")
    return 0
