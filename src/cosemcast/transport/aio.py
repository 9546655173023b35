"""asyncio forms of the wrapper transports (brief §1), thin layers over the same sans-IO decoder.

* TCP uses streams: :func:`open_tcp_link` gives an :class:`AsyncTcpWrapperLink` (an
  ``AsyncApduLink``); :func:`start_tcp_server` runs an async handler per frame, one task per
  connection, with the same rules as :class:`~cosemcast.transport.tcp.TcpWrapperServer`
  (wPorts swapped on the response, pushes with :meth:`AsyncTcpServerConnection.send_apdu`,
  a failing connection closed alone, at most ``max_connections``).
* UDP uses a ``DatagramProtocol`` that decodes each datagram into a bounded queue (malformed
  datagrams and overflow are counted and dropped): :func:`open_udp_link`,
  :func:`start_udp_server`, :func:`open_push_sender`, :func:`open_push_receiver`. The sockets
  for multicast and broadcast are set up by :mod:`cosemcast.transport.udp`.

While a capture runs (:mod:`cosemcast.capture.tap`), every send and receive is shown to it.

Timeouts are ``asyncio.timeout`` deadlines turned into :class:`ResponseTimeout`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar, cast

from cosemcast.capture import tap as _tap
from cosemcast.errors import (
    DecodeError,
    DlmsError,
    RemoteProtocolError,
    ResponseTimeout,
    TransportError,
)
from cosemcast.link.wrapper import DLMS_PORT, MAX_APDU_LENGTH, WrapperDecoder, WrapperFrame
from cosemcast.transport.base import (
    DEFAULT_CLIENT_WPORT,
    DEFAULT_SERVER_WPORT,
    Address,
    AsyncClosing,
    ConnectionClosed,
    format_address,
    to_address,
    transport_error,
)
from cosemcast.transport.udp import receiver_socket, sender_socket

__all__ = [
    "AsyncConnectionHandler",
    "AsyncDatagramHandler",
    "AsyncTcpServerConnection",
    "AsyncTcpWrapperLink",
    "AsyncTcpWrapperServer",
    "AsyncUdpPushReceiver",
    "AsyncUdpPushSender",
    "AsyncUdpWrapperLink",
    "AsyncUdpWrapperServer",
    "open_push_receiver",
    "open_push_sender",
    "open_tcp_link",
    "open_udp_link",
    "start_tcp_server",
    "start_udp_server",
]

_log = logging.getLogger(__name__)

_RECV_SIZE: Final = 65536


def _mismatch(frame: WrapperFrame, client_wport: int, server_wport: int) -> RemoteProtocolError:
    return RemoteProtocolError(
        f"frame from wPort {frame.source_wport} to wPort {frame.destination_wport} on a link "
        f"from client {client_wport} to logical device {server_wport}: check the client SAP "
        "and the logical device address"
    )


# --- TCP ----------------------------------------------------------------------------------


class _AsyncWrapperStream(AsyncClosing):
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        max_apdu_length: int = MAX_APDU_LENGTH,
        send_timeout_s: float | None = 10.0,
        initiator: bool = False,
    ) -> None:
        self.peer: Address = to_address(writer.get_extra_info("peername"))
        self.local: Address = to_address(writer.get_extra_info("sockname"))
        if (tap := _tap.active) is not None:
            if initiator:
                tap.tcp_open(self.local, self.peer)
            else:
                tap.tcp_open(self.peer, self.local)
        self._reader = reader
        self._writer = writer
        self._send_timeout_s = send_timeout_s
        self._decoder = WrapperDecoder(max_apdu_length=max_apdu_length)
        self._receive_lock = asyncio.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def send_frame(self, frame: WrapperFrame) -> None:
        data = frame.encode()
        self._check_open()
        if (tap := _tap.active) is not None:
            tap.tcp_data(self.local, self.peer, data, "send")
        try:
            self._writer.write(data)
            async with asyncio.timeout(self._send_timeout_s):
                await self._writer.drain()
        except OSError as exc:  # TimeoutError included: a stalled peer
            await self.close()
            raise transport_error(exc, "sending to", self.peer) from exc

    async def receive_frame(self, timeout_s: float | None = None) -> WrapperFrame:
        """The next frame, whatever its wPorts; :class:`ResponseTimeout` after ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s), self._receive_lock:
                while (frame := self._next_buffered()) is None:
                    await self._read_once()
                return frame
        except TimeoutError as exc:
            raise ResponseTimeout(
                f"no complete wrapper frame from {format_address(self.peer)} within "
                f"{timeout_s} s: is the meter busy, are the wPorts right, is the timeout "
                "long enough?"
            ) from exc

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if (tap := _tap.active) is not None:
            tap.tcp_close(self.local, self.peer)
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except OSError:
            pass  # the peer reset the connection first: it is closed either way

    def _next_buffered(self) -> WrapperFrame | None:
        try:
            return self._decoder.next_frame()
        except DecodeError as exc:
            self._closed = True
            self._writer.close()
            raise TransportError(
                f"the stream from {format_address(self.peer)} broke the IEC 62056-47 wrapper "
                f"framing ({exc}); is that port a wrapper port (not HDLC)? Reconnect"
            ) from exc

    async def _read_once(self) -> None:
        self._check_open()
        try:
            data = await self._reader.read(_RECV_SIZE)
        except OSError as exc:
            await self.close()
            raise transport_error(exc, "receiving from", self.peer) from exc
        if data:
            if (tap := _tap.active) is not None:
                tap.tcp_data(self.peer, self.local, data, "receive")
            self._decoder.receive_data(data)
            return
        if (tap := _tap.active) is not None:
            tap.tcp_close(self.peer, self.local)
        pending = self._decoder.buffered
        await self.close()
        if pending:
            raise TransportError(
                f"{format_address(self.peer)} closed the connection inside a frame "
                f"({pending} bytes of it received)"
            )
        raise ConnectionClosed(f"{format_address(self.peer)} closed the connection")

    def _check_open(self) -> None:
        if self._closed:
            raise TransportError(f"the connection to {format_address(self.peer)} is closed")


