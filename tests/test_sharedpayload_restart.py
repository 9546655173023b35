"""A meter restart never reuses an invocation counter under one Kp, and never reuses a kp_id
(specs/shared-payload.md §3.1, §7.1), with the SQLite counter store of security/counters.py."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from pathlib import Path

from cosemcast.apdu.common import LongInvokeIdAndPriority
from cosemcast.apdu.general import GeneralCiphering
from cosemcast.apdu.notifications import DataNotification
from cosemcast.axdr import DoubleLongUnsigned
from cosemcast.security.counters import CounterStore
from cosemcast.sharedpayload import (
    HeadEndAssignment,
    HeadEndOpener,
    KpId,
    MemoryPayloadKeyStore,
    PayloadSealer,
    RenewalPolicy,
    SealerState,
    StaticMeterCredentials,
)

METER = bytes.fromhex("4D4D4D0000BC614E")
HE_A = bytes.fromhex("4D4D4D0000000001")
HE_B = bytes.fromhex("4D4D4D0000000002")
NOW = 1_700_000_000.0
KS = {HE_A: bytes(range(16)), HE_B: bytes(range(16, 32))}


def _rng(seed: bytes) -> Callable[[int], bytes]:
    state = {"n": 0}

    def rng(n: int) -> bytes:
        state["n"] += 1
        return hashlib.sha256(seed + state["n"].to_bytes(4, "big")).digest()[:n]

    return rng


def _notification(i: int) -> bytes:
    return DataNotification(LongInvokeIdAndPriority(1), None, DoubleLongUnsigned(i)).encode()


def _sealer(
    counters: CounterStore,
    seed: bytes,
    state: SealerState | None = None,
    titles: tuple[bytes, ...] = (HE_A, HE_B),
) -> PayloadSealer:
    return PayloadSealer(
        system_title=METER,
        head_ends=[HeadEndAssignment(t, shared_key=KS[t]) for t in titles],
        counters=counters,
        rng=_rng(seed),
        policy=RenewalPolicy(max_payloads=None),
        state=state,
    )


def _ivs(apdus: list[GeneralCiphering]) -> list[tuple[bytes, int]]:
    return [(a.transaction_id, a.invocation_counter) for a in apdus]


def test_restart_with_a_lagging_snapshot_continues_above_every_counter(tmp_path: Path) -> None:
    path = tmp_path / "meter-counters.db"
    counters = CounterStore(path, block=1000)
    sealer = _sealer(counters, b"boot-1")
    sent = [sealer.seal_c1(_notification(i), NOW + i) for i in range(3)]
    controls = [c2 for _, c2 in sealer.control_messages(NOW)]
    state = sealer.snapshot()  # persisted here ...
    sent += [sealer.seal_c1(_notification(i), NOW + i) for i in range(3, 6)]  # ... then 3 more
    del sealer
    counters.close()  # the process dies

    counters = CounterStore(path, block=1000)
    revived = _sealer(counters, b"boot-2", state)
    after = [revived.seal_c1(_notification(i), NOW + 100 + i) for i in range(6, 9)]
    counters.close()
    kp_ids = {a.transaction_id for a in sent + after}
    assert len(kp_ids) == 1  # the same Kp continues
    assert min(a.invocation_counter for a in after) > max(a.invocation_counter for a in sent)
    ivs = _ivs(sent + after + controls)
    assert len(ivs) == len(set(ivs))
    # Every head-end reads every C1, before and after the restart.
    for title in (HE_A, HE_B):
        opener = HeadEndOpener(
            system_title=title,
            credentials=StaticMeterCredentials({METER: KS[title]}),
            store=MemoryPayloadKeyStore(),
        )
        opener.accept_c2(next(c for c in controls if c.recipient_system_title == title), NOW)
        got = [opener.open_c1(c, NOW + 200).notification for c in sent + after]
        assert got == [_notification(i) for i in range(9)]


def test_restart_without_state_draws_a_new_kp_id(tmp_path: Path) -> None:
    path = tmp_path / "meter-counters.db"
    seen: list[GeneralCiphering] = []
    kp_ids: list[KpId] = []
    for boot in range(4):
        counters = CounterStore(path, block=7)
        sealer = _sealer(counters, b"boot-%d" % boot)
        seen += [sealer.seal_c1(_notification(i), NOW) for i in range(3)]
        seen += [c2 for _, c2 in sealer.control_messages(NOW)]
        key = sealer.current_key
        assert key is not None
        kp_ids.append(key.kp_id)
        counters.close()
    assert kp_ids == sorted(kp_ids) and len(set(kp_ids)) == 4
    assert all(b.epoch > a.epoch and b.sequence > a.sequence for a, b in itertools.pairwise(kp_ids))
    ivs = _ivs(seen)
    assert len(ivs) == len(set(ivs))


def test_restored_state_with_another_assignment_renews(tmp_path: Path) -> None:
    counters = CounterStore(tmp_path / "c.db")
    sealer = _sealer(counters, b"a")
    sealer.seal_c1(_notification(1), NOW)
    state = sealer.snapshot()
    before = sealer.current_key
    assert before is not None
    revived = _sealer(counters, b"b", state, titles=(HE_A,))
    assert revived.renewal_due(NOW + 1) == "the assigned head-ends changed"
    c1 = revived.seal_c1(_notification(2), NOW + 1)
    after = KpId.from_bytes(c1.transaction_id)
    assert after.epoch > before.kp_id.epoch
    assert {t for t, _ in revived.control_messages(NOW + 1)} >= {HE_A}
    counters.close()


def test_a_restart_with_the_assignment_given_back_keeps_the_payload_key(tmp_path: Path) -> None:
    """The assigned set comes from the assignment object (supervision) after a restart: the
    sealer starts from the configuration's (empty) set, then receives the set its restored key
    was drawn for; that is no change, so Kp stays (specs/shared-payload.md §3.3)."""
    with CounterStore(tmp_path / "c.sqlite3") as counters:
        first = _sealer(counters, b"one")
        first.seal_c1(_notification(1), NOW)
        state = first.snapshot()
        kp = first.current_key
        assert kp is not None
        again = _sealer(counters, b"two", state=state, titles=())
        assert again.renewal_due(NOW + 1) == "the assigned head-ends changed"
        given_back = [HeadEndAssignment(t, shared_key=KS[t]) for t in (HE_B, HE_A)]
        assert again.set_head_ends(given_back, NOW + 1) is False
        assert again.current_key == kp
        assert again.renewal_due(NOW + 1) is None
        # A different set after the restart still renews.
        assert again.set_head_ends(given_back[:1], NOW + 2) is True
        assert again.current_key != kp
