"""The serial port under HDLC and mode E: opening pyserial URLs, line settings, raw reads.

:class:`SerialPort` is the part of ``serial.Serial`` the transport uses, so a pyserial port
(``serial.serial_for_url``: device paths, ``loop://``, ``socket://``, ``rfc2217://``) or a
:class:`FdPort` (a file descriptor such as the master side of a pseudo-terminal) will do.
pyserial, termios and OS errors become :class:`~cosemcast.errors.TransportError`.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import select
import struct
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

import serial

from cosemcast.errors import TransportError
from cosemcast.link.mode_e import SIGN_ON_BAUD_RATE

__all__ = [
    "READ_TIMEOUT_S",
    "SIGN_ON_SETTINGS",
    "FdPort",
    "SerialPort",
    "SerialSettings",
    "apply_settings",
    "drain",
    "enter_sign_on",
    "open_serial",
    "read_some",
    "write_all",
]

_log = logging.getLogger(__name__)

READ_TIMEOUT_S: Final = 0.02  # the timer resolution of the blocking loops


@dataclass(frozen=True, slots=True)
class SerialSettings:
    """Line settings; ``parity`` is a pyserial letter: ``N``, ``E``, ``O``."""

    baud_rate: int = 9600
    data_bits: int = 8
    parity: str = "N"
    stop_bits: float = 1


# IEC 62056-21 sign-on: 300 Bd, 7 data bits, even parity, 1 stop bit (brief §3 item 1).
SIGN_ON_SETTINGS: Final = SerialSettings(SIGN_ON_BAUD_RATE, 7, "E", 1)


class SerialPort(Protocol):
    """The members of ``serial.Serial`` used here."""

    baudrate: int
    bytesize: int
    parity: str
    stopbits: float
    timeout: float | None

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def open_serial(url: str, settings: SerialSettings = SerialSettings()) -> SerialPort:
    """Open ``url`` with ``serial.serial_for_url`` (a device path or a pyserial URL)."""
    try:
        port: SerialPort = serial.serial_for_url(
            url,
            baudrate=settings.baud_rate,
            bytesize=settings.data_bits,
            parity=settings.parity,
            stopbits=settings.stop_bits,
            timeout=READ_TIMEOUT_S,
        )
    except (serial.SerialException, OSError, ValueError, termios.error) as exc:
        raise TransportError(f"cannot open serial port {url}: {exc}") from exc
    return port


def apply_settings(port: SerialPort, settings: SerialSettings) -> None:
    """Change the line settings of the open port (pyserial: all at once)."""
    values = {
        "baudrate": settings.baud_rate,
        "bytesize": settings.data_bits,
        "parity": settings.parity,
        "stopbits": settings.stop_bits,
    }
    apply = getattr(port, "apply_settings", None)
    try:
        if callable(apply):
            apply(values)
        else:
            for name, value in values.items():
                setattr(port, name, value)
    except (serial.SerialException, OSError, ValueError, termios.error) as exc:
        raise TransportError(f"cannot set the serial line to {settings}: {exc}") from exc


_EVEN_PARITY: Final = bytes(
    b | (0x80 if bin(b).count("1") % 2 else 0) for b in (i & 0x7F for i in range(256))
)


def enter_sign_on(port: SerialPort) -> Callable[[bytes], bytes]:
    """Set 300 Bd 7E1 (brief §3 item 1); returns how to encode what is written.

    A port that cannot do 7 data bits with parity (some USB adapters; pseudo-terminals on
    recent Linux kernels) runs 300 Bd 8N1 instead and sends each character with its even
    parity bit as eighth data bit: the same bits on the line. Received characters have their
    parity bit masked off by the mode E machines either way.
    """
    try:
        apply_settings(port, SIGN_ON_SETTINGS)
    except TransportError as exc:
        apply_settings(port, SerialSettings(SIGN_ON_BAUD_RATE))
        _log.info("7E1 refused (%s): even parity sent as the eighth bit at 8N1", exc)
        return lambda data: data.translate(_EVEN_PARITY)
    return bytes


def read_some(port: SerialPort) -> bytes:
    """What arrives within the port's read timeout (one byte waited for, then all waiting)."""
    try:
        data = port.read(1)
        if data:
            waiting = port.in_waiting
            if waiting:
                data += port.read(waiting)
    except (serial.SerialException, OSError) as exc:
        raise TransportError(f"serial read failed: {exc}") from exc
    return bytes(data)


def write_all(port: SerialPort, data: bytes) -> None:
    """Write ``data`` (pyserial blocks until it is all queued)."""
    if not data:
        return
    try:
        port.write(data)
    except (serial.SerialException, OSError) as exc:
        raise TransportError(f"serial write failed: {exc}") from exc


def drain(port: SerialPort) -> None:
    """Wait until what was written has left the port."""
    try:
        port.flush()
    except (serial.SerialException, OSError, termios.error) as exc:
        raise TransportError(f"serial flush failed: {exc}") from exc


class FdPort:
    """A file descriptor as a :class:`SerialPort`: typically the master side of a
    pseudo-terminal, whose other side (``/dev/pts/N``) a client opens with pyserial.

    The line settings are only recorded: a pseudo-terminal has no line. When the other side
    is closed, reads return nothing until it is opened again.
    """

    def __init__(self, fd: int, *, timeout: float | None = READ_TIMEOUT_S) -> None:
        self.fd = fd
        self.timeout = timeout
        self.baudrate = SIGN_ON_BAUD_RATE
        self.bytesize = 8
        self.parity = "N"
        self.stopbits: float = 1
        self._closed = False

    @property
    def in_waiting(self) -> int:
        raw = fcntl.ioctl(self.fd, termios.FIONREAD, b"\0\0\0\0")
        return int(struct.unpack("i", raw)[0])

    def read(self, size: int = 1) -> bytes:
        readable, _, _ = select.select([self.fd], [], [], self.timeout)
        if not readable:
            return b""
        try:
            return os.read(self.fd, size)
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            # The other side of the pseudo-terminal is closed: nobody is on the line.
            time.sleep(self.timeout or 0)
            return b""

    def write(self, data: bytes, /) -> int:
        view = memoryview(data)
        while view:
            _, writable, _ = select.select([], [self.fd], [], None)
            if writable:
                view = view[os.write(self.fd, view) :]
        return len(data)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self.fd)
