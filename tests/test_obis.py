"""Obis value type (IEC 62056-61 forms; byte vectors from brief §9.4)."""

from __future__ import annotations

import pytest
from hypothesis import given

from cosemcast.obis import Obis
from strategies import obis_codes


@pytest.mark.parametrize(
    ("text", "raw"),
    [
        ("0-0:1.0.0.255", "0000010000FF"),  # Clock (brief §9.4)
        ("0-0:40.0.0.255", "0000280000FF"),  # Association LN (brief §9.4)
        ("0-0:43.0.0.255", "00002B0000FF"),  # Security setup (brief §9.4)
        ("1-0:1.8.0.255", "0100010800FF"),  # active energy import (brief §9.4)
    ],
)
def test_known_codes(text: str, raw: str) -> None:
    o = Obis.parse(text)
    assert o.to_bytes() == bytes.fromhex(raw)
    assert Obis.from_bytes(bytes.fromhex(raw)) == o
    assert str(o) == text


@pytest.mark.parametrize(
    "text",
    [
        "1-0:1.8.0.255",
        "1.0.1.8.0.255",
        "1-0:1.8.0*255",
        "1-0:1.8.0",
        "0100010800FF",
        " 1-0:1.8.0.255 ",
    ],
)
def test_written_forms(text: str) -> None:
    assert Obis.parse(text) == Obis(1, 0, 1, 8, 0, 255)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1-0:1.8.0.256", "group F = 256 is out of range"),
        ("1-0:1.8", "not an OBIS code"),
        ("a-b:c.d.e.f", "not an OBIS code"),
        ("1.0.1.8.0.255.1", "not an OBIS code"),
        ("300.0.1.8.0.255", "group A = 300"),
    ],
)
def test_rejects_with_clear_message(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Obis.parse(text)


def test_constructor_checks_range() -> None:
    with pytest.raises(ValueError, match="group C = -1"):
        Obis(1, 0, -1, 8, 0, 255)
    with pytest.raises(ValueError, match="6 bytes"):
        Obis.from_bytes(b"\x01\x02")


def test_fields_and_repr() -> None:
    o = Obis.parse("1-2:3.4.5.6")
    assert (o.a, o.b, o.c, o.d, o.e, o.f) == (1, 2, 3, 4, 5, 6)
    assert eval(repr(o)) == o


@given(obis_codes)
def test_round_trip(o: Obis) -> None:
    assert Obis.parse(str(o)) == o
    assert Obis.from_bytes(o.to_bytes()) == o
