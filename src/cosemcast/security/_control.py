"""Security-control and key checks shared by :mod:`cosemcast.security.protection` and
:mod:`cosemcast.security.general_protection` (brief §5.1, §5.2).

Sending: SC must be a byte with suite 0-2, no compression (V.44 is not implemented), at least
one of A and E, Key_Set only where a broadcast key exists (never with dedicated keys or
general-ciphering, brief §5.1 [X1 DG]), and a key of the suite's length (16 bytes for suites
0 and 1, 32 for suite 2, brief §5.5). Receiving: the same, and an APDU without a tag is refused
unless the caller accepts encryption-only traffic, and an SC whose suite needs another key
length than the key at hand fails authentication. These run before any GCM work.
"""

from __future__ import annotations

from cosemcast.errors import AuthenticationFailed, DecodeError, EncodeError
from cosemcast.security.gcm import SecurityControl

SYSTEM_TITLE_LENGTH = 8


def key_length_for_suite(suite: int) -> int:
    return 32 if suite == 2 else 16


def check_send_control(
    sc: int, ek: bytes, *, broadcast_allowed: bool, what: str
) -> SecurityControl:
    if not 0 <= sc <= 0xFF:
        raise EncodeError(f"security control {sc} is not a byte")
    control = SecurityControl.from_byte(sc)
    if control.suite > 2:
        raise EncodeError(f"security suite {control.suite} is not 0, 1 or 2")
    if control.compressed:
        raise EncodeError("compression (SC bit 7) is not supported")
    if control.broadcast_key and not broadcast_allowed:
        raise EncodeError(f"Key_Set (SC bit 6) must be 0 for {what}")
    if not (control.authenticated or control.encrypted):
        raise EncodeError(f"security control 0x{sc:02X} applies no protection")
    if len(ek) != key_length_for_suite(control.suite):
        raise EncodeError(
            f"suite {control.suite} needs a {key_length_for_suite(control.suite)}-byte key, "
            f"got {len(ek)} bytes"
        )
    return control


def check_received_control(
    sc: int, *, broadcast_allowed: bool, require_authentication: bool, what: str
) -> SecurityControl:
    control = SecurityControl.from_byte(sc)
    if control.suite > 2:
        raise DecodeError(f"security suite {control.suite} is not 0, 1 or 2", expected="SC")
    if control.compressed:
        raise DecodeError("compressed APDUs (SC bit 7) are not supported", expected="SC")
    if control.broadcast_key and not broadcast_allowed:
        raise DecodeError(f"Key_Set (SC bit 6) must be 0 for {what}", expected="SC")
    if not control.authenticated:
        if require_authentication:
            raise AuthenticationFailed(
                f"security control 0x{sc:02X} carries no authentication tag and one is required"
            )
        if not control.encrypted:
            raise DecodeError(f"security control 0x{sc:02X} applies no protection", expected="SC")
    return control


def check_received_key(control: SecurityControl, ek: bytes) -> None:
    """A suite whose key length differs from ours cannot have been sent with our key."""
    if len(ek) != key_length_for_suite(control.suite):
        raise AuthenticationFailed(
            f"the SC names suite {control.suite} ({key_length_for_suite(control.suite)}-byte "
            f"keys) but the key at hand has {len(ek)} bytes"
        )


def wire_system_title(system_title: bytes) -> bytes:
    if len(system_title) != SYSTEM_TITLE_LENGTH:
        raise DecodeError(
            f"system title of {len(system_title)} bytes", expected="an 8-byte system title"
        )
    return system_title
