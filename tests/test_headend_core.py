"""The sans-IO head-end core (specs/shared-payload.md §6, §9.3): acknowledgements of C1s,
parking bounds and expiry reported in the stats, key expiry, and a hostile input stream that
never makes :meth:`HeadEnd.handle_apdu` raise."""

from __future__ import annotations

import io
import itertools
import json
import random
import sqlite3
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cosemcast.headend import HeadEnd, ReadingSink, SqliteHeadEndStore
from cosemcast.headend.headend import GroupCommit
from cosemcast.sharedpayload import (
    AckKind,
    HeadEndAssignment,
    MemoryCounterSource,
    PayloadSealer,
    RenewalPolicy,
    as_general_ciphering,
)
from test_headend_e2e import METER_1, METER_AGREEMENT, SUPPLIER, ks, readings

NOW = 1_700_000_000.0
_SERIAL = itertools.count()


def make(
    tmp_path: Path,
    policy: RenewalPolicy,
    *,
    parking_capacity: int = 100,
    parking_max_age_s: float = 3_600,
) -> tuple[HeadEnd, PayloadSealer]:
    store = SqliteHeadEndStore(
        tmp_path / "h.sqlite3",
        system_title=SUPPLIER,
        parking_capacity=parking_capacity,
        parking_max_age_s=parking_max_age_s,
    )
    store.set_credentials(METER_1, shared_key=ks(SUPPLIER, METER_1))
    head_end = HeadEnd(SUPPLIER, store, ReadingSink(stream=io.StringIO()), clock=lambda: NOW)
    sealer = PayloadSealer(
        system_title=METER_1,
        head_ends=[HeadEndAssignment(SUPPLIER, ks(SUPPLIER, METER_1))],
        counters=MemoryCounterSource(),
        rng=random.Random(3).randbytes,
        policy=policy,
        agreement_private_key=METER_AGREEMENT[METER_1],
    )
    return head_end, sealer


def test_payload_acknowledgements_reach_the_meter(tmp_path: Path) -> None:
    head_end, sealer = make(tmp_path, RenewalPolicy(ack_payloads=True))
    sealer.renew(NOW)
    parked = sealer.seal_c1(readings(1), NOW).encode()
    assert head_end.handle_apdu("m", parked, NOW) == []  # parked: nothing to acknowledge yet
    ((_, c2),) = sealer.control_messages(NOW)
    out = head_end.handle_apdu("m", c2.encode(), NOW)
    assert [destination for destination, _ in out] == ["m", "m"]
    kinds = [sealer.accept_ack(as_general_ciphering(ack)).kind for _, ack in out]
    assert kinds == [AckKind.CONTROL, AckKind.PAYLOAD]
    c1 = sealer.seal_c1(readings(2), NOW)
    ((_, ack),) = head_end.handle_apdu("m", c1.encode(), NOW)
    assert sealer.accept_ack(as_general_ciphering(ack)).acknowledged_ic == c1.invocation_counter
    stats = head_end.stats()
    assert (stats["opened"], stats["released"], stats["acks_sent"]) == (2, 1, 3)


def test_parking_evictions_and_expiry_are_reported(tmp_path: Path) -> None:
    head_end, sealer = make(
        tmp_path, RenewalPolicy(max_age_s=60, delivery_window_s=0), parking_capacity=2,
        parking_max_age_s=10,
    )  # fmt: skip
    sealer.renew(NOW)
    for value in range(3):
        head_end.handle_apdu("m", sealer.seal_c1(readings(value), NOW).encode(), NOW)
    assert head_end.stats()["parked_evicted"] == 1
    head_end.tick(NOW + 11)
    stats = head_end.stats()
    assert (stats["parked_expired"], stats["parked_now"]) == (2, 0)
    ((_, c2),) = sealer.control_messages(NOW)
    head_end.handle_apdu("m", c2.encode(), NOW)
    assert head_end.stats()["keys_now"] == 1
    head_end.tick(NOW + 60 + 300 + 1)  # not-after + clock skew passed
    stats = head_end.stats()
    assert (stats["keys_expired"], stats["keys_now"]) == (1, 0)
    head_end.handle_apdu("m", c2.encode(), NOW + 400)
    assert head_end.stats()["rejected.stale_key_id"] == 1


