#!/usr/bin/env python3
"""cosemcast benchmark: decodes per second on one core, side by side with dlms-cosem.

Cases (issue "Foundation", item 8):

A  GET.response-normal carrying a Profile generic buffer of 100 rows
   (date-time octet-string, two double-long-unsigned), decoded to typed values.
B  A 13-element DATA-NOTIFICATION inside general-glo-ciphering, suite 0, security control
   0x30: parsed, tag verified, decrypted and the notification decoded to typed values.
G  The AES-GCM decrypt+verify primitive alone: cosemcast's one-shot path against the
   ``Cipher(AES, GCM(iv, tag, min_tag_length=12))`` path that a 12-byte tag seems to force.
I  Head-end ingest of shared payloads (issue 4 item 6, specs/shared-payload.md §9): many
   simulated meters (``PayloadSealer``, 1,000 meters × 3 kp_ids by default, each C2 accepted
   by the ``HeadEndOpener`` first, Kp renewed between the C1s of a meter, the meters
   interleaved), every C1 a wrapper datagram; per message: wrapper decode, C1 decode, Kp
   lookup, replay window, tag verify + decrypt, DATA-NOTIFICATION decoded to typed values.
   Measured twice: in process from a list of datagrams, and end to end with real UDP
   datagrams on 127.0.0.1 sent by another process (on the other CPU when there is one) and
   received and processed by this one, pinned to one CPU. Target: 50,000 C1/s.

When ``dlms-cosem`` is installed (``pip install dlms-cosem==21.3.2``, its last MIT release),
the same bytes go through it in the same run and the ratio is printed. The bytes of both
cases are produced by cosemcast's encoders and checked to decode identically in both
libraries before timing.

Usage: ``python tools/bench.py [--seconds S] [--json] [--cases ABGI] [--meters M]
[--kp-ids K] [--per-kp N]``. The process pins itself to one CPU.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.general import GeneralGloCiphering
from cosemcast.apdu.get import GetResponseNormal
from cosemcast.apdu.notifications import DataNotification
from cosemcast.axdr import (
    Array,
    DoubleLong,
    DoubleLongUnsigned,
    Enumerated,
    Long,
    LongUnsigned,
    OctetString,
    Structure,
    encode_data,
)
from cosemcast.link.wrapper import WrapperFrame
from cosemcast.security.gcm import SymmetricKeys, protect, unprotect
from cosemcast.security.protection import cipher_apdu, decipher_apdu
from cosemcast.sharedpayload import (
    HeadEndAssignment,
    HeadEndOpener,
    MemoryCounterSource,
    MemoryPayloadKeyStore,
    PayloadSealer,
    RenewalPolicy,
    StaticMeterCredentials,
)

EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
METER_ST = bytes.fromhex("4D4D4D0000BC614E")


def _clock(i: int) -> OctetString:
    minutes = i * 15
    return OctetString(
        bytes([0x07, 0xEA, 11, 24, 2, (minutes // 60) % 24, minutes % 60, 0, 0, 0xFF, 0xC4, 0x00])
    )


def make_case_a() -> bytes:
    rows = Array(
        Structure([_clock(i), DoubleLongUnsigned(100_000 + i * 7), DoubleLongUnsigned(i * 3)])
        for i in range(100)
    )
    return bytes.fromhex("C401C100") + encode_data(rows)


def make_case_b_plain() -> bytes:
    body = Structure(
        [
            _clock(1),
            DoubleLongUnsigned(123_456),
            DoubleLongUnsigned(7_890),
            DoubleLongUnsigned(42),
            DoubleLongUnsigned(1_000_000),
            DoubleLong(-5),
            LongUnsigned(2301),
            LongUnsigned(2299),
            LongUnsigned(2305),
            Long(-12),
            Long(17),
            Enumerated(0),
            OctetString(b"MTR0001"),
        ]
    )
    assert len(body) == 13
    return bytes.fromhex("0F00000001" + "00") + encode_data(body)


def make_case_b() -> bytes:
    keys = SymmetricKeys(EK, AK)
    ciphered = cipher_apdu(
        make_case_b_plain(),
        kind="general-glo",
        security_control=0x30,
        keys=keys,
        system_title=METER_ST,
        invocation_counter=0x1234,
    )
    return ciphered.encode()


# --- cosemcast side --------------------------------------------------------------------------


def ours_a(raw: bytes) -> Any:
    apdu = decode_apdu(raw)
    assert isinstance(apdu, GetResponseNormal)
    return apdu


_KEYS = SymmetricKeys(EK, AK)


def ours_b(raw: bytes) -> Any:
    apdu = decode_apdu(raw)
    assert isinstance(apdu, GeneralGloCiphering)
    plain = decipher_apdu(apdu, keys=_KEYS).plain
    notification = decode_apdu(plain)
    assert isinstance(notification, DataNotification)
    return notification


# --- dlms-cosem side -------------------------------------------------------------------------


def dlms_cosem_cases() -> dict[str, Callable[[bytes], Any]] | None:
    try:
        from dlms_cosem import security as dc_security  # type: ignore[import-untyped, import-not-found, unused-ignore]
        from dlms_cosem import utils as dc_utils  # type: ignore[import-untyped, import-not-found, unused-ignore]
        from dlms_cosem.protocol.xdlms.data_notification import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
            DataNotification as DcDataNotification,
        )
        from dlms_cosem.protocol.xdlms.general_global_cipher import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
            GeneralGlobalCipher,
        )
        from dlms_cosem.protocol.xdlms.get import GetResponseFactory  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError:
        return None

    def theirs_a(raw: bytes) -> Any:
        response = GetResponseFactory.from_bytes(raw)
        return dc_utils.parse_as_dlms_data(response.data)

    def theirs_b(raw: bytes) -> Any:
        apdu = GeneralGlobalCipher.from_bytes(raw)
        plain = dc_security.decrypt(
            security_control=apdu.security_control,
            system_title=apdu.system_title,
            invocation_counter=apdu.invocation_counter,
            key=EK,
            auth_key=AK,
            cipher_text=apdu.ciphered_text,
        )
        notification = DcDataNotification.from_bytes(plain)
        return dc_utils.parse_as_dlms_data(notification.body)

    return {"A": theirs_a, "B": theirs_b}


# --- the GCM primitive -----------------------------------------------------------------------


def gcm_cases() -> tuple[Callable[[], Any], Callable[[], Any]]:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    keys = SymmetricKeys(EK, AK)
    plain = make_case_b_plain()
    payload = protect(0x30, keys, METER_ST, 7, plain)
    iv = METER_ST + (7).to_bytes(4, "big")
    aad = b"\x30" + AK
    body, tag = payload[:-12], payload[-12:]

    def fast() -> bytes:
        return unprotect(0x30, keys, METER_ST, 7, payload)

    def cipher_path() -> bytes:
        dec = Cipher(algorithms.AES(EK), modes.GCM(iv, tag, min_tag_length=12)).decryptor()
        dec.authenticate_additional_data(aad)
        return dec.update(body) + dec.finalize()

    assert fast() == cipher_path() == plain
    return fast, cipher_path


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


def make_ingest_traffic(meters: int, kp_ids: int, per_kp: int) -> IngestTraffic:
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
            sealer.renew(INGEST_NOW + k)
            for _ in range(per_kp):
                apdu = sealer.seal_c1(notification, INGEST_NOW + k).encode()
                sent.append(WrapperFrame(C1_WPORT, C1_WPORT, apdu).encode())
        controls.extend(entry.apdu.encode() for entry in sealer.controls)
        per_meter.append(sent)
    datagrams = [sent[i] for i in range(kp_ids * per_kp) for sent in per_meter]
    return IngestTraffic(shared, controls, datagrams, meters, kp_ids)


def ingest_opener(traffic: IngestTraffic) -> HeadEndOpener:
    """A head-end with every meter's Ks, every C2 accepted (specs §9.1)."""
    opener = HeadEndOpener(
        system_title=INGEST_HEAD_END,
        credentials=StaticMeterCredentials(traffic.shared_keys),
        store=MemoryPayloadKeyStore(),
    )
    for c2 in traffic.controls:
        opener.accept_c2(c2, INGEST_NOW)
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
) -> dict[str, float]:
    """Receive the C1 datagrams from a sender process and process each as it arrives."""
    opener = ingest_opener(traffic)
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
            ingest_one(opener, datagram, unwrap)
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


