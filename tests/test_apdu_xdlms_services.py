"""GET / SET / ACTION APDUs (LN referencing): published vectors, round trips, fuzzing.

Vectors come from brief §10.3 (DC = u9n/dlms-cosem tests/test_xdlms/{test_get,test_set,
test_action}.py unless noted) and from the JD HDLC frames of brief §10.1 rows h, i, j
(xdom/jdlms src/test/java/org/openmuc/jdlms/sessionlayer/hdlc/FcsCalcTest.java). [DERIVED]
vectors are built by the brief from the rules; each is cross-checked here against an
independent primitive (GMAC, RFC 3394 key wrap) where possible.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.keywrap import aes_key_wrap
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.action import (
    ActionRequestNextPBlock,
    ActionRequestNormal,
    ActionRequestWithFirstPBlock,
    ActionRequestWithList,
    ActionRequestWithListAndFirstPBlock,
    ActionRequestWithPBlock,
    ActionResponseNextPBlock,
    ActionResponseNormal,
    ActionResponseWithList,
    ActionResponseWithOptionalData,
    ActionResponseWithPBlock,
)
from cosemcast.apdu.common import (
    ABSENT,
    ActionResult,
    CosemAttributeDescriptor,
    CosemAttributeDescriptorWithSelection,
    CosemMethodDescriptor,
    DataAccessResult,
    DataBlockG,
    DataBlockSA,
    GetDataError,
    GetDataValue,
    InvokeIdAndPriority,
    LongInvokeIdAndPriority,
    SelectiveAccess,
)
from cosemcast.apdu.get import (
    GetRequestNext,
    GetRequestNormal,
    GetRequestWithList,
    GetResponseNormal,
    GetResponseWithDataBlock,
    GetResponseWithList,
)
from cosemcast.apdu.set import (
    SetRequestNormal,
    SetRequestWithDataBlock,
    SetRequestWithFirstDataBlock,
    SetRequestWithList,
    SetRequestWithListAndFirstDataBlock,
    SetResponseDataBlock,
    SetResponseLastDataBlock,
    SetResponseLastDataBlockWithList,
    SetResponseNormal,
    SetResponseWithList,
)
from cosemcast.axdr import (
    Array,
    DoubleLongUnsigned,
    Enumerated,
    OctetString,
    Structure,
    same_data,
)
from cosemcast.errors import DecodeError, EncodeError
from cosemcast.obis import Obis
from cosemcast.security.gcm import SymmetricKeys, gmac
from strategies import data_values, obis_codes

C1 = InvokeIdAndPriority(1, confirmed=True, high_priority=True)
C0 = InvokeIdAndPriority(0, confirmed=True, high_priority=True)
X81 = InvokeIdAndPriority(1, confirmed=False, high_priority=True)  # JD sends 0x81
CLOCK = Obis(0, 0, 1, 0, 0, 255)
ASSOCIATION_LN = Obis(0, 0, 40, 0, 0, 255)
SECURITY_SETUP = Obis(0, 0, 43, 0, 0, 255)


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def check_vector(raw: bytes, expected: Any) -> None:
    """decode -> the expected fields; encode -> exactly the published bytes."""
    decoded = decode_apdu(raw)
    assert decoded == expected
    assert type(decoded) is type(expected)
    assert expected.encode() == raw
    assert decoded.encode() == raw


# --- published vectors (brief §10.3) -----------------------------------------------------------

VECTORS = [
    pytest.param(  # brief §10.3 GET normal (DC test_get.py)
        "C001C1 0001 00002B0100FF 02 00",
        GetRequestNormal(CosemAttributeDescriptor(1, Obis(0, 0, 43, 1, 0, 255), 2), None, C1),
        id="get-request-normal",
    ),
    pytest.param(  # brief §10.3 GET response (DC test_get.py)
        "C401C1 00 06 00001391",
        GetResponseNormal(GetDataValue(DoubleLongUnsigned(5009)), C1),
        id="get-response-normal",
    ),
    pytest.param(  # brief §10.3 GET response error form (DC test_get.py)
        "C401C1 01 01",
        GetResponseNormal(GetDataError(DataAccessResult.HARDWARE_FAULT), C1),
        id="get-response-error",
    ),
    pytest.param(  # brief §10.3 GET next (DC test_get.py)
        "C002C1 00000001", GetRequestNext(1, C1), id="get-request-next"
    ),
    pytest.param(  # brief §10.3 GET with-list (DC test_get.py)
        "C003C1 02 0001 00002A0000FF 02 00 0008 0000010000FF 02 00",
        GetRequestWithList(
            (
                CosemAttributeDescriptorWithSelection(
                    CosemAttributeDescriptor(1, Obis(0, 0, 42, 0, 0, 255), 2)
                ),
                CosemAttributeDescriptorWithSelection(CosemAttributeDescriptor(8, CLOCK, 2)),
            ),
            C1,
        ),
        id="get-request-with-list",
    ),
    pytest.param(  # brief §10.3 SET normal (DC test_set.py); value = date-time 2021-01-24
        "C101C1 0008 0000010000FF 02 00 090C07E50118FF0E303950FFC400",
        SetRequestNormal(
            CosemAttributeDescriptor(8, CLOCK, 2),
            OctetString(h("07E50118FF0E303950FFC400")),
            None,
            C1,
        ),
        id="set-request-normal",
    ),
    pytest.param(  # brief §10.3 SET response (DC test_set.py)
        "C501C1 00", SetResponseNormal(DataAccessResult.SUCCESS, C1), id="set-response-normal"
    ),
    pytest.param(  # brief §10.3 ACTION HLS reply from a real meter (DC test_action.py)
        "C301C0 000F 0000280000FF 01 01 0911 10 00001A90 E6D2221FA2FD85EED61ACC22",
        ActionRequestNormal(
            CosemMethodDescriptor(15, ASSOCIATION_LN, 1),
            OctetString(h("10 00001A90 E6D2221FA2FD85EED61ACC22")),
            C0,
        ),
        id="action-request-hls-reply",
    ),
    pytest.param(  # brief §10.3 ACTION response with return data (DC test_action.py)
        "C701C0 00 01 00 0911 10 00001AFD E8857B728A3499106AA665D1",
        ActionResponseNormal(
            ActionResult.SUCCESS,
            GetDataValue(OctetString(h("10 00001AFD E8857B728A3499106AA665D1"))),
            C0,
        ),
        id="action-response-hls",
    ),
    pytest.param(  # brief §10.3 ACTION response error form (DC test_action.py)
        "C701C0 00 01 01 FA",
        ActionResponseNormal(ActionResult.SUCCESS, GetDataError(DataAccessResult.OTHER_REASON), C0),
        id="action-response-error",
    ),
    pytest.param(  # brief §10.3 [DERIVED] GB Table 43 f(StoC) as an ACTION request
        "C301C1000F0000280000FF0101091110000000011A52FE7DD3E72748973C1E28",
        ActionRequestNormal(
            CosemMethodDescriptor(15, ASSOCIATION_LN, 1),
            OctetString(h("10 00000001 1A52FE7DD3E72748973C1E28")),
            C1,
        ),
        id="derived-gb-table43-request",
    ),
    pytest.param(  # brief §10.3 [DERIVED] GB Table 43 f(CtoS) as an ACTION response
        "C701C100010009111001234567FE1466AFB3DBCD4F9389E2B7",
        ActionResponseNormal(
            ActionResult.SUCCESS,
            GetDataValue(OctetString(h("10 01234567 FE1466AFB3DBCD4F9389E2B7"))),
            C1,
        ),
        id="derived-gb-table43-response",
    ),
    pytest.param(  # brief §10.3 / §8 [DERIVED] Security Setup key_transfer of the GUEK
        "C301C1004000002B0000FF020101010202160009181FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5",
        ActionRequestNormal(
            CosemMethodDescriptor(64, SECURITY_SETUP, 2),
            Array(
                [
                    Structure(
                        [
                            Enumerated(0),
                            OctetString(h("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5")),
                        ]
                    )
                ]
            ),
            C1,
        ),
        id="derived-key-transfer",
    ),
]


@pytest.mark.parametrize(("hex_text", "expected"), VECTORS)
def test_published_vectors(hex_text: str, expected: Any) -> None:
    check_vector(h(hex_text), expected)


def test_get_response_with_datablock_header() -> None:
    # brief §10.3 (DC test_get.py): only the header is published; the 0x049E raw-data bytes
    # that follow it here are filler of ours.
    filler = bytes(range(256)) * 4 + bytes(0x049E - 1024)
    raw = h("C402C1 00 00000001 00 82049E") + filler
    decoded = decode_apdu(raw)
    assert isinstance(decoded, GetResponseWithDataBlock)
    assert decoded.invoke_id_and_priority == C1
    assert decoded.result.last_block is False
    assert decoded.result.block_number == 1
    assert decoded.result.result == filler
    assert GetResponseWithDataBlock(DataBlockG(False, 1, filler), C1).encode() == raw


def test_derived_gb_table43_gmac_cross_check() -> None:
    # The [DERIVED] ACTION pair carries GB Table 43 (brief §7.2) f(StoC) / f(CtoS): recompute
    # both GMACs with the keys of brief §5.3 so the vectors do not rest on the brief alone.
    keys = SymmetricKeys(
        h("000102030405060708090A0B0C0D0E0F"), h("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
    )
    f_stoc = b"\x10" + h("00000001") + gmac(keys, h("4D4D4D0000000001"), 1, b"P6wRJ21F")
    f_ctos = b"\x10" + h("01234567") + gmac(keys, h("4D4D4D0000BC614E"), 0x01234567, b"K56iVagY")
    request = decode_apdu(h("C301C1000F0000280000FF0101091110000000011A52FE7DD3E72748973C1E28"))
    response = decode_apdu(h("C701C100010009111001234567FE1466AFB3DBCD4F9389E2B7"))
    assert isinstance(request, ActionRequestNormal)
    assert request.method_invocation_parameters == f_stoc
    assert isinstance(response, ActionResponseNormal)
    assert response.return_parameters == GetDataValue(OctetString(f_ctos))


def test_derived_key_transfer_cross_check() -> None:
    # brief §8 / §10.3: key_wrapped = AES-KW(master key, GUEK) (RFC 3394 §4.1 inputs).
    wrapped = aes_key_wrap(
        h("000102030405060708090A0B0C0D0E0F"), h("00112233445566778899AABBCCDDEEFF")
    )
    expected = ActionRequestNormal(
        CosemMethodDescriptor(64, SECURITY_SETUP, 2),
        Array([Structure([Enumerated(0), OctetString(wrapped)])]),
        C1,
    )
    assert expected.encode() == h(
        "C301C1004000002B0000FF020101010202160009181FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"
    )


# --- JD HDLC frames (brief §10.1 rows h, i, j) ---------------------------------------------------


def _fcs16(data: bytes) -> bytes:
    """RFC 1662 FCS-16, transmitted low byte first (used only to check the transcription)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    crc ^= 0xFFFF
    return bytes((crc & 0xFF, crc >> 8))


