"""construct schemas for the fixed layouts of the link layer, compiled once at import.

Private: the public codecs in :mod:`cosemcast.link.wrapper` and :mod:`cosemcast.link.hdlc`
convert every ``Container`` to a dataclass and every construct or ``struct`` failure to a
:class:`~cosemcast.errors.DecodeError` / :class:`~cosemcast.errors.EncodeError` at the
boundary. Compiled and interpreted construct raise different exceptions on short input
(``struct.error`` vs ``StreamError``), so callers catch :data:`CONSTRUCT_ERRORS`.

HDLC is hand-written in ``hdlc.py``: its header is variable (extension-bit addresses, an HCS
only when an information field follows) and its format field is one u16 of bit masks.
"""

from __future__ import annotations

import struct
from typing import Any, Final

import construct as cs

__all__ = [
    "CONSTRUCT_ERRORS",
    "WRAPPER_HEADER",
    "WRAPPER_HEADER_LENGTH",
]

# IEC 62056-47 wrapper header, brief §1: four big-endian u16, APDU length last.
WRAPPER_HEADER: Final[Any] = cs.Struct(
    "version" / cs.Int16ub,
    "source_wport" / cs.Int16ub,
    "destination_wport" / cs.Int16ub,
    "length" / cs.Int16ub,
).compile()
WRAPPER_HEADER_LENGTH: Final = 8

CONSTRUCT_ERRORS: Final = (cs.ConstructError, struct.error)
