"""Suites 1 and 2: ECDH shared secret, the concatenation KDF and the AlgorithmID (brief §5.5).

Key agreement (NIST SP 800-56A; brief §5.5) gives a shared secret ``Z``, the x-coordinate of
the ECDH product (32 bytes on P-256, 48 on P-384). The single-step concatenation KDF turns it
into a key::

    K = Hash(00000001 ‖ Z ‖ OtherInfo), truncated to 16 bytes (suite 1) or 32 (suite 2)
    OtherInfo = AlgorithmID ‖ PartyUInfo ‖ PartyVInfo
    PartyUInfo = originator system title [‖ len(transaction-id) ‖ transaction-id for C(0e,2s)]
    PartyVInfo = recipient system title

AlgorithmID is the encoded object identifier 2.16.756.5.8.3.x (x = :class:`AlgorithmId`). The
sources disagree on its bytes (brief §5.5, §13.1): every code base found uses
``60 85 74 05 08 03 0x``, the DER content octets of that OID; a digest of the Green Book says
its Table 18 prints ``60 85 74 06 08 03 0x``. **Decision** (``specs/security.md`` §3): the
default is ``…74 05…``; ``green_book_06=True`` selects ``…74 06…`` for peers that follow the
printed table.

Public keys travel as X ‖ Y without the ``04`` point-format byte (brief §5.5, key_data of
Security Setup ``key_agreement`` and the agreed-key key-info). Points read from the wire are
checked to lie on the curve; a bad one raises :class:`DecodeError`.

Python cannot wipe ``Z`` from memory (brief §5.5 asks that it be destroyed after the KDF):
callers keep it in a local variable only and let it go as soon as the key is derived.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash

from cosemcast.errors import DecodeError

__all__ = [
    "AlgorithmId",
    "SuiteParameters",
    "algorithm_id_bytes",
    "concat_kdf",
    "derive_agreed_key",
    "ecdh_z",
    "other_info",
    "party_u_info",
    "public_key_from_xy",
    "public_key_to_xy",
    "suite_parameters",
]

HashName = Literal["sha256", "sha384"]


class AlgorithmId(IntEnum):
    """The last arc x of the AlgorithmID OID 2.16.756.5.8.3.x (brief §5.5)."""

    AES_GCM_128 = 0
    AES_GCM_256 = 1
    AES_WRAP_128 = 2
    AES_WRAP_256 = 3


# DER content octets of 2.16.756.5.8.3 (brief §5.5): 2.16 -> 40*2+16 = 0x60; 756 -> 0x85 0x74
# (base-128, high bit on all but the last byte); then 5, 8, 3. The printed-table variant puts
# 0x06 in place of the arc 5 (brief §13.1).
_ALGORITHM_ID_PREFIX = bytes.fromhex("608574050803")
_ALGORITHM_ID_PREFIX_06 = bytes.fromhex("608574060803")


def algorithm_id_bytes(alg: AlgorithmId, *, green_book_06: bool = False) -> bytes:
    """The 7-byte AlgorithmID of the KDF OtherInfo (brief §5.5; decision in specs §3)."""
    prefix = _ALGORITHM_ID_PREFIX_06 if green_book_06 else _ALGORITHM_ID_PREFIX
    return prefix + bytes((AlgorithmId(alg),))


@dataclass(frozen=True, slots=True)
class SuiteParameters:
    """The public-key parameters of a security suite (brief §5.5 table)."""

    suite: int
    curve: ec.EllipticCurve
    hash_name: HashName
    key_length: int
    gcm_algorithm: AlgorithmId
    wrap_algorithm: AlgorithmId

    @property
    def coordinate_length(self) -> int:
        """Bytes per coordinate, per half of an r ‖ s signature, and of ``Z``."""
        return (self.curve.key_size + 7) // 8


_SUITES = {
    1: SuiteParameters(
        1, ec.SECP256R1(), "sha256", 16, AlgorithmId.AES_GCM_128, AlgorithmId.AES_WRAP_128
    ),
    2: SuiteParameters(
        2, ec.SECP384R1(), "sha384", 32, AlgorithmId.AES_GCM_256, AlgorithmId.AES_WRAP_256
    ),
}


def suite_parameters(suite: int) -> SuiteParameters:
    """Suite 1: P-256, SHA-256, 16-byte keys; suite 2: P-384, SHA-384, 32-byte keys (§5.5)."""
    try:
        return _SUITES[suite]
    except KeyError:
        raise ValueError(f"security suite {suite} has no public-key parameters (1 or 2)") from None


_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
}


def concat_kdf(
    z: bytes,
    *,
    hash_name: HashName,
    key_length: int,
    algorithm_id: bytes,
    party_u_info: bytes,
    party_v_info: bytes,
) -> bytes:
    """NIST SP 800-56A single-step concatenation KDF (brief §5.5).

    Returns the first ``key_length`` bytes of Hash(counter ‖ Z ‖ OtherInfo) with the counter
    starting at 00000001; OtherInfo = ``algorithm_id ‖ party_u_info ‖ party_v_info`` without
    SuppPubInfo or SuppPrivInfo.
    """
    try:
        algorithm = _HASHES[hash_name]()
    except KeyError:
        raise ValueError(f"unsupported KDF hash {hash_name!r} (sha256 or sha384)") from None
    if key_length <= 0:
        raise ValueError(f"key length must be positive, got {key_length}")
    info = other_info(algorithm_id, party_u_info, party_v_info)
    return ConcatKDFHash(algorithm, key_length, info).derive(bytes(z))


def other_info(algorithm_id: bytes, party_u_info: bytes, party_v_info: bytes) -> bytes:
    """OtherInfo = AlgorithmID ‖ PartyUInfo ‖ PartyVInfo (brief §5.5)."""
    return bytes(algorithm_id) + bytes(party_u_info) + bytes(party_v_info)


def party_u_info(system_title: bytes, transaction_id: bytes | None = None) -> bytes:
    """PartyUInfo: the originator's system title, then for C(0e,2s) ``len(tid) ‖ tid``.

    In the Static Unified Model the transaction-id acts as Nonce_U (brief §5.5, §10.9).
    """
    if len(system_title) != 8:
        raise ValueError(f"a system title is 8 bytes, got {len(system_title)}")
    if transaction_id is None:
        return bytes(system_title)
    if len(transaction_id) > 0xFF:
        raise ValueError(
            f"a transaction-id of {len(transaction_id)} bytes does not fit a u8 length"
        )
    return bytes(system_title) + bytes((len(transaction_id),)) + bytes(transaction_id)


def ecdh_z(
    private_key: ec.EllipticCurvePrivateKey, peer_public_key: ec.EllipticCurvePublicKey
) -> bytes:
    """The shared secret Z: the x-coordinate of d·Q, fixed width (brief §5.5)."""
    if private_key.curve.name != peer_public_key.curve.name:
        raise ValueError(
            f"ECDH between different curves: {private_key.curve.name} "
            f"and {peer_public_key.curve.name}"
        )
    return private_key.exchange(ec.ECDH(), peer_public_key)


def derive_agreed_key(
    z: bytes,
    *,
    suite: int,
    algorithm: AlgorithmId,
    originator_system_title: bytes,
    recipient_system_title: bytes,
    transaction_id: bytes | None = None,
    green_book_06: bool = False,
) -> bytes:
    """The suite's KDF with OtherInfo built as brief §5.5 says.

    ``transaction_id`` is given for C(0e,2s) only (it joins PartyUInfo). The key length follows
    the suite (16 or 32 bytes).
    """
    params = suite_parameters(suite)
    return concat_kdf(
        z,
        hash_name=params.hash_name,
        key_length=params.key_length,
        algorithm_id=algorithm_id_bytes(algorithm, green_book_06=green_book_06),
        party_u_info=party_u_info(originator_system_title, transaction_id),
        party_v_info=bytes(recipient_system_title),
    )


def public_key_to_xy(key: ec.EllipticCurvePublicKey) -> bytes:
    """X ‖ Y, each coordinate left-padded to the field size, without the ``04`` prefix."""
    point = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return point[1:]


def public_key_from_xy(
    suite_or_curve: int | ec.EllipticCurve, xy: bytes
) -> ec.EllipticCurvePublicKey:
    """Read an X ‖ Y point (brief §5.5); raises :class:`DecodeError` if it is not on the curve."""
    curve = (
        suite_parameters(suite_or_curve).curve
        if isinstance(suite_or_curve, int)
        else suite_or_curve
    )
    size = (curve.key_size + 7) // 8
    if len(xy) != 2 * size:
        raise DecodeError(
            f"a {curve.name} public key X ‖ Y is {2 * size} bytes, got {len(xy)}",
            offset=0,
            expected=f"{2 * size} bytes",
        )
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, b"\x04" + bytes(xy))
    except ValueError as exc:
        raise DecodeError(f"X ‖ Y is not a point on {curve.name}", offset=0) from exc
