"""The supervision centre's registry (specs/supervision.md §3, §8).

End to end with the meter side: a meter enrolls with two head-ends, the centre assigns both,
the meter loads both initialization messages and holds the same Ks as each head-end. Every
rejection leaves the registry unchanged but for one audit row; the database files never hold
Kt, Ki, Ks, I0, a credential or the signing key in clear; concurrent assignments stay
consistent.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cosemcast.errors import AuthenticationFailed, ConfigurationError, ReplayError
from cosemcast.supervision import (
    ConsentError,
    EnrollmentRequest,
    InitAction,
    MemoryAuthorizationStore,
    MeterAuthorization,
    NotAuthorizedError,
    RegistryError,
    UnknownPartyError,
    derive_ki,
)
from cosemcast.supervision._schema import SCHEMA_VERSION
from cosemcast.supervision.atrest import MASTER_KEY_ENV, MasterKey
from cosemcast.supervision.registry import DEFAULT_VALIDITY_S, Issued, Registry
from test_supervision_vectors import CENTRE_ID, KT, METER_ID, centre_key

NOW = 1_767_225_600
HE1 = bytes.fromhex("48454E4400000001")
HE2 = bytes.fromhex("48454E4400000002")
CREDENTIAL1 = bytes(range(0x40, 0x60))
CREDENTIAL2 = bytes(range(0x60, 0x80))
MASTER = MasterKey(bytes(range(0xA0, 0xC0)))


def meter_key(n: int) -> tuple[bytes, bytes]:
    meter_id = bytes.fromhex("4D414E01") + n.to_bytes(4, "big")
    return meter_id, bytes([n & 0xFF]) * 4 + os.urandom(12)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(tmp_path / "centre.db", MASTER)
    reg.initialise(centre_id=CENTRE_ID, now=NOW, signing_key=centre_key())
    reg.add_meter(METER_ID, KT, now=NOW)
    reg.register_head_end(HE1, name="supplier", credential=CREDENTIAL1, now=NOW)
    reg.register_head_end(HE2, name="grid operator", credential=CREDENTIAL2, now=NOW)
    yield reg
    reg.close()


def enroll(
    head_end: bytes,
    counter: int,
    *,
    meter: bytes = METER_ID,
    kt: bytes = KT,
    action: InitAction = InitAction.ASSIGN,
    at: int = NOW,
) -> bytes:
    return EnrollmentRequest(meter, head_end, at, counter, action).seal(kt)


def make_meter(
    registry: Registry, meter_id: bytes = METER_ID, kt: bytes = KT
) -> MeterAuthorization:
    return MeterAuthorization(
        meter_id=meter_id,
        kt=kt,
        centre_public_key=registry.centre_public_key(),
        store=MemoryAuthorizationStore(),
    )


def snapshot(registry: Registry) -> dict[str, list[tuple[object, ...]]]:
    """Every table but the audit log; sealed columns compared as stored bytes."""
    conn = sqlite3.connect(registry.path)
    try:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            for table in ("settings", "meters", "head_ends", "consents", "assignments")
        }
    finally:
        conn.close()


def test_two_head_ends_through_the_centre(registry: Registry) -> None:
    meter = make_meter(registry)
    first = registry.assign(head_end_id=HE1, enrollment=enroll(HE1, 1), now=NOW + 5)
    second = registry.assign(head_end_id=HE2, enrollment=enroll(HE2, 2), now=NOW + 6)
    assert (first.sequence, second.sequence) == (1, 2)
    for issued in (first, second):
        accepted = meter.load(issued.init_message, NOW + 10)
        assert accepted.ks == issued.ks
        assert registry.head_end_key(meter_id=METER_ID, head_end_id=issued.head_end_id) == issued.ks
    store = meter.store
    assert isinstance(store, MemoryAuthorizationStore)
    assert store.head_ends() == {HE1, HE2}
    assert first.ks != second.ks
    assert registry.init_message(meter_id=METER_ID, sequence=2) == second.init_message
    states = {(a.head_end_id, a.state) for a in registry.assignments(METER_ID)}
    assert states == {(HE1, "active"), (HE2, "active")}


def test_enrollments_may_arrive_out_of_order(registry: Registry) -> None:
    registry.assign(head_end_id=HE2, enrollment=enroll(HE2, 2), now=NOW)
    issued = registry.assign(head_end_id=HE1, enrollment=enroll(HE1, 1), now=NOW)
    assert issued.sequence == 2


def test_reissue_after_being_overtaken(registry: Registry) -> None:
    meter = make_meter(registry)
    first = registry.assign(head_end_id=HE1, enrollment=enroll(HE1, 1), now=NOW)
    second = registry.assign(head_end_id=HE2, enrollment=enroll(HE2, 2), now=NOW)
    meter.load(second.init_message, NOW)
    with pytest.raises(ReplayError):
        meter.load(first.init_message, NOW)
    again = registry.reissue(meter_id=METER_ID, head_end_id=HE1, now=NOW + 100)
    assert again.sequence == 3 and again.ks == first.ks
    assert again.not_after == NOW + 100 + DEFAULT_VALIDITY_S
    assert meter.load(again.init_message, NOW + 100).ks == first.ks
    states = [(a.sequence, a.state) for a in registry.assignments(METER_ID)]
    assert states == [(1, "superseded"), (2, "active"), (3, "active")]
    with pytest.raises(UnknownPartyError, match="no head-end"):
        registry.reissue(meter_id=METER_ID, head_end_id=bytes(8), now=NOW)
    registry.revoke_assignment(meter_id=METER_ID, head_end_id=HE1, now=NOW)
    with pytest.raises(RegistryError, match="no active assignment"):
        registry.reissue(meter_id=METER_ID, head_end_id=HE1, now=NOW)


def test_change_of_owner_retires_the_others(registry: Registry) -> None:
    meter = make_meter(registry)
    for issued in (
        registry.assign(head_end_id=HE1, enrollment=enroll(HE1, 1), now=NOW),
        registry.assign(
            head_end_id=HE2,
            enrollment=enroll(HE2, 2, action=InitAction.ASSIGN_EXCLUSIVE),
            now=NOW,
        ),
    ):
        meter.load(issued.init_message, NOW)
    assert isinstance(meter.store, MemoryAuthorizationStore)
    assert meter.store.head_ends() == {HE2}
    states = {(a.head_end_id, a.state) for a in registry.assignments(METER_ID)}
    assert states == {(HE1, "superseded"), (HE2, "active")}


def test_revocations(registry: Registry) -> None:
    meter = make_meter(registry)
    meter.load(
        registry.assign(head_end_id=HE1, enrollment=enroll(HE1, 1), now=NOW).init_message, NOW
    )
    meter.load(
        registry.assign(head_end_id=HE2, enrollment=enroll(HE2, 2), now=NOW).init_message, NOW
    )
    revoked = registry.revoke_assignment(meter_id=METER_ID, head_end_id=HE1, now=NOW)
    assert revoked.action is InitAction.REVOKE and revoked.ks is None
    meter.load(revoked.init_message, NOW)
    assert isinstance(meter.store, MemoryAuthorizationStore)
    assert meter.store.head_ends() == {HE2}
    with pytest.raises(RegistryError, match="no active assignment"):
        registry.revoke_assignment(meter_id=METER_ID, head_end_id=HE1, now=NOW)
    [last] = registry.revoke_head_end(HE2, now=NOW)
    meter.load(last.init_message, NOW)
    assert meter.store.head_ends() == frozenset()
    with pytest.raises(NotAuthorizedError):
        registry.head_end_credential(HE2)
    assert registry.head_end_credential(HE1) == CREDENTIAL1


# --- every rejection: clear error, registry unchanged, one audit row ------------------------------


def _other_meter_enrollment() -> bytes:
    return enroll(HE1, 1, meter=bytes.fromhex("4D414E01FFFFFFFF"))


REJECTIONS = [
    ("unknown head-end", bytes(8), lambda: enroll(HE1, 1), UnknownPartyError, "no head-end"),
    ("unknown meter", HE1, _other_meter_enrollment, UnknownPartyError, "no meter"),
    ("consent for another head-end", HE2, lambda: enroll(HE1, 1), ConsentError, "chose head-end"),
    ("forged consent", HE1, lambda: enroll(HE1, 1, kt=bytes(16)), ConsentError, "tag"),
    ("garbage consent", HE1, lambda: b"\x00\x01", ConsentError, "malformed"),
    ("stale consent", HE1, lambda: enroll(HE1, 1, at=NOW - 10**6), ConsentError, "expired"),
    ("future consent", HE1, lambda: enroll(HE1, 1, at=NOW + 10**6), ConsentError, "not valid yet"),
    ("replayed consent", HE1, lambda: enroll(HE1, 7), ConsentError, "already used"),
]


@pytest.mark.parametrize(
    ("head_end", "make", "error", "match"),
    [pytest.param(h, m, e, t, id=name) for name, h, m, e, t in REJECTIONS],
)
def test_rejected_assignments_change_nothing(
    registry: Registry, head_end: bytes, make: object, error: type[Exception], match: str
) -> None:
    registry.assign(head_end_id=HE1, enrollment=enroll(HE1, 7), now=NOW)
    before = snapshot(registry)
    audit_before = registry.audit_log()
    assert callable(make)
    with pytest.raises(error, match=match):
        registry.assign(head_end_id=head_end, enrollment=make(), now=NOW)
    assert snapshot(registry) == before
    audit = registry.audit_log()
    assert audit[: len(audit_before)] == audit_before
    [entry] = audit[len(audit_before) :]
    assert (entry.operation, entry.decision) == ("assign", "rejected")
    assert error.__name__ in entry.detail


def test_revoked_head_end_cannot_be_assigned(registry: Registry) -> None:
    registry.revoke_head_end(HE1, now=NOW)
    before = snapshot(registry)
    with pytest.raises(NotAuthorizedError, match="revoked"):
        registry.assign(head_end_id=HE1, enrollment=enroll(HE1, 1), now=NOW)
    assert snapshot(registry) == before


def test_every_decision_is_audited(registry: Registry) -> None:
    registry.assign(head_end_id=HE1, enrollment=enroll(HE1, 1), now=NOW)
    with pytest.raises(ConsentError):
        registry.assign(head_end_id=HE1, enrollment=enroll(HE1, 1), now=NOW)
    with pytest.raises(RegistryError):
        registry.add_meter(METER_ID, KT, now=NOW)
    log = [(e.operation, e.decision) for e in registry.audit_log()]
    assert log == [
        ("initialise", "accepted"),
        ("add-meter", "accepted"),
        ("register-head-end", "accepted"),
        ("register-head-end", "accepted"),
        ("assign", "accepted"),
        ("assign", "rejected"),
        ("add-meter", "rejected"),
    ]
    conn = sqlite3.connect(registry.path)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE audit SET decision = 'accepted'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM audit")
    finally:
        conn.close()


# --- secrets at rest ------------------------------------------------------------------------------


def test_database_files_hold_no_secret_in_clear(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "centre.db", MASTER)
    signing = centre_key()
    registry.initialise(centre_id=CENTRE_ID, now=NOW, signing_key=signing)
    meters = [meter_key(n) for n in range(20)]
    for meter_id, kt in meters:
        registry.add_meter(meter_id, kt, now=NOW)
    registry.register_head_end(HE1, name="supplier", credential=CREDENTIAL1, now=NOW)
    registry.register_head_end(HE2, name="grid", credential=CREDENTIAL2, now=NOW)
    secrets = [
        signing.private_numbers().private_value.to_bytes(32, "big"),
        CREDENTIAL1,
        CREDENTIAL2,
    ]
    for counter, (meter_id, kt) in enumerate(meters, start=1):
        secrets += [kt, derive_ki(kt, meter_id=meter_id)]
        for head_end in (HE1, HE2):
            issued = registry.assign(
                head_end_id=head_end,
                enrollment=enroll(head_end, 2 * counter + (head_end == HE2), meter=meter_id, kt=kt),
                now=NOW,
            )
            assert issued.ks is not None
            secrets.append(issued.ks)
    i0s: list[bytes] = []
    meter = make_meter(registry, meters[0][0], meters[0][1])
    for sequence in (1, 2):
        accepted = meter.load(registry.init_message(meter_id=meters[0][0], sequence=sequence), NOW)
        i0s.append(accepted.i0)
    secrets += i0s

    def scan() -> None:
        files = [p for p in tmp_path.iterdir() if p.name.startswith("centre.db")]
        assert files
        blob = b"".join(p.read_bytes() for p in files)
        for secret in secrets:
            assert secret not in blob
            assert secret.hex().encode() not in blob.lower()

    scan()  # with the WAL still holding the recent pages
    registry.close()
    scan()  # after the last connection checkpointed it


def test_the_wrong_master_key_does_not_open(tmp_path: Path) -> None:
    Registry(tmp_path / "c.db", MASTER).initialise(centre_id=CENTRE_ID, now=NOW)
    with pytest.raises(ConfigurationError, match="master key"):
        Registry(tmp_path / "c.db", MasterKey(bytes(32)))


def test_sealed_values_are_bound_to_their_row() -> None:
    sealed = MASTER.seal(KT, column="meters.kt", row=METER_ID)
    assert MASTER.open(sealed, column="meters.kt", row=METER_ID) == KT
    with pytest.raises(AuthenticationFailed):
        MASTER.open(sealed, column="meters.kt", row=HE1)
    with pytest.raises(AuthenticationFailed):
        MASTER.open(sealed, column="meters.ki", row=METER_ID)
    assert "a0a1" not in repr(MASTER).lower()


def test_master_key_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = bytes(range(32))
    (tmp_path / "hex").write_text(key.hex() + "\n")
    (tmp_path / "raw").write_bytes(key)
    (tmp_path / "bad").write_text("nothex")
    sealed = MasterKey(key).seal(b"x", column="c", row=b"r")
    for name in ("hex", "raw"):
        assert MasterKey.from_file(tmp_path / name).open(sealed, column="c", row=b"r") == b"x"
    with pytest.raises(ConfigurationError, match="64 hex digits"):
        MasterKey.from_file(tmp_path / "bad")
    with pytest.raises(ConfigurationError, match="cannot read"):
        MasterKey.from_file(tmp_path / "missing")
    monkeypatch.delenv(MASTER_KEY_ENV, raising=False)
    with pytest.raises(ConfigurationError, match="not set"):
        MasterKey.from_env()
    monkeypatch.setenv(MASTER_KEY_ENV, key.hex())
    assert MasterKey.from_env().open(sealed, column="c", row=b"r") == b"x"


# --- schema ---------------------------------------------------------------------------------------


def test_schema_version_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with Registry(path, MASTER) as registry:
        assert registry.schema_version() == SCHEMA_VERSION
        registry.initialise(centre_id=CENTRE_ID, now=NOW)
        public = registry.centre_public_key()
    with Registry(path, MASTER) as again:
        assert again.centre_public_key() == public
        assert again.centre_id() == CENTRE_ID
        assert b"BEGIN PUBLIC KEY" in again.centre_public_key_pem()
        with pytest.raises(RegistryError, match="already initialised"):
            again.initialise(centre_id=CENTRE_ID, now=NOW)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(ConfigurationError, match="newer"):
        Registry(path, MASTER)


def test_uninitialised_registry_cannot_issue(tmp_path: Path) -> None:
    with Registry(tmp_path / "c.db", MASTER) as registry:
        registry.add_meter(METER_ID, KT, now=NOW)
        registry.register_head_end(HE1, name="x", credential=CREDENTIAL1, now=NOW)
        with pytest.raises(RegistryError, match="not initialised"):
            registry.assign(head_end_id=HE1, enrollment=enroll(HE1, 1), now=NOW)
        assert registry.assignments() == []


# --- manifests ------------------------------------------------------------------------------------


def test_import_csv_and_toml(tmp_path: Path, registry: Registry) -> None:
    (a, kt_a), (b, kt_b), (c, kt_c) = meter_key(1), meter_key(2), meter_key(3)
    ki_b = os.urandom(16)
    (tmp_path / "m.csv").write_text(
        f"system_title,kt,ki\n{a.hex()},{kt_a.hex()},\n{b.hex()},{kt_b.hex()},{ki_b.hex()}\n"
    )
    (tmp_path / "m.toml").write_text(
        f'[[meter]]\nsystem_title = "{c.hex()}"\nkt = "{kt_c.hex()}"\n'
    )
    assert registry.import_manifest(tmp_path / "m.csv", now=NOW) == 2
    assert registry.import_manifest(tmp_path / "m.toml", now=NOW) == 1
    assert {m.meter_id for m in registry.meters()} == {METER_ID, a, b, c}
    # meter b was shipped with an independent Ki: its meter must be told so.
    issued = registry.assign(head_end_id=HE1, enrollment=enroll(HE1, 1, meter=b, kt=kt_b), now=NOW)
    meter = MeterAuthorization(
        meter_id=b,
        kt=kt_b,
        ki=ki_b,
        centre_public_key=registry.centre_public_key(),
        store=MemoryAuthorizationStore(),
    )
    assert meter.load(issued.init_message, NOW).ks == issued.ks


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("a.csv", "id,kt\n", "header"),
        ("b.csv", "system_title,kt\n4D414E0100000009,zz\n", "line 2: kt is not hex"),
        (
            "c.csv",
            "system_title,kt\n4D414E01,00112233445566778899AABBCCDDEEFF\n",
            "system_title is 4 bytes",
        ),
        ("d.toml", "meter = 3\n", "array of tables"),
        ("e.toml", "[[meter]]\nsystem_title = 5\n", "hex string"),
        ("f.toml", "[[meter\n", "f.toml"),
        ("g.csv", f"system_title,kt\n{METER_ID.hex()},{KT.hex()}\n", "already registered"),
    ],
)
def test_bad_manifests_import_nothing(
    tmp_path: Path, registry: Registry, name: str, text: str, match: str
) -> None:
    (tmp_path / name).write_text(
        text if name != "b.csv" else text + f"4D414E0100000008,{KT.hex()}\n"
    )
    before = snapshot(registry)
    with pytest.raises((ConfigurationError, RegistryError), match=match) as info:
        registry.import_manifest(tmp_path / name, now=NOW)
    assert KT.hex() not in str(info.value).lower()
    assert snapshot(registry) == before
    assert registry.audit_log()[-1].decision == "rejected"


# --- concurrency ----------------------------------------------------------------------------------


def test_concurrent_assignments_stay_consistent(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "centre.db", MASTER)
    registry.initialise(centre_id=CENTRE_ID, now=NOW, signing_key=centre_key())
    meters = [meter_key(n) for n in range(30)]
    for meter_id, kt in meters:
        registry.add_meter(meter_id, kt, now=NOW)
    head_ends = [bytes.fromhex("48454E44000000") + bytes([n]) for n in range(1, 5)]
    for head_end in head_ends:
        registry.register_head_end(head_end, name=head_end.hex(), credential=bytes(16), now=NOW)
    # Every meter enrolls with every head-end, each request with its own counter.
    requests = {
        (head_end, meter_id): enroll(head_end, 1 + h, meter=meter_id, kt=kt)
        for h, head_end in enumerate(head_ends)
        for meter_id, kt in meters
    }
    results: dict[bytes, list[Issued]] = {h: [] for h in head_ends}
    failures: list[BaseException] = []
    barrier = threading.Barrier(len(head_ends))

    def work(head_end: bytes) -> None:
        try:
            barrier.wait()
            for meter_id, _ in meters:
                results[head_end].append(
                    registry.assign(
                        head_end_id=head_end, enrollment=requests[head_end, meter_id], now=NOW
                    )
                )
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(h,)) for h in head_ends]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    for meter_id, kt in meters:
        rows = registry.assignments(meter_id)
        assert sorted(r.sequence for r in rows) == list(range(1, len(head_ends) + 1))
        assert {r.head_end_id for r in rows if r.state == "active"} == set(head_ends)
        meter = make_meter(registry, meter_id, kt)
        issued = sorted(
            (i for h in head_ends for i in results[h] if i.meter_id == meter_id),
            key=lambda i: i.sequence,
        )
        for item in issued:
            assert meter.load(item.init_message, NOW).ks == item.ks
    assert {m.last_sequence for m in registry.meters()} == {len(head_ends)}
    accepted = [e for e in registry.audit_log() if e.operation == "assign"]
    assert len(accepted) == len(meters) * len(head_ends)
    assert {e.decision for e in accepted} == {"accepted"}
    registry.close()


def test_issued_repr_hides_ks(registry: Registry) -> None:
    issued = registry.assign(head_end_id=HE1, enrollment=enroll(HE1, 1), now=NOW)
    assert issued.ks is not None
    assert issued.ks.hex() not in repr(issued).lower()
    assert repr(issued.ks) not in repr(issued)
