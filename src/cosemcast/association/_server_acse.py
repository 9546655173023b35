"""The server's association handling: AARQ/AARE, RLRQ/RLRE and the HLS pass (brief §4.2,
§4.3, §7).

Theory of operation. :class:`AcseHandler` holds what the server knows about the current
association (negotiated conformance, the client's title and max PDU, the challenges, whether
authentication completed) and the machinery every answer goes through (:meth:`_answer`:
protection in the request's form, general-block-transfer). :class:`ServerConnection`
derives from it and adds the request pipeline and the services.

AARQ checks, in order, each failure answered by an AARE ``rejected-permanent`` whose
diagnostic is the only information given (decisions; brief §4.2 diagnostics): application
context differs from the configured one → 2; mechanism absent where one is configured → 12,
another mechanism → 11; calling-AP-title missing where ciphering or HLS 5-7 needs it, of the
wrong length, or not the configured peer's → 3; user-information missing, not an
InitiateRequest, ciphered in a context without ciphering, or carrying a dedicated key in
clear → 1; a ciphered InitiateRequest that fails (tag, key, replay) → 1 with a
confirmedServiceError ``initiate-error application-reference deciphering-error`` in
user-information; DLMS version below 6, no common GET/SET/ACTION conformance or a client
max PDU below 64 → 1 with the matching ``initiate-error`` (brief §4.6); a wrong or missing
LLS password → 13 (brief §10.2); an HLS CtoS outside 8..64 bytes → 13. The LLS password is
compared in constant time. An AARQ in any state starts a new association.

HLS (brief §7.1): the AARE carries StoC and diagnostic 14; the association then serves only
``reply_to_HLS_authentication``. A wrong f(StoC) is answered ``read-write-denied`` and drops
the association (a new AARQ brings a new challenge, so guesses cannot be repeated).
For mechanism 5 the IC inside f(StoC) is checked against replay under its own key id
(see :mod:`._cipher`), and f(CtoS) takes IC n from our unicast counter while the APDU that
carries it takes n+1 (as gurux does).

RLRQ: a ciphered user-information is verified and answered in kind; if it fails, the RLRE
says ``not-finished`` and the association stays. A plain RLRQ releases (decision: many
clients send it so even in ciphered associations).
"""

from __future__ import annotations

import hmac
from collections import deque
from collections.abc import Callable

from cosemcast.apdu.acse import (
    AARE,
    AARQ,
    RLRE,
    RLRQ,
    AcseRequirements,
    AcseServiceUser,
    AssociationResult,
    MechanismName,
    ReleaseResponseReason,
)
from cosemcast.apdu.action import ActionRequestNormal, ActionResponseNormal
from cosemcast.apdu.base import Apdu, decode_apdu
from cosemcast.apdu.common import ActionResult, GetDataValue
from cosemcast.apdu.gbt import GeneralBlockTransfer
from cosemcast.apdu.initiate import Conformance, InitiateRequest, InitiateResponse
from cosemcast.apdu.notifications import (
    ApplicationReferenceError,
    ConfirmedService,
    ConfirmedServiceError,
    ExceptionResponse,
    ExceptionServiceError,
    ExceptionStateError,
    InitiateError,
    ServiceErrorKind,
)
from cosemcast.association._cipher import (
    PLAIN,
    Form,
    Protection,
    ReceivedCounters,
    SendCounters,
    form_for,
    form_of,
    is_ciphered,
)
from cosemcast.association._state import ServerInput
from cosemcast.association.blocks import GBT_OVERHEAD, GbtSession
from cosemcast.association.events import (
    AssociationRefused,
    ClientAssociated,
    ClientReleased,
    RequestRejected,
    ServerEvent,
)
from cosemcast.association.settings import MIN_PDU_SIZE, AssociationSettings, SecurityPolicy
from cosemcast.axdr.types import OctetString
from cosemcast.errors import (
    AuthenticationFailed,
    DecodeError,
    DlmsError,
    KeyUnavailableError,
    LocalProtocolError,
    RemoteProtocolError,
    SecurityError,
)
from cosemcast.security.gcm import SecurityControl
from cosemcast.security.hls import (
    MAX_CHALLENGE_LENGTH,
    MIN_CHALLENGE_LENGTH,
    HlsContext,
    HlsCredentials,
    HlsMechanism,
    f_ctos,
    make_challenge,
    verify_f_stoc,
)

