"""AES key wrap (RFC 3394), as DLMS uses it for key transport (brief §6.4, §8).

Security Setup ``key_transfer`` and the general-ciphering ``wrapped-key`` key-info both carry
``AES-KW(KEK, key)``: the RFC 3394 algorithm with its default initial value ``A6A6A6A6A6A6A6A6``
and six rounds, so a 128-bit key wraps to 24 bytes and a 256-bit key to 40 bytes (brief §6.4).
The KEK is the master key (key-id 3 in Security Setup, kek-id 0 in general-ciphering; brief §6.1,
§8).

The work is done by :mod:`cryptography.hazmat.primitives.keywrap`; this module fixes the error
contract. A wrapped key comes off the wire, so a malformed length is a :class:`DecodeError` and a
failed integrity check (wrong KEK, altered bytes) is :class:`AuthenticationFailed`; a KEK or key
of an impossible size is the caller's mistake and raises :class:`ValueError`. No message names a
key byte.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)

from cosemcast.errors import AuthenticationFailed, DecodeError

__all__ = ["unwrap_key", "wrap_key", "wrapped_length"]

_KEK_LENGTHS = (16, 24, 32)
_SEMIBLOCK = 8


def _check_kek(kek: bytes) -> None:
    if len(kek) not in _KEK_LENGTHS:
        raise ValueError(f"a KEK is 16, 24 or 32 bytes, got {len(kek)}")


def wrapped_length(key_length: int) -> int:
    """Length of ``AES-KW(KEK, key)`` for a key of ``key_length`` bytes: one semiblock more."""
    return key_length + _SEMIBLOCK


def wrap_key(kek: bytes, key: bytes) -> bytes:
    """Wrap ``key`` under ``kek`` (RFC 3394 §2.2.1, default IV; brief §6.4).

    ``key`` must be at least 16 bytes and a multiple of 8 (RFC 3394 §2).
    """
    _check_kek(kek)
    if len(key) < 2 * _SEMIBLOCK or len(key) % _SEMIBLOCK:
        raise ValueError(f"a key to wrap is a multiple of 8 bytes, at least 16; got {len(key)}")
    return aes_key_wrap(bytes(kek), bytes(key))


def unwrap_key(kek: bytes, wrapped: bytes, *, key_length: int | None = None) -> bytes:
    """Unwrap ``wrapped`` under ``kek`` and check its integrity (RFC 3394 §2.2.2, §2.2.3).

    With ``key_length`` the unwrapped key must have that many bytes (16 for suites 0 and 1, 32
    for suite 2; brief §5.5); a wrapped key of another size is a :class:`DecodeError`.
    Raises :class:`AuthenticationFailed` when the integrity check fails.
    """
    _check_kek(kek)
    n = len(wrapped)
    if n < 3 * _SEMIBLOCK or n % _SEMIBLOCK:
        raise DecodeError(
            f"a wrapped key of {n} bytes is not a multiple of 8 bytes of at least 24",
            offset=0,
            expected="RFC 3394 output: 8*(n+1) bytes, n >= 2",
        )
    if key_length is not None and n != wrapped_length(key_length):
        raise DecodeError(
            f"a wrapped key of {n} bytes cannot hold a {key_length}-byte key",
            offset=0,
            expected=f"{wrapped_length(key_length)} bytes",
        )
    try:
        return aes_key_unwrap(bytes(kek), bytes(wrapped))
    except InvalidUnwrap as exc:
        raise AuthenticationFailed("wrapped key fails the RFC 3394 integrity check") from exc
