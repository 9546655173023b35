"""Service-specific ciphered APDUs: the glo- and ded- forms of each xDLMS APDU (brief §4.1, §5.4).

Theory of operation. Each xDLMS APDU that may travel protected has two ciphered twins: a
``glo-`` form (global keys) and a ``ded-`` form (the dedicated key of the association). All
of them share one wire layout, an A-XDR OCTET STRING whose content starts with the security
header (brief §4.1 last line, §5.4)::

    tag ‖ len ‖ SC (1) ‖ IC (4, big-endian) ‖ ciphered text (C ‖ T, APDU ‖ T, or C)

No system title is carried: the receiver knows the peer's title from the association
(calling/responding-AP-title). This module only frames the bytes; cryptography lives in
:mod:`cosemcast.security.protection`, which also checks that the plaintext is the APDU the
ciphered tag promises (``PROTECTED_TAG``), because the tag byte itself is not authenticated.

One dataclass per Blue Book name, all derived from :class:`ServiceSpecificCiphered`, so a
``GloGetRequest`` never compares equal to a ``DedGetRequest`` with the same fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from cosemcast.apdu._schemas import (
    SECURITY_HEADER_LENGTH,
    build_security_header,
    parse_security_header,
)
from cosemcast.apdu.base import Reader, register
from cosemcast.axdr.codec import encode_length

__all__ = [
    "CipheredTag",
    "DedActionRequest",
    "DedActionResponse",
    "DedConfirmedServiceError",
    "DedEventNotificationRequest",
    "DedGetRequest",
    "DedGetResponse",
    "DedInformationReportRequest",
    "DedInitiateRequest",
    "DedInitiateResponse",
    "DedReadRequest",
    "DedReadResponse",
    "DedSetRequest",
    "DedSetResponse",
    "DedUnconfirmedWriteRequest",
    "DedWriteRequest",
    "DedWriteResponse",
    "GloActionRequest",
    "GloActionResponse",
    "GloConfirmedServiceError",
    "GloEventNotificationRequest",
    "GloGetRequest",
    "GloGetResponse",
    "GloInformationReportRequest",
    "GloInitiateRequest",
    "GloInitiateResponse",
    "GloReadRequest",
    "GloReadResponse",
    "GloSetRequest",
    "GloSetResponse",
    "GloUnconfirmedWriteRequest",
    "GloWriteRequest",
    "GloWriteResponse",
    "ServiceSpecificCiphered",
    "ciphered_class_for",
    "encode_ciphered_content",
    "read_ciphered_content",
    "service_specific_classes",
]


class CipheredTag(IntEnum):
    """First byte of each service-specific ciphered APDU (brief §4.1)."""

    GLO_INITIATE_REQUEST = 0x21
    GLO_READ_REQUEST = 0x25
    GLO_WRITE_REQUEST = 0x26
    GLO_INITIATE_RESPONSE = 0x28
    GLO_READ_RESPONSE = 0x2C
    GLO_WRITE_RESPONSE = 0x2D
    GLO_CONFIRMED_SERVICE_ERROR = 0x2E
    GLO_UNCONFIRMED_WRITE_REQUEST = 0x36
    GLO_INFORMATION_REPORT_REQUEST = 0x38
    DED_INITIATE_REQUEST = 0x41
    DED_READ_REQUEST = 0x45
    DED_WRITE_REQUEST = 0x46
    DED_INITIATE_RESPONSE = 0x48
    DED_READ_RESPONSE = 0x4C
    DED_WRITE_RESPONSE = 0x4D
    DED_CONFIRMED_SERVICE_ERROR = 0x4E
    DED_UNCONFIRMED_WRITE_REQUEST = 0x56
    DED_INFORMATION_REPORT_REQUEST = 0x58
    GLO_GET_REQUEST = 0xC8
    GLO_SET_REQUEST = 0xC9
    GLO_EVENT_NOTIFICATION_REQUEST = 0xCA
    GLO_ACTION_REQUEST = 0xCB
    GLO_GET_RESPONSE = 0xCC
    GLO_SET_RESPONSE = 0xCD
    GLO_ACTION_RESPONSE = 0xCF
    DED_GET_REQUEST = 0xD0
    DED_SET_REQUEST = 0xD1
    DED_EVENT_NOTIFICATION_REQUEST = 0xD2
    DED_ACTION_REQUEST = 0xD3
    DED_GET_RESPONSE = 0xD4
    DED_SET_RESPONSE = 0xD5
    DED_ACTION_RESPONSE = 0xD7


def encode_ciphered_content(
    security_control: int, invocation_counter: int, ciphered_text: bytes
) -> bytes:
    """len ‖ SC ‖ IC ‖ ciphered text: the OCTET STRING that every ciphered APDU carries."""
    body = build_security_header(security_control, invocation_counter) + ciphered_text
    return encode_length(len(body)) + body


def read_ciphered_content(reader: Reader, what: str) -> tuple[int, int, bytes]:
    """Read len ‖ SC ‖ IC ‖ text; return ``(security_control, invocation_counter, text)``."""
    length_at = reader.pos
    n = reader.length()
    if n < SECURITY_HEADER_LENGTH:
        raise reader.fail(
            f"{what} of {n} bytes cannot hold the 5-byte security header",
            "an octet-string of at least 5 bytes (SC ‖ IC)",
            offset=length_at,
        )
    body = reader.sub(n, what)
    sc, ic = parse_security_header(reader.buf, body.pos)
    return sc, ic, reader.buf[body.pos + SECURITY_HEADER_LENGTH : body.end]


@dataclass(frozen=True, slots=True)
class ServiceSpecificCiphered:
    """``tag ‖ len ‖ SC ‖ IC ‖ ciphered_text`` (brief §5.4).

    ``PROTECTED_TAG`` is the tag of the plain APDU inside; ``DEDICATED`` tells whether the
    dedicated key (ded-) or a global key (glo-) protects it.
    """

    TAG: ClassVar[int]
    PROTECTED_TAG: ClassVar[int]
    DEDICATED: ClassVar[bool]

    security_control: int
    invocation_counter: int
    ciphered_text: bytes

    def encode(self) -> bytes:
        return bytes((self.TAG,)) + encode_ciphered_content(
            self.security_control, self.invocation_counter, self.ciphered_text
        )


# --- glo- (global key) forms ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GloInitiateRequest(ServiceSpecificCiphered):
    TAG = CipheredTag.GLO_INITIATE_REQUEST
    PROTECTED_TAG = 0x01
    DEDICATED = False


@dataclass(frozen=True, slots=True)
class GloReadRequest(ServiceSpecificCiphered):
    TAG = CipheredTag.GLO_READ_REQUEST
    PROTECTED_TAG = 0x05
    DEDICATED = False


@dataclass(frozen=True, slots=True)
class GloWriteRequest(ServiceSpecificCiphered):
    TAG = CipheredTag.GLO_WRITE_REQUEST
    PROTECTED_TAG = 0x06
    DEDICATED = False


@dataclass(frozen=True, slots=True)
class GloInitiateResponse(ServiceSpecificCiphered):
    TAG = CipheredTag.GLO_INITIATE_RESPONSE
    PROTECTED_TAG = 0x08
    DEDICATED = False


@dataclass(frozen=True, slots=True)
class GloReadResponse(ServiceSpecificCiphered):
    TAG = CipheredTag.GLO_READ_RESPONSE
    PROTECTED_TAG = 0x0C
    DEDICATED = False


@dataclass(frozen=True, slots=True)
class GloWriteResponse(ServiceSpecificCiphered):
    TAG = CipheredTag.GLO_WRITE_RESPONSE
    PROTECTED_TAG = 0x0D
    DEDICATED = False


@dataclass(frozen=True, slots=True)
class GloConfirmedServiceError(ServiceSpecificCiphered):
    TAG = CipheredTag.GLO_CONFIRMED_SERVICE_ERROR
    PROTECTED_TAG = 0x0E
    DEDICATED = False


@dataclass(frozen=True, slots=True)
class GloUnconfirmedWriteRequest(ServiceSpecificCiphered):
    TAG = CipheredTag.GLO_UNCONFIRMED_WRITE_REQUEST
    PROTECTED_TAG = 0x16
    DEDICATED = False


@dataclass(frozen=True, slots=True)
class GloInformationReportRequest(ServiceSpecificCiphered):
    TAG = CipheredTag.GLO_INFORMATION_REPORT_REQUEST
    PROTECTED_TAG = 0x18
    DEDICATED = False


@dataclass(frozen=True, slots=True)
class GloGetRequest(ServiceSpecificCiphered):
    TAG = CipheredTag.GLO_GET_REQUEST
    PROTECTED_TAG = 0xC0
    DEDICATED = False


@dataclass(frozen=True, slots=True)
class GloSetRequest(ServiceSpecificCiphered):
    TAG = CipheredTag.GLO_SET_REQUEST
    PROTECTED_TAG = 0xC1
    DEDICATED = False


@dataclass(frozen=True, slots=True)
class GloEventNotificationRequest(ServiceSpecificCiphered):
    TAG = CipheredTag.GLO_EVENT_NOTIFICATION_REQUEST
    PROTECTED_TAG = 0xC2
    DEDICATED = False


@dataclass(frozen=True, slots=True)
class GloActionRequest(ServiceSpecificCiphered):
    TAG = CipheredTag.GLO_ACTION_REQUEST
    PROTECTED_TAG = 0xC3
    DEDICATED = False


@dataclass(frozen=True, slots=True)
class GloGetResponse(ServiceSpecificCiphered):
    TAG = CipheredTag.GLO_GET_RESPONSE
    PROTECTED_TAG = 0xC4
    DEDICATED = False


@dataclass(frozen=True, slots=True)
class GloSetResponse(ServiceSpecificCiphered):
    TAG = CipheredTag.GLO_SET_RESPONSE
    PROTECTED_TAG = 0xC5
    DEDICATED = False


@dataclass(frozen=True, slots=True)
class GloActionResponse(ServiceSpecificCiphered):
    TAG = CipheredTag.GLO_ACTION_RESPONSE
    PROTECTED_TAG = 0xC7
    DEDICATED = False


# --- ded- (dedicated key) forms ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DedInitiateRequest(ServiceSpecificCiphered):
    TAG = CipheredTag.DED_INITIATE_REQUEST
    PROTECTED_TAG = 0x01
    DEDICATED = True


@dataclass(frozen=True, slots=True)
class DedReadRequest(ServiceSpecificCiphered):
    TAG = CipheredTag.DED_READ_REQUEST
    PROTECTED_TAG = 0x05
    DEDICATED = True


@dataclass(frozen=True, slots=True)
class DedWriteRequest(ServiceSpecificCiphered):
    TAG = CipheredTag.DED_WRITE_REQUEST
    PROTECTED_TAG = 0x06
    DEDICATED = True


@dataclass(frozen=True, slots=True)
class DedInitiateResponse(ServiceSpecificCiphered):
    TAG = CipheredTag.DED_INITIATE_RESPONSE
    PROTECTED_TAG = 0x08
    DEDICATED = True


@dataclass(frozen=True, slots=True)
class DedReadResponse(ServiceSpecificCiphered):
    TAG = CipheredTag.DED_READ_RESPONSE
    PROTECTED_TAG = 0x0C
    DEDICATED = True


@dataclass(frozen=True, slots=True)
class DedWriteResponse(ServiceSpecificCiphered):
    TAG = CipheredTag.DED_WRITE_RESPONSE
    PROTECTED_TAG = 0x0D
    DEDICATED = True


@dataclass(frozen=True, slots=True)
class DedConfirmedServiceError(ServiceSpecificCiphered):
    TAG = CipheredTag.DED_CONFIRMED_SERVICE_ERROR
    PROTECTED_TAG = 0x0E
    DEDICATED = True


@dataclass(frozen=True, slots=True)
class DedUnconfirmedWriteRequest(ServiceSpecificCiphered):
    TAG = CipheredTag.DED_UNCONFIRMED_WRITE_REQUEST
    PROTECTED_TAG = 0x16
    DEDICATED = True


@dataclass(frozen=True, slots=True)
class DedInformationReportRequest(ServiceSpecificCiphered):
    TAG = CipheredTag.DED_INFORMATION_REPORT_REQUEST
    PROTECTED_TAG = 0x18
    DEDICATED = True


@dataclass(frozen=True, slots=True)
class DedGetRequest(ServiceSpecificCiphered):
    TAG = CipheredTag.DED_GET_REQUEST
    PROTECTED_TAG = 0xC0
    DEDICATED = True


@dataclass(frozen=True, slots=True)
class DedSetRequest(ServiceSpecificCiphered):
    TAG = CipheredTag.DED_SET_REQUEST
    PROTECTED_TAG = 0xC1
    DEDICATED = True


@dataclass(frozen=True, slots=True)
class DedEventNotificationRequest(ServiceSpecificCiphered):
    TAG = CipheredTag.DED_EVENT_NOTIFICATION_REQUEST
    PROTECTED_TAG = 0xC2
    DEDICATED = True


@dataclass(frozen=True, slots=True)
class DedActionRequest(ServiceSpecificCiphered):
    TAG = CipheredTag.DED_ACTION_REQUEST
    PROTECTED_TAG = 0xC3
    DEDICATED = True


@dataclass(frozen=True, slots=True)
class DedGetResponse(ServiceSpecificCiphered):
    TAG = CipheredTag.DED_GET_RESPONSE
    PROTECTED_TAG = 0xC4
    DEDICATED = True


@dataclass(frozen=True, slots=True)
class DedSetResponse(ServiceSpecificCiphered):
    TAG = CipheredTag.DED_SET_RESPONSE
    PROTECTED_TAG = 0xC5
    DEDICATED = True


@dataclass(frozen=True, slots=True)
class DedActionResponse(ServiceSpecificCiphered):
    TAG = CipheredTag.DED_ACTION_RESPONSE
    PROTECTED_TAG = 0xC7
    DEDICATED = True


_CLASSES: tuple[type[ServiceSpecificCiphered], ...] = (
    GloInitiateRequest,
    GloReadRequest,
    GloWriteRequest,
    GloInitiateResponse,
    GloReadResponse,
    GloWriteResponse,
    GloConfirmedServiceError,
    GloUnconfirmedWriteRequest,
    GloInformationReportRequest,
    GloGetRequest,
    GloSetRequest,
    GloEventNotificationRequest,
    GloActionRequest,
    GloGetResponse,
    GloSetResponse,
    GloActionResponse,
    DedInitiateRequest,
    DedReadRequest,
    DedWriteRequest,
    DedInitiateResponse,
    DedReadResponse,
    DedWriteResponse,
    DedConfirmedServiceError,
    DedUnconfirmedWriteRequest,
    DedInformationReportRequest,
    DedGetRequest,
    DedSetRequest,
    DedEventNotificationRequest,
    DedActionRequest,
    DedGetResponse,
    DedSetResponse,
    DedActionResponse,
)
_BY_TAG: dict[int, type[ServiceSpecificCiphered]] = {cls.TAG: cls for cls in _CLASSES}
_BY_PLAIN_TAG: dict[tuple[int, bool], type[ServiceSpecificCiphered]] = {
    (cls.PROTECTED_TAG, cls.DEDICATED): cls for cls in _CLASSES
}


def service_specific_classes() -> tuple[type[ServiceSpecificCiphered], ...]:
    """Every service-specific ciphered APDU class, glo- forms first."""
    return _CLASSES


def ciphered_class_for(plain_tag: int, *, dedicated: bool) -> type[ServiceSpecificCiphered] | None:
    """The glo- (or ded-) class that protects plain APDUs with tag ``plain_tag``, if any."""
    return _BY_PLAIN_TAG.get((plain_tag, dedicated))


@register(*_BY_TAG)
def _decode_service_specific(reader: Reader) -> ServiceSpecificCiphered:
    cls = _BY_TAG[reader.buf[reader.pos - 1]]
    sc, ic, text = read_ciphered_content(reader, f"the {cls.__name__} content")
    return cls(sc, ic, text)