# --- runner ----------------------------------------------------------------------------------


def _calibrate(fn: Callable[[], Any], seconds: float) -> int:
    """How many calls of ``fn`` take about ``seconds``."""
    fn()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt > 0.02:
            return max(1, int(n * seconds / dt))
        n *= 2


def rates(fns: list[Callable[[], Any]], seconds: float, rounds: int = 5) -> list[float]:
    """Calls per second of each function: the best of ``rounds`` slices, interleaved.

    Slices of the functions alternate, so that load from elsewhere on the machine falls on
    all of them alike and the ratios stay meaningful.
    """
    counts = [_calibrate(fn, seconds / rounds) for fn in fns]
    best = [0.0] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            for _ in range(counts[i]):
                fn()
            best[i] = max(best[i], counts[i] / (time.perf_counter() - t0))
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--cases", default="ABGI", help="which cases to run (default ABGI)")
    parser.add_argument("--meters", type=int, default=1000, help="case I: simulated meters")
    parser.add_argument("--kp-ids", type=int, default=3, help="case I: kp_ids per meter")
    parser.add_argument("--per-kp", type=int, default=40, help="case I: C1s per kp_id")
    args = parser.parse_args(argv)
    cases = set(args.cases.upper())
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if cpus:
        os.sched_setaffinity(0, {cpus[0]})

    raw_a, raw_b = make_case_a(), make_case_b()
    theirs = dlms_cosem_cases() if cases & {"A", "B"} else None
    results: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "bytes": {"A": len(raw_a), "B": len(raw_b)},
        "cases": {},
    }
    ours = {"A": ours_a, "B": ours_b}
    for case, raw in (("A", raw_a), ("B", raw_b)):
        if case not in cases:
            continue
        fns: list[Callable[[], Any]] = [partial(ours[case], raw)]
        if theirs is not None:
            theirs[case](raw)  # must decode the same bytes without error
            fns.append(partial(theirs[case], raw))
        measured = rates(fns, args.seconds)
        entry: dict[str, Any] = {"cosemcast_per_s": measured[0]}
        if theirs is not None:
            entry["dlms_cosem_per_s"] = measured[1]
            entry["ratio"] = measured[0] / measured[1]
        results["cases"][case] = entry
    if "G" in cases:
        g_fast, g_slow = rates(list(gcm_cases()), args.seconds)
        results["cases"]["G"] = {
            "one_shot_per_s": g_fast,
            "cipher_path_per_s": g_slow,
            "ratio": g_fast / g_slow,
        }
    if "I" in cases:
        traffic = make_ingest_traffic(args.meters, args.kp_ids, args.per_kp)
        entry = {
            "meters": traffic.meters,
            "kp_ids": traffic.meters * traffic.kp_ids,
            "c1": len(traffic.datagrams),
            "datagram_bytes": len(traffic.datagrams[0]),
            "sender_cpu": cpus[1] if len(cpus) > 1 else None,
        }
        entry.update(ingest_in_process(traffic))
        runs = [ingest_over_udp(traffic, entry["sender_cpu"]) for _ in range(2)]
        entry.update(max(runs, key=lambda run: run["udp_per_s"]))
        results["cases"]["I"] = entry

    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    _print_results(results, theirs is not None, raw_a, raw_b)
    return 0


