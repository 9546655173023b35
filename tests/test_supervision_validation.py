"""The meter's authentication and validity units (specs/supervision.md §6).

Every rejection case of specs §6.3 raises its error and leaves the meter's state exactly as it
was (the store is compared before and after); the order of the checks is pinned by messages that
fail two checks at once.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from cosemcast.errors import AuthenticationFailed, DecodeError, ReplayError
from cosemcast.supervision import (
    AcceptedInit,
    FutureInitMessage,
    InitAction,
    MemoryAuthorizationStore,
    MeterAuthorization,
    StaleInitMessage,
    WrongMeterError,
    derive_ks,
    open_init_message,
)
from cosemcast.supervision.validation import DEFAULT_TOLERANCE_S
from test_supervision_vectors import (
    CENTRE_ID,
    HEAD_END_ID,
    I0,
    INIT_SEALED,
    KI,
    KS,
    KT,
    METER_ID,
    NOT_AFTER,
    NOT_BEFORE,
    centre_key,
    example_message,
    independent_init_body,
    independent_seal,
)

OTHER_HEAD_END = bytes.fromhex("48454E4400000002")
NOW = NOT_BEFORE + 3600


def make_meter(store: MemoryAuthorizationStore | None = None) -> MeterAuthorization:
    return MeterAuthorization(
        meter_id=METER_ID,
        kt=KT,
        centre_public_key=centre_key().public_key(),
        store=store if store is not None else MemoryAuthorizationStore(),
    )


def seal(sequence: int = 1, **changes: object) -> bytes:
    return example_message(sequence=sequence, **changes).seal(centre_key(), KI, centre_id=CENTRE_ID)


def state(meter: MeterAuthorization) -> tuple[int, dict[bytes, bytes | None]]:
    store = meter.store
    assert isinstance(store, MemoryAuthorizationStore)
    return store.last_sequence(), {h: store.head_end_key(h) for h in store.head_ends()}


def test_the_worked_example_loads() -> None:
    meter = make_meter()
    accepted = meter.load(INIT_SEALED, NOW)
    assert accepted.head_end_id == HEAD_END_ID
    assert accepted.ks == KS
    assert accepted.sequence == 1
    assert accepted.action is InitAction.ASSIGN
    assert state(meter) == (1, {HEAD_END_ID: KS})


def test_ks_equals_the_centres() -> None:
    meter = make_meter()
    accepted = meter.load(seal(head_end_id=OTHER_HEAD_END), NOW)
    assert accepted.ks == derive_ks(KT, meter_id=METER_ID, head_end_id=OTHER_HEAD_END, i0=I0)


def test_open_init_message_alone() -> None:
    message = open_init_message(
        INIT_SEALED,
        ki=KI,
        centre_public_key=centre_key().public_key(),
        meter_id=METER_ID,
        now=NOW,
        last_sequence=0,
    )
    assert message == example_message()


# --- every rejection case: the error, and the meter's state unchanged ---------------------------


def _other_signer() -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(0x1234567890ABCDEF, ec.SECP256R1())


REJECTIONS: list[tuple[str, bytes, int, type[Exception], str]] = [
    (
        "signature by another key",
        example_message(sequence=2).seal(_other_signer(), KI, centre_id=CENTRE_ID),
        NOW,
        AuthenticationFailed,
        "signature",
    ),
    (
        "wrong Ki",
        example_message(sequence=2).seal(centre_key(), bytes(16), centre_id=CENTRE_ID),
        NOW,
        AuthenticationFailed,
        "tag",
    ),
    ("expired", seal(2), NOT_AFTER + DEFAULT_TOLERANCE_S + 1, StaleInitMessage, "expired"),
    ("future", seal(2), NOT_BEFORE - DEFAULT_TOLERANCE_S - 1, FutureInitMessage, "not valid yet"),
    ("replayed", INIT_SEALED, NOW, ReplayError, "initialization sequence 1 is not above 1"),
    (
        "older",
        seal(1, head_end_id=OTHER_HEAD_END),
        NOW,
        ReplayError,
        "initialization sequence 1 is not above 1",
    ),
    (
        "body for another meter",
        independent_seal(
            independent_init_body(OTHER_HEAD_END, HEAD_END_ID, I0, NOT_BEFORE, NOT_AFTER, 2),
            key=centre_key(),
            ki=KI,
            centre=CENTRE_ID,
            recipient=METER_ID,
            sequence=2,
        ),
        NOW,
        WrongMeterError,
        "signed body names another meter",
    ),
    (
        "envelope for another meter",
        example_message(sequence=2, meter_id=OTHER_HEAD_END).seal(
            centre_key(), KI, centre_id=CENTRE_ID
        ),
        NOW,
        WrongMeterError,
        "addressed to another meter",
    ),
    ("garbage", b"\xdd\x00", NOW, DecodeError, ""),
    ("empty", b"", NOW, DecodeError, ""),
]


@pytest.mark.parametrize(
    ("raw", "now", "error", "match"),
    [pytest.param(raw, now, error, match, id=name) for name, raw, now, error, match in REJECTIONS],
)
def test_rejection_leaves_the_meter_unchanged(
    raw: bytes, now: int, error: type[Exception], match: str
) -> None:
    meter = make_meter()
    meter.load(INIT_SEALED, NOW)
    before = state(meter)
    with pytest.raises(error, match=match or None) as info:
        meter.load(raw, now)
    assert state(meter) == before
    text = str(info.value).lower()
    for secret in (KT, KI, KS, I0):
        assert secret.hex() not in text


def test_flipped_bits_anywhere_are_rejected_without_change() -> None:
    for at in range(len(INIT_SEALED)):
        meter = make_meter()
        raw = bytearray(INIT_SEALED)
        raw[at] ^= 0x01
        with pytest.raises((DecodeError, AuthenticationFailed)):
            meter.load(bytes(raw), NOW)
        assert state(meter) == (0, {})


# --- the window and its tolerance (specs §6.2) ----------------------------------------------------


@pytest.mark.parametrize(
    "now",
    [
        NOT_BEFORE - DEFAULT_TOLERANCE_S,
        NOT_BEFORE,
        NOT_AFTER,
        NOT_AFTER + DEFAULT_TOLERANCE_S,
    ],
)
def test_window_edges_are_inclusive(now: int) -> None:
    assert make_meter().load(INIT_SEALED, now).sequence == 1


@given(now=st.integers(0, 2**64 - 1), tolerance=st.integers(0, 10**6))
def test_window_rule(now: int, tolerance: int) -> None:
    inside = NOT_BEFORE - tolerance <= now <= NOT_AFTER + tolerance
    try:
        open_init_message(
            INIT_SEALED,
            ki=KI,
            centre_public_key=centre_key().public_key(),
            meter_id=METER_ID,
            now=now,
            tolerance_s=tolerance,
            last_sequence=0,
        )
    except StaleInitMessage as exc:
        assert not inside and now > NOT_AFTER + tolerance
        assert (exc.not_before, exc.not_after, exc.now) == (NOT_BEFORE, NOT_AFTER, now)
    except FutureInitMessage:
        assert not inside and now < NOT_BEFORE - tolerance
    else:
        assert inside


def test_zero_tolerance() -> None:
    meter = MeterAuthorization(
        meter_id=METER_ID,
        kt=KT,
        centre_public_key=centre_key().public_key(),
        store=MemoryAuthorizationStore(),
        tolerance_s=0,
    )
    with pytest.raises(FutureInitMessage):
        meter.load(INIT_SEALED, NOT_BEFORE - 1)
    with pytest.raises(StaleInitMessage):
        meter.load(INIT_SEALED, NOT_AFTER + 1)
    assert meter.load(INIT_SEALED, NOT_AFTER).sequence == 1


# --- the order of the checks (specs §6.1) --------------------------------------------------------


def test_tag_before_signature() -> None:
    raw = example_message(sequence=5).seal(_other_signer(), bytes(16), centre_id=CENTRE_ID)
    with pytest.raises(AuthenticationFailed, match="tag"):
        make_meter().load(raw, NOW)


def test_signature_before_meter_id() -> None:
    raw = example_message(sequence=5, meter_id=OTHER_HEAD_END).seal(
        _other_signer(), KI, centre_id=CENTRE_ID
    )
    with pytest.raises(AuthenticationFailed, match="signature"):
        make_meter().load(raw, NOW)


def test_meter_id_before_window() -> None:
    raw = example_message(sequence=5, meter_id=OTHER_HEAD_END).seal(
        centre_key(), KI, centre_id=CENTRE_ID
    )
    with pytest.raises(WrongMeterError):
        make_meter().load(raw, 0)


def test_window_before_sequence() -> None:
    meter = make_meter()
    meter.load(INIT_SEALED, NOW)
    with pytest.raises(StaleInitMessage):
        meter.load(INIT_SEALED, NOT_AFTER + 10**6)


# --- actions and sequence (specs §6.4) ------------------------------------------------------------


def test_actions_apply_to_the_store() -> None:
    meter = make_meter()
    meter.load(INIT_SEALED, NOW)
    second = meter.load(seal(2, head_end_id=OTHER_HEAD_END), NOW)
    assert state(meter)[1] == {HEAD_END_ID: KS, OTHER_HEAD_END: second.ks}
    revoked = meter.load(seal(3, action=InitAction.REVOKE, i0=bytes(16)), NOW)
    assert revoked.ks is None
    assert state(meter) == (3, {OTHER_HEAD_END: second.ks})
    owner = meter.load(seal(7, action=InitAction.ASSIGN_EXCLUSIVE), NOW)
    assert state(meter) == (7, {HEAD_END_ID: owner.ks})


@pytest.mark.parametrize(("last", "accepted"), [(0, True), (1, False), (2, False)])
def test_sequence_rule_without_a_store(last: int, accepted: bool) -> None:
    def run() -> object:
        return open_init_message(
            INIT_SEALED,
            ki=KI,
            centre_public_key=centre_key().public_key(),
            meter_id=METER_ID,
            now=NOW,
            last_sequence=last,
        )

    if accepted:
        assert run() == example_message()
    else:
        with pytest.raises(ReplayError) as info:
            run()
        assert (info.value.received, info.value.expected_min) == (1, last + 1)


def test_sequence_may_skip_but_never_go_back() -> None:
    meter = make_meter()
    meter.load(seal(10), NOW)
    with pytest.raises(ReplayError) as info:
        meter.load(seal(9), NOW)
    assert (info.value.received, info.value.expected_min) == (9, 11)
    assert meter.load(seal(11), NOW).sequence == 11


def test_a_failing_store_changes_nothing() -> None:
    class FailingStore(MemoryAuthorizationStore):
        def accept(self, accepted: AcceptedInit) -> None:
            raise OSError("disk full")

    meter = make_meter(FailingStore())
    with pytest.raises(OSError, match="disk full"):
        meter.load(INIT_SEALED, NOW)
    assert state(meter) == (0, {})


def test_explicit_ki_and_persisted_sequence() -> None:
    store = MemoryAuthorizationStore(last_sequence=1)
    meter = MeterAuthorization(
        meter_id=METER_ID, kt=KT, centre_public_key=centre_key().public_key(), store=store, ki=KI
    )
    with pytest.raises(ReplayError):
        meter.load(INIT_SEALED, NOW)
    assert meter.load(seal(2), NOW).ks == KS


def test_reprs_hide_keys() -> None:
    meter = make_meter()
    accepted = meter.load(INIT_SEALED, NOW)
    for text in (repr(meter), repr(accepted), repr(meter.store)):
        for secret in (KT, KI, KS, I0):
            assert secret.hex() not in text.lower()
            assert repr(secret) not in text


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="8-byte"):
        MeterAuthorization(
            meter_id=bytes(4),
            kt=KT,
            centre_public_key=centre_key().public_key(),
            store=MemoryAuthorizationStore(),
        )
    with pytest.raises(ValueError, match="tolerance"):
        MeterAuthorization(
            meter_id=METER_ID,
            kt=KT,
            centre_public_key=centre_key().public_key(),
            store=MemoryAuthorizationStore(),
            tolerance_s=-1,
        )
    with pytest.raises(ValueError, match="P-256"):
        open_init_message(
            INIT_SEALED,
            ki=KI,
            centre_public_key=ec.generate_private_key(ec.SECP384R1()).public_key(),
            meter_id=METER_ID,
            now=NOW,
            last_sequence=0,
        )
