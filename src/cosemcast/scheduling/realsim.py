"""The real-message mode of the schedule study (specs/scheduling.md §8.3).

Theory of operation. For each of up to ~100,000 meters: an identity (system title ``MTR`` ‖ u40
index, one of a few firmware versions and tariffs), its location group, random keys shared with
k head-ends, a :class:`~cosemcast.sharedpayload.meter.PayloadSealer` and an
:class:`~cosemcast.scheduling.cosem.UpstreamScheduleObject` whose window is
``report_window_s``. The head-end encodes the broadcast (the ACTION-Request of
:func:`~cosemcast.scheduling.orders.group_command_request`) once; every scheduled meter decodes
those bytes and invokes ``group_command`` on its own object, which applies its group's order.

Every transmission is an event (second, meter, what); events run in time order and each
generates its messages then: C1 sealed with ``now`` = that second, the C2s the sealer hands out
(after the fleet-wide first draw), the acknowledgement protected under the broadcasting
head-end's global key. Each message's wire bytes (wrapper, and UDP/IP when asked) are counted
in its second. Unscheduled meters use the nominal instant plus a seeded uniform jitter.

With ``verify``, the head-ends accept every C2 (their acknowledgements go back to the sealer),
open every C1, and head-end 0 deciphers every acknowledgement; anything that fails raises.
Without it, C2 retransmissions are switched off so that the counts are the same.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from typing import Final

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.action import ActionRequestNormal
from cosemcast.apdu.common import ABSENT, ActionResult
from cosemcast.apdu.general import GeneralCiphering, GeneralGloCiphering
from cosemcast.link.wrapper import HEADER_LENGTH, WrapperFrame
from cosemcast.scheduling.cosem import UpstreamScheduleObject
from cosemcast.scheduling.orders import UpstreamSchedule, group_command_request
from cosemcast.scheduling.spread import MeterIdentity
from cosemcast.scheduling.study import (
    ACK_SECURITY_CONTROL,
    SCENARIOS,
    Scenario,
    Series,
    StudyParams,
    StudyResult,
    ack_notification,
    bands,
    empty_series,
    group_plan,
    message_sizes,
    steady_from,
)
from cosemcast.security.gcm import SymmetricKeys
from cosemcast.security.protection import cipher_apdu, decipher_apdu
from cosemcast.sharedpayload.headend import (
    HeadEndOpener,
    MemoryPayloadKeyStore,
    StaticMeterCredentials,
)
from cosemcast.sharedpayload.meter import MemoryCounterSource, PayloadSealer, RenewalPolicy
from cosemcast.sharedpayload.sealing import HeadEndAssignment
from cosemcast.sharedpayload.traffic import frame_overhead, reading_notification

__all__ = ["FIRMWARE_VERSIONS", "T0", "TARIFFS", "meter_identity", "simulate_real"]

T0: Final = 1_700_000_100  # a quarter hour (Unix seconds divisible by 900)
FIRMWARE_VERSIONS: Final = (b"FW-1.4.2", b"FW-1.5.0", b"FW-1.5.1")
TARIFFS: Final = (b"TOU-2", b"FLAT", b"EV-NIGHT", b"TOU-3")
_WPORT: Final = 1
_REPORT, _ACK = 0, 1


def meter_identity(index: int) -> MeterIdentity:
    return MeterIdentity(
        b"MTR" + index.to_bytes(5, "big"),
        FIRMWARE_VERSIONS[index % len(FIRMWARE_VERSIONS)],
        TARIFFS[(index // 7) % len(TARIFFS)],
    )


@dataclass
class _Fleet:
    """Keys and head-ends shared by both schemes (so that both seal with the same keys)."""

    params: StudyParams
    verify: bool
    identities: list[MeterIdentity]
    head_ends: list[bytes]
    shared_keys: dict[tuple[int, int], bytes] = field(repr=False)
    ack_keys: list[SymmetricKeys] = field(repr=False)


def _fleet(params: StudyParams, verify: bool, rng: random.Random) -> _Fleet:
    n, k = params.meters, params.head_ends
    return _Fleet(
        params,
        verify,
        [meter_identity(i) for i in range(n)],
        [b"HE" + h.to_bytes(6, "big") for h in range(1, k + 1)],
        {(i, h): rng.randbytes(16) for i in range(n) for h in range(k)},
        [SymmetricKeys(rng.randbytes(16), rng.randbytes(16)) for _ in range(n)],
    )


def simulate_real(params: StudyParams, *, verify: bool = False) -> StudyResult:
    """Generate every message of both scenarios under both schemes (module doc)."""
    rng = random.Random(params.seed)
    fleet = _fleet(params, verify, rng)
    broadcast = group_command_request(group_plan(params)).encode()
    found = bands(params)
    series: dict[tuple[str, bool], Series] = {}
    verified = {"c1_opened": 0, "c2_accepted": 0, "acks_deciphered": 0}
    for scheduled in (False, True):
        for name, value in _run(fleet, broadcast, scheduled, rng, verified).items():
            series[(name, scheduled)] = value
    scenarios = {
        name: Scenario(
            name,
            params.horizon_s(name),
            series[(name, False)],
            series[(name, True)],
            *found[name],
            steady_from(params, name),
        )
        for name in SCENARIOS
    }
    return StudyResult(
        "real",
        params,
        message_sizes(params),
        scenarios["broadcast"],
        scenarios["reporting"],
        broadcast.hex().upper(),
        {"verified": verified if verify else None, "broadcast_apdu_bytes": len(broadcast)},
    )


def _run(
    fleet: _Fleet,
    broadcast: bytes,
    scheduled: bool,
    rng: random.Random,
    verified: dict[str, int],
) -> dict[str, Series]:
    params = fleet.params
    k = params.head_ends
    overhead = frame_overhead(params.ip_version) - HEADER_LENGTH
    policy = RenewalPolicy(
        max_payloads=None,
        max_age_s=86_400,
        retry_interval_s=60.0 if fleet.verify else 1e12,
    )
    openers = _openers(fleet) if fleet.verify else []
    out = {name: empty_series(params.horizon_s(name)) for name in SCENARIOS}
    events: list[tuple[int, int, int]] = []
    sealers: list[PayloadSealer] = []
    for i, identity in enumerate(fleet.identities):
        sealers.append(
            PayloadSealer(
                system_title=identity.system_title,
                head_ends=[
                    HeadEndAssignment(he, shared_key=fleet.shared_keys[(i, h)])
                    for h, he in enumerate(fleet.head_ends)
                ],
                counters=MemoryCounterSource(),
                rng=rng.randbytes,
                policy=policy,
            )
        )
        if scheduled:
            obj = UpstreamScheduleObject(
                identity,
                schedule=UpstreamSchedule(window_s=params.report_window_s),
                groups=(params.group_of(i),),
            )
            request = decode_apdu(broadcast)
            if not isinstance(request, ActionRequestNormal):
                raise AssertionError("the broadcast decoded to another APDU")
            params_in = request.method_invocation_parameters
            if params_in is ABSENT:
                raise AssertionError("the broadcast carries no group command")
            result, _ = obj.invoke(1, params_in)
            if result is not ActionResult.SUCCESS or obj.last_order is None:
                raise AssertionError(f"meter {i} applied no order: {result!r}")
            events.append((obj.response_instant(0), i, _ACK))
            events += [
                (obj.report_instant(p * params.period_s), i, _REPORT) for p in range(params.periods)
            ]
        else:
            events.append((rng.randrange(params.jitter_s), i, _ACK))
            events += [
                (p * params.period_s + rng.randrange(params.jitter_s), i, _REPORT)
                for p in range(params.periods)
            ]
    heapq.heapify(events)
    ack_ic = [0] * len(fleet.identities)

    def count(name: str, second: int, kind: str, apdu: bytes) -> None:
        series = out[name]
        series.by_kind[kind][second] += 1
        series.bytes_per_s[second] += len(WrapperFrame(_WPORT, _WPORT, apdu).encode()) + overhead

    while events:
        second, i, what = heapq.heappop(events)
        now = T0 + second
        identity = fleet.identities[i]
        if what == _ACK:
            ack_ic[i] += 1
            apdu = cipher_apdu(
                ack_notification(now, i),
                kind="general-glo",
                security_control=ACK_SECURITY_CONTROL,
                keys=fleet.ack_keys[i],
                system_title=identity.system_title,
                invocation_counter=ack_ic[i],
            ).encode()
            count("broadcast", second, "ack", apdu)
            if fleet.verify:
                _check_ack(apdu, fleet.ack_keys[i], now, i)
                verified["acks_deciphered"] += 1
            continue
        sealer = sealers[i]
        reading = reading_notification(params.register_values, now, i)
        c1 = sealer.seal_c1(reading, now)
        for head_end, c2 in sealer.control_messages(now):
            raw = c2.encode()
            count("reporting", second, "c2", raw)
            if openers:
                accepted = openers[fleet.head_ends.index(head_end)].accept_c2(raw, now)
                verified["c2_accepted"] += 1
                if accepted.ack is not None:
                    ack = decode_apdu(accepted.ack.encode())
                    if not isinstance(ack, GeneralCiphering):
                        raise AssertionError("a C2 acknowledgement decoded to another APDU")
                    sealer.accept_ack(ack)
        raw_c1 = c1.encode()
        count("reporting", second, "c1", raw_c1)
        for opener in openers:
            if opener.open_c1(raw_c1, now).notification != reading:
                raise AssertionError("a C1 opened to another reading")
            verified["c1_opened"] += 1
    if sum(out["reporting"].by_kind["c2"]) != k * len(sealers):
        raise AssertionError("every meter sends k C2s once in the horizon")
    return out


def _openers(fleet: _Fleet) -> list[HeadEndOpener]:
    n = len(fleet.identities)
    return [
        HeadEndOpener(
            system_title=he,
            credentials=StaticMeterCredentials(
                {fleet.identities[i].system_title: fleet.shared_keys[(i, h)] for i in range(n)}
            ),
            store=MemoryPayloadKeyStore(),
        )
        for h, he in enumerate(fleet.head_ends)
    ]


def _check_ack(apdu: bytes, keys: SymmetricKeys, now: int, meter: int) -> None:
    received = decode_apdu(apdu)
    if not isinstance(received, GeneralGloCiphering):
        raise AssertionError("an acknowledgement decoded to another APDU")
    if decipher_apdu(received, keys=keys).plain != ack_notification(now, meter):
        raise AssertionError("an acknowledgement deciphered to another notification")
