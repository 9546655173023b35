"""Turn decoded values into an indented tree for people and JSON-able dicts for programs.

Generic by construction: any dataclass (APDU, frame, descriptor...) is walked with
:func:`dataclasses.fields`, so classes written elsewhere render without changes here.
On the way:

* fields declared ``field(repr=False)`` (keys, passwords) are shown as ``<hidden>``, never
  their value;
* COSEM Data values (the :mod:`cosemcast.axdr` types, recognised by their ``DataType`` tag)
  are shown with their type names, containers with their elements; a field whose annotation
  names ``Data`` shows ``None`` as null-data and ``bool`` as boolean;
* ``IntEnum`` / ``IntFlag`` members by name, :class:`~cosemcast.obis.Obis` in IEC form;
* octet strings in hex, with the printable ASCII alongside when it reads as text, and a
  12-byte octet-string that holds a plausible COSEM date-time shown readable as well;
* a dataclass that defines its own ``__str__`` (and hides nothing) is shown on one line;
* a few field names get a gloss: ``security_control`` (the SC bits, brief §5.1) and
  ``invocation_counter`` (hex as on the wire).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final, TypeAlias

from cosemcast.axdr.codec import decode_datetime_bytes
from cosemcast.axdr.types import (
    BitString,
    CompactArray,
    CosemDate,
    CosemDateTime,
    CosemTime,
    DataType,
    DontCare,
    OctetString,
)
from cosemcast.errors import DecodeError
from cosemcast.obis import Obis
from cosemcast.security.gcm import SecurityControl

__all__ = ["HIDDEN", "JsonValue", "Note", "data_type_name", "render_tree", "to_jsonable"]

JsonValue: TypeAlias = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]

HIDDEN: Final = "<hidden>"
_INDENT: Final = "  "
_HEX_LINE: Final = 32
_DATA_ANNOTATION: Final = re.compile(r"(?<![\w.])Data(?!\w)")


class Note(str):
    """Text shown as itself in the tree (a remark, a hex continuation line)."""

    __slots__ = ()


class _Hidden:
    pass


_HIDDEN_VALUE: Final = _Hidden()


# --- shared helpers ------------------------------------------------------------------------------


def data_type_name(value: object) -> str | None:
    """The Blue Book type name of a typed COSEM Data value (``double-long-unsigned``), else None."""
    tag = getattr(type(value), "TAG", None)
    if isinstance(tag, DataType):
        return tag.name.lower().replace("_", "-")
    return None


def _is_data_field(field: dataclasses.Field[Any]) -> bool:
    annotation = field.type if isinstance(field.type, str) else repr(field.type)
    return bool(_DATA_ANNOTATION.search(annotation))


def _fields(obj: object) -> Iterator[tuple[str, object, bool]]:
    """(name, value or the hidden marker, data context) for each field of a dataclass."""
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name) if f.repr else _HIDDEN_VALUE
        yield f.name, value, _is_data_field(f)


def _has_own_str(obj: object) -> bool:
    """A dataclass that defines ``__str__`` reads best on one line (HdlcAddress)."""
    return any("__str__" in vars(c) for c in type(obj).__mro__[:-1])


def _ascii_hint(raw: bytes) -> str | None:
    """The text of mostly printable bytes, or of a system title's FLAG manufacturer id."""
    if len(raw) < 3:
        return None
    printable = sum(0x20 <= b < 0x7F for b in raw)
    flag_id = len(raw) == 8 and all(0x41 <= b <= 0x5A for b in raw[:3])
    if printable * 4 < len(raw) * 3 and not flag_id:
        return None
    return "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in raw)


