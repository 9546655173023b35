"""Protection glue for glo-/ded- and general-glo/ded-ciphering APDUs (brief §5.2-§5.4).

Theory of operation. The codecs in :mod:`cosemcast.apdu.ciphered` and
:mod:`cosemcast.apdu.general` only frame bytes; :mod:`cosemcast.security.gcm` only runs
AES-GCM. This module joins them for the APDUs protected with the global or dedicated keys:
the plaintext is the plain APDU's bytes, the IV is the *sender's* system title ‖ IC (carried
in ``DB``/``DC``, known from the association for the service-specific forms), the AAD is
SC ‖ AK (‖ the APDU when only authenticated).

Receive rules, in this order: the security control is checked (:mod:`._control`), the tag is
verified, and only then is plaintext released: a failed tag raises
:class:`AuthenticationFailed` and returns nothing. The glo-/ded- tag byte is outside the
tag's coverage, so the plaintext must start with the APDU tag that the ciphered tag stands
for; anything else is a :class:`DecodeError`.

general-ciphering (``DD``) and general-signing (``DF``) live in
:mod:`cosemcast.security.general_protection` and are re-exported here, so that
``cosemcast.security.protection`` is the one import for all protection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias, overload

from cosemcast.apdu.ciphered import ServiceSpecificCiphered, ciphered_class_for
from cosemcast.apdu.general import GeneralDedCiphering, GeneralGloCiphering
from cosemcast.errors import AuthenticationFailed, DecodeError, EncodeError, KeyUnavailableError
from cosemcast.security._control import (
    SYSTEM_TITLE_LENGTH,
    check_received_control,
    check_received_key,
    check_send_control,
    wire_system_title,
)
from cosemcast.security.gcm import SymmetricKeys, protect, unprotect
from cosemcast.security.general_protection import (
    DecipheredGeneral,
    GeneralCipheringAad,
    IdentifiedGlobalKey,
    KeySource,
    OnePassDiffieHellman,
    PresharedKey,
    RecipientKeys,
    SignedDataStyle,
    StaticUnifiedModel,
    WrapContentKey,
    cipher_general,
    decipher_general,
    decipher_general_with_keyring,
    sign_general,
    signed_data,
    verify_general,
)
from cosemcast.security.keyring import KeyRing, KeySet, PartyKeys

__all__ = [
    "CipherKind",
    "CipheredApdu",
    "Deciphered",
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
    "cipher_apdu",
    "cipher_general",
    "decipher_apdu",
    "decipher_general",
    "decipher_general_with_keyring",
    "decipher_with_keyring",
    "sign_general",
    "signed_data",
    "verify_general",
]

CipherKind = Literal["glo", "ded", "general-glo", "general-ded"]
CipheredApdu: TypeAlias = ServiceSpecificCiphered | GeneralGloCiphering | GeneralDedCiphering


@dataclass(frozen=True, slots=True)
class Deciphered:
    """A verified, deciphered APDU: ``plain`` is the inner APDU's bytes."""

    plain: bytes
    system_title: bytes
    invocation_counter: int
    security_control: int


# --- glo-, ded-, general-glo-, general-ded-ciphering ---------------------------------------------


@overload
def cipher_apdu(
    plain: bytes,
    *,
    kind: Literal["glo", "ded"],
    security_control: int,
    keys: SymmetricKeys,
    system_title: bytes,
    invocation_counter: int,
) -> ServiceSpecificCiphered: ...
@overload
def cipher_apdu(
    plain: bytes,
    *,
    kind: Literal["general-glo"],
    security_control: int,
    keys: SymmetricKeys,
    system_title: bytes,
    invocation_counter: int,
) -> GeneralGloCiphering: ...
@overload
def cipher_apdu(
    plain: bytes,
    *,
    kind: Literal["general-ded"],
    security_control: int,
    keys: SymmetricKeys,
    system_title: bytes,
    invocation_counter: int,
) -> GeneralDedCiphering: ...
def cipher_apdu(
    plain: bytes,
    *,
    kind: CipherKind,
    security_control: int,
    keys: SymmetricKeys,
    system_title: bytes,
    invocation_counter: int,
) -> CipheredApdu:
    """Protect the encoded APDU ``plain`` as ``kind`` (brief §5.2-§5.4).

    ``system_title`` is the sender's (it forms the IV; ``DB``/``DC`` also carry it). ``keys``
    holds the EK the kind calls for (global unicast/broadcast, or the dedicated key) and AK.
    """
    if not plain:
        raise EncodeError("nothing to cipher: the plain APDU is empty")
    if len(system_title) != SYSTEM_TITLE_LENGTH:
        raise EncodeError(f"a system title is 8 bytes, got {len(system_title)}")
    if not 0 <= invocation_counter <= 0xFFFFFFFF:
        raise EncodeError(f"invocation counter {invocation_counter} is out of range 0..2^32-1")
    dedicated = kind in ("ded", "general-ded")
    check_send_control(
        security_control, keys.ek, broadcast_allowed=not dedicated, what="dedicated keys"
    )
    text = protect(security_control, keys, system_title, invocation_counter, plain)
    if kind == "general-glo":
        return GeneralGloCiphering(system_title, security_control, invocation_counter, text)
    if kind == "general-ded":
        return GeneralDedCiphering(system_title, security_control, invocation_counter, text)
    cls = ciphered_class_for(plain[0], dedicated=dedicated)
    if cls is None:
        raise EncodeError(f"APDU tag 0x{plain[0]:02X} has no {kind}- ciphered form")
    return cls(security_control, invocation_counter, text)


