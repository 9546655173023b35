"""The NATS JetStream readings sink against a real ``nats-server -js`` (issue 7 item 4).

Each test starts its own broker on a random loopback port (``-p -1``, the port read from the
server's log) with its own store directory, and skips when ``nats-server`` or ``nats-py`` is
not installed. Readings come from a real :class:`HeadEndService` fed real C2s and C1s over
UDP, and are read back from the stream with nats-py. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cosemcast.apdu.common import LongInvokeIdAndPriority
from cosemcast.apdu.notifications import DataNotification
from cosemcast.axdr import DoubleLongUnsigned, OctetString, Structure
from cosemcast.headend import HeadEnd, HeadEndService, Reading, ReadingSink, SqliteHeadEndStore
from cosemcast.headend.readings import ReadingsError, ReadingValue
from cosemcast.headend.sink_nats import (
    NatsJetStreamSink,
    NatsSinkConfig,
    message_id,
    partition_of,
    subject_of,
)
from cosemcast.sharedpayload import (
    HeadEndAssignment,
    MemoryCounterSource,
    PayloadSealer,
    RenewalPolicy,
    as_general_ciphering,
)
from cosemcast.sharedpayload.messages import KpId
from cosemcast.transport.udp import UdpWrapperLink

WAIT_S = 15.0
HEAD_END = bytes.fromhex("4D4D4D00000000E1")
PREFIX = "cosemcast.readings"

# Debian installs it in /usr/sbin, which a non-root PATH may lack.
NATS_SERVER = shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin")
needs_broker = pytest.mark.skipif(NATS_SERVER is None, reason="nats-server is not installed")


@dataclass
class Broker:
    port: int
    store_dir: Path
    process: subprocess.Popen[str]
    jetstream: bool

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_broker(store_dir: Path, *, port: int = -1, jetstream: bool = True) -> Broker:
    assert NATS_SERVER is not None
    command = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(port), "-sd", str(store_dir)]
    if jetstream:
        command.insert(1, "-js")
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    deadline = time.monotonic() + WAIT_S
    found: int | None = None
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        match = re.search(r"Listening for client connections on [\d.]+:(\d+)", line)
        if match:
            found = int(match.group(1))
        if "Server is ready" in line and found is not None:
            # Keep draining the log so the broker never blocks on a full pipe.
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return Broker(found, store_dir, process, jetstream)
    process.kill()
    process.wait(10)
    pytest.fail("nats-server did not start")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    pytest.importorskip("nats")
    running = start_broker(tmp_path / "js")
    yield running
    running.stop()


def stream_messages(url: str, stream: str, subject: str = f"{PREFIX}.>") -> list[Any]:
    """Every message of ``stream`` on ``subject``, read back with an ephemeral pull consumer."""
    import nats

    async def read() -> list[Any]:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            sub = await js.pull_subscribe(subject, stream=stream)
            out: list[Any] = []
            while True:
                try:
                    batch = await sub.fetch(500, timeout=1.0)
                except TimeoutError:  # nats.errors.TimeoutError is one
                    return out
                for msg in batch:
                    await msg.ack()
                out.extend(batch)
        finally:
            await nc.close()

    return asyncio.run(read())


def stream_count(url: str, stream: str) -> int:
    import nats

    async def count() -> int:
        nc = await nats.connect(url)
        try:
            info = await nc.jetstream().stream_info(stream)
            return int(info.state.messages)
        finally:
            await nc.close()

    return asyncio.run(count())


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def ks(meter: bytes) -> bytes:
    return hashlib.sha256(b"Ks" + meter).digest()[:16]


def notification(value: int) -> bytes:
    body = Structure((OctetString(bytes.fromhex("0100010800FF")), DoubleLongUnsigned(value)))
    return DataNotification(LongInvokeIdAndPriority(value & 0xFFFFFF), None, body).encode()


def fake_reading(meter_index: int, ic: int) -> Reading:
    """A reading as the head-end would build it (for tests that bypass decryption)."""
    return Reading(
        HEAD_END,
        b"TST\x00" + meter_index.to_bytes(4, "big"),
        KpId(1, 1),
        ic,
        time.time(),
        None,
        (ReadingValue("0", "double-long-unsigned", meter_index * 1000 + ic),),
    )


# --- pure parts --------------------------------------------------------------------------------


def test_partition_is_crc32_of_the_system_title_mod_p() -> None:
    # CRC-32/ISO-HDLC check value: crc32(b"123456789") = 0xCBF43926.
    assert partition_of(b"123456789", 1 << 16) == 0xCBF43926 % (1 << 16)
    title = bytes.fromhex("4D4D4D0000BC614E")
    assert subject_of("x.y", title, 8) == f"x.y.{partition_of(title, 8)}.4D4D4D0000BC614E"
    counts = [0] * 16
    for i in range(16_000):
        counts[partition_of(b"MMM" + i.to_bytes(5, "big"), 16)] += 1
    assert min(counts) > 800  # every partition gets its share of sequential titles


def test_message_id_names_meter_kp_and_counter() -> None:
    reading = fake_reading(7, 42)
    assert message_id(reading) == "5453540000000007|0000000100000001|42"


def test_config_from_url() -> None:
    config = NatsSinkConfig.from_url("nats://a:4333,b/READINGS", partitions=4)
    assert config.servers == ("nats://a:4333", "nats://b:4222")
    assert config.stream == "READINGS"
    assert config.partitions == 4
    secret = NatsSinkConfig.from_url("nats://u:pw@h:1")
    assert (secret.user, secret.password, secret.stream) == ("u", "pw", "COSEMCAST_READINGS")
    assert "pw" not in repr(secret)
    custom = NatsSinkConfig.from_url("nats://h/R_A?prefix=op.a.readings&partitions=64")
    assert (custom.stream, custom.subject_prefix, custom.partitions) == (
        "R_A",
        "op.a.readings",
        64,
    )
    for bad in (
        "http://h:1",
        "nats://",
        "nats://h/bad.name",
        "nats://h/S?prefix=a.>",
        "nats://h/S?partitions=x",
        "nats://h/S?colour=red",
    ):
        with pytest.raises(ValueError):
            NatsSinkConfig.from_url(bad)


# --- against a real broker ---------------------------------------------------------------------


@needs_broker
def test_headend_readings_reach_the_stream_partitioned_by_meter(
    broker: Broker, tmp_path: Path
) -> None:
    partitions = 4
    meters = [b"MMM\x00\x00\x00\x10" + bytes([i]) for i in range(10)]
    store = SqliteHeadEndStore(tmp_path / "he.sqlite", system_title=HEAD_END, synchronous="NORMAL")
    for meter in meters:
        store.set_credentials(meter, shared_key=ks(meter))
    nats_sink = NatsJetStreamSink(
        NatsSinkConfig.from_url(f"{broker.url}/READINGS", partitions=partitions)
    )
    sink = ReadingSink(db_path=tmp_path / "he.sqlite", also=[nats_sink])
    head_end = HeadEnd(HEAD_END, store, sink)
    service = HeadEndService(head_end, udp=("127.0.0.1", 0))
    service.start()
    sent: dict[tuple[str, int], int] = {}
    try:
        assert service.udp is not None
        link = UdpWrapperLink.connect("127.0.0.1", int(service.udp.address[1]), 1, 1)
        try:
            for n, meter in enumerate(meters):
                sealer = PayloadSealer(
                    system_title=meter,
                    head_ends=[HeadEndAssignment(HEAD_END, ks(meter))],
                    counters=MemoryCounterSource(),
                    rng=random.Random(meter).randbytes,
                    policy=RenewalPolicy(max_payloads=None),
                )
                sealer.renew(time.time())
                for _, c2 in sealer.control_messages(time.time()):
                    link.send_apdu(c2.encode())
                    sealer.accept_ack(as_general_ciphering(link.receive_apdu(WAIT_S)))
                for k in range(5):
                    value = n * 100 + k
                    c1 = sealer.seal_c1(notification(value), time.time())
                    sent[(meter.hex().upper(), c1.invocation_counter)] = value
                    link.send_apdu(c1.encode())
        finally:
            link.close()
        wait_for(lambda: head_end.stats()["opened"] == len(sent), "every C1 opened")
        nats_sink.flush(WAIT_S)
    finally:
        service.close()
        sink.close()
        store.close()
    assert nats_sink.stats()["published"] == len(sent)
    assert nats_sink.stats()["duplicates"] == 0

    messages = stream_messages(broker.url, "READINGS")
    assert len(messages) == len(sent)
    got: dict[tuple[str, int], int] = {}
    partition_of_meter: dict[str, int] = {}
    for msg in messages:
        record = json.loads(msg.data)
        meter_hex = record["meter"]
        partition = partition_of(bytes.fromhex(meter_hex), partitions)
        assert msg.subject == f"{PREFIX}.{partition}.{meter_hex}"
        assert record["partition"] == partition
        assert msg.headers["Cosemcast-Partition"] == str(partition)
        assert msg.headers["Nats-Msg-Id"] == (
            f"{meter_hex}|{record['kp_id']}|{record['invocation_counter']}"
        )
        assert partition_of_meter.setdefault(meter_hex, partition) == partition
        got[(meter_hex, record["invocation_counter"])] = record["values"][1]["value"]
    assert got == sent

    # A consumer of one partition sees exactly the meters that hash to it.
    for p in range(partitions):
        part = stream_messages(broker.url, "READINGS", f"{PREFIX}.{p}.>")
        assert {json.loads(m.data)["meter"] for m in part} == {
            m for m, q in partition_of_meter.items() if q == p
        }
    assert len(set(partition_of_meter.values())) > 1


@needs_broker
def test_a_republished_reading_is_stored_once(broker: Broker) -> None:
    config = NatsSinkConfig.from_url(f"{broker.url}/DEDUP", partitions=3)
    readings = [fake_reading(m, ic) for m in range(20) for ic in range(1, 4)]
    with NatsJetStreamSink(config) as first:
        for reading in readings:
            first.write(reading)
    assert first.stats()["duplicates"] == 0
    # A second publisher (a retry after a restart, or a second head-end of the same operator)
    # sends the same C1s again, plus one new one.
    second = NatsJetStreamSink(config)
    for reading in readings:
        second.write(reading)
    second.write(fake_reading(99, 1))
    second.close()
    assert second.stats()["published"] == len(readings) + 1
    assert second.stats()["duplicates"] == len(readings)
    assert stream_count(broker.url, "DEDUP") == len(readings) + 1


@needs_broker
def test_broker_restart_loses_and_duplicates_nothing(broker: Broker) -> None:
    config = NatsSinkConfig.from_url(
        f"{broker.url}/RESTART", partitions=2, ack_timeout_s=1.0, max_retries=30
    )
    sink = NatsJetStreamSink(config)
    total = 600
    for i in range(total // 2):
        sink.write(fake_reading(i % 50, 1 + i // 50))
    broker.process.send_signal(signal.SIGKILL)
    broker.process.wait(10)
    for i in range(total // 2, total):
        sink.write(fake_reading(i % 50, 1 + i // 50))  # buffered while the broker is down
    restarted = start_broker(broker.store_dir, port=broker.port)
    try:
        sink.flush(WAIT_S * 2)
        sink.close()
        stats = sink.stats()
        assert stats["failed"] == 0
        assert stats["published"] == total
        assert stream_count(restarted.url, "RESTART") == total
        ids = {m.headers["Nats-Msg-Id"] for m in stream_messages(restarted.url, "RESTART")}
        assert len(ids) == total
    finally:
        restarted.stop()


@needs_broker
def test_a_stalled_broker_fills_the_buffer_then_write_refuses(broker: Broker) -> None:
    config = NatsSinkConfig.from_url(
        f"{broker.url}/STALL", max_in_flight=50, buffer_wait_s=0.5, ack_timeout_s=30.0
    )
    sink = NatsJetStreamSink(config)
    os.kill(broker.process.pid, signal.SIGSTOP)
    try:
        for i in range(50):
            sink.write(fake_reading(i, 1))
        with pytest.raises(ReadingsError, match="await the broker"):
            sink.write(fake_reading(50, 1))
        assert sink.stats()["refused_full"] == 1
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)
    sink.flush(WAIT_S)
    sink.close()
    assert sink.stats()["published"] == 50
    assert stream_count(broker.url, "STALL") == 50


@needs_broker
def test_unreachable_broker_and_missing_jetstream_are_clear_errors(tmp_path: Path) -> None:
    pytest.importorskip("nats")
    plain = start_broker(tmp_path / "plain", jetstream=False)
    port = plain.port
    try:
        with pytest.raises(ReadingsError, match="no JetStream"):
            NatsJetStreamSink(NatsSinkConfig.from_url(plain.url, connect_timeout_s=2))
    finally:
        plain.stop()
    with pytest.raises(ReadingsError, match="cannot reach the NATS server"):
        NatsJetStreamSink(NatsSinkConfig.from_url(f"nats://127.0.0.1:{port}"))


@needs_broker
def test_an_existing_stream_on_other_subjects_is_refused(broker: Broker) -> None:
    NatsJetStreamSink(NatsSinkConfig.from_url(f"{broker.url}/TAKEN")).close()
    other = NatsSinkConfig(servers=(broker.url,), stream="TAKEN", subject_prefix="other.prefix")
    with pytest.raises(ReadingsError, match=r"not other\.prefix"):
        NatsJetStreamSink(other)
    with pytest.raises(ReadingsError, match="does not exist"):
        NatsJetStreamSink(
            NatsSinkConfig(servers=(broker.url,), stream="MISSING", create_stream=False)
        )


@needs_broker
def test_cli_listen_publishes_to_the_sink(broker: Broker, tmp_path: Path) -> None:
    meter = bytes.fromhex("4D4D4D0000BC614F")
    (tmp_path / "keys.toml").write_text(
        f'system_title = "{HEAD_END.hex()}"\n[meters.{meter.hex()}]\nks = "{ks(meter).hex()}"\n'
    )
    command = [
        sys.executable,
        "-m",
        "cosemcast",
        "headend",
        "listen",
        "--udp",
        "127.0.0.1:0",
        "--keys",
        str(tmp_path / "keys.toml"),
        "--db",
        str(tmp_path / "he.sqlite3"),
        "--out",
        str(tmp_path / "readings.jsonl"),
        "--sink",
        f"{broker.url}/CLI",
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        port = None
        deadline = time.monotonic() + WAIT_S
        while port is None and time.monotonic() < deadline:
            match = re.search(r"listening: udp 127\.0\.0\.1:(\d+)", process.stderr.readline())
            port = int(match.group(1)) if match else None
        assert port is not None, "the head-end did not say where it listens"
        threading.Thread(target=process.stderr.read, daemon=True).start()
        sealer = PayloadSealer(
            system_title=meter,
            head_ends=[HeadEndAssignment(HEAD_END, ks(meter))],
            counters=MemoryCounterSource(),
            rng=random.Random(meter).randbytes,
        )
        sealer.renew(time.time())
        with UdpWrapperLink.connect("127.0.0.1", port, 1, 1) as link:
            for _, c2 in sealer.control_messages(time.time()):
                link.send_apdu(c2.encode())
                sealer.accept_ack(as_general_ciphering(link.receive_apdu(WAIT_S)))
            for value in (11, 12, 13):
                link.send_apdu(sealer.seal_c1(notification(value), time.time()).encode())
        wait_for(
            lambda: (
                (tmp_path / "readings.jsonl").exists()
                and len((tmp_path / "readings.jsonl").read_text().splitlines()) == 3
            ),
            "three readings written",
        )
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(WAIT_S) == 0
    messages = stream_messages(broker.url, "CLI")
    assert [json.loads(m.data)["values"][1]["value"] for m in messages] == [11, 12, 13]
    assert {m.subject for m in messages} == {subject_of(PREFIX, meter, 16)}


@needs_broker
def test_cli_listen_stops_with_a_clear_error_when_the_sink_is_unreachable(
    tmp_path: Path,
) -> None:
    pytest.importorskip("nats")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]  # closed again: nothing listens there
    (tmp_path / "keys.toml").write_text(f'system_title = "{HEAD_END.hex()}"\n')
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cosemcast",
            "headend",
            "listen",
            "--udp",
            "127.0.0.1:0",
            "--keys",
            str(tmp_path / "keys.toml"),
            "--db",
            str(tmp_path / "he.sqlite3"),
            "--sink",
            f"nats://127.0.0.1:{dead}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "cannot reach the NATS server" in done.stderr
