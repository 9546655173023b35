"""ObjectModel (the server backend): resolution rules, access checks, and robustness of
get/set/action against arbitrary client input."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cosemcast.apdu.acse import MechanismName
from cosemcast.apdu.common import (
    ActionResult,
    CosemAttributeDescriptor,
    CosemMethodDescriptor,
    DataAccessResult,
    SelectiveAccess,
)
from cosemcast.association.backend import ServerBackend
from cosemcast.axdr import Array, DoubleLongUnsigned, OctetString, Unsigned, encode_data
from cosemcast.cosem import (
    AccessMode,
    AccessRights,
    CosemObject,
    DisconnectControl,
    ExtendedRegister,
    ObjectModel,
    PushSetup,
    Register,
    SecuritySetup,
    class_for,
)
from cosemcast.errors import ConfigurationError, DlmsError, LocalProtocolError
from cosemcast.obis import Obis
from strategies import data_values
from test_cosem_fixtures import (
    CLOCK,
    CLOCK_TIME,
    ENERGY,
    MANAGEMENT,
    PUBLIC,
    SERIAL,
    ctx,
    small_meter,
)


def full_meter() -> ObjectModel:
    model, _ = small_meter(dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    model.add(ExtendedRegister("1-0:1.6.0.255", DoubleLongUnsigned(0), status=Unsigned(0)))
    model.add(PushSetup(push_object_list=[CLOCK_TIME]))
    model.add(SecuritySetup(server_system_title=bytes(8), master_key=bytes(16)))
    model.add(DisconnectControl())
    for obj in model:
        obj.grant(MANAGEMENT, AccessRights.full())
    return model


def test_object_model_is_a_server_backend() -> None:
    backend: ServerBackend = full_meter()
    assert backend.get_attribute(ctx(), CosemAttributeDescriptor(3, ENERGY, 2), None) == 0


def test_resolution_rules() -> None:
    model, _ = small_meter()
    c = ctx(PUBLIC)
    missing = Obis.parse("1-0:2.8.0.255")
    assert model.get_attribute(c, CosemAttributeDescriptor(3, missing, 2), None) == (
        DataAccessResult.OBJECT_UNDEFINED
    )
    assert model.get_attribute(c, CosemAttributeDescriptor(4, ENERGY, 2), None) == (
        DataAccessResult.OBJECT_CLASS_INCONSISTENT
    )
    assert model.get_attribute(c, CosemAttributeDescriptor(3, ENERGY, 4), None) == (
        DataAccessResult.OBJECT_UNDEFINED
    )
    assert model.invoke_method(c, CosemMethodDescriptor(3, missing, 1), None) == (
        ActionResult.OBJECT_UNDEFINED,
        None,
    )
    assert model.invoke_method(c, CosemMethodDescriptor(1, ENERGY, 1), None) == (
        ActionResult.OBJECT_CLASS_INCONSISTENT,
        None,
    )
    hidden = model.by_obis(SERIAL)
    assert hidden is not None
    hidden.revoke(PUBLIC)
    assert model.get_attribute(c, CosemAttributeDescriptor(1, SERIAL, 2), None) == (
        DataAccessResult.OBJECT_UNDEFINED
    )
    assert model.get_attribute(c, CosemAttributeDescriptor(8, SERIAL, 2), None) == (
        DataAccessResult.OBJECT_UNDEFINED
    )
    selection = SelectiveAccess(1, None)
    descriptor = CosemAttributeDescriptor(3, ENERGY, 2)
    assert model.set_attribute(ctx(MANAGEMENT), descriptor, selection, DoubleLongUnsigned(1)) == (
        DataAccessResult.OTHER_REASON
    )
    assert model.get_attribute(c, descriptor, selection) == DataAccessResult.OTHER_REASON


def test_current_association_without_an_object_for_the_client() -> None:
    model, _ = small_meter()
    descriptor = CosemAttributeDescriptor(15, Obis(0, 0, 40, 0, 0, 255), 1)
    assert model.get_attribute(ctx(77), descriptor, None) == DataAccessResult.OBJECT_UNDEFINED


def test_model_contents() -> None:
    model, _ = small_meter()
    assert len(model) == 6 and repr(model) == "ObjectModel(6 objects)"
    with pytest.raises(ConfigurationError):
        model.add(Register(ENERGY))
    energy = model.by_obis(ENERGY)
    assert energy is not None and energy.model is model
    model.remove(ENERGY)
    assert model.by_obis(ENERGY) is None and energy.model is None
    model.remove(ENERGY)
    assert model.find(8, CLOCK) is model.clock
    assert class_for(3) is Register and class_for(99) is None
    assert Register.attribute_id("scaler_unit") == 3 and Register.method_id("reset") == 1
    with pytest.raises(KeyError):
        Register.attribute_id("nope")
    with pytest.raises(KeyError):
        Register.method_id("nope")


def test_time_sources() -> None:
    assert ObjectModel(time_source=lambda: dt.datetime(2024, 1, 1)).now().tzinfo == dt.UTC
    with pytest.raises(LocalProtocolError):
        ObjectModel().now()
    lone = ExtendedRegister("1-0:1.6.0.255")
    with pytest.raises(LocalProtocolError):
        lone.reset()


def test_authenticated_modes_need_protection() -> None:
    reg = Register(
        ENERGY,
        access={
            PUBLIC: AccessRights(
                {2: AccessMode.AUTHENTICATED_READ_ONLY, 3: AccessMode.AUTHENTICATED_READ_AND_WRITE}
            )
        },
    )
    assert reg.get(ctx(PUBLIC), 2) == DataAccessResult.READ_WRITE_DENIED
    assert reg.get(ctx(PUBLIC, ciphered=True), 2) == 0
    assert reg.get(ctx(PUBLIC, ciphered=True), 1) == DataAccessResult.READ_WRITE_DENIED
    assert reg.set(ctx(PUBLIC, ciphered=True), 2, DoubleLongUnsigned(1)) == (
        DataAccessResult.READ_WRITE_DENIED
    )
    assert reg.effective_attribute_access(reg.access[PUBLIC], 1) == AccessMode.NO_ACCESS  # type: ignore[arg-type]
    assert reg.effective_attribute_access(AccessRights.full(authenticated=True), 1) == (
        AccessMode.AUTHENTICATED_READ_ONLY
    )


def _every_object() -> list[CosemObject]:
    return full_meter().objects()


OBJECT_COUNT = len(_every_object())


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, OBJECT_COUNT - 1), st.integers(-128, 127), data_values)
def test_set_never_raises(index: int, attribute_id: int, value: object) -> None:
    model = full_meter()
    obj = model.objects()[index]
    descriptor = CosemAttributeDescriptor(obj.CLASS_ID, obj.logical_name, attribute_id)
    for client in (MANAGEMENT, PUBLIC):
        try:
            result = model.set_attribute(ctx(client), descriptor, None, value)  # type: ignore[arg-type]
        except DlmsError:
            continue
        assert isinstance(result, DataAccessResult)
    # Whatever was accepted still reads back and encodes.
    for spec in obj.ATTRIBUTES:
        read = obj.read(spec.attribute_id)
        if not isinstance(read, DataAccessResult):
            encode_data(read)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, OBJECT_COUNT - 1), st.integers(-128, 127), data_values)
def test_action_never_raises(index: int, method_id: int, params: object) -> None:
    model = full_meter()
    obj = model.objects()[index]
    descriptor = CosemMethodDescriptor(obj.CLASS_ID, obj.logical_name, method_id)
    try:
        result, data = model.invoke_method(ctx(MANAGEMENT), descriptor, params)  # type: ignore[arg-type]
    except DlmsError:
        return
    assert isinstance(result, ActionResult)
    if data is not None:
        encode_data(data)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(0, OBJECT_COUNT - 1),
    st.integers(-128, 127),
    st.integers(0, 255),
    data_values,
)
def test_get_with_any_selection_never_raises(
    index: int, attribute_id: int, selector: int, params: object
) -> None:
    model = full_meter()
    obj = model.objects()[index]
    descriptor = CosemAttributeDescriptor(obj.CLASS_ID, obj.logical_name, attribute_id)
    selection = SelectiveAccess(selector, params)  # type: ignore[arg-type]
    for chosen in (None, selection):
        try:
            result = model.get_attribute(ctx(MANAGEMENT), descriptor, chosen)
        except DlmsError:
            continue
        if not isinstance(result, DataAccessResult):
            encode_data(result)


@settings(max_examples=200)
@given(data_values, data_values)
def test_profile_range_with_any_bounds(low: object, high: object) -> None:
    from cosemcast.cosem import range_selection

    model = full_meter()
    profile = model.by_obis(Obis.parse("1-0:99.1.0.255"))
    assert profile is not None
    profile.invoke(2)
    result = profile.read(2, range_selection(CLOCK_TIME, low, high))  # type: ignore[arg-type]
    assert isinstance(result, Array | DataAccessResult)


def test_object_base_defaults() -> None:
    class Bare(CosemObject):
        CLASS_ID = 9999

    bare = Bare("0-0:0.0.0.255", access={None: AccessRights.full()})
    assert bare.get(ctx(), 1) == OctetString(bytes(5) + b"\xff")
    assert bare.get(ctx(), 2) == DataAccessResult.OBJECT_UNDEFINED
    assert bare.action(ctx(), 1) == (ActionResult.OBJECT_UNDEFINED, None)
    assert CosemObject._read(bare, 2, None, None, None) == DataAccessResult.OBJECT_UNAVAILABLE
    assert CosemObject._write(bare, 2, None, None) == DataAccessResult.READ_WRITE_DENIED
    assert CosemObject._invoke(bare, 1, None, None) == (ActionResult.OBJECT_UNAVAILABLE, None)
    assert MechanismName.LOWEST == 0