def apdu_in_jd_frame(frame_hex: str, fcs_hex: str) -> bytes:
    """The APDU inside a JD frame (listed without flags and FCS): after format (2), the two
    1-byte addresses, control, HCS (2) and the 3 LLC bytes."""
    frame = h(frame_hex)
    assert _fcs16(frame) == h(fcs_hex)
    assert ((frame[0] & 0x07) << 8 | frame[1]) == len(frame) + 2  # length includes the FCS
    assert frame[7:10] in (h("E6E600"), h("E6E700"))
    return frame[10:]


JD_FRAMES = [
    pytest.param(  # row h: GET Clock.logical_name
        "A0199575546835E6E600C0018100080000010000FF0100",
        "0DFD",
        GetRequestNormal(CosemAttributeDescriptor(8, CLOCK, 1), None, X81),
        id="h-get-logical-name",
    ),
    pytest.param(  # row h: its response
        "A018759574E9E8E6E700C401810009060000010000FF",
        "FD49",
        GetResponseNormal(GetDataValue(OctetString(h("0000010000FF"))), X81),
        id="h-get-logical-name-response",
    ),
    pytest.param(  # row i: GET Clock.time
        "A0199575767837E6E600C0018100080000010000FF0200",
        "65D7",
        GetRequestNormal(CosemAttributeDescriptor(8, CLOCK, 2), None, X81),
        id="i-get-time",
    ),
    pytest.param(  # row i: its response, 2002-12-04 10:06:11, deviation 120
        "A01E7595966F67E6E700C4018100090C07D20C04030A060BFF007800",
        "F330",
        GetResponseNormal(GetDataValue(OctetString(h("07D20C04030A060BFF007800"))), X81),
        id="i-get-time-response",
    ),
    pytest.param(  # row j: SET Clock.time
        "A027957598B8DBE6E600C1018100080000010000FF0200090C07D20C04030A060BFF007800",
        "62FB",
        SetRequestNormal(
            CosemAttributeDescriptor(8, CLOCK, 2),
            OctetString(h("07D20C04030A060BFF007800")),
            None,
            X81,
        ),
        id="j-set-time",
    ),
    pytest.param(  # row j: SET response success
        "A0107595B85101E6E700C5018100",
        "36CF",
        SetResponseNormal(DataAccessResult.SUCCESS, X81),
        id="j-set-time-response",
    ),
]


