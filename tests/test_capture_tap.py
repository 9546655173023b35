"""The capture tap (``capture/tap.py``): the real software meter served over TCP, UDP and a
pseudo-terminal pair (HDLC behind mode E), read by the real client while the process captures
itself; the files decode with ``cosemcast pcap`` to exactly the APDUs the client sent and
received, with monotonic timestamps. Plus the tap's own bookkeeping: TCP sequence numbers,
de-duplication when both ends live in this process, multicast, serial frame cutting."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import socket
import tty
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cosemcast.capture import tap
from cosemcast.capture.pcap import read_pcap, tcp_streams
from cosemcast.capture.serial_pcap import SerialDirection, read_serial_pcap
from cosemcast.capture.tap import capture_paths
from cosemcast.capture.traffic import read_capture
from cosemcast.cli.main import main
from cosemcast.client import Credentials, DlmsClient
from cosemcast.errors import TransportError
from cosemcast.link.wrapper import WrapperFrame
from cosemcast.meter import SoftwareMeter, default_config_text
from cosemcast.transport.serial import FdPort, HdlcSerialLink
from cosemcast.transport.tcp import TcpWrapperLink
from cosemcast.transport.udp import UdpPushReceiver, UdpPushSender, UdpWrapperLink
from test_client_support import RecordingLink

START = dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)
ENERGY, SERIAL = "1-0:1.8.0.255", "0-0:96.1.0.255"


@pytest.fixture(autouse=True)
def no_capture_left() -> Iterator[None]:
    yield
    tap.stop_capture()


@pytest.fixture
def meter(tmp_path: Path) -> Iterator[SoftwareMeter]:
    config = tmp_path / "meter.toml"
    config.write_text(
        default_config_text()
        .replace('transport = "udp"', 'transport = "hdlc"')
        .replace('destination = "127.0.0.1:4060"', 'destination = ""')
        .replace('protection = "general-glo"', 'protection = "none"')
    )
    with SoftwareMeter.from_config(config, tmp_path / "s.sqlite3", clock=lambda: START) as m:
        yield m


def _read_twice(client: DlmsClient) -> None:
    client.associate()
    client.get(ENERGY)
    client.get(SERIAL)
    client.release()


def _pcap_json(
    capsys: pytest.CaptureFixture[str], path: Path, port: int = 4059
) -> list[dict[str, Any]]:
    status = main(["pcap", "--json", "--port", str(port), str(path)])
    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    return [json.loads(line) for line in lines]


def _expected(link: RecordingLink) -> list[bytes]:
    out = []
    for n, sent in enumerate(link.sent):
        out.append(sent)
        if n < len(link.received):
            out.append(link.received[n])
    return out


def _assert_monotonic(timestamps: list[float]) -> None:
    assert timestamps
    assert all(a <= b for a, b in itertools.pairwise(timestamps))


def test_tcp_session_captured_decodes_to_the_same_apdus(
    tmp_path: Path, meter: SoftwareMeter, capsys: pytest.CaptureFixture[str]
) -> None:
    server = meter.serve_tcp("127.0.0.1", 0)
    path = tmp_path / "tcp.pcap"
    tap.start_capture(path)
    link = RecordingLink(TcpWrapperLink.connect("127.0.0.1", server.address[1]))
    with DlmsClient(link, Credentials()) as client:
        _read_twice(client)
    tap.stop_capture()
    port = server.address[1]
    capture = read_capture(path, ports=(port,))
    assert [f.apdu for f in capture.frames if f.apdu] == _expected(link)
    assert [c.transport for c in capture.conversations] == ["tcp"]
    packets = list(read_pcap(path))
    assert packets[0].flags == 0x02 and packets[1].flags == 0x12  # SYN, SYN-ACK
    assert any(p.flags & 0x01 for p in packets)  # a FIN
    _assert_monotonic([p.timestamp for p in packets])
    found = _pcap_json(capsys, path, port)
    assert [f["apdu_type"] for f in found][:2] == ["aarq", "aare"]
    assert {f["status"] for f in found} == {"ok"}


def test_pcap_finds_the_wrapper_on_any_port_without_port_options(
    tmp_path: Path, meter: SoftwareMeter, capsys: pytest.CaptureFixture[str]
) -> None:
    """Our own captures use whatever ports the sockets got: with no --port and nothing on
    4059, `cosemcast pcap` finds the wrapper flows itself (header version 1, sane length)."""
    server = meter.serve_tcp("127.0.0.1", 0)
    udp = meter.serve_udp("127.0.0.1", 0)
    path = tmp_path / "any.pcap"
    tap.start_capture(path)
    link = RecordingLink(TcpWrapperLink.connect("127.0.0.1", server.address[1]))
    with DlmsClient(link, Credentials()) as client:
        _read_twice(client)
    noise = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    noise.sendto(b"\x00\x01not a wrapper at all", udp.local)  # version 1, wrong length
    noise.close()
    tap.stop_capture()
    assert read_capture(path).frames == ()
    status = main(["pcap", "--json", str(path)])
    found = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert status == 0
    assert [f["apdu_type"] for f in found][:2] == ["aarq", "aare"]
    assert len(found) == len(_expected(link))
    assert {f["transport"] for f in found} == {"tcp"}


def test_udp_session_captured_once_although_both_ends_report_it(
    tmp_path: Path, meter: SoftwareMeter, capsys: pytest.CaptureFixture[str]
) -> None:
    server = meter.serve_udp("127.0.0.1", 0)
    path = tmp_path / "udp.pcap"
    with tap.start_capture(path):
        link = RecordingLink(UdpWrapperLink.connect("127.0.0.1", server.address[1]))
        with DlmsClient(link, Credentials()) as client:
            _read_twice(client)
    tap.stop_capture()
    packets = list(read_pcap(path))
    assert [WrapperFrame.decode(p.payload).apdu for p in packets] == _expected(link)
    meter_port = server.address[1]
    assert [p.dport == meter_port for p in packets] == [n % 2 == 0 for n in range(len(packets))]
    assert all(p.src == p.dst == "127.0.0.1" for p in packets)
    _assert_monotonic([p.timestamp for p in packets])
    assert {f["status"] for f in _pcap_json(capsys, path, meter_port)} == {"ok"}


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(slave)
        os.close(master)


def test_serial_mode_e_hdlc_session_captured_as_link_type_147(
    tmp_path: Path,
    meter: SoftwareMeter,
    pty_pair: tuple[int, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    master, slave_path = pty_pair
    path = tmp_path / "serial.pcap"
    tap.start_capture(None, serial_path=path)
    meter.serve_serial(FdPort(os.dup(master)), mode_e=True)
    hdlc = HdlcSerialLink.open(slave_path, mode_e=True, handover_delay_s=0.05)
    hdlc.response_timeout_s = 1.0
    hdlc.connect(timeout_s=15)
    link = RecordingLink(hdlc)
    with DlmsClient(link, Credentials()) as client:
        _read_twice(client)
    tap.stop_capture()
    records = list(read_serial_pcap(path))
    _assert_monotonic([r.timestamp for r in records])
    assert records[0].direction is SerialDirection.CLIENT_TO_SERVER
    assert records[0].data.translate(bytes(b & 0x7F for b in range(256))) == b"/?!\r\n"
    hdlc_records = [r for r in records if r.data[:1] == b"\x7e"]
    assert all(r.data[-1:] == b"\x7e" for r in hdlc_records)
    capture = read_capture(path)
    assert [f.apdu for f in capture.frames if f.apdu] == _expected(link)
    found = _pcap_json(capsys, path)
    kinds = [f.get("apdu_type") or f["summary"] for f in found]
    assert kinds[0].startswith("serial bytes (not HDLC)")  # the mode E request
    assert any(k.startswith("max-info") for k in kinds) and "aarq" in kinds
    assert {f["status"] for f in found} == {"ok"}


def test_multicast_push_received_by_three_sockets_is_written_once(tmp_path: Path) -> None:
    path = tmp_path / "push.pcap"
    receivers = [UdpPushReceiver(0, group="239.255.77.1", interface="127.0.0.1", reuse_port=True)]
    port = receivers[0].address[1]
    receivers += [
        UdpPushReceiver(port, group="239.255.77.1", interface="127.0.0.1", reuse_port=True)
        for _ in range(2)
    ]
    try:
        with (
            tap.start_capture(path),
            UdpPushSender(
                "239.255.77.1", port, source_wport=1, destination_wport=16, interface="127.0.0.1"
            ) as sender,
        ):
            sender.send_apdu(bytes.fromhex("0F0000000100"))
            for receiver in receivers:
                assert receiver.receive(10)[1].apdu == bytes.fromhex("0F0000000100")
    except TransportError as exc:  # pragma: no cover - a host without multicast routing
        pytest.skip(f"multicast on loopback unavailable: {exc}")
    finally:
        for receiver in receivers:
            receiver.close()
    packets = list(read_pcap(path))
    assert len(packets) == 1
    assert packets[0].dst == "239.255.77.1" and packets[0].dport == port


def test_tcp_sequence_numbers_are_consistent_and_dedup_works(tmp_path: Path) -> None:
    path = tmp_path / "seq.pcap"
    ticks = iter(range(1000))
    t = tap.CaptureTap(path, clock=lambda: 1000.0 + next(ticks))
    client, server = ("10.0.0.1", 50000), ("10.0.0.2", 4059)
    t.tcp_open(client, server)
    t.tcp_open(client, server)  # the other end reports the same connection
    t.tcp_data(client, server, b"abc", "send")
    t.tcp_data(client, server, b"ab", "receive")  # the receiver sees a prefix: nothing new
    t.tcp_data(client, server, b"cde", "receive")  # ... then "c" again and "de" is new
    t.tcp_data(client, server, b"de", "send")  # the sender catches up: nothing new
    t.tcp_data(server, client, b"xyz", "send")
    t.tcp_close(client, server)
    t.tcp_close(client, server)
    t.close()
    packets = list(read_pcap(path))
    assert [p.flags for p in packets] == [0x02, 0x12, 0x10, 0x18, 0x18, 0x18, 0x11]
    up = [p for p in packets if p.src == "10.0.0.1"]
    assert up[1].seq == up[0].seq + 1  # the ACK after SYN
    assert up[2].payload == b"abc" and up[3].payload == b"de"
    assert up[3].seq == up[2].seq + 3 and up[4].seq == up[3].seq + 2  # the FIN
    up_stream = [s for s in tcp_streams(packets) if s.src == "10.0.0.1"]
    assert [bytes(s.data) for s in up_stream] == [b"abcde"]
    _assert_monotonic([p.timestamp for p in packets])


def test_serial_bytes_are_cut_into_frames_and_other_bytes(tmp_path: Path) -> None:
    path = tmp_path / "line.pcap"
    t = tap.CaptureTap(None, serial_path=path, clock=lambda: 5.0)
    snrm = bytes.fromhex("7EA00802232193B1E97E")
    t.serial(SerialDirection.CLIENT_TO_SERVER, b"/?!\r\n" + snrm[:4], "write")
    t.serial(SerialDirection.CLIENT_TO_SERVER, snrm[4:] + snrm, "write")
    t.serial(SerialDirection.CLIENT_TO_SERVER, b"/?!\r\n" + snrm + snrm, "read")  # echo: dropped
    t.serial(SerialDirection.SERVER_TO_CLIENT, b"\x7e\xa0", "read")  # never completed
    t.close()
    records = [(r.direction, r.data) for r in read_serial_pcap(path)]
    c2s = SerialDirection.CLIENT_TO_SERVER
    assert records == [
        (c2s, b"/?!\r\n"),
        (c2s, snrm),
        (c2s, snrm),
        (SerialDirection.SERVER_TO_CLIENT, b"\x7e\xa0"),
    ]


def test_one_capture_at_a_time_and_nothing_captured_after_stop(tmp_path: Path) -> None:
    first = tap.start_capture(tmp_path / "a.pcap")
    with pytest.raises(RuntimeError):
        tap.start_capture(tmp_path / "b.pcap")
    assert tap.stop_capture() is first and tap.active is None
    assert first.closed
    with pytest.raises(ValueError):
        tap.CaptureTap(None)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with UdpWrapperLink.connect("127.0.0.1", port) as link:
            link.send_apdu(b"\x60\x00")
    assert (tmp_path / "a.pcap").stat().st_size == 24  # the header only


def test_meter_serve_and_read_with_pcap_write_the_same_session(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``cosemcast meter serve --pcap`` in its own process, ``cosemcast read --pcap`` here:
    two independent captures of one session, from each end, decode alike."""
    from test_meter_cli import Served

    meter_pcap, client_pcap = tmp_path / "meter.pcap", tmp_path / "client.pcap"
    served = Served(
        "--tcp", "127.0.0.1:0", "--state", str(tmp_path / "m.sqlite3"), "--pcap", str(meter_pcap)
    )
    try:
        host, port = served.address()
        status = main(["read", "--tcp", f"{host}:{port}", ENERGY, "--pcap", str(client_pcap)])
        assert status == 0
        capsys.readouterr()
    finally:
        served.interrupt()
    seen = []
    for path in (meter_pcap, client_pcap):
        found = _pcap_json(capsys, path, port)
        assert {f["status"] for f in found} == {"ok"}
        seen.append([(f["source"], f["destination"], f["apdu_type"]) for f in found])
    assert seen[0] == seen[1]
    kinds = [kind for _, _, kind in seen[0]]
    assert kinds[:2] == ["aarq", "aare"] and kinds[-2:] == ["rlrq", "rlre"]
    assert any(kind.startswith("get-response") for kind in kinds)


