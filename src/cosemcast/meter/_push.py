"""Building and sending the meter's pushes (Push setup, class 40).

Theory of operation. When a Push setup pushes (on its interval, or when a client invokes its
``push`` method), :func:`build_push` wraps the body in a DATA-NOTIFICATION stamped with the
meter's time and, for ``protection = "general-glo"``, protects it as general-glo-ciphering
under the current global keys of the push's client (security control: its suite,
authenticated and encrypted; the invocation counter comes from the meter's counter store,
under the same key id as the association's responses, so a counter is never used twice).
The destination is read from the object's send_destination_and_method at that moment, so a
client can redirect it with a SET. :class:`PushSender` sends outside the meter's lock, from
its own thread:

* UDP (transport_service 1): one datagram to ``host:port`` (the destination, ASCII);
* TCP (0): over every open connection of that client SAP to that logical device when the
  destination is empty, else over a new connection to ``host:port``, closed after the push;
* HDLC (5): in UI frames on the serial line(s) the meter serves.

The wrapper's source wPort is the logical device, the destination wPort the client SAP
(brief §1). A push that cannot be sent is logged and dropped (pushes are not confirmed, so
number_of_retries and repetition_delay are not used; decision).

The shared-payload scheme (:mod:`cosemcast.meter.shared`) queues its C1s and C2s here too, with
three differences: over UDP they leave from the meter's own UDP server port when it serves UDP
(``via_server``; the head-ends acknowledge to the source address), a C2 pushed over TCP waits
for the acknowledgement on that connection (``expect_ack``, up to a few seconds) and hands it
to :meth:`~cosemcast.meter.meter.SoftwareMeter.receive_ack`, and ``sent`` is told the size of
every APDU that left (the unit's counters).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cosemcast.axdr.types import CosemDateTime, Structure
from cosemcast.cosem.push_setup import PushSetup, TransportService
from cosemcast.errors import DlmsError, ResponseTimeout
from cosemcast.link.wrapper import WrapperFrame
from cosemcast.security.counters import make_key_id
from cosemcast.security.gcm import SecurityControl, SymmetricKeys
from cosemcast.security.protection import cipher_apdu

if TYPE_CHECKING:
    from cosemcast.meter.build import LogicalDevice, Scheduled
    from cosemcast.meter.meter import SoftwareMeter
    from cosemcast.transport.udp import UdpPushSender, UdpWrapperServer

__all__ = ["Outgoing", "PushSender", "build_push"]

_log = logging.getLogger("cosemcast.meter")
_TCP_TIMEOUT_S = 5.0
_ACK_WAIT_S = 3.0


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A push ready to be sent."""

    apdu: bytes = field(repr=False)
    transport: int
    destination: str
    server_sap: int
    client_sap: int
    name: str
    via_server: bool = False
    broadcast: bool = False
    expect_ack: bool = False
    sent: Callable[[int], None] | None = field(default=None, repr=False, compare=False)
    via: Callable[[bytes], None] | None = field(default=None, repr=False, compare=False)
    """Send with this instead (the link a request came on: a broadcast's acknowledgement)."""


def build_push(
    meter: SoftwareMeter, device: LogicalDevice, item: Scheduled, body: Structure
) -> Outgoing | None:
    """The DATA-NOTIFICATION of ``body``, protected as configured, and where it goes."""
    setup = item.obj
    assert isinstance(setup, PushSetup)
    config = item.config
    client_sap = config.client_sap if config is not None else 1
    if device.clock is not None:
        stamp = device.clock.to_cosem(device.clock.now())
    else:
        stamp = CosemDateTime.from_datetime(meter.source_time)
    plain = setup.notification(body, invoke_id=item.invoke_id, date_time=stamp).encode()
    name = str(setup.logical_name)
    apdu = plain
    if config is not None and config.protection == "general-glo":
        client = device.clients.get(client_sap)
        if client is None or client.keys is None or client.security_setup is None:
            _log.warning("push %s: client %d has no keys; not sent", name, client_sap)
            return None
        keys = client.keys
        counter = meter.next_counter(make_key_id(device.system_title, "unicast", keys.ek))
        control = SecurityControl(
            client.security_setup.security_suite, authenticated=True, encrypted=True
        ).to_byte()
        apdu = cipher_apdu(
            plain,
            kind="general-glo",
            security_control=control,
            keys=SymmetricKeys(keys.ek, keys.ak),
            system_title=device.system_title,
            invocation_counter=counter,
        ).encode()
    method = setup.send_destination_and_method
    return Outgoing(
        apdu,
        int(method.transport_service),
        method.destination.decode("ascii", errors="replace"),
        device.sap,
        client_sap,
        name,
    )


