"""The events of the association state machines (h11 style).

Theory of operation. A client application hands *requests* to
:meth:`ClientConnection.send` (:class:`Associate`, :class:`Get`, :class:`Set`,
:class:`Action`, their ``...List`` forms, :class:`Release`) and reads *results* from
:meth:`ClientConnection.next_event` (:class:`AssociationEstablished`, :class:`GetResult`,
..., :class:`ServiceException`, :class:`ServiceError`), one result per request; block
transfer and the HLS pass are handled inside. A server application only reads
informational events from :meth:`ServerConnection.next_event` (:class:`ClientAssociated`,
:class:`AssociationRefused`, :class:`ClientReleased`, :class:`RequestRejected`); the
requests themselves go to the :class:`~cosemcast.association.backend.ServerBackend`. A
notification the server pushes within the association reaches the client application as
:class:`Notification`.
:data:`NEED_DATA` says that no event can be produced before another APDU arrives.

All events are frozen, slotted dataclasses; none carries key material.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, TypeAlias

from cosemcast.apdu.acse import (
    AcseServiceProvider,
    AcseServiceUser,
    MechanismName,
    ReleaseRequestReason,
    ReleaseResponseReason,
)
from cosemcast.apdu.action import ActionResponseWithOptionalData
from cosemcast.apdu.common import (
    ABSENT,
    Absent,
    ActionResult,
    CosemAttributeDescriptor,
    CosemAttributeDescriptorWithSelection,
    CosemMethodDescriptor,
    DataAccessResult,
    GetDataResult,
    SelectiveAccess,
)
from cosemcast.apdu.initiate import Conformance
from cosemcast.apdu.notifications import (
    ConfirmedServiceError,
    DataNotification,
    EventNotificationRequest,
    ExceptionResponse,
)
from cosemcast.axdr.types import Data
from cosemcast.errors import DlmsError

__all__ = [
    "NEED_DATA",
    "Action",
    "ActionList",
    "Associate",
    "AssociationEstablished",
    "AssociationRefused",
    "AssociationReleased",
    "ClientAssociated",
    "ClientEvent",
    "ClientReleased",
    "ClientRequest",
    "Get",
    "GetList",
    "GetListResult",
    "GetResult",
    "MethodListResult",
    "MethodResult",
    "NeedData",
    "Notification",
    "Release",
    "RequestRejected",
    "ServerEvent",
    "ServiceError",
    "ServiceException",
    "Set",
    "SetList",
    "SetListResult",
    "SetResult",
]


class NeedData(enum.Enum):
    """Type of :data:`NEED_DATA`."""

    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData.NEED_DATA


# --- client requests ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Associate:
    """Open the association described by the client's settings (AARQ, brief §4.2)."""


@dataclass(frozen=True, slots=True)
class Release:
    """Release the association (RLRQ, brief §4.2)."""

    reason: ReleaseRequestReason = ReleaseRequestReason.NORMAL


@dataclass(frozen=True, slots=True)
class Get:
    """Read one attribute (GET-Request-Normal)."""

    descriptor: CosemAttributeDescriptor
    selection: SelectiveAccess | None = None


@dataclass(frozen=True, slots=True)
class GetList:
    """Read several attributes in one request (GET-Request-With-List)."""

    items: tuple[CosemAttributeDescriptorWithSelection, ...]


@dataclass(frozen=True, slots=True)
class Set:
    """Write one attribute (SET-Request-Normal, or with datablocks when too large)."""

    descriptor: CosemAttributeDescriptor
    value: Data
    selection: SelectiveAccess | None = None


@dataclass(frozen=True, slots=True)
class SetList:
    """Write several attributes (SET-Request-With-List); one value per item."""

    items: tuple[CosemAttributeDescriptorWithSelection, ...]
    values: tuple[Data, ...]


@dataclass(frozen=True, slots=True)
class Action:
    """Invoke one method (ACTION-Request-Normal, or with pblocks when too large)."""

    descriptor: CosemMethodDescriptor
    parameters: Data | Absent = ABSENT


@dataclass(frozen=True, slots=True)
class ActionList:
    """Invoke several methods (ACTION-Request-With-List); one parameter per method."""

    descriptors: tuple[CosemMethodDescriptor, ...]
    parameters: tuple[Data, ...]


ClientRequest: TypeAlias = Associate | Release | Get | GetList | Set | SetList | Action | ActionList


# --- client results ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AssociationEstablished:
    """The association is open (after the HLS pass, for HLS mechanisms)."""

    conformance: Conformance
    server_max_receive_pdu_size: int
    server_system_title: bytes | None
    mechanism: MechanismName


@dataclass(frozen=True, slots=True)
class AssociationReleased:
    reason: ReleaseResponseReason | None


@dataclass(frozen=True, slots=True)
class GetResult:
    """The value (:class:`~cosemcast.apdu.common.GetDataValue`) or the error
    (:class:`~cosemcast.apdu.common.GetDataError`) of one GET."""

    result: GetDataResult


@dataclass(frozen=True, slots=True)
class GetListResult:
    results: tuple[GetDataResult, ...]


@dataclass(frozen=True, slots=True)
class SetResult:
    result: DataAccessResult


@dataclass(frozen=True, slots=True)
class SetListResult:
    results: tuple[DataAccessResult, ...]


@dataclass(frozen=True, slots=True)
class MethodResult:
    result: ActionResult
    return_parameters: GetDataResult | None = None


@dataclass(frozen=True, slots=True)
class MethodListResult:
    results: tuple[ActionResponseWithOptionalData, ...]


@dataclass(frozen=True, slots=True)
class ServiceException:
    """The server answered with EXCEPTION-Response (brief §4.6). ``protected`` is False
    when it arrived in clear in a ciphered association (a common meter quirk)."""

    response: ExceptionResponse
    protected: bool


@dataclass(frozen=True, slots=True)
class ServiceError:
    """The server answered with confirmedServiceError (brief §4.6)."""

    error: ConfirmedServiceError
    protected: bool


@dataclass(frozen=True, slots=True)
class Notification:
    """An unsolicited EVENT-NOTIFICATION or DATA-NOTIFICATION within the association."""

    apdu: EventNotificationRequest | DataNotification
    protected: bool


ClientEvent: TypeAlias = (
    AssociationEstablished
    | AssociationReleased
    | GetResult
    | GetListResult
    | SetResult
    | SetListResult
    | MethodResult
    | MethodListResult
    | ServiceException
    | ServiceError
    | Notification
)


# --- server events -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientAssociated:
    """A client completed the association (and the HLS pass, if any)."""

    client_sap: int
    mechanism: MechanismName
    client_system_title: bytes | None
    conformance: Conformance
    client_max_receive_pdu_size: int
    ciphered: bool


@dataclass(frozen=True, slots=True)
class AssociationRefused:
    """An AARQ or an HLS reply was refused; ``reason`` never contains secrets."""

    diagnostic: AcseServiceUser | AcseServiceProvider
    reason: str


@dataclass(frozen=True, slots=True)
class ClientReleased:
    reason: ReleaseRequestReason | None


@dataclass(frozen=True, slots=True)
class RequestRejected:
    """A request was answered with an error because it broke a rule (replay, tag, policy,
    state, garbage); ``error`` says which."""

    error: DlmsError


ServerEvent: TypeAlias = ClientAssociated | AssociationRefused | ClientReleased | RequestRejected
