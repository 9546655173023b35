"""cosemcast benchmark, cases I and S: head-end ingest (run through ``tools/bench.py``).

Case I: the opener path and the whole head-end on the memory and SQLite stores, in process
and over UDP; case S: the sharded head-end with 1 and 2 worker processes. See the
docstring of ``tools/bench.py`` for what each measures.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.notifications import DataNotification
from cosemcast.axdr import (
    DoubleLongUnsigned,
    Enumerated,
    Long,
    LongUnsigned,
    OctetString,
    Structure,
    encode_data,
)
from cosemcast.headend import HeadEnd, ReadingSink, SqliteHeadEndStore
from cosemcast.headend.headend import SERVICE_GROUP_COMMIT
from cosemcast.link.wrapper import WrapperFrame
from cosemcast.sharedpayload import (
    HeadEndAssignment,
    HeadEndOpener,
    MemoryCounterSource,
    MemoryPayloadKeyStore,
    PayloadSealer,
    RenewalPolicy,
    StaticMeterCredentials,
)


def _clock(i: int) -> OctetString:
    minutes = i * 15
    return OctetString(
        bytes([0x07, 0xEA, 11, 24, 2, (minutes // 60) % 24, minutes % 60, 0, 0, 0xFF, 0xC4, 0x00])
    )


# --- case I: head-end ingest -------------------------------------------------------------------

INGEST_HEAD_END = bytes.fromhex("4D4D4D00000000E1")
INGEST_NOW = 1_700_000_000
C1_WPORT = 0x0066
END_OF_RUN = b"cosemcast-bench-end"


@dataclass(frozen=True, slots=True)
class IngestTraffic:
    """What the simulated meters sent: the C2s (to accept first) and the C1 datagrams."""

    shared_keys: dict[bytes, bytes]
    controls: list[bytes]
    datagrams: list[bytes]
    meters: int
    kp_ids: int


def _meter_notification(index: int) -> bytes:
    """A DATA-NOTIFICATION of one meter: clock, four registers, voltages, currents, status."""
    body = Structure(
        [
            _clock(index % 96),
            DoubleLongUnsigned(1_000_000 + index * 37),
            DoubleLongUnsigned(20_000 + index),
            DoubleLongUnsigned(index * 11 % 100_000),
            DoubleLongUnsigned(7),
            LongUnsigned(2300 + index % 11),
            LongUnsigned(2298 + index % 7),
            LongUnsigned(2301 + index % 5),
            Long(index % 100 - 50),
            Enumerated(0),
            OctetString(b"M%07d" % index),
        ]
    )
    return bytes.fromhex("0F") + (index + 1).to_bytes(4, "big") + b"\x00" + encode_data(body)


def make_ingest_traffic(
    meters: int, kp_ids: int, per_kp: int, now: int = INGEST_NOW
) -> IngestTraffic:
    """Seal the traffic with the real meter side: one ``PayloadSealer`` per meter, renewed
    ``kp_ids`` times, ``per_kp`` C1s under each Kp; C1s interleaved across meters."""
    shared: dict[bytes, bytes] = {}
    controls: list[bytes] = []
    per_meter: list[list[bytes]] = []
    policy = RenewalPolicy(max_payloads=None, max_age_s=86_400)
    for m in range(meters):
        title = b"MMM\x00" + m.to_bytes(4, "big")
        ks = os.urandom(16)
        shared[title] = ks
        sealer = PayloadSealer(
            system_title=title,
            head_ends=[HeadEndAssignment(INGEST_HEAD_END, ks)],
            counters=MemoryCounterSource(),
            rng=os.urandom,
            policy=policy,
        )
        notification = _meter_notification(m)
        sent: list[bytes] = []
        for k in range(kp_ids):
            sealer.renew(now + k)
            for _ in range(per_kp):
                apdu = sealer.seal_c1(notification, now + k).encode()
                sent.append(WrapperFrame(C1_WPORT, C1_WPORT, apdu).encode())
        controls.extend(entry.apdu.encode() for entry in sealer.controls)
        per_meter.append(sent)
    datagrams = [sent[i] for i in range(kp_ids * per_kp) for sent in per_meter]
    return IngestTraffic(shared, controls, datagrams, meters, kp_ids)


def ingest_opener(traffic: IngestTraffic, store: SqliteHeadEndStore | None = None) -> HeadEndOpener:
    """A head-end with every meter's Ks, every C2 accepted (specs §9.1)."""
    opener = HeadEndOpener(
        system_title=INGEST_HEAD_END,
        credentials=StaticMeterCredentials(traffic.shared_keys),
        store=MemoryPayloadKeyStore() if store is None else store,
    )
    for c2 in traffic.controls:
        opener.accept_c2(c2, INGEST_NOW)
    if store is not None:
        store.commit()
    return opener


