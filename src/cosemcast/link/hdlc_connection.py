"""Sans-IO HDLC connection (IEC 62056-46) for both roles: client (primary) and server (secondary).

Theory of operation. The link runs in normal response mode with a single poll token: the
client sends frames and sets P = 1 on the last one, which hands the token to the server; the
server answers and sets F = 1 on its last frame, which hands it back (brief §2.3). The client
opens the link with SNRM and closes it with DISC; the server answers UA, or DM when it has no
link. The SNRM/UA information field negotiates the maximum information field length and the
window in each direction; transmit and receive are seen from the sender, so the receiver of a
UA swaps them (brief §2.6).

An APDU travels as ``LLC header ‖ APDU`` (``E6 E6 00`` client to server, ``E6 E7 00`` server to
client, brief §2.5) cut into I-frames of at most the negotiated information length, the S bit
set on every segment but the last (brief §2.7). N(S) and N(R) count modulo 8; at most
``window`` frames are unacknowledged. The receiver accepts only the frame whose N(S) is the next
expected one (a repeated or out-of-order frame is discarded, its N(R) still counts) and
answers a poll with its N(R): an RR while the APDU is incomplete, so the server pulls the next
client segments and the client pulls the next server segments with RR. Recovery is go-back-N:
whoever holds the token (re)sends every unacknowledged frame from the oldest. A frame that
fails its HCS or FCS is dropped without an answer; the client's response timer then fires and
it polls again (retransmitting its own unacknowledged frames, or an RR), at most
``max_retries`` times in a row before the link is declared lost.

The server keeps the token after the poll that completes a request until the application
answers with :meth:`HdlcConnection.send_apdu` (so the response goes out at once, as real meters
do); a later poll with nothing to send gets an RR. The client, while it waits for an answer to
a complete APDU and holds the token, polls with RR every ``response_timeout_s``. A final frame
that brings nothing new (a repeated I-frame, or an RR acknowledging nothing while frames are
outstanding) answers an older poll whose answer crossed a retransmission; the client does not
take the token back on it, which would double every later exchange. Bytes arriving after a
silence longer than ``inter_octet_timeout_s`` drop an incomplete frame, so a damaged length
field cannot stall the receiver.

API in the h11 manner: :meth:`~HdlcConnection.receive_data` buffers bytes,
:meth:`~HdlcConnection.next_event` returns :class:`Connected`, :class:`ApduReceived`,
:class:`Disconnected` or :data:`NEED_DATA`; frames to send pile up and are taken with
:meth:`~HdlcConnection.data_to_send` (the local calls return them directly). Time is injected:
every call that may start a timer takes ``now`` (seconds, any monotonic origin),
:meth:`~HdlcConnection.get_timer` gives the next deadline and
:meth:`~HdlcConnection.handle_timer` runs it. The state transitions are in
:mod:`cosemcast.link.hdlc_state`.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Final, assert_never

from cosemcast.errors import DecodeError, LocalProtocolError
from cosemcast.link.hdlc import (
    MAX_FRAME_LENGTH,
    FrameType,
    HdlcAddress,
    HdlcFrame,
    HdlcFrameSplitter,
    HdlcParameters,
    LlcHeader,
    decode_frame,
    decode_parameters,
    encode_frame,
    encode_parameters,
)
from cosemcast.link.hdlc_state import (
    DEFAULT_SERVER_LIMITS,
    MAX_INFORMATION_LENGTH,
    NEED_DATA,
    TRANSITIONS,
    ApduReceived,
    Command,
    CommandAction,
    Connected,
    Disconnected,
    DisconnectReason,
    Event,
    FrameAction,
    LinkParameters,
    LinkState,
    NeedData,
    Role,
    link_parameters,
    negotiate,
    swapped,
)

__all__ = [
    "DEFAULT_SERVER_LIMITS",
    "MAX_INFORMATION_LENGTH",
    "NEED_DATA",
    "ApduReceived",
    "Connected",
    "DisconnectReason",
    "Disconnected",
    "Event",
    "HdlcConnection",
    "LinkParameters",
    "LinkState",
    "NeedData",
    "Role",
]

_log = logging.getLogger(__name__)

_ALL_STATIONS: Final = frozenset({0x7F, 0x3FFF})  # brief §2.2 (JD reserved addresses)
# FRMR reason flags (brief §2.3, GXN FrmrRejectReason).
_FRMR_INFO_TOO_LONG: Final = 0x04
_FRMR_INVALID_NR: Final = 0x08


def _same_station(a: HdlcAddress, b: HdlcAddress) -> bool:
    return (a.logical, a.physical) == (b.logical, b.physical)


@dataclass(frozen=True, slots=True)
class _Segment:
    information: bytes
    more: bool  # the S bit: more segments of this APDU follow


class HdlcConnection:
    """One end of an HDLC link. See the module docstring for the protocol.

    For the client, ``parameters`` is its SNRM proposal (``None``: an SNRM without
    information field, all defaults). For the server, it is its own limits, which cap what
    the client proposes (default :data:`DEFAULT_SERVER_LIMITS`); the server answers SNRMs
    from any client SAP and binds to the one that opened the link (``client_address`` is
    only the destination of pushes before that). A server address without physical part
    answers to its logical address with any physical address (or none), replying from the
    address the client used.
    """

    def __init__(
        self,
        role: Role,
        *,
        client_address: HdlcAddress,
        server_address: HdlcAddress,
        parameters: HdlcParameters | None = None,
        response_timeout_s: float = 3.0,
        max_retries: int = 3,
        inactivity_timeout_s: float | None = None,
        inter_octet_timeout_s: float = 0.5,
        max_apdu_length: int = 0x10000,
    ) -> None:
        self.role = role
        self.client_address = client_address
        self.server_address = server_address
        self._station = server_address  # server: the addresses it answers to
        self.response_timeout_s = response_timeout_s
        self.max_retries = max_retries
        self.inactivity_timeout_s = inactivity_timeout_s
        self.inter_octet_timeout_s = inter_octet_timeout_s
        self.max_apdu_length = max_apdu_length
        self._proposal = parameters
        self._limits = link_parameters(parameters or DEFAULT_SERVER_LIMITS)
        self.parameters = LinkParameters()
        self.state = LinkState.DISCONNECTED
        # Diagnostics.
        self.dropped_frames = 0  # failed HCS/FCS or malformed
        self.ignored_frames = 0  # not addressed to this link
        self.duplicate_frames = 0  # I-frames out of sequence, discarded
        self.retransmissions = 0
        self._splitter = HdlcFrameSplitter(split_llc=False)
        self._frames: deque[bytes] = deque()  # complete frames, not yet decoded
        self._last_data_at = float("-inf")
        self._out = bytearray()
        self._events: deque[Event] = deque()
        self._now = 0.0
        self._last_rx = 0.0
        self._frmr_info = b""
        self._ui_rx = bytearray()
        self._snrm_information = b""
        # Link variables, reset by _reset_link: V(S), V(R) and V(A) (oldest unacknowledged).
        self._vs = self._vr = self._va = 0
        self._outstanding: deque[_Segment] = deque()  # sent, not yet acknowledged
        self._queue: deque[_Segment] = deque()  # not yet sent
        self._rx = bytearray()  # segments of the APDU being received
        self._rx_more = False
        self._awaiting_final = False  # client: P sent, F not yet received
        self._response_pending = False  # client: an APDU sent, its answer not yet complete
        self._peer_busy = False  # RNR received
        self._polled = False  # server: holds the poll token
        self._exchanged = False  # server: I-frames since the last UA
        self._deadline: float | None = None
        self._retries = 0

    # --- public API -------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview, *, now: float) -> None:
        """Buffer bytes from the peer; :meth:`next_event` decodes them.

        Bytes that arrive more than ``inter_octet_timeout_s`` after the previous ones end an
        incomplete frame: its start is dropped (a damaged length field would otherwise make
        the receiver wait for bytes that never come).
        """
        if data:
            if now - self._last_data_at > self.inter_octet_timeout_s:
                self.dropped_frames += bool(self._splitter.discard_partial())
            self._last_data_at = now
        self._now = now
        self._splitter.receive_data(data)
        while (raw := self._splitter.next_raw_frame()) is not None:
            self._frames.append(raw)

    def next_event(self) -> Event | NeedData:
        """The next event, or :data:`NEED_DATA`. May queue frames for :meth:`data_to_send`."""
        while not self._events:
            if not self._frames:
                return NEED_DATA
            try:
                frame = decode_frame(self._frames.popleft(), split_llc=False)
            except DecodeError as exc:
                self.dropped_frames += 1
                _log.debug("HDLC frame dropped: %s", exc)
                continue
            self._receive_frame(frame)
        return self._events.popleft()

    def data_to_send(self) -> bytes:
        """Every frame queued so far, in order; the buffer is emptied."""
        data = bytes(self._out)
        self._out.clear()
        return data

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must next be called, or ``None``."""
        if self.role is Role.CLIENT:
            return self._deadline
        if self.inactivity_timeout_s is not None and self.state is not LinkState.DISCONNECTED:
            return self._last_rx + self.inactivity_timeout_s
        return None

    def handle_timer(self, now: float) -> bytes:
        """Run the timer if it has expired; returns the bytes to send."""
        self._now = now
        deadline = self.get_timer()
        if deadline is not None and now >= deadline:
            if self.role is Role.CLIENT:
                self._client_timeout()
            else:
                self._go_down(DisconnectReason.INACTIVITY, "no frame from the client")
        return self.data_to_send()

    def connect(self, *, now: float) -> bytes:
        """Client: send SNRM. The link is up at the :class:`Connected` event."""
        self._now = now
        self._run_command(Command.CONNECT)
        return self.data_to_send()

    def disconnect(self, *, now: float) -> bytes:
        """Client: send DISC (:class:`Disconnected` follows). Server: drop the link locally."""
        self._now = now
        self._run_command(Command.DISCONNECT)
        return self.data_to_send()

    def send_apdu(self, apdu: bytes, *, now: float) -> bytes:
        """Queue an APDU in I-frames; returns what can be sent now (the window and the poll
        token permit the rest later)."""
        self._now = now
        self._run_command(Command.SEND_APDU, apdu)
        return self.data_to_send()

    def send_ui(self, apdu: bytes, *, now: float) -> bytes:
        """Send an APDU in UI frames (a push), without waiting for a poll."""
        self._now = now
        self._run_command(Command.SEND_UI, apdu)
        return self.data_to_send()

    # --- dispatch ---------------------------------------------------------------------------

    def _run_command(self, command: Command, apdu: bytes = b"") -> None:
        transition = TRANSITIONS.get((self.role, self.state, command))
        if transition is None:
            raise LocalProtocolError(
                f"HDLC {self.role.value}: cannot {command.value} in state {self.state.value}"
            )
        assert isinstance(transition.action, CommandAction)
        self.state = transition.next_state
        match transition.action:
            case CommandAction.IGNORE:
                pass
            case CommandAction.SEND_SNRM:
                self._reset_link()
                self._send_snrm()
            case CommandAction.SEND_DISC:
                self._reset_link()
                self._send(FrameType.DISC)
                self._deadline = self._now + self.response_timeout_s
            case CommandAction.DROP_LINK:
                if self._polled:
                    self._send(FrameType.DM)
                self._go_down(DisconnectReason.LOCAL)
            case CommandAction.QUEUE_APDU:
                self._queue_apdu(apdu)
            case CommandAction.SEND_UI:
                for segment in self._segments(apdu):
                    self._send(FrameType.UI, segmented=segment.more, info=segment.information)
            case _:
                assert_never(transition.action)

    def _receive_frame(self, frame: HdlcFrame) -> None:
        """Enter the table's next state and act on the frame; a failing action moves on to an
        error state itself."""
        if not self._addressed_to_us(frame):
            self.ignored_frames += 1
            return
        self._last_rx = self._now
        transition = TRANSITIONS[self.role, self.state, frame.frame_type]
        assert isinstance(transition.action, FrameAction)
        previous, self.state = self.state, transition.next_state
        name = frame.frame_type.name
        match transition.action:
            case FrameAction.IGNORE:
                self.ignored_frames += 1
            case FrameAction.LINK_ESTABLISHED:
                self._link_established(frame)
            case FrameAction.LINK_REFUSED:
                self._go_down(DisconnectReason.REFUSED, f"SNRM answered by {name}")
            case FrameAction.LINK_RELEASED:
                self._go_down(DisconnectReason.LOCAL)
            case FrameAction.PEER_DISCONNECTED:
                self._go_down(DisconnectReason.PEER, f"{name} from the server")
            case FrameAction.FRAME_REJECTED:
                self._go_down(DisconnectReason.FRAME_REJECT, frame.information.hex(" ").upper())
            case FrameAction.ACCEPT_SNRM:
                if not self._accept_snrm(frame, announce=True):
                    self.state = previous
            case FrameAction.RESET_LINK:
                self._reset_by_snrm(frame)
            case FrameAction.ACCEPT_DISC:
                self._send(FrameType.UA)
                self._go_down(DisconnectReason.PEER, "DISC from the client")
            case FrameAction.ANSWER_DM:
                if frame.poll_final:
                    self._reply(frame, FrameType.DM)
            case FrameAction.REPEAT_FRMR:
                if frame.poll_final:
                    self._send(FrameType.FRMR, info=self._frmr_info)
            case FrameAction.RECEIVE_I:
                self._receive_i(frame)
            case FrameAction.RECEIVE_SUPERVISORY:
                self._receive_supervisory(frame)
            case FrameAction.RECEIVE_UI:
                self._receive_ui(frame)
            case _:
                assert_never(transition.action)

    # --- frames out -------------------------------------------------------------------------

    def _addresses(self) -> tuple[HdlcAddress, HdlcAddress]:
        if self.role is Role.CLIENT:
            return self.server_address, self.client_address
        return self.client_address, self.server_address

    def _send(
        self,
        frame_type: FrameType,
        *,
        poll_final: bool = True,
        send_sequence: int = 0,
        receive_sequence: int = 0,
        segmented: bool = False,
        info: bytes = b"",
    ) -> None:
        nr, ns = receive_sequence, send_sequence
        frame = HdlcFrame(frame_type, *self._addresses(), poll_final, ns, nr, segmented, None, info)
        self._out += encode_frame(frame)

    def _reply(self, frame: HdlcFrame, frame_type: FrameType) -> None:
        """Answer whoever sent ``frame``, from the address it was sent to (F = 1)."""
        self._out += encode_frame(HdlcFrame(frame_type, frame.source, frame.destination))

    def _segments(self, apdu: bytes) -> list[_Segment]:
        """``LLC ‖ APDU`` (brief §2.5) cut to the information length (brief §2.7)."""
        destination, source = self._addresses()
        # format (2) + addresses + control (1) + HCS (2) + FCS (2), brief §2.1.
        overhead = 2 + len(destination.encode()) + len(source.encode()) + 1 + 2 + 2
        size = max(1, min(self.parameters.max_info_length_transmit, MAX_FRAME_LENGTH - overhead))
        llc = LlcHeader.COMMAND if self.role is Role.CLIENT else LlcHeader.RESPONSE
        data = bytes(llc.value) + apdu
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        return [_Segment(c, i < len(chunks) - 1) for i, c in enumerate(chunks)]

    def _queue_apdu(self, apdu: bytes) -> None:
        self._queue.extend(self._segments(apdu))
        if self.role is Role.CLIENT:
            self._response_pending = True
            if not self._awaiting_final and not self._peer_busy:
                self._transmit()
        elif self._polled:
            self._transmit()

    def _send_snrm(self) -> None:
        info = encode_parameters(self._proposal) if self._proposal is not None else b""
        self._send(FrameType.SNRM, info=info)
        self._deadline = self._now + self.response_timeout_s

    def _transmit(self) -> None:
        """Use the poll token: go-back-N from the oldest unacknowledged frame, then new
        segments up to the window, P/F on the last; an RR when there is no I-frame to send."""
        frames: list[tuple[int, _Segment]] = []
        if not self._peer_busy:
            ns = self._va
            for segment in self._outstanding:
                frames.append((ns, segment))
                ns = (ns + 1) % 8
            self.retransmissions += len(frames)
            while self._queue and len(self._outstanding) < self.parameters.window_size_transmit:
                segment = self._queue.popleft()
                self._outstanding.append(segment)
                frames.append((self._vs, segment))
                self._vs = (self._vs + 1) % 8
        if frames:
            for i, (ns, segment) in enumerate(frames):
                self._send(
                    FrameType.I,
                    poll_final=i == len(frames) - 1,
                    send_sequence=ns,
                    receive_sequence=self._vr,
                    segmented=segment.more,
                    info=segment.information,
                )
        else:
            self._send(FrameType.RR, receive_sequence=self._vr)
        self._hand_over_token()

    def _hand_over_token(self) -> None:
        if self.role is Role.CLIENT:
            self._awaiting_final = True
            self._deadline = self._now + self.response_timeout_s
        else:
            self._polled = False

    # --- frames in --------------------------------------------------------------------------

    def _addressed_to_us(self, frame: HdlcFrame) -> bool:
        if self.role is Role.CLIENT:
            to_us = _same_station(frame.destination, self.client_address) or (
                frame.frame_type is FrameType.UI and frame.destination.logical in _ALL_STATIONS
            )
            return to_us and _same_station(frame.source, self.server_address)
        station, destination = self._station, frame.destination
        for_us = destination.logical == station.logical and (
            station.physical is None or destination.physical == station.physical
        )
        if not for_us and not (
            frame.frame_type is FrameType.UI and destination.logical in _ALL_STATIONS
        ):
            return False
        if self.state is LinkState.DISCONNECTED or _same_station(frame.source, self.client_address):
            return True
        # Another client while the link is up: it has no link with us.
        if frame.poll_final and frame.frame_type is not FrameType.UI:
            self._reply(frame, FrameType.DM)
        return False

    def _acknowledge(self, frame: HdlcFrame) -> int | None:
        """Apply N(R): release the frames it acknowledges and return how many; ``None`` (the
        link is then broken off) when N(R) lies outside V(A)..V(S)."""
        outstanding = (self._vs - self._va) % 8
        acknowledged = (frame.receive_sequence - self._va) % 8
        if acknowledged > outstanding:
            self._protocol_violation(
                frame,
                _FRMR_INVALID_NR,
                f"N(R) = {frame.receive_sequence} outside V(A) = {self._va} .. V(S) = {self._vs}",
            )
            return None
        for _ in range(acknowledged):
            self._outstanding.popleft()
        self._va = frame.receive_sequence
        return acknowledged

    def _receive_i(self, frame: HdlcFrame) -> None:
        acknowledged = self._acknowledge(frame)
        if acknowledged is None:
            return
        self._exchanged = True
        if frame.send_sequence != self._vr:
            self.duplicate_frames += 1
            self._after_frame(frame, progress=acknowledged > 0, completed=False)
            return
        if len(self._rx) + len(frame.information) > self.max_apdu_length + 3:
            self._protocol_violation(
                frame, _FRMR_INFO_TOO_LONG, f"APDU longer than {self.max_apdu_length} bytes"
            )
            return
        self._vr = (self._vr + 1) % 8
        self._rx += frame.information
        self._rx_more = frame.segmented
        if not frame.segmented:
            data = bytes(self._rx)
            self._rx.clear()
            self._response_pending = False
            self._events.append(ApduReceived(_strip_llc(data)))
        self._after_frame(frame, progress=True, completed=not frame.segmented)

    def _receive_supervisory(self, frame: HdlcFrame) -> None:
        acknowledged = self._acknowledge(frame)
        if acknowledged is None:
            return
        self._peer_busy = frame.frame_type is FrameType.RNR
        self._after_frame(frame, progress=acknowledged > 0, completed=False)

    def _after_frame(self, frame: HdlcFrame, *, progress: bool, completed: bool) -> None:
        """Act on P/F: the server answers a poll, the client takes the token back."""
        if not frame.poll_final:
            return
        if self.role is Role.SERVER:
            self._polled = True
            # The poll that completes a request is kept for the application's answer.
            if not completed or self._outstanding or self._queue:
                self._transmit()
            return
        if not self._awaiting_final:
            return  # we hold the token: an F without a P outstanding is stale
        if not progress and (frame.frame_type is FrameType.I or self._outstanding):
            # A repeated frame that acknowledges nothing new answers an earlier poll whose
            # answer crossed ours; taking it as final would duplicate every later exchange.
            # The answer to the current poll follows, or the timer polls again.
            return
        self._awaiting_final = False
        self._retries = 0
        self._deadline = None
        if self._peer_busy:
            self._deadline = self._now + self.response_timeout_s
        elif self._outstanding or self._queue or self._rx_more:
            self._transmit()
        elif self._response_pending:
            self._deadline = self._now + self.response_timeout_s

    def _receive_ui(self, frame: HdlcFrame) -> None:
        self._ui_rx += frame.information
        if len(self._ui_rx) > self.max_apdu_length + 3:
            self._ui_rx.clear()
            return
        if not frame.segmented:
            data = bytes(self._ui_rx)
            self._ui_rx.clear()
            self._events.append(ApduReceived(_strip_llc(data), unnumbered=True))

    def _link_established(self, frame: HdlcFrame) -> None:
        try:
            offered = decode_parameters(frame.information)
        except DecodeError as exc:
            self._send(FrameType.DISC)
            self._go_down(DisconnectReason.PROTOCOL_ERROR, f"UA parameters: {exc}")
            return
        # The UA gives the server's view; its receive limits are our transmit limits.
        self._reset_link()
        self.parameters = swapped(link_parameters(offered))
        self._events.append(Connected(self.parameters, self.client_address, self.server_address))

    def _accept_snrm(self, frame: HdlcFrame, *, announce: bool) -> bool:
        """Negotiate and answer UA; False (answered DM) if the parameters do not decode."""
        try:
            proposal = link_parameters(decode_parameters(frame.information))
        except DecodeError:
            self._reply(frame, FrameType.DM)
            return False
        self._reset_link()
        self.parameters = negotiate(proposal, self._limits)
        self.client_address = frame.source
        self.server_address = frame.destination
        self._snrm_information = frame.information
        p = self.parameters
        ua = HdlcParameters(
            p.max_info_length_transmit,
            p.max_info_length_receive,
            p.window_size_transmit,
            p.window_size_receive,
        )
        self._send(FrameType.UA, info=encode_parameters(ua))
        if announce:
            self._events.append(
                Connected(self.parameters, self.client_address, self.server_address)
            )
        return True

    def _reset_by_snrm(self, frame: HdlcFrame) -> None:
        if not self._exchanged and frame.information == self._snrm_information:
            # A retransmitted SNRM (our UA was lost): answer it again, the link stays.
            self._accept_snrm(frame, announce=False)
            return
        self._events.append(Disconnected(DisconnectReason.RESET, "SNRM on an established link"))
        if not self._accept_snrm(frame, announce=True):
            self._go_down(DisconnectReason.PROTOCOL_ERROR, "SNRM parameters do not decode")

    def _protocol_violation(self, frame: HdlcFrame, reason: int, detail: str) -> None:
        if self.role is Role.SERVER:
            # FRMR information: rejected control, V(S) and V(R), reason flags (ISO/IEC 13239).
            self._frmr_info = bytes((frame.control, (self._vs << 1) | (self._vr << 5), reason))
            self._reset_link()
            self.state = LinkState.FRAME_REJECT
            self._send(FrameType.FRMR, info=self._frmr_info)
            self._events.append(Disconnected(DisconnectReason.PROTOCOL_ERROR, detail))
            return
        self._send(FrameType.DISC)
        self._go_down(DisconnectReason.PROTOCOL_ERROR, detail)

    # --- timers and state -------------------------------------------------------------------

    def _client_timeout(self) -> None:
        self._deadline = None
        if self.state is LinkState.CONNECTED and not self._awaiting_final:
            # Poll the server that is busy or still owes the answer to our APDU.
            self._transmit()
            return
        self._retries += 1
        if self._retries > self.max_retries:
            self._go_down(
                DisconnectReason.TIMEOUT, f"no answer after {self.max_retries} retransmissions"
            )
            return
        match self.state:
            case LinkState.CONNECTING:
                self.retransmissions += 1
                self._send_snrm()
            case LinkState.DISCONNECTING:
                self.retransmissions += 1
                self._send(FrameType.DISC)
                self._deadline = self._now + self.response_timeout_s
            case LinkState.CONNECTED:
                self._transmit()
            case LinkState.DISCONNECTED | LinkState.FRAME_REJECT:
                pass
            case _:
                assert_never(self.state)

    def _go_down(self, reason: DisconnectReason, detail: str = "") -> None:
        self._reset_link()
        self.state = LinkState.DISCONNECTED
        self._events.append(Disconnected(reason, detail))

    def _reset_link(self) -> None:
        self._vs = self._vr = self._va = 0
        self._outstanding.clear()
        self._queue.clear()
        self._rx.clear()
        self._rx_more = False
        self._awaiting_final = False
        self._response_pending = False
        self._peer_busy = False
        self._polled = False
        self._exchanged = False
        self._deadline = None
        self._retries = 0


def _strip_llc(data: bytes) -> bytes:
    """The APDU after the LLC header (brief §2.5); data without one is delivered as is."""
    if data[:3] in (LlcHeader.COMMAND.value, LlcHeader.RESPONSE.value):
        return data[3:]
    return data
