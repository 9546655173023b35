"""ECDSA with the raw r ‖ s signature encoding of DLMS suites 1 and 2 (brief §5.5).

DLMS signatures (HLS mechanism 7, general-signing, key_agreement) are not DER: they are
``r ‖ s``, each integer left-padded to the byte length of the group order, so 64 bytes on P-256
and 96 on P-384 (brief §5.5). The hash follows the curve: SHA-256 with P-256 (suite 1),
SHA-384 with P-384 (suite 2). Certificates keep their own DER signatures; this module does not
touch them.

``cryptography`` signs and verifies in DER; we convert at this boundary. A signature of the
wrong length, with r or s out of the range 1..n-1, or that does not verify, raises
:class:`AuthenticationFailed`. ``deterministic=True`` signs with RFC 6979 nonces, which does
not depend on the quality of the random source; verifiers cannot tell the difference.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from cosemcast.errors import AuthenticationFailed

__all__ = ["curve_order", "sign_raw", "signature_length", "verify_raw"]

# Group orders n (SEC 2 §2.4.2, §2.5.1), needed to range-check r and s.
_ORDERS = {
    "secp256r1": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "secp384r1": int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
        "C7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973",
        16,
    ),
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
}


def _curve_name(curve: ec.EllipticCurve) -> str:
    if curve.name not in _ORDERS:
        raise ValueError(f"DLMS signs on P-256 or P-384 only, not {curve.name}")
    return curve.name


def curve_order(curve: ec.EllipticCurve) -> int:
    """The group order n of P-256 or P-384."""
    return _ORDERS[_curve_name(curve)]


def signature_length(curve: ec.EllipticCurve) -> int:
    """Bytes of an r ‖ s signature: 64 on P-256, 96 on P-384 (brief §5.5)."""
    return 2 * ((curve_order(curve).bit_length() + 7) // 8)


def _algorithm(curve: ec.EllipticCurve, *, deterministic: bool = False) -> ec.ECDSA:
    hash_algorithm = _HASHES[_curve_name(curve)]()
    if deterministic:
        return ec.ECDSA(hash_algorithm, deterministic_signing=True)
    return ec.ECDSA(hash_algorithm)


def sign_raw(
    private_key: ec.EllipticCurvePrivateKey, data: bytes, *, deterministic: bool = False
) -> bytes:
    """Sign ``data`` (hashed with the curve's hash) and return r ‖ s, fixed width."""
    der = private_key.sign(bytes(data), _algorithm(private_key.curve, deterministic=deterministic))
    r, s = decode_dss_signature(der)
    half = signature_length(private_key.curve) // 2
    return r.to_bytes(half, "big") + s.to_bytes(half, "big")


def verify_raw(public_key: ec.EllipticCurvePublicKey, data: bytes, signature: bytes) -> None:
    """Check an r ‖ s signature over ``data``; raises :class:`AuthenticationFailed`."""
    length = signature_length(public_key.curve)
    if len(signature) != length:
        raise AuthenticationFailed(
            f"a {public_key.curve.name} signature is {length} bytes, got {len(signature)}"
        )
    half = length // 2
    r = int.from_bytes(signature[:half], "big")
    s = int.from_bytes(signature[half:], "big")
    n = curve_order(public_key.curve)
    if not (0 < r < n and 0 < s < n):
        raise AuthenticationFailed("signature r or s is outside 1..n-1")
    try:
        public_key.verify(encode_dss_signature(r, s), bytes(data), _algorithm(public_key.curve))
    except InvalidSignature as exc:
        raise AuthenticationFailed("signature does not verify") from exc
