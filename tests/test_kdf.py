"""ECDH, the concatenation KDF and the AlgorithmID (cosemcast.security.kdf; brief §5.5, §10.9).

No public DLMS suite-1 KDF vector exists (brief §13.9); §10.9 is [DERIVED]. Every value is
therefore recomputed here by independent code: P-256 point arithmetic written out in Python
(for Q and Z), SP 800-56A's KDF written out over hashlib, and a DER OID encoder written out and
cross-checked against ``cryptography``'s own ASN.1 encoder.
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ObjectIdentifier
from hypothesis import given, settings
from hypothesis import strategies as st

from cosemcast.errors import DecodeError
from cosemcast.security.kdf import (
    AlgorithmId,
    algorithm_id_bytes,
    concat_kdf,
    derive_agreed_key,
    ecdh_z,
    other_info,
    party_u_info,
    public_key_from_xy,
    public_key_to_xy,
    suite_parameters,
)

# --- brief §10.9 [DERIVED] inputs --------------------------------------------------------------
D_EU = int("11" * 32, 16)
D_SV = int("22" * 32, 16)
Q_EU = bytes.fromhex(
    "040217E617F0B6443928278F96999E69A23A4F2C152BDF6D6CDF66E5B80282D4ED194A7DEBCB97712D2DDA3CA8"
    "5AA8765A56F45FC758599652F2897C65306E5794"
)
Q_SV = bytes.fromhex(
    "04D65A93977CAA3D1B081852FF57A79E465F1660577304BAEAD505DD3A48589CF350185E895372DF6221EA3A13"
    "7557E473FDDB6755F05BD507C3C533FCE9C91285"
)
Z = bytes.fromhex("CCFC261F58193C98CA4AD4A53BBAC6F0EE29BC4D48438090446908622CA79AF6")
ORIGINATOR = bytes.fromhex("4D4D4D0000BC614E")
RECIPIENT = bytes.fromhex("4D4D4D0000000001")
TRANSACTION_ID = bytes.fromhex("0000000000000001")

# --- independent P-256 arithmetic (SEC 2 §2.4.2 / FIPS 186-4 D.1.2.3 domain parameters) -------
P = 2**256 - 2**224 + 2**192 + 2**96 - 1
A = P - 3
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
G = (
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
)
Point = tuple[int, int] | None


def _add(p1: Point, p2: Point) -> Point:
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2 and (y1 + y2) % P == 0:
        return None
    if p1 == p2:
        slope = (3 * x1 * x1 + A) * pow(2 * y1, -1, P) % P
    else:
        slope = (y2 - y1) * pow(x2 - x1, -1, P) % P
    x3 = (slope * slope - x1 - x2) % P
    return x3, (slope * (x1 - x3) - y1) % P


def _multiply(k: int, point: Point) -> Point:
    result: Point = None
    while k:
        if k & 1:
            result = _add(result, point)
        point = _add(point, point)
        k >>= 1
    return result


def _encode_point(point: Point) -> bytes:
    assert point is not None
    return b"\x04" + point[0].to_bytes(32, "big") + point[1].to_bytes(32, "big")


def _decode_point(raw: bytes) -> Point:
    x, y = int.from_bytes(raw[1:33], "big"), int.from_bytes(raw[33:], "big")
    assert (y * y - (x * x * x + A * x + B)) % P == 0
    return x, y


def test_brief_public_keys_follow_from_the_private_keys() -> None:
    assert _encode_point(_multiply(D_EU, G)) == Q_EU
    assert _encode_point(_multiply(D_SV, G)) == Q_SV
    for d, q in ((D_EU, Q_EU), (D_SV, Q_SV)):
        key = ec.derive_private_key(d, ec.SECP256R1()).public_key()
        assert b"\x04" + public_key_to_xy(key) == q


def test_ecdh_z_recomputed_independently() -> None:
    independent = _multiply(D_EU, _decode_point(Q_SV))
    assert independent is not None
    assert independent[0].to_bytes(32, "big") == Z
    assert _multiply(D_SV, _decode_point(Q_EU)) == independent
    u = ec.derive_private_key(D_EU, ec.SECP256R1())
    v = ec.derive_private_key(D_SV, ec.SECP256R1())
    assert ecdh_z(u, public_key_from_xy(1, Q_SV[1:])) == Z
    assert ecdh_z(v, public_key_from_xy(ec.SECP256R1(), Q_EU[1:])) == Z


def test_ecdh_between_curves_is_refused() -> None:
    u = ec.derive_private_key(D_EU, ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(ValueError):
        ecdh_z(u, other)


# --- independent SP 800-56A concatenation KDF --------------------------------------------------


def reference_kdf(z: bytes, hash_name: str, key_length: int, info: bytes) -> bytes:
    out = b""
    counter = 1
    while len(out) < key_length:
        out += hashlib.new(hash_name, counter.to_bytes(4, "big") + z + info).digest()
        counter += 1
    return out[:key_length]


def test_derived_kdf_one_pass_dh_alg_05() -> None:
    # brief §10.9 [DERIVED], C(1e,1s), AlgorithmID 60857405080300.
    key = derive_agreed_key(
        Z,
        suite=1,
        algorithm=AlgorithmId.AES_GCM_128,
        originator_system_title=ORIGINATOR,
        recipient_system_title=RECIPIENT,
    )
    assert key == bytes.fromhex("1F376A2F4461E239B3B129951BD4C40A")
    info = bytes.fromhex("60857405080300") + ORIGINATOR + RECIPIENT
    assert key == reference_kdf(Z, "sha256", 16, info)


def test_derived_kdf_one_pass_dh_alg_06() -> None:
    # brief §10.9 [DERIVED], C(1e,1s), AlgorithmID 60857406080300 (the printed GB table).
    key = derive_agreed_key(
        Z,
        suite=1,
        algorithm=AlgorithmId.AES_GCM_128,
        originator_system_title=ORIGINATOR,
        recipient_system_title=RECIPIENT,
        green_book_06=True,
    )
    assert key == bytes.fromhex("1F8450D384131E8C917D8A30828DBE6C")
    info = bytes.fromhex("60857406080300") + ORIGINATOR + RECIPIENT
    assert key == reference_kdf(Z, "sha256", 16, info)


def test_derived_kdf_static_unified_model_layout() -> None:
    # brief §10.9 [DERIVED], C(0e,2s): PartyUInfo = ST ‖ len(tid) ‖ tid.
    expected_info = bytes.fromhex(
        "608574050803004D4D4D0000BC614E0800000000000000014D4D4D0000000001"
    )
    info = other_info(
        algorithm_id_bytes(AlgorithmId.AES_GCM_128),
        party_u_info(ORIGINATOR, TRANSACTION_ID),
        RECIPIENT,
    )
    assert info == expected_info
    key = derive_agreed_key(
        Z,
        suite=1,
        algorithm=AlgorithmId.AES_GCM_128,
        originator_system_title=ORIGINATOR,
        recipient_system_title=RECIPIENT,
        transaction_id=TRANSACTION_ID,
    )
    assert key == bytes.fromhex("97B0FE1EE33118B3C7D92712D63A69DE")
    assert key == reference_kdf(Z, "sha256", 16, expected_info)


@settings(max_examples=100, deadline=None)
@given(
    z=st.binary(min_size=1, max_size=64),
    hash_name=st.sampled_from(["sha256", "sha384"]),
    key_length=st.integers(1, 100),
    alg=st.sampled_from(list(AlgorithmId)),
    green_book_06=st.booleans(),
    u=st.binary(max_size=30),
    v=st.binary(max_size=30),
)
def test_concat_kdf_matches_reference(
    z: bytes,
    hash_name: str,
    key_length: int,
    alg: AlgorithmId,
    green_book_06: bool,
    u: bytes,
    v: bytes,
) -> None:
    algorithm_id = algorithm_id_bytes(alg, green_book_06=green_book_06)
    key = concat_kdf(
        z,
        hash_name=hash_name,  # type: ignore[arg-type]
        key_length=key_length,
        algorithm_id=algorithm_id,
        party_u_info=u,
        party_v_info=v,
    )
    assert key == reference_kdf(z, hash_name, key_length, algorithm_id + u + v)


def test_suite_2_end_to_end_agreement() -> None:
    u = ec.generate_private_key(ec.SECP384R1())
    v = ec.generate_private_key(ec.SECP384R1())
    z_u = ecdh_z(u, public_key_from_xy(2, public_key_to_xy(v.public_key())))
    z_v = ecdh_z(v, public_key_from_xy(2, public_key_to_xy(u.public_key())))
    assert z_u == z_v and len(z_u) == 48
    key = derive_agreed_key(
        z_u,
        suite=2,
        algorithm=AlgorithmId.AES_GCM_256,
        originator_system_title=ORIGINATOR,
        recipient_system_title=RECIPIENT,
    )
    info = bytes.fromhex("60857405080301") + ORIGINATOR + RECIPIENT
    assert key == reference_kdf(z_v, "sha384", 32, info)


def test_suite_parameters() -> None:
    one, two = suite_parameters(1), suite_parameters(2)
    assert (one.curve.name, one.hash_name, one.key_length, one.coordinate_length) == (
        "secp256r1",
        "sha256",
        16,
        32,
    )
    assert (two.curve.name, two.hash_name, two.key_length, two.coordinate_length) == (
        "secp384r1",
        "sha384",
        32,
        48,
    )
    assert one.gcm_algorithm is AlgorithmId.AES_GCM_128
    assert two.wrap_algorithm is AlgorithmId.AES_WRAP_256
    for bad in (0, 3, -1):
        with pytest.raises(ValueError):
            suite_parameters(bad)


# --- the AlgorithmID: an independent DER encoder, cross-checked with cryptography's ------------


def der_oid_content(dotted: str) -> bytes:
    """X.690 §8.19: first two arcs as 40*a+b, then each arc base-128, high bit = more."""
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


def cryptography_oid_content(dotted: str) -> bytes:
    """The same content octets as encoded by cryptography's ASN.1 writer (inside a Name)."""
    der = x509.Name([x509.NameAttribute(ObjectIdentifier(dotted), "x")]).public_bytes()
    start = der.index(b"\x06") + 2
    return der[start : start + der[start - 1]]