def wrapper_apdu(datagram: bytes) -> bytes:
    """The APDU of a wrapper datagram, by the library (``WrapperFrame.decode``)."""
    return WrapperFrame.decode(datagram).apdu


def ingest_one(
    opener: HeadEndOpener, datagram: bytes, unwrap: Callable[[bytes], bytes] = wrapper_apdu
) -> DataNotification:
    """One C1 datagram through the head-end: wrapper, C1, Kp, replay, tag, typed readings."""
    opened = opener.open_c1(unwrap(datagram), INGEST_NOW)
    notification = decode_apdu(opened.notification)
    if not isinstance(notification, DataNotification):
        raise AssertionError("a C1 opened to something else than a DATA-NOTIFICATION")
    return notification


class DurableIngest:
    """Case I on the SQLite store: the opener path, committed by ``SERVICE_GROUP_COMMIT``
    (every ``max_messages`` C1s or ``max_delay_s``, whichever comes first)."""

    def __init__(self, traffic: IngestTraffic, directory: str) -> None:
        self.store = SqliteHeadEndStore(
            os.path.join(directory, f"i{time.monotonic_ns()}.sqlite3"),
            system_title=INGEST_HEAD_END,
        )
        self.opener = ingest_opener(traffic, self.store)
        self.batched = 0
        self.started = time.monotonic()
        self.commits = 0

    def __call__(self, datagram: bytes, unwrap: Callable[[bytes], bytes] = wrapper_apdu) -> None:
        ingest_one(self.opener, datagram, unwrap)
        if not self.batched:
            self.started = time.monotonic()
        self.batched += 1
        if self.batched >= SERVICE_GROUP_COMMIT.max_messages or (
            time.monotonic() - self.started >= SERVICE_GROUP_COMMIT.max_delay_s
        ):
            self.commit()

    def commit(self) -> None:
        self.store.commit()
        self.batched = 0
        self.commits += 1

    def close(self) -> None:
        self.commit()
        self.store.close()


class ServiceIngest:
    """The whole ``HeadEnd`` of ``cosemcast headend listen`` on a durable store (readings
    rows in the commit, JSON lines to a file after it)."""

    def __init__(self, traffic: IngestTraffic, directory: str) -> None:
        path = os.path.join(directory, f"h{time.monotonic_ns()}")
        self.store = SqliteHeadEndStore(
            path + ".sqlite3", system_title=INGEST_HEAD_END, keep_readings=True
        )
        self.out = open(path + ".jsonl", "w", encoding="utf-8")  # noqa: SIM115
        self.head_end = HeadEnd(
            INGEST_HEAD_END,
            self.store,
            ReadingSink(stream=self.out),
            StaticMeterCredentials(traffic.shared_keys),
            clock=lambda: INGEST_NOW,
            group_commit=SERVICE_GROUP_COMMIT,
        )
        for c2 in traffic.controls:
            self.head_end.handle_apdu(None, c2)
        self.head_end.flush()

    def __call__(self, datagram: bytes, unwrap: Callable[[bytes], bytes] = wrapper_apdu) -> None:
        self.head_end.handle_apdu(None, unwrap(datagram), INGEST_NOW)

    def close(self) -> None:
        self.head_end.flush()
        self.store.close()
        self.out.close()

    def check(self, expected: int) -> None:
        stats = self.head_end.stats()
        if stats["opened"] != expected or stats["rejected"]:
            raise AssertionError(f"service ingest: {stats}")


