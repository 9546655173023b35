"""DLMS over TCP with the IEC 62056-47 wrapper (brief §1), blocking: a client link and a server.

Both sides read whatever the socket delivers (one byte or several frames at once) into a
sans-IO :class:`~cosemcast.link.wrapper.WrapperDecoder` (held by the
:class:`~cosemcast.transport._wrapper_stream.StreamFramer` shared with :mod:`.aio`) and act on
each complete frame. A stream whose framing breaks cannot be resynchronised (the header has no
flag), so it is closed.

* :class:`TcpWrapperLink` is the client side, an :class:`~cosemcast.transport.base.ApduLink`:
  it sends from ``client_wport`` (the client SAP) to ``server_wport`` (the logical device) and
  accepts only frames coming back the other way.
* :class:`TcpWrapperServer` accepts connections and runs one thread per connection (at most
  ``max_connections``); the handler gets each frame and returns the response APDU or ``None``.
  The response goes back with the wPorts swapped. :meth:`TcpServerConnection.send_apdu` sends
  unsolicited APDUs (pushes) on a connection from any thread. A failing connection (reset,
  broken framing, a handler raising) is closed alone; the server keeps serving.

Receiving waits with ``poll`` against a deadline; the socket's own timeout bounds sends only.

While a capture runs (:mod:`cosemcast.capture.tap`), every send and receive is shown to it.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Final, Self

from cosemcast.capture import tap as _tap
from cosemcast.errors import DlmsError, ResponseTimeout, TransportError
from cosemcast.link.wrapper import DLMS_PORT, MAX_APDU_LENGTH, WrapperFrame
from cosemcast.transport._wrapper_stream import (
    StreamFramer,
    apdu_from_server,
    reply_frame,
)
from cosemcast.transport.base import (
    DEFAULT_CLIENT_WPORT,
    DEFAULT_SERVER_WPORT,
    Address,
    Closing,
    ConnectionClosed,
    format_address,
    to_address,
    transport_error,
    wait_readable,
)

__all__ = [
    "ConnectionHandler",
    "TcpServerConnection",
    "TcpWrapperLink",
    "TcpWrapperServer",
]

_log = logging.getLogger(__name__)

_RECV_SIZE: Final = 65536


class _WrapperStream(Closing):
    """A connected TCP socket and its wrapper decoder; thread-safe send and receive."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        max_apdu_length: int = MAX_APDU_LENGTH,
        send_timeout_s: float | None = 10.0,
        initiator: bool = False,
    ) -> None:
        self.peer: Address = to_address(sock.getpeername())
        self.local: Address = to_address(sock.getsockname())
        if (tap := _tap.active) is not None:
            if initiator:
                tap.tcp_open(self.local, self.peer)
            else:
                tap.tcp_open(self.peer, self.local)
        sock.settimeout(send_timeout_s)
        self._sock = sock
        self._framer = StreamFramer(self.peer, max_apdu_length)
        self._send_lock = threading.Lock()
        self._receive_lock = threading.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def send_frame(self, frame: WrapperFrame) -> None:
        data = frame.encode()
        with self._send_lock:
            self._check_open()
            if (tap := _tap.active) is not None:
                tap.tcp_data(self.local, self.peer, data, "send")
            try:
                self._sock.sendall(data)
            except OSError as exc:
                # A partial send leaves the peer's framing broken: the stream is unusable.
                self.close()
                raise transport_error(exc, "sending to", self.peer) from exc

    def receive_frame(self, timeout_s: float | None = None) -> WrapperFrame:
        """The next frame, whatever its wPorts; :class:`ResponseTimeout` after ``timeout_s``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        if not self._receive_lock.acquire(timeout=-1 if timeout_s is None else max(0, timeout_s)):
            raise self._framer.timeout_error(timeout_s)
        try:
            while True:
                frame = self._next_buffered()
                if frame is not None:
                    return frame
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                self._check_open()
                try:
                    ready = wait_readable(self._sock, remaining)
                except (OSError, ValueError) as exc:
                    raise self._framer.closed_error() from exc
                if not ready:
                    raise self._framer.timeout_error(timeout_s)
                self._read_once()
        finally:
            self._receive_lock.release()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if (tap := _tap.active) is not None:
            tap.tcp_close(self.local, self.peer)
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already disconnected
        self._sock.close()

    def _next_buffered(self) -> WrapperFrame | None:
        try:
            return self._framer.next_frame()
        except TransportError:
            self.close()
            raise

    def _read_once(self) -> None:
        try:
            data = self._sock.recv(_RECV_SIZE)
        except OSError as exc:
            if self._closed:
                raise self._framer.closed_error() from exc
            self.close()
            raise transport_error(exc, "receiving from", self.peer) from exc
        if data:
            if (tap := _tap.active) is not None:
                tap.tcp_data(self.peer, self.local, data, "receive")
            self._framer.receive_data(data)
            return
        if self._closed:  # our own close() woke the wait
            raise self._framer.closed_error()
        if (tap := _tap.active) is not None:
            tap.tcp_close(self.peer, self.local)
        error = self._framer.end_of_stream()
        self.close()
        raise error

    def _check_open(self) -> None:
        if self._closed:
            raise self._framer.closed_error()


class TcpWrapperLink(_WrapperStream):
    """Client side of a wrapper TCP connection (an ``ApduLink``).

    ``send_apdu`` sends from ``client_wport`` to ``server_wport``; ``receive_apdu`` returns the
    next APDU and raises :class:`RemoteProtocolError` for a frame with other wPorts (use
    :meth:`receive_frame` to see every frame, e.g. pushes to another SAP).
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        client_wport: int = DEFAULT_CLIENT_WPORT,
        server_wport: int = DEFAULT_SERVER_WPORT,
        max_apdu_length: int = MAX_APDU_LENGTH,
        send_timeout_s: float | None = 10.0,
    ) -> None:
        super().__init__(
            sock, max_apdu_length=max_apdu_length, send_timeout_s=send_timeout_s, initiator=True
        )
        self.client_wport = client_wport
        self.server_wport = server_wport

    @classmethod
    def connect(
        cls,
        host: str,
        port: int = DLMS_PORT,
        client_wport: int = DEFAULT_CLIENT_WPORT,
        server_wport: int = DEFAULT_SERVER_WPORT,
        timeout_s: float | None = 10.0,
        *,
        max_apdu_length: int = MAX_APDU_LENGTH,
    ) -> TcpWrapperLink:
        """Connect to ``host:port``; ``timeout_s`` bounds the connect and every send."""
        try:
            sock = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as exc:
            raise transport_error(exc, "connecting to", (host, port)) from exc
        try:
            _tune(sock)
            link = cls(
                sock,
                client_wport=client_wport,
                server_wport=server_wport,
                max_apdu_length=max_apdu_length,
                send_timeout_s=timeout_s,
            )
        except OSError as exc:
            sock.close()
            raise transport_error(exc, "connecting to", (host, port)) from exc
        _log.debug("connected to %s from %s", format_address(link.peer), format_address(link.local))
        return link

    def send_apdu(self, apdu: bytes) -> None:
        self.send_frame(WrapperFrame(self.client_wport, self.server_wport, apdu))

    def receive_apdu(self, timeout_s: float | None = None) -> bytes:
        return apdu_from_server(self.receive_frame(timeout_s), self.client_wport, self.server_wport)


