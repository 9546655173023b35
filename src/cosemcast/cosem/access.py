"""Access rights: who may read, write or invoke what (Association LN object_list; brief §9.4).

Theory of operation. Every COSEM object carries, per client SAP, the :class:`AccessRights` that
the association of that client grants on it (the ``access_rights`` of the object's entry in that
association's object_list). An object without rights for a client is not in that client's
object_list and is invisible to it. Rights are checked in :meth:`CosemObject.get` / ``set`` /
``action`` before the object is touched.

Access modes are those of Association LN version 1 and 2 (attribute: 0..6, method: 0..2). The
``authenticated_*`` modes grant access only to requests that arrived cryptographically protected.

Decision (copy to specs/): the association layer reports protection as
``AccessContext.ciphered``; an ``authenticated_*`` right is honoured only when it is true.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = ["AccessMode", "AccessRights", "MethodAccessMode"]


class AccessMode(enum.IntEnum):
    """attribute access_mode (Association LN v1/v2 object_list)."""

    NO_ACCESS = 0
    READ_ONLY = 1
    WRITE_ONLY = 2
    READ_AND_WRITE = 3
    AUTHENTICATED_READ_ONLY = 4
    AUTHENTICATED_WRITE_ONLY = 5
    AUTHENTICATED_READ_AND_WRITE = 6

    @property
    def readable(self) -> bool:
        return self in _READABLE

    @property
    def writable(self) -> bool:
        return self in _WRITABLE

    @property
    def needs_protection(self) -> bool:
        return self >= AccessMode.AUTHENTICATED_READ_ONLY

    def restrict(self, *, readable: bool, writable: bool) -> AccessMode:
        """This mode without the directions the attribute does not support."""
        read = self.readable and readable
        write = self.writable and writable
        base = (1 if read else 0) | (2 if write else 0)
        if base == 0:
            return AccessMode.NO_ACCESS
        return AccessMode(base + (3 if self.needs_protection else 0))


_READABLE: Final = frozenset(
    {
        AccessMode.READ_ONLY,
        AccessMode.READ_AND_WRITE,
        AccessMode.AUTHENTICATED_READ_ONLY,
        AccessMode.AUTHENTICATED_READ_AND_WRITE,
    }
)
_WRITABLE: Final = frozenset(
    {
        AccessMode.WRITE_ONLY,
        AccessMode.READ_AND_WRITE,
        AccessMode.AUTHENTICATED_WRITE_ONLY,
        AccessMode.AUTHENTICATED_READ_AND_WRITE,
    }
)


class MethodAccessMode(enum.IntEnum):
    """method access_mode (Association LN v1/v2; v0 used a boolean)."""

    NO_ACCESS = 0
    ACCESS = 1
    AUTHENTICATED_ACCESS = 2


@dataclass(frozen=True, slots=True)
class AccessRights:
    """The rights one association grants on one object.

    ``attributes`` and ``methods`` name explicit modes; any other id gets the default.
    """

    attributes: Mapping[int, AccessMode] = field(default_factory=dict)
    methods: Mapping[int, MethodAccessMode] = field(default_factory=dict)
    default_attribute: AccessMode = AccessMode.NO_ACCESS
    default_method: MethodAccessMode = MethodAccessMode.NO_ACCESS

    def attribute(self, attribute_id: int) -> AccessMode:
        return self.attributes.get(attribute_id, self.default_attribute)

    def method(self, method_id: int) -> MethodAccessMode:
        return self.methods.get(method_id, self.default_method)

    @classmethod
    def read_only(cls) -> AccessRights:
        """Every attribute readable, nothing writable, no method."""
        return cls(default_attribute=AccessMode.READ_ONLY)

    @classmethod
    def full(cls, *, authenticated: bool = False) -> AccessRights:
        """Everything the object supports (optionally only for protected requests)."""
        if authenticated:
            return cls(
                default_attribute=AccessMode.AUTHENTICATED_READ_AND_WRITE,
                default_method=MethodAccessMode.AUTHENTICATED_ACCESS,
            )
        return cls(
            default_attribute=AccessMode.READ_AND_WRITE, default_method=MethodAccessMode.ACCESS
        )
