"""Upstream traffic of the shared-payload scheme against per-head-end encryption (issue 4, item 5).

Theory of operation. :func:`model` computes, for N meters, k head-ends, R readings a day and a
``Kp`` renewal period H, the traffic of two schemes that carry the same reading (the same
encoded DATA-NOTIFICATION):

* **classic**: the meter protects the reading once per head-end as general-glo-ciphering
  (``DB``, SC ``30``, brief §5.4) under that head-end's global key: k upstream messages per
  reading, unacknowledged (a push is not confirmed);
* **shared** (specs/shared-payload.md): one C1 per reading, sent once (multicast or broadcast,
  §8.4) whatever k is, plus k C2s each time ``Kp`` is drawn; every C2 asks for an
  acknowledgement (§6: ack-request bit 0 is always set), which travels *downstream* and is
  counted apart, as are C1 acknowledgements when ``ack_payloads`` is set.

Message sizes are never guessed: :func:`measure_message_sizes` seals one reading of each kind
with the project's own code (``cipher_apdu``, ``seal_payload``, ``seal_control``, ``seal_ack``)
and frames it in the IEC 62056-47 wrapper (8 bytes, brief §1); ``ip_version`` adds the UDP
(8) and IPv4 (20) or IPv6 (40) headers, without options or link-layer framing.

Renewal. The meter renews ``Kp`` before the first reading at which the key is at least H old
(``RenewalPolicy.max_age_s``; ``max_payloads`` off), so one key serves
``readings_per_key = ceil(H·R / 86400)`` readings (at least 1) and there are
``R / readings_per_key`` draws a day; this equals 24/H whenever H is a multiple of the reading
interval. Assignment changes and lost acknowledgements (C2 retransmissions) are not modelled.

Meter AES work, as seen by a meter that runs AES-128 itself:

* ``gcm_calls``: AES-GCM invocations (seals, and verifications of received acknowledgements);
* ``aes_blocks``: AES-128 block encryptions. A GCM call over P plaintext bytes costs
  ``ceil(P/16) + 2`` (the counter blocks, E(K, J0) for the tag, and E(K, 0) for the GHASH key
  H, counted on every call as an implementation without a per-key cache does); an
  authentication-only acknowledgement check costs 2 (GHASH is a field multiplication, not AES);
  an RFC 3394 wrap of a 128-bit ``Kp`` costs 12 (6 rounds x 2 half-blocks);
* ``key_wraps`` and ``kdf_calls`` (one ``Ka`` derivation per C2, HMAC-SHA-256, not AES).

:func:`simulate` checks the model: it runs real :class:`~.meter.PayloadSealer` meters for a
simulated period, delivers every C2 to the real :class:`~.headend.HeadEndOpener` of its
head-end, opens every C1 at every head-end, protects every classic message with
``cipher_apdu`` and deciphers it, and counts messages, framed bytes and AES work from the
messages themselves; :func:`predict` gives the model's figures for the same finite period.
"""

from __future__ import annotations

import datetime as _dt
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Final

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.common import LongInvokeIdAndPriority
from cosemcast.apdu.general import GeneralCiphering, GeneralGloCiphering, WrappedKey
from cosemcast.apdu.notifications import DataNotification
from cosemcast.axdr.types import CosemDateTime, DoubleLongUnsigned, Structure
from cosemcast.link.wrapper import HEADER_LENGTH, WrapperFrame
from cosemcast.security.gcm import SymmetricKeys
from cosemcast.security.protection import cipher_apdu, decipher_apdu
from cosemcast.sharedpayload.headend import (
    HeadEndOpener,
    MemoryPayloadKeyStore,
    StaticMeterCredentials,
)
from cosemcast.sharedpayload.messages import AckBody, AckKind, AckRequest, ControlBody, KpId
from cosemcast.sharedpayload.meter import MemoryCounterSource, PayloadSealer, RenewalPolicy
from cosemcast.sharedpayload.sealing import (
    HeadEndAssignment,
    PayloadKey,
    seal_ack,
    seal_control,
    seal_payload,
)

__all__ = [
    "ITRON_METERS",
    "ITRON_UPSTREAM_PER_S",
    "SECONDS_PER_DAY",
    "ItronReference",
    "MessageSizes",
    "SchemeTraffic",
    "SimulationResult",
    "StudyParams",
    "StudyResult",
    "aes_blocks_for_gcm",
    "itron_reference",
    "measure_message_sizes",
    "model",
    "predict",
    "reading_notification",
    "simulate",
]

