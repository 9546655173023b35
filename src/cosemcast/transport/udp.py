"""DLMS over UDP with the IEC 62056-47 wrapper (brief §1), blocking.

One datagram carries exactly one wrapper frame (decoded with
:meth:`~cosemcast.link.wrapper.WrapperFrame.decode`). UDP loses and reorders, so a datagram
that is not a well-formed frame is dropped like a lost one: it is counted in
``malformed_datagrams`` and logged (source and length only), and receiving goes on until the
deadline.

* :class:`UdpWrapperLink`: a connected (unicast) client link, an ``ApduLink``.
* :class:`UdpWrapperServer`: answers each datagram through a handler, one thread; it can also
  send unsolicited frames to any address from its own port.
* :class:`UdpPushSender`: pushes to a unicast, multicast (TTL, loopback, outgoing interface)
  or broadcast destination.
* :class:`UdpPushReceiver`: binds a port (optionally ``SO_REUSEPORT``, so several receivers
  can share it and the kernel spreads unicast load), joins a multicast group on an interface,
  and returns ``(source address, frame)`` from any source.

Multicast and broadcast are IPv4 here; unicast works over IPv4 and IPv6.

While a capture runs (:mod:`cosemcast.capture.tap`), every send and receive is shown to it.
"""

from __future__ import annotations

import ipaddress
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Final, Self

from cosemcast.capture import tap as _tap
from cosemcast.errors import (
    DecodeError,
    DlmsError,
    ResponseTimeout,
    TransportError,
)
from cosemcast.link.wrapper import DLMS_PORT, WrapperFrame
from cosemcast.transport._wrapper_stream import apdu_from_server, reply_frame
from cosemcast.transport.base import (
    DEFAULT_CLIENT_WPORT,
    DEFAULT_SERVER_WPORT,
    Address,
    Closing,
    format_address,
    to_address,
    transport_error,
    wait_readable,
)

__all__ = [
    "DatagramHandler",
    "UdpPushReceiver",
    "UdpPushSender",
    "UdpWrapperLink",
    "UdpWrapperServer",
    "receiver_socket",
    "sender_socket",
]

_log = logging.getLogger(__name__)

# The largest UDP payload is 65507 (IPv4) / 65527 (IPv6) bytes; a wrapper frame can claim
# 8 + 65535, so read with room to spare and let the decoder judge.
_DATAGRAM_BUFFER: Final = 65536 + 8

DatagramHandler = Callable[[Address, WrapperFrame], bytes | None]


