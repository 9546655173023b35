"""Manufacturer manifests: the meters and their keys, as a maker ships them (specs §3.3).

CSV with a header row ``system_title,kt[,ki]``, or TOML with ``[[meter]]`` tables holding the
same keys; every value in hex. Errors name the file and the line or entry, never a key.
"""

from __future__ import annotations

import csv
import tomllib
from pathlib import Path
from typing import Any

from cosemcast.errors import ConfigurationError
from cosemcast.supervision.kdf import KT_LENGTHS

__all__ = ["read_manifest"]


def _hex_field(value: object, what: str, where: str, lengths: tuple[int, ...]) -> bytes:
    if not isinstance(value, str):
        raise ConfigurationError(f"{where}: {what} must be a hex string")
    try:
        raw = bytes.fromhex(value.strip())
    except ValueError as exc:
        raise ConfigurationError(f"{where}: {what} is not hex") from exc
    if len(raw) not in lengths:
        allowed = " or ".join(str(n) for n in lengths)
        raise ConfigurationError(f"{where}: {what} is {len(raw)} bytes, expected {allowed}")
    return raw


def read_manifest(path: str | Path) -> list[tuple[bytes, bytes, bytes | None]]:
    """Read a manufacturer manifest: ``(meter_id, kt, ki or None)`` per meter (specs §3.3).

    CSV with a header row ``system_title,kt[,ki]``, or TOML with ``[[meter]]`` tables holding
    the same keys; values in hex. Errors name the line or entry, never a key.
    """
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read the manifest {source}: {exc}") from exc
    entries: list[tuple[str, dict[str, Any]]] = []
    if source.suffix.lower() == ".toml":
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{source}: {exc}") from exc
        tables = document.get("meter", [])
        if not isinstance(tables, list):
            raise ConfigurationError(f"{source}: 'meter' must be an array of tables")
        entries = [(f"{source} meter #{n + 1}", dict(t)) for n, t in enumerate(tables)]
    else:
        reader = csv.DictReader(text.splitlines())
        if reader.fieldnames is None or not {"system_title", "kt"} <= set(reader.fieldnames):
            raise ConfigurationError(f"{source}: the CSV header needs system_title,kt[,ki]")
        entries = [(f"{source} line {n + 2}", dict(row)) for n, row in enumerate(reader)]
    meters = []
    for where, entry in entries:
        meter_id = _hex_field(entry.get("system_title"), "system_title", where, (8,))
        kt = _hex_field(entry.get("kt"), "kt", where, KT_LENGTHS)
        ki_text = entry.get("ki")
        ki = _hex_field(ki_text, "ki", where, (16,)) if ki_text else None
        meters.append((meter_id, kt, ki))
    return meters
