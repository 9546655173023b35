"""Profile generic (class 7): capture, sorting, selective access by range and entry, client
views of the buffer."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.common import (
    ActionResult,
    CosemAttributeDescriptor,
    DataAccessResult,
    SelectiveAccess,
)
from cosemcast.apdu.get import GetRequestNormal
from cosemcast.axdr import (
    Array,
    CosemDateTime,
    DoubleLong,
    DoubleLongUnsigned,
    Enumerated,
    Integer,
    LongUnsigned,
    OctetString,
    Structure,
    decode_data,
    encode_data,
)
from cosemcast.cosem import (
    AccessRights,
    CaptureObjectDefinition,
    EntryDescriptor,
    ObjectModel,
    ProfileGeneric,
    RangeDescriptor,
    Register,
    SortMethod,
    clock_range,
    entry_selection,
    parse_profile_buffer,
    parse_selective_access,
    range_selection,
)
from cosemcast.cosem.common import TypeUnmatched
from cosemcast.errors import DecodeError
from cosemcast.obis import Obis
from strategies import data_values, obis_codes
from test_cosem_fixtures import (
    CLOCK_TIME,
    ENERGY,
    ENERGY_VALUE,
    LOAD_PROFILE,
    MANAGEMENT,
    PUBLIC,
    ctx,
    small_meter,
)

UTC = dt.UTC
START = dt.datetime(2024, 1, 1, 0, 0, tzinfo=UTC)


def filled_meter(captures: int = 8, entries: int = 5) -> tuple[ObjectModel, ProfileGeneric]:
    """Every 15 minutes the energy register gains 10 Wh and the profile captures."""
    model, time = small_meter(START)
    profile = model.by_obis(LOAD_PROFILE)
    energy = model.by_obis(ENERGY)
    assert isinstance(profile, ProfileGeneric) and isinstance(energy, Register)
    profile.profile_entries = entries
    for i in range(1, captures + 1):
        time.advance(900)
        energy.value = DoubleLongUnsigned(i * 10)
        profile.capture()
    return model, profile


def at(minutes: int) -> dt.datetime:
    return START + dt.timedelta(minutes=minutes)


def stamp(row: tuple[object, ...]) -> dt.datetime:
    value = row[0]
    assert isinstance(value, OctetString)
    return value.as_datetime().to_datetime()


def test_capture_reads_the_model_and_drops_the_oldest() -> None:
    _, profile = filled_meter()
    assert profile.entries_in_use == 5
    assert [row[1] for row in profile.buffer] == [40, 50, 60, 70, 80]
    assert [stamp(row) for row in profile.buffer] == [at(15 * i) for i in range(4, 9)]
    assert profile.read(7) == DoubleLongUnsigned(5)
    assert profile.read(8) == DoubleLongUnsigned(5)


def test_buffer_get_without_selection() -> None:
    model, _ = filled_meter()
    result = model.get_attribute(ctx(PUBLIC), CosemAttributeDescriptor(7, LOAD_PROFILE, 2), None)
    assert isinstance(result, Array) and len(result) == 5
    assert result[0] == Structure((result[0][0], DoubleLongUnsigned(40)))
    # The capture objects read as the Blue Book structure.
    assert encode_data(model.by_obis(LOAD_PROFILE).read(3)) == bytes.fromhex(  # type: ignore[union-attr]
        "0102020412000809060000010000FF0F02120000020412000309060100010800FF0F02120000"
    )


def test_range_by_clock_is_inclusive() -> None:
    _, profile = filled_meter()
    result = profile.read(2, clock_range(at(75), at(105)))
    assert isinstance(result, Array)
    assert [row[1] for row in result] == [50, 60, 70]
    assert [stamp(tuple(row)) for row in result] == [at(75), at(90), at(105)]


def test_range_with_selected_columns() -> None:
    _, profile = filled_meter()
    result = profile.read(2, clock_range(at(60), at(75), selected_values=[ENERGY_VALUE]))
    assert result == Array(
        [Structure([DoubleLongUnsigned(40)]), Structure([DoubleLongUnsigned(50)])]
    )


def test_range_on_a_numeric_column_and_empty_results() -> None:
    _, profile = filled_meter()
    numeric = range_selection(ENERGY_VALUE, DoubleLongUnsigned(55), DoubleLongUnsigned(70))
    assert [row[1] for row in profile.read(2, numeric)] == [60, 70]  # type: ignore[union-attr]
    nothing = clock_range(at(0), at(10))
    assert profile.read(2, nothing) == Array([])


def test_range_errors() -> None:
    _, profile = filled_meter()
    unknown = CaptureObjectDefinition(3, Obis.parse("1-0:2.8.0.255"), 2)
    assert profile.read(2, range_selection(unknown, LongUnsigned(0), LongUnsigned(1))) == (
        DataAccessResult.OTHER_REASON
    )
    mixed = range_selection(ENERGY_VALUE, DoubleLongUnsigned(1), OctetString(b"x"))
    assert profile.read(2, mixed) == DataAccessResult.OTHER_REASON
    bad_column = clock_range(at(0), at(200), selected_values=[unknown])
    assert profile.read(2, bad_column) == DataAccessResult.OTHER_REASON
    malformed = SelectiveAccess(1, Structure((Integer(1),)))
    assert profile.read(2, malformed) == DataAccessResult.TYPE_UNMATCHED
    assert profile.read(2, SelectiveAccess(3, None)) == DataAccessResult.OTHER_REASON
    assert profile.read(3, entry_selection()) == DataAccessResult.OTHER_REASON


def test_entry_selection() -> None:
    _, profile = filled_meter()
    rows = profile.read(2, entry_selection(2, 3))
    assert [row[1] for row in rows] == [50, 60]  # type: ignore[union-attr]
    assert profile.read(2, entry_selection(4, 0, 2, 2)) == Array(
        [Structure([DoubleLongUnsigned(70)]), Structure([DoubleLongUnsigned(80)])]
    )
    assert profile.read(2, entry_selection(0, 1, 1, 1)) == Array(
        [Structure([profile.buffer[0][0]])]
    )
    assert profile.read(2, entry_selection(9, 12)) == Array([])
    assert profile.read(2, entry_selection(3, 2)) == Array([])


def test_selective_access_through_the_model_and_an_apdu() -> None:
    model, _ = filled_meter()
    request = GetRequestNormal(
        CosemAttributeDescriptor(7, LOAD_PROFILE, 2), clock_range(at(105), at(120))
    )
    decoded = decode_apdu(request.encode())
    assert isinstance(decoded, GetRequestNormal)
    assert decoded.access_selection is not None
    descriptor = parse_selective_access(decoded.access_selection)
    assert isinstance(descriptor, RangeDescriptor)
    assert descriptor.restricting_object == CLOCK_TIME
    result = model.get_attribute(
        ctx(PUBLIC), decoded.cosem_attribute_descriptor, decoded.access_selection
    )
    assert [row[1] for row in result] == [70, 80]  # type: ignore[union-attr]


def test_range_descriptor_encoding() -> None:
    # range_descriptor layout (Blue Book, selector 1): restricting object, from, to, columns.
    selection = clock_range(
        CosemDateTime(2024, 1, 1, None, 0, 0, 0, 0, None, None),
        CosemDateTime(2024, 1, 2, None, 0, 0, 0, 0, None, None),
    )
    assert selection.selector == 1
    assert selection.encode().hex().upper() == (
        "01"
        "0204"
        "0204"
        "120008"
        "0906"
        "0000010000FF"
        "0F02"
        "120000"
        "090C"
        "07E80101FF000000008000FF"
        "090C"
        "07E80102FF000000008000FF"
        "0100"
    )


def test_entry_descriptor_encoding() -> None:
    assert entry_selection(1, 10, 1, 0).encode().hex().upper() == (
        "0202040600000001060000000A120001120000"
    )


obis_capture = st.builds(
    CaptureObjectDefinition,
    st.integers(0, 0xFFFF),
    obis_codes,
    st.integers(-128, 127),
    st.integers(0, 0xFFFF),
)


@given(obis_capture, data_values, data_values, st.lists(obis_capture, max_size=3))
def test_range_descriptor_round_trip(
    restricting: CaptureObjectDefinition,
    low: object,
    high: object,
    columns: list[CaptureObjectDefinition],
) -> None:
    descriptor = RangeDescriptor(restricting, low, high, tuple(columns))  # type: ignore[arg-type]
    wire = decode_data(encode_data(descriptor.to_data()))
    again = RangeDescriptor.from_data(wire)
    assert again.restricting_object == restricting and again.selected_values == tuple(columns)
    assert encode_data(again.to_data()) == encode_data(descriptor.to_data())


@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
)
def test_entry_descriptor_round_trip(a: int, b: int, c: int, d: int) -> None:
    descriptor = EntryDescriptor(a, b, c, d)
    selection = descriptor.to_selective_access()
    assert (
        parse_selective_access(
            SelectiveAccess(selection.selector, decode_data(encode_data(selection.parameters)))
        )
        == descriptor
    )


def test_entry_descriptor_rejects_wrong_types() -> None:
    wrong = Structure((LongUnsigned(1), DoubleLongUnsigned(1), LongUnsigned(1), LongUnsigned(1)))
    try:
        EntryDescriptor.from_data(wrong)
    except TypeUnmatched:
        pass
    else:
        raise AssertionError("a long-unsigned from_entry must be rejected")


def test_capture_and_reset_methods_with_rights() -> None:
    model, time = small_meter(START)
    profile = model.by_obis(LOAD_PROFILE)
    assert isinstance(profile, ProfileGeneric)
    assert profile.action(ctx(PUBLIC), 2, Integer(0)) == (ActionResult.READ_WRITE_DENIED, None)
    assert profile.action(ctx(MANAGEMENT), 2, Integer(0)) == (ActionResult.SUCCESS, None)
    time.advance(60)
    assert profile.action(ctx(MANAGEMENT), 2, None) == (ActionResult.SUCCESS, None)
    assert [stamp(r) for r in profile.buffer] == [START, START + dt.timedelta(seconds=60)]
    assert profile.action(ctx(MANAGEMENT), 1, Integer(0)) == (ActionResult.SUCCESS, None)
    assert profile.buffer == []


def test_capture_callback_and_restore() -> None:
    _, profile = filled_meter(2, 5)
    seen: list[tuple[object, ...]] = []
    profile.on_capture = lambda _p, row: seen.append(row)
    row = profile.capture(at(500))
    assert seen == [row] and stamp(row) == at(500)
    copy = ProfileGeneric("1-0:99.1.0.255", [CLOCK_TIME, ENERGY_VALUE], profile_entries=2)
    copy.load_buffer(profile.buffer)
    assert copy.buffer == profile.buffer[-2:]


def test_missing_capture_objects_become_null() -> None:
    model, _ = small_meter(START)
    missing = CaptureObjectDefinition(3, Obis.parse("1-0:2.8.0.255"), 2)
    bad_index = CaptureObjectDefinition(3, ENERGY, 2, 3)
    wrong_attribute = CaptureObjectDefinition(3, ENERGY, 9)
    profile = ProfileGeneric("0-0:99.98.0.255", [missing, bad_index, wrong_attribute])
    model.add(profile)
    assert profile.capture() == (None, None, None)
    alone = ProfileGeneric("0-0:99.98.1.255", [CLOCK_TIME])
    assert alone.capture(START) == (None,)


def test_value_sort_methods_keep_the_best_entries() -> None:
    reg = Register("1-0:1.7.0.255", DoubleLong(0), access={None: AccessRights.full()})
    column = CaptureObjectDefinition(3, reg.logical_name, 2)
    values = [5, -7, 3, 9, -1, 0, 12]
    expectations = {
        SortMethod.FIFO: [-1, 0, 12],
        SortMethod.LIFO: [12, 0, -1],
        SortMethod.LARGEST: [12, 9, 5],
        SortMethod.SMALLEST: [-7, -1, 0],
        SortMethod.NEAREST_TO_ZERO: [0, -1, 3],
        SortMethod.FAREST_FROM_ZERO: [12, 9, -7],
    }
    for method, expected in expectations.items():
        model = ObjectModel([reg], time_source=lambda: START)
        profile = ProfileGeneric(
            "1-0:99.2.0.255", [column], profile_entries=3, sort_method=method, sort_object=column
        )
        model.add(profile)
        for v in values:
            reg.value = DoubleLong(v)
            profile.capture()
        assert [row[0] for row in profile.buffer] == expected, method


def test_writes_reset_or_trim_the_buffer() -> None:
    _, profile = filled_meter()
    c = ctx(MANAGEMENT)
    assert profile.set(c, 8, DoubleLongUnsigned(3)) == DataAccessResult.SUCCESS
    assert [row[1] for row in profile.buffer] == [60, 70, 80]
    assert profile.set(c, 8, DoubleLongUnsigned(10**6)) == DataAccessResult.OTHER_REASON
    assert profile.set(c, 4, DoubleLongUnsigned(60)) == DataAccessResult.SUCCESS
    assert profile.capture_period == 60
    assert profile.set(c, 5, Enumerated(7)) == DataAccessResult.OTHER_REASON
    assert profile.set(c, 5, Enumerated(2)) == DataAccessResult.SUCCESS
    assert profile.buffer == [] and profile.sort_method == SortMethod.LIFO
    profile.capture()
    assert profile.set(c, 6, ENERGY_VALUE.to_data()) == DataAccessResult.SUCCESS
    assert profile.sort_object == ENERGY_VALUE and profile.buffer == []
    assert profile.read(6) == ENERGY_VALUE.to_data()
    assert profile.set(c, 3, Array([ENERGY_VALUE.to_data()])) == DataAccessResult.SUCCESS
    assert profile.capture_objects == (ENERGY_VALUE,)
    assert profile.set(c, 3, Array([Integer(1)])) == DataAccessResult.TYPE_UNMATCHED
    assert profile.set(c, 7, DoubleLongUnsigned(1)) == DataAccessResult.READ_WRITE_DENIED
    assert profile.set(c, 2, Array([])) == DataAccessResult.READ_WRITE_DENIED


def test_next_capture_after() -> None:
    profile = ProfileGeneric("1-0:99.1.0.255", capture_period=900)
    assert profile.next_capture_after(at(0)) == at(15)
    assert profile.next_capture_after(at(14)) == at(15)
    assert profile.next_capture_after(at(15)) == at(30)
    profile.capture_period = 0
    assert profile.next_capture_after(at(3)) is None


def test_client_view_of_the_buffer() -> None:
    _, profile = filled_meter()
    buffer = profile.read(2)
    columns = profile.read(3)
    view = parse_profile_buffer(buffer, columns)  # type: ignore[arg-type]
    assert view.columns == (CLOCK_TIME, ENERGY_VALUE)
    first = view.rows[0][0]
    assert isinstance(first, CosemDateTime) and first.to_datetime() == at(60)
    assert view.column(ENERGY_VALUE) == (40, 50, 60, 70, 80)


def test_client_view_fills_compressed_timestamps() -> None:
    t0 = OctetString(bytes.fromhex("07E8010101000000FF800000"))
    buffer = Array(
        [
            Structure([t0, DoubleLongUnsigned(1)]),
            Structure([None, DoubleLongUnsigned(2)]),
            Structure([None, DoubleLongUnsigned(3)]),
        ]
    )
    view = parse_profile_buffer(buffer, [CLOCK_TIME, ENERGY_VALUE], capture_period=900)
    times = [row[0] for row in view.rows]
    assert all(isinstance(t, CosemDateTime) for t in times)
    assert [t.to_datetime().minute for t in times] == [0, 15, 30]  # type: ignore[union-attr]
    unfilled = parse_profile_buffer(buffer, [CLOCK_TIME, ENERGY_VALUE])
    assert unfilled.rows[1][0] is None
    try:
        parse_profile_buffer(Array([Structure([t0])]), [CLOCK_TIME, ENERGY_VALUE])
    except DecodeError:
        pass
    else:
        raise AssertionError("a row with the wrong number of columns must be rejected")
