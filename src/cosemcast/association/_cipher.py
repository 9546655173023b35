"""Ciphering of one association: keys, forms, invocation counters (brief §5.1-§5.4).

Theory of operation. :class:`Protection` joins the association's keys to
:mod:`cosemcast.security.protection` and to the counter stores. Sending, it draws a fresh
invocation counter for the key in use and ciphers the APDU in the requested
:class:`Form`. Receiving, it picks the key (dedicated for ded-/general-ded, else Key_Set:
unicast or broadcast), the sender's system title (carried by general-glo/ded, else the
peer's from the AARQ/AARE), rejects a counter that is not above the last accepted one
*before* any GCM work, verifies the tag, and only then records the counter.

Counter key ids (:func:`counter_key_id`) are ``make_key_id(sender system title, purpose,
key)`` with purpose ``unicast``, ``broadcast`` or ``dedicated``: one counter space per key
and sender, shared by every APDU form and by the HLS-GMAC responses (they use the same
key and IV space, brief §7.2). On the receiving side the counter found *inside* an
f(StoC)/f(CtoS) is checked under the separate purpose ``hls``: gurux uses IC n inside
f(StoC) and n+1 for the APDU that carries it, dlms-cosem uses n for both, and both must
pass (issue 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, TypeGuard

from cosemcast.apdu.ciphered import ServiceSpecificCiphered, ciphered_class_for
from cosemcast.apdu.general import GeneralDedCiphering, GeneralGloCiphering
from cosemcast.association.settings import Ciphering, SecuritySettings
from cosemcast.axdr.codec import encode_length
from cosemcast.errors import (
    AuthenticationFailed,
    ConfigurationError,
    DecodeError,
    KeyUnavailableError,
)
from cosemcast.security.counters import make_key_id
from cosemcast.security.gcm import TAG_LENGTH, SecurityControl, SymmetricKeys
from cosemcast.security.protection import (
    CipheredApdu,
    CipherKind,
    Deciphered,
    cipher_apdu,
    decipher_apdu,
)

__all__ = [
    "PLAIN",
    "CounterPurpose",
    "Form",
    "Protection",
    "ReceivedCounters",
    "SendCounters",
    "counter_key_id",
    "form_for",
    "form_of",
    "is_ciphered",
]

CounterPurpose = Literal["unicast", "broadcast", "dedicated", "hls"]
_SECURITY_HEADER = 5
_SYSTEM_TITLE = 8


class SendCounters(Protocol):
    """Where sending counters come from (:class:`~cosemcast.security.counters.CounterStore`)."""

    def next(self, key_id: str) -> int: ...


class ReceivedCounters(Protocol):
    """The replay check (:class:`~cosemcast.security.counters.ReceivedCounterStore`)."""

    def check(self, key_id: str, invocation_counter: int) -> None: ...

    def check_and_update(self, key_id: str, invocation_counter: int) -> None: ...


def counter_key_id(system_title: bytes, purpose: CounterPurpose, key: bytes) -> str:
    """The counter-store key id of ``key`` used by the sender ``system_title``."""
    return make_key_id(system_title, purpose, key)


@dataclass(frozen=True, slots=True)
class Form:
    """How an APDU travels: ``kind`` None is plain; else the ciphered form and its SC."""

    kind: CipherKind | None = None
    security_control: int = 0

    @property
    def protected(self) -> bool:
        return self.kind is not None

    @property
    def dedicated(self) -> bool:
        return self.kind in ("ded", "general-ded")


PLAIN = Form()


_KINDS: dict[Ciphering, CipherKind] = {
    Ciphering.GLOBAL: "glo",
    Ciphering.DEDICATED: "ded",
    Ciphering.GENERAL_GLOBAL: "general-glo",
    Ciphering.GENERAL_DEDICATED: "general-ded",
}


def form_for(ciphering: Ciphering, security_control: int) -> Form:
    """The form our requests take under ``ciphering``."""
    kind = _KINDS.get(ciphering)
    return PLAIN if kind is None else Form(kind, security_control)


def form_of(apdu: CipheredApdu) -> Form:
    """The form a received ciphered APDU came in (answers go back in the same form)."""
    if isinstance(apdu, GeneralGloCiphering):
        return Form("general-glo", apdu.security_control)
    if isinstance(apdu, GeneralDedCiphering):
        return Form("general-ded", apdu.security_control)
    return Form("ded" if apdu.DEDICATED else "glo", apdu.security_control)


class Protection:
    """The association's ciphering state on one side."""

    def __init__(
        self,
        security: SecuritySettings,
        counters: SendCounters | None,
        received_counters: ReceivedCounters | None,
    ) -> None:
        if counters is None or received_counters is None:
            raise ConfigurationError("security needs a sending and a receiving counter store")
        self.security = security
        self._counters = counters
        self._received = received_counters
        keys = security.global_keys
        ak = keys.authentication_key
        self.unicast = SymmetricKeys(keys.unicast_key, ak)
        self._broadcast = (
            None if keys.broadcast_key is None else SymmetricKeys(keys.broadcast_key, ak)
        )
        self._dedicated: SymmetricKeys | None = None
        self.peer_system_title: bytes | None = security.peer_system_title
        self._key_ids: dict[tuple[bytes, str, bytes], str] = {}

    def __repr__(self) -> str:
        return f"Protection(suite={self.security.suite}, ciphering={self.security.ciphering.value})"

    @property
    def system_title(self) -> bytes:
        return self.security.system_title

    @property
    def has_dedicated_key(self) -> bool:
        return self._dedicated is not None

    def set_dedicated_key(self, key: bytes | None) -> None:
        if key is not None and len(key) != self.security.key_length:
            raise DecodeError(
                f"a suite {self.security.suite} dedicated key is {self.security.key_length} "
                f"bytes, got {len(key)}",
                expected="a dedicated key of the suite's length",
            )
        self._dedicated = None if key is None else SymmetricKeys(key, self.unicast.ak)

    def control(self, *, authenticated: bool, encrypted: bool) -> int:
        return SecurityControl(
            self.security.suite, authenticated=authenticated, encrypted=encrypted
        ).to_byte()

    def _key_id(self, system_title: bytes, purpose: CounterPurpose, keys: SymmetricKeys) -> str:
        cache_key = (bytes(system_title), purpose, keys.ek)
        key_id = self._key_ids.get(cache_key)
        if key_id is None:
            key_id = counter_key_id(system_title, purpose, keys.ek)
            self._key_ids[cache_key] = key_id
        return key_id

    def next_unicast_counter(self) -> int:
        """A fresh counter of our unicast key (HLS-GMAC responses use it, brief §7.2)."""
        return self._counters.next(self._key_id(self.system_title, "unicast", self.unicast))

    def _keys(self, form: Form) -> tuple[SymmetricKeys, CounterPurpose]:
        if form.dedicated:
            if self._dedicated is None:
                raise KeyUnavailableError("no dedicated key was agreed for this association")
            return self._dedicated, "dedicated"
        if SecurityControl.from_byte(form.security_control).broadcast_key:
            if self._broadcast is None:
                raise KeyUnavailableError("no global broadcast key is configured")
            return self._broadcast, "broadcast"
        return self.unicast, "unicast"

    def can_protect(self, plain: bytes, form: Form) -> bool:
        """False when ``form`` is service-specific and this APDU type has no ciphered twin."""
        if form.kind in ("glo", "ded"):
            return (
                bool(plain) and ciphered_class_for(plain[0], dedicated=form.dedicated) is not None
            )
        return True

    def protect(self, plain: bytes, form: Form) -> bytes:
        """``plain`` ciphered in ``form`` under a fresh counter (``form.kind`` must be set)."""
        if form.kind is None:
            return plain
        keys, purpose = self._keys(form)
        ic = self._counters.next(self._key_id(self.system_title, purpose, keys))
        apdu = cipher_apdu(
            plain,
            kind=form.kind,
            security_control=form.security_control,
            keys=keys,
            system_title=self.system_title,
            invocation_counter=ic,
        )
        return apdu.encode()

    def unprotect(self, apdu: CipheredApdu, *, require_authentication: bool) -> Deciphered:
        """Check the counter, verify and decipher; record the counter once it verified."""
        sender = self.peer_system_title
        if isinstance(apdu, GeneralGloCiphering | GeneralDedCiphering) and apdu.system_title:
            if len(apdu.system_title) != _SYSTEM_TITLE:
                raise DecodeError("the carried system title is not 8 bytes", expected="8 bytes")
            if sender is not None and apdu.system_title != sender:
                raise AuthenticationFailed("the APDU names another sender than the peer")
            sender = apdu.system_title
        if sender is None:
            raise KeyUnavailableError("the peer's system title is not known")
        form = form_of(apdu)
        keys, purpose = self._keys(form)
        if SecurityControl.from_byte(apdu.security_control).suite != self.security.suite:
            raise AuthenticationFailed("the APDU names another security suite")
        key_id = self._key_id(sender, purpose, keys)
        self._received.check(key_id, apdu.invocation_counter)
        deciphered = decipher_apdu(
            apdu, keys=keys, system_title=sender, require_authentication=require_authentication
        )
        self._received.check_and_update(key_id, apdu.invocation_counter)
        return deciphered

    def record_hls_counter(self, sender: bytes, invocation_counter: int) -> None:
        """Replay check of the counter inside a verified f(StoC)/f(CtoS) (purpose ``hls``)."""
        self._received.check_and_update(
            self._key_id(sender, "hls", self.unicast), invocation_counter
        )

    def wire_length(self, plain_length: int, form: Form) -> int:
        """Length on the wire of a ``plain_length``-byte APDU sent in ``form``."""
        if form.kind is None:
            return plain_length
        tag = TAG_LENGTH if SecurityControl.from_byte(form.security_control).authenticated else 0
        body = _SECURITY_HEADER + plain_length + tag
        head = 1 + len(encode_length(body))
        if form.kind in ("general-glo", "general-ded"):
            head += 1 + _SYSTEM_TITLE
        return head + body


def is_ciphered(apdu: object) -> TypeGuard[CipheredApdu]:
    return isinstance(apdu, ServiceSpecificCiphered | GeneralGloCiphering | GeneralDedCiphering)
