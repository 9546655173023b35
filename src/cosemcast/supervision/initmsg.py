"""The initialization message: body, signature S, encryption under Ki (specs/supervision.md §5).

Theory of operation. The supervision centre tells a meter "load I0 for head-end H" (claims 3, 5,
6, 9, 11, 12). The message is built in three layers, sign-then-encrypt (brief §11):

1. **body**: a fixed-shape A-XDR structure (§5.1) with the message type, the action, the meter
   and head-end system titles, I0, the validity window T (not-before, not-after; u64 POSIX
   seconds, UTC) and a per-meter sequence number (u32, from 1);
2. **S**: a general-signing APDU ``DF`` (brief §5.5) from the centre to the meter whose content
   is the body, signed with ECDSA P-256 / SHA-256, raw r ‖ s, RFC 6979 deterministic nonces,
   over the Green Book signed bytes (every field after the tag, with its length);
3. **encryption**: a general-ciphering APDU ``DD`` (brief §6.1) from the centre to the meter,
   key-info absent (Ki is pre-shared), SC ``31`` (suite 1, authenticated and encrypted),
   IC = the sequence number, AK empty, Green Book AAD (the header fields are authenticated),
   whose plaintext is the whole ``DF``.

:meth:`InitMessage.seal` builds the bytes; :func:`unseal` undoes the layers in the meter's
order (tag under Ki, then S, then the body) and checks that the layers agree with each other.
The policy checks (meter ID, window, sequence) are in :mod:`cosemcast.supervision.validation`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import IntEnum

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.general import GeneralCiphering, GeneralSigning
from cosemcast.axdr import (
    DoubleLongUnsigned,
    Enumerated,
    Long64Unsigned,
    OctetString,
    Structure,
    encode_data,
)
from cosemcast.errors import DecodeError, EncodeError
from cosemcast.security.protection import (
    PresharedKey,
    RecipientKeys,
    cipher_general,
    decipher_general,
    sign_general,
    verify_general,
)
from cosemcast.supervision._body import as_bytes, as_int, read_structure
from cosemcast.supervision.kdf import I0_LENGTH, SYSTEM_TITLE_LENGTH

__all__ = [
    "INIT_SECURITY_CONTROL",
    "KI_LENGTH",
    "InitAction",
    "InitMessage",
    "MessageType",
    "SealedInit",
    "check_signing_curve",
    "decode_init_body",
    "key_fingerprint",
    "public_key_bytes",
    "unseal",
]

INIT_SECURITY_CONTROL = 0x31  # suite 1, A = 1, E = 1 (brief §5.1)
KI_LENGTH = 16
_U32_MAX = 0xFFFFFFFF
_U64_MAX = 0xFFFFFFFFFFFFFFFF
_ZERO_I0 = bytes(I0_LENGTH)


class MessageType(IntEnum):
    """First element of every supervision body: what the structure is (specs §5.1, §7.1)."""

    INITIALIZATION = 1
    ENROLLMENT = 2


class InitAction(IntEnum):
    """What the meter does with the head-end named in the message (specs §5.1)."""

    ASSIGN = 1
    """Add the head-end (or re-key it if already assigned): Ks = F(Kt, I0)."""
    ASSIGN_EXCLUSIVE = 2
    """Change of owner ([0057]): the head-end replaces every other one."""
    REVOKE = 3
    """Retire the head-end's Ks; I0 is sixteen zero bytes and no key is derived."""


_INIT_SHAPE = (
    Enumerated,
    Enumerated,
    SYSTEM_TITLE_LENGTH,
    SYSTEM_TITLE_LENGTH,
    I0_LENGTH,
    Long64Unsigned,
    Long64Unsigned,
    DoubleLongUnsigned,
)


def _check_title(value: bytes, what: str, error: type[EncodeError] | type[DecodeError]) -> None:
    if len(value) != SYSTEM_TITLE_LENGTH:
        raise error(f"{what} is an 8-byte system title, got {len(value)} bytes")


