"""F and the Kt-derived keys (specs/supervision.md §4) against an independent HMAC construction.

The vectors are [DERIVED] (specs §9.2); ``independent_f`` in test_supervision_vectors.py is a
hand-written SP 800-108r1 counter-mode KDF (``hmac`` + ``hashlib``), not ``cryptography``'s
``KBKDFHMAC`` that the library uses.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosemcast.supervision.kdf import (
    KE_LABEL,
    KI_LABEL,
    KS_LABEL,
    derive_enrollment_key,
    derive_ki,
    derive_ks,
    kbkdf_hmac_sha256,
)
from test_supervision_vectors import HEAD_END_ID, I0, KT, METER_ID, independent_f

titles = st.binary(min_size=8, max_size=8)
kts = st.one_of(st.binary(min_size=16, max_size=16), st.binary(min_size=32, max_size=32))


@given(kt=kts, meter=titles, head_end=titles, i0=st.binary(min_size=16, max_size=16))
def test_ks_matches_the_independent_construction(
    kt: bytes, meter: bytes, head_end: bytes, i0: bytes
) -> None:
    expected = independent_f(kt, b"cosemcast Ks", meter + head_end + i0)
    assert derive_ks(kt, meter_id=meter, head_end_id=head_end, i0=i0) == expected


@given(kt=kts, meter=titles, head_end=titles, i0=st.binary(min_size=16, max_size=16))
def test_256_bit_ks_takes_two_blocks(kt: bytes, meter: bytes, head_end: bytes, i0: bytes) -> None:
    expected = independent_f(kt, b"cosemcast Ks", meter + head_end + i0, 32)
    ks = derive_ks(kt, meter_id=meter, head_end_id=head_end, i0=i0, length=32)
    assert ks == expected
    # L is part of the input: the 256-bit key does not start with the 128-bit one.
    assert ks[:16] != derive_ks(kt, meter_id=meter, head_end_id=head_end, i0=i0)


@given(kt=kts, meter=titles)
def test_ki_and_ke_match_the_independent_construction(kt: bytes, meter: bytes) -> None:
    assert derive_ki(kt, meter_id=meter) == independent_f(kt, b"cosemcast Ki", meter)
    assert derive_enrollment_key(kt, meter_id=meter) == independent_f(kt, b"cosemcast Ke", meter)


@given(
    key=st.binary(min_size=1, max_size=64),
    label=st.binary(max_size=20).filter(lambda b: b"\x00" not in b),
    context=st.binary(max_size=40),
)
def test_generic_kdf_matches(key: bytes, label: bytes, context: bytes) -> None:
    assert kbkdf_hmac_sha256(key, label=label, context=context) == independent_f(
        key, label, context
    )


def test_labels_separate_the_keys() -> None:
    assert len({KS_LABEL, KI_LABEL, KE_LABEL}) == 3
    ki = derive_ki(KT, meter_id=METER_ID)
    ke = derive_enrollment_key(KT, meter_id=METER_ID)
    ks = derive_ks(KT, meter_id=METER_ID, head_end_id=HEAD_END_ID, i0=I0)
    assert len({ki, ke, ks}) == 3


def test_every_input_changes_ks() -> None:
    base = derive_ks(KT, meter_id=METER_ID, head_end_id=HEAD_END_ID, i0=I0)
    flip = bytes((0x01,)) + bytes(7)

    def xor(a: bytes, b: bytes) -> bytes:
        return bytes(x ^ y for x, y in zip(a, b.ljust(len(a), b"\x00"), strict=True))

    assert derive_ks(xor(KT, flip), meter_id=METER_ID, head_end_id=HEAD_END_ID, i0=I0) != base
    assert derive_ks(KT, meter_id=xor(METER_ID, flip), head_end_id=HEAD_END_ID, i0=I0) != base
    assert derive_ks(KT, meter_id=METER_ID, head_end_id=xor(HEAD_END_ID, flip), i0=I0) != base
    assert derive_ks(KT, meter_id=METER_ID, head_end_id=HEAD_END_ID, i0=xor(I0, flip)) != base
    # Swapping the two identities gives another key (the context is ordered).
    assert derive_ks(KT, meter_id=HEAD_END_ID, head_end_id=METER_ID, i0=I0) != base


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kt": bytes(15)}, "Kt is 16 or 32 bytes"),
        ({"kt": bytes(24)}, "Kt is 16 or 32 bytes"),
        ({"meter_id": bytes(7)}, "meter ID"),
        ({"head_end_id": bytes(9)}, "head-end ID"),
        ({"i0": bytes(15)}, "I0 is 16 bytes"),
        ({"length": 24}, "16 or 32 bytes"),
    ],
)
def test_bad_inputs_are_refused(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "kt": KT,
        "meter_id": METER_ID,
        "head_end_id": HEAD_END_ID,
        "i0": I0,
    }
    args.update(kwargs)
    kt = args.pop("kt")
    with pytest.raises(ValueError, match=message) as info:
        derive_ks(kt, **args)  # type: ignore[arg-type]
    assert KT.hex() not in str(info.value).lower()


def test_label_with_zero_byte_is_refused() -> None:
    with pytest.raises(ValueError, match="0x00"):
        kbkdf_hmac_sha256(KT, label=b"a\x00b", context=b"")
