"""asyncio form of the wrapper over UDP (brief §1), a thin layer over the same frame codec.

A ``DatagramProtocol`` decodes each datagram into a bounded queue (malformed datagrams and
overflow are counted and dropped): :func:`open_udp_link` gives an :class:`AsyncUdpWrapperLink`
(an ``AsyncApduLink``), :func:`open_push_sender` and :func:`open_push_receiver` carry pushes.
:func:`start_udp_server` answers each datagram with an async handler in its own task. The
sockets for multicast and broadcast are set up by :mod:`cosemcast.transport.udp`.

While a capture runs (:mod:`cosemcast.capture.tap`), every send and receive is shown to it.

Timeouts are ``asyncio.timeout`` deadlines turned into :class:`ResponseTimeout`. Everything here
is also importable from :mod:`cosemcast.transport.aio`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from cosemcast.capture import tap as _tap
from cosemcast.errors import DecodeError, DlmsError, ResponseTimeout, TransportError
from cosemcast.link.wrapper import DLMS_PORT, WrapperFrame
from cosemcast.transport._wrapper_stream import apdu_from_server, reply_frame
from cosemcast.transport.base import (
    DEFAULT_CLIENT_WPORT,
    DEFAULT_SERVER_WPORT,
    Address,
    AsyncClosing,
    format_address,
    to_address,
    transport_error,
)
from cosemcast.transport.udp import receiver_socket, sender_socket

__all__ = [
    "AsyncDatagramHandler",
    "AsyncUdpPushReceiver",
    "AsyncUdpPushSender",
    "AsyncUdpWrapperLink",
    "AsyncUdpWrapperServer",
    "open_push_receiver",
    "open_push_sender",
    "open_udp_link",
    "start_udp_server",
]

# The logger these had in aio.py before the split, so logging configurations keep applying.
_log = logging.getLogger("cosemcast.transport.aio")


_Item = tuple[Address, WrapperFrame] | BaseException


class _DatagramQueue(asyncio.DatagramProtocol):
    """Decodes each datagram into a bounded queue; counts what it has to drop."""

    def __init__(self, queue_size: int) -> None:
        self.queue: asyncio.Queue[_Item] = asyncio.Queue(queue_size)
        self.malformed_datagrams = 0
        self.dropped_datagrams = 0
        self.local: Address = ("", 0)
        self.group: str | None = None  # for the capture tap: where datagrams were sent

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.local = to_address(transport.get_extra_info("sockname"))

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        source = to_address(addr)
        if (tap := _tap.active) is not None:
            local = self.local if self.group is None else (self.group, self.local[1])
            tap.udp(source, local, data, "receive")
        try:
            frame = WrapperFrame.decode(data)
        except DecodeError as exc:
            self.malformed_datagrams += 1
            _log.debug(
                "dropped a %d-byte datagram from %s: %s", len(data), format_address(source), exc
            )
            return
        self._put((source, frame))

    def error_received(self, exc: Exception) -> None:
        self._put(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._put(exc if exc is not None else TransportError("the UDP endpoint is closed"))

    def _put(self, item: _Item) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped_datagrams += 1


class _AsyncDatagramEndpoint(AsyncClosing):
    def __init__(
        self, transport: asyncio.DatagramTransport, protocol: _DatagramQueue, describe: str
    ) -> None:
        self._transport = transport
        self._protocol = protocol
        self._describe = describe

    @property
    def local(self) -> Address:
        return to_address(self._transport.get_extra_info("sockname"))

    @property
    def malformed_datagrams(self) -> int:
        return self._protocol.malformed_datagrams

    @property
    def dropped_datagrams(self) -> int:
        """Datagrams (or socket errors) dropped because the receive queue was full."""
        return self._protocol.dropped_datagrams

    async def close(self) -> None:
        self._transport.close()

    def _send(self, frame: WrapperFrame, address: Address | None) -> None:
        data = frame.encode()
        if self._transport.is_closing():
            raise TransportError(f"the UDP socket for {self._describe} is closed")
        if (tap := _tap.active) is not None:
            _tap_send(tap, self._transport, data, address)
        try:
            self._transport.sendto(data, address)
        except OSError as exc:
            where = self._describe if address is None else format_address(address)
            raise transport_error(exc, "sending to", where) from exc

    async def _receive(self, timeout_s: float | None) -> tuple[Address, WrapperFrame]:
        if self._transport.is_closing() and self._protocol.queue.empty():
            raise TransportError(f"the UDP socket for {self._describe} is closed")
        try:
            async with asyncio.timeout(timeout_s):
                item = await self._protocol.queue.get()
        except TimeoutError as exc:
            raise ResponseTimeout(
                f"no wrapper datagram for {self._describe} within {timeout_s} s: is the meter "
                "running, are the address, port and wPorts right, did the datagram get lost?"
            ) from exc
        if isinstance(item, tuple):
            return item
        if isinstance(item, OSError):
            raise transport_error(item, "receiving from", self._describe) from item
        if isinstance(item, DlmsError):
            raise item
        raise TransportError(f"UDP endpoint for {self._describe} failed: {item!r}") from item


class AsyncUdpWrapperLink(_AsyncDatagramEndpoint):
    """A unicast client link over UDP (an ``AsyncApduLink``); see :func:`open_udp_link`."""

    def __init__(
        self,
        transport: asyncio.DatagramTransport,
        protocol: _DatagramQueue,
        *,
        client_wport: int,
        server_wport: int,
    ) -> None:
        self.peer: Address = to_address(transport.get_extra_info("peername"))
        super().__init__(transport, protocol, f"{format_address(self.peer)} (UDP)")
        self.client_wport = client_wport
        self.server_wport = server_wport

    async def send_frame(self, frame: WrapperFrame) -> None:
        self._send(frame, None)

    async def send_apdu(self, apdu: bytes) -> None:
        self._send(WrapperFrame(self.client_wport, self.server_wport, apdu), None)

    async def receive_frame(self, timeout_s: float | None = None) -> WrapperFrame:
        return (await self._receive(timeout_s))[1]

    async def receive_apdu(self, timeout_s: float | None = None) -> bytes:
        frame = await self.receive_frame(timeout_s)
        return apdu_from_server(frame, self.client_wport, self.server_wport)


async def open_udp_link(
    host: str,
    port: int = DLMS_PORT,
    client_wport: int = DEFAULT_CLIENT_WPORT,
    server_wport: int = DEFAULT_SERVER_WPORT,
    *,
    queue_size: int = 64,
) -> AsyncUdpWrapperLink:
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _DatagramQueue(queue_size), remote_addr=(host, port)
        )
    except OSError as exc:
        raise transport_error(exc, "connecting to", (host, port)) from exc
    return AsyncUdpWrapperLink(
        transport, protocol, client_wport=client_wport, server_wport=server_wport
    )


AsyncDatagramHandler = Callable[[Address, WrapperFrame], Awaitable[bytes | None]]


class _DatagramServerProtocol(asyncio.DatagramProtocol):
    def __init__(self, handler: AsyncDatagramHandler, max_pending: int) -> None:
        self.handler = handler
        self.max_pending = max_pending
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.malformed_datagrams = 0
        self.dropped_datagrams = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        source = to_address(addr)
        if (tap := _tap.active) is not None and self.transport is not None:
            tap.udp(source, to_address(self.transport.get_extra_info("sockname")), data, "receive")
        try:
            frame = WrapperFrame.decode(data)
        except DecodeError:
            self.malformed_datagrams += 1
            return
        if len(self.tasks) >= self.max_pending:
            self.dropped_datagrams += 1
            return
        task = asyncio.get_running_loop().create_task(self._answer(source, frame))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def error_received(self, exc: Exception) -> None:
        _log.debug("UDP server socket error: %s", exc)

    async def _answer(self, source: Address, frame: WrapperFrame) -> None:
        try:
            response = await self.handler(source, frame)
            if response is not None and self.transport is not None:
                data = reply_frame(frame, response).encode()
                if (tap := _tap.active) is not None:
                    _tap_send(tap, self.transport, data, source)
                self.transport.sendto(data, source)
        except (DlmsError, OSError) as exc:
            _log.warning(
                "datagram from %s dropped: %s: %s", format_address(source), type(exc).__name__, exc
            )


class AsyncUdpWrapperServer(AsyncClosing):
    """Answers wrapper datagrams with an async handler; see :func:`start_udp_server`."""

    def __init__(
        self, transport: asyncio.DatagramTransport, protocol: _DatagramServerProtocol
    ) -> None:
        self._transport = transport
        self._protocol = protocol
        self.address: Address = to_address(transport.get_extra_info("sockname"))

    @property
    def malformed_datagrams(self) -> int:
        return self._protocol.malformed_datagrams

    def send_frame(self, frame: WrapperFrame, address: Address) -> None:
        """Send an unsolicited frame (a push) from the server's port."""
        data = frame.encode()
        if (tap := _tap.active) is not None:
            _tap_send(tap, self._transport, data, address)
        try:
            self._transport.sendto(data, address)
        except OSError as exc:
            raise transport_error(exc, "sending to", address) from exc

    async def close(self, timeout_s: float = 5.0) -> None:
        self._transport.close()
        tasks = set(self._protocol.tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)


