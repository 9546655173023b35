"""The meter's Assignment object (class 8962) and its SQLite store (specs/supervision.md §6.5-§6.6).

Initialization messages come from a real supervision Registry and reach the software meter the
way a head-end relays them (Fig. 6c): a DlmsClient over TCP calls load_init_message. Every
rejection of specs §6.3 gives its Action-Result and a log line and leaves every row of the
meter's state file as it was; an accepted message survives a restart and its replay is refused
after it.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cosemcast.apdu.common import ActionResult
from cosemcast.association import AssociationSettings
from cosemcast.axdr.types import (
    Array,
    DoubleLongUnsigned,
    Enumerated,
    Integer,
    Long64Unsigned,
    OctetString,
    Structure,
)
from cosemcast.client import ActionError, DlmsClient
from cosemcast.cosem.assignment import Interruption, StoredHeadEnd, Validity
from cosemcast.errors import ConfigurationError, ReplayError
from cosemcast.meter import SoftwareMeter
from cosemcast.meter._objects_config import Table
from cosemcast.meter.authorization import (
    SqliteAuthorizationStore,
    parse_supervision_config,
)
from cosemcast.meter.state import MeterState, MeterStateError
from cosemcast.supervision import (
    AcceptedInit,
    EnrollmentRequest,
    InitAction,
    MemoryAuthorizationStore,
    derive_ki,
)
from cosemcast.supervision.registry import Registry
from test_meter_assignment_support import (
    ASSIGNMENT,
    CENTRE_ID,
    HE1,
    HE2,
    HE3,
    KT,
    MASTER,
    METER_ID,
    NOW,
    Centre,
    centre_key,
    dump_state,
    make_meter,
    public_pem,
)
from test_meter_support import FakeClock

PUBLIC = AssociationSettings(client_sap=16, server_sap=1)


@pytest.fixture
def centre(tmp_path: Path) -> Iterator[Centre]:
    c = Centre(tmp_path / "centre.db")
    yield c
    c.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def meter(tmp_path: Path, centre: Centre, clock: FakeClock) -> Iterator[SoftwareMeter]:
    m = make_meter(tmp_path / "meter.db", centre, clock)
    yield m
    m.close()


def public_client(meter: SoftwareMeter) -> DlmsClient:
    if not meter.servers:
        meter.serve_tcp("127.0.0.1", 0)
    host, port = meter.servers[0].address
    client = DlmsClient.tcp(host, port, PUBLIC, timeout_s=10.0)
    client.associate()
    return client


def load(client: DlmsClient, raw: object) -> None:
    client.action(ASSIGNMENT, 1, raw if not isinstance(raw, bytes) else OctetString(raw), 8962)


# --- configuration -------------------------------------------------------------------------


def parse(extra: dict[str, object], base: Path | None = None) -> object:
    table = {"kt": KT.hex(), "centre_public_key": public_pem(centre_key()), **extra}
    return parse_supervision_config(Table("<t>", "supervision", table), base or Path.cwd())


def test_configuration_defaults_and_fields(tmp_path: Path) -> None:
    pem = tmp_path / "keys" / "centre.pem"
    pem.parent.mkdir()
    pem.write_text(public_pem(centre_key()))
    config = parse(
        {
            "centre_public_key": "keys/centre.pem",
            "clock_tolerance_s": 60,
            "renewal_timeout_s": 7200,
            "management_client": 1,
            "default_destination": "127.0.0.1:4070",
            "head_ends": [{"system_title": HE1.hex(), "destination": "tcp://127.0.0.1:4061"}],
        },
        tmp_path,
    )
    assert config.kt == KT  # type: ignore[attr-defined]
    assert config.clock_tolerance_s == 60  # type: ignore[attr-defined]
    assert config.renewal_timeout_s == 7200  # type: ignore[attr-defined]
    assert config.head_ends[0].destination == "tcp://127.0.0.1:4061"  # type: ignore[attr-defined]
    assert KT.hex() not in repr(config).lower()
    defaults = parse({})
    assert (defaults.clock_tolerance_s, defaults.renewal_timeout_s) == (300, 0)  # type: ignore[attr-defined]
    assert parse({"kt": bytes(range(32)).hex()}).kt == bytes(range(32))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"kt": KT.hex()[:-2]}, "kt"),
        ({"kt": "zz" * 16}, "kt"),
        ({"centre_public_key": "missing.pem"}, "centre_public_key"),
        (
            {"centre_public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"},
            "centre",
        ),
        ({"clock_tolerance_s": -1}, "clock_tolerance_s"),
        ({"renewal_timeout_s": "1h"}, "renewal_timeout_s"),
        ({"head_ends": [{"system_title": HE1.hex(), "destination": "nowhere"}]}, "destination"),
        ({"head_ends": [{"system_title": HE1.hex()[:-2], "destination": "a:1"}]}, "system_title"),
        (
            {"head_ends": [{"system_title": HE1.hex(), "destination": "a:1"}] * 2},
            "listed twice",
        ),
        ({"kt_typo": "00"}, "unknown field"),
    ],
)
def test_configuration_errors_name_the_field_never_the_key(
    extra: dict[str, object], field: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse(extra)
    assert field in str(info.value)
    assert KT.hex() not in str(info.value).lower()


def test_the_centre_key_must_be_p256() -> None:
    other = ec.generate_private_key(ec.SECP384R1()).public_key()
    pem = other.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    with pytest.raises(ConfigurationError, match="P-256"):
        parse({"centre_public_key": pem})


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("management_client = 99", "management_client"),
        ('disconnect = "0-0:96.3.11.255"', "disconnect"),
        ("server_sap = 7", "server_sap"),
    ],
)
def test_meter_references_are_checked(
    tmp_path: Path, centre: Centre, clock: FakeClock, extra: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make_meter(tmp_path / "m.db", centre, clock, extra=extra)


# --- rejections ------------------------------------------------------------------------------

Case = Callable[[Centre, Path, FakeClock, DlmsClient], object]


def _signed_by_another_centre(centre: Centre, tmp: Path, clock: FakeClock, c: DlmsClient) -> object:
    other = Centre(tmp / "other.db", key=centre_key(0xBAD))
    try:
        return other.assign(HE1).init_message
    finally:
        other.close()


def _under_another_ki(centre: Centre, tmp: Path, clock: FakeClock, c: DlmsClient) -> object:
    registry = Registry(tmp / "ki.db", MASTER)
    try:
        registry.initialise(centre_id=CENTRE_ID, now=NOW, signing_key=centre.key)
        registry.add_meter(METER_ID, KT, ki=b"\x11" * 16, now=NOW)
        registry.register_head_end(HE1, name="h", credential=b"c" * 32, now=NOW)
        request = EnrollmentRequest(METER_ID, HE1, NOW, 1).seal(KT)
        return registry.assign(head_end_id=HE1, enrollment=request, now=NOW).init_message
    finally:
        registry.close()


def _for_another_meter(centre: Centre, tmp: Path, clock: FakeClock, c: DlmsClient) -> object:
    other_meter = bytes.fromhex("4D4D4D0000000002")
    centre.registry.add_meter(other_meter, KT, ki=derive_ki(KT, meter_id=METER_ID), now=NOW)
    request = EnrollmentRequest(other_meter, HE1, NOW, 1).seal(KT)
    return centre.registry.assign(head_end_id=HE1, enrollment=request, now=NOW).init_message


def _expired(centre: Centre, tmp: Path, clock: FakeClock, c: DlmsClient) -> object:
    raw = centre.assign(HE1).init_message
    clock.advance(seconds=86_400 + 301)
    return raw


def _future(centre: Centre, tmp: Path, clock: FakeClock, c: DlmsClient) -> object:
    return centre.assign(HE1, now=NOW + 3_600).init_message


def _replayed(centre: Centre, tmp: Path, clock: FakeClock, c: DlmsClient) -> object:
    raw = centre.assign(HE1).init_message
    load(c, raw)
    return raw


def _older(centre: Centre, tmp: Path, clock: FakeClock, c: DlmsClient) -> object:
    first = centre.assign(HE1).init_message
    load(c, centre.assign(HE2).init_message)
    return first


def _tampered(centre: Centre, tmp: Path, clock: FakeClock, c: DlmsClient) -> object:
    raw = bytearray(centre.assign(HE1).init_message)
    raw[60] ^= 0x01
    return bytes(raw)


def _malformed(centre: Centre, tmp: Path, clock: FakeClock, c: DlmsClient) -> object:
    return bytes.fromhex("DD0008") + b"not a message"


def _not_an_octet_string(centre: Centre, tmp: Path, clock: FakeClock, c: DlmsClient) -> object:
    return Integer(0)


@pytest.mark.parametrize(
    ("case", "result", "reason"),
    [
        (_signed_by_another_centre, ActionResult.READ_WRITE_DENIED, "authentication failed"),
        (_under_another_ki, ActionResult.READ_WRITE_DENIED, "authentication failed"),
        (_tampered, ActionResult.READ_WRITE_DENIED, "authentication failed"),
        (_for_another_meter, ActionResult.SCOPE_OF_ACCESS_VIOLATED, "for another meter"),
        (_expired, ActionResult.OTHER_REASON, "expired"),
        (_future, ActionResult.TEMPORARY_FAILURE, "not valid yet"),
        (_replayed, ActionResult.OTHER_REASON, "replayed"),
        (_older, ActionResult.OTHER_REASON, "replayed"),
        (_malformed, ActionResult.TYPE_UNMATCHED, "malformed"),
        (_not_an_octet_string, ActionResult.TYPE_UNMATCHED, None),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)).strip("_").replace("_", " "),
)
def test_rejections_give_an_action_result_and_change_nothing(
    tmp_path: Path,
    centre: Centre,
    clock: FakeClock,
    meter: SoftwareMeter,
    caplog: pytest.LogCaptureFixture,
    case: Case,
    result: ActionResult,
    reason: str | None,
) -> None:
    client = public_client(meter)
    try:
        raw = case(centre, tmp_path, clock, client)
        meter.advance_to()
        before = dump_state(tmp_path / "meter.db")
        attributes = [client.get(ASSIGNMENT, n, 8962) for n in (2, 3, 4, 5)]
        caplog.clear()
        with caplog.at_level(logging.INFO, "cosemcast"), pytest.raises(ActionError) as info:
            load(client, raw)
        assert info.value.result is result
        assert dump_state(tmp_path / "meter.db") == before
        assert [client.get(ASSIGNMENT, n, 8962) for n in (2, 3, 4, 5)] == attributes
    finally:
        client.close()
    if reason is not None:
        refusals = [r for r in caplog.records if "refused" in r.getMessage()]
        assert len(refusals) == 1
        assert reason in refusals[0].getMessage()
        assert refusals[0].levelno == logging.WARNING


# --- acceptance and restart ------------------------------------------------------------------


def test_accepted_message_survives_a_restart_and_its_replay_stays_refused(
    tmp_path: Path, centre: Centre, clock: FakeClock
) -> None:
    state = tmp_path / "meter.db"
    first = centre.assign(HE1)
    second = centre.assign(HE3)
    with make_meter(state, centre, clock) as meter:
        client = public_client(meter)
        try:
            load(client, first.init_message)
            load(client, second.init_message)
            assigned = client.get(ASSIGNMENT, 2, 8962)
            assert client.get(ASSIGNMENT, 3, 8962) == DoubleLongUnsigned(second.sequence)
        finally:
            client.close()
    assert assigned == Array(
        [
            Structure([OctetString(HE1), Enumerated(0), OctetString(b"127.0.0.1:4061")]),
            Structure([OctetString(HE3), Enumerated(0), OctetString(b"")]),
        ]
    )
    with make_meter(state, centre, clock) as meter:
        keys = {h.system_title: h.ks for h in meter.supervision.head_ends()}  # type: ignore[union-attr]
        assert keys == {HE1: first.ks, HE3: second.ks}
        client = public_client(meter)
        try:
            assert client.get(ASSIGNMENT, 2, 8962) == assigned
            assert client.get(ASSIGNMENT, 3, 8962) == DoubleLongUnsigned(second.sequence)
            meter.advance_to()
            before = dump_state(state)
            for raw in (first.init_message, second.init_message):
                with pytest.raises(ActionError) as info:
                    load(client, raw)
                assert info.value.result is ActionResult.OTHER_REASON
            assert dump_state(state) == before
        finally:
            client.close()


def test_the_state_file_keeps_i0_not_ks(tmp_path: Path, centre: Centre, clock: FakeClock) -> None:
    issued = centre.assign(HE1)
    state = tmp_path / "meter.db"
    with make_meter(state, centre, clock) as meter:
        meter.supervision.assignment.load(issued.init_message)  # type: ignore[union-attr]
    stored = b"".join(
        bytes(v) if isinstance(v, bytes) else str(v).encode()
        for rows in dump_state(state).values()
        for row in rows
        for v in row
    )
    assert issued.ks is not None
    assert issued.ks not in stored and issued.ks.hex().encode() not in stored
    assert KT not in stored


# --- the SQLite store against the reference semantics ---------------------------------------


def _accepted(action: InitAction, head_end: bytes, sequence: int) -> AcceptedInit:
    i0 = bytes(16) if action is InitAction.REVOKE else sequence.to_bytes(16, "big")
    ks = None if action is InitAction.REVOKE else bytes([sequence]) * 16
    return AcceptedInit(action, head_end, sequence, NOW, i0, ks)


STEPS = [
    (InitAction.ASSIGN, HE1),
    (InitAction.ASSIGN, HE2),
    (InitAction.ASSIGN, HE1),
    (InitAction.REVOKE, HE2),
    (InitAction.REVOKE, HE3),
    (InitAction.ASSIGN, HE3),
    (InitAction.ASSIGN_EXCLUSIVE, HE2),
    (InitAction.ASSIGN, HE1),
    (InitAction.REVOKE, HE1),
    (InitAction.REVOKE, HE2),
]


def test_the_store_applies_actions_like_the_reference(tmp_path: Path) -> None:
    state = MeterState(tmp_path / "s.db")
    try:
        store = SqliteAuthorizationStore(state, device=1)
        reference = MemoryAuthorizationStore()
        sequence = 0
        for action, head_end in STEPS:
            sequence += 3
            accepted = _accepted(action, head_end, sequence)
            store.accept(accepted, renewed_at=NOW + sequence)
            reference.accept(accepted)
            assert {h.system_title for h in store.head_ends()} == reference.head_ends()
            assert store.last_sequence() == reference.last_sequence() == sequence
            assert store.validity() == Validity(NOW + sequence, Interruption.NORMAL)
        before = dump_state(tmp_path / "s.db")
        with pytest.raises(ReplayError):
            store.accept(_accepted(InitAction.ASSIGN, HE3, sequence), renewed_at=NOW)
        assert dump_state(tmp_path / "s.db") == before
    finally:
        state.close()


def test_the_store_keeps_the_sequence_that_assigned_each_head_end(tmp_path: Path) -> None:
    state = MeterState(tmp_path / "s.db")
    try:
        store = SqliteAuthorizationStore(state, device=1)
        store.accept(_accepted(InitAction.ASSIGN, HE2, 5))
        store.accept(_accepted(InitAction.ASSIGN, HE1, 9))
        assert store.head_ends() == (
            StoredHeadEnd(HE1, 9, (9).to_bytes(16, "big")),
            StoredHeadEnd(HE2, 5, (5).to_bytes(16, "big")),
        )
        assert store.validity() is None
        store.set_validity(Validity(NOW, Interruption.SUPPLY_INTERRUPTED))
        assert store.validity() == Validity(NOW, Interruption.SUPPLY_INTERRUPTED)
    finally:
        state.close()


@pytest.mark.parametrize(
    ("table", "name", "value"),
    [
        ("secrets", "head_ends", b"\x01\x01\x02\x02\x09\x01"),
        ("secrets", "head_ends", b"\xff"),
        ("object_fields", "last_sequence", bytes.fromhex("0A0161")),
        ("object_fields", "interruption", bytes.fromhex("1609")),
    ],
)
def test_a_damaged_store_is_reported(tmp_path: Path, table: str, name: str, value: bytes) -> None:
    path = tmp_path / "s.db"
    state = MeterState(path)
    try:
        store = SqliteAuthorizationStore(state, device=1)
        store.accept(_accepted(InitAction.ASSIGN, HE1, 1), renewed_at=NOW)
        column = "name" if table == "secrets" else "field"
        owner = "owner" if table == "secrets" else "obis"
        conn = sqlite3.connect(path)
        with conn:
            conn.execute(
                f"UPDATE {table} SET value = ? WHERE {column} = ? AND {owner} = ?",
                (value, name, ASSIGNMENT),
            )
        conn.close()
        with pytest.raises(MeterStateError, match="damaged"):
            store.head_ends()
            store.last_sequence()
            store.validity()
    finally:
        state.close()


def test_validity_fields_are_typed(tmp_path: Path) -> None:
    state = MeterState(tmp_path / "s.db")
    try:
        store = SqliteAuthorizationStore(state, device=1)
        store.set_validity(Validity(NOW))
        fields = state.fields(1, ASSIGNMENT)
        assert fields["renewed_at"] == Long64Unsigned(NOW)
        assert fields["interruption"] == Enumerated(0)
    finally:
        state.close()


# --- arbitrary bytes -------------------------------------------------------------------------


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_arbitrary_and_mutated_messages_are_only_ever_refused(
    tmp_path: Path, centre: Centre, meter: SoftwareMeter, data: st.DataObject
) -> None:
    assignment = meter.supervision.assignment  # type: ignore[union-attr]
    valid = centre.sample_message()
    if data.draw(st.booleans()):
        raw = data.draw(st.binary(max_size=300))
    else:
        mutated = bytearray(valid)
        for _ in range(data.draw(st.integers(1, 4))):
            index = data.draw(st.integers(0, len(mutated) - 1))
            mutated[index] ^= data.draw(st.integers(1, 255))
        cut = data.draw(st.integers(0, len(mutated)))
        raw = bytes(mutated[:cut]) if data.draw(st.booleans()) else bytes(mutated)
        assume(raw != valid)
    before = dump_state(tmp_path / "meter.db")
    result, returned = assignment.invoke(1, OctetString(raw))
    assert result is not ActionResult.SUCCESS and returned is None
    assert dump_state(tmp_path / "meter.db") == before
