"""The analysis behind ``cosemcast pcap``: decode each frame's APDU and decipher it with what
the capture has taught so far (specs/pcap.md §3).

Theory of operation. :class:`Analyser` sees the frames of a capture in time order and keeps
what the capture teaches: each sender's system title (from its AARQ or AARE), the dedicated
key of each association (from its deciphered InitiateRequest), the payload keys ``Kp`` of
general-ciphering key-info (by originator and transaction-id) and the C1s parked until their
C2 comes, and the HLS challenges of each association (CtoS, StoC) to check the f(StoC) and
f(CtoS) of the HLS pass. Each frame becomes an :class:`Item`: the decoded APDU, the
deciphered parts with their status, notes and the worst exit status.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.acse import AARE, AARQ, MechanismName
from cosemcast.apdu.action import ActionRequestNormal, ActionResponseNormal
from cosemcast.apdu.common import GetDataValue
from cosemcast.apdu.general import AgreedKey as _AgreedKey
from cosemcast.apdu.general import GeneralCiphering, WrappedKey
from cosemcast.apdu.initiate import InitiateRequest
from cosemcast.axdr import OctetString
from cosemcast.capture.supervision_view import (
    EnrollmentView,
    InitMessageView,
    SupervisionKeys,
    embedded_init_message,
    open_init_message,
    read_enrollment,
    supervision_kind,
)
from cosemcast.capture.traffic import CapturedFrame
from cosemcast.cli.decode import (
    EXIT_AUTHENTICATION,
    EXIT_MALFORMED,
    EXIT_NO_KEY,
    EXIT_OK,
    Decipherment,
    ciphered_parts,
    decipher_for_display,
)
from cosemcast.cli.render import Note
from cosemcast.errors import AuthenticationFailed, DecodeError, KeyUnavailableError
from cosemcast.security.hls import verify_gmac_f
from cosemcast.security.keyring import KeyRing, PartyKeys
from cosemcast.security.protection import GeneralCipheringAad

__all__ = ["Analyser", "Item"]


@dataclass(slots=True)
class Item:
    """One frame and what was found in it."""

    frame: CapturedFrame
    apdu: object | None = None
    parts: list[tuple[str, Decipherment]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    status: int = EXIT_OK
    problem: str | None = None

    def fail(self, status: int, problem: str | None) -> None:
        if status > self.status:
            self.status, self.problem = status, problem

    def replace_part(self, index: int, result: Decipherment, note: str) -> None:
        self.parts[index] = (self.parts[index][0], result)
        self.notes.append(note)
        self.status, self.problem = EXIT_OK, None
        for _, part in self.parts:
            self.fail(part.status, part.problem)


_KeyName = tuple[bytes, bytes]  # (originator-system-title, transaction-id)
_ASSOCIATION_LN_CLASS = 15
_REPLY_TO_HLS_AUTHENTICATION = 1


@dataclass(slots=True)
class _HlsPass:
    """The challenges of one HLS-GMAC association and who answers them (brief §7.2)."""

    ctos: bytes = field(repr=False)
    client: bytes | None
    stoc: bytes | None = field(default=None, repr=False)
    server: bytes | None = None
    asked: bool = False


class Analyser:
    """Decodes each frame's APDU and deciphers it with what the capture has taught so far."""

    def __init__(
        self,
        keyring: KeyRing | None,
        aad: GeneralCipheringAad,
        extras: SupervisionKeys | None = None,
    ) -> None:
        self.keyring = keyring
        self.aad = aad
        self.extras = extras if extras is not None else SupervisionKeys()
        self.titles: dict[tuple[int, str], bytes] = {}
        self.dedicated_keys: dict[int, bytes] = {}
        self.content_keys: dict[_KeyName, bytes] = {}
        # C1s seen before the C2 of their kp_id (specs/shared-payload.md §9.3: parked).
        self.parked: dict[_KeyName, list[tuple[Item, int, GeneralCiphering]]] = {}
        self.hls: dict[int, _HlsPass] = {}

    def analyse(self, frame: CapturedFrame) -> Item:
        item = Item(frame)
        if frame.error is not None:
            item.fail(EXIT_MALFORMED, _malformed_text(frame.error, frame.where))
            return item
        if frame.apdu is None:
            return item
        try:
            apdu = decode_apdu(frame.apdu)
        except DecodeError as exc:
            item.fail(EXIT_MALFORMED, _apdu_malformed_text(exc, frame))
            return item
        item.apdu = apdu
        conversation = frame.conversation.index
        if isinstance(apdu, AARQ) and apdu.calling_ap_title:
            self.titles[(conversation, frame.source)] = bytes(apdu.calling_ap_title)
        if isinstance(apdu, AARE) and apdu.responding_ap_title:
            self.titles[(conversation, frame.source)] = bytes(apdu.responding_ap_title)
        self._hls_challenges(apdu, conversation)
        if self.keyring is None:
            return item
        for index, (name, target) in enumerate(ciphered_parts(apdu)):
            item.parts.append((name, self._decipher(target, item, index)))
            item.fail(item.parts[-1][1].status, item.parts[-1][1].problem)
        for carrier in [apdu, *(result.plain for _, result in item.parts)]:
            message = embedded_init_message(carrier)
            if message is not None:
                item.parts.append(("init_message", self._supervision(message, "init")))
                item.fail(item.parts[-1][1].status, item.parts[-1][1].problem)
        self._check_hls(item, [apdu, *(result.plain for _, result in item.parts)])
        return item

    def _hls_challenges(self, apdu: object, conversation: int) -> None:
        if (
            isinstance(apdu, AARQ)
            and apdu.mechanism_name == MechanismName.HIGH_GMAC
            and apdu.calling_authentication_value
        ):
            title = bytes(apdu.calling_ap_title) if apdu.calling_ap_title else None
            self.hls[conversation] = _HlsPass(bytes(apdu.calling_authentication_value), title)
        elif isinstance(apdu, AARE) and apdu.responding_authentication_value:
            hls = self.hls.get(conversation)
            if hls is not None:
                hls.stoc = bytes(apdu.responding_authentication_value)
                hls.server = bytes(apdu.responding_ap_title) if apdu.responding_ap_title else None

    def _check_hls(self, item: Item, carriers: list[object]) -> None:
        """Check f(StoC) (the client's reply_to_HLS_authentication) and f(CtoS) (the meter's
        answer) of an HLS-GMAC pass with the sender's keys."""
        hls = self.hls.get(item.frame.conversation.index)
        if hls is None or hls.stoc is None:
            return
        for carrier in carriers:
            if (
                isinstance(carrier, ActionRequestNormal)
                and carrier.cosem_method_descriptor.class_id == _ASSOCIATION_LN_CLASS
                and carrier.cosem_method_descriptor.method_id == _REPLY_TO_HLS_AUTHENTICATION
                and isinstance(carrier.method_invocation_parameters, OctetString)
            ):
                response = bytes(carrier.method_invocation_parameters)
                self._verify_hls(item, "f(StoC)", hls.client, hls.stoc, response)
                hls.asked = True
            elif (
                isinstance(carrier, ActionResponseNormal)
                and hls.asked
                and isinstance(carrier.return_parameters, GetDataValue)
                and isinstance(carrier.return_parameters.value, OctetString)
            ):
                response = bytes(carrier.return_parameters.value)
                self._verify_hls(item, "f(CtoS)", hls.server, hls.ctos, response)
                hls.asked = False

    def _verify_hls(
        self, item: Item, what: str, title: bytes | None, challenge: bytes, response: bytes
    ) -> None:
        assert self.keyring is not None
        if title is None:
            item.notes.append(f"HLS {what} not checked: the AARQ/AARE carries no system title")
            return
        try:
            verify_gmac_f(self.keyring.symmetric_keys(title), title, challenge, response)
        except KeyUnavailableError:
            item.notes.append(f"HLS {what} not checked: no keys for {title.hex().upper()}")
        except AuthenticationFailed as exc:
            item.notes.append(f"HLS {what} FAILED")
            item.fail(EXIT_AUTHENTICATION, f"HLS {what} does not verify: {exc}")
        else:
            item.notes.append(f"HLS {what} verified")

    def _decipher(self, apdu: object, item: Item, index: int) -> Decipherment:
        assert self.keyring is not None
        conversation, source = item.frame.conversation.index, item.frame.source
        preshared: bytes | None = None
        if isinstance(apdu, GeneralCiphering):
            unsupported = _unsupported_key_info(apdu)
            if unsupported is not None:
                return Decipherment(
                    Note(f"not deciphered: {unsupported}"), EXIT_NO_KEY, unsupported
                )
            kind = supervision_kind(apdu)
            if kind is not None:
                return self._supervision(apdu, kind)
            name = (bytes(apdu.originator_system_title), bytes(apdu.transaction_id))
            if apdu.key_info is None:
                preshared = self.content_keys.get(name)
                if preshared is None:
                    self.parked.setdefault(name, []).append((item, index, apdu))
                    problem = (
                        f"unknown kp_id {name[1].hex().upper() or '(empty)'}: "
                        "no control message in the capture carries its key"
                    )
                    return Decipherment(Note(f"not deciphered: {problem}"), EXIT_NO_KEY, problem)
        result = decipher_for_display(
            apdu,
            self._ring_for(apdu, preshared),
            self.aad,
            system_title=self.titles.get((conversation, source)),
            dedicated_key=self.dedicated_keys.get(conversation),
            preshared_key=preshared,
        )
        if (
            isinstance(apdu, GeneralCiphering)
            and isinstance(apdu.key_info, WrappedKey)
            and result.status in (EXIT_NO_KEY, EXIT_AUTHENTICATION)
        ):
            result = self._recipient_kek(apdu, result)
        if (
            isinstance(apdu, GeneralCiphering)
            and isinstance(apdu.key_info, WrappedKey | _AgreedKey)
            and result.status == EXIT_OK
            and result.content_key is not None
        ):
            self._learn(apdu, result.content_key, item.frame.packet)
        if isinstance(result.plain, InitiateRequest) and result.plain.dedicated_key:
            self.dedicated_keys[conversation] = bytes(result.plain.dedicated_key)
        return result

    def _recipient_kek(self, apdu: GeneralCiphering, failed: Decipherment) -> Decipherment:
        """Try the ``kek`` of the recipient's entry: the Ks that head-end shares with the
        meter, when each head-end has its own (specs/pcap.md §3, decision)."""
        assert self.keyring is not None
        recipient = self.keyring.get(bytes(apdu.recipient_system_title))
        originator = bytes(apdu.originator_system_title)
        if recipient is None or recipient.kek is None:
            if failed.status != EXIT_NO_KEY:
                return failed
            problem = (
                f"no key: no Ks to unwrap Kp: neither meter {originator.hex().upper()} nor "
                f"recipient {bytes(apdu.recipient_system_title).hex().upper()} has a kek in "
                "the key file"
            )
            return Decipherment(Note(f"not deciphered: {problem}"), EXIT_NO_KEY, problem)
        sender = self.keyring.get(originator)
        ring = KeyRing(p for p in self.keyring if p.system_title != originator)
        if sender is not None:
            ring.add(dataclasses.replace(sender, kek=recipient.kek))
        else:
            ring.add(PartyKeys(originator, ek=recipient.kek, kek=recipient.kek))
        result = decipher_for_display(apdu, ring, self.aad)
        return result if result.status == EXIT_OK else failed

    def _ring_for(self, apdu: object, preshared: bytes | None) -> KeyRing:
        """The key ring, with an entry for a general-ciphering originator it lacks when the
        content key is already known (a C1 opened with a learnt Kp needs no other key)."""
        assert self.keyring is not None
        if preshared is None or not isinstance(apdu, GeneralCiphering):
            return self.keyring
        originator = bytes(apdu.originator_system_title)
        if originator in self.keyring:
            return self.keyring
        ring = KeyRing(self.keyring)
        ring.add(PartyKeys(originator, ek=preshared))
        return ring

    def _supervision(self, apdu: GeneralCiphering, kind: str) -> Decipherment:
        """An initialization message or an enrollment request (capture/supervision_view.py)."""
        assert self.keyring is not None
        try:
            if kind == "init":
                view: InitMessageView | EnrollmentView = open_init_message(
                    apdu, self.keyring, self.extras
                )
                return Decipherment(view, plain=view)
            view, checked = read_enrollment(apdu, self.extras)
        except AuthenticationFailed as exc:
            failed = f"authentication failed: {exc}"
            return Decipherment(Note(f"FAILED, {failed}"), EXIT_AUTHENTICATION, failed)
        except KeyUnavailableError as exc:
            return Decipherment(Note(f"not deciphered: {exc}"), EXIT_NO_KEY, f"no key: {exc}")
        except DecodeError as exc:
            problem = f"malformed {kind} message: {exc}"
            return Decipherment(Note(problem), EXIT_MALFORMED, problem)
        if checked:
            return Decipherment(view, plain=view)
        return Decipherment(view, EXIT_NO_KEY, f"no key: {view.tag}", view)

    def _learn(self, apdu: GeneralCiphering, key: bytes, packet: int) -> None:
        """Remember a payload key and open the C1s that arrived before its C2."""
        assert self.keyring is not None
        name = (bytes(apdu.originator_system_title), bytes(apdu.transaction_id))
        self.content_keys[name] = key
        for item, index, parked in self.parked.pop(name, []):
            ring = self._ring_for(parked, key)
            result = decipher_for_display(parked, ring, self.aad, preshared_key=key)
            item.replace_part(index, result, f"Kp from the control message in packet {packet}")


def _unsupported_key_info(apdu: GeneralCiphering) -> str | None:
    info = apdu.key_info
    if isinstance(info, _AgreedKey) and bytes(info.key_parameters) not in (b"\x01", b"\x02"):
        shown = bytes(info.key_parameters).hex().upper() or "empty"
        return f"agreed-key parameters {shown} are not supported (brief §6.1: 01 or 02)"
    return None


def _expected(exc: DecodeError) -> str:
    return f" (expected {exc.expected})" if exc.expected and exc.expected not in exc.message else ""


def _malformed_text(exc: DecodeError, where: str) -> str:
    at = f" at offset {exc.offset} of {where}" if exc.offset is not None else f" in {where}"
    return f"malformed frame{at}: {exc.message}{_expected(exc)}"


def _apdu_malformed_text(exc: DecodeError, frame: CapturedFrame) -> str:
    if exc.offset is None:
        return f"malformed APDU: {exc.message}{_expected(exc)}"
    where = f"offset {exc.offset} of the APDU"
    if frame.apdu_offset is not None:
        where += f" ({frame.where} offset {frame.apdu_offset + exc.offset})"
    return f"malformed APDU at {where}: {exc.message}{_expected(exc)}"
