"""Data (1), Register (3), Extended register (4), units and RegisterValue."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from cosemcast.apdu.common import (
    ActionResult,
    CosemAttributeDescriptor,
    CosemMethodDescriptor,
    DataAccessResult,
)
from cosemcast.axdr import (
    CosemDateTime,
    DoubleLong,
    DoubleLongUnsigned,
    Enumerated,
    Float32,
    Integer,
    Long64,
    LongUnsigned,
    OctetString,
    Structure,
    Unsigned,
    VisibleString,
    decode_data,
    encode_data,
)
from cosemcast.cosem import (
    AccessRights,
    DataObject,
    ExtendedRegister,
    ObjectModel,
    Register,
    RegisterValue,
    Unit,
    parse_scaler_unit,
    unit_symbol,
)
from cosemcast.cosem.units import unit_name
from cosemcast.errors import DecodeError
from cosemcast.obis import Obis
from test_cosem_fixtures import ENERGY, MANAGEMENT, PUBLIC, SERIAL, FakeTime, ctx, small_meter


def attr(class_id: int, obis: Obis, attribute_id: int) -> CosemAttributeDescriptor:
    return CosemAttributeDescriptor(class_id, obis, attribute_id)


# brief §9.4: "02 02 0F FF 16 1E means ×0.1 Wh" (JD RegisterAttribute, GX).
def test_scaler_unit_vector_tenths_of_watt_hours() -> None:
    reg = Register(ENERGY, DoubleLongUnsigned(12345), scaler=-1, unit=Unit.WATT_HOUR)
    raw = reg.read(3)
    assert encode_data(raw) == bytes.fromhex("02020FFF161E")
    reading = RegisterValue.from_data(reg.read(2), raw)  # type: ignore[arg-type]
    assert reading.value == Decimal("1234.5")
    assert str(reading) == "1234.5 Wh"


# brief §9.4: DC UI vector 02020F00161B = W, ×1.
def test_scaler_unit_vector_watt_from_dc() -> None:
    scaler, unit = parse_scaler_unit(decode_data(bytes.fromhex("02020F00161B")))
    assert (scaler, unit) == (0, Unit.WATT)
    assert str(RegisterValue(LongUnsigned(230), scaler, unit)) == "230 W"


def test_register_value_scaling_variants() -> None:
    assert RegisterValue(DoubleLong(-5), 3, Unit.VAR).value == Decimal("-5000")
    assert str(RegisterValue(DoubleLong(-5), 3, Unit.VAR)) == "-5000 var"
    assert str(RegisterValue(DoubleLong(5), -3, Unit.VAR)) == "0.005 var"
    assert RegisterValue(Float32(1.5), -1, Unit.VOLT).value == pytest.approx(0.15)
    assert RegisterValue(OctetString(b"\x01"), 0, Unit.COUNT).value == b"\x01"
    assert str(RegisterValue(Long64(7), 0, Unit.COUNT)) == "7"
    with pytest.raises(DecodeError):
        parse_scaler_unit(Structure((Unsigned(0), Enumerated(30))))
    with pytest.raises(DecodeError):
        parse_scaler_unit(None)


def test_unit_table_x2_entries() -> None:
    # brief §9.4: 27..35 confirmed by two sources.
    expected = ["W", "VA", "var", "Wh", "VAh", "varh", "A", "C", "V"]
    assert [unit_symbol(code) for code in range(27, 36)] == expected
    assert unit_symbol(200) == "unit(200)"
    assert unit_name(30) == "WATT_HOUR"
    assert unit_name(58) == "UNIT_58"
    assert Unit(255).symbol == ""


def test_register_get_set_action_with_rights() -> None:
    model, _ = small_meter()
    public, management = ctx(PUBLIC), ctx(MANAGEMENT)
    assert model.get_attribute(public, attr(3, ENERGY, 2), None) == 0
    assert model.get_attribute(public, attr(3, ENERGY, 3), None) == Structure(
        (Integer(0), Enumerated(30))
    )
    value = DoubleLongUnsigned(42)
    assert (
        model.set_attribute(public, attr(3, ENERGY, 2), None, value)
        == DataAccessResult.READ_WRITE_DENIED
    )
    assert model.set_attribute(management, attr(3, ENERGY, 2), None, value) == (
        DataAccessResult.SUCCESS
    )
    assert model.get_attribute(public, attr(3, ENERGY, 2), None) == 42
    reset = CosemMethodDescriptor(3, ENERGY, 1)
    assert model.invoke_method(public, reset, Integer(0)) == (
        ActionResult.READ_WRITE_DENIED,
        None,
    )
    assert model.invoke_method(management, reset, Integer(0)) == (ActionResult.SUCCESS, None)
    assert model.get_attribute(public, attr(3, ENERGY, 2), None) == 0
    stranger = ctx(99)
    assert model.get_attribute(stranger, attr(3, ENERGY, 2), None) == (
        DataAccessResult.OBJECT_UNDEFINED
    )


def test_register_type_checks() -> None:
    reg = Register(ENERGY, DoubleLongUnsigned(1), access={None: AccessRights.full()})
    c = ctx()
    assert reg.set(c, 2, LongUnsigned(1)) == DataAccessResult.TYPE_UNMATCHED
    assert reg.set(c, 2, Structure(())) == DataAccessResult.TYPE_UNMATCHED
    assert reg.set(c, 3, Structure((Integer(-3), Unsigned(30)))) == (
        DataAccessResult.TYPE_UNMATCHED
    )
    assert reg.set(c, 3, Structure((Integer(-3), Enumerated(30)))) == DataAccessResult.SUCCESS
    assert (reg.scaler, reg.unit) == (-3, Unit.WATT_HOUR)
    assert reg.set(c, 3, Structure((Integer(0), Enumerated(240)))) == DataAccessResult.SUCCESS
    assert reg.unit == 240
    assert reg.set(c, 1, OctetString(bytes(6))) == DataAccessResult.READ_WRITE_DENIED
    assert reg.action(c, 1, Structure(())) == (ActionResult.TYPE_UNMATCHED, None)
    assert reg.action(c, 2) == (ActionResult.OBJECT_UNDEFINED, None)


def test_register_reset_to_configured_default() -> None:
    reg = Register(ENERGY, DoubleLongUnsigned(9), default_value=DoubleLongUnsigned(5))
    assert reg.invoke(1) == (ActionResult.SUCCESS, None)
    assert reg.value == 5


def test_extended_register_capture_time_and_reset() -> None:
    time = FakeTime(dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC))
    ext = ExtendedRegister(
        Obis.parse("1-0:1.6.0.255"),
        DoubleLongUnsigned(0),
        scaler=0,
        unit=Unit.WATT,
        status=Unsigned(0),
        access={None: AccessRights.full()},
    )
    model = ObjectModel([ext], time_source=time)
    never = ext.read(5)
    # brief §9.3: every field unspecified, deviation 8000.
    assert never == OctetString(bytes.fromhex("FFFFFFFFFFFFFFFFFF8000FF"))
    ext.update(DoubleLongUnsigned(1200), status=Unsigned(1))
    assert ext.read(2) == 1200 and ext.read(4) == Unsigned(1)
    captured = OctetString(ext.read(5)).as_datetime()  # type: ignore[arg-type]
    assert captured.to_datetime() == dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    time.advance(60)
    assert ext.action(ctx(), 1, Integer(0)) == (ActionResult.SUCCESS, None)
    assert ext.value == 0 and ext.status == 0
    assert ext.capture_time == CosemDateTime.from_datetime(model.now())
    assert ext.set(ctx(), 5, OctetString(bytes(12))) == DataAccessResult.READ_WRITE_DENIED
    assert [a.attribute_id for a in ExtendedRegister.ATTRIBUTES] == [1, 2, 3, 4, 5]


def test_data_object_fixed_and_free_types() -> None:
    model, _ = small_meter()
    d = model.by_obis(SERIAL)
    assert isinstance(d, DataObject)
    assert model.get_attribute(ctx(), attr(1, SERIAL, 2), None) == "CC0000001"
    assert model.get_attribute(ctx(), attr(1, SERIAL, 1), None) == SERIAL.to_bytes()
    c = ctx(MANAGEMENT)
    assert d.set(c, 2, OctetString(b"x")) == DataAccessResult.TYPE_UNMATCHED
    assert d.set(c, 2, VisibleString("CC2")) == DataAccessResult.SUCCESS
    free = DataObject("0-0:96.1.1.255", None, access={None: AccessRights.full()})
    assert free.set(c, 2, Long64(3)) == DataAccessResult.SUCCESS
    assert free.set(c, 2, OctetString(b"any")) == DataAccessResult.TYPE_UNMATCHED
    loose = DataObject("0-0:96.1.2.255", Unsigned(1), fixed_type=False)
    assert loose.write(2, OctetString(b"z")) == DataAccessResult.SUCCESS
