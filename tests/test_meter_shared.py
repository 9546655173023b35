"""The software meter's shared-payload unit end to end over real loopback sockets.

A :class:`SoftwareMeter` on a fake clock (moved by the test with ``advance_to``) serves UDP and
TCP; its C1s go to a multicast group joined on 127.0.0.1 (as tests/test_transport_udp.py and
tests/test_headend_e2e.py do; the test skips, saying why, only when the kernel refuses the
multicast set-up), its C2s unicast to each assigned head-end (supplier over UDP, grid operator
over TCP). Three :class:`HeadEndService` instances with their own SQLite stores run on the same
fake time: supplier and grid are assigned; the water company also knows the meter's Ks but is
not assigned, so it receives every C1 on the group and can read none. Every wait is bounded.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cosemcast.association import AssociationSettings
from cosemcast.client import DlmsClient
from cosemcast.errors import TransportError
from cosemcast.headend import HeadEnd, HeadEndService, ReadingSink, SqliteHeadEndStore
from cosemcast.headend.pull import pull_from_meter
from cosemcast.meter import SoftwareMeter, default_config_text
from cosemcast.meter.config import parse_config
from cosemcast.meter.shared import SharedPayloadUnit
from cosemcast.transport.tcp import TcpWrapperServer
from test_meter_support import METER_TITLE, FakeClock

WAIT_S = 10.0
SUPPLIER = bytes.fromhex("4D4D4D0000000001")
GRID = bytes.fromhex("4D4D4D0000000002")
WATER = bytes.fromhex("4D4D4D0000000003")


def ks(head_end: bytes) -> bytes:
    return hashlib.sha256(b"Ks" + head_end + METER_TITLE).digest()[:16]


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def readings_count(station: Station, count: int) -> Callable[[], bool]:
    return lambda: len(station.readings()) == count


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Station:
    """A running head-end on the test's fake time, and its JSON lines."""

    title: bytes
    out: io.StringIO
    store: SqliteHeadEndStore
    head_end: HeadEnd
    service: HeadEndService

    def readings(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.out.getvalue().splitlines()]

    def seen(self) -> list[tuple[str, int, object]]:
        """(kp_id, IC, values) of every reading, without the head-end's own fields."""
        return [(r["kp_id"], r["invocation_counter"], r["values"]) for r in self.readings()]  # type: ignore[misc]

    def stat(self, name: str) -> int:
        return self.head_end.stats().get(name, 0)

    def udp_destination(self) -> str:
        assert self.service.udp is not None
        return f"127.0.0.1:{self.service.udp.address[1]}"

    def tcp_destination(self) -> str:
        assert self.service.tcp is not None
        return f"tcp://127.0.0.1:{self.service.tcp.address[1]}"

    def stop(self) -> None:
        self.service.close()
        self.head_end.sink.close()
        self.store.close()


def start_station(
    title: bytes, path: Path, group: tuple[str, int], clock: FakeClock, *, knows_meter: bool
) -> Station:
    store = SqliteHeadEndStore(path, system_title=title)
    if knows_meter:
        store.set_credentials(METER_TITLE, shared_key=ks(title))
    out = io.StringIO()
    sink = ReadingSink(stream=out)
    head_end = HeadEnd(title, store, sink, clock=lambda: clock.now.timestamp())
    try:
        service = HeadEndService(
            head_end,
            udp=("127.0.0.1", 0),
            group=group,
            interface="127.0.0.1",
            tcp=("127.0.0.1", 0),
            tick_s=0.2,
        )
    except TransportError as exc:
        store.close()
        pytest.skip(f"the kernel refuses the multicast set-up on 127.0.0.1: {exc}")
    service.start()
    return Station(title, out, store, head_end, service)


def shared_config(group: tuple[str, int], stations: dict[bytes, Station], **options: object) -> str:
    settings: dict[str, object] = {
        "push_interval_s": 900,
        "capture_interval_s": 0,
        "retry_interval_s": 30,
        "buffer_capacity": 8,
        "renewal": "{ max_payloads = 96, max_age_s = 86400, delivery_window_s = 300 }",
    }
    settings.update(options)
    lines = ["[shared_payload]", f'c1_destination = "{group[0]}:{group[1]}"']
    lines += [f"{name} = {value}" for name, value in settings.items()]
    lines.append('capture_objects = ["1/0-0:96.1.0.255/2", "3/1-0:1.8.0.255/2"]')
    for title, destination in (
        (SUPPLIER, stations[SUPPLIER].udp_destination()),
        (GRID, stations[GRID].tcp_destination()),
    ):
        lines += [
            "[[shared_payload.head_ends]]",
            f'system_title = "{title.hex()}"',
            f'destination = "{destination}"',
            f'ks = "{ks(title).hex()}"',
        ]
    return default_config_text() + "\n" + "\n".join(lines) + "\n"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def group() -> tuple[str, int]:
    return f"239.255.{random.randint(1, 254)}.{random.randint(1, 254)}", free_udp_port()


