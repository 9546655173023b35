"""HDLC over real serial IO: a pseudo-terminal pair and pyserial URLs (``socket://``,
``loop://``, ``rfc2217://`` through pyserial's own RFC 2217 access server).

The client opens ``/dev/pts/N`` through pyserial; a server thread serves the master side of the
pseudo-terminal as a meter would, with the mode E sign-on (300 Bd 7E1, then the agreed rate
and 8N1). Every wait is bounded: the tests finish in seconds or fail.
"""

from __future__ import annotations

import os
import socket
import threading
import tty
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from cosemcast.errors import ResponseTimeout, TransportError
from cosemcast.link.hdlc import HdlcAddress, HdlcParameters
from cosemcast.link.hdlc_connection import (
    ApduReceived,
    Connected,
    HdlcConnection,
    NeedData,
    Role,
)
from cosemcast.link.mode_e import Identification
from cosemcast.transport.base import ApduLink, AsyncApduLink
from cosemcast.transport.serial import (
    AsyncHdlcSerialLink,
    FdPort,
    HdlcPeer,
    HdlcSerialLink,
    HdlcSerialServer,
    mode_e_sign_on,
    open_serial,
)

METER_ID = Identification("CSC", "6", "PTYMETER")  # offers 19200 Bd and HDLC
LONG = bytes(i * 7 % 251 for i in range(5000))


def respond(peer: HdlcPeer, apdu: bytes) -> bytes:
    return b"\xc4" + bytes([peer.client_address.logical]) + apdu[::-1]


Settings = tuple[int, int, str]


@dataclass
class Recorder:
    """The line settings in force at each write."""

    writes: list[tuple[Settings, bytes]] = field(default_factory=list)

    def settings_of(self, prefix: bytes) -> Settings:
        return next(s for s, data in self.writes if data.startswith(prefix))


class RecordingPort:
    """A pyserial port whose writes are recorded with the settings in force."""

    def __init__(self, port: Any, recorder: Recorder) -> None:
        object.__setattr__(self, "_port", port)
        object.__setattr__(self, "_recorder", recorder)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._port, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._port, name, value)

    def write(self, data: bytes) -> Any:
        port = self._port
        self._recorder.writes.append(((port.baudrate, port.bytesize, port.parity), bytes(data)))
        return port.write(data)


class RecordingFdPort(FdPort):
    def __init__(self, fd: int, recorder: Recorder) -> None:
        super().__init__(fd)
        self.recorder = recorder

    def write(self, data: bytes, /) -> int:
        self.recorder.writes.append(((self.baudrate, self.bytesize, self.parity), bytes(data)))
        return super().write(data)


def with_even_parity(data: bytes) -> bytes:
    return bytes(b | (0x80 if bin(b).count("1") % 2 else 0) for b in data)


def went_out_at_7e1(recorder: Recorder, message: bytes) -> bool:
    """At 300 Bd 7E1, or at 300 Bd 8N1 with the even parity bit as eighth bit (the same
    bits on the line)."""
    return ((300, 7, "E"), message) in recorder.writes or (
        (300, 8, "N"),
        with_even_parity(message),
    ) in recorder.writes


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, str]]:
    """(master fd, slave path); the slave stays open (raw) so the master never sees EIO."""
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(slave)


