"""A head-end's channel credentials file, and its head-end key file (specs/supervision.md §8.1.4).

``cosemcast supervision head-end add`` writes the first (mode 0600), ``cosemcast supervision
assign`` reads it; format::

    [supervision]
    head_end_id = "48454E4400000001"   # the head-end's system title (calling-AP-title)
    centre_id = "5355504500000001"     # pins the centre's system title
    centre = "127.0.0.1:4063"          # where the centre listens
    ek = "..."                         # channel keys (secret)
    ak = "..."
    counters = "48454E4400000001.counters"   # invocation counters, relative to this file

:func:`add_head_end_key` puts an assigned meter's ``Ks`` into the key file of
``cosemcast headend listen`` (``[meters.<ID>] ks = ...``), appending, never rewriting.
Errors name the file and the field, never a value.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from cosemcast.errors import ConfigurationError
from cosemcast.supervision.channel import DEFAULT_PORT, ChannelKeys

__all__ = ["ChannelCredentials", "add_head_end_key", "write_private"]


def write_private(path: Path, text: str, *, append: bool = False) -> None:
    """Write ``text`` to a file only its owner may read (created with mode 0600)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    try:
        fd = os.open(path, flags, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise ConfigurationError(f"cannot write {path}: {exc.strerror}") from exc


def _hex(table: dict[str, object], name: str, length: int, file: Path) -> bytes:
    value = table.get(name)
    if not isinstance(value, str):
        raise ConfigurationError(f"{file}: [supervision] {name} is missing or not a string")
    try:
        raw = bytes.fromhex(value)
    except ValueError as exc:
        raise ConfigurationError(f"{file}: [supervision] {name} is not hex") from exc
    if len(raw) != length:
        raise ConfigurationError(f"{file}: [supervision] {name} is not {length} bytes")
    return raw


@dataclass(frozen=True, slots=True)
class ChannelCredentials:
    """What a head-end needs to reach the centre; the keys stay out of the repr."""

    head_end_id: bytes
    centre_id: bytes
    host: str
    port: int
    counters: Path
    keys: ChannelKeys = field(repr=False)

    def to_toml(self, *, counters_name: str) -> str:
        return (
            f"# cosemcast supervision: channel credentials of head-end "
            f"{self.head_end_id.hex().upper()}. Secret: keep this file private.\n"
            "[supervision]\n"
            f'head_end_id = "{self.head_end_id.hex().upper()}"\n'
            f'centre_id = "{self.centre_id.hex().upper()}"\n'
            f'centre = "{self.host}:{self.port}"\n'
            f'ek = "{self.keys.ek.hex().upper()}"\n'
            f'ak = "{self.keys.ak.hex().upper()}"\n'
            f'counters = "{counters_name}"\n'
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ChannelCredentials:
        file = Path(path)
        try:
            document = tomllib.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigurationError(f"{file}: cannot read the credentials: {exc}") from exc
        table = document.get("supervision")
        if not isinstance(table, dict):
            raise ConfigurationError(f"{file}: no [supervision] table")
        centre = table.get("centre", f"127.0.0.1:{DEFAULT_PORT}")
        host, _, port = str(centre).rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) <= 0xFFFF:
            raise ConfigurationError(f"{file}: [supervision] centre is not HOST:PORT")
        counters = Path(str(table.get("counters", "supervision.counters")))
        return cls(
            head_end_id=_hex(table, "head_end_id", 8, file),
            centre_id=_hex(table, "centre_id", 8, file),
            host=host.strip("[]"),
            port=int(port),
            counters=counters if counters.is_absolute() else file.parent / counters,
            keys=ChannelKeys(_hex(table, "ek", 16, file), _hex(table, "ak", 16, file)),
        )


def add_head_end_key(path: Path, *, head_end_id: bytes, meter_id: bytes, ks: bytes) -> bool:
    """Add ``[meters.<meter>] ks`` to a head-end key file; False if it holds that Ks already.

    A missing file is created (mode 0600) with ``system_title``. A meter already in the file
    with another Ks is refused: the file is not rewritten (comments would be lost).
    """
    name = meter_id.hex().upper()
    if path.exists():
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigurationError(f"{path}: cannot read the head-end key file: {exc}") from exc
        meters = document.get("meters", {})
        entry = meters.get(name) if isinstance(meters, dict) else None
        if isinstance(entry, dict):
            if str(entry.get("ks", "")).upper() == ks.hex().upper():
                return False
            raise ConfigurationError(
                f"{path}: meter {name} is already there with another key; remove its "
                f"[meters.{name}] table and run again"
            )
        write_private(path, f'\n[meters.{name}]\nks = "{ks.hex().upper()}"\n', append=True)
        return True
    write_private(
        path,
        "# cosemcast headend key file (secret: keep it private)\n"
        f'system_title = "{head_end_id.hex().upper()}"\n'
        f'\n[meters.{name}]\nks = "{ks.hex().upper()}"\n',
    )
    return True
