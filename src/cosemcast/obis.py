"""OBIS codes (IEC 62056-61) as a value type.

An OBIS code is six value groups A-B:C.D.E.F, each 0..255, carried on the wire as six raw
bytes (the ``instance-id`` of a COSEM attribute descriptor). :class:`Obis` is an immutable
tuple of the six integers; it parses every common written form:

* ``1-0:1.8.0.255`` (the IEC form), ``1-0:1.8.0*255`` (the older ``*`` before F),
* ``1.0.1.8.0.255`` (dotted), ``0100010800FF`` (12 hex digits, as in captures),
* ``1-0:1.8.0`` (F omitted, taken as 255, as meter labels print it).

``str()`` gives the IEC form. A value group outside 0..255, a wrong number of groups or a
non-numeric group raises ``ValueError`` naming the offending group.
"""

from __future__ import annotations

import re
from typing import ClassVar

__all__ = ["Obis"]

_IEC = re.compile(r"^(\d+)-(\d+):(\d+)\.(\d+)\.(\d+)(?:[.*](\d+))?$")
_DOTTED = re.compile(r"^(\d+)\.(\d+)\.(\d+)\.(\d+)\.(\d+)\.(\d+)$")
_HEX = re.compile(r"^[0-9A-Fa-f]{12}$")
_GROUPS = "ABCDEF"


class Obis(tuple[int, int, int, int, int, int]):
    """An OBIS code: ``Obis(1, 0, 1, 8, 0, 255)`` or ``Obis.parse("1-0:1.8.0.255")``."""

    __slots__ = ()
    _cache: ClassVar[dict[bytes, Obis]] = {}

    def __new__(cls, a: int, b: int, c: int, d: int, e: int, f: int = 255) -> Obis:
        values = (a, b, c, d, e, f)
        for name, v in zip(_GROUPS, values, strict=True):
            if type(v) is not int and not isinstance(v, int):
                raise ValueError(f"OBIS value group {name} must be an integer, got {v!r}")
            if not 0 <= v <= 255:
                raise ValueError(f"OBIS value group {name} = {v} is out of range 0..255")
        return tuple.__new__(cls, values)

    @classmethod
    def parse(cls, text: str) -> Obis:
        """Parse any of the written forms listed in the module docstring."""
        s = text.strip()
        m = _IEC.match(s) or _DOTTED.match(s)
        if m:
            groups = [int(g) if g is not None else 255 for g in m.groups()]
            return cls(*groups)
        if _HEX.match(s):
            return cls.from_bytes(bytes.fromhex(s))
        raise ValueError(
            f"not an OBIS code: {text!r} (expected A-B:C.D.E.F such as 1-0:1.8.0.255, "
            "or A.B.C.D.E.F, or 12 hex digits)"
        )

    @classmethod
    def from_bytes(cls, raw: bytes | bytearray | memoryview) -> Obis:
        """The code carried in six raw bytes."""
        if len(raw) != 6:
            raise ValueError(f"an OBIS code is 6 bytes, got {len(raw)}")
        key = bytes(raw)
        cached = cls._cache.get(key)
        if cached is None:
            cached = tuple.__new__(cls, key)
            if len(cls._cache) < 4096:
                cls._cache[key] = cached
        return cached

    def to_bytes(self) -> bytes:
        return bytes(self)

    @property
    def a(self) -> int:
        return self[0]

    @property
    def b(self) -> int:
        return self[1]

    @property
    def c(self) -> int:
        return self[2]

    @property
    def d(self) -> int:
        return self[3]

    @property
    def e(self) -> int:
        return self[4]

    @property
    def f(self) -> int:
        return self[5]

    def __str__(self) -> str:
        a, b, c, d, e, f = self
        return f"{a}-{b}:{c}.{d}.{e}.{f}"

    def __repr__(self) -> str:
        return f"Obis.parse({str(self)!r})"
