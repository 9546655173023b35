"""SQLite plumbing of the registry: connections, migrations, decisions and the audit log.

Theory of operation (specs/supervision.md §3.1, §3.4). Each thread gets its own connection (WAL,
foreign keys, full sync). :meth:`SqliteStore._decide` runs one decision in a ``BEGIN
IMMEDIATE`` transaction: accepted, its changes commit with one ``accepted`` audit row; rejected
(any :class:`~cosemcast.errors.DlmsError`), it rolls back and one ``rejected`` audit row is
written on its own. The schema is migrated on open (:mod:`._schema`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Self, TypeVar

from cosemcast.errors import AuthenticationFailed, ConfigurationError, DlmsError
from cosemcast.supervision._schema import MIGRATIONS, SCHEMA_VERSION
from cosemcast.supervision.atrest import MasterKey

__all__ = ["Decision", "SqliteStore"]

_T = TypeVar("_T")


@dataclass(slots=True)
class Decision:
    """What the audit row of a decision names; filled in as the decision runs."""

    meter_id: bytes | None = None
    head_end_id: bytes | None = None
    detail: str = ""


class SqliteStore:
    """The database under :class:`~cosemcast.supervision.registry.Registry`."""

    def __init__(self, path: str | Path, master_key: MasterKey) -> None:
        self.path = Path(path)
        self._master = master_key
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._migrate()
        self._check_master_key()

    # --- connections and transactions -----------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=60.0, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = FULL")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def release_thread(self) -> None:
        """Close the calling thread's connection (a server thread that is about to end)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            return
        self._local.conn = None
        with self._lock:
            if conn in self._connections:
                self._connections.remove(conn)
        conn.close()

    def close(self) -> None:
        """Close every connection this registry opened (call when no thread uses it any more)."""
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        with self._write() as conn:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise ConfigurationError(
                    f"{self.path}: schema version {version} is newer than this code "
                    f"({SCHEMA_VERSION})"
                )
            for step in MIGRATIONS[version:]:
                for statement in step:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def schema_version(self) -> int:
        return int(self._conn().execute("PRAGMA user_version").fetchone()[0])

    def _setting(self, name: str) -> bytes | None:
        row = self._conn().execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
        return None if row is None else bytes(row[0])

    def _check_master_key(self) -> None:
        check = self._setting("master_check")
        if check is None:
            return
        try:
            self._master.open(check, column="settings.master_check", row=b"")
        except AuthenticationFailed as exc:
            raise ConfigurationError(f"{self.path}: the master key does not open it") from exc

    # --- decisions and the audit log -----------------------------------------------------------

    @staticmethod
    def _audit(
        conn: sqlite3.Connection,
        now: int,
        actor: str,
        operation: str,
        decision: Decision,
        verdict: str,
    ) -> None:
        conn.execute(
            "INSERT INTO audit (at, actor, operation, meter_id, head_end_id, decision, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                now,
                actor,
                operation,
                decision.meter_id,
                decision.head_end_id,
                verdict,
                decision.detail,
            ),
        )

    def record(
        self,
        operation: str,
        *,
        actor: str,
        now: int,
        accepted: bool,
        detail: str,
        meter_id: bytes | None = None,
        head_end_id: bytes | None = None,
    ) -> None:
        """Append one audit row for a decision taken outside the registry (the channel's)."""
        decision = Decision(meter_id, head_end_id, detail)
        with self._write() as conn:
            self._audit(
                conn, now, actor, operation, decision, "accepted" if accepted else "rejected"
            )

    def _decide(
        self,
        operation: str,
        actor: str,
        now: int,
        run: Callable[[sqlite3.Connection, Decision], _T],
        decision: Decision | None = None,
    ) -> _T:
        decision = decision if decision is not None else Decision()
        try:
            with self._write() as conn:
                result = run(conn, decision)
                self._audit(conn, now, actor, operation, decision, "accepted")
            return result
        except DlmsError as exc:
            decision.detail = f"{type(exc).__name__}: {exc}"
            with self._write() as conn:
                self._audit(conn, now, actor, operation, decision, "rejected")
            raise
