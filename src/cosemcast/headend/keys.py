"""The head-end's key file (TOML): its system title, its ``Ks`` per meter, its private key.

Format::

    system_title = "4D4D4D0000000001"
    private_key = "headend.pem"          # optional: P-256 private key, PEM file (relative to
                                         # this file) or the PEM text itself
    allow_unauthenticated_agreement = false   # optional (specs §4.3, key-parameters 81)

    [meters.4D4D4D0000BC614E]
    ks = "000102030405060708090A0B0C0D0E0F"   # the Ks shared with this meter, or
    agreement_public_key = "04…"              # the meter's static P-256 key (X9.62 hex or PEM)

Errors are :class:`~cosemcast.errors.ConfigurationError` naming the file and the entry, never
a key value.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from cosemcast.errors import ConfigurationError

__all__ = ["HeadEndKeys", "MeterKeys", "load_keys"]


@dataclass(frozen=True, slots=True)
class MeterKeys:
    """What the head-end knows about one meter."""

    shared_key: bytes | None = field(default=None, repr=False)
    agreement_public_key: ec.EllipticCurvePublicKey | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class HeadEndKeys:
    """The content of a key file."""

    system_title: bytes
    meters: dict[bytes, MeterKeys]
    private_key: ec.EllipticCurvePrivateKey | None = field(default=None, repr=False)
    allow_unauthenticated_agreement: bool = False


def _hex(value: object, length: int, what: str, path: Path) -> bytes:
    if not isinstance(value, str):
        raise ConfigurationError(f"{path}: {what} must be a hex string")
    try:
        raw = bytes.fromhex(value.replace(" ", ""))
    except ValueError as exc:
        raise ConfigurationError(f"{path}: {what} is not hex") from exc
    if len(raw) != length:
        raise ConfigurationError(f"{path}: {what} must be {length} bytes, got {len(raw)}")
    return raw


def _pem(value: str, base: Path) -> bytes:
    if value.lstrip().startswith("-----BEGIN"):
        return value.encode()
    return (base / value).read_bytes()


def _private_key(value: object, path: Path) -> ec.EllipticCurvePrivateKey:
    if not isinstance(value, str):
        raise ConfigurationError(f"{path}: private_key must be a PEM file name or PEM text")
    try:
        key = load_pem_private_key(_pem(value, path.parent), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigurationError(f"{path}: cannot load private_key: {type(exc).__name__}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ConfigurationError(f"{path}: private_key must be a P-256 key")
    return key


def _public_key(value: object, what: str, path: Path) -> ec.EllipticCurvePublicKey:
    if not isinstance(value, str):
        raise ConfigurationError(f"{path}: {what} must be X9.62 hex or PEM")
    try:
        if value.lstrip().startswith("-----BEGIN") or value.endswith(".pem"):
            key = load_pem_public_key(_pem(value, path.parent))
        else:
            point = bytes.fromhex(value.replace(" ", ""))
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigurationError(f"{path}: cannot load {what}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ConfigurationError(f"{path}: {what} must be a P-256 key")
    return key


def load_keys(path: str | Path) -> HeadEndKeys:
    """Read and check a head-end key file."""
    file = Path(path)
    try:
        document = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"{file}: cannot read the key file: {exc}") from exc
    system_title = _hex(document.get("system_title"), 8, "system_title", file)
    private_key = None
    if "private_key" in document:
        private_key = _private_key(document["private_key"], file)
    meters: dict[bytes, MeterKeys] = {}
    table = document.get("meters", {})
    if not isinstance(table, dict):
        raise ConfigurationError(f"{file}: [meters] must be a table")
    for name, entry in table.items():
        meter = _hex(name, 8, f"meter {name!r}", file)
        if not isinstance(entry, dict):
            raise ConfigurationError(f"{file}: [meters.{name}] must be a table")
        shared = None
        if "ks" in entry:
            shared = _hex(entry["ks"], 16, f"meters.{name}.ks", file)
        public = None
        if "agreement_public_key" in entry:
            public = _public_key(
                entry["agreement_public_key"], f"meters.{name}.agreement_public_key", file
            )
        if shared is None and public is None:
            raise ConfigurationError(f"{file}: [meters.{name}] needs ks or agreement_public_key")
        meters[meter] = MeterKeys(shared, public)
    allow = document.get("allow_unauthenticated_agreement", False)
    if not isinstance(allow, bool):
        raise ConfigurationError(f"{file}: allow_unauthenticated_agreement must be true or false")
    return HeadEndKeys(system_title, meters, private_key, allow)
