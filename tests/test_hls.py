"""HLS f(StoC) / f(CtoS) for mechanisms 2 to 7 (cosemcast.security.hls; brief §7)."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from cosemcast.errors import AuthenticationFailed, KeyUnavailableError, RemoteProtocolError
from cosemcast.security.gcm import SymmetricKeys
from cosemcast.security.hls import (
    HlsContext,
    HlsCredentials,
    HlsMechanism,
    aes_ecb_f,
    f_ctos,
    f_stoc,
    gmac_f,
    make_challenge,
    md5_f,
    sha1_f,
    verify_f_ctos,
    verify_f_stoc,
    verify_gmac_f,
)

# GB Table 43 (brief §7.2: MK tests/test_aes128gcm.c comment, DC test_security.py, DG).
EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
KEYS = SymmetricKeys(EK, AK)
CLIENT_ST = bytes.fromhex("4D4D4D0000000001")
SERVER_ST = bytes.fromhex("4D4D4D0000BC614E")
CTOS = bytes.fromhex("4B35366956616759")  # "K56iVagY"
STOC = bytes.fromhex("503677524A323146")  # "P6wRJ21F"
F_STOC = bytes.fromhex("10000000011A52FE7DD3E72748973C1E28")
F_CTOS = bytes.fromhex("1001234567FE1466AFB3DBCD4F9389E2B7")
GMAC_CONTEXT = HlsContext(HlsMechanism.HIGH_GMAC, CTOS, STOC, CLIENT_ST, SERVER_ST)
GMAC_CREDENTIALS = HlsCredentials(keys=KEYS)


def test_gb_table_43_f_stoc_and_f_ctos() -> None:
    assert gmac_f(KEYS, CLIENT_ST, 1, STOC) == F_STOC
    assert gmac_f(KEYS, SERVER_ST, 0x01234567, CTOS) == F_CTOS
    assert f_stoc(GMAC_CONTEXT, GMAC_CREDENTIALS, invocation_counter=1) == F_STOC
    assert f_ctos(GMAC_CONTEXT, GMAC_CREDENTIALS, invocation_counter=0x01234567) == F_CTOS
    assert verify_f_stoc(GMAC_CONTEXT, GMAC_CREDENTIALS, F_STOC) == 1
    assert verify_f_ctos(GMAC_CONTEXT, GMAC_CREDENTIALS, F_CTOS) == 0x01234567
    assert verify_gmac_f(KEYS, CLIENT_ST, STOC, F_STOC) == 1


def test_derived_reply_to_hls_action_carries_f_stoc() -> None:
    # brief §10.3 [DERIVED]: GB Table 43 as ACTION request (Association LN 0.0.40.0.0.255,
    # method 1, octet-string 17) and response (octet-string 17 in the return parameters).
    request = bytes.fromhex("C301C1000F0000280000FF0101091110000000011A52FE7DD3E72748973C1E28")
    response = bytes.fromhex("C701C100010009111001234567FE1466AFB3DBCD4F9389E2B7")
    assert request == bytes.fromhex("C301C1000F0000280000FF01010911") + f_stoc(
        GMAC_CONTEXT, GMAC_CREDENTIALS, invocation_counter=1
    )
    assert response[-17:] == f_ctos(GMAC_CONTEXT, GMAC_CREDENTIALS, invocation_counter=0x01234567)
    assert verify_f_ctos(GMAC_CONTEXT, GMAC_CREDENTIALS, response[-17:]) == 0x01234567


def test_real_meter_reply_has_the_gmac_shape() -> None:
    # brief §10.3 (DC, a real meter; keys unknown): SC 10, IC 0x1A90, 12-byte tag. Our keys
    # must not verify it, and the failure is an AuthenticationFailed, not a crash.
    reply = bytes.fromhex("1000001A90E6D2221FA2FD85EED61ACC22")
    assert len(reply) == 17 and reply[0] == 0x10
    with pytest.raises(AuthenticationFailed):
        verify_gmac_f(KEYS, CLIENT_ST, STOC, reply)


def test_every_bit_flip_of_a_gmac_response_is_rejected() -> None:
    for i in range(len(F_STOC)):
        for bit in range(8):
            bad = F_STOC[:i] + bytes((F_STOC[i] ^ (1 << bit),)) + F_STOC[i + 1 :]
            with pytest.raises(AuthenticationFailed):
                verify_f_stoc(GMAC_CONTEXT, GMAC_CREDENTIALS, bad)


def test_gmac_response_checks_length_title_and_challenge() -> None:
    for bad in (b"", F_STOC[:-1], F_STOC + b"\x00"):
        with pytest.raises(AuthenticationFailed):
            verify_f_stoc(GMAC_CONTEXT, GMAC_CREDENTIALS, bad)
    with pytest.raises(AuthenticationFailed):  # the server's title instead of the client's
        verify_gmac_f(KEYS, SERVER_ST, STOC, F_STOC)
    with pytest.raises(AuthenticationFailed):  # answers CtoS, not StoC
        verify_gmac_f(KEYS, CLIENT_ST, CTOS, F_STOC)


def test_gmac_suite_nibble_in_security_control() -> None:
    context = HlsContext(HlsMechanism.HIGH_GMAC, CTOS, STOC, CLIENT_ST, SERVER_ST, 1)
    response = f_stoc(context, GMAC_CREDENTIALS, invocation_counter=7)
    assert response[0] == 0x11
    assert verify_f_stoc(context, GMAC_CREDENTIALS, response) == 7
    with pytest.raises(AuthenticationFailed):
        verify_f_stoc(GMAC_CONTEXT, GMAC_CREDENTIALS, response)


# --- mechanism 7 (ECDSA) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("curve", "hash_algorithm"),
    [(ec.SECP256R1(), hashes.SHA256()), (ec.SECP384R1(), hashes.SHA384())],
)
def test_ecdsa_signed_bytes_follow_gb_table_42(
    curve: ec.EllipticCurve, hash_algorithm: hashes.HashAlgorithm
) -> None:
    # brief §7.3: f(StoC) = sign(client, ST_C ‖ ST_S ‖ StoC ‖ CtoS),
    #             f(CtoS) = sign(server, ST_S ‖ ST_C ‖ CtoS ‖ StoC); raw r ‖ s (§5.5).
    client, server = ec.generate_private_key(curve), ec.generate_private_key(curve)
    ctos, stoc = make_challenge(32), make_challenge(48)
    context = HlsContext(HlsMechanism.HIGH_ECDSA, ctos, stoc, CLIENT_ST, SERVER_ST)
    at_client = HlsCredentials(signing_key=client, peer_public_key=server.public_key())
    at_server = HlsCredentials(signing_key=server, peer_public_key=client.public_key())

    response = f_stoc(context, at_client)
    half = len(response) // 2
    der = encode_dss_signature(
        int.from_bytes(response[:half], "big"), int.from_bytes(response[half:], "big")
    )
    client.public_key().verify(der, CLIENT_ST + SERVER_ST + stoc + ctos, ec.ECDSA(hash_algorithm))
    assert verify_f_stoc(context, at_server, response) is None

    reply = f_ctos(context, at_server)
    der = encode_dss_signature(
        int.from_bytes(reply[:half], "big"), int.from_bytes(reply[half:], "big")
    )
    server.public_key().verify(der, SERVER_ST + CLIENT_ST + ctos + stoc, ec.ECDSA(hash_algorithm))
    assert verify_f_ctos(context, at_client, reply) is None

    # A response for the other direction, or from the wrong key, does not verify.
    with pytest.raises(AuthenticationFailed):
        verify_f_ctos(context, at_client, response)
    with pytest.raises(AuthenticationFailed):
        verify_f_stoc(context, at_server, reply)
    swapped = HlsContext(HlsMechanism.HIGH_ECDSA, stoc, ctos, CLIENT_ST, SERVER_ST)
    with pytest.raises(AuthenticationFailed):
        verify_f_stoc(swapped, at_server, response)


def test_ecdsa_needs_keys() -> None:
    context = HlsContext(HlsMechanism.HIGH_ECDSA, CTOS, STOC, CLIENT_ST, SERVER_ST)
    with pytest.raises(KeyUnavailableError):
        f_stoc(context, HlsCredentials())
    with pytest.raises(KeyUnavailableError):
        verify_f_stoc(context, HlsCredentials(), bytes(64))


# --- mechanisms 2, 3, 4, 6 ---------------------------------------------------------------------

SECRET = b"12345678"


def test_mechanism_6_sha256() -> None:
    # brief §7.3: f(StoC) = SHA-256(secret ‖ ST_C ‖ ST_S ‖ StoC ‖ CtoS),
    #             f(CtoS) = SHA-256(secret ‖ ST_S ‖ ST_C ‖ CtoS ‖ StoC).
    context = HlsContext(HlsMechanism.HIGH_SHA256, CTOS, STOC, CLIENT_ST, SERVER_ST)
    credentials = HlsCredentials(secret=SECRET)
    expected_stoc = hashlib.sha256(SECRET + CLIENT_ST + SERVER_ST + STOC + CTOS).digest()
    expected_ctos = hashlib.sha256(SECRET + SERVER_ST + CLIENT_ST + CTOS + STOC).digest()
    assert f_stoc(context, credentials) == expected_stoc
    assert f_ctos(context, credentials) == expected_ctos
    verify_f_stoc(context, credentials, expected_stoc)
    verify_f_ctos(context, credentials, expected_ctos)
    with pytest.raises(AuthenticationFailed):
        verify_f_ctos(context, credentials, expected_stoc)


def test_mechanisms_3_and_4() -> None:
    # brief §7.3: MD5 / SHA-1 of (challenge ‖ secret).
    assert md5_f(SECRET, STOC) == hashlib.md5(STOC + SECRET).digest()
    assert sha1_f(SECRET, CTOS) == hashlib.sha1(CTOS + SECRET).digest()
    for mechanism, fn in (
        (HlsMechanism.HIGH_MD5, hashlib.md5),
        (HlsMechanism.HIGH_SHA1, hashlib.sha1),
    ):
        context = HlsContext(mechanism, CTOS, STOC)
        credentials = HlsCredentials(secret=SECRET)
        assert f_stoc(context, credentials) == fn(STOC + SECRET).digest()
        assert f_ctos(context, credentials) == fn(CTOS + SECRET).digest()
        verify_f_ctos(context, credentials, fn(CTOS + SECRET).digest())
        with pytest.raises(AuthenticationFailed):
            verify_f_ctos(context, HlsCredentials(secret=b"other"), fn(CTOS + SECRET).digest())


def test_mechanism_2_fips_197_known_answer() -> None:
    # With a 16-byte secret and a 16-byte challenge, mechanism 2 is one AES-128 block:
    # FIPS-197 Appendix C.1 (key 000102…0F, plaintext 00112233…FF).
    secret = bytes(range(16))
    challenge = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
    assert aes_ecb_f(secret, challenge) == bytes.fromhex("69C4E0D86A7B0430D8CDB78070B4C55A")


def test_mechanism_2_padding_decision() -> None:
    # Decision (specs/security.md §4): secret zero-padded to 16 bytes; the challenge zero-padded
    # to a multiple of 16 (as Gurux; identical to DC when the length is already a multiple).
    for length in (8, 16, 17, 32, 64):
        challenge = bytes(range(1, length + 1))
        out = aes_ecb_f(SECRET, challenge)
        assert len(out) == -(-length // 16) * 16
        decryptor = Cipher(algorithms.AES(SECRET + bytes(8)), modes.ECB()).decryptor()
        assert decryptor.update(out) + decryptor.finalize() == challenge.ljust(len(out), b"\0")
    with pytest.raises(ValueError):
        aes_ecb_f(bytes(17), STOC)
    context = HlsContext(HlsMechanism.HIGH, CTOS, STOC)
    credentials = HlsCredentials(secret=SECRET)
    verify_f_stoc(context, credentials, f_stoc(context, credentials))
    with pytest.raises(AuthenticationFailed):
        verify_f_stoc(context, credentials, f_ctos(context, credentials))


@pytest.mark.parametrize(
    "mechanism",
    [HlsMechanism.HIGH, HlsMechanism.HIGH_MD5, HlsMechanism.HIGH_SHA1, HlsMechanism.HIGH_SHA256],
)
def test_secret_mechanisms_need_a_secret(mechanism: HlsMechanism) -> None:
    context = HlsContext(mechanism, CTOS, STOC, CLIENT_ST, SERVER_ST)
    with pytest.raises(KeyUnavailableError):
        f_stoc(context, HlsCredentials())


def test_gmac_needs_keys_and_a_counter() -> None:
    with pytest.raises(KeyUnavailableError):
        f_stoc(GMAC_CONTEXT, HlsCredentials(), invocation_counter=1)
    with pytest.raises(ValueError):
        f_stoc(GMAC_CONTEXT, GMAC_CREDENTIALS)


# --- challenges --------------------------------------------------------------------------------


def test_make_challenge_bounds_and_injected_rng() -> None:
    # brief §7.1: 8 to 64 bytes.
    for length in (8, 32, 64):
        assert len(make_challenge(length)) == length
    for length in (0, 7, 65):
        with pytest.raises(ValueError):
            make_challenge(length)
    assert make_challenge(8, rng=lambda n: b"\x01" * n) == b"\x01" * 8
    with pytest.raises(ValueError):
        make_challenge(8, rng=lambda n: b"\x01" * (n - 1))
    assert make_challenge(16) != make_challenge(16)


@pytest.mark.parametrize("length", [0, 7, 65])
def test_peer_challenge_out_of_range_is_refused(length: int) -> None:
    context = HlsContext(HlsMechanism.HIGH_GMAC, CTOS, bytes(length), CLIENT_ST, SERVER_ST)
    with pytest.raises(RemoteProtocolError):
        f_stoc(context, GMAC_CREDENTIALS, invocation_counter=1)


def test_secrets_never_in_repr() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    credentials = HlsCredentials(secret=b"TOPSECRET", keys=KEYS, signing_key=key)
    text = repr(credentials)
    assert "TOPSECRET" not in text and "SymmetricKeys" not in text
    assert EK.hex() not in repr(KEYS).lower()


_SERVER_KEY = ec.generate_private_key(ec.SECP256R1())


@settings(max_examples=200, deadline=None)
@given(
    mechanism=st.sampled_from(list(HlsMechanism)),
    response=st.binary(max_size=100),
)
def test_arbitrary_responses_raise_only_authentication_failed(
    mechanism: HlsMechanism, response: bytes
) -> None:
    context = HlsContext(mechanism, CTOS, STOC, CLIENT_ST, SERVER_ST)
    credentials = HlsCredentials(secret=SECRET, keys=KEYS, peer_public_key=_SERVER_KEY.public_key())
    with pytest.raises(AuthenticationFailed):
        verify_f_stoc(context, credentials, response)
