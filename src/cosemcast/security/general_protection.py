"""Protection of general-ciphering (``DD``) and general-signing (``DF``) APDUs (brief §5.5, §6).

Theory of operation. general-ciphering carries its own addressing and says in its key-info
how the content key was established (brief §6.1, §6.2):

* no key-info: both sides already hold the key (:class:`PresharedKey`, e.g. a shared
  payload key announced earlier);
* identified-key: a global key, unicast or broadcast (:class:`IdentifiedGlobalKey`);
* wrapped-key: the key travels RFC 3394-wrapped under the master key (:class:`WrapContentKey`);
* agreed-key, suites 1/2: ECDH + the concatenation KDF (:mod:`cosemcast.security.kdf`), either
  C(1e,1s) One-Pass Diffie-Hellman (:class:`OnePassDiffieHellman`) or C(0e,2s) Static Unified
  Model (:class:`StaticUnifiedModel`).

The IV is the originator's system title ‖ IC; AK is the global AK given by the caller. On
receive, the key is recovered first (unwrap and ephemeral-key signature checks raise
:class:`AuthenticationFailed`), then the GCM tag is verified, and only then is plaintext
returned. general-signing signs with ECDSA r ‖ s (:mod:`cosemcast.security.ecdsa`).

Decisions where the sources conflict (brief §13; for ``specs/security.md``):

* general-ciphering AAD (§6.3, §13.2): default :attr:`GeneralCipheringAad.GREEN_BOOK`,
  SC ‖ AK ‖ the five length-prefixed header fields (‖ the APDU when authentication only).
  It binds transaction-id, recipient, date-time and other-information to the tag, and it is
  what the Green Book digest quotes. :attr:`GeneralCipheringAad.SC_AK_ONLY` is the Gurux
  form, for interoperability; with it the header fields other than the originator (which is
  in the IV) can be altered in transit undetected.
* general-signing signed bytes (§5.5, §13.3): default :attr:`SignedDataStyle.GREEN_BOOK`,
  every field after the tag with its length (the encoding minus the tag and the signature);
  :attr:`SignedDataStyle.CONTENT_WITHOUT_LENGTH` drops the content's own length (Gurux).
* C(1e,1s): the ephemeral key is signed as ``01 ‖ X ‖ Y`` (key-parameters ‖ Q_e,U), the only
  public rendering (Gurux, brief §5.5 [X1]); key-ciphered-data = X ‖ Y ‖ r ‖ s.
* The KDF AlgorithmID is AES-GCM-128 (suite 1) or AES-GCM-256 (suite 2), and the key length
  follows the suite (16 or 32 bytes); ``green_book_06`` picks the ``…74 06…`` AlgorithmID
  bytes (brief §13.1).
* The date-time field is empty or 12 bytes (brief §13.4).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TypeAlias

from cryptography.hazmat.primitives.asymmetric import ec

from cosemcast.apdu.base import encode_octet_string
from cosemcast.apdu.general import (
    AgreedKey,
    GeneralCiphering,
    GeneralSigning,
    IdentifiedKey,
    KeyAgreementScheme,
    KeyId,
    KeyInfo,
    WrappedKey,
    header_fields,
)
from cosemcast.errors import DecodeError, EncodeError, KeyUnavailableError
from cosemcast.security import ecdsa, kdf, keywrap
from cosemcast.security._control import (
    SYSTEM_TITLE_LENGTH,
    check_received_control,
    check_received_key,
    check_send_control,
    key_length_for_suite,
    wire_system_title,
)
from cosemcast.security.gcm import SymmetricKeys, protect, unprotect
from cosemcast.security.keyring import KeyRing

__all__ = [
    "DecipheredGeneral",
    "GeneralCipheringAad",
    "IdentifiedGlobalKey",
    "KeySource",
    "OnePassDiffieHellman",
    "PresharedKey",
    "RecipientKeys",
    "SignedDataStyle",
    "StaticUnifiedModel",
    "WrapContentKey",
    "cipher_general",
    "decipher_general",
    "decipher_general_with_keyring",
    "sign_general",
    "signed_data",
    "verify_general",
]


class GeneralCipheringAad(Enum):
    """What general-ciphering authenticates besides SC ‖ AK (brief §6.3; module docstring)."""

    GREEN_BOOK = "green-book"
    SC_AK_ONLY = "sc-ak-only"


class SignedDataStyle(Enum):
    """Which bytes a general-signing signature covers (brief §5.5; module docstring)."""

    GREEN_BOOK = "green-book"
    CONTENT_WITHOUT_LENGTH = "content-without-length"


@dataclass(frozen=True, slots=True)
class DecipheredGeneral:
    """A verified general-ciphering APDU; ``content_key`` is the key its key-info yielded."""

    plain: bytes
    system_title: bytes
    invocation_counter: int
    security_control: int
    key_info: KeyInfo | None
    content_key: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class PresharedKey:
    """No key-info: both sides already hold the content key (e.g. a shared payload key)."""

    key: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class IdentifiedGlobalKey:
    """identified-key: the global unicast or broadcast key named by ``key_id`` (brief §6.2)."""

    key_id: KeyId
    key: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class WrapContentKey:
    """wrapped-key: ``content_key`` travels RFC 3394-wrapped under the master key (§6.2, §6.4)."""

    master_key: bytes = field(repr=False)
    content_key: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class OnePassDiffieHellman:
    """agreed-key C(1e,1s), sender side (brief §5.5): our ephemeral key, the recipient's static
    agreement key, and our static signing key that vouches for the ephemeral one."""

    ephemeral_private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    recipient_public_key: ec.EllipticCurvePublicKey
    signing_private_key: ec.EllipticCurvePrivateKey = field(repr=False)


@dataclass(frozen=True, slots=True)
class StaticUnifiedModel:
    """agreed-key C(0e,2s), sender side (brief §5.5): both static agreement keys; the
    transaction-id acts as the nonce."""

    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    recipient_public_key: ec.EllipticCurvePublicKey


KeySource: TypeAlias = (
    PresharedKey | IdentifiedGlobalKey | WrapContentKey | OnePassDiffieHellman | StaticUnifiedModel
)


@dataclass(frozen=True, slots=True)
class RecipientKeys:
    """What a recipient may need to open general-ciphering APDUs; unset keys are unavailable.

    ``agreement_private_key`` is ours; the two public keys are the originator's (its signing
    key checks a C(1e,1s) ephemeral key, its agreement key serves C(0e,2s)).
    """

    authentication_key: bytes = field(repr=False, default=b"")
    global_unicast_key: bytes | None = field(repr=False, default=None)
    global_broadcast_key: bytes | None = field(repr=False, default=None)
    master_key: bytes | None = field(repr=False, default=None)
    preshared_key: bytes | None = field(repr=False, default=None)
    agreement_private_key: ec.EllipticCurvePrivateKey | None = field(repr=False, default=None)
    originator_signing_public_key: ec.EllipticCurvePublicKey | None = None
    originator_agreement_public_key: ec.EllipticCurvePublicKey | None = None


_ONE_PASS = bytes((KeyAgreementScheme.ONE_PASS_DIFFIE_HELLMAN,))
_STATIC_UM = bytes((KeyAgreementScheme.STATIC_UNIFIED_MODEL,))


def _agreement_suite(
    suite: int, error: type[EncodeError] | type[DecodeError]
) -> kdf.SuiteParameters:
    if suite not in (1, 2):
        raise error(f"agreed-key needs security suite 1 or 2, the SC says {suite}")
    return kdf.suite_parameters(suite)


def _same_curve(
    key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey,
    params: kdf.SuiteParameters,
    what: str,
) -> None:
    if key.curve.name != params.curve.name:
        raise KeyUnavailableError(
            f"{what} is on {key.curve.name}; suite {params.suite} uses {params.curve.name}"
        )


def _establish(
    source: KeySource,
    *,
    suite: int,
    transaction_id: bytes,
    originator: bytes,
    recipient: bytes,
    green_book_06: bool,
) -> tuple[KeyInfo | None, bytes]:
    if isinstance(source, PresharedKey):
        return None, source.key
    if isinstance(source, IdentifiedGlobalKey):
        return IdentifiedKey(KeyId(source.key_id)), source.key
    if isinstance(source, WrapContentKey):
        try:
            wrapped = keywrap.wrap_key(source.master_key, source.content_key)
        except ValueError as exc:
            raise EncodeError(f"cannot wrap the content key: {exc}") from exc
        return WrappedKey(wrapped), source.content_key
    params = _agreement_suite(suite, EncodeError)
    if len(recipient) != SYSTEM_TITLE_LENGTH:
        raise EncodeError("agreed-key needs an 8-byte recipient-system-title (KDF PartyVInfo)")
    if isinstance(source, OnePassDiffieHellman):
        _same_curve(source.ephemeral_private_key, params, "the ephemeral key")
        _same_curve(source.recipient_public_key, params, "the recipient's agreement key")
        _same_curve(source.signing_private_key, params, "the signing key")
        xy = kdf.public_key_to_xy(source.ephemeral_private_key.public_key())
        signature = ecdsa.sign_raw(source.signing_private_key, _ONE_PASS + xy)
        z = kdf.ecdh_z(source.ephemeral_private_key, source.recipient_public_key)
        nonce = None
        key_info = AgreedKey(_ONE_PASS, xy + signature)
    else:
        _same_curve(source.private_key, params, "the agreement key")
        _same_curve(source.recipient_public_key, params, "the recipient's agreement key")
        if len(transaction_id) > 0xFF:
            raise EncodeError("C(0e,2s) needs a transaction-id of at most 255 bytes")
        z = kdf.ecdh_z(source.private_key, source.recipient_public_key)
        nonce = transaction_id
        key_info = AgreedKey(_STATIC_UM, b"")
    key = kdf.derive_agreed_key(
        z,
        suite=suite,
        algorithm=params.gcm_algorithm,
        originator_system_title=originator,
        recipient_system_title=recipient,
        transaction_id=nonce,
        green_book_06=green_book_06,
    )
    return key_info, key


def _aad_header(
    aad: GeneralCipheringAad,
    transaction_id: bytes,
    originator: bytes,
    recipient: bytes,
    date_time: bytes,
    other_information: bytes,
) -> bytes:
    if aad is GeneralCipheringAad.SC_AK_ONLY:
        return b""
    return header_fields(transaction_id, originator, recipient, date_time, other_information)


def cipher_general(
    plain: bytes,
    *,
    key: KeySource,
    security_control: int,
    invocation_counter: int,
    transaction_id: bytes,
    originator_system_title: bytes,
    recipient_system_title: bytes,
    authentication_key: bytes = b"",
    date_time: bytes = b"",
    other_information: bytes = b"",
    aad: GeneralCipheringAad = GeneralCipheringAad.GREEN_BOOK,
    green_book_06: bool = False,
) -> GeneralCiphering:
    """Protect the encoded APDU ``plain`` as general-ciphering (brief §6).

    ``key`` says how the content key is established and so which key-info is sent; the IV is
    ``originator_system_title ‖ invocation_counter``. ``aad`` and ``green_book_06`` select the
    side of brief §13.2 and §13.1 (module docstring).
    """
    if not plain:
        raise EncodeError("nothing to cipher: the plain APDU is empty")
    if len(originator_system_title) != SYSTEM_TITLE_LENGTH:
        raise EncodeError(
            f"originator-system-title must be 8 bytes, got {len(originator_system_title)}"
        )
    if len(date_time) not in (0, 12):
        raise EncodeError(f"date-time must be empty or 12 bytes, got {len(date_time)}")
    if not 0 <= invocation_counter <= 0xFFFFFFFF:
        raise EncodeError(f"invocation counter {invocation_counter} is out of range 0..2^32-1")
    if not 0 <= security_control <= 0xFF:
        raise EncodeError(f"security control {security_control} is not a byte")
    key_info, ek = _establish(
        key,
        suite=security_control & 0x0F,
        transaction_id=transaction_id,
        originator=originator_system_title,
        recipient=recipient_system_title,
        green_book_06=green_book_06,
    )
    check_send_control(security_control, ek, broadcast_allowed=False, what="general-ciphering")
    try:
        keys = SymmetricKeys(ek, authentication_key)
    except ValueError as exc:
        raise EncodeError(str(exc)) from exc
    header = _aad_header(
        aad,
        transaction_id,
        originator_system_title,
        recipient_system_title,
        date_time,
        other_information,
    )
    text = protect(
        security_control, keys, originator_system_title, invocation_counter, plain, header
    )
    return GeneralCiphering(
        transaction_id,
        originator_system_title,
        recipient_system_title,
        date_time,
        other_information,
        key_info,
        security_control,
        invocation_counter,
        text,
    )


def _needed(value: bytes | None, what: str) -> bytes:
    if value is None:
        raise KeyUnavailableError(f"no {what} to open this general-ciphering APDU")
    return value


def _recover(apdu: GeneralCiphering, keys: RecipientKeys, suite: int, green_book_06: bool) -> bytes:
    info = apdu.key_info
    if info is None:
        return _needed(keys.preshared_key, "pre-shared content key (no key-info)")
    if isinstance(info, IdentifiedKey):
        if info.key_id == KeyId.GLOBAL_BROADCAST_ENCRYPTION_KEY:
            return _needed(keys.global_broadcast_key, "global broadcast key")
        return _needed(keys.global_unicast_key, "global unicast key")
    if isinstance(info, WrappedKey):
        master = _needed(keys.master_key, "master key (KEK)")
        return keywrap.unwrap_key(
            master, info.key_ciphered_data, key_length=key_length_for_suite(suite)
        )
    params = _agreement_suite(suite, DecodeError)
    recipient = apdu.recipient_system_title
    if len(recipient) != SYSTEM_TITLE_LENGTH:
        raise DecodeError("agreed-key needs an 8-byte recipient-system-title")
    own = keys.agreement_private_key
    if own is None:
        raise KeyUnavailableError("no agreement private key to open an agreed-key APDU")
    _same_curve(own, params, "our agreement key")
    if info.key_parameters == _ONE_PASS:
        size = 2 * params.coordinate_length
        if len(info.key_ciphered_data) != 2 * size:
            raise DecodeError(
                f"C(1e,1s) key-ciphered-data of {len(info.key_ciphered_data)} bytes",
                expected=f"{2 * size} bytes: X ‖ Y ‖ r ‖ s",
            )
        xy, signature = info.key_ciphered_data[:size], info.key_ciphered_data[size:]
        signer = keys.originator_signing_public_key
        if signer is None:
            raise KeyUnavailableError("no originator signing key to check the ephemeral key")
        _same_curve(signer, params, "the originator's signing key")
        ecdsa.verify_raw(signer, _ONE_PASS + xy, signature)
        z = kdf.ecdh_z(own, kdf.public_key_from_xy(params.curve, xy))
        nonce = None
    elif info.key_parameters == _STATIC_UM:
        if info.key_ciphered_data:
            raise DecodeError("C(0e,2s) key-ciphered-data must be empty", expected="00")
        peer = keys.originator_agreement_public_key
        if peer is None:
            raise KeyUnavailableError("no originator agreement key for C(0e,2s)")
        _same_curve(peer, params, "the originator's agreement key")
        if len(apdu.transaction_id) > 0xFF:
            raise DecodeError("C(0e,2s) transaction-id longer than 255 bytes")
        z = kdf.ecdh_z(own, peer)
        nonce = apdu.transaction_id
    else:
        raise DecodeError(
            f"key-parameters {info.key_parameters.hex().upper() or 'empty'}",
            expected="01 (C(1e,1s)) or 02 (C(0e,2s))",
        )
    return kdf.derive_agreed_key(
        z,
        suite=params.suite,
        algorithm=params.gcm_algorithm,
        originator_system_title=apdu.originator_system_title,
        recipient_system_title=recipient,
        transaction_id=nonce,
        green_book_06=green_book_06,
    )


def decipher_general(
    apdu: GeneralCiphering,
    keys: RecipientKeys,
    *,
    aad: GeneralCipheringAad = GeneralCipheringAad.GREEN_BOOK,
    green_book_06: bool = False,
    require_authentication: bool = True,
) -> DecipheredGeneral:
    """Recover the content key from the key-info, verify the tag, return the inner APDU.

    Raises :class:`KeyUnavailableError` (a key the key-info calls for is not in ``keys``),
    :class:`AuthenticationFailed` (tag, wrapped-key integrity or ephemeral-key signature) or
    :class:`DecodeError`; no plaintext is returned unless everything verifies.
    """
    control = check_received_control(
        apdu.security_control,
        broadcast_allowed=False,
        require_authentication=require_authentication,
        what="general-ciphering",
    )
    originator = wire_system_title(apdu.originator_system_title)
    ek = _recover(apdu, keys, control.suite, green_book_06)
    check_received_key(control, ek)
    symmetric = SymmetricKeys(ek, keys.authentication_key)
    header = _aad_header(
        aad,
        apdu.transaction_id,
        originator,
        apdu.recipient_system_title,
        apdu.date_time,
        apdu.other_information,
    )
    plain = unprotect(
        apdu.security_control,
        symmetric,
        originator,
        apdu.invocation_counter,
        apdu.ciphered_text,
        header,
    )
    if not plain:
        raise DecodeError("the deciphered APDU is empty", expected="an APDU")
    return DecipheredGeneral(
        plain, originator, apdu.invocation_counter, apdu.security_control, apdu.key_info, ek
    )


def decipher_general_with_keyring(
    apdu: GeneralCiphering,
    keyring: KeyRing,
    *,
    preshared_key: bytes | None = None,
    aad: GeneralCipheringAad = GeneralCipheringAad.GREEN_BOOK,
    green_book_06: bool = False,
    require_authentication: bool = True,
) -> DecipheredGeneral:
    """:func:`decipher_general` with keys from ``keyring``.

    The originator's entry gives the global keys, AK, master key and its public keys; the
    recipient's entry (our own identity) gives our agreement private key.
    """
    sender = keyring.get(apdu.originator_system_title)
    own = keyring.get(apdu.recipient_system_title) if apdu.recipient_system_title else None
    if sender is None and own is None:
        raise KeyUnavailableError(
            f"no keys for originator {apdu.originator_system_title.hex().upper()}"
        )
    ak_holder = sender if sender is not None else own
    keys = RecipientKeys(
        authentication_key=ak_holder.ak if ak_holder is not None else b"",
        global_unicast_key=sender.ek if sender else None,
        global_broadcast_key=sender.broadcast_key if sender else None,
        master_key=sender.kek if sender else None,
        preshared_key=preshared_key,
        agreement_private_key=own.agreement_private_key if own else None,
        originator_signing_public_key=sender.signing_public_key if sender else None,
        originator_agreement_public_key=sender.agreement_public_key if sender else None,
    )
    return decipher_general(
        apdu,
        keys,
        aad=aad,
        green_book_06=green_book_06,
        require_authentication=require_authentication,
    )


# --- general-signing -----------------------------------------------------------------------------


def signed_data(apdu: GeneralSigning, style: SignedDataStyle = SignedDataStyle.GREEN_BOOK) -> bytes:
    """The bytes a general-signing signature covers (brief §5.5; module docstring)."""
    content = (
        encode_octet_string(apdu.content)
        if style is SignedDataStyle.GREEN_BOOK
        else bytes(apdu.content)
    )
    return apdu.header_fields() + content


def sign_general(
    content: bytes,
    *,
    signing_private_key: ec.EllipticCurvePrivateKey,
    transaction_id: bytes,
    originator_system_title: bytes,
    recipient_system_title: bytes,
    date_time: bytes = b"",
    other_information: bytes = b"",
    style: SignedDataStyle = SignedDataStyle.GREEN_BOOK,
    deterministic: bool = False,
) -> GeneralSigning:
    """Sign ``content`` (an encoded APDU) into a general-signing APDU (ECDSA r ‖ s)."""
    if len(date_time) not in (0, 12):
        raise EncodeError(f"date-time must be empty or 12 bytes, got {len(date_time)}")
    unsigned = GeneralSigning(
        transaction_id,
        originator_system_title,
        recipient_system_title,
        date_time,
        other_information,
        content,
        b"",
    )
    try:
        signature = ecdsa.sign_raw(
            signing_private_key, signed_data(unsigned, style), deterministic=deterministic
        )
    except ValueError as exc:
        raise EncodeError(f"cannot sign: {exc}") from exc
    return GeneralSigning(
        transaction_id,
        originator_system_title,
        recipient_system_title,
        date_time,
        other_information,
        content,
        signature,
    )


def verify_general(
    apdu: GeneralSigning,
    public_key: ec.EllipticCurvePublicKey,
    *,
    style: SignedDataStyle = SignedDataStyle.GREEN_BOOK,
) -> bytes:
    """Check the signature; return the signed content, or raise :class:`AuthenticationFailed`."""
    ecdsa.verify_raw(public_key, signed_data(apdu, style), apdu.signature)
    return apdu.content
