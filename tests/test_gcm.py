"""AES-GCM with 12-byte tags (cosemcast.security.gcm): published vectors, a cross-check against
the plain ``Cipher(AES, GCM)`` path, and bit-flip rejection (specs/security.md §1, §2)."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from cosemcast.errors import AuthenticationFailed, DecodeError
from cosemcast.security.gcm import SecurityControl, SymmetricKeys, gmac, protect, unprotect

# Green Book Table 40 inputs (brief §5.3; DC tests/test_security.py, DG).
EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
SERVER_ST = bytes.fromhex("4D4D4D0000BC614E")
CLIENT_ST = bytes.fromhex("4D4D4D0000000001")
IC = 0x01234567
GET_CLOCK_TIME = bytes.fromhex("C0010000080000010000FF0200")
KEYS = SymmetricKeys(EK, AK)


def _ic(value: int) -> bytes:
    return value.to_bytes(4, "big")


def _glo_get(sc: int, body: bytes) -> bytes:
    content = bytes((sc,)) + _ic(IC) + body
    return bytes((0xC8, len(content))) + content


# --- published vectors ------------------------------------------------------------------------


def test_gb_table_40_authenticated_and_encrypted() -> None:
    # brief §5.3 row SC 30: DC tests/test_security.py, DG; full APDU from DG.
    out = protect(0x30, KEYS, SERVER_ST, IC, GET_CLOCK_TIME)
    assert out == bytes.fromhex("411312FF935A47566827C467BC7D825C3BE4A77C3FCC056B6B")
    assert _glo_get(0x30, out) == bytes.fromhex(
        "C81E3001234567411312FF935A47566827C467BC7D825C3BE4A77C3FCC056B6B"
    )
    assert unprotect(0x30, KEYS, SERVER_ST, IC, out) == GET_CLOCK_TIME


def test_gb_table_40_encrypted_only() -> None:
    # brief §5.3 row SC 20: DG.
    out = protect(0x20, KEYS, SERVER_ST, IC, GET_CLOCK_TIME)
    assert _glo_get(0x20, out) == bytes.fromhex("C8122001234567411312FF935A47566827C467BC")
    assert unprotect(0x20, KEYS, SERVER_ST, IC, out) == GET_CLOCK_TIME


def test_gb_table_40_authenticated_only() -> None:
    # brief §5.3 row SC 10: DG (single public source, reproduced by [CALC]).
    out = protect(0x10, KEYS, SERVER_ST, IC, GET_CLOCK_TIME)
    assert out == GET_CLOCK_TIME + bytes.fromhex("06725D910F9221D263877516")
    assert _glo_get(0x10, out) == bytes.fromhex(
        "C81E1001234567C0010000080000010000FF020006725D910F9221D263877516"
    )
    assert unprotect(0x10, KEYS, SERVER_ST, IC, out) == GET_CLOCK_TIME


def test_gb_glo_initiate_request_and_response() -> None:
    # brief §5.3 second GB vector: DC tests/test_xdlms/test_initiate.py, GO
    # pkg/dlms/cipher_test.go (request); DC test_rlre.py (response).
    plain = bytes.fromhex("01011000112233445566778899AABBCCDDEEFF0000065F1F0400007E1F04B0")
    request = bytes.fromhex(
        "21303001234567801302FF8A7874133D414CED25B42534D28DB0047720606B175BD52211BE6841"
        "DB204D39EE6FDB8E356855"
    )
    out = protect(0x30, KEYS, SERVER_ST, IC, plain)
    assert bytes((0x21, 1 + 4 + len(out), 0x30)) + _ic(IC) + out == request
    response = bytes.fromhex("281F3001234567891214A0845E475714383F65BC19745CA235906525E4F3E1C893")
    assert unprotect(0x30, KEYS, SERVER_ST, IC, response[7:]) == bytes.fromhex(
        "0800065F1F0400007C1F04000007"
    )


def test_gb_table_43_gmac() -> None:
    # brief §7.2 GB Table 43: MK tests/test_aes128gcm.c, DC test_security.py, DG.
    assert gmac(KEYS, CLIENT_ST, 1, b"P6wRJ21F") == bytes.fromhex("1A52FE7DD3E72748973C1E28")
    assert gmac(KEYS, SERVER_ST, IC, b"K56iVagY") == bytes.fromhex("FE1466AFB3DBCD4F9389E2B7")


def test_dc_general_glo_ciphered_push() -> None:
    # brief §10.5: DC tests/test_general_global_cipher.py (EK = AK = "MYDUMMYGLOBALKEY").
    apdu = bytes.fromhex(
        "DB082F192291991641033B30000001E5025CE9D2271FD78BE8C204211A916A9D7F587E0A7A814CADEA"
        "89E9593F01F92EA8C087B5BDFDEFEAB6BECF282DFE49C08F5BE6DC8400"
    )
    keys = SymmetricKeys(b"MYDUMMYGLOBALKEY", b"MYDUMMYGLOBALKEY")
    system_title = apdu[2:10]
    assert apdu[10] == len(apdu) - 11
    sc = apdu[11]
    ic = int.from_bytes(apdu[12:16], "big")
    assert (sc, ic) == (0x30, 0x1E5)
    assert unprotect(sc, keys, system_title, ic, apdu[16:]) == bytes.fromhex(
        "0F000001DB000922125A8591360000000049000000110000000A5A8513D014800000000D0000000A0100"
    )


def test_derived_hls_aarq_glo_initiate() -> None:
    # brief §10.2 [DERIVED]: the user-information of the HLS-GMAC AARQ with ciphering context.
    out = protect(0x30, KEYS, CLIENT_ST, 0, bytes.fromhex("01000000065F1F0400007E1F04B0"))
    assert out == bytes.fromhex("C0505B89E53A178DB31DED5CCCCEB1E19F3480524465A8595011")


def test_derived_general_ciphering_header_aad() -> None:
    # brief §10.8 [DERIVED]: same ciphertext, the tag depends on the AAD style (§6.3, §13.2).
    kp = SymmetricKeys(bytes.fromhex("101112131415161718191A1B1C1D1E1F"), AK)
    plain = bytes.fromhex("0F000000010002020906010001 0800FF060001E240".replace(" ", ""))
    tid = bytes.fromhex("0000000000000001")
    header = b"\x08" + tid + b"\x08" + SERVER_ST + b"\x08" + CLIENT_ST + b"\x00\x00"
    ciphertext = bytes.fromhex("DCB591C9FA87CC8B3A457C26D6B8370802C5149647")
    gb_style = protect(0x30, kp, SERVER_ST, 1, plain, header)
    gxn_style = protect(0x30, kp, SERVER_ST, 1, plain)
    assert gb_style == ciphertext + bytes.fromhex("B2FB67CBF979176335C66B8B")
    assert gxn_style == ciphertext + bytes.fromhex("E6D1D963EC559C6A7D92C771")
    assert unprotect(0x30, kp, SERVER_ST, 1, gb_style, header) == plain
    with pytest.raises(AuthenticationFailed):
        unprotect(0x30, kp, SERVER_ST, 1, gb_style)


def test_security_control_byte_round_trip() -> None:
    # brief §5.1: suite in bits 0-3, then A, E, Key_Set, C.
    for value in range(256):
        assert SecurityControl.from_byte(value).to_byte() == value
    assert SecurityControl(suite=1, authenticated=True, encrypted=True).to_byte() == 0x31
    assert SecurityControl(authenticated=True, encrypted=True, broadcast_key=True).to_byte() == 0x70


# --- independent reference: the Cipher(AES, GCM(iv, min_tag_length=12)) path ------------------
# Written from brief §5.2/§5.3 (the table of plaintext/AAD per mode), not from gcm.py.


def reference_protect(
    sc: int, ek: bytes, ak: bytes, st_: bytes, ic: int, apdu: bytes, header: bytes
) -> bytes:
    iv = st_ + ic.to_bytes(4, "big")
    encryptor = Cipher(algorithms.AES(ek), modes.GCM(iv, min_tag_length=12)).encryptor()
    auth, enc = bool(sc & 0x10), bool(sc & 0x20)
    if auth and not enc:
        encryptor.authenticate_additional_data(bytes((sc,)) + ak + header + apdu)
        encryptor.finalize()
        return apdu + encryptor.tag[:12]
    if auth:
        encryptor.authenticate_additional_data(bytes((sc,)) + ak + header)
    ciphertext = encryptor.update(apdu) + encryptor.finalize()
    return ciphertext + (encryptor.tag[:12] if auth else b"")


def reference_unprotect(
    sc: int, ek: bytes, ak: bytes, st_: bytes, ic: int, payload: bytes, header: bytes
) -> bytes:
    iv = st_ + ic.to_bytes(4, "big")
    auth, enc = bool(sc & 0x10), bool(sc & 0x20)
    if not auth:
        decryptor = Cipher(algorithms.AES(ek), modes.GCM(iv, min_tag_length=12)).decryptor()
        # Encryption only: GCM's CTR part; finalize() would demand a tag, so it is not called.
        return decryptor.update(payload) if enc else payload
    body, tag = payload[:-12], payload[-12:]
    decryptor = Cipher(algorithms.AES(ek), modes.GCM(iv, tag, min_tag_length=12)).decryptor()
    if enc:
        decryptor.authenticate_additional_data(bytes((sc,)) + ak + header)
        return decryptor.update(body) + decryptor.finalize()
    decryptor.authenticate_additional_data(bytes((sc,)) + ak + header + body)
    decryptor.finalize()
    return body


modes_sc = st.tuples(st.sampled_from([0x10, 0x20, 0x30]), st.integers(0, 2), st.booleans()).map(
    lambda t: t[0] | t[1] | (0x40 if t[2] else 0)
)


@settings(max_examples=300, deadline=None)
@given(
    sc=modes_sc,
    ek=st.sampled_from([16, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    ak=st.sampled_from([0, 16, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    system_title=st.binary(min_size=8, max_size=8),
    ic=st.integers(0, 0xFFFFFFFF),
    apdu=st.binary(max_size=300),
    header=st.binary(max_size=60),
)
def test_matches_cipher_reference(
    sc: int, ek: bytes, ak: bytes, system_title: bytes, ic: int, apdu: bytes, header: bytes
) -> None:
    keys = SymmetricKeys(ek, ak)
    out = protect(sc, keys, system_title, ic, apdu, header)
    assert out == reference_protect(sc, ek, ak, system_title, ic, apdu, header)
    assert unprotect(sc, keys, system_title, ic, out, header) == apdu
    assert reference_unprotect(sc, ek, ak, system_title, ic, out, header) == apdu


@settings(max_examples=100, deadline=None)
@given(
    ek=st.binary(min_size=16, max_size=16),
    ak=st.binary(min_size=16, max_size=16),
    apdu=st.binary(min_size=1, max_size=64),
    tag=st.binary(min_size=12, max_size=12),
    auth_only=st.booleans(),
)
def test_random_tags_rejected_like_the_reference(
    ek: bytes, ak: bytes, apdu: bytes, tag: bytes, auth_only: bool
) -> None:
    sc = 0x10 if auth_only else 0x30
    keys = SymmetricKeys(ek, ak)
    good = protect(sc, keys, SERVER_ST, IC, apdu)
    forged = good[:-12] + tag
    ours_ok = reference_ok = True
    try:
        unprotect(sc, keys, SERVER_ST, IC, forged)
    except AuthenticationFailed:
        ours_ok = False
    try:
        reference_unprotect(sc, ek, ak, SERVER_ST, IC, forged, b"")
    except InvalidTag:
        reference_ok = False
    assert ours_ok == reference_ok == (tag == good[-12:])


# --- every single-bit flip is rejected ---------------------------------------------------------


def _flips(data: bytes) -> list[bytes]:
    return [
        data[:i] + bytes((data[i] ^ (1 << bit),)) + data[i + 1 :]
        for i in range(len(data))
        for bit in range(8)
    ]


@pytest.mark.parametrize("sc", [0x30, 0x10, 0x31, 0x50])
def test_every_bit_flip_of_payload_tag_iv_and_aad_is_rejected(sc: int) -> None:
    header = bytes.fromhex("0800000000000000010000")
    good = protect(sc, KEYS, SERVER_ST, IC, GET_CLOCK_TIME, header)
    assert unprotect(sc, KEYS, SERVER_ST, IC, good, header) == GET_CLOCK_TIME
    cases = 0
    # C (or the clear APDU) and T.
    for payload in _flips(good):
        with pytest.raises(AuthenticationFailed):
            unprotect(sc, KEYS, SERVER_ST, IC, payload, header)
        cases += 1
    # IV = system title ‖ IC.
    for iv in _flips(SERVER_ST + _ic(IC)):
        with pytest.raises(AuthenticationFailed):
            unprotect(sc, KEYS, iv[:8], int.from_bytes(iv[8:], "big"), good, header)
        cases += 1
    # AAD: the SC byte (bit 4, A, excepted: see the next test), AK, and the header fields.
    for bit in range(8):
        if bit == 4:
            continue
        with pytest.raises(AuthenticationFailed):
            unprotect(sc ^ (1 << bit), KEYS, SERVER_ST, IC, good, header)
        cases += 1
    for ak in _flips(AK):
        with pytest.raises(AuthenticationFailed):
            unprotect(sc, SymmetricKeys(EK, ak), SERVER_ST, IC, good, header)
        cases += 1
    for flipped_header in _flips(header):
        with pytest.raises(AuthenticationFailed):
            unprotect(sc, KEYS, SERVER_ST, IC, good, flipped_header)
        cases += 1
    assert cases == 8 * (len(good) + 12 + len(AK) + len(header)) + 7


def test_clearing_the_a_bit_is_a_policy_matter() -> None:
    # The SC travels in clear (brief §5.1). Stripping A and the tag leaves an unauthenticated
    # message that GCM alone cannot refuse: the receiver must check the SC against its security
    # policy before it calls unprotect (specs/security.md §1).
    good = protect(0x30, KEYS, SERVER_ST, IC, GET_CLOCK_TIME)
    assert unprotect(0x20, KEYS, SERVER_ST, IC, good[:-12]) == GET_CLOCK_TIME


def test_short_payload_is_a_decode_error() -> None:
    for n in range(12):
        with pytest.raises(DecodeError):
            unprotect(0x30, KEYS, SERVER_ST, IC, bytes(n))


def test_keys_never_in_repr() -> None:
    text = repr(KEYS)
    assert EK.hex() not in text.lower() and AK.hex() not in text.lower()
    assert repr(EK) not in text and repr(AK) not in text