@pytest.mark.parametrize(("frame_hex", "fcs_hex", "expected"), JD_FRAMES)
def test_jd_frames(frame_hex: str, fcs_hex: str, expected: Any) -> None:
    check_vector(apdu_in_jd_frame(frame_hex, fcs_hex), expected)


def test_jd_time_value_is_the_published_date_time() -> None:
    raw = apdu_in_jd_frame("A01E7595966F67E6E700C4018100090C07D20C04030A060BFF007800", "F330")
    decoded = decode_apdu(raw)
    assert isinstance(decoded, GetResponseNormal)
    assert isinstance(decoded.result, GetDataValue)
    assert isinstance(decoded.result.value, OctetString)
    dt = decoded.result.value.as_datetime()
    assert (dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second) == (2002, 12, 4, 10, 6, 11)
    assert dt.deviation == 120


# --- invoke-id fields (brief §4.4) ---------------------------------------------------------------


def test_invoke_id_and_priority_bits() -> None:
    assert InvokeIdAndPriority.from_byte(0xC1) == InvokeIdAndPriority(1, True, True)
    assert InvokeIdAndPriority.from_byte(0x81) == InvokeIdAndPriority(1, False, True)
    assert InvokeIdAndPriority.from_byte(0x4F) == InvokeIdAndPriority(15, True, False)
    assert InvokeIdAndPriority().to_byte() == 0xC1
    for byte in range(256):
        assert InvokeIdAndPriority.from_byte(byte).to_byte() == byte & 0xCF  # bits 4-5 reserved
    with pytest.raises(EncodeError):
        InvokeIdAndPriority(16).to_byte()
    with pytest.raises(DecodeError):
        InvokeIdAndPriority.from_byte(256)


