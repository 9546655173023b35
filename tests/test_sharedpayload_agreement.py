"""The public-key K1 of claim 2 (specs/shared-payload.md §4.3): the One-Pass Unified Model C2
(key-parameters 82) round trip, unauthenticated agreement (81) refused by default and as a
downgrade, and the keys each side needs."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from cosemcast.apdu.common import LongInvokeIdAndPriority
from cosemcast.apdu.general import GeneralCiphering
from cosemcast.apdu.notifications import DataNotification
from cosemcast.axdr import DoubleLongUnsigned
from cosemcast.errors import AuthenticationFailed, KeyUnavailableError
from cosemcast.sharedpayload import (
    HeadEndAssignment,
    HeadEndOpener,
    MemoryCounterSource,
    MemoryPayloadKeyStore,
    MeterNotAssigned,
    PayloadSealer,
    StaticMeterCredentials,
    UnauthenticatedOrigin,
)

METER = bytes.fromhex("4D4D4D0000BC614E")
WATER = bytes.fromhex("4D4D4D0000000003")
NOW = 1_700_000_000.0
WATER_KEY = ec.derive_private_key(0x5EED, ec.SECP256R1())
METER_AGREEMENT = ec.derive_private_key(0xBEEF, ec.SECP256R1())


def drbg(seed: bytes) -> Callable[[int], bytes]:
    state = [0]

    def rng(n: int) -> bytes:
        state[0] += 1
        return hashlib.sha256(seed + state[0].to_bytes(8, "big")).digest()[:n]

    return rng


def readings(value: int) -> bytes:
    return DataNotification(LongInvokeIdAndPriority(1), None, DoubleLongUnsigned(value)).encode()


def water_opener() -> HeadEndOpener:
    return HeadEndOpener(
        system_title=WATER,
        credentials=StaticMeterCredentials(
            agreement_public_keys={METER: METER_AGREEMENT.public_key()}
        ),
        store=MemoryPayloadKeyStore(),
        agreement_private_key=WATER_KEY,
    )


def _water_world(
    *, authenticated: bool
) -> tuple[PayloadSealer, GeneralCiphering, GeneralCiphering]:
    sealer = PayloadSealer(
        system_title=METER,
        head_ends=[HeadEndAssignment(WATER, agreement_public_key=WATER_KEY.public_key())],
        counters=MemoryCounterSource(),
        rng=drbg(b"water"),
        agreement_private_key=METER_AGREEMENT if authenticated else None,
    )
    c1 = sealer.seal_c1(readings(77), NOW)
    [(_, c2)] = sealer.control_messages(NOW)
    return sealer, c1, c2


def test_one_pass_unified_model_round_trip() -> None:
    sealer, c1, c2 = _water_world(authenticated=True)
    assert c2.key_info is not None and c2.key_info.key_parameters == b"\x82"  # type: ignore[union-attr]
    water = water_opener()
    accepted = water.accept_c2(c2, NOW)
    assert accepted.ack is not None
    sealer.accept_ack(accepted.ack)
    assert water.open_c1(c1, NOW).notification == readings(77)


def test_unauthenticated_agreement_is_refused_by_default() -> None:
    _, c1, c2 = _water_world(authenticated=False)
    assert c2.key_info.key_parameters == b"\x81"  # type: ignore[union-attr]
    with pytest.raises(UnauthenticatedOrigin):
        water_opener().accept_c2(c2, NOW)  # downgrade: the meter's static key is known
    anonymous = HeadEndOpener(
        system_title=WATER,
        credentials=StaticMeterCredentials(),
        store=MemoryPayloadKeyStore(),
        agreement_private_key=WATER_KEY,
    )
    with pytest.raises(MeterNotAssigned):
        anonymous.accept_c2(c2, NOW)
    permissive = HeadEndOpener(
        system_title=WATER,
        credentials=StaticMeterCredentials(),
        store=MemoryPayloadKeyStore(),
        agreement_private_key=WATER_KEY,
        allow_unauthenticated_agreement=True,
    )
    permissive.accept_c2(c2, NOW)
    assert permissive.open_c1(c1, NOW).notification == readings(77)


def test_unified_model_needs_both_keys() -> None:
    _, _, c2 = _water_world(authenticated=True)
    only_ks = HeadEndOpener(
        system_title=WATER,
        credentials=StaticMeterCredentials({METER: bytes(16)}),
        store=MemoryPayloadKeyStore(),
        agreement_private_key=WATER_KEY,
    )
    with pytest.raises(KeyUnavailableError):
        only_ks.accept_c2(c2, NOW)
    no_private = HeadEndOpener(
        system_title=WATER,
        credentials=StaticMeterCredentials(
            agreement_public_keys={METER: METER_AGREEMENT.public_key()}
        ),
        store=MemoryPayloadKeyStore(),
    )
    with pytest.raises(KeyUnavailableError):
        no_private.accept_c2(c2, NOW)
    wrong_meter_key = HeadEndOpener(
        system_title=WATER,
        credentials=StaticMeterCredentials(agreement_public_keys={METER: WATER_KEY.public_key()}),
        store=MemoryPayloadKeyStore(),
        agreement_private_key=WATER_KEY,
    )
    with pytest.raises(AuthenticationFailed):
        wrong_meter_key.accept_c2(c2, NOW)


def test_unauthenticated_agreement_is_a_downgrade_for_a_known_meter() -> None:
    """Even where anonymous meters are allowed, a meter whose static key is known must use 82."""
    _, _, c2 = _water_world(authenticated=False)
    permissive_but_knowing = HeadEndOpener(
        system_title=WATER,
        credentials=StaticMeterCredentials(
            agreement_public_keys={METER: METER_AGREEMENT.public_key()}
        ),
        store=MemoryPayloadKeyStore(),
        agreement_private_key=WATER_KEY,
        allow_unauthenticated_agreement=True,
    )
    with pytest.raises(UnauthenticatedOrigin, match="known static key"):
        permissive_but_knowing.accept_c2(c2, NOW)
