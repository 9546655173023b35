"""Concurrent assignments through the real service keep the registry consistent (issue 5 item 6).

Three head-ends, each on its own thread and TCP association, ask for the same 30 meters at
once, while a stranger keeps knocking. Afterwards every meter has sequences 1, 2, 3 (unique,
gap-free), one consent and one active assignment per head-end, every Ks a head-end received
is the one the registry re-derives and the one the meter derives, and the audit log holds
one row per decision.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from cosemcast.errors import AssociationRejected
from cosemcast.supervision import MemoryAuthorizationStore, MeterAuthorization
from cosemcast.supervision.channel import ChannelKeys
from cosemcast.supervision.wire import Assignment
from test_supervision_service import (
    HEAD_ENDS,
    NOW,
    STRANGER,
    Centre,
    enroll,
    meter_id,
    meter_kt,
    start_centre,
)

METERS = 30


def test_concurrent_head_ends_keep_the_registry_consistent(tmp_path: Path) -> None:
    centre = start_centre(tmp_path, meters=METERS)
    results: dict[bytes, list[Assignment]] = {}
    failures: list[BaseException] = []
    refused = Counter[str]()
    barrier = threading.Barrier(len(HEAD_ENDS) + 1)
    done = threading.Event()

    def head_end(index: int, title: bytes) -> None:
        try:
            with centre.client(title) as channel:
                barrier.wait(30)
                results[title] = [
                    channel.assign(enroll(n, title, 1 + index * METERS + n)) for n in range(METERS)
                ]
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    def stranger() -> None:
        barrier.wait(30)
        while not done.is_set():
            try:
                centre.client(STRANGER, ChannelKeys(bytes(16), bytes(16)))
            except AssociationRejected:
                refused["stranger"] += 1

    threads = [threading.Thread(target=head_end, args=(i, t)) for i, t in enumerate(HEAD_ENDS)]
    knocker = threading.Thread(target=stranger)
    try:
        for thread in [*threads, knocker]:
            thread.start()
        for thread in threads:
            thread.join(120)
        done.set()
        knocker.join(30)
        assert not failures, failures
        assert not any(t.is_alive() for t in [*threads, knocker])
        check(centre, results, refused["stranger"])
    finally:
        centre.service.close()
        centre.registry.close()


def check(centre: Centre, results: dict[bytes, list[Assignment]], stranger: int) -> None:
    registry = centre.registry
    assert sorted(results) == sorted(HEAD_ENDS)
    assert all(m.last_sequence == len(HEAD_ENDS) for m in registry.meters())
    by_meter: dict[bytes, list[int]] = {}
    for record in registry.assignments():
        assert record.state == "active"
        by_meter.setdefault(record.meter_id, []).append(record.sequence)
    assert len(by_meter) == METERS
    assert all(sorted(s) == [1, 2, 3] for s in by_meter.values())
    for n in range(METERS):
        store = MemoryAuthorizationStore()
        meter = MeterAuthorization(
            meter_id=meter_id(n),
            kt=meter_kt(n),
            centre_public_key=registry.centre_public_key(),
            store=store,
        )
        received = sorted(
            (results[h][n] for h in HEAD_ENDS), key=lambda a: a.sequence
        )  # the order in which the centre issued them
        for assignment in received:
            meter.load(assignment.init_message, NOW)
        for title in HEAD_ENDS:
            ks = results[title][n].ks
            assert ks == registry.head_end_key(meter_id=meter_id(n), head_end_id=title)
            assert store.head_end_key(title) == ks
    decisions = Counter((e.operation, e.decision) for e in registry.audit_log())
    assert decisions[("assign", "accepted")] == METERS * len(HEAD_ENDS)
    assert decisions[("assign", "rejected")] == 0
    assert decisions[("associate", "accepted")] == len(HEAD_ENDS)
    assert decisions[("associate", "rejected")] == stranger


@pytest.mark.parametrize("rounds", [2])
def test_one_head_end_reconnecting_keeps_its_counters(tmp_path: Path, rounds: int) -> None:
    """Sequential associations of one head-end: counters never go back (they persist)."""
    centre = start_centre(tmp_path, meters=rounds)
    try:
        for n in range(rounds):
            with centre.client(HEAD_ENDS[0]) as channel:
                assert channel.assign(enroll(n, HEAD_ENDS[0], n + 1)).sequence == 1
    finally:
        centre.service.close()
        centre.registry.close()