def run_server(server: HdlcSerialServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


def stop_server(server: HdlcSerialServer, thread: threading.Thread) -> None:
    server.close()
    thread.join(5)
    assert not thread.is_alive()


def test_mode_e_and_hdlc_over_a_pseudo_terminal(pty_pair: tuple[int, str]) -> None:
    master, slave_path = pty_pair
    meter_writes, client_writes = Recorder(), Recorder()
    peers: list[HdlcPeer] = []
    server = HdlcSerialServer(
        RecordingFdPort(master, meter_writes),
        respond,
        server_addresses=(HdlcAddress.server(1),),
        mode_e=METER_ID,
        on_connect=peers.append,
    )
    thread = run_server(server)
    try:
        for session, client_sap in enumerate((16, 1)):
            link = HdlcSerialLink(
                RecordingPort(open_serial(slave_path), client_writes),
                client_address=HdlcAddress.client(client_sap),
                server_address=HdlcAddress(1, 17, 2),
                parameters=HdlcParameters(128, 128, 7, 7),
                mode_e=True,
                handover_delay_s=0.05,
                response_timeout_s=1.0,
            )
            with link:
                parameters = link.connect(timeout_s=10)
                assert link.identification == METER_ID
                assert link.baud_rate == 19200
                assert (link.port.baudrate, link.port.bytesize, link.port.parity) == (
                    19200,
                    8,
                    "N",
                )
                assert parameters.max_info_length_transmit == 128
                assert parameters.window_size_transmit == 7
                for request in (b"\xc0\x01", LONG, bytes([session]) * 300):
                    link.send_apdu(request)
                    assert link.receive_apdu(timeout_s=10) == respond(peers[-1], request)
        assert [p.client_address.logical for p in peers] == [16, 1]
        assert peers[0].server_address == HdlcAddress(1, 17, 2)  # answered as addressed
    finally:
        stop_server(server, thread)
    sign_on, hdlc = (300, 7, "E"), (19200, 8, "N")
    # Client: request and acknowledgement at 300 Bd 7E1 (or its 8N1 emulation where the
    # pseudo-terminal refuses 7E1), then SNRM at 19200 Bd 8N1.
    assert went_out_at_7e1(client_writes, b"/?!\r\n")
    assert went_out_at_7e1(client_writes, b"\x06262\r\n")
    assert client_writes.settings_of(b"\x7e") == hdlc
    # Meter: identification at 300 Bd 7E1 (twice: one sign-on per session), UA at 19200 8N1.
    identifications = [s for s, data in meter_writes.writes if data == METER_ID.encode()]
    assert identifications == [sign_on, sign_on]
    assert meter_writes.settings_of(b"\x7e") == hdlc


def test_hdlc_without_mode_e_and_pushes(pty_pair: tuple[int, str]) -> None:
    master, slave_path = pty_pair
    server = HdlcSerialServer(FdPort(master), respond, baud_rate=9600)
    thread = run_server(server)
    try:
        with HdlcSerialLink.open(slave_path, baud_rate=9600) as link:
            as_apdu_link: ApduLink = link  # the transport contract (mypy checks it)
            assert as_apdu_link is link
            assert link.connect(timeout_s=5).max_info_length_receive == 128
            server.send_push(b"\x0f\x00\x00\x00\x01\x00")
            assert link.receive_push(timeout_s=5) == b"\x0f\x00\x00\x00\x01\x00"
            link.send_apdu(b"\xc0\x01\x02")
            assert link.receive_apdu(timeout_s=5) == b"\xc4\x10\x02\x01\xc0"
            assert link.port.baudrate == 9600
            with pytest.raises(ResponseTimeout):
                link.receive_apdu(timeout_s=0.1)
    finally:
        stop_server(server, thread)


def test_a_closed_link_refuses_io(pty_pair: tuple[int, str]) -> None:
    _, slave_path = pty_pair
    link = HdlcSerialLink.open(slave_path)
    link.close()
    link.close()
    with pytest.raises(TransportError):
        link.send_apdu(b"\xc0")


def test_socket_url_with_mode_e() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    servers: list[HdlcSerialServer] = []

    def accept_and_serve() -> None:
        conn, _ = listener.accept()
        server = HdlcSerialServer(FdPort(conn.detach()), respond, mode_e=METER_ID)
        servers.append(server)
        server.serve_forever()

    thread = threading.Thread(target=accept_and_serve, daemon=True)
    thread.start()
    try:
        with HdlcSerialLink.open(
            f"socket://127.0.0.1:{port}", mode_e=True, max_baud_rate=9600, handover_delay_s=0.05
        ) as link:
            link.connect(timeout_s=10)
            assert link.baud_rate == 9600
            link.send_apdu(LONG)
            assert link.receive_apdu(timeout_s=10) == b"\xc4\x10" + LONG[::-1]
    finally:
        if servers:
            servers[0].close()
        thread.join(5)
        listener.close()
    assert not thread.is_alive()


def test_loop_url_carries_hdlc_between_two_stations_on_one_line() -> None:
    """``loop://`` echoes every byte: the client and the server share it like a bus, each
    ignoring the frames that are not addressed to it."""
    port = open_serial("loop://")
    port.timeout = 0
    client = HdlcConnection(
        Role.CLIENT, client_address=HdlcAddress.client(16), server_address=HdlcAddress(1)
    )
    server = HdlcConnection(
        Role.SERVER, client_address=HdlcAddress.client(16), server_address=HdlcAddress(1)
    )
    received: list[bytes] = []
    port.write(client.connect(now=0))
    for step in range(200):
        data = port.read(4096)
        for conn in (client, server):
            conn.receive_data(data, now=step)
            while not isinstance(event := conn.next_event(), NeedData):
                if isinstance(event, Connected) and conn is client:
                    port.write(client.send_apdu(LONG, now=step))
                elif isinstance(event, ApduReceived) and conn is server:
                    port.write(server.send_apdu(event.apdu[::-1], now=step))
                elif isinstance(event, ApduReceived):
                    received.append(event.apdu)
            port.write(conn.data_to_send())
        if received:
            break
    port.close()
    assert received == [LONG[::-1]]
    assert client.ignored_frames > 0 and server.ignored_frames > 0  # their own echoes


def test_loop_url_without_a_meter_times_out() -> None:
    link = HdlcSerialLink.open("loop://", response_timeout_s=0.1, max_retries=1)
    with link, pytest.raises(ResponseTimeout):
        link.connect(timeout_s=5)
    echo_only = HdlcSerialLink.open("loop://", mode_e=True, sign_on_timeout_s=0.2)
    with echo_only, pytest.raises(ResponseTimeout):  # the echoed request is not an answer
        echo_only.connect(timeout_s=10)


def test_open_errors_are_transport_errors() -> None:
    with pytest.raises(TransportError):
        HdlcSerialLink.open("/dev/does-not-exist")
    with pytest.raises(TransportError):
        HdlcSerialLink.open("nonsense://x")


def test_asyncio_adapter(pty_pair: tuple[int, str]) -> None:
    import asyncio

    master, slave_path = pty_pair
    server = HdlcSerialServer(FdPort(master), respond, mode_e=METER_ID)
    thread = run_server(server)

    async def client() -> bytes:
        async with await AsyncHdlcSerialLink.open(
            slave_path, mode_e=True, handover_delay_s=0.05
        ) as link:
            as_apdu_link: AsyncApduLink = link
            assert as_apdu_link is link
            await link.connect(timeout_s=10)
            await link.send_apdu(b"\xc0\x01")
            return await link.receive_apdu(timeout_s=10)

    try:
        assert asyncio.run(asyncio.wait_for(client(), 20)) == b"\xc4\x10\x01\xc0"
    finally:
        stop_server(server, thread)


class Refusing7E1:
    """A port that cannot do 7 data bits with parity (like some USB adapters)."""

    def __init__(self, port: Any) -> None:
        object.__setattr__(self, "_port", port)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._port, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._port, name, value)

    def apply_settings(self, values: dict[str, Any]) -> None:
        if values["bytesize"] != 8:
            raise ValueError("7 data bits are not supported")
        self._port.apply_settings(values)


