"""TCP wrapper transport on real loopback sockets: client link, threaded server, asyncio forms.

Every test binds ephemeral ports on 127.0.0.1 and bounds each wait by a timeout of a few
seconds. brief = ../shared/reference/DLMS_BRIEF.md (§1: header layout, wPorts = SAPs).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cosemcast.errors import (
    DlmsError,
    RemoteProtocolError,
    ResponseTimeout,
    TransportError,
)
from cosemcast.link.wrapper import WrapperFrame
from cosemcast.transport import tcp
from cosemcast.transport.aio import (
    AsyncTcpServerConnection,
    open_tcp_link,
    start_tcp_server,
)
from cosemcast.transport.base import ApduLink, AsyncApduLink, ConnectionClosed
from cosemcast.transport.tcp import TcpServerConnection, TcpWrapperLink, TcpWrapperServer

WAIT_S = 3.0
CLIENT, SERVER = 0x10, 0x01  # public client SAP 16, management logical device 1 (brief §1)
# brief §10.6 / §10.5 (DC tests/test_general_global_cipher.py): a 70-byte ciphered push.
PUSH_APDU = bytes.fromhex(
    "DB082F192291991641033B30000001E5025CE9D2271FD78BE8C204211A916A9D7F587E0A7A814CADEA89E959"
    "3F01F92EA8C087B5BDFDEFEAB6BECF282DFE49C08F5BE6DC8400"
)


def echo(connection: TcpServerConnection, frame: WrapperFrame) -> bytes:
    return frame.apdu


def silent(connection: TcpServerConnection, frame: WrapperFrame) -> None:
    return None


@pytest.fixture
def echo_server() -> Iterator[TcpWrapperServer]:
    with TcpWrapperServer("127.0.0.1", 0, echo) as server:
        yield server


def connect(server: TcpWrapperServer | tuple[str, int], **kwargs: int) -> TcpWrapperLink:
    host, port = server.address if isinstance(server, TcpWrapperServer) else server
    return TcpWrapperLink.connect(host, port, CLIENT, SERVER, timeout_s=WAIT_S, **kwargs)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """A connected (client, server) pair of plain loopback sockets."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=WAIT_S)
        accepted, _ = listener.accept()
    accepted.settimeout(WAIT_S)
    return client, accepted


def payload(index: int, size: int) -> bytes:
    return bytes((index + k) & 0xFF for k in range(size))


