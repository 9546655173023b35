"""RFC 3394 AES key wrap (cosemcast.security.keywrap): vectors, an independent reference,
bit-flip rejection and the error contract (brief §6.4)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from cosemcast.errors import AuthenticationFailed, DecodeError
from cosemcast.security.keywrap import unwrap_key, wrap_key, wrapped_length

# RFC 3394 §4.1 (128-bit KEK, 128-bit key), as quoted by JD SecurityUtilsTest.java (brief §6.4).
KEK_128 = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
KEY_128 = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
WRAPPED_4_1 = bytes.fromhex("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5")

# RFC 3394 §4.6 (256-bit KEK, 256-bit key), brief §6.4 [CALC].
KEK_256 = bytes(range(32))
KEY_256 = bytes.fromhex("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F")
WRAPPED_4_6 = bytes.fromhex(
    "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21"
)

# brief §10.8 [DERIVED]: the payload key Kp wrapped under the master key 000102…0F.
KP = bytes.fromhex("101112131415161718191A1B1C1D1E1F")
WRAPPED_KP = bytes.fromhex("FB8CBD940CD80857285ED544D551141AD7D56FDC5F9A0170")

VECTORS = [
    (KEK_128, KEY_128, WRAPPED_4_1),
    (KEK_256, KEY_256, WRAPPED_4_6),
    (KEK_128, KP, WRAPPED_KP),
]

_IV = bytes.fromhex("A6A6A6A6A6A6A6A6")


def reference_wrap(kek: bytes, key: bytes) -> bytes:
    """RFC 3394 §2.2.1 written out (index-based form), over AES-ECB."""
    n = len(key) // 8
    a = _IV
    r = [key[8 * i : 8 * i + 8] for i in range(n)]
    encryptor = Cipher(algorithms.AES(kek), modes.ECB()).encryptor()
    for j in range(6):
        for i in range(n):
            b = encryptor.update(a + r[i])
            a = (int.from_bytes(b[:8], "big") ^ (n * j + i + 1)).to_bytes(8, "big")
            r[i] = b[8:]
    return a + b"".join(r)


def reference_unwrap(kek: bytes, wrapped: bytes) -> bytes | None:
    """RFC 3394 §2.2.2 with the §2.2.3 check; None when the check fails."""
    n = len(wrapped) // 8 - 1
    a = wrapped[:8]
    r = [wrapped[8 * (i + 1) : 8 * (i + 2)] for i in range(n)]
    decryptor = Cipher(algorithms.AES(kek), modes.ECB()).decryptor()
    for j in reversed(range(6)):
        for i in reversed(range(n)):
            t = n * j + i + 1
            b = decryptor.update((int.from_bytes(a, "big") ^ t).to_bytes(8, "big") + r[i])
            a, r[i] = b[:8], b[8:]
    return b"".join(r) if a == _IV else None


@pytest.mark.parametrize(("kek", "key", "wrapped"), VECTORS)
def test_vectors_both_directions(kek: bytes, key: bytes, wrapped: bytes) -> None:
    assert wrap_key(kek, key) == wrapped
    assert unwrap_key(kek, wrapped) == key
    assert unwrap_key(kek, wrapped, key_length=len(key)) == key
    assert reference_wrap(kek, key) == wrapped
    assert reference_unwrap(kek, wrapped) == key
    assert len(wrapped) == wrapped_length(len(key))


def test_derived_key_transfer_parameter() -> None:
    # brief §10.3 [DERIVED]: the key_transfer ACTION ends with the 24-byte wrapped GUEK.
    action = bytes.fromhex(
        "C301C1004000002B0000FF020101010202160009181FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"
    )
    assert action.endswith(b"\x09\x18" + wrap_key(KEK_128, KEY_128))


@pytest.mark.parametrize(("kek", "key", "wrapped"), VECTORS)
def test_every_bit_flip_of_the_wrapped_key_is_rejected(
    kek: bytes, key: bytes, wrapped: bytes
) -> None:
    for i in range(len(wrapped)):
        for bit in range(8):
            bad = wrapped[:i] + bytes((wrapped[i] ^ (1 << bit),)) + wrapped[i + 1 :]
            with pytest.raises(AuthenticationFailed):
                unwrap_key(kek, bad)


def test_wrong_kek_is_rejected() -> None:
    for i in range(16):
        kek = KEK_128[:i] + bytes((KEK_128[i] ^ 0x80,)) + KEK_128[i + 1 :]
        with pytest.raises(AuthenticationFailed):
            unwrap_key(kek, WRAPPED_4_1)


@pytest.mark.parametrize("n", [0, 8, 16, 23, 25, 31, 33])
def test_bad_wrapped_length_is_a_decode_error(n: int) -> None:
    with pytest.raises(DecodeError):
        unwrap_key(KEK_128, bytes(n))


def test_expected_key_length_mismatch_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        unwrap_key(KEK_256, WRAPPED_4_6, key_length=16)


@pytest.mark.parametrize("bad_kek", [b"", bytes(15), bytes(17), bytes(33)])
def test_bad_kek_length_is_a_value_error(bad_kek: bytes) -> None:
    with pytest.raises(ValueError):
        wrap_key(bad_kek, KEY_128)
    with pytest.raises(ValueError):
        unwrap_key(bad_kek, WRAPPED_4_1)


@pytest.mark.parametrize("bad_key", [b"", bytes(8), bytes(15), bytes(17)])
def test_bad_key_length_is_a_value_error(bad_key: bytes) -> None:
    with pytest.raises(ValueError):
        wrap_key(KEK_128, bad_key)


@settings(max_examples=200, deadline=None)
@given(
    kek=st.sampled_from([16, 24, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    key=st.integers(2, 8).flatmap(lambda n: st.binary(min_size=8 * n, max_size=8 * n)),
)
def test_round_trip_matches_reference(kek: bytes, key: bytes) -> None:
    wrapped = wrap_key(kek, key)
    assert wrapped == reference_wrap(kek, key)
    assert unwrap_key(kek, wrapped) == key


@settings(max_examples=300, deadline=None)
@given(wrapped=st.binary(max_size=64))
def test_arbitrary_bytes_raise_only_decode_or_authentication_errors(wrapped: bytes) -> None:
    try:
        key = unwrap_key(KEK_128, wrapped)
    except (DecodeError, AuthenticationFailed):
        return
    assert reference_unwrap(KEK_128, wrapped) == key
