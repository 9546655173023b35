"""The capture tap: write the process's own DLMS traffic to pcap files while it runs.

Theory of operation. :func:`start_capture` installs one process-wide :class:`CaptureTap` in
:data:`active`; the transports (``transport/tcp.py``, ``udp.py``, ``serial.py``, ``aio.py``)
test ``tap.active is not None`` at each send and receive (a module attribute read: nothing
else costs anything while no capture runs) and report what they see:

* **TCP**: the bytes sent or received on a connection, with its two endpoints. The tap keeps
  one stream per direction and synthesises Ethernet/IPv4 (or IPv6) TCP segments with
  consistent sequence and acknowledgement numbers: a SYN, SYN-ACK, ACK handshake when the
  connection is opened under capture, PSH|ACK data segments, and a FIN|ACK from each side
  that closes. The initial sequence number is a CRC-32 of the endpoints (deterministic).
* **UDP**: each datagram with its source and destination (a multicast group, or the
  address a socket is bound to). A wildcard address (``0.0.0.0``) is replaced by the local
  address the kernel would send from (asked once per destination with an unsent UDP
  ``connect``).
* **serial**: the bytes written and read on the line, with the direction (client to server
  or back). The tap cuts each direction into HDLC frames (flag, format type, length) and
  writes one record per frame, other bytes (the mode E sign-on) in records of their own:
  the link type 147 format of :mod:`cosemcast.capture.serial_pcap`.

**Both ends in one process** (a test serving a meter and reading it, a meter pushing to a
head-end): each transmission is reported twice, by the sender and by the receiver. TCP and
serial streams are de-duplicated by stream offset: each reporting side counts its own bytes
per direction and only bytes past what was already written are written. The sender reports
*before* it sends, so the receiver's report of a datagram always comes second: a received
datagram equal to one sent from the same source port within :data:`UDP_ECHO_WINDOW_S` is
not written again (every member of a multicast group receives the one datagram sent). The
offsets count from when the tap first hears of a stream: start capturing before the traffic.
One serial line per tap.

**One link type per pcap file**: IP traffic goes to ``path`` (Ethernet, link type 1) and
serial traffic to ``serial_path`` (link type 147); either may be ``None`` (that traffic is not
captured). Both files are created with their header at start, so an idle capture is still a
valid file. Records are flushed as written (a killed process leaves a readable file).
Timestamps come from ``clock`` (default :func:`time.time`) and never go backwards.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from cosemcast.capture.pcap import PcapWriter
from cosemcast.capture.serial_pcap import SerialDirection, SerialPcapWriter

__all__ = [
    "UDP_ECHO_WINDOW_S",
    "CaptureTap",
    "active",
    "capture_paths",
    "capturing",
    "start_capture",
    "stop_capture",
]

UDP_ECHO_WINDOW_S: Final = 5.0

Endpoint = tuple[str, int]
Role = Literal["send", "receive"]

_SYN: Final = 0x02
_FIN: Final = 0x01
_ACK: Final = 0x10
_PSH: Final = 0x08
_FLAG: Final = 0x7E
_MAX_SEGMENT: Final = 65000
_MAX_ECHOES: Final = 4096

active: CaptureTap | None = None
_install_lock = threading.Lock()


@dataclass(slots=True)
class _Direction:
    """One direction of a TCP connection or of the serial line."""

    isn: int = 0
    written: int = 0
    fin: bool = False
    counted: dict[str, int] = field(default_factory=dict)  # per reporting role

    def fresh(self, role: str, data: bytes) -> bytes:
        """The part of ``data`` not written yet (``role``'s offset of it counted)."""
        start = self.counted.get(role, 0)
        end = start + len(data)
        self.counted[role] = end
        if end <= self.written:
            return b""
        new = data[max(0, self.written - start) :]
        self.written = end
        return new


def _normal(host: str) -> str:
    if host.startswith("::ffff:") and "." in host:
        return host[7:]
    return host.split("%", 1)[0]


class CaptureTap:
    """Writes what the transports report; thread-safe. Use :func:`start_capture`."""

    def __init__(
        self,
        path: str | Path | None,
        *,
        serial_path: str | Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if path is None and serial_path is None:
            raise ValueError("give a pcap path for IP traffic, for serial traffic, or both")
        self.path = None if path is None else Path(path)
        self.serial_path = None if serial_path is None else Path(serial_path)
        self._clock = clock
        self._lock = threading.Lock()
        self._ip = None if self.path is None else PcapWriter(self.path)
        self._serial: SerialPcapWriter | None = None
        if self.serial_path is not None:
            try:
                self._serial = SerialPcapWriter(self.serial_path)
            except OSError:
                if self._ip is not None:
                    self._ip.close()
                raise
        self._last = 0.0
        self._tcp: dict[tuple[Endpoint, Endpoint], _Direction] = {}
        self._echoes: OrderedDict[tuple[int, bytes], float] = OrderedDict()
        self._sources: dict[str, str] = {}
        self._line = {d: _Direction() for d in SerialDirection}
        self._pending = {d: bytearray() for d in SerialDirection}
        self._closed = False
        self.packets = 0

    @property
    def closed(self) -> bool:
        return self._closed

    # --- TCP ------------------------------------------------------------------------------------

    def tcp_open(self, client: Endpoint, server: Endpoint) -> None:
        """A connection from ``client`` to ``server`` was set up: SYN, SYN-ACK, ACK (once)."""
        client, server = self._endpoint(client), self._endpoint(server)
        with self._lock:
            if self._ip is None or self._closed or (client, server) in self._tcp:
                return
            up, down = self._stream(client, server), self._stream(server, client)
            now = self._now()
            self._segment(now, client, server, up.isn - 1, 0, _SYN)
            self._segment(now, server, client, down.isn - 1, up.isn, _SYN | _ACK)
            self._segment(now, client, server, up.isn, down.isn, _ACK)

    def tcp_data(self, src: Endpoint, dst: Endpoint, data: bytes, role: Role) -> None:
        """``data`` went from ``src`` to ``dst`` on a connection, reported by ``role``."""
        if not data:
            return
        src, dst = self._endpoint(src), self._endpoint(dst)
        with self._lock:
            if self._ip is None or self._closed:
                return
            stream = self._stream(src, dst)
            before = stream.written
            new = stream.fresh(role, bytes(data))
            if not new:
                return
            back = self._stream(dst, src)
            now = self._now()
            for offset in range(0, len(new), _MAX_SEGMENT):
                chunk = new[offset : offset + _MAX_SEGMENT]
                seq = stream.isn + before + offset
                self._segment(now, src, dst, seq, _ack(back), _PSH | _ACK, chunk)

    def tcp_close(self, src: Endpoint, dst: Endpoint) -> None:
        """``src`` closed its side of the connection to ``dst``: FIN|ACK (once per side)."""
        src, dst = self._endpoint(src), self._endpoint(dst)
        with self._lock:
            if self._ip is None or self._closed:
                return
            stream = self._stream(src, dst)
            if stream.fin:
                return
            back = self._stream(dst, src)
            self._segment(
                self._now(), src, dst, stream.isn + stream.written, _ack(back), _FIN | _ACK
            )
            stream.fin = True

    # --- UDP ------------------------------------------------------------------------------------

    def udp(self, src: Endpoint, dst: Endpoint, data: bytes, role: Role) -> None:
        """A datagram from ``src`` to ``dst``, reported by its sender or by a receiver."""
        with self._lock:
            if self._ip is None or self._closed:
                return
            src = self._endpoint(src, toward=dst[0])
            dst = self._endpoint(dst, toward=src[0])
            now = self._now()
            key = (src[1], bytes(data))
            if role == "receive":
                seen = self._echoes.get(key)
                if seen is not None and now - seen <= UDP_ECHO_WINDOW_S:
                    return
            else:
                self._echoes[key] = now
                self._echoes.move_to_end(key)
                while len(self._echoes) > _MAX_ECHOES:
                    self._echoes.popitem(last=False)
            self._ip.write_udp(now, src[0], src[1], dst[0], dst[1], bytes(data))
            self._written_ip()

    # --- serial ---------------------------------------------------------------------------------

    def serial(
        self, direction: SerialDirection, data: bytes, role: Literal["write", "read"]
    ) -> None:
        """Bytes on the serial line in ``direction``, reported by the writer or the reader."""
        if not data:
            return
        with self._lock:
            if self._serial is None or self._closed:
                return
            new = self._line[direction].fresh(role, bytes(data))
            if not new:
                return
            pending = self._pending[direction]
            pending += new
            now = self._now()
            for record in _cut_records(pending):
                self._serial.write(now, direction, record)
                self.packets += 1
            self._serial.flush()

    # --- life cycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Write what is left of partial serial frames and close the files; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._serial is not None:
                now = self._now()
                for direction, pending in self._pending.items():
                    if pending:
                        self._serial.write(now, direction, bytes(pending))
                        pending.clear()
                self._serial.close()
            if self._ip is not None:
                self._ip.close()

    def __enter__(self) -> CaptureTap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- helpers (called with the lock held) ----------------------------------------------------

    def _now(self) -> float:
        self._last = max(self._last, self._clock())
        return self._last

    def _stream(self, src: Endpoint, dst: Endpoint) -> _Direction:
        stream = self._tcp.get((src, dst))
        if stream is None:
            isn = zlib.crc32(f"{src[0]}:{src[1]}>{dst[0]}:{dst[1]}".encode()) | 1
            stream = self._tcp[(src, dst)] = _Direction(isn=isn)
        return stream

    def _segment(
        self,
        now: float,
        src: Endpoint,
        dst: Endpoint,
        seq: int,
        ack: int,
        flags: int,
        payload: bytes = b"",
    ) -> None:
        assert self._ip is not None
        self._ip.write_tcp_segment(
            now, src[0], src[1], dst[0], dst[1], seq=seq, ack=ack, flags=flags, payload=payload
        )
        self._written_ip()

    def _written_ip(self) -> None:
        assert self._ip is not None
        self._ip.flush()
        self.packets += 1

    def _endpoint(self, endpoint: Endpoint, *, toward: str | None = None) -> Endpoint:
        host = _normal(str(endpoint[0]))
        if host in ("", "0.0.0.0", "::"):
            host = self._source_for(_normal(toward) if toward else "127.0.0.1", host)
        return host, int(endpoint[1])

    def _source_for(self, destination: str, wildcard: str) -> str:
        """The local address the kernel sends from toward ``destination`` (cached)."""
        known = self._sources.get(destination)
        if known is not None:
            return known
        try:
            ip = ipaddress.ip_address(destination)
        except ValueError:
            return "::1" if wildcard == "::" else "127.0.0.1"
        if ip.is_loopback or ip.is_unspecified:
            found = "::1" if ip.version == 6 else "127.0.0.1"
        else:
            family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            try:
                with socket.socket(family, socket.SOCK_DGRAM) as probe:
                    probe.connect((destination, 9))
                    found = _normal(str(probe.getsockname()[0]))
            except OSError:
                found = "::1" if ip.version == 6 else "127.0.0.1"
        self._sources[destination] = found
        return found


def _ack(back: _Direction) -> int:
    return back.isn + back.written + (1 if back.fin else 0)


def _cut_records(pending: bytearray) -> list[bytes]:
    """Whole HDLC frames (flag to flag) and runs of other bytes; leaves a partial frame."""
    records: list[bytes] = []
    while pending:
        if pending[0] != _FLAG:
            end = pending.find(_FLAG)
            end = len(pending) if end < 0 else end
            records.append(bytes(pending[:end]))
            del pending[:end]
            continue
        if len(pending) < 3:
            break
        if pending[1] == _FLAG:  # an idle or shared flag
            del pending[0]
            continue
        if pending[1] & 0xF0 != 0xA0:  # not a frame format type 3: pass the bytes on
            end = pending.find(_FLAG, 1)
            end = len(pending) if end < 0 else end
            records.append(bytes(pending[:end]))
            del pending[:end]
            continue
        total = (((pending[1] & 0x07) << 8) | pending[2]) + 2
        if len(pending) < total:
            break
        records.append(bytes(pending[:total]))
        del pending[:total]
    return records


def start_capture(
    path: str | Path | None,
    *,
    serial_path: str | Path | None = None,
    clock: Callable[[], float] = time.time,
) -> CaptureTap:
    """Start capturing this process's traffic (IP to ``path``, serial to ``serial_path``).

    Raises :class:`RuntimeError` when a capture is already running, :class:`OSError` when a
    file cannot be created.
    """
    global active
    with _install_lock:
        if active is not None:
            raise RuntimeError(f"a capture to {active.path or active.serial_path} is running")
        tap = CaptureTap(path, serial_path=serial_path, clock=clock)
        active = tap
    return tap


def stop_capture() -> CaptureTap | None:
    """Stop the running capture (if any), close its files and return it."""
    global active
    with _install_lock:
        tap, active = active, None
    if tap is not None:
        tap.close()
    return tap


def capture_paths(path: str | Path, *, ip: bool, serial: bool) -> tuple[Path | None, Path | None]:
    """Where a command's ``--pcap FILE`` goes: (IP file, serial file).

    One link type per file: a command with only IP transports or only a serial line writes
    ``FILE``; one with both writes IP traffic to ``FILE`` and serial traffic to
    ``FILE``'s name with ``-serial`` before the suffix (``run.pcap`` -> ``run-serial.pcap``).
    """
    path = Path(path)
    if not serial:
        return path, None
    if not ip:
        return None, path
    return path, path.with_name(f"{path.stem}-serial{path.suffix or '.pcap'}")


@contextmanager
def capturing(
    path: str | Path | None, *, ip: bool = True, serial: bool = False
) -> Iterator[CaptureTap | None]:
    """Capture while the ``with`` body runs (nothing when ``path`` is ``None``): the
    ``--pcap FILE`` option of ``cosemcast read``, ``meter serve`` and ``headend listen``."""
    if path is None:
        yield None
        return
    ip_path, serial_path = capture_paths(path, ip=ip, serial=serial)
    tap = start_capture(ip_path, serial_path=serial_path)
    try:
        yield tap
    finally:
        stop_capture()
