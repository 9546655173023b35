"""Register (class 3) and Extended register (class 4), version 0 (brief §9.4).

Register: 1 logical_name, 2 value (a simple type, instance specific), 3 scaler_unit
``structure {scaler integer, unit enum}`` (``02 02 0F <scaler> 16 <unit>``; the physical
value is ``value × 10^scaler`` in ``unit``). Method 1 reset(integer(0)) sets the value to its
default (zero of its type unless configured).

Extended register adds 4 status (instance specific) and 5 capture_time (octet-string(12),
the date-time at which value and status were last captured); reset also resets status and
stamps capture_time with the meter's time.

Decisions (copy to specs/): a SET of value must keep its wire type (``type-unmatched``
otherwise); scaler_unit is writable and accepts unit codes outside the table; status and
capture_time are read-only (the meter updates them through :meth:`ExtendedRegister.update`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import ClassVar

from cosemcast.apdu.common import ActionResult, DataAccessResult, SelectiveAccess
from cosemcast.association.backend import AccessContext
from cosemcast.axdr.types import (
    CosemDateTime,
    Data,
    DoubleLongUnsigned,
    Enumerated,
    Float32,
    Float64,
    Integer,
    Structure,
)
from cosemcast.cosem.access import AccessRights
from cosemcast.cosem.base import (
    LOGICAL_NAME,
    AttributeSpec,
    CosemObject,
    MethodSpec,
    want_no_parameter,
)
from cosemcast.cosem.common import (
    datetime_octets,
    want_enum,
    want_int,
    want_same_type,
    want_simple,
    want_structure,
)
from cosemcast.cosem.units import Unit, as_unit
from cosemcast.errors import EncodeError
from cosemcast.obis import Obis

__all__ = ["ExtendedRegister", "Register", "scaler_unit_data", "zero_of"]

_ZERO = DoubleLongUnsigned(0)
_UNSPECIFIED = CosemDateTime(None, None, None, None, None, None, None, None, None, None)


def zero_of(value: Data) -> Data:
    """The default a reset returns to: zero of a numeric type, else the value itself."""
    if isinstance(value, Float32 | Float64):
        return type(value)(0.0)
    if isinstance(value, int) and not isinstance(value, bool):
        return type(value)(0)
    return value


def scaler_unit_data(scaler: int, unit: int) -> Structure:
    """``structure {scaler integer, unit enum}`` (brief §9.4)."""
    if not -128 <= scaler <= 127 or not 0 <= unit <= 255:
        raise EncodeError(f"scaler {scaler} / unit {unit} out of range")
    return Structure((Integer(scaler), Enumerated(unit)))


class Register(CosemObject):
    """Register (class 3): a value with scaler and unit."""

    CLASS_ID = 3
    VERSION = 0
    ATTRIBUTES: ClassVar[tuple[AttributeSpec, ...]] = (
        LOGICAL_NAME,
        AttributeSpec(2, "value", "instance specific", writable=True),
        AttributeSpec(3, "scaler_unit", "scal_unit_type", writable=True),
    )
    METHODS = (MethodSpec(1, "reset"),)

    def __init__(
        self,
        logical_name: Obis | str,
        value: Data = _ZERO,
        *,
        scaler: int = 0,
        unit: Unit | int = Unit.COUNT,
        default_value: Data | None = None,
        access: Mapping[int | None, AccessRights] | None = None,
    ) -> None:
        super().__init__(logical_name, access=access)
        self.value: Data = value
        self.scaler = scaler
        self.unit: Unit | int = as_unit(int(unit))
        self.default_value: Data = zero_of(value) if default_value is None else default_value

    def _read(
        self,
        attribute_id: int,
        selection: SelectiveAccess | None,
        ctx: AccessContext | None,
        now: dt.datetime | None,
    ) -> Data | DataAccessResult:
        if attribute_id == 2:
            return self.value
        if attribute_id == 3:
            return scaler_unit_data(self.scaler, int(self.unit))
        return DataAccessResult.OBJECT_UNAVAILABLE

    def _write(self, attribute_id: int, value: Data, ctx: AccessContext | None) -> DataAccessResult:
        if attribute_id == 2:
            self.value = want_same_type(want_simple(value), self.value)
        else:
            s = want_structure(value, 2)
            scaler = want_int(s[0], Integer)
            self.unit = as_unit(want_enum(s[1]))
            self.scaler = scaler
        return DataAccessResult.SUCCESS

    def _invoke(
        self, method_id: int, params: Data | None, ctx: AccessContext | None
    ) -> tuple[ActionResult, Data | None]:
        want_no_parameter(params)
        self.reset()
        return ActionResult.SUCCESS, None

    def reset(self) -> None:
        self.value = self.default_value


class ExtendedRegister(Register):
    """Extended register (class 4): a Register with status and capture_time."""

    CLASS_ID = 4
    VERSION = 0
    ATTRIBUTES = (
        *Register.ATTRIBUTES,
        AttributeSpec(4, "status", "instance specific"),
        AttributeSpec(5, "capture_time", "octet-string(12)"),
    )

    def __init__(
        self,
        logical_name: Obis | str,
        value: Data = _ZERO,
        *,
        scaler: int = 0,
        unit: Unit | int = Unit.COUNT,
        status: Data = None,
        capture_time: CosemDateTime | None = None,
        default_value: Data | None = None,
        access: Mapping[int | None, AccessRights] | None = None,
    ) -> None:
        super().__init__(
            logical_name,
            value,
            scaler=scaler,
            unit=unit,
            default_value=default_value,
            access=access,
        )
        self.status: Data = status
        self.default_status: Data = zero_of(status)
        self.capture_time = capture_time

    def _read(
        self,
        attribute_id: int,
        selection: SelectiveAccess | None,
        ctx: AccessContext | None,
        now: dt.datetime | None,
    ) -> Data | DataAccessResult:
        if attribute_id == 4:
            return self.status
        if attribute_id == 5:
            return datetime_octets(self.capture_time or _UNSPECIFIED)
        return super()._read(attribute_id, selection, ctx, now)

    def update(
        self, value: Data, *, status: Data | None = None, now: dt.datetime | None = None
    ) -> None:
        """Capture a new value (and status) at the meter's time ``now``."""
        self.value = value
        if status is not None:
            self.status = status
        self.capture_time = CosemDateTime.from_datetime(self._now(now))

    def reset(self, now: dt.datetime | None = None) -> None:
        self.value = self.default_value
        self.status = self.default_status
        self.capture_time = CosemDateTime.from_datetime(self._now(now))
