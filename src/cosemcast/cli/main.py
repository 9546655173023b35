"""Entry point of the ``cosemcast`` command: argument parsing and sub-command dispatch.

Sub-commands are found, not listed: every public module of :mod:`cosemcast.cli` with a
``register(subparsers)`` function adds its parser and a ``handler(args) -> int``. A later
command (``read``, ``meter``, ``pcap``, ``demo``) is a new module and needs no edit here.

Errors end as one ``error: ...`` line on stderr, never a traceback: usage errors through
argparse (status 2), anything from the library's :class:`~cosemcast.errors.DlmsError` tree
not handled by the command itself with status 1. A closed stdout (``| head``) ends quietly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Final

from cosemcast import __version__
from cosemcast.errors import DlmsError

__all__ = ["build_parser", "command_modules", "main"]

_NOT_COMMANDS: Final = frozenset({"main", "render"})

_DESCRIPTION = """\
cosemcast: a DLMS/COSEM (IEC 62056) protocol stack with the EP 2671052 shared-payload
upstream scheme. Decode and decipher traffic, talk to meters, run a software meter, head-ends
and the supervision centre."""

_EPILOG = """\
examples:
  cosemcast demo                          the shared-payload scheme end to end on loopback
  cosemcast decode --example              decode and decipher a shipped push message
  cosemcast decode 7EA0070321930F017E     decode an HDLC frame (SNRM)
  cosemcast decode --keys keys.toml -     decipher APDUs read from stdin (hex)
  cosemcast read --tcp 127.0.0.1:4059 1-0:1.8.0.255   read a register of a meter
  cosemcast pcap --keys keys.toml FILE    decode a capture, conversation by conversation
  cosemcast COMMAND --help                options of one command

documentation: specs/ in the source tree; brief = the DLMS reference notes it cites."""


def command_modules() -> list[ModuleType]:
    """The modules of :mod:`cosemcast.cli` that define a sub-command, by name."""
    import cosemcast.cli as package

    modules = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name in _NOT_COMMANDS:
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        if callable(getattr(module, "register", None)):
            modules.append(module)
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cosemcast",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {__version__} (Python {sys.version.split()[0]})",
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in command_modules():
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (argparse exits by itself on usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(handler(args))
    except DlmsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (``| head``): the recipe of the Python docs on SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
