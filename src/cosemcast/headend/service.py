"""The head-end's IO adapters: UDP (unicast and a multicast group) and TCP, all on the wrapper.

Theory of operation. :class:`HeadEndService` binds the listeners it is given and feeds every
received APDU to :meth:`~.headend.HeadEnd.handle_apdu` from the listener's thread (the core
serialises them with its lock), with an :class:`Origin` as its source: where the message came
from and its wPorts. The core returns acknowledgements once the group commit that covers
them is durable, possibly for other origins than the message at hand; each goes back to its
origin with the wPorts swapped: over UDP from the unicast port (also for C1s received on the
multicast group), over TCP on the same connection. A housekeeping thread calls
:meth:`~.headend.HeadEnd.tick` every ``tick_s`` and, when the core batches, a flusher thread
calls :meth:`~.headend.HeadEnd.poll` every ``max_delay_s / 2``. :meth:`close` stops the
listeners, flushes the last batch and stops every thread; nothing else here knows the
protocol.

The multicast receiver binds the group address itself (Linux delivers it only that group's
datagrams), so it can share the unicast port number without ``SO_REUSEADDR`` on the unicast
socket.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cosemcast.errors import DlmsError, ResponseTimeout, TransportError
from cosemcast.headend.headend import HeadEnd
from cosemcast.link.wrapper import WrapperFrame
from cosemcast.transport.base import Address, format_address
from cosemcast.transport.tcp import TcpServerConnection, TcpWrapperServer
from cosemcast.transport.udp import UdpPushReceiver, UdpWrapperServer

__all__ = ["HeadEndService", "Origin"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a message came from: a UDP source address or a TCP connection, and the wPorts
    of its frame (the acknowledgement swaps them)."""

    peer: Address | TcpServerConnection
    source_wport: int
    destination_wport: int


class HeadEndService:
    """Listeners around one :class:`~.headend.HeadEnd` (module doc); call :meth:`start`."""

    def __init__(
        self,
        head_end: HeadEnd,
        *,
        udp: tuple[str, int] | None = None,
        group: tuple[str, int] | None = None,
        interface: str = "0.0.0.0",
        tcp: tuple[str, int] | None = None,
        tick_s: float = 1.0,
        reuse_port: bool = False,
        route: Callable[[Origin, bytes, bool], bool] | None = None,
    ) -> None:
        if udp is None and tcp is None:
            raise ValueError("a head-end listens on UDP, TCP or both")
        if group is not None and udp is None:
            raise ValueError("a multicast group needs the unicast UDP port for acknowledgements")
        self.head_end = head_end
        self.tick_s = tick_s
        self.route = route
        self.declined = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.udp: UdpWrapperServer | None = None
        self.multicast: UdpPushReceiver | None = None
        self.tcp: TcpWrapperServer | None = None
        try:
            if udp is not None:
                self.udp = UdpWrapperServer(
                    udp[0], udp[1], self._on_datagram, reuse_port=reuse_port
                )
            if group is not None:
                port = group[1] or (self.udp.address[1] if self.udp else 0)
                self.multicast = UdpPushReceiver(
                    port, host=group[0], group=group[0], interface=interface
                )
            if tcp is not None:
                self.tcp = TcpWrapperServer(tcp[0], tcp[1], self._on_stream)
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"HeadEndService({self.head_end!r})"

    def send(self, acks: list[tuple[Any, bytes]]) -> None:
        """Send acknowledgements from the core, each to its :class:`Origin`."""
        for origin, ack in acks:
            reply = WrapperFrame(origin.destination_wport, origin.source_wport, ack)
            try:
                if isinstance(origin.peer, TcpServerConnection):
                    origin.peer.send_frame(reply)
                elif self.udp is not None:
                    self.udp.send_frame(reply, origin.peer)
            except TransportError as exc:
                _log.warning("acknowledgement not sent: %s", exc)

    def handle(self, origin: Origin, apdu: bytes, *, multicast: bool = False) -> None:
        """One received APDU through the core, unless ``route(origin, apdu, multicast)``
        returns False: then another process owns it (:mod:`.shard`)."""
        if self.route is not None and not self.route(origin, apdu, multicast):
            self.declined += 1
            return
        self.send(self.head_end.handle_apdu(origin, apdu))

    def _on_datagram(self, source: Address, frame: WrapperFrame) -> bytes | None:
        self.handle(Origin(source, frame.source_wport, frame.destination_wport), frame.apdu)
        return None

    def _on_stream(self, connection: TcpServerConnection, frame: WrapperFrame) -> bytes | None:
        origin = Origin(connection, frame.source_wport, frame.destination_wport)
        self.send(self.head_end.handle_apdu(origin, frame.apdu))
        return None

    def _multicast_loop(self) -> None:
        receiver = self.multicast
        assert receiver is not None
        while not self._stop.is_set():
            try:
                source, frame = receiver.receive(0.2)
            except ResponseTimeout:
                continue
            except TransportError as exc:
                if self._stop.is_set() or receiver.closed:
                    return
                _log.warning("multicast receive: %s", exc)
                continue
            try:
                origin = Origin(source, frame.source_wport, frame.destination_wport)
                self.handle(origin, frame.apdu, multicast=True)
            except DlmsError as exc:
                _log.warning("acknowledging %s failed: %s", format_address(source), exc)

    def _tick_loop(self) -> None:
        while not self._stop.wait(self.tick_s):
            self.send(self.head_end.tick())

    def _flush_loop(self) -> None:
        period = self.head_end.group_commit.max_delay_s / 2
        while not self._stop.wait(period):
            self.send(self.head_end.poll())

    def start(self) -> None:
        if self.udp is not None:
            self.udp.start()
        if self.tcp is not None:
            self.tcp.start()
        targets = [self._tick_loop]
        if self.head_end.group_commit.max_delay_s > 0:
            targets.append(self._flush_loop)
        if self.multicast is not None:
            targets.append(self._multicast_loop)
        for target in targets:
            thread = threading.Thread(target=target, name="cosemcast-headend", daemon=True)
            thread.start()
            self._threads.append(thread)
        _log.info(
            "head-end %s listening: %s",
            self.head_end.system_title.hex().upper(),
            ", ".join(self.addresses()),
        )

    def addresses(self) -> list[str]:
        out = []
        if self.udp is not None:
            out.append(f"udp {format_address(self.udp.address)}")
        if self.multicast is not None:
            out.append(f"group {self.multicast.group} port {self.multicast.address[1]}")
        if self.tcp is not None:
            out.append(f"tcp {format_address(self.tcp.address)}")
        return out

    def close(self) -> None:
        """Flush the last batch (its acknowledgements go out), then stop everything. A
        message that slips in after that flush stays uncommitted: closing the store discards
        it, unacknowledged, as a crash would (the meter sends it again)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(5.0)
        self._threads.clear()
        if self.multicast is not None:
            self.multicast.close()
        try:
            self.send(self.head_end.flush())
        finally:
            if self.udp is not None:
                self.udp.close()
            if self.tcp is not None:
                self.tcp.close()

    def __enter__(self) -> HeadEndService:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
