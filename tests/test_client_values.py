"""Pure pieces of the client and of ``cosemcast read``: the VALUE syntax of ``--set`` and
``--action``, the class-id guesses, and the typed errors' messages."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosemcast.apdu.common import ActionResult, DataAccessResult
from cosemcast.apdu.notifications import (
    ExceptionResponse,
    ExceptionServiceError,
    ExceptionStateError,
)
from cosemcast.axdr import codec
from cosemcast.axdr.types import (
    CosemDateTime,
    DoubleLong,
    Enumerated,
    Float64,
    Integer,
    Long64Unsigned,
    OctetString,
    Unsigned,
    Utf8String,
    VisibleString,
    same_data,
)
from cosemcast.cli.read import parse_value
from cosemcast.client import (
    ActionError,
    DataAccessError,
    ExceptionResponseError,
    guess_class_id,
)
from cosemcast.obis import Obis
from strategies import data_values


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("null", None),
        ("true", True),
        ("false", False),
        ("u8:255", Unsigned(255)),
        ("i8:-128", Integer(-128)),
        ("i32:0x7fffffff", DoubleLong(0x7FFFFFFF)),
        ("u64:18446744073709551615", Long64Unsigned(2**64 - 1)),
        ("enum:3", Enumerated(3)),
        ("f64:2.5", Float64(2.5)),
        ("octets:0A0b", OctetString(b"\x0a\x0b")),
        ("string:a:b", VisibleString("a:b")),
        ("utf8:é", Utf8String("é")),
        ("axdr:0203110112000A0900", None),  # checked below
    ],
)
def test_values(text: str, expected: object) -> None:
    value = parse_value(text)
    if text.startswith("axdr:"):
        assert codec.encode_data(value) == bytes.fromhex(text[5:])
    else:
        assert same_data(value, expected)


def test_a_datetime_value_is_the_octet_string_of_a_cosem_date_time() -> None:
    value = parse_value("datetime:2026-11-24T00:15+01:00")
    assert isinstance(value, OctetString) and len(value) == 12
    moment = codec.decode_datetime_bytes(bytes(value))
    assert isinstance(moment, CosemDateTime)
    assert moment.to_datetime() == dt.datetime(2026, 11, 23, 23, 15, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "text",
    ["42", "u8:256", "i8:-129", "u16:x", "octets:0", "string:é", "axdr:09", "nope:1", "f32:a"],
)
def test_bad_values_are_value_errors(text: str) -> None:
    with pytest.raises(ValueError):
        parse_value(text)


@given(data_values)
def test_any_data_round_trips_through_axdr_values(value: object) -> None:
    encoded = codec.encode_data(value)
    assert same_data(parse_value("axdr:" + encoded.hex()), value)


@given(st.text())
def test_arbitrary_text_only_ever_raises_value_error(text: str) -> None:
    try:
        parse_value(text)
    except ValueError:
        pass


@pytest.mark.parametrize(
    ("obis", "class_id"),
    [
        ("0-0:1.0.0.255", 8),
        ("0-0:40.0.0.255", 15),
        ("0-0:43.0.0.255", 64),
        ("0-0:25.9.0.255", 40),
        ("0-0:96.3.10.255", 70),
        ("1-0:99.1.0.255", 7),
        ("0-0:99.98.0.255", 7),
        ("1-0:1.8.0.255", 3),
        ("1-0:32.7.0.255", 3),
        ("7-0:3.0.0.255", 3),
        ("0-0:96.1.0.255", 1),
        ("1-0:0.9.1.255", 1),
        ("0-0:43.1.0.255", 1),
    ],
)
def test_class_guesses(obis: str, class_id: int) -> None:
    assert guess_class_id(Obis.parse(obis)) == class_id


def test_error_messages_name_the_object_and_the_result() -> None:
    error = DataAccessError(
        DataAccessResult.READ_WRITE_DENIED,
        class_id=3,
        obis=Obis.parse("1-0:1.8.0.255"),
        attribute=2,
    )
    assert str(error) == "3/1-0:1.8.0.255 attribute 2: read-write-denied"
    assert not error.class_related
    assert DataAccessError(DataAccessResult.OBJECT_UNDEFINED).class_related
    action = ActionError(ActionResult.OBJECT_CLASS_INCONSISTENT, obis=Obis.parse("0-0:1.0.0.255"))
    assert action.class_related and "object-class-inconsistent" in str(action)
    counter = ExceptionResponse(
        ExceptionStateError.SERVICE_NOT_ALLOWED, ExceptionServiceError.INVOCATION_COUNTER_ERROR, 77
    )
    text = str(ExceptionResponseError(counter, protected=False))
    assert "expects invocation counter 77" in text and "(in clear)" in text
