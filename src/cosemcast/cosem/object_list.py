"""object_list entries of Association LN (attribute 2; brief §9.4).

::

    object_list_element ::= structure {
        class_id long-unsigned, version unsigned, logical_name octet-string,
        access_rights structure {
            attribute_access array of structure {
                attribute_id integer, access_mode enum,
                access_selectors CHOICE { null-data, array of integer } },
            method_access array of structure {
                method_id integer, access_mode enum } } }

The server builds entries from its object model (model.py); a client parses what a meter sends
with :func:`parse_object_list`. Association LN version 0 carried method access as a boolean;
the parser accepts both forms and :meth:`ObjectListEntry.to_data` can write either.

Decisions (copy to specs/): the parser is lenient about integer widths (any integer type for
ids and versions, as meters vary) and keeps access-mode values outside the enumerations as
plain ints; anything else malformed raises :class:`~cosemcast.errors.DecodeError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cosemcast.axdr.types import (
    Array,
    Data,
    Enumerated,
    Integer,
    LongUnsigned,
    OctetString,
    Structure,
    Unsigned,
)
from cosemcast.cosem.access import AccessMode, MethodAccessMode
from cosemcast.cosem.base import CosemObject
from cosemcast.cosem.common import (
    TypeUnmatched,
    ValueRejected,
    want_array,
    want_obis,
    want_structure,
)
from cosemcast.errors import DecodeError, EncodeError
from cosemcast.obis import Obis

__all__ = [
    "AttributeAccessItem",
    "MethodAccessItem",
    "ObjectListEntry",
    "encode_object_list",
    "entry_for",
    "parse_object_list",
    "visible_entries",
]

_ATTRIBUTE_MODES = {int(m): m for m in AccessMode}
_METHOD_MODES = {int(m): m for m in MethodAccessMode}


def _any_int(value: Data, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeUnmatched(f"{what} must be an integer, got {type(value).__name__}")
    return int(value)


@dataclass(frozen=True, slots=True)
class AttributeAccessItem:
    attribute_id: int
    access_mode: AccessMode | int
    access_selectors: tuple[int, ...] | None = None

    def to_data(self) -> Structure:
        selectors: Data = (
            None
            if self.access_selectors is None
            else Array(Integer(s) for s in self.access_selectors)
        )
        return Structure((Integer(self.attribute_id), Enumerated(self.access_mode), selectors))

    @classmethod
    def from_data(cls, value: Data) -> AttributeAccessItem:
        s = want_structure(value, 3)
        code = _any_int(s[1], "access_mode")
        selectors = None
        if s[2] is not None:
            selectors = tuple(_any_int(v, "access selector") for v in want_array(s[2]))
        return cls(_any_int(s[0], "attribute_id"), _ATTRIBUTE_MODES.get(code, code), selectors)


@dataclass(frozen=True, slots=True)
class MethodAccessItem:
    method_id: int
    access_mode: MethodAccessMode | int

    def to_data(self, *, boolean: bool = False) -> Structure:
        mode: Data = bool(self.access_mode) if boolean else Enumerated(self.access_mode)
        return Structure((Integer(self.method_id), mode))

    @classmethod
    def from_data(cls, value: Data) -> MethodAccessItem:
        s = want_structure(value, 2)
        code = int(s[1]) if isinstance(s[1], bool) else _any_int(s[1], "access_mode")
        return cls(_any_int(s[0], "method_id"), _METHOD_MODES.get(code, code))


@dataclass(frozen=True, slots=True)
class ObjectListEntry:
    """One object visible in an association, with the rights granted on it."""

    class_id: int
    version: int
    logical_name: Obis
    attribute_access: tuple[AttributeAccessItem, ...] = ()
    method_access: tuple[MethodAccessItem, ...] = ()

    def attribute_mode(self, attribute_id: int) -> AccessMode | int:
        for item in self.attribute_access:
            if item.attribute_id == attribute_id:
                return item.access_mode
        return AccessMode.NO_ACCESS

    def method_mode(self, method_id: int) -> MethodAccessMode | int:
        for item in self.method_access:
            if item.method_id == method_id:
                return item.access_mode
        return MethodAccessMode.NO_ACCESS

    def to_data(self, *, boolean_methods: bool = False) -> Structure:
        if not 0 <= self.class_id <= 0xFFFF or not 0 <= self.version <= 0xFF:
            raise EncodeError(f"class_id {self.class_id} / version {self.version} out of range")
        return Structure(
            (
                LongUnsigned(self.class_id),
                Unsigned(self.version),
                OctetString(self.logical_name.to_bytes()),
                Structure(
                    (
                        Array(a.to_data() for a in self.attribute_access),
                        Array(m.to_data(boolean=boolean_methods) for m in self.method_access),
                    )
                ),
            )
        )

    @classmethod
    def from_data(cls, value: Data) -> ObjectListEntry:
        """Parse one element; raises the internal TypeUnmatched / ValueRejected."""
        s = want_structure(value, 4)
        rights = want_structure(s[3], 2)
        return cls(
            _any_int(s[0], "class_id"),
            _any_int(s[1], "version"),
            want_obis(s[2]),
            tuple(AttributeAccessItem.from_data(a) for a in want_array(rights[0])),
            tuple(MethodAccessItem.from_data(m) for m in want_array(rights[1])),
        )

    def __str__(self) -> str:
        return f"{self.logical_name} class {self.class_id} v{self.version}"


def encode_object_list(
    entries: Iterable[ObjectListEntry], *, boolean_methods: bool = False
) -> Array:
    return Array(e.to_data(boolean_methods=boolean_methods) for e in entries)


def parse_object_list(value: Data) -> tuple[ObjectListEntry, ...]:
    """The entries of an object_list read from a meter; :class:`DecodeError` if malformed."""
    try:
        return tuple(ObjectListEntry.from_data(e) for e in want_array(value))
    except (TypeUnmatched, ValueRejected) as exc:
        raise DecodeError(f"malformed object_list: {exc}", expected="object_list_element") from exc


def entry_for(obj: CosemObject, client_sap: int | None) -> ObjectListEntry | None:
    """The object_list entry of ``obj`` as the association of ``client_sap`` sees it."""
    rights = obj.rights_for(client_sap)
    if rights is None:
        return None
    return ObjectListEntry(
        obj.CLASS_ID,
        obj.VERSION,
        obj.logical_name,
        tuple(
            AttributeAccessItem(
                spec.attribute_id,
                obj.effective_attribute_access(rights, spec.attribute_id),
                spec.selectors or None,
            )
            for spec in obj.ATTRIBUTES
        ),
        tuple(MethodAccessItem(m.method_id, rights.method(m.method_id)) for m in obj.METHODS),
    )


def visible_entries(
    objects: Iterable[CosemObject], client_sap: int | None
) -> list[ObjectListEntry]:
    """The object_list of the association of ``client_sap``, in model order."""
    return [e for e in (entry_for(o, client_sap) for o in objects) if e is not None]
