"""asyncio forms of the wrapper transports (brief §1), thin layers over the same sans-IO decoder.

* TCP (here) uses streams: :func:`open_tcp_link` gives an :class:`AsyncTcpWrapperLink` (an
  ``AsyncApduLink``); :func:`start_tcp_server` runs an async handler per frame, one task per
  connection, with the same rules as :class:`~cosemcast.transport.tcp.TcpWrapperServer`
  (wPorts swapped on the response, pushes with :meth:`AsyncTcpServerConnection.send_apdu`,
  a failing connection closed alone, at most ``max_connections``). The stream's framing and
  its errors are the :class:`~cosemcast.transport._wrapper_stream.StreamFramer` that the
  blocking :mod:`~cosemcast.transport.tcp` uses too.
* UDP lives in :mod:`cosemcast.transport.aio_udp` and is re-exported here:
  :func:`open_udp_link`, :func:`start_udp_server`, :func:`open_push_sender`,
  :func:`open_push_receiver`.

While a capture runs (:mod:`cosemcast.capture.tap`), every send and receive is shown to it.

Timeouts are ``asyncio.timeout`` deadlines turned into :class:`ResponseTimeout`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from cosemcast.capture import tap as _tap
from cosemcast.errors import DlmsError, ResponseTimeout, TransportError
from cosemcast.link.wrapper import DLMS_PORT, MAX_APDU_LENGTH, WrapperFrame
from cosemcast.transport._wrapper_stream import (
    StreamFramer,
    apdu_from_server,
    reply_frame,
)
from cosemcast.transport.aio_udp import (
    AsyncDatagramHandler,
    AsyncUdpPushReceiver,
    AsyncUdpPushSender,
    AsyncUdpWrapperLink,
    AsyncUdpWrapperServer,
    open_push_receiver,
    open_push_sender,
    open_udp_link,
    start_udp_server,
)
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
        self._framer = StreamFramer(self.peer, max_apdu_length)
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
            raise self._framer.timeout_error(timeout_s) from exc

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
            return self._framer.next_frame()
        except TransportError:
            self._closed = True
            self._writer.close()
            raise

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
            self._framer.receive_data(data)
            return
        if (tap := _tap.active) is not None:
            tap.tcp_close(self.peer, self.local)
        error = self._framer.end_of_stream()
        await self.close()
        raise error

    def _check_open(self) -> None:
        if self._closed:
            raise self._framer.closed_error()


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
        return apdu_from_server(frame, self.client_wport, self.server_wport)


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
                    await connection.send_frame(reply_frame(frame, response))
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