@pytest.mark.parametrize("refuse_7e1", [False, True])
def test_mode_e_sign_on_settings_and_parity_emulation(refuse_7e1: bool) -> None:
    recorder = Recorder()
    loop = open_serial("loop://")
    # loop:// echoes the request; the identification is already waiting before it.
    loop.write(METER_ID.encode())
    port = RecordingPort(Refusing7E1(loop) if refuse_7e1 else loop, recorder)
    identification, baud_rate, _ = mode_e_sign_on(port, handover_delay_s=0)
    assert (identification, baud_rate) == (METER_ID, 19200)
    assert (loop.baudrate, loop.bytesize, loop.parity, loop.stopbits) == (19200, 8, "N", 1)
    request, ack = recorder.writes
    if refuse_7e1:  # the parity bit travels as the eighth data bit: the same bits on the line
        assert request == ((300, 8, "N"), with_even_parity(b"/?!\r\n"))
        assert ack == ((300, 8, "N"), with_even_parity(b"\x06262\r\n"))
        assert with_even_parity(b"/?!\r\n") == bytes.fromhex("AF 3F 21 8D 0A")
    else:
        assert request == ((300, 7, "E"), b"/?!\r\n")
        assert ack == ((300, 7, "E"), b"\x06262\r\n")
    loop.close()


