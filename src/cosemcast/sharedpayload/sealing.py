"""The cryptographic core of the shared-payload scheme: seal and open C1, C2 and acknowledgements.

Theory of operation (specs/shared-payload.md §4-§6). Everything is a general-ciphering APDU
protected by :func:`~cosemcast.security.general_protection.cipher_general` with the Green Book
AAD (``SC ‖ AK ‖`` the five length-prefixed header fields, specs/ciphering.md §2) and an empty AK:

* **C1** (:func:`seal_payload`): content key ``Kp`` (key-info absent: the head-ends learnt it
  from a C2), recipient empty, so the tag is the same for every head-end; IV = meter ST ‖ IC.
* **C2** (:func:`seal_control`): content key ``Kp`` again, and ``Kp`` travels in the key-info,
  either ``wrapped-key`` = RFC 3394 ``Wrap(Ks, Kp)`` (kek-id 0 = the Ks shared with the named
  recipient) or ``agreed-key`` = ephemeral Q ‖ ``Wrap(KEK, Kp)`` with KEK from ECDH P-256 and
  the suite-1 KDF (AlgorithmID AES-WRAP-128). The plaintext is the control body.
  :func:`open_control` recovers ``Kp``, verifies the tag, and reads the body.
* **Acknowledgement** (:func:`seal_ack` / :func:`open_ack`): authenticated only (SC ``10``)
  under ``Ka``, a key derived from the recipient's K1 secret (Ks, or the KEK of that C2) and
  bound to (meter, head-end, kp_id) (:func:`derive_ack_key`); its IC is the IC of the message
  acknowledged.

Receive order: framing checks, key recovery (unwrap integrity raises
:class:`~cosemcast.errors.AuthenticationFailed`), tag, and only then is plaintext read. The
stateful rules (counters, windows, retirement) live in :mod:`.meter` and :mod:`.headend`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFHMAC, CounterLocation, Mode

from cosemcast.apdu.general import AgreedKey, GeneralCiphering, KekId, WrappedKey
from cosemcast.errors import DecodeError, EncodeError, KeyUnavailableError
from cosemcast.security import kdf, keywrap
from cosemcast.security.gcm import SymmetricKeys, unprotect
from cosemcast.security.general_protection import (
    PresharedKey,
    RecipientKeys,
    WrapContentKey,
    cipher_general,
    decipher_general,
)
from cosemcast.sharedpayload.errors import UnauthenticatedOrigin
from cosemcast.sharedpayload.messages import (
    KP_ID_LENGTH,
    SC_ACK,
    SC_CONTROL_AGREED,
    SC_CONTROL_WRAPPED,
    SC_PAYLOAD,
    SYSTEM_TITLE_LENGTH,
    AckBody,
    ControlBody,
    KeyParameters,
    KpId,
)

__all__ = [
    "ACK_KEY_LABEL",
    "KEY_LENGTH",
    "HeadEndAssignment",
    "OpenedControl",
    "PayloadKey",
    "Rng",
    "SealedControl",
    "check_payload_shape",
    "derive_ack_key",
    "ephemeral_key_from",
    "open_ack",
    "open_control",
    "open_payload",
    "open_payload_parts",
    "seal_ack",
    "seal_control",
    "seal_payload",
    "split_payload",
]

KEY_LENGTH: Final = 16
ACK_KEY_LABEL: Final = b"cosemcast Ka"
DATA_NOTIFICATION_TAG: Final = 0x0F

Rng = Callable[[int], bytes]
"""Randomness source: ``rng(n)`` returns ``n`` random bytes (``secrets.token_bytes``)."""

_P256 = kdf.suite_parameters(1)
_P256_ORDER: Final = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_XY_LENGTH: Final = 2 * _P256.coordinate_length
_WRAPPED_LENGTH: Final = keywrap.wrapped_length(KEY_LENGTH)
_AGREED_DATA_LENGTH: Final = _XY_LENGTH + _WRAPPED_LENGTH


@dataclass(frozen=True, slots=True)
class PayloadKey:
    """One payload key ``Kp`` and what its C2 announces about it (specs §3)."""

    kp_id: KpId
    key: bytes = field(repr=False)
    not_before: int
    not_after: int
    first_invocation_counter: int

    def __post_init__(self) -> None:
        if len(self.key) != KEY_LENGTH:
            raise ValueError(f"a payload key is {KEY_LENGTH} bytes, got {len(self.key)}")
        if self.not_after < self.not_before:
            raise ValueError("a payload key's not-after is before its not-before")


@dataclass(frozen=True, slots=True)
class HeadEndAssignment:
    """An assigned head-end and its K1: the Ks shared with it, or its public key (claim 2)."""

    system_title: bytes
    shared_key: bytes | None = field(default=None, repr=False)
    agreement_public_key: ec.EllipticCurvePublicKey | None = None

    def __post_init__(self) -> None:
        if len(self.system_title) != SYSTEM_TITLE_LENGTH:
            raise ValueError(f"a system title is 8 bytes, got {len(self.system_title)}")
        if (self.shared_key is None) == (self.agreement_public_key is None):
            raise ValueError("a head-end has exactly one K1: a shared key or a public key")
        if self.shared_key is not None and len(self.shared_key) != KEY_LENGTH:
            raise ValueError(f"Ks is {KEY_LENGTH} bytes, got {len(self.shared_key)}")
        key = self.agreement_public_key
        if key is not None and key.curve.name != _P256.curve.name:
            raise ValueError(f"the head-end public key is on {key.curve.name}, not P-256")


@dataclass(frozen=True, slots=True)
class SealedControl:
    """A C2 and the acknowledgement key ``Ka`` the meter keeps to check its acknowledgement."""

    apdu: GeneralCiphering
    ack_key: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class OpenedControl:
    """A verified C2: the payload key, the control body, and ``Ka`` for acknowledgements."""

    payload_key: bytes = field(repr=False)
    body: ControlBody
    ack_key: bytes = field(repr=False)


def _check_title(value: bytes, what: str) -> None:
    if len(value) != SYSTEM_TITLE_LENGTH:
        raise EncodeError(f"{what} must be 8 bytes, got {len(value)}")


def derive_ack_key(
    secret: bytes, *, meter_system_title: bytes, head_end_system_title: bytes, kp_id: KpId
) -> bytes:
    """``Ka``: SP 800-108r1 counter-mode KDF, HMAC-SHA-256, label ``"cosemcast Ka"``, context
    meter ST ‖ head-end ST ‖ kp_id, 128 bits (specs §6.2). ``secret`` is Ks or the C2's KEK."""
    _check_title(meter_system_title, "the meter system title")
    _check_title(head_end_system_title, "the head-end system title")
    derive = KBKDFHMAC(
        algorithm=hashes.SHA256(),
        mode=Mode.CounterMode,
        length=KEY_LENGTH,
        rlen=4,
        llen=4,
        location=CounterLocation.BeforeFixed,
        label=ACK_KEY_LABEL,
        context=bytes(meter_system_title) + bytes(head_end_system_title) + kp_id.to_bytes(),
        fixed=None,
    )
    return derive.derive(bytes(secret))