async def start_udp_server(
    host: str,
    port: int,
    handler: AsyncDatagramHandler,
    *,
    reuse_port: bool = False,
    max_pending: int = 256,
) -> AsyncUdpWrapperServer:
    """Answer each datagram in a task (at most ``max_pending`` at once; more are dropped)."""
    sock = receiver_socket(port, host=host, reuse_port=reuse_port, reuse_address=False)
    protocol = _DatagramServerProtocol(handler, max_pending)
    transport, _ = await _endpoint(sock, lambda: protocol)
    return AsyncUdpWrapperServer(transport, protocol)


class AsyncUdpPushSender(_AsyncDatagramEndpoint):
    """See :class:`~cosemcast.transport.udp.UdpPushSender`; create with :func:`open_push_sender`."""

    def __init__(
        self,
        transport: asyncio.DatagramTransport,
        protocol: _DatagramQueue,
        destination: Address,
        *,
        source_wport: int,
        destination_wport: int,
    ) -> None:
        super().__init__(transport, protocol, format_address(destination))
        self.destination = destination
        self.source_wport = source_wport
        self.destination_wport = destination_wport

    async def send_apdu(self, apdu: bytes) -> None:
        self._send(WrapperFrame(self.source_wport, self.destination_wport, apdu), self.destination)

    async def send_frame(self, frame: WrapperFrame) -> None:
        self._send(frame, self.destination)