class _DatagramEndpoint(Closing):
    """A UDP socket that sends frames and receives well-formed ones before a deadline."""

    def __init__(self, sock: socket.socket, *, describe: str) -> None:
        self._sock = sock
        self._describe = describe
        self._receive_lock = threading.Lock()
        self._closed = False
        self.malformed_datagrams = 0
        self.group: str | None = None  # a multicast group joined (UdpPushReceiver)

    @property
    def local(self) -> Address:
        return to_address(self._sock.getsockname())

    @property
    def closed(self) -> bool:
        return self._closed

    def fileno(self) -> int:
        """The socket's descriptor, for options set elsewhere (e.g. a SO_REUSEPORT program)."""
        return self._sock.fileno()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._sock.close()

    def _send(self, frame: WrapperFrame, address: Address | None) -> None:
        data = frame.encode()
        if self._closed:
            raise self._closed_error()
        where = self._describe if address is None else format_address(address)
        if (tap := _tap.active) is not None:
            self._tap_send(tap, data, address)
        try:
            if address is None:
                self._sock.send(data)
            else:
                self._sock.sendto(data, address)
        except OSError as exc:
            raise transport_error(exc, "sending to", where) from exc

    def _receive(self, timeout_s: float | None) -> tuple[Address, WrapperFrame]:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        if not self._receive_lock.acquire(timeout=-1 if timeout_s is None else max(0, timeout_s)):
            raise self._timeout(timeout_s)
        try:
            while True:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                if self._closed:
                    raise self._closed_error()
                try:
                    if not wait_readable(self._sock, remaining):
                        raise self._timeout(timeout_s)
                    data, sockaddr = self._sock.recvfrom(_DATAGRAM_BUFFER)
                except ValueError as exc:
                    raise self._closed_error() from exc
                except OSError as exc:
                    if self._closed:
                        raise self._closed_error() from exc
                    # ICMP port unreachable for an earlier send shows up here (ECONNREFUSED).
                    raise transport_error(exc, "receiving from", self._describe) from exc
                source = to_address(sockaddr)
                if (tap := _tap.active) is not None:
                    tap.udp(source, self._tap_destination(), data, "receive")
                try:
                    return source, WrapperFrame.decode(data)
                except DecodeError as exc:
                    self.malformed_datagrams += 1
                    _log.debug(
                        "dropped a %d-byte datagram from %s: %s",
                        len(data),
                        format_address(source),
                        exc,
                    )
        finally:
            self._receive_lock.release()

    def _closed_error(self) -> TransportError:
        return TransportError(f"the UDP socket for {self._describe} is closed")

    def _tap_send(self, tap: _tap.CaptureTap, data: bytes, address: Address | None) -> None:
        try:
            destination = to_address(self._sock.getpeername()) if address is None else address
            if self._sock.getsockname()[1] == 0:  # unbound: sendto would pick the port
                self._sock.bind(("::", 0) if self._sock.family == socket.AF_INET6 else ("", 0))
            local = to_address(self._sock.getsockname())
        except OSError:
            return  # the send below reports the problem
        tap.udp(local, destination, data, "send")

    def _tap_destination(self) -> Address:
        """Where received datagrams were sent: the group joined, else the bound address."""
        local = self.local
        return (self.group, local[1]) if self.group else local

    def _timeout(self, timeout_s: float | None) -> ResponseTimeout:
        return ResponseTimeout(
            f"no wrapper datagram for {self._describe} within {timeout_s} s: is the meter "
            "running, are the address, port and wPorts right, did the datagram get lost?"
        )


