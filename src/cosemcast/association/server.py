"""The association server: a sans-IO state machine on whole APDUs (brief §4, §5, §7, §8).

Theory of operation. The link layer hands each request APDU to
:meth:`ServerConnection.receive_data` (with the current time, for the backend); the
application calls :meth:`~ServerConnection.next_event` until
:data:`~cosemcast.association.events.NEED_DATA` and transmits what
:meth:`~ServerConnection.data_to_send` returns. Every request gets an answer, errors
included, so the server never fails on what a client sends; ``next_event`` reports what
happened (:class:`~cosemcast.association.events.ClientAssociated`,
:class:`~cosemcast.association.events.RequestRejected`, ...). :meth:`~ServerConnection.send`
protects an unsolicited EVENT- or DATA-NOTIFICATION for the client.

A request goes through, in order: APDU decoding; general-block-transfer reassembly (a request
that came in GBT is answered in GBT); deciphering, with the replay check before the tag and
the counter recorded after it (brief §5.1); the security policy (a plain request where the
policy asks for protection is refused); :data:`~._state.SERVER_SERVES` (what the current
state accepts); then the handler. ACSE and the reply_to_HLS_authentication pass are handled
in :mod:`cosemcast.association._server_acse`; GET, SET and ACTION go to the
:class:`~cosemcast.association.backend.ServerBackend`, item by item, with service-specific
block transfer in both directions when an answer exceeds the client's
max-receive-pdu-size (or general-block-transfer when negotiated). Answers go back in the
form their request came in (glo-, ded-, general-glo/ded or plain; dlms-cosem needs this for
the HLS pass-4 answer); APDUs without a service-specific ciphered twin
(EXCEPTION-Response) go in clear in a glo-/ded- exchange.

Error answers (decisions; brief §4.6, §5.1): a replayed or old invocation counter →
``D8 01 06 <expected IC>``; a tag, key or deciphering failure → ``D8 01 05``; a plain request
against the policy, or a request the state does not serve → ``D8 01 01``; an undecodable
APDU → ``D8 02 03``; an APDU type the server does not serve → ``D8 02 02``; a service not in
the negotiated conformance → ``D8 01 02``; an answer too long and no block transfer →
``D8 01 04``.
"""

from __future__ import annotations

import datetime
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from cosemcast.apdu.acse import AARQ, RLRQ
from cosemcast.apdu.action import (
    ActionRequestNextPBlock,
    ActionRequestNormal,
    ActionRequestWithFirstPBlock,
    ActionRequestWithList,
    ActionRequestWithListAndFirstPBlock,
    ActionRequestWithPBlock,
    ActionResponseNextPBlock,
    ActionResponseNormal,
    ActionResponseWithList,
    ActionResponseWithOptionalData,
    ActionResponseWithPBlock,
)
from cosemcast.apdu.base import Apdu, decode_apdu
from cosemcast.apdu.common import (
    ABSENT,
    ActionResult,
    CosemAttributeDescriptor,
    CosemAttributeDescriptorWithSelection,
    CosemMethodDescriptor,
    DataAccessResult,
    DataBlockG,
    DataBlockSA,
    GetDataError,
    GetDataResult,
    GetDataValue,
    InvokeIdAndPriority,
    SelectiveAccess,
    encode_sequence_of,
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
    DataNotification,
    EventNotificationRequest,
    ExceptionResponse,
    ExceptionServiceError,
    ExceptionStateError,
)
from cosemcast.apdu.set import (
    SetRequestNormal,
    SetRequestWithDataBlock,
    SetRequestWithFirstDataBlock,
    SetRequestWithList,
    SetRequestWithListAndFirstDataBlock,
    SetResponseDataBlock,
    SetResponseLastDataBlock,
    SetResponseLastDataBlockWithList,
    SetResponseNormal,
    SetResponseWithList,
)
from cosemcast.association._cipher import PLAIN, ReceivedCounters, SendCounters, is_ciphered
from cosemcast.association._server_acse import AcseHandler
from cosemcast.association._state import (
    REQUEST_KINDS,
    SERVER_SERVES,
    RequestKind,
    ServerInput,
    ServerState,
    server_transition,
)
from cosemcast.association.backend import REPLY_TO_HLS_AUTHENTICATION, AccessContext, ServerBackend
from cosemcast.association.blocks import (
    IncomingBlocks,
    OutgoingBlocks,
    decode_values,
    payload_room,
    split,
)
from cosemcast.association.events import NEED_DATA, NeedData, RequestRejected, ServerEvent
from cosemcast.association.settings import AssociationSettings
from cosemcast.axdr.codec import decode_data, encode_data
from cosemcast.axdr.types import Data
from cosemcast.errors import (
    AuthenticationFailed,
    DecodeError,
    DlmsError,
    LocalProtocolError,
    RemoteProtocolError,
    ReplayError,
)

