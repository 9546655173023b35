"""Data, interface class 1 (version 0): one value with no scaler or unit.

Attributes: 1 logical_name, 2 value (any type, instance specific). No methods. Used for serial
numbers (0-0:96.1.0.255), firmware identifiers, counters without a unit.

Decision (copy to specs/): when ``fixed_type`` is true (the default) and the value is not
null-data, a SET must keep the wire type of the current value, otherwise ``type-unmatched``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from cosemcast.apdu.common import DataAccessResult, SelectiveAccess
from cosemcast.association.backend import AccessContext
from cosemcast.axdr.types import Data
from cosemcast.cosem.access import AccessRights
from cosemcast.cosem.base import LOGICAL_NAME, AttributeSpec, CosemObject
from cosemcast.cosem.common import want_same_type
from cosemcast.obis import Obis

__all__ = ["DataObject"]


class DataObject(CosemObject):
    """Data (class 1). Named ``DataObject`` so as not to shadow the A-XDR ``Data`` type."""

    CLASS_ID = 1
    VERSION = 0
    ATTRIBUTES = (LOGICAL_NAME, AttributeSpec(2, "value", "instance specific", writable=True))

    def __init__(
        self,
        logical_name: Obis | str,
        value: Data = None,
        *,
        fixed_type: bool = True,
        access: Mapping[int | None, AccessRights] | None = None,
    ) -> None:
        super().__init__(logical_name, access=access)
        self.value: Data = value
        self.fixed_type = fixed_type

    def _read(
        self,
        attribute_id: int,
        selection: SelectiveAccess | None,
        ctx: AccessContext | None,
        now: dt.datetime | None,
    ) -> Data | DataAccessResult:
        return self.value

    def _write(self, attribute_id: int, value: Data, ctx: AccessContext | None) -> DataAccessResult:
        self.value = want_same_type(value, self.value) if self.fixed_type else value
        return DataAccessResult.SUCCESS
