"""End-to-end behaviour of the shared-payload core, sans IO (specs/shared-payload.md §3, §6, §7,
§9, §10): three head-ends reading one C1, renewal with C1s in flight, C1 before C2, C2 for
another head-end, replays, wrong Ks, the ECDH variants, acknowledgements and retransmission,
windows and retirement, the buffer, and Hypothesis properties over whole runs."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, replace

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from cosemcast.apdu.common import LongInvokeIdAndPriority
from cosemcast.apdu.general import GeneralCiphering
from cosemcast.apdu.notifications import DataNotification
from cosemcast.axdr import Data, DoubleLongUnsigned, OctetString, Structure
from cosemcast.errors import (
    AuthenticationFailed,
    DecodeError,
    EncodeError,
    KeyUnavailableError,
    ReplayError,
)
from cosemcast.security.general_protection import PresharedKey, cipher_general
from cosemcast.sharedpayload import (
    AckBody,
    AckKind,
    ControlConflict,
    HeadEndAssignment,
    HeadEndOpener,
    KeyNotYetValid,
    KpId,
    MemoryCounterSource,
    MemoryPayloadKeyStore,
    MeterNotAssigned,
    MisaddressedMessage,
    ParkingLot,
    PayloadKeyUnknown,
    PayloadSealer,
    RenewalPolicy,
    ReplayWindow,
    StaleKeyId,
    StaticMeterCredentials,
    counter_key_id,
    seal_ack,
    seal_control,
)
from cosemcast.sharedpayload.messages import ControlBody
from strategies import data_values

METER = bytes.fromhex("4D4D4D0000BC614E")
SUPPLIER = bytes.fromhex("4D4D4D0000000001")
GRID = bytes.fromhex("4D4D4D0000000002")
WATER = bytes.fromhex("4D4D4D0000000003")
OUTSIDER = bytes.fromhex("4D4D4D0000000009")
NOW = 1_700_000_000.0


class Drbg:
    """Deterministic randomness for reproducible runs (SHA-256 in counter mode)."""

    def __init__(self, seed: bytes) -> None:
        self._seed, self._n = seed, 0

    def __call__(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            self._n += 1
            out += hashlib.sha256(self._seed + self._n.to_bytes(8, "big")).digest()
        return out[:n]


def ks(name: bytes) -> bytes:
    return hashlib.sha256(b"Ks" + name).digest()[:16]


WATER_KEY = ec.derive_private_key(0x5EED, ec.SECP256R1())
METER_AGREEMENT = ec.derive_private_key(0xBEEF, ec.SECP256R1())


def readings(value: int) -> bytes:
    body = Structure((OctetString(bytes.fromhex("0100010800FF")), DoubleLongUnsigned(value)))
    return DataNotification(LongInvokeIdAndPriority(value & 0xFFFFFF), None, body).encode()


@dataclass
class World:
    sealer: PayloadSealer
    openers: dict[bytes, HeadEndOpener]

    def deliver_controls(self, now: float, *, ack: bool = True) -> int:
        delivered = 0
        for head_end, c2 in self.sealer.control_messages(now):
            accepted = self.openers[head_end].accept_c2(c2.encode(), now)
            delivered += 1
            if ack and accepted.ack is not None:
                self.sealer.accept_ack(accepted.ack)
        return delivered


def assignments(*, ecdh: bool = True) -> list[HeadEndAssignment]:
    water = (
        HeadEndAssignment(WATER, agreement_public_key=WATER_KEY.public_key())
        if ecdh
        else HeadEndAssignment(WATER, shared_key=ks(WATER))
    )
    return [
        HeadEndAssignment(SUPPLIER, shared_key=ks(SUPPLIER)),
        HeadEndAssignment(GRID, shared_key=ks(GRID)),
        water,
    ]


def opener(title: bytes, **kwargs: object) -> HeadEndOpener:
    if title == WATER:
        creds = StaticMeterCredentials(agreement_public_keys={METER: METER_AGREEMENT.public_key()})
        return HeadEndOpener(
            system_title=WATER,
            credentials=creds,
            store=MemoryPayloadKeyStore(),
            agreement_private_key=WATER_KEY,
            **kwargs,  # type: ignore[arg-type]
        )
    return HeadEndOpener(
        system_title=title,
        credentials=StaticMeterCredentials({METER: ks(title)}),
        store=MemoryPayloadKeyStore(),
        **kwargs,  # type: ignore[arg-type]
    )


def world(policy: RenewalPolicy | None = None, seed: bytes = b"world") -> World:
    sealer = PayloadSealer(
        system_title=METER,
        head_ends=assignments(),
        counters=MemoryCounterSource(),
        rng=Drbg(seed),
        policy=policy,
        agreement_private_key=METER_AGREEMENT,
    )
    return World(sealer, {t: opener(t) for t in (SUPPLIER, GRID, WATER)})


# --- three head-ends, one C1 ---------------------------------------------------------------------


def test_three_head_ends_read_the_same_c1() -> None:
    w = world()
    c1 = w.sealer.seal_c1(readings(123456), NOW).encode()
    assert w.deliver_controls(NOW) == 3
    for title, head_end in w.openers.items():
        opened = head_end.open_c1(c1, NOW + 1)
        assert opened.notification == readings(123456), title
        assert opened.meter_system_title == METER
        assert opened.ack is None  # payload acknowledgements not requested
    assert all(entry.acknowledged for entry in w.sealer.controls)
    assert w.sealer.control_messages(NOW + 10_000) == []


def test_outsiders_cannot_read_c1() -> None:
    w = world()
    c1 = w.sealer.seal_c1(readings(1), NOW)
    controls = w.sealer.control_messages(NOW)
    stranger = HeadEndOpener(
        system_title=OUTSIDER, credentials=StaticMeterCredentials(), store=MemoryPayloadKeyStore()
    )
    with pytest.raises(MeterNotAssigned):
        stranger.open_c1(c1, NOW)
    # An outsider that shares some Ks with the meter but got no C2 never learns Kp.
    half = HeadEndOpener(
        system_title=OUTSIDER,
        credentials=StaticMeterCredentials({METER: ks(OUTSIDER)}),
        store=MemoryPayloadKeyStore(),
    )
    with pytest.raises(PayloadKeyUnknown):
        half.open_c1(c1, NOW)
    for _, c2 in controls:
        with pytest.raises(MisaddressedMessage):
            half.accept_c2(c2, NOW)


# --- renewal -------------------------------------------------------------------------------------


def test_renewal_every_n_payloads_with_c1s_in_flight() -> None:
    w = world(RenewalPolicy(max_payloads=3))
    in_flight = [w.sealer.seal_c1(readings(i), NOW + i) for i in range(10)]
    kp_ids = [KpId.from_bytes(c.transaction_id) for c in in_flight]
    assert kp_ids == sorted(kp_ids) and len(set(kp_ids)) == 4
    assert [kp_ids.count(k) for k in sorted(set(kp_ids))] == [3, 3, 3, 1]
    assert w.deliver_controls(NOW + 20) == 12
    shuffled = in_flight[:]
    random.Random(7).shuffle(shuffled)
    for head_end in w.openers.values():
        got = {head_end.open_c1(c, NOW + 30).notification for c in shuffled}
        assert got == {readings(i) for i in range(10)}


def test_renewal_every_t_seconds_and_on_a_changed_set() -> None:
    policy = RenewalPolicy(max_payloads=None, max_age_s=600, delivery_window_s=60)
    w = world(policy)
    first = w.sealer.seal_c1(readings(1), NOW)
    same = w.sealer.seal_c1(readings(2), NOW + 599)
    later = w.sealer.seal_c1(readings(3), NOW + 600)
    assert first.transaction_id == same.transaction_id != later.transaction_id
    old = KpId.from_bytes(later.transaction_id)
    # The grid operator leaves: new epoch, new Kp at once, C2s only for the two that remain.
    assert w.sealer.set_head_ends([a for a in assignments() if a.system_title != GRID], NOW + 601)
    new = w.sealer.current_key
    assert new is not None and new.kp_id.epoch > old.epoch and new.kp_id.sequence > old.sequence
    assert {
        t
        for t, c2 in w.sealer.control_messages(NOW + 601)
        if c2.transaction_id == new.kp_id.to_bytes()
    } == {
        SUPPLIER,
        WATER,
    }
    assert not w.sealer.set_head_ends(
        [a for a in assignments() if a.system_title != GRID], NOW + 602
    )
    c1 = w.sealer.seal_c1(readings(4), NOW + 602)
    grid = opener(GRID)
    with pytest.raises(PayloadKeyUnknown):
        grid.open_c1(c1, NOW + 603)


def test_a_new_ks_for_a_head_end_renews() -> None:
    w = world()
    w.sealer.seal_c1(readings(1), NOW)
    before = w.sealer.current_key
    changed = [
        replace(a, shared_key=bytes(16)) if a.system_title == GRID else a for a in assignments()
    ]
    assert w.sealer.set_head_ends(changed, NOW + 1)
    assert w.sealer.current_key != before


# --- C1 before C2 --------------------------------------------------------------------------------


def test_c1_before_c2_is_parked_and_opened_when_the_c2_arrives() -> None:
    w = world(RenewalPolicy(max_payloads=2))
    lot = ParkingLot(capacity=100)
    supplier = w.openers[SUPPLIER]
    early = [w.sealer.seal_c1(readings(i), NOW) for i in range(4)]
    opened: list[bytes] = []
    for c1 in early:
        with pytest.raises(PayloadKeyUnknown) as info:
            supplier.open_c1(c1, NOW)
        assert info.value.meter_system_title == METER
        assert lot.park(METER, KpId.from_bytes(info.value.kp_id), c1, NOW) == []
    assert len(lot) == 4
    for head_end, c2 in w.sealer.control_messages(NOW + 1):
        if head_end != SUPPLIER:
            continue
        accepted = supplier.accept_c2(c2, NOW + 1)
        for c1 in lot.release(accepted.meter_system_title, accepted.kp_id):
            opened.append(supplier.open_c1(c1, NOW + 1).notification)
    assert opened == [readings(i) for i in range(4)] and len(lot) == 0


def test_parking_is_bounded_and_reports_what_leaves() -> None:
    w = world()
    c1s = [w.sealer.seal_c1(readings(i), NOW) for i in range(5)]
    kp = KpId.from_bytes(c1s[0].transaction_id)
    lot = ParkingLot(capacity=3, max_age_s=10)
    evicted = [p for c in c1s for p in lot.park(METER, kp, c, NOW)]
    assert [p.apdu for p in evicted] == c1s[:2] and len(lot) == 3
    assert [p.apdu for p in lot.expire(NOW + 11)] == c1s[2:] and len(lot) == 0
    assert lot.release(METER, kp) == []


# --- every rejection of specs §10 ----------------------------------------------------------------


def test_c2_for_another_head_end_is_refused_before_any_crypto() -> None:
    w = world()
    w.sealer.seal_c1(readings(1), NOW)
    controls = dict(w.sealer.control_messages(NOW))
    with pytest.raises(MisaddressedMessage) as info:
        w.openers[SUPPLIER].accept_c2(controls[GRID], NOW)
    assert info.value.received == GRID and info.value.expected == SUPPLIER


def test_replayed_c1_is_refused_and_reordered_c1_accepted() -> None:
    w = world(RenewalPolicy(max_payloads=None))
    c1s = [w.sealer.seal_c1(readings(i), NOW) for i in range(70)]
    w.deliver_controls(NOW)
    supplier = w.openers[SUPPLIER]
    assert supplier.replay_window == 64
    supplier.open_c1(c1s[1], NOW)
    supplier.open_c1(c1s[0], NOW)  # reordered on the way: accepted, once
    for replay in (c1s[0], c1s[1]):
        with pytest.raises(ReplayError) as info:
            supplier.open_c1(replay, NOW)
        assert info.value.received == replay.invocation_counter
    supplier.open_c1(c1s[69], NOW)
    highest = c1s[69].invocation_counter
    with pytest.raises(ReplayError) as info:  # fell out of the window
        supplier.open_c1(c1s[2], NOW)
    assert info.value.expected_min == highest - 63
    oldest = next(c for c in c1s if c.invocation_counter == highest - 63)
    assert supplier.open_c1(oldest, NOW).invocation_counter == highest - 63


@settings(max_examples=200)
@given(st.lists(st.integers(0, 300), max_size=80), st.integers(1, 70))
def test_replay_window_matches_a_reference_model(ics: list[int], size: int) -> None:
    """Accepted iff never accepted before and above (highest accepted - size)."""
    window: ReplayWindow | None = None
    seen: set[int] = set()
    for ic in ics:
        expected = ic not in seen and (not seen or ic > max(seen) - size)
        refused = window is not None and window.refusal(ic, size) is not None
        assert refused == (not expected)
        if expected:
            seen.add(ic)
            window = ReplayWindow(ic) if window is None else window.accept(ic, size)
            assert window.highest == max(seen)


def test_c1_below_the_first_announced_counter_is_refused() -> None:
    w = world()
    w.sealer.seal_c1(readings(1), NOW)
    w.deliver_controls(NOW)
    key = w.sealer.current_key
    assert key is not None
    # A C1 sealed under Kp with the IC of a C2 (which the sealer itself refuses to do).
    forged = cipher_general(
        readings(9),
        key=PresharedKey(key.key),
        security_control=0x30,
        invocation_counter=key.first_invocation_counter - 1,
        transaction_id=key.kp_id.to_bytes(),
        originator_system_title=METER,
        recipient_system_title=b"",
    )
    with pytest.raises(ReplayError) as info:
        w.openers[SUPPLIER].open_c1(forged, NOW)
    assert info.value.expected_min == key.first_invocation_counter


def test_replayed_c2_is_a_retransmission_and_a_different_one_a_conflict() -> None:
    w = world()
    w.sealer.seal_c1(readings(1), NOW)
    controls = dict(w.sealer.control_messages(NOW))
    supplier = w.openers[SUPPLIER]
    first = supplier.accept_c2(controls[SUPPLIER], NOW)
    again = supplier.accept_c2(controls[SUPPLIER].encode(), NOW + 5)
    assert not first.retransmission and again.retransmission
    assert first.ack == again.ack  # the same acknowledgement, byte for byte
    key = w.sealer.current_key
    assert key is not None
    other_body = ControlBody(
        key.kp_id, key.not_before, key.not_after - 1, key.first_invocation_counter
    )
    other = seal_control(
        key,
        other_body,
        meter_system_title=METER,
        head_end=assignments()[0],
        invocation_counter=0,
        rng=Drbg(b"x"),
    )
    with pytest.raises(ControlConflict):
        supplier.accept_c2(other.apdu, NOW)


def test_wrong_ks_fails_authentication_and_changes_nothing() -> None:
    w = world()
    c1 = w.sealer.seal_c1(readings(1), NOW)
    controls = dict(w.sealer.control_messages(NOW))
    store = MemoryPayloadKeyStore()
    wrong = HeadEndOpener(
        system_title=SUPPLIER, credentials=StaticMeterCredentials({METER: ks(GRID)}), store=store
    )
    with pytest.raises(AuthenticationFailed):
        wrong.accept_c2(controls[SUPPLIER], NOW)
    with pytest.raises(PayloadKeyUnknown):
        wrong.open_c1(c1, NOW)


def test_old_kp_ids_are_refused_after_retirement() -> None:
    policy = RenewalPolicy(max_payloads=1, max_age_s=100, delivery_window_s=0)
    w = world(policy)
    old_c1 = w.sealer.seal_c1(readings(1), NOW)
    old_controls = dict(w.sealer.control_messages(NOW))
    supplier = w.openers[SUPPLIER]
    supplier.accept_c2(old_controls[SUPPLIER], NOW)
    new_c1 = w.sealer.seal_c1(readings(2), NOW + 1)
    w.deliver_controls(NOW + 1)
    skew = supplier.clock_skew_s
    late = NOW + 100 + skew + 1
    # The old kp_id's window has passed: the C1 is refused and the key retired for good.
    with pytest.raises(StaleKeyId):
        supplier.open_c1(old_c1, late)
    assert supplier.expire(late + 10) == [(METER, KpId.from_bytes(new_c1.transaction_id))]
    with pytest.raises(StaleKeyId):
        supplier.accept_c2(old_controls[SUPPLIER], late + 10)  # a replayed old C2
    with pytest.raises(StaleKeyId):
        supplier.open_c1(new_c1, late + 10)


def test_expired_c2_and_future_keys() -> None:
    w = world(RenewalPolicy(max_age_s=100, delivery_window_s=0))
    w.sealer.seal_c1(readings(1), NOW)
    controls = dict(w.sealer.control_messages(NOW))
    supplier, grid = w.openers[SUPPLIER], w.openers[GRID]
    with pytest.raises(KeyNotYetValid):
        supplier.accept_c2(controls[SUPPLIER], NOW - supplier.clock_skew_s - 1)
    with pytest.raises(StaleKeyId):
        grid.accept_c2(controls[GRID], NOW + 100 + grid.clock_skew_s + 1)
    assert supplier.accept_c2(controls[SUPPLIER], NOW - supplier.clock_skew_s).kp_id


def test_c1_with_a_non_notification_payload_is_refused() -> None:
    w = world()
    w.sealer.seal_c1(readings(1), NOW)
    w.deliver_controls(NOW)
    key = w.sealer.current_key
    assert key is not None
    wrong = cipher_general(
        bytes.fromhex("C001C1000800000100FF0200"),
        key=PresharedKey(key.key),
        security_control=0x30,
        invocation_counter=1000,
        transaction_id=key.kp_id.to_bytes(),
        originator_system_title=METER,
        recipient_system_title=b"",
    )
    with pytest.raises(DecodeError):
        w.openers[GRID].open_c1(wrong, NOW)
    w.openers[GRID].open_c1(w.sealer.seal_c1(readings(2), NOW), NOW)  # the counter did not move


def test_sealer_refuses_what_is_not_a_data_notification() -> None:
    w = world()
    with pytest.raises(EncodeError):
        w.sealer.seal_c1(bytes.fromhex("C001C1000800000100FF0200"), NOW)


# --- acknowledgements and retransmission ([0048]) ------------------------------------------------


def test_c2_is_resent_until_acknowledged() -> None:
    w = world(RenewalPolicy(retry_interval_s=60))
    w.sealer.seal_c1(readings(1), NOW)
    assert len(w.sealer.control_messages(NOW)) == 3
    assert w.sealer.control_messages(NOW + 59) == []
    resent = w.sealer.control_messages(NOW + 60)
    assert len(resent) == 3
    # The supplier's acknowledgement is lost once; the retransmission is re-acknowledged.
    supplier_c2 = dict(resent)[SUPPLIER]
    w.openers[SUPPLIER].accept_c2(supplier_c2, NOW + 60)
    again = w.openers[SUPPLIER].accept_c2(supplier_c2, NOW + 120)
    assert again.retransmission and again.ack is not None
    body = w.sealer.accept_ack(again.ack)
    assert body.kind is AckKind.CONTROL and body.acknowledged_ic == supplier_c2.invocation_counter
    assert {t for t, _ in w.sealer.control_messages(NOW + 120)} == {GRID, WATER}
    assert w.sealer.control_messages(NOW + 86_400 + 3_600 + 1) == []  # the key expired


def test_forged_and_misaddressed_acknowledgements() -> None:
    w = world()
    w.sealer.seal_c1(readings(1), NOW)
    key = w.sealer.current_key
    assert key is not None
    supplier_entry = next(e for e in w.sealer.controls if e.head_end == SUPPLIER)
    # The grid operator knows Kp but not the supplier's Ka.
    forged = seal_ack(
        AckBody(key.kp_id, supplier_entry.invocation_counter, AckKind.CONTROL),
        ack_key=key.key,
        head_end_system_title=SUPPLIER,
        meter_system_title=METER,
    )
    with pytest.raises(AuthenticationFailed):
        w.sealer.accept_ack(forged)
    good = w.openers[SUPPLIER].accept_c2(supplier_entry.apdu, NOW).ack
    assert good is not None
    with pytest.raises(MisaddressedMessage):
        w.sealer.accept_ack(replace(good, recipient_system_title=GRID))
    with pytest.raises(KeyUnavailableError):
        w.sealer.accept_ack(replace(good, originator_system_title=OUTSIDER))
    wrong_ic = seal_ack(
        AckBody(key.kp_id, supplier_entry.invocation_counter + 1, AckKind.CONTROL),
        ack_key=supplier_entry.ack_key,
        head_end_system_title=SUPPLIER,
        meter_system_title=METER,
    )
    with pytest.raises(DecodeError):
        w.sealer.accept_ack(wrong_ic)
    w.sealer.accept_ack(good)
    w.sealer.accept_ack(good)  # idempotent
    assert next(e for e in w.sealer.controls if e.head_end == SUPPLIER).acknowledged


def test_payload_acknowledgements() -> None:
    w = world(RenewalPolicy(ack_payloads=True))
    c1s = [w.sealer.seal_c1(readings(i), NOW) for i in range(3)]
    for head_end, c2 in w.sealer.control_messages(NOW):
        w.openers[head_end].accept_c2(c2, NOW)  # the C2 acknowledgements are all lost
    kp_id = KpId.from_bytes(c1s[0].transaction_id)
    for c1 in c1s:
        ack = w.openers[GRID].open_c1(c1, NOW).ack
        assert ack is not None
        assert w.sealer.accept_ack(ack).kind is AckKind.PAYLOAD
    assert w.sealer.acknowledged_payload_ic(GRID, kp_id) == c1s[-1].invocation_counter
    assert w.sealer.acknowledged_payload_ic(SUPPLIER, kp_id) is None
    # A payload acknowledgement proves the grid operator holds Kp: its C2 is done.
    assert {t for t, _ in w.sealer.control_messages(NOW + 3600)} == {SUPPLIER, WATER}


# --- the buffer ([0038]) -------------------------------------------------------------------------


def test_sealed_ahead_and_buffered() -> None:
    w = world(RenewalPolicy(buffer_capacity=3, max_age_s=100, delivery_window_s=50))
    evicted = [e for i in range(4) for e in w.sealer.seal_ahead(readings(i), NOW + i)]
    assert len(evicted) == 1 and len(w.sealer.buffered) == 3
    w.deliver_controls(NOW + 10)
    sent = w.sealer.take_buffered(NOW + 20)
    assert [w.openers[WATER].open_c1(c, NOW + 20).notification for c in sent] == [
        readings(i) for i in (1, 2, 3)
    ]
    w.sealer.seal_ahead(readings(9), NOW + 21)
    assert w.sealer.take_buffered(NOW + 151) == [] and w.sealer.dropped_expired == 1


# --- secrets stay out of reprs -------------------------------------------------------------------


def test_no_key_in_any_repr() -> None:
    w = world()
    c1 = w.sealer.seal_c1(readings(1), NOW)
    w.deliver_controls(NOW)
    key = w.sealer.current_key
    assert key is not None
    secrets = [key.key, ks(SUPPLIER), ks(GRID)] + [e.ack_key for e in w.sealer.controls]
    stored = w.openers[SUPPLIER]._store.get(METER, key.kp_id)
    texts = [
        repr(key),
        repr(w.sealer),
        repr(w.sealer.snapshot()),
        repr(assignments()),
        repr(w.openers[SUPPLIER]),
        repr(stored),
        repr(StaticMeterCredentials({METER: ks(SUPPLIER)})),
        repr(w.openers[SUPPLIER].open_c1(c1, NOW)),
    ]
    for text in texts:
        for secret in secrets:
            assert secret.hex() not in text.lower() and repr(secret) not in text


# --- properties over whole runs ------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["seal", "ahead", "flush", "renew", "drop-grid", "tick"]), data_values
        ),
        min_size=1,
        max_size=25,
    ),
    st.integers(1, 4),
)
def test_runs_never_reuse_an_iv_and_every_head_end_reads_everything(
    ops: list[tuple[str, Data]], n: int
) -> None:
    """Whatever the sequence of seals, renewals and set changes: no (kp_id, IC) repeats, and
    every assigned head-end opens every C1 sealed while it was assigned, in any order."""
    w = world(RenewalPolicy(max_payloads=n, max_age_s=500, delivery_window_s=10_000))
    now = NOW
    sent: list[tuple[GeneralCiphering, frozenset[bytes], bytes]] = []
    for op, value in ops:
        now += 7
        plain = DataNotification(LongInvokeIdAndPriority(1), None, value).encode()
        members = frozenset(a.system_title for a in w.sealer.head_ends)
        if op == "seal":
            sent.append((w.sealer.seal_c1(plain, now), members, plain))
        elif op == "ahead":
            w.sealer.seal_ahead(plain, now)
            sent.append(
                (
                    w.sealer.buffered[-1].apdu,
                    frozenset(a.system_title for a in w.sealer.head_ends),
                    plain,
                )
            )
        elif op == "flush":
            w.sealer.take_buffered(now)
        elif op == "renew":
            w.sealer.renew(now)
        elif op == "drop-grid":
            w.sealer.set_head_ends([a for a in assignments() if a.system_title != GRID], now)
        else:
            now += 400
        w.deliver_controls(now)
    ivs = [(c.transaction_id, c.invocation_counter) for c, _, _ in sent]
    ivs += [(e.apdu.transaction_id, e.invocation_counter) for e in w.sealer.controls]
    assert len(ivs) == len(set(ivs))
    for c1, members, plain in reversed(sent):
        for title in members:
            assert w.openers[title].open_c1(c1, now).notification == plain


@settings(max_examples=60, deadline=None)
@given(data_values)
def test_any_notification_body_round_trips(value: Data) -> None:
    w = world()
    plain = DataNotification(LongInvokeIdAndPriority(3), None, value).encode()
    c1 = w.sealer.seal_c1(plain, NOW).encode()
    w.deliver_controls(NOW)
    assert {h.open_c1(c1, NOW).notification for h in w.openers.values()} == {plain}


def test_counter_key_ids_name_meter_and_kp_id() -> None:
    assert counter_key_id(METER, KpId(1, 2)) == "sp-kp/4d4d4d0000bc614e/0000000100000002"