__all__ = ["ServerConnection"]

_MAX_U32 = 0xFFFFFFFF
_NOT_ALLOWED = ExceptionStateError.SERVICE_NOT_ALLOWED
_UNKNOWN = ExceptionStateError.SERVICE_UNKNOWN
_NOT_POSSIBLE = ExceptionServiceError.OPERATION_NOT_POSSIBLE
_NOT_SUPPORTED = ExceptionServiceError.SERVICE_NOT_SUPPORTED


def _exception(state: ExceptionStateError, error: ExceptionServiceError) -> bytes:
    return ExceptionResponse(state, error).encode()


@dataclass(slots=True)
class _Transfer:
    """A service-specific block transfer in progress (one at a time)."""

    kind: RequestKind  # GET_NEXT / ACTION_NEXT: we send; SET_BLOCK / ACTION_BLOCK: we receive
    invoke: InvokeIdAndPriority
    outgoing: OutgoingBlocks | None = None
    make_block: Callable[[int, bytes, bool], Apdu] | None = None
    incoming: IncomingBlocks | None = None
    first: Apdu | None = None


class ServerConnection(AcseHandler):
    """One server association with one client SAP (the link layer picked ``settings``)."""

    def __init__(
        self,
        settings: AssociationSettings,
        backend: ServerBackend,
        *,
        counters: SendCounters | None = None,
        received_counters: ReceivedCounters | None = None,
        rng: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        super().__init__(settings, counters, received_counters, rng)
        self._backend = backend
        self._state = ServerState.IDLE
        self._inbox: deque[tuple[bytes, datetime.datetime | None]] = deque()
        self._now: datetime.datetime | None = None
        self._transfer: _Transfer | None = None

    def __repr__(self) -> str:
        return f"ServerConnection(state={self._state.value}, client_sap={self.settings.client_sap})"

    @property
    def state(self) -> ServerState:
        return self._state

    # --- the h11-style surface ---------------------------------------------------------------

    def send(self, notification: EventNotificationRequest | DataNotification) -> bytes:
        """An unsolicited notification for the client, protected like our responses."""
        if self._state in (ServerState.IDLE, ServerState.AUTHENTICATING):
            raise LocalProtocolError("notifications need an established association")
        return self._notification_wire(notification.encode())

    def receive_data(self, apdu: bytes, now: datetime.datetime | None = None) -> None:
        """Queue one whole request APDU (processed by ``next_event``)."""
        self._inbox.append((bytes(apdu), now))

    def data_to_send(self) -> list[bytes]:
        """The answers produced since the last call, in order."""
        out, self._outbox = self._outbox, []
        return out

    def next_event(self) -> ServerEvent | NeedData:
        """Process queued requests until one reports something; :data:`NEED_DATA` if none."""
        while not self._events and self._inbox:
            apdu, self._now = self._inbox.popleft()
            self._process(apdu)
        if self._events:
            return self._events.popleft()
        return NEED_DATA

    # --- the request pipeline ----------------------------------------------------------------

    def _refuse(self, answer: bytes, error: DlmsError) -> None:
        self._transfer = None
        self._answer(answer)
        self._events.append(RequestRejected(error))
        self._state = server_transition(self._state, ServerInput.REFUSED)

    def _process(self, data: bytes) -> None:
        self._form = PLAIN
        self._via_gbt = False
        try:
            apdu = decode_apdu(data)
        except DecodeError as exc:
            self._gbt.reset()
            self._refuse(_exception(_UNKNOWN, ExceptionServiceError.OTHER_REASON), exc)
            return
        if isinstance(apdu, GeneralBlockTransfer):
            inner = self._reassemble(apdu)
            if inner is None:
                return
            self._via_gbt = True
            try:
                apdu = decode_apdu(inner)
            except DecodeError as exc:
                self._refuse(_exception(_UNKNOWN, ExceptionServiceError.OTHER_REASON), exc)
                return
        else:
            self._gbt.reset()
        if is_ciphered(apdu):
            try:
                apdu, self._form = self._decipher(apdu)
            except ReplayError as exc:
                expected = min(exc.expected_min or 0, _MAX_U32)
                answer = ExceptionResponse(
                    _NOT_ALLOWED, ExceptionServiceError.INVOCATION_COUNTER_ERROR, expected
                )
                self._refuse(answer.encode(), exc)
                return
            except DlmsError as exc:
                self._refuse(_exception(_NOT_ALLOWED, ExceptionServiceError.DECIPHERING_ERROR), exc)
                return
        elif not isinstance(apdu, AARQ | RLRQ) and self._plain_refused():
            error = AuthenticationFailed("a plain request where the policy requires ciphering")
            self._refuse(_exception(_NOT_ALLOWED, _NOT_POSSIBLE), error)
            return
        self._serve(apdu)

    def _reassemble(self, gbt: GeneralBlockTransfer) -> bytes | None:
        if Conformance.GENERAL_BLOCK_TRANSFER not in self._conformance:
            error = RemoteProtocolError("general-block-transfer was not negotiated")
            self._refuse(_exception(_NOT_ALLOWED, _NOT_SUPPORTED), error)
            return None
        try:
            step = self._gbt.receive(gbt)
        except RemoteProtocolError as exc:
            self._gbt.reset()
            self._refuse(_exception(_NOT_ALLOWED, _NOT_POSSIBLE), exc)
            return None
        if isinstance(step, GeneralBlockTransfer):
            self._send_gbt(step)
            return None
        return step

    def _fits(self, plain: bytes) -> bool:
        if Conformance.GENERAL_BLOCK_TRANSFER in self._conformance:
            return True
        return self._wire_length(len(plain)) <= self._client_max_pdu

    def _wire_length(self, length: int) -> int:
        if self._protection is None or not self._form.protected:
            return length
        return self._protection.wire_length(length, self._form)

    def _classify(self, apdu: Apdu) -> RequestKind:
        kind = REQUEST_KINDS.get(type(apdu), RequestKind.OTHER)
        if (
            isinstance(apdu, ActionRequestNormal)
            and apdu.cosem_method_descriptor == REPLY_TO_HLS_AUTHENTICATION
            and self._state is ServerState.AUTHENTICATING
        ):
            return RequestKind.HLS_REPLY
        return kind

    def _serve(self, apdu: Apdu) -> None:
        kind = self._classify(apdu)
        if kind is RequestKind.OTHER:
            error = RemoteProtocolError(f"{type(apdu).__name__} is not served")
            self._refuse(_exception(_UNKNOWN, _NOT_SUPPORTED), error)
            return
        if kind not in SERVER_SERVES[self._state]:
            error = RemoteProtocolError(f"{kind.value} is not served in state {self._state.value}")
            self._refuse(_exception(_NOT_ALLOWED, _NOT_POSSIBLE), error)
            return
        if isinstance(apdu, AARQ):
            outcome = self._on_aarq(apdu)
        elif isinstance(apdu, RLRQ):
            outcome = self._on_rlrq(apdu, self._state is ServerState.IDLE)
        elif kind is RequestKind.HLS_REPLY:
            assert isinstance(apdu, ActionRequestNormal)
            outcome = self._on_hls_reply(apdu)
        else:
            outcome = self._on_service(apdu, kind)
        if outcome not in (ServerInput.BLOCK_SENT, ServerInput.BLOCK_RECEIVED):
            self._transfer = None
        self._state = server_transition(self._state, outcome)

    # --- services ----------------------------------------------------------------------------

    def _context(self) -> AccessContext:
        return AccessContext(
            client_sap=self.settings.client_sap,
            mechanism=self.settings.mechanism,
            authenticated=self._authenticated,
            client_system_title=self._client_title,
            ciphered=self._form.protected,
            now=self._now,
        )

    def _unsupported(self, what: str) -> ServerInput:
        error = RemoteProtocolError(f"{what} was not negotiated")
        self._answer(_exception(_NOT_ALLOWED, _NOT_SUPPORTED))
        self._events.append(RequestRejected(error))
        return ServerInput.REFUSED

    def _on_service(self, apdu: Apdu, kind: RequestKind) -> ServerInput:
        conformance = self._conformance
        if kind in (RequestKind.GET_NEXT, RequestKind.ACTION_NEXT):
            return self._on_next(apdu, kind)
        if kind in (RequestKind.SET_BLOCK, RequestKind.ACTION_BLOCK):
            return self._on_block(apdu, kind)
        self._transfer = None
        needed = {
            RequestKind.GET: Conformance.GET,
            RequestKind.SET: Conformance.SET,
            RequestKind.ACTION: Conformance.ACTION,
        }[kind]
        if needed not in conformance:
            return self._unsupported(needed.name or kind.value)
        listed = isinstance(
            apdu,
            GetRequestWithList
            | SetRequestWithList
            | SetRequestWithListAndFirstDataBlock
            | ActionRequestWithList
            | ActionRequestWithListAndFirstPBlock,
        )
        if listed and Conformance.MULTIPLE_REFERENCES not in conformance:
            return self._unsupported("MULTIPLE_REFERENCES")
        if isinstance(apdu, SetRequestWithFirstDataBlock | SetRequestWithListAndFirstDataBlock):
            if Conformance.BLOCK_TRANSFER_WITH_SET_OR_WRITE not in conformance:
                return self._unsupported("BLOCK_TRANSFER_WITH_SET_OR_WRITE")
            transfer = _Transfer(RequestKind.SET_BLOCK, apdu.invoke_id_and_priority)
            transfer.incoming, transfer.first = IncomingBlocks(), apdu
            return self._take_block(transfer, apdu.datablock)
        if isinstance(apdu, ActionRequestWithFirstPBlock | ActionRequestWithListAndFirstPBlock):
            if Conformance.BLOCK_TRANSFER_WITH_ACTION not in conformance:
                return self._unsupported("BLOCK_TRANSFER_WITH_ACTION")
            transfer = _Transfer(RequestKind.ACTION_BLOCK, apdu.invoke_id_and_priority)
            transfer.incoming, transfer.first = IncomingBlocks(), apdu
            return self._take_block(transfer, apdu.pblock)
        if isinstance(apdu, GetRequestNormal | GetRequestWithList):
            return self._get(apdu)
        if isinstance(apdu, SetRequestNormal):
            result = self._backend.set_attribute(
                self._context(), apdu.cosem_attribute_descriptor, apdu.access_selection, apdu.value
            )
            self._answer(SetResponseNormal(result, apdu.invoke_id_and_priority).encode())
            return ServerInput.ANSWERED
        if isinstance(apdu, SetRequestWithList):
            results = self._set_list(apdu.attribute_descriptor_list, apdu.value_list)
            self._answer(SetResponseWithList(results, apdu.invoke_id_and_priority).encode())
            return ServerInput.ANSWERED
        if isinstance(apdu, ActionRequestNormal):
            params = apdu.method_invocation_parameters
            return self._invoke(
                apdu.invoke_id_and_priority,
                (apdu.cosem_method_descriptor,),
                (None if params is ABSENT else params,),
                listed=False,
            )
        assert isinstance(apdu, ActionRequestWithList)
        return self._invoke(
            apdu.invoke_id_and_priority,
            apdu.cosem_method_descriptor_list,
            apdu.method_invocation_parameters,
            listed=True,
        )

    def _get(self, apdu: GetRequestNormal | GetRequestWithList) -> ServerInput:
        ctx = self._context()
        invoke = apdu.invoke_id_and_priority

        def read(
            descriptor: CosemAttributeDescriptor, selection: SelectiveAccess | None
        ) -> GetDataResult:
            value = self._backend.get_attribute(ctx, descriptor, selection)
            if isinstance(value, DataAccessResult):
                return GetDataError(value)
            return GetDataValue(value)

        def block(number: int, raw: bytes, last: bool) -> Apdu:
            return GetResponseWithDataBlock(DataBlockG(last, number, raw), invoke)

        if isinstance(apdu, GetRequestNormal):
            result = read(apdu.cosem_attribute_descriptor, apdu.access_selection)
            plain = GetResponseNormal(result, invoke).encode()
            if isinstance(result, GetDataError) or self._fits(plain):
                self._answer(plain)
                return ServerInput.ANSWERED
            raw = encode_data(result.value)
        else:
            results = tuple(
                read(item.cosem_attribute_descriptor, item.access_selection)
                for item in apdu.attribute_descriptor_list
            )
            plain = GetResponseWithList(results, invoke).encode()
            if self._fits(plain):
                self._answer(plain)
                return ServerInput.ANSWERED
            raw = encode_sequence_of(results, _encode_result)
        return self._send_long(
            RequestKind.GET_NEXT, invoke, raw, block, Conformance.BLOCK_TRANSFER_WITH_GET_OR_READ
        )

    def _set_list(
        self, items: tuple[CosemAttributeDescriptorWithSelection, ...], values: tuple[Data, ...]
    ) -> tuple[DataAccessResult, ...]:
        if len(items) != len(values):
            return tuple(DataAccessResult.OTHER_REASON for _ in items)
        ctx = self._context()
        return tuple(
            self._backend.set_attribute(
                ctx,
                item.cosem_attribute_descriptor,
                item.access_selection,
                value,
            )
            for item, value in zip(items, values, strict=True)
        )

    def _invoke(
        self,
        invoke: InvokeIdAndPriority,
        methods: tuple[CosemMethodDescriptor, ...],
        parameters: tuple[Data | None, ...],
        *,
        listed: bool,
    ) -> ServerInput:
        ctx = self._context()
        if len(methods) != len(parameters):
            outcomes: list[tuple[ActionResult, Data | None]] = [
                (ActionResult.OTHER_REASON, None) for _ in methods
            ]
        else:
            outcomes = [
                self._backend.invoke_method(ctx, method, params)
                for method, params in zip(methods, parameters, strict=True)
            ]
        responses = tuple(
            ActionResponseWithOptionalData(result, None if data is None else GetDataValue(data))
            for result, data in outcomes
        )
        if listed:
            plain = ActionResponseWithList(responses, invoke).encode()
        else:
            plain = ActionResponseNormal(
                responses[0].result, responses[0].return_parameters, invoke
            ).encode()
        if self._fits(plain):
            self._answer(plain)
            return ServerInput.ANSWERED
        raw = b"".join(GetDataValue(data).encode() for _, data in outcomes)

        def block(number: int, chunk: bytes, last: bool) -> Apdu:
            return ActionResponseWithPBlock(DataBlockSA(last, number, chunk), invoke)

        return self._send_long(
            RequestKind.ACTION_NEXT, invoke, raw, block, Conformance.BLOCK_TRANSFER_WITH_ACTION
        )

    def _send_long(
        self,
        kind: RequestKind,
        invoke: InvokeIdAndPriority,
        raw: bytes,
        make_block: Callable[[int, bytes, bool], Apdu],
        needed: Conformance,
    ) -> ServerInput:
        if needed not in self._conformance:
            self._answer(_exception(_NOT_ALLOWED, ExceptionServiceError.PDU_TOO_LONG))
            error = RemoteProtocolError(f"the answer is too long and {needed.name} is off")
            self._events.append(RequestRejected(error))
            return ServerInput.REFUSED
        limit = self._client_max_pdu
        overhead = self._wire_length(limit) - limit
        room = payload_room(limit, len(make_block(1, b"", False).encode()), overhead)
        transfer = _Transfer(kind, invoke, OutgoingBlocks(split(raw, room)), make_block)
        return self._send_block(transfer)

    def _send_block(self, transfer: _Transfer) -> ServerInput:
        assert transfer.outgoing is not None and transfer.make_block is not None
        number, raw, last = transfer.outgoing.next_block()
        self._answer(transfer.make_block(number, raw, last).encode())
        self._transfer = None if last else transfer
        return ServerInput.ANSWERED if last else ServerInput.BLOCK_SENT

    def _on_next(self, apdu: Apdu, kind: RequestKind) -> ServerInput:
        assert isinstance(apdu, GetRequestNext | ActionRequestNextPBlock)
        transfer = self._transfer
        invoke = apdu.invoke_id_and_priority
        if (
            transfer is None
            or transfer.kind is not kind
            or transfer.invoke != invoke
            or transfer.outgoing is None
            or apdu.block_number != transfer.outgoing.sent
        ):
            return self._out_of_turn(kind, invoke, apdu.block_number)
        return self._send_block(transfer)

    def _on_block(self, apdu: Apdu, kind: RequestKind) -> ServerInput:
        assert isinstance(apdu, SetRequestWithDataBlock | ActionRequestWithPBlock)
        transfer = self._transfer
        block = apdu.datablock if isinstance(apdu, SetRequestWithDataBlock) else apdu.pblock
        invoke = apdu.invoke_id_and_priority
        if transfer is None or transfer.kind is not kind or transfer.invoke != invoke:
            return self._out_of_turn(kind, invoke, block.block_number)
        return self._take_block(transfer, block)

    def _out_of_turn(
        self, kind: RequestKind, invoke: InvokeIdAndPriority, number: int
    ) -> ServerInput:
        """A block (or a request for one) that belongs to no transfer: abandon it."""
        self._transfer = None
        self._events.append(
            RequestRejected(RemoteProtocolError(f"{kind.value} {number} is out of turn"))
        )
        invalid = DataAccessResult.DATA_BLOCK_NUMBER_INVALID
        answer: Apdu
        if kind is RequestKind.GET_NEXT:
            answer = GetResponseWithDataBlock(DataBlockG(True, number, invalid), invoke)
        elif kind is RequestKind.SET_BLOCK:
            answer = SetResponseLastDataBlock(invalid, number, invoke)
        else:
            answer = ActionResponseNormal(ActionResult.LONG_ACTION_ABORTED, None, invoke)
        self._answer(answer.encode())
        return ServerInput.REFUSED

    def _take_block(self, transfer: _Transfer, block: DataBlockSA) -> ServerInput:
        assert transfer.incoming is not None
        try:
            transfer.incoming.add(block.block_number, block.raw_data)
        except RemoteProtocolError:
            return self._out_of_turn(transfer.kind, transfer.invoke, block.block_number)
        invoke = transfer.invoke
        if not block.last_block:
            self._transfer = transfer
            if transfer.kind is RequestKind.SET_BLOCK:
                self._answer(SetResponseDataBlock(block.block_number, invoke).encode())
            else:
                self._answer(ActionResponseNextPBlock(block.block_number, invoke).encode())
            return ServerInput.BLOCK_RECEIVED
        self._transfer = None
        raw = transfer.incoming.data()
        first = transfer.first
        if isinstance(first, SetRequestWithFirstDataBlock):
            try:
                value = decode_data(raw)
            except DecodeError:
                result = DataAccessResult.TYPE_UNMATCHED
            else:
                result = self._backend.set_attribute(
                    self._context(), first.cosem_attribute_descriptor, first.access_selection, value
                )
            self._answer(SetResponseLastDataBlock(result, block.block_number, invoke).encode())
            return ServerInput.ANSWERED
        if isinstance(first, SetRequestWithListAndFirstDataBlock):
            items = first.attribute_descriptor_list
            try:
                values = decode_values(raw)
            except DecodeError:
                results = tuple(DataAccessResult.TYPE_UNMATCHED for _ in items)
            else:
                results = self._set_list(items, values)
            answer = SetResponseLastDataBlockWithList(results, block.block_number, invoke)
            self._answer(answer.encode())
            return ServerInput.ANSWERED
        try:
            if isinstance(first, ActionRequestWithFirstPBlock):
                methods: tuple[CosemMethodDescriptor, ...] = (first.cosem_method_descriptor,)
                params: tuple[Data | None, ...] = (decode_data(raw) if raw else None,)
            else:
                assert isinstance(first, ActionRequestWithListAndFirstPBlock)
                methods = first.cosem_method_descriptor_list
                params = decode_values(raw)
        except DecodeError:
            answer_error = ActionResponseNormal(ActionResult.TYPE_UNMATCHED, None, invoke)
            self._answer(answer_error.encode())
            return ServerInput.ANSWERED
        return self._invoke(
            invoke,
            methods,
            params,
            listed=not isinstance(first, ActionRequestWithFirstPBlock),
        )


def _encode_result(result: GetDataResult) -> bytes:
    return result.encode()
