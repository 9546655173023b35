"""Decoded readings out of the head-end: JSON lines and a SQLite ``readings`` table.

Theory of operation. An opened C1 carries a DATA-NOTIFICATION (brief §4.6). :func:`reading_from`
decodes it and flattens its typed notification body depth first into :class:`ReadingValue`
leaves: a path of element indexes (``"1.0"`` = element 0 of element 1 of the body), the Blue
Book A-XDR type name (``double-long-unsigned``) and a JSON-ready value (integers, floats,
strings; octet-strings in upper-case hex; date-times in their text form). :class:`ReadingSink`
writes each :class:`Reading` as one JSON line (to a text stream such as stdout or a file)
and/or as one row of a ``readings`` table (WAL mode, its own ``readings_schema_version``
table, so it can share the head-end's database file). Nothing here holds a key.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, NamedTuple, Protocol, TextIO

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.notifications import DataNotification
from cosemcast.axdr import BitString, CosemDate, CosemDateTime, CosemTime, DataType, DontCare
from cosemcast.errors import DecodeError, DlmsError
from cosemcast.sharedpayload.messages import KpId

__all__ = [
    "INSERT_READING",
    "Reading",
    "ReadingSink",
    "ReadingValue",
    "ReadingWriter",
    "ReadingsError",
    "create_readings_table",
    "flatten",
    "json_line",
    "reading_from",
    "reading_row",
    "values_json",
]

JsonScalar = str | int | float | bool | None

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS readings_schema_version (version INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS readings (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " received_at REAL NOT NULL, head_end TEXT NOT NULL, meter TEXT NOT NULL,"
    " kp_id TEXT NOT NULL, invocation_counter INTEGER NOT NULL, date_time TEXT,"
    " body_json TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS readings_by_meter ON readings (meter, id)",
)
_READINGS_VERSION = 1
INSERT_READING = (
    "INSERT INTO readings (received_at, head_end, meter, kp_id, invocation_counter, date_time,"
    " body_json) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


class ReadingsError(DlmsError):
    """The readings database cannot be written."""


class ReadingValue(NamedTuple):
    """One leaf of a notification body: where it sits, its A-XDR type and its value.

    A named tuple rather than a frozen dataclass: the head-end makes one per leaf of every
    C1 it opens, and a tuple is several times cheaper to build."""

    path: str
    data_type: str
    value: JsonScalar

    @classmethod
    def _make_leaf(cls, path: str, data_type: str, value: JsonScalar) -> ReadingValue:
        return tuple.__new__(cls, (path, data_type, value))


@dataclass(frozen=True, slots=True)
class Reading:
    """The readings of one opened C1."""

    head_end: bytes
    meter_system_title: bytes
    kp_id: KpId
    invocation_counter: int
    received_at: float
    date_time: str | None
    values: tuple[ReadingValue, ...]
    values_text: str = field(default="", repr=False, compare=False)

    def values_json(self) -> str:
        """``values`` as JSON text (computed once by :func:`reading_from`): the same text
        as ``json.dumps`` of ``to_json()["values"]`` with compact separators."""
        return self.values_text or values_json(self.values)

    def to_json(self) -> dict[str, object]:
        return {
            "received_at": dt.datetime.fromtimestamp(self.received_at, dt.UTC).isoformat(),
            "head_end": self.head_end.hex().upper(),
            "meter": self.meter_system_title.hex().upper(),
            "kp_id": self.kp_id.to_bytes().hex().upper(),
            "invocation_counter": self.invocation_counter,
            "date_time": self.date_time,
            "values": [
                {"path": v.path, "type": v.data_type, "value": v.value} for v in self.values
            ],
        }


_TYPE_NAMES: dict[type, str] = {type(None): "null-data", bool: "boolean"}


def _type_name(value: object) -> str:
    """The Blue Book name of a value's A-XDR type (it depends on the Python type alone)."""
    kind = type(value)
    name = _TYPE_NAMES.get(kind)
    if name is None:
        tag = getattr(kind, "TAG", None)
        name = tag.name.lower().replace("_", "-") if isinstance(tag, DataType) else kind.__name__
        _TYPE_NAMES[kind] = name
    return name


def _scalar(value: object) -> JsonScalar:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex().upper()
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else repr(float(value))
    if isinstance(value, int):
        return int(value)
    if isinstance(value, BitString):
        return value.to_bits()
    if isinstance(value, (CosemDateTime, CosemDate, CosemTime)):
        return str(value)
    if isinstance(value, DontCare):
        return None
    return repr(value)