@pytest.fixture
def stations(
    tmp_path: Path, group: tuple[str, int], clock: FakeClock
) -> Iterator[dict[bytes, Station]]:
    started: dict[bytes, Station] = {}
    try:
        for title in (SUPPLIER, GRID, WATER):
            started[title] = start_station(
                title, tmp_path / f"{title.hex()}.sqlite3", group, clock, knows_meter=True
            )
        yield started
    finally:
        for station in started.values():
            station.stop()


def open_meter(text: str, state: Path, clock: FakeClock) -> SoftwareMeter:
    meter = SoftwareMeter(parse_config(text), state, clock=clock)
    meter.serve_udp("127.0.0.1", 0)
    meter.serve_tcp("127.0.0.1", 0)
    return meter


def unit(meter: SoftwareMeter) -> SharedPayloadUnit:
    assert meter.shared is not None
    return meter.shared


def step(meter: SoftwareMeter, clock: FakeClock, **delta: float) -> None:
    clock.advance(**delta)
    meter.advance_to()


def acknowledged(meter: SoftwareMeter) -> dict[tuple[bytes, str], bool]:
    return {
        (c.head_end, str(c.kp_id)): c.acknowledged
        for c in meter.apply(lambda: unit(meter).sealer.controls)
    }


# --- the tests --------------------------------------------------------------------------------


def test_one_c1_for_the_assigned_head_ends_and_none_for_the_other(
    tmp_path: Path,
    group: tuple[str, int],
    stations: dict[bytes, Station],
    clock: FakeClock,
) -> None:
    supplier, grid, water = stations[SUPPLIER], stations[GRID], stations[WATER]
    with open_meter(shared_config(group, stations), tmp_path / "m.sqlite3", clock) as meter:
        step(meter, clock, minutes=14)
        assert unit(meter).stats()["c1_queued"] == 0
        step(meter, clock, minutes=1)  # 12:15 local: the first C1 push
        wait_for(lambda: unit(meter).stats()["acks_received"] == 2, "both C2s acknowledged")
        step(meter, clock, minutes=15)  # 12:30: the second
        for station in (supplier, grid):
            wait_for(readings_count(station, 2), f"{station.title.hex()} readings")
        wait_for(lambda: water.stat("received") == 2, "the water company got both C1s")
        stats = unit(meter).stats()
    assert supplier.seen() == grid.seen()
    kp_ids = {kp for kp, _, _ in supplier.seen()}
    assert len(kp_ids) == 1
    values = [v for _, _, v in supplier.seen()]
    assert values[0][0]["value"] == b"CSC0000012345".hex().upper()  # type: ignore[index]
    assert values[0][1]["value"] < values[1][1]["value"]  # type: ignore[index]
    assert water.readings() == [] and water.stat("parked") == 2
    assert grid.stat("controls_accepted") == supplier.stat("controls_accepted") == 1
    # One Kp: two C2s (one GCM seal and one key wrap each) and one GCM seal per C1.
    assert stats["c1_sent"] == 2 and stats["c2_sent"] == 2 and stats["keys_drawn"] == 1
    assert stats["aes_operations"] == 2 + 2 * 2
    assert stats["bytes_sent"] > 0 and stats["acks_rejected"] == 0


