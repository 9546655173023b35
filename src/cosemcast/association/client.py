"""The association client: a sans-IO state machine on whole APDUs (brief §4, §5, §7).

Theory of operation (h11 style). The application calls :meth:`ClientConnection.send` with a
request event and transmits the bytes it returns; it hands every APDU that arrives to
:meth:`~ClientConnection.receive_data`, then calls :meth:`~ClientConnection.next_event`
until it returns :data:`~cosemcast.association.events.NEED_DATA`, transmitting whatever
:meth:`~ClientConnection.data_to_send` holds after each call (continuations the client
produces itself: the reply_to_HLS_authentication ACTION, GET-Request-Next, the next SET or
ACTION block, general-block-transfer acknowledgements)::

    transport.send(client.send(Get(descriptor)))
    while True:
        event = client.next_event()
        for apdu in client.data_to_send():
            transport.send(apdu)
        if event is NEED_DATA:
            client.receive_data(transport.receive())
        else:
            break

Randomness (challenges, dedicated keys) comes from the injected ``rng``; invocation counters
from the injected stores. Transitions follow :data:`~._state.CLIENT_TRANSITIONS`.

Failures are raised from ``next_event``: :class:`AssociationRejected` when the server
refuses the AARQ or our f(StoC) (the client returns to ``IDLE``); any security, decoding
or protocol failure (:class:`AuthenticationFailed` for a wrong f(CtoS) or tag,
:class:`ReplayError` for an old counter) leaves the client in ``ERROR``. Error answers are
results: EXCEPTION-Response and confirmedServiceError become
:class:`~cosemcast.association.events.ServiceException` /
:class:`~cosemcast.association.events.ServiceError`, even when they arrive in clear in a
ciphered association (a meter quirk, issue 3).

Requests larger than the server's max-receive-pdu-size go with general-block-transfer when
negotiated, else in SET datablocks / ACTION pblocks when negotiated, else the send is
refused with :class:`LocalProtocolError`. A server max-receive-pdu-size of 0 is read as
65535 (decision).
"""

from __future__ import annotations

from cosemcast.apdu.acse import (
    AARE,
    RLRE,
)
from cosemcast.apdu.action import (
    ActionRequestNextPBlock,
    ActionRequestNormal,
    ActionRequestWithList,
    ActionResponseNextPBlock,
    ActionResponseNormal,
    ActionResponseWithList,
    ActionResponseWithOptionalData,
    ActionResponseWithPBlock,
)
from cosemcast.apdu.base import Apdu, decode_apdu
from cosemcast.apdu.common import (
    ActionResult,
    DataAccessResult,
    DataBlockSA,
    GetDataError,
    GetDataValue,
    InvokeIdAndPriority,
)
from cosemcast.apdu.gbt import GeneralBlockTransfer
from cosemcast.apdu.get import (
    GetRequestNext,
    GetRequestNormal,
    GetRequestWithList,
    GetResponseNormal,
    GetResponseWithDataBlock,
    GetResponseWithList,
)
from cosemcast.apdu.initiate import Conformance
from cosemcast.apdu.notifications import (
    ConfirmedServiceError,
    DataNotification,
    EventNotificationRequest,
    ExceptionResponse,
)
from cosemcast.apdu.set import (
    SetRequestNormal,
    SetRequestWithList,
    SetResponseDataBlock,
    SetResponseLastDataBlock,
    SetResponseLastDataBlockWithList,
    SetResponseNormal,
    SetResponseWithList,
)
from cosemcast.association._cipher import (
    is_ciphered,
)
from cosemcast.association._client_acse import ClientAcse, _Pending
from cosemcast.association._state import ClientInput, ClientState, client_transition
from cosemcast.association.blocks import (
    BlockedRequest,
    IncomingBlocks,
    OutgoingBlocks,
    decode_get_data_results,
    decode_pblock_results,
    payload_room,
    request_block,
    request_raw_data,
    split,
)
from cosemcast.association.events import (
    NEED_DATA,
    Action,
    ActionList,
    Associate,
    ClientEvent,
    ClientRequest,
    Get,
    GetList,
    GetListResult,
    GetResult,
    MethodListResult,
    MethodResult,
    NeedData,
    Notification,
    Release,
    ServiceError,
    ServiceException,
    Set,
    SetList,
    SetListResult,
    SetResult,
)
from cosemcast.axdr.codec import decode_data
from cosemcast.errors import (
    AssociationRejected,
    DlmsError,
    LocalProtocolError,
    RemoteProtocolError,
)

