"""A-XDR Data codec: published vectors, round trips, and malformed input.

Vector sources are cited per test (brief = ../shared/reference/DLMS_BRIEF.md).
"""

from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosemcast.axdr import (
    DONT_CARE,
    Array,
    BitString,
    ClockStatus,
    CompactArray,
    CosemDate,
    CosemDateTime,
    CosemTime,
    DataType,
    DoubleLong,
    DoubleLongUnsigned,
    Enumerated,
    Float32,
    Float64,
    Integer,
    Long,
    Long64,
    Long64Unsigned,
    LongUnsigned,
    OctetString,
    Structure,
    TypeDescription,
    Unsigned,
    Utf8String,
    VisibleString,
    decode_data,
    decode_datetime_bytes,
    decode_length,
    encode_data,
    encode_length,
    same_data,
)
from cosemcast.errors import DecodeError, EncodeError
from strategies import data_values


def h(s: str) -> bytes:
    return bytes.fromhex(s.replace(" ", ""))


# --- published vectors ------------------------------------------------------------------------


def test_double_long_unsigned_get_response_value() -> None:
    # brief §10.3: GET response `C401C1 00 06 00001391` (DC tests/test_xdlms/test_get.py) -> 5009
    v = decode_data(h("0600001391"))
    assert same_data(v, DoubleLongUnsigned(5009))
    assert encode_data(v) == h("0600001391")


def test_datetime_cet_vector() -> None:
    # brief §9.3: `07E5 01 18 FF 0E 30 39 50 FFC4 00` = 2021-01-24 14:48:57.80, UTC+1
    # (DC tests/test_xdlms/test_set.py); as an octet-string inside SET normal (brief §10.3).
    raw = h("07E50118FF0E303950FFC400")
    v = decode_datetime_bytes(raw)
    assert v == CosemDateTime(2021, 1, 24, None, 14, 48, 57, 80, -60, ClockStatus(0))
    assert v.to_datetime() == dt.datetime(
        2021, 1, 24, 14, 48, 57, 800000, tzinfo=dt.timezone(dt.timedelta(hours=1))
    )
    tagged = decode_data(h("19") + raw)
    assert tagged == v
    assert encode_data(v) == h("19") + raw
    octet = decode_data(h("090C") + raw)
    assert isinstance(octet, OctetString)
    assert octet.as_datetime() == v


def test_datetime_jd_vector() -> None:
    # brief §9.3: `07D2 0C 04 03 0A 06 0B FF 0078 00` = 2002-12-04 Wed 10:06:11, deviation +120
    # (JD FcsCalcTest, inside the GET Clock.time response of brief §10.1 row i).
    v = decode_datetime_bytes(h("07D20C04030A060BFF007800"))
    assert (v.year, v.month, v.day, v.day_of_week) == (2002, 12, 4, 3)
    assert (v.hour, v.minute, v.second, v.hundredths) == (10, 6, 11, None)
    assert v.deviation == 120
    assert v.clock_status == ClockStatus(0)


def test_scaler_unit_structure() -> None:
    # brief §9.4: Register scaler_unit `02 02 0F FF 16 1E` = x0.1 Wh (JD RegisterAttribute),
    # and `02020F00161B` = W, x1 (DC UI vector).
    v = decode_data(h("02020FFF161E"))
    assert same_data(v, Structure([Integer(-1), Enumerated(30)]))
    assert same_data(decode_data(h("02020F00161B")), Structure([Integer(0), Enumerated(27)]))


def test_key_transfer_parameter() -> None:
    # brief §10.3 [DERIVED]: key_transfer array of structure{enum key_id, octet-string wrapped}
    raw = h("0101020216000918" + "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5")
    v = decode_data(raw)
    assert isinstance(v, Array) and isinstance(v[0], Structure)
    assert v[0][0] == 0 and isinstance(v[0][0], Enumerated)
    assert bytes(v[0][1]).hex().upper().startswith("1FA68B0A")
    assert encode_data(v) == raw


def test_octet_string_in_data_notification_body() -> None:
    # brief §4.6: DATA-NOTIFICATION body is a 34-byte octet-string (DC test_data_notification.py)
    body = h("0922125A8591360000000049000000110000000A5A8513D014800000000D0000000A0100")
    # The DC vector is `09 22 <34 bytes>`; 0x22 = 34.
    v = decode_data(body[: 2 + 0x22])
    assert isinstance(v, OctetString) and len(v) == 34


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (None, "00"),
        (True, "0301"),
        (False, "0300"),
        (Integer(-1), "0FFF"),
        (Long(-2), "10FFFE"),
        (Unsigned(200), "11C8"),
        (LongUnsigned(0x1234), "121234"),
        (DoubleLong(-1), "05FFFFFFFF"),
        (Long64(-1), "14FFFFFFFFFFFFFFFF"),
        (Long64Unsigned(2**64 - 1), "15FFFFFFFFFFFFFFFF"),
        (Enumerated(3), "1603"),
        (Float32(1.0), "173F800000"),
        (Float64(-2.0), "18C000000000000000"),
        (VisibleString("ABC"), "0A03414243"),
        (Utf8String("é"), "0C02C3A9"),
        (BitString.from_bits("1011"), "0404B0"),
        (CosemDate(2024, 2, 29, 4), "1A07E8021D04"),
        (CosemTime(23, 59, None, None), "1B173BFFFF"),
        (DONT_CARE, "FF"),
        (Array([]), "0100"),
    ],
)
def test_encodings_by_rule(value: object, encoded: str) -> None:
    # Encodings by the A-XDR rules of brief §9.1-§9.3 (fixed width, big-endian, tag first).
    assert encode_data(value) == h(encoded)
    assert same_data(decode_data(h(encoded)), value)


