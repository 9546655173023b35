"""The client's association handling: AARQ/AARE, the HLS pass, RLRQ/RLRE (brief §4.2,
§4.3, §7), and the protection every client APDU goes through (brief §5).

Theory of operation. :class:`ClientAcse` holds what the client knows about the association
(negotiated conformance, the server's max PDU and system title, the challenges, the request
in flight) and builds and checks the ACSE APDUs; :class:`~.client.ClientConnection` derives
from it and adds the h11-style surface and the GET/SET/ACTION services.

* AARQ: LN context, with ciphering when the association ciphers; calling-AP-title when the
  association has security settings; the LLS password or CtoS; the InitiateRequest,
  ciphered as glo-initiateRequest under SC ``30`` (authenticated and encrypted, decision:
  it may carry the dedicated key) when the context is ciphered.
* AARE: a rejection raises :class:`AssociationRejected` with the result and diagnostic (and
  the confirmedServiceError it may carry); an acceptance gives the server's title
  (checked against ``peer_system_title`` when configured), conformance and max PDU.
* HLS: the reply_to_HLS_authentication ACTION goes out automatically; for mechanism 5 its
  f(StoC) takes IC n of our unicast counter and the APDU that carries it n+1 (as gurux
  does). A refused reply raises :class:`AssociationRejected` (diagnostic 13); an f(CtoS)
  that does not verify raises :class:`AuthenticationFailed`.
* RLRQ carries the ciphered InitiateRequest again when the association ciphers (DC
  ``test_rlrq.py``); a ciphered RLRE user-information is verified.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from cosemcast.apdu.acse import (
    AARE,
    AARQ,
    RLRE,
    RLRQ,
    AcseRequirements,
    AcseServiceUser,
    AssociationResult,
    MechanismName,
)
from cosemcast.apdu.action import (
    ActionRequestNormal,
    ActionResponseNormal,
)
from cosemcast.apdu.base import Apdu, decode_apdu
from cosemcast.apdu.common import (
    ActionResult,
    GetDataValue,
    InvokeIdAndPriority,
)
from cosemcast.apdu.gbt import GeneralBlockTransfer
from cosemcast.apdu.initiate import Conformance, InitiateRequest, InitiateResponse
from cosemcast.apdu.notifications import (
    ConfirmedServiceError,
    ExceptionResponse,
)
from cosemcast.association._cipher import (
    PLAIN,
    Form,
    Protection,
    ReceivedCounters,
    SendCounters,
    form_for,
    is_ciphered,
)
from cosemcast.association._state import ClientInput, ClientState, client_transition
from cosemcast.association.backend import REPLY_TO_HLS_AUTHENTICATION
from cosemcast.association.blocks import (
    GBT_OVERHEAD,
    GbtSession,
    IncomingBlocks,
    OutgoingBlocks,
)
from cosemcast.association.events import (
    AssociationEstablished,
    AssociationReleased,
    ClientEvent,
    ClientRequest,
    Release,
)
from cosemcast.association.settings import AssociationSettings, SecurityPolicy
from cosemcast.axdr.types import OctetString
from cosemcast.errors import (
    AssociationRejected,
    AuthenticationFailed,
    LocalProtocolError,
    RemoteProtocolError,
)
from cosemcast.security.gcm import SecurityControl
from cosemcast.security.hls import (
    HlsContext,
    HlsCredentials,
    HlsMechanism,
    check_challenge,
    f_stoc,
    make_challenge,
    verify_f_ctos,
)

_NO_LIMIT = 0xFFFF
_TITLE_NEEDED = (MechanismName.HIGH_GMAC, MechanismName.HIGH_SHA256, MechanismName.HIGH_ECDSA)


__all__ = ["ClientAcse"]


@dataclass(slots=True)
class _Pending:
    """The request in flight and its block-transfer progress."""

    request: ClientRequest | None  # None: the reply_to_HLS_authentication ACTION
    invoke: InvokeIdAndPriority
    form: Form
    blocks_out: OutgoingBlocks | None = None
    blocks_in: IncomingBlocks | None = None


class ClientAcse:
    """Association state and the ACSE/HLS handling of the client."""

    def __init__(
        self,
        settings: AssociationSettings,
        *,
        counters: SendCounters | None = None,
        received_counters: ReceivedCounters | None = None,
        rng: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self.settings = settings
        self._rng = rng
        self._protection = (
            None
            if settings.security is None
            else Protection(settings.security, counters, received_counters)
        )
        self._state = ClientState.IDLE
        self._inbox: deque[bytes] = deque()
        self._outbox: list[bytes] = []
        self._events: deque[ClientEvent] = deque()
        self._invoke_id = 0
        self._pending: _Pending | None = None
        self._initiate: InitiateRequest | None = None
        self._conformance = Conformance(0)
        self._server_max_pdu = _NO_LIMIT
        self._ctos = b""
        self._stoc = b""
        self._gbt = GbtSession(settings.gbt_window)

    def _next_invoke(self) -> InvokeIdAndPriority:
        self._invoke_id = self._invoke_id % 15 + 1
        return InvokeIdAndPriority(self._invoke_id, confirmed=True, high_priority=True)

    def _request_form(self) -> Form:
        protection = self._protection
        if protection is None or not self.settings.ciphered:
            return PLAIN
        security = protection.security
        policy = security.effective_policy
        wanted = policy & (SecurityPolicy.AUTHENTICATED_REQUEST | SecurityPolicy.ENCRYPTED_REQUEST)
        control = protection.control(
            authenticated=not wanted or SecurityPolicy.AUTHENTICATED_REQUEST in policy,
            encrypted=not wanted or SecurityPolicy.ENCRYPTED_REQUEST in policy,
        )
        return form_for(security.ciphering, control)

    def _protect(self, plain: bytes, form: Form) -> bytes:
        if self._protection is None or form.kind is None:
            return plain
        return self._protection.protect(plain, form)

    def _wire_length(self, plain: bytes, form: Form) -> int:
        if self._protection is None:
            return len(plain)
        return self._protection.wire_length(len(plain), form)

    def _emit(self, plain: bytes, form: Form) -> bytes:
        """Protect ``plain``; cut it into GBT blocks when it exceeds the server's limit."""
        wire = self._protect(plain, form)
        if len(wire) <= self._server_max_pdu:
            return wire
        if Conformance.GENERAL_BLOCK_TRANSFER in self._conformance:
            return self._gbt.start_sending(wire, self._server_max_pdu - GBT_OVERHEAD).encode()
        raise LocalProtocolError(
            f"the request takes {len(wire)} bytes, over the server's limit of "
            f"{self._server_max_pdu}, and no block transfer applies"
        )

    def _initiate_request(self) -> InitiateRequest:
        security = self.settings.security
        dedicated = None
        if security is not None and security.ciphering.dedicated:
            dedicated = security.dedicated_key or self._rng(security.key_length)
            if len(dedicated) != security.key_length:
                raise LocalProtocolError("the rng returned a dedicated key of the wrong length")
        if self._protection is not None:
            self._protection.set_dedicated_key(dedicated)
        return InitiateRequest(
            dedicated_key=dedicated,
            proposed_conformance=self.settings.effective_conformance,
            client_max_receive_pdu_size=self.settings.max_receive_pdu_size,
        )

    def _protected_initiate(self, initiate: InitiateRequest) -> Apdu:
        if self._protection is None or not self.settings.ciphered:
            return initiate
        control = self._protection.control(authenticated=True, encrypted=True)
        return decode_apdu(self._protection.protect(initiate.encode(), Form("glo", control)))

    def _aarq(self) -> bytes:
        settings = self.settings
        mechanism = settings.mechanism
        self._gbt.reset()
        self._pending = None
        self._conformance = Conformance(0)
        self._server_max_pdu = _NO_LIMIT
        if self._protection is not None:
            self._protection.peer_system_title = self._protection.security.peer_system_title
        value = None
        if mechanism is MechanismName.LOW:
            value = settings.secret
        elif settings.hls:
            try:
                self._ctos = make_challenge(settings.challenge_length, rng=self._rng)
            except ValueError as exc:
                raise LocalProtocolError(f"the rng failed: {exc}") from exc
            value = self._ctos
        self._initiate = self._initiate_request()
        authenticating = mechanism is not MechanismName.LOWEST
        return AARQ(
            application_context_name=settings.application_context_name,
            calling_ap_title=None if self._protection is None else self._protection.system_title,
            sender_acse_requirements=AcseRequirements.AUTHENTICATION if authenticating else None,
            mechanism_name=mechanism if authenticating else None,
            calling_authentication_value=value,
            user_information=self._protected_initiate(self._initiate),
        ).encode()

    def _rlrq(self, event: Release) -> bytes:
        user_information = None
        if self.settings.ciphered and self._initiate is not None:
            user_information = self._protected_initiate(self._initiate)
        self._pending = None
        return RLRQ(reason=event.reason, user_information=user_information).encode()

    # --- receiving ---------------------------------------------------------------------------

    def _move(self, event: ClientInput) -> None:
        self._state = client_transition(self._state, event)

    def _response_policy(self) -> SecurityPolicy:
        if self._protection is None:
            return SecurityPolicy(0)
        return self._protection.security.effective_policy

    def _require_plain_allowed(self) -> None:
        policy = self._response_policy()
        if policy & (SecurityPolicy.AUTHENTICATED_RESPONSE | SecurityPolicy.ENCRYPTED_RESPONSE):
            raise AuthenticationFailed("a response arrived in clear; the policy requires ciphering")

    def _decipher(self, apdu: Apdu) -> Apdu:
        if self._protection is None:
            raise RemoteProtocolError("a ciphered APDU arrived in an association without security")
        assert is_ciphered(apdu)
        policy = self._response_policy()
        deciphered = self._protection.unprotect(
            apdu, require_authentication=SecurityPolicy.AUTHENTICATED_RESPONSE in policy
        )
        control = SecurityControl.from_byte(deciphered.security_control)
        if SecurityPolicy.ENCRYPTED_RESPONSE in policy and not control.encrypted:
            raise AuthenticationFailed("a response arrived unencrypted; the policy requires it")
        inner = decode_apdu(deciphered.plain)
        if is_ciphered(inner) or isinstance(inner, GeneralBlockTransfer):
            raise RemoteProtocolError("a ciphered APDU holds another ciphered or GBT APDU")
        return inner

    # --- association -------------------------------------------------------------------------

    def _on_aare(self, aare: AARE) -> None:
        if aare.result is not AssociationResult.ACCEPTED:
            self._move(ClientInput.AARE_REJECTED)
            detail = ""
            if isinstance(aare.user_information, ConfirmedServiceError):
                error = aare.user_information
                value = getattr(error.value, "name", error.value)
                detail = f"; {error.service.name} {error.error.name} {value}"
            diagnostic = aare.result_source_diagnostic
            raise AssociationRejected(
                f"the server rejected the association: {aare.result.name}, "
                f"{diagnostic.name}{detail}",
                result=int(aare.result),
                diagnostic=int(diagnostic),
            )
        if aare.application_context_name != self.settings.application_context_name:
            raise RemoteProtocolError("the AARE names another application context")
        self._take_server_title(aare.responding_ap_title)
        initiate = aare.user_information
        if initiate is not None and is_ciphered(initiate):
            initiate = self._decipher(initiate)
        elif self.settings.ciphered:
            self._require_plain_allowed()
        if not isinstance(initiate, InitiateResponse):
            raise RemoteProtocolError("the accepted AARE carries no InitiateResponse")
        self._conformance = initiate.negotiated_conformance & self.settings.effective_conformance
        self._server_max_pdu = initiate.server_max_receive_pdu_size or _NO_LIMIT
        if not self.settings.hls:
            self._move(ClientInput.AARE_ACCEPTED)
            self._events.append(self._established())
            return
        stoc = aare.responding_authentication_value
        if (
            aare.result_source_diagnostic is not AcseServiceUser.AUTHENTICATION_REQUIRED
            or stoc is None
        ):
            raise RemoteProtocolError("the AARE does not ask for the HLS pass or carries no StoC")
        if aare.mechanism_name not in (None, self.settings.mechanism):
            raise RemoteProtocolError("the AARE names another authentication mechanism")
        check_challenge(stoc)
        self._send_hls_reply(stoc)
        self._move(ClientInput.AARE_NEEDS_HLS)

    def _take_server_title(self, title: bytes | None) -> None:
        protection = self._protection
        if protection is None:
            return
        if title is not None:
            if len(title) != 8:
                raise RemoteProtocolError(f"the server system title has {len(title)} bytes")
            expected = protection.security.peer_system_title
            if expected is not None and title != expected:
                raise AuthenticationFailed("the server presents another system title")
            protection.peer_system_title = title
        elif protection.peer_system_title is None and (
            self.settings.ciphered or self.settings.mechanism in _TITLE_NEEDED
        ):
            raise RemoteProtocolError("the AARE carries no server system title")

    def _hls(self, stoc: bytes) -> tuple[HlsContext, HlsCredentials]:
        protection = self._protection
        security = None if protection is None else protection.security
        context = HlsContext(
            HlsMechanism(self.settings.mechanism),
            self._ctos,
            stoc,
            b"" if protection is None else protection.system_title,
            (b"" if protection is None else protection.peer_system_title) or b"",
            0 if security is None else security.suite,
        )
        credentials = HlsCredentials(
            secret=self.settings.secret,
            keys=None if protection is None else protection.unicast,
            signing_key=None if security is None else security.signing_key,
            peer_public_key=None if security is None else security.peer_signing_key,
        )
        return context, credentials

    def _send_hls_reply(self, stoc: bytes) -> None:
        context, credentials = self._hls(stoc)
        counter = None
        if self.settings.mechanism is MechanismName.HIGH_GMAC:
            assert self._protection is not None
            counter = self._protection.next_unicast_counter()
        reply = f_stoc(context, credentials, invocation_counter=counter)
        invoke = self._next_invoke()
        form = self._request_form()
        self._stoc = stoc
        self._pending = _Pending(None, invoke, form)
        plain = ActionRequestNormal(REPLY_TO_HLS_AUTHENTICATION, OctetString(reply), invoke)
        self._outbox.append(self._emit(plain.encode(), form))

    def _on_hls_response(self, apdu: Apdu) -> None:
        pending = self._pending
        assert pending is not None
        stoc = self._stoc
        if isinstance(apdu, ExceptionResponse | ConfirmedServiceError) or (
            isinstance(apdu, ActionResponseNormal)
            and apdu.invoke_id_and_priority.invoke_id == pending.invoke.invoke_id
            and apdu.result is not ActionResult.SUCCESS
        ):
            self._pending = None
            self._move(ClientInput.HLS_REFUSED)
            raise AssociationRejected(
                "the server refused our reply_to_HLS_authentication",
                result=int(AssociationResult.REJECTED_PERMANENT),
                diagnostic=int(AcseServiceUser.AUTHENTICATION_FAILURE),
            )
        if not isinstance(apdu, ActionResponseNormal):
            raise RemoteProtocolError(f"{type(apdu).__name__} does not answer the HLS reply")
        self._check_invoke(apdu.invoke_id_and_priority)
        result = apdu.return_parameters
        if not isinstance(result, GetDataValue) or not isinstance(result.value, bytes):
            raise AuthenticationFailed("the server's HLS answer carries no f(CtoS)")
        context, credentials = self._hls(stoc)
        counter = verify_f_ctos(context, credentials, bytes(result.value))
        if counter is not None and self._protection is not None:
            self._protection.record_hls_counter(context.server_system_title, counter)
        self._pending = None
        self._move(ClientInput.HLS_ACCEPTED)
        self._events.append(self._established())

    def _established(self) -> AssociationEstablished:
        protection = self._protection
        return AssociationEstablished(
            conformance=self._conformance,
            server_max_receive_pdu_size=self._server_max_pdu,
            server_system_title=None if protection is None else protection.peer_system_title,
            mechanism=self.settings.mechanism,
        )

    def _on_rlre(self, rlre: RLRE) -> None:
        initiate = rlre.user_information
        if initiate is not None and is_ciphered(initiate):
            initiate = self._decipher(initiate)
        if initiate is not None and not isinstance(initiate, InitiateResponse):
            raise RemoteProtocolError("the RLRE carries something else than an InitiateResponse")
        self._conformance = Conformance(0)
        if self._protection is not None:
            self._protection.set_dedicated_key(None)
        self._move(ClientInput.RLRE)
        self._events.append(AssociationReleased(rlre.reason))

    # --- responses ---------------------------------------------------------------------------

    def _check_invoke(self, invoke: InvokeIdAndPriority) -> None:
        pending = self._pending
        if pending is None or invoke.invoke_id != pending.invoke.invoke_id:
            raise RemoteProtocolError(f"a response with invoke-id {invoke.invoke_id} is unexpected")
