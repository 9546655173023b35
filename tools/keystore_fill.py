#!/usr/bin/env python3
"""Fill head-end key stores for many meters and head-ends, then query them (issue 7 item 5).

What it builds. One :class:`~cosemcast.headend.store.SqliteHeadEndStore` file per head-end
(``<dir>/headend-<h>.sqlite``; a store belongs to one head-end), created through the public
constructor so the schema and migrations are the library's own. Per meter and head-end the
file gets what a head-end keeps in steady state: one ``credentials`` row (the meter's ``Ks``)
and one active ``payload_keys`` row (``Kp``, ``Ka``, validity window, first IC, ack request,
C2 digest and IC, and a replay window that has seen C1s). Meter system titles are
``b"CCM" + u40 index``; every key byte is derived from (seed, head-end, meter) with SHAKE-128,
so a lookup can be checked against the value that was written.

How it fills. Writing through the public :meth:`~SqliteHeadEndStore.add` costs one
``BEGIN IMMEDIATE … COMMIT`` per key (its rate is measured and reported as ``add_per_s``), far
too slow for 30 million rows; so the bulk of the rows goes in with ``executemany`` into the
**same tables** (the store's schema), in transactions of ``--batch`` meters, in meter order,
with ``synchronous=OFF`` during the fill only. A fill that was interrupted resumes where its
last committed batch ended (the highest meter in ``credentials``).

What it reports. Rows written and rows/s, the size on disk (database + WAL), and, from a
fresh child process that opens the stores with the public constructor and calls
:meth:`~SqliteHeadEndStore.get` for random meters: its resident memory (VmRSS and peak
VmHWM), and lookup latency p50/p90/p99/max of first lookups and of the same meters again;
``--cold`` first evicts the store files from the kernel's page cache (``POSIX_FADV_DONTNEED``
on those files only). Progress goes to stderr.

Usage: ``python tools/keystore_fill.py --dir /work/tmp_keystore --meters 10000000
--head-ends 3 [--json]``; ``--query-only`` measures stores filled earlier (also partially).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cosemcast.headend.store import SqliteHeadEndStore
from cosemcast.sharedpayload.headend import ReceivedPayloadKey, ReplayWindow
from cosemcast.sharedpayload.messages import AckRequest, KpId

SEED = b"cosemcast-keystore-fill-v1"
NOW = 1_700_000_000
KEY_LIFETIME_S = 30 * 86_400
METER_PREFIX = b"CCM"


def head_end_title(h: int) -> bytes:
    return b"HEH\x00\x00\x00" + (h + 1).to_bytes(2, "big")


def meter_title(m: int) -> bytes:
    return METER_PREFIX + m.to_bytes(5, "big")


def meter_index(title: bytes) -> int:
    return int.from_bytes(title[3:], "big")


def store_path(directory: Path, h: int) -> Path:
    return directory / f"headend-{h}.sqlite"


def kp_id_of(m: int) -> KpId:
    return KpId(1, 1 + m % 5)


def material(h: int, m: int) -> bytes:
    """80 bytes: Ks ‖ Kp ‖ Ka ‖ C2 digest (32) of meter ``m`` at head-end ``h``."""
    return hashlib.shake_128(SEED + bytes([h]) + m.to_bytes(5, "big")).digest(80)


def key_row(h: int, m: int) -> ReceivedPayloadKey:
    """The payload key the fill writes for (h, m), as the store returns it."""
    raw = material(h, m)
    start = NOW - (m * 7919) % KEY_LIFETIME_S
    return ReceivedPayloadKey(
        meter_title(m),
        kp_id_of(m),
        raw[16:32],
        start,
        start + KEY_LIFETIME_S,
        1 + m % 1000,
        AckRequest(0),
        raw[32:48],
        raw[48:80],
        m % 100_000,
        ReplayWindow(1 + m % 1000 + 95, (1 << 64) - 1),
    )


def _rows(h: int, first: int, last: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    credentials: list[tuple[Any, ...]] = []
    keys: list[tuple[Any, ...]] = []
    for m in range(first, last):
        raw = material(h, m)
        title = meter_title(m)
        start = NOW - (m * 7919) % KEY_LIFETIME_S
        first_ic = 1 + m % 1000
        credentials.append((title, raw[:16], None))
        keys.append(
            (
                title,
                kp_id_of(m).to_bytes(),
                raw[16:32],
                raw[32:48],
                start,
                start + KEY_LIFETIME_S,
                first_ic,
                0,
                raw[48:80],
                m % 100_000,
                first_ic + 95,
                b"\xff" * 8,
            )
        )
    return credentials, keys


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fill_one(path: Path, h: int, meters: int, batch: int, cache_mb: int) -> dict[str, float]:
    """Fill (or resume filling) the store of head-end ``h`` up to ``meters`` meters."""
    SqliteHeadEndStore(path, system_title=head_end_title(h), synchronous="NORMAL").close()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute(f"PRAGMA cache_size=-{cache_mb * 1024}")
        row = conn.execute("SELECT max(meter) FROM credentials").fetchone()
        start = 0 if row[0] is None else meter_index(bytes(row[0])) + 1
        written = 0
        t0 = time.perf_counter()
        last_report = t0
        for first in range(start, meters, batch):
            last = min(meters, first + batch)
            credentials, keys = _rows(h, first, last)
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO credentials (meter, shared_key, agreement_public_key)"
                " VALUES (?, ?, ?)",
                credentials,
            )
            conn.executemany(
                "INSERT INTO payload_keys (meter, kp_id, state, payload_key, ack_key,"
                " not_before, not_after, first_ic, ack_request, control_digest, control_ic,"
                " replay_highest, replay_bitmap)"
                " VALUES (?, ?, 'active', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                keys,
            )
            conn.execute("COMMIT")
            written += last - first
            now = time.perf_counter()
            if now - last_report >= 10 or last == meters:
                last_report = now
                _progress(
                    f"head-end {h}: {last:,}/{meters:,} meters"
                    f" ({written / (now - t0):,.0f} meters/s this run)"
                )
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        elapsed = time.perf_counter() - t0
    finally:
        conn.close()
    return {"meters_written": written, "seconds": elapsed, "resumed_from": start}


def measure_add(directory: Path, count: int) -> float:
    """Keys per second through the public ``add()`` (one transaction each), on a scratch file."""
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        path = Path(scratch) / "add.sqlite"
        with SqliteHeadEndStore(path, system_title=head_end_title(0), synchronous="NORMAL") as s:
            t0 = time.perf_counter()
            for m in range(count):
                s.add(key_row(0, m))
            return count / (time.perf_counter() - t0)


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _percentile(sorted_ns: list[int], q: float) -> float:
    index = min(len(sorted_ns) - 1, int(q * len(sorted_ns)))
    return sorted_ns[index] / 1000.0


def _evict_from_page_cache(path: Path) -> None:
    """Ask the kernel to drop this file's cached pages (only this file: ``POSIX_FADV_DONTNEED``)."""
    for suffix in ("", "-wal"):
        target = Path(str(path) + suffix)
        if target.exists():
            fd = os.open(target, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _summary(latencies: list[int]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "p50": _percentile(ordered, 0.50),
        "p90": _percentile(ordered, 0.90),
        "p99": _percentile(ordered, 0.99),
        "max": ordered[-1] / 1000.0,
        "mean": sum(ordered) / len(ordered) / 1000.0,
    }


def query(
    directory: Path, head_ends: int, lookups: int, seed: int, *, cold: bool = False
) -> dict[str, Any]:
    """Open every store with the public constructor and time ``get()`` of random meters
    (first lookups, then the same meters again); ``cold`` evicts the files from the page
    cache first."""
    if cold:
        for h in range(head_ends):
            _evict_from_page_cache(store_path(directory, h))
    rss_before = _status_kib("VmRSS")
    stores = [
        SqliteHeadEndStore(store_path(directory, h), system_title=head_end_title(h))
        for h in range(head_ends)
    ]
    try:
        filled = []
        for store in stores:
            conn = sqlite3.connect(store.path)
            row = conn.execute("SELECT max(meter) FROM credentials").fetchone()
            conn.close()
            filled.append(0 if row[0] is None else meter_index(bytes(row[0])) + 1)
        meters = min(filled)
        if meters == 0:
            raise SystemExit("the stores are empty: fill them first")
        rng = random.Random(seed)
        picks = [(rng.randrange(head_ends), rng.randrange(meters)) for _ in range(lookups)]
        latencies: list[int] = []
        wrong = 0
        for h, m in picks:
            t0 = time.perf_counter_ns()
            got = stores[h].get(meter_title(m), kp_id_of(m))
            latencies.append(time.perf_counter_ns() - t0)
            if got is None or got.payload_key != material(h, m)[16:32]:
                wrong += 1
        rss_after_first = _status_kib("VmRSS")
        again: list[int] = []
        for h, m in picks[-min(lookups, 10_000) :]:
            t0 = time.perf_counter_ns()
            stores[h].get(meter_title(m), kp_id_of(m))
            again.append(time.perf_counter_ns() - t0)
        t0 = time.perf_counter_ns()
        for _ in range(min(lookups, 1000)):
            stores[0].get(meter_title(meters + rng.randrange(1 << 20)), kp_id_of(0))
        miss_us = (time.perf_counter_ns() - t0) / 1000 / min(lookups, 1000)
        return {
            "meters_per_head_end": filled,
            "cold_page_cache": cold,
            "lookups": lookups,
            "wrong_or_missing": wrong,
            "lookup_us": _summary(latencies),
            "repeat_lookup_us": _summary(again),
            "miss_lookup_mean_us": miss_us,
            "rss_mib_before_open": rss_before / 1024,
            "rss_mib_after_lookups": rss_after_first / 1024,
            "rss_mib": _status_kib("VmRSS") / 1024,
            "rss_peak_mib": _status_kib("VmHWM") / 1024,
        }
    finally:
        for store in stores:
            store.close()


def disk_usage(directory: Path, head_ends: int) -> dict[str, Any]:
    files: dict[str, int] = {}
    for h in range(head_ends):
        base = store_path(directory, h)
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(base) + suffix)
            if p.exists():
                files[p.name] = p.stat().st_size
    total = sum(files.values())
    return {"files": files, "total_bytes": total, "total_gib": total / 2**30}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, required=True, help="where the store files go")
    parser.add_argument("--meters", type=int, default=10_000_000)
    parser.add_argument("--head-ends", type=int, default=3)
    parser.add_argument("--batch", type=int, default=100_000, help="meters per transaction")
    parser.add_argument("--cache-mb", type=int, default=256, help="SQLite cache while filling")
    parser.add_argument("--lookups", type=int, default=100_000, help="random get() calls")
    parser.add_argument("--add-sample", type=int, default=2_000, help="keys timed via add()")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--query-only", action="store_true", help="measure existing stores")
    parser.add_argument(
        "--cold", action="store_true", help="evict the store files from the page cache first"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.meters < 1 or args.head_ends < 1 or args.head_ends > 255 or args.batch < 1:
        parser.error("--meters, --batch ≥ 1 and 1 ≤ --head-ends ≤ 255")
    args.dir.mkdir(parents=True, exist_ok=True)
    if args.query_only:
        result = query(args.dir, args.head_ends, args.lookups, args.seed, cold=args.cold)
        print(json.dumps(result))
        return 0 if result["wrong_or_missing"] == 0 else 1

    results: dict[str, Any] = {"meters": args.meters, "head_ends": args.head_ends}
    if args.add_sample:
        results["add_per_s"] = measure_add(args.dir, args.add_sample)
        _progress(f"public add(): {results['add_per_s']:,.0f} keys/s (one transaction each)")
    fills = []
    for h in range(args.head_ends):
        fills.append(fill_one(store_path(args.dir, h), h, args.meters, args.batch, args.cache_mb))
    written = sum(f["meters_written"] for f in fills)
    seconds = sum(f["seconds"] for f in fills)
    results["fill"] = {
        "per_head_end": fills,
        "meters_written": written,
        "rows_written": 2 * written,
        "seconds": seconds,
        "meters_per_s": written / seconds if seconds else 0.0,
    }
    results["disk"] = disk_usage(args.dir, args.head_ends)
    _progress("querying from a fresh process …")
    child = subprocess.run(
        [
            sys.executable,
            os.path.abspath(__file__),
            "--dir",
            str(args.dir),
            "--head-ends",
            str(args.head_ends),
            "--lookups",
            str(args.lookups),
            "--seed",
            str(args.seed),
            "--query-only",
            *(["--cold"] if args.cold else []),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if child.returncode not in (0, 1) or not child.stdout.strip():
        _progress(child.stderr)
        return 2
    results["query"] = json.loads(child.stdout)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        _print(results)
    return 0 if results["query"]["wrong_or_missing"] == 0 else 1


def _print(r: dict[str, Any]) -> None:
    q, f, d = r["query"], r["fill"], r["disk"]
    lat = q["lookup_us"]
    print(f"key store: {r['meters']:,} meters x {r['head_ends']} head-ends")
    if "add_per_s" in r:
        print(f"  public add():     {r['add_per_s']:,.0f} keys/s (one transaction per key)")
    print(
        f"  bulk fill:        {f['meters_written']:,} meters ({f['rows_written']:,} rows)"
        f" in {f['seconds']:,.1f} s = {f['meters_per_s']:,.0f} meters/s"
    )
    print(f"  on disk:          {d['total_gib']:.2f} GiB ({d['total_bytes']:,} bytes)")
    print(
        f"  query process:    RSS {q['rss_mib']:.1f} MiB (peak {q['rss_peak_mib']:.1f} MiB,"
        f" {q['rss_mib_before_open']:.1f} MiB before opening the stores)"
    )
    print(
        f"  get() latency:    p50 {lat['p50']:.1f} us  p90 {lat['p90']:.1f} us"
        f"  p99 {lat['p99']:.1f} us  max {lat['max']:.1f} us"
        f"  ({q['lookups']:,} random lookups, {q['wrong_or_missing']} wrong or missing)"
    )
    again = q["repeat_lookup_us"]
    print(
        f"  same meters again: p50 {again['p50']:.1f} us  p99 {again['p99']:.1f} us"
        f"  (the store's own cache)"
    )
    print(f"  miss (unknown meter): mean {q['miss_lookup_mean_us']:.1f} us")


if __name__ == "__main__":
    sys.exit(main())
