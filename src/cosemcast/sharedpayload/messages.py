"""Identifiers, constants and bodies of the shared-payload scheme (specs/shared-payload.md §2-§6).

Theory of operation. Every message of the scheme is a standard general-ciphering APDU (``DD``,
brief §6.1); this module holds what those APDUs carry that the standard does not define:

* :class:`KpId`, the 8-byte transaction-id that names a payload key: u32 assignment epoch ‖ u32
  sequence, both big-endian (specs §3.1). Ordering a kp_id as a (epoch, sequence) pair is the
  same as ordering the 8 bytes as a big-endian u64.
* :class:`ControlBody`, the A-XDR structure inside a C2 (specs §5.2), carried as the body of a
  DATA-NOTIFICATION so that a standard tool that deciphers a C2 sees an ordinary APDU.
* :class:`AckBody`, the acknowledgement of a C2 or C1 (specs §6), carried as an unconfirmed
  ACTION-Request on the payload-key-control object, method 1 ``acknowledge``.
* :func:`message_kind`, which tells C1, C2 and acknowledgements apart from their headers.

Bodies travel inside authenticated ciphertext, yet their decoders are strict all the same: exact
element count, exact wire types, exact octet-string lengths, and the canonical encoding (the
bytes must re-encode identically). Anything else is a :class:`~cosemcast.errors.DecodeError`.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, cast

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.action import ActionRequestNormal
from cosemcast.apdu.common import (
    ABSENT,
    CosemMethodDescriptor,
    InvokeIdAndPriority,
    LongInvokeIdAndPriority,
)
from cosemcast.apdu.general import AgreedKey, GeneralCiphering, WrappedKey
from cosemcast.apdu.notifications import DataNotification
from cosemcast.axdr import (
    Data,
    DoubleLongUnsigned,
    Enumerated,
    OctetString,
    Structure,
    Unsigned,
)
from cosemcast.errors import DecodeError, EncodeError
from cosemcast.obis import Obis

__all__ = [
    "ASSIGNMENT_OBIS",
    "KP_ID_LENGTH",
    "PAYLOAD_KEY_CONTROL_OBIS",
    "SC_ACK",
    "SC_CONTROL_AGREED",
    "SC_CONTROL_WRAPPED",
    "SC_PAYLOAD",
    "SHARED_PAYLOAD_OBIS",
    "SYSTEM_TITLE_LENGTH",
    "AckBody",
    "AckKind",
    "AckRequest",
    "ControlBody",
    "ExtensionClassId",
    "KeyParameters",
    "KpId",
    "MessageKind",
    "PayloadKeyControlMethod",
    "message_kind",
]

SYSTEM_TITLE_LENGTH: Final = 8
KP_ID_LENGTH: Final = 8

# Security control bytes (brief §5.1; specs §4): suite 0 or 1, A and E set, Key_Set 0.
SC_PAYLOAD: Final = 0x30
SC_CONTROL_WRAPPED: Final = 0x30
SC_CONTROL_AGREED: Final = 0x31
# The acknowledgement is authenticated, not encrypted (specs §6).
SC_ACK: Final = 0x10


class ExtensionClassId(enum.IntEnum):
    """Manufacturer-specific interface classes (Blue Book 4.1.4: 8192..32767; specs §8)."""

    SHARED_PAYLOAD = 8960
    PAYLOAD_KEY_CONTROL = 8961
    ASSIGNMENT = 8962


# Manufacturer-specific OBIS codes: value group C in 128..254 (dlms.com FAQ; specs §8).
SHARED_PAYLOAD_OBIS: Final = Obis(0, 0, 128, 1, 0, 255)
PAYLOAD_KEY_CONTROL_OBIS: Final = Obis(0, 0, 128, 2, 0, 255)
ASSIGNMENT_OBIS: Final = Obis(0, 0, 128, 3, 0, 255)


class PayloadKeyControlMethod(enum.IntEnum):
    """Methods of the payload-key-control class (specs §8.2)."""

    ACKNOWLEDGE = 1


class KeyParameters(enum.IntEnum):
    """agreed-key key-parameters of a C2 (specs §4.3); the high bit marks our extension."""

    EPHEMERAL_STATIC = 0x81
    ONE_PASS_UNIFIED = 0x82


class AckRequest(enum.IntFlag):
    """What the meter asks the head-end to acknowledge (control body element 5)."""

    NONE = 0
    CONTROL = 0x01
    PAYLOADS = 0x02


class AckKind(enum.IntEnum):
    """What an acknowledgement acknowledges (ack body element 3)."""

    CONTROL = 0
    PAYLOAD = 1


class MessageKind(enum.Enum):
    """The three shared-payload messages, told apart by their general-ciphering header."""

    PAYLOAD = "C1"
    CONTROL = "C2"
    ACK = "ack"


_KP_ID = struct.Struct(">II")


@dataclass(frozen=True, slots=True, order=True)
class KpId:
    """The name of one payload key: assignment epoch and draw sequence (specs §3.1)."""

    epoch: int
    sequence: int

    def __post_init__(self) -> None:
        for name, value in (("epoch", self.epoch), ("sequence", self.sequence)):
            if not 0 <= value <= 0xFFFFFFFF:
                raise ValueError(f"kp_id {name} {value} is not a u32")

    def to_bytes(self) -> bytes:
        return _KP_ID.pack(self.epoch, self.sequence)

    @classmethod
    def from_bytes(cls, raw: bytes) -> KpId:
        if len(raw) != KP_ID_LENGTH:
            raise DecodeError(
                f"a kp_id of {len(raw)} bytes",
                offset=0,
                expected=f"{KP_ID_LENGTH} bytes: u32 epoch ‖ u32 sequence",
            )
        epoch, sequence = _KP_ID.unpack(raw)
        return cls(epoch, sequence)

    def __str__(self) -> str:
        return f"{self.epoch:08X}:{self.sequence:08X}"


# --- strict structure reading ------------------------------------------------------------------

# An element is described by its A-XDR class, or by an int: an octet-string of that length.
_Shape = Sequence[type | int]


def _read_structure(value: Data, shape: _Shape, what: str) -> tuple[Data, ...]:
    if type(value) is not Structure or len(value) != len(shape):
        raise DecodeError(f"{what} is not a structure of {len(shape)} elements", expected="02")
    for index, (element, expected) in enumerate(zip(value, shape, strict=True)):
        if isinstance(expected, int):
            if type(element) is not OctetString or len(element) != expected:
                raise DecodeError(
                    f"{what} element {index + 1} is not a {expected}-byte octet-string",
                    expected=f"09 {expected:02X}",
                )
        elif type(element) is not expected:
            raise DecodeError(
                f"{what} element {index + 1} is a {type(element).__name__}",
                expected=expected.__name__,
            )
    return tuple(value)


def _u32(value: int, what: str) -> DoubleLongUnsigned:
    if not 0 <= value <= 0xFFFFFFFF:
        raise EncodeError(f"{what} {value} does not fit a double-long-unsigned")
    return DoubleLongUnsigned(value)


# --- the control body (C2) ---------------------------------------------------------------------

_CONTROL_SHAPE: Final = (
    KP_ID_LENGTH,
    DoubleLongUnsigned,
    DoubleLongUnsigned,
    DoubleLongUnsigned,
    Unsigned,
)
_NO_INVOKE: Final = LongInvokeIdAndPriority(0)


@dataclass(frozen=True, slots=True)
class ControlBody:
    """The content of a C2 (specs §5.2)::

    ControlBody ::= structure {
        kp-id                      octet-string(8),   -- = the transaction-id
        not-before                 double-long-unsigned,  -- Unix seconds, UTC
        not-after                  double-long-unsigned,
        first-invocation-counter   double-long-unsigned,  -- lowest IC of any C1 under Kp
        ack-request                unsigned }              -- AckRequest bits
    """

    kp_id: KpId
    not_before: int
    not_after: int
    first_invocation_counter: int
    ack_request: AckRequest = AckRequest.CONTROL

    def to_data(self) -> Structure:
        if self.not_after < self.not_before:
            raise EncodeError("not-after is before not-before")
        if not 0 <= int(self.ack_request) <= 0xFF:
            raise EncodeError(f"ack-request {int(self.ack_request)} is not a byte")
        return Structure(
            (
                OctetString(self.kp_id.to_bytes()),
                _u32(self.not_before, "not-before"),
                _u32(self.not_after, "not-after"),
                _u32(self.first_invocation_counter, "first-invocation-counter"),
                Unsigned(int(self.ack_request)),
            )
        )

    def to_apdu(self) -> bytes:
        """The plaintext of a C2: ``0F 00000000 00 <ControlBody>`` (specs §5.2)."""
        return DataNotification(_NO_INVOKE, None, self.to_data()).encode()

    @classmethod
    def from_data(cls, value: Data) -> ControlBody:
        fields = _read_structure(value, _CONTROL_SHAPE, "the control body")
        kp_id = cast(bytes, fields[0])
        not_before, not_after, first_ic, flags = (cast(int, f) for f in fields[1:])
        if not_after < not_before:
            raise DecodeError("the control body's not-after is before its not-before")
        if flags & ~int(AckRequest.CONTROL | AckRequest.PAYLOADS):
            raise DecodeError(f"ack-request 0x{flags:02X} sets undefined bits", expected="0..3")
        return cls(
            KpId.from_bytes(kp_id),
            int(not_before),
            int(not_after),
            int(first_ic),
            AckRequest(flags),
        )

    @classmethod
    def from_apdu(cls, plain: bytes) -> ControlBody:
        """Read a C2 plaintext; only the exact encoding :meth:`to_apdu` writes is accepted."""
        apdu = decode_apdu(plain)
        if not isinstance(apdu, DataNotification):
            raise DecodeError(
                f"a C2 holds a {type(apdu).__name__}", offset=0, expected="DATA-NOTIFICATION 0F"
            )
        body = cls.from_data(apdu.notification_body)
        if body.to_apdu() != bytes(plain):
            raise DecodeError(
                "the C2 plaintext is not in its canonical encoding",
                expected="0F 00000000 00 02 05 ...",
            )
        return body


# --- the acknowledgement body ------------------------------------------------------------------

_ACK_SHAPE: Final = (KP_ID_LENGTH, DoubleLongUnsigned, Enumerated)
_ACK_INVOKE: Final = InvokeIdAndPriority(invoke_id=1, confirmed=False, high_priority=False)
_ACK_METHOD: Final = CosemMethodDescriptor(
    ExtensionClassId.PAYLOAD_KEY_CONTROL,
    PAYLOAD_KEY_CONTROL_OBIS,
    PayloadKeyControlMethod.ACKNOWLEDGE,
)


@dataclass(frozen=True, slots=True)
class AckBody:
    """The content of an acknowledgement (specs §6.1)::

    AckBody ::= structure {
        kp-id              octet-string(8),
        acknowledged-ic    double-long-unsigned,   -- IC of the C2 or C1 acknowledged
        kind               enum { control(0), payload(1) } }
    """

    kp_id: KpId
    acknowledged_ic: int
    kind: AckKind

    def to_apdu(self) -> bytes:
        """``C3 01 01 2301 0000800200FF 01 01 <AckBody>``: unconfirmed ACTION, method 1."""
        params = Structure(
            (
                OctetString(self.kp_id.to_bytes()),
                _u32(self.acknowledged_ic, "acknowledged-ic"),
                Enumerated(int(self.kind)),
            )
        )
        return ActionRequestNormal(_ACK_METHOD, params, _ACK_INVOKE).encode()

    @classmethod
    def from_apdu(cls, plain: bytes) -> AckBody:
        apdu = decode_apdu(plain)
        if not isinstance(apdu, ActionRequestNormal) or apdu.cosem_method_descriptor != _ACK_METHOD:
            raise DecodeError(
                "an acknowledgement must invoke payload-key-control method 1",
                offset=0,
                expected="C3 01 01 2301 0000800200FF 01",
            )
        params = apdu.method_invocation_parameters
        if params is ABSENT:
            raise DecodeError("an acknowledgement without parameters", expected="01 02 03 ...")
        fields = _read_structure(params, _ACK_SHAPE, "the acknowledgement body")
        kp_id = cast(bytes, fields[0])
        ic, kind = cast(int, fields[1]), cast(int, fields[2])
        try:
            ack_kind = AckKind(int(kind))
        except ValueError as exc:
            raise DecodeError(f"acknowledgement kind {int(kind)}", expected="0 or 1") from exc
        body = cls(KpId.from_bytes(kp_id), int(ic), ack_kind)
        if body.to_apdu() != bytes(plain):
            raise DecodeError(
                "the acknowledgement is not in its canonical encoding", expected="C3 01 01 ..."
            )
        return body


# --- telling the messages apart ----------------------------------------------------------------


def message_kind(apdu: GeneralCiphering) -> MessageKind:
    """C2 carries a wrapped or agreed key; C1 has no key-info and no recipient; an
    acknowledgement has no key-info, a recipient and SC ``10`` (specs §2)."""
    info = apdu.key_info
    if isinstance(info, WrappedKey | AgreedKey):
        return MessageKind.CONTROL
    if info is None and not apdu.recipient_system_title:
        return MessageKind.PAYLOAD
    if info is None and apdu.security_control == SC_ACK:
        return MessageKind.ACK
    raise DecodeError(
        "general-ciphering APDU is not a shared payload, control message or acknowledgement",
        expected="see specs/shared-payload.md §2",
    )
