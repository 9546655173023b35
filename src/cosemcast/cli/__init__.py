"""The ``cosemcast`` command line (``cosemcast.cli.main:main``).

Each public module of this package that defines ``register(subparsers)`` is a sub-command:
``register`` adds its parser and sets ``handler=fn(args) -> int`` (the exit status).
Heavy imports (scapy, serial) belong inside the handler so ``cosemcast --help`` stays fast.
:mod:`cosemcast.cli.render` turns decoded values into trees and JSON for every command.
"""
