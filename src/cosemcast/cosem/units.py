"""Physical units of COSEM values (Blue Book unit enumeration; brief §9.4).

The ``unit`` in a Register's ``scaler_unit`` (and in Extended and Demand registers) is one byte
from this table. Codes 27-35 are confirmed by two independent sources (brief §9.4, [X2]); the
others come from one vendor family ([X1]). Codes outside the table still decode: meters use
manufacturer-specific values, so :func:`unit_symbol` and :func:`unit_name` accept any byte.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = ["Unit", "as_unit", "unit_name", "unit_symbol"]


class Unit(enum.IntEnum):
    """The unit enumeration (brief §9.4). Member names follow the quantity, values the wire."""

    YEAR = 1
    MONTH = 2
    WEEK = 3
    DAY = 4
    HOUR = 5
    MINUTE = 6
    SECOND = 7
    DEGREE = 8
    DEGREE_CELSIUS = 9
    CURRENCY = 10
    METRE = 11
    METRE_PER_SECOND = 12
    CUBIC_METRE = 13
    CORRECTED_CUBIC_METRE = 14
    CUBIC_METRE_PER_HOUR = 15
    CORRECTED_CUBIC_METRE_PER_HOUR = 16
    CUBIC_METRE_PER_DAY = 17
    CORRECTED_CUBIC_METRE_PER_DAY = 18
    LITRE = 19
    KILOGRAM = 20
    NEWTON = 21
    NEWTON_METRE = 22
    PASCAL = 23
    BAR = 24
    JOULE = 25
    JOULE_PER_HOUR = 26
    WATT = 27
    VOLT_AMPERE = 28
    VAR = 29
    WATT_HOUR = 30
    VOLT_AMPERE_HOUR = 31
    VAR_HOUR = 32
    AMPERE = 33
    COULOMB = 34
    VOLT = 35
    VOLT_PER_METRE = 36
    FARAD = 37
    OHM = 38
    OHM_SQUARE_METRE_PER_METRE = 39
    WEBER = 40
    TESLA = 41
    AMPERE_PER_METRE = 42
    HENRY = 43
    HERTZ = 44
    PER_WATT_HOUR = 45
    PER_VAR_HOUR = 46
    PER_VOLT_AMPERE_HOUR = 47
    VOLT_SQUARED_HOUR = 48
    AMPERE_SQUARED_HOUR = 49
    KILOGRAM_PER_SECOND = 50
    SIEMENS = 51
    KELVIN = 52
    PER_VOLT_SQUARED_HOUR = 53
    PER_AMPERE_SQUARED_HOUR = 54
    PER_CUBIC_METRE = 55
    PERCENTAGE = 56
    AMPERE_HOUR = 57
    ENERGY_PER_VOLUME = 60
    WOBBE_INDEX = 61
    MOLE_PERCENT = 62
    MASS_DENSITY = 63
    DYNAMIC_VISCOSITY = 64
    JOULE_PER_KILOGRAM = 65
    GRAM_PER_SQUARE_CENTIMETRE = 66
    ATMOSPHERE = 67
    DBM = 70
    DB_MICROVOLT = 71
    DB = 72
    OTHER = 254
    COUNT = 255

    @property
    def symbol(self) -> str:
        return _SYMBOLS[self]


_SYMBOLS: Final[dict[Unit, str]] = {
    Unit.YEAR: "a",
    Unit.MONTH: "mo",
    Unit.WEEK: "wk",
    Unit.DAY: "d",
    Unit.HOUR: "h",
    Unit.MINUTE: "min",
    Unit.SECOND: "s",
    Unit.DEGREE: "°",
    Unit.DEGREE_CELSIUS: "°C",
    Unit.CURRENCY: "currency",
    Unit.METRE: "m",
    Unit.METRE_PER_SECOND: "m/s",
    Unit.CUBIC_METRE: "m³",
    Unit.CORRECTED_CUBIC_METRE: "m³ (corrected)",
    Unit.CUBIC_METRE_PER_HOUR: "m³/h",
    Unit.CORRECTED_CUBIC_METRE_PER_HOUR: "m³/h (corrected)",
    Unit.CUBIC_METRE_PER_DAY: "m³/d",
    Unit.CORRECTED_CUBIC_METRE_PER_DAY: "m³/d (corrected)",
    Unit.LITRE: "l",
    Unit.KILOGRAM: "kg",
    Unit.NEWTON: "N",
    Unit.NEWTON_METRE: "Nm",
    Unit.PASCAL: "Pa",
    Unit.BAR: "bar",
    Unit.JOULE: "J",
    Unit.JOULE_PER_HOUR: "J/h",
    Unit.WATT: "W",
    Unit.VOLT_AMPERE: "VA",
    Unit.VAR: "var",
    Unit.WATT_HOUR: "Wh",
    Unit.VOLT_AMPERE_HOUR: "VAh",
    Unit.VAR_HOUR: "varh",
    Unit.AMPERE: "A",
    Unit.COULOMB: "C",
    Unit.VOLT: "V",
    Unit.VOLT_PER_METRE: "V/m",
    Unit.FARAD: "F",
    Unit.OHM: "Ω",
    Unit.OHM_SQUARE_METRE_PER_METRE: "Ωm²/m",
    Unit.WEBER: "Wb",
    Unit.TESLA: "T",
    Unit.AMPERE_PER_METRE: "A/m",
    Unit.HENRY: "H",
    Unit.HERTZ: "Hz",
    Unit.PER_WATT_HOUR: "1/(Wh)",
    Unit.PER_VAR_HOUR: "1/(varh)",
    Unit.PER_VOLT_AMPERE_HOUR: "1/(VAh)",
    Unit.VOLT_SQUARED_HOUR: "V²h",
    Unit.AMPERE_SQUARED_HOUR: "A²h",
    Unit.KILOGRAM_PER_SECOND: "kg/s",
    Unit.SIEMENS: "S",
    Unit.KELVIN: "K",
    Unit.PER_VOLT_SQUARED_HOUR: "1/(V²h)",
    Unit.PER_AMPERE_SQUARED_HOUR: "1/(A²h)",
    Unit.PER_CUBIC_METRE: "1/m³",
    Unit.PERCENTAGE: "%",
    Unit.AMPERE_HOUR: "Ah",
    Unit.ENERGY_PER_VOLUME: "Wh/m³",
    Unit.WOBBE_INDEX: "J/m³",
    Unit.MOLE_PERCENT: "mol %",
    Unit.MASS_DENSITY: "g/m³",
    Unit.DYNAMIC_VISCOSITY: "Pa s",
    Unit.JOULE_PER_KILOGRAM: "J/kg",
    Unit.GRAM_PER_SQUARE_CENTIMETRE: "g/cm²",
    Unit.ATMOSPHERE: "atm",
    Unit.DBM: "dBm",
    Unit.DB_MICROVOLT: "dBµV",
    Unit.DB: "dB",
    Unit.OTHER: "other",
    Unit.COUNT: "",
}

_BY_VALUE: Final[dict[int, Unit]] = {int(u): u for u in Unit}


def unit_symbol(code: int) -> str:
    """The symbol of a unit code; an unknown code reads ``unit(<code>)``."""
    unit = _BY_VALUE.get(code)
    return unit.symbol if unit is not None else f"unit({code})"


def unit_name(code: int) -> str:
    """The member name of a unit code (``WATT_HOUR``); an unknown code reads ``UNIT_<code>``."""
    unit = _BY_VALUE.get(code)
    return unit.name if unit is not None else f"UNIT_{code}"


def as_unit(code: int) -> Unit | int:
    """The :class:`Unit` member for ``code``, or the plain int when the table lacks it."""
    return _BY_VALUE.get(code, code)
