"""Association LN (class 15): object_list with access rights, names, secret, add/remove."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cosemcast.apdu.acse import ApplicationContextName, MechanismName
from cosemcast.apdu.common import (
    ActionResult,
    CosemAttributeDescriptor,
    CosemMethodDescriptor,
    DataAccessResult,
)
from cosemcast.axdr import (
    Array,
    BitString,
    Enumerated,
    Integer,
    LongUnsigned,
    OctetString,
    Structure,
    Unsigned,
    decode_data,
    encode_data,
)
from cosemcast.cosem import (
    AccessMode,
    AccessRights,
    AssociationLN,
    AssociationStatus,
    AttributeAccessItem,
    MethodAccessItem,
    MethodAccessMode,
    ObjectListEntry,
    ObjectModel,
    XdlmsContextInfo,
    parse_object_list,
)
from cosemcast.cosem.association_ln import name_data, parse_name
from cosemcast.cosem.common import TypeUnmatched, ValueRejected
from cosemcast.errors import DecodeError
from cosemcast.obis import Obis
from strategies import obis_codes
from test_cosem_fixtures import (
    CLOCK,
    ENERGY,
    LOAD_PROFILE,
    MANAGEMENT,
    PUBLIC,
    SERIAL,
    ctx,
    small_meter,
)

CURRENT = Obis(0, 0, 40, 0, 0, 255)


def get(model: ObjectModel, client: int, attribute_id: int, **kwargs: object) -> object:
    return model.get_attribute(
        ctx(client, **kwargs),  # type: ignore[arg-type]
        CosemAttributeDescriptor(15, CURRENT, attribute_id),
        None,
    )


def test_object_list_depends_on_the_client() -> None:
    model, _ = small_meter()
    public = parse_object_list(get(model, PUBLIC, 2))  # type: ignore[arg-type]
    management = parse_object_list(get(model, MANAGEMENT, 2))  # type: ignore[arg-type]
    names = [e.logical_name for e in public]
    assert names == [CLOCK, ENERGY, SERIAL, LOAD_PROFILE, Obis(0, 0, 40, 0, 2, 255)]
    assert Obis(0, 0, 40, 0, 1, 255) in [e.logical_name for e in management]
    register = next(e for e in public if e.logical_name == ENERGY)
    assert (register.class_id, register.version) == (3, 0)
    assert register.attribute_mode(2) == AccessMode.READ_ONLY
    assert register.method_mode(1) == MethodAccessMode.NO_ACCESS
    full = next(e for e in management if e.logical_name == ENERGY)
    assert full.attribute_mode(1) == AccessMode.READ_ONLY
    assert full.attribute_mode(2) == AccessMode.READ_AND_WRITE
    assert full.method_mode(1) == MethodAccessMode.ACCESS
    profile = next(e for e in public if e.logical_name == LOAD_PROFILE)
    assert profile.attribute_access[1] == AttributeAccessItem(2, AccessMode.READ_ONLY, (1, 2))
    own = next(e for e in management if e.logical_name == Obis(0, 0, 40, 0, 1, 255))
    assert own.attribute_mode(7) == AccessMode.WRITE_ONLY


def test_object_list_element_encoding() -> None:
    # object_list_element layout (brief §9.4): class_id, version, logical_name, access_rights.
    entry = ObjectListEntry(
        3,
        0,
        ENERGY,
        (AttributeAccessItem(1, AccessMode.READ_ONLY), AttributeAccessItem(2, 1, (1,))),
        (MethodAccessItem(1, MethodAccessMode.ACCESS),),
    )
    assert encode_data(entry.to_data()).hex().upper() == (
        "0204120003110009060100010800FF0202010202030F0116010002030F02160101010F01010102020F011601"
    )
    boolean = encode_data(entry.to_data(boolean_methods=True))
    assert boolean.endswith(bytes.fromhex("010102020F010301"))
    assert parse_object_list(Array([decode_data(boolean)])) == (entry,)


access_items = st.builds(
    AttributeAccessItem,
    st.integers(-128, 127),
    st.integers(0, 255).map(lambda v: AccessMode(v) if v <= 6 else v),
    st.one_of(st.none(), st.lists(st.integers(-128, 127), max_size=3).map(tuple)),
)
method_items = st.builds(
    MethodAccessItem,
    st.integers(-128, 127),
    st.integers(0, 255).map(lambda v: MethodAccessMode(v) if v <= 2 else v),
)
entries = st.builds(
    ObjectListEntry,
    st.integers(0, 0xFFFF),
    st.integers(0, 255),
    obis_codes,
    st.lists(access_items, max_size=4).map(tuple),
    st.lists(method_items, max_size=4).map(tuple),
)


@given(st.lists(entries, max_size=5))
def test_object_list_round_trip(items: list[ObjectListEntry]) -> None:
    wire = encode_data(Array(e.to_data() for e in items))
    assert parse_object_list(decode_data(wire)) == tuple(items)


def test_model_object_list_round_trip() -> None:
    model, _ = small_meter()
    for client in (PUBLIC, MANAGEMENT, 99):
        wire = encode_data(model.object_list(client))
        assert list(parse_object_list(decode_data(wire))) == model.object_list_entries(client)
    assert model.object_list(99) == Array([])


def test_parse_object_list_rejects_garbage() -> None:
    for bad in (None, Array([Integer(1)]), Array([Structure([Integer(1)] * 4)])):
        try:
            parse_object_list(bad)
        except DecodeError:
            continue
        raise AssertionError(f"{bad!r} must be rejected")


def test_other_attributes() -> None:
    model, _ = small_meter()
    assert get(model, PUBLIC, 1) == Obis(0, 0, 40, 0, 2, 255).to_bytes()
    assert get(model, PUBLIC, 3) == Structure((Integer(16), LongUnsigned(1)))
    # 2.16.756.5.8.1.1 as the 7-arc structure (Blue Book context_name_type).
    assert encode_data(get(model, PUBLIC, 4)).hex().upper() == (
        "0207110211101202F41105110811011101"
    )
    assert get(model, MANAGEMENT, 6) == name_data(2, MechanismName.HIGH_GMAC)
    info = get(model, PUBLIC, 5)
    assert XdlmsContextInfo.from_data(info) == XdlmsContextInfo()  # type: ignore[arg-type]
    assert isinstance(info, Structure) and isinstance(info[0], BitString)
    assert get(model, PUBLIC, 8) == Enumerated(AssociationStatus.ASSOCIATED)
    pending = get(model, MANAGEMENT, 8, mechanism=MechanismName.HIGH_GMAC)
    assert pending == Enumerated(AssociationStatus.ASSOCIATION_PENDING)
    done = get(model, MANAGEMENT, 8, mechanism=MechanismName.HIGH_GMAC, authenticated=True)
    assert done == Enumerated(AssociationStatus.ASSOCIATED)
    assert get(model, PUBLIC, 9) == OctetString(b"")
    assert get(model, PUBLIC, 10) == DataAccessResult.OBJECT_UNDEFINED


def test_shared_association_follows_the_caller() -> None:
    shared = AssociationLN(
        security_setup_reference=Obis(0, 0, 43, 0, 0, 255),
        access={None: AccessRights.read_only()},
    )
    model = ObjectModel([shared])
    assert get(model, 33, 3) == Structure((Integer(33), LongUnsigned(1)))
    lls = get(model, 33, 6, mechanism=MechanismName.LOW)
    assert lls == name_data(2, 1)
    assert get(model, 33, 9) == Obis(0, 0, 43, 0, 0, 255).to_bytes()
    assert shared.read(8) == Enumerated(0)
    assert shared.read(3) == Structure((Integer(0), LongUnsigned(1)))


def test_secret_is_write_only() -> None:
    model, _ = small_meter()
    own = model.association_for(MANAGEMENT)
    assert own is not None and own.secret == b"secret"
    changes: list[object] = []
    own.on_change = changes.append
    assert get(model, MANAGEMENT, 7) == DataAccessResult.READ_WRITE_DENIED
    descriptor = CosemAttributeDescriptor(15, CURRENT, 7)
    assert (
        model.set_attribute(ctx(MANAGEMENT), descriptor, None, OctetString(b"new"))
        == DataAccessResult.SUCCESS
    )
    assert own.secret == b"new" and changes == [own]
    assert model.set_attribute(ctx(PUBLIC), descriptor, None, OctetString(b"x")) == (
        DataAccessResult.READ_WRITE_DENIED
    )
    method = CosemMethodDescriptor(15, CURRENT, 2)
    assert model.invoke_method(ctx(MANAGEMENT), method, OctetString(b"hls")) == (
        ActionResult.SUCCESS,
        None,
    )
    assert own.secret == b"hls"
    assert model.invoke_method(ctx(MANAGEMENT), method, Unsigned(1)) == (
        ActionResult.TYPE_UNMATCHED,
        None,
    )
    reply = CosemMethodDescriptor(15, CURRENT, 1)
    assert model.invoke_method(ctx(MANAGEMENT), reply, OctetString(b"")) == (
        ActionResult.OTHER_REASON,
        None,
    )


def test_add_and_remove_object() -> None:
    model, _ = small_meter()
    serial = model.by_obis(SERIAL)
    assert serial is not None
    add = CosemMethodDescriptor(15, CURRENT, 3)
    remove = CosemMethodDescriptor(15, CURRENT, 4)
    entry = ObjectListEntry(
        1,
        0,
        SERIAL,
        (
            AttributeAccessItem(1, AccessMode.READ_ONLY),
            AttributeAccessItem(2, AccessMode.READ_AND_WRITE),
        ),
        (),
    )
    assert model.invoke_method(ctx(MANAGEMENT), add, entry.to_data()) == (
        ActionResult.SUCCESS,
        None,
    )
    rights = serial.rights_for(MANAGEMENT)
    assert rights is not None and rights.attribute(2) == AccessMode.READ_AND_WRITE
    assert rights.method(1) == MethodAccessMode.NO_ACCESS
    assert model.invoke_method(ctx(MANAGEMENT), remove, entry.to_data()) == (
        ActionResult.SUCCESS,
        None,
    )
    assert serial.rights_for(MANAGEMENT) is None
    assert SERIAL not in [e.logical_name for e in model.object_list_entries(MANAGEMENT)]
    assert SERIAL in [e.logical_name for e in model.object_list_entries(PUBLIC)]
    missing = ObjectListEntry(1, 0, Obis.parse("0-0:96.1.9.255"))
    assert model.invoke_method(ctx(MANAGEMENT), add, missing.to_data()) == (
        ActionResult.OBJECT_UNDEFINED,
        None,
    )
    strange = ObjectListEntry(1, 0, SERIAL, (AttributeAccessItem(2, 9),))
    assert model.invoke_method(ctx(MANAGEMENT), add, strange.to_data()) == (
        ActionResult.OTHER_REASON,
        None,
    )
    assert model.invoke_method(ctx(MANAGEMENT), add, Integer(0)) == (
        ActionResult.TYPE_UNMATCHED,
        None,
    )
    shared = AssociationLN(Obis(0, 0, 40, 0, 9, 255))
    assert shared.invoke(3, entry.to_data()) == (ActionResult.OBJECT_UNDEFINED, None)
    ObjectModel([shared, serial.__class__(Obis.parse("0-0:96.1.5.255"))])
    lone = ObjectListEntry(1, 0, Obis.parse("0-0:96.1.5.255"))
    assert shared.invoke(3, lone.to_data()) == (ActionResult.OTHER_REASON, None)


def test_names_in_both_forms() -> None:
    assert parse_name(name_data(1, 3), 1) == ApplicationContextName.LOGICAL_NAME_WITH_CIPHERING
    assert parse_name(OctetString(bytes.fromhex("60857405080205")), 2) == 5
    for bad in (
        OctetString(bytes.fromhex("60857405080205")),
        OctetString(bytes.fromhex("6085740508")),
        name_data(2, 5),
        Structure([Unsigned(1)] * 7),
    ):
        try:
            parse_name(bad, 1)
        except ValueRejected:
            continue
        raise AssertionError(bad)
    try:
        parse_name(Structure([OctetString(b"")] * 7), 1)
    except TypeUnmatched:
        pass
    else:
        raise AssertionError("arcs must be integers")


def test_xdlms_context_info_round_trip() -> None:
    info = XdlmsContextInfo(0x007E1F, 1024, 512, 6, 0, b"\x01")
    assert XdlmsContextInfo.from_data(decode_data(encode_data(info.to_data()))) == info
    assert "cyphering_info" not in repr(info)
