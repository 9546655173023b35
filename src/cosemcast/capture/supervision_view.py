"""The supervision messages in a capture: enrollment requests and initialization messages.

Theory of operation. Two general-ciphering (``DD``) messages of specs/supervision.md travel
without key-info and with an empty transaction-id, which tells them apart from the
shared-payload C1s (whose transaction-id is the ``kp_id``):

* **enrollment request** (§7), SC ``11``: authentication only, so the body (meter, chosen
  head-end, action, requested-at, counter) is readable by anyone; its tag is a GMAC under the
  meter's ``Ke``. :func:`read_enrollment` shows the body and says whether the tag verified.
* **initialization message** (§5), SC ``31``: encrypted under the meter's ``Ki``, whose
  plaintext is a general-signing ``DF`` by the centre over the body. It reaches a meter as the
  octet-string parameter of ``load_init_message`` (method 1 of the assignment object
  ``0-0:128.3.0.255``, class 8962; :func:`embedded_init_message` finds it).
  :func:`open_init_message` deciphers it and shows meter, head-end, action, sequence and
  validity window; the signature is checked when the centre's public key is known. ``I0`` is
  never kept in what is shown, so it can never be printed.

Key files (:func:`load_capture_keys`): the ``[[keys]]`` format of
:class:`~cosemcast.security.keyring.KeyRing`, plus two fields only captures use, in a meter's
entry: ``ki`` (the key the centre seals that meter's initialization messages with) and ``ke``
(the key of its enrollment requests). The centre's entry may give ``signing_public_key``.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.action import ActionRequestNormal
from cosemcast.apdu.general import GeneralCiphering, GeneralSigning
from cosemcast.axdr import OctetString
from cosemcast.errors import ConfigurationError, DecodeError
from cosemcast.obis import Obis
from cosemcast.security.keyring import KeyRing, party_from_table
from cosemcast.security.protection import RecipientKeys, decipher_general, verify_general
from cosemcast.supervision.enrollment import ENROLLMENT_SECURITY_CONTROL, decode_enrollment_body
from cosemcast.supervision.initmsg import INIT_SECURITY_CONTROL, InitAction, decode_init_body

__all__ = [
    "ASSIGNMENT_CLASS_ID",
    "ASSIGNMENT_OBIS",
    "EnrollmentView",
    "InitMessageView",
    "SupervisionKeys",
    "embedded_init_message",
    "load_capture_keys",
    "open_init_message",
    "read_enrollment",
    "supervision_kind",
]

ASSIGNMENT_CLASS_ID: Final = 8962
ASSIGNMENT_OBIS: Final = Obis.parse("0-0:128.3.0.255")
_LOAD_INIT_MESSAGE: Final = 1
_TAG_LENGTH: Final = 12
_EXTRA_FIELDS: Final = ("ki", "ke")


@dataclass(frozen=True, slots=True)
class SupervisionKeys:
    """``Ki`` and ``Ke`` by meter system title (never shown)."""

    ki: dict[bytes, bytes] = field(default_factory=dict, repr=False)
    ke: dict[bytes, bytes] = field(default_factory=dict, repr=False)


def _when(seconds: int) -> str:
    try:
        moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return str(seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _action(value: int) -> str:
    try:
        return InitAction(value).name.lower().replace("_", "-")
    except ValueError:
        return str(value)


@dataclass(frozen=True, slots=True)
class InitMessageView:
    """What an opened initialization message shows (never I0)."""

    centre_id: bytes
    meter_id: bytes
    head_end_id: bytes
    action: str
    sequence: int
    not_before: str
    not_after: str
    signature: str

    def text(self) -> str:
        return (
            f"initialization message {self.action} head-end {self.head_end_id.hex().upper()} "
            f"for meter {self.meter_id.hex().upper()}, sequence {self.sequence}, valid "
            f"{self.not_before}..{self.not_after}, signature {self.signature}"
        )


@dataclass(frozen=True, slots=True)
class EnrollmentView:
    """The body of an enrollment request (in clear on the wire) and the tag's verdict."""

    meter_id: bytes
    head_end_id: bytes
    action: str
    requested_at: str
    counter: int
    tag: str

    def text(self) -> str:
        return (
            f"enrollment request: meter {self.meter_id.hex().upper()} asks to {self.action} "
            f"head-end {self.head_end_id.hex().upper()}, requested at {self.requested_at}, "
            f"counter {self.counter}, tag {self.tag}"
        )


def supervision_kind(apdu: GeneralCiphering) -> str | None:
    """``"init"``, ``"enrollment"`` or ``None`` for any other general-ciphering APDU."""
    if apdu.key_info is not None or apdu.transaction_id:
        return None
    if apdu.security_control == INIT_SECURITY_CONTROL:
        return "init"
    if apdu.security_control == ENROLLMENT_SECURITY_CONTROL:
        return "enrollment"
    return None


