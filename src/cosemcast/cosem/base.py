"""The COSEM object base class: attribute and method tables, access checks, dispatch.

Theory of operation. An interface class is a subclass of :class:`CosemObject` that declares
``CLASS_ID``, ``VERSION`` and its tables of :class:`AttributeSpec` / :class:`MethodSpec`
(Blue Book ids and snake_case names), keeps its state in typed Python attributes, and
implements three hooks:

* ``_read(attribute_id, selection, ctx, now) -> Data`` for attributes 2 and up (attribute 1,
  logical_name, is answered here);
* ``_write(attribute_id, value, ctx) -> DataAccessResult`` for writable attributes;
* ``_invoke(method_id, params, ctx) -> (ActionResult, Data | None)``.

The public entry points come in two layers:

* :meth:`CosemObject.get` / :meth:`~CosemObject.set` / :meth:`~CosemObject.action` serve a
  client: they look up the :class:`~cosemcast.cosem.access.AccessRights` granted to the
  client SAP of the :class:`~cosemcast.association.backend.AccessContext`, refuse what is
  not granted, and then call
* :meth:`CosemObject.read` / :meth:`~CosemObject.write` / :meth:`~CosemObject.invoke`, which
  the owner of the object (the software meter, Profile generic capture, Push setup) uses
  directly, without access checks.

Errors a client can cause come back as results, never as exceptions: an object the client may
not see or an unknown attribute/method id is ``object-undefined``; a right not granted, or a
direction the class does not support, is ``read-write-denied``; a value of the wrong wire type
is ``type-unmatched``; a well-typed but unacceptable value or an unsupported access selector is
``other-reason`` (decisions, copy to specs/). Methods whose parameter is ``integer(0)``
accept it absent, as null-data or as any integer type, since clients differ.

``now`` is always the meter's own time, an aware datetime (Clock time, with its offset). An
object that needs it and is not given one asks the :class:`ModelView` it was added to.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol

from cosemcast.apdu.common import ActionResult, DataAccessResult, SelectiveAccess
from cosemcast.association.backend import AccessContext
from cosemcast.axdr.types import Data, OctetString
from cosemcast.cosem.access import AccessMode, AccessRights, MethodAccessMode
from cosemcast.cosem.common import (
    CaptureObjectDefinition,
    TypeUnmatched,
    ValueRejected,
    pick_element,
)
from cosemcast.errors import LocalProtocolError
from cosemcast.obis import Obis

__all__ = [
    "AttributeSpec",
    "CosemObject",
    "MethodSpec",
    "ModelView",
    "class_for",
    "want_no_parameter",
]


class ModelView(Protocol):
    """What an object may ask of the logical device it belongs to (see model.py)."""

    def find(self, class_id: int, logical_name: Obis) -> CosemObject | None: ...

    def now(self) -> dt.datetime: ...

    def objects(self) -> Iterable[CosemObject]: ...


@dataclass(frozen=True, slots=True)
class AttributeSpec:
    """One attribute of an interface class: Blue Book id, name and type, and what the class
    supports (``readable``/``writable``, the access selectors it understands)."""

    attribute_id: int
    name: str
    type_name: str
    writable: bool = False
    readable: bool = True
    selectors: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """One method of an interface class: Blue Book id, name and parameter type."""

    method_id: int
    name: str
    parameter: str = "integer(0)"


LOGICAL_NAME = AttributeSpec(1, "logical_name", "octet-string(6)")

_CLASSES: dict[int, type[CosemObject]] = {}


def class_for(class_id: int) -> type[CosemObject] | None:
    """The interface class implemented here for ``class_id``, if any."""
    return _CLASSES.get(class_id)


def want_no_parameter(params: Data | None) -> None:
    """Methods whose parameter is ``integer(0)``: accept absent, null-data or any integer."""
    if params is None or (isinstance(params, int) and not isinstance(params, bool)):
        return
    raise TypeUnmatched(f"expected integer(0), got {type(params).__name__}")


def _protection_ok(needs_protection: bool, ctx: AccessContext) -> bool:
    return not needs_protection or ctx.ciphered


class CosemObject:
    """Base of every interface class. See the module docstring."""

    CLASS_ID: ClassVar[int]
    VERSION: ClassVar[int] = 0
    ATTRIBUTES: ClassVar[tuple[AttributeSpec, ...]] = (LOGICAL_NAME,)
    METHODS: ClassVar[tuple[MethodSpec, ...]] = ()
    _attributes_by_id: ClassVar[dict[int, AttributeSpec]]
    _methods_by_id: ClassVar[dict[int, MethodSpec]]

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls._attributes_by_id = {a.attribute_id: a for a in cls.ATTRIBUTES}
        cls._methods_by_id = {m.method_id: m for m in cls.METHODS}
        if "CLASS_ID" in cls.__dict__:
            _CLASSES.setdefault(cls.CLASS_ID, cls)

    def __init__(
        self,
        logical_name: Obis | str,
        *,
        access: Mapping[int | None, AccessRights] | None = None,
    ) -> None:
        self.logical_name = (
            logical_name if isinstance(logical_name, Obis) else Obis.parse(logical_name)
        )
        self.access: dict[int | None, AccessRights | None] = {}
        self.access.update(access or {})
        self.model: ModelView | None = None
        self.on_change: Callable[[CosemObject], None] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.logical_name)!r})"

    # --- tables --------------------------------------------------------------------------------

    @classmethod
    def attribute_spec(cls, attribute_id: int) -> AttributeSpec | None:
        return cls._attributes_by_id.get(attribute_id)

    @classmethod
    def method_spec(cls, method_id: int) -> MethodSpec | None:
        return cls._methods_by_id.get(method_id)

    @classmethod
    def attribute_id(cls, name: str) -> int:
        for spec in cls.ATTRIBUTES:
            if spec.name == name:
                return spec.attribute_id
        raise KeyError(f"{cls.__name__} has no attribute {name!r}")

    @classmethod
    def method_id(cls, name: str) -> int:
        for spec in cls.METHODS:
            if spec.name == name:
                return spec.method_id
        raise KeyError(f"{cls.__name__} has no method {name!r}")

    # --- access rights -------------------------------------------------------------------------

    def grant(self, client_sap: int | None, rights: AccessRights) -> None:
        """Give the association of ``client_sap`` (``None``: every client) these rights."""
        self.access[client_sap] = rights

    def revoke(self, client_sap: int | None) -> None:
        """Hide the object from that client (``None``: remove the every-client grant)."""
        if client_sap is None:
            self.access.pop(None, None)
        else:
            self.access[client_sap] = None

    def rights_for(self, client_sap: int | None) -> AccessRights | None:
        """The rights of that client, or ``None`` when the object is invisible to it."""
        if client_sap in self.access:
            return self.access[client_sap]
        return self.access.get(None)

    def effective_attribute_access(self, rights: AccessRights, attribute_id: int) -> AccessMode:
        """The granted mode limited to what the class supports (as shown in object_list)."""
        spec = self.attribute_spec(attribute_id)
        if spec is None:
            return AccessMode.NO_ACCESS
        return rights.attribute(attribute_id).restrict(
            readable=spec.readable, writable=spec.writable
        )

    # --- client entry points (access-checked) --------------------------------------------------

    def get(
        self,
        ctx: AccessContext,
        attribute_id: int,
        selection: SelectiveAccess | None = None,
    ) -> Data | DataAccessResult:
        rights = self.rights_for(ctx.client_sap)
        if rights is None or self.attribute_spec(attribute_id) is None:
            return DataAccessResult.OBJECT_UNDEFINED
        mode = self.effective_attribute_access(rights, attribute_id)
        if not mode.readable or not _protection_ok(mode.needs_protection, ctx):
            return DataAccessResult.READ_WRITE_DENIED
        return self.read(attribute_id, selection, ctx=ctx)

    def set(self, ctx: AccessContext, attribute_id: int, value: Data) -> DataAccessResult:
        rights = self.rights_for(ctx.client_sap)
        if rights is None or self.attribute_spec(attribute_id) is None:
            return DataAccessResult.OBJECT_UNDEFINED
        mode = self.effective_attribute_access(rights, attribute_id)
        if not mode.writable or not _protection_ok(mode.needs_protection, ctx):
            return DataAccessResult.READ_WRITE_DENIED
        return self.write(attribute_id, value, ctx=ctx)

    def action(
        self, ctx: AccessContext, method_id: int, params: Data | None = None
    ) -> tuple[ActionResult, Data | None]:
        rights = self.rights_for(ctx.client_sap)
        if rights is None or self.method_spec(method_id) is None:
            return ActionResult.OBJECT_UNDEFINED, None
        mode = rights.method(method_id)
        if mode == MethodAccessMode.NO_ACCESS or not _protection_ok(
            mode == MethodAccessMode.AUTHENTICATED_ACCESS, ctx
        ):
            return ActionResult.READ_WRITE_DENIED, None
        return self.invoke(method_id, params, ctx=ctx)

    # --- owner entry points (no access checks) -------------------------------------------------

    def read(
        self,
        attribute_id: int,
        selection: SelectiveAccess | None = None,
        *,
        ctx: AccessContext | None = None,
        now: dt.datetime | None = None,
    ) -> Data | DataAccessResult:
        spec = self.attribute_spec(attribute_id)
        if spec is None:
            return DataAccessResult.OBJECT_UNDEFINED
        if not spec.readable:
            return DataAccessResult.READ_WRITE_DENIED
        if selection is not None and selection.selector not in spec.selectors:
            return DataAccessResult.OTHER_REASON
        if attribute_id == 1:
            return OctetString(self.logical_name.to_bytes())
        try:
            return self._read(attribute_id, selection, ctx, now)
        except TypeUnmatched:
            return DataAccessResult.TYPE_UNMATCHED
        except ValueRejected:
            return DataAccessResult.OTHER_REASON

    def write(
        self, attribute_id: int, value: Data, *, ctx: AccessContext | None = None
    ) -> DataAccessResult:
        spec = self.attribute_spec(attribute_id)
        if spec is None:
            return DataAccessResult.OBJECT_UNDEFINED
        if not spec.writable:
            return DataAccessResult.READ_WRITE_DENIED
        try:
            result = self._write(attribute_id, value, ctx)
        except TypeUnmatched:
            return DataAccessResult.TYPE_UNMATCHED
        except ValueRejected:
            return DataAccessResult.OTHER_REASON
        if result == DataAccessResult.SUCCESS:
            self.changed()
        return result

    def invoke(
        self,
        method_id: int,
        params: Data | None = None,
        *,
        ctx: AccessContext | None = None,
    ) -> tuple[ActionResult, Data | None]:
        if self.method_spec(method_id) is None:
            return ActionResult.OBJECT_UNDEFINED, None
        try:
            result, data = self._invoke(method_id, params, ctx)
        except TypeUnmatched:
            return ActionResult.TYPE_UNMATCHED, None
        except ValueRejected:
            return ActionResult.OTHER_REASON, None
        if result == ActionResult.SUCCESS:
            self.changed()
        return result, data

    def changed(self) -> None:
        """Tell the owner that the state changed (so that it can persist it)."""
        if self.on_change is not None:
            self.on_change(self)

    # --- hooks for subclasses ------------------------------------------------------------------

    def _read(
        self,
        attribute_id: int,
        selection: SelectiveAccess | None,
        ctx: AccessContext | None,
        now: dt.datetime | None,
    ) -> Data | DataAccessResult:
        return DataAccessResult.OBJECT_UNAVAILABLE

    def _write(self, attribute_id: int, value: Data, ctx: AccessContext | None) -> DataAccessResult:
        return DataAccessResult.READ_WRITE_DENIED

    def _invoke(
        self, method_id: int, params: Data | None, ctx: AccessContext | None
    ) -> tuple[ActionResult, Data | None]:
        return ActionResult.OBJECT_UNAVAILABLE, None

    def captured_value(self, item: CaptureObjectDefinition, now: dt.datetime | None) -> Data:
        """The value ``item`` selects in this object's model; null-data when the object or
        attribute is absent or refuses (what profiles and pushes capture, Blue Book 4.3.6)."""
        if self.model is None:
            return None
        obj = self.model.find(item.class_id, item.logical_name)
        if obj is None:
            return None
        value = obj.read(item.attribute_index, now=now)
        if isinstance(value, DataAccessResult):
            return None
        try:
            return pick_element(value, item.data_index)
        except ValueRejected:
            return None

    def _now(self, now: dt.datetime | None) -> dt.datetime:
        if now is not None:
            return now
        if self.model is None:
            raise LocalProtocolError(f"{self!r} needs the time but belongs to no object model")
        return self.model.now()
