"""Unsolicited and error APDUs: DATA-NOTIFICATION (0F), EVENT-NOTIFICATION-Request (C2),
EXCEPTION-Response (D8) and confirmedServiceError (0E) (brief §4.6).

Theory of operation. All four are A-XDR SEQUENCEs read straight off the buffer by a
:class:`~cosemcast.apdu.base.Reader`. DATA-NOTIFICATION is on the benchmarked push path: its
decoder is three reads and one call into the hand-written Data decoder, nothing more.

Decisions (copy to specs/):

* DATA-NOTIFICATION date-time is an OCTET STRING: length 0 means absent (``None``), length 12
  is a COSEM date-time; any other length is a DecodeError.
* EVENT-NOTIFICATION-Request time: GXN writes the presence flag as ``09`` where A-XDR says
  ``01`` (brief §4.6). We accept any non-zero flag and always write ``01``. The flag is
  followed by an OCTET STRING that must hold 12 bytes.
* EXCEPTION-Response: state-error and service-error values outside the named ones are a
  DecodeError; for invocation-counter-error (6) the expected invocation counter follows as a
  u32 and is carried in ``invocation_counter_error``.
* confirmedServiceError: an unknown service or ServiceError alternative is a DecodeError; an
  unknown value inside a known alternative is kept as a plain ``int`` (the named values are
  returned as the alternative's IntEnum member).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import ClassVar

from cosemcast.apdu.base import Reader, register
from cosemcast.apdu.common import (
    CosemAttributeDescriptor,
    LongInvokeIdAndPriority,
    read_attribute_descriptor,
)
from cosemcast.axdr.codec import decode_datetime_bytes, encode_data, encode_datetime_bytes
from cosemcast.axdr.types import CosemDateTime, Data
from cosemcast.errors import EncodeError

__all__ = [
    "AccessError",
    "ApplicationReferenceError",
    "ConfirmedService",
    "ConfirmedServiceError",
    "DataNotification",
    "DefinitionError",
    "EventNotificationRequest",
    "ExceptionResponse",
    "ExceptionServiceError",
    "ExceptionStateError",
    "HardwareResourceError",
    "InitiateError",
    "LoadDataSetError",
    "ServiceErrorKind",
    "ServiceHandlingError",
    "TaskError",
    "VdeStateError",
]

_U32 = struct.Struct(">I")
_NO_DATE_TIME = b"\x00"
_DATE_TIME_LEN = b"\x0c"


def _date_time_octets(value: CosemDateTime | None) -> bytes:
    if value is None:
        return _NO_DATE_TIME
    return _DATE_TIME_LEN + encode_datetime_bytes(value)


def _read_date_time(reader: Reader, what: str) -> CosemDateTime:
    pos = reader.pos
    n = reader.length()
    if n != 12:
        raise reader.fail(f"{what} holds {n} bytes, a date-time is 12", expected="12", offset=pos)
    return decode_datetime_bytes(reader.raw(12, f"bytes of {what}"))


# --- DATA-NOTIFICATION -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataNotification:
    """DATA-NOTIFICATION (tag 0F): long-invoke-id ‖ date-time OCTET STRING ‖ Data."""

    TAG: ClassVar[int] = 0x0F
    long_invoke_id_and_priority: LongInvokeIdAndPriority
    date_time: CosemDateTime | None
    notification_body: Data

    def encode(self) -> bytes:
        return (
            b"\x0f"
            + _U32.pack(self.long_invoke_id_and_priority.to_int())
            + _date_time_octets(self.date_time)
            + encode_data(self.notification_body)
        )


@register(DataNotification.TAG)
def decode_data_notification(reader: Reader) -> DataNotification:
    buf, pos = reader.buf, reader.pos
    if pos + 5 <= reader.end and buf[pos + 4] == 0:
        # Hot path (no date-time): the same reads without the Reader's per-call overhead.
        liip = _new_liip(LongInvokeIdAndPriority, _unpack_u32(buf, pos)[0] & 0xF0FFFFFF)
        reader.pos = pos + 5
        return DataNotification(liip, None, reader.data())
    liip = LongInvokeIdAndPriority.from_int(reader.u32("the long-invoke-id-and-priority"))
    date_time = None
    if reader.peek("the date-time length") == 0:
        reader.pos += 1
    else:
        date_time = _read_date_time(reader, "the date-time")
    return DataNotification(liip, date_time, reader.data())


_unpack_u32 = _U32.unpack_from
_new_liip = int.__new__


# --- EVENT-NOTIFICATION-Request --------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class EventNotificationRequest:
    """EVENT-NOTIFICATION-Request (tag C2): time OPTIONAL ‖ attribute descriptor ‖ Data."""

    TAG: ClassVar[int] = 0xC2
    time: CosemDateTime | None = None
    cosem_attribute_descriptor: CosemAttributeDescriptor
    attribute_value: Data

    def encode(self) -> bytes:
        head = b"\xc2\x00" if self.time is None else b"\xc2\x01" + _date_time_octets(self.time)
        return head + self.cosem_attribute_descriptor.encode() + encode_data(self.attribute_value)


@register(EventNotificationRequest.TAG)
def decode_event_notification_request(reader: Reader) -> EventNotificationRequest:
    time = None
    if reader.u8("the time presence flag"):  # any non-zero flag: GXN sends 09 (brief §4.6)
        time = _read_date_time(reader, "the time")
    descriptor = read_attribute_descriptor(reader)
    return EventNotificationRequest(
        time=time, cosem_attribute_descriptor=descriptor, attribute_value=reader.data()
    )


# --- EXCEPTION-Response ----------------------------------------------------------------------


class ExceptionStateError(enum.IntEnum):
    SERVICE_NOT_ALLOWED = 1
    SERVICE_UNKNOWN = 2


class ExceptionServiceError(enum.IntEnum):
    OPERATION_NOT_POSSIBLE = 1
    SERVICE_NOT_SUPPORTED = 2
    OTHER_REASON = 3
    PDU_TOO_LONG = 4
    DECIPHERING_ERROR = 5
    INVOCATION_COUNTER_ERROR = 6


@dataclass(frozen=True, slots=True)
class ExceptionResponse:
    """EXCEPTION-Response (tag D8).

    ``invocation_counter_error`` is the invocation counter the server expects; it is present
    exactly when ``service_error`` is ``INVOCATION_COUNTER_ERROR``.
    """

    TAG: ClassVar[int] = 0xD8
    state_error: ExceptionStateError
    service_error: ExceptionServiceError
    invocation_counter_error: int | None = None

    def encode(self) -> bytes:
        head = bytes((0xD8, int(self.state_error), int(self.service_error)))
        ic = self.invocation_counter_error
        if self.service_error == ExceptionServiceError.INVOCATION_COUNTER_ERROR:
            if ic is None or not 0 <= ic <= 0xFFFFFFFF:
                raise EncodeError("invocation-counter-error needs the expected IC as a u32")
            return head + _U32.pack(ic)
        if ic is not None:
            raise EncodeError(f"service-error {self.service_error.name} carries no counter")
        return head


@register(ExceptionResponse.TAG)
def decode_exception_response(reader: Reader) -> ExceptionResponse:
    pos = reader.pos
    state = reader.u8("the state-error")
    if state not in _STATE_ERRORS:
        raise reader.fail(f"unknown state-error {state}", expected="1 or 2", offset=pos)
    pos = reader.pos
    service = reader.u8("the service-error")
    if service not in _SERVICE_ERRORS:
        raise reader.fail(f"unknown service-error {service}", expected="1..6", offset=pos)
    ic = None
    if service == ExceptionServiceError.INVOCATION_COUNTER_ERROR:
        ic = reader.u32("the expected invocation counter")
    return ExceptionResponse(_STATE_ERRORS[state], _SERVICE_ERRORS[service], ic)


_STATE_ERRORS = {int(m): m for m in ExceptionStateError}
_SERVICE_ERRORS = {int(m): m for m in ExceptionServiceError}


# --- confirmedServiceError -------------------------------------------------------------------


class ConfirmedService(enum.IntEnum):
    """The ConfirmedServiceError CHOICE: which service failed (JD cosem.asn)."""

    INITIATE_ERROR = 1
    GET_STATUS = 2
    GET_NAME_LIST = 3
    GET_VARIABLE_ATTRIBUTE = 4
    READ = 5
    WRITE = 6
    GET_DATA_SET_ATTRIBUTE = 7
    GET_TI_ATTRIBUTE = 8
    CHANGE_SCOPE = 9
    START = 10
    STOP = 11
    RESUME = 12
    MAKE_USABLE = 13
    INITIATE_LOAD = 14
    LOAD_SEGMENT = 15
    TERMINATE_LOAD = 16
    INITIATE_UP_LOAD = 17
    UP_LOAD_SEGMENT = 18
    TERMINATE_UP_LOAD = 19


class ServiceErrorKind(enum.IntEnum):
    """The ServiceError CHOICE alternative (8 change-scope is reserved)."""

    APPLICATION_REFERENCE = 0
    HARDWARE_RESOURCE = 1
    VDE_STATE_ERROR = 2
    SERVICE = 3
    DEFINITION = 4
    ACCESS = 5
    INITIATE = 6
    LOAD_DATA_SET = 7
    TASK = 9


class ApplicationReferenceError(enum.IntEnum):
    OTHER = 0
    TIME_ELAPSED = 1
    APPLICATION_UNREACHABLE = 2
    APPLICATION_REFERENCE_INVALID = 3
    APPLICATION_CONTEXT_UNSUPPORTED = 4
    PROVIDER_COMMUNICATION_ERROR = 5
    DECIPHERING_ERROR = 6


class HardwareResourceError(enum.IntEnum):
    OTHER = 0
    MEMORY_UNAVAILABLE = 1
    PROCESSOR_RESOURCE_UNAVAILABLE = 2
    MASS_STORAGE_UNAVAILABLE = 3
    OTHER_RESOURCE_UNAVAILABLE = 4


class VdeStateError(enum.IntEnum):
    OTHER = 0
    NO_DLMS_CONTEXT = 1
    LOADING_DATA_SET = 2
    STATUS_NOCHANGE = 3
    STATUS_INOPERABLE = 4


class ServiceHandlingError(enum.IntEnum):
    """The ``service [3]`` alternative."""

    OTHER = 0
    PDU_SIZE = 1
    SERVICE_UNSUPPORTED = 2


class DefinitionError(enum.IntEnum):
    OTHER = 0
    OBJECT_UNDEFINED = 1
    OBJECT_CLASS_INCONSISTENT = 2
    OBJECT_ATTRIBUTE_INCONSISTENT = 3


class AccessError(enum.IntEnum):
    OTHER = 0
    SCOPE_OF_ACCESS_VIOLATED = 1
    OBJECT_ACCESS_INVALID = 2
    HARDWARE_FAULT = 3
    OBJECT_UNAVAILABLE = 4


class InitiateError(enum.IntEnum):
    OTHER = 0
    DLMS_VERSION_TOO_LOW = 1
    INCOMPATIBLE_CONFORMANCE = 2
    PDU_SIZE_TOO_SHORT = 3
    REFUSED_BY_THE_VDE_HANDLER = 4


class LoadDataSetError(enum.IntEnum):
    OTHER = 0
    PRIMITIVE_OUT_OF_SEQUENCE = 1
    NOT_LOADABLE = 2
    DATASET_SIZE_TOO_LARGE = 3
    NOT_AWAITED_SEGMENT = 4
    INTERPRETATION_FAILURE = 5
    STORAGE_FAILURE = 6
    DATA_SET_NOT_READY = 7


class TaskError(enum.IntEnum):
    OTHER = 0
    NO_REMOTE_CONTROL = 1
    TI_STOPPED = 2
    TI_RUNNING = 3
    TI_UNUSABLE = 4


_ERROR_ENUMS: dict[ServiceErrorKind, type[enum.IntEnum]] = {
    ServiceErrorKind.APPLICATION_REFERENCE: ApplicationReferenceError,
    ServiceErrorKind.HARDWARE_RESOURCE: HardwareResourceError,
    ServiceErrorKind.VDE_STATE_ERROR: VdeStateError,
    ServiceErrorKind.SERVICE: ServiceHandlingError,
    ServiceErrorKind.DEFINITION: DefinitionError,
    ServiceErrorKind.ACCESS: AccessError,
    ServiceErrorKind.INITIATE: InitiateError,
    ServiceErrorKind.LOAD_DATA_SET: LoadDataSetError,
    ServiceErrorKind.TASK: TaskError,
}
_ERROR_VALUES: dict[ServiceErrorKind, dict[int, int]] = {
    kind: {int(m): m for m in cls} for kind, cls in _ERROR_ENUMS.items()
}
_SERVICES = {int(m): m for m in ConfirmedService}
_KINDS = {int(m): m for m in ServiceErrorKind}


@dataclass(frozen=True, slots=True)
class ConfirmedServiceError:
    """confirmedServiceError (tag 0E): service CHOICE ‖ ServiceError CHOICE ‖ ENUMERATED.

    ``0E 01 06 01`` is ``ConfirmedServiceError(ConfirmedService.INITIATE_ERROR,
    ServiceErrorKind.INITIATE, InitiateError.DLMS_VERSION_TOO_LOW)``. ``value`` is decoded as
    the member of the alternative's enum (``InitiateError``, ``AccessError``...) when it
    names one, else as a plain int.
    """

    TAG: ClassVar[int] = 0x0E
    service: ConfirmedService
    error: ServiceErrorKind
    value: int

    def encode(self) -> bytes:
        if not 0 <= self.value <= 0xFF:
            raise EncodeError(f"ServiceError value {self.value} is outside 0..255")
        return bytes((0x0E, int(self.service), int(self.error), int(self.value)))


@register(ConfirmedServiceError.TAG)
def decode_confirmed_service_error(reader: Reader) -> ConfirmedServiceError:
    pos = reader.pos
    service = _SERVICES.get(reader.u8("the confirmedServiceError choice"))
    if service is None:
        raise reader.fail("unknown confirmedServiceError choice", expected="1..19", offset=pos)
    pos = reader.pos
    kind = _KINDS.get(reader.u8("the ServiceError choice"))
    if kind is None:
        raise reader.fail("unknown ServiceError choice", expected="0..7 or 9", offset=pos)
    raw = reader.u8("the ServiceError value")
    return ConfirmedServiceError(service, kind, _ERROR_VALUES[kind].get(raw, raw))
