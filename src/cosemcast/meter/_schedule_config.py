"""The ``[schedule]`` table of the meter configuration (specs/scheduling.md §11).

Theory of operation. :func:`parse_schedule` reads the table into a frozen
:class:`ScheduleConfig`: the logical device that gets the upstream-schedule object (class 8964,
``0-0:128.5.0.255``), the initial schedule (report window, explicit offset, response window),
the meter's groups, the fallback spreading inputs (firmware identifier and tariff, used when the
device has no ``1-0:0.2.0.255`` / ``0-0:13.0.0.255`` object), the client SAP whose rights and
keys a broadcast group command uses, and the multicast group on which the meter listens for
group commands. Nothing is built here; :mod:`cosemcast.meter.schedule` builds the object.
Errors are :class:`~cosemcast.errors.ConfigurationError` naming the file, table and field.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from cosemcast.meter._objects_config import Table
from cosemcast.scheduling.cosem import MAX_MEMBERSHIPS

__all__ = ["ScheduleConfig", "parse_schedule"]

_FIELDS: Final = (
    "logical_device",
    "window_s",
    "explicit_offset_s",
    "groups",
    "response_delay_s",
    "response_window_s",
    "firmware_version",
    "tariff",
    "broadcast_client_sap",
    "group",
    "interface",
    "access",
)
_U32: Final = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class ScheduleConfig:
    """The upstream schedule of one logical device (``server_sap``; None: the first)."""

    server_sap: int | None
    window_s: int = 0
    explicit_offset_s: int | None = None
    groups: tuple[int, ...] = ()
    response_delay_s: int = 0
    response_window_s: int = 0
    firmware_version: str = ""
    tariff: str = ""
    broadcast_client_sap: int = 1
    group: tuple[str, int] | None = None
    interface: str = "0.0.0.0"
    access: Mapping[int, str] = field(default_factory=dict)


def parse_schedule(table: Table) -> ScheduleConfig:
    """``[schedule]``; the client SAPs are checked against the device by config.py."""
    table.only(*_FIELDS)
    raw_groups = table.get("groups", [])
    if not isinstance(raw_groups, list) or not all(
        isinstance(g, int) and not isinstance(g, bool) and 1 <= g <= 0xFFFF for g in raw_groups
    ):
        raise table.fail("groups", "must be a list of group numbers 1..65535")
    if len(set(raw_groups)) != len(raw_groups) or len(raw_groups) > MAX_MEMBERSHIPS:
        raise table.fail("groups", f"distinct groups, at most {MAX_MEMBERSHIPS}")
    group = None
    if "group" in table:
        text = table.string("group")
        host, sep, port = text.rpartition(":")
        try:
            multicast = ipaddress.IPv4Address(host).is_multicast
        except ValueError:
            multicast = False
        if not sep or not multicast or not port.isdigit() or not 0 < int(port) < 65536:
            raise table.fail("group", f"{text!r} is not an IPv4 multicast GROUP:PORT")
        group = (host, int(port))
    interface = table.string("interface", "0.0.0.0")
    try:
        ipaddress.IPv4Address(interface)
    except ValueError:
        raise table.fail("interface", f"{interface!r} is not an IPv4 address") from None
    return ScheduleConfig(
        server_sap=table.integer("logical_device", 0, 0, 0x3FFF) or None,
        window_s=table.integer("window_s", 0, 0, _U32),
        explicit_offset_s=table.integer("explicit_offset_s", 0, 0, _U32)
        if "explicit_offset_s" in table
        else None,
        groups=tuple(raw_groups),
        response_delay_s=table.integer("response_delay_s", 0, 0, _U32),
        response_window_s=table.integer("response_window_s", 0, 0, _U32),
        firmware_version=table.string("firmware_version", ""),
        tariff=table.string("tariff", ""),
        broadcast_client_sap=table.integer("broadcast_client_sap", 1, 1, 0x7F),
        group=group,
        interface=interface,
        access=table.access(),
    )
