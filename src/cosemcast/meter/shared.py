"""The software meter's shared-payload unit (specs/shared-payload.md §3, §6, §8).

Theory of operation. A :class:`SharedPayloadUnit` belongs to one logical device of a
:class:`~cosemcast.meter.meter.SoftwareMeter` and wraps the sans-IO
:class:`~cosemcast.sharedpayload.PayloadSealer` (key generator 16 and the transmission-control
unit of [0048]). It adds to the device's object model:

* Shared payload (class 8960, ``0-0:128.1.0.255``) and Payload key control (8961,
  ``0-0:128.2.0.255``), views of the sealer (:mod:`cosemcast.cosem.shared_payload`);
* the C1 Push setup ``0-1:25.9.0.255`` (message 128) to the multicast, broadcast or unicast
  C1 destination, and one C2 Push setup ``0-(10+i):25.9.0.255`` (message 129) per assigned
  head-end, ordered by system title, unicast to that head-end.

What happens when:

* **C1 push instant** (the C1 setup's interval, or its ``push`` method): the buffered C1s
  ([0038]) are taken, oldest first, the push_object_list is read once and sealed once as C1
  (renewing ``Kp`` first when the policy says so), and the C2s due go out first, then the C1s;
* **capture** (8960 method 1, or every ``capture_interval_s``): the capture_objects are sealed
  ahead into the buffer, which a head-end may also pull (8960 attribute 3);
* **every time step and request** (:meth:`SharedPayloadUnit.poll`): ``Kp`` is renewed when its
  age says so, and every unacknowledged C2 whose ``retry_interval_s`` has passed is sent again,
  unchanged, to its head-end's C2 Push setup destination;
* **an acknowledgement** arrives as a general-ciphering APDU on any of the meter's links (the UDP
  server, a TCP connection, the connection of a C2 pushed over TCP): the meter hands it to
  :meth:`SharedPayloadUnit.receive_ack` before any association sees it; a bad one is counted and
  logged, never raised.

UDP pushes of the scheme leave from the meter's own UDP server port when it serves UDP, so the
head-ends' acknowledgements (sent back to the source) reach it. Every method that changes the
sealer runs under the meter's lock (inside a request or time step, or through
:meth:`~cosemcast.meter.meter.SoftwareMeter.apply`); the meter persists the sealer state in the
same transaction as the rest of that step (:mod:`cosemcast.meter._shared_state`).
:meth:`SharedPayloadUnit.stats` counts messages, bytes and AES operations (one per GCM seal,
one per key wrap).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Final

from cosemcast.apdu.common import LongInvokeIdAndPriority
from cosemcast.apdu.notifications import DataNotification
from cosemcast.axdr.types import CosemDateTime, Structure
from cosemcast.cosem.push_setup import PushSetup, SendDestinationAndMethod, TransportService
from cosemcast.cosem.shared_payload import (
    ControlEntryView,
    PayloadKeyControl,
    RenewalSettings,
    SharedPayload,
)
from cosemcast.errors import DlmsError
from cosemcast.meter._objects_config import ACCESS_LEVELS
from cosemcast.meter._push import Outgoing
from cosemcast.meter._shared_config import (
    MAX_HEAD_ENDS,
    SharedPayloadConfig,
    c1_push_name,
    c2_push_name,
    parse_destination,
)
from cosemcast.meter.build import Scheduled
from cosemcast.sharedpayload import (
    HeadEndAssignment,
    KpId,
    PayloadSealer,
    RenewalPolicy,
    SealerState,
    as_general_ciphering,
)
from cosemcast.sharedpayload.meter import CounterSource
from cosemcast.sharedpayload.sealing import Rng

if TYPE_CHECKING:
    from cosemcast.cosem.base import CosemObject
    from cosemcast.meter.build import LogicalDevice
    from cosemcast.meter.meter import SoftwareMeter

__all__ = ["C1_MESSAGE", "C2_MESSAGE", "SharedPayloadUnit", "assignments_of"]

_log = logging.getLogger("cosemcast.meter")

C1_MESSAGE: Final = 128
C2_MESSAGE: Final = 129
_GENERAL_CIPHERING: Final = 0xDD
_PUSH_CLIENT_WPORT: Final = 1
_WRAPPER_HEADER: Final = 8
_STATS: Final = (
    "c1_sealed",
    "c1_queued",
    "c1_sent",
    "c2_sealed",
    "c2_queued",
    "c2_sent",
    "bytes_sent",
    "aes_operations",
    "acks_received",
    "acks_rejected",
    "keys_drawn",
    "c1_buffered",
    "c1_evicted",
    "c1_expired",
    "seal_failures",
)


def assignments_of(config: SharedPayloadConfig) -> list[HeadEndAssignment]:
    """The configured head-ends as the sealer's assignments."""
    return [HeadEndAssignment(h.system_title, h.shared_key, h.public_key) for h in config.head_ends]


