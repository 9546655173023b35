"""Serving the software meter over TCP, UDP and serial lines, and ``cosemcast meter serve``.

Theory of operation. Each transport server hands whole request APDUs to a handler that finds
(or opens) the :class:`~cosemcast.meter.meter.MeterSession` of that link and client SAP and
returns :meth:`~cosemcast.meter.meter.SoftwareMeter.handle`'s answer:

* TCP (IEC 62056-47 wrapper, brief §1): one session per connection and (client wPort,
  logical-device wPort) pair, closed with the connection; pushes can go back over it;
* UDP: one session per peer address and wPort pair, the 256 most recent kept;
* serial (HDLC, brief §2, optionally behind the mode E sign-on, brief §3): one session per
  HDLC link; the identification is ``/`` + the first logical device's manufacturer id + the
  baud-rate character of ``[serial] baud_rate`` + ``\\2`` + ``[serial] identification``.

:func:`run_serve` is the command: logging to stderr (text or JSON lines; never keys), the
servers, a timer that advances the meter with the real or accelerated clock, and a clean stop
on Ctrl-C (SIGINT) or SIGTERM.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import signal
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Final

from cosemcast.errors import ConfigurationError
from cosemcast.link.wrapper import WrapperFrame
from cosemcast.meter.meter import MeterSession, SoftwareMeter, TimeSource, utc_now
from cosemcast.transport.base import Address, format_address
from cosemcast.transport.serial import HdlcPeer, HdlcSerialServer
from cosemcast.transport.tcp import TcpServerConnection, TcpWrapperServer
from cosemcast.transport.udp import UdpWrapperServer

__all__ = [
    "ServeOptions",
    "accelerated_clock",
    "parse_host_port",
    "run_serve",
    "serve_serial",
    "serve_tcp",
    "serve_udp",
]

_log = logging.getLogger("cosemcast.meter")
_UDP_SESSIONS: Final = 256


def serve_tcp(meter: SoftwareMeter, host: str, port: int) -> TcpWrapperServer:
    """Serve ``meter`` on TCP ``host:port`` (``port`` 0: any free port; see ``.address``)."""
    links: dict[TcpServerConnection, dict[tuple[int, int], MeterSession]] = {}
    lock = threading.Lock()

    def session_for(conn: TcpServerConnection, client: int, device: int) -> MeterSession:
        with lock:
            sessions = links.setdefault(conn, {})
            session = sessions.get((client, device))
        if session is not None:
            return session

        def push(apdu: bytes) -> None:
            conn.send_apdu(apdu, source_wport=device, destination_wport=client)

        session = meter.open_session(
            device, client, link=f"TCP {format_address(conn.peer)}", push=push
        )
        with lock:
            links.setdefault(conn, {})[(client, device)] = session
        return session

    def handler(conn: TcpServerConnection, frame: WrapperFrame) -> bytes | None:
        client, device = frame.source_wport, frame.destination_wport
        answers = meter.handle(session_for(conn, client, device), frame.apdu)
        for extra in answers[:-1]:
            conn.send_apdu(extra, source_wport=device, destination_wport=client)
        return answers[-1] if answers else None

    def on_disconnect(conn: TcpServerConnection) -> None:
        with lock:
            sessions = links.pop(conn, {})
        for session in sessions.values():
            meter.close_session(session)

    server = TcpWrapperServer(host, port, handler, on_disconnect=on_disconnect)
    server.start()
    meter.servers.append(server)
    return server


def serve_udp(meter: SoftwareMeter, host: str, port: int) -> UdpWrapperServer:
    """Serve ``meter`` on UDP ``host:port``."""
    sessions: OrderedDict[tuple[Address, int, int], MeterSession] = OrderedDict()
    holder: list[UdpWrapperServer] = []

    def handler(source: Address, frame: WrapperFrame) -> bytes | None:
        client, device = frame.source_wport, frame.destination_wport
        key = (source, client, device)
        session = sessions.get(key)
        if session is None:

            def push(apdu: bytes) -> None:
                holder[0].send_frame(WrapperFrame(device, client, apdu), source)

            session = meter.open_session(
                device, client, link=f"UDP {format_address(source)}", push=push
            )
            sessions[key] = session
            while len(sessions) > _UDP_SESSIONS:
                _, oldest = sessions.popitem(last=False)
                meter.close_session(oldest)
        sessions.move_to_end(key)
        answers = meter.handle(session, frame.apdu)
        for extra in answers[:-1]:
            holder[0].send_frame(WrapperFrame(device, client, extra), source)
        return answers[-1] if answers else None

    server = UdpWrapperServer(host, port, handler)
    holder.append(server)
    server.start()
    meter.servers.append(server)
    return server


def _baud_character(rate: int) -> str:
    from cosemcast.link.mode_e import BAUD_RATES

    for character, value in BAUD_RATES.items():
        if value == rate:
            return character
    rates = ", ".join(str(r) for r in BAUD_RATES.values())
    raise ConfigurationError(f"[serial] baud_rate {rate} cannot be offered in mode E ({rates})")


def serve_serial(meter: SoftwareMeter, port: Any, *, mode_e: bool = False) -> HdlcSerialServer:
    """Serve ``meter`` with HDLC on ``port`` (a pyserial URL or an opened port object)."""
    from cosemcast.link.hdlc import HdlcAddress
    from cosemcast.link.mode_e import Identification

    settings = meter.config.serial
    first = meter.config.devices[0]
    identification = (
        Identification(
            first.manufacturer_id, _baud_character(settings.baud_rate), settings.identification
        )
        if mode_e
        else None
    )
    addresses = [HdlcAddress.server(sap) for sap in meter.devices if sap <= 0x7F]
    sessions: dict[tuple[int, int], MeterSession] = {}

    def key_of(peer: HdlcPeer) -> tuple[int, int]:
        return peer.client_address.logical, peer.server_address.logical

    def handler(peer: HdlcPeer, apdu: bytes) -> bytes | None:
        client, device = key_of(peer)
        session = sessions.get((client, device))
        if session is None:
            session = meter.open_session(device, client, link=f"HDLC on {_port_name(port)}")
            sessions[(client, device)] = session
        answers = meter.handle(session, apdu)
        if len(answers) > 1:
            _log.warning("HDLC: %d answers to one request; only the first is sent", len(answers))
        return answers[0] if answers else None

    def on_disconnect(peer: HdlcPeer) -> None:
        session = sessions.pop(key_of(peer), None)
        if session is not None:
            meter.close_session(session)

    options: dict[str, Any] = {
        "server_addresses": addresses,
        "mode_e": identification,
        "baud_rate": settings.baud_rate,
        "on_disconnect": on_disconnect,
    }
    if isinstance(port, str):
        server = HdlcSerialServer.open(port, handler, **options)
    else:
        server = HdlcSerialServer(port, handler, **options)
    server.start()
    meter.servers.append(server)
    return server


def _port_name(port: Any) -> str:
    return port if isinstance(port, str) else type(port).__name__


# --- the command ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """What ``cosemcast meter serve`` was asked to do."""

    config: Path | None = None
    state: Path = Path("meter.sqlite3")
    tcp: tuple[str, int] | None = None
    udp: tuple[str, int] | None = None
    serial: str | None = None
    mode_e: bool = False
    speed: float = 1.0
    json_log: bool = False
    tick_s: float = 0.5


def parse_host_port(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or ``:PORT``; raises ValueError."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host.strip("[]") or default_host, int(port)


def accelerated_clock(speed: float, origin: dt.datetime | None = None) -> TimeSource:
    """A clock running ``speed`` times faster than real time, from ``origin`` (or now)."""
    start_real = time.monotonic()
    start = origin if origin is not None else utc_now()

    def now() -> dt.datetime:
        return start + dt.timedelta(seconds=(time.monotonic() - start_real) * speed)

    return now


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            }
        )


def configure_logging(*, json_lines: bool) -> logging.Handler:
    """Log cosemcast's INFO lines to stderr; returns the handler (to remove it later)."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("cosemcast")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


