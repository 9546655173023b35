"""Explicit scheduling orders, group commands and the meter's schedule (specs/scheduling.md §4-§6).

Theory of operation. The head-end steers when meters transmit upstream in two ways ([0045],
[0046]):

* unicast: it sets one meter's window or explicit offset (a SET on the upstream-schedule object,
  or a group command addressed to that meter alone);
* broadcast or multicast: a **group command**, the concatenation of explicit orders, one per
  group of meters ([0046]; groups defined for instance by location). Each meter applies the
  first entry whose group selector is one of its groups, or ``0`` (every meter), and ignores
  the rest (:func:`apply_group_command`).

An :class:`Order` is one of four kinds, always carried as ``structure {kind enum, offset
double-long-unsigned, window double-long-unsigned}`` with the fields a kind does not use set to
zero: set-window, set-offset (explicit, overrides the derived offset), clear-offset, and
respond-within (acknowledgements after a broadcast go out ``offset + spread(window)`` seconds
after its receipt). :class:`UpstreamSchedule` is the meter's state; :meth:`~UpstreamSchedule.apply`
returns the state after an order and :meth:`~UpstreamSchedule.report_instant` /
:meth:`~UpstreamSchedule.response_instant` say when to send.

:meth:`GroupCommand.decode` is strict (exact types, element counts, at most
:data:`MAX_ENTRIES` entries, unused fields zero, canonical encoding) and raises only
:class:`~cosemcast.errors.DecodeError`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Final

from cosemcast.apdu.action import ActionRequestNormal
from cosemcast.apdu.common import CosemMethodDescriptor, InvokeIdAndPriority
from cosemcast.axdr import (
    Array,
    Data,
    DoubleLongUnsigned,
    Enumerated,
    LongUnsigned,
    Structure,
    decode_data,
    encode_data,
)
from cosemcast.errors import DecodeError
from cosemcast.obis import Obis
from cosemcast.scheduling.spread import MAX_WINDOW_S, MeterIdentity

__all__ = [
    "ALL_GROUPS",
    "GROUP_COMMAND_METHOD",
    "MAX_ENTRIES",
    "UPSTREAM_SCHEDULE_CLASS_ID",
    "UPSTREAM_SCHEDULE_OBIS",
    "GroupCommand",
    "GroupOrder",
    "Order",
    "OrderKind",
    "ResponseWindow",
    "UpstreamSchedule",
    "apply_group_command",
    "group_command_request",
]

# Manufacturer-specific class and OBIS code after 8960-8963 (specs/scheduling.md §7).
UPSTREAM_SCHEDULE_CLASS_ID: Final = 8964
UPSTREAM_SCHEDULE_OBIS: Final = Obis(0, 0, 128, 5, 0, 255)
GROUP_COMMAND_METHOD: Final = 1
# The group selector that every meter matches.
ALL_GROUPS: Final = 0
MAX_GROUP: Final = 0xFFFF
MAX_ENTRIES: Final = 1024


class OrderKind(enum.IntEnum):
    """What an explicit order does (specs §5.2)."""

    SET_WINDOW = 0
    SET_OFFSET = 1
    CLEAR_OFFSET = 2
    RESPOND_WITHIN = 3


# The fields each kind uses: (offset, window).
_USES: Final = {
    OrderKind.SET_WINDOW: (False, True),
    OrderKind.SET_OFFSET: (True, False),
    OrderKind.CLEAR_OFFSET: (False, False),
    OrderKind.RESPOND_WITHIN: (True, True),
}


_KINDS: Final = frozenset(int(k) for k in OrderKind)


def _seconds(value: int, name: str) -> int:
    if not 0 <= value <= MAX_WINDOW_S:
        raise ValueError(f"{name} must be in 0..{MAX_WINDOW_S} s, got {value}")
    return value


@dataclass(frozen=True, slots=True)
class Order:
    """One explicit order; use the class methods to build one."""

    kind: OrderKind
    offset_s: int = 0
    window_s: int = 0

    def __post_init__(self) -> None:
        uses_offset, uses_window = _USES[OrderKind(self.kind)]
        _seconds(self.offset_s, "offset_s")
        _seconds(self.window_s, "window_s")
        if (self.offset_s and not uses_offset) or (self.window_s and not uses_window):
            raise ValueError(f"{OrderKind(self.kind).name} leaves unused fields at 0")

    @classmethod
    def set_window(cls, window_s: int) -> Order:
        return cls(OrderKind.SET_WINDOW, window_s=window_s)

    @classmethod
    def set_offset(cls, offset_s: int) -> Order:
        return cls(OrderKind.SET_OFFSET, offset_s=offset_s)

    @classmethod
    def clear_offset(cls) -> Order:
        return cls(OrderKind.CLEAR_OFFSET)

    @classmethod
    def respond_within(cls, delay_s: int, window_s: int) -> Order:
        return cls(OrderKind.RESPOND_WITHIN, offset_s=delay_s, window_s=window_s)

    def to_data(self) -> Structure:
        return Structure(
            (
                Enumerated(self.kind),
                DoubleLongUnsigned(self.offset_s),
                DoubleLongUnsigned(self.window_s),
            )
        )

    @classmethod
    def from_data(cls, value: Data) -> Order:
        kind, offset, window = _elements(value, 3, "order")
        if type(kind) is not Enumerated:
            raise DecodeError("order kind is not an enum", expected="16 <kind>")
        if int(kind) not in _KINDS:
            raise DecodeError(f"unknown order kind {int(kind)}", expected="0..3")
        try:
            return cls(OrderKind(kind), _u32(offset), _u32(window))
        except ValueError as exc:
            raise DecodeError(str(exc), expected="unused order fields 0") from exc


def _u32(value: Data) -> int:
    if not isinstance(value, DoubleLongUnsigned) or type(value) is not DoubleLongUnsigned:
        raise DecodeError("order fields are double-long-unsigned", expected="06 <u32>")
    return int(value)


def _elements(value: Data, count: int, what: str) -> Structure:
    if type(value) is not Structure or len(value) != count:
        raise DecodeError(f"{what} is not a structure of {count}", expected=f"02 0{count}")
    return value


@dataclass(frozen=True, slots=True)
class GroupOrder:
    """One entry of a group command: the order for the meters of ``group`` (0: every meter)."""

    group: int
    order: Order

    def __post_init__(self) -> None:
        if not 0 <= self.group <= MAX_GROUP:
            raise ValueError(f"a group selector is 0..{MAX_GROUP}, got {self.group}")

    def to_data(self) -> Structure:
        return Structure((LongUnsigned(self.group), self.order.to_data()))


@dataclass(frozen=True, slots=True)
class GroupCommand:
    """The concatenation of explicit orders of [0046]: ``array of structure {group, order}``."""

    entries: tuple[GroupOrder, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "entries", tuple(self.entries))
        if len(self.entries) > MAX_ENTRIES:
            raise ValueError(f"a group command holds at most {MAX_ENTRIES} entries")

    def to_data(self) -> Array:
        return Array(entry.to_data() for entry in self.entries)

    def encode(self) -> bytes:
        return encode_data(self.to_data())

    @classmethod
    def from_data(cls, value: Data) -> GroupCommand:
        """From a decoded A-XDR value (the method parameter); :class:`DecodeError` if malformed."""
        if type(value) is not Array:
            raise DecodeError("a group command is an array", expected="01 <n>")
        if len(value) > MAX_ENTRIES:
            raise DecodeError(f"{len(value)} entries, at most {MAX_ENTRIES}", expected="<= 1024")
        entries = []
        for item in value:
            group, order = _elements(item, 2, "group order")
            if type(group) is not LongUnsigned:
                raise DecodeError("group selector is not long-unsigned", expected="12 <u16>")
            entries.append(GroupOrder(int(group), Order.from_data(order)))
        return cls(tuple(entries))

    @classmethod
    def decode(cls, raw: bytes) -> GroupCommand:
        """Decode the A-XDR bytes; only :class:`DecodeError` is raised."""
        command = cls.from_data(decode_data(raw))
        if command.encode() != bytes(raw):
            raise DecodeError("non-canonical encoding", expected="minimal A-XDR lengths")
        return command

    def order_for(self, groups: Iterable[int]) -> Order | None:
        """The first order whose selector is ``0`` or one of ``groups``."""
        mine = frozenset(groups)
        for entry in self.entries:
            if entry.group == ALL_GROUPS or entry.group in mine:
                return entry.order
        return None


def apply_group_command(command: GroupCommand, my_groups: Iterable[int]) -> Order | None:
    """The order this meter must apply (first match wins), or None when none is for it."""
    return command.order_for(my_groups)


def group_command_request(command: GroupCommand, invoke_id: int = 1) -> ActionRequestNormal:
    """The broadcast APDU: an unconfirmed, normal-priority ACTION-Request invoking
    ``group_command`` on the upstream-schedule object (specs §6)."""
    return ActionRequestNormal(
        CosemMethodDescriptor(
            UPSTREAM_SCHEDULE_CLASS_ID, UPSTREAM_SCHEDULE_OBIS, GROUP_COMMAND_METHOD
        ),
        command.to_data(),
        InvokeIdAndPriority(invoke_id, confirmed=False, high_priority=False),
    )


@dataclass(frozen=True, slots=True)
class ResponseWindow:
    """When acknowledgements after a broadcast go out: ``delay_s + spread(window_s)``."""

    delay_s: int = 0
    window_s: int = 0

    def __post_init__(self) -> None:
        _seconds(self.delay_s, "delay_s")
        _seconds(self.window_s, "window_s")


@dataclass(frozen=True, slots=True)
class UpstreamSchedule:
    """A meter's upstream schedule: the spreading window of its periodic reports (C1, C2), an
    explicit offset that overrides the derived one, and the response window."""

    window_s: int = 0
    explicit_offset_s: int | None = None
    response: ResponseWindow = field(default_factory=ResponseWindow)

    def __post_init__(self) -> None:
        _seconds(self.window_s, "window_s")
        if self.explicit_offset_s is not None:
            _seconds(self.explicit_offset_s, "explicit_offset_s")

    def apply(self, order: Order) -> UpstreamSchedule:
        """The schedule after ``order`` (specs §5.2)."""
        match order.kind:
            case OrderKind.SET_WINDOW:
                return replace(self, window_s=order.window_s)
            case OrderKind.SET_OFFSET:
                return replace(self, explicit_offset_s=order.offset_s)
            case OrderKind.CLEAR_OFFSET:
                return replace(self, explicit_offset_s=None)
            case _:
                return replace(self, response=ResponseWindow(order.offset_s, order.window_s))

    def report_offset(self, identity: MeterIdentity) -> int:
        """Seconds after each nominal reporting instant at which the meter transmits."""
        if self.explicit_offset_s is not None:
            return self.explicit_offset_s
        return identity.offset(self.window_s)

    def report_instant(self, nominal: int, identity: MeterIdentity) -> int:
        return nominal + self.report_offset(identity)

    def response_offset(self, identity: MeterIdentity) -> int:
        """Seconds after a broadcast's receipt at which its acknowledgement goes out."""
        return self.response.delay_s + identity.offset(self.response.window_s)

    def response_instant(self, received_at: int, identity: MeterIdentity) -> int:
        return received_at + self.response_offset(identity)