def _plausible_datetime(raw: bytes) -> CosemDateTime | None:
    """A 12-byte octet-string that reads as a COSEM date-time (Blue Book 4.1.6.1), else None."""
    if len(raw) != 12:
        return None
    try:
        dt = decode_datetime_bytes(raw)
    except DecodeError:
        return None
    # Month and day may also be FD/FE (DST end/begin, second-last/last day), brief §9.3.
    checks = (
        (dt.year, 1970, 2200, ()),
        (dt.month, 1, 12, (0xFD, 0xFE)),
        (dt.day, 1, 31, (0xFD, 0xFE)),
        (dt.day_of_week, 1, 7, ()),
        (dt.hour, 0, 23, ()),
        (dt.minute, 0, 59, ()),
        (dt.second, 0, 59, ()),
        (dt.hundredths, 0, 99, ()),
        (dt.deviation, -720, 720, ()),
    )
    for value, low, high, special in checks:
        if not (value is None or low <= value <= high or value in special):
            return None
    if dt.year is None and dt.month is None and dt.day is None and dt.hour is None:
        return None
    return dt


def _tag_text(obj: object) -> str:
    parts = []
    tag = getattr(type(obj), "TAG", None)
    if isinstance(tag, int) and not isinstance(tag, bool):
        parts.append(f"tag {tag:02X}")
    choice = getattr(type(obj), "CHOICE", None)
    if isinstance(choice, int) and not isinstance(choice, bool):
        name = f" {choice.name.lower()}" if isinstance(choice, enum.Enum) else ""
        parts.append(f"choice {int(choice)}{name}")
    return f" ({', '.join(parts)})" if parts else ""


def _security_control_text(value: int) -> str:
    sc = SecurityControl.from_byte(value)
    flags = [
        name
        for name, on in (
            ("authenticated", sc.authenticated),
            ("encrypted", sc.encrypted),
            ("broadcast key", sc.broadcast_key),
            ("compressed", sc.compressed),
        )
        if on
    ]
    return f"0x{value:02X} (suite {sc.suite}{''.join(', ' + f for f in flags)})"


def _date_text(value: CosemDate) -> str:
    def part(v: int | None, width: int) -> str:
        return "*" * width if v is None else f"{v:0{width}d}"

    text = f"{part(value.year, 4)}-{part(value.month, 2)}-{part(value.day, 2)}"
    if value.day_of_week is not None:
        text += f" (day of week {value.day_of_week})"
    return text


def _time_text(value: CosemTime) -> str:
    def part(v: int | None) -> str:
        return "**" if v is None else f"{v:02d}"

    text = f"{part(value.hour)}:{part(value.minute)}:{part(value.second)}"
    if value.hundredths is not None:
        text += f".{value.hundredths:02d}"
    return text


# --- tree ----------------------------------------------------------------------------------------

_Children: TypeAlias = list[tuple[str | None, object, bool]]


def render_tree(
    value: object, *, label: str | None = None, overrides: Mapping[str, object] | None = None
) -> str:
    """An indented, readable tree of ``value`` (no trailing newline).

    ``overrides`` replaces top-level fields by name (a decoded APDU in place of its bytes)
    or, for names that are not fields, appends them.
    """
    lines: list[str] = []
    _emit(lines, 0, label, value, False, overrides or {})
    return "\n".join(lines)


def _emit(
    lines: list[str],
    depth: int,
    label: str | None,
    value: object,
    data: bool,
    overrides: Mapping[str, object] | None = None,
) -> None:
    summary, children = _describe(value, data, label)
    if overrides:
        children = _override(children, overrides)
    prefix = _INDENT * depth + (f"{label}: " if label is not None else "")
    lines.append(prefix + summary)
    for child_label, child, child_data in children:
        _emit(lines, depth + 1, child_label, child, child_data)


def _override(children: _Children, overrides: Mapping[str, object]) -> _Children:
    out: _Children = []
    for name, value, data in children:
        if name is not None and name in overrides:
            out.append((name, overrides[name], False))
        else:
            out.append((name, value, data))
    present = {name for name, _, _ in children}
    out.extend((name, value, False) for name, value in overrides.items() if name not in present)
    return out