def test_a_c2_is_sent_again_until_acknowledged_then_no_more(
    tmp_path: Path,
    group: tuple[str, int],
    stations: dict[bytes, Station],
    clock: FakeClock,
) -> None:
    supplier = stations[SUPPLIER]
    supplier.service.close()
    supplier.store.close()
    stations[SUPPLIER] = supplier = start_station(
        SUPPLIER, tmp_path / "fresh.sqlite3", group, clock, knows_meter=False
    )
    with open_meter(shared_config(group, stations), tmp_path / "m.sqlite3", clock) as meter:
        step(meter, clock, minutes=15)
        wait_for(lambda: supplier.stat("rejected.meter_not_assigned") == 1, "the first C2")
        queued = unit(meter).stats()["c2_queued"]
        step(meter, clock, seconds=20)  # before retry_interval_s: nothing
        assert unit(meter).stats()["c2_queued"] == queued
        step(meter, clock, seconds=15)
        wait_for(lambda: supplier.stat("rejected.meter_not_assigned") == 2, "a retransmission")
        supplier.store.set_credentials(METER_TITLE, shared_key=ks(SUPPLIER))
        step(meter, clock, seconds=31)
        wait_for(lambda: supplier.stat("controls_accepted") == 1, "the C2 accepted at last")
        wait_for(lambda: all(acknowledged(meter).values()), "the acknowledgement")
        done = unit(meter).stats()["c2_queued"]
        for _ in range(4):
            step(meter, clock, seconds=31)
        assert unit(meter).stats()["c2_queued"] == done
        step(meter, clock, minutes=15)  # the next C1 reaches the supplier now
        wait_for(lambda: len(supplier.readings()) == 1, "the supplier's reading")
    assert supplier.stat("controls_retransmitted") == 0


def test_kp_renewed_by_policy_while_buffered_c1s_are_in_flight(
    tmp_path: Path,
    group: tuple[str, int],
    stations: dict[bytes, Station],
    clock: FakeClock,
) -> None:
    supplier, grid = stations[SUPPLIER], stations[GRID]
    text = shared_config(
        group,
        stations,
        capture_interval_s=300,
        renewal="{ max_payloads = 2, max_age_s = 86400, delivery_window_s = 300 }",
    )
    with open_meter(text, tmp_path / "m.sqlite3", clock) as meter:
        step(meter, clock, minutes=5)  # sealed ahead under the first Kp
        first = unit(meter).current_kp_id()
        wait_for(lambda: all(acknowledged(meter).values()), "the first C2s acknowledged")
        step(meter, clock, minutes=5)  # a second one; the policy renews Kp right after it
        assert len(unit(meter).buffered()) == 2
        assert unit(meter).current_kp_id() != first
        step(meter, clock, minutes=5)  # 12:15: the push renews Kp, sends the old C1s and a new
        for station in (supplier, grid):
            wait_for(readings_count(station, 3), f"{station.title.hex()} readings")
        wait_for(lambda: len(acknowledged(meter)) >= 4, "C2s of the new key")
        wait_for(lambda: all(acknowledged(meter).values()), "every C2 acknowledged")
        assert unit(meter).stats()["keys_drawn"] >= 2
    assert supplier.seen() == grid.seen()
    kp_ids = [kp for kp, _, _ in supplier.seen()]
    assert kp_ids[:2] == [first.hex().upper()] * 2 and kp_ids[2] != kp_ids[0]
    assert supplier.stat("rejected") == grid.stat("rejected") == 0


def test_a_restart_never_reuses_an_ic_and_keeps_unacknowledged_c2s(
    tmp_path: Path,
    group: tuple[str, int],
    stations: dict[bytes, Station],
    clock: FakeClock,
) -> None:
    grid = stations[GRID]
    supplier = stations[SUPPLIER]
    supplier.service.close()
    supplier.store.close()
    stations[SUPPLIER] = supplier = start_station(
        SUPPLIER, tmp_path / "fresh.sqlite3", group, clock, knows_meter=False
    )
    text = shared_config(group, stations)
    state = tmp_path / "m.sqlite3"
    with open_meter(text, state, clock) as meter:
        step(meter, clock, minutes=15)
        step(meter, clock, minutes=15)
        wait_for(lambda: len(grid.readings()) == 2, "two readings before the restart")
        before = {(c.head_end, c.kp_id): c for c in unit(meter).sealer.controls}
        assert not before[next(k for k in before if k[0] == SUPPLIER)].acknowledged
    with open_meter(text, state, clock) as meter:
        after = {(c.head_end, c.kp_id): c for c in unit(meter).sealer.controls}
        assert {k: c.apdu for k, c in after.items()} == {k: c.apdu for k, c in before.items()}
        step(meter, clock, minutes=15)
        step(meter, clock, minutes=15)
        wait_for(lambda: len(grid.readings()) == 4, "two readings after the restart")
        wait_for(lambda: supplier.stat("rejected.meter_not_assigned") >= 2, "C2 re-sent")
        supplier.store.set_credentials(METER_TITLE, shared_key=ks(SUPPLIER))
        step(meter, clock, minutes=1)
        wait_for(lambda: all(acknowledged(meter).values()), "the old C2 acknowledged")
    seen = [(kp, ic) for kp, ic, _ in grid.seen()]
    assert len(set(seen)) == len(seen) == 4
    assert len({kp for kp, _ in seen}) == 1  # the same Kp continued across the restart
    ics = [ic for _, ic in seen]
    assert ics == sorted(ics)
    assert grid.stat("rejected") == 0


