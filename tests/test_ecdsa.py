"""Raw r ‖ s ECDSA (cosemcast.security.ecdsa; brief §5.5): published vectors, cross-checks
against cryptography's DER path, and rejection of every malformed or altered signature."""

from __future__ import annotations

import pytest
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from cosemcast.errors import AuthenticationFailed
from cosemcast.security.ecdsa import curve_order, sign_raw, signature_length, verify_raw

# RFC 6979 §A.2.5 (P-256, SHA-256, message "sample"): key, public point and signature.
P256_D = 0xC9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721
P256_UX = 0x60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6
P256_UY = 0x7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299
P256_SIG = bytes.fromhex(
    "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716"
    "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8"
)
# RFC 6979 §A.2.6 (P-384, SHA-384, message "sample").
P384_D = int(
    "6B9D3DAD2E1B8C1C05B19875B6659F4DE23C3B667BF297BA9AA47740787137D896D5724E4C70A825F872C9EA60D2EDF5",
    16,
)
P384_UX = int(
    "EC3A4E415B4E19A4568618029F427FA5DA9A8BC4AE92E02E06AAE5286B300C64DEF8F0EA9055866064A254515480BC13",
    16,
)
P384_UY = int(
    "8015D9B72D7D57244EA8EF9AC0C621896708A59367F9DFB9F54CA84B3F1C9DB1288B231C3AE0D4FE7344FD2533264720",
    16,
)
P384_SIG = bytes.fromhex(
    "94EDBB92A5ECB8AAD4736E56C691916B3F88140666CE9FA73D64C4EA95AD133C81A648152E44ACF96E36DD1E80FABE46"
    "99EF4AEB15F178CEA1FE40DB2603138F130E740A19624526203B6351D0A3A94FA329C145786E679E7B82C71A38628AC8"
)

RFC6979 = [
    (ec.SECP256R1(), P256_D, P256_UX, P256_UY, P256_SIG),
    (ec.SECP384R1(), P384_D, P384_UX, P384_UY, P384_SIG),
]
CURVES = [ec.SECP256R1(), ec.SECP384R1()]


def _deterministic_supported() -> bool:
    try:
        ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
    except UnsupportedAlgorithm:
        return False
    return True


@pytest.mark.parametrize(("curve", "d", "ux", "uy", "signature"), RFC6979)
def test_rfc6979_signature_verifies(
    curve: ec.EllipticCurve, d: int, ux: int, uy: int, signature: bytes
) -> None:
    public = ec.EllipticCurvePublicNumbers(ux, uy, curve).public_key()
    assert ec.derive_private_key(d, curve).public_key().public_numbers() == public.public_numbers()
    verify_raw(public, b"sample", signature)
    with pytest.raises(AuthenticationFailed):
        verify_raw(public, b"samplE", signature)


@pytest.mark.parametrize(("curve", "d", "ux", "uy", "signature"), RFC6979)
def test_rfc6979_deterministic_signature_is_reproduced(
    curve: ec.EllipticCurve, d: int, ux: int, uy: int, signature: bytes
) -> None:
    if not _deterministic_supported():
        pytest.skip("the OpenSSL backend has no RFC 6979 signing")
    assert sign_raw(ec.derive_private_key(d, curve), b"sample", deterministic=True) == signature


@pytest.mark.parametrize(("curve", "length"), [(ec.SECP256R1(), 64), (ec.SECP384R1(), 96)])
def test_lengths_and_cross_check_with_der(curve: ec.EllipticCurve, length: int) -> None:
    # brief §5.5: r ‖ s, each left-padded to ⌈log2 n / 8⌉ bytes; SHA-256 / SHA-384 by curve.
    assert signature_length(curve) == length
    key = ec.generate_private_key(curve)
    hash_algorithm = hashes.SHA256() if length == 64 else hashes.SHA384()
    for message in (b"", b"dlms", bytes(1000)):
        raw = sign_raw(key, message)
        assert len(raw) == length
        r = int.from_bytes(raw[: length // 2], "big")
        s = int.from_bytes(raw[length // 2 :], "big")
        key.public_key().verify(encode_dss_signature(r, s), message, ec.ECDSA(hash_algorithm))
        r2, s2 = decode_dss_signature(key.sign(message, ec.ECDSA(hash_algorithm)))
        half = length // 2
        verify_raw(key.public_key(), message, r2.to_bytes(half, "big") + s2.to_bytes(half, "big"))


def test_short_r_is_left_padded() -> None:
    key = ec.derive_private_key(P256_D, ec.SECP256R1())
    n = curve_order(ec.SECP256R1())
    for i in range(5000):
        message = i.to_bytes(4, "big")
        der = key.sign(message, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        if r < 1 << 248:
            raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
            assert raw[0] == 0 and 0 < r < n
            verify_raw(key.public_key(), message, raw)
            return
    pytest.fail("no signature with a short r in 5000 tries")


@pytest.mark.parametrize("curve", CURVES)
def test_every_bit_flip_is_rejected(curve: ec.EllipticCurve) -> None:
    key = ec.generate_private_key(curve)
    raw = sign_raw(key, b"reply_to_HLS_authentication")
    for i in range(len(raw)):
        for bit in range(8):
            bad = raw[:i] + bytes((raw[i] ^ (1 << bit),)) + raw[i + 1 :]
            with pytest.raises(AuthenticationFailed):
                verify_raw(key.public_key(), b"reply_to_HLS_authentication", bad)


@pytest.mark.parametrize("curve", CURVES)
def test_wrong_lengths_and_ranges_are_rejected(curve: ec.EllipticCurve) -> None:
    key = ec.generate_private_key(curve)
    raw = sign_raw(key, b"data")
    half = len(raw) // 2
    n = curve_order(curve)
    bad_signatures = [
        b"",
        raw[:-1],
        raw + b"\x00",
        b"\x00" + raw,
        bytes(len(raw)),
        bytes(half) + raw[half:],
        raw[:half] + bytes(half),
        n.to_bytes(half, "big") + raw[half:],
        raw[:half] + n.to_bytes(half, "big"),
        b"\xff" * len(raw),
    ]
    for bad in bad_signatures:
        with pytest.raises(AuthenticationFailed):
            verify_raw(key.public_key(), b"data", bad)


def test_der_signature_is_not_accepted() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.sign(b"data", ec.ECDSA(hashes.SHA256()))
    with pytest.raises(AuthenticationFailed):
        verify_raw(key.public_key(), b"data", der)


def test_wrong_key_is_rejected() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(AuthenticationFailed):
        verify_raw(other.public_key(), b"data", sign_raw(key, b"data"))


def test_unsupported_curve_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP521R1())
    with pytest.raises(ValueError):
        sign_raw(key, b"data")
    with pytest.raises(ValueError):
        verify_raw(key.public_key(), b"data", bytes(132))


_P256_PUBLIC = ec.EllipticCurvePublicNumbers(P256_UX, P256_UY, ec.SECP256R1()).public_key()


@settings(max_examples=200, deadline=None)
@given(signature=st.binary(max_size=70), data=st.binary(max_size=20))
def test_arbitrary_signatures_raise_only_authentication_failed(
    signature: bytes, data: bytes
) -> None:
    with pytest.raises(AuthenticationFailed):
        verify_raw(_P256_PUBLIC, data, signature)