def _is_plain_scalar(value: object) -> bool:
    return (
        isinstance(value, (int, float, str))
        and data_type_name(value) is None
        and not isinstance(value, (enum.Enum, Note))
    )


def _hex_children(raw: bytes) -> _Children:
    return [
        (None, Note(raw[i : i + _HEX_LINE].hex().upper()), False)
        for i in range(0, len(raw), _HEX_LINE)
    ]


def _bytes_summary(raw: bytes, type_name: str | None) -> tuple[str, _Children]:
    head = f"{type_name}[{len(raw)}]" if type_name else f"({len(raw)} bytes)"
    notes = []
    hint = _ascii_hint(raw)
    if hint is not None:
        notes.append(f'"{hint}"')
    dt = _plausible_datetime(raw)
    if dt is not None:
        notes.append(f"date-time {dt}")
    note = f"  {'  '.join(notes)}" if notes else ""
    if len(raw) <= _HEX_LINE:
        hexed = raw.hex().upper()
        if type_name:
            return f"{head} {hexed}{note}" if raw else head, []
        return (f"{hexed} ({len(raw)} bytes){note}" if raw else "(empty)"), []
    return head + note, _hex_children(raw)


def _describe(value: object, data: bool, label: str | None) -> tuple[str, _Children]:
    if isinstance(value, _Hidden):
        return HIDDEN, []
    if isinstance(value, Note):
        return str(value), []
    type_name = data_type_name(value)
    if type_name is not None or (data and (value is None or isinstance(value, bool))):
        return _describe_data(value, type_name)
    if label == "security_control" and isinstance(value, int) and 0 <= value <= 0xFF:
        return _security_control_text(value), []
    if label == "invocation_counter" and isinstance(value, int) and 0 <= value <= 0xFFFFFFFF:
        return f"{value} (0x{value:08X})", []
    if isinstance(value, Obis):
        return str(value), []
    if isinstance(value, enum.Flag):
        names = "|".join(m.name or "?" for m in type(value) if m in value and m.value)
        raw = value.value
        shown = f"0x{raw:02X}" if isinstance(raw, int) else repr(raw)
        return f"{names or '0'} ({shown})", []
    if isinstance(value, enum.Enum):
        raw = value.value
        shown = raw.hex(" ").upper() if isinstance(raw, bytes) else raw
        return f"{value.name} ({shown})", []
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        children: _Children = [(n, v, d) for n, v, d in _fields(value)]
        if _has_own_str(value) and not any(isinstance(v, _Hidden) for _, v, _ in children):
            return str(value), []
        return type(value).__name__ + _tag_text(value), children
    if value is None:
        return "none", []
    if isinstance(value, bool):
        return "true" if value else "false", []
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _bytes_summary(bytes(value), None)
    if isinstance(value, str):
        return f'"{value}"', []
    if isinstance(value, (tuple, list)):
        if value and all(_is_plain_scalar(v) for v in value):
            return "(" + ", ".join(_describe(v, False, None)[0] for v in value) + ")", []
        items: _Children = [(f"[{i}]", v, data) for i, v in enumerate(value)]
        return (f"{len(items)} item(s)" if items else "(empty)"), items
    if isinstance(value, (int, float)):
        return repr(value), []
    return repr(value), []


