"""The general-* protection APDUs: general-glo/ded-ciphering, general-ciphering, general-signing.

Theory of operation. These APDUs protect any xDLMS APDU and, unlike the service-specific
glo-/ded- forms, carry their addressing in clear (brief §5.4, §6.1, §5.5):

* ``DB`` general-glo-ciphering / ``DC`` general-ded-ciphering:
  ``tag ‖ len ST ‖ ST ‖ len ‖ SC ‖ IC ‖ text``. A zero-length system title is accepted
  (the receiver then takes it from the association, brief §5.4).
* ``DD`` general-ciphering: transaction-id, originator and recipient system titles,
  date-time and other-information (all A-XDR OCTET STRINGs), an OPTIONAL key-info CHOICE
  (identified-key, wrapped-key, agreed-key) and the ciphered content ``len ‖ SC ‖ IC ‖
  text`` (brief §6.1 byte layout).
* ``DF`` general-signing: the same five header fields, the content (any APDU) and the
  ECDSA signature, every one an OCTET STRING (brief §5.5).

Only framing lives here. Keys, AAD and signatures are in
:mod:`cosemcast.security.protection`. The date-time field is either empty or a 12-byte COSEM
date-time (brief §13.4 records that the 12 is an assumption; we enforce it both ways).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, TypeAlias, TypeVar

from cosemcast.apdu.base import Reader, encode_octet_string, register
from cosemcast.apdu.ciphered import encode_ciphered_content, read_ciphered_content
from cosemcast.errors import DecodeError, EncodeError

__all__ = [
    "AgreedKey",
    "GeneralCiphering",
    "GeneralDedCiphering",
    "GeneralGloCiphering",
    "GeneralSigning",
    "GeneralTag",
    "IdentifiedKey",
    "KekId",
    "KeyAgreementScheme",
    "KeyId",
    "KeyInfo",
    "KeyInfoChoice",
    "WrappedKey",
    "header_fields",
]

DATE_TIME_LENGTH = 12


class GeneralTag(IntEnum):
    """Tags of the general protection APDUs (brief §4.1)."""

    GENERAL_GLO_CIPHERING = 0xDB
    GENERAL_DED_CIPHERING = 0xDC
    GENERAL_CIPHERING = 0xDD
    GENERAL_SIGNING = 0xDF


class KeyInfoChoice(IntEnum):
    """Key-Info CHOICE tags (brief §6.1)."""

    IDENTIFIED_KEY = 0
    WRAPPED_KEY = 1
    AGREED_KEY = 2


class KeyId(IntEnum):
    """identified-key key-id ENUMERATED (brief §6.1)."""

    GLOBAL_UNICAST_ENCRYPTION_KEY = 0
    GLOBAL_BROADCAST_ENCRYPTION_KEY = 1


class KekId(IntEnum):
    """wrapped-key kek-id ENUMERATED: the standard names the master key only (brief §6.1)."""

    MASTER_KEY = 0


class KeyAgreementScheme(IntEnum):
    """agreed-key key-parameters (one byte; brief §5.5, §6.1)."""

    ONE_PASS_DIFFIE_HELLMAN = 1
    STATIC_UNIFIED_MODEL = 2


@dataclass(frozen=True, slots=True)
class IdentifiedKey:
    """identified-key [0]: the content is protected by the named global key (``01 00 kk``)."""

    key_id: KeyId


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """wrapped-key [1]: an RFC 3394 wrapped content key (``01 01 00 len data``)."""

    key_ciphered_data: bytes
    kek_id: KekId = KekId.MASTER_KEY


@dataclass(frozen=True, slots=True)
class AgreedKey:
    """agreed-key [2]: key-parameters and key-ciphered-data (``01 02 len p len data``)."""

    key_parameters: bytes
    key_ciphered_data: bytes


KeyInfo: TypeAlias = IdentifiedKey | WrappedKey | AgreedKey


def _check_date_time(date_time: bytes) -> None:
    if len(date_time) not in (0, DATE_TIME_LENGTH):
        raise EncodeError(
            f"date-time must be empty or {DATE_TIME_LENGTH} bytes, got {len(date_time)}"
        )


def _read_date_time(reader: Reader) -> bytes:
    at = reader.pos
    value = reader.octet_string("date-time")
    if len(value) not in (0, DATE_TIME_LENGTH):
        raise DecodeError(
            f"date-time of {len(value)} bytes",
            offset=at,
            expected=f"an empty or {DATE_TIME_LENGTH}-byte date-time",
        )
    return value


def header_fields(
    transaction_id: bytes,
    originator_system_title: bytes,
    recipient_system_title: bytes,
    date_time: bytes,
    other_information: bytes,
) -> bytes:
    """The five length-prefixed header fields, in wire order (brief §6.1)."""
    return b"".join(
        encode_octet_string(field)
        for field in (
            transaction_id,
            originator_system_title,
            recipient_system_title,
            date_time,
            other_information,
        )
    )


def _read_header(reader: Reader) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    return (
        reader.octet_string("transaction-id"),
        reader.octet_string("originator-system-title"),
        reader.octet_string("recipient-system-title"),
        _read_date_time(reader),
        reader.octet_string("other-information"),
    )


# --- general-glo-ciphering / general-ded-ciphering -----------------------------------------------


@dataclass(frozen=True, slots=True)
class GeneralGloCiphering:
    """``DB ‖ len ST ‖ ST ‖ len ‖ SC ‖ IC ‖ ciphered_text`` (brief §5.4)."""

    TAG: ClassVar[int] = GeneralTag.GENERAL_GLO_CIPHERING

    system_title: bytes
    security_control: int
    invocation_counter: int
    ciphered_text: bytes

    def encode(self) -> bytes:
        return (
            bytes((self.TAG,))
            + encode_octet_string(self.system_title)
            + encode_ciphered_content(
                self.security_control, self.invocation_counter, self.ciphered_text
            )
        )


@dataclass(frozen=True, slots=True)
class GeneralDedCiphering:
    """``DC ‖ len ST ‖ ST ‖ len ‖ SC ‖ IC ‖ ciphered_text`` (brief §5.4), dedicated key."""

    TAG: ClassVar[int] = GeneralTag.GENERAL_DED_CIPHERING

    system_title: bytes
    security_control: int
    invocation_counter: int
    ciphered_text: bytes

    def encode(self) -> bytes:
        return (
            bytes((self.TAG,))
            + encode_octet_string(self.system_title)
            + encode_ciphered_content(
                self.security_control, self.invocation_counter, self.ciphered_text
            )
        )


_SC_IC = struct.Struct(">BI")


@register(GeneralTag.GENERAL_GLO_CIPHERING, GeneralTag.GENERAL_DED_CIPHERING)
def _decode_general_glo_ded(reader: Reader) -> GeneralGloCiphering | GeneralDedCiphering:
    buf, pos, end = reader.buf, reader.pos, reader.end
    tag = buf[pos - 1]
    # Hot path (every pushed reading): short lengths, read straight from the buffer with
    # the same bounds checks; anything else goes through the Reader.
    n = buf[pos] if pos < end else 0x80
    body = pos + 1 + n
    m = buf[body] if n < 0x80 and body < end else 0
    if 5 <= m < 0x80 and body + 1 + m <= end:
        system_title = buf[pos + 1 : body]
        sc, ic = _SC_IC.unpack_from(buf, body + 1)
        text = buf[body + 6 : body + 1 + m]
        reader.pos = body + 1 + m
    else:
        system_title = reader.octet_string("system-title")
        sc, ic, text = read_ciphered_content(reader, "ciphered-content")
    if tag == GeneralTag.GENERAL_GLO_CIPHERING:
        return GeneralGloCiphering(system_title, sc, ic, text)
    return GeneralDedCiphering(system_title, sc, ic, text)


# --- general-ciphering ---------------------------------------------------------------------------


def _encode_key_info(key_info: KeyInfo | None) -> bytes:
    if key_info is None:
        return b"\x00"
    if isinstance(key_info, IdentifiedKey):
        key_id = _enum_byte(KeyId, key_info.key_id, "key-id")
        return bytes((1, KeyInfoChoice.IDENTIFIED_KEY, key_id))
    if isinstance(key_info, WrappedKey):
        kek_id = _enum_byte(KekId, key_info.kek_id, "kek-id")
        return bytes((1, KeyInfoChoice.WRAPPED_KEY, kek_id)) + encode_octet_string(
            key_info.key_ciphered_data
        )
    if isinstance(key_info, AgreedKey):
        return (
            bytes((1, KeyInfoChoice.AGREED_KEY))
            + encode_octet_string(key_info.key_parameters)
            + encode_octet_string(key_info.key_ciphered_data)
        )
    raise EncodeError(f"unknown key-info {type(key_info).__name__}")


_E = TypeVar("_E", bound=IntEnum)


def _read_enum(reader: Reader, enum: type[_E], what: str) -> _E:
    at = reader.pos
    value = reader.u8(what)
    try:
        return enum(value)
    except ValueError as exc:
        known = ", ".join(str(int(m)) for m in enum)
        raise DecodeError(
            f"{what} {value} is not defined", offset=at, expected=f"one of {known}"
        ) from exc


def _enum_byte(enum: type[_E], value: int, what: str) -> int:
    try:
        return int(enum(value))
    except ValueError as exc:
        raise EncodeError(f"{what} {value} is not defined") from exc


def _read_key_info(reader: Reader) -> KeyInfo | None:
    if not reader.optional("the key-info presence flag"):
        return None
    choice = _read_enum(reader, KeyInfoChoice, "key-info CHOICE")
    if choice == KeyInfoChoice.IDENTIFIED_KEY:
        return IdentifiedKey(_read_enum(reader, KeyId, "key-id"))
    if choice == KeyInfoChoice.WRAPPED_KEY:
        kek_id = _read_enum(reader, KekId, "kek-id")
        return WrappedKey(reader.octet_string("key-ciphered-data"), kek_id)
    return AgreedKey(
        reader.octet_string("key-parameters"), reader.octet_string("key-ciphered-data")
    )


@dataclass(frozen=True, slots=True)
class GeneralCiphering:
    """general-ciphering ``DD`` (brief §6.1)."""

    TAG: ClassVar[int] = GeneralTag.GENERAL_CIPHERING

    transaction_id: bytes
    originator_system_title: bytes
    recipient_system_title: bytes
    date_time: bytes
    other_information: bytes
    key_info: KeyInfo | None
    security_control: int
    invocation_counter: int
    ciphered_text: bytes

    def header_fields(self) -> bytes:
        """len ‖ value of transaction-id .. other-information, as on the wire."""
        return header_fields(
            self.transaction_id,
            self.originator_system_title,
            self.recipient_system_title,
            self.date_time,
            self.other_information,
        )

    def encode(self) -> bytes:
        _check_date_time(self.date_time)
        return (
            bytes((self.TAG,))
            + self.header_fields()
            + _encode_key_info(self.key_info)
            + encode_ciphered_content(
                self.security_control, self.invocation_counter, self.ciphered_text
            )
        )


@register(GeneralTag.GENERAL_CIPHERING)
def _decode_general_ciphering(reader: Reader) -> GeneralCiphering:
    tid, originator, recipient, date_time, other = _read_header(reader)
    key_info = _read_key_info(reader)
    sc, ic, text = read_ciphered_content(reader, "ciphered-content")
    return GeneralCiphering(tid, originator, recipient, date_time, other, key_info, sc, ic, text)


# --- general-signing -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GeneralSigning:
    """general-signing ``DF`` (brief §5.5): five header fields, content, signature.

    ``content`` is the signed APDU (plain or ciphered) and ``signature`` the raw ECDSA
    r ‖ s (64 bytes on P-256, 96 on P-384); both are OCTET STRINGs on the wire.
    """

    TAG: ClassVar[int] = GeneralTag.GENERAL_SIGNING

    transaction_id: bytes
    originator_system_title: bytes
    recipient_system_title: bytes
    date_time: bytes
    other_information: bytes
    content: bytes
    signature: bytes

    def header_fields(self) -> bytes:
        """len ‖ value of transaction-id .. other-information, as on the wire."""
        return header_fields(
            self.transaction_id,
            self.originator_system_title,
            self.recipient_system_title,
            self.date_time,
            self.other_information,
        )

    def encode(self) -> bytes:
        _check_date_time(self.date_time)
        return (
            bytes((self.TAG,))
            + self.header_fields()
            + encode_octet_string(self.content)
            + encode_octet_string(self.signature)
        )


@register(GeneralTag.GENERAL_SIGNING)
def _decode_general_signing(reader: Reader) -> GeneralSigning:
    tid, originator, recipient, date_time, other = _read_header(reader)
    content = reader.octet_string("content")
    signature = reader.octet_string("signature")
    return GeneralSigning(tid, originator, recipient, date_time, other, content, signature)