_HOSTILE = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_HOSTILE
@given(
    junk=st.lists(st.binary(max_size=80), max_size=6),
    flips=st.lists(st.tuples(st.booleans(), st.integers(0, 200), st.integers(1, 255)), max_size=6),
    cut=st.integers(0, 120),
)
def test_hostile_input_never_raises(
    tmp_path: Path, junk: list[bytes], flips: list[tuple[bool, int, int]], cut: int
) -> None:
    directory = tmp_path / str(next(_SERIAL))
    directory.mkdir()
    head_end, sealer = make(directory, RenewalPolicy())
    sealer.renew(NOW)
    ((_, c2),) = sealer.control_messages(NOW)
    genuine = [c2.encode(), sealer.seal_c1(readings(5), NOW).encode()]
    truncated = [genuine[0][:cut], genuine[1][:cut]]
    hostile = [*junk, *(t for t in truncated if t not in genuine)]
    for is_c2, index, xor in flips:
        base = bytearray(genuine[0 if is_c2 else 1])
        base[index % len(base)] ^= xor
        hostile.append(bytes(base))
    for apdu in hostile:
        assert head_end.handle_apdu("x", apdu, NOW) == []
    stats = head_end.stats()
    assert stats["received"] == len(hostile)
    assert (stats["opened"], stats["controls_accepted"]) == (0, 0)
    head_end.store.close()


def test_a_store_failure_mid_batch_drops_the_whole_batch_unacknowledged(tmp_path: Path) -> None:
    """A real SQLite error (a trigger refusing to park) rolls the batch back: the readings
    and acknowledgements of the C1s before and after it are dropped, nothing of them is
    committed later, and when the meter sends them again each is read exactly once."""
    store = SqliteHeadEndStore(tmp_path / "h.sqlite3", system_title=SUPPLIER, keep_readings=True)
    store.set_credentials(METER_1, shared_key=ks(SUPPLIER, METER_1))
    out = io.StringIO()
    head_end = HeadEnd(
        SUPPLIER,
        store,
        ReadingSink(stream=out),
        clock=lambda: NOW,
        group_commit=GroupCommit(max_messages=100),
    )
    sealer = PayloadSealer(
        system_title=METER_1,
        head_ends=[HeadEndAssignment(SUPPLIER, ks(SUPPLIER, METER_1))],
        counters=MemoryCounterSource(),
        rng=random.Random(5).randbytes,
        policy=RenewalPolicy(ack_payloads=True, max_payloads=2),
    )
    first = [sealer.seal_c1(readings(v), NOW).encode() for v in (1, 2)]
    controls = [c2.encode() for _, c2 in sealer.control_messages(NOW)]
    early = sealer.seal_c1(readings(3), NOW).encode()  # renewed: its C2 is not sent yet
    head_end.handle_apdu("m", controls[0], NOW)
    assert head_end.flush() != []  # the key is durable, its C2 acknowledged
    with sqlite3.connect(tmp_path / "h.sqlite3") as other:
        other.execute(
            "CREATE TRIGGER no_room BEFORE INSERT ON parked BEGIN"
            " SELECT RAISE(ABORT, 'no room'); END"
        )
    head_end.handle_apdu("m", first[0], NOW)
    head_end.handle_apdu("m", early, NOW)  # parking fails: the store rolls back
    head_end.handle_apdu("m", first[1], NOW)
    assert head_end.flush() == []
    stats = head_end.stats()
    assert (stats["batches_lost"], stats["readings_lost"], stats["opened"]) == (1, 2, 0)
    assert out.getvalue() == ""
    with sqlite3.connect(tmp_path / "h.sqlite3") as other:
        other.execute("DROP TRIGGER no_room")
    head_end.group_commit = GroupCommit()
    for raw in [*first, early, *(c2.encode() for _, c2 in sealer.control_messages(NOW))]:
        head_end.handle_apdu("m", raw, NOW)
    assert head_end.stats()["opened"] == 3
    with sqlite3.connect(tmp_path / "h.sqlite3") as other:
        values = sorted(
            json.loads(body)[1]["value"]
            for (body,) in other.execute("SELECT body_json FROM readings")
        )
    assert values == [1, 2, 3]
    store.close()
