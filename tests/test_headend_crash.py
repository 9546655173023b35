"""Crash safety of the head-end's group commit (specs/shared-payload.md §9.2, §9.3).

A real head-end process (``HeadEnd`` on a ``SqliteHeadEndStore`` file, readings rows in the
commit, JSON lines after it) ingests C2s and C1s of real ``PayloadSealer`` meters fed over
its stdin, and is killed with SIGKILL in the middle: by itself at a chosen point (a parked
C1 released but not committed), or from outside while it streams. The file is then
reopened and every message sent again, as meters retransmit what was not acknowledged.
Whatever the instant of the kill: no C1 acknowledged before is accepted again, every C1 ends
up in the readings table exactly once, no parked C1 is lost, acknowledged keys are kept.
"""

from __future__ import annotations

import io
import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

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
from test_headend_e2e import SUPPLIER, ks, readings

NOW = 1_700_000_000.0
WAIT_S = 60.0

_CHILD = """
import json, os, signal, sys
from cosemcast.headend import HeadEnd, ReadingSink, SqliteHeadEndStore
from cosemcast.headend.headend import GroupCommit
db, out, credentials, batch = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
title = bytes.fromhex(credentials["head_end"])
store = SqliteHeadEndStore(db, system_title=title, keep_readings=True)
for meter, key in credentials["meters"].items():
    store.set_credentials(bytes.fromhex(meter), shared_key=bytes.fromhex(key))
stream = open(out, "a", encoding="utf-8")
head_end = HeadEnd(
    title, store, ReadingSink(stream=stream), clock=lambda: float(credentials["now"]),
    group_commit=GroupCommit(max_messages=int(batch)),
)
print("ready", flush=True)
for line in sys.stdin:
    command, _, argument = line.strip().partition(" ")
    if command == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    acks = head_end.flush() if command == "flush" else head_end.handle_apdu(
        "m", bytes.fromhex(argument))
    for _, ack in acks:
        print("ack", ack.hex(), flush=True)
    print("done", flush=True)
"""


class Fleet:
    """Meters whose C1s ask for acknowledgements; every message they sent, in order."""

    def __init__(self, count: int, seed: int) -> None:
        self.sealers = {}
        for n in range(count):
            title = bytes.fromhex("4D4D4D0000C0") + n.to_bytes(2, "big")
            self.sealers[title] = PayloadSealer(
                system_title=title,
                head_ends=[HeadEndAssignment(SUPPLIER, ks(SUPPLIER, title))],
                counters=MemoryCounterSource(),
                rng=random.Random(seed * 1000 + n).randbytes,
                policy=RenewalPolicy(ack_payloads=True, max_payloads=4),
            )
        self.c1s: dict[tuple[str, str, int], bytes] = {}  # (meter, kp_id, IC) → C1
        self.c2s: list[bytes] = []

    def credentials(self) -> str:
        meters = {t.hex(): ks(SUPPLIER, t).hex() for t in self.sealers}
        return json.dumps({"head_end": SUPPLIER.hex(), "meters": meters, "now": NOW})

    def c1(self, title: bytes, value: int) -> bytes:
        sealed = self.sealers[title].seal_c1(readings(value), NOW)
        raw = sealed.encode()
        self.c1s[
            (title.hex().upper(), sealed.transaction_id.hex().upper(), sealed.invocation_counter)
        ] = raw
        return raw

    def controls(self, title: bytes) -> list[bytes]:
        out = [c2.encode() for _, c2 in self.sealers[title].control_messages(NOW)]
        self.c2s.extend(out)
        return out

    def acknowledged(self, acks: list[bytes]) -> set[tuple[str, str, int]]:
        """The (meter, kp_id, IC) of the C1s acknowledged by ``acks``."""
        done = set()
        for ack in acks:
            decoded = as_general_ciphering(ack)
            title = bytes(decoded.recipient_system_title)
            body = self.sealers[title].accept_ack(decoded)
            if body.kind is AckKind.PAYLOAD:
                done.add(
                    (title.hex().upper(), body.kp_id.to_bytes().hex().upper(), body.acknowledged_ic)
                )
        return done


class Child:
    def __init__(self, tmp_path: Path, fleet: Fleet, batch: int) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _CHILD,
                str(tmp_path / "h.sqlite3"),
                str(tmp_path / "out.jsonl"),
                fleet.credentials(),
                str(batch),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.acks: list[bytes] = []
        assert self._line() == "ready"

    def _line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if line.startswith("ack "):
            self.acks.append(bytes.fromhex(line[4:]))
        return line

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def call(self, command: str) -> None:
        self.send(command)
        while (line := self._line()) != "done":
            assert line.startswith("ack "), line

    def killed(self) -> None:
        assert self.process.wait(WAIT_S) == -signal.SIGKILL
        assert self.process.stdout is not None
        for line in self.process.stdout.read().splitlines():
            if line.startswith("ack "):
                self.acks.append(bytes.fromhex(line[4:]))


def reopen(tmp_path: Path) -> tuple[HeadEnd, SqliteHeadEndStore]:
    store = SqliteHeadEndStore(tmp_path / "h.sqlite3", system_title=SUPPLIER, keep_readings=True)
    head_end = HeadEnd(SUPPLIER, store, ReadingSink(stream=io.StringIO()), clock=lambda: NOW)
    return head_end, store


