"""Upstream schedule, manufacturer-specific interface class 8964 (version 0), 0-0:128.5.0.255.

Attributes (specs/scheduling.md §7): 1 logical_name; 2 window (double-long-unsigned s, r/w):
the spreading window of periodic reports; 3 explicit_offset (double-long-unsigned s, or
null-data for none, r/w): overrides the derived offset; 4 group_membership (array of
long-unsigned 1..65535, r/w); 5 response_window (structure {delay, window}, both
double-long-unsigned s, r/w); 6 effective_offset (double-long-unsigned s, read-only, dynamic):
the offset the meter uses now; 7 spread_inputs (structure {system_title octet-string(8),
firmware_version octet-string, tariff octet-string}, read-only). Method 1 group_command (array
of structure {group long-unsigned, order}): apply this meter's entry.

Theory of operation. The object holds a :class:`~cosemcast.scheduling.orders.UpstreamSchedule`,
the meter's groups and its :class:`~cosemcast.scheduling.spread.MeterIdentity` (the owner, the
software meter, keeps the identity current: a firmware upgrade or tariff change moves the
slot). The owner asks :meth:`UpstreamScheduleObject.report_instant` at every nominal push
instant and :meth:`UpstreamScheduleObject.response_instant` when a broadcast that wants an
acknowledgement arrives. ``on_order`` tells the owner that a group command applied an order.

Decisions (specs §7): a group command with no entry for this meter succeeds and changes
nothing; a malformed one is ``type-unmatched`` when it is not an array and ``other-reason``
otherwise, and changes nothing; group 0 cannot be a membership (it selects every meter).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping

from cosemcast.apdu.common import ActionResult, DataAccessResult, SelectiveAccess
from cosemcast.association.backend import AccessContext
from cosemcast.axdr.types import (
    Array,
    Data,
    DoubleLongUnsigned,
    LongUnsigned,
    OctetString,
    Structure,
)
from cosemcast.cosem.access import AccessRights
from cosemcast.cosem.base import LOGICAL_NAME, AttributeSpec, CosemObject, MethodSpec
from cosemcast.cosem.common import TypeUnmatched, ValueRejected, want_array, want_int
from cosemcast.cosem.common import want_structure as _want_structure
from cosemcast.errors import DecodeError
from cosemcast.obis import Obis
from cosemcast.scheduling.orders import (
    MAX_GROUP,
    UPSTREAM_SCHEDULE_CLASS_ID,
    UPSTREAM_SCHEDULE_OBIS,
    GroupCommand,
    Order,
    ResponseWindow,
    UpstreamSchedule,
    apply_group_command,
)
from cosemcast.scheduling.spread import MAX_WINDOW_S, MeterIdentity

__all__ = ["MAX_MEMBERSHIPS", "UpstreamScheduleObject"]

MAX_MEMBERSHIPS = 64


class UpstreamScheduleObject(CosemObject):
    """Upstream schedule (class 8964); see the module docstring."""

    CLASS_ID = UPSTREAM_SCHEDULE_CLASS_ID
    VERSION = 0
    ATTRIBUTES = (
        LOGICAL_NAME,
        AttributeSpec(2, "window", "double-long-unsigned", writable=True),
        AttributeSpec(3, "explicit_offset", "double-long-unsigned | null-data", writable=True),
        AttributeSpec(4, "group_membership", "array", writable=True),
        AttributeSpec(5, "response_window", "structure", writable=True),
        AttributeSpec(6, "effective_offset", "double-long-unsigned"),
        AttributeSpec(7, "spread_inputs", "structure"),
    )
    METHODS = (MethodSpec(1, "group_command", "array"),)

    def __init__(
        self,
        identity: MeterIdentity,
        logical_name: Obis | str = UPSTREAM_SCHEDULE_OBIS,
        *,
        schedule: UpstreamSchedule | None = None,
        groups: Iterable[int] = (),
        access: Mapping[int | None, AccessRights] | None = None,
    ) -> None:
        super().__init__(logical_name, access=access)
        self.identity = identity
        self.schedule = schedule or UpstreamSchedule()
        self.groups = _check_groups(groups)
        self.last_order: Order | None = None
        self.on_order: Callable[[UpstreamScheduleObject, Order], None] | None = None

    # --- for the owner -------------------------------------------------------------------------

    def report_instant(self, nominal: int) -> int:
        """When to transmit the reports (C2s first, then the C1) due at ``nominal`` (Unix s)."""
        return self.schedule.report_instant(nominal, self.identity)

    def response_instant(self, received_at: int) -> int:
        """When to acknowledge a broadcast received at ``received_at`` (Unix s)."""
        return self.schedule.response_instant(received_at, self.identity)

    def apply(self, command: GroupCommand) -> Order | None:
        """Apply this meter's entry of ``command``; the order applied, or None."""
        order = apply_group_command(command, self.groups)
        if order is not None:
            self.schedule = self.schedule.apply(order)
            self.last_order = order
            if self.on_order is not None:
                self.on_order(self, order)
        return order

    # --- attributes and methods ----------------------------------------------------------------

    def _read(
        self,
        attribute_id: int,
        selection: SelectiveAccess | None,
        ctx: AccessContext | None,
        now: dt.datetime | None,
    ) -> Data | DataAccessResult:
        schedule = self.schedule
        match attribute_id:
            case 2:
                return DoubleLongUnsigned(schedule.window_s)
            case 3:
                offset = schedule.explicit_offset_s
                return None if offset is None else DoubleLongUnsigned(offset)
            case 4:
                return Array(LongUnsigned(g) for g in self.groups)
            case 5:
                return Structure(
                    (
                        DoubleLongUnsigned(schedule.response.delay_s),
                        DoubleLongUnsigned(schedule.response.window_s),
                    )
                )
            case 6:
                return DoubleLongUnsigned(schedule.report_offset(self.identity))
            case _:
                ident = self.identity
                return Structure(
                    (
                        OctetString(ident.system_title),
                        OctetString(ident.firmware_version),
                        OctetString(ident.tariff),
                    )
                )

    def _write(self, attribute_id: int, value: Data, ctx: AccessContext | None) -> DataAccessResult:
        schedule = self.schedule
        match attribute_id:
            case 2:
                window = want_int(value, DoubleLongUnsigned, low=0, high=MAX_WINDOW_S)
                self.schedule = UpstreamSchedule(
                    window, schedule.explicit_offset_s, schedule.response
                )
            case 3:
                offset = None if value is None else want_int(value, DoubleLongUnsigned)
                self.schedule = UpstreamSchedule(schedule.window_s, offset, schedule.response)
            case 4:
                try:
                    groups = _check_groups(
                        want_int(g, LongUnsigned, low=1, high=MAX_GROUP) for g in want_array(value)
                    )
                except ValueError as exc:
                    raise ValueRejected(str(exc)) from exc
                self.groups = groups
            case _:
                pair = _want_structure(value, 2)
                response = ResponseWindow(
                    want_int(pair[0], DoubleLongUnsigned), want_int(pair[1], DoubleLongUnsigned)
                )
                self.schedule = UpstreamSchedule(
                    schedule.window_s, schedule.explicit_offset_s, response
                )
        return DataAccessResult.SUCCESS

    def _invoke(
        self, method_id: int, params: Data | None, ctx: AccessContext | None
    ) -> tuple[ActionResult, Data | None]:
        if not isinstance(params, Array):
            raise TypeUnmatched(f"group_command takes an array, got {type(params).__name__}")
        try:
            command = GroupCommand.from_data(params)
        except DecodeError as exc:
            raise ValueRejected(str(exc)) from exc
        self.apply(command)
        return ActionResult.SUCCESS, None


def _check_groups(groups: Iterable[int]) -> tuple[int, ...]:
    ordered = tuple(int(g) for g in groups)
    if len(ordered) > MAX_MEMBERSHIPS:
        raise ValueError(f"a meter belongs to at most {MAX_MEMBERSHIPS} groups")
    if len(set(ordered)) != len(ordered):
        raise ValueError("a group appears twice in group_membership")
    if any(not 1 <= g <= MAX_GROUP for g in ordered):
        raise ValueError(f"group ids are 1..{MAX_GROUP} (0 selects every meter)")
    return ordered
