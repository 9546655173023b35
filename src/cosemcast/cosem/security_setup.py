"""Security setup, interface class 64 (version 1; brief §8).

Attributes: 1 logical_name (0-0:43.0.e.255), 2 security_policy (enum; version 1 bit flags:
2 authenticated request, 3 encrypted request, 4 digitally signed request, 5 authenticated
response, 6 encrypted response, 7 digitally signed response), 3 security_suite (enum 0..2), 4
client_system_title and 5 server_system_title (octet-string(8)), 6 certificates (array of
certificate_info; may be empty). Methods: 1 security_activate (enum security_policy), 2
key_transfer (``array of structure {key_id enum, key_wrapped octet-string}``; key ids 0
global unicast encryption key, 1 global broadcast encryption key, 2 authentication key, 3
master key, the KEK; ``key_wrapped`` is RFC 3394 AES key wrap under the master key), 3
key_agreement .. 8 remove_certificate (listed, not implemented: ``object-unavailable``).

Theory of operation. The object holds the master key (``field``-style, never in a repr) so it
can unwrap; everything else about keys belongs to the owner (the software meter), which
receives the new keys through ``on_key_transfer`` and must store them and restart the
invocation counters of the changed keys at 0 (GB rule via DG, brief §8). key_transfer is all
or nothing: every wrapped key is unwrapped (under the master key in force when the request
arrived) before any is applied.

Decisions (copy to specs/): only version 1 is implemented; security_policy can only be
strengthened (the new flags must include the current ones, bits 0-1 zero), else
``other-reason``; security_policy changes only through security_activate; a wrapped key that
fails the RFC 3394 integrity check, has the wrong length for the suite (16 bytes for suites 0
and 1, 32 for suite 2), or arrives with no master key configured makes the whole call
``other-reason`` and changes nothing; an empty key list is ``other-reason``.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from cosemcast.apdu.common import ActionResult, DataAccessResult, SelectiveAccess
from cosemcast.association.backend import AccessContext
from cosemcast.association.settings import SecurityPolicy
from cosemcast.axdr.types import Array, Data, Enumerated, OctetString, Structure
from cosemcast.cosem.access import AccessRights
from cosemcast.cosem.base import LOGICAL_NAME, AttributeSpec, CosemObject, MethodSpec
from cosemcast.cosem.common import (
    ValueRejected,
    want_array,
    want_enum,
    want_octet_string,
    want_structure,
)
from cosemcast.errors import AuthenticationFailed, DecodeError
from cosemcast.obis import Obis
from cosemcast.security.keywrap import unwrap_key, wrap_key

__all__ = [
    "CertificateEntity",
    "CertificateInfo",
    "CertificateType",
    "KeyId",
    "SecuritySetup",
    "TransferredKey",
    "key_transfer_parameters",
]

_SECURITY_SETUP_OBIS = Obis(0, 0, 43, 0, 0, 255)
_NO_POLICY = SecurityPolicy(0)
_SYSTEM_TITLE_LENGTH = 8
_POLICY_MASK = 0xFC


class KeyId(enum.IntEnum):
    """key_id of key_transfer (brief §8)."""

    GLOBAL_UNICAST_ENCRYPTION_KEY = 0
    GLOBAL_BROADCAST_ENCRYPTION_KEY = 1
    AUTHENTICATION_KEY = 2
    MASTER_KEY = 3


class CertificateEntity(enum.IntEnum):
    SERVER = 0
    CLIENT = 1
    CERTIFICATION_AUTHORITY = 2
    OTHER = 3


class CertificateType(enum.IntEnum):
    DIGITAL_SIGNATURE = 0
    KEY_AGREEMENT = 1
    TLS = 2
    OTHER = 3


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """certificate_info (attribute 6 element, brief §8)."""

    certificate_entity: CertificateEntity
    certificate_type: CertificateType
    serial_number: bytes
    issuer: bytes
    subject: bytes
    subject_alt_name: bytes = b""

    def to_data(self) -> Structure:
        return Structure(
            (
                Enumerated(self.certificate_entity),
                Enumerated(self.certificate_type),
                OctetString(self.serial_number),
                OctetString(self.issuer),
                OctetString(self.subject),
                OctetString(self.subject_alt_name),
            )
        )


@dataclass(frozen=True, slots=True)
class TransferredKey:
    """A key received through key_transfer, already unwrapped."""

    key_id: KeyId
    key: bytes = field(repr=False)


def key_length_for_suite(security_suite: int) -> int:
    """16-byte keys for suites 0 and 1 (AES-128), 32 bytes for suite 2 (brief §5.5)."""
    return 32 if security_suite == 2 else 16


def key_transfer_parameters(master_key: bytes, keys: Mapping[KeyId, bytes]) -> Array:
    """The key_transfer parameter a client sends: every key wrapped under ``master_key``."""
    return Array(
        Structure((Enumerated(key_id), OctetString(wrap_key(master_key, key))))
        for key_id, key in keys.items()
    )


class SecuritySetup(CosemObject):
    """Security setup (class 64, version 1); see the module docstring."""

    CLASS_ID = 64
    VERSION = 1
    ATTRIBUTES = (
        LOGICAL_NAME,
        AttributeSpec(2, "security_policy", "enum"),
        AttributeSpec(3, "security_suite", "enum"),
        AttributeSpec(4, "client_system_title", "octet-string(8)", writable=True),
        AttributeSpec(5, "server_system_title", "octet-string(8)"),
        AttributeSpec(6, "certificates", "array of certificate_info"),
    )
    METHODS = (
        MethodSpec(1, "security_activate", "enum"),
        MethodSpec(2, "key_transfer", "array of key_data"),
        MethodSpec(3, "key_agreement", "array of key_agreement_data"),
        MethodSpec(4, "generate_key_pair", "enum"),
        MethodSpec(5, "generate_certificate_request", "enum"),
        MethodSpec(6, "import_certificate", "octet-string"),
        MethodSpec(7, "export_certificate", "structure"),
        MethodSpec(8, "remove_certificate", "structure"),
    )

    def __init__(
        self,
        logical_name: Obis | str = _SECURITY_SETUP_OBIS,
        *,
        server_system_title: bytes,
        client_system_title: bytes | None = None,
        security_policy: SecurityPolicy = _NO_POLICY,
        security_suite: int = 0,
        master_key: bytes | None = None,
        certificates: Sequence[CertificateInfo] = (),
        access: Mapping[int | None, AccessRights] | None = None,
    ) -> None:
        super().__init__(logical_name, access=access)
        if len(server_system_title) != _SYSTEM_TITLE_LENGTH:
            raise ValueError("a system title is 8 bytes")
        if security_suite not in (0, 1, 2):
            raise ValueError(f"security suite {security_suite} is not 0, 1 or 2")
        self.server_system_title = bytes(server_system_title)
        self.client_system_title = client_system_title
        self.security_policy = security_policy
        self.security_suite = security_suite
        self.master_key = master_key
        self.certificates = tuple(certificates)
        self.on_key_transfer: Callable[[SecuritySetup, tuple[TransferredKey, ...]], None] | None
        self.on_key_transfer = None

    # --- key transfer --------------------------------------------------------------------------

    def unwrap_transferred_keys(self, params: Data | None) -> tuple[TransferredKey, ...]:
        """Unwrap every key of a key_transfer parameter (nothing is applied here).

        Raises the internal TypeUnmatched for a malformed parameter and ValueRejected for a key
        that cannot be unwrapped.
        """
        items = want_array(params)
        if not items:
            raise ValueRejected("key_transfer carries no key")
        kek = self.master_key
        if kek is None:
            raise ValueRejected("no master key to unwrap with")
        length = key_length_for_suite(self.security_suite)
        keys = []
        for item in items:
            s = want_structure(item, 2)
            key_id = KeyId(want_enum(s[0], range(4)))
            wrapped = want_octet_string(s[1])
            try:
                keys.append(TransferredKey(key_id, unwrap_key(kek, wrapped, key_length=length)))
            except (DecodeError, AuthenticationFailed) as exc:
                raise ValueRejected(f"wrapped key {key_id.name} rejected: {exc}") from exc
        return tuple(keys)

    def key_transfer(self, params: Data | None) -> None:
        keys = self.unwrap_transferred_keys(params)
        for k in keys:
            if k.key_id == KeyId.MASTER_KEY:
                self.master_key = k.key
        if self.on_key_transfer is not None:
            self.on_key_transfer(self, keys)

    def security_activate(self, policy: int) -> None:
        if policy & ~_POLICY_MASK or policy & int(self.security_policy) != int(
            self.security_policy
        ):
            raise ValueRejected(
                f"security policy {policy:#04x} does not strengthen "
                f"{int(self.security_policy):#04x}"
            )
        self.security_policy = SecurityPolicy(policy)

    # --- attributes and methods ----------------------------------------------------------------

    def _read(
        self,
        attribute_id: int,
        selection: SelectiveAccess | None,
        ctx: AccessContext | None,
        now: dt.datetime | None,
    ) -> Data | DataAccessResult:
        match attribute_id:
            case 2:
                return Enumerated(int(self.security_policy))
            case 3:
                return Enumerated(self.security_suite)
            case 4:
                title = self.client_system_title
                if title is None and ctx is not None:
                    title = ctx.client_system_title
                return OctetString(title or b"")
            case 5:
                return OctetString(self.server_system_title)
            case _:
                return Array(c.to_data() for c in self.certificates)

    def _write(self, attribute_id: int, value: Data, ctx: AccessContext | None) -> DataAccessResult:
        self.client_system_title = want_octet_string(value, _SYSTEM_TITLE_LENGTH)
        return DataAccessResult.SUCCESS

    def _invoke(
        self, method_id: int, params: Data | None, ctx: AccessContext | None
    ) -> tuple[ActionResult, Data | None]:
        if method_id == 1:
            self.security_activate(want_enum(params))
        elif method_id == 2:
            self.key_transfer(params)
        else:
            return ActionResult.OBJECT_UNAVAILABLE, None
        return ActionResult.SUCCESS, None