def ingest_in_process(traffic: IngestTraffic, rounds: int = 3) -> dict[str, float]:
    """C1/s of the whole path and of its stages, from a list (best of ``rounds``)."""
    best: dict[str, float] = {}

    def keep(name: str, count: int, seconds: float) -> None:
        best[name] = max(best.get(name, 0.0), count / seconds)

    datagrams = traffic.datagrams
    n = len(datagrams)
    for _ in range(rounds):
        opener = ingest_opener(traffic)
        t0 = time.perf_counter()
        for datagram in datagrams:
            ingest_one(opener, datagram)
        keep("total_per_s", n, time.perf_counter() - t0)
        t0 = time.perf_counter()
        apdus = [WrapperFrame.decode(d).apdu for d in datagrams]
        keep("wrapper_decode_per_s", n, time.perf_counter() - t0)
        t0 = time.perf_counter()
        opener = ingest_opener(traffic)
        keep("c2_accept_per_s", len(traffic.controls), time.perf_counter() - t0)
        open_c1 = opener.open_c1
        t0 = time.perf_counter()
        plains = [open_c1(apdu, INGEST_NOW).notification for apdu in apdus]
        keep("open_c1_per_s", n, time.perf_counter() - t0)
        t0 = time.perf_counter()
        for plain in plains:
            decode_apdu(plain)
        keep("typed_decode_per_s", n, time.perf_counter() - t0)
    return best


def _ingest_sender(
    port: int, datagrams: list[bytes], progress: Any, window: int, cpu: int | None
) -> None:
    """The meters: send every datagram, never more than ``window`` ahead of the receiver, in
    bursts of ``window // 2`` with sleeps between them: a CPU kept busy next to the receiver
    slows it down (by about 30 % on the 2-vCPU machine of issue 4)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sendto, address = sock.sendto, ("127.0.0.1", port)
    for i, datagram in enumerate(datagrams):
        if i - progress.value > window:
            while i - progress.value > window // 2:
                time.sleep(0.001)
        sendto(datagram, address)
    for _ in range(5):
        sendto(END_OF_RUN, address)
        time.sleep(0.05)
    sock.close()


def ingest_over_udp(
    traffic: IngestTraffic,
    sender_cpu: int | None,
    unwrap: Callable[[bytes], bytes] = wrapper_apdu,
    process: Callable[[bytes, Callable[[bytes], bytes]], Any] | None = None,
) -> dict[str, float]:
    """Receive the C1 datagrams from a sender process and process each as it arrives
    (``process``: the opener on the memory store by default)."""
    if process is None:
        process = partial(ingest_one, ingest_opener(traffic))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10.0)
    context = multiprocessing.get_context("fork")
    progress = context.RawValue("q", 0)
    sender = context.Process(
        target=_ingest_sender,
        args=(sock.getsockname()[1], traffic.datagrams, progress, 1024, sender_cpu),
        daemon=True,
    )
    sender.start()
    recv = sock.recv
    received = failed = 0
    t0 = time.perf_counter()
    try:
        datagram = recv(2048)
        t0 = time.perf_counter()
        while datagram != END_OF_RUN:
            process(datagram, unwrap)
            received += 1
            if not received & 63:
                progress.value = received
            datagram = recv(2048)
    except TimeoutError:
        failed = 1
    elapsed = time.perf_counter() - t0
    sender.join(5)
    if sender.is_alive():
        sender.kill()
    sock.close()
    return {
        "udp_per_s": received / elapsed if received else 0.0,
        "udp_received": received,
        "udp_sent": len(traffic.datagrams),
        "udp_timed_out": failed,
    }


def ingest_durable(traffic: IngestTraffic, sender_cpu: int | None) -> dict[str, float]:
    """Case I on the SQLite store (``DurableIngest``) and through the whole ``HeadEnd``
    (``ServiceIngest``): in process and over UDP, best of two runs each."""
    out: dict[str, float] = {}
    n = len(traffic.datagrams)
    with tempfile.TemporaryDirectory(prefix="cosemcast-bench-") as directory:
        for name, kind in (("sqlite", DurableIngest), ("service", ServiceIngest)):
            best = 0.0
            for _ in range(2):
                ingest = kind(traffic, directory)
                t0 = time.perf_counter()
                for datagram in traffic.datagrams:
                    ingest(datagram)
                if isinstance(ingest, ServiceIngest):
                    ingest.head_end.flush()
                    ingest.check(n)
                ingest.close()
                best = max(best, n / (time.perf_counter() - t0))
            out[f"{name}_total_per_s"] = best
            runs = []
            for _ in range(2):
                ingest = kind(traffic, directory)
                run = ingest_over_udp(traffic, sender_cpu, process=ingest)
                ingest.close()
                runs.append(run)
            run = max(runs, key=lambda r: r["udp_per_s"])
            out[f"{name}_udp_per_s"] = run["udp_per_s"]
            out[f"{name}_udp_received"] = run["udp_received"]
    return out


# --- case S: the sharded head-end ---------------------------------------------------------------

SHARD_SOCKETS = 64
SHARD_WINDOW = 4096


def _shard_sender(
    port: int, c2s: list[bytes], c1s: list[bytes], progress: Any, go: Any, window: int
) -> None:
    """The meters: C2s first, then (after ``go``) every C1, at most ``window`` ahead of the
    readings committed (``progress``). Meter m sends from socket m % SHARD_SOCKETS."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(SHARD_SOCKETS)]
    address = ("127.0.0.1", port)
    for i, datagram in enumerate(c2s):
        sockets[i % SHARD_SOCKETS].sendto(datagram, address)
        if not i % 256:
            time.sleep(0.002)
    while not go.value:
        time.sleep(0.001)
    for i, datagram in enumerate(c1s):
        if i - progress.value > window:
            while i - progress.value > window // 2:
                time.sleep(0.0005)
        sockets[int.from_bytes(datagram[23:27], "big") % SHARD_SOCKETS].sendto(datagram, address)
    for sock in sockets:
        sock.close()


