"""Orders, group commands and the meter's schedule (specs/scheduling.md §4-§6)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.action import ActionRequestNormal
from cosemcast.axdr import (
    Array,
    DoubleLongUnsigned,
    Enumerated,
    LongUnsigned,
    Structure,
    Unsigned,
    encode_data,
)
from cosemcast.errors import DecodeError
from cosemcast.scheduling import (
    MAX_ENTRIES,
    GroupCommand,
    GroupOrder,
    MeterIdentity,
    Order,
    OrderKind,
    ResponseWindow,
    UpstreamSchedule,
    apply_group_command,
    group_command_request,
)
from strategies import data_values

IDENTITY = MeterIdentity(bytes.fromhex("4D4D4D0000BC614E"), b"FW-1.4.2", b"TOU-2")

orders = st.one_of(
    st.builds(Order.set_window, st.integers(0, 2**32 - 1)),
    st.builds(Order.set_offset, st.integers(0, 2**32 - 1)),
    st.just(Order.clear_offset()),
    st.builds(Order.respond_within, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
)
commands = st.builds(
    GroupCommand,
    st.lists(st.builds(GroupOrder, st.integers(0, 0xFFFF), orders), max_size=20).map(tuple),
)


@given(commands)
def test_round_trip(command: GroupCommand) -> None:
    raw = command.encode()
    assert GroupCommand.decode(raw) == command
    assert len(raw) == 2 + 19 * len(command.entries)


@given(st.binary(max_size=120))
def test_arbitrary_bytes_raise_only_decode_error(raw: bytes) -> None:
    try:
        GroupCommand.decode(raw)
    except DecodeError:
        pass


@given(commands, st.data())
def test_mutated_commands_raise_only_decode_error(
    command: GroupCommand, data: st.DataObject
) -> None:
    raw = bytearray(command.encode())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    try:
        decoded = GroupCommand.decode(bytes(raw[:cut]))
    except DecodeError:
        return
    assert decoded.encode() == bytes(raw[:cut])


def _entry(group: object, kind: object, offset: object, window: object) -> Structure:
    return Structure((group, Structure((kind, offset, window))))  # type: ignore[arg-type]


GOOD = _entry(LongUnsigned(1), Enumerated(0), DoubleLongUnsigned(0), DoubleLongUnsigned(60))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (Structure((GOOD,)), "array"),
        (Array((Structure((LongUnsigned(1),)),)), "structure of 2"),
        (
            Array(
                (_entry(Unsigned(1), Enumerated(0), DoubleLongUnsigned(0), DoubleLongUnsigned(0)),)
            ),
            "long-unsigned",
        ),
        (
            Array(
                (
                    _entry(
                        LongUnsigned(1), Unsigned(0), DoubleLongUnsigned(0), DoubleLongUnsigned(0)
                    ),
                )
            ),
            "enum",
        ),
        (
            Array(
                (
                    _entry(
                        LongUnsigned(1), Enumerated(9), DoubleLongUnsigned(0), DoubleLongUnsigned(0)
                    ),
                )
            ),
            "unknown order kind",
        ),
        (
            Array(
                (_entry(LongUnsigned(1), Enumerated(0), LongUnsigned(0), DoubleLongUnsigned(0)),)
            ),
            "double-long-unsigned",
        ),
        (
            Array(
                (
                    _entry(
                        LongUnsigned(1), Enumerated(0), DoubleLongUnsigned(5), DoubleLongUnsigned(0)
                    ),
                )
            ),
            "unused fields",
        ),
        (
            Array(
                (
                    _entry(
                        LongUnsigned(1), Enumerated(2), DoubleLongUnsigned(0), DoubleLongUnsigned(1)
                    ),
                )
            ),
            "unused fields",
        ),
        (Array((GOOD,) * (MAX_ENTRIES + 1)), "at most"),
    ],
)
def test_strict_decoding(value: Array, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        GroupCommand.decode(encode_data(value))


def test_non_canonical_lengths_are_refused() -> None:
    canonical = GroupCommand((GroupOrder(0, Order.clear_offset()),)).encode()
    assert canonical[:2] == b"\x01\x01"
    with pytest.raises(DecodeError):
        GroupCommand.decode(b"\x01\x81\x01" + canonical[2:])
    assert len(GroupCommand((GroupOrder(0, Order.clear_offset()),) * MAX_ENTRIES).encode()) == (
        4 + 19 * MAX_ENTRIES
    )


def test_constructors_refuse_out_of_range_values() -> None:
    with pytest.raises(ValueError):
        Order.set_window(2**32)
    with pytest.raises(ValueError):
        Order(OrderKind.SET_WINDOW, offset_s=1, window_s=1)
    with pytest.raises(ValueError):
        GroupOrder(0x10000, Order.clear_offset())
    with pytest.raises(ValueError):
        GroupCommand((GroupOrder(0, Order.clear_offset()),) * (MAX_ENTRIES + 1))
    with pytest.raises(ValueError):
        UpstreamSchedule(window_s=-1)
    with pytest.raises(ValueError):
        ResponseWindow(0, 2**32)


def test_first_matching_entry_wins_and_group_zero_matches_everyone() -> None:
    command = GroupCommand(
        (
            GroupOrder(7, Order.respond_within(0, 1200)),
            GroupOrder(12, Order.respond_within(1200, 1200)),
            GroupOrder(0, Order.set_window(840)),
            GroupOrder(3, Order.set_offset(5)),  # never reached: group 0 comes first
        )
    )
    assert apply_group_command(command, [7, 12]) == Order.respond_within(0, 1200)
    assert apply_group_command(command, {12}) == Order.respond_within(1200, 1200)
    assert apply_group_command(command, [3]) == Order.set_window(840)
    assert apply_group_command(command, []) == Order.set_window(840)
    named_only = GroupCommand((GroupOrder(7, Order.clear_offset()),))
    assert apply_group_command(named_only, [8]) is None
    assert apply_group_command(GroupCommand(), [1]) is None


def test_the_schedule_follows_the_orders() -> None:
    schedule = UpstreamSchedule()
    assert schedule.report_instant(900, IDENTITY) == 900  # no window: the nominal instant
    schedule = schedule.apply(Order.set_window(900))
    derived = IDENTITY.offset(900)
    assert schedule.report_offset(IDENTITY) == derived
    assert schedule.report_instant(1800, IDENTITY) == 1800 + derived
    schedule = schedule.apply(Order.set_offset(1234))
    assert schedule.report_instant(1800, IDENTITY) == 1800 + 1234  # above the window: obeyed
    assert schedule.window_s == 900
    schedule = schedule.apply(Order.clear_offset())
    assert schedule.explicit_offset_s is None and schedule.report_offset(IDENTITY) == derived
    assert schedule.response_instant(50, IDENTITY) == 50
    schedule = schedule.apply(Order.respond_within(600, 1200))
    assert schedule.response == ResponseWindow(600, 1200)
    assert schedule.response_instant(50, IDENTITY) == 50 + 600 + IDENTITY.offset(1200)
    assert schedule.report_offset(IDENTITY) == derived  # responses leave reports alone


def test_the_broadcast_request_is_an_unconfirmed_action() -> None:
    command = GroupCommand((GroupOrder(0, Order.set_offset(300)),))
    raw = group_command_request(command).encode()
    decoded = decode_apdu(raw)
    assert isinstance(decoded, ActionRequestNormal)
    assert not decoded.invoke_id_and_priority.confirmed
    assert not decoded.invoke_id_and_priority.high_priority
    descriptor = decoded.cosem_method_descriptor
    assert (descriptor.class_id, str(descriptor.instance_id), descriptor.method_id) == (
        8964,
        "0-0:128.5.0.255",
        1,
    )
    assert GroupCommand.from_data(decoded.method_invocation_parameters) == command  # type: ignore[arg-type]


@given(data_values)
def test_arbitrary_data_values_raise_only_decode_error(value: object) -> None:
    try:
        command = GroupCommand.from_data(value)  # type: ignore[arg-type]
    except DecodeError:
        return
    assert GroupCommand.decode(command.encode()) == command


@given(st.lists(data_values, max_size=4).map(Array))
def test_arrays_of_anything_raise_only_decode_error(value: Array) -> None:
    try:
        GroupCommand.from_data(value)
    except DecodeError:
        pass