SECONDS_PER_DAY: Final = 86_400
# DESIGN.md §1: Itron, 10 million meters, up to 24,000 upstream messages a second.
ITRON_METERS: Final = 10_000_000
ITRON_UPSTREAM_PER_S: Final = 24_000
TAG_LENGTH: Final = 12
AES_BLOCK: Final = 16
# RFC 3394 §2.2.1: 6·n block encryptions for n 64-bit key halves; a 128-bit Kp has n = 2.
KEY_WRAP_BLOCKS: Final = 12
# An authentication-only GCM check: E(K, 0) for H and E(K, J0) for the tag.
GMAC_BLOCKS: Final = 2
UDP_HEADER: Final = 8
IP_HEADER: Final = {4: 20, 6: 40}
SECURITY_CONTROL: Final = 0x30  # suite 0, authenticated and encrypted (brief §5.1)
_WPORT: Final = 1
_T0: Final = 1_700_000_000


def aes_blocks_for_gcm(plaintext_length: int) -> int:
    """AES-128 block encryptions of one GCM seal or open of ``plaintext_length`` bytes."""
    return -(-plaintext_length // AES_BLOCK) + 2


@dataclass(frozen=True, slots=True)
class StudyParams:
    """The inputs: population, head-ends per meter, reading rate, ``Kp`` renewal period."""

    meters: int
    head_ends: int
    readings_per_day: int
    kp_renewal_h: float
    register_values: int = 4
    ip_version: int | None = None
    ack_payloads: bool = False

    def __post_init__(self) -> None:
        if self.meters < 0 or self.head_ends < 1 or self.readings_per_day < 1:
            raise ValueError("meters >= 0, head_ends >= 1 and readings_per_day >= 1 are required")
        if self.kp_renewal_h <= 0 or self.register_values < 0:
            raise ValueError("kp_renewal_h must be positive and register_values not negative")
        if self.ip_version not in (None, 4, 6):
            raise ValueError("ip_version is None, 4 or 6")

    @property
    def renewal_s(self) -> int:
        return max(1, round(self.kp_renewal_h * 3600))

    @property
    def readings_per_key(self) -> int:
        """Readings sealed under one ``Kp`` (module doc, "Renewal")."""
        return max(1, -(-self.renewal_s * self.readings_per_day // SECONDS_PER_DAY))


def reading_notification(register_values: int, now: int = _T0, meter: int = 0) -> bytes:
    """The reading both schemes carry: a DATA-NOTIFICATION (brief §4.6) stamped with ``now``
    (Unix seconds) and holding ``register_values`` double-long-unsigned registers (A+, A-, R+,
    R- for 4). Every field has a fixed width, so the size never depends on the values."""
    moment = _dt.datetime.fromtimestamp(now, _dt.UTC)
    body = Structure(
        DoubleLongUnsigned((meter * 7919 + now // 60 + r) & 0xFFFFFFFF)
        for r in range(register_values)
    )
    return DataNotification(
        LongInvokeIdAndPriority((now // 60) & 0xFFFFFF), CosemDateTime.from_datetime(moment), body
    ).encode()


@dataclass(frozen=True, slots=True)
class MessageSizes:
    """Bytes of one message of each kind: the APDU, and framed (wrapper, and UDP/IP if asked)."""

    reading_plaintext: int
    c2_plaintext: int
    classic_apdu: int
    c1_apdu: int
    c2_apdu: int
    ack_apdu: int
    frame_overhead: int

    @property
    def classic(self) -> int:
        return self.classic_apdu + self.frame_overhead

    @property
    def c1(self) -> int:
        return self.c1_apdu + self.frame_overhead

    @property
    def c2(self) -> int:
        return self.c2_apdu + self.frame_overhead

    @property
    def ack(self) -> int:
        return self.ack_apdu + self.frame_overhead


def frame_overhead(ip_version: int | None) -> int:
    """Bytes added to an APDU on the wire: wrapper header, and UDP plus IP when asked."""
    if ip_version is None:
        return HEADER_LENGTH
    return HEADER_LENGTH + UDP_HEADER + IP_HEADER[ip_version]


def measure_message_sizes(register_values: int, ip_version: int | None = None) -> MessageSizes:
    """Seal one message of each kind with the project's code and measure it."""
    reading = reading_notification(register_values)
    meter_st = bytes.fromhex("4D4D4D0000BC614E")
    head_end_st = bytes.fromhex("4D4D4D0000000001")
    key16 = bytes(range(16))
    classic = cipher_apdu(
        reading,
        kind="general-glo",
        security_control=SECURITY_CONTROL,
        keys=SymmetricKeys(key16, key16),
        system_title=meter_st,
        invocation_counter=1,
    )
    kp = PayloadKey(KpId(1, 1), key16, _T0, _T0 + 90_000, 2)
    c1 = seal_payload(kp, meter_system_title=meter_st, invocation_counter=2, notification=reading)
    body = ControlBody(kp.kp_id, kp.not_before, kp.not_after, 2, AckRequest.CONTROL)
    c2 = seal_control(
        kp,
        body,
        meter_system_title=meter_st,
        head_end=HeadEndAssignment(head_end_st, shared_key=key16),
        invocation_counter=1,
        rng=random.Random(0).randbytes,
    )
    ack = seal_ack(
        AckBody(kp.kp_id, 1, AckKind.CONTROL),
        ack_key=c2.ack_key,
        head_end_system_title=head_end_st,
        meter_system_title=meter_st,
    )
    return MessageSizes(
        reading_plaintext=len(reading),
        c2_plaintext=len(c2.apdu.ciphered_text) - TAG_LENGTH,
        classic_apdu=len(classic.encode()),
        c1_apdu=len(c1.encode()),
        c2_apdu=len(c2.apdu.encode()),
        ack_apdu=len(ack.encode()),
        frame_overhead=frame_overhead(ip_version),
    )


@dataclass(frozen=True, slots=True)
class SchemeTraffic:
    """What one scheme costs over a period (a day for :func:`model`), for the whole population.

    Upstream = meter to head-ends; downstream = acknowledgements to the meters."""

    upstream_messages: float
    upstream_bytes: float
    downstream_messages: float
    downstream_bytes: float
    gcm_calls: float
    aes_blocks: float
    key_wraps: float
    kdf_calls: float

    def per_second(self, seconds: float = SECONDS_PER_DAY) -> dict[str, float]:
        return {name: value / seconds for name, value in asdict(self).items()}


def _traffic(
    params: StudyParams, sizes: MessageSizes, readings: float, draws: float
) -> tuple[SchemeTraffic, SchemeTraffic]:
    """Classic and shared traffic for ``readings`` and ``draws`` per meter, times N meters."""
    n, k = params.meters, params.head_ends
    reading_blocks = aes_blocks_for_gcm(sizes.reading_plaintext)
    classic = SchemeTraffic(
        upstream_messages=n * readings * k,
        upstream_bytes=n * readings * k * sizes.classic,
        downstream_messages=0,
        downstream_bytes=0,
        gcm_calls=n * readings * k,
        aes_blocks=n * readings * k * reading_blocks,
        key_wraps=0,
        kdf_calls=0,
    )
    c2s = draws * k
    acks = c2s + (readings * k if params.ack_payloads else 0)
    shared = SchemeTraffic(
        upstream_messages=n * (readings + c2s),
        upstream_bytes=n * (readings * sizes.c1 + c2s * sizes.c2),
        downstream_messages=n * acks,
        downstream_bytes=n * acks * sizes.ack,
        gcm_calls=n * (readings + c2s + acks),
        aes_blocks=n
        * (
            readings * reading_blocks
            + c2s * (aes_blocks_for_gcm(sizes.c2_plaintext) + KEY_WRAP_BLOCKS)
            + acks * GMAC_BLOCKS
        ),
        key_wraps=n * c2s,
        kdf_calls=n * c2s,
    )
    return classic, shared


@dataclass(frozen=True, slots=True)
class ItronReference:
    """DESIGN.md §1's figure read as R·k messages per meter a day, and the shared scheme's."""

    meters: int
    upstream_per_s: float
    messages_per_meter_per_day: float
    implied_head_ends: float
    readings_per_day: int
    shared_upstream_per_s: float
    shared_downstream_per_s: float
    implied_readings_per_day: dict[int, float]


def itron_reference(readings_per_day: int, readings_per_key: int) -> ItronReference:
    """The k that 24,000 msg/s for 10 M meters implies at ``readings_per_day`` (classic: R·k
    messages per meter a day), the R it implies for k = 1..6, and the shared scheme's msg/s
    for the same meters, R and k (and the C2 acknowledgements it adds downstream, where
    DESIGN.md §1 quotes about 200 messages a second)."""
    per_meter = ITRON_UPSTREAM_PER_S * SECONDS_PER_DAY / ITRON_METERS
    k = per_meter / readings_per_day
    draws = readings_per_day / readings_per_key
    shared = ITRON_METERS * (readings_per_day + k * draws) / SECONDS_PER_DAY
    return ItronReference(
        ITRON_METERS,
        ITRON_UPSTREAM_PER_S,
        per_meter,
        k,
        readings_per_day,
        shared,
        ITRON_METERS * k * draws / SECONDS_PER_DAY,
        {heads: per_meter / heads for heads in range(1, 7)},
    )


@dataclass(frozen=True, slots=True)
class StudyResult:
    """:func:`model`'s answer: per day for the population, with the sizes it used."""

    params: StudyParams
    sizes: MessageSizes
    readings_per_key: int
    draws_per_meter_per_day: float
    classic: SchemeTraffic
    shared: SchemeTraffic
    itron: ItronReference

    def to_json(self) -> dict[str, Any]:
        sizes = asdict(self.sizes) | {
            "classic": self.sizes.classic,
            "c1": self.sizes.c1,
            "c2": self.sizes.c2,
            "ack": self.sizes.ack,
        }
        return {
            "params": asdict(self.params),
            "sizes_bytes": sizes,
            "readings_per_key": self.readings_per_key,
            "draws_per_meter_per_day": self.draws_per_meter_per_day,
            "per_day": {"classic": asdict(self.classic), "shared": asdict(self.shared)},
            "per_second": {
                "classic": self.classic.per_second(),
                "shared": self.shared.per_second(),
            },
            "itron": asdict(self.itron),
        }


def model(params: StudyParams, sizes: MessageSizes | None = None) -> StudyResult:
    """Steady-state traffic per day of both schemes (module doc)."""
    if sizes is None:
        sizes = measure_message_sizes(params.register_values, params.ip_version)
    per_key = params.readings_per_key
    draws = params.readings_per_day / per_key
    classic, shared = _traffic(params, sizes, params.readings_per_day, draws)
    return StudyResult(
        params,
        sizes,
        per_key,
        draws,
        classic,
        shared,
        itron_reference(params.readings_per_day, per_key),
    )


def predict(
    params: StudyParams, days: int = 1, sizes: MessageSizes | None = None
) -> tuple[SchemeTraffic, SchemeTraffic]:
    """Classic and shared traffic of ``params.meters`` meters over ``days`` days that start
    without a key: the first reading draws one, so the draws are ``ceil(readings / per_key)``."""
    if sizes is None:
        sizes = measure_message_sizes(params.register_values, params.ip_version)
    readings = params.readings_per_day * days
    draws = -(-readings // params.readings_per_key)
    return _traffic(params, sizes, readings, draws)


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """Counts taken from real messages, and the model's prediction for the same period."""

    meters: int
    days: int
    classic: SchemeTraffic
    shared: SchemeTraffic
    predicted_classic: SchemeTraffic
    predicted_shared: SchemeTraffic
    c1_opened: int
    classic_opened: int
    c2_retransmissions: int

    @property
    def matches(self) -> bool:
        return self.classic == self.predicted_classic and self.shared == self.predicted_shared

    def to_json(self) -> dict[str, Any]:
        return {
            "meters": self.meters,
            "days": self.days,
            "measured": {"classic": asdict(self.classic), "shared": asdict(self.shared)},
            "predicted": {
                "classic": asdict(self.predicted_classic),
                "shared": asdict(self.predicted_shared),
            },
            "c1_opened": self.c1_opened,
            "classic_opened": self.classic_opened,
            "c2_retransmissions": self.c2_retransmissions,
            "matches": self.matches,
        }


class _Tally:
    def __init__(self) -> None:
        self.counts = dict.fromkeys(SchemeTraffic.__dataclass_fields__, 0)

    def add(self, **values: int) -> None:
        for name, value in values.items():
            self.counts[name] += value

    def result(self) -> SchemeTraffic:
        return SchemeTraffic(**self.counts)


def simulate(params: StudyParams, *, meters: int, days: int = 1, seed: int = 0) -> SimulationResult:
    """Run ``meters`` real meters and ``params.head_ends`` real head-ends for ``days`` days.

    Every message is sealed, framed, decoded and opened for real; a head-end that fails to
    open a C1, or a classic message that does not decipher to the reading sealed, raises.
    The reading interval must divide a day (so the times are whole seconds)."""
    r, k = params.readings_per_day, params.head_ends
    if SECONDS_PER_DAY % r:
        raise ValueError(f"the simulation needs readings_per_day dividing 86400, got {r}")
    step = SECONDS_PER_DAY // r
    overhead = frame_overhead(params.ip_version)
    rng = random.Random(seed)
    policy = RenewalPolicy(
        max_payloads=None,
        max_age_s=params.renewal_s,
        delivery_window_s=3_600,
        ack_payloads=params.ack_payloads,
    )

    def wire(apdu: bytes) -> int:
        return len(WrapperFrame(_WPORT, _WPORT, apdu).encode()) + overhead - HEADER_LENGTH

    head_end_sts = [b"HE" + i.to_bytes(6, "big") for i in range(1, k + 1)]
    meter_sts = [b"MTR" + i.to_bytes(5, "big") for i in range(meters)]
    shared_keys = {(m, h): rng.randbytes(16) for m in meter_sts for h in head_end_sts}
    classic_keys = {
        (m, h): SymmetricKeys(rng.randbytes(16), rng.randbytes(16))
        for m in meter_sts
        for h in head_end_sts
    }
    openers = {
        h: HeadEndOpener(
            system_title=h,
            credentials=StaticMeterCredentials({m: shared_keys[(m, h)] for m in meter_sts}),
            store=MemoryPayloadKeyStore(),
        )
        for h in head_end_sts
    }
    sealers = [
        PayloadSealer(
            system_title=m,
            head_ends=[HeadEndAssignment(h, shared_key=shared_keys[(m, h)]) for h in head_end_sts],
            counters=MemoryCounterSource(),
            rng=rng.randbytes,
            policy=policy,
        )
        for m in meter_sts
    ]
    classic_ic = dict.fromkeys(classic_keys, 0)
    classic, shared = _Tally(), _Tally()
    c1_opened = classic_opened = retransmissions = 0
    seen_c2: set[bytes] = set()
    for index in range(r * days):
        now = _T0 + index * step
        for m_index, (meter, sealer) in enumerate(zip(meter_sts, sealers, strict=True)):
            reading = reading_notification(params.register_values, now, m_index)
            c1 = sealer.seal_c1(reading, now)
            for head_end, c2 in sealer.control_messages(now):
                raw = c2.encode()
                if raw in seen_c2:
                    retransmissions += 1
                seen_c2.add(raw)
                wraps = 1 if isinstance(c2.key_info, WrappedKey) else 0
                plain = len(c2.ciphered_text) - TAG_LENGTH
                shared.add(
                    upstream_messages=1,
                    upstream_bytes=wire(raw),
                    gcm_calls=1,
                    aes_blocks=aes_blocks_for_gcm(plain) + KEY_WRAP_BLOCKS * wraps,
                    key_wraps=wraps,
                    kdf_calls=1,
                )
                accepted = openers[head_end].accept_c2(raw, now)
                if accepted.ack is not None:
                    _deliver_ack(sealer, accepted.ack.encode(), shared, wire)
            raw_c1 = c1.encode()
            shared.add(
                upstream_messages=1,
                upstream_bytes=wire(raw_c1),
                gcm_calls=1,
                aes_blocks=aes_blocks_for_gcm(len(c1.ciphered_text) - TAG_LENGTH),
            )
            for head_end in head_end_sts:
                opened = openers[head_end].open_c1(raw_c1, now)
                if opened.notification != reading:
                    raise AssertionError("a C1 opened to another reading")
                c1_opened += 1
                if opened.ack is not None:
                    _deliver_ack(sealer, opened.ack.encode(), shared, wire)
                slot = (meter, head_end)
                classic_ic[slot] += 1
                raw = cipher_apdu(
                    reading,
                    kind="general-glo",
                    security_control=SECURITY_CONTROL,
                    keys=classic_keys[slot],
                    system_title=meter,
                    invocation_counter=classic_ic[slot],
                ).encode()
                classic.add(
                    upstream_messages=1,
                    upstream_bytes=wire(raw),
                    gcm_calls=1,
                    aes_blocks=aes_blocks_for_gcm(len(reading)),
                )
                received = decode_apdu(raw)
                if not isinstance(received, GeneralGloCiphering):
                    raise AssertionError("a classic message decoded to another APDU")
                if decipher_apdu(received, keys=classic_keys[slot]).plain != reading:
                    raise AssertionError("a classic message deciphered to another reading")
                classic_opened += 1
    counted = StudyParams(
        meters,
        k,
        r,
        params.kp_renewal_h,
        params.register_values,
        params.ip_version,
        params.ack_payloads,
    )
    predicted_classic, predicted_shared = predict(counted, days)
    return SimulationResult(
        meters,
        days,
        classic.result(),
        shared.result(),
        predicted_classic,
        predicted_shared,
        c1_opened,
        classic_opened,
        retransmissions,
    )


def _deliver_ack(
    sealer: PayloadSealer, raw: bytes, tally: _Tally, wire: Callable[[bytes], int]
) -> None:
    received = decode_apdu(raw)
    if not isinstance(received, GeneralCiphering):
        raise AssertionError("an acknowledgement decoded to another APDU")
    sealer.accept_ack(received)
    tally.add(
        downstream_messages=1, downstream_bytes=wire(raw), gcm_calls=1, aes_blocks=GMAC_BLOCKS
    )
