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
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.notifications import DataNotification
from cosemcast.axdr import BitString, CosemDate, CosemDateTime, CosemTime, DataType, DontCare
from cosemcast.errors import DecodeError, DlmsError
from cosemcast.sharedpayload.messages import KpId

__all__ = ["Reading", "ReadingSink", "ReadingValue", "ReadingsError", "flatten", "reading_from"]

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


class ReadingsError(DlmsError):
    """The readings database cannot be written."""


@dataclass(frozen=True, slots=True)
class ReadingValue:
    """One leaf of a notification body: where it sits, its A-XDR type and its value."""

    path: str
    data_type: str
    value: JsonScalar


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


def _type_name(value: object) -> str:
    if value is None:
        return "null-data"
    if isinstance(value, bool):
        return "boolean"
    tag = getattr(type(value), "TAG", None)
    if isinstance(tag, DataType):
        return tag.name.lower().replace("_", "-")
    return type(value).__name__


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


def flatten(body: object, prefix: str = "") -> list[ReadingValue]:
    """The leaves of a COSEM Data value, depth first (structures and arrays are descended)."""
    if isinstance(body, tuple) and not isinstance(body, (bytes, str)):
        out: list[ReadingValue] = []
        for index, element in enumerate(body):
            out.extend(flatten(element, f"{prefix}.{index}" if prefix else str(index)))
        return out
    return [ReadingValue(prefix, _type_name(body), _scalar(body))]


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
    return Reading(
        bytes(head_end),
        bytes(meter_system_title),
        kp_id,
        invocation_counter,
        received_at,
        date_time,
        tuple(flatten(apdu.notification_body)),
    )


class ReadingSink:
    """Writes readings as JSON lines to ``stream`` and/or rows of ``db_path``'s ``readings``."""

    def __init__(
        self, *, stream: TextIO | None = None, db_path: str | os.PathLike[str] | None = None
    ) -> None:
        self._stream = stream
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
        record = reading.to_json()
        line = json.dumps(record, separators=(",", ":"))
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
                            record["head_end"],
                            record["meter"],
                            record["kp_id"],
                            reading.invocation_counter,
                            reading.date_time,
                            json.dumps(record["values"], separators=(",", ":")),
                        ),
                    )
                except sqlite3.Error as exc:
                    raise ReadingsError(f"cannot store a reading: {exc}") from exc
            self.written += 1

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