class SharedPayloadUnit:
    """The shared-payload scheme of one logical device (see the module docstring).

    ``on_c1``, when set, receives each DATA-NOTIFICATION before it is sealed as a C1 (under the
    meter's lock; ``cosemcast demo`` uses it to send the same readings the classic way).
    """

    def __init__(
        self,
        meter: SoftwareMeter,
        device: LogicalDevice,
        config: SharedPayloadConfig,
        *,
        counters: CounterSource,
        rng: Rng,
        state: SealerState | None = None,
    ) -> None:
        self.meter = meter
        self.device = device
        self.config = config
        policy = RenewalPolicy(
            max_payloads=config.max_payloads,
            max_age_s=config.max_age_s,
            delivery_window_s=config.delivery_window_s,
            retry_interval_s=float(config.retry_interval_s),
            ack_payloads=config.ack_payloads,
            buffer_capacity=config.buffer_capacity,
        )
        self.sealer = PayloadSealer(
            system_title=device.system_title,
            head_ends=assignments_of(config),
            counters=counters,
            rng=rng,
            policy=policy,
            agreement_private_key=config.agreement_key,
            state=state,
        )
        self.dirty = state is None
        self._counts: Counter[str] = Counter()
        self._gauges: dict[str, int] = {}
        self._stats_lock = threading.Lock()
        self._invoke_id = 0
        self.on_c1: Callable[[bytes], None] | None = None
        self._known_controls = {(c.head_end, c.kp_id) for c in self.sealer.controls}
        key = self.sealer.current_key
        self._last_kp: KpId | None = None if key is None else key.kp_id
        self._expired_seen = 0
        self._destinations = {
            h.system_title: (h.transport, h.destination) for h in config.head_ends
        }
        assert config.capture_objects is not None
        self.shared_payload = SharedPayload(self, config.capture_objects)
        self.key_control = PayloadKeyControl(self)
        self.c1_push = PushSetup(
            c1_push_name(),
            config.capture_objects,
            send_destination_and_method=SendDestinationAndMethod(
                TransportService.UDP, config.c1_destination.encode("ascii"), C1_MESSAGE
            ),
        )
        self.c2_pushes: dict[bytes, PushSetup] = {}
        for obj in (self.shared_payload, self.key_control, self.c1_push):
            self._add(obj)
        self._make_c2_pushes()
        self._refresh_gauges()
        self.c1_schedule = Scheduled(self.c1_push, config.push_interval_s)
        device.pushes.append(self.c1_schedule)
        self.capture_schedule = Scheduled(self.shared_payload, config.capture_interval_s)
        device.pushes.append(self.capture_schedule)

    def __repr__(self) -> str:
        return f"SharedPayloadUnit(device={self.device.sap}, {self.sealer!r})"

    # --- objects -------------------------------------------------------------------------------

    def _add(self, obj: CosemObject) -> None:
        for client in self.device.config.clients:
            rights = ACCESS_LEVELS[client.access]
            if rights is not None:
                obj.grant(client.sap, rights)
        self.device.model.add(obj)

    def _make_c2_pushes(self) -> None:
        """One C2 Push setup per assigned head-end, in system-title order (specs §8.4)."""
        for setup in self.c2_pushes.values():
            self.device.model.remove(setup.logical_name)
        self.c2_pushes = {}
        for index, head_end in enumerate(self.sealer.head_ends):
            transport, destination = self._destinations.get(
                head_end.system_title, (TransportService.UDP, "")
            )
            setup = PushSetup(
                c2_push_name(index),
                send_destination_and_method=SendDestinationAndMethod(
                    transport, destination.encode("ascii"), C2_MESSAGE
                ),
            )
            setup.on_push = self.c1_push.on_push
            setup.on_change = self.c1_push.on_change
            self._add(setup)
            self.c2_pushes[head_end.system_title] = setup

    def owns(self, setup: PushSetup) -> bool:
        """Whether ``setup`` is one of the scheme's Push setups."""
        return setup is self.c1_push or any(s is setup for s in self.c2_pushes.values())

    # --- time, counters, sending ---------------------------------------------------------------

    def now(self) -> float:
        """The meter's time (its clock, with its offset), as Unix seconds."""
        return self.meter.meter_time(self.device.sap).timestamp()

    def stats(self) -> dict[str, int]:
        """Counters since start: c1_sealed, c1_queued, c1_sent, c2_sealed, c2_queued, c2_sent,
        bytes_sent (wrapper frames that left), aes_operations (GCM seals and key wraps),
        acks_received, acks_rejected (and acks_rejected.<reason>), keys_drawn, c1_buffered,
        c1_evicted, c1_expired, seal_failures; and the current c2_unacknowledged and buffered.
        ``*_queued`` count when the meter decided to send (under its lock), ``*_sent`` and
        ``bytes_sent`` when the push thread handed the frame to the socket."""
        with self._stats_lock:
            out = {name: 0 for name in _STATS}
            out.update(self._counts)
            out.update(self._gauges)
        return out

    def _refresh_gauges(self) -> None:
        """Copy what stats() shows of the sealer (under the meter's lock; stats() may run in
        any thread, the sealer is not thread-safe)."""
        unacknowledged = sum(1 for c in self.sealer.controls if not c.acknowledged)
        with self._stats_lock:
            self._gauges = {
                "c2_unacknowledged": unacknowledged,
                "buffered": len(self.sealer.buffered),
            }

    def _count(self, name: str, amount: int = 1) -> None:
        with self._stats_lock:
            self._counts[name] += amount

    def _sent(self, kind: str, size: int) -> None:
        with self._stats_lock:
            self._counts[kind] += 1
            self._counts["bytes_sent"] += size + _WRAPPER_HEADER

    def _note_changes(self) -> None:
        """Count the keys and C2s the last sealer call drew (each C2: a GCM seal and a wrap)."""
        self.dirty = True
        key = self.sealer.current_key
        if key is not None and key.kp_id != self._last_kp:
            self._last_kp = key.kp_id
            self._count("keys_drawn")
        controls = {(c.head_end, c.kp_id) for c in self.sealer.controls}
        new = len(controls - self._known_controls)
        self._known_controls = controls
        if new:
            self._count("c2_sealed", new)
            self._count("aes_operations", 2 * new)
        expired = self.sealer.dropped_expired - self._expired_seen
        if expired:
            self._expired_seen = self.sealer.dropped_expired
            self._count("c1_expired", expired)
        self._refresh_gauges()

    def _queue(self, setup: PushSetup, apdu: bytes, kind: str) -> None:
        method = setup.send_destination_and_method
        destination = method.destination.decode("ascii", errors="replace")
        if not destination:
            _log.info("%s: no destination, not sent (pull only)", setup.logical_name)
            return
        transport = int(method.transport_service)
        self._count(kind.replace("_sent", "_queued"))

        def sent(size: int) -> None:
            self._sent(kind, size)

        self.meter.queue_outgoing(
            Outgoing(
                apdu,
                transport,
                destination,
                self.device.sap,
                _PUSH_CLIENT_WPORT,
                str(setup.logical_name),
                via_server=True,
                broadcast=self.config.broadcast and setup is self.c1_push,
                expect_ack=kind == "c2_sent" and transport == TransportService.TCP,
                sent=sent,
            )
        )

    def _notification(self, body: Structure) -> bytes:
        self._invoke_id = (self._invoke_id + 1) & 0xFFFFFF
        clock = self.device.clock
        stamp = (
            clock.to_cosem(clock.now())
            if clock is not None
            else CosemDateTime.from_datetime(self.meter.source_time)
        )
        return DataNotification(LongInvokeIdAndPriority(self._invoke_id), stamp, body).encode()

    # --- driving it from outside a request (any thread) ---------------------------------------

    def push_now(self) -> None:
        """Push a C1 now (what the C1 Push setup's push method does), persist and send."""
        self.meter.apply(self.c1_push.push)

    def capture_now(self) -> None:
        """Seal a C1 ahead into the buffer now (8960 method 1)."""
        self.meter.apply(self.shared_payload.capture)

    def set_intervals(
        self, *, push_interval_s: int | None = None, capture_interval_s: int | None = None
    ) -> None:
        """Change the C1 push or capture period (seconds, 0: off) from now on."""

        def change() -> None:
            for schedule, seconds in (
                (self.c1_schedule, push_interval_s),
                (self.capture_schedule, capture_interval_s),
            ):
                if seconds is not None:
                    if seconds < 0:
                        raise ValueError("an interval is 0 (off) or a number of seconds")
                    schedule.period_s = seconds
                    schedule.basis = None

        self.meter.apply(change)

    # --- the scheme ----------------------------------------------------------------------------

    def poll(self, now: float | None = None) -> None:
        """Renew ``Kp`` when its age says so; queue the C2s due for (re)transmission."""
        when = self.now() if now is None else now
        try:
            renewed = None
            if self.sealer.current_key is not None:
                renewed = self.sealer.maybe_renew(when)
            schedule = self.meter.schedule
            # At a reporting instant the C2s leave at the upstream slot: marked sent then.
            due = self.sealer.control_messages(
                when if schedule is None else schedule.sending_at(when)
            )
        except DlmsError as exc:
            self._count("seal_failures")
            _log.error("shared payload: renewing the payload key failed: %s", exc)
            return
        if due or renewed is not None:
            self._note_changes()
        for head_end, c2 in due:
            setup = self.c2_pushes.get(head_end)
            if setup is not None:
                self._queue(setup, c2.encode(), "c2_sent")

    def on_push(self, setup: PushSetup, body: Structure) -> None:
        """A push of one of the scheme's setups (the meter routes it here)."""
        if setup is self.c1_push:
            self._push_c1(body)
            return
        head_end = next(t for t, s in self.c2_pushes.items() if s is setup)
        for entry in self.sealer.controls:
            if entry.head_end == head_end and not entry.acknowledged:
                self._queue(setup, entry.apdu.encode(), "c2_sent")

    def _push_c1(self, body: Structure) -> None:
        now = self.now()
        notification = self._notification(body)
        if self.on_c1 is not None:
            self.on_c1(notification)
        buffered = self.sealer.take_buffered(now)
        try:
            c1 = self.sealer.seal_c1(notification, now)
        except DlmsError as exc:
            self._count("seal_failures")
            _log.error("shared payload: sealing a C1 failed: %s", exc)
            c1 = None
        else:
            self._count("c1_sealed")
            self._count("aes_operations")
        self._note_changes()
        self.poll(now)
        for apdu in (*buffered, *(() if c1 is None else (c1,))):
            self._queue(self.c1_push, apdu.encode(), "c1_sent")

    def receive_ack(self, apdu: bytes) -> bool:
        """Handle a general-ciphering APDU that reached the meter; False when it is none.

        An acknowledgement is checked by the sealer (specs §6.3) and recorded; anything that
        fails is counted under ``acks_rejected.<reason>`` and logged, never raised.
        """
        if not apdu or apdu[0] != _GENERAL_CIPHERING:
            return False
        try:
            body = self.sealer.accept_ack(as_general_ciphering(apdu))
        except DlmsError as exc:
            reason = type(exc).__name__
            self._count("acks_rejected")
            self._count(f"acks_rejected.{reason}")
            _log.warning("shared payload: acknowledgement refused: %s: %s", reason, exc)
            return True
        self._count("acks_received")
        self.dirty = True
        self._refresh_gauges()
        _log.info(
            "shared payload: %s acknowledgement of kp_id %s IC %d",
            body.kind.name.lower(),
            body.kp_id,
            body.acknowledged_ic,
        )
        return True

    def set_head_ends(
        self,
        assignments: Iterable[HeadEndAssignment],
        now: float | None = None,
        *,
        destinations: Mapping[bytes, str] | None = None,
    ) -> bool:
        """Replace the assigned head-ends (the assignment unit, class 8962, calls this).

        A changed set or K1 opens a new epoch and renews ``Kp`` at once (specs §3.3); the C2
        Push setups are rebuilt in system-title order and the new C2s queued. ``destinations``
        maps system titles to ``[udp://|tcp://]HOST:PORT`` (a head-end with none keeps the one
        it had, else gets none: it can only pull). Returns whether anything changed. Call it
        under the meter's lock (inside a request, or through ``SoftwareMeter.apply``).
        """
        for title, text in (destinations or {}).items():
            parsed = parse_destination(text)
            if parsed is None:
                raise ValueError(f"{text!r} is not [udp://|tcp://]HOST:PORT")
            self._destinations[bytes(title)] = parsed
        listed = list(assignments)
        if len(listed) > MAX_HEAD_ENDS:
            raise ValueError(f"at most {MAX_HEAD_ENDS} head-ends (one C2 push each)")
        when = self.now() if now is None else now
        changed = self.sealer.set_head_ends(listed, when)
        if changed or destinations:
            self._make_c2_pushes()
        self._note_changes()
        self.poll(when)
        return changed

    # --- SharedPayloadBackend (the COSEM objects' view) ----------------------------------------

    def current_kp_id(self) -> bytes:
        key = self.sealer.current_key
        return b"" if key is None else key.kp_id.to_bytes()

    def epoch(self) -> int:
        key = self.sealer.current_key
        return 0 if key is None else key.kp_id.epoch

    def buffered(self) -> Sequence[bytes]:
        return [item.apdu.encode() for item in self.sealer.buffered]

    def capture(self, body: Structure) -> None:
        now = self.now()
        try:
            evicted = self.sealer.seal_ahead(self._notification(body), now)
        except DlmsError as exc:
            self._count("seal_failures")
            _log.error("shared payload: sealing a C1 ahead failed: %s", exc)
            return
        self._count("c1_sealed")
        self._count("c1_buffered")
        self._count("aes_operations")
        if evicted:
            self._count("c1_evicted", len(evicted))
            _log.warning("shared payload: the full buffer evicted %d C1(s)", len(evicted))
        self._note_changes()
        self.poll(now)

    def renew(self) -> None:
        now = self.now()
        self.sealer.renew(now)
        self._note_changes()
        self.poll(now)

    def clear_buffer(self) -> None:
        self.sealer.take_buffered(self.now())
        self._note_changes()

    def buffer_capacity(self) -> int:
        return self.sealer.policy.buffer_capacity

    def set_buffer_capacity(self, capacity: int) -> None:
        self.sealer.policy = dataclasses.replace(self.sealer.policy, buffer_capacity=capacity)

    def renewal_settings(self) -> RenewalSettings:
        policy = self.sealer.policy
        return RenewalSettings(
            policy.max_payloads or 0,
            policy.max_age_s,
            policy.delivery_window_s,
            policy.ack_payloads,
        )

    def set_renewal_settings(self, settings: RenewalSettings) -> None:
        self.sealer.policy = dataclasses.replace(
            self.sealer.policy,
            max_payloads=settings.max_payloads or None,
            max_age_s=settings.max_age_s,
            delivery_window_s=settings.delivery_window_s,
            ack_payloads=settings.ack_payloads,
        )

    def control_entries(self) -> Sequence[ControlEntryView]:
        return [
            ControlEntryView(
                c.head_end,
                c.kp_id.to_bytes(),
                c.apdu.encode(),
                c.acknowledged,
                c.invocation_counter,
                c.not_after,
            )
            for c in self.sealer.controls
        ]

    def retry_interval_s(self) -> int:
        return round(self.sealer.policy.retry_interval_s)

    def set_retry_interval_s(self, seconds: int) -> None:
        self.sealer.policy = dataclasses.replace(
            self.sealer.policy, retry_interval_s=float(seconds)
        )