def check_signing_curve(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> None:
    """The centre signs with P-256 (suite 1); anything else is the caller's mistake."""
    if key.curve.name != "secp256r1":
        raise ValueError(f"the supervision centre signs with P-256, not {key.curve.name}")


def public_key_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    """The X9.62 uncompressed point ``04 ‖ X ‖ Y`` (65 bytes for P-256)."""
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def key_fingerprint(key: ec.EllipticCurvePublicKey) -> str:
    """First 8 bytes of SHA-256 over the uncompressed point, in hex: names a key in logs."""
    return hashlib.sha256(public_key_bytes(key)).hexdigest()[:16].upper()


@dataclass(frozen=True, slots=True)
class InitMessage:
    """The body of an initialization message (specs §5.1). ``i0`` never shows in a repr."""

    meter_id: bytes
    head_end_id: bytes
    i0: bytes = field(repr=False)
    not_before: int
    not_after: int
    sequence: int
    action: InitAction = InitAction.ASSIGN

    def encode_body(self) -> bytes:
        """The A-XDR body, exactly the bytes that the signature S covers (specs §5.1)."""
        _check_title(self.meter_id, "meter-id", EncodeError)
        _check_title(self.head_end_id, "head-end-id", EncodeError)
        try:
            action = InitAction(self.action)
        except ValueError as exc:
            raise EncodeError(f"action {self.action} is not defined") from exc
        if len(self.i0) != I0_LENGTH:
            raise EncodeError(f"I0 is {I0_LENGTH} bytes, got {len(self.i0)}")
        if action is InitAction.REVOKE and self.i0 != _ZERO_I0:
            raise EncodeError("a revocation carries an all-zero I0")
        if not (0 <= self.not_before <= self.not_after <= _U64_MAX):
            raise EncodeError("the validity window needs 0 <= not-before <= not-after < 2^64")
        if not 1 <= self.sequence <= _U32_MAX:
            raise EncodeError(f"sequence {self.sequence} is out of range 1..2^32-1")
        return encode_data(
            Structure(
                (
                    Enumerated(MessageType.INITIALIZATION),
                    Enumerated(action),
                    OctetString(self.meter_id),
                    OctetString(self.head_end_id),
                    OctetString(self.i0),
                    Long64Unsigned(self.not_before),
                    Long64Unsigned(self.not_after),
                    DoubleLongUnsigned(self.sequence),
                )
            )
        )

    def seal(
        self, centre_signing_key: ec.EllipticCurvePrivateKey, ki: bytes, *, centre_id: bytes
    ) -> bytes:
        """Sign with the centre's key, then encrypt under ``Ki`` (specs §5.2); return the ``DD``.

        Deterministic (RFC 6979 and IC = sequence): the same inputs give the same bytes.
        """
        check_signing_curve(centre_signing_key)
        _check_title(centre_id, "the centre ID", EncodeError)
        if len(ki) != KI_LENGTH:
            raise EncodeError(f"Ki is {KI_LENGTH} bytes, got {len(ki)}")
        signed = sign_general(
            self.encode_body(),
            signing_private_key=centre_signing_key,
            transaction_id=b"",
            originator_system_title=centre_id,
            recipient_system_title=self.meter_id,
            deterministic=True,
        )
        return cipher_general(
            signed.encode(),
            key=PresharedKey(ki),
            security_control=INIT_SECURITY_CONTROL,
            invocation_counter=self.sequence,
            transaction_id=b"",
            originator_system_title=centre_id,
            recipient_system_title=self.meter_id,
        ).encode()


def decode_init_body(raw: bytes) -> InitMessage:
    """Read a body (specs §5.1) strictly; raise :class:`DecodeError` on anything else."""
    fields = read_structure(raw, _INIT_SHAPE, "initialization body")
    kind, action = as_int(fields[0]), as_int(fields[1])
    meter_id, head_end_id, i0 = as_bytes(fields[2]), as_bytes(fields[3]), as_bytes(fields[4])
    not_before, not_after, sequence = as_int(fields[5]), as_int(fields[6]), as_int(fields[7])
    if kind != MessageType.INITIALIZATION:
        raise DecodeError(f"message type {kind}", offset=3, expected="1 (initialization)")
    try:
        parsed_action = InitAction(action)
    except ValueError as exc:
        raise DecodeError(
            f"action {action} is not defined", offset=5, expected="1, 2 or 3"
        ) from exc
    if parsed_action is InitAction.REVOKE and i0 != _ZERO_I0:
        raise DecodeError("a revocation must carry an all-zero I0", expected="16 zero bytes")
    if not_before > not_after:
        raise DecodeError("not-before is after not-after", expected="not-before <= not-after")
    if sequence == 0:
        raise DecodeError("sequence 0 is reserved", expected="a sequence number >= 1")
    return InitMessage(meter_id, head_end_id, i0, not_before, not_after, sequence, parsed_action)


@dataclass(frozen=True, slots=True)
class SealedInit:
    """An unsealed message: what the centre signed, and the envelope's recipient."""

    centre_id: bytes
    recipient_id: bytes
    message: InitMessage


def _require_empty(value: bytes, what: str) -> None:
    if value:
        raise DecodeError(f"{what} must be empty in an initialization message", expected="00")


def unseal(raw: bytes, *, ki: bytes, centre_public_key: ec.EllipticCurvePublicKey) -> SealedInit:
    """Check the tag under ``Ki``, then the centre's signature, then read the body (§6.1 steps 1-5).

    Raises :class:`DecodeError` (malformed, or layers that disagree),
    :class:`~cosemcast.errors.AuthenticationFailed` (tag or signature). Nothing of the content is
    returned unless both verify.
    """
    check_signing_curve(centre_public_key)
    if len(ki) != KI_LENGTH:
        raise ValueError(f"Ki is {KI_LENGTH} bytes, got {len(ki)}")
    outer = decode_apdu(raw)
    if not isinstance(outer, GeneralCiphering):
        raise DecodeError(
            f"an initialization message is general-ciphering, not {type(outer).__name__}",
            offset=0,
            expected="DD",
        )
    if outer.key_info is not None:
        raise DecodeError("key-info must be absent (Ki is pre-shared)", expected="00")
    if outer.security_control != INIT_SECURITY_CONTROL:
        raise DecodeError(
            f"security control 0x{outer.security_control:02X}",
            expected=f"0x{INIT_SECURITY_CONTROL:02X}",
        )
    _check_title(outer.recipient_system_title, "recipient-system-title", DecodeError)
    _require_empty(outer.transaction_id, "transaction-id")
    _require_empty(outer.date_time, "date-time")
    _require_empty(outer.other_information, "other-information")
    plain = decipher_general(outer, RecipientKeys(preshared_key=bytes(ki))).plain
    inner = decode_apdu(plain)
    if not isinstance(inner, GeneralSigning):
        raise DecodeError(
            f"the ciphered content is {type(inner).__name__}, not general-signing",
            expected="DF",
        )
    body = verify_general(inner, centre_public_key)
    if inner.originator_system_title != outer.originator_system_title:
        raise DecodeError("the signed and the ciphered originators differ", expected="one centre")
    if inner.recipient_system_title != outer.recipient_system_title:
        raise DecodeError("the signed and the ciphered recipients differ", expected="one meter")
    _require_empty(inner.transaction_id, "transaction-id")
    _require_empty(inner.date_time, "date-time")
    _require_empty(inner.other_information, "other-information")
    message = decode_init_body(body)
    if outer.invocation_counter != message.sequence:
        raise DecodeError(
            f"IC {outer.invocation_counter} differs from sequence {message.sequence}",
            expected="IC = sequence",
        )
    return SealedInit(outer.originator_system_title, outer.recipient_system_title, message)
