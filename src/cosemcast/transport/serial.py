"""HDLC over a serial line through pyserial, with the IEC 62056-21 mode E sign-on (brief §2, §3).

The port is anything ``serial.serial_for_url`` opens: ``/dev/ttyUSB0`` (an optical probe),
``/dev/pts/N`` (a pseudo-terminal), ``loop://``, ``socket://host:port``, ``rfc2217://host:port``;
or any object with the few pyserial members of :class:`SerialPort` (:class:`FdPort` wraps a
file descriptor, such as the master side of a pseudo-terminal).

* :class:`HdlcSerialLink` is the client, an :class:`~cosemcast.transport.base.ApduLink`.
  :meth:`~HdlcSerialLink.connect` optionally signs on in mode E (300 Bd 7E1, request,
  identification, acknowledgement), switches the line to the agreed rate and 8N1 and opens the
  HDLC link (SNRM/UA); then ``send_apdu`` / ``receive_apdu`` carry APDUs and ``close`` sends
  DISC. Pushes (UI frames) wait in :meth:`~HdlcSerialLink.receive_push`.
* :class:`HdlcSerialServer` serves a port for a software meter: optional mode E, then HDLC for
  one or more logical devices; the handler turns each request APDU into a response APDU.
  After DISC or the inactivity timeout it returns to the mode E sign-on.
* :class:`AsyncHdlcSerialLink` runs a :class:`HdlcSerialLink` in worker threads for asyncio.

The sans-IO :class:`~cosemcast.link.hdlc_connection.HdlcConnection` and the mode E machines do
the protocol; this module reads bytes (a short read timeout gives the timer resolution),
passes them on with the monotonic clock, writes what they produce and changes the line
settings (:mod:`cosemcast.transport.serial_port`). pyserial and OS errors become
:class:`~cosemcast.errors.TransportError`.

While a capture runs (:mod:`cosemcast.capture.tap`), every send and receive is shown to it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Self

from cosemcast.capture import tap as _tap
from cosemcast.capture.serial_pcap import SerialDirection
from cosemcast.errors import (
    DecodeError,
    DlmsError,
    LocalProtocolError,
    RemoteProtocolError,
    ResponseTimeout,
    TransportError,
)
from cosemcast.link.hdlc import HdlcAddress, HdlcParameters
from cosemcast.link.hdlc_connection import (
    ApduReceived,
    Connected,
    Disconnected,
    DisconnectReason,
    Event,
    HdlcConnection,
    LinkParameters,
    LinkState,
    NeedData,
    Role,
)
from cosemcast.link.mode_e import (
    Identification,
    IdentificationReceived,
    ModeEClient,
    ModeEServer,
    RequestReceived,
    SwitchToHdlc,
)
from cosemcast.transport.base import AsyncClosing, Closing
from cosemcast.transport.serial_port import (
    READ_TIMEOUT_S,
    SIGN_ON_SETTINGS,
    FdPort,
    SerialPort,
    SerialSettings,
    apply_settings,
    drain,
    enter_sign_on,
    open_serial,
    read_some,
    write_all,
)

__all__ = [
    "MANAGEMENT_LOGICAL_DEVICE",
    "PUBLIC_CLIENT",
    "SIGN_ON_SETTINGS",
    "AsyncHdlcSerialLink",
    "FdPort",
    "HdlcPeer",
    "HdlcSerialLink",
    "HdlcSerialServer",
    "SerialHandler",
    "SerialPort",
    "SerialSettings",
    "apply_settings",
    "mode_e_sign_on",
    "open_serial",
]

_log = logging.getLogger(__name__)

PUBLIC_CLIENT: Final = HdlcAddress.client(16)
MANAGEMENT_LOGICAL_DEVICE: Final = HdlcAddress.server(1)

_CLIENT_SENDS: Final = SerialDirection.CLIENT_TO_SERVER
_CLIENT_HEARS: Final = SerialDirection.SERVER_TO_CLIENT
_SERVER_SENDS: Final = SerialDirection.SERVER_TO_CLIENT
_SERVER_HEARS: Final = SerialDirection.CLIENT_TO_SERVER


def _write(direction: SerialDirection, port: SerialPort, data: bytes) -> None:
    """:func:`write_all`, shown to the capture tap first (``capture/tap.py``)."""
    if data and (tap := _tap.active) is not None:
        tap.serial(direction, data, "write")
    write_all(port, data)


def _read(direction: SerialDirection, port: SerialPort) -> bytes:
    """:func:`read_some`, shown to the capture tap."""
    data = read_some(port)
    if data and (tap := _tap.active) is not None:
        tap.serial(direction, data, "read")
    return data


# --- the client ---------------------------------------------------------------------------------


def mode_e_sign_on(
    port: SerialPort,
    *,
    device_address: str = "",
    max_baud_rate: int | None = None,
    response_timeout_s: float = 2.0,
    max_retries: int = 2,
    handover_delay_s: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[Identification, int, bytes]:
    """Sign on in mode E and leave the port at the agreed rate, 8N1.

    Returns the identification, the baud rate and any bytes received after the
    identification. ``handover_delay_s`` is waited after the acknowledgement has been
    written, before the switch: the acknowledgement must leave the line at 300 Bd (0.2 s)
    and the meter needs a moment to switch.
    """
    encode = enter_sign_on(port)
    client = ModeEClient(
        device_address=device_address,
        max_baud_rate=max_baud_rate,
        response_timeout_s=response_timeout_s,
        max_retries=max_retries,
    )
    _write(_CLIENT_SENDS, port, encode(client.start(now=clock())))
    identification: Identification | None = None
    while True:
        data = _read(_CLIENT_HEARS, port)
        if data:
            client.receive_data(data, now=clock())
        while not isinstance(event := client.next_event(), NeedData):
            if isinstance(event, SwitchToHdlc):
                assert identification is not None
                _write(_CLIENT_SENDS, port, encode(client.data_to_send()))
                drain(port)
                time.sleep(handover_delay_s)
                apply_settings(port, SerialSettings(event.baud_rate))
                _log.info(
                    "mode E: %s %s, HDLC at %d Bd",
                    identification.manufacturer,
                    identification.identification,
                    event.baud_rate,
                )
                return identification, event.baud_rate, client.leftover()
            if isinstance(event, IdentificationReceived):
                identification = event.identification
        _write(_CLIENT_SENDS, port, encode(client.handle_timer(clock())))


class HdlcSerialLink(Closing):
    """A client's HDLC link over a serial port (an :class:`~cosemcast.transport.base.ApduLink`).

    With ``mode_e`` the line starts at 300 Bd 7E1 for the sign-on (``max_baud_rate`` caps the
    rate the meter offers; the identification is awaited ``sign_on_timeout_s``, the request
    repeated ``sign_on_retries`` times); without, it runs at ``baud_rate`` 8N1 from the start.
    ``parameters`` is the SNRM proposal (``None``: the defaults, 128 bytes and window 1);
    ``response_timeout_s`` and ``max_retries`` drive HDLC retransmissions. At low rates the
    response timeout must exceed the time a full frame takes on the line.
    """

    def __init__(
        self,
        port: SerialPort,
        *,
        client_address: HdlcAddress = PUBLIC_CLIENT,
        server_address: HdlcAddress = MANAGEMENT_LOGICAL_DEVICE,
        parameters: HdlcParameters | None = None,
        mode_e: bool = False,
        device_address: str = "",
        baud_rate: int = 9600,
        max_baud_rate: int | None = None,
        response_timeout_s: float = 3.0,
        max_retries: int = 3,
        handover_delay_s: float = 0.5,
        sign_on_timeout_s: float = 2.0,
        sign_on_retries: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.port = port
        self.mode_e = mode_e
        self.sign_on_timeout_s = sign_on_timeout_s
        self.sign_on_retries = sign_on_retries
        self.device_address = device_address
        self.baud_rate = baud_rate
        self.max_baud_rate = max_baud_rate
        self.handover_delay_s = handover_delay_s
        self.identification: Identification | None = None
        self._clock = clock
        self._connection = HdlcConnection(
            Role.CLIENT,
            client_address=client_address,
            server_address=server_address,
            parameters=parameters,
            response_timeout_s=response_timeout_s,
            max_retries=max_retries,
        )
        self._apdus: deque[bytes] = deque()
        self._pushes: deque[bytes] = deque()
        self._connected = False
        self._down: Disconnected | None = None
        self._closed = False
        port.timeout = READ_TIMEOUT_S

    @classmethod
    def open(cls, url: str, **kwargs: Any) -> Self:
        """Open ``url`` (see :func:`open_serial`); ``kwargs`` go to the constructor."""
        return cls(open_serial(url), **kwargs)

    @property
    def parameters(self) -> LinkParameters:
        """The negotiated HDLC parameters (after :meth:`connect`)."""
        return self._connection.parameters

    def connect(self, timeout_s: float | None = None) -> LinkParameters:
        """Sign on (mode E) and open the HDLC link; returns the negotiated parameters.

        Raises :class:`~cosemcast.errors.ResponseTimeout` when the meter does not answer and
        :class:`~cosemcast.errors.TransportError` when it refuses the link.
        """
        self._check_open()
        if self._connected:
            raise LocalProtocolError("the HDLC link is already connected")
        leftover = b""
        if self.mode_e:
            self.identification, self.baud_rate, leftover = mode_e_sign_on(
                self.port,
                device_address=self.device_address,
                max_baud_rate=self.max_baud_rate,
                response_timeout_s=self.sign_on_timeout_s,
                max_retries=self.sign_on_retries,
                handover_delay_s=self.handover_delay_s,
                clock=self._clock,
            )
        else:
            apply_settings(self.port, SerialSettings(self.baud_rate))
        self._down = None
        _write(_CLIENT_SENDS, self.port, self._connection.connect(now=self._clock()))
        if leftover:
            self._connection.receive_data(leftover, now=self._clock())
        deadline = None if timeout_s is None else self._clock() + timeout_s
        while not self._connected:
            self._raise_if_down("while connecting")
            self._pump(deadline, "the HDLC connection (UA)")
        return self._connection.parameters

    def send_apdu(self, apdu: bytes) -> None:
        self._check_open()
        self._raise_if_down("before sending")
        _write(_CLIENT_SENDS, self.port, self._connection.send_apdu(apdu, now=self._clock()))

    def receive_apdu(self, timeout_s: float | None = None) -> bytes:
        """The next APDU from I-frames; raises :class:`ResponseTimeout` after ``timeout_s``."""
        return self._receive(self._apdus, timeout_s, "an APDU")

    def receive_push(self, timeout_s: float | None = None) -> bytes:
        """The next APDU from UI frames (a push)."""
        return self._receive(self._pushes, timeout_s, "a push")

    def close(self) -> None:
        """Send DISC (waiting briefly for UA or DM) and close the port; idempotent."""
        if self._closed:
            return
        try:
            if self._connected and self._down is None:
                _write(_CLIENT_SENDS, self.port, self._connection.disconnect(now=self._clock()))
                deadline = self._clock() + self._connection.response_timeout_s
                while self._down is None and self._clock() < deadline:
                    self._pump(deadline, "UA to DISC", raise_timeout=False)
        except DlmsError as exc:
            _log.debug("closing the serial link: %s", exc)
        finally:
            self._closed = True
            self.port.close()

    def _receive(self, queue: deque[bytes], timeout_s: float | None, what: str) -> bytes:
        self._check_open()
        deadline = None if timeout_s is None else self._clock() + timeout_s
        while not queue:
            self._raise_if_down("while waiting")
            self._pump(deadline, what)
        return queue.popleft()

    def _pump(self, deadline: float | None, what: str, *, raise_timeout: bool = True) -> None:
        """One read (at most the port's read timeout), its events, the timers, the answers."""
        now = self._clock()
        if deadline is not None and now >= deadline and raise_timeout:
            raise ResponseTimeout(f"no {what} within the time allowed")
        data = _read(_CLIENT_HEARS, self.port)
        now = self._clock()
        conn = self._connection
        if data:
            conn.receive_data(data, now=now)
        self._drain_events()
        out = conn.data_to_send() + conn.handle_timer(now)
        self._drain_events()
        _write(_CLIENT_SENDS, self.port, out + conn.data_to_send())

    def _drain_events(self) -> None:
        while not isinstance(event := self._connection.next_event(), NeedData):
            self._on_event(event)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, Connected):
            self._connected = True
        elif isinstance(event, ApduReceived):
            (self._pushes if event.unnumbered else self._apdus).append(event.apdu)
        else:
            self._connected = False
            self._down = event

    def _raise_if_down(self, when: str) -> None:
        down = self._down
        if down is None or self._connected:
            return
        if down.reason is DisconnectReason.TIMEOUT:
            raise ResponseTimeout(f"the meter stopped answering {when}: {down.detail}")
        raise TransportError(f"HDLC link down {when}: {down.reason.value} {down.detail}".strip())

    def _check_open(self) -> None:
        if self._closed:
            raise TransportError("the serial link is closed")