def test_long_invoke_id_of_the_data_notification_vector() -> None:
    # brief §4.6 DATA-NOTIFICATION vector (DC test_data_notification.py) starts 0F 000001DB.
    value = LongInvokeIdAndPriority.from_int(0x000001DB)
    assert value == LongInvokeIdAndPriority(0x1DB)
    assert value.to_int() == 0x1DB
    flags = LongInvokeIdAndPriority(5, True, True, True, True)
    assert flags.to_int() == 0xF0000005
    assert LongInvokeIdAndPriority.from_int(0xFF000005) == flags  # bits 24-27 reserved
    with pytest.raises(EncodeError):
        LongInvokeIdAndPriority(1 << 24).to_int()
    with pytest.raises(DecodeError):
        LongInvokeIdAndPriority.from_int(-1)


@given(st.integers(0, 0xFFFFFF), st.booleans(), st.booleans(), st.booleans(), st.booleans())
def test_long_invoke_id_round_trip(i: int, a: bool, b: bool, c: bool, d: bool) -> None:
    value = LongInvokeIdAndPriority(i, a, b, c, d)
    assert LongInvokeIdAndPriority.from_int(value.to_int()) == value


# --- decisions and error paths ----------------------------------------------------------------


def test_optional_parameters_absent_differs_from_null_data() -> None:
    method = CosemMethodDescriptor(70, Obis(0, 0, 96, 3, 10, 255), 1)  # Disconnect control
    absent = decode_apdu(h("C301C1 0046 000060030AFF 01 00"))
    null = decode_apdu(h("C301C1 0046 000060030AFF 01 01 00"))
    assert absent == ActionRequestNormal(method, ABSENT, C1)
    assert null == ActionRequestNormal(method, None, C1)
    assert ActionRequestNormal(method).encode() == h("C301C1 0046 000060030AFF 01 00")
    assert ActionRequestNormal(method, None).encode() == h("C301C1 0046 000060030AFF 01 01 00")