def wait_until(condition: object, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not callable(condition) or not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


# --- round trips -------------------------------------------------------------------------


def test_echo_many_apdus_including_the_largest(echo_server: TcpWrapperServer) -> None:
    sizes = [1, 2, 7, 8, 9, 100, 1500, 4096, 65535, 3, 65535, 40000]
    sizes += [(k * 37) % 3000 + 1 for k in range(200)]
    with connect(echo_server) as link:
        for index, size in enumerate(sizes):
            apdu = payload(index, size)
            link.send_apdu(apdu)
            assert link.receive_apdu(WAIT_S) == apdu


def test_pipelined_requests_arrive_in_order(echo_server: TcpWrapperServer) -> None:
    apdus = [payload(k, 1 + k * 11) for k in range(100)]
    with connect(echo_server) as link:
        for apdu in apdus:
            link.send_apdu(apdu)
        assert [link.receive_apdu(WAIT_S) for _ in apdus] == apdus


def test_several_frames_in_one_write_and_wports_swapped(echo_server: TcpWrapperServer) -> None:
    frames = [WrapperFrame(CLIENT, SERVER, b"\xc0\x01"), WrapperFrame(1, 2, b"x" * 300)]
    frames.append(WrapperFrame(0x66, 0x11, PUSH_APDU))
    raw = socket.create_connection(echo_server.address, timeout=WAIT_S)
    with TcpWrapperLink(raw, client_wport=CLIENT, server_wport=SERVER) as link:
        raw.sendall(b"".join(frame.encode() for frame in frames))
        for frame in frames:
            back = link.receive_frame(WAIT_S)
            assert back == WrapperFrame(frame.destination_wport, frame.source_wport, frame.apdu)


def test_stream_cut_into_one_byte_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Both ends read one byte at a time, so every header and APDU arrives split.
    monkeypatch.setattr(tcp, "_RECV_SIZE", 1)
    with TcpWrapperServer("127.0.0.1", 0, echo) as server, connect(server) as link:
        for index, size in enumerate([1, 9, 70, 1000]):
            link.send_apdu(payload(index, size))
            assert link.receive_apdu(WAIT_S) == payload(index, size)


def test_peer_writing_one_byte_at_a_time() -> None:
    client_sock, server_sock = tcp_pair()
    with TcpWrapperLink(client_sock, client_wport=CLIENT, server_wport=SERVER) as link:
        wire = WrapperFrame(SERVER, CLIENT, PUSH_APDU).encode() * 2
        server_sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def trickle() -> None:
            for byte in wire:
                server_sock.sendall(bytes([byte]))
                time.sleep(0.0005)

        writer = threading.Thread(target=trickle)
        writer.start()
        assert link.receive_apdu(WAIT_S) == PUSH_APDU
        assert link.receive_apdu(WAIT_S) == PUSH_APDU
        writer.join()
    server_sock.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    apdus=st.lists(st.binary(min_size=1, max_size=600), min_size=1, max_size=12),
    chunk=st.integers(1, 64),
)
def test_any_read_size_reassembles_the_same_frames(apdus: list[bytes], chunk: int) -> None:
    saved = tcp._RECV_SIZE
    tcp._RECV_SIZE = chunk  # type: ignore[misc]
    client_sock, server_sock = tcp_pair()
    try:
        with TcpWrapperLink(client_sock, client_wport=CLIENT, server_wport=SERVER) as link:
            server_sock.sendall(b"".join(WrapperFrame(SERVER, CLIENT, a).encode() for a in apdus))
            assert [link.receive_apdu(WAIT_S) for _ in apdus] == apdus
    finally:
        tcp._RECV_SIZE = saved  # type: ignore[misc]
        server_sock.close()


def test_links_satisfy_the_apdu_link_protocol(echo_server: TcpWrapperServer) -> None:
    def round_trip(link: ApduLink, apdu: bytes) -> bytes:
        link.send_apdu(apdu)
        return link.receive_apdu(WAIT_S)

    with connect(echo_server) as link:
        assert round_trip(link, b"\x01\x02") == b"\x01\x02"


# --- concurrency, pushes, server life cycle ------------------------------------------------


