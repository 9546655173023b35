"""The registry's master key: encryption of Kt, Ki, I0 and secrets at rest (specs §3.2).

Theory of operation. Every secret column of the registry holds ``nonce (12) ‖ ciphertext ‖ tag
(16)``: AES-256-GCM under the master key, with a fresh random nonce per write and an AAD that
names the column and the row (``b"cosemcast-registry/1/" + column + b"/" + row key``), so a
sealed value copied to another row or column no longer opens. The master key never enters the
database; it is read from a file or an environment variable (64 hex digits, or 32 raw bytes in
a file). This is storage encryption, not DLMS: the full 16-byte tag of ``AESGCM`` is used and
:mod:`cosemcast.security.gcm` is not involved.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cosemcast.errors import AuthenticationFailed, ConfigurationError

__all__ = ["MASTER_KEY_ENV", "MasterKey"]

MASTER_KEY_ENV = "COSEMCAST_SUPERVISION_MASTER_KEY"
_KEY_LENGTH = 32
_NONCE_LENGTH = 12
_TAG_LENGTH = 16
_AAD_PREFIX = b"cosemcast-registry/1/"


def _parse(text: bytes, source: str) -> bytes:
    if len(text) == _KEY_LENGTH:
        return text
    try:
        key = bytes.fromhex(text.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigurationError(f"{source}: the master key is not 64 hex digits") from exc
    if len(key) != _KEY_LENGTH:
        raise ConfigurationError(f"{source}: the master key is {len(key)} bytes, expected 32")
    return key


class MasterKey:
    """AES-256-GCM for values at rest. Never shows the key; ``rng`` is injectable for tests."""

    __slots__ = ("_aead", "_rng")

    def __init__(self, key: bytes, *, rng: Callable[[int], bytes] = os.urandom) -> None:
        if len(key) != _KEY_LENGTH:
            raise ValueError(f"the master key is 32 bytes, got {len(key)}")
        self._aead = AESGCM(bytes(key))
        self._rng = rng

    @classmethod
    def from_file(cls, path: str | Path) -> MasterKey:
        """32 raw bytes, or 64 hex digits (surrounding whitespace ignored)."""
        try:
            text = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"cannot read the master key file {path}: {exc}") from exc
        return cls(_parse(text, str(path)))

    @classmethod
    def from_env(cls, name: str = MASTER_KEY_ENV) -> MasterKey:
        """64 hex digits in the environment variable ``name``."""
        value = os.environ.get(name)
        if value is None:
            raise ConfigurationError(f"the environment variable {name} is not set")
        return cls(_parse(value.encode("ascii", "replace"), name))

    @staticmethod
    def _aad(column: str, row: bytes) -> bytes:
        return _AAD_PREFIX + column.encode("ascii") + b"/" + bytes(row)

    def seal(self, plaintext: bytes, *, column: str, row: bytes) -> bytes:
        nonce = self._rng(_NONCE_LENGTH)
        return nonce + self._aead.encrypt(nonce, bytes(plaintext), self._aad(column, row))

    def open(self, blob: bytes, *, column: str, row: bytes) -> bytes:
        """Raises :class:`AuthenticationFailed` (wrong master key, altered or moved value)."""
        if len(blob) < _NONCE_LENGTH + _TAG_LENGTH:
            raise AuthenticationFailed(f"a sealed {column} value is too short")
        try:
            return self._aead.decrypt(
                bytes(blob[:_NONCE_LENGTH]), bytes(blob[_NONCE_LENGTH:]), self._aad(column, row)
            )
        except InvalidTag as exc:
            raise AuthenticationFailed(f"a sealed {column} value does not open") from exc

    def __repr__(self) -> str:
        return "MasterKey(<256-bit>)"