async def open_push_sender(
    host: str,
    port: int = DLMS_PORT,
    *,
    source_wport: int,
    destination_wport: int,
    ttl: int = 1,
    loopback: bool = True,
    interface: str | None = None,
    broadcast: bool = False,
) -> AsyncUdpPushSender:
    sock, destination = sender_socket(
        host, port, ttl=ttl, loopback=loopback, interface=interface, broadcast=broadcast
    )
    try:
        # What the first send would do; done now so the capture tap knows the source port.
        sock.bind(("::", 0) if sock.family == socket.AF_INET6 else ("", 0))
    except OSError as exc:
        sock.close()
        raise transport_error(exc, "preparing to send to", destination) from exc
    transport, protocol = await _endpoint(sock, lambda: _DatagramQueue(16))
    return AsyncUdpPushSender(
        transport,
        protocol,
        destination,
        source_wport=source_wport,
        destination_wport=destination_wport,
    )


class AsyncUdpPushReceiver(_AsyncDatagramEndpoint):
    """The asyncio form of :class:`~cosemcast.transport.udp.UdpPushReceiver`."""

    @property
    def address(self) -> Address:
        return self.local

    async def receive(self, timeout_s: float | None = None) -> tuple[Address, WrapperFrame]:
        """The next well-formed frame and its source (:class:`ResponseTimeout` after timeout_s)."""
        return await self._receive(timeout_s)


async def open_push_receiver(
    port: int = DLMS_PORT,
    *,
    host: str = "",
    group: str | None = None,
    interface: str = "0.0.0.0",
    reuse_port: bool = False,
    queue_size: int = 1024,
) -> AsyncUdpPushReceiver:
    sock = receiver_socket(port, host=host, group=group, interface=interface, reuse_port=reuse_port)
    transport, protocol = await _endpoint(sock, lambda: _DatagramQueue(queue_size))
    protocol.group = group
    describe = f"{format_address(to_address(sock.getsockname()))} (UDP)"
    return AsyncUdpPushReceiver(transport, protocol, describe)


_P = TypeVar("_P", bound=asyncio.DatagramProtocol)


def _tap_send(
    tap: _tap.CaptureTap,
    transport: asyncio.DatagramTransport,
    data: bytes,
    address: Address | None,
) -> None:
    """Show a datagram about to be sent to the capture tap (``capture/tap.py``)."""
    peer = address if address is not None else transport.get_extra_info("peername")
    if peer is None:
        return
    local = to_address(transport.get_extra_info("sockname"))
    tap.udp(local, to_address(peer), data, "send")


async def _endpoint(
    sock: socket.socket, factory: Callable[[], _P]
) -> tuple[asyncio.DatagramTransport, _P]:
    address = to_address(sock.getsockname())
    try:
        return await asyncio.get_running_loop().create_datagram_endpoint(factory, sock=sock)
    except OSError as exc:
        sock.close()
        raise transport_error(exc, "opening", address) from exc