__all__ = ["AcseHandler"]

_NO_LIMIT = 0xFFFF
_TITLE_NEEDED = (MechanismName.HIGH_GMAC, MechanismName.HIGH_SHA256, MechanismName.HIGH_ECDSA)
_SERVICES = Conformance.GET | Conformance.SET | Conformance.ACTION


class _Rejection(Exception):
    """Internal: an AARQ check failed (never leaves this module)."""

    def __init__(
        self, diagnostic: AcseServiceUser, reason: str, initiate_error: ConfirmedServiceError | None
    ) -> None:
        super().__init__(reason)
        self.diagnostic = diagnostic
        self.reason = reason
        self.initiate_error = initiate_error


def _initiate_error(kind: ServiceErrorKind, value: int) -> ConfirmedServiceError:
    return ConfirmedServiceError(ConfirmedService.INITIATE_ERROR, kind, value)


class AcseHandler:
    """Association state and the ACSE/HLS handlers of the server."""

    def __init__(
        self,
        settings: AssociationSettings,
        counters: SendCounters | None,
        received_counters: ReceivedCounters | None,
        rng: Callable[[int], bytes],
    ) -> None:
        self.settings = settings
        self._rng = rng
        self._protection = (
            None
            if settings.security is None
            else Protection(settings.security, counters, received_counters)
        )
        self._outbox: list[bytes] = []
        self._events: deque[ServerEvent] = deque()
        self._gbt = GbtSession(settings.gbt_window)
        self._form = PLAIN
        self._via_gbt = False
        self._reset_association()

    def _reset_association(self) -> None:
        self._conformance = Conformance(0)
        self._client_max_pdu = _NO_LIMIT
        self._client_title: bytes | None = None
        self._authenticated = False
        self._ctos = b""
        self._stoc = b""
        if self._protection is not None:
            self._protection.set_dedicated_key(None)
            self._protection.peer_system_title = None

    # --- answers -----------------------------------------------------------------------------

    def _send_gbt(self, gbt: GeneralBlockTransfer) -> None:
        self._outbox.append(gbt.encode())
        if gbt.last_block:
            self._gbt.reset()

    def _answer(self, plain: bytes) -> None:
        """Send ``plain`` in the request's form; in GBT when the request came in GBT or the
        answer is too long (the services cut long answers into blocks beforehand)."""
        form = self._form
        protection = self._protection
        wire = plain
        if protection is not None and form.protected and protection.can_protect(plain, form):
            wire = protection.protect(plain, form)
        gbt_allowed = Conformance.GENERAL_BLOCK_TRANSFER in self._conformance
        if gbt_allowed and (self._via_gbt or len(wire) > self._client_max_pdu):
            self._send_gbt(self._gbt.start_sending(wire, self._client_max_pdu - GBT_OVERHEAD))
            return
        if len(wire) > self._client_max_pdu:
            wire = ExceptionResponse(
                ExceptionStateError.SERVICE_NOT_ALLOWED, ExceptionServiceError.PDU_TOO_LONG
            ).encode()
        self._outbox.append(wire)

    def _notification_wire(self, plain: bytes) -> bytes:
        """An unsolicited notification protected like the association's responses: in the
        configured form, or its general- twin when the APDU has no glo-/ded- one (DATA-
        NOTIFICATION travels in general-glo-ciphering)."""
        protection = self._protection
        if protection is None or not self.settings.ciphered:
            return plain
        policy = protection.security.effective_policy
        wanted = policy & (
            SecurityPolicy.AUTHENTICATED_RESPONSE | SecurityPolicy.ENCRYPTED_RESPONSE
        )
        control = protection.control(
            authenticated=not wanted or SecurityPolicy.AUTHENTICATED_RESPONSE in policy,
            encrypted=not wanted or SecurityPolicy.ENCRYPTED_RESPONSE in policy,
        )
        form = form_for(protection.security.ciphering, control)
        if not protection.can_protect(plain, form):
            form = Form("general-ded" if form.dedicated else "general-glo", control)
        return protection.protect(plain, form)

    def _decipher(self, apdu: Apdu) -> tuple[Apdu, Form]:
        """The inner APDU of a ciphered request and the form to answer it in."""
        protection = self._protection
        if protection is None:
            raise KeyUnavailableError("this association has no keys")
        assert is_ciphered(apdu)
        policy = protection.security.effective_policy
        deciphered = protection.unprotect(
            apdu, require_authentication=SecurityPolicy.AUTHENTICATED_REQUEST in policy
        )
        control = SecurityControl.from_byte(deciphered.security_control)
        if SecurityPolicy.ENCRYPTED_REQUEST in policy and not control.encrypted:
            raise AuthenticationFailed("an unencrypted request; the policy requires encryption")
        inner = decode_apdu(deciphered.plain)
        if is_ciphered(inner) or isinstance(inner, GeneralBlockTransfer):
            raise RemoteProtocolError("a ciphered APDU holds another ciphered or GBT APDU")
        wanted = policy & (
            SecurityPolicy.AUTHENTICATED_RESPONSE | SecurityPolicy.ENCRYPTED_RESPONSE
        )
        answer_control = protection.control(
            authenticated=(SecurityPolicy.AUTHENTICATED_RESPONSE in policy)
            if wanted
            else control.authenticated,
            encrypted=(SecurityPolicy.ENCRYPTED_RESPONSE in policy)
            if wanted
            else control.encrypted,
        )
        return inner, Form(form_of(apdu).kind, answer_control)

    # --- AARQ --------------------------------------------------------------------------------

    def _on_aarq(self, aarq: AARQ) -> ServerInput:
        self._reset_association()
        self._gbt.reset()
        try:
            initiate, initiate_form = self._check_aarq(aarq)
        except _Rejection as rejection:
            self._reset_association()
            self._outbox.append(
                AARE(
                    application_context_name=aarq.application_context_name,
                    result=AssociationResult.REJECTED_PERMANENT,
                    result_source_diagnostic=rejection.diagnostic,
                    user_information=rejection.initiate_error,
                ).encode()
            )
            self._events.append(AssociationRefused(rejection.diagnostic, rejection.reason))
            return ServerInput.AARQ_REJECTED
        settings = self.settings
        mechanism = settings.mechanism
        self._conformance = initiate.proposed_conformance & settings.effective_conformance
        self._client_max_pdu = initiate.client_max_receive_pdu_size or _NO_LIMIT
        response: Apdu = InitiateResponse(
            negotiated_conformance=self._conformance,
            server_max_receive_pdu_size=settings.max_receive_pdu_size,
        )
        if initiate_form.protected:
            assert self._protection is not None
            response = decode_apdu(self._protection.protect(response.encode(), initiate_form))
        if settings.hls:
            try:
                self._stoc = make_challenge(settings.challenge_length, rng=self._rng)
            except ValueError as exc:
                raise LocalProtocolError(f"the rng failed: {exc}") from exc
        authenticating = mechanism is not MechanismName.LOWEST
        self._outbox.append(
            AARE(
                application_context_name=settings.application_context_name,
                result=AssociationResult.ACCEPTED,
                result_source_diagnostic=AcseServiceUser.AUTHENTICATION_REQUIRED
                if settings.hls
                else AcseServiceUser.NULL,
                responding_ap_title=None
                if self._protection is None
                else self._protection.system_title,
                responder_acse_requirements=AcseRequirements.AUTHENTICATION
                if authenticating
                else None,
                mechanism_name=mechanism if authenticating else None,
                responding_authentication_value=self._stoc if settings.hls else None,
                user_information=response,
            ).encode()
        )
        if settings.hls:
            return ServerInput.AARQ_NEEDS_HLS
        self._authenticated = authenticating
        self._events.append(self._associated())
        return ServerInput.AARQ_ACCEPTED

    def _associated(self) -> ClientAssociated:
        return ClientAssociated(
            client_sap=self.settings.client_sap,
            mechanism=self.settings.mechanism,
            client_system_title=self._client_title,
            conformance=self._conformance,
            client_max_receive_pdu_size=self._client_max_pdu,
            ciphered=self.settings.ciphered,
        )

    def _check_aarq(self, aarq: AARQ) -> tuple[InitiateRequest, Form]:
        settings = self.settings
        user = AcseServiceUser
        if aarq.application_context_name != settings.application_context_name:
            raise _Rejection(user.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED, "context", None)
        mechanism = aarq.mechanism_name
        if mechanism is None and settings.mechanism is not MechanismName.LOWEST:
            raise _Rejection(user.AUTHENTICATION_MECHANISM_NAME_REQUIRED, "no mechanism", None)
        if (mechanism or MechanismName.LOWEST) != settings.mechanism:
            raise _Rejection(user.AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED, "mechanism", None)
        self._take_client_title(aarq.calling_ap_title)
        initiate, form = self._check_initiate(aarq.user_information)
        if settings.mechanism is MechanismName.LOW:
            password = aarq.calling_authentication_value or b""
            if not hmac.compare_digest(password, settings.secret):
                raise _Rejection(user.AUTHENTICATION_FAILURE, "wrong LLS password", None)
            self._authenticated = True
        elif settings.hls:
            ctos = aarq.calling_authentication_value or b""
            if not MIN_CHALLENGE_LENGTH <= len(ctos) <= MAX_CHALLENGE_LENGTH:
                raise _Rejection(user.AUTHENTICATION_FAILURE, "CtoS is not 8..64 bytes", None)
            self._ctos = ctos
        return initiate, form

    def _take_client_title(self, title: bytes | None) -> None:
        protection = self._protection
        if protection is None:
            return
        diagnostic = AcseServiceUser.CALLING_AP_TITLE_NOT_RECOGNIZED
        expected = protection.security.peer_system_title
        if title is not None and (len(title) != 8 or expected not in (None, title)):
            raise _Rejection(diagnostic, "calling-AP-title not recognised", None)
        title = title or expected
        if title is None and (self.settings.ciphered or self.settings.mechanism in _TITLE_NEEDED):
            raise _Rejection(diagnostic, "calling-AP-title missing", None)
        protection.peer_system_title = title
        self._client_title = title

    def _check_initiate(self, user_information: Apdu | None) -> tuple[InitiateRequest, Form]:
        no_reason = AcseServiceUser.NO_REASON_GIVEN
        form = PLAIN
        initiate = user_information
        if initiate is not None and is_ciphered(initiate):
            if not self.settings.ciphered:
                raise _Rejection(no_reason, "ciphered InitiateRequest without ciphering", None)
            try:
                initiate, form = self._decipher(initiate)
            except DlmsError as exc:
                error = _initiate_error(
                    ServiceErrorKind.APPLICATION_REFERENCE,
                    ApplicationReferenceError.DECIPHERING_ERROR,
                )
                raise _Rejection(
                    no_reason, f"InitiateRequest: {type(exc).__name__}", error
                ) from exc
        elif self.settings.ciphered and self._plain_refused():
            raise _Rejection(no_reason, "plain InitiateRequest; the policy needs ciphering", None)
        if not isinstance(initiate, InitiateRequest):
            raise _Rejection(no_reason, "no InitiateRequest", None)
        if initiate.dedicated_key is not None:
            if not form.protected:
                raise _Rejection(no_reason, "a dedicated key in clear", None)
            assert self._protection is not None
            try:
                self._protection.set_dedicated_key(initiate.dedicated_key)
            except DecodeError as exc:
                raise _Rejection(no_reason, "dedicated key of the wrong length", None) from exc
        kind = ServiceErrorKind.INITIATE
        if initiate.proposed_dlms_version_number < 6:
            error = _initiate_error(kind, InitiateError.DLMS_VERSION_TOO_LOW)
            raise _Rejection(no_reason, "DLMS version too low", error)
        if not initiate.proposed_conformance & self.settings.effective_conformance & _SERVICES:
            error = _initiate_error(kind, InitiateError.INCOMPATIBLE_CONFORMANCE)
            raise _Rejection(no_reason, "incompatible conformance", error)
        if 0 < initiate.client_max_receive_pdu_size < MIN_PDU_SIZE:
            error = _initiate_error(kind, InitiateError.PDU_SIZE_TOO_SHORT)
            raise _Rejection(no_reason, "client max PDU size too short", error)
        return initiate, form

    def _plain_refused(self) -> bool:
        if self._protection is None:
            return False
        policy = self._protection.security.effective_policy
        return bool(
            policy & (SecurityPolicy.AUTHENTICATED_REQUEST | SecurityPolicy.ENCRYPTED_REQUEST)
        )

    # --- HLS pass ----------------------------------------------------------------------------

    def _hls(self) -> tuple[HlsContext, HlsCredentials]:
        protection = self._protection
        security = None if protection is None else protection.security
        context = HlsContext(
            HlsMechanism(self.settings.mechanism),
            self._ctos,
            self._stoc,
            self._client_title or b"",
            b"" if protection is None else protection.system_title,
            0 if security is None else security.suite,
        )
        credentials = HlsCredentials(
            secret=self.settings.secret,
            keys=None if protection is None else protection.unicast,
            signing_key=None if security is None else security.signing_key,
            peer_public_key=None if security is None else security.peer_signing_key,
        )
        return context, credentials

    def _on_hls_reply(self, apdu: ActionRequestNormal) -> ServerInput:
        invoke = apdu.invoke_id_and_priority
        reply = apdu.method_invocation_parameters
        context, credentials = self._hls()
        try:
            if not isinstance(reply, bytes):
                raise AuthenticationFailed("reply_to_HLS_authentication carries no octet-string")
            counter = verify_f_stoc(context, credentials, bytes(reply))
            if counter is not None and self._protection is not None:
                self._protection.record_hls_counter(context.client_system_title, counter)
        except (SecurityError, RemoteProtocolError) as exc:
            self._answer(
                ActionResponseNormal(ActionResult.READ_WRITE_DENIED, None, invoke).encode()
            )
            self._events.append(
                AssociationRefused(
                    AcseServiceUser.AUTHENTICATION_FAILURE, f"f(StoC): {type(exc).__name__}"
                )
            )
            self._reset_association()
            return ServerInput.HLS_FAILED
        counter = None
        if self.settings.mechanism is MechanismName.HIGH_GMAC:
            assert self._protection is not None
            counter = self._protection.next_unicast_counter()
        answer = f_ctos(context, credentials, invocation_counter=counter)
        self._answer(
            ActionResponseNormal(
                ActionResult.SUCCESS, GetDataValue(OctetString(answer)), invoke
            ).encode()
        )
        self._authenticated = True
        self._events.append(self._associated())
        return ServerInput.HLS_PASSED

    # --- RLRQ --------------------------------------------------------------------------------

    def _on_rlrq(self, rlrq: RLRQ, idle: bool) -> ServerInput:
        user_information = rlrq.user_information
        response: Apdu | None = None
        if user_information is not None and is_ciphered(user_information) and not idle:
            try:
                initiate, form = self._decipher(user_information)
                if not isinstance(initiate, InitiateRequest):
                    raise RemoteProtocolError("the RLRQ carries no InitiateRequest")
            except DlmsError as exc:
                self._outbox.append(RLRE(reason=ReleaseResponseReason.NOT_FINISHED).encode())
                self._events.append(RequestRejected(exc))
                return ServerInput.REFUSED
            assert self._protection is not None
            plain = InitiateResponse(
                negotiated_conformance=self._conformance,
                server_max_receive_pdu_size=self.settings.max_receive_pdu_size,
            ).encode()
            response = decode_apdu(self._protection.protect(plain, form))
        self._outbox.append(
            RLRE(reason=ReleaseResponseReason.NORMAL, user_information=response).encode()
        )
        self._events.append(ClientReleased(rlrq.reason))
        self._reset_association()
        return ServerInput.RELEASED
