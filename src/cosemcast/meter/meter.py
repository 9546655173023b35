"""The software meter: requests, time, pushes and persistence around the COSEM object models.

Theory of operation. :class:`SoftwareMeter` owns one :class:`~cosemcast.meter.build.LogicalDevice`
per configured logical device, the :class:`~cosemcast.meter.state.MeterState` and the
invocation-counter stores (all in one SQLite file), and one lock: every request and every
time step runs under it, so the object models see one thing at a time. Its two helpers,
:class:`~cosemcast.meter._stepping.TimeStepper` and
:class:`~cosemcast.meter._state_sync.StateSync`, have no lock of their own and run under it.

Time. The meter's *source time* only moves forward, through :meth:`SoftwareMeter.advance_to`
(every request first advances to ``clock()``); a step integrates the load curves and fires the
captures and pushes due on the way, catching up after a stop
(:mod:`cosemcast.meter._stepping`).

Requests arrive through a :class:`MeterSession` (one per client SAP and link); an AARQ builds
a fresh :class:`~cosemcast.association.ServerConnection` with the settings of that moment
(current keys, policy and password). A client SAP or logical device that is not configured
gets an AARE rejected-permanent (no-reason-given) or an EXCEPTION-Response. After each request
and time step, everything that changed is written in one transaction
(:mod:`cosemcast.meter._state_sync`, state.py), so a client dropping mid-request leaves the
state before or after that request. Pushes queue under the lock and are sent after it is
released (:mod:`cosemcast.meter._push`).

Shared payload. With a ``[shared_payload]`` table the meter gets a
:class:`~cosemcast.meter.shared.SharedPayloadUnit` (:attr:`SoftwareMeter.shared`) on that
logical device: its objects join the object model, its C1 Push setup and capture run on the
same schedule as everything else, every step and request polls it for C2s due, and a
general-ciphering APDU reaching the meter on any link is offered to it as an acknowledgement
before any association sees it. Its sealer state is written in the same transaction as the rest.

Upstream schedule. With a ``[schedule]`` table, :attr:`SoftwareMeter.schedule` holds what the
pushes fired by the time steps queue until each meter's slot, and takes broadcast group
commands out of the association path (:mod:`cosemcast.meter.schedule`).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from cosemcast.association import NEED_DATA, ServerConnection
from cosemcast.axdr.types import Structure
from cosemcast.cosem.base import CosemObject
from cosemcast.cosem.disconnect import DisconnectControl
from cosemcast.cosem.profile import ProfileGeneric
from cosemcast.cosem.push_setup import PushSetup
from cosemcast.cosem.security_setup import SecuritySetup, TransferredKey
from cosemcast.meter._answers import log_event, log_output, refusal
from cosemcast.meter._push import Outgoing, PushSender, build_push
from cosemcast.meter._state_sync import StateSync
from cosemcast.meter._stepping import TimeStepper
from cosemcast.meter.build import LogicalDevice, build_device
from cosemcast.meter.config import MeterConfig, load_config
from cosemcast.meter.schedule import UpstreamScheduleUnit
from cosemcast.meter.shared import SharedPayloadUnit
from cosemcast.meter.state import MeterState, check_state_path
from cosemcast.security.counters import CounterStore, ReceivedCounterStore

if TYPE_CHECKING:
    from cosemcast.meter.authorization import MeterSupervision  # assignment (supervision)
    from cosemcast.transport.serial import HdlcSerialServer
    from cosemcast.transport.tcp import TcpWrapperServer
    from cosemcast.transport.udp import UdpWrapperServer

__all__ = ["MeterSession", "SoftwareMeter", "TimeSource", "utc_now"]

_log = logging.getLogger("cosemcast.meter")

TimeSource = Callable[[], dt.datetime]
T = TypeVar("T")
_UTC = dt.UTC
_AARQ_TAG = 0x60


def utc_now() -> dt.datetime:
    return dt.datetime.now(_UTC)


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=_UTC) if moment.tzinfo is None else moment.astimezone(_UTC)


class MeterSession:
    """One client SAP talking to one logical device over one link (a TCP connection, a UDP
    peer, an HDLC link). ``push`` sends an unsolicited APDU back over that link, if it can."""

    def __init__(
        self,
        server_sap: int,
        client_sap: int,
        *,
        link: str,
        push: Callable[[bytes], None] | None = None,
    ) -> None:
        self.server_sap = server_sap
        self.client_sap = client_sap
        self.link = link
        self.push = push
        self.connection: ServerConnection | None = None

    def __repr__(self) -> str:
        return (
            f"MeterSession(client {self.client_sap} -> device {self.server_sap} over {self.link})"
        )


class SoftwareMeter:
    """A DLMS/COSEM meter in software; see the module docstring."""

    def __init__(
        self,
        config: MeterConfig,
        state_path: str | Path,
        *,
        clock: TimeSource | None = None,
        rng: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self.config = config
        self.clock: TimeSource = clock or utc_now
        self._rng = rng
        self._lock = threading.RLock()
        self.devices: dict[int, LogicalDevice] = {}
        self._time = TimeStepper(
            self.devices, _aware(self.clock()), release=self._release, reporting=self._reporting
        )
        self._outgoing: list[Outgoing] = []
        self._sessions: set[MeterSession] = set()
        self.sender = PushSender(self)
        self.servers: list[TcpWrapperServer | UdpWrapperServer | HdlcSerialServer] = []
        self.shared: SharedPayloadUnit | None = None
        self.schedule: UpstreamScheduleUnit | None = None
        self._closed = False
        # --- assignment (supervision) ---
        self.supervision: MeterSupervision | None = None
        # --- end assignment (supervision) ---
        path = check_state_path(state_path)
        self.state = MeterState(path)
        self._sync = StateSync(self.state)
        try:
            self._counters = CounterStore(path, block=100)
            self._received = ReceivedCounterStore(path)
        except BaseException:
            self.state.close()
            raise
        try:
            self._load(config, path)
        except BaseException:
            self._counters.close()
            self._received.close()
            self.state.close()
            raise

    def _load(self, config: MeterConfig, path: Path) -> None:
        stored = self.state.meta("source_time")
        if stored:
            self._time.source_now = _aware(dt.datetime.fromisoformat(stored))
        for device_config in config.devices:
            device = build_device(device_config, config, self._time_source)
            self.devices[device.sap] = device
            shared = config.shared_payload
            if shared is not None and shared.server_sap == device.sap:
                self.shared = SharedPayloadUnit(
                    self,
                    device,
                    shared,
                    counters=self._counters,
                    rng=self._rng,
                    state=self._sync.shared_state(device.sap),
                )
            schedule = config.schedule
            if schedule is not None and schedule.server_sap == device.sap:
                self.schedule = UpstreamScheduleUnit(
                    self, device, schedule, counters=self._counters, received=self._received
                )
            self._sync.restore(device)
            self._wire(device)
        # --- assignment (supervision) ---
        from cosemcast.meter.authorization import MeterSupervision

        self.supervision = MeterSupervision.from_meter(self)
        # --- end assignment (supervision) ---
        self._sync.check_fingerprint(config.text, self._time.source_now)
        _log.info(
            "meter %r: %d logical device(s), state in %s", config.name, len(self.devices), path
        )

    @classmethod
    def from_config(
        cls,
        path: str | Path | None,
        state_path: str | Path,
        *,
        clock: TimeSource | None = None,
        rng: Callable[[int], bytes] = secrets.token_bytes,
    ) -> SoftwareMeter:
        """A meter from a TOML file (``None``: the shipped default configuration)."""
        return cls(load_config(path), state_path, clock=clock, rng=rng)

    def __repr__(self) -> str:
        return f"SoftwareMeter({self.config.name!r}, devices={sorted(self.devices)})"

    # --- time ----------------------------------------------------------------------------------

    def _time_source(self) -> dt.datetime:
        return self._time.source_now

    @property
    def source_time(self) -> dt.datetime:
        """The (UTC) source time the meter has advanced to; meter clocks add their offset."""
        return self._time.source_now

    def meter_time(self, server_sap: int | None = None) -> dt.datetime:
        """The time of a logical device's clock (the first device by default)."""
        device = self.devices[server_sap if server_sap is not None else next(iter(self.devices))]
        return self._time.meter_now(device)

    def advance_to(self, now: dt.datetime | None = None) -> None:
        """Advance to ``now`` (default ``clock()``): integrate, capture, push, persist.

        Time never goes back: an earlier ``now`` changes nothing.
        """
        with self._lock:
            self._check_open()
            try:
                self._step(_aware(self.clock() if now is None else now))
                if self.shared is not None:
                    self.shared.poll()
            finally:
                self._flush()
            outgoing = self._take_outgoing()
        self.sender.send(outgoing)

    def apply(self, action: Callable[[], T]) -> T:
        """Run ``action`` under the meter's lock (at the current time), then persist what it
        changed and send what it queued: how code outside a request changes the meter
        (``meter.apply(meter.shared.c1_push.push)``)."""
        with self._lock:
            self._check_open()
            try:
                result = action()
            finally:
                self._flush()
            outgoing = self._take_outgoing()
        self.sender.send(outgoing)
        return result

    def run(self, stop: threading.Event, tick_s: float = 0.5) -> None:
        """Advance with ``clock()`` every ``tick_s`` seconds until ``stop`` is set."""
        while not stop.is_set():
            self.advance_to()
            stop.wait(tick_s)

    def _step(self, target: dt.datetime) -> None:
        if target <= self._time.source_now:
            return
        # --- assignment (supervision) ---
        if self.supervision is not None:
            self.supervision.before_step(target)
        # --- end assignment (supervision) ---
        self._time.step(target)

    def _release(self, until: dt.datetime) -> None:
        """Queue the sends the upstream schedule held until ``until`` (schedule.py)."""
        if self.schedule is not None:
            self._outgoing.extend(self.schedule.release(until))

    def _reporting(self, device: LogicalDevice, due: dt.datetime) -> AbstractContextManager[None]:
        return self.schedule.reporting(device, due) if self.schedule else nullcontext()

    # --- requests -----------------------------------------------------------------------------

    def open_session(
        self,
        server_sap: int,
        client_sap: int,
        *,
        link: str,
        push: Callable[[bytes], None] | None = None,
    ) -> MeterSession:
        """A session for ``client_sap`` and logical device ``server_sap`` over ``link``."""
        session = MeterSession(server_sap, client_sap, link=link, push=push)
        with self._lock:
            self._sessions.add(session)
        _log.info("client %d -> logical device %d: %s", client_sap, server_sap, link)
        return session

    def close_session(self, session: MeterSession) -> None:
        with self._lock:
            self._sessions.discard(session)
            session.connection = None
        _log.info("client %d: %s closed", session.client_sap, session.link)

    def sessions_of(self, server_sap: int, client_sap: int) -> list[MeterSession]:
        with self._lock:
            return [
                s
                for s in self._sessions
                if s.server_sap == server_sap and s.client_sap == client_sap and s.push is not None
            ]

    def handle(self, session: MeterSession, apdu: bytes) -> list[bytes]:
        """Answer one request APDU of ``session``; returns the APDUs to send back, in order."""
        with self._lock:
            self._check_open()
            try:
                self._step(_aware(self.clock()))
                shared = self.shared
                if shared is not None:
                    shared.poll()
                schedule = self.schedule
                if (shared is not None and shared.receive_ack(apdu)) or (
                    schedule is not None and schedule.receive(session, apdu)
                ):
                    answers = []
                else:
                    answers = self._serve(session, apdu)
            finally:
                self._flush()
            outgoing = self._take_outgoing()
        self.sender.send(outgoing)
        return answers

    def _serve(self, session: MeterSession, apdu: bytes) -> list[bytes]:
        device = self.devices.get(session.server_sap)
        settings = None if device is None else device.settings_for(session.client_sap)
        if device is None or settings is None:
            what = "logical device" if device is None else "client SAP"
            _log.warning(
                "client %d -> logical device %d: unknown %s, refused",
                session.client_sap,
                session.server_sap,
                what,
            )
            return [refusal(apdu)]
        if session.connection is None or apdu[:1] == bytes((_AARQ_TAG,)):
            session.connection = ServerConnection(
                settings,
                device.model,
                counters=self._counters,
                received_counters=self._received,
                rng=self._rng,
            )
        connection = session.connection
        connection.receive_data(apdu, self._time.meter_now(device))
        while (event := connection.next_event()) is not NEED_DATA:
            log_event(session, event)
        return connection.data_to_send()

    # --- hooks ----------------------------------------------------------------------------------

    def _wire(self, device: LogicalDevice) -> None:
        sync = self._sync
        followers = {id(f.register): f for f in device.curves}

        def changed(obj: CosemObject) -> None:
            sync.changed(device, obj)
            follower = followers.get(id(obj))
            if follower is not None and follower.energy:
                value = follower.register.value
                if isinstance(value, int | float) and not isinstance(value, bool):
                    follower.energy_wh = float(value) * 10.0**follower.register.scaler

        def captured(profile: ProfileGeneric, row: tuple[Any, ...]) -> None:
            sync.captured(device, profile, row)

        def pushed(setup: PushSetup, body: Structure) -> None:
            self._queue_push(device, setup, body)

        def transferred(setup: SecuritySetup, keys: tuple[TransferredKey, ...]) -> None:
            sync.transfer_keys(device, setup, keys)

        for obj in device.model:
            obj.on_change = changed
            if isinstance(obj, ProfileGeneric):
                obj.on_capture = captured
            elif isinstance(obj, PushSetup):
                obj.on_push = pushed
            elif isinstance(obj, SecuritySetup):
                obj.on_key_transfer = transferred
            elif isinstance(obj, DisconnectControl):
                obj.on_output = log_output

    def _queue_push(self, device: LogicalDevice, setup: PushSetup, body: Structure) -> None:
        if self.shared is not None and self.shared.owns(setup):
            self.shared.on_push(setup, body)
            return
        item = next(p for p in device.pushes if p.obj is setup)
        item.invoke_id = (item.invoke_id + 1) & 0xFFFFFF
        outgoing = build_push(self, device, item, body)
        if outgoing is not None:
            self.queue_outgoing(outgoing)

    def queue_outgoing(self, outgoing: Outgoing) -> None:
        """Queue a push; it is sent once the current request or step is done (or, fired at a
        reporting instant, at the upstream schedule's slot)."""
        if self.schedule is None or not self.schedule.defer(outgoing):
            self._outgoing.append(outgoing)

    def receive_ack(self, apdu: bytes) -> bool:
        """Offer an APDU received outside a request (on a push connection) to the
        shared-payload unit as an acknowledgement; False when it was none."""
        with self._lock:
            if self._closed or self.shared is None:
                return False
            try:
                return self.shared.receive_ack(apdu)
            finally:
                self._flush()

    def next_counter(self, key_id: str) -> int:
        """A fresh invocation counter from the meter's store (pushes use it)."""
        return self._counters.next(key_id)

    def _flush(self) -> None:
        """Write what changed since the last flush, in one transaction (_state_sync.py)."""
        self._sync.flush(self._time.source_now, self.devices.values(), self.shared)

    def _take_outgoing(self) -> list[Outgoing]:
        out, self._outgoing = self._outgoing, []
        return out

    # --- serving and closing --------------------------------------------------------------------

    def serve_tcp(self, host: str = "127.0.0.1", port: int = 4059) -> TcpWrapperServer:
        """Serve the IEC 62056-47 wrapper over TCP (started; ``port`` 0 picks a free one)."""
        from cosemcast.meter.serve import serve_tcp

        return serve_tcp(self, host, port)

    def serve_udp(self, host: str = "127.0.0.1", port: int = 4059) -> UdpWrapperServer:
        """Serve the wrapper over UDP (started)."""
        from cosemcast.meter.serve import serve_udp

        return serve_udp(self, host, port)

    def serve_serial(self, port: Any, *, mode_e: bool = False) -> HdlcSerialServer:
        """Serve HDLC on a serial port (a pyserial URL or a port object), optionally behind
        the IEC 62056-21 mode E sign-on (started in a thread)."""
        from cosemcast.meter.serve import serve_serial

        return serve_serial(self, port, mode_e=mode_e)

    def _check_open(self) -> None:
        if self._closed:
            from cosemcast.errors import LocalProtocolError

            raise LocalProtocolError("the software meter is closed")

    def close(self) -> None:
        """Stop every server, persist and close the state; idempotent."""
        with self._lock:
            if self._closed:
                return
            servers, self.servers = self.servers, []
        for server in servers:
            server.close()
        if self.schedule is not None:
            self.schedule.close()
        self.sender.close()
        with self._lock:
            self._flush()
            self._closed = True
            self._counters.close()
            self._received.close()
            self.state.close()
        _log.info("meter %r stopped", self.config.name)

    def __enter__(self) -> SoftwareMeter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
