"""The sharded head-end (specs/shared-payload.md §9.4): two real worker processes on one UDP
port on 127.0.0.1, meters sending real C2s and C1s from their own sockets, every reading
read exactly once, by the worker that owns the meter, with the kernel steering by meter
(SO_REUSEPORT BPF program) or, without it, with misrouted datagrams forwarded."""

from __future__ import annotations

import json
import random
import socket
import sqlite3
import struct
import time
from pathlib import Path

import pytest

from cosemcast.headend.shard import (
    ShardedHeadEnd,
    ShardError,
    meter_of,
    shard_file,
    shard_of,
    steering_program,
)
from cosemcast.sharedpayload import (
    AckKind,
    HeadEndAssignment,
    MemoryCounterSource,
    PayloadSealer,
    RenewalPolicy,
    as_general_ciphering,
)
from cosemcast.transport.udp import UdpPushSender, UdpWrapperLink
from test_headend_e2e import SUPPLIER, WAIT_S, free_udp_port, ks, readings, wait_for

METERS = [bytes.fromhex("4D4D4D00") + (0x1000 + n * 37).to_bytes(4, "big") for n in range(10)]


def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.toml"
    lines = [f'system_title = "{SUPPLIER.hex()}"']
    for meter in METERS:
        lines += [f"[meters.{meter.hex()}]", f'ks = "{ks(SUPPLIER, meter).hex()}"']
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_shard_function_and_the_bpf_program_agree() -> None:
    program = steering_program(3)
    assert len(program) % 8 == 0
    assert struct.unpack_from("HBBI", program, 16 * 8) == (0x94, 0, 0, 3)  # mod #3
    assert [shard_of(m, 2) for m in METERS].count(0) not in (0, len(METERS))
    c1_like = bytes.fromhex("DD08") + bytes(8) + b"\x08" + METERS[3]
    assert meter_of(c1_like) == METERS[3]
    assert meter_of(b"\xdd\x08" + bytes(20)) is None
    assert shard_file(Path("/x/h.sqlite3"), 1, 2) == Path("/x/h.shard-1-of-2.sqlite3")


@pytest.mark.parametrize("steer", [True, False], ids=["kernel-steered+multicast", "forwarded"])
def test_two_workers_read_every_reading_exactly_once(tmp_path: Path, steer: bool) -> None:
    """Steered: C2s unicast, C1s to a multicast group (every worker gets a copy, the owner
    reads it). Forwarded: no BPF program, everything unicast and acknowledged."""
    group = (f"239.255.{random.randint(1, 254)}.{random.randint(1, 254)}", free_udp_port())
    sharded = ShardedHeadEnd(
        workers=2,
        keys=keys_file(tmp_path),
        db=tmp_path / "h.sqlite3",
        udp=("127.0.0.1", group[1] if steer else 0),
        group=group if steer else None,
        interface="127.0.0.1",
        out=tmp_path / "readings.jsonl",
        steer=steer,
    )
    try:
        sharded.start()
    except ShardError as exc:
        if steer:
            pytest.skip(f"the kernel refuses the multicast set-up on 127.0.0.1: {exc}")
        raise
    links: list[UdpWrapperLink] = []
    multicast = UdpPushSender(*group, source_wport=1, destination_wport=1, interface="127.0.0.1")
    try:
        assert sharded.address is not None
        host, port = sharded.address
        expected = set()
        for n, meter in enumerate(METERS):
            sealer = PayloadSealer(
                system_title=meter,
                head_ends=[HeadEndAssignment(SUPPLIER, ks(SUPPLIER, meter))],
                counters=MemoryCounterSource(),
                rng=random.Random(n).randbytes,
                policy=RenewalPolicy(ack_payloads=not steer, max_payloads=3),
            )
            link = UdpWrapperLink.connect(host, port, 1, 1)  # its own source port
            links.append(link)
            for value in range(5):
                c1 = sealer.seal_c1(readings(n * 100 + value), time.time())
                expected.add((meter.hex().upper(), n * 100 + value))
                for _, c2 in sealer.control_messages(time.time()):
                    link.send_apdu(c2.encode())
                    ack = sealer.accept_ack(as_general_ciphering(link.receive_apdu(WAIT_S)))
                    assert ack.kind is AckKind.CONTROL
                if steer:
                    multicast.send_apdu(c1.encode())
                    continue
                link.send_apdu(c1.encode())
                ack = sealer.accept_ack(as_general_ciphering(link.receive_apdu(WAIT_S)))
                assert ack.acknowledged_ic == c1.invocation_counter
        wait_for(
            lambda: sum(s["opened"] for s in sharded.stats()) == len(expected), "every reading"
        )
    finally:
        multicast.close()
        for link in links:
            link.close()
        final = sharded.stop()
    assert len(final) == 2 and sum(s["rejected"] for s in final) == 0
    if steer:
        assert final[0]["steered"] == 1
        assert sum(s["forwarded"] for s in final) == 0  # the kernel chose every owner
        assert sum(s["declined"] for s in final) == len(expected)  # the other copy
    else:
        assert sum(s["forwarded"] for s in final) > 0  # the kernel hash misroutes some
    # Each worker's readings table holds its own meters' readings, the union all of them.
    for index, path in enumerate(sharded.files()):
        with sqlite3.connect(path) as conn:
            got = conn.execute("SELECT meter, body_json FROM readings").fetchall()
        assert {shard_of(bytes.fromhex(m), 2) for m, _ in got} <= {index}
    tables = []
    for path in sharded.files():
        with sqlite3.connect(path) as conn:
            for meter, body in conn.execute("SELECT meter, body_json FROM readings"):
                tables.append((meter, json.loads(body)[1]["value"]))
    assert sorted(tables) == sorted(expected)
    lines = (tmp_path / "readings.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert sorted((r["meter"], r["values"][1]["value"]) for r in records) == sorted(expected)


def test_a_different_number_of_workers_is_refused(tmp_path: Path) -> None:
    shard_file(tmp_path / "h.sqlite3", 0, 3).write_bytes(b"")
    sharded = ShardedHeadEnd(
        workers=2, keys=keys_file(tmp_path), db=tmp_path / "h.sqlite3", udp=("127.0.0.1", 0)
    )
    with pytest.raises(ShardError, match="re-sharding"):
        sharded.start()


def test_misrouted_garbage_is_refused_not_lost_in_forwarding(tmp_path: Path) -> None:
    sharded = ShardedHeadEnd(
        workers=2,
        keys=keys_file(tmp_path),
        db=tmp_path / "h.sqlite3",
        udp=("127.0.0.1", 0),
        out=tmp_path / "r.jsonl",
    )
    sharded.start()
    try:
        assert sharded.address is not None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            for _ in range(4):
                probe.sendto(bytes.fromhex("0001000100010003DD0102"), sharded.address)
        wait_for(
            lambda: sum(s.get("rejected.decode_error", 0) for s in sharded.stats()) == 4,
            "garbage refused",
        )
    finally:
        sharded.stop()
