"""Protection tests: cipher/decipher of glo-/ded-, general-glo/ded and general-ciphering APDUs,
general-signing, and the key ring. Every vector cites its source in the brief."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.ciphered import GloGetRequest, service_specific_classes
from cosemcast.apdu.general import (
    AgreedKey,
    GeneralCiphering,
    GeneralGloCiphering,
    GeneralSigning,
    IdentifiedKey,
    KeyId,
    WrappedKey,
)
from cosemcast.errors import (
    AuthenticationFailed,
    ConfigurationError,
    DecodeError,
    EncodeError,
    KeyUnavailableError,
)
from cosemcast.security import keywrap
from cosemcast.security.gcm import SymmetricKeys
from cosemcast.security.keyring import KeyRing, PartyKeys
from cosemcast.security.protection import (
    GeneralCipheringAad,
    IdentifiedGlobalKey,
    OnePassDiffieHellman,
    PresharedKey,
    RecipientKeys,
    SignedDataStyle,
    StaticUnifiedModel,
    WrapContentKey,
    cipher_apdu,
    cipher_general,
    decipher_apdu,
    decipher_general,
    decipher_general_with_keyring,
    decipher_with_keyring,
    sign_general,
    signed_data,
    verify_general,
)

h = bytes.fromhex

# brief §5.3 (GB Table 40): keys, system title, IC, plaintext
GB_EK = h("000102030405060708090A0B0C0D0E0F")
GB_AK = h("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
GB_KEYS = SymmetricKeys(GB_EK, GB_AK)
GB_ST = h("4D4D4D0000BC614E")
GB_IC = 0x01234567
GB_GET = h("C0010000080000010000FF0200")
GLO_GET = {
    0x30: h("C81E3001234567411312FF935A47566827C467BC7D825C3BE4A77C3FCC056B6B"),
    0x20: h("C8122001234567411312FF935A47566827C467BC"),
    0x10: h("C81E1001234567C0010000080000010000FF020006725D910F9221D263877516"),
}
# brief §5.3 second GB vector (DC tests/test_xdlms/test_initiate.py; GO pkg/dlms/cipher_test.go)
INITIATE_PLAIN = h("01011000112233445566778899AABBCCDDEEFF0000065F1F0400007E1F04B0")
GLO_INITIATE_REQUEST = h(
    "21303001234567801302FF8A7874133D414CED25B42534D28DB0047720606B175BD52211BE6841DB204D39EE6F"
    "DB8E356855"
)
# brief §5.3: the GB response from the RLRE of DC test_rlre.py, and its plaintext [CALC]
GLO_INITIATE_RESPONSE = h("281F3001234567891214A0845E475714383F65BC19745CA235906525E4F3E1C893")
INITIATE_RESPONSE_PLAIN = h("0800065F1F0400007C1F04000007")
# brief §10.2 [DERIVED]: HLS-GMAC AARQ with LN-ciphering context, client ST 4D4D4D0000000001, IC 0
HLS_AARQ = h(
    "6055A109060760857405080103A60A04084D4D4D00000000018A0207808B0760857405080205AC0A80084B3536"
    "6956616759BE230421211F3000000000C0505B89E53A178DB31DED5CCCCEB1E19F3480524465A8595011"
)
# brief §10.4 [DERIVED]: general-glo-ciphering of the GB GET
DB_GB_GET = h("DB084D4D4D0000BC614E1E3001234567411312FF935A47566827C467BC7D825C3BE4A77C3FCC056B6B")
# brief §10.5: ciphered push (DC tests/test_general_global_cipher.py), EK = AK = "MYDUMMYGLOBALKEY"
PUSH_KEYS = SymmetricKeys(b"MYDUMMYGLOBALKEY", b"MYDUMMYGLOBALKEY")
PUSH_ST = h("2F19229199164103")
DB_PUSH = h(
    "DB082F192291991641033B30000001E5025CE9D2271FD78BE8C204211A916A9D7F587E0A7A814CADEA89E9593F"
    "01F92EA8C087B5BDFDEFEAB6BECF282DFE49C08F5BE6DC8400"
)
PUSH_PLAIN = h(
    "0F000001DB000922125A8591360000000049000000110000000A5A8513D014800000000D0000000A0100"
)
# brief §10.8 [DERIVED]: general-ciphering with wrapped-key
MASTER_KEY = h("000102030405060708090A0B0C0D0E0F")
KP = h("101112131415161718191A1B1C1D1E1F")
TID = h("0000000000000001")
METER_ST = h("4D4D4D0000BC614E")
HES_ST = h("4D4D4D0000000001")
NOTIFICATION = h("0F0000000100020209060100010800FF060001E240")
WRAPPED_KP = h("FB8CBD940CD80857285ED544D551141AD7D56FDC5F9A0170")
DD_PREFIX = (
    "DD080000000000000001084D4D4D0000BC614E084D4D4D0000000001000001010018"
    "FB8CBD940CD80857285ED544D551141AD7D56FDC5F9A0170263000000001"
    "DCB591C9FA87CC8B3A457C26D6B8370802C5149647"
)
DD_GREEN_BOOK = h(DD_PREFIX + "B2FB67CBF979176335C66B8B")
DD_SC_AK_ONLY = h(DD_PREFIX + "E6D1D963EC559C6A7D92C771")
# brief §10.9 [DERIVED]: suite-1 KDF inputs and results
D_U = int("11" * 32, 16)
D_V = int("22" * 32, 16)
Q_EU_XY = h(
    "0217E617F0B6443928278F96999E69A23A4F2C152BDF6D6CDF66E5B80282D4ED194A7DEBCB97712D2DDA3CA8"
    "5AA8765A56F45FC758599652F2897C65306E5794"
)
KEY_1E1S = h("1F376A2F4461E239B3B129951BD4C40A")
KEY_1E1S_06 = h("1F8450D384131E8C917D8A30828DBE6C")
KEY_0E2S = h("97B0FE1EE33118B3C7D92712D63A69DE")

REJECTED = (AuthenticationFailed, DecodeError)


def _open(wire: bytes, keys: SymmetricKeys = GB_KEYS, system_title: bytes = GB_ST) -> bytes:
    apdu = decode_apdu(wire)
    if not isinstance(apdu, GeneralGloCiphering) and not hasattr(apdu, "PROTECTED_TAG"):
        raise TypeError(f"{wire.hex()} decoded as a plain {type(apdu).__name__}")
    return decipher_apdu(apdu, keys=keys, system_title=system_title).plain  # type: ignore[arg-type]


def _bit_flips(wire: bytes) -> list[bytes]:
    out = []
    for bit in range(len(wire) * 8):
        flipped = bytearray(wire)
        flipped[bit // 8] ^= 0x80 >> (bit % 8)
        out.append(bytes(flipped))
    return out


# --- glo-/ded- and general-glo/ded: vectors -----------------------------------------------------


@pytest.mark.parametrize("sc", [0x30, 0x20, 0x10])
def test_gb_glo_get_request_cipher(sc: int) -> None:
    # brief §5.3 (GB Table 40, three modes), full APDUs
    apdu = cipher_apdu(
        GB_GET, kind="glo", security_control=sc, keys=GB_KEYS, system_title=GB_ST,
        invocation_counter=GB_IC,
    )  # fmt: skip
    assert isinstance(apdu, GloGetRequest)
    assert apdu.encode() == GLO_GET[sc]
    result = decipher_apdu(
        decode_apdu(GLO_GET[sc]),  # type: ignore[arg-type]
        keys=GB_KEYS,
        system_title=GB_ST,
        require_authentication=sc != 0x20,
    )
    assert result.plain == GB_GET
    assert (result.system_title, result.invocation_counter, result.security_control) == (
        GB_ST,
        GB_IC,
        sc,
    )


def test_encryption_only_is_refused_unless_allowed() -> None:
    # brief §5.3 SC 20 vector: no tag, so by default it is not trusted
    with pytest.raises(AuthenticationFailed):
        _open(GLO_GET[0x20])


def test_gb_glo_initiate_request() -> None:
    # brief §5.3 second GB vector
    apdu = cipher_apdu(
        INITIATE_PLAIN, kind="glo", security_control=0x30, keys=GB_KEYS, system_title=GB_ST,
        invocation_counter=GB_IC,
    )  # fmt: skip
    assert apdu.encode() == GLO_INITIATE_REQUEST
    assert _open(GLO_INITIATE_REQUEST) == INITIATE_PLAIN


def test_gb_glo_initiate_response_from_rlre() -> None:
    # brief §5.3: server ST 4D4D4D0000BC614E
    assert _open(GLO_INITIATE_RESPONSE) == INITIATE_RESPONSE_PLAIN


def test_hls_aarq_glo_initiate() -> None:
    # brief §10.2 [DERIVED]: user-information BE 23 04 21 <glo-initiateRequest>, GB keys
    at = HLS_AARQ.index(h("BE230421")) + 4
    inner = HLS_AARQ[at:]
    assert len(inner) == 0x21
    assert _open(inner, system_title=h("4D4D4D0000000001")) == h("01000000065F1F0400007E1F04B0")


def test_general_glo_ciphering_of_gb_get() -> None:
    # brief §10.4 [DERIVED]
    apdu = cipher_apdu(
        GB_GET, kind="general-glo", security_control=0x30, keys=GB_KEYS, system_title=GB_ST,
        invocation_counter=GB_IC,
    )  # fmt: skip
    assert apdu.encode() == DB_GB_GET
    assert _open(DB_GB_GET, system_title=h("0000000000000000")) == GB_GET


def test_ciphered_push() -> None:
    # brief §10.5 (DC test_general_global_cipher.py): decrypts to the DATA-NOTIFICATION
    result = decipher_apdu(decode_apdu(DB_PUSH), keys=PUSH_KEYS)  # type: ignore[arg-type]
    assert result.plain == PUSH_PLAIN
    assert (result.system_title, result.invocation_counter) == (PUSH_ST, 0x1E5)
    again = cipher_apdu(
        PUSH_PLAIN, kind="general-glo", security_control=0x30, keys=PUSH_KEYS,
        system_title=PUSH_ST, invocation_counter=0x1E5,
    )  # fmt: skip
    assert again.encode() == DB_PUSH


def test_zero_length_system_title_takes_the_given_one() -> None:
    # brief §5.4: DB 00 ...; the receiver supplies the title from the association
    apdu = GeneralGloCiphering(b"", 0x30, GB_IC, GLO_GET[0x30][7:])
    assert decipher_apdu(apdu, keys=GB_KEYS, system_title=GB_ST).plain == GB_GET
    with pytest.raises(ValueError):
        decipher_apdu(apdu, keys=GB_KEYS)


# --- glo-/ded-: rejection -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "system_title", "keys"),
    [
        (GLO_GET[0x30], GB_ST, GB_KEYS),
        (GLO_GET[0x10], GB_ST, GB_KEYS),
        (GLO_INITIATE_REQUEST, GB_ST, GB_KEYS),
        (GLO_INITIATE_RESPONSE, GB_ST, GB_KEYS),
        (DB_GB_GET, GB_ST, GB_KEYS),
        (DB_PUSH, PUSH_ST, PUSH_KEYS),
    ],
)
def test_every_bit_flip_is_rejected(wire: bytes, system_title: bytes, keys: SymmetricKeys) -> None:
    assert _open(wire, keys, system_title)
    for flipped in _bit_flips(wire):
        with pytest.raises(REJECTED):
            _open(flipped, keys, system_title)


@pytest.mark.parametrize("tag", [0xC9, 0xCC, 0xD4, 0x21])
def test_retagged_apdu_is_rejected(tag: int) -> None:
    # the tag byte is outside the GCM tag: the plaintext must match it
    with pytest.raises(DecodeError):
        _open(bytes((tag,)) + GLO_GET[0x30][1:])


def test_wrong_key_or_title_fails_authentication() -> None:
    with pytest.raises(AuthenticationFailed):
        _open(GLO_GET[0x30], keys=SymmetricKeys(bytes(16), GB_AK))
    with pytest.raises(AuthenticationFailed):
        _open(GLO_GET[0x30], system_title=h("4D4D4D0000BC614F"))


@pytest.mark.parametrize(
    ("sc", "error"),
    [
        (0x33, DecodeError),  # suite 3
        (0xB0, DecodeError),  # compression
        (0x00, AuthenticationFailed),  # no protection at all
    ],
)
def test_received_security_control_checks(sc: int, error: type[Exception]) -> None:
    with pytest.raises(error):
        decipher_apdu(GloGetRequest(sc, 1, bytes(30)), keys=GB_KEYS, system_title=GB_ST)


def test_ded_apdu_with_key_set_bit_is_rejected() -> None:
    from cosemcast.apdu.ciphered import DedGetRequest

    with pytest.raises(DecodeError):
        decipher_apdu(DedGetRequest(0x70, 1, bytes(30)), keys=GB_KEYS, system_title=GB_ST)


@pytest.mark.parametrize(
    ("plain", "kind", "sc", "keys", "title"),
    [
        (h("0F00"), "glo", 0x30, GB_KEYS, GB_ST),  # data-notification has no glo- form
        (b"", "glo", 0x30, GB_KEYS, GB_ST),
        (GB_GET, "glo", 0x00, GB_KEYS, GB_ST),  # no protection
        (GB_GET, "glo", 0xB0, GB_KEYS, GB_ST),  # compression
        (GB_GET, "ded", 0x70, GB_KEYS, GB_ST),  # Key_Set with a dedicated key
        (GB_GET, "glo", 0x32, GB_KEYS, GB_ST),  # suite 2 with a 16-byte key
        (GB_GET, "glo", 0x35, GB_KEYS, GB_ST),  # suite 5
        (GB_GET, "general-glo", 0x30, GB_KEYS, GB_ST[:7]),
    ],
)
def test_cipher_errors(plain: bytes, kind: str, sc: int, keys: SymmetricKeys, title: bytes) -> None:
    with pytest.raises(EncodeError):
        cipher_apdu(
            plain, kind=kind, security_control=sc, keys=keys,  # type: ignore[call-overload]
            system_title=title, invocation_counter=1,
        )  # fmt: skip


kinds = st.sampled_from(["glo", "ded", "general-glo", "general-ded"])
plain_tags = st.sampled_from(sorted({cls.PROTECTED_TAG for cls in service_specific_classes()}))
keys16 = st.binary(min_size=16, max_size=16)


@given(
    kinds,
    plain_tags,
    st.binary(max_size=200),
    st.sampled_from([0x10, 0x20, 0x30]),
    st.integers(0, 0xFFFFFFFF),
    keys16,
    keys16,
    st.binary(min_size=8, max_size=8),
)
def test_cipher_decipher_round_trip(
    kind: str, tag: int, body: bytes, sc: int, ic: int, ek: bytes, ak: bytes, title: bytes
) -> None:
    keys = SymmetricKeys(ek, ak)
    plain = bytes((tag,)) + body
    apdu = cipher_apdu(
        plain, kind=kind, security_control=sc, keys=keys,  # type: ignore[call-overload]
        system_title=title, invocation_counter=ic,
    )  # fmt: skip
    decoded = decode_apdu(apdu.encode())
    assert decoded == apdu
    result = decipher_apdu(
        decoded,  # type: ignore[arg-type]
        keys=keys,
        system_title=title,
        require_authentication=sc != 0x20,
    )
    assert result.plain == plain


@given(st.sampled_from([0xC8, 0xCC, 0xD0, 0x21, 0x28, 0xDB, 0xDC]), st.binary(max_size=80))
def test_arbitrary_ciphered_bytes_are_rejected(tag: int, body: bytes) -> None:
    with pytest.raises(REJECTED):
        _open(bytes((tag,)) + body)


# --- general-ciphering: §10.8 wrapped key ---------------------------------------------------------


def _wrapped_dd(aad: GeneralCipheringAad) -> GeneralCiphering:
    return cipher_general(
        NOTIFICATION,
        key=WrapContentKey(MASTER_KEY, KP),
        security_control=0x30,
        invocation_counter=1,
        transaction_id=TID,
        originator_system_title=METER_ST,
        recipient_system_title=HES_ST,
        authentication_key=GB_AK,
        aad=aad,
    )


HES_KEYS = RecipientKeys(
    authentication_key=GB_AK,
    global_unicast_key=GB_EK,
    global_broadcast_key=bytes(range(16, 32)),
    master_key=MASTER_KEY,
    preshared_key=KP,
    agreement_private_key=ec.derive_private_key(D_V, ec.SECP256R1()),
    originator_signing_public_key=ec.derive_private_key(D_U, ec.SECP256R1()).public_key(),
    originator_agreement_public_key=ec.derive_private_key(D_U, ec.SECP256R1()).public_key(),
)


@pytest.mark.parametrize(
    ("aad", "wire"),
    [
        (GeneralCipheringAad.GREEN_BOOK, DD_GREEN_BOOK),
        (GeneralCipheringAad.SC_AK_ONLY, DD_SC_AK_ONLY),
    ],
)
def test_wrapped_key_general_ciphering_vector(aad: GeneralCipheringAad, wire: bytes) -> None:
    # brief §10.8 [DERIVED]: both AAD styles, full APDU bytes
    apdu = _wrapped_dd(aad)
    assert apdu.key_info == WrappedKey(WRAPPED_KP)
    assert apdu.encode() == wire
    result = decipher_general(decode_apdu(wire), HES_KEYS, aad=aad)  # type: ignore[arg-type]
    assert result.plain == NOTIFICATION
    assert result.content_key == KP
    assert (result.system_title, result.invocation_counter) == (METER_ST, 1)


def test_aad_styles_do_not_cross_verify() -> None:
    with pytest.raises(AuthenticationFailed):
        decipher_general(
            decode_apdu(DD_GREEN_BOOK),  # type: ignore[arg-type]
            HES_KEYS,
            aad=GeneralCipheringAad.SC_AK_ONLY,
        )
    with pytest.raises(AuthenticationFailed):
        decipher_general(decode_apdu(DD_SC_AK_ONLY), HES_KEYS)  # type: ignore[arg-type]


def test_only_the_green_book_aad_binds_the_recipient() -> None:
    # brief §6.3: the decision's other side. With SC ‖ AK only, a changed recipient goes unseen.
    for aad, wire in (
        (GeneralCipheringAad.GREEN_BOOK, DD_GREEN_BOOK),
        (GeneralCipheringAad.SC_AK_ONLY, DD_SC_AK_ONLY),
    ):
        forged = wire.replace(HES_ST, h("4D4D4D0000000002"))
        if aad is GeneralCipheringAad.GREEN_BOOK:
            with pytest.raises(AuthenticationFailed):
                decipher_general(decode_apdu(forged), HES_KEYS, aad=aad)  # type: ignore[arg-type]
        else:
            result = decipher_general(decode_apdu(forged), HES_KEYS, aad=aad)  # type: ignore[arg-type]
            assert result.plain == NOTIFICATION


def _open_general(wire: bytes) -> bytes:
    apdu = decode_apdu(wire)
    if not isinstance(apdu, GeneralCiphering):
        raise TypeError(f"decoded as a {type(apdu).__name__}")
    return decipher_general(apdu, HES_KEYS).plain


def test_every_bit_flip_of_wrapped_key_apdu_is_rejected() -> None:
    assert _open_general(DD_GREEN_BOOK) == NOTIFICATION
    for flipped in _bit_flips(DD_GREEN_BOOK):
        with pytest.raises(REJECTED):
            _open_general(flipped)


def test_every_bit_flip_of_a_wrapped_key_is_rejected() -> None:
    # brief §6.4: RFC 3394 integrity check
    assert keywrap.unwrap_key(MASTER_KEY, WRAPPED_KP) == KP
    for flipped in _bit_flips(WRAPPED_KP):
        with pytest.raises(AuthenticationFailed):
            keywrap.unwrap_key(MASTER_KEY, flipped)


# --- general-ciphering: identified, pre-shared, agreed keys --------------------------------------


@pytest.mark.parametrize("key_id", list(KeyId))
def test_identified_key_round_trip(key_id: KeyId) -> None:
    key = GB_EK if key_id is KeyId.GLOBAL_UNICAST_ENCRYPTION_KEY else bytes(range(16, 32))
    apdu = cipher_general(
        NOTIFICATION, key=IdentifiedGlobalKey(key_id, key), security_control=0x30,
        invocation_counter=5, transaction_id=b"\x01", originator_system_title=METER_ST,
        recipient_system_title=HES_ST, authentication_key=GB_AK, date_time=bytes(12),
        other_information=b"info",
    )  # fmt: skip
    assert apdu.key_info == IdentifiedKey(key_id)
    wire = apdu.encode()
    assert decipher_general(decode_apdu(wire), HES_KEYS).plain == NOTIFICATION  # type: ignore[arg-type]
    other = KeyId(1 - key_id)
    swapped = GeneralCiphering(
        apdu.transaction_id, apdu.originator_system_title, apdu.recipient_system_title,
        apdu.date_time, apdu.other_information, IdentifiedKey(other), apdu.security_control,
        apdu.invocation_counter, apdu.ciphered_text,
    )  # fmt: skip
    with pytest.raises(AuthenticationFailed):
        decipher_general(swapped, HES_KEYS)
    with pytest.raises(KeyUnavailableError):
        decipher_general(apdu, RecipientKeys(authentication_key=GB_AK))


def test_preshared_key_and_auth_only() -> None:
    # key-info absent (the patent's C1, DESIGN §4); SC 10 puts the APDU in the AAD
    for sc in (0x30, 0x10):
        apdu = cipher_general(
            NOTIFICATION, key=PresharedKey(KP), security_control=sc, invocation_counter=9,
            transaction_id=TID, originator_system_title=METER_ST, recipient_system_title=b"",
            authentication_key=GB_AK,
        )  # fmt: skip
        assert apdu.key_info is None
        assert (NOTIFICATION in apdu.ciphered_text) == (sc == 0x10)
        assert decipher_general(apdu, HES_KEYS).plain == NOTIFICATION
        tampered = GeneralCiphering(
            TID, METER_ST, b"", b"", b"\x01", None, sc, 9, apdu.ciphered_text
        )
        with pytest.raises(AuthenticationFailed):
            decipher_general(tampered, HES_KEYS)


def _kdf_reference(z: bytes, alg: bytes, u: bytes, v: bytes, hash_name: str, n: int) -> bytes:
    # NIST SP 800-56A one-step KDF, written out with hashlib as an independent cross-check
    return hashlib.new(hash_name, b"\x00\x00\x00\x01" + z + alg + u + v).digest()[:n]


def test_one_pass_dh_derived_vector() -> None:
    # brief §10.9 [DERIVED]: d_eU = 11..11, d_sV = 22..22, C(1e,1s), both AlgorithmID variants
    d_eu = ec.derive_private_key(D_U, ec.SECP256R1())
    d_sv = ec.derive_private_key(D_V, ec.SECP256R1())
    signer = ec.generate_private_key(ec.SECP256R1())
    keys = RecipientKeys(
        authentication_key=GB_AK, agreement_private_key=d_sv,
        originator_signing_public_key=signer.public_key(),
    )  # fmt: skip
    for gb06, expected in ((False, KEY_1E1S), (True, KEY_1E1S_06)):
        apdu = cipher_general(
            NOTIFICATION, key=OnePassDiffieHellman(d_eu, d_sv.public_key(), signer),
            security_control=0x31, invocation_counter=1, transaction_id=TID,
            originator_system_title=METER_ST, recipient_system_title=HES_ST,
            authentication_key=GB_AK, green_book_06=gb06,
        )  # fmt: skip
        assert isinstance(apdu.key_info, AgreedKey)
        assert apdu.key_info.key_parameters == b"\x01"
        assert apdu.key_info.key_ciphered_data[:64] == Q_EU_XY
        assert apdu.encode()[30:36] == h("010201018180")  # brief §6.1: agreed-key, 01, len 128
        result = decipher_general(
            decode_apdu(apdu.encode()),  # type: ignore[arg-type]
            keys,
            green_book_06=gb06,
        )
        assert result.plain == NOTIFICATION
        assert result.content_key == expected


def test_static_unified_model_derived_vector() -> None:
    # brief §10.9 [DERIVED]: C(0e,2s) OtherInfo with len(tid) ‖ tid after the originator
    d_u = ec.derive_private_key(D_U, ec.SECP256R1())
    d_v = ec.derive_private_key(D_V, ec.SECP256R1())
    apdu = cipher_general(
        NOTIFICATION, key=StaticUnifiedModel(d_u, d_v.public_key()), security_control=0x31,
        invocation_counter=1, transaction_id=TID, originator_system_title=METER_ST,
        recipient_system_title=HES_ST, authentication_key=GB_AK,
    )  # fmt: skip
    assert apdu.key_info == AgreedKey(b"\x02", b"")
    assert apdu.encode()[30:35] == h("0102010200")  # brief §6.1 (GXN emits the same bytes)
    keys = RecipientKeys(
        authentication_key=GB_AK, agreement_private_key=d_v,
        originator_agreement_public_key=d_u.public_key(),
    )  # fmt: skip
    result = decipher_general(apdu, keys)
    assert result.content_key == KEY_0E2S
    assert result.plain == NOTIFICATION


@pytest.mark.parametrize(
    ("suite", "curve", "hash_name", "n", "alg"),
    [
        (1, ec.SECP256R1(), "sha256", 16, "60857405080300"),
        (2, ec.SECP384R1(), "sha384", 32, "60857405080301"),
    ],
)
def test_agreed_key_round_trips_cross_checked(
    suite: int, curve: ec.EllipticCurve, hash_name: str, n: int, alg: str
) -> None:
    sender_sign = ec.generate_private_key(curve)
    sender_static = ec.generate_private_key(curve)
    ephemeral = ec.generate_private_key(curve)
    recipient = ec.generate_private_key(curve)
    keys = RecipientKeys(
        authentication_key=bytes(n), agreement_private_key=recipient,
        originator_signing_public_key=sender_sign.public_key(),
        originator_agreement_public_key=sender_static.public_key(),
    )  # fmt: skip
    sources: dict[str, OnePassDiffieHellman | StaticUnifiedModel] = {
        "1e1s": OnePassDiffieHellman(ephemeral, recipient.public_key(), sender_sign),
        "0e2s": StaticUnifiedModel(sender_static, recipient.public_key()),
    }
    for name, source in sources.items():
        apdu = cipher_general(
            NOTIFICATION, key=source, security_control=0x30 | suite, invocation_counter=3,
            transaction_id=b"tx-42", originator_system_title=METER_ST,
            recipient_system_title=HES_ST, authentication_key=bytes(n),
        )  # fmt: skip
        result = decipher_general(decode_apdu(apdu.encode()), keys)  # type: ignore[arg-type]
        assert result.plain == NOTIFICATION
        z = (ephemeral if name == "1e1s" else sender_static).exchange(
            ec.ECDH(), recipient.public_key()
        )
        u = METER_ST if name == "1e1s" else METER_ST + b"\x05tx-42"
        assert result.content_key == _kdf_reference(z, h(alg), u, HES_ST, hash_name, n)


def test_one_pass_dh_rejections() -> None:
    d_eu = ec.generate_private_key(ec.SECP256R1())
    d_sv = ec.generate_private_key(ec.SECP256R1())
    signer = ec.generate_private_key(ec.SECP256R1())
    apdu = cipher_general(
        NOTIFICATION, key=OnePassDiffieHellman(d_eu, d_sv.public_key(), signer),
        security_control=0x31, invocation_counter=1, transaction_id=TID,
        originator_system_title=METER_ST, recipient_system_title=HES_ST, authentication_key=GB_AK,
    )  # fmt: skip
    good = RecipientKeys(
        authentication_key=GB_AK, agreement_private_key=d_sv,
        originator_signing_public_key=signer.public_key(),
    )  # fmt: skip
    assert decipher_general(apdu, good).plain == NOTIFICATION
    impostor = RecipientKeys(
        authentication_key=GB_AK, agreement_private_key=d_sv,
        originator_signing_public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
    )  # fmt: skip
    with pytest.raises(AuthenticationFailed):
        decipher_general(apdu, impostor)
    with pytest.raises(KeyUnavailableError):
        decipher_general(apdu, RecipientKeys(authentication_key=GB_AK, agreement_private_key=d_sv))
    wire = apdu.encode()
    for flipped in _bit_flips(wire):
        with pytest.raises(REJECTED):
            decoded = decode_apdu(flipped)
            assert isinstance(decoded, GeneralCiphering)
            decipher_general(decoded, good)


def test_general_ciphering_send_and_receive_checks() -> None:
    d = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(EncodeError):  # agreed key needs suite 1 or 2
        cipher_general(
            NOTIFICATION, key=StaticUnifiedModel(d, d.public_key()), security_control=0x30,
            invocation_counter=1, transaction_id=TID, originator_system_title=METER_ST,
            recipient_system_title=HES_ST,
        )  # fmt: skip
    with pytest.raises(KeyUnavailableError):  # a P-256 key for suite 2
        cipher_general(
            NOTIFICATION, key=StaticUnifiedModel(d, d.public_key()), security_control=0x32,
            invocation_counter=1, transaction_id=TID, originator_system_title=METER_ST,
            recipient_system_title=HES_ST,
        )  # fmt: skip
    for sc in (0x70, 0xB0, 0x00):
        with pytest.raises(EncodeError):
            cipher_general(
                NOTIFICATION, key=PresharedKey(KP), security_control=sc, invocation_counter=1,
                transaction_id=TID, originator_system_title=METER_ST, recipient_system_title=b"",
            )  # fmt: skip
    with pytest.raises(EncodeError):
        cipher_general(
            NOTIFICATION, key=PresharedKey(KP), security_control=0x30, invocation_counter=1,
            transaction_id=TID, originator_system_title=b"", recipient_system_title=b"",
        )  # fmt: skip
    agreed_in_suite_0 = GeneralCiphering(
        TID, METER_ST, HES_ST, b"", b"", AgreedKey(b"\x02", b""), 0x30, 1, bytes(20)
    )
    with pytest.raises(DecodeError):
        decipher_general(agreed_in_suite_0, HES_KEYS)
    bad_parameters = GeneralCiphering(
        TID, METER_ST, HES_ST, b"", b"", AgreedKey(b"\x03", b""), 0x31, 1, bytes(20)
    )
    with pytest.raises(DecodeError):
        decipher_general(bad_parameters, HES_KEYS)


pre_shared_sources = st.builds(PresharedKey, keys16)
identified_sources = st.builds(IdentifiedGlobalKey, st.sampled_from(KeyId), keys16)
wrapped_sources = st.builds(WrapContentKey, keys16, keys16)


@settings(max_examples=50)
@given(
    st.one_of(pre_shared_sources, identified_sources, wrapped_sources),
    st.sampled_from(GeneralCipheringAad),
    st.sampled_from([0x10, 0x30]),
    st.binary(min_size=1, max_size=100),
    st.binary(max_size=20),
    st.binary(max_size=10),
    st.sampled_from([b"", bytes(12)]),
    keys16,
)
def test_general_ciphering_round_trip(
    source: PresharedKey | IdentifiedGlobalKey | WrapContentKey,
    aad: GeneralCipheringAad,
    sc: int,
    plain: bytes,
    tid: bytes,
    other: bytes,
    date_time: bytes,
    ak: bytes,
) -> None:
    apdu = cipher_general(
        plain, key=source, security_control=sc, invocation_counter=77, transaction_id=tid,
        originator_system_title=METER_ST, recipient_system_title=HES_ST, authentication_key=ak,
        date_time=date_time, other_information=other, aad=aad,
    )  # fmt: skip
    decoded = decode_apdu(apdu.encode())
    assert decoded == apdu
    keys = RecipientKeys(authentication_key=ak)
    if isinstance(source, PresharedKey):
        keys = RecipientKeys(authentication_key=ak, preshared_key=source.key)
    elif isinstance(source, WrapContentKey):
        keys = RecipientKeys(authentication_key=ak, master_key=source.master_key)
    elif source.key_id is KeyId.GLOBAL_UNICAST_ENCRYPTION_KEY:
        keys = RecipientKeys(authentication_key=ak, global_unicast_key=source.key)
    else:
        keys = RecipientKeys(authentication_key=ak, global_broadcast_key=source.key)
    assert isinstance(decoded, GeneralCiphering)
    assert decipher_general(decoded, keys, aad=aad).plain == plain


@given(st.binary(max_size=120))
def test_arbitrary_general_ciphering_bytes_are_rejected(body: bytes) -> None:
    with pytest.raises((*REJECTED, KeyUnavailableError)):
        _open_general(b"\xdd" + body)


# --- general-signing ------------------------------------------------------------------------------


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()])
@pytest.mark.parametrize("style", list(SignedDataStyle))
def test_general_signing_round_trip(curve: ec.EllipticCurve, style: SignedDataStyle) -> None:
    key = ec.generate_private_key(curve)
    apdu = sign_general(
        GLO_GET[0x30], signing_private_key=key, transaction_id=TID,
        originator_system_title=METER_ST, recipient_system_title=HES_ST, date_time=bytes(12),
        other_information=b"oi", style=style,
    )  # fmt: skip
    assert len(apdu.signature) == (64 if curve.name == "secp256r1" else 96)
    decoded = decode_apdu(apdu.encode())
    assert isinstance(decoded, GeneralSigning)
    assert verify_general(decoded, key.public_key(), style=style) == GLO_GET[0x30]
    other_style = next(s for s in SignedDataStyle if s is not style)
    with pytest.raises(AuthenticationFailed):
        verify_general(decoded, key.public_key(), style=other_style)
    with pytest.raises(AuthenticationFailed):
        verify_general(decoded, ec.generate_private_key(curve).public_key(), style=style)
    for flipped in _bit_flips(apdu.encode()):
        with pytest.raises(REJECTED):
            candidate = decode_apdu(flipped)
            assert isinstance(candidate, GeneralSigning)
            verify_general(candidate, key.public_key(), style=style)


def test_signed_data_bytes() -> None:
    # brief §5.5 / §13.3: Green Book style = every field with its length; the other drops the
    # content's length prefix
    apdu = GeneralSigning(b"\x07", METER_ST, HES_ST, b"", b"", b"\xc0\x01", b"S" * 64)
    wire = apdu.encode()
    assert signed_data(apdu) == wire[1 : -(1 + 64)]
    header = h("0107") + b"\x08" + METER_ST + b"\x08" + HES_ST + h("0000")
    assert signed_data(apdu) == header + h("02C001")
    assert signed_data(apdu, SignedDataStyle.CONTENT_WITHOUT_LENGTH) == header + h("C001")


# --- key ring -------------------------------------------------------------------------------------

KEYS_TOML = """\
# same format as captures/keys.toml (DLMS UA Green Book example values)
[[keys]]
system_title = "4D4D4D0000BC614E"         # the meter (server)
ek = "000102030405060708090A0B0C0D0E0F"
ak = "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"