def test_long_lengths() -> None:
    # brief §9.1: < 0x80 one byte, else 0x81 nn, 0x82 nnnn (GXN SetObjectCount, DC).
    assert encode_length(0x7F) == h("7F")
    assert encode_length(0x80) == h("8180")
    assert encode_length(0x049E) == h("82049E")
    assert decode_length(h("82049E"), 0, 3) == (0x049E, 3)
    v = OctetString(bytes(300))
    assert encode_data(v)[:4] == h("09 82 012C")
    assert decode_data(encode_data(v)) == v


def test_compact_array_round_trip() -> None:
    desc = TypeDescription(
        DataType.STRUCTURE,
        members=(TypeDescription(DataType.UNSIGNED), TypeDescription(DataType.LONG_UNSIGNED)),
    )
    ca = CompactArray(
        desc, (Structure([Unsigned(1), LongUnsigned(2)]), Structure([Unsigned(3), LongUnsigned(4)]))
    )
    raw = encode_data(ca)
    # 13 | 02 02 11 12 (description) | 06 (contents length) | 01 0002 03 0004
    assert raw == h("13 02 02 11 12 06 01 0002 03 0004")
    assert same_data(decode_data(raw), ca)


def test_plain_int_is_refused() -> None:
    with pytest.raises(EncodeError, match="Unsigned"):
        encode_data(5)


@pytest.mark.parametrize(
    "value", [Unsigned(256), Integer(-129), LongUnsigned(-1), DoubleLongUnsigned(2**32)]
)
def test_out_of_range_refused(value: object) -> None:
    with pytest.raises(EncodeError, match="out of range"):
        encode_data(value)


def test_typed_values_behave_as_python_values() -> None:
    v = decode_data(h("0600001391"))
    assert v + 1 == 5010
    assert not same_data(Unsigned(5), Long(5))
    assert same_data(Float64(math.nan), Float64(math.nan))


# --- malformed input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "offset"),
    [
        ("", 0),
        ("06000013", 1),  # truncated double-long-unsigned
        ("0905AABB", 2),  # octet-string shorter than its length
        ("07", 0),  # unknown tag
        ("0185", 1),  # invalid length prefix
        ("01030000", 1),  # array of 3 cannot fit in 2 bytes
        ("0C02FFFE", 2),  # invalid UTF-8
        ("0600001391FF", 5),  # trailing byte
    ],
)
def test_malformed_names_offset(raw: str, offset: int) -> None:
    with pytest.raises(DecodeError) as info:
        decode_data(h(raw))
    assert info.value.offset == offset
    assert "offset" in str(info.value)


def test_deep_nesting_is_bounded() -> None:
    with pytest.raises(DecodeError, match="nested deeper"):
        decode_data(h("0101") * 100 + h("00"))


# --- properties ---------------------------------------------------------------------------------


@settings(max_examples=400)
@given(data_values)
def test_round_trip(value: object) -> None:
    raw = encode_data(value)
    back = decode_data(raw)
    assert encode_data(back) == raw
    # Plain bytes/str encode as octet-/visible-string and come back typed.
    if not isinstance(value, (bytes, str)) or isinstance(
        value, (OctetString, VisibleString, Utf8String)
    ):
        assert same_data(back, value)


@settings(max_examples=1000)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_decode_error(raw: bytes) -> None:
    try:
        decode_data(raw)
    except DecodeError:
        pass


@settings(max_examples=500)
@given(data_values, st.data())
def test_mutations_only_decode_error(value: object, data: st.DataObject) -> None:
    raw = bytearray(encode_data(value))
    cut = data.draw(st.integers(0, len(raw)))
    mutated = bytearray(raw[:cut])
    if mutated and data.draw(st.booleans()):
        i = data.draw(st.integers(0, len(mutated) - 1))
        mutated[i] = data.draw(st.integers(0, 255))
    try:
        decode_data(bytes(mutated))
    except DecodeError:
        pass


# --- the row-template fast path for arrays of flat structures ---------------------------------

_flat_scalars = st.one_of(
    st.integers(0, 2**32 - 1).map(DoubleLongUnsigned),
    st.integers(-(2**15), 2**15 - 1).map(Long),
    st.integers(0, 255).map(Unsigned),
    st.sampled_from([b"", b"\x07\xea\x0b\x18\x02\x00\x00\x00\x00\xff\xc4\x00", b"ab"]).map(
        OctetString
    ),
    st.floats(width=32, allow_nan=False).map(Float32),
    st.none(),
)
_rows = st.one_of(
    st.lists(_flat_scalars, min_size=1, max_size=4).map(Structure),
    _flat_scalars,
)


@settings(max_examples=400)
@given(st.lists(_rows, min_size=3, max_size=12), st.data())
def test_row_template_decodes_like_the_generic_path(
    rows: list[object], data: st.DataObject
) -> None:
    # Rows keep or change their shape at random: every row must decode to exactly its value,
    # and any truncation must still be a DecodeError.
    value = Array(rows)
    raw = encode_data(value)
    assert same_data(decode_data(raw), value)
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(DecodeError):
        decode_data(raw[:cut])


def test_row_template_rejects_row_with_other_octet_length() -> None:
    a = Structure([OctetString(b"\x01\x02"), Unsigned(1)])
    b = Structure([OctetString(b"\x01\x02\x03"), Unsigned(2)])
    value = Array([a, a, b, a])
    assert same_data(decode_data(encode_data(value)), value)


def test_str_is_the_plain_value_and_repr_the_typed_one() -> None:
    assert f"{Unsigned(8)}/{Float32(1.5)}" == "8/1.5"
    assert repr(Unsigned(8)) == "Unsigned(8)"
    assert f"{LongUnsigned(255):04X}" == "00FF"