class AsyncHdlcSerialLink(AsyncClosing):
    """:class:`HdlcSerialLink` for asyncio: each call runs in a worker thread, one at a time."""

    def __init__(self, link: HdlcSerialLink) -> None:
        self.link = link
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, url: str, **kwargs: Any) -> Self:
        return cls(await asyncio.to_thread(HdlcSerialLink.open, url, **kwargs))

    async def connect(self, timeout_s: float | None = None) -> LinkParameters:
        async with self._lock:
            return await asyncio.to_thread(self.link.connect, timeout_s)

    async def send_apdu(self, apdu: bytes) -> None:
        async with self._lock:
            await asyncio.to_thread(self.link.send_apdu, apdu)

    async def receive_apdu(self, timeout_s: float | None = None) -> bytes:
        async with self._lock:
            return await asyncio.to_thread(self.link.receive_apdu, timeout_s)

    async def close(self) -> None:
        async with self._lock:
            await asyncio.to_thread(self.link.close)


# --- the server ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HdlcPeer:
    """Who is on the link: the client SAP and the logical device it addressed."""

    client_address: HdlcAddress
    server_address: HdlcAddress
    parameters: LinkParameters


SerialHandler = Callable[[HdlcPeer, bytes], bytes | None]
"""``handler(peer, request_apdu)`` returns the response APDU or ``None``."""