def test_get_data_result_is_unambiguous() -> None:
    value = decode_apdu(h("C401C1 00 16 01"))  # enum 1 as the value
    error = decode_apdu(h("C401C1 01 01"))  # hardware-fault
    assert isinstance(value, GetResponseNormal)
    assert isinstance(error, GetResponseNormal)
    assert isinstance(value.result, GetDataValue)
    assert same_data(value.result.value, Enumerated(1))
    assert isinstance(error.result, GetDataError)
    assert value != error


def test_selective_access_round_trip() -> None:
    # Profile generic (class 7) buffer read by entry: selector 2, entry descriptor structure.
    params = Structure([DoubleLongUnsigned(1), DoubleLongUnsigned(10)])
    request = GetRequestNormal(
        CosemAttributeDescriptor(7, Obis(1, 0, 99, 1, 0, 255), 2), SelectiveAccess(2, params)
    )
    raw = request.encode()
    assert raw == h("C001C1 0007 0100630100FF 02 01 02 0202 0600000001 060000000A")
    assert decode_apdu(raw) == request


@pytest.mark.parametrize(
    ("hex_text", "offset"),
    [
        ("C4", 1),  # no choice byte
        ("C409C1 00 00", 1),  # unknown GET-Response choice
        ("C000", 1),  # choice 0 is not defined
        ("C401C1 02 00", 3),  # Get-Data-Result choice 2
        ("C401C1 01 05", 4),  # 5 is not a Data-Access-Result
        ("C501C1 63", 3),  # 99 is not a Data-Access-Result
        ("C701C1 05 00", 3),  # 5 is not an Action-Result
        ("C001C1 0001 00002B0100FF 02 02", 12),  # presence flag 02
        ("C001C1 0001 00002B0100FF 02 00 00", 13),  # trailing byte
        ("C402C1 00 00000001 02", 8),  # DataBlock-G result choice 2
        ("C003C1 7F 0001", 3),  # list announces more items than bytes
        ("C301C1 000F 0000280000", 3),  # truncated method descriptor (starts at 3)
    ],
)
def test_malformed_inputs_name_the_offset(hex_text: str, offset: int) -> None:
    with pytest.raises(DecodeError) as info:
        decode_apdu(h(hex_text))
    assert info.value.offset == offset