def _describe_data(value: object, type_name: str | None) -> tuple[str, _Children]:
    if value is None:
        return "null-data", []
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}", []
    assert type_name is not None
    if isinstance(value, DontCare):
        return type_name, []
    if isinstance(value, CosemDateTime):
        return f"{type_name} {value}", []
    if isinstance(value, CosemDate):
        return f"{type_name} {_date_text(value)}", []
    if isinstance(value, CosemTime):
        return f"{type_name} {_time_text(value)}", []
    if isinstance(value, BitString):
        return f"{type_name}[{value.bit_length}] {value.to_bits()}", []
    if isinstance(value, CompactArray):
        rows: _Children = [(f"[{i}]", v, True) for i, v in enumerate(value.values)]
        return f"{type_name}[{len(rows)}]", [("description", value.description, False), *rows]
    if isinstance(value, OctetString):
        return _bytes_summary(bytes(value), type_name)
    if isinstance(value, str):
        return f'{type_name} "{value}"', []
    if isinstance(value, tuple):
        items: _Children = [(f"[{i}]", v, True) for i, v in enumerate(value)]
        return f"{type_name}[{len(items)}]", items
    if isinstance(value, float):
        return f"{type_name} {float(value)!r}", []
    if isinstance(value, int):
        return f"{type_name} {int(value)}", []
    return f"{type_name} {value!r}", []


# --- JSON ----------------------------------------------------------------------------------------


def to_jsonable(
    value: object, *, data: bool = False, overrides: Mapping[str, object] | None = None
) -> JsonValue:
    """A JSON-serialisable form of ``value``: dataclasses become dicts with ``_class``,
    Data values ``{"data_type": ..., "value": ...}``, bytes upper-case hex, enums names.

    ``overrides`` replaces or adds top-level keys of a dataclass, as in :func:`render_tree`.
    """
    result = _jsonable(value, data)
    if overrides and isinstance(result, dict):
        for name, replacement in overrides.items():
            result[name] = _jsonable(replacement, False)
    return result


def _jsonable(value: object, data: bool) -> JsonValue:
    if isinstance(value, _Hidden):
        return HIDDEN
    type_name = data_type_name(value)
    if type_name is not None or (data and (value is None or isinstance(value, bool))):
        return _data_json(value, type_name)
    if isinstance(value, Obis):
        return str(value)
    if isinstance(value, enum.Flag):
        return [m.name for m in type(value) if m.name and m.value and m in value]
    if isinstance(value, enum.Enum):
        return value.name
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, JsonValue] = {"_class": type(value).__name__}
        tag = getattr(type(value), "TAG", None)
        if isinstance(tag, int) and not isinstance(tag, bool):
            out["_tag"] = f"{tag:02X}"
        for name, field_value, field_data in _fields(value):
            out[name] = _jsonable(field_value, field_data)
        return out
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex().upper()
    if isinstance(value, (tuple, list)):
        return [_jsonable(v, data) for v in value]
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else repr(float(value))
    if isinstance(value, int):
        return int(value)
    return repr(value)


def _data_json(value: object, type_name: str | None) -> JsonValue:
    if value is None:
        return {"data_type": "null-data", "value": None}
    if isinstance(value, bool):
        return {"data_type": "boolean", "value": value}
    assert type_name is not None
    out: dict[str, JsonValue] = {"data_type": type_name}
    if isinstance(value, DontCare):
        out["value"] = None
    elif isinstance(value, CosemDateTime):
        out["value"] = str(value)
        try:
            out["iso"] = value.to_datetime().isoformat()
        except ValueError:
            pass
    elif isinstance(value, CosemDate):
        out["value"] = _date_text(value)
    elif isinstance(value, CosemTime):
        out["value"] = _time_text(value)
    elif isinstance(value, BitString):
        out["value"] = value.to_bits()
    elif isinstance(value, CompactArray):
        out["description"] = _jsonable(value.description, False)
        out["value"] = [_jsonable(v, True) for v in value.values]
    elif isinstance(value, OctetString):
        out["value"] = bytes(value).hex().upper()
        dt = _plausible_datetime(bytes(value))
        if dt is not None:
            out["date_time"] = str(dt)
    elif isinstance(value, str):
        out["value"] = str(value)
    elif isinstance(value, tuple):
        out["value"] = [_jsonable(v, True) for v in value]
    elif isinstance(value, float):
        out["value"] = float(value) if math.isfinite(value) else repr(float(value))
    elif isinstance(value, int):
        out["value"] = int(value)
    else:
        out["value"] = repr(value)
    return out
