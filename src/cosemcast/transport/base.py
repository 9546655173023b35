"""What every transport offers the layers above, and how IO failures become cosemcast errors.

An :class:`ApduLink` moves whole APDUs between two parties: the client, the software meter and
the head-end drive it without knowing whether TCP, UDP (IEC 62056-47 wrapper, brief §1) or a
serial line (HDLC, brief §2) carries them. :class:`AsyncApduLink` is the same for asyncio.
Framing stays in the sans-IO ``cosemcast.link`` codecs; a link only feeds them bytes.

Errors (STYLE.md §4): every ``OSError`` is translated by :func:`transport_error` into a
:class:`~cosemcast.errors.TransportError` whose message says what failed and what to check;
timeouts become :class:`~cosemcast.errors.ResponseTimeout`. Messages name addresses, ports,
wPorts and lengths only, never payload bytes (an APDU may carry a wrapped key).
"""

from __future__ import annotations

import errno
import math
import select
import socket
from types import TracebackType
from typing import Any, Final, Protocol, Self, TypeAlias

from cosemcast.errors import ResponseTimeout, TransportError

__all__ = [
    "DEFAULT_CLIENT_WPORT",
    "DEFAULT_SERVER_WPORT",
    "Address",
    "ApduLink",
    "AsyncApduLink",
    "AsyncClosing",
    "Closing",
    "ConnectionClosed",
    "format_address",
    "to_address",
    "transport_error",
    "wait_readable",
]

# wPorts carry the HDLC SAP numbers (brief §1): public client 16 (0x10), management logical
# device 1.
DEFAULT_CLIENT_WPORT: Final = 0x10
DEFAULT_SERVER_WPORT: Final = 0x01

Address: TypeAlias = tuple[str, int]


class Closing:
    """Base of links, servers and sockets: ``with`` closes them on exit."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClosing:
    """:class:`Closing` for asyncio: ``async with`` closes on exit."""

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class ConnectionClosed(TransportError):
    """The peer closed the stream cleanly between two frames (the normal end of a connection)."""


class ApduLink(Protocol):
    """A blocking, bidirectional carrier of whole APDUs between two fixed parties.

    ``receive_apdu(timeout_s)`` waits at most ``timeout_s`` seconds for one complete APDU
    (``None``: without limit) and raises :class:`~cosemcast.errors.ResponseTimeout` when none
    arrived; IO failures raise :class:`~cosemcast.errors.TransportError`. ``close()`` is
    idempotent; the context manager closes on exit.
    """

    def send_apdu(self, apdu: bytes) -> None: ...

    def receive_apdu(self, timeout_s: float | None = None) -> bytes: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class AsyncApduLink(Protocol):
    """:class:`ApduLink` for asyncio: the same contract with coroutines."""

    async def send_apdu(self, apdu: bytes) -> None: ...

    async def receive_apdu(self, timeout_s: float | None = None) -> bytes: ...

    async def close(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def format_address(address: tuple[object, ...] | str) -> str:
    """``host:port`` (``[v6]:port``) for messages and logs."""
    if isinstance(address, str):
        return address
    host, port = str(address[0]), address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def to_address(sockaddr: Any) -> Address:
    """``(host, port)`` from a socket address (IPv6 ones carry flow info and scope too)."""
    return (str(sockaddr[0]), int(sockaddr[1]))


def transport_error(exc: OSError, action: str, address: tuple[object, ...] | str) -> TransportError:
    """Translate ``exc``, raised while doing ``action`` (e.g. "connecting to") ``address``.

    Returns the error to raise ``from exc``; timeouts give :class:`ResponseTimeout`.
    """
    where = format_address(address)
    if isinstance(exc, socket.gaierror):
        return TransportError(f"cannot resolve {where}: check the host name ({exc.strerror})")
    if isinstance(exc, TimeoutError):
        return ResponseTimeout(
            f"timed out {action} {where}: check the address, the port and any firewall"
        )
    if isinstance(exc, ConnectionRefusedError):
        return TransportError(
            f"connection refused by {where}: is the meter running and listening on that port?"
        )
    if isinstance(exc, ConnectionResetError):
        return TransportError(
            f"connection reset by {where}: the peer dropped the connection (wrong wPort, "
            "too many clients or a crash); reconnect"
        )
    if isinstance(exc, BrokenPipeError):
        return TransportError(f"the connection to {where} is closed; reconnect")
    hints = {
        errno.EADDRINUSE: "the address is in use: stop the other server or choose another port"
        " (or enable reuse_port on every socket sharing it)",
        errno.EADDRNOTAVAIL: "no local interface has that address",
        errno.EACCES: "permission denied: ports below 1024 need privileges, and broadcast"
        " destinations need broadcast=True",
        errno.EMSGSIZE: "the datagram is too large for UDP (at most 65507 bytes over IPv4)",
        errno.ENETUNREACH: "the network is unreachable: check the address and the routes",
        errno.EHOSTUNREACH: "the host is unreachable: check the address and the routes",
        errno.ENODEV: "no such interface for the multicast group",
    }
    hint = hints.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    return TransportError(f"{action} {where} failed: {hint}")


def wait_readable(sock: socket.socket, timeout_s: float | None) -> bool:
    """Wait until ``sock`` has data, end of stream or an error to report (``False``: timed out).

    Waiting here instead of in a socket timeout keeps the socket's own timeout for sends, so
    one thread may send while another waits to receive.
    """
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLPRI)
        wait_ms = None if timeout_s is None else max(0, math.ceil(timeout_s * 1000))
        return bool(poller.poll(wait_ms))
    readable, _, _ = select.select([sock], [], [], timeout_s)
    return bool(readable)
