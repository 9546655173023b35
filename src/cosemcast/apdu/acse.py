"""ACSE APDUs: AARQ (60), AARE (61), RLRQ (62), RLRE (63), BER-encoded (brief §4.2).

Theory of operation. Each APDU is an ``[APPLICATION n]`` constructed element whose content is
a run of context-tagged elements (ISO 8650 ACSE as profiled by the Green Book; tags from the
JD/WS ASN.1). The decoder reads the elements one by one (:mod:`cosemcast.apdu._ber`: definite
lengths only, the long form accepted even where a short one would do), dispatches on the
identifier octet and builds the dataclass; the encoder writes the fields in tag order with the
shortest lengths.

Decisions (where the sources are silent):

* Elements in any order are accepted; the same known tag twice is a DecodeError.
* Elements with a tag this codec does not model (application-context-name-list [13]/[11],
  implementation-information [29], anything vendor-specific) are **kept, not rejected**: the
  raw element bytes go to ``other_fields`` and are written back, in their order, just before
  user-information.
* Enumerated INTEGERs (result, diagnostics, release reasons) with a value the standard does
  not name are a DecodeError.
* Authentication-value: only the ``charstring [0]`` alternative (the one DLMS uses) is
  supported; ``bitstring [1]`` and the others are a DecodeError.
* The brief's table prints ``A0`` for protocol-version; the ASN.1 says ``[0] IMPLICIT BIT
  STRING``, i.e. ``80``, which is what we read and write.
* user-information is ``BE len 04 len <xDLMS APDU>`` (the Green Book's OCTET STRING form); the
  inner APDU is decoded with :func:`cosemcast.apdu.base.decode_apdu`. An ACSE APDU inside
  user-information is refused (it would allow unbounded nesting).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

from cosemcast.apdu._ber import (
    INTEGER,
    OCTET_STRING,
    OID,
    encode_bit_string,
    encode_integer,
    expect,
    explicit_integer,
    explicit_octets,
    read_bit_string,
    read_element,
    read_enum,
    read_explicit_integer,
    read_explicit_octets,
    read_fields,
    read_integer,
    read_oid,
    tlv,
)
from cosemcast.apdu.base import Apdu, Reader, register
from cosemcast.errors import DecodeError, EncodeError

__all__ = [
    "AARE",
    "AARQ",
    "DLMS_OID_PREFIX",
    "RLRE",
    "RLRQ",
    "AcseRequirements",
    "AcseServiceProvider",
    "AcseServiceUser",
    "ApplicationContextName",
    "AssociationResult",
    "MechanismName",
    "ReleaseRequestReason",
    "ReleaseResponseReason",
]

DLMS_OID_PREFIX = bytes.fromhex("6085740508")
"""DER content octets of {joint-iso-ccitt(2) country(16) country-name(756) identified-
organization(5) DLMS-UA(8)}."""

_E = TypeVar("_E", bound=enum.IntEnum)

_CONTEXT_PREFIX = DLMS_OID_PREFIX + b"\x01"  # application-context-name (brief §4.2)
_MECHANISM_PREFIX = DLMS_OID_PREFIX + b"\x02"  # mechanism-name (brief §4.2)


class ApplicationContextName(enum.IntEnum):
    """The last arc of ``2.16.756.5.8.1.x`` (brief §4.2)."""

    LOGICAL_NAME = 1
    SHORT_NAME = 2
    LOGICAL_NAME_WITH_CIPHERING = 3
    SHORT_NAME_WITH_CIPHERING = 4

    def oid(self) -> bytes:
        """The OID content octets (``60 85 74 05 08 01 xx``)."""
        return _CONTEXT_PREFIX + bytes((self.value,))


class MechanismName(enum.IntEnum):
    """The last arc of ``2.16.756.5.8.2.x``: authentication mechanism id (brief §4.2)."""

    LOWEST = 0
    LOW = 1
    HIGH = 2
    HIGH_MD5 = 3
    HIGH_SHA1 = 4
    HIGH_GMAC = 5
    HIGH_SHA256 = 6
    HIGH_ECDSA = 7

    def oid(self) -> bytes:
        """The OID content octets (``60 85 74 05 08 02 xx``)."""
        return _MECHANISM_PREFIX + bytes((self.value,))


class AcseRequirements(enum.IntFlag):
    """ACSE-requirements BIT STRING; the value is the first octet on the wire (``07 80``)."""

    AUTHENTICATION = 0x80
    APPLICATION_CONTEXT_NEGOTIATION = 0x40


class AssociationResult(enum.IntEnum):
    ACCEPTED = 0
    REJECTED_PERMANENT = 1
    REJECTED_TRANSIENT = 2


class AcseServiceUser(enum.IntEnum):
    """result-source-diagnostic, acse-service-user [1] (ISO 8650 via the JD ASN.1)."""

    NULL = 0
    NO_REASON_GIVEN = 1
    APPLICATION_CONTEXT_NAME_NOT_SUPPORTED = 2
    CALLING_AP_TITLE_NOT_RECOGNIZED = 3
    CALLING_AP_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 4
    CALLING_AE_QUALIFIER_NOT_RECOGNIZED = 5
    CALLING_AE_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 6
    CALLED_AP_TITLE_NOT_RECOGNIZED = 7
    CALLED_AP_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 8
    CALLED_AE_QUALIFIER_NOT_RECOGNIZED = 9
    CALLED_AE_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 10
    AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED = 11
    AUTHENTICATION_MECHANISM_NAME_REQUIRED = 12
    AUTHENTICATION_FAILURE = 13
    AUTHENTICATION_REQUIRED = 14


class AcseServiceProvider(enum.IntEnum):
    """result-source-diagnostic, acse-service-provider [2]."""

    NULL = 0
    NO_REASON_GIVEN = 1
    NO_COMMON_ACSE_VERSION = 2


class ReleaseRequestReason(enum.IntEnum):
    NORMAL = 0
    URGENT = 1
    USER_DEFINED = 30


class ReleaseResponseReason(enum.IntEnum):
    NORMAL = 0
    NOT_FINISHED = 1
    USER_DEFINED = 30


# Identifier octets (class context = 0x80, constructed = 0x20).
_PROTOCOL_VERSION = 0x80  # [0] IMPLICIT BIT STRING
_CONTEXT_NAME = 0xA1  # [1] EXPLICIT OBJECT IDENTIFIER
_USER_INFORMATION = 0xBE  # [30] EXPLICIT OCTET STRING
_CHARSTRING = 0x80  # Authentication-value charstring [0] IMPLICIT
_ACSE_TAGS = frozenset((0x60, 0x61, 0x62, 0x63))


# --- field readers ---------------------------------------------------------------------------


def _context_name(reader: Reader) -> ApplicationContextName | bytes:
    oid = read_oid(expect(reader, OID, "the application-context-name OID"), "a context name")
    reader.expect_end()
    if len(oid) == 7 and oid[:6] == _CONTEXT_PREFIX and 1 <= oid[6] <= 4:
        return ApplicationContextName(oid[6])
    return oid


def _mechanism_name(reader: Reader) -> MechanismName | bytes:
    oid = read_oid(reader, "the mechanism-name")
    if len(oid) == 7 and oid[:6] == _MECHANISM_PREFIX and oid[6] <= 7:
        return MechanismName(oid[6])
    return oid


def _acse_requirements(reader: Reader) -> AcseRequirements:
    _, data = read_bit_string(reader, "the acse-requirements")
    # Bits beyond the two named ones are ignored.
    return AcseRequirements(data[0] & 0xC0) if data else AcseRequirements(0)


def _authentication_value(reader: Reader) -> bytes:
    pos = reader.pos
    tag, _, content = read_element(reader, "the authentication-value")
    if tag != _CHARSTRING:
        raise reader.fail(
            f"authentication-value alternative 0x{tag:02X} is not supported (only charstring 80)",
            expected="80 (charstring)",
            offset=pos,
        )
    reader.expect_end()
    return content.rest()


def _user_information(reader: Reader) -> Apdu:
    from cosemcast.apdu.base import decode_apdu

    inner = expect(reader, OCTET_STRING, "the user-information OCTET STRING")
    reader.expect_end()
    start = inner.pos
    if not inner.at_end() and inner.peek() in _ACSE_TAGS:
        raise inner.fail("an ACSE APDU inside user-information", expected="an xDLMS APDU")
    try:
        return decode_apdu(inner.rest())
    except DecodeError as exc:
        offset = None if exc.offset is None else start + exc.offset
        raise DecodeError(
            f"in user-information: {exc.message}", offset=offset, expected=exc.expected
        ) from exc


def _required(fields: dict[int, Reader], tag: int, reader: Reader, what: str) -> Reader:
    sub = fields.get(tag)
    if sub is None:
        raise reader.fail(f"missing {what} (tag 0x{tag:02X})", expected=what)
    return sub


# --- field writers ---------------------------------------------------------------------------


def _oid_bytes(value: enum.IntEnum | bytes, what: str) -> bytes:
    if isinstance(value, ApplicationContextName | MechanismName):
        return value.oid()
    if isinstance(value, enum.IntEnum) or not value:
        raise EncodeError(f"{what} must be a known name or non-empty OID content octets")
    return bytes(value)


def _w_octets(out: bytearray, tag: int, value: bytes | None) -> None:
    if value is not None:
        out += explicit_octets(tag, value)


def _w_integer(out: bytearray, tag: int, value: int | None) -> None:
    if value is not None:
        out += explicit_integer(tag, value)


def _w_common_head(
    out: bytearray, protocol_version: bytes | None, context: ApplicationContextName | bytes
) -> None:
    if protocol_version is not None:
        out += tlv(_PROTOCOL_VERSION, protocol_version)
    out += tlv(_CONTEXT_NAME, tlv(OID, _oid_bytes(context, "application-context-name")))


def _w_authentication(
    out: bytearray,
    req_tag: int,
    requirements: AcseRequirements | None,
    mech_tag: int,
    mechanism: MechanismName | bytes | None,
    value_tag: int,
    value: bytes | None,
) -> None:
    if requirements is not None:
        out += tlv(req_tag, encode_bit_string(int(requirements), 8))
    if mechanism is not None:
        out += tlv(mech_tag, _oid_bytes(mechanism, "mechanism-name"))
    if value is not None:
        out += tlv(value_tag, tlv(_CHARSTRING, value))


def _w_tail(out: bytearray, other_fields: tuple[bytes, ...], user_information: Apdu | None) -> None:
    for raw in other_fields:
        out += raw
    if user_information is not None:
        out += tlv(_USER_INFORMATION, tlv(OCTET_STRING, user_information.encode()))


def _apdu(tag: int, content: bytearray) -> bytes:
    return tlv(tag, bytes(content))


# --- AARQ ------------------------------------------------------------------------------------

_AARQ_KNOWN = frozenset(
    (0x80, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0x8A, 0x8B, 0xAC, 0xBE)
)


@dataclass(frozen=True, slots=True, kw_only=True)
class AARQ:
    """A-ASSOCIATE request (tag 60, brief §4.2).

    AP titles and AE qualifiers are the bytes of the inner OCTET STRING (the calling AP title
    is the client system title; the AE qualifier carries a certificate in suites 1/2).
    ``protocol_version`` is the raw BIT STRING content (``07 80`` = version1) when present.
    ``other_fields`` holds the raw elements with tags this codec does not model.
    """

    TAG: ClassVar[int] = 0x60
    application_context_name: ApplicationContextName | bytes = ApplicationContextName.LOGICAL_NAME
    protocol_version: bytes | None = None
    called_ap_title: bytes | None = None
    called_ae_qualifier: bytes | None = None
    called_ap_invocation_id: int | None = None
    called_ae_invocation_id: int | None = None
    calling_ap_title: bytes | None = None
    calling_ae_qualifier: bytes | None = None
    calling_ap_invocation_id: int | None = None
    calling_ae_invocation_id: int | None = None
    sender_acse_requirements: AcseRequirements | None = None
    mechanism_name: MechanismName | bytes | None = None
    calling_authentication_value: bytes | None = field(default=None, repr=False)
    user_information: Apdu | None = None
    other_fields: tuple[bytes, ...] = ()

    def encode(self) -> bytes:
        out = bytearray()
        _w_common_head(out, self.protocol_version, self.application_context_name)
        _w_octets(out, 0xA2, self.called_ap_title)
        _w_octets(out, 0xA3, self.called_ae_qualifier)
        _w_integer(out, 0xA4, self.called_ap_invocation_id)
        _w_integer(out, 0xA5, self.called_ae_invocation_id)
        _w_octets(out, 0xA6, self.calling_ap_title)
        _w_octets(out, 0xA7, self.calling_ae_qualifier)
        _w_integer(out, 0xA8, self.calling_ap_invocation_id)
        _w_integer(out, 0xA9, self.calling_ae_invocation_id)
        _w_authentication(
            out,
            0x8A,
            self.sender_acse_requirements,
            0x8B,
            self.mechanism_name,
            0xAC,
            self.calling_authentication_value,
        )
        _w_tail(out, self.other_fields, self.user_information)
        return _apdu(self.TAG, out)


def _opt_octets(fields: dict[int, Reader], tag: int, what: str) -> bytes | None:
    sub = fields.get(tag)
    return None if sub is None else read_explicit_octets(sub, what)


def _opt_integer(fields: dict[int, Reader], tag: int, what: str) -> int | None:
    sub = fields.get(tag)
    return None if sub is None else read_explicit_integer(sub, what)


def _opt_auth(
    fields: dict[int, Reader], req_tag: int, mech_tag: int, value_tag: int
) -> tuple[AcseRequirements | None, MechanismName | bytes | None, bytes | None]:
    req = fields.get(req_tag)
    mech = fields.get(mech_tag)
    value = fields.get(value_tag)
    return (
        None if req is None else _acse_requirements(req),
        None if mech is None else _mechanism_name(mech),
        None if value is None else _authentication_value(value),
    )


def _opt_user_information(fields: dict[int, Reader]) -> Apdu | None:
    sub = fields.get(_USER_INFORMATION)
    return None if sub is None else _user_information(sub)


def _opt_protocol_version(fields: dict[int, Reader]) -> bytes | None:
    sub = fields.get(_PROTOCOL_VERSION)
    if sub is None:
        return None
    start = sub.pos
    read_bit_string(sub, "the protocol-version")
    return sub.buf[start : sub.end]


@register(AARQ.TAG)
def decode_aarq(reader: Reader) -> AARQ:
    content = reader.sub(reader.length(), "the AARQ")
    fields, other = read_fields(content, _AARQ_KNOWN, "AARQ")
    context = _context_name(_required(fields, _CONTEXT_NAME, content, "application-context-name"))
    requirements, mechanism, auth_value = _opt_auth(fields, 0x8A, 0x8B, 0xAC)
    return AARQ(
        application_context_name=context,
        protocol_version=_opt_protocol_version(fields),
        called_ap_title=_opt_octets(fields, 0xA2, "the called-AP-title"),
        called_ae_qualifier=_opt_octets(fields, 0xA3, "the called-AE-qualifier"),
        called_ap_invocation_id=_opt_integer(fields, 0xA4, "the called-AP-invocation-id"),
        called_ae_invocation_id=_opt_integer(fields, 0xA5, "the called-AE-invocation-id"),
        calling_ap_title=_opt_octets(fields, 0xA6, "the calling-AP-title"),
        calling_ae_qualifier=_opt_octets(fields, 0xA7, "the calling-AE-qualifier"),
        calling_ap_invocation_id=_opt_integer(fields, 0xA8, "the calling-AP-invocation-id"),
        calling_ae_invocation_id=_opt_integer(fields, 0xA9, "the calling-AE-invocation-id"),
        sender_acse_requirements=requirements,
        mechanism_name=mechanism,
        calling_authentication_value=auth_value,
        user_information=_opt_user_information(fields),
        other_fields=other,
    )


# --- AARE ------------------------------------------------------------------------------------

_AARE_KNOWN = frozenset((0x80, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0x88, 0x89, 0xAA, 0xBE))
_SERVICE_USER = 0xA1  # acse-service-user [1] EXPLICIT INTEGER
_SERVICE_PROVIDER = 0xA2  # acse-service-provider [2] EXPLICIT INTEGER


@dataclass(frozen=True, slots=True, kw_only=True)
class AARE:
    """A-ASSOCIATE response (tag 61, brief §4.2).

    ``result_source_diagnostic`` is an :class:`AcseServiceUser` (``A3 05 A1 03 02 01 dd``) or
    an :class:`AcseServiceProvider` (``A3 05 A2 ...``). An accepted HLS association carries
    ``AcseServiceUser.AUTHENTICATION_REQUIRED`` and StoC in ``responding_authentication_value``.
    """

    TAG: ClassVar[int] = 0x61
    application_context_name: ApplicationContextName | bytes = ApplicationContextName.LOGICAL_NAME
    result: AssociationResult = AssociationResult.ACCEPTED
    result_source_diagnostic: AcseServiceUser | AcseServiceProvider = AcseServiceUser.NULL
    protocol_version: bytes | None = None
    responding_ap_title: bytes | None = None
    responding_ae_qualifier: bytes | None = None
    responding_ap_invocation_id: int | None = None
    responding_ae_invocation_id: int | None = None
    responder_acse_requirements: AcseRequirements | None = None
    mechanism_name: MechanismName | bytes | None = None
    responding_authentication_value: bytes | None = field(default=None, repr=False)
    user_information: Apdu | None = None
    other_fields: tuple[bytes, ...] = ()

    def encode(self) -> bytes:
        out = bytearray()
        _w_common_head(out, self.protocol_version, self.application_context_name)
        _w_integer(out, 0xA2, int(self.result))
        diag = self.result_source_diagnostic
        choice = _SERVICE_PROVIDER if isinstance(diag, AcseServiceProvider) else _SERVICE_USER
        out += tlv(0xA3, tlv(choice, tlv(INTEGER, encode_integer(int(diag)))))
        _w_octets(out, 0xA4, self.responding_ap_title)
        _w_octets(out, 0xA5, self.responding_ae_qualifier)
        _w_integer(out, 0xA6, self.responding_ap_invocation_id)
        _w_integer(out, 0xA7, self.responding_ae_invocation_id)
        _w_authentication(
            out,
            0x88,
            self.responder_acse_requirements,
            0x89,
            self.mechanism_name,
            0xAA,
            self.responding_authentication_value,
        )
        _w_tail(out, self.other_fields, self.user_information)
        return _apdu(self.TAG, out)


def _diagnostic(reader: Reader) -> AcseServiceUser | AcseServiceProvider:
    pos = reader.pos
    tag, _, content = read_element(reader, "the result-source-diagnostic")
    reader.expect_end()
    if tag not in (_SERVICE_USER, _SERVICE_PROVIDER):
        raise reader.fail(
            f"result-source-diagnostic alternative 0x{tag:02X} is neither A1 nor A2",
            expected="A1 or A2",
            offset=pos,
        )
    vpos = content.pos
    value = read_explicit_integer(content, "the diagnostic")
    if tag == _SERVICE_USER:
        return read_enum(AcseServiceUser, value, content, vpos, "acse-service-user diagnostic")
    return read_enum(AcseServiceProvider, value, content, vpos, "acse-service-provider diagnostic")


@register(AARE.TAG)
def decode_aare(reader: Reader) -> AARE:
    content = reader.sub(reader.length(), "the AARE")
    fields, other = read_fields(content, _AARE_KNOWN, "AARE")
    context = _context_name(_required(fields, _CONTEXT_NAME, content, "application-context-name"))
    result_reader = _required(fields, 0xA2, content, "the result")
    pos = result_reader.pos
    result = read_enum(
        AssociationResult,
        read_explicit_integer(result_reader, "the result"),
        result_reader,
        pos,
        "association result",
    )
    diagnostic = _diagnostic(_required(fields, 0xA3, content, "the result-source-diagnostic"))
    requirements, mechanism, auth_value = _opt_auth(fields, 0x88, 0x89, 0xAA)
    return AARE(
        application_context_name=context,
        result=result,
        result_source_diagnostic=diagnostic,
        protocol_version=_opt_protocol_version(fields),
        responding_ap_title=_opt_octets(fields, 0xA4, "the responding-AP-title"),
        responding_ae_qualifier=_opt_octets(fields, 0xA5, "the responding-AE-qualifier"),
        responding_ap_invocation_id=_opt_integer(fields, 0xA6, "the responding-AP-invocation-id"),
        responding_ae_invocation_id=_opt_integer(fields, 0xA7, "the responding-AE-invocation-id"),
        responder_acse_requirements=requirements,
        mechanism_name=mechanism,
        responding_authentication_value=auth_value,
        user_information=_opt_user_information(fields),
        other_fields=other,
    )


# --- RLRQ / RLRE -----------------------------------------------------------------------------

_RELEASE_KNOWN = frozenset((0x80, 0xBE))


def _encode_release(
    tag: int, reason: enum.IntEnum | None, other_fields: tuple[bytes, ...], ui: Apdu | None
) -> bytes:
    out = bytearray()
    if reason is not None:
        out += tlv(0x80, encode_integer(int(reason)))  # reason [0] IMPLICIT INTEGER
    _w_tail(out, other_fields, ui)
    return _apdu(tag, out)


def _decode_release(
    reader: Reader, cls: type[_E], what: str
) -> tuple[_E | None, Apdu | None, tuple[bytes, ...]]:
    content = reader.sub(reader.length(), f"the {what}")
    fields, other = read_fields(content, _RELEASE_KNOWN, what)
    reason = None
    sub = fields.get(0x80)
    if sub is not None:
        pos = sub.pos
        reason = read_enum(cls, read_integer(sub, "the release reason"), sub, pos, "release reason")
    return reason, _opt_user_information(fields), other


@dataclass(frozen=True, slots=True, kw_only=True)
class RLRQ:
    """A-RELEASE request (tag 62, brief §4.2): ``62 03 80 01 00`` = normal."""

    TAG: ClassVar[int] = 0x62
    reason: ReleaseRequestReason | None = ReleaseRequestReason.NORMAL
    user_information: Apdu | None = None
    other_fields: tuple[bytes, ...] = ()

    def encode(self) -> bytes:
        return _encode_release(self.TAG, self.reason, self.other_fields, self.user_information)


@register(RLRQ.TAG)
def decode_rlrq(reader: Reader) -> RLRQ:
    reason, ui, other = _decode_release(reader, ReleaseRequestReason, "RLRQ")
    return RLRQ(reason=reason, user_information=ui, other_fields=other)


@dataclass(frozen=True, slots=True, kw_only=True)
class RLRE:
    """A-RELEASE response (tag 63, brief §4.2): ``63 03 80 01 00`` = normal."""

    TAG: ClassVar[int] = 0x63
    reason: ReleaseResponseReason | None = ReleaseResponseReason.NORMAL
    user_information: Apdu | None = None
    other_fields: tuple[bytes, ...] = ()

    def encode(self) -> bytes:
        return _encode_release(self.TAG, self.reason, self.other_fields, self.user_information)


@register(RLRE.TAG)
def decode_rlre(reader: Reader) -> RLRE:
    reason, ui, other = _decode_release(reader, ReleaseResponseReason, "RLRE")
    return RLRE(reason=reason, user_information=ui, other_fields=other)
