"""The supervision service object on the wire (specs/supervision.md §8.1.3): sans-IO codec.

Theory of operation. The centre is a DLMS server with one manufacturer-specific object,
*supervision service* (class_id 8963, version 0, ``0-0:128.4.0.255``). A head-end calls its
methods over an HLS-GMAC association whose APDUs are all glo-ciphered (authenticated and
encrypted), so ``Ks`` in an answer is never in clear on the wire:

* method 1 ``assign`` (octet-string: the meter's enrollment request as the head-end got it);
* method 2 ``reissue`` (octet-string(8): a meter ID the caller is assigned to).

Both answer ``success`` with one structure: the decision. Accepted, a structure of 8 elements
(status 0, meter ID, action, sequence, not-before, not-after, Ks, the sealed initialization
message); refused by the registry, a structure of 2 (status, reason as utf8-string). A
registry refusal is an answer, not a DLMS error, so that the head-end learns why; only an
authenticated head-end ever sees it. :func:`decode_service_result` is strict and raises only
:class:`~cosemcast.errors.DecodeError`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from cosemcast.axdr import (
    Data,
    DoubleLongUnsigned,
    Enumerated,
    Long64Unsigned,
    OctetString,
    Structure,
    Utf8String,
)
from cosemcast.errors import DecodeError
from cosemcast.obis import Obis
from cosemcast.supervision.errors import (
    ConsentError,
    NotAuthorizedError,
    RegistryError,
    UnknownPartyError,
)
from cosemcast.supervision.initmsg import InitAction
from cosemcast.supervision.records import Issued

__all__ = [
    "ASSIGNMENT_CLASS_ID",
    "ASSIGNMENT_OBIS",
    "LOAD_INIT_MESSAGE",
    "SERVICE_CLASS_ID",
    "SERVICE_OBIS",
    "Assignment",
    "ServiceMethod",
    "ServiceRefusal",
    "ServiceStatus",
    "decode_service_result",
    "encode_assignment",
    "encode_refusal",
    "refusal_for",
]

SERVICE_CLASS_ID = 8963
SERVICE_OBIS = Obis(0, 0, 128, 4, 0, 255)
ASSIGNMENT_CLASS_ID = 8962  # specs/shared-payload.md §8.3, the meter's assignment object
ASSIGNMENT_OBIS = Obis(0, 0, 128, 3, 0, 255)
LOAD_INIT_MESSAGE = 1
_KS_LENGTHS = (16, 32)
_TITLE = 8
_U32_MAX = 0xFFFFFFFF


class ServiceMethod(enum.IntEnum):
    """Methods of the supervision service object."""

    ASSIGN = 1
    REISSUE = 2


class ServiceStatus(enum.IntEnum):
    """First element of every answer: the decision, or why the registry refused."""

    ASSIGNED = 0
    NO_CONSENT = 1
    UNKNOWN_PARTY = 2
    NOT_AUTHORIZED = 3
    REFUSED = 4


@dataclass(frozen=True, slots=True)
class Assignment:
    """What a head-end receives for an accepted assignment; ``ks`` never shows in a repr."""

    meter_id: bytes
    action: InitAction
    sequence: int
    not_before: int
    not_after: int
    init_message: bytes
    ks: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class ServiceRefusal:
    """The registry refused: ``status`` says which way, ``reason`` is its message."""

    status: ServiceStatus
    reason: str

    def error(self) -> RegistryError:
        """The exception of :mod:`cosemcast.supervision.errors` that this refusal stands for."""
        kind = _ERRORS.get(self.status, RegistryError)
        return kind(f"the supervision centre refused: {self.reason}")


_ERRORS: dict[ServiceStatus, type[RegistryError]] = {
    ServiceStatus.NO_CONSENT: ConsentError,
    ServiceStatus.UNKNOWN_PARTY: UnknownPartyError,
    ServiceStatus.NOT_AUTHORIZED: NotAuthorizedError,
    ServiceStatus.REFUSED: RegistryError,
}


def refusal_for(error: RegistryError) -> ServiceRefusal:
    """The status of a registry error (its most specific class)."""
    for status, kind in _ERRORS.items():
        if type(error) is kind:
            return ServiceRefusal(status, str(error))
    for status, kind in _ERRORS.items():
        if isinstance(error, kind) and kind is not RegistryError:
            return ServiceRefusal(status, str(error))
    return ServiceRefusal(ServiceStatus.REFUSED, str(error))


def encode_assignment(issued: Issued) -> Structure:
    """The answer to an accepted assign/reissue."""
    if issued.ks is None:
        raise ValueError("an assignment answer needs Ks (a revocation has none)")
    return Structure(
        (
            Enumerated(ServiceStatus.ASSIGNED),
            OctetString(issued.meter_id),
            Enumerated(issued.action),
            DoubleLongUnsigned(issued.sequence),
            Long64Unsigned(issued.not_before),
            Long64Unsigned(issued.not_after),
            OctetString(issued.ks),
            OctetString(issued.init_message),
        )
    )


def encode_refusal(refusal: ServiceRefusal) -> Structure:
    """The answer to a refused assign/reissue."""
    return Structure((Enumerated(refusal.status), Utf8String(refusal.reason)))


def _int(value: Data, kind: type[int], what: str) -> int:
    if type(value) is not kind:
        raise DecodeError(f"{what} is a {type(value).__name__}", expected=kind.__name__)
    return int(value)


def _bytes(value: Data, what: str) -> bytes:
    if type(value) is not OctetString:
        raise DecodeError(f"{what} is a {type(value).__name__}", expected="octet-string")
    return bytes(value)


def _status(value: Data) -> ServiceStatus:
    code = _int(value, Enumerated, "status")
    try:
        return ServiceStatus(code)
    except ValueError as exc:
        raise DecodeError(f"unknown status {code}", expected="0..4") from exc


def decode_service_result(value: Data | None) -> Assignment | ServiceRefusal:
    """The answer of method 1 or 2, strictly checked; :class:`DecodeError` otherwise."""
    if type(value) is not Structure or not value:
        raise DecodeError("the answer is not a structure", expected="structure")
    status = _status(value[0])
    if status is not ServiceStatus.ASSIGNED:
        if len(value) != 2:
            raise DecodeError("a refusal is a structure of 2", expected="02 02")
        reason = value[1]
        if type(reason) is not Utf8String:
            raise DecodeError("the reason is not a utf8-string", expected="utf8-string")
        return ServiceRefusal(status, str(reason))
    if len(value) != 8:
        raise DecodeError("an assignment is a structure of 8", expected="02 08")
    meter_id = _bytes(value[1], "the meter ID")
    action_code = _int(value[2], Enumerated, "the action")
    sequence = _int(value[3], DoubleLongUnsigned, "the sequence")
    not_before = _int(value[4], Long64Unsigned, "not-before")
    not_after = _int(value[5], Long64Unsigned, "not-after")
    ks = _bytes(value[6], "Ks")
    message = _bytes(value[7], "the init message")
    if len(meter_id) != _TITLE:
        raise DecodeError("the meter ID is not 8 bytes", expected="09 08")
    if action_code not in (InitAction.ASSIGN, InitAction.ASSIGN_EXCLUSIVE):
        raise DecodeError(f"action {action_code} is not assign (1) or assign-exclusive (2)")
    if not 1 <= sequence <= _U32_MAX or not_after < not_before:
        raise DecodeError("sequence 0 or a window that ends before it starts")
    if len(ks) not in _KS_LENGTHS or not message:
        raise DecodeError("Ks is not 16 or 32 bytes, or the message is empty")
    return Assignment(
        meter_id, InitAction(action_code), sequence, not_before, not_after, message, ks
    )
