"""Invocation-counter stores: never send a counter twice, never accept one twice (brief §5.1).

An invocation counter (IC) must never repeat under one key (brief §5.1): IV = system title ‖ IC
(brief §5.2), and two GCM messages under one (key, IV) leak the XOR of their plaintexts and the
authentication subkey. :class:`CounterStore` hands out counters for sending;
:class:`ReceivedCounterStore` remembers the highest counter accepted from a peer and refuses the
rest with :class:`ReplayError` (brief §5.1, §12 item 6).

Crash safety of the sending side (``specs/security.md`` §5). The database holds, per key id,
``reserved_up_to``: no counter at or above it was ever handed out. To hand out counters the
store first raises ``reserved_up_to`` by a block (``BEGIN IMMEDIATE`` … ``COMMIT`` with
``synchronous=FULL`` in WAL mode, so the commit is on disk before it returns), and only then
hands out the block's counters from memory. A process killed at any instant has handed out
only counters below the durable ``reserved_up_to``; after a restart the store resumes *at*
``reserved_up_to``, skipping whatever was left of the block. Reservations are atomic
transactions, so processes sharing one file get disjoint blocks.

Keys. A key id names one key, never contains it: a caller-given label, or
:func:`make_key_id` (system title, purpose and a domain-separated one-way fingerprint of the
key). After a key change the counters restart at 0 (brief §8), which is safe only under a new
key id: :meth:`CounterStore.reset_for_new_key` refuses an id that has already issued counters.
The highest counter is 2^32 - 1; past it the store raises :class:`CounterExhaustedError` and a
new key is needed.

Schema: a ``schema_version`` table and the migrations in :data:`_MIGRATIONS`, applied in order
when a file is opened. Both stores may share one file. Thread-safe; sans-IO apart from the
SQLite file.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from cosemcast.errors import ReplayError, SecurityError

__all__ = [
    "MAX_INVOCATION_COUNTER",
    "SCHEMA_VERSION",
    "CounterExhaustedError",
    "CounterReuseError",
    "CounterStore",
    "CounterStoreError",
    "ReceivedCounterStore",
    "key_fingerprint",
    "make_key_id",
]

MAX_INVOCATION_COUNTER = 0xFFFFFFFF
# The first counter handed out under a new key (decision, specs/security.md §5): 1, as gurux's
# meter does; dlms-cosem's client treats 0 as already seen and refuses it (verified by
# tests/test_interop_dlms_cosem.py). CounterStore(first=0) is available for peers that want 0.
FIRST_COUNTER = 1
_CEILING = MAX_INVOCATION_COUNTER + 1
_MAX_KEY_ID_LENGTH = 200
_FINGERPRINT_DOMAIN = b"cosemcast/invocation-counter-key-id/v1\x00"

_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE sent_counters ("
        " key_id TEXT PRIMARY KEY,"
        " reserved_up_to INTEGER NOT NULL CHECK (reserved_up_to BETWEEN 0 AND 4294967296)"
        ") WITHOUT ROWID",
        "CREATE TABLE received_counters ("
        " key_id TEXT PRIMARY KEY,"
        " highest INTEGER NOT NULL CHECK (highest BETWEEN 0 AND 4294967295)"
        ") WITHOUT ROWID",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)


class CounterStoreError(SecurityError):
    """The counter store cannot be used (database error, unknown schema, closed)."""


class CounterExhaustedError(CounterStoreError):
    """Every counter 0..2^32-1 of this key id has been reserved: change the key."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(
            f"invocation counters of key id {key_id!r} are exhausted (2^32-1 reached); "
            "establish a new key"
        )


class CounterReuseError(CounterStoreError):
    """A reset would hand out counters again under a key id that already used them."""


def key_fingerprint(key: bytes) -> str:
    """A one-way, domain-separated fingerprint of a key (32 hex digits), for key ids only."""
    return hashlib.sha256(_FINGERPRINT_DOMAIN + bytes(key)).digest()[:16].hex()


def make_key_id(system_title: bytes, purpose: str, key: bytes | None = None) -> str:
    """``"<purpose>/<system title hex>[/<fingerprint>]"``, e.g. ``"guek/4d4d4d0000bc614e/…"``.

    With ``key`` the id changes whenever the key does, so a new key starts at counter 0 and a
    key that comes back continues where it stopped. The key itself is never stored.
    """
    if len(system_title) != 8:
        raise ValueError(f"a system title is 8 bytes, got {len(system_title)}")
    if not purpose or "/" in purpose:
        raise ValueError("a key purpose is a non-empty name without '/'")
    key_id = f"{purpose}/{bytes(system_title).hex()}"
    return key_id if key is None else f"{key_id}/{key_fingerprint(key)}"


