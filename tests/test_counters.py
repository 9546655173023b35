"""Invocation-counter stores (cosemcast.security.counters; brief §5.1, §8; specs/security.md §5).

The crash test kills a child process that draws counters as fast as it can, at random moments,
several times, and checks that no counter was ever handed out twice.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosemcast.errors import ReplayError
from cosemcast.security.counters import (
    MAX_INVOCATION_COUNTER,
    SCHEMA_VERSION,
    CounterExhaustedError,
    CounterReuseError,
    CounterStore,
    CounterStoreError,
    ReceivedCounterStore,
    key_fingerprint,
    make_key_id,
)

KEY_ID = "guek/4d4d4d0000bc614e"


def test_counters_start_at_zero_and_increase(tmp_path: Path) -> None:
    with CounterStore(tmp_path / "c.db", block=10, first=0) as store:
        assert store.peek(KEY_ID) == 0
        assert [store.next(KEY_ID) for _ in range(25)] == list(range(25))
        assert store.peek(KEY_ID) == 25
        assert store.next("other") == 0


def test_restart_resumes_at_the_reserved_mark(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with CounterStore(path, block=10, first=0) as store:
        assert [store.next(KEY_ID) for _ in range(3)] == [0, 1, 2]
    with CounterStore(path, block=10, first=0) as store:
        assert store.peek(KEY_ID) == 10
        assert store.next(KEY_ID) == 10
    with CounterStore(path, block=1, first=0) as store:
        assert store.next(KEY_ID) == 20
        assert store.next(KEY_ID) == 21


def test_reservation_is_durable_before_the_first_counter(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    store = CounterStore(path, block=100, first=0)
    assert store.next(KEY_ID) == 0
    # Read by another connection while the store is still open (and its block unused).
    with sqlite3.connect(path) as conn:
        (reserved,) = conn.execute(
            "SELECT reserved_up_to FROM sent_counters WHERE key_id = ?", (KEY_ID,)
        ).fetchone()
    assert reserved == 100
    store.close()


def test_reset_only_for_a_new_key_id(tmp_path: Path) -> None:
    # brief §8: after a key change the counters restart at 0; only safe under a new key id.
    with CounterStore(tmp_path / "c.db", block=5, first=0) as store:
        old = make_key_id(bytes(8), "guek", b"\x01" * 16)
        new = make_key_id(bytes(8), "guek", b"\x02" * 16)
        assert store.next(old) == 0
        with pytest.raises(CounterReuseError):
            store.reset_for_new_key(old)
        store.reset_for_new_key(new)
        store.reset_for_new_key(new)  # idempotent while nothing was drawn
        assert store.next(new) == 0
        with pytest.raises(CounterReuseError):
            store.reset_for_new_key(new)
        assert store.next(old) == 1


def test_exhaustion_at_2_pow_32_minus_1(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with CounterStore(path, block=3, first=0) as store:
        store.next(KEY_ID)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE sent_counters SET reserved_up_to = ? WHERE key_id = ?",
            (MAX_INVOCATION_COUNTER - 1, KEY_ID),
        )
    with CounterStore(path, block=3, first=0) as store:
        assert store.next(KEY_ID) == MAX_INVOCATION_COUNTER - 1
        assert store.next(KEY_ID) == MAX_INVOCATION_COUNTER
        with pytest.raises(CounterExhaustedError) as info:
            store.next(KEY_ID)
        assert info.value.key_id == KEY_ID
        assert store.peek(KEY_ID) == MAX_INVOCATION_COUNTER + 1
    with CounterStore(path, block=3, first=0) as store, pytest.raises(CounterExhaustedError):
        store.next(KEY_ID)


def test_whole_range_in_one_block(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with CounterStore(path, block=MAX_INVOCATION_COUNTER + 1, first=0) as store:
        assert store.next(KEY_ID) == 0
    with CounterStore(path, first=0) as store, pytest.raises(CounterExhaustedError):
        store.next(KEY_ID)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        CounterStore(tmp_path / "a.db", block=0, first=0)
    with CounterStore(tmp_path / "c.db", first=0) as store:
        for bad in ("", "x" * 201):
            with pytest.raises(ValueError):
                store.next(bad)
    with pytest.raises(ValueError):
        make_key_id(b"short", "guek")
    with pytest.raises(ValueError):
        make_key_id(bytes(8), "a/b")


def test_closed_store_refuses(tmp_path: Path) -> None:
    store = CounterStore(tmp_path / "c.db", first=0)
    store.close()
    store.close()
    with pytest.raises(CounterStoreError):
        store.next(KEY_ID)


# --- schema and file ---------------------------------------------------------------------------


def test_schema_version_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    CounterStore(path, first=0).close()
    ReceivedCounterStore(path).close()  # both stores share one file
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    CounterStore(path, first=0).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(CounterStoreError):
        CounterStore(path, first=0)


def test_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    path.write_bytes(b"this is not an SQLite file" * 100)
    with pytest.raises(CounterStoreError):
        CounterStore(path, first=0)


def test_key_ids_never_hold_keys(tmp_path: Path) -> None:
    key = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
    key_id = make_key_id(bytes.fromhex("4D4D4D0000BC614E"), "guek", key)
    assert key_id.startswith("guek/4d4d4d0000bc614e/")
    assert key.hex() not in key_id
    assert key_fingerprint(key) != key_fingerprint(key[:-1] + b"\x0e")
    assert len(key_fingerprint(key)) == 32
    path = tmp_path / "c.db"
    with CounterStore(path, first=0) as store:
        store.next(key_id)
        assert key.hex() not in repr(store)
    for file in tmp_path.iterdir():
        data = file.read_bytes()
        assert key not in data and key.hex().encode() not in data


# --- threads and processes ---------------------------------------------------------------------


def test_threads_never_share_a_counter(tmp_path: Path) -> None:
    store = CounterStore(tmp_path / "c.db", block=7, first=0)
    results: list[list[int]] = [[] for _ in range(8)]

    def draw(out: list[int]) -> None:
        for _ in range(400):
            out.append(store.next(KEY_ID))

    threads = [threading.Thread(target=draw, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    every = [value for out in results for value in out]
    assert len(set(every)) == len(every) == 3200
    for out in results:
        assert out == sorted(out)


_CHILD = textwrap.dedent(
    """
    import os, sys
    from cosemcast.security.counters import CounterStore
    path, block, out, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    store = CounterStore(path, block=block, first=0)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    n = 0
    while count < 0 or n < count:
        os.write(fd, b"%d\\n" % store.next("meter/guek"))
        n += 1
    store.close()
    """
)


def _child(db: Path, block: int, out: Path, count: int = -1) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(db), str(block), str(out), str(count)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _values(out: Path) -> list[int]:
    text = out.read_text() if out.exists() else ""
    lines = text.split("\n")
    return [int(line) for line in lines[:-1]]  # a line without "\n" was never completed


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_sigkill_at_random_moments_never_repeats_a_counter(tmp_path: Path) -> None:
    db = tmp_path / "counters.db"
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    runs: list[list[int]] = []
    for run, block in enumerate([1, 2, 5, 1, 50, 3, 1000, 2]):
        out = tmp_path / f"run{run}.txt"
        child = _child(db, block, out)
        deadline = time.monotonic() + 30
        while not (out.exists() and out.stat().st_size > 0):
            assert child.poll() is None, child.stderr.read() if child.stderr else b""
            assert time.monotonic() < deadline, "child produced no counter"
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.25))
        child.send_signal(signal.SIGKILL)
        child.wait()
        if child.stderr:
            child.stderr.close()
        assert child.returncode == -signal.SIGKILL
        runs.append(_values(out))
    every = [value for values in runs for value in values]
    assert all(runs), f"seed {seed}: a run handed out nothing"
    assert len(set(every)) == len(every), f"seed {seed}: a counter was handed out twice"
    assert every == sorted(every), f"seed {seed}: counters went back after a restart"
    with CounterStore(db, first=0) as store:
        assert store.next("meter/guek") > every[-1]


def test_two_processes_get_disjoint_counters(tmp_path: Path) -> None:
    db = tmp_path / "counters.db"
    CounterStore(db, first=0).close()  # create the schema before the race
    outs = [tmp_path / "a.txt", tmp_path / "b.txt"]
    children = [_child(db, 5, out, 300) for out in outs]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
    a, b = (_values(out) for out in outs)
    assert len(a) == len(b) == 300
    assert a == sorted(a) and b == sorted(b)
    assert not set(a) & set(b)


# --- receive side ------------------------------------------------------------------------------


def test_received_counters_must_increase(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    with ReceivedCounterStore(path) as store:
        assert store.peek(KEY_ID) is None
        store.check(KEY_ID, 0)
        store.check_and_update(KEY_ID, 0)
        store.check_and_update(KEY_ID, 5)
        for replay in (0, 4, 5):
            with pytest.raises(ReplayError) as info:
                store.check_and_update(KEY_ID, replay)
            assert (info.value.received, info.value.expected_min) == (replay, 6)
            with pytest.raises(ReplayError):
                store.check(KEY_ID, replay)
        store.check(KEY_ID, 100)  # check alone persists nothing
        assert store.peek(KEY_ID) == 5
        store.check_and_update("other", 1)
    with ReceivedCounterStore(path, synchronous="NORMAL") as store:
        assert store.peek(KEY_ID) == 5
        with pytest.raises(ReplayError):
            store.check_and_update(KEY_ID, 5)
        store.check_and_update(KEY_ID, MAX_INVOCATION_COUNTER)
        with pytest.raises(ReplayError):
            store.check_and_update(KEY_ID, MAX_INVOCATION_COUNTER)


def test_received_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        ReceivedCounterStore(tmp_path / "r.db", synchronous="OFF")  # type: ignore[arg-type]
    with ReceivedCounterStore(tmp_path / "r.db") as store:
        for bad in (-1, MAX_INVOCATION_COUNTER + 1):
            with pytest.raises(ValueError):
                store.check_and_update(KEY_ID, bad)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 50), max_size=40))
def test_received_store_accepts_exactly_the_new_maxima(
    tmp_path_factory: pytest.TempPathFactory, counters: list[int]
) -> None:
    path = tmp_path_factory.mktemp("r") / "r.db"
    accepted = []
    with ReceivedCounterStore(path, synchronous="NORMAL") as store:
        for counter in counters:
            try:
                store.check_and_update(KEY_ID, counter)
            except ReplayError:
                continue
            accepted.append(counter)
    highest = -1
    expected = []
    for counter in counters:
        if counter > highest:
            expected.append(counter)
            highest = counter
    assert accepted == expected


def test_default_first_counter_is_one(tmp_path: Path) -> None:
    # Decision (specs/security.md §5): a new key's first counter is 1, as gurux's meter
    # sends; dlms-cosem's client refuses 0 (tests/test_interop_dlms_cosem.py).
    with CounterStore(tmp_path / "c.db", block=10) as store:
        assert store.peek(KEY_ID) == 1
        assert [store.next(KEY_ID) for _ in range(3)] == [1, 2, 3]
