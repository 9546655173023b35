"""DATA-NOTIFICATION, EVENT-NOTIFICATION, EXCEPTION-Response, confirmedServiceError and
general-block-transfer: vectors, round trips, malformed input.

Vector sources are cited per test (brief = /work/shared/reference/DLMS_BRIEF.md; "DC" is
u9n/dlms-cosem). [DERIVED] vectors are assembled by hand from the byte layouts of the brief
section named next to them; they are not published vectors.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.base import Apdu
from cosemcast.apdu.common import CosemAttributeDescriptor, LongInvokeIdAndPriority
from cosemcast.apdu.gbt import GeneralBlockTransfer
from cosemcast.apdu.notifications import (
    AccessError,
    ConfirmedService,
    ConfirmedServiceError,
    DataNotification,
    EventNotificationRequest,
    ExceptionResponse,
    ExceptionServiceError,
    ExceptionStateError,
    InitiateError,
    ServiceErrorKind,
)
from cosemcast.axdr import (
    ClockStatus,
    CosemDateTime,
    LongUnsigned,
    OctetString,
    Unsigned,
    same_data,
)
from cosemcast.errors import DecodeError, EncodeError
from cosemcast.obis import Obis
from cosemcast.security.gcm import SymmetricKeys, unprotect
from strategies import data_values, datetimes, obis_codes

H = bytes.fromhex

# brief §4.6 / §10.5: DC tests/test_xdlms/test_data_notification.py
DN_VECTOR = H(
    "0F000001DB000922125A8591360000000049000000110000000A5A8513D014800000000D0000000A0100"
)
# brief §9.3 vector: 2021-01-24, 14:48:57.80, deviation -60 (DC test_set.py)
DT_BYTES = H("07E50118FF0E303950FFC400")
DT = CosemDateTime(2021, 1, 24, None, 14, 48, 57, 80, -60, ClockStatus(0))


# --- DATA-NOTIFICATION -----------------------------------------------------------------------


def test_data_notification_vector() -> None:
    apdu = decode_apdu(DN_VECTOR)
    assert isinstance(apdu, DataNotification)
    assert apdu.long_invoke_id_and_priority == LongInvokeIdAndPriority(invoke_id=0x1DB)
    assert apdu.date_time is None
    body = apdu.notification_body
    assert type(body) is OctetString and len(body) == 34
    assert body == DN_VECTOR[-34:]
    assert apdu.encode() == DN_VECTOR


def test_data_notification_from_ciphered_push() -> None:
    # brief §10.5 (DC tests/test_general_global_cipher.py): general-glo-ciphering DB, ST
    # 2F19229199164103, SC 30, IC 0x1E5, EK = AK = "MYDUMMYGLOBALKEY"; decrypts to DN_VECTOR.
    raw = H(
        "DB082F192291991641033B30000001E5025CE9D2271FD78BE8C204211A916A9D7F587E0A7A814CADEA"
        "89E9593F01F92EA8C087B5BDFDEFEAB6BECF282DFE49C08F5BE6DC8400"
    )
    system_title, length, sc = raw[2:10], raw[10], raw[11]
    ic = int.from_bytes(raw[12:16], "big")
    assert length == len(raw) - 11 and sc == 0x30 and ic == 0x1E5
    keys = SymmetricKeys(b"MYDUMMYGLOBALKEY", b"MYDUMMYGLOBALKEY")
    plain = unprotect(sc, keys, system_title, ic, raw[16:])
    assert plain == DN_VECTOR
    assert decode_apdu(plain) == decode_apdu(DN_VECTOR)


def test_data_notification_with_date_time_derived() -> None:
    # [DERIVED] brief §4.6 layout with the §9.3 date-time; body long-unsigned 5; invoke-id
    # 0xC0000001 = id 1, confirmed (bit 30), high priority (bit 31) (brief §4.4).
    raw = H("0FC0000001") + b"\x0c" + DT_BYTES + H("120005")
    apdu = DataNotification(
        LongInvokeIdAndPriority(invoke_id=1, confirmed=True, high_priority=True),
        DT,
        LongUnsigned(5),
    )
    assert apdu.encode() == raw
    decoded = decode_apdu(raw)
    assert decoded == apdu
    assert isinstance(decoded, DataNotification)
    assert type(decoded.notification_body) is LongUnsigned


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("0F000001", "long-invoke-id"),
        ("0F00000001", "date-time length"),
        ("0F000000010B" + "00" * 11 + "00", "holds 11 bytes"),
        ("0F000000010C" + "00" * 11, "truncated"),
        ("0F0000000100", "Data tag"),
        ("0F000000010000FF", "trailing"),
    ],
)
def test_data_notification_malformed(raw: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_apdu(H(raw))


# --- EVENT-NOTIFICATION-Request --------------------------------------------------------------

CLOCK_TIME = CosemAttributeDescriptor(8, Obis(0, 0, 1, 0, 0, 255), 2)


def test_event_notification_without_time_derived() -> None:
    # [DERIVED] brief §4.6: C2 ‖ 00 (no time) ‖ class 8, 0.0.1.0.0.255, attr 2 ‖ unsigned 7
    raw = H("C2 00 0008 0000010000FF 02 1107".replace(" ", ""))
    apdu = EventNotificationRequest(
        cosem_attribute_descriptor=CLOCK_TIME, attribute_value=Unsigned(7)
    )
    assert apdu.encode() == raw
    assert decode_apdu(raw) == apdu


def test_event_notification_time_presence_flag_quirk() -> None:
    # brief §4.6: A-XDR flag 01; GXN emits 09 and accepts any non-zero. We accept any
    # non-zero value and write 01.
    body = b"\x0c" + DT_BYTES + H("0008 0000010000FF 02 1107".replace(" ", ""))
    expected = EventNotificationRequest(
        time=DT, cosem_attribute_descriptor=CLOCK_TIME, attribute_value=Unsigned(7)
    )
    for flag in (0x01, 0x09, 0xFF):
        assert decode_apdu(bytes((0xC2, flag)) + body) == expected
    assert expected.encode() == b"\xc2\x01" + body


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("C2", "time presence flag"),
        ("C2010B" + "00" * 11, "holds 11 bytes"),
        ("C2000008000001", "Cosem-Attribute-Descriptor"),
        ("C2000008 0000010000FF 02".replace(" ", ""), "Data tag"),
    ],
)
def test_event_notification_malformed(raw: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_apdu(H(raw))


# --- EXCEPTION-Response ----------------------------------------------------------------------


def test_exception_response_derived() -> None:
    # [DERIVED] brief §4.6: D8 ‖ state-error ‖ service-error [‖ expected IC u32 for 6]
    apdu = decode_apdu(H("D80102"))
    assert apdu == ExceptionResponse(
        ExceptionStateError.SERVICE_NOT_ALLOWED, ExceptionServiceError.SERVICE_NOT_SUPPORTED
    )
    ic_error = ExceptionResponse(
        ExceptionStateError.SERVICE_UNKNOWN,
        ExceptionServiceError.INVOCATION_COUNTER_ERROR,
        0x01234568,
    )
    assert ic_error.encode() == H("D8020601234568")
    assert decode_apdu(H("D8020601234568")) == ic_error


def test_exception_response_encode_checks_counter() -> None:
    with pytest.raises(EncodeError):
        ExceptionResponse(
            ExceptionStateError.SERVICE_UNKNOWN, ExceptionServiceError.INVOCATION_COUNTER_ERROR
        ).encode()
    with pytest.raises(EncodeError):
        ExceptionResponse(
            ExceptionStateError.SERVICE_UNKNOWN, ExceptionServiceError.OTHER_REASON, 5
        ).encode()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("D80001", "unknown state-error 0"),
        ("D80107", "unknown service-error 7"),
        ("D8010600", "truncated"),
        ("D80101FF", "trailing"),
    ],
)
def test_exception_response_malformed(raw: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_apdu(H(raw))


# --- confirmedServiceError -------------------------------------------------------------------


def test_confirmed_service_error_vector() -> None:
    # brief §4.6: 0E 01 06 01 = initiateError, initiate, dlms-version-too-low (DC test_aare.py)
    apdu = decode_apdu(H("0E010601"))
    assert apdu == ConfirmedServiceError(
        ConfirmedService.INITIATE_ERROR,
        ServiceErrorKind.INITIATE,
        InitiateError.DLMS_VERSION_TOO_LOW,
    )
    assert isinstance(apdu, ConfirmedServiceError)
    assert apdu.value is InitiateError.DLMS_VERSION_TOO_LOW
    assert apdu.encode() == H("0E010601")


def test_confirmed_service_error_values() -> None:
    # [DERIVED] JD cosem.asn ServiceError: read [5], access [5], object-unavailable (4)
    apdu = decode_apdu(H("0E050504"))
    assert isinstance(apdu, ConfirmedServiceError)
    assert apdu.service is ConfirmedService.READ and apdu.value is AccessError.OBJECT_UNAVAILABLE
    unknown = decode_apdu(H("0E060563"))  # a value no enum names stays a plain int
    assert isinstance(unknown, ConfirmedServiceError)
    assert unknown.value == 99 and type(unknown.value) is int
    assert unknown.encode() == H("0E060563")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("0E000601", "unknown confirmedServiceError choice"),
        ("0E140601", "unknown confirmedServiceError choice"),
        ("0E010801", "unknown ServiceError choice"),
        ("0E0106", "truncated"),
    ],
)
def test_confirmed_service_error_malformed(raw: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_apdu(H(raw))


# --- general-block-transfer ------------------------------------------------------------------


def test_general_block_transfer_derived() -> None:
    # [DERIVED] brief §4.7: E0 ‖ control (bit 7 last, bit 6 streaming, 0-5 window) ‖ block u16
    # ‖ ack u16 ‖ len ‖ data.
    raw = H("E081 0001 0000 03 AABBCC".replace(" ", ""))
    apdu = GeneralBlockTransfer(last_block=True, window=1, block_number=1, block_data=H("AABBCC"))
    assert apdu.encode() == raw
    assert decode_apdu(raw) == apdu
    streaming = decode_apdu(H("E07F FFFF 0102 00".replace(" ", "")))
    assert streaming == GeneralBlockTransfer(
        last_block=False,
        streaming=True,
        window=63,
        block_number=0xFFFF,
        block_number_ack=0x0102,
        block_data=b"",
    )
    big = GeneralBlockTransfer(last_block=False, block_number=2, block_data=bytes(300))
    assert big.encode()[:9] == H("E0 01 0002 0000 82012C".replace(" ", ""))


def test_general_block_transfer_encode_checks() -> None:
    with pytest.raises(EncodeError):
        GeneralBlockTransfer(last_block=True, window=64, block_number=1, block_data=b"").encode()
    with pytest.raises(EncodeError):
        GeneralBlockTransfer(last_block=True, block_number=0x10000, block_data=b"").encode()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("E081", "block-number"),
        ("E081000100", "block-number-ack"),
        ("E0810001000003AA", "truncated"),
    ],
)
def test_general_block_transfer_malformed(raw: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_apdu(H(raw))


# --- Hypothesis ------------------------------------------------------------------------------

long_invoke_ids = st.builds(
    LongInvokeIdAndPriority,
    st.integers(0, 0xFFFFFF),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
descriptors = st.builds(
    CosemAttributeDescriptor, st.integers(0, 0xFFFF), obis_codes, st.integers(-128, 127)
)
data_notifications = st.builds(
    DataNotification, long_invoke_ids, st.none() | datetimes, data_values
)
event_notifications = st.builds(
    EventNotificationRequest,
    time=st.none() | datetimes,
    cosem_attribute_descriptor=descriptors,
    attribute_value=data_values,
)


@st.composite
def exception_responses(draw: st.DrawFn) -> ExceptionResponse:
    service = draw(st.sampled_from(ExceptionServiceError))
    ic = None
    if service is ExceptionServiceError.INVOCATION_COUNTER_ERROR:
        ic = draw(st.integers(0, 0xFFFFFFFF))
    return ExceptionResponse(draw(st.sampled_from(ExceptionStateError)), service, ic)


confirmed_service_errors = st.builds(
    ConfirmedServiceError,
    st.sampled_from(ConfirmedService),
    st.sampled_from(ServiceErrorKind),
    st.integers(0, 255),
)
gbts = st.builds(
    GeneralBlockTransfer,
    last_block=st.booleans(),
    streaming=st.booleans(),
    window=st.integers(0, 63),
    block_number=st.integers(0, 0xFFFF),
    block_number_ack=st.integers(0, 0xFFFF),
    block_data=st.binary(max_size=300),
)
all_apdus = st.one_of(
    data_notifications,
    event_notifications,
    exception_responses(),
    confirmed_service_errors,
    gbts,
)


@given(all_apdus)
def test_round_trip(apdu: Apdu) -> None:
    raw = apdu.encode()
    decoded = decode_apdu(raw)
    assert type(decoded) is type(apdu)
    assert decoded == apdu
    assert decoded.encode() == raw
    if isinstance(apdu, DataNotification):
        assert isinstance(decoded, DataNotification)
        assert same_data(decoded.notification_body, apdu.notification_body)
    if isinstance(apdu, EventNotificationRequest):
        assert isinstance(decoded, EventNotificationRequest)
        assert same_data(decoded.attribute_value, apdu.attribute_value)


_TAGS = [0x0F, 0xC2, 0xD8, 0x0E, 0xE0]


@given(st.sampled_from(_TAGS), st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_decode_error(tag: int, body: bytes) -> None:
    try:
        decode_apdu(bytes((tag,)) + body)
    except DecodeError:
        pass


@given(all_apdus, st.data())
def test_mutations_raise_only_decode_error(apdu: Apdu, data: st.DataObject) -> None:
    raw = apdu.encode()
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(DecodeError):
        decode_apdu(raw[:cut])  # every proper prefix is incomplete
    pos = data.draw(st.integers(0, len(raw) - 1))
    flipped = raw[:pos] + bytes((raw[pos] ^ data.draw(st.integers(1, 255)),)) + raw[pos + 1 :]
    try:
        decode_apdu(flipped)
    except DecodeError:
        pass


@given(st.data())
def test_vector_mutations_raise_only_decode_error(data: st.DataObject) -> None:
    raw = DN_VECTOR
    pos = data.draw(st.integers(0, len(raw) - 1))
    mutated = raw[:pos] + bytes((data.draw(st.integers(0, 255)),)) + raw[pos + 1 :]
    try:
        decode_apdu(mutated)
    except DecodeError:
        pass
