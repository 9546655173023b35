"""``cosemcast headend listen`` as a process: UDP, a multicast group and TCP, Ctrl-C, stats.

The head-end under test uses its private key (public-key C2, key-parameters 82) for one meter
and a ``Ks`` for another; the meters are :class:`PayloadSealer` objects in the test.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from cosemcast.errors import ResponseTimeout, TransportError
from cosemcast.sharedpayload import (
    HeadEndAssignment,
    MemoryCounterSource,
    PayloadSealer,
    RenewalPolicy,
    as_general_ciphering,
)
from cosemcast.transport.tcp import TcpWrapperLink
from cosemcast.transport.udp import UdpPushSender, UdpWrapperLink
from test_headend_e2e import free_udp_port, readings

HEAD_END = bytes.fromhex("4D4D4D0000000003")
METER_PK = bytes.fromhex("4D4D4D0000BC614E")
METER_KS = bytes.fromhex("4D4D4D0000BC614F")
KS = bytes.fromhex("202122232425262728292A2B2C2D2E2F")
HEAD_END_KEY = ec.derive_private_key(0x1234, ec.SECP256R1())
METER_KEY = ec.derive_private_key(0x4321, ec.SECP256R1())


def free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def sealer(meter: bytes, assignment: HeadEndAssignment) -> PayloadSealer:
    return PayloadSealer(
        system_title=meter,
        head_ends=[assignment],
        counters=MemoryCounterSource(),
        rng=random.Random(meter).randbytes,
        policy=RenewalPolicy(retry_interval_s=0.001),
        agreement_private_key=METER_KEY,
    )


def test_listen_over_udp_multicast_and_tcp_then_ctrl_c(tmp_path: Path) -> None:
    (tmp_path / "he.pem").write_bytes(
        HEAD_END_KEY.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    point = METER_KEY.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    (tmp_path / "keys.toml").write_text(
        f'system_title = "{HEAD_END.hex()}"\nprivate_key = "he.pem"\n'
        f'[meters.{METER_PK.hex()}]\nagreement_public_key = "{point.hex()}"\n'
        f'[meters.{METER_KS.hex()}]\nks = "{KS.hex()}"\n'
    )
    udp, tcp = free_udp_port(), free_tcp_port()
    group = f"239.255.{random.randint(1, 254)}.{random.randint(1, 254)}"
    command = [
        sys.executable, "-m", "cosemcast", "headend", "listen",
        "--udp", f"127.0.0.1:{udp}", "--group", group, "--interface", "127.0.0.1",
        "--tcp", f"127.0.0.1:{tcp}", "--keys", str(tmp_path / "keys.toml"),
        "--out", str(tmp_path / "out.jsonl"), "--db", str(tmp_path / "he.sqlite3"), "--json-log",
        "--key-cache", "1",  # two meters through a one-key cache: every switch reads the file
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        public = sealer(METER_PK, HeadEndAssignment(HEAD_END, None, HEAD_END_KEY.public_key()))
        shared = sealer(METER_KS, HeadEndAssignment(HEAD_END, KS))
        now = time.time()
        public.renew(now)
        shared.renew(now)
        # C2 of the public-key meter over UDP: resend until the process answers.
        with UdpWrapperLink.connect("127.0.0.1", udp, 1, 1) as link:
            deadline = time.monotonic() + 15
            while True:
                for _, c2 in public.control_messages(time.time()):
                    link.send_apdu(c2.encode())
                try:
                    public.accept_ack(as_general_ciphering(link.receive_apdu(0.3)))
                    break
                except (ResponseTimeout, TransportError):
                    assert process.poll() is None, process.communicate()
                    assert time.monotonic() < deadline, "the head-end never answered"
        # C2 and a C1 of the Ks meter over TCP.
        with TcpWrapperLink.connect("127.0.0.1", tcp, 1, 1) as stream:
            for _, c2 in shared.control_messages(time.time()):
                stream.send_apdu(c2.encode())
            shared.accept_ack(as_general_ciphering(stream.receive_apdu(5)))
            stream.send_apdu(shared.seal_c1(readings(22), time.time()).encode())
        # A C1 of the public-key meter on the multicast group.
        try:
            sender = UdpPushSender(
                group, udp, source_wport=1, destination_wport=1, interface="127.0.0.1"
            )
        except TransportError as exc:
            pytest.skip(f"no multicast on loopback: {exc}")
        with sender:
            sender.send_apdu(public.seal_c1(readings(11), time.time()).encode())
        out = tmp_path / "out.jsonl"
        deadline = time.monotonic() + 10
        while not out.exists() or len(out.read_text().splitlines()) < 2:
            assert time.monotonic() < deadline, "readings did not arrive"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted((r["meter"], r["values"][1]["value"]) for r in records) == [
        (METER_PK.hex().upper(), 11),
        (METER_KS.hex().upper(), 22),
    ]
    stats = json.loads(stderr.strip().splitlines()[-1])["stats"]
    assert stats["opened"] == 2
    assert stats["controls_accepted"] == 2
    assert stats["rejected"] == 0
    assert KS.hex() not in stderr.lower() and KS.hex() not in stdout.lower()


def test_listen_refuses_an_empty_key_cache(tmp_path: Path) -> None:
    (tmp_path / "keys.toml").write_text(f'system_title = "{HEAD_END.hex()}"\n')
    done = subprocess.run(
        [sys.executable, "-m", "cosemcast", "headend", "listen", "--udp", "127.0.0.1:0",
         "--keys", str(tmp_path / "keys.toml"), "--db", str(tmp_path / "he.sqlite3"),
         "--key-cache", "0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--key-cache" in done.stderr