def test_oid_encoder_against_known_encodings() -> None:
    # X.690 §8.19.5 example arc 2.100.3 -> 81 34 03; and the id-ecPublicKey OID 1.2.840.10045.2.1.
    assert der_oid_content("2.100.3") == bytes.fromhex("813403")
    assert der_oid_content("1.2.840.10045.2.1") == bytes.fromhex("2A8648CE3D0201")
    assert cryptography_oid_content("1.2.840.10045.2.1") == bytes.fromhex("2A8648CE3D0201")


@pytest.mark.parametrize("alg", list(AlgorithmId))
def test_default_algorithm_id_is_the_der_of_the_oid(alg: AlgorithmId) -> None:
    # brief §5.5: AlgorithmID = encoded OID 2.16.756.5.8.3.x; decision in specs/security.md §3.
    oid = f"2.16.756.5.8.3.{int(alg)}"
    assert algorithm_id_bytes(alg) == der_oid_content(oid)
    assert algorithm_id_bytes(alg) == cryptography_oid_content(oid)
    assert algorithm_id_bytes(alg) == bytes.fromhex("60857405080300")[:-1] + bytes((alg,))


@pytest.mark.parametrize("alg", list(AlgorithmId))
def test_green_book_06_variant_is_the_printed_table(alg: AlgorithmId) -> None:
    # brief §5.5 / §13.1: the GB table reportedly prints 60 85 74 06 08 03 0x, which is the
    # DER of 2.16.756.6.8.3.x, not of the DLMS UA arc 2.16.756.5.8.
    variant = algorithm_id_bytes(alg, green_book_06=True)
    assert variant == bytes.fromhex("608574060803") + bytes((alg,))
    assert variant == der_oid_content(f"2.16.756.6.8.3.{int(alg)}")
    assert variant != algorithm_id_bytes(alg)