def _leaf_json(value: JsonScalar) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return str(value)
    return json.dumps(value)


def values_json(values: Sequence[ReadingValue]) -> str:
    """The leaves as a compact JSON array of ``{"path", "type", "value"}`` objects, built as
    text (paths are digits and dots, type names plain ASCII; values go through JSON)."""
    return "[" + ",".join(_leaf_head(v[0], v[1]) + _leaf_json(v[2]) + "}" for v in values) + "]"


def _leaf_head(path: str, data_type: str) -> str:
    """A leaf's JSON object up to its value (paths are digits and dots, type names ASCII)."""
    return f'{{"path":"{path}","type":"{data_type}","value":'


_NOT_CONTAINERS: tuple[type, ...] = (bytes, str)
_PLAIN: dict[type, bool] = {}


def _plain_int(kind: type) -> bool:
    """Whether values of ``kind`` are plain integers for JSON (int subclasses, not bool)."""
    plain = _PLAIN.get(kind)
    if plain is None:
        plain = issubclass(kind, int) and not issubclass(kind, bool)
        _PLAIN[kind] = plain
    return plain


def flatten(body: object, prefix: str = "") -> list[ReadingValue]:
    """The leaves of a COSEM Data value, depth first (structures and arrays are descended)."""
    out: list[ReadingValue] = []
    _flatten_into(body, prefix, out)
    return out


def _flatten_into(body: object, prefix: str, out: list[ReadingValue]) -> None:
    if isinstance(body, tuple) and not isinstance(body, _NOT_CONTAINERS):
        dot = prefix + "." if prefix else ""
        for index, element in enumerate(body):
            kind = type(element)
            if _plain_int(kind):
                out.append(ReadingValue(f"{dot}{index}", _type_name(element), int(element)))
            else:
                _flatten_into(element, f"{dot}{index}", out)
        return
    out.append(ReadingValue(prefix, _type_name(body), _scalar(body)))


def reading_from(
    head_end: bytes,
    meter_system_title: bytes,
    kp_id: KpId,
    invocation_counter: int,
    notification: bytes,
    received_at: float,
) -> Reading:
    """Decode an opened C1's DATA-NOTIFICATION into a :class:`Reading` (else DecodeError)."""
    apdu = decode_apdu(notification)
    if not isinstance(apdu, DataNotification):
        raise DecodeError(
            f"a C1 carries a DATA-NOTIFICATION, not {type(apdu).__name__}", expected="0F"
        )
    date_time = None if apdu.date_time is None else str(apdu.date_time)
    body = apdu.notification_body
    elements: tuple[object, ...] = body if isinstance(body, tuple) else ()
    shape = _flat_shape(elements) if elements else None
    if shape:
        values = tuple(
            _reading_value(path, name, convert(element))
            for (path, name, _, convert), element in zip(shape, elements, strict=True)
        )
        text = (
            "["
            + ",".join(
                head + _leaf_json(value[2]) + "}"
                for (_, _, head, _), value in zip(shape, values, strict=True)
            )
            + "]"
        )
    else:
        values = tuple(flatten(body))
        text = values_json(values)
    return Reading(
        bytes(head_end),
        bytes(meter_system_title),
        kp_id,
        invocation_counter,
        received_at,
        date_time,
        values,
        text,
    )


# A flat structure (no element is itself a structure or an array) of a given sequence of
# element types always flattens to the same paths and type names: most C1s of a head-end share
# a handful of such shapes, so each is worked out once (bounded cache; anything else takes the
# general path, and a test checks both give the same text as json.dumps).
_Shape = tuple[tuple[str, str, str, Callable[[object], JsonScalar]], ...]
_SHAPES: dict[tuple[type, ...], _Shape | None] = {}
_MAX_SHAPES: Final = 1024
_MAX_SHAPE_LENGTH: Final = 64
_reading_value = ReadingValue._make_leaf


def _flat_shape(body: tuple[object, ...]) -> _Shape | None:
    if len(body) > _MAX_SHAPE_LENGTH:
        return None
    key = tuple(map(type, body))
    try:
        return _SHAPES[key]
    except KeyError:
        pass
    shape: _Shape | None = None
    if all(not issubclass(k, tuple) or issubclass(k, _NOT_CONTAINERS) for k in key):
        shape = tuple(
            (
                str(index),
                _type_name(element),
                _leaf_head(str(index), _type_name(element)),
                _converter(type(element)),
            )
            for index, element in enumerate(body)
        )
    if len(_SHAPES) >= _MAX_SHAPES:
        _SHAPES.clear()
    _SHAPES[key] = shape
    return shape