def _host_port(destination: str) -> tuple[str, int] | None:
    host, sep, port = destination.rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


class PushSender:
    """Sends :class:`Outgoing` pushes from a worker thread, in order, so that a slow
    destination never holds up a request (and a push invoked by a client follows the
    answer to that request); keeps one UDP socket per destination."""

    def __init__(self, meter: SoftwareMeter) -> None:
        self._meter = meter
        self._lock = threading.Lock()
        self._udp: dict[tuple[tuple[str, int], bool], UdpPushSender] = {}
        self._queue: queue.SimpleQueue[Outgoing | None] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._closed = False

    def send(self, items: Iterable[Outgoing]) -> None:
        """Queue ``items`` for sending (in order)."""
        with self._lock:
            if self._closed:
                return
            for item in items:
                if self._worker is None:
                    self._worker = threading.Thread(
                        target=self._run, name="cosemcast-meter-push", daemon=True
                    )
                    self._worker.start()
                self._queue.put(item)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._send(item)
            except DlmsError as exc:
                _log.warning("push %s to %r not sent: %s", item.name, item.destination, exc)

    def _send(self, item: Outgoing) -> None:
        frame = WrapperFrame(item.server_sap, item.client_sap, item.apdu)
        if item.via is not None:
            item.via(item.apdu)
            _log.info("push %s sent back over the link it answers", item.name)
        elif item.transport == TransportService.UDP:
            address = _host_port(item.destination)
            if address is None:
                raise _bad_destination(item)
            server = self._udp_server() if item.via_server and not item.broadcast else None
            if server is not None:
                server.send_frame(frame, address)
            else:
                self._udp_sender(address, item.broadcast).send_frame(frame)
            _log.info("push %s sent to %s (UDP)", item.name, item.destination)
        elif item.transport == TransportService.TCP:
            self._send_tcp(item)
        elif item.transport == TransportService.HDLC:
            from cosemcast.transport.serial import HdlcSerialServer

            lines = [s for s in self._meter.servers if isinstance(s, HdlcSerialServer)]
            for line in lines:
                line.send_push(item.apdu)
            _log.info("push %s sent on %d serial line(s)", item.name, len(lines))
        else:
            _log.warning(
                "push %s: transport service %d is not supported", item.name, item.transport
            )
            return
        if item.sent is not None:
            item.sent(len(item.apdu))

    def _udp_server(self) -> UdpWrapperServer | None:
        from cosemcast.transport.udp import UdpWrapperServer

        servers = self._meter.servers
        return next((s for s in servers if isinstance(s, UdpWrapperServer) and not s.closed), None)

    def _send_tcp(self, item: Outgoing) -> None:
        if not item.destination:
            sessions = self._meter.sessions_of(item.server_sap, item.client_sap)
            for session in sessions:
                assert session.push is not None
                session.push(item.apdu)
            if not sessions:
                _log.info("push %s: client %d has no open connection", item.name, item.client_sap)
            else:
                _log.info("push %s sent on %d connection(s)", item.name, len(sessions))
            return
        address = _host_port(item.destination)
        if address is None:
            raise _bad_destination(item)
        from cosemcast.transport.tcp import TcpWrapperLink

        with TcpWrapperLink.connect(
            address[0],
            address[1],
            client_wport=item.server_sap,
            server_wport=item.client_sap,
            timeout_s=_TCP_TIMEOUT_S,
        ) as link:
            link.send_apdu(item.apdu)
            _log.info("push %s sent to %s (TCP)", item.name, item.destination)
            if item.expect_ack:
                try:
                    self._meter.receive_ack(link.receive_apdu(_ACK_WAIT_S))
                except ResponseTimeout:
                    _log.info("push %s: no acknowledgement on the connection", item.name)

    def _udp_sender(self, address: tuple[str, int], broadcast: bool = False) -> UdpPushSender:
        from cosemcast.transport.udp import UdpPushSender

        with self._lock:
            key = (address, broadcast)
            sender = self._udp.get(key)
            if sender is None or sender.closed:
                sender = UdpPushSender(
                    address[0],
                    address[1],
                    source_wport=0,
                    destination_wport=0,
                    broadcast=broadcast,
                )
                self._udp[key] = sender
            return sender

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (waiting up to ``timeout_s``), then stop."""
        with self._lock:
            self._closed = True
            worker = self._worker
        if worker is not None:
            self._queue.put(None)
            worker.join(timeout_s)
        with self._lock:
            senders, self._udp = list(self._udp.values()), {}
        for sender in senders:
            sender.close()


def _bad_destination(item: Outgoing) -> DlmsError:
    return DlmsError(f"push {item.name}: destination {item.destination!r} is not HOST:PORT")