def test_asyncio_transports_are_captured_too(tmp_path: Path) -> None:
    import asyncio

    from cosemcast.transport import aio

    async def echo(connection: object, frame: WrapperFrame) -> bytes:
        return b"\xc4" + frame.apdu

    async def session() -> tuple[int, int]:
        tcp_server = await aio.start_tcp_server("127.0.0.1", 0, echo)
        udp_server = await aio.start_udp_server("127.0.0.1", 0, echo)
        try:
            link = await aio.open_tcp_link("127.0.0.1", tcp_server.address[1])
            await link.send_apdu(b"\x01\x02")
            assert await link.receive_apdu(10) == b"\xc4\x01\x02"
            await link.close()
            udp = await aio.open_udp_link("127.0.0.1", udp_server.address[1])
            await udp.send_apdu(b"\x03")
            assert await udp.receive_apdu(10) == b"\xc4\x03"
            await udp.close()
        finally:
            await tcp_server.close()
            await udp_server.close()
        return tcp_server.address[1], udp_server.address[1]

    path = tmp_path / "aio.pcap"
    with tap.start_capture(path):
        tcp_port, udp_port = asyncio.run(session())
    capture = read_capture(path, ports=(tcp_port, udp_port))
    seen = [(f.conversation.transport, f.apdu) for f in capture.frames if f.apdu]
    assert seen == [
        ("tcp", b"\x01\x02"),
        ("tcp", b"\xc4\x01\x02"),
        ("udp", b"\x03"),
        ("udp", b"\xc4\x03"),
    ]
    flags = [p.flags for p in read_pcap(path) if p.protocol == "tcp"]
    assert flags[:3] == [0x02, 0x12, 0x10] and sum(1 for f in flags if f & 0x01) == 2