def test_dlms_ua_arc_in_real_traffic_uses_05() -> None:
    # The application-context-name 2.16.756.5.8.1.1 of every AARQ in brief §7.2/§10.2 (DC) is
    # sent as 60 85 74 05 08 01 01: the same DLMS UA arc, encoded with 05.
    aarq = bytes.fromhex("6036A1090607608574050801018A0207808B0760857405080205")
    assert der_oid_content("2.16.756.5.8.1.1") in aarq
    assert der_oid_content("2.16.756.5.8.2.5") in aarq  # mechanism-name, HLS-GMAC


# --- point encoding ----------------------------------------------------------------------------


@pytest.mark.parametrize("suite", [1, 2])
def test_point_round_trip(suite: int) -> None:
    params = suite_parameters(suite)
    key = ec.generate_private_key(params.curve).public_key()
    xy = public_key_to_xy(key)
    assert len(xy) == 2 * params.coordinate_length
    assert public_key_to_xy(public_key_from_xy(suite, xy)) == xy


def test_point_not_on_curve_is_a_decode_error() -> None:
    xy = bytearray(Q_EU[1:])
    xy[-1] ^= 1
    with pytest.raises(DecodeError):
        public_key_from_xy(1, bytes(xy))


@pytest.mark.parametrize("n", [0, 1, 63, 65, 96])
def test_point_of_wrong_length_is_a_decode_error(n: int) -> None:
    with pytest.raises(DecodeError):
        public_key_from_xy(1, bytes(n))


@settings(max_examples=200, deadline=None)
@given(suite=st.sampled_from([1, 2]), raw=st.binary(max_size=100))
def test_arbitrary_point_bytes_raise_only_decode_error(suite: int, raw: bytes) -> None:
    try:
        key = public_key_from_xy(suite, raw)
    except DecodeError:
        return
    assert public_key_to_xy(key) == raw


def test_party_u_info_checks() -> None:
    with pytest.raises(ValueError):
        party_u_info(b"short")
    with pytest.raises(ValueError):
        party_u_info(ORIGINATOR, bytes(256))
    assert party_u_info(ORIGINATOR, b"") == ORIGINATOR + b"\x00"