[[keys]]
system_title = "4142434445464748"         # the client
ek = "000102030405060708090A0B0C0D0E0F"
ak = "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"
"""


def _ring(tmp_path: Path, text: str = KEYS_TOML) -> KeyRing:
    path = tmp_path / "keys.toml"
    path.write_text(text)
    return KeyRing.from_toml(path)


def test_keyring_from_toml(tmp_path: Path) -> None:
    ring = _ring(tmp_path)
    assert len(ring) == 2
    party = ring.get(GB_ST)
    assert party is not None and party.ek == GB_EK and party.ak == GB_AK
    assert ring.get(h("0000000000000000")) is None
    assert [p.system_title for p in ring] == [GB_ST, b"ABCDEFGH"]
    assert ring.symmetric_keys(GB_ST) is ring.symmetric_keys(GB_ST)


def test_decipher_with_keyring(tmp_path: Path) -> None:
    ring = _ring(tmp_path)
    glo_get = decode_apdu(GLO_GET[0x30])
    hinted = decipher_with_keyring(glo_get, ring, hint_system_title=GB_ST)  # type: ignore[arg-type]
    assert hinted.plain == GB_GET
    unhinted = decipher_with_keyring(glo_get, ring)  # type: ignore[arg-type]
    assert (unhinted.plain, unhinted.system_title) == (GB_GET, GB_ST)
    with pytest.raises(KeyUnavailableError):
        decipher_with_keyring(glo_get, ring, hint_system_title=h("0102030405060708"))  # type: ignore[arg-type]
    with pytest.raises(AuthenticationFailed):
        decipher_with_keyring(glo_get, ring, hint_system_title=b"ABCDEFGH")  # type: ignore[arg-type]
    push = decode_apdu(DB_PUSH)
    with pytest.raises(KeyUnavailableError):
        decipher_with_keyring(push, ring)  # type: ignore[arg-type]
    ring.add(PartyKeys(PUSH_ST, b"MYDUMMYGLOBALKEY", b"MYDUMMYGLOBALKEY"))
    assert decipher_with_keyring(push, ring).plain == PUSH_PLAIN  # type: ignore[arg-type]
    from cosemcast.apdu.ciphered import DedGetRequest

    with pytest.raises(KeyUnavailableError):
        decipher_with_keyring(DedGetRequest(0x30, 1, bytes(30)), ring, hint_system_title=GB_ST)


def test_decipher_general_with_keyring() -> None:
    # brief §10.8 vector; the meter's entry holds the master key
    ring = KeyRing([PartyKeys(METER_ST, GB_EK, GB_AK, kek=MASTER_KEY)])
    result = decipher_general_with_keyring(decode_apdu(DD_GREEN_BOOK), ring)  # type: ignore[arg-type]
    assert result.plain == NOTIFICATION
    with pytest.raises(KeyUnavailableError):
        decipher_general_with_keyring(decode_apdu(DD_GREEN_BOOK), KeyRing())  # type: ignore[arg-type]


def test_keyring_loads_pem_keys(tmp_path: Path) -> None:
    signing = ec.generate_private_key(ec.SECP256R1())
    agreement = ec.generate_private_key(ec.SECP384R1())
    (tmp_path / "sign.pem").write_bytes(
        signing.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public_pem = agreement.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    text = (
        '[[keys]]\nsystem_title = "4D4D4D0000BC614E"\nek = "000102030405060708090A0B0C0D0E0F"\n'
        'signing_private_key = "sign.pem"\n'
        f"agreement_public_key = '''{public_pem.decode()}'''\n"
    )
    party = _ring(tmp_path, text).get(GB_ST)
    assert party is not None and party.signing_private_key is not None
    assert party.signing_private_key.private_numbers() == signing.private_numbers()
    assert party.agreement_public_key == agreement.public_key()


SECRET = "00112233445566778899AABBCCDDEEFF"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("this is = = not toml", "not valid TOML"),
        ("", "no [[keys]]"),
        ("[other]\nx = 1\n", "unknown top-level"),
        ('[[keys]]\nek = "' + SECRET + '"\n', "missing field 'system_title'"),
        ('[[keys]]\nsystem_title = "4D4D4D0000BC614E"\n', "missing field 'ek'"),
        ('[[keys]]\nsystem_title = "4D4D4D0000BC614E"\nek = "' + SECRET + 'ZZ"\n', "'ek'"),
        ('[[keys]]\nsystem_title = "4D4D4D0000BC614E"\nek = "' + SECRET[:-2] + '"\n', "ek must"),
        ('[[keys]]\nsystem_title = "4D4D4D00"\nek = "' + SECRET + '"\n', "system_title must"),
        ('[[keys]]\nsystem_title = "4D4D4D0000BC614E"\nek = 5\n', "hex string"),
        (
            '[[keys]]\nsystem_title = "4D4D4D0000BC614E"\nek = "' + SECRET + '"\nkey = "00"\n',
            "unknown fields",
        ),
        (
            '[[keys]]\nsystem_title = "4D4D4D0000BC614E"\nek = "' + SECRET + '"\nak = "0011"\n',
            "ak must",
        ),
        (
            '[[keys]]\nsystem_title = "4D4D4D0000BC614E"\nek = "' + SECRET + '"\n'
            'signing_private_key = "missing.pem"\n',
            "cannot read",
        ),
        (
            '[[keys]]\nsystem_title = "4D4D4D0000BC614E"\nek = "' + SECRET + '"\n'
            '[[keys]]\nsystem_title = "4D4D4D0000BC614E"\nek = "' + SECRET + '"\n',
            "appears twice",
        ),
    ],
)
def test_bad_key_files(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        _ring(tmp_path, text)
    message = str(info.value)
    assert needle in message
    assert str(tmp_path) in message
    assert SECRET[:16].lower() not in message.lower()


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        KeyRing.from_toml(tmp_path / "absent.toml")


def test_keys_never_in_repr(tmp_path: Path) -> None:
    ring = _ring(tmp_path)
    party = PartyKeys(
        GB_ST, GB_EK, GB_AK, kek=MASTER_KEY, dedicated_key=KP, broadcast_key=bytes(range(16, 32)),
        signing_private_key=ec.generate_private_key(ec.SECP256R1()),
    )  # fmt: skip
    apdu = _wrapped_dd(GeneralCipheringAad.GREEN_BOOK)
    texts = [
        repr(ring),
        repr(party),
        repr(HES_KEYS),
        repr(WrapContentKey(MASTER_KEY, KP)),
        repr(PresharedKey(KP)),
        repr(IdentifiedGlobalKey(KeyId.GLOBAL_UNICAST_ENCRYPTION_KEY, GB_EK)),
        repr(decipher_general(apdu, HES_KEYS)),
    ]
    for secret in (GB_EK, GB_AK, MASTER_KEY, KP, bytes(range(16, 32))):
        for text in texts:
            assert secret.hex() not in text.lower()
            assert repr(secret) not in text