def rows(tmp_path: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(tmp_path / "h.sqlite3") as conn:
        return [
            (str(m), str(k), int(ic))
            for m, k, ic in conn.execute("SELECT meter, kp_id, invocation_counter FROM readings")
        ]


def check_after_crash(tmp_path: Path, fleet: Fleet, acked: set[tuple[str, str, int]]) -> None:
    """Replays refused, then every message sent again: each C1 read exactly once."""
    before = rows(tmp_path)
    assert len(before) == len(set(before))
    assert acked <= set(before)
    out = tmp_path / "out.jsonl"
    lines = out.read_text().splitlines() if out.exists() else []
    output = {(r["meter"], r["kp_id"], r["invocation_counter"]) for r in map(json.loads, lines)}
    assert output <= set(before)
    head_end, store = reopen(tmp_path)
    try:
        for slot in sorted(acked):
            assert head_end.handle_apdu("m", fleet.c1s[slot]) == []
        stats = head_end.stats()
        assert stats.get("rejected.replay_error", 0) == len(acked), stats
        assert stats["opened"] == 0
        for c2 in fleet.c2s:  # the meters retransmit every C2 (kept ones: retransmissions)
            head_end.handle_apdu("m", c2)
        for raw in fleet.c1s.values():  # and every C1 not acknowledged
            head_end.handle_apdu("m", raw)
        stats = head_end.stats()
        assert stats["parked_now"] == 0
        assert stats["rejected"] == stats.get("rejected.replay_error", 0)
    finally:
        store.close()
    after = rows(tmp_path)
    assert sorted(after) == sorted(fleet.c1s)


def test_a_kill_between_release_and_commit_loses_no_parked_c1(tmp_path: Path) -> None:
    fleet = Fleet(2, seed=1)
    first, second = fleet.sealers
    child = Child(tmp_path, fleet, batch=1_000)  # commits only on "flush"
    try:
        fleet.sealers[first].renew(NOW)
        fleet.sealers[second].renew(NOW)
        for c2 in fleet.controls(first):
            child.call("apdu " + c2.hex())
        for value in range(3):
            child.call("apdu " + fleet.c1(first, value).hex())
            child.call("apdu " + fleet.c1(second, 10 + value).hex())  # parked: no C2 yet
        child.call("flush")  # durable: first's key and 3 readings, second's 3 parked C1s
        acked = fleet.acknowledged(child.acks)
        assert len(acked) == 3
        for c2 in fleet.controls(second):  # released and opened in the open batch...
            child.call("apdu " + c2.hex())
        child.call("apdu " + fleet.c1(first, 3).hex())
        child.send("kill")  # ...and killed before the commit
        child.killed()
    finally:
        if child.process.poll() is None:
            child.process.kill()
    assert fleet.acknowledged(child.acks) == acked  # nothing of the open batch left
    head_end, store = reopen(tmp_path)
    try:
        stats = head_end.stats()
        assert (stats["parked_now"], stats["keys_now"]) == (3, 1)  # parked C1s, first's key
    finally:
        store.close()
    assert len(rows(tmp_path)) == 3
    check_after_crash(tmp_path, fleet, acked)


def test_sigkill_while_streaming_never_accepts_a_replay(tmp_path: Path) -> None:
    fleet = Fleet(6, seed=2)
    script: list[bytes] = []
    order = random.Random(7)
    for round_ in range(6):  # renewals every 4 C1s; some C1s overtake their C2
        for title in fleet.sealers:
            c1s = [fleet.c1(title, round_ * 10 + v) for v in range(2)]
            controls = fleet.controls(title)
            script.extend(c1s + controls if order.random() < 0.3 else controls + c1s)
    child = Child(tmp_path, fleet, batch=5)
    try:
        for raw in script:
            child.send("apdu " + raw.hex())
        deadline = time.monotonic() + WAIT_S
        while len(child.acks) < 20:  # well into the stream, then SIGKILL from outside
            assert time.monotonic() < deadline
            child._line()
        child.process.send_signal(signal.SIGKILL)
        child.killed()
    finally:
        if child.process.poll() is None:
            child.process.kill()
    acked = fleet.acknowledged(child.acks)
    assert acked
    assert len(rows(tmp_path)) < len(fleet.c1s)  # the kill came before the end
    check_after_crash(tmp_path, fleet, acked)


def test_close_discards_an_uncommitted_batch_like_a_crash(tmp_path: Path) -> None:
    fleet = Fleet(1, seed=3)
    (title,) = fleet.sealers
    fleet.sealers[title].renew(NOW)
    store = SqliteHeadEndStore(tmp_path / "h.sqlite3", system_title=SUPPLIER, keep_readings=True)
    store.set_credentials(title, shared_key=ks(SUPPLIER, title))
    head_end = HeadEnd(
        SUPPLIER,
        store,
        ReadingSink(stream=io.StringIO()),
        clock=lambda: NOW,
        group_commit=GroupCommit(max_messages=100),
    )
    for c2 in fleet.controls(title):
        assert head_end.handle_apdu("m", c2) == []  # acknowledged only at the commit
    raw = fleet.c1(title, 1)
    assert head_end.handle_apdu("m", raw) == []
    assert head_end.stats()["batch_now"] == 2
    store.close()
    head_end, store = reopen(tmp_path)
    try:
        assert head_end.stats()["keys_now"] == 0
    finally:
        store.close()
    check_after_crash(tmp_path, fleet, set())
