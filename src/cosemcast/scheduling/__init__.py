"""Upstream load balancing of EP 2671052 [0032], [0044]-[0046] (specs/scheduling.md).

Meters that report at the same quarter hour, or answer the same broadcast, would all transmit
in the same second. Sans-IO pieces: :mod:`.spread` (each meter's deterministic offset from its
system title, firmware version and tariff), :mod:`.orders` (explicit orders, the broadcast
group command and the meter's :class:`UpstreamSchedule`), :mod:`.cosem` (the upstream-schedule
interface class 8964), :mod:`.stats` and :mod:`.study` (the load model and the real-message
simulation behind ``tools/schedule_study.py``).
"""

from cosemcast.scheduling.cosem import UpstreamScheduleObject
from cosemcast.scheduling.orders import (
    ALL_GROUPS,
    GROUP_COMMAND_METHOD,
    MAX_ENTRIES,
    UPSTREAM_SCHEDULE_CLASS_ID,
    UPSTREAM_SCHEDULE_OBIS,
    GroupCommand,
    GroupOrder,
    Order,
    OrderKind,
    ResponseWindow,
    UpstreamSchedule,
    apply_group_command,
    group_command_request,
)
from cosemcast.scheduling.spread import (
    MAX_WINDOW_S,
    SPREAD_LABEL,
    MeterIdentity,
    spread_input,
    spread_offset,
    uniform_below,
)

__all__ = [
    "ALL_GROUPS",
    "GROUP_COMMAND_METHOD",
    "MAX_ENTRIES",
    "MAX_WINDOW_S",
    "SPREAD_LABEL",
    "UPSTREAM_SCHEDULE_CLASS_ID",
    "UPSTREAM_SCHEDULE_OBIS",
    "GroupCommand",
    "GroupOrder",
    "MeterIdentity",
    "Order",
    "OrderKind",
    "ResponseWindow",
    "UpstreamSchedule",
    "UpstreamScheduleObject",
    "apply_group_command",
    "group_command_request",
    "spread_input",
    "spread_offset",
    "uniform_below",
]