def _shard_keys(traffic: IngestTraffic, path: str) -> None:
    lines = [f'system_title = "{INGEST_HEAD_END.hex()}"']
    for meter, ks in traffic.shared_keys.items():
        lines += [f"[meters.{meter.hex()}]", f'ks = "{ks.hex()}"']
    with open(path, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")


def sharded_ingest(traffic: IngestTraffic, workers: int, directory: str) -> dict[str, Any]:
    """C1/s through ``ShardedHeadEnd`` with ``workers`` processes (case S)."""
    from pathlib import Path

    from cosemcast.headend.shard import ShardedHeadEnd

    keys = os.path.join(directory, "keys.toml")
    _shard_keys(traffic, keys)
    sharded = ShardedHeadEnd(
        workers=workers,
        keys=Path(keys),
        db=Path(directory) / f"s{workers}.sqlite3",
        udp=("127.0.0.1", 0),
        out=Path(directory) / f"s{workers}.jsonl",
    )
    context = multiprocessing.get_context("fork")
    progress, go = context.RawValue("q", 0), context.RawValue("b", 0)
    wrapped_c2s = [WrapperFrame(C1_WPORT, C1_WPORT, c2).encode() for c2 in traffic.controls]
    sharded.start()
    try:
        assert sharded.address is not None
        sender = context.Process(
            target=_shard_sender,
            args=(sharded.address[1], wrapped_c2s, traffic.datagrams, progress, go, SHARD_WINDOW),
            daemon=True,
        )
        sender.start()
        n = len(traffic.datagrams)

        def total(name: str) -> int:
            return sum(s.get(name, 0) for s in sharded.stats())

        deadline = time.monotonic() + 60
        while total("controls_accepted") < len(traffic.controls):
            if time.monotonic() > deadline:
                raise AssertionError("case S: the C2s were not all accepted")
            time.sleep(0.01)
        go.value = 1
        t0 = time.perf_counter()
        opened, last, stalled = 0, 0, time.monotonic()
        while opened < n:
            time.sleep(0.005)
            opened = progress.value = total("opened")
            if opened != last:
                last, stalled = opened, time.monotonic()
            elif time.monotonic() - stalled > 3:
                break  # datagrams lost: report what arrived
        elapsed = time.perf_counter() - t0
        sender.join(10)
    finally:
        stats = sharded.stop()
    return {
        "per_s": opened / elapsed,
        "opened": opened,
        "lost": n - opened,
        "forwarded": sum(s["forwarded"] for s in stats),
        "per_worker": [s["opened"] for s in stats],
    }
