"""How ``cosemcast read`` shows an answer: text for people, JSON for machines.

Registers (value with scaler and unit, and the raw value), profile buffers (columns named by
their capture objects, one row per entry), object lists (access rights per attribute and
method) and single Data values; date-time octet-strings are shown as date-times too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from cosemcast.axdr.types import Data
    from cosemcast.cli.render import JsonValue
    from cosemcast.cosem.client_views import ProfileBuffer, RegisterValue
    from cosemcast.cosem.object_list import ObjectListEntry
    from cosemcast.obis import Obis

__all__ = [
    "data_text",
    "object_list_json",
    "object_list_text",
    "profile_json",
    "profile_text",
    "register_json",
    "register_text",
]


def data_text(value: Data) -> str:
    from cosemcast.axdr.types import CosemDateTime, OctetString
    from cosemcast.cli.render import render_tree

    if isinstance(value, CosemDateTime):
        return _time_text(value)
    if isinstance(value, OctetString) and len(value) == 12:
        from cosemcast.axdr.codec import decode_datetime_bytes
        from cosemcast.errors import DecodeError

        try:
            return f"{bytes(value).hex().upper()} ({_time_text(decode_datetime_bytes(value))})"
        except DecodeError:
            pass
    if isinstance(value, bytes):
        raw = bytes(value)
        printable = raw and all(0x20 <= b < 0x7F for b in raw)
        return f'{raw.hex().upper()} ("{raw.decode("ascii")}")' if printable else raw.hex().upper()
    if isinstance(value, tuple):
        return "\n" + "\n".join("  " + line for line in render_tree(value).splitlines())
    return str(value)


def _time_text(value: Any) -> str:
    try:
        return str(value.to_datetime().isoformat())
    except ValueError:
        return str(value)


def _cell(value: Data) -> JsonValue:
    from cosemcast.axdr.types import CosemDateTime, OctetString
    from cosemcast.cli.render import to_jsonable

    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, CosemDateTime):
        return _time_text(value)
    if isinstance(value, OctetString | bytes):
        return bytes(value).hex().upper()
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return to_jsonable(value, data=True)


def register_json(obis: Obis, reading: RegisterValue) -> JsonValue:
    from decimal import Decimal

    from cosemcast.cli.render import data_type_name
    from cosemcast.cosem.units import unit_name

    value = reading.value
    number: JsonValue
    if isinstance(value, Decimal):
        number = int(value) if value == value.to_integral_value() else float(value)
    elif isinstance(value, float):
        number = float(value)
    else:
        number = _cell(reading.raw)
    return {
        "obis": str(obis),
        "value": number,
        "value_text": str(value),
        "raw": _cell(reading.raw),
        "raw_type": data_type_name(reading.raw),
        "scaler": reading.scaler,
        "unit": int(reading.unit),
        "unit_name": unit_name(int(reading.unit)),
        "unit_symbol": reading.unit_symbol,
    }


def register_text(obis: Obis, reading: RegisterValue) -> str:
    from cosemcast.cli.render import data_type_name

    return (
        f"{obis}\n"
        f"  value:  {reading}\n"
        f"  raw:    {data_text(reading.raw)} ({data_type_name(reading.raw)})\n"
        f"  scaler: {reading.scaler}\n"
        f"  unit:   {reading.unit_symbol or '-'} ({int(reading.unit)})"
    )


def _column_name(column: Any) -> str:
    name = f"{column.class_id}/{column.logical_name}/{column.attribute_index}"
    return name if not column.data_index else f"{name}/{column.data_index}"


def profile_json(obis: Obis, buffer: ProfileBuffer) -> dict[str, JsonValue]:
    return {
        "obis": str(obis),
        "columns": [_column_name(column) for column in buffer.columns],
        "rows": [[_cell(cell) for cell in row] for row in buffer.rows],
    }


def profile_text(document: dict[str, Any]) -> str:
    header = [str(name) for name in document["columns"]]
    rows = [["" if cell is None else str(cell) for cell in row] for row in document["rows"]]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    lines = [f"{document['obis']}: {len(rows)} rows"]
    for row in [header, *rows]:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    return "\n".join(line.rstrip() for line in lines)


_ATTRIBUTE_MODES: Final = {0: "-", 1: "r", 2: "w", 3: "rw", 4: "R", 5: "W", 6: "RW"}
_METHOD_MODES: Final = {0: "-", 1: "x", 2: "X"}


def object_list_json(entries: tuple[ObjectListEntry, ...]) -> list[JsonValue]:
    return [
        {
            "class_id": entry.class_id,
            "version": entry.version,
            "logical_name": str(entry.logical_name),
            "attributes": {
                str(item.attribute_id): _ATTRIBUTE_MODES.get(int(item.access_mode), "?")
                for item in entry.attribute_access
            },
            "methods": {
                str(item.method_id): _METHOD_MODES.get(int(item.access_mode), "?")
                for item in entry.method_access
            },
        }
        for entry in entries
    ]


def object_list_text(document: list[dict[str, Any]]) -> str:
    lines = [
        f"{len(document)} objects (access: r read, w write, x invoke; upper case: "
        "authenticated only)",
        "class  ver  logical name        attributes / methods",
    ]
    for entry in document:
        rights = " ".join(f"{k}:{v}" for k, v in entry["attributes"].items())
        methods = " ".join(f"{k}:{v}" for k, v in entry["methods"].items())
        if methods:
            rights += f" / {methods}"
        lines.append(
            f"{entry['class_id']:>5}  {entry['version']:>3}  {entry['logical_name']:<18}  {rights}"
        )
    return "\n".join(lines)