def embedded_init_message(apdu: object) -> GeneralCiphering | None:
    """The initialization message carried by a ``load_init_message`` ACTION, if any."""
    if not isinstance(apdu, ActionRequestNormal):
        return None
    descriptor = apdu.cosem_method_descriptor
    if (
        descriptor.class_id != ASSIGNMENT_CLASS_ID
        or descriptor.instance_id != ASSIGNMENT_OBIS
        or descriptor.method_id != _LOAD_INIT_MESSAGE
        or not isinstance(apdu.method_invocation_parameters, OctetString)
    ):
        return None
    try:
        inner = decode_apdu(bytes(apdu.method_invocation_parameters))
    except DecodeError:
        return None
    return inner if isinstance(inner, GeneralCiphering) else None


def open_init_message(
    apdu: GeneralCiphering, keyring: KeyRing, keys: SupervisionKeys
) -> InitMessageView:
    """Decipher under the recipient meter's ``Ki`` and read the signed body.

    Raises :class:`~cosemcast.errors.KeyUnavailableError` (no ``Ki``),
    :class:`~cosemcast.errors.AuthenticationFailed` (tag or signature), :class:`DecodeError`.
    """
    from cosemcast.errors import KeyUnavailableError

    meter = bytes(apdu.recipient_system_title)
    ki = keys.ki.get(meter)
    if ki is None:
        raise KeyUnavailableError(
            f"no ki for meter {meter.hex().upper() or '(empty)'}: initialization messages are "
            "sealed under the meter's Ki"
        )
    plain = decipher_general(apdu, RecipientKeys(preshared_key=ki)).plain
    inner = decode_apdu(plain)
    if not isinstance(inner, GeneralSigning):
        raise DecodeError(
            f"the ciphered content is {type(inner).__name__}, not general-signing",
            expected="DF",
        )
    centre = keyring.get(bytes(inner.originator_system_title))
    if centre is not None and centre.signing_public_key is not None:
        body = verify_general(inner, centre.signing_public_key)
        signature = "verified"
    else:
        body = bytes(inner.content)
        signature = (
            f"not checked (no signing_public_key for centre "
            f"{bytes(inner.originator_system_title).hex().upper()})"
        )
    message = decode_init_body(body)
    return InitMessageView(
        bytes(inner.originator_system_title),
        message.meter_id,
        message.head_end_id,
        _action(message.action),
        message.sequence,
        _when(message.not_before),
        _when(message.not_after),
        signature,
    )


def read_enrollment(apdu: GeneralCiphering, keys: SupervisionKeys) -> tuple[EnrollmentView, bool]:
    """The body of an enrollment request, and whether its tag was checked.

    The tag is verified under the originator's ``ke`` when the key file has it
    (:class:`~cosemcast.errors.AuthenticationFailed` when it does not verify).
    """
    meter = bytes(apdu.originator_system_title)
    ke = keys.ke.get(meter)
    if ke is not None:
        body = decipher_general(apdu, RecipientKeys(preshared_key=ke)).plain
        verdict = "verified"
    else:
        if len(apdu.ciphered_text) < _TAG_LENGTH:
            raise DecodeError(
                "the enrollment request is shorter than its tag", expected="body ‖ tag"
            )
        body = bytes(apdu.ciphered_text[:-_TAG_LENGTH])
        verdict = f"not verified (no ke for meter {meter.hex().upper()})"
    request = decode_enrollment_body(body)
    view = EnrollmentView(
        request.meter_id,
        request.head_end_id,
        _action(request.action),
        _when(request.requested_at),
        request.counter,
        verdict,
    )
    return view, ke is not None


def load_capture_keys(path: str | Path) -> tuple[KeyRing, SupervisionKeys]:
    """A key file with the optional ``ki``/``ke`` fields (module docstring).

    Raises :class:`ConfigurationError` naming the file and entry, like ``KeyRing.from_toml``.
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:
            document = tomllib.load(fh)
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read the key file ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: not valid TOML ({exc})") from exc
    entries = document.get("keys")
    if not isinstance(entries, list) or not any(
        isinstance(e, dict) and any(name in e for name in _EXTRA_FIELDS) for e in entries
    ):
        return KeyRing.from_toml(path), SupervisionKeys()
    unknown = set(document) - {"keys", "client"}
    if unknown:
        raise ConfigurationError(
            f"{path}: unknown top-level entries {sorted(unknown)}; expected [[keys]] tables"
        )
    ring, extras = KeyRing(), SupervisionKeys()
    for index, entry in enumerate(entries, start=1):
        where = f"{path}: [[keys]] entry {index}"
        if not isinstance(entry, dict):
            raise ConfigurationError(f"{where} is not a table")
        plain: dict[str, Any] = {k: v for k, v in entry.items() if k not in _EXTRA_FIELDS}
        party = party_from_table(plain, where, path.parent)
        if party.system_title in ring:
            raise ConfigurationError(
                f"{where}: system_title {party.system_title.hex().upper()} appears twice"
            )
        ring.add(party)
        for name, store in (("ki", extras.ki), ("ke", extras.ke)):
            if name in entry:
                store[party.system_title] = _key(entry[name], f"{where}: field {name!r}")
    return ring, extras


def _key(value: object, where: str) -> bytes:
    if not isinstance(value, str):
        raise ConfigurationError(f"{where} must be a hex string")
    try:
        key = bytes.fromhex(value)
    except ValueError as exc:
        raise ConfigurationError(f"{where} is not hex") from exc
    if len(key) != 16:
        raise ConfigurationError(f"{where} must be 16 bytes, got {len(key)}")
    return key
