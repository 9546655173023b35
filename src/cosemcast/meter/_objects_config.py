"""The ``[[logical_devices.objects]]`` tables of the meter configuration, and the table reader.

Theory of operation. :class:`Table` wraps one TOML table with its place in the file, so every
check can raise a :class:`~cosemcast.errors.ConfigurationError` that names the file, the table
and the field. :func:`parse_object` dispatches on the ``class`` field to one parser per
interface class and returns a frozen ``...Config`` dataclass; cross-references (capture
objects, push objects, client SAPs) are checked by :mod:`cosemcast.meter.config` once the
whole logical device is known.

Value formats (decisions, copy to specs/): a capture or push object is the string
``"class/obis/attribute[/data_index]"`` (``"3/1-0:1.8.0.255/2"``); a unit is a Blue Book
symbol (``"Wh"``), a :class:`~cosemcast.cosem.units.Unit` name (``"watt_hour"``) or its code;
an octet-string ``value`` is UTF-8 text (``hex`` gives raw bytes); a push window is a pair of
``"HH:MM[:SS]"`` times, every day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from cosemcast.axdr.types import (
    CosemDateTime,
    Data,
    DoubleLong,
    DoubleLongUnsigned,
    Enumerated,
    Float32,
    Float64,
    Integer,
    Long,
    Long64,
    Long64Unsigned,
    LongUnsigned,
    OctetString,
    Unsigned,
    VisibleString,
    _FixedInt,
)
from cosemcast.cosem.access import AccessMode, AccessRights
from cosemcast.cosem.common import CaptureObjectDefinition
from cosemcast.cosem.disconnect import ControlMode
from cosemcast.cosem.profile import SortMethod
from cosemcast.cosem.push_setup import TransportService
from cosemcast.cosem.units import Unit
from cosemcast.errors import ConfigurationError
from cosemcast.meter.loadcurve import LoadCurve
from cosemcast.obis import Obis

__all__ = [
    "ACCESS_LEVELS",
    "INTEGER_TYPES",
    "ClockConfig",
    "DataConfig",
    "DisconnectConfig",
    "ObjectConfig",
    "ProfileConfig",
    "PushConfig",
    "RegisterConfig",
    "Table",
    "capture_list",
    "parse_object",
]

_REQUIRED: Final = object()

ACCESS_LEVELS: Final[dict[str, AccessRights | None]] = {
    "none": None,
    "read": AccessRights.read_only(),
    "read-write": AccessRights(default_attribute=AccessMode.READ_AND_WRITE),
    "full": AccessRights.full(),
    "authenticated-read": AccessRights(default_attribute=AccessMode.AUTHENTICATED_READ_ONLY),
    "authenticated-full": AccessRights.full(authenticated=True),
}
"""The access levels a client or an object's ``access`` table names (see config.py)."""

INTEGER_TYPES: Final[dict[str, type[_FixedInt]]] = {
    "integer": Integer,
    "long": Long,
    "double-long": DoubleLong,
    "long64": Long64,
    "unsigned": Unsigned,
    "long-unsigned": LongUnsigned,
    "double-long-unsigned": DoubleLongUnsigned,
    "long64-unsigned": Long64Unsigned,
    "enum": Enumerated,
}
_FLOAT_TYPES: Final[dict[str, type[Float32 | Float64]]] = {"float32": Float32, "float64": Float64}
_OTHER_TYPES: Final = ("octet-string", "visible-string", "boolean", "null")
_UNITS_BY_SYMBOL: Final = {u.symbol: u for u in Unit if u.symbol}