def ephemeral_key_from(rng: Rng) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key whose scalar is drawn from ``rng`` by rejection sampling."""
    for _ in range(64):
        scalar = int.from_bytes(rng(32), "big")
        if 0 < scalar < _P256_ORDER:
            return ec.derive_private_key(scalar, _P256.curve)
    raise ValueError("the random source keeps returning scalars outside 1..n-1")


def _agreement_kek(z: bytes, *, meter_system_title: bytes, head_end_system_title: bytes) -> bytes:
    return kdf.derive_agreed_key(
        z,
        suite=1,
        algorithm=kdf.AlgorithmId.AES_WRAP_128,
        originator_system_title=meter_system_title,
        recipient_system_title=head_end_system_title,
    )


# --- C1 ----------------------------------------------------------------------------------------


def seal_payload(
    key: PayloadKey, *, meter_system_title: bytes, invocation_counter: int, notification: bytes
) -> GeneralCiphering:
    """C1: ``notification`` (an encoded DATA-NOTIFICATION) encrypted once under Kp (specs §4.1)."""
    if not notification or notification[0] != DATA_NOTIFICATION_TAG:
        raise EncodeError("a shared payload carries a DATA-NOTIFICATION (tag 0F)")
    if invocation_counter < key.first_invocation_counter:
        raise EncodeError(
            f"invocation counter {invocation_counter} is below the first C1 counter "
            f"{key.first_invocation_counter} announced for kp_id {key.kp_id}"
        )
    return cipher_general(
        notification,
        key=PresharedKey(key.key),
        security_control=SC_PAYLOAD,
        invocation_counter=invocation_counter,
        transaction_id=key.kp_id.to_bytes(),
        originator_system_title=meter_system_title,
        recipient_system_title=b"",
    )


def check_payload_shape(apdu: GeneralCiphering) -> KpId:
    """The header rules of a C1 (specs §4.1); returns its kp_id or raises DecodeError."""
    if apdu.recipient_system_title:
        raise DecodeError("a C1 has an empty recipient-system-title", expected="00")
    if apdu.key_info is not None:
        raise DecodeError("a C1 carries no key-info", expected="00")
    if len(apdu.originator_system_title) != SYSTEM_TITLE_LENGTH:
        raise DecodeError("a C1 names its meter in 8 bytes", expected="08 <meter ST>")
    if apdu.security_control != SC_PAYLOAD:
        raise DecodeError(
            f"a C1 with SC 0x{apdu.security_control:02X}", expected=f"SC {SC_PAYLOAD:02X}"
        )
    return KpId.from_bytes(apdu.transaction_id)


# The wire prefix of every C1 (specs §4.1): DD, 08 <kp_id>, 08 <meter ST>, then empty
# recipient, date-time and other-information and an absent key-info.
_C1_HEADER_END: Final = 22
_C1_EMPTY_FIELDS: Final = b"\x00\x00\x00\x00"


def split_payload(raw: bytes) -> tuple[bytes, int, bytes] | None:
    """The C1 fast path: ``(header, invocation counter, ciphered text)`` of an encoded C1 in
    the exact layout of specs §4.1 with SC ``30``, or None for anything else.

    ``header`` is ``08 kp_id 08 meter-ST 00 00 00``, the five length-prefixed header fields
    (so the AAD is ``30 ‖ header``, specs §4.4). None means "not this layout", not "invalid":
    the caller then decodes the bytes in full (:func:`~cosemcast.apdu.decode_apdu`), which
    accepts or rejects them exactly as before; every C1 this returns a value for decodes to a
    general-ciphering APDU with these fields that :func:`check_payload_shape` accepts.
    """
    size = len(raw)
    if (
        size < _C1_HEADER_END + 6
        or raw[0] != 0xDD
        or raw[1] != KP_ID_LENGTH
        or raw[10] != SYSTEM_TITLE_LENGTH
        or raw[19:23] != _C1_EMPTY_FIELDS
    ):
        return None
    n = raw[23]
    pos = 24
    if n >= 0x80:
        if n == 0x81:
            n, pos = raw[24], 25
        elif n == 0x82 and size > 25:
            n, pos = raw[24] << 8 | raw[25], 26
        else:
            return None
    if pos + n != size or n < 5 or raw[pos] != SC_PAYLOAD:
        return None
    return (
        raw[1:_C1_HEADER_END],
        int.from_bytes(raw[pos + 1 : pos + 5], "big"),
        raw[pos + 5 :],
    )


def open_payload(apdu: GeneralCiphering, keys: SymmetricKeys) -> bytes:
    """Verify a C1 under ``keys`` (Kp, empty AK) and return its DATA-NOTIFICATION bytes.

    The same computation as :func:`decipher_general`, with the ``SymmetricKeys`` of Kp built
    once by the caller (the head-end ingest path). Shape checks are the caller's.
    """
    return open_payload_parts(
        keys,
        apdu.originator_system_title,
        apdu.invocation_counter,
        apdu.ciphered_text,
        apdu.header_fields(),
    )


def open_payload_parts(
    keys: SymmetricKeys,
    meter_system_title: bytes,
    invocation_counter: int,
    ciphered_text: bytes,
    header: bytes,
) -> bytes:
    """:func:`open_payload` on the fields of a C1 (``header`` = its five length-prefixed header
    fields, as :func:`split_payload` returns them): tag, then the DATA-NOTIFICATION rule."""
    plain = unprotect(
        SC_PAYLOAD, keys, meter_system_title, invocation_counter, ciphered_text, header
    )
    if not plain or plain[0] != DATA_NOTIFICATION_TAG:
        raise DecodeError("a C1 must hold a DATA-NOTIFICATION", offset=0, expected="0F")
    return plain


# --- C2 ----------------------------------------------------------------------------------------


def seal_control(
    key: PayloadKey,
    body: ControlBody,
    *,
    meter_system_title: bytes,
    head_end: HeadEndAssignment,
    invocation_counter: int,
    rng: Rng,
    meter_agreement_key: ec.EllipticCurvePrivateKey | None = None,
) -> SealedControl:
    """C2 for ``head_end`` (specs §4.2, §4.3).

    With a public-key K1, ``meter_agreement_key`` (the meter's static P-256 key) selects the
    One-Pass Unified Model (key-parameters ``82``, the meter is authenticated); without it the
    C2 is ephemeral-static only (``81``), which head-ends refuse unless told otherwise.
    """
    _check_title(meter_system_title, "the meter system title")
    if body.kp_id != key.kp_id:
        raise EncodeError("the control body names another kp_id than the payload key")
    if invocation_counter >= body.first_invocation_counter:
        raise EncodeError("a C2's invocation counter must be below the first C1 counter")
    tid = key.kp_id.to_bytes()
    plain = body.to_apdu()
    if head_end.shared_key is not None:
        apdu = cipher_general(
            plain,
            key=WrapContentKey(head_end.shared_key, key.key),
            security_control=SC_CONTROL_WRAPPED,
            invocation_counter=invocation_counter,
            transaction_id=tid,
            originator_system_title=meter_system_title,
            recipient_system_title=head_end.system_title,
        )
        secret = head_end.shared_key
    else:
        peer = head_end.agreement_public_key
        if peer is None:
            raise EncodeError("the head-end has no K1")
        ephemeral = ephemeral_key_from(rng)
        z = kdf.ecdh_z(ephemeral, peer)
        params = KeyParameters.EPHEMERAL_STATIC
        if meter_agreement_key is not None:
            if meter_agreement_key.curve.name != _P256.curve.name:
                raise EncodeError("the meter's agreement key must be on P-256")
            z += kdf.ecdh_z(meter_agreement_key, peer)
            params = KeyParameters.ONE_PASS_UNIFIED
        secret = _agreement_kek(
            z, meter_system_title=meter_system_title, head_end_system_title=head_end.system_title
        )
        del z
        info = AgreedKey(
            bytes((params,)),
            kdf.public_key_to_xy(ephemeral.public_key()) + keywrap.wrap_key(secret, key.key),
        )
        sealed = cipher_general(
            plain,
            key=PresharedKey(key.key),
            security_control=SC_CONTROL_AGREED,
            invocation_counter=invocation_counter,
            transaction_id=tid,
            originator_system_title=meter_system_title,
            recipient_system_title=head_end.system_title,
        )
        apdu = replace(sealed, key_info=info)
    ack_key = derive_ack_key(
        secret,
        meter_system_title=meter_system_title,
        head_end_system_title=head_end.system_title,
        kp_id=key.kp_id,
    )
    return SealedControl(apdu, ack_key)


def _recover_agreed(
    apdu: GeneralCiphering,
    info: AgreedKey,
    *,
    agreement_private_key: ec.EllipticCurvePrivateKey | None,
    meter_agreement_public_key: ec.EllipticCurvePublicKey | None,
    allow_unauthenticated: bool,
) -> tuple[bytes, bytes]:
    if len(info.key_parameters) != 1 or info.key_parameters[0] not in set(KeyParameters):
        raise DecodeError(
            f"C2 key-parameters {info.key_parameters.hex().upper() or 'empty'}",
            expected="81 or 82",
        )
    params = KeyParameters(info.key_parameters[0])
    if len(info.key_ciphered_data) != _AGREED_DATA_LENGTH:
        raise DecodeError(
            f"C2 key-ciphered-data of {len(info.key_ciphered_data)} bytes",
            expected=f"{_AGREED_DATA_LENGTH} bytes: X ‖ Y ‖ Wrap(KEK, Kp)",
        )
    if params is KeyParameters.EPHEMERAL_STATIC:
        if meter_agreement_public_key is not None:
            raise UnauthenticatedOrigin(
                "C2 uses unauthenticated key agreement (81) for a meter with a known static key"
            )
        if not allow_unauthenticated:
            raise UnauthenticatedOrigin(
                "C2 uses unauthenticated key agreement (81) and the policy refuses it"
            )
    elif meter_agreement_public_key is None:
        raise KeyUnavailableError("no static agreement key of the meter to open a C2 (82)")
    if agreement_private_key is None:
        raise KeyUnavailableError("no agreement private key to open a C2 with agreed-key")
    data = info.key_ciphered_data
    ephemeral = kdf.public_key_from_xy(_P256.curve, data[:_XY_LENGTH])
    z = kdf.ecdh_z(agreement_private_key, ephemeral)
    if meter_agreement_public_key is not None:
        z += kdf.ecdh_z(agreement_private_key, meter_agreement_public_key)
    kek = _agreement_kek(
        z,
        meter_system_title=apdu.originator_system_title,
        head_end_system_title=apdu.recipient_system_title,
    )
    del z
    payload_key = keywrap.unwrap_key(kek, data[_XY_LENGTH:], key_length=KEY_LENGTH)
    return payload_key, kek


def open_control(
    apdu: GeneralCiphering,
    *,
    shared_key: bytes | None = None,
    agreement_private_key: ec.EllipticCurvePrivateKey | None = None,
    meter_agreement_public_key: ec.EllipticCurvePublicKey | None = None,
    allow_unauthenticated: bool = False,
) -> OpenedControl:
    """Recover Kp from a C2, verify its tag and read its control body (specs §4.2-§4.4).

    Addressing is the caller's check (:class:`~.headend.HeadEndOpener`); this function checks
    the framing, recovers Kp with ``shared_key`` (wrapped-key) or ``agreement_private_key``
    (agreed-key), verifies the tag under Kp and that the body agrees with the header.
    """
    if len(apdu.originator_system_title) != SYSTEM_TITLE_LENGTH:
        raise DecodeError("a C2 names its meter in 8 bytes", expected="08 <meter ST>")
    if len(apdu.recipient_system_title) != SYSTEM_TITLE_LENGTH:
        raise DecodeError("a C2 names its head-end in 8 bytes", expected="08 <head-end ST>")
    if len(apdu.transaction_id) != KP_ID_LENGTH:
        raise DecodeError("a C2's transaction-id is an 8-byte kp_id", expected="08 <kp_id>")
    info = apdu.key_info
    if isinstance(info, WrappedKey):
        if apdu.security_control != SC_CONTROL_WRAPPED or info.kek_id != KekId.MASTER_KEY:
            raise DecodeError("a wrapped-key C2 uses SC 30 and kek-id 0", expected="SC 30")
        if shared_key is None:
            raise KeyUnavailableError("no Ks shared with this meter to unwrap its C2")
        opened = decipher_general(apdu, RecipientKeys(master_key=shared_key))
        payload_key, plain, secret = opened.content_key, opened.plain, shared_key
    elif isinstance(info, AgreedKey):
        if apdu.security_control != SC_CONTROL_AGREED:
            raise DecodeError("an agreed-key C2 uses SC 31", expected="SC 31")
        payload_key, secret = _recover_agreed(
            apdu,
            info,
            agreement_private_key=agreement_private_key,
            meter_agreement_public_key=meter_agreement_public_key,
            allow_unauthenticated=allow_unauthenticated,
        )
        opened = decipher_general(
            replace(apdu, key_info=None), RecipientKeys(preshared_key=payload_key)
        )
        plain = opened.plain
    else:
        raise DecodeError("a C2 carries a wrapped-key or agreed-key", expected="01 01 or 01 02")
    body = ControlBody.from_apdu(plain)
    if body.kp_id.to_bytes() != apdu.transaction_id:
        raise DecodeError("the control body names another kp_id than the transaction-id")
    if apdu.invocation_counter >= body.first_invocation_counter:
        raise DecodeError(
            "a C2's invocation counter is not below the first C1 counter it announces",
            expected=f"IC < {body.first_invocation_counter}",
        )
    ack_key = derive_ack_key(
        secret,
        meter_system_title=apdu.originator_system_title,
        head_end_system_title=apdu.recipient_system_title,
        kp_id=body.kp_id,
    )
    return OpenedControl(payload_key, body, ack_key)


# --- acknowledgements --------------------------------------------------------------------------


def seal_ack(
    body: AckBody, *, ack_key: bytes, head_end_system_title: bytes, meter_system_title: bytes
) -> GeneralCiphering:
    """The acknowledgement of one C2 or C1: authenticated under Ka, IC = the IC acknowledged."""
    return cipher_general(
        body.to_apdu(),
        key=PresharedKey(ack_key),
        security_control=SC_ACK,
        invocation_counter=body.acknowledged_ic,
        transaction_id=body.kp_id.to_bytes(),
        originator_system_title=head_end_system_title,
        recipient_system_title=meter_system_title,
    )


def open_ack(apdu: GeneralCiphering, ack_key: bytes) -> AckBody:
    """Verify an acknowledgement under Ka; header and body must agree (specs §6.3)."""
    if apdu.key_info is not None or apdu.security_control != SC_ACK:
        raise DecodeError("an acknowledgement has no key-info and SC 10", expected="00, SC 10")
    opened = decipher_general(apdu, RecipientKeys(preshared_key=ack_key))
    body = AckBody.from_apdu(opened.plain)
    if body.kp_id.to_bytes() != apdu.transaction_id:
        raise DecodeError("the acknowledgement body names another kp_id than its header")
    if body.acknowledged_ic != apdu.invocation_counter:
        raise DecodeError("the acknowledgement's IC differs from the IC it acknowledges")
    return body