class UdpWrapperLink(_DatagramEndpoint):
    """A unicast client link over a connected UDP socket (an ``ApduLink``).

    The kernel delivers only datagrams from the peer. ``receive_apdu`` raises
    :class:`RemoteProtocolError` for a frame with other wPorts than this link's.
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        client_wport: int = DEFAULT_CLIENT_WPORT,
        server_wport: int = DEFAULT_SERVER_WPORT,
    ) -> None:
        self.peer: Address = to_address(sock.getpeername())
        super().__init__(sock, describe=f"{format_address(self.peer)} (UDP)")
        self.client_wport = client_wport
        self.server_wport = server_wport

    @classmethod
    def connect(
        cls,
        host: str,
        port: int = DLMS_PORT,
        client_wport: int = DEFAULT_CLIENT_WPORT,
        server_wport: int = DEFAULT_SERVER_WPORT,
        *,
        local_port: int = 0,
    ) -> UdpWrapperLink:
        family, sockaddr = _resolve(host, port, passive=False)
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if local_port:
                sock.bind(("", local_port))
            sock.connect(sockaddr)
            return cls(sock, client_wport=client_wport, server_wport=server_wport)
        except OSError as exc:
            sock.close()
            raise transport_error(exc, "connecting to", (host, port)) from exc

    def send_frame(self, frame: WrapperFrame) -> None:
        self._send(frame, None)

    def send_apdu(self, apdu: bytes) -> None:
        self._send(WrapperFrame(self.client_wport, self.server_wport, apdu), None)

    def receive_frame(self, timeout_s: float | None = None) -> WrapperFrame:
        return self._receive(timeout_s)[1]

    def receive_apdu(self, timeout_s: float | None = None) -> bytes:
        return apdu_from_server(self.receive_frame(timeout_s), self.client_wport, self.server_wport)


class UdpWrapperServer(_DatagramEndpoint):
    """Answers wrapper datagrams: ``handler(source, frame)`` returns the response APDU or None.

    The response goes to the source with the wPorts swapped. One thread serves the socket
    after :meth:`start`; a handler raising a :class:`DlmsError` costs that datagram only.
    :meth:`send_frame` sends unsolicited frames (pushes) from the server's port.
    ``SO_REUSEADDR`` is left off, so a second server on a taken port fails ("in use") instead
    of silently sharing it; ``reuse_port`` shares it on purpose.
    """

    def __init__(
        self,
        host: str,
        port: int,
        handler: DatagramHandler,
        *,
        reuse_port: bool = False,
    ) -> None:
        sock = _bound_socket(host, port, reuse_address=False, reuse_port=reuse_port)
        super().__init__(sock, describe=f"{format_address(to_address(sock.getsockname()))} (UDP)")
        self.address: Address = self.local
        self._handler = handler
        self._waker_r, self._waker_w = socket.socketpair()
        self._thread: threading.Thread | None = None

    def send_frame(self, frame: WrapperFrame, address: Address) -> None:
        self._send(frame, address)

    def start(self) -> None:
        if self._closed:
            raise TransportError("the server is closed; create a new one")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._serve, name=f"cosemcast-udp-{self.address[1]}", daemon=True
            )
            self._thread.start()
            _log.info("UDP wrapper server listening on %s", format_address(self.address))

    def serve_forever(self) -> None:
        self.start()
        if self._thread is not None:
            self._thread.join()

    def close(self, timeout_s: float = 5.0) -> None:
        if self._closed:
            return
        self._waker_w.send(b"\0")
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
        super().close()
        self._waker_r.close()
        self._waker_w.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._sock, selectors.EVENT_READ)
            selector.register(self._waker_r, selectors.EVENT_READ)
            while not self._closed:
                if any(key.fileobj is self._waker_r for key, _ in selector.select()):
                    return
                try:
                    source, frame = self._receive(0)
                except ResponseTimeout:
                    continue  # the readable datagram was malformed and dropped
                except TransportError as exc:
                    _log.warning("UDP server on %s: %s", format_address(self.address), exc)
                    continue
                try:
                    response = self._handler(source, frame)
                    if response is not None:
                        reply = reply_frame(frame, response)
                        self._send(reply, source)
                except DlmsError as exc:
                    _log.warning(
                        "datagram from %s dropped: %s: %s",
                        format_address(source),
                        type(exc).__name__,
                        exc,
                    )


class UdpPushSender(_DatagramEndpoint):
    """Sends pushes from ``source_wport`` to ``destination_wport`` at ``host:port``.

    A multicast ``host`` gets ``ttl`` hops, loopback delivery when ``loopback`` and, when
    ``interface`` (an IPv4 address) is given, that outgoing interface. A broadcast ``host``
    (``255.255.255.255`` or a directed one such as ``192.168.1.255``) needs
    ``broadcast=True``; the limited broadcast address turns it on by itself.
    """

    def __init__(
        self,
        host: str,
        port: int = DLMS_PORT,
        *,
        source_wport: int,
        destination_wport: int,
        ttl: int = 1,
        loopback: bool = True,
        interface: str | None = None,
        broadcast: bool = False,
    ) -> None:
        sock, self.destination = sender_socket(
            host, port, ttl=ttl, loopback=loopback, interface=interface, broadcast=broadcast
        )
        super().__init__(sock, describe=format_address(self.destination))
        self.source_wport = source_wport
        self.destination_wport = destination_wport

    def send_apdu(self, apdu: bytes) -> None:
        self._send(WrapperFrame(self.source_wport, self.destination_wport, apdu), self.destination)

    def send_frame(self, frame: WrapperFrame) -> None:
        self._send(frame, self.destination)


class UdpPushReceiver(_DatagramEndpoint):
    """Receives wrapper datagrams on ``port`` from any source; see :func:`receiver_socket`."""

    def __init__(
        self,
        port: int = DLMS_PORT,
        *,
        host: str = "",
        group: str | None = None,
        interface: str = "0.0.0.0",
        reuse_port: bool = False,
    ) -> None:
        sock = receiver_socket(
            port, host=host, group=group, interface=interface, reuse_port=reuse_port
        )
        describe = f"{format_address(to_address(sock.getsockname()))} (UDP)"
        if group is not None:
            describe = f"group {group} on {describe}"
        super().__init__(sock, describe=describe)
        self.group = group

    @property
    def address(self) -> Address:
        return self.local

    def receive(self, timeout_s: float | None = None) -> tuple[Address, WrapperFrame]:
        """The next well-formed frame and its source (:class:`ResponseTimeout` after timeout_s)."""
        return self._receive(timeout_s)


def sender_socket(
    host: str,
    port: int,
    *,
    ttl: int = 1,
    loopback: bool = True,
    interface: str | None = None,
    broadcast: bool = False,
) -> tuple[socket.socket, Address]:
    """An unbound UDP socket set up to send to ``host:port``, and the resolved destination."""
    family, sockaddr = _resolve(host, port, passive=False)
    destination = to_address(sockaddr)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        ip = ipaddress.ip_address(destination[0])
        if ip.is_multicast and ip.version == 4:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, int(loopback))
            if interface is not None:
                sock.setsockopt(
                    socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface)
                )
        elif ip.is_multicast:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ttl)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, int(loopback))
        if broadcast or destination[0] == "255.255.255.255":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    except OSError as exc:
        sock.close()
        raise transport_error(exc, "preparing to send to", destination) from exc
    return sock, destination


def receiver_socket(
    port: int,
    *,
    host: str = "",
    group: str | None = None,
    interface: str = "0.0.0.0",
    reuse_port: bool = False,
    reuse_address: bool = True,
) -> socket.socket:
    """A UDP socket bound to ``host:port`` (``""``: every address).

    ``reuse_address`` sets ``SO_REUSEADDR``, which on UDP lets several receivers bind the
    same port (each member socket of a multicast group gets its own copy).

    With ``group`` (an IPv4 multicast address) it joins the group on ``interface``
    (``IP_ADD_MEMBERSHIP``; ``0.0.0.0`` lets the kernel choose, ``127.0.0.1`` is loopback).
    ``reuse_port`` sets ``SO_REUSEPORT`` so several receivers (processes or shards) share
    the port.
    """
    sock = _bound_socket(host, port, reuse_address=reuse_address, reuse_port=reuse_port)
    if group is None:
        return sock
    try:
        membership = socket.inet_aton(group) + socket.inet_aton(interface)
        if not ipaddress.IPv4Address(group).is_multicast:
            raise ValueError(f"{group} is not an IPv4 multicast address (224.0.0.0/4)")
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    except OSError as exc:
        sock.close()
        raise transport_error(exc, f"joining group {group} on", interface) from exc
    except ValueError as exc:
        sock.close()
        raise TransportError(f"cannot join multicast group {group}: {exc}") from exc
    return sock


def _bound_socket(host: str, port: int, *, reuse_address: bool, reuse_port: bool) -> socket.socket:
    family, sockaddr = _resolve(host, port, passive=True)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if reuse_address:
            # On UDP this lets several sockets bind one port: what multicast receivers need.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            if not hasattr(socket, "SO_REUSEPORT"):
                raise TransportError("SO_REUSEPORT is not available on this platform")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(sockaddr)
    except OSError as exc:
        sock.close()
        raise transport_error(exc, "binding", (host, port)) from exc
    except TransportError:
        sock.close()
        raise
    return sock


def _resolve(host: str, port: int, *, passive: bool) -> tuple[socket.AddressFamily, Address]:
    try:
        infos = socket.getaddrinfo(
            host or None,
            port,
            type=socket.SOCK_DGRAM,
            flags=socket.AI_PASSIVE if passive else 0,
        )
    except OSError as exc:
        raise transport_error(exc, "resolving", (host, port)) from exc
    # Prefer IPv4 when the name has both: multicast and broadcast are IPv4 here.
    family, _, _, _, sockaddr = min(infos, key=lambda info: info[0] != socket.AF_INET)
    return family, to_address(sockaddr)
