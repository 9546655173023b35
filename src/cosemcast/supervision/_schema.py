"""The registry's SQLite schema and its migrations (specs/supervision.md §3.1).

``PRAGMA user_version`` holds the schema version. :data:`MIGRATIONS` [n] takes version n to
n + 1; each is a tuple of single statements (``executescript`` would commit on its own, and the
migration must run inside the caller's ``BEGIN IMMEDIATE``). Never edit a published migration:
append one. Version 2 adds the public keys that a signing-key rotation retired (specs §3.5).
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

_V1 = (
    """CREATE TABLE settings (
        name TEXT PRIMARY KEY,
        value BLOB NOT NULL
    )""",
    """CREATE TABLE meters (
        meter_id BLOB PRIMARY KEY CHECK (length(meter_id) = 8),
        kt BLOB NOT NULL,
        ki BLOB NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active', 'retired')),
        last_sequence INTEGER NOT NULL DEFAULT 0 CHECK (last_sequence BETWEEN 0 AND 4294967295),
        created_at INTEGER NOT NULL
    )""",
    """CREATE TABLE head_ends (
        head_end_id BLOB PRIMARY KEY CHECK (length(head_end_id) = 8),
        name TEXT NOT NULL,
        credential BLOB NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
        created_at INTEGER NOT NULL
    )""",
    """CREATE TABLE consents (
        meter_id BLOB NOT NULL REFERENCES meters (meter_id),
        counter INTEGER NOT NULL,
        head_end_id BLOB NOT NULL REFERENCES head_ends (head_end_id),
        requested_at INTEGER NOT NULL,
        used_at INTEGER NOT NULL,
        PRIMARY KEY (meter_id, counter)
    )""",
    """CREATE TABLE assignments (
        id INTEGER PRIMARY KEY,
        meter_id BLOB NOT NULL REFERENCES meters (meter_id),
        head_end_id BLOB NOT NULL REFERENCES head_ends (head_end_id),
        action INTEGER NOT NULL CHECK (action IN (1, 2, 3)),
        sequence INTEGER NOT NULL,
        i0 BLOB NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('active', 'superseded', 'revoked')),
        not_before INTEGER NOT NULL,
        not_after INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        init_message BLOB NOT NULL,
        UNIQUE (meter_id, sequence)
    )""",
    """CREATE INDEX assignments_by_pair ON assignments (meter_id, head_end_id, state)""",
    """CREATE INDEX assignments_by_head_end ON assignments (head_end_id, state)""",
    """CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        operation TEXT NOT NULL,
        meter_id BLOB,
        head_end_id BLOB,
        decision TEXT NOT NULL CHECK (decision IN ('accepted', 'rejected')),
        detail TEXT NOT NULL
    )""",
    """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    """CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
)

_V2 = (
    """CREATE TABLE retired_signing_keys (
        id INTEGER PRIMARY KEY,
        public_key BLOB NOT NULL,
        retired_at INTEGER NOT NULL
    )""",
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2)
SCHEMA_VERSION = len(MIGRATIONS)