def _converter(kind: type) -> Callable[[object], JsonScalar]:
    if _plain_int(kind):
        return int  # type: ignore[return-value]
    return _scalar


def create_readings_table(conn: sqlite3.Connection) -> None:
    """Create (or check) the ``readings`` table inside the caller's open transaction; the
    head-end store uses it to write readings in the same commit as their replay records."""
    for statement in _SCHEMA:
        conn.execute(statement)
    row = conn.execute("SELECT version FROM readings_schema_version").fetchone()
    if row is None:
        conn.execute(
            "INSERT INTO readings_schema_version (version) VALUES (?)", (_READINGS_VERSION,)
        )
    elif int(row[0]) > _READINGS_VERSION:
        raise ReadingsError(f"readings schema {row[0]} is newer than this code")


def reading_row(reading: Reading) -> tuple[float, str, str, str, int, str | None, str]:
    """The parameters of :data:`INSERT_READING` for one reading."""
    return (
        reading.received_at,
        reading.head_end.hex().upper(),
        reading.meter_system_title.hex().upper(),
        reading.kp_id.to_bytes().hex().upper(),
        reading.invocation_counter,
        reading.date_time,
        reading.values_json(),
    )


def json_line(reading: Reading) -> str:
    """``json.dumps(reading.to_json())`` with compact separators, built from the values'
    JSON text computed once (the hot path of every opened C1)."""
    stamp = dt.datetime.fromtimestamp(reading.received_at, dt.UTC).isoformat()
    date_time = "null" if reading.date_time is None else json.dumps(reading.date_time)
    return (
        f'{{"received_at":"{stamp}","head_end":"{reading.head_end.hex().upper()}",'
        f'"meter":"{reading.meter_system_title.hex().upper()}",'
        f'"kp_id":"{reading.kp_id.to_bytes().hex().upper()}",'
        f'"invocation_counter":{int(reading.invocation_counter)},"date_time":{date_time},'
        f'"values":{reading.values_json()}}}'
    )


class ReadingWriter(Protocol):
    """What receives readings: a :class:`ReadingSink`, or one it forwards to (``also``), such
    as :class:`~.sink_nats.NatsJetStreamSink`. ``write`` raises only :class:`ReadingsError`."""

    def write(self, reading: Reading) -> None: ...

    def close(self) -> None: ...


class ReadingSink:
    """Writes readings as JSON lines to ``stream`` and/or rows of ``db_path``'s ``readings``,
    then hands each to every writer in ``also`` (in order); :meth:`close` closes them too."""

    def __init__(
        self,
        *,
        stream: TextIO | None = None,
        db_path: str | os.PathLike[str] | None = None,
        also: Sequence[ReadingWriter] = (),
    ) -> None:
        self._stream = stream
        self.also = tuple(also)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self.written = 0
        if db_path is not None:
            self._conn = self._open(Path(db_path))

    def __repr__(self) -> str:
        return f"ReadingSink(stream={self._stream is not None}, db={self._conn is not None})"

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise ReadingsError(f"{path}: cannot open the readings database: {exc}") from exc
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                conn.execute(statement)
            row = conn.execute("SELECT version FROM readings_schema_version").fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO readings_schema_version (version) VALUES (?)",
                    (_READINGS_VERSION,),
                )
            elif int(row[0]) > _READINGS_VERSION:
                raise ReadingsError(f"{path}: readings schema {row[0]} is newer than this code")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.close()
            raise ReadingsError(f"{path}: cannot open the readings database: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def write(self, reading: Reading) -> None:
        line = json_line(reading)
        with self._lock:
            if self._stream is not None:
                self._stream.write(line + "\n")
                self._stream.flush()
            if self._conn is not None:
                try:
                    self._conn.execute(
                        "INSERT INTO readings (received_at, head_end, meter, kp_id,"
                        " invocation_counter, date_time, body_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            reading.received_at,
                            reading.head_end.hex().upper(),
                            reading.meter_system_title.hex().upper(),
                            reading.kp_id.to_bytes().hex().upper(),
                            reading.invocation_counter,
                            reading.date_time,
                            reading.values_json(),
                        ),
                    )
                except sqlite3.Error as exc:
                    raise ReadingsError(f"cannot store a reading: {exc}") from exc
            self.written += 1
        for writer in self.also:
            writer.write(reading)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        for writer in self.also:
            writer.close()
