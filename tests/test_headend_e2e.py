"""The head-end service end to end over real loopback sockets (specs/shared-payload.md §6, §9).

Meters are :class:`PayloadSealer` objects in the test: C1s go out once to a multicast group
joined on 127.0.0.1 (as tests/test_transport_udp.py does) with :class:`UdpPushSender`, C2s
unicast to each head-end over a connected UDP link that also receives the acknowledgement.
Three head-ends (two with ``Ks``, one with a P-256 key) run :class:`HeadEndService` on SQLite
stores. Every wait is bounded by a timeout of a few seconds.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from cosemcast.apdu.common import LongInvokeIdAndPriority
from cosemcast.apdu.general import GeneralCiphering
from cosemcast.apdu.notifications import DataNotification
from cosemcast.axdr import DoubleLongUnsigned, OctetString, Structure
from cosemcast.errors import ResponseTimeout, TransportError
from cosemcast.headend import HeadEnd, HeadEndService, ReadingSink, SqliteHeadEndStore
from cosemcast.sharedpayload import (
    HeadEndAssignment,
    MemoryCounterSource,
    PayloadSealer,
    RenewalPolicy,
    as_general_ciphering,
)
from cosemcast.transport.udp import UdpPushSender, UdpWrapperLink

WAIT_S = 5.0
SUPPLIER = bytes.fromhex("4D4D4D0000000001")
GRID = bytes.fromhex("4D4D4D0000000002")
WATER = bytes.fromhex("4D4D4D0000000003")
METER_1 = bytes.fromhex("4D4D4D0000BC614E")
METER_2 = bytes.fromhex("4D4D4D0000BC614F")
WATER_KEY = ec.derive_private_key(0x5EED, ec.SECP256R1())
METER_AGREEMENT = {
    METER_1: ec.derive_private_key(0xBEEF, ec.SECP256R1()),
    METER_2: ec.derive_private_key(0xBEF0, ec.SECP256R1()),
}


def ks(head_end: bytes, meter: bytes) -> bytes:
    return hashlib.sha256(b"Ks" + head_end + meter).digest()[:16]


def readings(value: int) -> bytes:
    body = Structure((OctetString(bytes.fromhex("0100010800FF")), DoubleLongUnsigned(value)))
    return DataNotification(LongInvokeIdAndPriority(value & 0xFFFFFF), None, body).encode()


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Station:
    """A running head-end, its JSON lines and how to reach it."""

    title: bytes
    db: Path
    out: io.StringIO
    store: SqliteHeadEndStore
    head_end: HeadEnd
    service: HeadEndService

    @property
    def address(self) -> tuple[str, int]:
        assert self.service.udp is not None
        host, port = self.service.udp.address[:2]
        return str(host), int(port)

    def values(self) -> list[tuple[str, int]]:
        """(meter hex, reading value) of every reading written as a JSON line."""
        out = []
        for line in self.out.getvalue().splitlines():
            record = json.loads(line)
            out.append((record["meter"], record["values"][1]["value"]))
        return out

    def stat(self, name: str) -> int:
        return self.head_end.stats().get(name, 0)

    def stop(self) -> None:
        self.service.close()
        self.head_end.sink.close()
        self.store.close()


def wait_for_stat(station: Station, name: str, value: int) -> None:
    wait_for(lambda: station.stat(name) == value, f"{station.title.hex()} {name} == {value}")


def start_station(
    title: bytes,
    db: Path,
    group: tuple[str, int] | None,
    meters: list[bytes],
    *,
    private_key: ec.EllipticCurvePrivateKey | None = None,
) -> Station:
    store = SqliteHeadEndStore(db, system_title=title)
    for meter in meters:
        if private_key is None:
            store.set_credentials(meter, shared_key=ks(title, meter))
        else:
            store.set_credentials(meter, agreement_public_key=METER_AGREEMENT[meter].public_key())
    out = io.StringIO()
    sink = ReadingSink(stream=out, db_path=db)
    head_end = HeadEnd(title, store, sink, agreement_private_key=private_key)
    try:
        service = HeadEndService(head_end, udp=("127.0.0.1", 0), group=group, interface="127.0.0.1")
    except TransportError as exc:
        store.close()
        pytest.skip(f"the kernel refuses the multicast set-up on 127.0.0.1: {exc}")
    service.start()
    return Station(title, db, out, store, head_end, service)


@dataclass
class Meter:
    """A software meter reduced to its sealer and its two ways of sending."""

    sealer: PayloadSealer
    c1_sender: UdpPushSender
    stations: dict[bytes, Station]
    links: dict[bytes, UdpWrapperLink] = field(default_factory=dict)

    def link(self, title: bytes) -> UdpWrapperLink:
        if title not in self.links:
            self.links[title] = UdpWrapperLink.connect(*self.stations[title].address, 1, 1)
        return self.links[title]

    def send_controls(self) -> int:
        """Send every due C2 and process its acknowledgement; returns how many were acked."""
        acked = 0
        for title, c2 in self.sealer.control_messages(time.time()):
            link = self.link(title)
            link.send_apdu(c2.encode())
            self.sealer.accept_ack(as_general_ciphering(link.receive_apdu(WAIT_S)))
            acked += 1
        return acked

    def seal(self, value: int) -> GeneralCiphering:
        return self.sealer.seal_c1(readings(value), time.time())

    def send(self, c1: GeneralCiphering) -> None:
        self.c1_sender.send_apdu(c1.encode())

    def close(self) -> None:
        self.c1_sender.close()
        for link in self.links.values():
            link.close()


def make_meter(
    title: bytes,
    stations: dict[bytes, Station],
    destination: tuple[str, int],
    policy: RenewalPolicy | None = None,
) -> Meter:
    assignments = []
    for head_end in stations:
        if head_end == WATER:
            assignments.append(HeadEndAssignment(head_end, None, WATER_KEY.public_key()))
        else:
            assignments.append(HeadEndAssignment(head_end, ks(head_end, title)))
    sealer = PayloadSealer(
        system_title=title,
        head_ends=assignments,
        counters=MemoryCounterSource(),
        rng=random.Random(title).randbytes,
        policy=policy or RenewalPolicy(retry_interval_s=0.001),
        agreement_private_key=METER_AGREEMENT[title],
    )
    sender = UdpPushSender(
        destination[0],
        destination[1],
        source_wport=1,
        destination_wport=1,
        interface="127.0.0.1" if destination[0].startswith("239.") else None,
    )
    return Meter(sealer, sender, stations)


@pytest.fixture
def group() -> tuple[str, int]:
    return f"239.255.{random.randint(1, 254)}.{random.randint(1, 254)}", free_udp_port()


@pytest.fixture
def stations(tmp_path: Path, group: tuple[str, int]) -> Iterator[dict[bytes, Station]]:
    started: dict[bytes, Station] = {}
    try:
        for title in (SUPPLIER, GRID):
            started[title] = start_station(
                title, tmp_path / f"{title.hex()}.sqlite3", group, [METER_1, METER_2]
            )
        started[WATER] = start_station(
            WATER, tmp_path / "water.sqlite3", group, [METER_1], private_key=WATER_KEY
        )
        yield started
    finally:
        for station in started.values():
            station.stop()


def test_three_head_ends_read_the_same_shared_payloads(
    stations: dict[bytes, Station], group: tuple[str, int]
) -> None:
    # METER_1 reports to all three; METER_2 to supplier and grid only: the water company
    # receives METER_2's C1s on the group and cannot read them.
    meter_1 = make_meter(METER_1, stations, group)
    meter_2 = make_meter(METER_2, {t: stations[t] for t in (SUPPLIER, GRID)}, group)
    try:
        for meter in (meter_1, meter_2):
            meter.sealer.renew(time.time())
            assert meter.send_controls() == len(meter.sealer.head_ends)
            assert all(entry.acknowledged for entry in meter.sealer.controls)
        for value in range(1, 6):
            meter_1.send(meter_1.seal(100 + value))
            meter_2.send(meter_2.seal(200 + value))
        for title in (SUPPLIER, GRID):
            wait_for_stat(stations[title], "opened", 10)
        wait_for(lambda: stations[WATER].stat("not_assigned") == 5, "water drops")
        wait_for(lambda: stations[WATER].stat("opened") == 5, "water readings")
    finally:
        meter_1.close()
        meter_2.close()
    expected = sorted(
        [(METER_1.hex().upper(), 100 + v) for v in range(1, 6)]
        + [(METER_2.hex().upper(), 200 + v) for v in range(1, 6)]
    )
    assert sorted(stations[SUPPLIER].values()) == expected
    assert sorted(stations[GRID].values()) == expected
    assert sorted(stations[WATER].values()) == [
        (METER_1.hex().upper(), 100 + v) for v in range(1, 6)
    ]
    for station in stations.values():
        assert station.stat("rejected") == 0
        assert station.stat("parked") == 0
    # The readings table holds the same readings as the JSON lines.
    import sqlite3

    with sqlite3.connect(stations[GRID].db) as conn:
        assert conn.execute("SELECT count(*) FROM readings").fetchone()[0] == 10


def test_renewal_with_payloads_in_flight_and_c1_before_c2(
    stations: dict[bytes, Station], group: tuple[str, int]
) -> None:
    meter = make_meter(
        METER_1, stations, group, RenewalPolicy(max_payloads=3, retry_interval_s=0.001)
    )
    try:
        first = [meter.seal(v) for v in (1, 2, 3)]
        meter.send_controls()  # kp 1 announced and acknowledged
        second = [meter.seal(v) for v in (4, 5, 6)]  # renewed: kp 2, C2s not sent yet
        assert first[0].transaction_id != second[0].transaction_id
        for c1 in second:  # the new key's C1s overtake its C2: parked
            meter.send(c1)
        for station in stations.values():
            wait_for_stat(station, "parked", 3)
        for c1 in first:  # the old key's C1s still open
            meter.send(c1)
        for station in stations.values():
            wait_for_stat(station, "opened", 3)
        assert meter.send_controls() == 3  # kp 2's C2s: the parked C1s are released and opened
        for station in stations.values():
            wait_for_stat(station, "opened", 6)
            assert station.stat("released") == 3
            assert station.stat("parked_now") == 0
            assert sorted(v for _, v in station.values()) == [1, 2, 3, 4, 5, 6]
            assert station.stat("rejected") == 0
    finally:
        meter.close()


def tamper(apdu: bytes, index: int) -> bytes:
    return apdu[:index] + bytes([apdu[index] ^ 0x01]) + apdu[index + 1 :]


def test_forgeries_replays_and_misaddressed_messages_are_refused(
    stations: dict[bytes, Station], group: tuple[str, int]
) -> None:
    supplier = stations[SUPPLIER]
    meter = make_meter(METER_1, stations, supplier.address)  # C1s unicast to the supplier
    try:
        meter.sealer.renew(time.time())
        controls = dict(meter.sealer.control_messages(time.time()))
        link = meter.link(SUPPLIER)
        # Tampered C2s (wrapped key, ciphertext, tag) and the grid's C2 sent to the supplier.
        c2 = controls[SUPPLIER].encode()
        for index in (40, len(c2) - 20, len(c2) - 1):
            link.send_apdu(tamper(c2, index))
        link.send_apdu(controls[GRID].encode())
        wait_for(lambda: supplier.stat("rejected") == 4, "C2 rejections")
        assert supplier.stat("rejected.authentication_failed") == 3
        assert supplier.stat("rejected.misaddressed_message") == 1
        assert supplier.stat("keys_now") == 0
        # The genuine C2, then the same bytes again: a retransmission, acknowledged again.
        link.send_apdu(c2)
        ack = link.receive_apdu(WAIT_S)
        link.send_apdu(c2)
        assert link.receive_apdu(WAIT_S) == ack
        wait_for(lambda: supplier.stat("controls_retransmitted") == 1, "retransmission")
        assert supplier.stat("controls_accepted") == 1
        # A genuine C1, a tampered one and a replayed one.
        c1 = meter.seal(7).encode()
        meter.c1_sender.send_apdu(tamper(c1, len(c1) - 5))
        meter.c1_sender.send_apdu(c1)
        meter.c1_sender.send_apdu(c1)
        wait_for(lambda: supplier.stat("rejected.replay_error") == 1, "C1 replay")
        assert supplier.stat("rejected.authentication_failed") == 4
        assert supplier.values() == [(METER_1.hex().upper(), 7)]
        # After the key is retired, its C2 replayed is stale, not accepted again.
        kp_id = meter.sealer.current_key.kp_id if meter.sealer.current_key else None
        assert kp_id is not None
        supplier.head_end.opener.retire(METER_1, kp_id)
        link.send_apdu(c2)
        wait_for(lambda: supplier.stat("rejected.stale_key_id") == 1, "stale C2")
        with pytest.raises(ResponseTimeout):
            link.receive_apdu(0.2)
        # Garbage is counted, never raised.
        link.send_apdu(b"\xdd\x01")
        wait_for(lambda: supplier.stat("rejected.decode_error") == 1, "garbage")
    finally:
        meter.close()


def test_restart_keeps_keys_and_parked_payloads(tmp_path: Path) -> None:
    db = tmp_path / "supplier.sqlite3"
    station = start_station(SUPPLIER, db, None, [METER_1])
    meter = make_meter(
        METER_1,
        {SUPPLIER: station},
        station.address,
        RenewalPolicy(max_payloads=2, retry_interval_s=0.001),
    )
    try:
        meter.sealer.renew(time.time())
        meter.send_controls()
        early = [meter.seal(1), meter.seal(2)]
        late = meter.seal(3)  # renewed: a new kp_id whose C2 is not sent yet
        meter.send(early[0])
        meter.send(late)
        wait_for(lambda: station.stat("opened") == 1 and station.stat("parked") == 1, "phase 1")
        station.stop()
        meter.close()

        station = start_station(SUPPLIER, db, None, [METER_1])
        meter.stations = {SUPPLIER: station}
        meter.links = {}
        meter.c1_sender = UdpPushSender(*station.address, source_wport=1, destination_wport=1)
        assert station.stat("parked_now") == 1
        assert station.stat("keys_now") == 1
        meter.send(early[1])  # the old key survived the restart
        meter.send(early[0])  # and so did its replay window
        wait_for(lambda: station.stat("opened") == 1, "reading after restart")
        wait_for(lambda: station.stat("rejected.replay_error") == 1, "replay after restart")
        assert meter.send_controls() == 1  # the new key: its parked C1 is released
        wait_for(lambda: station.stat("opened") == 2, "released after restart")
        assert station.stat("released") == 1
        assert station.stat("parked_now") == 0
        assert [v for _, v in station.values()] == [2, 3]
    finally:
        meter.close()
        station.stop()