def decipher_apdu(
    apdu: CipheredApdu,
    *,
    keys: SymmetricKeys,
    system_title: bytes | None = None,
    require_authentication: bool = True,
) -> Deciphered:
    """Verify and decipher a glo-/ded- or general-glo/ded APDU; return the inner APDU bytes.

    ``system_title`` is the sender's title; service-specific APDUs carry none, so it is
    required for them, and used for ``DB``/``DC`` only when they carry an empty one.
    ``require_authentication=False`` accepts encryption-only APDUs (SC ``x0 2x``), which no
    tag protects. Raises :class:`AuthenticationFailed` (nothing is returned) or
    :class:`DecodeError`.
    """
    if isinstance(apdu, ServiceSpecificCiphered):
        sender = system_title
        dedicated = apdu.DEDICATED
    elif isinstance(apdu, (GeneralGloCiphering, GeneralDedCiphering)):
        sender = apdu.system_title or system_title
        dedicated = isinstance(apdu, GeneralDedCiphering)
    else:
        raise TypeError(f"{type(apdu).__name__} is not a glo-/ded-/general-glo/ded APDU")
    if sender is None:
        raise ValueError(f"{type(apdu).__name__} carries no system title: pass system_title")
    control = check_received_control(
        apdu.security_control,
        broadcast_allowed=not dedicated,
        require_authentication=require_authentication,
        what="dedicated keys",
    )
    check_received_key(control, keys.ek)
    plain = unprotect(
        apdu.security_control,
        keys,
        wire_system_title(sender),
        apdu.invocation_counter,
        apdu.ciphered_text,
    )
    if not plain:
        raise DecodeError("the deciphered APDU is empty", expected="an APDU")
    if isinstance(apdu, ServiceSpecificCiphered) and plain[0] != apdu.PROTECTED_TAG:
        raise DecodeError(
            f"{type(apdu).__name__} holds an APDU with tag 0x{plain[0]:02X}",
            expected=f"tag 0x{apdu.PROTECTED_TAG:02X}",
        )
    return Deciphered(plain, sender, apdu.invocation_counter, apdu.security_control)


def decipher_with_keyring(
    apdu: CipheredApdu,
    keyring: KeyRing,
    *,
    hint_system_title: bytes | None = None,
    require_authentication: bool = True,
) -> Deciphered:
    """:func:`decipher_apdu` with the keys found in ``keyring``.

    The sender is the title carried by ``DB``/``DC``, else ``hint_system_title``, else every
    party of the ring is tried in turn and the one whose tag verifies wins. Raises
    :class:`KeyUnavailableError` when no candidate holds the key needed, and
    :class:`AuthenticationFailed` when no candidate's tag verifies.
    """
    dedicated = isinstance(apdu, GeneralDedCiphering) or (
        isinstance(apdu, ServiceSpecificCiphered) and apdu.DEDICATED
    )
    control = check_received_control(
        apdu.security_control,
        broadcast_allowed=not dedicated,
        require_authentication=require_authentication,
        what="dedicated keys",
    )
    key_set: KeySet = (
        "dedicated" if dedicated else ("broadcast" if control.broadcast_key else "unicast")
    )
    carried = (
        apdu.system_title if isinstance(apdu, GeneralGloCiphering | GeneralDedCiphering) else b""
    )
    sender = carried or hint_system_title
    if sender is not None:
        party = keyring.get(sender)
        if party is None:
            raise KeyUnavailableError(f"no keys for system title {bytes(sender).hex().upper()}")
        candidates = [party]
    else:
        candidates = list(keyring)
    usable = [p for p in candidates if _has_key(p, key_set)]
    if not usable:
        raise KeyUnavailableError(f"no party in the key ring holds a {key_set} key for this APDU")
    if not control.authenticated and len(usable) > 1:
        raise KeyUnavailableError(
            "an APDU without a tag cannot pick its key: give hint_system_title"
        )
    failure: AuthenticationFailed | None = None
    for party in usable:
        try:
            return decipher_apdu(
                apdu,
                keys=keyring.symmetric_keys(party.system_title, key_set),
                system_title=party.system_title,
                require_authentication=require_authentication,
            )
        except AuthenticationFailed as exc:
            failure = exc
    raise AuthenticationFailed(
        f"no key of {len(usable)} candidate(s) verifies the tag"
    ) from failure


def _has_key(party: PartyKeys, key_set: KeySet) -> bool:
    if key_set == "broadcast":
        return party.broadcast_key is not None
    if key_set == "dedicated":
        return party.dedicated_key is not None
    return True