class AsyncTcpWrapperLink(_AsyncWrapperStream):
    """Client side of a wrapper TCP connection (an ``AsyncApduLink``); see :func:`open_tcp_link`."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        client_wport: int = DEFAULT_CLIENT_WPORT,
        server_wport: int = DEFAULT_SERVER_WPORT,
        max_apdu_length: int = MAX_APDU_LENGTH,
        send_timeout_s: float | None = 10.0,
    ) -> None:
        super().__init__(
            reader,
            writer,
            max_apdu_length=max_apdu_length,
            send_timeout_s=send_timeout_s,
            initiator=True,
        )
        self.client_wport = client_wport
        self.server_wport = server_wport

    async def send_apdu(self, apdu: bytes) -> None:
        await self.send_frame(WrapperFrame(self.client_wport, self.server_wport, apdu))

    async def receive_apdu(self, timeout_s: float | None = None) -> bytes:
        frame = await self.receive_frame(timeout_s)
        if frame.source_wport != self.server_wport or frame.destination_wport != self.client_wport:
            raise _mismatch(frame, self.client_wport, self.server_wport)
        return frame.apdu


async def open_tcp_link(
    host: str,
    port: int = DLMS_PORT,
    client_wport: int = DEFAULT_CLIENT_WPORT,
    server_wport: int = DEFAULT_SERVER_WPORT,
    timeout_s: float | None = 10.0,
    *,
    max_apdu_length: int = MAX_APDU_LENGTH,
) -> AsyncTcpWrapperLink:
    """Connect to ``host:port``; ``timeout_s`` bounds the connect and every send."""
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        raise transport_error(exc, "connecting to", (host, port)) from exc
    return AsyncTcpWrapperLink(
        reader,
        writer,
        client_wport=client_wport,
        server_wport=server_wport,
        max_apdu_length=max_apdu_length,
        send_timeout_s=timeout_s,
    )


class AsyncTcpServerConnection(_AsyncWrapperStream):
    """One accepted connection of an :class:`AsyncTcpWrapperServer`; hashable by identity."""

    async def send_apdu(self, apdu: bytes, *, source_wport: int, destination_wport: int) -> None:
        """Send an unsolicited APDU (a push) on this connection."""
        await self.send_frame(WrapperFrame(source_wport, destination_wport, apdu))


AsyncConnectionHandler = Callable[[AsyncTcpServerConnection, WrapperFrame], Awaitable[bytes | None]]


class AsyncTcpWrapperServer(AsyncClosing):
    """An asyncio wrapper server; create it with :func:`start_tcp_server`."""

    def __init__(
        self,
        handler: AsyncConnectionHandler,
        *,
        on_connect: Callable[[AsyncTcpServerConnection], None] | None = None,
        on_disconnect: Callable[[AsyncTcpServerConnection], None] | None = None,
        max_connections: int = 64,
        max_apdu_length: int = MAX_APDU_LENGTH,
        idle_timeout_s: float | None = None,
        send_timeout_s: float | None = 10.0,
    ) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        self._handler = handler
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self.max_connections = max_connections
        self._max_apdu_length = max_apdu_length
        self._idle_timeout_s = idle_timeout_s
        self._send_timeout_s = send_timeout_s
        self._server: asyncio.Server | None = None
        self._connections: dict[AsyncTcpServerConnection, asyncio.Task[None] | None] = {}
        self.address: Address = ("", 0)

    @property
    def connections(self) -> tuple[AsyncTcpServerConnection, ...]:
        return tuple(self._connections)

    async def _listen(self, host: str, port: int, *, reuse_port: bool, backlog: int) -> None:
        try:
            self._server = await asyncio.start_server(
                self._serve, host, port, reuse_port=reuse_port, backlog=backlog
            )
        except OSError as exc:
            raise transport_error(exc, "listening on", (host, port)) from exc
        self.address = to_address(self._server.sockets[0].getsockname())
        _log.info("wrapper server listening on %s", format_address(self.address))

    async def serve_forever(self) -> None:
        if self._server is not None:
            try:
                await self._server.serve_forever()
            except asyncio.CancelledError:
                await self.close()
                raise

    async def close(self, timeout_s: float = 5.0) -> None:
        """Stop accepting, close every connection and wait up to ``timeout_s`` for them."""
        if self._server is not None:
            self._server.close()
        connections = dict(self._connections)
        for connection in connections:
            await connection.close()
        current = asyncio.current_task()
        tasks = {task for task in connections.values() if task is not None and task is not current}
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = AsyncTcpServerConnection(
            reader,
            writer,
            max_apdu_length=self._max_apdu_length,
            send_timeout_s=self._send_timeout_s,
        )
        peer = format_address(connection.peer)
        if len(self._connections) >= self.max_connections:
            _log.warning("refusing %s: %d connections already open", peer, self.max_connections)
            await connection.close()
            return
        self._connections[connection] = asyncio.current_task()
        try:
            if self._on_connect is not None:
                self._on_connect(connection)
            while True:
                try:
                    frame = await connection.receive_frame(self._idle_timeout_s)
                except ResponseTimeout:
                    _log.info("closing %s: idle for %s s", peer, self._idle_timeout_s)
                    return
                except ConnectionClosed:
                    return
                response = await self._handler(connection, frame)
                if response is not None:
                    await connection.send_frame(
                        WrapperFrame(frame.destination_wport, frame.source_wport, response)
                    )
        except DlmsError as exc:
            if not connection.closed:
                _log.warning("closing %s: %s: %s", peer, type(exc).__name__, exc)
        finally:
            del self._connections[connection]
            await connection.close()
            if self._on_disconnect is not None:
                self._on_disconnect(connection)


async def start_tcp_server(
    host: str,
    port: int,
    handler: AsyncConnectionHandler,
    *,
    on_connect: Callable[[AsyncTcpServerConnection], None] | None = None,
    on_disconnect: Callable[[AsyncTcpServerConnection], None] | None = None,
    max_connections: int = 64,
    max_apdu_length: int = MAX_APDU_LENGTH,
    idle_timeout_s: float | None = None,
    send_timeout_s: float | None = 10.0,
    reuse_port: bool = False,
    backlog: int = 16,
) -> AsyncTcpWrapperServer:
    """Listen on ``host:port`` and serve each connection in its own task."""
    server = AsyncTcpWrapperServer(
        handler,
        on_connect=on_connect,
        on_disconnect=on_disconnect,
        max_connections=max_connections,
        max_apdu_length=max_apdu_length,
        idle_timeout_s=idle_timeout_s,
        send_timeout_s=send_timeout_s,
    )
    await server._listen(host, port, reuse_port=reuse_port, backlog=backlog)
    return server


# --- UDP ----------------------------------------------------------------------------------

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
        if frame.source_wport != self.server_wport or frame.destination_wport != self.client_wport:
            raise _mismatch(frame, self.client_wport, self.server_wport)
        return frame.apdu


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
                reply = WrapperFrame(frame.destination_wport, frame.source_wport, response)
                data = reply.encode()
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