def test_real_hls_gmac_session_captured_deciphers_and_the_hls_pass_verifies(
    tmp_path: Path, meter: SoftwareMeter, capsys: pytest.CaptureFixture[str]
) -> None:
    """The management client of the default meter (HLS-GMAC, suite 0 glo-ciphering, the
    public test keys of captures/keys.toml), read under capture: `cosemcast pcap --keys`
    deciphers every APDU and checks f(StoC) and f(CtoS)."""
    from cosemcast.client import Authentication

    server = meter.serve_tcp("127.0.0.1", 0)
    credentials = Credentials(
        client_sap=1,
        auth=Authentication.HLS_GMAC,
        system_title=bytes.fromhex("4142434445464748"),
        server_system_title=bytes.fromhex("4D4D4D0000BC614E"),
        unicast_key=bytes.fromhex("000102030405060708090A0B0C0D0E0F"),
        authentication_key=bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"),
        counters=tmp_path / "client-counters.sqlite",
    )
    path = tmp_path / "hls.pcap"
    with tap.start_capture(path):
        client = DlmsClient.tcp("127.0.0.1", server.address[1], credentials)
        with client:
            _read_twice(client)
    keys = Path(__file__).resolve().parents[1] / "captures" / "keys.toml"
    status = main(
        ["pcap", "--json", "--keys", str(keys), "--port", str(server.address[1]), str(path)]
    )
    found = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert status == 0, [f["summary"] for f in found]
    assert {f["status"] for f in found} == {"ok"}
    summaries = " ".join(f["summary"] for f in found)
    assert "(HLS f(StoC) verified)" in summaries and "(HLS f(CtoS) verified)" in summaries
    assert [f.get("deciphered_type") for f in found if f["apdu_type"].startswith("glo-get")] == [
        "get-request-normal",
        "get-response-normal",
    ] * 2


