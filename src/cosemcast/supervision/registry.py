"""The supervision centre's registry: meters, head-ends, assignments, audit (specs §3, §8).

Theory of operation. One SQLite file (WAL mode) per centre. Secrets (Kt, Ki, I0, head-end
credentials, the centre's signing key) are stored sealed under the :class:`MasterKey`
(:mod:`.atrest`); Ks is never stored, it is re-derived from Kt and I0. Every operation that
decides something runs in one ``BEGIN IMMEDIATE`` transaction, so concurrent assignments from
several head-ends (threads or processes) serialise on the database lock and the per-meter
sequence numbers stay gap-free and unique. Each decision, accepted or rejected, appends one row
to the audit table, which triggers make append-only; a rejected operation is rolled back first,
so the registry is unchanged except for that audit row.

Time and randomness are injected (``now`` on every call, ``rng`` at construction). Each thread
gets its own connection.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cosemcast.errors import DecodeError, SecurityError
from cosemcast.supervision._store import Decision, SqliteStore
from cosemcast.supervision.atrest import MasterKey
from cosemcast.supervision.enrollment import (
    DEFAULT_MAX_AGE_S,
    enrollment_meter_id,
    open_enrollment_request,
)
from cosemcast.supervision.errors import (
    ConsentError,
    NotAuthorizedError,
    RegistryError,
    UnknownPartyError,
)
from cosemcast.supervision.initmsg import (
    InitAction,
    InitMessage,
    check_signing_curve,
    key_fingerprint,
    public_key_bytes,
)
from cosemcast.supervision.kdf import I0_LENGTH, KT_LENGTHS, derive_ki, derive_ks
from cosemcast.supervision.manifest import read_manifest
from cosemcast.supervision.records import (
    AssignmentRecord,
    AuditEntry,
    HeadEndRecord,
    Issued,
    MeterRecord,
)
from cosemcast.supervision.validation import DEFAULT_TOLERANCE_S

__all__ = [
    "DEFAULT_VALIDITY_S",
    "AssignmentRecord",
    "AuditEntry",
    "HeadEndRecord",
    "Issued",
    "MeterRecord",
    "Registry",
    "key_fingerprint",
    "public_key_bytes",
    "read_manifest",
]

DEFAULT_VALIDITY_S = 86_400
_U32_MAX = 0xFFFFFFFF


class _UsedCounters:
    """``counter in used`` asks the consents table (enrollment replay rule, specs §7.3)."""

    __slots__ = ("_conn", "_meter_id")

    def __init__(self, conn: sqlite3.Connection, meter_id: bytes) -> None:
        self._conn = conn
        self._meter_id = meter_id

    def __contains__(self, counter: object) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM consents WHERE meter_id = ? AND counter = ?", (self._meter_id, counter)
        ).fetchone()
        return row is not None


class Registry(SqliteStore):
    """The supervision centre's registry (specs §3) and its assignment protocol (specs §8)."""

    def __init__(
        self,
        path: str | Path,
        master_key: MasterKey,
        *,
        rng: Callable[[int], bytes] = os.urandom,
        validity_s: int = DEFAULT_VALIDITY_S,
        enrollment_max_age_s: int = DEFAULT_MAX_AGE_S,
        tolerance_s: int = DEFAULT_TOLERANCE_S,
    ) -> None:
        super().__init__(path, master_key)
        self._rng = rng
        self.validity_s = validity_s
        self.enrollment_max_age_s = enrollment_max_age_s
        self.tolerance_s = tolerance_s
        self._identity: tuple[bytes, ec.EllipticCurvePrivateKey] | None = None  # (sealed, key)

    # --- identity of the centre --------------------------------------------------------------

    def initialise(
        self,
        *,
        centre_id: bytes,
        now: int,
        signing_key: ec.EllipticCurvePrivateKey | None = None,
        actor: str = "admin",
    ) -> None:
        """Set the centre's system title and signing key once (a P-256 key is drawn if none)."""
        if len(centre_id) != 8:
            raise ValueError(f"the centre ID is an 8-byte system title, got {len(centre_id)}")
        key = signing_key if signing_key is not None else ec.generate_private_key(ec.SECP256R1())
        check_signing_curve(key)
        scalar = key.private_numbers().private_value.to_bytes(32, "big")

        def run(conn: sqlite3.Connection, decision: Decision) -> None:
            if self._setting("centre_id") is not None:
                raise RegistryError("the registry is already initialised")
            settings = (
                ("centre_id", bytes(centre_id)),
                ("signing_key", self._master.seal(scalar, column="settings.signing_key", row=b"")),
                (
                    "master_check",
                    self._master.seal(b"cosemcast", column="settings.master_check", row=b""),
                ),
            )
            conn.executemany("INSERT INTO settings (name, value) VALUES (?, ?)", settings)
            decision.detail = f"centre {centre_id.hex().upper()}"

        self._decide("initialise", actor, now, run)

    def _centre(self) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
        centre_id = self._setting("centre_id")
        sealed = self._setting("signing_key")
        if centre_id is None or sealed is None:
            raise RegistryError("the registry is not initialised (no centre identity)")
        # Re-read on every use: a rotation by another process takes effect at once.
        if self._identity is None or self._identity[0] != sealed:
            scalar = self._master.open(sealed, column="settings.signing_key", row=b"")
            key = ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256R1())
            self._identity = (sealed, key)
        return centre_id, self._identity[1]

    def rotate_signing_key(
        self,
        *,
        now: int,
        signing_key: ec.EllipticCurvePrivateKey | None = None,
        actor: str = "admin",
    ) -> ec.EllipticCurvePublicKey:
        """Replace the centre's signing key (a P-256 key is drawn if none); specs §3.5.

        The old public key is kept as retired. Meters learn the new one out of band: every
        initialization message issued from now on is signed with the new key.
        """
        key = signing_key if signing_key is not None else ec.generate_private_key(ec.SECP256R1())
        check_signing_curve(key)
        scalar = key.private_numbers().private_value.to_bytes(32, "big")

        def run(conn: sqlite3.Connection, decision: Decision) -> None:
            _, old = self._centre()
            conn.execute(
                "INSERT INTO retired_signing_keys (public_key, retired_at) VALUES (?, ?)",
                (public_key_bytes(old.public_key()), now),
            )
            sealed = self._master.seal(scalar, column="settings.signing_key", row=b"")
            conn.execute("UPDATE settings SET value = ? WHERE name = 'signing_key'", (sealed,))
            decision.detail = (
                f"signing key {key_fingerprint(old.public_key())} retired, "
                f"{key_fingerprint(key.public_key())} active"
            )

        self._decide("rotate-signing-key", actor, now, run)
        return key.public_key()

    def retired_signing_keys(self) -> list[tuple[bytes, int]]:
        """(uncompressed public key, retired_at) of every retired signing key, oldest first."""
        rows = self._conn().execute(
            "SELECT public_key, retired_at FROM retired_signing_keys ORDER BY id"
        )
        return [(bytes(r[0]), int(r[1])) for r in rows]

    def centre_id(self) -> bytes:
        return self._centre()[0]

    def centre_public_key(self) -> ec.EllipticCurvePublicKey:
        """What every meter holds from manufacture (specs §2)."""
        return self._centre()[1].public_key()

    def centre_public_key_pem(self) -> bytes:
        return self.centre_public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    # --- meters --------------------------------------------------------------------------------

    def _insert_meter(
        self, conn: sqlite3.Connection, meter_id: bytes, kt: bytes, ki: bytes | None, now: int
    ) -> None:
        if len(meter_id) != 8:
            raise RegistryError(f"a meter ID is an 8-byte system title, got {len(meter_id)}")
        if len(kt) not in KT_LENGTHS:
            raise RegistryError(f"meter {meter_id.hex().upper()}: Kt is 16 or 32 bytes")
        key_i = derive_ki(kt, meter_id=meter_id) if ki is None else bytes(ki)
        if len(key_i) != 16:
            raise RegistryError(f"meter {meter_id.hex().upper()}: Ki is 16 bytes")
        try:
            conn.execute(
                "INSERT INTO meters (meter_id, kt, ki, status, created_at) "
                "VALUES (?, ?, ?, 'active', ?)",
                (
                    bytes(meter_id),
                    self._master.seal(kt, column="meters.kt", row=meter_id),
                    self._master.seal(key_i, column="meters.ki", row=meter_id),
                    now,
                ),
            )
        except sqlite3.IntegrityError as exc:
            raise RegistryError(f"meter {meter_id.hex().upper()} is already registered") from exc

    def add_meter(
        self, meter_id: bytes, kt: bytes, *, now: int, ki: bytes | None = None, actor: str = "admin"
    ) -> None:
        """Register one meter; ``ki`` defaults to ``derive_ki(kt)`` (specs §4.2)."""

        def run(conn: sqlite3.Connection, decision: Decision) -> None:
            self._insert_meter(conn, meter_id, kt, ki, now)

        self._decide("add-meter", actor, now, run, Decision(meter_id=bytes(meter_id)))

    def import_manifest(self, path: str | Path, *, now: int, actor: str = "admin") -> int:
        """Import every meter of a manifest (all or none); return how many (specs §3.3)."""

        def run(conn: sqlite3.Connection, decision: Decision) -> int:
            meters = read_manifest(path)
            for meter_id, kt, ki in meters:
                self._insert_meter(conn, meter_id, kt, ki, now)
                self._audit(conn, now, actor, "add-meter", Decision(meter_id), "accepted")
            decision.detail = f"{len(meters)} meters from {Path(path).name}"
            return len(meters)

        return self._decide("import-manifest", actor, now, run)

    def _meter_row(self, conn: sqlite3.Connection, meter_id: bytes) -> tuple[Any, ...]:
        row = conn.execute(
            "SELECT meter_id, kt, ki, status, last_sequence FROM meters WHERE meter_id = ?",
            (bytes(meter_id),),
        ).fetchone()
        if row is None:
            raise UnknownPartyError(f"no meter {meter_id.hex().upper()}")
        if row[3] != "active":
            raise NotAuthorizedError(f"meter {meter_id.hex().upper()} is {row[3]}")
        return tuple(row)

    # --- head-ends -----------------------------------------------------------------------------

    def register_head_end(
        self, head_end_id: bytes, *, name: str, credential: bytes, now: int, actor: str = "admin"
    ) -> None:
        """Register a head-end and the secret that authenticates its channel (specs §3.1)."""

        def run(conn: sqlite3.Connection, decision: Decision) -> None:
            if len(head_end_id) != 8:
                raise RegistryError("a head-end ID is an 8-byte system title")
            if len(credential) < 16:
                raise RegistryError("a head-end credential is at least 16 bytes")
            try:
                conn.execute(
                    "INSERT INTO head_ends (head_end_id, name, credential, status, created_at) "
                    "VALUES (?, ?, ?, 'active', ?)",
                    (
                        bytes(head_end_id),
                        name,
                        self._master.seal(
                            credential, column="head_ends.credential", row=head_end_id
                        ),
                        now,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise RegistryError(
                    f"head-end {head_end_id.hex().upper()} is already registered"
                ) from exc
            decision.detail = name

        self._decide("register-head-end", actor, now, run, Decision(head_end_id=head_end_id))

    def _active_head_end(self, conn: sqlite3.Connection, head_end_id: bytes) -> bytes:
        row = conn.execute(
            "SELECT status, credential FROM head_ends WHERE head_end_id = ?", (bytes(head_end_id),)
        ).fetchone()
        if row is None:
            raise UnknownPartyError(f"no head-end {head_end_id.hex().upper()}")
        if row[0] != "active":
            raise NotAuthorizedError(f"head-end {head_end_id.hex().upper()} is {row[0]}")
        return bytes(row[1])

    def head_end_credential(self, head_end_id: bytes) -> bytes:
        """The channel secret of an active head-end (for the authenticated channel, specs §8.1)."""
        sealed = self._active_head_end(self._conn(), head_end_id)
        return self._master.open(sealed, column="head_ends.credential", row=head_end_id)

    def revoke_head_end(
        self, head_end_id: bytes, *, now: int, actor: str = "admin"
    ) -> list[Issued]:
        """Revoke a head-end and issue a REVOKE message to every meter it was assigned to."""

        def run(conn: sqlite3.Connection, decision: Decision) -> list[Issued]:
            self._active_head_end(conn, head_end_id)
            conn.execute(
                "UPDATE head_ends SET status = 'revoked' WHERE head_end_id = ?",
                (bytes(head_end_id),),
            )
            meters = [
                bytes(r[0])
                for r in conn.execute(
                    "SELECT DISTINCT meter_id FROM assignments "
                    "WHERE head_end_id = ? AND state = 'active' ORDER BY meter_id",
                    (bytes(head_end_id),),
                )
            ]
            issued = [
                self._issue(conn, self._meter_row(conn, m), head_end_id, InitAction.REVOKE, now)
                for m in meters
            ]
            decision.detail = f"{len(issued)} assignments revoked"
            return issued

        return self._decide("revoke-head-end", actor, now, run, Decision(head_end_id=head_end_id))

    # --- the assignment protocol (specs §8) ----------------------------------------------------

    def _issue(
        self,
        conn: sqlite3.Connection,
        meter: tuple[Any, ...],
        head_end_id: bytes,
        action: InitAction,
        now: int,
        i0: bytes | None = None,
    ) -> Issued:
        meter_id = bytes(meter[0])
        sequence = int(meter[4]) + 1
        if sequence > _U32_MAX:
            raise RegistryError(f"meter {meter_id.hex().upper()} has used every sequence number")
        kt = self._master.open(meter[1], column="meters.kt", row=meter_id)
        ki = self._master.open(meter[2], column="meters.ki", row=meter_id)
        if action is InitAction.REVOKE:
            i0, ks = bytes(I0_LENGTH), None
        else:
            i0 = self._rng(I0_LENGTH) if i0 is None else i0
            ks = derive_ks(kt, meter_id=meter_id, head_end_id=head_end_id, i0=i0)
        message = InitMessage(
            meter_id, bytes(head_end_id), i0, now, now + self.validity_s, sequence, action
        )
        centre_id, signing_key = self._centre()
        raw = message.seal(signing_key, ki, centre_id=centre_id)
        conn.execute("UPDATE meters SET last_sequence = ? WHERE meter_id = ?", (sequence, meter_id))
        if action is InitAction.ASSIGN_EXCLUSIVE:
            conn.execute(
                "UPDATE assignments SET state = 'superseded' "
                "WHERE meter_id = ? AND state = 'active'",
                (meter_id,),
            )
        else:
            conn.execute(
                "UPDATE assignments SET state = ? "
                "WHERE meter_id = ? AND head_end_id = ? AND state = 'active'",
                (
                    "revoked" if action is InitAction.REVOKE else "superseded",
                    meter_id,
                    bytes(head_end_id),
                ),
            )
        conn.execute(
            "INSERT INTO assignments (meter_id, head_end_id, action, sequence, i0, state, "
            "not_before, not_after, created_at, init_message) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                meter_id,
                bytes(head_end_id),
                int(action),
                sequence,
                self._master.seal(i0, column="assignments.i0", row=meter_id + bytes(head_end_id)),
                "revoked" if action is InitAction.REVOKE else "active",
                message.not_before,
                message.not_after,
                now,
                raw,
            ),
        )
        return Issued(
            meter_id,
            bytes(head_end_id),
            action,
            sequence,
            message.not_before,
            message.not_after,
            raw,
            ks,
        )

    def assign(self, *, head_end_id: bytes, enrollment: bytes, now: int) -> Issued:
        """Claim 7: an authenticated head-end asks to be assigned to the meter that chose it.

        ``head_end_id`` is the identity the channel authenticated; ``enrollment`` the meter's
        request as the head-end received it. Checks (specs §8.2): the head-end is active, the
        meter is known and active, the enrollment verifies under Kt, is fresh, unused and names
        this head-end; then I0 is drawn, Ks derived, the initialization message issued.
        """

        def run(conn: sqlite3.Connection, decision: Decision) -> Issued:
            self._active_head_end(conn, head_end_id)
            try:
                meter_id = enrollment_meter_id(enrollment)
            except DecodeError as exc:
                raise ConsentError(f"the enrollment request is malformed: {exc}") from exc
            decision.meter_id = meter_id
            meter = self._meter_row(conn, meter_id)
            kt = self._master.open(meter[1], column="meters.kt", row=meter_id)
            try:
                request = open_enrollment_request(
                    enrollment,
                    kt=kt,
                    now=now,
                    used_counters=_UsedCounters(conn, meter_id),
                    max_age_s=self.enrollment_max_age_s,
                    tolerance_s=self.tolerance_s,
                )
            except (DecodeError, SecurityError) as exc:
                raise ConsentError(f"no valid consent from the meter: {exc}") from exc
            if request.head_end_id != head_end_id:
                raise ConsentError(
                    f"the meter chose head-end {request.head_end_id.hex().upper()}, not this one"
                )
            conn.execute(
                "INSERT INTO consents (meter_id, counter, head_end_id, requested_at, used_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (meter_id, request.counter, bytes(head_end_id), request.requested_at, now),
            )
            issued = self._issue(conn, meter, head_end_id, request.action, now)
            decision.detail = (
                f"{request.action.name} sequence {issued.sequence} consent {request.counter}"
            )
            return issued

        actor = f"head-end {head_end_id.hex().upper()}"
        return self._decide("assign", actor, now, run, Decision(head_end_id=bytes(head_end_id)))

    def revoke_assignment(
        self, *, meter_id: bytes, head_end_id: bytes, now: int, actor: str = "admin"
    ) -> Issued:
        """Retire one head-end from one meter: a REVOKE initialization message (specs §5.1)."""

        def run(conn: sqlite3.Connection, decision: Decision) -> Issued:
            meter = self._meter_row(conn, meter_id)
            active = conn.execute(
                "SELECT 1 FROM assignments WHERE meter_id = ? AND head_end_id = ? "
                "AND state = 'active'",
                (bytes(meter_id), bytes(head_end_id)),
            ).fetchone()
            if active is None:
                raise RegistryError("no active assignment of this head-end to this meter")
            issued = self._issue(conn, meter, head_end_id, InitAction.REVOKE, now)
            decision.detail = f"REVOKE sequence {issued.sequence}"
            return issued

        decision = Decision(meter_id=bytes(meter_id), head_end_id=bytes(head_end_id))
        return self._decide("revoke-assignment", actor, now, run, decision)

    def reissue(
        self, *, meter_id: bytes, head_end_id: bytes, now: int, actor: str = "admin"
    ) -> Issued:
        """Re-send an active assignment with a new sequence and window, the same I0 (specs §8.4).

        For a message that expired before delivery, or that the meter refused as a replay
        because a later one overtook it. Ks does not change. An exclusive assignment stays
        exclusive only while it is the meter's one active assignment.
        """

        def run(conn: sqlite3.Connection, decision: Decision) -> Issued:
            self._active_head_end(conn, head_end_id)
            meter = self._meter_row(conn, meter_id)
            row = conn.execute(
                "SELECT i0, action FROM assignments WHERE meter_id = ? AND head_end_id = ? "
                "AND state = 'active'",
                (bytes(meter_id), bytes(head_end_id)),
            ).fetchone()
            if row is None:
                raise RegistryError("no active assignment of this head-end to this meter")
            (active,) = conn.execute(
                "SELECT count(*) FROM assignments WHERE meter_id = ? AND state = 'active'",
                (bytes(meter_id),),
            ).fetchone()
            action = InitAction(row[1])
            if action is InitAction.ASSIGN_EXCLUSIVE and active > 1:
                action = InitAction.ASSIGN
            i0 = self._master.open(
                row[0], column="assignments.i0", row=bytes(meter_id) + bytes(head_end_id)
            )
            issued = self._issue(conn, meter, head_end_id, action, now, i0)
            decision.detail = f"{action.name} sequence {issued.sequence} (reissue)"
            return issued

        decision = Decision(meter_id=bytes(meter_id), head_end_id=bytes(head_end_id))
        return self._decide("reissue", actor, now, run, decision)

    def head_end_key(self, *, meter_id: bytes, head_end_id: bytes) -> bytes:
        """Ks of the active assignment, re-derived from Kt and I0 (for re-delivery, specs §8.3)."""
        conn = self._conn()
        meter = self._meter_row(conn, meter_id)
        row = conn.execute(
            "SELECT i0 FROM assignments WHERE meter_id = ? AND head_end_id = ? "
            "AND state = 'active'",
            (bytes(meter_id), bytes(head_end_id)),
        ).fetchone()
        if row is None:
            raise RegistryError("no active assignment of this head-end to this meter")
        kt = self._master.open(meter[1], column="meters.kt", row=bytes(meter_id))
        i0 = self._master.open(
            row[0], column="assignments.i0", row=bytes(meter_id) + bytes(head_end_id)
        )
        return derive_ks(kt, meter_id=bytes(meter_id), head_end_id=bytes(head_end_id), i0=i0)

    # --- listings (no secrets) -----------------------------------------------------------------

    def meters(self) -> list[MeterRecord]:
        rows = self._conn().execute(
            "SELECT meter_id, status, last_sequence, created_at FROM meters ORDER BY meter_id"
        )
        return [MeterRecord(bytes(r[0]), r[1], r[2], r[3]) for r in rows]

    def head_ends(self) -> list[HeadEndRecord]:
        rows = self._conn().execute(
            "SELECT head_end_id, name, status, created_at FROM head_ends ORDER BY head_end_id"
        )
        return [HeadEndRecord(bytes(r[0]), r[1], r[2], r[3]) for r in rows]

    def assignments(self, meter_id: bytes | None = None) -> list[AssignmentRecord]:
        query = (
            "SELECT meter_id, head_end_id, action, sequence, state, not_before, not_after, "
            "created_at FROM assignments"
        )
        params: tuple[bytes, ...] = ()
        if meter_id is not None:
            query += " WHERE meter_id = ?"
            params = (bytes(meter_id),)
        rows = self._conn().execute(query + " ORDER BY meter_id, sequence", params)
        return [
            AssignmentRecord(
                bytes(r[0]), bytes(r[1]), InitAction(r[2]), r[3], r[4], r[5], r[6], r[7]
            )
            for r in rows
        ]

    def init_message(self, *, meter_id: bytes, sequence: int) -> bytes:
        """The sealed initialization message with that sequence (for delivery or relay)."""
        row = (
            self._conn()
            .execute(
                "SELECT init_message FROM assignments WHERE meter_id = ? AND sequence = ?",
                (bytes(meter_id), sequence),
            )
            .fetchone()
        )
        if row is None:
            raise UnknownPartyError(f"no message {sequence} for meter {meter_id.hex().upper()}")
        return bytes(row[0])

    def audit_log(self) -> list[AuditEntry]:
        rows = self._conn().execute(
            "SELECT id, at, actor, operation, meter_id, head_end_id, decision, detail "
            "FROM audit ORDER BY id"
        )
        return [
            AuditEntry(
                r[0],
                r[1],
                r[2],
                r[3],
                None if r[4] is None else bytes(r[4]),
                None if r[5] is None else bytes(r[5]),
                r[6],
                r[7],
            )
            for r in rows
        ]