def test_concurrent_clients_get_their_own_answers(echo_server: TcpWrapperServer) -> None:
    failures: list[str] = []
    connected = threading.Barrier(8, timeout=WAIT_S)

    def client(number: int) -> None:
        with connect(echo_server) as link:
            connected.wait()
            for k in range(60):
                apdu = bytes([number]) * (1 + (k * 97) % 5000)
                link.send_apdu(apdu)
                if link.receive_apdu(WAIT_S) != apdu:
                    failures.append(f"client {number} request {k}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S * 2)
    assert failures == []
    assert not any(thread.is_alive() for thread in threads)
    wait_until(lambda: echo_server.connections == ())


def test_server_pushes_on_a_connection() -> None:
    opened: list[TcpServerConnection] = []
    with (
        TcpWrapperServer("127.0.0.1", 0, echo, on_connect=opened.append) as server,
        connect(server) as link,
    ):
        wait_until(lambda: len(opened) == 1)
        # A push from logical device 1 to client 16, then one to another SAP (0x66).
        opened[0].send_apdu(PUSH_APDU, source_wport=SERVER, destination_wport=CLIENT)
        assert link.receive_apdu(WAIT_S) == PUSH_APDU
        opened[0].send_apdu(b"\x0f\x01", source_wport=SERVER, destination_wport=0x66)
        assert link.receive_frame(WAIT_S) == WrapperFrame(SERVER, 0x66, b"\x0f\x01")
        link.send_apdu(b"\xc0\x01\x41")
        assert link.receive_apdu(WAIT_S) == b"\xc0\x01\x41"
        assert server.connections == (opened[0],)


def test_pushes_from_another_thread_interleave_with_responses() -> None:
    opened: list[TcpServerConnection] = []

    def push_fifty() -> None:
        for _ in range(50):
            opened[0].send_apdu(PUSH_APDU, source_wport=SERVER, destination_wport=CLIENT)

    with (
        TcpWrapperServer("127.0.0.1", 0, echo, on_connect=opened.append) as server,
        connect(server) as link,
    ):
        wait_until(lambda: len(opened) == 1)
        pusher = threading.Thread(target=push_fifty)
        pusher.start()
        for k in range(50):
            link.send_apdu(payload(k, 5000))
        received = [link.receive_apdu(WAIT_S) for _ in range(100)]
        pusher.join()
    assert received.count(PUSH_APDU) == 50
    assert [apdu for apdu in received if apdu != PUSH_APDU] == [payload(k, 5000) for k in range(50)]


def test_handler_error_closes_only_that_connection() -> None:
    def handler(connection: TcpServerConnection, frame: WrapperFrame) -> bytes:
        if frame.apdu == b"boom":
            raise RemoteProtocolError("client sent boom")
        return frame.apdu

    with (
        TcpWrapperServer("127.0.0.1", 0, handler) as server,
        connect(server) as good,
        connect(server) as bad,
    ):
        bad.send_apdu(b"boom")
        with pytest.raises(ConnectionClosed):
            bad.receive_apdu(WAIT_S)
        good.send_apdu(b"still here")
        assert good.receive_apdu(WAIT_S) == b"still here"


def test_broken_framing_closes_only_that_connection(echo_server: TcpWrapperServer) -> None:
    with connect(echo_server) as good:
        raw = socket.create_connection(echo_server.address, timeout=WAIT_S)
        raw.sendall(b"\x00\x02\x00\x10\x00\x01\x00\x01\xc0")  # wrapper version 2
        assert raw.recv(10) == b""  # the server hung up on it
        raw.close()
        good.send_apdu(b"\x01")
        assert good.receive_apdu(WAIT_S) == b"\x01"


def test_max_connections_bounds_the_server() -> None:
    with TcpWrapperServer("127.0.0.1", 0, echo, max_connections=2) as server:
        with connect(server) as first, connect(server) as second:
            wait_until(lambda: len(server.connections) == 2)
            with connect(server) as third, pytest.raises(TransportError):
                third.send_apdu(b"\x01")
                third.receive_apdu(WAIT_S)
            for link in (first, second):
                link.send_apdu(b"\x02")
                assert link.receive_apdu(WAIT_S) == b"\x02"
        wait_until(lambda: server.connections == ())
        with connect(server) as again:
            again.send_apdu(b"\x03")
            assert again.receive_apdu(WAIT_S) == b"\x03"


def test_idle_connections_are_closed() -> None:
    closed: list[TcpServerConnection] = []
    with (
        TcpWrapperServer(
            "127.0.0.1", 0, echo, idle_timeout_s=0.2, on_disconnect=closed.append
        ) as server,
        connect(server) as link,
    ):
        link.send_apdu(b"\x01")
        assert link.receive_apdu(WAIT_S) == b"\x01"
        with pytest.raises(ConnectionClosed):
            link.receive_apdu(WAIT_S)
        wait_until(lambda: len(closed) == 1)


def test_close_shuts_every_connection_and_thread() -> None:
    server = TcpWrapperServer("127.0.0.1", 0, echo)
    server.start()
    links = [connect(server) for _ in range(4)]
    for link in links:
        link.send_apdu(b"\x01")
        assert link.receive_apdu(WAIT_S) == b"\x01"
    started = time.monotonic()
    server.close()
    assert time.monotonic() - started < WAIT_S
    port = server.address[1]
    names = [thread.name for thread in threading.enumerate()]
    assert not [name for name in names if name.endswith(f"-{port}") or "cosemcast-tcp-127" in name]
    for link in links:
        with pytest.raises(TransportError):
            link.receive_apdu(WAIT_S)
        link.close()
    with pytest.raises(TransportError, match="refused"):
        connect(("127.0.0.1", port))


def test_serve_forever_returns_after_close() -> None:
    server = TcpWrapperServer("127.0.0.1", 0, echo)
    runner = threading.Thread(target=server.serve_forever)
    runner.start()
    with connect(server) as link:
        link.send_apdu(b"\x05")
        assert link.receive_apdu(WAIT_S) == b"\x05"
    server.close()
    runner.join(WAIT_S)
    assert not runner.is_alive()


# --- errors ------------------------------------------------------------------------------


def test_connection_refused_says_what_to_check() -> None:
    port = free_port()
    with pytest.raises(TransportError) as caught:
        connect(("127.0.0.1", port))
    message = str(caught.value)
    assert f"connection refused by 127.0.0.1:{port}" in message
    assert "is the meter running" in message
    assert not isinstance(caught.value, ResponseTimeout)


def test_unresolvable_host() -> None:
    with pytest.raises(TransportError, match="cannot resolve"):
        TcpWrapperLink.connect("no-such-host.invalid", 4059, timeout_s=WAIT_S)


def test_port_in_use() -> None:
    with (
        TcpWrapperServer("127.0.0.1", 0, echo) as server,
        pytest.raises(TransportError, match="in use"),
    ):
        TcpWrapperServer("127.0.0.1", server.address[1], echo)


def test_silence_raises_response_timeout() -> None:
    with TcpWrapperServer("127.0.0.1", 0, silent) as server, connect(server) as link:
        link.send_apdu(b"\xc0\x01\xc1\x00\x01\x00\x00\x01\x00\x00\xff\x02\x00")
        started = time.monotonic()
        with pytest.raises(ResponseTimeout) as caught:
            link.receive_apdu(0.2)
        assert 0.19 <= time.monotonic() - started < 2.0
        assert f"127.0.0.1:{server.address[1]}" in str(caught.value)
        # A timeout leaves the link usable.
        link.send_apdu(b"\x01")
        with pytest.raises(ResponseTimeout):
            link.receive_apdu(0.05)


def test_wrong_wports_are_reported() -> None:
    def other_device(connection: TcpServerConnection, frame: WrapperFrame) -> None:
        connection.send_apdu(frame.apdu, source_wport=0x11, destination_wport=CLIENT)

    with TcpWrapperServer("127.0.0.1", 0, other_device) as server, connect(server) as link:
        link.send_apdu(b"\x01")
        with pytest.raises(RemoteProtocolError, match="logical device"):
            link.receive_apdu(WAIT_S)


def test_a_non_wrapper_peer_is_reported() -> None:
    client_sock, server_sock = tcp_pair()
    with TcpWrapperLink(client_sock, client_wport=CLIENT, server_wport=SERVER) as link:
        server_sock.sendall(bytes.fromhex("7EA00A000200232193BF327E"))  # an HDLC frame
        with pytest.raises(TransportError, match="wrapper"):
            link.receive_apdu(WAIT_S)
        assert link.closed
        with pytest.raises(TransportError, match="closed"):
            link.send_apdu(b"\x01")
    server_sock.close()


def test_peer_closing_inside_a_frame() -> None:
    client_sock, server_sock = tcp_pair()
    with TcpWrapperLink(client_sock, client_wport=CLIENT, server_wport=SERVER) as link:
        server_sock.sendall(WrapperFrame(SERVER, CLIENT, PUSH_APDU).encode()[:20])
        server_sock.close()
        with pytest.raises(TransportError, match="inside a frame") as caught:
            link.receive_apdu(WAIT_S)
        assert not isinstance(caught.value, ConnectionClosed)


def test_oversized_frames_are_rejected_before_buffering() -> None:
    client_sock, server_sock = tcp_pair()
    link = TcpWrapperLink(
        client_sock, client_wport=CLIENT, server_wport=SERVER, max_apdu_length=100
    )
    with link:
        server_sock.sendall(bytes.fromhex("0001000100100400"))  # claims 1024 bytes
        with pytest.raises(TransportError, match="framing"):
            link.receive_apdu(WAIT_S)
    server_sock.close()


def test_errors_never_echo_payload_bytes() -> None:
    secret = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
    client_sock, server_sock = tcp_pair()
    with TcpWrapperLink(client_sock, client_wport=CLIENT, server_wport=SERVER) as link:
        server_sock.sendall(WrapperFrame(SERVER, 0x30, secret).encode())
        with pytest.raises(DlmsError) as caught:
            link.receive_apdu(WAIT_S)
    server_sock.close()
    text = str(caught.value)
    assert secret.hex() not in text.lower() and repr(secret) not in text


# --- asyncio -----------------------------------------------------------------------------


async def _async_echo(connection: AsyncTcpServerConnection, frame: WrapperFrame) -> bytes | None:
    if frame.apdu == b"quiet":
        return None
    return frame.apdu


def test_asyncio_round_trips_push_and_timeout() -> None:
    async def main() -> None:
        opened: list[AsyncTcpServerConnection] = []
        server = await start_tcp_server("127.0.0.1", 0, _async_echo, on_connect=opened.append)
        async with server:
            host, port = server.address
            link = await open_tcp_link(host, port, CLIENT, SERVER, timeout_s=WAIT_S)
            async with link:
                typed: AsyncApduLink = link
                for index, size in enumerate([1, 70, 65535, 5000, 2]):
                    await typed.send_apdu(payload(index, size))
                    assert await typed.receive_apdu(WAIT_S) == payload(index, size)
                await opened[0].send_apdu(PUSH_APDU, source_wport=SERVER, destination_wport=CLIENT)
                assert await link.receive_apdu(WAIT_S) == PUSH_APDU
                await link.send_apdu(b"quiet")
                with pytest.raises(ResponseTimeout):
                    await link.receive_apdu(0.1)
            assert len(server.connections) <= 1

    asyncio.run(asyncio.wait_for(main(), 10))


def test_asyncio_concurrent_clients_and_one_byte_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    from cosemcast.transport import aio

    monkeypatch.setattr(aio, "_RECV_SIZE", 1)

    async def client(port: int, number: int) -> None:
        async with await open_tcp_link("127.0.0.1", port, CLIENT, SERVER, WAIT_S) as link:
            for k in range(10):
                apdu = bytes([number, k]) * (1 + k * 7)
                await link.send_apdu(apdu)
                assert await link.receive_apdu(WAIT_S) == apdu

    async def main() -> None:
        async with await start_tcp_server("127.0.0.1", 0, _async_echo) as server:
            await asyncio.gather(*(client(server.address[1], n) for n in range(6)))

    asyncio.run(asyncio.wait_for(main(), 10))


def test_asyncio_refused_and_blocking_server_interop() -> None:
    port = free_port()

    async def main() -> None:
        with pytest.raises(TransportError, match="refused"):
            await open_tcp_link("127.0.0.1", port, timeout_s=WAIT_S)
        with TcpWrapperServer("127.0.0.1", 0, echo) as server:
            link = await open_tcp_link(*server.address, CLIENT, SERVER, WAIT_S)
            async with link:
                await link.send_apdu(PUSH_APDU)
                assert await link.receive_apdu(WAIT_S) == PUSH_APDU

    asyncio.run(asyncio.wait_for(main(), 10))


def test_asyncio_server_closes_clients_and_bounds_connections() -> None:
    async def main() -> None:
        server = await start_tcp_server("127.0.0.1", 0, _async_echo, max_connections=1)
        host, port = server.address
        first = await open_tcp_link(host, port, CLIENT, SERVER, WAIT_S)
        await first.send_apdu(b"\x01")
        assert await first.receive_apdu(WAIT_S) == b"\x01"
        second = await open_tcp_link(host, port, CLIENT, SERVER, WAIT_S)
        with pytest.raises(TransportError):
            await second.receive_apdu(WAIT_S)
        await second.close()
        await server.close()
        with pytest.raises(TransportError):
            await first.receive_apdu(WAIT_S)
        await first.close()

    asyncio.run(asyncio.wait_for(main(), 10))