def test_headend_listen_pcap_captures_what_it_receives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cosemcast headend listen --pcap` in its own process: a datagram it refuses (truncated
    DATA-NOTIFICATION) is in its capture, and `cosemcast pcap` shows it malformed with the
    offset."""
    import signal
    import subprocess
    import sys
    import time

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    (tmp_path / "k.toml").write_text('system_title = "4142434445464748"\n')
    path = tmp_path / "he.pcap"
    command = [
        sys.executable, "-m", "cosemcast", "headend", "listen", "--udp", f"127.0.0.1:{port}",
        "--keys", str(tmp_path / "k.toml"), "--db", str(tmp_path / "he.sqlite3"),
        "--pcap", str(path),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    truncated = bytes.fromhex("0F00000001000203090101")
    try:
        deadline = time.monotonic() + 20
        datagram = WrapperFrame(1, 16, truncated).encode()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            while not path.exists() or path.stat().st_size <= 24:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the head-end captured nothing"
                sender.sendto(datagram, ("127.0.0.1", port))  # again until the head-end is up
                time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr
    status = main(["pcap", "--json", "--port", str(port), str(path)])
    found = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert status == 2 and found
    assert {f["status"] for f in found} == {"malformed"}
    assert "at offset 11 of the APDU (UDP datagram in packet" in found[0]["problem"]


def test_read_serial_pcap_writes_link_type_147(
    tmp_path: Path,
    meter: SoftwareMeter,
    pty_pair: tuple[int, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    master, slave_path = pty_pair
    meter.serve_serial(FdPort(os.dup(master)), mode_e=True)
    path = tmp_path / "read.pcap"
    status = main(["read", "--serial", slave_path, "--mode-e", SERIAL, "--pcap", str(path)])
    assert status == 0, capsys.readouterr().err
    capsys.readouterr()
    assert path.read_bytes()[20] == 147  # the link type (little-endian header)
    found = _pcap_json(capsys, path)
    kinds = [f.get("apdu_type") for f in found if f.get("apdu_type")]
    assert kinds[:2] == ["aarq", "aare"] and "get-response-normal" in kinds
    assert capture_paths(path, ip=True, serial=True) == (path, tmp_path / "read-serial.pcap")


def test_meter_push_is_captured_and_deciphers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The meter's scheduled push (meter/_push.py -> UdpPushSender) to a receiver in this
    process: written once, and `cosemcast pcap --keys captures/keys.toml` opens its
    general-glo-ciphering (the default meter's public test keys)."""
    from test_meter_support import FakeClock

    with UdpPushReceiver(0, host="127.0.0.1") as receiver:
        port = receiver.address[1]
        config = tmp_path / "meter.toml"
        config.write_text(default_config_text().replace('"127.0.0.1:4060"', f'"127.0.0.1:{port}"'))
        clock = FakeClock()
        path = tmp_path / "push.pcap"
        with (
            SoftwareMeter.from_config(config, tmp_path / "s.sqlite3", clock=clock) as meter,
            tap.start_capture(path),
        ):
            clock.advance(minutes=16)
            meter.advance_to()
            receiver.receive(10)
    keys = Path(__file__).resolve().parents[1] / "captures" / "keys.toml"
    status = main(["pcap", "--json", "--keys", str(keys), "--port", str(port), str(path)])
    found = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert status == 0
    assert [(f["apdu_type"], f["deciphered_type"]) for f in found] == [
        ("general-glo-ciphering", "data-notification")
    ]