class _BridgedLine(RecordingFdPort):
    """The meter's line as an RFC 2217 server sees it: settings are recorded."""

    cts = dsr = ri = cd = False
    xonxoff = rtscts = break_condition = False
    dtr = rts = True

    def reset_input_buffer(self) -> None:
        return None

    def reset_output_buffer(self) -> None:
        return None


@pytest.mark.filterwarnings("ignore:set(Daemon|Name):DeprecationWarning")
def test_rfc2217_url_carries_the_baud_and_parity_changes() -> None:
    """An RFC 2217 access server (pyserial's PortManager) between the client and the meter:
    the sign-on settings and the switch to 19200 8N1 travel as telnet COM-PORT commands."""
    import select

    import serial.rfc2217

    listener = socket.create_server(("127.0.0.1", 0))
    line_end, meter_end = socket.socketpair()
    line_writes = Recorder()
    line = _BridgedLine(line_end.detach(), line_writes)
    server = HdlcSerialServer(FdPort(meter_end.detach()), respond, mode_e=METER_ID)
    meter = run_server(server)
    stop = threading.Event()

    def access_server() -> None:
        conn, _ = listener.accept()
        lock = threading.Lock()

        class Telnet:
            def write(self, data: bytes) -> None:
                with lock:
                    conn.sendall(data)

        manager = serial.rfc2217.PortManager(line, Telnet())

        def line_to_network() -> None:
            while not stop.is_set():
                data = line.read(4096)
                if data:
                    Telnet().write(b"".join(manager.escape(data)))

        pump = threading.Thread(target=line_to_network, daemon=True)
        pump.start()
        while not stop.is_set():
            if select.select([conn], [], [], 0.05)[0]:
                data = conn.recv(4096)
                if not data:
                    break
                forwarded = b"".join(manager.filter(data))
                if forwarded:
                    line.write(forwarded)
        stop.set()
        pump.join(5)
        conn.close()

    bridge = threading.Thread(target=access_server, daemon=True)
    bridge.start()
    try:
        port = listener.getsockname()[1]
        with HdlcSerialLink.open(
            f"rfc2217://127.0.0.1:{port}", mode_e=True, handover_delay_s=0.05
        ) as link:
            link.connect(timeout_s=10)
            link.send_apdu(b"\xc0\x01")
            assert link.receive_apdu(timeout_s=10) == b"\xc4\x10\x01\xc0"
    finally:
        stop.set()
        bridge.join(5)
        stop_server(server, meter)
        line.close()
        listener.close()
    assert not bridge.is_alive()
    # What the client wrote reached the line at the settings the client had asked for.
    assert went_out_at_7e1(line_writes, b"/?!\r\n")
    assert line_writes.settings_of(b"\x7e") == (19200, 8, "N")