def test_a_pull_over_tcp_gives_the_readings_the_push_delivers(
    tmp_path: Path,
    group: tuple[str, int],
    stations: dict[bytes, Station],
    clock: FakeClock,
) -> None:
    grid = stations[GRID]
    text = shared_config(group, stations, capture_interval_s=300)
    store = SqliteHeadEndStore(tmp_path / "puller.sqlite3", system_title=SUPPLIER)
    store.set_credentials(METER_TITLE, shared_key=ks(SUPPLIER))
    out = io.StringIO()
    puller = HeadEnd(SUPPLIER, store, ReadingSink(stream=out), clock=lambda: clock.now.timestamp())
    try:
        with open_meter(text, tmp_path / "m.sqlite3", clock) as meter:
            step(meter, clock, minutes=5)  # 12:05 and 12:10 sealed ahead, not pushed yet
            wait_for(lambda: unit(meter).stats()["acks_received"] == 2, "C2s acknowledged")
            step(meter, clock, minutes=5)
            tcp = next(s for s in meter.servers if isinstance(s, TcpWrapperServer))
            settings = AssociationSettings(client_sap=16, server_sap=1)
            with DlmsClient.tcp("127.0.0.1", tcp.address[1], settings) as client:
                client.associate()
                result = pull_from_meter(client, puller)
                client.release()
            assert (result.controls, result.payloads, result.opened) == (1, 2, 2)
            assert result.controls_accepted == 1 and result.rejected == 0
            wait_for(lambda: unit(meter).stats()["acks_received"] == 3, "the pulled C2's ack")
            step(meter, clock, minutes=5)  # 12:15: the buffer and a fresh C1 are pushed
            wait_for(lambda: len(grid.readings()) == 3, "the pushed readings")
    finally:
        puller.sink.close()
        store.close()
    pulled = [
        (r["kp_id"], r["invocation_counter"], r["values"])
        for r in map(json.loads, out.getvalue().splitlines())
    ]
    assert pulled == grid.seen()[:2]


def test_payload_acknowledgements_when_the_policy_asks_for_them(
    tmp_path: Path,
    group: tuple[str, int],
    stations: dict[bytes, Station],
    clock: FakeClock,
) -> None:
    """renewal.ack_payloads = true (specs/shared-payload.md §6): the C2 asks each head-end to
    acknowledge the C1s it opens; the meter records, per head-end and kp_id, the highest IC
    acknowledged, and every acknowledgement verifies (none refused)."""
    text = shared_config(
        group,
        stations,
        renewal="{ max_payloads = 96, max_age_s = 86400, delivery_window_s = 300, "
        "ack_payloads = true }",
    )
    supplier, grid = stations[SUPPLIER], stations[GRID]
    with open_meter(text, tmp_path / "m.sqlite3", clock) as meter:
        step(meter, clock, minutes=15)
        step(meter, clock, minutes=15)
        for station in (supplier, grid):
            wait_for(readings_count(station, 2), f"{station.title.hex()} readings")
        wait_for(lambda: unit(meter).stats()["acks_received"] >= 4, "C2 and C1 acknowledgements")
        sealer = unit(meter).sealer
        kp = meter.apply(lambda: sealer.current_key)
        assert kp is not None
        last_ic = max(ic for _, ic, _ in supplier.seen())
        kp_id = kp.kp_id

        def acknowledged_up_to_last(title: bytes) -> Callable[[], bool]:
            def check() -> bool:
                ic = meter.apply(lambda: sealer.acknowledged_payload_ic(title, kp_id))
                return bool(ic == last_ic)

            return check

        for title in (SUPPLIER, GRID):
            wait_for(acknowledged_up_to_last(title), f"{title.hex()} acknowledged the last C1")
        assert unit(meter).stats()["acks_rejected"] == 0
