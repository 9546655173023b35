"""UDP wrapper transport on real loopback sockets: unicast, multicast, broadcast, asyncio.

One wrapper frame per datagram (brief §1). Multicast joins with interface 127.0.0.1 and sends
with ``IP_MULTICAST_IF`` 127.0.0.1; the tests skip (saying why) only when the kernel refuses
that set-up. Every wait is bounded by a timeout of a few seconds.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Iterator

import pytest

from cosemcast.errors import RemoteProtocolError, ResponseTimeout, TransportError
from cosemcast.link.wrapper import WrapperFrame
from cosemcast.transport.aio import (
    open_push_receiver,
    open_push_sender,
    open_udp_link,
    start_udp_server,
)
from cosemcast.transport.base import Address, ApduLink, AsyncApduLink
from cosemcast.transport.udp import (
    UdpPushReceiver,
    UdpPushSender,
    UdpWrapperLink,
    UdpWrapperServer,
)

WAIT_S = 3.0
CLIENT, SERVER = 0x10, 0x01  # public client SAP 16, management logical device 1 (brief §1)
# brief §10.6 (DC tests/test_udp_message.py): header 0001 0001 0001 0046 before the 70-byte
# general-glo-ciphering push of §10.5 (DC tests/test_general_global_cipher.py).
PUSH_APDU = bytes.fromhex(
    "DB082F192291991641033B30000001E5025CE9D2271FD78BE8C204211A916A9D7F587E0A7A814CADEA89E959"
    "3F01F92EA8C087B5BDFDEFEAB6BECF282DFE49C08F5BE6DC8400"
)
PUBLISHED_DATAGRAM = bytes.fromhex("0001000100010046") + PUSH_APDU


def echo(source: Address, frame: WrapperFrame) -> bytes:
    return frame.apdu


def group_address() -> str:
    """An administratively scoped group (239.255/16), varied so parallel runs do not mix."""
    return f"239.255.{random.randint(1, 254)}.{random.randint(1, 254)}"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def echo_server() -> Iterator[UdpWrapperServer]:
    with UdpWrapperServer("127.0.0.1", 0, echo) as server:
        yield server


def multicast_receivers(group: str, count: int) -> list[UdpPushReceiver]:
    """``count`` receivers sharing one port, all joined to ``group`` on loopback."""
    receivers: list[UdpPushReceiver] = []
    try:
        port = 0
        for _ in range(count):
            receiver = UdpPushReceiver(port, group=group, interface="127.0.0.1", reuse_port=True)
            receivers.append(receiver)
            port = receiver.address[1]
    except TransportError as exc:
        for receiver in receivers:
            receiver.close()
        pytest.skip(f"the kernel refuses to join {group} on 127.0.0.1: {exc}")
    return receivers


# --- unicast -----------------------------------------------------------------------------


def test_unicast_round_trips(echo_server: UdpWrapperServer) -> None:
    # The largest datagram over IPv4 carries 65507 bytes: an APDU of 65499 after the header.
    sizes = [1, 2, 70, 1400, 1500, 9000, 65499, 3]
    with UdpWrapperLink.connect(*echo_server.address, CLIENT, SERVER) as link:
        typed: ApduLink = link
        for index, size in enumerate(sizes):
            apdu = bytes((index + k) & 0xFF for k in range(size))
            typed.send_apdu(apdu)
            assert typed.receive_apdu(WAIT_S) == apdu


def test_published_datagram_reaches_the_server() -> None:
    seen: list[tuple[Address, WrapperFrame]] = []

    def record(source: Address, frame: WrapperFrame) -> bytes:
        seen.append((source, frame))
        return b"\x01"

    with (
        UdpWrapperServer("127.0.0.1", 0, record) as server,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw,
    ):
        raw.bind(("127.0.0.1", 0))
        raw.settimeout(WAIT_S)
        raw.sendto(PUBLISHED_DATAGRAM, server.address)
        reply, _ = raw.recvfrom(100)
        assert seen == [(raw.getsockname(), WrapperFrame(1, 1, PUSH_APDU))]
    assert WrapperFrame.decode(reply) == WrapperFrame(1, 1, b"\x01")


def test_too_large_a_datagram_is_a_clear_error(echo_server: UdpWrapperServer) -> None:
    with (
        UdpWrapperLink.connect(*echo_server.address, CLIENT, SERVER) as link,
        pytest.raises(TransportError, match="too large"),
    ):
        link.send_apdu(b"\x00" * 65535)


def test_silence_raises_response_timeout() -> None:
    with (
        UdpWrapperServer("127.0.0.1", 0, lambda source, frame: None) as server,
        UdpWrapperLink.connect(*server.address, CLIENT, SERVER) as link,
    ):
        link.send_apdu(b"\x01")
        started = time.monotonic()
        with pytest.raises(ResponseTimeout, match=f"127.0.0.1:{server.address[1]}"):
            link.receive_apdu(0.2)
        assert 0.19 <= time.monotonic() - started < 2.0


def test_nobody_listening_is_reported_as_refused() -> None:
    port = free_udp_port()
    with UdpWrapperLink.connect("127.0.0.1", port, CLIENT, SERVER) as link:
        link.send_apdu(b"\xc0\x01")
        with pytest.raises(TransportError, match="refused") as caught:
            link.receive_apdu(WAIT_S)
        assert "is the meter running" in str(caught.value)


def test_malformed_datagrams_are_dropped_and_counted() -> None:
    with (
        UdpPushReceiver(0, host="127.0.0.1") as receiver,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw,
    ):
        raw.bind(("127.0.0.1", 0))
        for junk in (
            b"",
            b"\x00\x01",
            PUBLISHED_DATAGRAM[:-1],
            b"\x00\x02" + PUBLISHED_DATAGRAM[2:],
        ):
            raw.sendto(junk, receiver.address)
        raw.sendto(PUBLISHED_DATAGRAM, receiver.address)
        source, frame = receiver.receive(WAIT_S)
        assert frame == WrapperFrame(1, 1, PUSH_APDU)
        assert source == raw.getsockname()
        assert receiver.malformed_datagrams == 4
        with pytest.raises(ResponseTimeout):
            receiver.receive(0.05)


def test_wrong_wports_are_reported() -> None:
    with (
        UdpWrapperServer("127.0.0.1", 0, echo) as server,
        UdpWrapperLink.connect(*server.address, CLIENT, 0x11) as link,
    ):
        link.send_frame(WrapperFrame(CLIENT, SERVER, b"\x01"))
        with pytest.raises(RemoteProtocolError, match="logical device"):
            link.receive_apdu(WAIT_S)


def test_server_push_and_handler_failure() -> None:
    def handler(source: Address, frame: WrapperFrame) -> bytes:
        if frame.apdu == b"boom":
            raise RemoteProtocolError("boom")
        return frame.apdu

    with (
        UdpWrapperServer("127.0.0.1", 0, handler) as server,
        UdpWrapperLink.connect(*server.address, CLIENT, SERVER) as link,
    ):
        link.send_apdu(b"boom")
        link.send_apdu(b"fine")
        assert link.receive_apdu(WAIT_S) == b"fine"
        server.send_frame(WrapperFrame(SERVER, CLIENT, PUSH_APDU), link.local)
        assert link.receive_apdu(WAIT_S) == PUSH_APDU


def test_receiver_takes_pushes_from_any_source() -> None:
    with UdpPushReceiver(0, host="127.0.0.1") as receiver:
        senders = [
            UdpPushSender(
                "127.0.0.1", receiver.address[1], source_wport=SERVER, destination_wport=0x66
            )
            for _ in range(3)
        ]
        for number, sender in enumerate(senders):
            sender.send_apdu(bytes([0x0F, number]))
        received = [receiver.receive(WAIT_S) for _ in senders]
        sources = {source for source, _ in received}
        assert len(sources) == 3
        assert sorted(frame.apdu for _, frame in received) == [
            b"\x0f\x00",
            b"\x0f\x01",
            b"\x0f\x02",
        ]
        assert {(frame.source_wport, frame.destination_wport) for _, frame in received} == {
            (SERVER, 0x66)
        }
        for sender in senders:
            sender.close()


def test_reuse_port_lets_receivers_share_a_port() -> None:
    with UdpPushReceiver(0, host="127.0.0.1", reuse_port=True) as first:
        port = first.address[1]
        with UdpPushReceiver(port, host="127.0.0.1", reuse_port=True) as second:
            assert second.address == first.address
    with (
        UdpWrapperServer("127.0.0.1", 0, echo) as alone,
        pytest.raises(TransportError, match="in use"),
    ):
        UdpWrapperServer(*alone.address, echo)


# --- multicast and broadcast ---------------------------------------------------------------


def test_multicast_push_reaches_two_receivers_on_loopback() -> None:
    group = group_address()
    receivers = multicast_receivers(group, 2)
    try:
        port = receivers[0].address[1]
        try:
            sender = UdpPushSender(
                group,
                port,
                source_wport=SERVER,
                destination_wport=1,
                interface="127.0.0.1",
                ttl=1,
                loopback=True,
            )
        except TransportError as exc:
            pytest.skip(f"the kernel refuses IP_MULTICAST_IF 127.0.0.1: {exc}")
        with sender:
            sender.send_apdu(PUSH_APDU)
            for receiver in receivers:
                source, frame = receiver.receive(WAIT_S)
                assert frame == WrapperFrame(SERVER, 1, PUSH_APDU)
                assert source[0] == "127.0.0.1"
    finally:
        for receiver in receivers:
            receiver.close()


def test_joining_a_unicast_address_is_refused() -> None:
    with pytest.raises(TransportError, match="not an IPv4 multicast"):
        UdpPushReceiver(0, group="10.1.2.3", interface="127.0.0.1")


def test_broadcast_needs_permission() -> None:
    with UdpPushReceiver(0) as receiver:
        sender = UdpPushSender(
            "127.255.255.255", receiver.address[1], source_wport=1, destination_wport=1
        )
        with sender, pytest.raises(TransportError, match="broadcast=True"):
            sender.send_apdu(b"\x0f")


def test_broadcast_on_loopback() -> None:
    with UdpPushReceiver(0) as receiver:
        try:
            sender = UdpPushSender(
                "127.255.255.255",
                receiver.address[1],
                source_wport=1,
                destination_wport=1,
                broadcast=True,
            )
            with sender:
                sender.send_apdu(PUSH_APDU)
        except TransportError as exc:
            pytest.skip(f"broadcast to 127.255.255.255 not permitted here: {exc}")
        try:
            _, frame = receiver.receive(WAIT_S)
        except ResponseTimeout:
            pytest.skip("the kernel does not deliver broadcasts to 127.255.255.255 on loopback")
        assert frame == WrapperFrame(1, 1, PUSH_APDU)


# --- asyncio -----------------------------------------------------------------------------


def test_asyncio_unicast_round_trips_and_timeout() -> None:
    async def async_echo(source: Address, frame: WrapperFrame) -> bytes | None:
        return None if frame.apdu == b"quiet" else frame.apdu

    async def main() -> None:
        async with await start_udp_server("127.0.0.1", 0, async_echo) as server:
            link = await open_udp_link(*server.address, CLIENT, SERVER)
            async with link:
                typed: AsyncApduLink = link
                for size in (1, 70, 1500, 65499):
                    apdu = bytes(range(256)) * (size // 256) + bytes(size % 256)
                    await typed.send_apdu(apdu)
                    assert await typed.receive_apdu(WAIT_S) == apdu
                await link.send_apdu(b"quiet")
                with pytest.raises(ResponseTimeout):
                    await link.receive_apdu(0.1)
                server.send_frame(WrapperFrame(SERVER, CLIENT, PUSH_APDU), link.local)
                assert await link.receive_apdu(WAIT_S) == PUSH_APDU

    asyncio.run(asyncio.wait_for(main(), 10))


def test_asyncio_link_against_blocking_server_and_refused() -> None:
    port = free_udp_port()

    async def main() -> None:
        with UdpWrapperServer("127.0.0.1", 0, echo) as server:
            async with await open_udp_link(*server.address, CLIENT, SERVER) as link:
                await link.send_apdu(PUSH_APDU)
                assert await link.receive_apdu(WAIT_S) == PUSH_APDU
        async with await open_udp_link("127.0.0.1", port, CLIENT, SERVER) as lost:
            await lost.send_apdu(b"\x01")
            with pytest.raises(TransportError, match="refused"):
                await lost.receive_apdu(WAIT_S)

    asyncio.run(asyncio.wait_for(main(), 10))


def test_asyncio_multicast_push_to_two_receivers() -> None:
    group = group_address()

    async def main() -> None:
        try:
            first = await open_push_receiver(0, group=group, interface="127.0.0.1", reuse_port=True)
        except TransportError as exc:
            pytest.skip(f"the kernel refuses to join {group} on 127.0.0.1: {exc}")
        port = first.address[1]
        second = await open_push_receiver(port, group=group, interface="127.0.0.1", reuse_port=True)
        sender = await open_push_sender(
            group, port, source_wport=SERVER, destination_wport=1, interface="127.0.0.1"
        )
        async with first, second, sender:
            await sender.send_apdu(PUSH_APDU)
            for receiver in (first, second):
                source, frame = await receiver.receive(WAIT_S)
                assert frame == WrapperFrame(SERVER, 1, PUSH_APDU)
                assert source[0] == "127.0.0.1"
            with pytest.raises(ResponseTimeout):
                await first.receive(0.05)

    asyncio.run(asyncio.wait_for(main(), 10))