def run_serve(
    options: ServeOptions, *, ready: Callable[[SoftwareMeter], None] | None = None
) -> int:
    """Run the meter until SIGINT/SIGTERM; returns the exit status."""
    handler = configure_logging(json_lines=options.json_log)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        meter = SoftwareMeter.from_config(options.config, options.state)
        try:
            _start(meter, options)
            if ready is not None:
                ready(meter)
            meter.run(stop, options.tick_s)
        finally:
            shared = meter.shared
            meter.close()
            if shared is not None:
                _log.info("shared payload: %s", json.dumps(shared.stats(), sort_keys=True))
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        logging.getLogger("cosemcast").removeHandler(handler)
    return 0


def _start(meter: SoftwareMeter, options: ServeOptions) -> None:
    if options.speed != 1.0:
        meter.clock = accelerated_clock(options.speed, max(meter.source_time, utc_now()))
        _log.info("time runs %g times faster than real time", options.speed)
    elif meter.source_time > utc_now() + dt.timedelta(seconds=5):
        _log.warning(
            "the state's time %s is ahead of real time (an accelerated run?): the meter's time "
            "stands still until then; use another --state file to start afresh",
            meter.source_time.isoformat(timespec="seconds"),
        )
    meter.advance_to()
    tcp = options.tcp
    if tcp is None and options.udp is None and options.serial is None:
        tcp = ("127.0.0.1", 4059)
    if tcp is not None:
        server = meter.serve_tcp(*tcp)
        _log.info("serving TCP on %s", format_address(server.address))
    if options.udp is not None:
        udp = meter.serve_udp(*options.udp)
        _log.info("serving UDP on %s", format_address(udp.address))
    if meter.shared is not None and options.udp is None:
        _log.warning(
            "shared payload without --udp: head-ends acknowledge UDP C2s to the meter's UDP "
            "port, so they will be re-sent until their key expires"
        )
    if meter.schedule is not None and meter.schedule.config.group is not None:
        joined = meter.schedule.listen()
        _log.info("group commands on %s", format_address(joined))
    if options.serial is not None:
        meter.serve_serial(options.serial, mode_e=options.mode_e)
        mode = " with the mode E sign-on" if options.mode_e else ""
        _log.info("serving HDLC on %s%s", options.serial, mode)
    _log.info("meter ready; Ctrl-C stops it")
