"""Association LN, interface class 15 (version 1; brief §9.4).

Attributes: 1 logical_name (0-0:40.0.0.255 is the current association), 2 object_list, 3
associated_partners_id ``structure {client_SAP integer, server_SAP long-unsigned}``, 4
application_context_name and 6 authentication_mechanism_name (the OID arcs as ``structure of
7: unsigned, unsigned, long-unsigned, unsigned, unsigned, unsigned, unsigned``, e.g.
2.16.756.5.8.1.1), 5 xDLMS_context_info ``structure {conformance bit-string(24),
max_receive_pdu_size long-unsigned, max_send_pdu_size long-unsigned, dlms_version_number
unsigned, quality_of_service integer, cyphering_info octet-string}``, 7 secret (octet-string,
write-only), 8 association_status (enum: 0 non-associated, 1 association-pending, 2
associated), 9 security_setup_reference (octet-string, an OBIS code). Methods: 1
reply_to_HLS_authentication, 2 change_HLS_secret (octet-string), 3 add_object and 4
remove_object (object_list_element).

Theory of operation. An Association LN object describes the association of one client SAP
(``client_sap``), or, with ``client_sap=None``, of whichever client reads it (a meter with one
shared 0-0:40.0.0.255 object). object_list is computed on each read from the object model and
the rights each object grants that client (see access.py), so it is always true.
reply_to_HLS_authentication is part of the HLS handshake and handled by the association layer;
it never reaches this object (if it does, the answer is ``other-reason``).

Decisions (copy to specs/): when read through a client request, association_status is
``association-pending`` for an HLS mechanism not yet authenticated and ``associated``
otherwise. add_object grants the rights of the given entry to this association's client;
remove_object hides the object from it. Both are ``object-undefined`` for an object that the
model does not hold. The secret is one octet-string for LLS and HLS alike.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from cosemcast.apdu.acse import ApplicationContextName, MechanismName
from cosemcast.apdu.common import ActionResult, DataAccessResult, SelectiveAccess
from cosemcast.association.backend import AccessContext
from cosemcast.axdr.types import (
    BitString,
    Data,
    Enumerated,
    Integer,
    LongUnsigned,
    OctetString,
    Structure,
    Unsigned,
)
from cosemcast.cosem.access import AccessMode, AccessRights, MethodAccessMode
from cosemcast.cosem.base import (
    LOGICAL_NAME,
    AttributeSpec,
    CosemObject,
    MethodSpec,
)
from cosemcast.cosem.common import (
    TypeUnmatched,
    ValueRejected,
    want_int,
    want_octet_string,
    want_structure,
)
from cosemcast.cosem.object_list import ObjectListEntry, encode_object_list, visible_entries
from cosemcast.errors import EncodeError
from cosemcast.obis import Obis

__all__ = [
    "AssociationLN",
    "AssociationStatus",
    "XdlmsContextInfo",
    "name_data",
    "parse_name",
]

_DLMS_UA_ARCS = (2, 16, 756, 5, 8)
_CONTEXT_ARC = 1
_MECHANISM_ARC = 2
_CURRENT_ASSOCIATION = Obis(0, 0, 40, 0, 0, 255)
_OID_PREFIX = bytes((0x60, 0x85, 0x74, 0x05, 0x08))


class AssociationStatus(enum.IntEnum):
    NON_ASSOCIATED = 0
    ASSOCIATION_PENDING = 1
    ASSOCIATED = 2


def name_data(kind: int, value: int) -> Structure:
    """The 7-arc structure of 2.16.756.5.8.``kind``.``value`` (kind 1: context, 2: mechanism)."""
    return Structure(
        (
            Unsigned(2),
            Unsigned(16),
            LongUnsigned(756),
            Unsigned(5),
            Unsigned(8),
            Unsigned(kind),
            Unsigned(value),
        )
    )


def parse_name(value: Data, kind: int) -> int:
    """The last arc of an application context or mechanism name, from the 7-arc structure or
    from the BER OID contents (``60 85 74 05 08 kind value``) that some meters send."""
    if isinstance(value, OctetString):
        raw = bytes(value)
        if len(raw) == 7 and raw[:5] == _OID_PREFIX and raw[5] == kind:
            return raw[6]
        raise ValueRejected("octet-string is not a DLMS UA name OID")
    s = want_structure(value, 7)
    arcs = []
    for arc in s:
        if isinstance(arc, bool) or not isinstance(arc, int):
            raise TypeUnmatched("name arcs must be integers")
        arcs.append(int(arc))
    if tuple(arcs[:5]) != _DLMS_UA_ARCS or arcs[5] != kind:
        raise ValueRejected(f"name {arcs} is not under 2.16.756.5.8.{kind}")
    return arcs[6]


@dataclass(frozen=True, slots=True)
class XdlmsContextInfo:
    """xDLMS_context_info (attribute 5): what the association negotiated."""

    conformance: int = 0
    max_receive_pdu_size: int = 0xFFFF
    max_send_pdu_size: int = 0xFFFF
    dlms_version_number: int = 6
    quality_of_service: int = 0
    cyphering_info: bytes = field(default=b"", repr=False)

    def to_data(self) -> Structure:
        if not 0 <= self.conformance < 1 << 24:
            raise EncodeError(f"conformance {self.conformance:#x} is not 24 bits")
        return Structure(
            (
                BitString(self.conformance.to_bytes(3, "big"), 24),
                LongUnsigned(self.max_receive_pdu_size),
                LongUnsigned(self.max_send_pdu_size),
                Unsigned(self.dlms_version_number),
                Integer(self.quality_of_service),
                OctetString(self.cyphering_info),
            )
        )

    @classmethod
    def from_data(cls, value: Data) -> XdlmsContextInfo:
        s = want_structure(value, 6)
        bits = s[0]
        if not isinstance(bits, BitString) or bits.bit_length != 24:
            raise TypeUnmatched("conformance must be a bit-string of 24 bits")
        return cls(
            int.from_bytes(bits.data, "big"),
            want_int(s[1], LongUnsigned),
            want_int(s[2], LongUnsigned),
            want_int(s[3], Unsigned),
            want_int(s[4], Integer),
            want_octet_string(s[5]),
        )


def _rights_from_entry(entry: ObjectListEntry) -> AccessRights:
    try:
        attributes = {a.attribute_id: AccessMode(a.access_mode) for a in entry.attribute_access}
        methods = {m.method_id: MethodAccessMode(m.access_mode) for m in entry.method_access}
    except ValueError as exc:
        raise ValueRejected(f"unknown access mode: {exc}") from exc
    return AccessRights(attributes, methods)


class AssociationLN(CosemObject):
    """Association LN (class 15); see the module docstring."""

    CLASS_ID = 15
    VERSION = 1
    ATTRIBUTES = (
        LOGICAL_NAME,
        AttributeSpec(2, "object_list", "object_list_type"),
        AttributeSpec(3, "associated_partners_id", "associated_partners_type"),
        AttributeSpec(4, "application_context_name", "context_name_type"),
        AttributeSpec(5, "xDLMS_context_info", "xDLMS_context_type"),
        AttributeSpec(6, "authentication_mechanism_name", "mechanism_name_type"),
        AttributeSpec(7, "secret", "octet-string", writable=True, readable=False),
        AttributeSpec(8, "association_status", "enum"),
        AttributeSpec(9, "security_setup_reference", "octet-string"),
    )
    METHODS = (
        MethodSpec(1, "reply_to_HLS_authentication", "octet-string"),
        MethodSpec(2, "change_HLS_secret", "octet-string"),
        MethodSpec(3, "add_object", "object_list_element"),
        MethodSpec(4, "remove_object", "object_list_element"),
    )

    def __init__(
        self,
        logical_name: Obis | str = _CURRENT_ASSOCIATION,
        *,
        client_sap: int | None = None,
        server_sap: int = 1,
        application_context_name: ApplicationContextName = ApplicationContextName.LOGICAL_NAME,
        authentication_mechanism_name: MechanismName = MechanismName.LOWEST,
        xdlms_context_info: XdlmsContextInfo | None = None,
        secret: bytes = b"",
        security_setup_reference: Obis | None = None,
        access: Mapping[int | None, AccessRights] | None = None,
    ) -> None:
        super().__init__(logical_name, access=access)
        self.client_sap = client_sap
        self.server_sap = server_sap
        self.application_context_name = application_context_name
        self.authentication_mechanism_name = authentication_mechanism_name
        self.xdlms_context_info = xdlms_context_info or XdlmsContextInfo()
        self.secret = secret
        self.security_setup_reference = security_setup_reference
        self.association_status = AssociationStatus.NON_ASSOCIATED

    def _client(self, ctx: AccessContext | None) -> int | None:
        if self.client_sap is not None:
            return self.client_sap
        return ctx.client_sap if ctx is not None else None

    def object_list_entries(self, ctx: AccessContext | None = None) -> list[ObjectListEntry]:
        if self.model is None:
            return []
        return visible_entries(self.model.objects(), self._client(ctx))

    def _status(self, ctx: AccessContext | None) -> AssociationStatus:
        if ctx is None:
            return self.association_status
        if ctx.mechanism >= MechanismName.HIGH and not ctx.authenticated:
            return AssociationStatus.ASSOCIATION_PENDING
        return AssociationStatus.ASSOCIATED

    def _read(
        self,
        attribute_id: int,
        selection: SelectiveAccess | None,
        ctx: AccessContext | None,
        now: dt.datetime | None,
    ) -> Data | DataAccessResult:
        match attribute_id:
            case 2:
                return encode_object_list(self.object_list_entries(ctx))
            case 3:
                return Structure((Integer(self._client(ctx) or 0), LongUnsigned(self.server_sap)))
            case 4:
                return name_data(_CONTEXT_ARC, self.application_context_name)
            case 5:
                return self.xdlms_context_info.to_data()
            case 6:
                mechanism = int(self.authentication_mechanism_name)
                if self.client_sap is None and ctx is not None:
                    mechanism = int(ctx.mechanism)
                return name_data(_MECHANISM_ARC, mechanism)
            case 8:
                return Enumerated(self._status(ctx))
            case _:
                ref = self.security_setup_reference
                return OctetString(ref.to_bytes() if ref is not None else b"")

    def _write(self, attribute_id: int, value: Data, ctx: AccessContext | None) -> DataAccessResult:
        self.secret = want_octet_string(value)
        return DataAccessResult.SUCCESS

    def _invoke(
        self, method_id: int, params: Data | None, ctx: AccessContext | None
    ) -> tuple[ActionResult, Data | None]:
        if method_id == 1:
            return ActionResult.OTHER_REASON, None
        if method_id == 2:
            self.secret = want_octet_string(params)
            return ActionResult.SUCCESS, None
        entry = ObjectListEntry.from_data(params)
        target = self.model.find(entry.class_id, entry.logical_name) if self.model else None
        client = self._client(ctx)
        if target is None:
            return ActionResult.OBJECT_UNDEFINED, None
        if client is None:
            return ActionResult.OTHER_REASON, None
        if method_id == 3:
            target.grant(client, _rights_from_entry(entry))
        else:
            target.revoke(client)
        return ActionResult.SUCCESS, None
