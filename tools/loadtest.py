#!/usr/bin/env python3
"""Load test: many simulated meters push real C1s and C2s to one head-end over loopback UDP.

What runs (issue 7 item 5). This process is the head-end: a real
:class:`~cosemcast.headend.HeadEndService` (UDP on 127.0.0.1, an ephemeral port) around a
:class:`~cosemcast.headend.HeadEnd` on a :class:`~cosemcast.headend.SqliteHeadEndStore` file
that holds the ``Ks`` of every meter. Its reading sink is a :class:`ReadingSink` that hands every
decoded reading to a verifier (and, with ``--readings-db`` / ``--nats``, also to the SQLite
readings table / a NATS JetStream stream). The head-end commits in groups as ``cosemcast
headend listen`` does (``SERVICE_GROUP_COMMIT``; ``--batch``, ``--batch-delay-ms``), and its
store caches ``--key-cache`` keys. Its UDP socket gets the receive buffer a shard worker sets
(``--rcvbuf-mib``, 4 MiB; the kernel caps it at ``net.core.rmem_max`` and doubles it).
A second process (this script with ``--role sender``) is the meters: one
:class:`~cosemcast.sharedpayload.PayloadSealer` per meter, Ks derived from the meter's system
title and a seed both sides know.

1. Key exchange: every meter sends its C2 (paced, at most ``--c2-window`` unacknowledged) and
   checks the head-end's acknowledgement with ``PayloadSealer.accept_ack``; unacknowledged C2s
   are sent again after 2 s. C1s start only when every C2 is acknowledged.
2. Load: for ``--seconds``, C1s at ``--rate`` per second, meters in round robin. C1 number i
   goes to meter ``i mod M`` with sequence ``i div M`` and carries a DATA-NOTIFICATION whose
   body is (meter index, sequence, send time in µs since the epoch, a value computed from
   meter and sequence); it is sealed just before it is sent.
3. Drain: the head-end waits until it has as many readings as the sender reports sending, or
   until nothing arrived for ``--drain-s``.

The verifier checks every reading: the meter index matches the meter system title the head-end
opened it for, the value is the one computed from (meter, sequence), and (meter, sequence) was
not seen before. Reported: C1s sent and the send rate achieved; readings received, lost
(expected but never decoded), duplicated and misdecoded; the receive rate; latency from
sealing to decoded reading (p50/p90/p99/max); the head-end's CPU seconds, resident memory
(VmRSS at the end, peak VmHWM); the head-end's own counters; and the kernel's UDP receive
buffer drops during the run (``/proc/net/snmp``, machine-wide). Exit status 0 only when nothing
was lost, duplicated or misdecoded.

Usage: ``python tools/loadtest.py --meters 100000 --seconds 60 --rate 5000 [--json]``.
Everything stays on 127.0.0.1; the run is bounded in time (setup, ``--seconds``, drain).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from pathlib import Path
from typing import Any, Literal

from cosemcast.axdr import DoubleLongUnsigned, Long64Unsigned, Structure, encode_data
from cosemcast.errors import DlmsError
from cosemcast.headend import HeadEnd, HeadEndService, Reading, ReadingSink, SqliteHeadEndStore
from cosemcast.headend.headend import SERVICE_GROUP_COMMIT, GroupCommit
from cosemcast.headend.readings import ReadingsError, ReadingWriter
from cosemcast.link.wrapper import WrapperFrame
from cosemcast.sharedpayload import (
    HeadEndAssignment,
    MemoryCounterSource,
    PayloadSealer,
    RenewalPolicy,
    as_general_ciphering,
)

SEED = b"cosemcast-loadtest-v1"
HEAD_END = bytes.fromhex("4D4D4D00000000E1")
WPORT = 0x0066
METER_PREFIX = b"LTM"


def meter_title(m: int) -> bytes:
    return METER_PREFIX + m.to_bytes(5, "big")


def shared_key(m: int) -> bytes:
    return hashlib.sha256(SEED + meter_title(m)).digest()[:16]


def expected_value(m: int, seq: int) -> int:
    return (m * 2_654_435_761 + seq * 40_503 + 12_345) & 0xFFFFFFFF


def notification(m: int, seq: int, sent_us: int) -> bytes:
    """DATA-NOTIFICATION (0F, long-invoke-id, no date-time) of (meter, seq, sent µs, value)."""
    body = Structure(
        (
            DoubleLongUnsigned(m),
            DoubleLongUnsigned(seq),
            Long64Unsigned(sent_us),
            DoubleLongUnsigned(expected_value(m, seq)),
        )
    )
    return b"\x0f" + (seq & 0xFFFFFF).to_bytes(4, "big") + b"\x00" + encode_data(body)


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the meters (sender process) ------------------------------------------------------------


class _Meters:
    def __init__(self, meters: int, port: int) -> None:
        policy = RenewalPolicy(max_payloads=None, max_age_s=7 * 86_400, retry_interval_s=2.0)
        now = time.time()
        self.sealers = []
        for m in range(meters):
            sealer = PayloadSealer(
                system_title=meter_title(m),
                head_ends=[HeadEndAssignment(HEAD_END, shared_key(m))],
                counters=MemoryCounterSource(),
                rng=os.urandom,
                policy=policy,
            )
            sealer.renew(now)
            self.sealers.append(sealer)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.send_errors = 0
        self.bad_acks = 0

    def send(self, apdu: bytes) -> None:
        datagram = WrapperFrame(WPORT, WPORT, apdu).encode()
        for _ in range(100):
            try:
                self.sock.send(datagram)
                return
            except BlockingIOError:
                time.sleep(0.0005)
            except ConnectionRefusedError:
                self.send_errors += 1
                return
        self.send_errors += 1

    def acks(self) -> list[int]:
        """Meters whose C2 acknowledgement arrived (each checked by ``accept_ack``)."""
        acked: list[int] = []
        while True:
            try:
                datagram = self.sock.recv(4096)
            except (BlockingIOError, ConnectionRefusedError):
                return acked
            try:
                apdu = as_general_ciphering(WrapperFrame.decode(datagram).apdu)
                title = apdu.recipient_system_title
                m = int.from_bytes(title[3:], "big")
                if not title.startswith(METER_PREFIX) or m >= len(self.sealers):
                    raise ValueError("an acknowledgement for an unknown meter")
                self.sealers[m].accept_ack(apdu)
                acked.append(m)
            except (DlmsError, ValueError):
                self.bad_acks += 1

    def exchange_keys(self, window: int, timeout_s: float) -> dict[str, Any]:
        t0 = time.perf_counter()
        unacked = set(range(len(self.sealers)))
        outstanding: set[int] = set()
        next_meter = 0
        sent = 0
        deadline = time.monotonic() + timeout_s
        last_report = t0
        while unacked and time.monotonic() < deadline:
            for m in self.acks():
                unacked.discard(m)
                outstanding.discard(m)
            now = time.time()
            while next_meter < len(self.sealers) and len(outstanding) < window:
                for _, c2 in self.sealers[next_meter].control_messages(now):
                    self.send(c2.encode())
                    sent += 1
                outstanding.add(next_meter)
                next_meter += 1
            if next_meter >= len(self.sealers):
                for m in list(unacked)[:window]:
                    for _, c2 in self.sealers[m].control_messages(now):
                        self.send(c2.encode())
                        sent += 1
            time.sleep(0.001)
            if time.perf_counter() - last_report > 10:
                last_report = time.perf_counter()
                _progress(f"sender: {len(self.sealers) - len(unacked):,} C2s acknowledged")
        elapsed = time.perf_counter() - t0
        return {
            "c2_sent": sent,
            "c2_acknowledged": len(self.sealers) - len(unacked),
            "c2_seconds": elapsed,
            "c2_bad_acks": self.bad_acks,
        }

    def push(self, rate: float, seconds: float, corrupt_every: int) -> dict[str, Any]:
        meters = len(self.sealers)
        corrupted = 0
        sealers = self.sealers
        send = self.send
        i = 0
        worst_behind = 0
        t0 = time.perf_counter()
        while True:
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                break
            due = int(elapsed * rate) + 1
            worst_behind = max(worst_behind, due - i)
            while i < due:
                m, seq = i % meters, i // meters
                sent_us = time.time_ns() // 1000
                apdu = sealers[m].seal_c1(notification(m, seq, sent_us), sent_us / 1e6).encode()
                if corrupt_every and i % corrupt_every == corrupt_every - 1:
                    apdu = apdu[:-1] + bytes([apdu[-1] ^ 1])  # a flipped tag bit
                    corrupted += 1
                send(apdu)
                i += 1
            time.sleep(0.0005)
        elapsed = time.perf_counter() - t0
        self.acks()
        return {
            "c1_sent": i,
            "c1_seconds": elapsed,
            "send_per_s": i / elapsed,
            "max_behind_schedule": worst_behind,
            "send_errors": self.send_errors,
            "corrupted": corrupted,
        }


def run_sender(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    meters = _Meters(args.meters, args.port)
    result: dict[str, Any] = {"setup_seconds": time.perf_counter() - t0}
    _progress(f"sender: {args.meters:,} meters sealed their first Kp")
    result.update(meters.exchange_keys(args.c2_window, args.c2_timeout_s))
    if result["c2_acknowledged"] == args.meters:
        _progress(f"sender: every C2 acknowledged; pushing C1s at {args.rate:,.0f}/s")
        result.update(meters.push(args.rate, args.seconds, args.corrupt_every))
    else:
        result.update({"c1_sent": 0, "c1_seconds": 0.0, "send_per_s": 0.0})
    print(json.dumps(result), flush=True)
    return 0


# --- the head-end (this process) ------------------------------------------------------------


class Verifier:
    """Checks each decoded reading against what the meter sent (module doc)."""

    def __init__(self, meters: int) -> None:
        self.meters = meters
        self._seen = [0] * meters
        self._lock = threading.Lock()
        self.received = 0
        self.duplicates = 0
        self.misdecoded = 0
        self.latency_us = array("q")
        self.first_at: float | None = None
        self.last_at = 0.0

    def write(self, reading: Reading) -> None:
        now = time.time_ns() // 1000
        try:
            m, seq, sent_us, value = (v.value for v in reading.values)
            if not all(isinstance(x, int) for x in (m, seq, sent_us, value)):
                raise ValueError("a value is not an integer")
            assert isinstance(m, int) and isinstance(seq, int) and isinstance(sent_us, int)
            if not 0 <= m < self.meters or reading.meter_system_title != meter_title(m):
                raise ValueError("the reading names another meter")
            if value != expected_value(m, seq):
                raise ValueError("the value is not the one sent")
        except ValueError:
            with self._lock:
                self.misdecoded += 1
            return
        with self._lock:
            mask = 1 << seq
            if self._seen[m] & mask:
                self.duplicates += 1
                return
            self._seen[m] |= mask
            self.received += 1
            self.latency_us.append(now - sent_us)
            if self.first_at is None:
                self.first_at = time.perf_counter()
            self.last_at = time.perf_counter()

    def lost(self, sent: int) -> int:
        missing = 0
        for m in range(self.meters):
            count = sent // self.meters + (1 if m < sent % self.meters else 0)
            missing += count - bin(self._seen[m] & ((1 << count) - 1)).count("1")
        return missing

    def close(self) -> None:
        return None


def _udp_snmp() -> dict[str, int]:
    with open("/proc/net/snmp", encoding="ascii") as snmp:
        rows = [line.split() for line in snmp if line.startswith("Udp:")]
    return dict(zip(rows[0][1:], (int(x) for x in rows[1][1:]), strict=True))


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _percentiles(values: array[int]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000.0

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": ordered[-1] / 1000.0}


def run_head_end(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="loadtest-"))
    workdir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "meters": args.meters,
        "rate": args.rate,
        "seconds": args.seconds,
        "synchronous": args.synchronous,
        "group_commit": {"max_messages": args.batch, "max_delay_ms": args.batch_delay_ms},
        "key_cache": args.key_cache,
    }
    verifier = Verifier(args.meters)
    writers: list[ReadingWriter] = [verifier]
    nats_sink = None
    if args.nats:
        from cosemcast.headend.sink_nats import NatsJetStreamSink, NatsSinkConfig

        nats_sink = NatsJetStreamSink(NatsSinkConfig.from_url(args.nats))
        writers.append(nats_sink)
    sync: Literal["FULL", "NORMAL"] = "FULL" if args.synchronous == "FULL" else "NORMAL"
    extra: dict[str, Any] = {} if args.key_cache is None else {"cache_size": args.key_cache}
    store = SqliteHeadEndStore(
        workdir / "headend.sqlite", system_title=HEAD_END, synchronous=sync, **extra
    )
    sink = ReadingSink(db_path=args.readings_db, also=writers)
    try:
        t0 = time.perf_counter()
        for m in range(args.meters):
            store.set_credentials(meter_title(m), shared_key=shared_key(m))
        result["credentials_seconds"] = time.perf_counter() - t0
        _progress(f"head-end: Ks of {args.meters:,} meters stored")
        commit = GroupCommit(args.batch, args.batch_delay_ms / 1000)
        head_end = HeadEnd(HEAD_END, store, sink, group_commit=commit)
        service = HeadEndService(head_end, udp=("127.0.0.1", 0))
        if args.rcvbuf_mib > 0:
            assert service.udp is not None
            # As the shard workers do (headend/shard.py): the same socket via a second fd.
            with socket.socket(fileno=os.dup(service.udp.fileno())) as udp:
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, int(args.rcvbuf_mib * 2**20))
                result["udp_rcvbuf_bytes"] = udp.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        service.start()
        try:
            assert service.udp is not None
            port = int(service.udp.address[1])
            snmp_before = _udp_snmp()
            cpu_before = resource.getrusage(resource.RUSAGE_SELF)
            setup_budget = args.c2_timeout_s or 120.0 + args.meters / 500
            command = [
                sys.executable,
                os.path.abspath(__file__),
                "--role",
                "sender",
                "--port",
                str(port),
                "--meters",
                str(args.meters),
                "--rate",
                str(args.rate),
                "--seconds",
                str(args.seconds),
                "--c2-window",
                str(args.c2_window),
                "--c2-timeout-s",
                str(setup_budget),
                "--corrupt-every",
                str(args.corrupt_every),
            ]
            sender = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
            try:
                out, _ = sender.communicate(timeout=2 * setup_budget + args.seconds + 60)
            except subprocess.TimeoutExpired:
                sender.kill()
                sender.communicate()
                raise SystemExit("the sender did not finish in time") from None
            if sender.returncode != 0 or not out.strip():
                raise SystemExit(f"the sender failed (exit status {sender.returncode})")
            sent = json.loads(out)
            result["sender"] = sent
            expected = int(sent["c1_sent"])
            seen, idle_since = -1, time.monotonic()
            while verifier.received + verifier.misdecoded < expected:
                now_count = verifier.received + verifier.misdecoded
                if now_count != seen:
                    seen, idle_since = now_count, time.monotonic()
                elif time.monotonic() - idle_since > args.drain_s:
                    break
                time.sleep(0.05)
            cpu_after = resource.getrusage(resource.RUSAGE_SELF)
            snmp_after = _udp_snmp()
            result["head_end_stats"] = head_end.stats()
            result["rss_mib"] = _status_kib("VmRSS") / 1024
            result["rss_peak_mib"] = _status_kib("VmHWM") / 1024
        finally:
            service.close()
        span = (verifier.last_at - verifier.first_at) if verifier.first_at else 0.0
        result.update(
            {
                "received": verifier.received,
                "lost": verifier.lost(expected),
                "duplicates": verifier.duplicates,
                "misdecoded": verifier.misdecoded,
                "receive_per_s": verifier.received / span if span > 0 else 0.0,
                "latency_ms": _percentiles(verifier.latency_us),
                "head_end_cpu_s": (cpu_after.ru_utime + cpu_after.ru_stime)
                - (cpu_before.ru_utime + cpu_before.ru_stime),
                "kernel_udp_rcvbuf_errors": snmp_after.get("RcvbufErrors", 0)
                - snmp_before.get("RcvbufErrors", 0),
            }
        )
    finally:
        try:
            sink.close()
        except ReadingsError as exc:
            result["sink_error"] = str(exc)
        store.close()
        if nats_sink is not None:
            result["nats"] = nats_sink.stats()
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return result


def _print(r: dict[str, Any]) -> None:
    s = r["sender"]
    lat = r.get("latency_ms", {})
    print(f"load test: {r['meters']:,} meters, {r['rate']:,.0f} C1/s for {r['seconds']:.0f} s")
    print(
        f"  key exchange:  {s['c2_acknowledged']:,}/{r['meters']:,} C2s acknowledged"
        f" in {s['c2_seconds']:.1f} s ({s['c2_sent']:,} sent)"
    )
    print(
        f"  sent:          {s['c1_sent']:,} C1s at {s['send_per_s']:,.0f}/s"
        f" (worst {s.get('max_behind_schedule', 0):,} behind schedule)"
    )
    print(
        f"  received:      {r['received']:,} readings at {r['receive_per_s']:,.0f}/s;"
        f" lost {r['lost']:,}, duplicated {r['duplicates']:,}, misdecoded {r['misdecoded']:,}"
    )
    if lat:
        print(
            f"  latency:       p50 {lat['p50']:.1f} ms  p90 {lat['p90']:.1f} ms"
            f"  p99 {lat['p99']:.1f} ms  max {lat['max']:.1f} ms (sealed → decoded reading)"
        )
    print(
        f"  head-end:      RSS {r['rss_mib']:.0f} MiB (peak {r['rss_peak_mib']:.0f} MiB),"
        f" CPU {r['head_end_cpu_s']:.1f} s; kernel UDP buffer drops"
        f" {r['kernel_udp_rcvbuf_errors']:,}"
    )
    stats = r["head_end_stats"]
    print(
        "  counters:      "
        + ", ".join(f"{k}={v}" for k, v in sorted(stats.items()) if v or k == "rejected")
    )
    if "nats" in r:
        print(f"  NATS sink:     {r['nats']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meters", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=5_000.0, help="C1s per second")
    parser.add_argument("--c2-window", type=int, default=256, help="unacknowledged C2s")
    parser.add_argument("--c2-timeout-s", type=float, help="key exchange budget (default: auto)")
    parser.add_argument(
        "--corrupt-every",
        type=int,
        default=0,
        help="flip a tag bit of every K-th C1 (to see the tool report loss; default 0: none)",
    )
    parser.add_argument(
        "--synchronous", choices=("FULL", "NORMAL"), default="NORMAL", help="key store sync"
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=SERVICE_GROUP_COMMIT.max_messages,
        help="group commit: messages per commit (default: as `cosemcast headend listen`)",
    )
    parser.add_argument(
        "--batch-delay-ms",
        type=float,
        default=SERVICE_GROUP_COMMIT.max_delay_s * 1000,
        help="group commit: oldest message's wait (default: as `cosemcast headend listen`)",
    )
    parser.add_argument(
        "--rcvbuf-mib",
        type=float,
        default=4.0,
        help="SO_RCVBUF of the head-end's UDP socket, as a shard worker sets it (0: kernel's)",
    )
    parser.add_argument(
        "--key-cache", type=int, help="the store's cache_size (default: the store's default)"
    )
    parser.add_argument("--readings-db", type=Path, help="also write the readings table here")
    parser.add_argument("--nats", metavar="URL", help="also publish to nats://host:port[/stream]")
    parser.add_argument("--workdir", help="keep the head-end store here (default: a temp dir)")
    parser.add_argument("--drain-s", type=float, default=5.0, help="wait for stragglers")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--role", choices=("head-end", "sender"), default="head-end")
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.meters < 1 or args.rate <= 0 or args.seconds <= 0:
        parser.error("--meters, --rate and --seconds must be positive")
    if args.role == "sender":
        return run_sender(args)
    result = run_head_end(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print(result)
    clean = result["lost"] == result["duplicates"] == result["misdecoded"] == 0
    return 0 if clean and result["sender"]["c1_sent"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