@pytest.mark.parametrize(
    "apdu",
    [
        GetRequestNormal(CosemAttributeDescriptor(70000, CLOCK, 2)),
        GetRequestNormal(CosemAttributeDescriptor(8, CLOCK, 128)),
        GetRequestNormal(CosemAttributeDescriptor(8, CLOCK, 2), SelectiveAccess(256, None)),
        GetRequestNext(-1),
        GetRequestNext(2**32),
        GetRequestNext(1, InvokeIdAndPriority(16)),
        SetResponseNormal(99),  # type: ignore[arg-type]
        ActionResponseNormal(7),  # type: ignore[arg-type]
        GetResponseWithDataBlock(DataBlockG(True, 1, 77)),  # type: ignore[arg-type]
        ActionRequestWithPBlock(DataBlockSA(True, 2**32, b"")),
        GetRequestNormal(CosemAttributeDescriptor(8, (0, 0, 1), 2)),  # type: ignore[arg-type]
        SetRequestNormal(CosemAttributeDescriptor(8, CLOCK, 2), object()),  # type: ignore[arg-type]
    ],
)
def test_encode_errors(apdu: Any) -> None:
    with pytest.raises(EncodeError):
        apdu.encode()


# --- Hypothesis round trips ---------------------------------------------------------------------

invokes = st.builds(InvokeIdAndPriority, st.integers(0, 15), st.booleans(), st.booleans())
u32 = st.integers(0, 2**32 - 1)
attribute_descriptors = st.builds(
    CosemAttributeDescriptor, st.integers(0, 0xFFFF), obis_codes, st.integers(-128, 127)
)
method_descriptors = st.builds(
    CosemMethodDescriptor, st.integers(0, 0xFFFF), obis_codes, st.integers(-128, 127)
)
selections = st.none() | st.builds(SelectiveAccess, st.integers(0, 255), data_values)
with_selection = st.builds(CosemAttributeDescriptorWithSelection, attribute_descriptors, selections)
dars = st.sampled_from(DataAccessResult)
action_results = st.sampled_from(ActionResult)
get_data_results = st.builds(GetDataValue, data_values) | st.builds(GetDataError, dars)
blocks_sa = st.builds(DataBlockSA, st.booleans(), u32, st.binary(max_size=300))
blocks_g = st.builds(DataBlockG, st.booleans(), u32, st.binary(max_size=300) | dars)
optional_data = st.just(ABSENT) | data_values


def tuples(strategy: st.SearchStrategy[Any], max_size: int = 4) -> st.SearchStrategy[Any]:
    return st.lists(strategy, max_size=max_size).map(tuple)