class HdlcSerialServer(Closing):
    """Serve a serial port as a meter: optional mode E, then HDLC, one client at a time.

    ``server_addresses`` are the logical devices answered (an address without physical part
    accepts any physical address). ``mode_e`` is the identification sent in the sign-on; the
    meter then returns to the sign-on after each HDLC link, and when no link opens within
    ``inactivity_timeout_s`` (which also ends a silent link). ``on_connect`` and
    ``on_disconnect`` are called with the peer when a link opens and closes (per-link state,
    such as an association, belongs there). A handler raising a
    :class:`~cosemcast.errors.DlmsError` is logged and its request goes unanswered.
    """

    def __init__(
        self,
        port: SerialPort,
        handler: SerialHandler,
        *,
        server_addresses: Sequence[HdlcAddress] = (MANAGEMENT_LOGICAL_DEVICE,),
        parameters: HdlcParameters | None = None,
        mode_e: Identification | None = None,
        device_address: str = "",
        baud_rate: int = 9600,
        inactivity_timeout_s: float | None = 120.0,
        on_connect: Callable[[HdlcPeer], None] | None = None,
        on_disconnect: Callable[[HdlcPeer], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.port = port
        self.handler = handler
        self.mode_e = mode_e
        self.device_address = device_address
        self.baud_rate = baud_rate
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self.inactivity_timeout_s = inactivity_timeout_s
        self._clock = clock
        self._connections = [
            HdlcConnection(
                Role.SERVER,
                client_address=PUBLIC_CLIENT,
                server_address=address,
                parameters=parameters,
                inactivity_timeout_s=inactivity_timeout_s,
            )
            for address in server_addresses
        ]
        self._lock = threading.Lock()  # the connections and port writes (pushes)
        self._stop = threading.Event()
        self._idle = threading.Event()  # set while serve_forever is not running
        self._idle.set()
        self._thread: threading.Thread | None = None
        self._closed = False
        port.timeout = READ_TIMEOUT_S

    @classmethod
    def open(cls, url: str, handler: SerialHandler, **kwargs: Any) -> Self:
        return cls(open_serial(url), handler, **kwargs)

    def start(self) -> None:
        """Serve in a background thread until :meth:`close`."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self.serve_forever, name="cosemcast-serial-server", daemon=True
            )
            self._thread.start()

    def serve_forever(self) -> None:
        """Serve until :meth:`close` (from another thread) is called."""
        self._idle.clear()
        try:
            while not self._stop.is_set():
                leftover = b""
                if self.mode_e is not None:
                    signed_on = self._sign_on()
                    if signed_on is None:
                        return
                    leftover = signed_on
                else:
                    apply_settings(self.port, SerialSettings(self.baud_rate))
                self._serve_hdlc(leftover)
        except TransportError:
            if not self._stop.is_set():
                raise
        finally:
            self._idle.set()

    def send_push(self, apdu: bytes) -> None:
        """Send ``apdu`` in UI frames to the client of the first logical device."""
        with self._lock:
            _write(_SERVER_SENDS, self.port, self._connections[0].send_ui(apdu, now=self._clock()))

    def close(self, timeout_s: float = 5.0) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._idle.wait(timeout_s)  # the loop notices within one read timeout
            if self._thread is not None:
                self._thread.join(timeout_s)
        self.port.close()

    def _sign_on(self) -> bytes | None:
        """Run the meter side of mode E; returns the bytes after the acknowledgement."""
        assert self.mode_e is not None
        encode = enter_sign_on(self.port)
        meter = ModeEServer(self.mode_e, device_address=self.device_address)
        while not self._stop.is_set():
            data = _read(_SERVER_HEARS, self.port)
            now = self._clock()
            if data:
                meter.receive_data(data, now=now)
            meter.handle_timer(now)
            try:
                while not isinstance(event := meter.next_event(), NeedData):
                    if isinstance(event, RequestReceived):
                        _write(_SERVER_SENDS, self.port, encode(meter.data_to_send()))
                    elif isinstance(event, SwitchToHdlc):
                        apply_settings(self.port, SerialSettings(event.baud_rate))
                        return meter.leftover()
            except (DecodeError, RemoteProtocolError) as exc:
                _log.info("mode E sign-on refused: %s", exc)
        return None

    def _serve_hdlc(self, leftover: bytes) -> None:
        """Serve HDLC until the server stops or, with mode E, until no link is up any more
        (after DISC, or when none opens within the inactivity timeout)."""
        heard_at = self._clock()
        if leftover:
            self._feed(leftover)
        while not self._stop.is_set():
            data = _read(_SERVER_HEARS, self.port)
            ended = False
            if data:
                heard_at = self._clock()
                ended = self._feed(data)
            with self._lock:
                now = self._clock()
                for conn in self._connections:
                    out = conn.handle_timer(now)
                    ended |= self._events(conn)
                    _write(_SERVER_SENDS, self.port, out + conn.data_to_send())
            if self.mode_e is None or not self._all_down():
                continue
            silent = self.inactivity_timeout_s is not None and (
                now - heard_at > self.inactivity_timeout_s
            )
            if ended or silent:
                return

    def _feed(self, data: bytes) -> bool:
        """Pass bytes to every logical device; True when a link went down."""
        ended = False
        with self._lock:
            now = self._clock()
            for conn in self._connections:
                conn.receive_data(data, now=now)
                ended |= self._events(conn)
                _write(_SERVER_SENDS, self.port, conn.data_to_send())
        return ended

    def _all_down(self) -> bool:
        return all(c.state is LinkState.DISCONNECTED for c in self._connections)

    def _events(self, conn: HdlcConnection) -> bool:
        """Handle ``conn``'s events; True if its link went down."""
        ended = False
        while not isinstance(event := conn.next_event(), NeedData):
            peer = HdlcPeer(conn.client_address, conn.server_address, conn.parameters)
            if isinstance(event, Connected):
                if self.on_connect is not None:
                    self.on_connect(peer)
            elif isinstance(event, Disconnected):
                ended = True
                _log.info("HDLC link with %s closed: %s", peer.client_address, event.reason.value)
                if self.on_disconnect is not None:
                    self.on_disconnect(peer)
            else:
                self._on_apdu(conn, peer, event)
        return ended

    def _on_apdu(self, conn: HdlcConnection, peer: HdlcPeer, event: ApduReceived) -> None:
        try:
            response = self.handler(peer, event.apdu)
        except DlmsError as exc:
            _log.warning("request from %s not answered: %s", peer.client_address, exc)
            return
        if response is not None and not event.unnumbered:
            _write(_SERVER_SENDS, self.port, conn.send_apdu(response, now=self._clock()))