class TcpServerConnection(_WrapperStream):
    """One accepted connection of a :class:`TcpWrapperServer`; hashable by identity."""

    def send_apdu(self, apdu: bytes, *, source_wport: int, destination_wport: int) -> None:
        """Send an unsolicited APDU (a push) on this connection; safe from any thread."""
        self.send_frame(WrapperFrame(source_wport, destination_wport, apdu))


ConnectionHandler = Callable[[TcpServerConnection, WrapperFrame], bytes | None]


class TcpWrapperServer(Closing):
    """A threaded wrapper server: bind in the constructor, serve after :meth:`start`.

    ``handler(connection, frame)`` returns the response APDU (sent back with the wPorts
    swapped) or ``None``. ``on_connect(connection)`` and ``on_disconnect(connection)`` run in
    the connection's thread, so per-connection state (an association) can be kept in a dict
    keyed by the connection. A handler raising a :class:`DlmsError` closes that connection;
    any other exception does too and is reported by :func:`threading.excepthook`.
    """

    def __init__(
        self,
        host: str,
        port: int,
        handler: ConnectionHandler,
        *,
        on_connect: Callable[[TcpServerConnection], None] | None = None,
        on_disconnect: Callable[[TcpServerConnection], None] | None = None,
        max_connections: int = 64,
        max_apdu_length: int = MAX_APDU_LENGTH,
        idle_timeout_s: float | None = None,
        send_timeout_s: float | None = 10.0,
        reuse_port: bool = False,
        backlog: int = 16,
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
        self._listener = _listen(host, port, reuse_port=reuse_port, backlog=backlog)
        self.address: Address = to_address(self._listener.getsockname())
        self._waker_r, self._waker_w = socket.socketpair()
        self._lock = threading.Lock()
        self._threads: dict[TcpServerConnection, threading.Thread] = {}
        self._accept_thread: threading.Thread | None = None
        self._closing = False
        self._stopped = threading.Event()

    @property
    def connections(self) -> tuple[TcpServerConnection, ...]:
        with self._lock:
            return tuple(self._threads)

    def start(self) -> None:
        with self._lock:
            if self._closing:
                raise TransportError("the server is closed; create a new one")
            if self._accept_thread is not None:
                return
            self._accept_thread = threading.Thread(
                target=self._accept_loop,
                name=f"cosemcast-tcp-accept-{self.address[1]}",
                daemon=True,
            )
            self._accept_thread.start()
        _log.info("wrapper server listening on %s", format_address(self.address))

    def serve_forever(self) -> None:
        """Start if needed and block until :meth:`close` (from another thread or a signal)."""
        self.start()
        self._stopped.wait()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop accepting, close every connection and wait up to ``timeout_s`` for threads."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            accept_thread = self._accept_thread
        self._waker_w.send(b"\0")
        if accept_thread is not None:
            accept_thread.join(timeout_s)
        self._listener.close()
        self._waker_r.close()
        self._waker_w.close()
        with self._lock:
            threads = dict(self._threads)
        for connection in threads:
            connection.close()
        deadline = time.monotonic() + timeout_s
        current = threading.current_thread()
        for thread in threads.values():
            if thread is not current:
                thread.join(max(0.0, deadline - time.monotonic()))
        self._stopped.set()
        _log.info("wrapper server on %s closed", format_address(self.address))

    def __enter__(self) -> Self:
        self.start()
        return self

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._waker_r, selectors.EVENT_READ)
            while not self._closing:
                for key, _ in selector.select():
                    if key.fileobj is self._waker_r or self._closing:
                        return
                    self._accept_one()

    def _accept_one(self) -> None:
        try:
            sock, address = self._listener.accept()
        except OSError as exc:
            # The client gave up before we accepted, or we ran out of descriptors: go on.
            _log.warning("accept on %s failed: %s", format_address(self.address), exc)
            return
        with self._lock:
            full = len(self._threads) >= self.max_connections
        if full:
            _log.warning(
                "refusing %s: %d connections already open (max_connections)",
                format_address(to_address(address)),
                self.max_connections,
            )
            sock.close()
            return
        try:
            _tune(sock)
            connection = TcpServerConnection(
                sock, max_apdu_length=self._max_apdu_length, send_timeout_s=self._send_timeout_s
            )
        except OSError as exc:
            _log.warning("dropping %s: %s", format_address(to_address(address)), exc)
            sock.close()
            return
        thread = threading.Thread(
            target=self._serve,
            args=(connection,),
            name=f"cosemcast-tcp-{format_address(connection.peer)}",
            daemon=True,
        )
        with self._lock:
            self._threads[connection] = thread
        thread.start()

    def _serve(self, connection: TcpServerConnection) -> None:
        peer = format_address(connection.peer)
        _log.debug("connection from %s", peer)
        try:
            if self._on_connect is not None:
                self._on_connect(connection)
            while True:
                try:
                    frame = connection.receive_frame(self._idle_timeout_s)
                except ResponseTimeout:
                    _log.info("closing %s: idle for %s s", peer, self._idle_timeout_s)
                    return
                except ConnectionClosed:
                    return
                response = self._handler(connection, frame)
                if response is not None:
                    connection.send_frame(reply_frame(frame, response))
        except DlmsError as exc:
            if not (self._closing and connection.closed):
                _log.warning("closing %s: %s: %s", peer, type(exc).__name__, exc)
        finally:
            connection.close()
            with self._lock:
                self._threads.pop(connection, None)
            _log.debug("connection from %s closed", peer)
            if self._on_disconnect is not None:
                self._on_disconnect(connection)


def _listen(host: str, port: int, *, reuse_port: bool, backlog: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family = infos[0][0]
        return socket.create_server(
            (host, port), family=family, backlog=backlog, reuse_port=reuse_port
        )
    except OSError as exc:
        raise transport_error(exc, "listening on", (host, port)) from exc
    except ValueError as exc:  # reuse_port on a platform without SO_REUSEPORT
        raise TransportError(f"cannot listen on {format_address((host, port))}: {exc}") from exc


def _tune(sock: socket.socket) -> None:
    # Requests and responses are small and strictly alternating: do not wait to coalesce.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
