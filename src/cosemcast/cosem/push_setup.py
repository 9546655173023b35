"""Push setup, interface class 40 (version 0).

Attributes: 1 logical_name (0-x:25.9.0.255), 2 push_object_list (array of
capture_object_definition: the attributes whose values are pushed), 3
send_destination_and_method ``structure {transport_service enum, destination octet-string,
message enum}``, 4 communication_window ``array of structure {start octet-string(12), end
octet-string(12)}`` (empty: always), 5 randomisation_start_interval (long-unsigned seconds), 6
number_of_retries (unsigned), 7 repetition_delay (long-unsigned seconds). Method 1 push
(integer(0)).

Theory of operation. A push reads every entry of push_object_list from the object model (as
Profile generic capture does) and builds the DATA-NOTIFICATION body, a structure with one
element per entry (:meth:`PushSetup.notification_body`). Sending is the meter's job: the
``on_push`` callback receives the object and the body, and uses send_destination_and_method,
the window, the randomisation and the retries as it sees fit. :meth:`PushSetup.notification`
wraps a body in a :class:`~cosemcast.apdu.notifications.DataNotification`.

Decisions (copy to specs/): an entry that is missing or unreadable is pushed as null-data;
push invoked with no ``on_push`` wired is ``temporary-failure`` (nothing could be sent);
transport_service and message accept any enum value (200..255 and 128..255 are
manufacturer-specific). In a communication window, unspecified date fields match any date
and the comparison is on local time; a window whose start is after its end wraps midnight.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from cosemcast.apdu.common import (
    ActionResult,
    DataAccessResult,
    LongInvokeIdAndPriority,
    SelectiveAccess,
)
from cosemcast.apdu.notifications import DataNotification
from cosemcast.association.backend import AccessContext
from cosemcast.axdr.types import (
    Array,
    CosemDateTime,
    Data,
    Enumerated,
    LongUnsigned,
    OctetString,
    Structure,
    Unsigned,
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
    CaptureObjectDefinition,
    datetime_octets,
    want_array,
    want_datetime,
    want_enum,
    want_int,
    want_octet_string,
    want_structure,
)
from cosemcast.obis import Obis

__all__ = [
    "CommunicationWindow",
    "MessageType",
    "PushSetup",
    "SendDestinationAndMethod",
    "TransportService",
]


_PUSH_OBIS = Obis(0, 0, 25, 9, 0, 255)


class TransportService(enum.IntEnum):
    TCP = 0
    UDP = 1
    FTP = 2
    SMTP = 3
    SMS = 4
    HDLC = 5
    M_BUS = 6
    ZIGBEE = 7


class MessageType(enum.IntEnum):
    A_XDR_ENCODED_XDLMS_APDU = 0
    XML_ENCODED_XDLMS_APDU = 1


@dataclass(frozen=True, slots=True)
class SendDestinationAndMethod:
    """send_destination_and_method (attribute 3)."""

    transport_service: TransportService | int = TransportService.TCP
    destination: bytes = b""
    message: MessageType | int = MessageType.A_XDR_ENCODED_XDLMS_APDU

    def to_data(self) -> Structure:
        return Structure(
            (
                Enumerated(self.transport_service),
                OctetString(self.destination),
                Enumerated(self.message),
            )
        )

    @classmethod
    def from_data(cls, value: Data) -> SendDestinationAndMethod:
        s = want_structure(value, 3)
        service = want_enum(s[0])
        message = want_enum(s[2])
        return cls(
            _enum_or_int(TransportService, service),
            want_octet_string(s[1]),
            _enum_or_int(MessageType, message),
        )


_E = type[TransportService] | type[MessageType]


def _enum_or_int(cls: _E, value: int) -> TransportService | MessageType | int:
    try:
        return cls(value)
    except ValueError:
        return value


@dataclass(frozen=True, slots=True)
class CommunicationWindow:
    start: CosemDateTime
    end: CosemDateTime

    def to_data(self) -> Structure:
        return Structure((datetime_octets(self.start), datetime_octets(self.end)))


def _fill(spec: CosemDateTime, now: dt.datetime) -> dt.datetime | None:
    try:
        return dt.datetime(
            spec.year if spec.year is not None else now.year,
            spec.month if spec.month is not None else now.month,
            spec.day if spec.day is not None else now.day,
            spec.hour if spec.hour is not None else 0,
            spec.minute if spec.minute is not None else 0,
            spec.second if spec.second is not None else 0,
        )
    except ValueError:
        return None


class PushSetup(CosemObject):
    """Push setup (class 40); see the module docstring."""

    CLASS_ID = 40
    VERSION = 0
    ATTRIBUTES = (
        LOGICAL_NAME,
        AttributeSpec(2, "push_object_list", "array", writable=True),
        AttributeSpec(3, "send_destination_and_method", "structure", writable=True),
        AttributeSpec(4, "communication_window", "array", writable=True),
        AttributeSpec(5, "randomisation_start_interval", "long-unsigned", writable=True),
        AttributeSpec(6, "number_of_retries", "unsigned", writable=True),
        AttributeSpec(7, "repetition_delay", "long-unsigned", writable=True),
    )
    METHODS = (MethodSpec(1, "push"),)

    def __init__(
        self,
        logical_name: Obis | str = _PUSH_OBIS,
        push_object_list: Sequence[CaptureObjectDefinition] = (),
        *,
        send_destination_and_method: SendDestinationAndMethod | None = None,
        communication_window: Sequence[CommunicationWindow] = (),
        randomisation_start_interval: int = 0,
        number_of_retries: int = 0,
        repetition_delay: int = 0,
        access: Mapping[int | None, AccessRights] | None = None,
    ) -> None:
        super().__init__(logical_name, access=access)
        self.push_object_list = tuple(push_object_list)
        self.send_destination_and_method = send_destination_and_method or SendDestinationAndMethod()
        self.communication_window = tuple(communication_window)
        self.randomisation_start_interval = randomisation_start_interval
        self.number_of_retries = number_of_retries
        self.repetition_delay = repetition_delay
        self.on_push: Callable[[PushSetup, Structure], None] | None = None

    # --- pushing -------------------------------------------------------------------------------

    def notification_body(self, now: dt.datetime | None = None) -> Structure:
        """The DATA-NOTIFICATION body: the value of every push object, in order."""
        return Structure(self.captured_value(item, now) for item in self.push_object_list)

    def push(self, now: dt.datetime | None = None) -> Structure:
        """Build the body and hand it to ``on_push``."""
        body = self.notification_body(now)
        if self.on_push is not None:
            self.on_push(self, body)
        return body

    def notification(
        self,
        body: Data,
        *,
        invoke_id: int = 0,
        date_time: CosemDateTime | None = None,
    ) -> DataNotification:
        return DataNotification(LongInvokeIdAndPriority(invoke_id), date_time, body)

    def in_window(self, now: dt.datetime) -> bool:
        """Whether ``now`` (meter local time) falls in a communication window."""
        if not self.communication_window:
            return True
        local = now.replace(tzinfo=None)
        for window in self.communication_window:
            start, end = _fill(window.start, local), _fill(window.end, local)
            if start is None or end is None:
                continue
            if start <= end and start <= local <= end:
                return True
            if start > end and (local >= start or local <= end):
                return True
        return False

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
                return Array(c.to_data() for c in self.push_object_list)
            case 3:
                return self.send_destination_and_method.to_data()
            case 4:
                return Array(w.to_data() for w in self.communication_window)
            case 5:
                return LongUnsigned(self.randomisation_start_interval)
            case 6:
                return Unsigned(self.number_of_retries)
            case _:
                return LongUnsigned(self.repetition_delay)

    def _write(self, attribute_id: int, value: Data, ctx: AccessContext | None) -> DataAccessResult:
        match attribute_id:
            case 2:
                self.push_object_list = tuple(
                    CaptureObjectDefinition.from_data(v) for v in want_array(value)
                )
            case 3:
                self.send_destination_and_method = SendDestinationAndMethod.from_data(value)
            case 4:
                windows = []
                for item in want_array(value):
                    s = want_structure(item, 2)
                    windows.append(CommunicationWindow(want_datetime(s[0]), want_datetime(s[1])))
                self.communication_window = tuple(windows)
            case 5:
                self.randomisation_start_interval = want_int(value, LongUnsigned)
            case 6:
                self.number_of_retries = want_int(value, Unsigned)
            case _:
                self.repetition_delay = want_int(value, LongUnsigned)
        return DataAccessResult.SUCCESS

    def _invoke(
        self, method_id: int, params: Data | None, ctx: AccessContext | None
    ) -> tuple[ActionResult, Data | None]:
        want_no_parameter(params)
        if self.on_push is None:
            return ActionResult.TEMPORARY_FAILURE, None
        self.push()
        return ActionResult.SUCCESS, None
