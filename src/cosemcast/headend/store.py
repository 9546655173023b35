"""The head-end's durable state in one SQLite file (specs/shared-payload.md §9.2, §9.3).

Theory of operation. :class:`SqliteHeadEndStore` implements three things on one WAL-mode
connection (``synchronous=FULL`` by default):

* the :class:`~cosemcast.sharedpayload.headend.PayloadKeyStore` protocol: one row per
  (meter system title, kp_id) holding ``Kp``, its validity window, first IC, ack flags, ``Ka``,
  the digest and IC of the accepted C2 and a state (``active`` or ``retired``; a retired row
  keeps no key bytes); the C1 replay window of each active key in a narrow ``replay_rows``
  table (highest IC; the bitmap a signed 64-bit INTEGER, or a big-endian BLOB when the window
  is wider than 64), written by row id; plus the retirement floor per meter;
* the :class:`~cosemcast.sharedpayload.headend.MeterCredentials` protocol: the ``Ks`` this
  head-end shares with each meter and the meters' static P-256 agreement keys;
* a parking table for C1s whose ``Kp`` has not arrived, bounded by count and age; what leaves
  unopened is returned to be reported.

**Group commit (specs §9.2).** Every change is *staged*: the rare ones (a key added or
retired, a C1 parked or released, credentials) as statements inside one open ``BEGIN
IMMEDIATE`` transaction, the frequent one (a C1 counter accepted) in memory only: the active
keys live as :class:`~cosemcast.sharedpayload.headend.StoredKey` entries (a bounded cache
loaded from the file on demand; the store is a
:class:`~cosemcast.sharedpayload.headend.CachedPayloadKeyStore`), and :meth:`accept_in`
updates the entry's replay window and marks it dirty. :meth:`commit` writes the dirty
windows (one ``UPDATE`` by row id per key, however many C1s it took), optionally the readings
(``keep_readings``: rows of the ``readings`` table of :mod:`.readings`, in the same
transaction), and commits: one fsync for the whole batch. Whatever is not committed is lost
in a crash *as a whole*, and :meth:`close` discards it the same way (:meth:`rollback`), so
the caller (:class:`~.headend.HeadEnd`) lets nothing leave (acknowledgement, reading) before
the commit that covers it returns. A failed statement or commit rolls the batch back, drops
every cached entry (they are reloaded from the file) and bumps :attr:`generation`, so that
the caller can drop the batch's pending output too.

One process owns a file: the cache is not shared between connections (sharding gives each
worker process its own file, :mod:`.shard`).

**Keys are stored in clear in this file for now** (``Kp``, ``Ka`` and ``Ks``): protect the file
like a key file (mode 0600). They never appear in a repr, a log line or an exception.

Schema: a ``schema_version`` table and the migrations in :data:`_MIGRATIONS`, applied in order
on open (the convention of :mod:`cosemcast.security.counters`). The file remembers the head-end
system title it was created for and refuses to serve another one. Thread-safe (one lock).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cosemcast.errors import DlmsError, SecurityError
from cosemcast.headend.readings import (
    INSERT_READING,
    Reading,
    create_readings_table,
    reading_row,
)
from cosemcast.sharedpayload.headend import ReceivedPayloadKey, ReplayWindow, StoredKey
from cosemcast.sharedpayload.messages import AckRequest, KpId

__all__ = ["SCHEMA_VERSION", "HeadEndStoreError", "ParkedC1", "SqliteHeadEndStore"]

_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID",
        "CREATE TABLE payload_keys ("
        " meter BLOB NOT NULL, kp_id BLOB NOT NULL,"
        " state TEXT NOT NULL CHECK (state IN ('active', 'retired')),"
        " payload_key BLOB, ack_key BLOB,"
        " not_before INTEGER NOT NULL, not_after INTEGER NOT NULL,"
        " first_ic INTEGER NOT NULL, ack_request INTEGER NOT NULL,"
        " control_digest BLOB NOT NULL, control_ic INTEGER NOT NULL,"
        " replay_highest INTEGER, replay_bitmap BLOB,"
        " PRIMARY KEY (meter, kp_id)) WITHOUT ROWID",
        "CREATE INDEX payload_keys_not_after ON payload_keys (state, not_after)",
        "CREATE TABLE retired_floors (meter BLOB PRIMARY KEY, kp_id BLOB NOT NULL) WITHOUT ROWID",
        "CREATE TABLE credentials (meter BLOB PRIMARY KEY, shared_key BLOB,"
        " agreement_public_key BLOB) WITHOUT ROWID",
        "CREATE TABLE parked (serial INTEGER PRIMARY KEY AUTOINCREMENT,"
        " meter BLOB NOT NULL, kp_id BLOB NOT NULL, apdu BLOB NOT NULL,"
        " parked_at REAL NOT NULL)",
        "CREATE INDEX parked_by_key ON parked (meter, kp_id, serial)",
    ),
    (  # 2: the replay windows in a narrow table of their own (half the cost per commit)
        "CREATE TABLE replay_windows (meter BLOB NOT NULL, kp_id BLOB NOT NULL,"
        " highest INTEGER NOT NULL, bitmap BLOB NOT NULL,"
        " PRIMARY KEY (meter, kp_id)) WITHOUT ROWID",
        "INSERT INTO replay_windows (meter, kp_id, highest, bitmap)"
        " SELECT meter, kp_id, replay_highest, replay_bitmap FROM payload_keys"
        " WHERE state = 'active' AND replay_highest IS NOT NULL",
        "UPDATE payload_keys SET replay_highest = NULL, replay_bitmap = NULL",
    ),
    (  # 3: keyed by row id, written by row id, the bitmap an INTEGER when it fits (W <= 64)
        "CREATE TABLE replay_rows (id INTEGER PRIMARY KEY, meter BLOB NOT NULL,"
        " kp_id BLOB NOT NULL, highest INTEGER, bitmap, UNIQUE (meter, kp_id))",
        "INSERT INTO replay_rows (meter, kp_id, highest, bitmap)"
        " SELECT meter, kp_id, highest, bitmap FROM replay_windows",
        "DROP TABLE replay_windows",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)


class HeadEndStoreError(SecurityError):
    """The head-end store cannot be used (database error, wrong schema or head-end, closed)."""


@dataclass(frozen=True, slots=True)
class ParkedC1:
    """A C1 that waited in the parking table (returned when it leaves unopened)."""

    serial: int
    meter_system_title: bytes
    kp_id: KpId
    apdu: bytes
    parked_at: float


_U64 = 1 << 64


def _bitmap_value(bitmap: int) -> int | bytes:
    """A replay bitmap as stored: a (signed) 64-bit INTEGER when it fits, else a BLOB."""
    if bitmap < _U64 >> 1:
        return bitmap
    if bitmap < _U64:
        return bitmap - _U64
    return bitmap.to_bytes((bitmap.bit_length() + 7) // 8, "big")


def _bitmap_of(value: int | bytes) -> int:
    if isinstance(value, int):
        return value + _U64 if value < 0 else value
    return int.from_bytes(bytes(value), "big")


class SqliteHeadEndStore:
    """Key store, credentials and parking of one head-end in a SQLite file (module doc)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        system_title: bytes,
        parking_capacity: int = 10_000,
        parking_max_age_s: float = 3_600.0,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        cache_size: int = 65_536,
        keep_readings: bool = False,
    ) -> None:
        if len(system_title) != 8:
            raise ValueError(f"a system title is 8 bytes, got {len(system_title)}")
        if parking_capacity < 1 or parking_max_age_s <= 0 or cache_size < 1:
            raise ValueError("parking_capacity, parking_max_age_s and cache_size must be positive")
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError("synchronous is FULL or NORMAL")
        self.path = Path(path)
        self.system_title = bytes(system_title)
        self.parking_capacity = parking_capacity
        self.parking_max_age_s = parking_max_age_s
        self.cache_size = cache_size
        self.keep_readings = keep_readings
        self.generation = 0
        self._lock = threading.RLock()
        self._closed = False
        self._entries: dict[tuple[bytes, KpId], StoredKey] = {}
        self._dirty: set[StoredKey] = set()
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise HeadEndStoreError(f"{self.path}: cannot open the head-end store: {exc}") from exc
        try:
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise HeadEndStoreError(f"{self.path}: SQLite refused WAL mode (got {mode!r})")
            self._conn.execute(f"PRAGMA synchronous={synchronous}")
            self._conn.execute("BEGIN IMMEDIATE")
            self._migrate(self._conn)
            self._check_owner(self._conn)
            if keep_readings:
                create_readings_table(self._conn)
            self._conn.execute("COMMIT")
        except (sqlite3.Error, DlmsError) as exc:
            self._conn.close()
            if isinstance(exc, HeadEndStoreError):
                raise
            raise HeadEndStoreError(f"{self.path}: cannot open the head-end store: {exc}") from exc
        except BaseException:
            self._conn.close()
            raise

    def __repr__(self) -> str:
        return f"SqliteHeadEndStore({str(self.path)!r}, {self.system_title.hex().upper()})"

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (0)")
            version = 0
        else:
            version = int(row[0])
        if version > SCHEMA_VERSION:
            raise HeadEndStoreError(
                f"{self.path}: schema version {version} is newer than this code ({SCHEMA_VERSION})"
            )
        for step in _MIGRATIONS[version:]:
            for statement in step:
                conn.execute(statement)
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    def _check_owner(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT value FROM meta WHERE name = 'system_title'").fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO meta (name, value) VALUES ('system_title', ?)", (self.system_title,)
            )
        elif bytes(row[0]) != self.system_title:
            raise HeadEndStoreError(
                f"{self.path} belongs to head-end {bytes(row[0]).hex().upper()}, "
                f"not {self.system_title.hex().upper()}"
            )

    # --- the batch ---------------------------------------------------------------------------

    @contextmanager
    def _staged(self) -> Iterator[sqlite3.Connection]:
        """Statements of the open batch (the transaction starts with the first of them)."""
        with self._lock:
            if self._closed:
                raise HeadEndStoreError("the head-end store is closed")
            conn = self._conn
            try:
                if not conn.in_transaction:
                    conn.execute("BEGIN IMMEDIATE")
                yield conn
            except sqlite3.Error as exc:
                self._abort()
                raise HeadEndStoreError(f"{self.path}: {exc} (batch rolled back)") from exc

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A read (it sees the open batch), or one statement outside a batch (it commits)."""
        with self._lock:
            if self._closed:
                raise HeadEndStoreError("the head-end store is closed")
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise HeadEndStoreError(f"{self.path}: {exc}") from exc

    @property
    def pending(self) -> bool:
        """Whether anything is staged and not committed yet."""
        with self._lock:
            return bool(self._dirty) or (not self._closed and self._conn.in_transaction)

    def commit(self, readings: Sequence[Reading] = ()) -> None:
        """Make the batch durable in one transaction: staged statements, the dirty replay
        windows and (with ``keep_readings``) ``readings`` as rows of the readings table. On
        failure the batch is rolled back (:meth:`rollback`) and HeadEndStoreError raised."""
        if readings and not self.keep_readings:
            raise ValueError("this store keeps no readings (keep_readings=False)")
        with self._lock:
            if self._closed:
                raise HeadEndStoreError("the head-end store is closed")
            conn = self._conn
            if not self._dirty and not readings and not conn.in_transaction:
                return
            try:
                if not conn.in_transaction:
                    conn.execute("BEGIN IMMEDIATE")
                if self._dirty:
                    self._write_windows(conn)
                if readings:
                    conn.executemany(INSERT_READING, [reading_row(r) for r in readings])
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._abort()
                raise HeadEndStoreError(f"{self.path}: commit failed, rolled back: {exc}") from exc
            self._dirty.clear()
            entries = self._entries
            while len(entries) > self.cache_size:
                entries.pop(next(iter(entries))).live = False

    def _write_windows(self, conn: sqlite3.Connection) -> None:
        """One UPDATE by row id per dirty key (a key without a row gets one first)."""
        updates = []
        for entry in self._dirty:
            replay = entry.replay
            assert replay is not None  # an entry turns dirty when a counter is accepted
            if entry.row is None:
                record = entry.record
                entry.row = conn.execute(
                    "INSERT INTO replay_rows (meter, kp_id) VALUES (?, ?)",
                    (record.meter_system_title, record.kp_id.to_bytes()),
                ).lastrowid
            updates.append((replay.highest, _bitmap_value(replay.bitmap), entry.row))
        conn.executemany("UPDATE replay_rows SET highest = ?, bitmap = ? WHERE id = ?", updates)

    def rollback(self) -> None:
        """Discard everything staged since the last commit (what a crash does)."""
        with self._lock:
            if not self._closed:
                self._abort()

    def _abort(self) -> None:
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        finally:
            for entry in self._entries.values():
                entry.live = False
            self._entries.clear()
            self._dirty.clear()
            self.generation += 1

    def close(self) -> None:
        """Close the file; an uncommitted batch is discarded (commit first to keep it)."""
        with self._lock:
            if not self._closed:
                try:
                    self._abort()
                finally:
                    self._closed = True
                    self._conn.close()

    def __enter__(self) -> SqliteHeadEndStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- PayloadKeyStore ---------------------------------------------------------------------

    def entry(self, meter: bytes, kp_id: KpId) -> StoredKey | None:
        slot = (meter, kp_id)
        found = self._entries.get(slot)
        if found is not None:
            return found
        with self._reading() as conn:
            row = conn.execute(
                "SELECT payload_key, not_before, not_after, first_ic, ack_request, ack_key,"
                " control_digest, control_ic, w.highest, w.bitmap, w.id FROM payload_keys AS k"
                " LEFT JOIN replay_rows AS w USING (meter, kp_id)"
                " WHERE k.meter = ? AND k.kp_id = ? AND k.state = 'active'",
                (bytes(meter), kp_id.to_bytes()),
            ).fetchone()
            if row is None:
                return None
            replay = None
            if row[8] is not None:
                replay = ReplayWindow(int(row[8]), _bitmap_of(row[9]))
            record = ReceivedPayloadKey(
                bytes(meter),
                kp_id,
                bytes(row[0]),
                int(row[1]),
                int(row[2]),
                int(row[3]),
                AckRequest(int(row[4])),
                bytes(row[5]),
                bytes(row[6]),
                int(row[7]),
                replay,
            )
            loaded = StoredKey(record, None if row[10] is None else int(row[10]))
            self._entries[(record.meter_system_title, kp_id)] = loaded
            return loaded

    def accept_in(self, entry: StoredKey, invocation_counter: int, window_size: int) -> bool:
        if not entry.live:
            return False
        replay = entry.replay
        if replay is None:
            entry.replay = ReplayWindow(invocation_counter)
        elif replay.refusal(invocation_counter, window_size) is not None:
            return False
        else:
            entry.replay = replay.accept(invocation_counter, window_size)
        self._dirty.add(entry)
        return True

    def get(self, meter: bytes, kp_id: KpId) -> ReceivedPayloadKey | None:
        with self._lock:
            entry = self.entry(bytes(meter), kp_id)
        if entry is None:
            return None
        key, replay = entry.record, entry.replay
        if replay == key.replay:
            return key
        return ReceivedPayloadKey(
            key.meter_system_title,
            key.kp_id,
            key.payload_key,
            key.not_before,
            key.not_after,
            key.first_invocation_counter,
            key.ack_request,
            key.ack_key,
            key.control_digest,
            key.control_invocation_counter,
            replay,
        )

    def add(self, key: ReceivedPayloadKey) -> bool:
        replay = key.replay
        with self._staged() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO payload_keys (meter, kp_id, state, payload_key, ack_key,"
                " not_before, not_after, first_ic, ack_request, control_digest, control_ic)"
                " VALUES (?, ?, 'active', ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key.meter_system_title,
                    key.kp_id.to_bytes(),
                    key.payload_key,
                    key.ack_key,
                    key.not_before,
                    key.not_after,
                    key.first_invocation_counter,
                    int(key.ack_request),
                    key.control_digest,
                    key.control_invocation_counter,
                ),
            )
            if cursor.rowcount != 1:
                return False
            row = conn.execute(
                "INSERT INTO replay_rows (meter, kp_id, highest, bitmap) VALUES (?, ?, ?, ?)",
                (
                    key.meter_system_title,
                    key.kp_id.to_bytes(),
                    None if replay is None else replay.highest,
                    None if replay is None else _bitmap_value(replay.bitmap),
                ),
            ).lastrowid
            self._entries[(key.meter_system_title, key.kp_id)] = StoredKey(key, row)
            return True

    def accept_counter(
        self, meter: bytes, kp_id: KpId, invocation_counter: int, window_size: int
    ) -> bool:
        with self._lock:
            entry = self.entry(bytes(meter), kp_id)
            return entry is not None and self.accept_in(entry, invocation_counter, window_size)

    def retire(self, meter: bytes, kp_id: KpId) -> None:
        slot = (bytes(meter), kp_id.to_bytes())
        with self._staged() as conn:
            conn.execute(
                "UPDATE payload_keys SET state = 'retired', payload_key = NULL, ack_key = NULL"
                " WHERE meter = ? AND kp_id = ?",
                slot,
            )
            conn.execute("DELETE FROM replay_rows WHERE meter = ? AND kp_id = ?", slot)
            # kp_ids compare as big-endian u64, and so as 8-byte BLOBs (specs §3.1).
            conn.execute(
                "INSERT INTO retired_floors (meter, kp_id) VALUES (?, ?) ON CONFLICT (meter)"
                " DO UPDATE SET kp_id = max(kp_id, excluded.kp_id)",
                slot,
            )
            entry = self._entries.pop((slot[0], kp_id), None)
            if entry is not None:
                entry.live = False
                self._dirty.discard(entry)

    def retired_floor(self, meter: bytes) -> KpId | None:
        with self._reading() as conn:
            row = conn.execute(
                "SELECT kp_id FROM retired_floors WHERE meter = ?", (bytes(meter),)
            ).fetchone()
        return None if row is None else KpId.from_bytes(bytes(row[0]))

    def expired(self, before: float) -> list[tuple[bytes, KpId]]:
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT meter, kp_id FROM payload_keys WHERE state = 'active' AND not_after < ?",
                (before,),
            ).fetchall()
        return [(bytes(m), KpId.from_bytes(bytes(k))) for m, k in rows]

    def key_count(self) -> int:
        """Active payload keys."""
        with self._reading() as conn:
            row = conn.execute("SELECT count(*) FROM payload_keys WHERE state = 'active'")
            return int(row.fetchone()[0])

    # --- MeterCredentials --------------------------------------------------------------------

    def set_credentials(
        self,
        meter: bytes,
        *,
        shared_key: bytes | None = None,
        agreement_public_key: ec.EllipticCurvePublicKey | None = None,
    ) -> None:
        """Record (replace) what this head-end knows about ``meter``: durable at once when
        no batch is open, else with the batch."""
        if len(meter) != 8:
            raise ValueError(f"a system title is 8 bytes, got {len(meter)}")
        if shared_key is not None and len(shared_key) != 16:
            raise ValueError(f"Ks is 16 bytes, got {len(shared_key)}")
        point = None
        if agreement_public_key is not None:
            point = agreement_public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        with self._reading() as conn:  # one statement: its own transaction unless staged
            conn.execute(
                "INSERT OR REPLACE INTO credentials (meter, shared_key, agreement_public_key)"
                " VALUES (?, ?, ?)",
                (bytes(meter), shared_key, point),
            )

    def shared_key(self, meter_system_title: bytes) -> bytes | None:
        with self._reading() as conn:
            row = conn.execute(
                "SELECT shared_key FROM credentials WHERE meter = ?", (bytes(meter_system_title),)
            ).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def agreement_public_key(self, meter_system_title: bytes) -> ec.EllipticCurvePublicKey | None:
        with self._reading() as conn:
            row = conn.execute(
                "SELECT agreement_public_key FROM credentials WHERE meter = ?",
                (bytes(meter_system_title),),
            ).fetchone()
        if row is None or row[0] is None:
            return None
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes(row[0]))

    # --- parking -----------------------------------------------------------------------------

    def park(self, meter: bytes, kp_id: KpId, apdu: bytes, now: float) -> list[ParkedC1]:
        """Park one C1; returns what left unopened to make room or by age (oldest first)."""
        with self._staged() as conn:
            gone = self._expire_parked(conn, now)
            count = int(conn.execute("SELECT count(*) FROM parked").fetchone()[0])
            excess = count + 1 - self.parking_capacity
            if excess > 0:
                rows = conn.execute(
                    "SELECT serial, meter, kp_id, apdu, parked_at FROM parked"
                    " ORDER BY serial LIMIT ?",
                    (excess,),
                ).fetchall()
                gone.extend(self._take(conn, rows))
            conn.execute(
                "INSERT INTO parked (meter, kp_id, apdu, parked_at) VALUES (?, ?, ?, ?)",
                (bytes(meter), kp_id.to_bytes(), bytes(apdu), now),
            )
        return gone

    def release(self, meter: bytes, kp_id: KpId) -> list[ParkedC1]:
        """Take out the C1s parked for (meter, kp_id), in arrival order. Their rows are
        deleted in the open batch: a crash before the commit that also holds their readings
        and replay records leaves them parked (specs §9.3)."""
        with self._staged() as conn:
            rows = conn.execute(
                "SELECT serial, meter, kp_id, apdu, parked_at FROM parked"
                " WHERE meter = ? AND kp_id = ? ORDER BY serial",
                (bytes(meter), kp_id.to_bytes()),
            ).fetchall()
            return self._take(conn, rows)

    def expire_parked(self, now: float) -> list[ParkedC1]:
        """Remove and return the C1s parked longer than ``parking_max_age_s``."""
        with self._staged() as conn:
            return self._expire_parked(conn, now)

    def parked_count(self) -> int:
        with self._reading() as conn:
            return int(conn.execute("SELECT count(*) FROM parked").fetchone()[0])

    def _expire_parked(self, conn: sqlite3.Connection, now: float) -> list[ParkedC1]:
        rows = conn.execute(
            "SELECT serial, meter, kp_id, apdu, parked_at FROM parked WHERE parked_at < ?"
            " ORDER BY serial",
            (now - self.parking_max_age_s,),
        ).fetchall()
        return self._take(conn, rows)

    @staticmethod
    def _take(
        conn: sqlite3.Connection, rows: list[tuple[int, bytes, bytes, bytes, float]]
    ) -> list[ParkedC1]:
        conn.executemany("DELETE FROM parked WHERE serial = ?", [(row[0],) for row in rows])
        return [
            ParkedC1(int(s), bytes(m), KpId.from_bytes(bytes(k)), bytes(a), float(t))
            for s, m, k, a, t in rows
        ]
