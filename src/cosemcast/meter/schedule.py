"""The software meter's upstream schedule (specs/scheduling.md §11; EP 2671052 [0032], [0045]).

Theory of operation. With a ``[schedule]`` table the meter gets an :class:`UpstreamScheduleUnit`
(:attr:`SoftwareMeter.schedule <cosemcast.meter.meter.SoftwareMeter.schedule>`) on that logical
device. It adds the upstream-schedule object (class 8964, ``0-0:128.5.0.255``,
:mod:`cosemcast.scheduling.cosem`) to the object model, persisted like every other object
(attributes 2-5: window, explicit offset, groups, response window).

* **Reports.** The meter fires each push setup of the device at its nominal instant ``t`` inside
  :meth:`UpstreamScheduleUnit.reporting`: the push is read, stamped, ciphered or sealed at ``t``
  (a C1 is the reading captured at ``t``, [0038]), and everything it queues (the C2s due first,
  then the C1s, or a class 40 DATA-NOTIFICATION) waits in a queue until the meter's time
  reaches the slot ``report_instant(t)``; :meth:`UpstreamScheduleUnit.release` hands it to the
  push sender when a time step or request passes the slot (so fake clocks work). The C2s of
  that instant are marked sent at the slot, so their retransmissions count from it.
* **Broadcast group commands.** An ACTION-Request invoking ``group_command`` reaches the meter
  as a broadcast: on the multicast group it joins (:meth:`UpstreamScheduleUnit.listen`), on
  the all-station wPort ``0x7F`` of any link, or as a general-glo-ciphering APDU under the
  global broadcast key (Key_Set = 1) on any link. It is taken out of the association path
  (:meth:`UpstreamScheduleUnit.receive`), checked, and invoked with the access rights of the
  configured ``broadcast_client_sap``; no response is sent, except for a *confirmed* request,
  whose ACTION-Response (the acknowledgement) waits for ``response_instant(r)``, ``r`` the
  receipt.

Security (decision, specs §11.3): when the broadcast client has keys, a broadcast must be
general-glo-ciphering under that client's current broadcast key and AK, authenticated, from its
``client_system_title`` when one is set, with an invocation counter above the last accepted one
from that sender (the meter's received-counter store); its acknowledgement is general-glo under
the client's unicast key with the meter's own counter. A client without keys may broadcast in
plain text (a laboratory set-up). Anything refused is logged and counted, never answered.

Pending sends live in memory: a restart before the slot loses them (the C2s come back through
their retransmission; a C1 sealed at ``t`` is lost like a datagram).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import heapq
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Final

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.action import ActionRequestNormal, ActionResponseNormal
from cosemcast.apdu.common import ABSENT, ActionResult
from cosemcast.apdu.general import GeneralGloCiphering
from cosemcast.association.backend import AccessContext
from cosemcast.axdr.types import OctetString, VisibleString
from cosemcast.cosem.push_setup import TransportService
from cosemcast.errors import (
    AuthenticationFailed,
    DlmsError,
    KeyUnavailableError,
    RemoteProtocolError,
    ResponseTimeout,
    TransportError,
)
from cosemcast.meter._objects_config import ACCESS_LEVELS
from cosemcast.meter._push import Outgoing
from cosemcast.meter._schedule_config import ScheduleConfig
from cosemcast.obis import Obis
from cosemcast.scheduling import (
    GROUP_COMMAND_METHOD,
    UPSTREAM_SCHEDULE_CLASS_ID,
    UPSTREAM_SCHEDULE_OBIS,
    MeterIdentity,
    ResponseWindow,
    UpstreamSchedule,
    UpstreamScheduleObject,
)
from cosemcast.security.counters import make_key_id
from cosemcast.security.gcm import SecurityControl, SymmetricKeys
from cosemcast.security.protection import cipher_apdu, decipher_apdu
from cosemcast.transport.base import Address, format_address

if TYPE_CHECKING:
    from cosemcast.link.wrapper import WrapperFrame
    from cosemcast.meter.build import ClientRuntime, LogicalDevice
    from cosemcast.meter.meter import MeterSession, SoftwareMeter
    from cosemcast.security.counters import CounterStore, ReceivedCounterStore
    from cosemcast.transport.udp import UdpPushReceiver

__all__ = ["ALL_STATIONS", "FIRMWARE_OBIS", "TARIFF_OBIS", "UpstreamScheduleUnit"]

_log = logging.getLogger("cosemcast.meter")

# The HDLC all-station server address (brief §2), used as the wrapper's broadcast wPort
# (decision, specs §11.3).
ALL_STATIONS: Final = 0x7F
# Active firmware identifier (Data) and the Activity calendar (specs §3 inputs).
FIRMWARE_OBIS: Final = Obis(1, 0, 0, 2, 0, 255)
TARIFF_OBIS: Final = Obis(0, 0, 13, 0, 0, 255)
_CALENDAR_NAME_ACTIVE: Final = 2
_GENERAL_GLO: Final = 0xDB
_LISTEN_POLL_S: Final = 0.2
_STATS: Final = (
    "reports_deferred",
    "broadcasts_applied",
    "broadcasts_refused",
    "acks_queued",
)


def _as_bytes(value: object) -> bytes | None:
    if isinstance(value, OctetString | bytes):
        return bytes(value)
    if isinstance(value, VisibleString | str):
        return str(value).encode("utf-8")
    return None


class UpstreamScheduleUnit:
    """The upstream schedule of one logical device (see the module docstring)."""

    def __init__(
        self,
        meter: SoftwareMeter,
        device: LogicalDevice,
        config: ScheduleConfig,
        *,
        counters: CounterStore,
        received: ReceivedCounterStore,
    ) -> None:
        self.meter = meter
        self.device = device
        self.config = config
        self._counters = counters
        self._received = received
        schedule = UpstreamSchedule(
            config.window_s,
            config.explicit_offset_s,
            ResponseWindow(config.response_delay_s, config.response_window_s),
        )
        self.obj = UpstreamScheduleObject(
            MeterIdentity(device.system_title, b"", b""),
            schedule=schedule,
            groups=config.groups,
        )
        for client in device.config.clients:
            rights = ACCESS_LEVELS[config.access.get(client.sap, client.access)]
            if rights is not None:
                self.obj.grant(client.sap, rights)
        device.model.add(self.obj)
        self.refresh_identity()
        self._pending: list[tuple[dt.datetime, int, Outgoing]] = []
        self._sequence = 0
        self._slot: tuple[dt.datetime, int] | None = None
        self._counts: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self._listener: UdpPushReceiver | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"UpstreamScheduleUnit(device={self.device.sap}, {self.obj.schedule!r})"

    # --- identity ------------------------------------------------------------------------------

    def refresh_identity(self) -> MeterIdentity:
        """The spreading inputs now: the firmware identifier (value of ``1-0:0.2.0.255``) and
        the tariff (``calendar_name_active`` of ``0-0:13.0.0.255``) when the device has those
        objects, else the configured strings (specs §11.1)."""
        model = self.device.model
        firmware = tariff = None
        found = model.by_obis(FIRMWARE_OBIS)
        if found is not None:
            firmware = _as_bytes(found.read(2))
        calendar = model.by_obis(TARIFF_OBIS)
        if calendar is not None:
            tariff = _as_bytes(calendar.read(_CALENDAR_NAME_ACTIVE))
        identity = MeterIdentity(
            self.device.system_title,
            self.config.firmware_version.encode("utf-8") if firmware is None else firmware,
            self.config.tariff.encode("utf-8") if tariff is None else tariff,
        )
        if identity != self.obj.identity:
            self.obj.identity = identity
        return identity

    def stats(self) -> dict[str, int]:
        """reports_deferred, broadcasts_applied, broadcasts_refused (and .<reason>),
        acks_queued, and the current pending count."""
        with self._stats_lock:
            out = {name: 0 for name in _STATS}
            out.update(self._counts)
        out["pending"] = len(self._pending)
        return out

    def _count(self, name: str) -> None:
        with self._stats_lock:
            self._counts[name] += 1

    # --- reports -------------------------------------------------------------------------------

    def report_offset_s(self) -> int:
        """Seconds after each nominal reporting instant at which this meter transmits."""
        self.refresh_identity()
        return self.obj.schedule.report_offset(self.obj.identity)

    @contextlib.contextmanager
    def reporting(self, device: LogicalDevice, due: dt.datetime) -> Iterator[None]:
        """Around a push fired at ``due`` (the device's meter time): what it queues waits for
        the slot (nothing changes for another logical device)."""
        if device is not self.device:
            yield
            return
        nominal = round(due.timestamp())
        offset = self.report_offset_s()
        clock_offset = device.clock.offset if device.clock is not None else dt.timedelta(0)
        source = due.astimezone(dt.UTC) - clock_offset + dt.timedelta(seconds=offset)
        self._slot = (source, nominal + offset) if offset else None
        try:
            yield
        finally:
            self._slot = None

    def sending_at(self, when: float) -> float:
        """When what is queued now leaves (meter time, Unix s): the slot inside
        :meth:`reporting`, else ``when``."""
        return float(self._slot[1]) if self._slot is not None else when

    def defer(self, outgoing: Outgoing) -> bool:
        """Hold ``outgoing`` until the current slot; False when it can go now."""
        if self._slot is None:
            return False
        self._push(self._slot[0], outgoing)
        self._count("reports_deferred")
        return True

    def _push(self, when: dt.datetime, outgoing: Outgoing) -> None:
        self._sequence += 1
        heapq.heappush(self._pending, (when, self._sequence, outgoing))

    def release(self, until: dt.datetime) -> list[Outgoing]:
        """The held sends whose slot is at or before ``until`` (source time), in order."""
        out = []
        while self._pending and self._pending[0][0] <= until:
            out.append(heapq.heappop(self._pending)[2])
        return out

    # --- broadcasts ----------------------------------------------------------------------------

    def receive(self, session: MeterSession, apdu: bytes) -> bool:
        """Take a broadcast that reached the meter on ``session``'s link (see the module
        docstring); False when ``apdu`` is none and belongs to the association. Every request
        passes here first, so attributes 6 and 7 show the current spreading inputs."""
        self.refresh_identity()
        if not self._claims(session.server_sap, session.client_sap, apdu):
            return False
        self._handle(session.client_sap, apdu, reply=session.push)
        return True

    def _claims(self, server_sap: int, client_sap: int, apdu: bytes) -> bool:
        if client_sap != self.config.broadcast_client_sap:
            return False
        if server_sap == ALL_STATIONS:
            return True
        if server_sap != self.device.sap or apdu[:1] != bytes((_GENERAL_GLO,)):
            return False
        try:
            request = decode_apdu(apdu)
        except DlmsError:
            return False
        return (
            isinstance(request, GeneralGloCiphering)
            and SecurityControl.from_byte(request.security_control).broadcast_key
        )

    def _handle(
        self,
        client_sap: int,
        apdu: bytes,
        *,
        reply: Callable[[bytes], None] | None = None,
        source: Address | None = None,
    ) -> None:
        client = self.device.clients.get(client_sap)
        assert client is not None
        received_at = round(self.meter.meter_time(self.device.sap).timestamp())
        try:
            request = decode_apdu(apdu)
            sender = None
            if isinstance(request, GeneralGloCiphering):
                plain, sender = self._decipher(client, request)
                request = decode_apdu(plain)
            elif client.config.security is not None:
                raise AuthenticationFailed("the broadcast client has keys: cipher the broadcast")
            action = self._group_command(request)
        except DlmsError as exc:
            reason = type(exc).__name__
            self._count("broadcasts_refused")
            self._count(f"broadcasts_refused.{reason}")
            _log.warning(
                "upstream schedule: broadcast from client %d refused: %s: %s",
                client_sap,
                reason,
                exc,
            )
            return
        ctx = AccessContext(
            client_sap,
            client.config.authentication.mechanism,
            authenticated=sender is not None,
            client_system_title=sender,
            ciphered=sender is not None,
            now=self.meter.meter_time(self.device.sap),
        )
        params = action.method_invocation_parameters
        before = self.obj.last_order
        result, _ = self.obj.action(ctx, GROUP_COMMAND_METHOD, None if params is ABSENT else params)
        order = self.obj.last_order if self.obj.last_order is not before else None
        _log.info(
            "upstream schedule: group command from client %d: %s (applied: %s); schedule %s",
            client_sap,
            result.name.lower(),
            order,
            self.obj.schedule,
        )
        if action.invoke_id_and_priority.confirmed:
            self._acknowledge(
                client, action, result, sender is not None, received_at, reply=reply, source=source
            )
        applied = result is ActionResult.SUCCESS
        self._count("broadcasts_applied" if applied else "broadcasts_refused")

    def _decipher(self, client: ClientRuntime, request: GeneralGloCiphering) -> tuple[bytes, bytes]:
        keys, setup = client.keys, client.security_setup
        if keys is None or setup is None or keys.broadcast_key is None:
            raise KeyUnavailableError("the broadcast client has no global broadcast key")
        control = SecurityControl.from_byte(request.security_control)
        if not control.broadcast_key or not control.authenticated:
            raise AuthenticationFailed("a broadcast is authenticated under the broadcast key")
        if control.suite != setup.security_suite:
            raise AuthenticationFailed("the broadcast names another security suite")
        sender = bytes(request.system_title)
        expected = setup.client_system_title
        if len(sender) != 8 or (expected is not None and sender != expected):
            raise AuthenticationFailed("the broadcast comes from another system title")
        key_id = make_key_id(sender, "broadcast", keys.broadcast_key)
        self._received.check(key_id, request.invocation_counter)
        deciphered = decipher_apdu(
            request,
            keys=SymmetricKeys(keys.broadcast_key, keys.ak),
            system_title=sender,
            require_authentication=True,
        )
        self._received.check_and_update(key_id, request.invocation_counter)
        return deciphered.plain, sender

    @staticmethod
    def _group_command(request: object) -> ActionRequestNormal:
        if not isinstance(request, ActionRequestNormal):
            raise RemoteProtocolError("a broadcast carries an ACTION-Request-Normal")
        method = request.cosem_method_descriptor
        if (method.class_id, method.instance_id, method.method_id) != (
            UPSTREAM_SCHEDULE_CLASS_ID,
            UPSTREAM_SCHEDULE_OBIS,
            GROUP_COMMAND_METHOD,
        ):
            raise RemoteProtocolError("only group_command of 0-0:128.5.0.255 is broadcast")
        return request

    def _acknowledge(
        self,
        client: ClientRuntime,
        action: ActionRequestNormal,
        result: ActionResult,
        ciphered: bool,
        received_at: int,
        *,
        reply: Callable[[bytes], None] | None,
        source: Address | None,
    ) -> None:
        """The ACTION-Response of a confirmed broadcast, held until the response slot."""
        apdu = ActionResponseNormal(
            result, invoke_id_and_priority=action.invoke_id_and_priority
        ).encode()
        keys, setup = client.keys, client.security_setup
        if ciphered and keys is not None and setup is not None:
            control = SecurityControl(setup.security_suite, authenticated=True, encrypted=True)
            title = self.device.system_title
            apdu = cipher_apdu(
                apdu,
                kind="general-glo",
                security_control=control.to_byte(),
                keys=SymmetricKeys(keys.ek, keys.ak),
                system_title=title,
                invocation_counter=self._counters.next(make_key_id(title, "unicast", keys.ek)),
            ).encode()
        if reply is None and source is None:
            _log.warning("upstream schedule: no way back for the acknowledgement; not sent")
            return
        outgoing = Outgoing(
            apdu,
            int(TransportService.UDP),
            "" if source is None else format_address(source),
            self.device.sap,
            client.config.sap,
            f"{self.obj.logical_name} acknowledgement",
            via_server=True,
            via=reply,
        )
        delay = self.obj.response_instant(received_at) - received_at
        self._count("acks_queued")
        if delay <= 0:
            self.meter.queue_outgoing(outgoing)
        else:
            self._push(self.meter.source_time + dt.timedelta(seconds=delay), outgoing)

    # --- the multicast group -------------------------------------------------------------------

    def listen(self, group: tuple[str, int] | None = None, interface: str | None = None) -> Address:
        """Join the multicast group (default: the configured ``group``) and take the group
        commands sent to it; returns the bound address."""
        from cosemcast.transport.udp import UdpPushReceiver

        target = group or self.config.group
        if target is None:
            raise ValueError("no multicast group: set [schedule] group or pass one")
        if self._listener is not None:
            raise ValueError("the meter already listens to a group")
        receiver = UdpPushReceiver(
            target[1], group=target[0], interface=interface or self.config.interface
        )
        self._listener = receiver
        self._thread = threading.Thread(
            target=self._listen, args=(receiver,), name="cosemcast-meter-group", daemon=True
        )
        self._thread.start()
        _log.info("upstream schedule: listening to group %s", format_address(target))
        return receiver.address

    def _listen(self, receiver: UdpPushReceiver) -> None:
        while not receiver.closed:
            try:
                source, frame = receiver.receive(_LISTEN_POLL_S)
            except ResponseTimeout:
                continue
            except TransportError:
                return
            try:
                self._on_frame(source, frame)
            except DlmsError as exc:
                _log.warning("upstream schedule: group datagram dropped: %s", exc)

    def _on_frame(self, source: Address, frame: WrapperFrame) -> None:
        addressed = frame.destination_wport in (self.device.sap, ALL_STATIONS)
        if frame.source_wport != self.config.broadcast_client_sap or not addressed:
            _log.debug(
                "upstream schedule: group datagram for wPort %d ignored", frame.destination_wport
            )
            return
        self.meter.advance_to()
        self.meter.apply(lambda: self._handle(frame.source_wport, frame.apdu, source=source))

    def close(self) -> None:
        """Leave the group (idempotent)."""
        receiver, self._listener = self._listener, None
        if receiver is not None:
            receiver.close()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)
