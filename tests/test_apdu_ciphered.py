"""Codec tests of the ciphered APDUs: glo-/ded- service-specific forms, general-glo/ded-ciphering,
general-ciphering with every key-info, and general-signing (framing only; the cryptography is
in test_protection.py). Each vector cites its source in the brief."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosemcast.apdu import decode_apdu, registered_tags
from cosemcast.apdu._schemas import build_security_header, parse_security_header
from cosemcast.apdu.ciphered import (
    CipheredTag,
    DedGetResponse,
    GloGetRequest,
    GloInitiateRequest,
    GloInitiateResponse,
    ServiceSpecificCiphered,
    ciphered_class_for,
    service_specific_classes,
)
from cosemcast.apdu.general import (
    AgreedKey,
    GeneralCiphering,
    GeneralDedCiphering,
    GeneralGloCiphering,
    GeneralSigning,
    IdentifiedKey,
    KekId,
    KeyId,
    WrappedKey,
)
from cosemcast.errors import DecodeError, EncodeError

h = bytes.fromhex

# brief §5.3 (GB Table 40 via DC tests/test_security.py and DG; [CALC])
GLO_GET_SC30 = h("C81E3001234567411312FF935A47566827C467BC7D825C3BE4A77C3FCC056B6B")
GLO_GET_SC20 = h("C8122001234567411312FF935A47566827C467BC")
GLO_GET_SC10 = h("C81E1001234567C0010000080000010000FF020006725D910F9221D263877516")
# brief §5.3 second GB vector (DC tests/test_xdlms/test_initiate.py; GO pkg/dlms/cipher_test.go)
GLO_INITIATE_REQUEST = h(
    "21303001234567801302FF8A7874133D414CED25B42534D28DB0047720606B175BD52211BE6841DB204D39EE6F"
    "DB8E356855"
)
# brief §5.3: the GB response as embedded in an RLRE (DC tests/test_asce/test_rlre.py)
GLO_INITIATE_RESPONSE = h("281F3001234567891214A0845E475714383F65BC19745CA235906525E4F3E1C893")
# brief §10.2: AARQ, LN-ciphering context, glo-initiate (DC test_parse_ciphered_low_security2)
AARQ_WITH_GLO_INITIATE = h(
    "6066A109060760857405080103A60A04084D4D4D0000BC614E8A0207808B0760857405080201AC0A8008313233"
    "3435363738BE34043221303001234567801302FF8A7874133D414CED25B42534D28DB0047720606B175BD52211"
    "BE6841DB204D39EE6FDB8E356855"
)
# brief §5.4: zero-length system title (DC test)
DB_EMPTY_ST = h("DB001E30800000D181EC9EC4BF53E9776EF0C453969FBDFE11BE9B791AACC0FF8C")
# brief §10.4 [DERIVED]: general-glo-ciphering of the GB GET
DB_GB_GET = h("DB084D4D4D0000BC614E1E3001234567411312FF935A47566827C467BC7D825C3BE4A77C3FCC056B6B")
# brief §10.5: ciphered push (DC tests/test_general_global_cipher.py)
DB_PUSH = h(
    "DB082F192291991641033B30000001E5025CE9D2271FD78BE8C204211A916A9D7F587E0A7A814CADEA89E9593F"
    "01F92EA8C087B5BDFDEFEAB6BECF282DFE49C08F5BE6DC8400"
)
# brief §10.8 [DERIVED]: general-ciphering with wrapped-key, GB-style AAD
DD_WRAPPED = h(
    "DD080000000000000001084D4D4D0000BC614E084D4D4D0000000001000001010018FB8CBD940CD80857285ED5"
    "44D551141AD7D56FDC5F9A0170263000000001DCB591C9FA87CC8B3A457C26D6B8370802C5149647B2FB67CBF9"
    "79176335C66B8B"
)


# --- vectors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "sc", "text"),
    [
        (GLO_GET_SC30, 0x30, h("411312FF935A47566827C467BC7D825C3BE4A77C3FCC056B6B")),
        (GLO_GET_SC20, 0x20, h("411312FF935A47566827C467BC")),
        (GLO_GET_SC10, 0x10, h("C0010000080000010000FF020006725D910F9221D263877516")),
    ],
)
def test_gb_glo_get_request_vectors(wire: bytes, sc: int, text: bytes) -> None:
    # brief §5.3 (GB Table 40)
    apdu: object = decode_apdu(wire)
    assert apdu == GloGetRequest(sc, 0x01234567, text)
    assert GloGetRequest(sc, 0x01234567, text).encode() == wire


def test_gb_glo_initiate_request_and_response() -> None:
    # brief §5.3 second GB vector
    request = decode_apdu(GLO_INITIATE_REQUEST)
    assert isinstance(request, GloInitiateRequest)
    assert (request.security_control, request.invocation_counter) == (0x30, 0x01234567)
    assert len(request.ciphered_text) == 0x30 - 5
    assert request.encode() == GLO_INITIATE_REQUEST
    response = decode_apdu(GLO_INITIATE_RESPONSE)
    assert isinstance(response, GloInitiateResponse)
    assert (response.security_control, response.invocation_counter) == (0x30, 0x01234567)
    assert response.encode() == GLO_INITIATE_RESPONSE


def test_glo_initiate_inside_aarq_user_information() -> None:
    # brief §10.2: user-information BE 34 04 32 <glo-initiateRequest>
    at = AARQ_WITH_GLO_INITIATE.index(h("BE340432")) + 4
    inner = AARQ_WITH_GLO_INITIATE[at : at + 0x32]
    assert at + 0x32 == len(AARQ_WITH_GLO_INITIATE)
    assert inner == GLO_INITIATE_REQUEST
    assert isinstance(decode_apdu(inner), GloInitiateRequest)


def test_db_zero_length_system_title() -> None:
    # brief §5.4 (DC test): DB 00 ‖ len 1E ‖ SC 30 ‖ IC 800000D1 ‖ C ‖ T
    apdu = decode_apdu(DB_EMPTY_ST)
    assert apdu == GeneralGloCiphering(
        b"", 0x30, 0x800000D1, h("81EC9EC4BF53E9776EF0C453969FBDFE11BE9B791AACC0FF8C")
    )
    assert apdu.encode() == DB_EMPTY_ST


def test_db_vectors_decode() -> None:
    # brief §10.4 [DERIVED] and §10.5 (DC test_general_global_cipher.py)
    get = decode_apdu(DB_GB_GET)
    assert get == GeneralGloCiphering(h("4D4D4D0000BC614E"), 0x30, 0x01234567, GLO_GET_SC30[7:])
    push = decode_apdu(DB_PUSH)
    assert isinstance(push, GeneralGloCiphering)
    assert push.system_title == h("2F19229199164103")
    assert (push.security_control, push.invocation_counter) == (0x30, 0x1E5)
    assert len(push.ciphered_text) == 0x3B - 5
    assert push.encode() == DB_PUSH


def test_dd_wrapped_key_vector_decode() -> None:
    # brief §10.8 [DERIVED]; layout brief §6.1
    apdu = decode_apdu(DD_WRAPPED)
    assert apdu == GeneralCiphering(
        transaction_id=h("0000000000000001"),
        originator_system_title=h("4D4D4D0000BC614E"),
        recipient_system_title=h("4D4D4D0000000001"),
        date_time=b"",
        other_information=b"",
        key_info=WrappedKey(
            h("FB8CBD940CD80857285ED544D551141AD7D56FDC5F9A0170"), KekId.MASTER_KEY
        ),
        security_control=0x30,
        invocation_counter=1,
        ciphered_text=h("DCB591C9FA87CC8B3A457C26D6B8370802C5149647B2FB67CBF979176335C66B8B"),
    )
    assert apdu.encode() == DD_WRAPPED


def _dd(key_info: IdentifiedKey | WrappedKey | AgreedKey | None) -> GeneralCiphering:
    return GeneralCiphering(b"\x01", b"ORIGINAT", b"", b"", b"", key_info, 0x31, 7, b"\xaa")


@pytest.mark.parametrize(
    ("key_info", "wire"),
    [
        # brief §6.1 wire bytes of each Key-Info choice
        (None, "00"),
        (IdentifiedKey(KeyId.GLOBAL_UNICAST_ENCRYPTION_KEY), "010000"),
        (IdentifiedKey(KeyId.GLOBAL_BROADCAST_ENCRYPTION_KEY), "010001"),
        (WrappedKey(b"\x11" * 24), "01010018" + "11" * 24),
        (AgreedKey(b"\x02", b""), "0102010200"),
        (AgreedKey(b"\x01", b"\x22" * 128), "01020101" + "8180" + "22" * 128),
    ],
)
def test_dd_key_info_bytes(
    key_info: IdentifiedKey | WrappedKey | AgreedKey | None, wire: str
) -> None:
    header = "0101" + "08" + b"ORIGINAT".hex() + "00" * 3  # tid 01, originator, 3 empty fields
    expected = h("DD" + header + wire + "06" + "31" + "00000007" + "AA")
    assert _dd(key_info).encode() == expected
    assert decode_apdu(expected) == _dd(key_info)


def test_df_general_signing_layout() -> None:
    # brief §5.5: every field an OCTET STRING
    apdu = GeneralSigning(
        b"\x07", b"ORIGINAT", b"RECIPIEN", b"\x00" * 12, b"oi", b"\x0f\x01", b"S" * 64
    )
    wire = apdu.encode()
    assert wire == (
        b"\xdf\x01\x07\x08ORIGINAT\x08RECIPIEN\x0c"
        + b"\x00" * 12
        + b"\x02oi\x02\x0f\x01\x40"
        + b"S" * 64
    )
    assert decode_apdu(wire) == apdu


# brief §4.1 table: every service-specific ciphered tag, the plain tag it protects, glo/ded
BRIEF_TAG_TABLE = {
    0x21: (0x01, False), 0x25: (0x05, False), 0x26: (0x06, False), 0x28: (0x08, False),
    0x2C: (0x0C, False), 0x2D: (0x0D, False), 0x2E: (0x0E, False), 0x36: (0x16, False),
    0x38: (0x18, False), 0x41: (0x01, True), 0x45: (0x05, True), 0x46: (0x06, True),
    0x48: (0x08, True), 0x4C: (0x0C, True), 0x4D: (0x0D, True), 0x4E: (0x0E, True),
    0x56: (0x16, True), 0x58: (0x18, True),
    0xC8: (0xC0, False), 0xC9: (0xC1, False), 0xCA: (0xC2, False), 0xCB: (0xC3, False),
    0xCC: (0xC4, False), 0xCD: (0xC5, False), 0xCF: (0xC7, False),
    0xD0: (0xC0, True), 0xD1: (0xC1, True), 0xD2: (0xC2, True), 0xD3: (0xC3, True),
    0xD4: (0xC4, True), 0xD5: (0xC5, True), 0xD7: (0xC7, True),
}  # fmt: skip


def test_tag_table_matches_brief() -> None:
    classes = service_specific_classes()
    assert {cls.TAG: (cls.PROTECTED_TAG, cls.DEDICATED) for cls in classes} == BRIEF_TAG_TABLE
    assert {int(t) for t in CipheredTag} == set(BRIEF_TAG_TABLE)
    assert set(BRIEF_TAG_TABLE) | {0xDB, 0xDC, 0xDD, 0xDF} <= registered_tags()
    for cls in classes:
        prefix = "Ded" if cls.DEDICATED else "Glo"
        assert cls.__name__.startswith(prefix)
        assert ciphered_class_for(cls.PROTECTED_TAG, dedicated=cls.DEDICATED) is cls
    assert ciphered_class_for(0x0F, dedicated=False) is None


def test_glo_and_ded_twins_are_not_equal() -> None:
    glo: object = GloGetRequest(0x30, 1, b"x")
    assert glo != DedGetResponse(0x30, 1, b"x")
    assert GloGetRequest(0x30, 1, b"x") == GloGetRequest(0x30, 1, b"x")


# --- errors ----------------------------------------------------------------------------------


EMPTY_HEADER = "00" * 5  # transaction-id, originator, recipient, date-time, other-information
CONTENT = "053000000001"  # len 5 ‖ SC 30 ‖ IC 00000001


@pytest.mark.parametrize(
    "wire",
    [
        "C8",  # no length
        "C804300000",  # content shorter than the security header
        "C81E30012345",  # truncated
        "C8053001234567FF",  # trailing byte
        "DB08",  # truncated system title
        "DB0041",  # content of 0x41 bytes missing
        "DD" + EMPTY_HEADER + "00" + "00",  # key-info absent, content of 0 bytes
        "DD" + EMPTY_HEADER + "0103" + CONTENT,  # unknown key-info CHOICE 3
        "DD" + EMPTY_HEADER + "010002" + CONTENT,  # key-id 2 is not defined
        "DD" + EMPTY_HEADER + "01010100" + CONTENT,  # kek-id 1 is not defined
        "DD" + EMPTY_HEADER + "02" + CONTENT,  # presence flag 2
        "DD" + "000000" + "05AABBCCDDEE" + "0000" + CONTENT,  # date-time of 5 bytes
        "DF" + EMPTY_HEADER,  # no content, no signature
    ],
)
def test_malformed_raise_decode_error(wire: str) -> None:
    with pytest.raises(DecodeError):
        decode_apdu(h(wire))


def test_security_header_schema() -> None:
    assert build_security_header(0x30, 0x01234567) == h("3001234567")
    assert parse_security_header(h("FF3001234567"), 1) == (0x30, 0x01234567)
    with pytest.raises(DecodeError):
        parse_security_header(h("30012345"), 0)
    with pytest.raises(EncodeError):
        build_security_header(0x100, 0)
    with pytest.raises(EncodeError):
        build_security_header(0x30, 1 << 32)


@pytest.mark.parametrize(
    "apdu",
    [
        GloGetRequest(-1, 0, b""),
        GloGetRequest(0x30, 1 << 32, b""),
        GeneralCiphering(b"", b"", b"", b"\x00" * 5, b"", None, 0x30, 0, b""),
        GeneralCiphering(b"", b"", b"", b"", b"", IdentifiedKey(7), 0x30, 0, b""),  # type: ignore[arg-type]
        GeneralCiphering(b"", b"", b"", b"", b"", WrappedKey(b"", 3), 0x30, 0, b""),  # type: ignore[arg-type]
        GeneralSigning(b"", b"", b"", b"\x00", b"", b"", b""),
    ],
)
def test_encode_errors(apdu: ServiceSpecificCiphered | GeneralCiphering | GeneralSigning) -> None:
    with pytest.raises(EncodeError):
        apdu.encode()


# --- properties ------------------------------------------------------------------------------

octets = st.binary(max_size=300)
small = st.binary(max_size=20)
sc_values = st.integers(0, 255)
ic_values = st.integers(0, 0xFFFFFFFF)
date_times = st.sampled_from([b""]) | st.binary(min_size=12, max_size=12)

service_specific = st.sampled_from(service_specific_classes()).flatmap(
    lambda cls: st.builds(cls, sc_values, ic_values, octets)
)
general_glo_ded = st.builds(GeneralGloCiphering, small, sc_values, ic_values, octets) | st.builds(
    GeneralDedCiphering, small, sc_values, ic_values, octets
)
key_infos = st.one_of(
    st.none(),
    st.builds(IdentifiedKey, st.sampled_from(KeyId)),
    st.builds(WrappedKey, small, st.just(KekId.MASTER_KEY)),
    st.builds(AgreedKey, small, st.binary(max_size=200)),
)
general_ciphering = st.builds(
    GeneralCiphering,
    small,
    small,
    small,
    date_times,
    small,
    key_infos,
    sc_values,
    ic_values,
    octets,
)
general_signing = st.builds(
    GeneralSigning, small, small, small, date_times, small, octets, st.binary(max_size=100)
)
every_apdu = st.one_of(service_specific, general_glo_ded, general_ciphering, general_signing)


@given(every_apdu)
def test_round_trip(apdu: object) -> None:
    wire = apdu.encode()  # type: ignore[attr-defined]
    assert decode_apdu(wire) == apdu


MY_TAGS = [*sorted(BRIEF_TAG_TABLE), 0xDB, 0xDC, 0xDD, 0xDF]


@given(st.sampled_from(MY_TAGS), st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_decode_error(tag: int, body: bytes) -> None:
    try:
        decode_apdu(bytes((tag,)) + body)
    except DecodeError:
        pass


@given(every_apdu, st.data())
def test_mutations_raise_only_decode_error(apdu: object, data: st.DataObject) -> None:
    wire = apdu.encode()  # type: ignore[attr-defined]
    cut = data.draw(st.integers(0, len(wire) - 1))
    with pytest.raises(DecodeError):
        decode_apdu(wire[:cut])
    at = data.draw(st.integers(0, len(wire) - 1))
    flipped = bytearray(wire)
    flipped[at] ^= data.draw(st.integers(1, 255))
    try:
        decode_apdu(bytes(flipped))
    except DecodeError:
        pass


@given(st.integers(0, 255), st.integers(0, 2**32 - 1))
def test_security_header_struct_path_matches_construct_schema(sc: int, ic: int) -> None:
    # The hot-path struct parse and the normative construct schema agree on every header.
    from cosemcast.apdu._schemas import (
        _SECURITY_HEADER,
        build_security_header,
        parse_security_header,
    )

    raw = build_security_header(sc, ic)
    parsed = _SECURITY_HEADER.parse(raw)
    assert (
        parse_security_header(b"\x00" + raw, 1)
        == (
            parsed.security_control,
            parsed.invocation_counter,
        )
        == (sc, ic)
    )
