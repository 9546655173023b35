"""The key ring: the keys we share with each party, found by that party's system title.

Theory of operation. A :class:`PartyKeys` entry holds what protects traffic *from* one party
(the system title that goes into the GCM IV, brief §5.2): its global unicast key ``ek``, the
authentication key ``ak``, and optionally the global broadcast key, the master key (KEK of
wrapped keys, brief §6.2), a dedicated key, and suite 1/2 key pairs (our private keys for that
identity, or the peer's public keys used to check its signatures and agree keys).
:class:`KeyRing` maps system titles to entries and caches the ready-to-use
:class:`~cosemcast.security.gcm.SymmetricKeys` so the AES context is built once per key.

Key files are TOML, one ``[[keys]]`` table per party (the format of
``captures/keys.toml``)::

    [[keys]]
    system_title = "4D4D4D0000BC614E"          # 8 bytes, hex
    ek = "000102030405060708090A0B0C0D0E0F"    # 16 or 32 bytes, hex
    ak = "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"    # optional
    kek = "..."                                 # optional master key
    dedicated_key = "..."                       # optional
    broadcast_key = "..."                       # optional global broadcast key
    signing_private_key = "meter-sign.pem"      # optional: PEM text or a path
    agreement_private_key = "..."               # (relative to the TOML file)
    signing_public_key = "..."                  # optional PEM public key or certificate
    agreement_public_key = "..."

Every problem in a file raises :class:`~cosemcast.errors.ConfigurationError` naming the file,
the entry and the field. No key byte ever appears in a message or a repr.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cosemcast.errors import ConfigurationError, KeyUnavailableError
from cosemcast.security.gcm import SymmetricKeys

__all__ = ["KeyRing", "KeySet", "PartyKeys", "party_from_table"]

KeySet = Literal["unicast", "broadcast", "dedicated"]

_SYSTEM_TITLE_LENGTH = 8
_SYMMETRIC_LENGTHS = (16, 32)
_CURVES = ("secp256r1", "secp384r1")


def _check_symmetric(name: str, value: bytes | None, *, optional: bool) -> None:
    if value is None or (optional and value == b""):
        return
    if len(value) not in _SYMMETRIC_LENGTHS:
        raise ConfigurationError(f"{name} must be 16 or 32 bytes, got {len(value)}")


def _check_curve(name: str, key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> None:
    if key.curve.name not in _CURVES:
        raise ConfigurationError(f"{name} must be on P-256 or P-384, not {key.curve.name}")


@dataclass(frozen=True, slots=True)
class PartyKeys:
    """The keys for traffic protected by the party with this system title."""

    system_title: bytes
    ek: bytes = field(repr=False)
    ak: bytes = field(repr=False, default=b"")
    kek: bytes | None = field(repr=False, default=None)
    dedicated_key: bytes | None = field(repr=False, default=None)
    broadcast_key: bytes | None = field(repr=False, default=None)
    signing_private_key: ec.EllipticCurvePrivateKey | None = field(repr=False, default=None)
    agreement_private_key: ec.EllipticCurvePrivateKey | None = field(repr=False, default=None)
    signing_public_key: ec.EllipticCurvePublicKey | None = field(repr=False, default=None)
    agreement_public_key: ec.EllipticCurvePublicKey | None = field(repr=False, default=None)

    def __post_init__(self) -> None:
        if len(self.system_title) != _SYSTEM_TITLE_LENGTH:
            raise ConfigurationError(f"system_title must be 8 bytes, got {len(self.system_title)}")
        _check_symmetric("ek", self.ek, optional=False)
        _check_symmetric("ak", self.ak, optional=True)
        _check_symmetric("kek", self.kek, optional=False)
        _check_symmetric("dedicated_key", self.dedicated_key, optional=False)
        _check_symmetric("broadcast_key", self.broadcast_key, optional=False)
        for name in (
            "signing_private_key",
            "agreement_private_key",
            "signing_public_key",
            "agreement_public_key",
        ):
            key = getattr(self, name)
            if key is not None:
                _check_curve(name, key)

    def block_cipher_key(self, key_set: KeySet) -> bytes:
        """EK for ``key_set``; :class:`KeyUnavailableError` if this entry has none."""
        if key_set == "unicast":
            return self.ek
        key = self.broadcast_key if key_set == "broadcast" else self.dedicated_key
        if key is None:
            raise KeyUnavailableError(
                f"no {key_set} key for system title {self.system_title.hex().upper()}"
            )
        return key


class KeyRing:
    """Party keys by system title; the symmetric contexts are built once and cached."""

    __slots__ = ("_cache", "_parties")

    def __init__(self, parties: Iterable[PartyKeys] = ()) -> None:
        self._parties: dict[bytes, PartyKeys] = {}
        self._cache: dict[tuple[bytes, KeySet], SymmetricKeys] = {}
        for keys in parties:
            self.add(keys)

    def add(self, keys: PartyKeys) -> None:
        """Add or replace the entry for ``keys.system_title``."""
        st = bytes(keys.system_title)
        self._parties[st] = keys
        for key_set in ("unicast", "broadcast", "dedicated"):
            self._cache.pop((st, key_set), None)

    def get(self, system_title: bytes) -> PartyKeys | None:
        return self._parties.get(bytes(system_title))

    def __iter__(self) -> Iterator[PartyKeys]:
        return iter(list(self._parties.values()))

    def __len__(self) -> int:
        return len(self._parties)

    def __contains__(self, system_title: object) -> bool:
        return isinstance(system_title, bytes | bytearray) and bytes(system_title) in self._parties

    def __repr__(self) -> str:
        titles = ", ".join(st.hex().upper() for st in self._parties)
        return f"KeyRing([{titles}])"

    def symmetric_keys(self, system_title: bytes, key_set: KeySet = "unicast") -> SymmetricKeys:
        """EK of ``key_set`` with the party's AK, ready for GCM (cached).

        Raises :class:`KeyUnavailableError` when the party or that key is unknown.
        """
        st = bytes(system_title)
        cached = self._cache.get((st, key_set))
        if cached is not None:
            return cached
        party = self._parties.get(st)
        if party is None:
            raise KeyUnavailableError(f"no keys for system title {st.hex().upper()}")
        keys = SymmetricKeys(party.block_cipher_key(key_set), party.ak)
        self._cache[(st, key_set)] = keys
        return keys

    @classmethod
    def from_toml(cls, path: str | Path) -> KeyRing:
        """Load a key file (module docstring); :class:`ConfigurationError` on any problem."""
        path = Path(path)
        try:
            with path.open("rb") as fh:
                document = tomllib.load(fh)
        except OSError as exc:
            raise ConfigurationError(f"{path}: cannot read the key file ({exc.strerror})") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{path}: not valid TOML ({exc})") from exc
        # A [client] table belongs to the client credentials format (specs/client.md), which
        # extends this one: one file serves `decode --keys` and `read --keys`.
        unknown = set(document) - {"keys", "client"}
        if unknown:
            raise ConfigurationError(
                f"{path}: unknown top-level entries {sorted(unknown)}; expected [[keys]] tables"
            )
        entries = document.get("keys")
        if not isinstance(entries, list) or not entries:
            raise ConfigurationError(f"{path}: no [[keys]] tables")
        ring = cls()
        for index, entry in enumerate(entries, start=1):
            where = f"{path}: [[keys]] entry {index}"
            if not isinstance(entry, dict):
                raise ConfigurationError(f"{where} is not a table")
            party = party_from_table(entry, where, path.parent)
            if party.system_title in ring:
                raise ConfigurationError(
                    f"{where}: system_title {party.system_title.hex().upper()} appears twice"
                )
            ring.add(party)
        return ring


_HEX_FIELDS = ("system_title", "ek", "ak", "kek", "dedicated_key", "broadcast_key")
_PRIVATE_FIELDS = ("signing_private_key", "agreement_private_key")
_PUBLIC_FIELDS = ("signing_public_key", "agreement_public_key")
_REQUIRED = ("system_title", "ek")


def party_from_table(entry: dict[str, Any], where: str, base: Path) -> PartyKeys:
    unknown = set(entry) - set(_HEX_FIELDS + _PRIVATE_FIELDS + _PUBLIC_FIELDS)
    if unknown:
        raise ConfigurationError(f"{where}: unknown fields {sorted(unknown)}")
    for name in _REQUIRED:
        if name not in entry:
            raise ConfigurationError(f"{where}: missing field {name!r}")
    values: dict[str, Any] = {}
    for name in _HEX_FIELDS:
        if name in entry:
            values[name] = _hex_field(entry[name], f"{where}: field {name!r}")
    for name in _PRIVATE_FIELDS:
        if name in entry:
            values[name] = _private_key(entry[name], f"{where}: field {name!r}", base)
    for name in _PUBLIC_FIELDS:
        if name in entry:
            values[name] = _public_key(entry[name], f"{where}: field {name!r}", base)
    try:
        return PartyKeys(**values)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc}") from exc


def _hex_field(value: object, where: str) -> bytes:
    if not isinstance(value, str):
        raise ConfigurationError(f"{where} must be a hex string, not {type(value).__name__}")
    try:
        return bytes.fromhex(value)
    except ValueError:
        # The value may be a key: say what is wrong without echoing it.
        raise ConfigurationError(f"{where} is not a hexadecimal string") from None


def _pem_bytes(value: object, where: str, base: Path) -> bytes:
    if not isinstance(value, str):
        raise ConfigurationError(f"{where} must be PEM text or a file path")
    if value.lstrip().startswith("-----BEGIN"):
        return value.encode("ascii", "replace")
    pem_path = base / value
    try:
        return pem_path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{where}: cannot read {pem_path} ({exc.strerror})") from exc


def _private_key(value: object, where: str, base: Path) -> ec.EllipticCurvePrivateKey:
    data = _pem_bytes(value, where, base)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"{where} is not an unencrypted PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigurationError(f"{where} is not an elliptic-curve key")
    return key


def _public_key(value: object, where: str, base: Path) -> ec.EllipticCurvePublicKey:
    data = _pem_bytes(value, where, base)
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            key: object = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"{where} is not a PEM public key or certificate") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ConfigurationError(f"{where} is not an elliptic-curve key")
    return key
