"""The software meter's persistent state, in SQLite (WAL), so that a restart loses nothing.

Theory of operation. Everything that changes while the meter runs is stored by logical device
(server SAP) and logical name:

* ``object_fields``: named values of an object (a register's value and energy accumulator, the
  clock offset, a push setup's attributes, ...), each as A-XDR-encoded COSEM data, so that
  any value type round-trips exactly;
* ``profile_rows``: the rows of each Profile generic buffer, in buffer order (``seq``);
* ``secrets``: keys changed by key_transfer and changed passwords. They are stored in clear
  (the file must be protected like the configuration that holds the initial keys) and never
  logged; :meth:`MeterState.__repr__` shows no value;
* ``meter_meta``: the source time the meter last advanced to, and the configuration's
  fingerprint.

Writes go through :meth:`MeterState.transaction`: one ``BEGIN IMMEDIATE`` … ``COMMIT`` per
request or time step, so a crash or a client dropping mid-request leaves either the state
before or the state after, never half of it. ``synchronous=NORMAL`` in WAL mode survives a
process crash (a power loss may lose the last commits; the invocation counters, which must
never repeat, live in the FULL-synchronous :class:`~cosemcast.security.counters.CounterStore`
of the same file).

Schema: the ``meter_schema_version`` table and :data:`_MIGRATIONS`, applied in order when the
file is opened (the counter stores keep their own ``schema_version`` table in the same file).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from cosemcast.axdr.codec import decode_data, encode_data
from cosemcast.axdr.types import Data, Structure
from cosemcast.errors import ConfigurationError, DecodeError, DlmsError

__all__ = ["SCHEMA_VERSION", "MeterState", "MeterStateError", "StateWriter"]

_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE meter_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
        "CREATE TABLE object_fields ("
        " device INTEGER NOT NULL, obis TEXT NOT NULL, field TEXT NOT NULL, value BLOB NOT NULL,"
        " PRIMARY KEY (device, obis, field)) WITHOUT ROWID",
        "CREATE TABLE profile_rows ("
        " device INTEGER NOT NULL, obis TEXT NOT NULL, seq INTEGER NOT NULL, row BLOB NOT NULL,"
        " PRIMARY KEY (device, obis, seq)) WITHOUT ROWID",
        "CREATE TABLE secrets ("
        " device INTEGER NOT NULL, owner TEXT NOT NULL, name TEXT NOT NULL, value BLOB NOT NULL,"
        " PRIMARY KEY (device, owner, name)) WITHOUT ROWID",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)


class MeterStateError(DlmsError):
    """The state file cannot be used (unreadable, newer schema, damaged values)."""


class StateWriter:
    """The writes of one transaction (see :meth:`MeterState.transaction`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def set_meta(self, name: str, value: str) -> None:
        self._conn.execute(
            "INSERT INTO meter_meta (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    def set_fields(self, device: int, obis: str, fields: Mapping[str, Data]) -> None:
        self._conn.executemany(
            "INSERT INTO object_fields (device, obis, field, value) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (device, obis, field) DO UPDATE SET value = excluded.value",
            [(device, obis, name, encode_data(value)) for name, value in fields.items()],
        )

    def append_rows(self, device: int, obis: str, rows: Iterable[Sequence[Data]]) -> None:
        """Append rows after the last stored one."""
        (last,) = self._conn.execute(
            "SELECT COALESCE(MAX(seq), -1) FROM profile_rows WHERE device = ? AND obis = ?",
            (device, obis),
        ).fetchone()
        self._conn.executemany(
            "INSERT INTO profile_rows (device, obis, seq, row) VALUES (?, ?, ?, ?)",
            [
                (device, obis, int(last) + 1 + i, encode_data(Structure(row)))
                for i, row in enumerate(rows)
            ],
        )

    def keep_last_rows(self, device: int, obis: str, count: int) -> None:
        """Drop all but the ``count`` rows with the highest ``seq``."""
        self._conn.execute(
            "DELETE FROM profile_rows WHERE device = ? AND obis = ? AND seq NOT IN ("
            " SELECT seq FROM profile_rows WHERE device = ? AND obis = ? "
            " ORDER BY seq DESC LIMIT ?)",
            (device, obis, device, obis, count),
        )

    def replace_rows(self, device: int, obis: str, rows: Iterable[Sequence[Data]]) -> None:
        self._conn.execute("DELETE FROM profile_rows WHERE device = ? AND obis = ?", (device, obis))
        self.append_rows(device, obis, rows)

    def replace_secrets(self, device: int, owner: str, secrets: Mapping[str, bytes]) -> None:
        """Make ``secrets`` the only secrets of ``owner`` (the others are deleted)."""
        self._conn.execute("DELETE FROM secrets WHERE device = ? AND owner = ?", (device, owner))
        for name, value in secrets.items():
            self.set_secret(device, owner, name, value)

    def set_secret(self, device: int, owner: str, name: str, value: bytes) -> None:
        self._conn.execute(
            "INSERT INTO secrets (device, owner, name, value) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (device, owner, name) DO UPDATE SET value = excluded.value",
            (device, owner, name, bytes(value)),
        )


class MeterState:
    """The meter's SQLite state file; thread-safe (one connection under a lock)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise MeterStateError(f"{self.path}: cannot open the meter state: {exc}") from exc
        try:
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise MeterStateError(f"{self.path}: SQLite refused WAL mode (got {mode!r})")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            with self.transaction():
                self._migrate()
        except sqlite3.Error as exc:
            self._conn.close()
            raise MeterStateError(f"{self.path}: cannot use the meter state: {exc}") from exc
        except BaseException:
            self._conn.close()
            raise
        self._closed = False

    def __repr__(self) -> str:
        return f"MeterState({str(self.path)!r})"

    def _migrate(self) -> None:
        conn = self._conn
        conn.execute("CREATE TABLE IF NOT EXISTS meter_schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM meter_schema_version").fetchone()
        if row is None:
            conn.execute("INSERT INTO meter_schema_version (version) VALUES (0)")
            version = 0
        else:
            version = int(row[0])
        if version > SCHEMA_VERSION:
            raise MeterStateError(
                f"{self.path}: meter state schema {version} is newer than this code "
                f"({SCHEMA_VERSION}); use a newer cosemcast or another --state file"
            )
        for step in _MIGRATIONS[version:]:
            for statement in step:
                conn.execute(statement)
        conn.execute("UPDATE meter_schema_version SET version = ?", (SCHEMA_VERSION,))

    @contextmanager
    def transaction(self) -> Iterator[StateWriter]:
        """One atomic write: committed when the block exits, rolled back if it raises."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise MeterStateError(f"{self.path}: cannot write the meter state: {exc}") from exc
            try:
                yield StateWriter(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise MeterStateError(f"{self.path}: cannot write the meter state: {exc}") from exc

    def _query(self, sql: str, args: tuple[object, ...]) -> list[tuple[object, ...]]:
        with self._lock:
            try:
                return self._conn.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise MeterStateError(f"{self.path}: cannot read the meter state: {exc}") from exc

    def meta(self, name: str) -> str | None:
        rows = self._query("SELECT value FROM meter_meta WHERE name = ?", (name,))
        return None if not rows else str(rows[0][0])

    def fields(self, device: int, obis: str) -> dict[str, Data]:
        rows = self._query(
            "SELECT field, value FROM object_fields WHERE device = ? AND obis = ?", (device, obis)
        )
        return {str(name): self._decode(value, f"{obis} {name}") for name, value in rows}

    def rows(self, device: int, obis: str) -> list[tuple[Data, ...]]:
        raw = self._query(
            "SELECT row FROM profile_rows WHERE device = ? AND obis = ? ORDER BY seq",
            (device, obis),
        )
        rows = []
        for (value,) in raw:
            row = self._decode(value, f"a row of {obis}")
            if not isinstance(row, Structure):
                raise MeterStateError(f"{self.path}: a row of {obis} is not a structure")
            rows.append(tuple(row))
        return rows

    def secrets(self, device: int, owner: str) -> dict[str, bytes]:
        rows = self._query(
            "SELECT name, value FROM secrets WHERE device = ? AND owner = ?", (device, owner)
        )
        return {str(name): bytes(value) for name, value in rows if isinstance(value, bytes)}

    def _decode(self, value: object, what: str) -> Data:
        if not isinstance(value, bytes):
            raise MeterStateError(f"{self.path}: the stored {what} is not a blob")
        try:
            return decode_data(value)
        except DecodeError as exc:
            raise MeterStateError(f"{self.path}: the stored {what} is damaged: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()


def check_state_path(path: str | os.PathLike[str]) -> Path:
    """The state path, refused early when its directory does not exist."""
    file = Path(path)
    if not file.parent.exists():
        raise ConfigurationError(f"{file}: the directory for the meter state does not exist")
    return file
