"""Every single-bit change of a C1, a C2 (both K1 variants) and an acknowledgement is rejected,
and the rejection leaves the receiver's state untouched (specs/shared-payload.md §4.4, §10)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from cosemcast.apdu.common import LongInvokeIdAndPriority
from cosemcast.apdu.notifications import DataNotification
from cosemcast.axdr import DoubleLongUnsigned, OctetString, Structure
from cosemcast.errors import DecodeError, SecurityError
from cosemcast.sharedpayload import (
    HeadEndAssignment,
    HeadEndOpener,
    MemoryCounterSource,
    MemoryPayloadKeyStore,
    PayloadSealer,
    StaticMeterCredentials,
    as_general_ciphering,
)

METER = bytes.fromhex("4D4D4D0000BC614E")
HE_KS = bytes.fromhex("4D4D4D0000000001")
HE_PK = bytes.fromhex("4D4D4D0000000003")
KS = bytes(range(16))
HE_KEY = ec.derive_private_key(0xC0FFEE, ec.SECP256R1())
METER_KEY = ec.derive_private_key(0xFACADE, ec.SECP256R1())
NOW = 1_700_000_000.0


def _rng(n: int) -> bytes:
    return hashlib.sha256(n.to_bytes(4, "big") + b"tamper").digest()[:n]


def _setup() -> tuple[PayloadSealer, bytes, dict[bytes, bytes]]:
    sealer = PayloadSealer(
        system_title=METER,
        head_ends=[
            HeadEndAssignment(HE_KS, shared_key=KS),
            HeadEndAssignment(HE_PK, agreement_public_key=HE_KEY.public_key()),
        ],
        counters=MemoryCounterSource(),
        rng=_rng,
        agreement_private_key=METER_KEY,
    )
    body = Structure((OctetString(bytes.fromhex("0100010800FF")), DoubleLongUnsigned(42)))
    notification = DataNotification(LongInvokeIdAndPriority(1), None, body).encode()
    c1 = sealer.seal_c1(notification, NOW).encode()
    return sealer, c1, {t: c2.encode() for t, c2 in sealer.control_messages(NOW)}


def _openers() -> dict[bytes, HeadEndOpener]:
    return {
        HE_KS: HeadEndOpener(
            system_title=HE_KS,
            credentials=StaticMeterCredentials({METER: KS}),
            store=MemoryPayloadKeyStore(),
        ),
        HE_PK: HeadEndOpener(
            system_title=HE_PK,
            credentials=StaticMeterCredentials(
                agreement_public_keys={METER: METER_KEY.public_key()}
            ),
            store=MemoryPayloadKeyStore(),
            agreement_private_key=HE_KEY,
        ),
    }


def _every_flip_rejected(original: bytes, call: Callable[[bytes], object]) -> int:
    rejected = 0
    for pos in range(len(original)):
        for bit in range(8):
            tampered = bytearray(original)
            tampered[pos] ^= 1 << bit
            with pytest.raises((DecodeError, SecurityError)):
                call(bytes(tampered))
            rejected += 1
    return rejected


def test_every_bit_flip_of_c1_is_rejected() -> None:
    _, c1, controls = _setup()
    opener = _openers()[HE_KS]
    opener.accept_c2(controls[HE_KS], NOW)
    assert _every_flip_rejected(c1, lambda raw: opener.open_c1(raw, NOW)) == 8 * len(c1)
    assert opener.open_c1(c1, NOW).invocation_counter  # the counter never moved


@pytest.mark.parametrize("head_end", [HE_KS, HE_PK], ids=["wrapped-key", "agreed-key"])
def test_every_bit_flip_of_c2_is_rejected(head_end: bytes) -> None:
    _, c1, controls = _setup()
    opener = _openers()[head_end]
    c2 = controls[head_end]
    assert _every_flip_rejected(c2, lambda raw: opener.accept_c2(raw, NOW)) == 8 * len(c2)
    accepted = opener.accept_c2(c2, NOW)  # nothing was stored by the tampered ones
    assert not accepted.retransmission
    assert opener.open_c1(c1, NOW).notification


def test_every_bit_flip_of_an_acknowledgement_is_rejected() -> None:
    sealer, _, controls = _setup()
    ack = _openers()[HE_KS].accept_c2(controls[HE_KS], NOW).ack
    assert ack is not None
    raw = ack.encode()
    assert _every_flip_rejected(
        raw, lambda r: sealer.accept_ack(as_general_ciphering(r))
    ) == 8 * len(raw)
    assert not next(e for e in sealer.controls if e.head_end == HE_KS).acknowledged
    sealer.accept_ack(ack)
    assert next(e for e in sealer.controls if e.head_end == HE_KS).acknowledged