APDU_STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "GetRequestNormal": st.builds(GetRequestNormal, attribute_descriptors, selections, invokes),
    "GetRequestNext": st.builds(GetRequestNext, u32, invokes),
    "GetRequestWithList": st.builds(GetRequestWithList, tuples(with_selection), invokes),
    "GetResponseNormal": st.builds(GetResponseNormal, get_data_results, invokes),
    "GetResponseWithDataBlock": st.builds(GetResponseWithDataBlock, blocks_g, invokes),
    "GetResponseWithList": st.builds(GetResponseWithList, tuples(get_data_results), invokes),
    "SetRequestNormal": st.builds(
        SetRequestNormal, attribute_descriptors, data_values, selections, invokes
    ),
    "SetRequestWithFirstDataBlock": st.builds(
        SetRequestWithFirstDataBlock, attribute_descriptors, blocks_sa, selections, invokes
    ),
    "SetRequestWithDataBlock": st.builds(SetRequestWithDataBlock, blocks_sa, invokes),
    "SetRequestWithList": st.builds(
        SetRequestWithList, tuples(with_selection), tuples(data_values), invokes
    ),
    "SetRequestWithListAndFirstDataBlock": st.builds(
        SetRequestWithListAndFirstDataBlock, tuples(with_selection), blocks_sa, invokes
    ),
    "SetResponseNormal": st.builds(SetResponseNormal, dars, invokes),
    "SetResponseDataBlock": st.builds(SetResponseDataBlock, u32, invokes),
    "SetResponseLastDataBlock": st.builds(SetResponseLastDataBlock, dars, u32, invokes),
    "SetResponseLastDataBlockWithList": st.builds(
        SetResponseLastDataBlockWithList, tuples(dars), u32, invokes
    ),
    "SetResponseWithList": st.builds(SetResponseWithList, tuples(dars), invokes),
    "ActionRequestNormal": st.builds(
        ActionRequestNormal, method_descriptors, optional_data, invokes
    ),
    "ActionRequestNextPBlock": st.builds(ActionRequestNextPBlock, u32, invokes),
    "ActionRequestWithList": st.builds(
        ActionRequestWithList, tuples(method_descriptors), tuples(data_values), invokes
    ),
    "ActionRequestWithFirstPBlock": st.builds(
        ActionRequestWithFirstPBlock, method_descriptors, blocks_sa, invokes
    ),
    "ActionRequestWithListAndFirstPBlock": st.builds(
        ActionRequestWithListAndFirstPBlock, tuples(method_descriptors), blocks_sa, invokes
    ),
    "ActionRequestWithPBlock": st.builds(ActionRequestWithPBlock, blocks_sa, invokes),
    "ActionResponseNormal": st.builds(
        ActionResponseNormal, action_results, st.none() | get_data_results, invokes
    ),
    "ActionResponseWithPBlock": st.builds(ActionResponseWithPBlock, blocks_sa, invokes),
    "ActionResponseWithList": st.builds(
        ActionResponseWithList,
        tuples(
            st.builds(ActionResponseWithOptionalData, action_results, st.none() | get_data_results)
        ),
        invokes,
    ),
    "ActionResponseNextPBlock": st.builds(ActionResponseNextPBlock, u32, invokes),
}
ANY_APDU = st.one_of(list(APDU_STRATEGIES.values()))


@pytest.mark.parametrize("name", sorted(APDU_STRATEGIES))
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip(name: str, data: st.DataObject) -> None:
    apdu = data.draw(APDU_STRATEGIES[name])
    assert type(apdu).__name__ == name
    raw = apdu.encode()
    decoded = decode_apdu(raw)
    assert type(decoded) is type(apdu)
    assert decoded == apdu
    assert decoded.encode() == raw  # same wire types, not only equal values


# --- fuzzing: only DecodeError may escape -------------------------------------------------------

SERVICE_TAGS = [0xC0, 0xC1, 0xC3, 0xC4, 0xC5, 0xC7]


def decode_or_decode_error(raw: bytes) -> None:
    try:
        decode_apdu(raw)
    except DecodeError:
        pass


@settings(max_examples=500)
@given(st.sampled_from(SERVICE_TAGS), st.integers(0, 7), st.binary(max_size=64))
def test_arbitrary_bodies_raise_only_decode_error(tag: int, choice: int, body: bytes) -> None:
    decode_or_decode_error(bytes((tag, choice)) + body)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(ANY_APDU, st.data())
def test_mutations_raise_only_decode_error(apdu: Any, data: st.DataObject) -> None:
    raw = apdu.encode()
    cut = data.draw(st.integers(0, len(raw) - 1), label="cut")
    with pytest.raises(DecodeError):  # a strict prefix can never be a whole APDU
        decode_apdu(raw[:cut])
    pos = data.draw(st.integers(0, len(raw) - 1), label="pos")
    flip = data.draw(st.integers(1, 255), label="flip")
    flipped = bytearray(raw)
    flipped[pos] ^= flip
    decode_or_decode_error(bytes(flipped))
    extra = data.draw(st.binary(min_size=1, max_size=4), label="extra")
    decode_or_decode_error(raw[:pos] + extra + raw[pos:])
    with pytest.raises(DecodeError):
        decode_apdu(raw + extra)