def _check_key_id(key_id: str) -> None:
    if not isinstance(key_id, str) or not 0 < len(key_id) <= _MAX_KEY_ID_LENGTH:
        raise ValueError(f"a key id is a string of 1 to {_MAX_KEY_ID_LENGTH} characters")


def _fsync_directory(path: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Database:
    """One SQLite connection in WAL mode, its schema migrated, used under the owner's lock."""

    def __init__(self, path: str | os.PathLike[str], synchronous: Literal["FULL", "NORMAL"]):
        file = Path(path)
        created = not file.exists()
        self.closed = False
        try:
            self.conn = sqlite3.connect(
                file, timeout=30.0, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise CounterStoreError(f"{file}: cannot open the counter store: {exc}") from exc
        try:
            mode = self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise CounterStoreError(f"{file}: SQLite refused WAL mode (got {mode!r})")
            self.conn.execute(f"PRAGMA synchronous={synchronous}")
            self.conn.execute("PRAGMA fullfsync=ON")
            with self.transaction() as conn:
                self._migrate(conn, file)
            if created:
                _fsync_directory(file.resolve().parent)
        except sqlite3.Error as exc:
            self.conn.close()
            raise CounterStoreError(f"{file}: cannot open the counter store: {exc}") from exc
        except BaseException:
            self.conn.close()
            raise

    @staticmethod
    def _migrate(conn: sqlite3.Connection, file: Path) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (0)")
            version = 0
        else:
            version = int(row[0])
        if version > SCHEMA_VERSION:
            raise CounterStoreError(
                f"{file}: schema version {version} is newer than this code ({SCHEMA_VERSION})"
            )
        for step in _MIGRATIONS[version:]:
            for statement in step:
                conn.execute(statement)
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; the commit is durable when this block exits."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def check_open(self) -> None:
        if self.closed:
            raise CounterStoreError("the counter store is closed")

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.conn.close()


class CounterStore:
    """Hands out invocation counters for sending, each at most once per key id, ever.

    ``block`` counters are reserved durably at a time; a crash skips at most ``block - 1``.
    Counters from one store object are strictly increasing per key id; processes sharing the
    file get disjoint values. Reset a key id from the process that draws from it.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, block: int = 1000, first: int = FIRST_COUNTER
    ) -> None:
        if not 1 <= block <= _CEILING:
            raise ValueError(f"block must be 1 to 2^32, got {block}")
        if not 0 <= first < _CEILING:
            raise ValueError(f"first counter must be 0 to 2^32-1, got {first}")
        self._block = block
        self._first = first
        self._lock = threading.Lock()
        self._ranges: dict[str, list[int]] = {}
        self._db = _Database(path, "FULL")

    def __repr__(self) -> str:
        return f"CounterStore(block={self._block}, key_ids_cached={len(self._ranges)})"

    def next(self, key_id: str) -> int:
        """The next invocation counter for ``key_id``; never returned before, by anyone."""
        _check_key_id(key_id)
        with self._lock:
            self._db.check_open()
            current = self._ranges.get(key_id)
            if current is None or current[0] >= current[1]:
                current = self._reserve(key_id)
            value = current[0]
            current[0] = value + 1
            return value

    def _reserve(self, key_id: str) -> list[int]:
        try:
            with self._db.transaction() as conn:
                row = conn.execute(
                    "SELECT reserved_up_to FROM sent_counters WHERE key_id = ?", (key_id,)
                ).fetchone()
                start = self._first if row is None else int(row[0])
                if start >= _CEILING:
                    raise CounterExhaustedError(key_id)
                limit = min(start + self._block, _CEILING)
                conn.execute(
                    "INSERT INTO sent_counters (key_id, reserved_up_to) VALUES (?, ?) "
                    "ON CONFLICT (key_id) DO UPDATE SET reserved_up_to = excluded.reserved_up_to",
                    (key_id, limit),
                )
        except sqlite3.Error as exc:
            self._ranges.pop(key_id, None)
            raise CounterStoreError(f"cannot reserve counters for {key_id!r}: {exc}") from exc
        current = [start, limit]
        self._ranges[key_id] = current
        return current

    def peek(self, key_id: str) -> int:
        """The counter :meth:`next` would return now (2^32 when exhausted); consumes nothing."""
        _check_key_id(key_id)
        with self._lock:
            self._db.check_open()
            current = self._ranges.get(key_id)
            if current is not None and current[0] < current[1]:
                return current[0]
            try:
                row = self._db.conn.execute(
                    "SELECT reserved_up_to FROM sent_counters WHERE key_id = ?", (key_id,)
                ).fetchone()
            except sqlite3.Error as exc:
                raise CounterStoreError(f"cannot read counters of {key_id!r}: {exc}") from exc
            return self._first if row is None else int(row[0])

    def reset_for_new_key(self, key_id: str) -> None:
        """Start ``key_id``, the id of a *new* key, at counter 0 (brief §8).

        Refused with :class:`CounterReuseError` when ``key_id`` has already reserved counters:
        restarting an old key at 0 would repeat IVs. Give the new key a new id.
        """
        _check_key_id(key_id)
        with self._lock:
            self._db.check_open()
            try:
                with self._db.transaction() as conn:
                    row = conn.execute(
                        "SELECT reserved_up_to FROM sent_counters WHERE key_id = ?", (key_id,)
                    ).fetchone()
                    if row is not None and int(row[0]) > 0:
                        raise CounterReuseError(
                            f"key id {key_id!r} has already issued counters; "
                            "a new key needs a new key id"
                        )
                    conn.execute(
                        "INSERT OR IGNORE INTO sent_counters (key_id, reserved_up_to) "
                        "VALUES (?, 0)",
                        (key_id,),
                    )
            except sqlite3.Error as exc:
                raise CounterStoreError(f"cannot reset {key_id!r}: {exc}") from exc
            self._ranges.pop(key_id, None)

    def close(self) -> None:
        """Close the database; the unused rest of each cached block is skipped."""
        with self._lock:
            self._ranges.clear()
            self._db.close()

    def __enter__(self) -> CounterStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ReceivedCounterStore:
    """The highest invocation counter accepted per peer key id; refuses anything not above it.

    Call :meth:`check` before the tag is verified (cheap rejection) and
    :meth:`check_and_update` only *after* it verifies, so that forged messages cannot push the
    counter up. ``synchronous="NORMAL"`` trades durability against power loss (not against a
    process crash) for throughput.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, got {synchronous!r}")
        self._lock = threading.Lock()
        self._db = _Database(path, synchronous)

    def __repr__(self) -> str:
        return "ReceivedCounterStore()"

    @staticmethod
    def _check_counter(invocation_counter: int) -> None:
        if not 0 <= invocation_counter <= MAX_INVOCATION_COUNTER:
            raise ValueError(f"invocation counter {invocation_counter} is not a u32")

    def _highest(self, key_id: str) -> int | None:
        row = self._db.conn.execute(
            "SELECT highest FROM received_counters WHERE key_id = ?", (key_id,)
        ).fetchone()
        return None if row is None else int(row[0])

    @staticmethod
    def _replay(key_id: str, received: int, highest: int) -> ReplayError:
        return ReplayError(
            f"invocation counter {received} of key id {key_id!r} is not above {highest}",
            received=received,
            expected_min=highest + 1,
        )

    def peek(self, key_id: str) -> int | None:
        """The highest counter accepted so far for ``key_id``, or None."""
        _check_key_id(key_id)
        with self._lock:
            self._db.check_open()
            try:
                return self._highest(key_id)
            except sqlite3.Error as exc:
                raise CounterStoreError(f"cannot read counters of {key_id!r}: {exc}") from exc

    def check(self, key_id: str, invocation_counter: int) -> None:
        """Raise :class:`ReplayError` if the counter is not above the highest accepted."""
        _check_key_id(key_id)
        self._check_counter(invocation_counter)
        with self._lock:
            self._db.check_open()
            try:
                highest = self._highest(key_id)
            except sqlite3.Error as exc:
                raise CounterStoreError(f"cannot read counters of {key_id!r}: {exc}") from exc
        if highest is not None and invocation_counter <= highest:
            raise self._replay(key_id, invocation_counter, highest)

    def check_and_update(self, key_id: str, invocation_counter: int) -> None:
        """Accept the counter and persist it, or raise :class:`ReplayError` (atomically)."""
        _check_key_id(key_id)
        self._check_counter(invocation_counter)
        with self._lock:
            self._db.check_open()
            try:
                cursor = self._db.conn.execute(
                    "INSERT INTO received_counters (key_id, highest) VALUES (?, ?) "
                    "ON CONFLICT (key_id) DO UPDATE SET highest = excluded.highest "
                    "WHERE excluded.highest > received_counters.highest",
                    (key_id, invocation_counter),
                )
                if cursor.rowcount == 1:
                    return
                highest = self._highest(key_id)
            except sqlite3.Error as exc:
                raise CounterStoreError(f"cannot update counters of {key_id!r}: {exc}") from exc
        raise self._replay(
            key_id, invocation_counter, invocation_counter if highest is None else highest
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ReceivedCounterStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