class Table:
    """One TOML table and where it is (``file``, ``logical_devices[0].objects[3]``)."""

    def __init__(self, source: str, path: str, data: object) -> None:
        if not isinstance(data, dict):
            raise ConfigurationError(f"{source}: [{path}] must be a table")
        self.source = source
        self.path = path
        self.data: dict[str, Any] = data

    def fail(self, name: str, message: str) -> ConfigurationError:
        where = f"[{self.path}] " if self.path else ""
        return ConfigurationError(f"{self.source}: {where}{name}: {message}")

    def __contains__(self, name: str) -> bool:
        return name in self.data

    def only(self, *names: str) -> None:
        for name in self.data:
            if name not in names:
                raise self.fail(name, f"unknown field (expected one of {', '.join(names)})")

    def get(self, name: str, default: Any = None) -> Any:
        return self.data.get(name, default)

    def _child(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def table(self, name: str) -> Table:
        return Table(self.source, self._child(name), self.data.get(name, {}))

    def tables(self, name: str) -> list[Table]:
        raw = self.data.get(name, [])
        if not isinstance(raw, list):
            raise self.fail(name, "must be an array of tables ([[...]])")
        return [Table(self.source, f"{self._child(name)}[{i}]", t) for i, t in enumerate(raw)]

    def _value(self, name: str, default: Any) -> Any:
        if name in self.data:
            return self.data[name]
        if default is _REQUIRED:
            raise self.fail(name, "is required")
        return default

    def string(self, name: str, default: Any = _REQUIRED) -> str:
        value = self._value(name, default)
        if not isinstance(value, str):
            raise self.fail(name, "must be a string")
        return value

    def integer(self, name: str, default: int | None, low: int, high: int) -> int:
        value = self._value(name, _REQUIRED if default is None else default)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(name, "must be an integer")
        if not low <= value <= high:
            raise self.fail(name, f"{value} is outside {low}..{high}")
        return value

    def hex_bytes(self, name: str, length: int) -> bytes:
        """Bytes given in hex (spaces allowed); the message never repeats the value."""
        text = self.string(name).replace(" ", "").replace(":", "")
        try:
            value = bytes.fromhex(text)
        except ValueError:
            raise self.fail(name, "is not hexadecimal") from None
        if len(value) != length:
            raise self.fail(name, f"must be {length} bytes, got {len(value)}")
        return value

    def obis(self, name: str, default: Obis | None = None) -> Obis:
        if name not in self.data and default is not None:
            return default
        return parse_obis(self, name, self.string(name))

    def access(self) -> dict[int, str]:
        raw = self.data.get("access", {})
        if not isinstance(raw, dict):
            raise self.fail("access", "must be a table of client SAP = access level")
        out: dict[int, str] = {}
        for key, level in raw.items():
            if not str(key).isdigit():
                raise self.fail("access", f"{key!r} is not a client SAP number")
            if level not in ACCESS_LEVELS:
                raise self.fail(
                    "access", f"level {level!r} is not one of {', '.join(ACCESS_LEVELS)}"
                )
            out[int(key)] = level
        return out


def parse_obis(table: Table, name: str, text: str) -> Obis:
    try:
        return Obis.parse(text)
    except ValueError as exc:
        raise table.fail(name, f"{text!r} is not an OBIS code ({exc})") from None


def capture_list(table: Table, name: str) -> tuple[CaptureObjectDefinition, ...]:
    raw = table.get(name, [])
    if not isinstance(raw, list):
        raise table.fail(name, 'must be a list of "class/obis/attribute[/data_index]" strings')
    items = []
    for text in raw:
        parts = text.split("/") if isinstance(text, str) else []
        if len(parts) not in (3, 4) or not all(p.isdigit() for i, p in enumerate(parts) if i != 1):
            raise table.fail(name, f'{text!r} is not "class/obis/attribute[/data_index]"')
        data_index = int(parts[3]) if len(parts) == 4 else 0
        items.append(
            CaptureObjectDefinition(
                int(parts[0]), parse_obis(table, name, parts[1]), int(parts[2]), data_index
            )
        )
    return tuple(items)


# --- the object configurations -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ObjectBase:
    obis: Obis
    access: Mapping[int, str]

    @property
    def references(self) -> tuple[CaptureObjectDefinition, ...]:
        return ()


@dataclass(frozen=True, slots=True)
class ClockConfig(_ObjectBase):
    """Clock (class 8): the time zone and whether EU daylight saving applies."""

    time_zone: int = 0
    daylight_saving: bool = False
    class_id: int = 8


@dataclass(frozen=True, slots=True)
class DataConfig(_ObjectBase):
    value: Data = None
    class_id: int = 1


@dataclass(frozen=True, slots=True)
class RegisterConfig(_ObjectBase):
    """Register (3) or Extended register (4); ``energy_of`` / ``power_of`` name a load curve."""

    value: Data = None
    scaler: int = 0
    unit: int = Unit.COUNT
    energy_of: str | None = None
    power_of: str | None = None
    class_id: int = 3


@dataclass(frozen=True, slots=True)
class ProfileConfig(_ObjectBase):
    capture_objects: tuple[CaptureObjectDefinition, ...] = ()
    capture_period: int = 0
    profile_entries: int = 1000
    sort_method: SortMethod = SortMethod.FIFO
    class_id: int = 7

    @property
    def references(self) -> tuple[CaptureObjectDefinition, ...]:
        return self.capture_objects


@dataclass(frozen=True, slots=True)
class PushConfig(_ObjectBase):
    """Push setup (40) and how the meter triggers and sends it (``interval`` 0: on demand)."""

    push_object_list: tuple[CaptureObjectDefinition, ...] = ()
    transport: TransportService = TransportService.UDP
    destination: str = ""
    client_sap: int = 1
    protection: str = "none"
    interval: int = 0
    windows: tuple[tuple[CosemDateTime, CosemDateTime], ...] = ()
    randomisation_start_interval: int = 0
    number_of_retries: int = 0
    repetition_delay: int = 0
    class_id: int = 40

    @property
    def references(self) -> tuple[CaptureObjectDefinition, ...]:
        return self.push_object_list


@dataclass(frozen=True, slots=True)
class DisconnectConfig(_ObjectBase):
    control_mode: ControlMode = ControlMode.MODE_1
    class_id: int = 70


ObjectConfig: TypeAlias = (
    ClockConfig | DataConfig | RegisterConfig | ProfileConfig | PushConfig | DisconnectConfig
)


def parse_object(table: Table, curves: Mapping[str, LoadCurve]) -> ObjectConfig:
    kind = table.string("class")
    parser = _PARSERS.get(kind)
    if parser is None:
        raise table.fail("class", f"{kind!r} is not one of {', '.join(_PARSERS)}")
    return parser(table, curves)


def _clock(table: Table, curves: Mapping[str, LoadCurve]) -> ClockConfig:
    table.only("class", "obis", "access", "time_zone", "daylight_saving")
    saving = table.string("daylight_saving", "none")
    if saving not in ("none", "eu"):
        raise table.fail("daylight_saving", "must be 'none' or 'eu'")
    return ClockConfig(
        table.obis("obis", Obis(0, 0, 1, 0, 0, 255)),
        table.access(),
        time_zone=table.integer("time_zone", 0, -720, 720),
        daylight_saving=saving == "eu",
    )


def _data_value(table: Table, default_type: str, default_value: Any) -> Data:
    type_name = table.string("type", default_type)
    raw = table.get("value", default_value)
    if "hex" in table:
        if type_name != "octet-string" or "value" in table:
            raise table.fail("hex", "gives an octet-string's bytes; use it instead of value")
        text = table.string("hex").replace(" ", "")
        try:
            return OctetString(bytes.fromhex(text))
        except ValueError:
            raise table.fail("hex", "is not hexadecimal") from None
    integer = INTEGER_TYPES.get(type_name)
    if integer is not None:
        if not isinstance(raw, int) or isinstance(raw, bool):
            raise table.fail("value", f"a {type_name} value must be an integer")
        low, high = integer.MIN, integer.MAX
        if not low <= raw <= high:
            raise table.fail("value", f"{raw} does not fit a {type_name} ({low}..{high})")
        value: Data = integer(raw)
        return value
    floating = _FLOAT_TYPES.get(type_name)
    if floating is not None:
        if not isinstance(raw, int | float) or isinstance(raw, bool):
            raise table.fail("value", f"a {type_name} value must be a number")
        number: Data = floating(raw)
        return number
    if type_name == "octet-string" and isinstance(raw, str):
        return OctetString(raw.encode("utf-8"))
    if type_name == "visible-string" and isinstance(raw, str) and raw.isascii():
        return VisibleString(raw)
    if type_name == "boolean" and isinstance(raw, bool):
        return raw
    if type_name == "null":
        return None
    if type_name not in _OTHER_TYPES:
        names = [*INTEGER_TYPES, *_FLOAT_TYPES, *_OTHER_TYPES]
        raise table.fail("type", f"{type_name!r} is not one of {', '.join(names)}")
    raise table.fail("value", f"{raw!r} is not a {type_name} value")


def _data(table: Table, curves: Mapping[str, LoadCurve]) -> DataConfig:
    table.only("class", "obis", "access", "type", "value", "hex")
    return DataConfig(table.obis("obis"), table.access(), value=_data_value(table, "null", None))


def _unit(table: Table) -> int:
    raw = table.get("unit", "count")
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw <= 255:
        return raw
    if isinstance(raw, str):
        if raw in _UNITS_BY_SYMBOL:
            return int(_UNITS_BY_SYMBOL[raw])
        try:
            return int(Unit[raw.upper().replace("-", "_")])
        except KeyError:
            pass
    raise table.fail("unit", f"{raw!r} is not a unit symbol (Wh), name (watt_hour) or 0..255")


def _register(table: Table, curves: Mapping[str, LoadCurve], class_id: int) -> RegisterConfig:
    table.only(
        "class", "obis", "access", "type", "value", "scaler", "unit", "energy_of", "power_of"
    )
    sources = {}
    for name in ("energy_of", "power_of"):
        if name in table:
            curve = table.string(name)
            if curve not in curves:
                raise table.fail(name, f"no load curve is named {curve!r}")
            sources[name] = curve
    if len(sources) > 1:
        raise table.fail("power_of", "a register follows either energy_of or power_of")
    value = _data_value(table, "double-long-unsigned", 0)
    if sources and (not isinstance(value, int | float) or isinstance(value, bool)):
        raise table.fail("type", "a register that follows a load curve must be numeric")
    return RegisterConfig(
        table.obis("obis"),
        table.access(),
        value=value,
        scaler=table.integer("scaler", 0, -128, 127),
        unit=_unit(table),
        energy_of=sources.get("energy_of"),
        power_of=sources.get("power_of"),
        class_id=class_id,
    )


def _profile(table: Table, curves: Mapping[str, LoadCurve]) -> ProfileConfig:
    table.only(
        "class", "obis", "access", "capture_objects", "capture_period", "profile_entries", "sort"
    )
    sort = table.string("sort", "fifo")
    try:
        method = SortMethod[sort.upper().replace("-", "_")]
    except KeyError:
        names = ", ".join(m.name.lower() for m in SortMethod)
        raise table.fail("sort", f"must be one of {names}") from None
    return ProfileConfig(
        table.obis("obis"),
        table.access(),
        capture_objects=capture_list(table, "capture_objects"),
        capture_period=table.integer("capture_period", 0, 0, 0xFFFFFFFF),
        profile_entries=table.integer("profile_entries", 1000, 1, 100_000),
        sort_method=method,
    )


def _time_of_day(table: Table, text: object) -> CosemDateTime:
    try:
        moment = dt.time.fromisoformat(str(text))
    except ValueError:
        raise table.fail("windows", f"{text!r} is not a time of day HH:MM[:SS]") from None
    return CosemDateTime(
        None, None, None, None, moment.hour, moment.minute, moment.second, 0, None, None
    )


def _push(table: Table, curves: Mapping[str, LoadCurve]) -> PushConfig:
    table.only(
        "class",
        "obis",
        "access",
        "push_object_list",
        "transport",
        "destination",
        "client_sap",
        "protection",
        "interval",
        "windows",
        "randomisation_start_interval",
        "number_of_retries",
        "repetition_delay",
    )
    transport = table.string("transport", "udp")
    services = {
        "tcp": TransportService.TCP,
        "udp": TransportService.UDP,
        "hdlc": TransportService.HDLC,
    }
    if transport not in services:
        raise table.fail("transport", "must be 'udp', 'tcp' or 'hdlc'")
    destination = table.string("destination", "")
    if transport == "udp" or destination:
        host, sep, port = destination.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise table.fail("destination", f"{destination!r} is not HOST:PORT")
    protection = table.string("protection", "none")
    if protection not in ("none", "general-glo"):
        raise table.fail("protection", "must be 'none' or 'general-glo'")
    windows = []
    raw_windows = table.get("windows", [])
    if not isinstance(raw_windows, list):
        raise table.fail("windows", 'must be a list of ["HH:MM", "HH:MM"] pairs')
    for pair in raw_windows:
        if not isinstance(pair, list) or len(pair) != 2:
            raise table.fail("windows", f"{pair!r} is not a [start, end] pair")
        windows.append((_time_of_day(table, pair[0]), _time_of_day(table, pair[1])))
    return PushConfig(
        table.obis("obis", Obis(0, 0, 25, 9, 0, 255)),
        table.access(),
        push_object_list=capture_list(table, "push_object_list"),
        transport=services[transport],
        destination=destination,
        client_sap=table.integer("client_sap", 1, 1, 0x7F),
        protection=protection,
        interval=table.integer("interval", 0, 0, 0xFFFFFFFF),
        windows=tuple(windows),
        randomisation_start_interval=table.integer("randomisation_start_interval", 0, 0, 0xFFFF),
        number_of_retries=table.integer("number_of_retries", 0, 0, 255),
        repetition_delay=table.integer("repetition_delay", 0, 0, 0xFFFF),
    )


def _disconnect(table: Table, curves: Mapping[str, LoadCurve]) -> DisconnectConfig:
    table.only("class", "obis", "access", "control_mode")
    return DisconnectConfig(
        table.obis("obis", Obis(0, 0, 96, 3, 10, 255)),
        table.access(),
        control_mode=ControlMode(table.integer("control_mode", 1, 0, 6)),
    )


_PARSERS: Final[dict[str, Callable[[Table, Mapping[str, LoadCurve]], ObjectConfig]]] = {
    "clock": _clock,
    "data": _data,
    "register": lambda t, c: _register(t, c, 3),
    "extended-register": lambda t, c: _register(t, c, 4),
    "profile": _profile,
    "push": _push,
    "disconnect-control": _disconnect,
}
