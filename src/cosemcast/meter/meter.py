"""The software meter: requests, time, pushes and persistence around the COSEM object models.

Theory of operation. :class:`SoftwareMeter` owns one :class:`~cosemcast.meter.build.LogicalDevice`
per configured logical device, the :class:`~cosemcast.meter.state.MeterState` and the
invocation-counter stores (all in one SQLite file), and one lock: every request and every
time step runs under it, so the object models see one thing at a time.

Time. The meter's *source time* only moves forward, through :meth:`SoftwareMeter.advance_to`
(the CLI calls it on a timer with the real, possibly accelerated, clock; tests call it with
fake time; every request first advances to ``clock()``). Each Clock object reads the source
time plus its own offset (changed by a SET of the clock or its methods). Advancing walks the
due events in order: registers integrate their load curve up to the event (no energy while
the Disconnect control has the supply off), then the profile captures or the push setup
pushes at that meter time; the next due time is the next period boundary after it, aligned on
local midnight. A clock change or a new capture_period re-plans from the new time.

Catch-up (decisions, copy to specs/): after a stop, the meter behaves as if it had run: energy
integrates over the gap, and every missed profile period is captured (at most
``profile_entries`` of them, the older ones would be dropped anyway); missed pushes are not
sent, except the latest one when it falls within one interval of the present.

Requests arrive through a :class:`MeterSession` (one per client SAP and link); an AARQ builds
a fresh :class:`~cosemcast.association.ServerConnection` with the settings of that moment
(current keys, policy and password). A client SAP or logical device that is not configured
gets an AARE rejected-permanent (no-reason-given) or an EXCEPTION-Response. After each request
and time step, everything that changed is written in one transaction (state.py), so a client
dropping mid-request leaves the state before or after that request. Pushes queue under the lock
and are sent after it is released (:mod:`cosemcast.meter._push`).

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
import hashlib
import logging
import secrets
import threading
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from cosemcast.association import NEED_DATA, ServerConnection
from cosemcast.axdr.types import Float64, Structure
from cosemcast.cosem.base import CosemObject
from cosemcast.cosem.disconnect import DisconnectControl
from cosemcast.cosem.profile import ProfileGeneric, SortMethod
from cosemcast.cosem.push_setup import PushSetup
from cosemcast.cosem.security_setup import KeyId, SecuritySetup, TransferredKey
from cosemcast.cosem.shared_payload import SharedPayload
from cosemcast.meter._answers import log_event, log_output, refusal
from cosemcast.meter._persist import restore, secrets_of, snapshot
from cosemcast.meter._push import Outgoing, PushSender, build_push
from cosemcast.meter._shared_state import OWNER as SHARED_OWNER
from cosemcast.meter._shared_state import dump_state, load_state
from cosemcast.meter.build import (
    LogicalDevice,
    Scheduled,
    build_device,
    next_boundary,
    register_value,
)
from cosemcast.meter.config import MeterConfig, load_config
from cosemcast.meter.schedule import UpstreamScheduleUnit
from cosemcast.meter.shared import SharedPayloadUnit
from cosemcast.meter.state import MeterState, MeterStateError, StateWriter, check_state_path
from cosemcast.security.counters import CounterStore, ReceivedCounterStore

if TYPE_CHECKING:
    from cosemcast.meter.authorization import MeterSupervision  # assignment (supervision)
    from cosemcast.sharedpayload import SealerState
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
        self._source_now = _aware(self.clock())
        self.devices: dict[int, LogicalDevice] = {}
        self._dirty: dict[int, dict[int, tuple[LogicalDevice, CosemObject]]] = {}
        self._rows: list[tuple[LogicalDevice, ProfileGeneric, tuple[Any, ...]]] = []
        self._rewrite: dict[int, tuple[LogicalDevice, ProfileGeneric]] = {}
        self._key_updates: list[tuple[int, str, str, bytes]] = []
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
            self._source_now = _aware(dt.datetime.fromisoformat(stored))
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
                    state=self._shared_state(device.sap),
                )
            schedule = config.schedule
            if schedule is not None and schedule.server_sap == device.sap:
                self.schedule = UpstreamScheduleUnit(
                    self, device, schedule, counters=self._counters, received=self._received
                )
            self._restore(device)
            self._wire(device)
        # --- assignment (supervision) ---
        from cosemcast.meter.authorization import MeterSupervision

        self.supervision = MeterSupervision.from_meter(self)
        # --- end assignment (supervision) ---
        self._check_fingerprint()
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
        return self._source_now

    @property
    def source_time(self) -> dt.datetime:
        """The (UTC) source time the meter has advanced to; meter clocks add their offset."""
        return self._source_now

    def meter_time(self, server_sap: int | None = None) -> dt.datetime:
        """The time of a logical device's clock (the first device by default)."""
        device = self.devices[server_sap if server_sap is not None else next(iter(self.devices))]
        return device.clock.now() if device.clock is not None else self._source_now

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
        if target <= self._source_now:
            return
        # --- assignment (supervision) ---
        if self.supervision is not None:
            self.supervision.before_step(target)
        # --- end assignment (supervision) ---
        for device in self.devices.values():
            for item in (*device.profiles, *device.pushes):
                self._plan(device, item, target)
        while True:
            due = self._earliest()
            if due is None or due[0] > target:
                break
            moment, device, item = due
            self._release(moment)
            self._integrate(max(moment, self._source_now))
            self._fire(device, item, target)
        self._release(target)
        self._integrate(target)

    def _release(self, until: dt.datetime) -> None:
        """Queue the sends the upstream schedule held until ``until`` (schedule.py)."""
        if self.schedule is not None:
            self._outgoing.extend(self.schedule.release(until))

    def _period(self, item: Scheduled) -> int:
        if isinstance(item.obj, ProfileGeneric):
            return item.obj.capture_period
        return item.period_s

    def _plan(self, device: LogicalDevice, item: Scheduled, target: dt.datetime) -> None:
        """(Re)compute ``item.next_due`` when unknown, or when the clock or period changed;
        skip profile periods that would be dropped from the buffer anyway."""
        period = self._period(item)
        offset = device.clock.offset if device.clock is not None else dt.timedelta(0)
        if item.basis != (offset, period):
            item.basis = (offset, period)
            item.next_due = next_boundary(self._meter_now(device), period)
        if (
            item.next_due is not None
            and isinstance(item.obj, ProfileGeneric)
            and period > 0
            and (self._to_meter(device, target) - item.next_due).total_seconds()
            > period * (item.obj.profile_entries + 1)
        ):
            keep_from = self._to_meter(device, target) - dt.timedelta(
                seconds=period * item.obj.profile_entries
            )
            item.next_due = next_boundary(keep_from, period)

    def _meter_now(self, device: LogicalDevice) -> dt.datetime:
        return device.clock.now() if device.clock is not None else self._source_now

    def _to_meter(self, device: LogicalDevice, source: dt.datetime) -> dt.datetime:
        if device.clock is None:
            return source
        return device.clock.local(source + device.clock.offset)

    def _to_source(self, device: LogicalDevice, meter: dt.datetime) -> dt.datetime:
        offset = device.clock.offset if device.clock is not None else dt.timedelta(0)
        return meter.astimezone(_UTC) - offset

    def _earliest(self) -> tuple[dt.datetime, LogicalDevice, Scheduled] | None:
        best: tuple[dt.datetime, LogicalDevice, Scheduled] | None = None
        for device in self.devices.values():
            for item in (*device.profiles, *device.pushes):
                if item.next_due is None:
                    continue
                when = self._to_source(device, item.next_due)
                if best is None or when < best[0]:
                    best = (when, device, item)
        return best

    def _integrate(self, until: dt.datetime) -> None:
        start = self._source_now
        for device in self.devices.values():
            offset = device.clock.offset if device.clock is not None else dt.timedelta(0)
            for follower in device.curves:
                register = follower.register
                scale = 10.0**register.scaler
                if follower.energy:
                    if device.supply_on:
                        follower.energy_wh += follower.curve.energy_wh(
                            start + offset, until + offset, time_zone_min=device.time_zone
                        )
                    amount = follower.energy_wh / scale
                else:
                    watts = follower.curve.power_now(until + offset, time_zone_min=device.time_zone)
                    amount = (watts if device.supply_on else 0.0) / scale
                    if isinstance(register.value, int):
                        amount = round(amount)
                register.value = register_value(register.value, amount)
        self._source_now = max(start, until)

    def _fire(self, device: LogicalDevice, item: Scheduled, target: dt.datetime) -> None:
        due = item.next_due
        assert due is not None
        local = device.clock.local(due) if device.clock is not None else due
        item.next_due = next_boundary(local, self._period(item))
        obj = item.obj
        if isinstance(obj, ProfileGeneric):
            obj.capture(now=due)
            return
        period = self._period(item)
        latest = (target - self._to_source(device, due)).total_seconds() < period
        if isinstance(obj, SharedPayload):
            if latest:
                obj.capture(now=due)
            return
        if latest and obj.in_window(due):
            with self.schedule.reporting(device, due) if self.schedule else nullcontext():
                obj.push(now=due)
        elif not latest:
            _log.debug("push %s due at %s skipped (catching up)", obj.logical_name, due)

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
        connection.receive_data(apdu, self._meter_now(device))
        while (event := connection.next_event()) is not NEED_DATA:
            log_event(session, event)
        return connection.data_to_send()

    # --- hooks and persistence -----------------------------------------------------------------

    def _restore(self, device: LogicalDevice) -> None:
        state = self.state
        for obj in device.model:
            name = str(obj.logical_name)
            fields = state.fields(device.sap, name)
            restore(obj, fields, state.secrets(device.sap, name), f"{name} ({state.path})")
            if isinstance(obj, ProfileGeneric):
                obj.load_buffer(state.rows(device.sap, name))
        for follower in device.curves:
            energy = state.fields(device.sap, str(follower.register.logical_name)).get("energy_wh")
            if isinstance(energy, float):
                follower.energy_wh = float(energy)
        for client in device.clients.values():
            if client.keys is None or client.security_setup is None:
                continue
            stored = state.secrets(device.sap, str(client.security_setup.logical_name))
            client.keys.ek = stored.get("ek", client.keys.ek)
            client.keys.ak = stored.get("ak", client.keys.ak)
            client.keys.broadcast_key = stored.get("broadcast_key", client.keys.broadcast_key)

    def _wire(self, device: LogicalDevice) -> None:
        followers = {id(f.register): f for f in device.curves}

        def changed(obj: CosemObject) -> None:
            self._dirty.setdefault(device.sap, {})[id(obj)] = (device, obj)
            follower = followers.get(id(obj))
            if follower is not None and follower.energy:
                value = follower.register.value
                if isinstance(value, int | float) and not isinstance(value, bool):
                    follower.energy_wh = float(value) * 10.0**follower.register.scaler
            if isinstance(obj, ProfileGeneric):
                self._rewrite[id(obj)] = (device, obj)

        def captured(profile: ProfileGeneric, row: tuple[Any, ...]) -> None:
            self._rows.append((device, profile, row))

        def pushed(setup: PushSetup, body: Structure) -> None:
            self._queue_push(device, setup, body)

        def transferred(setup: SecuritySetup, keys: tuple[TransferredKey, ...]) -> None:
            self._keys(device, setup, keys)

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

    def _shared_state(self, sap: int) -> SealerState | None:
        fields = self.state.fields(sap, SHARED_OWNER)
        try:
            return load_state(fields, self.state.secrets(sap, SHARED_OWNER))
        except MeterStateError as exc:
            _log.warning("%s; a new payload key will be drawn", exc)
            return None

    def next_counter(self, key_id: str) -> int:
        """A fresh invocation counter from the meter's store (pushes use it)."""
        return self._counters.next(key_id)

    def _keys(
        self, device: LogicalDevice, setup: SecuritySetup, keys: tuple[TransferredKey, ...]
    ) -> None:
        client = next(c for c in device.clients.values() if c.security_setup is setup)
        current = client.keys
        assert current is not None
        owner = str(setup.logical_name)
        for key in keys:
            if key.key_id is KeyId.GLOBAL_UNICAST_ENCRYPTION_KEY:
                current.ek = key.key
                self._key_updates.append((device.sap, owner, "ek", key.key))
            elif key.key_id is KeyId.AUTHENTICATION_KEY:
                current.ak = key.key
                self._key_updates.append((device.sap, owner, "ak", key.key))
            elif key.key_id is KeyId.GLOBAL_BROADCAST_ENCRYPTION_KEY:
                current.broadcast_key = key.key
                self._key_updates.append((device.sap, owner, "broadcast_key", key.key))
        names = ", ".join(k.key_id.name for k in keys)
        _log.info(
            "%s: key_transfer changed %s (for associations established from now on)", owner, names
        )

    def _flush(self) -> None:
        """Write what changed since the last flush, in one transaction."""
        with self.state.transaction() as tx:
            tx.set_meta("source_time", self._source_now.isoformat())
            for device in self.devices.values():
                for follower in device.curves:
                    register = follower.register
                    fields = snapshot(register)
                    fields["energy_wh"] = Float64(follower.energy_wh)
                    tx.set_fields(device.sap, str(register.logical_name), fields)
            for objects in self._dirty.values():
                for device, obj in objects.values():
                    self._write_object(tx, device, obj)
            for device, profile, row in self._rows:
                if id(profile) not in self._rewrite:
                    name = str(profile.logical_name)
                    tx.append_rows(device.sap, name, [row])
                    if profile.sort_method == SortMethod.FIFO:
                        tx.keep_last_rows(device.sap, name, profile.profile_entries)
                    else:
                        self._rewrite[id(profile)] = (device, profile)
            for device, profile in self._rewrite.values():
                tx.replace_rows(device.sap, str(profile.logical_name), profile.buffer)
            for sap, owner, name, value in self._key_updates:
                tx.set_secret(sap, owner, name, value)
            shared = self.shared
            if shared is not None and shared.dirty:
                fields, secrets = dump_state(shared.sealer.snapshot())
                tx.set_fields(shared.device.sap, SHARED_OWNER, fields)
                tx.replace_secrets(shared.device.sap, SHARED_OWNER, secrets)
        self._dirty.clear()
        self._rows.clear()
        self._rewrite.clear()
        self._key_updates.clear()
        if self.shared is not None:
            self.shared.dirty = False

    def _write_object(self, tx: StateWriter, device: LogicalDevice, obj: CosemObject) -> None:
        name = str(obj.logical_name)
        tx.set_fields(device.sap, name, snapshot(obj))
        for secret_name, value in secrets_of(obj).items():
            tx.set_secret(device.sap, name, secret_name, value)

    def _check_fingerprint(self) -> None:
        fingerprint = hashlib.sha256(self.config.text.encode("utf-8")).hexdigest()
        stored = self.state.meta("config_sha256")
        if stored is not None and stored != fingerprint:
            _log.warning(
                "the configuration changed since %s was written; stored values win for the "
                "objects they describe (use a new --state file to start afresh)",
                self.state.path,
            )
        with self.state.transaction() as tx:
            tx.set_meta("config_sha256", fingerprint)
            tx.set_meta("source_time", self._source_now.isoformat())

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