def _print_results(results: dict[str, Any], side_by_side: bool, raw_a: bytes, raw_b: bytes) -> None:
    print(f"cosemcast benchmark, one core, Python {results['python']} ({results['machine']})")
    done = results["cases"]
    if not side_by_side and done.keys() & {"A", "B"}:
        print("dlms-cosem not installed: no side-by-side figures (pip install dlms-cosem==21.3.2)")
    labels = {
        "A": f"A  GET.response profile buffer, 100 rows ({len(raw_a)} B)",
        "B": f"B  general-glo-ciphering DATA-NOTIFICATION, 13 elements ({len(raw_b)} B)",
    }
    for case in ("A", "B"):
        if case not in done:
            continue
        e = done[case]
        line = f"{labels[case]:<64} cosemcast {e['cosemcast_per_s']:>10,.0f}/s"
        if "dlms_cosem_per_s" in e:
            line += f"   dlms-cosem {e['dlms_cosem_per_s']:>9,.0f}/s   ratio {e['ratio']:.1f}x"
        print(line)
    if "G" in done:
        g = done["G"]
        print(
            f"{'G  AES-GCM-128 decrypt+verify, 12-byte tag':<64} "
            f"one-shot  {g['one_shot_per_s']:>10,.0f}/s"
            f"   Cipher/GCM {g['cipher_path_per_s']:>9,.0f}/s   ratio {g['ratio']:.1f}x"
        )
    if "I" in done:
        i = done["I"]
        title = (
            f"I  head-end ingest, {i['meters']:,} meters, {i['kp_ids']:,} kp_ids, "
            f"{i['c1']:,} C1 ({i['datagram_bytes']} B)"
        )
        print(title)
        sender = "another process" + (
            f" on CPU {i['sender_cpu']}" if i["sender_cpu"] is not None else ", same CPU"
        )
        lost = i["udp_sent"] - i["udp_received"]
        print(
            f"   UDP 127.0.0.1, receive + process on one core ({sender}): "
            f"{i['udp_per_s']:>10,.0f} C1/s  ({i['udp_received']:,} received, {lost:,} lost)"
        )
        print(f"   in process, same path without the socket:{i['total_per_s']:>22,.0f} C1/s")
        print(
            "   stages alone: "
            f"wrapper {i['wrapper_decode_per_s']:,.0f}/s, "
            f"open_c1 {i['open_c1_per_s']:,.0f}/s, "
            f"typed DATA-NOTIFICATION {i['typed_decode_per_s']:,.0f}/s; "
            f"C2 accept (unwrap, verify, store, ack) {i['c2_accept_per_s']:,.0f}/s"
        )


if __name__ == "__main__":
    sys.exit(main())