_INITIATE_CONTROL = 0x30  # auth+enc for the InitiateRequest (it may carry the dedicated key)
_NO_LIMIT = 0xFFFF


__all__ = ["ClientConnection"]

_ALLOWED_IN_CLEAR = (
    AARE,
    RLRE,
    ExceptionResponse,
    ConfirmedServiceError,
    EventNotificationRequest,
    DataNotification,
)
"""APDUs accepted in clear whatever the policy: ACSE, error answers (a meter quirk, issue 3)
and unsolicited notifications (reported with ``protected=False``)."""


class ClientConnection(ClientAcse):
    """One client association (AARQ to RLRE) over some link that carries whole APDUs."""

    def __repr__(self) -> str:
        return f"ClientConnection(state={self._state.value}, client_sap={self.settings.client_sap})"

    @property
    def state(self) -> ClientState:
        return self._state

    @property
    def conformance(self) -> Conformance:
        """The negotiated conformance block (empty before the AARE)."""
        return self._conformance

    @property
    def server_max_receive_pdu_size(self) -> int:
        return self._server_max_pdu

    # --- the h11-style surface ---------------------------------------------------------------

    def send(self, event: ClientRequest) -> bytes:
        """Start ``event``; return the APDU to transmit."""
        if isinstance(event, Associate):
            client_transition(self._state, ClientInput.SEND_ASSOCIATE)
            apdu = self._aarq()
            self._state = client_transition(self._state, ClientInput.SEND_ASSOCIATE)
            return apdu
        if isinstance(event, Release):
            client_transition(self._state, ClientInput.SEND_RELEASE)
            apdu = self._rlrq(event)
            self._state = client_transition(self._state, ClientInput.SEND_RELEASE)
            return apdu
        client_transition(self._state, ClientInput.SEND_REQUEST)
        apdu = self._request(event)
        self._state = client_transition(self._state, ClientInput.SEND_REQUEST)
        return apdu

    def receive_data(self, apdu: bytes) -> None:
        """Queue one whole APDU received from the server (processed by ``next_event``)."""
        self._inbox.append(bytes(apdu))

    def data_to_send(self) -> list[bytes]:
        """APDUs the client produced by itself since the last call, in order."""
        out, self._outbox = self._outbox, []
        return out

    def next_event(self) -> ClientEvent | NeedData:
        """The next result, or :data:`NEED_DATA`; raises on rejection and failures."""
        while not self._events and self._inbox:
            if self._state is ClientState.ERROR:
                raise LocalProtocolError("the association failed earlier; close the transport")
            apdu = self._inbox.popleft()
            try:
                self._process(apdu)
            except AssociationRejected:
                raise
            except DlmsError:
                self._pending = None
                self._state = client_transition(self._state, ClientInput.FAILURE)
                raise
        if self._events:
            return self._events.popleft()
        return NEED_DATA

    # --- building requests ---------------------------------------------------------------------

    def _request(self, event: ClientRequest) -> bytes:
        invoke = self._next_invoke()
        form = self._request_form()
        self._gbt.reset()
        pending = _Pending(event, invoke, form)
        plain: Apdu
        if isinstance(event, Get):
            plain = GetRequestNormal(event.descriptor, event.selection, invoke)
        elif isinstance(event, GetList):
            plain = GetRequestWithList(event.items, invoke)
        elif isinstance(event, Set):
            plain = SetRequestNormal(event.descriptor, event.value, event.selection, invoke)
        elif isinstance(event, SetList):
            plain = SetRequestWithList(event.items, event.values, invoke)
        elif isinstance(event, Action):
            plain = ActionRequestNormal(event.descriptor, event.parameters, invoke)
        elif isinstance(event, ActionList):
            plain = ActionRequestWithList(event.descriptors, event.parameters, invoke)
        else:
            raise LocalProtocolError(f"{type(event).__name__} is not a client request")
        encoded = plain.encode()
        if (
            isinstance(event, Set | SetList | Action | ActionList)
            and self._wire_length(encoded, form) > self._server_max_pdu
            and Conformance.GENERAL_BLOCK_TRANSFER not in self._conformance
        ):
            apdu = self._first_request_block(event, pending)
        else:
            apdu = self._emit(encoded, form)
        self._pending = pending
        return apdu

    def _first_request_block(self, event: BlockedRequest, pending: _Pending) -> bytes:
        needed = (
            Conformance.BLOCK_TRANSFER_WITH_SET_OR_WRITE
            if isinstance(event, Set | SetList)
            else Conformance.BLOCK_TRANSFER_WITH_ACTION
        )
        if needed not in self._conformance:
            raise LocalProtocolError(
                f"the request exceeds the server's limit of {self._server_max_pdu} bytes "
                f"and {needed.name} was not negotiated"
            )
        empty = request_block(event, pending.invoke, DataBlockSA(False, 1, b""), first=True)
        overhead = self._wire_length(bytes(self._server_max_pdu), pending.form)
        overhead -= self._server_max_pdu
        room = payload_room(self._server_max_pdu, len(empty.encode()), overhead)
        pending.blocks_out = OutgoingBlocks(split(request_raw_data(event), room))
        return self._request_block(pending, first=True)

    def _request_block(self, pending: _Pending, *, first: bool) -> bytes:
        assert pending.blocks_out is not None and pending.request is not None
        number, raw, last = pending.blocks_out.next_block()
        request = pending.request
        assert isinstance(request, Set | SetList | Action | ActionList)
        block = request_block(request, pending.invoke, DataBlockSA(last, number, raw), first=first)
        return self._emit(block.encode(), pending.form)

    def _process(self, data: bytes) -> None:
        apdu = decode_apdu(data)
        if isinstance(apdu, GeneralBlockTransfer):
            if self._pending is None and self._state is not ClientState.RELEASING:
                raise RemoteProtocolError("general-block-transfer with no request in flight")
            step = self._gbt.receive(apdu)
            if isinstance(step, GeneralBlockTransfer):
                self._outbox.append(step.encode())
                return
            if step is None:
                return
            self._gbt.reset()
            apdu = decode_apdu(step)
            if isinstance(apdu, GeneralBlockTransfer):
                raise RemoteProtocolError("general-block-transfer inside general-block-transfer")
        protected = False
        if is_ciphered(apdu):
            apdu = self._decipher(apdu)
            protected = True
        elif not isinstance(apdu, _ALLOWED_IN_CLEAR):
            self._require_plain_allowed()
        self._dispatch(apdu, protected)

    def _dispatch(self, apdu: Apdu, protected: bool) -> None:
        state = self._state
        if isinstance(apdu, EventNotificationRequest | DataNotification):
            self._move(ClientInput.NOTIFICATION)
            self._events.append(Notification(apdu, protected))
        elif state is ClientState.ASSOCIATING and isinstance(apdu, AARE):
            self._on_aare(apdu)
        elif state is ClientState.AUTHENTICATING:
            self._on_hls_response(apdu)
        elif state is ClientState.RELEASING and isinstance(apdu, RLRE):
            self._on_rlre(apdu)
        elif state in (ClientState.AWAITING_RESPONSE, ClientState.RELEASING) and isinstance(
            apdu, ExceptionResponse | ConfirmedServiceError
        ):
            self._finish(
                ServiceException(apdu, protected)
                if isinstance(apdu, ExceptionResponse)
                else ServiceError(apdu, protected)
            )
        elif state is ClientState.AWAITING_RESPONSE:
            self._on_response(apdu)
        else:
            raise RemoteProtocolError(f"{type(apdu).__name__} is unexpected in state {state.value}")

    def _finish(self, event: ClientEvent) -> None:
        self._pending = None
        self._move(ClientInput.RESULT)
        self._events.append(event)

    def _on_response(self, apdu: Apdu) -> None:
        pending = self._pending
        assert pending is not None
        invoke = getattr(apdu, "invoke_id_and_priority", None)
        if not isinstance(invoke, InvokeIdAndPriority):
            raise RemoteProtocolError(f"{type(apdu).__name__} does not answer a request")
        self._check_invoke(invoke)
        request = pending.request
        if isinstance(request, Get | GetList):
            self._on_get_response(apdu, request, pending)
        elif isinstance(request, Set | SetList):
            self._on_set_response(apdu, request, pending)
        elif isinstance(request, Action | ActionList):
            self._on_action_response(apdu, request, pending)
        else:
            raise RemoteProtocolError(f"{type(apdu).__name__} is unexpected")

    def _on_get_response(self, apdu: Apdu, request: Get | GetList, pending: _Pending) -> None:
        if isinstance(request, Get) and isinstance(apdu, GetResponseNormal):
            self._finish(GetResult(apdu.result))
        elif isinstance(request, GetList) and isinstance(apdu, GetResponseWithList):
            self._finish(GetListResult(apdu.result))
        elif isinstance(apdu, GetResponseWithDataBlock):
            block = apdu.result
            if isinstance(block.result, DataAccessResult):
                error = GetDataError(block.result)
                if isinstance(request, Get):
                    self._finish(GetResult(error))
                else:
                    self._finish(GetListResult(tuple(error for _ in request.items)))
                return
            if pending.blocks_in is None:
                pending.blocks_in = IncomingBlocks()
            pending.blocks_in.add(block.block_number, block.result)
            if not block.last_block:
                next_request = GetRequestNext(block.block_number, pending.invoke)
                self._outbox.append(self._emit(next_request.encode(), pending.form))
                self._move(ClientInput.BLOCK)
                return
            raw = pending.blocks_in.data()
            if isinstance(request, Get):
                self._finish(GetResult(GetDataValue(decode_data(raw))))
            else:
                self._finish(GetListResult(decode_get_data_results(raw)))
        else:
            raise RemoteProtocolError(f"{type(apdu).__name__} does not answer a GET")

    def _send_next_block(self, pending: _Pending, acknowledged: int) -> None:
        blocks = pending.blocks_out
        if blocks is None or blocks.done or acknowledged != blocks.sent:
            raise RemoteProtocolError(f"the server acknowledges block {acknowledged} out of turn")
        self._outbox.append(self._request_block(pending, first=False))
        self._move(ClientInput.BLOCK)

    def _on_set_response(self, apdu: Apdu, request: Set | SetList, pending: _Pending) -> None:
        single = isinstance(request, Set)
        if isinstance(apdu, SetResponseDataBlock):
            self._send_next_block(pending, apdu.block_number)
        elif single and isinstance(apdu, SetResponseNormal | SetResponseLastDataBlock):
            self._finish(SetResult(apdu.result))
        elif not single and isinstance(
            apdu, SetResponseWithList | SetResponseLastDataBlockWithList
        ):
            self._finish(SetListResult(apdu.result))
        else:
            raise RemoteProtocolError(f"{type(apdu).__name__} does not answer this SET")

    def _on_action_response(
        self, apdu: Apdu, request: Action | ActionList, pending: _Pending
    ) -> None:
        single = isinstance(request, Action)
        if isinstance(apdu, ActionResponseNextPBlock):
            self._send_next_block(pending, apdu.block_number)
        elif single and isinstance(apdu, ActionResponseNormal):
            self._finish(MethodResult(apdu.result, apdu.return_parameters))
        elif not single and isinstance(apdu, ActionResponseWithList):
            self._finish(MethodListResult(apdu.list_of_responses))
        elif isinstance(apdu, ActionResponseWithPBlock):
            block = apdu.pblock
            if pending.blocks_in is None:
                pending.blocks_in = IncomingBlocks()
            pending.blocks_in.add(block.block_number, block.raw_data)
            if not block.last_block:
                next_request = ActionRequestNextPBlock(block.block_number, pending.invoke)
                self._outbox.append(self._emit(next_request.encode(), pending.form))
                self._move(ClientInput.BLOCK)
                return
            results = decode_pblock_results(pending.blocks_in.data())
            if single:
                if len(results) != 1:
                    raise RemoteProtocolError("the ACTION pblocks hold more than one result")
                self._finish(MethodResult(ActionResult.SUCCESS, results[0]))
            else:
                self._finish(
                    MethodListResult(
                        tuple(
                            ActionResponseWithOptionalData(ActionResult.SUCCESS, r) for r in results
                        )
                    )
                )
        else:
            raise RemoteProtocolError(f"{type(apdu).__name__} does not answer this ACTION")
