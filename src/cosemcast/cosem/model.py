"""The object model of one logical device, and the server backend behind an association.

Theory of operation. :class:`ObjectModel` holds COSEM objects by (class_id, OBIS); an OBIS
code names one object in a logical device. It implements
:class:`~cosemcast.association.backend.ServerBackend`: each GET/SET/ACTION item the
association server decodes is resolved to an object and dispatched to its access-checked
:meth:`~cosemcast.cosem.base.CosemObject.get` / ``set`` / ``action``. It also gives objects
what they need from their device (:class:`~cosemcast.cosem.base.ModelView`): other objects (for
Profile generic capture, Push setup, Association LN object_list) and the meter's time.

Resolution rules (decisions, copy to specs/):

* An object that the client's association does not list, or no object at all, is
  ``object-undefined`` (hidden objects are indistinguishable from missing ones); an OBIS code
  listed for the client under another class id is ``object-class-inconsistent``.
* 0-0:40.0.0.255 with class 15 is the current association: the Association LN object whose
  ``client_sap`` is the caller's, else a shared one (``client_sap=None``).
* SET with selective access is ``other-reason`` (no class here supports it).
* The meter's time is that of the Clock at 0-0:1.0.0.255 (else the first Clock), else the
  ``time_source`` given to the model; ``AccessContext.now`` is not used, so a clock offset
  set by a client is always honoured.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator

from cosemcast.apdu.common import (
    ActionResult,
    CosemAttributeDescriptor,
    CosemMethodDescriptor,
    DataAccessResult,
    SelectiveAccess,
)
from cosemcast.association.backend import AccessContext
from cosemcast.axdr.types import Array, Data
from cosemcast.cosem.association_ln import AssociationLN
from cosemcast.cosem.base import CosemObject
from cosemcast.cosem.clock import Clock
from cosemcast.cosem.object_list import ObjectListEntry, encode_object_list, visible_entries
from cosemcast.errors import ConfigurationError, LocalProtocolError
from cosemcast.obis import Obis

__all__ = ["CURRENT_ASSOCIATION", "ObjectModel"]

CURRENT_ASSOCIATION = Obis(0, 0, 40, 0, 0, 255)
_CLOCK = Obis(0, 0, 1, 0, 0, 255)


class ObjectModel:
    """The COSEM objects of one logical device; see the module docstring."""

    def __init__(
        self,
        objects: Iterable[CosemObject] = (),
        *,
        time_source: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self._by_obis: dict[Obis, CosemObject] = {}
        self.time_source = time_source
        for obj in objects:
            self.add(obj)

    def __repr__(self) -> str:
        return f"ObjectModel({len(self._by_obis)} objects)"

    # --- contents ------------------------------------------------------------------------------

    def add(self, obj: CosemObject) -> CosemObject:
        """Add ``obj`` (its OBIS code must be new in this logical device) and return it."""
        if obj.logical_name in self._by_obis:
            raise ConfigurationError(f"two objects with logical name {obj.logical_name}")
        self._by_obis[obj.logical_name] = obj
        obj.model = self
        return obj

    def remove(self, logical_name: Obis) -> None:
        obj = self._by_obis.pop(logical_name, None)
        if obj is not None:
            obj.model = None

    def __iter__(self) -> Iterator[CosemObject]:
        return iter(list(self._by_obis.values()))

    def __len__(self) -> int:
        return len(self._by_obis)

    def objects(self) -> list[CosemObject]:
        return list(self._by_obis.values())

    def by_obis(self, logical_name: Obis) -> CosemObject | None:
        return self._by_obis.get(logical_name)

    def find(self, class_id: int, logical_name: Obis) -> CosemObject | None:
        obj = self._by_obis.get(logical_name)
        return obj if obj is not None and class_id == obj.CLASS_ID else None

    @property
    def clock(self) -> Clock | None:
        main = self._by_obis.get(_CLOCK)
        if isinstance(main, Clock):
            return main
        return next((o for o in self._by_obis.values() if isinstance(o, Clock)), None)

    def now(self) -> dt.datetime:
        """The meter's time (aware): the clock's, else the model's ``time_source``."""
        clock = self.clock
        if clock is not None:
            return clock.now()
        if self.time_source is not None:
            moment = self.time_source()
            return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
        raise LocalProtocolError("the object model has neither a Clock nor a time_source")

    def association_for(self, client_sap: int) -> AssociationLN | None:
        """The Association LN object of ``client_sap``, else a shared one."""
        shared = None
        for obj in self._by_obis.values():
            if isinstance(obj, AssociationLN):
                if obj.client_sap == client_sap:
                    return obj
                if obj.client_sap is None and shared is None:
                    shared = obj
        return shared

    def object_list_entries(self, client_sap: int | None) -> list[ObjectListEntry]:
        return visible_entries(self._by_obis.values(), client_sap)

    def object_list(self, client_sap: int | None) -> Array:
        """Association LN attribute 2 as the association of ``client_sap`` shows it."""
        return encode_object_list(self.object_list_entries(client_sap))

    # --- ServerBackend -------------------------------------------------------------------------

    def resolve(
        self, ctx: AccessContext, class_id: int, logical_name: Obis
    ) -> CosemObject | DataAccessResult:
        """The object a request addresses, or why it cannot be addressed."""
        if class_id == AssociationLN.CLASS_ID and logical_name == CURRENT_ASSOCIATION:
            current = self.association_for(ctx.client_sap)
            if current is not None and current.rights_for(ctx.client_sap) is not None:
                return current
        obj = self._by_obis.get(logical_name)
        if obj is None or obj.rights_for(ctx.client_sap) is None:
            return DataAccessResult.OBJECT_UNDEFINED
        if class_id != obj.CLASS_ID:
            return DataAccessResult.OBJECT_CLASS_INCONSISTENT
        return obj

    def get_attribute(
        self,
        ctx: AccessContext,
        descriptor: CosemAttributeDescriptor,
        selection: SelectiveAccess | None,
    ) -> Data | DataAccessResult:
        obj = self.resolve(ctx, descriptor.class_id, descriptor.instance_id)
        if isinstance(obj, DataAccessResult):
            return obj
        return obj.get(ctx, descriptor.attribute_id, selection)

    def set_attribute(
        self,
        ctx: AccessContext,
        descriptor: CosemAttributeDescriptor,
        selection: SelectiveAccess | None,
        value: Data,
    ) -> DataAccessResult:
        obj = self.resolve(ctx, descriptor.class_id, descriptor.instance_id)
        if isinstance(obj, DataAccessResult):
            return obj
        if selection is not None:
            return DataAccessResult.OTHER_REASON
        return obj.set(ctx, descriptor.attribute_id, value)

    def invoke_method(
        self,
        ctx: AccessContext,
        descriptor: CosemMethodDescriptor,
        parameters: Data | None,
    ) -> tuple[ActionResult, Data | None]:
        obj = self.resolve(ctx, descriptor.class_id, descriptor.instance_id)
        if isinstance(obj, DataAccessResult):
            return ActionResult(int(obj)), None
        return obj.action(ctx, descriptor.method_id, parameters)
