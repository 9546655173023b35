"""``cosemcast demo``: the whole scheme of EP 2671052 on loopback, in one process.

Theory of operation. :func:`run_demo` builds, in a temporary directory:

* a supervision centre (:class:`~cosemcast.supervision.registry.Registry` in SQLite, secrets
  sealed under a fresh master key) serving the authenticated DLMS channel on TCP;
* three head-ends (a supplier, a grid operator and a water company), each a
  :class:`~cosemcast.headend.HeadEndService` with its own SQLite key store and readings
  table, listening on UDP unicast and on one multicast group;
* ``meters`` software meters (:class:`~cosemcast.meter.SoftwareMeter`, from the template
  ``demo/meter.toml``) with the shared-payload unit and the assignment object, each with a
  fresh secret ``Kt`` that only the meter and the centre hold.

Provisioning goes through the centre, as claim 7 describes: the owner asks each meter (its
management association, HLS-GMAC) for an enrollment request naming a head-end; the head-end
sends it to the centre over its HLS channel and receives ``Ks``; the initialization message
reaches the meter relayed by the head-end (Fig. 6c) or straight from the centre (Fig. 6b).
The supplier and the grid operator are assigned to every meter, the water company to the
first one only, so it receives every C1 on the group and can open only that meter's.

Then every party runs on one accelerated clock (``speed`` meter seconds per real second, so a
15-minute reading interval passes in one second at the default 900): each meter seals each
reading once (C1, multicast) and sends ``Kp`` wrapped for each of its head-ends (C2, unicast,
acknowledged). Beside it, :mod:`.classic` sends the same DATA-NOTIFICATIONs the classic way
(one general-glo-ciphering copy per head-end under that head-end's own key) to receivers that
verify them, so the comparison is counted from messages that really crossed the sockets.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template

from cosemcast.apdu.acse import MechanismName
from cosemcast.association import AssociationSettings
from cosemcast.association.settings import Ciphering, GlobalKeys, SecuritySettings
from cosemcast.axdr.codec import decode_data
from cosemcast.axdr.types import Enumerated, OctetString, Structure
from cosemcast.client import DlmsClient
from cosemcast.demo.classic import ClassicKeys, ClassicMeter, ClassicReceiver
from cosemcast.errors import DecodeError
from cosemcast.headend import HeadEnd, HeadEndService, ReadingSink, SqliteHeadEndStore
from cosemcast.meter import SoftwareMeter
from cosemcast.meter.config import parse_config
from cosemcast.meter.serve import accelerated_clock
from cosemcast.meter.shared import SharedPayloadUnit
from cosemcast.supervision.atrest import MasterKey
from cosemcast.supervision.channel import ChannelKeys
from cosemcast.supervision.client import (
    SupervisionClient,
    deliver_init_message,
    relay_init_message,
)
from cosemcast.supervision.registry import Registry
from cosemcast.supervision.service import SupervisionService
from cosemcast.supervision.wire import ASSIGNMENT_CLASS_ID, ASSIGNMENT_OBIS

__all__ = [
    "CENTRE_ID",
    "HEAD_ENDS",
    "DemoOptions",
    "DemoResult",
    "HeadEndReport",
    "Provisioned",
    "run_demo",
]

CENTRE_ID = bytes.fromhex("5355504552563031")  # "SUPERV01"
HEAD_ENDS: tuple[tuple[str, bytes], ...] = (
    ("supplier", bytes.fromhex("5355505000000001")),
    ("grid operator", bytes.fromhex("4752494400000001")),
    ("water company", bytes.fromhex("5741544500000001")),
)
_MANAGEMENT_EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")  # public test keys, brief §5.3
_MANAGEMENT_AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
_OWNER_TITLE = bytes.fromhex("4F574E4552303031")  # "OWNER001", the owner's tool
_ASSIGN = 1


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What to run: how many meters, for how long, how fast the meters' time goes."""

    meters: int = 3
    seconds: float = 8.0
    speed: float = 900.0
    push_interval_s: int = 900
    max_payloads: int = 8
    group: str | None = None
    workdir: Path | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.meters <= 200:
            raise ValueError("--meters is 1..200")
        if self.seconds <= 0 or self.speed <= 0:
            raise ValueError("--seconds and --speed must be positive")
        if self.push_interval_s < 1:
            raise ValueError("--push-interval is at least 1 s of meter time")


@dataclass(frozen=True, slots=True)
class Provisioned:
    """One assignment made through the centre during the run."""

    meter: bytes
    head_end: str
    sequence: int
    delivery: str


@dataclass(frozen=True, slots=True)
class MeterReading:
    meter: bytes
    serial: str
    date_time: str | None
    energy_wh: int | None
    power_w: int | None
    kp_id: str
    invocation_counter: int


@dataclass(frozen=True, slots=True)
class HeadEndReport:
    """What one head-end decoded, and its counters."""

    name: str
    system_title: bytes
    assigned: tuple[bytes, ...]
    readings: dict[bytes, int]
    last: dict[bytes, MeterReading]
    stats: dict[str, int]
    classic_verified: int


@dataclass(slots=True)
class DemoResult:
    """Everything the demo measured (the CLI prints it as text or JSON)."""

    options: DemoOptions
    centre: str
    group: str
    meters: tuple[bytes, ...]
    provisioned: list[Provisioned] = field(default_factory=list)
    head_ends: list[HeadEndReport] = field(default_factory=list)
    provisioning: dict[str, int] = field(default_factory=dict)
    shared: dict[str, int] = field(default_factory=dict)
    classic: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    workdir: str = ""


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _udp_port(service: HeadEndService) -> int:
    if service.udp is None:
        raise RuntimeError("the demo head-end has no UDP port")
    return int(service.udp.address[1])


def _slug(name: str) -> str:
    return name.replace(" ", "-")


def _template() -> Template:
    text = resources.files("cosemcast.demo").joinpath("meter.toml").read_text("utf-8")
    return Template(text)


def _management(counters: Path) -> tuple[AssociationSettings, Path]:
    settings = AssociationSettings(
        client_sap=1,
        server_sap=1,
        mechanism=MechanismName.HIGH_GMAC,
        security=SecuritySettings(
            system_title=_OWNER_TITLE,
            global_keys=GlobalKeys(_MANAGEMENT_EK, _MANAGEMENT_AK),
            ciphering=Ciphering.GLOBAL,
        ),
    )
    return settings, counters


@dataclass(slots=True)
class _Station:
    name: str
    title: bytes
    store: SqliteHeadEndStore
    sink: ReadingSink
    head_end: HeadEnd
    service: HeadEndService
    channel: ChannelKeys
    db: Path
    assigned: list[bytes] = field(default_factory=list)


@contextmanager
def _workdir(options: DemoOptions) -> Iterator[Path]:
    if options.workdir is not None:
        options.workdir.mkdir(parents=True, exist_ok=True)
        yield options.workdir
        return
    with tempfile.TemporaryDirectory(prefix="cosemcast-demo-") as name:
        yield Path(name)


def run_demo(
    options: DemoOptions, progress: Callable[[str], None] = lambda line: None
) -> DemoResult:
    """Run the demo (module doc); ``progress`` receives one line per step as it happens."""
    with _workdir(options) as workdir, ExitStack() as stack:
        clock = accelerated_clock(options.speed)

        def now() -> float:
            return clock().timestamp()

        group = options.group or f"239.255.{os.getpid() % 250 + 1}.{int(time.time()) % 250 + 1}"
        group_port = _free_udp_port()

        registry = Registry(workdir / "centre.sqlite3", MasterKey(os.urandom(32)))
        stack.callback(registry.close)
        registry.initialise(centre_id=CENTRE_ID, now=int(now()))
        pem = workdir / "centre.pem"
        pem.write_bytes(registry.centre_public_key_pem())
        centre = SupervisionService(registry, "127.0.0.1", 0, clock=now)
        centre.start()
        stack.callback(centre.close)
        host, port = centre.address
        progress(
            f"supervision centre {CENTRE_ID.hex().upper()} on tcp {host}:{port} "
            "(HLS-GMAC channel per head-end; registry secrets sealed at rest)"
        )

        stations: list[_Station] = []
        for name, title in HEAD_ENDS:
            channel = ChannelKeys.generate()
            registry.register_head_end(
                title, name=name, credential=channel.credential, now=int(now())
            )
            db = workdir / f"{_slug(name)}.sqlite3"
            store = SqliteHeadEndStore(db, system_title=title, keep_readings=True)
            stack.callback(store.close)
            sink = ReadingSink()  # the rows are written in the store's commit
            stack.callback(sink.close)
            head_end = HeadEnd(title, store, sink, clock=now)
            service = HeadEndService(
                head_end,
                udp=("127.0.0.1", 0),
                group=(group, group_port),
                interface="127.0.0.1",
                tick_s=0.2,
            )
            stack.callback(service.close)
            service.start()
            stations.append(_Station(name, title, store, sink, head_end, service, channel, db))
            progress(
                f"head-end {name:14} {title.hex().upper()} listening on "
                f"{', '.join(service.addresses())}; registered at the centre"
            )

        meters: list[tuple[bytes, SoftwareMeter]] = []
        tcp_address: dict[bytes, tuple[str, int]] = {}
        template = _template()
        for index in range(options.meters):
            title = bytes.fromhex(f"4D4D4D00{index + 1:08X}")
            kt = os.urandom(16)
            registry.add_meter(title, kt, now=int(now()))
            destinations = "\n".join(
                f'[[supervision.head_ends]]\nsystem_title = "{s.title.hex().upper()}"\n'
                f'destination = "127.0.0.1:{_udp_port(s.service)}"'
                for s in stations
            )
            text = template.substitute(
                index=index + 1,
                system_title=title.hex().upper(),
                serial=f"CSC{index + 1:010d}",
                energy=1_520_400 + 137_000 * index,
                c1_destination=f"{group}:{group_port}",
                push_interval_s=options.push_interval_s,
                retry_interval_s=max(60, options.push_interval_s),
                max_payloads=options.max_payloads,
                kt=kt.hex().upper(),
                centre_public_key=pem.name,
                head_end_destinations=destinations,
            )
            config_path = workdir / f"meter{index + 1}.toml"
            config_path.write_text(text, encoding="utf-8")
            config = parse_config(text, source=str(config_path), base=workdir)
            meter = SoftwareMeter(config, workdir / f"meter{index + 1}.sqlite3", clock=clock)
            stack.callback(meter.close)
            tcp = meter.serve_tcp("127.0.0.1", 0)
            udp = meter.serve_udp("127.0.0.1", 0)
            meters.append((title, meter))
            tcp_address[title] = (str(tcp.address[0]), int(tcp.address[1]))
            progress(
                f"meter {title.hex().upper()} on tcp/udp {tcp.address[1]}/"
                f"{udp.local[1]}: C1 to {group}:{group_port} every "
                f"{options.push_interval_s} s of meter time"
            )

        result = DemoResult(
            options=options,
            centre=f"{host}:{port}",
            group=f"{group}:{group_port}",
            meters=tuple(t for t, _ in meters),
            workdir=str(workdir),
        )
        for index, (title, _meter) in enumerate(meters):
            chosen = stations if index == 0 else [s for s in stations if s.name != "water company"]
            result.provisioned.extend(
                _provision(title, tcp_address[title], chosen, registry, centre, workdir, progress)
            )

        classic_keys = {
            (s.title, m): ClassicKeys(os.urandom(16), os.urandom(16))
            for s in stations
            for m in s.assigned
        }
        receivers: dict[bytes, ClassicReceiver] = {}
        for s in stations:
            receiver = ClassicReceiver({m: classic_keys[(s.title, m)] for m in s.assigned})
            stack.callback(receiver.close)
            receiver.start()
            receivers[s.title] = receiver
        classic_meters: list[ClassicMeter] = []
        baseline: dict[str, int] = {}
        for title, meter in meters:
            routes = {
                s.title: (classic_keys[(s.title, title)], receivers[s.title].address)
                for s in stations
                if title in s.assigned
            }
            classic = ClassicMeter(title, routes)
            stack.callback(classic.close)
            classic_meters.append(classic)
            unit = meter.shared
            if unit is None:
                raise RuntimeError("the demo meter has no shared-payload unit")

            def attach(unit: SharedPayloadUnit = unit, classic: ClassicMeter = classic) -> None:
                unit.on_c1 = classic.send
                for key, value in unit.stats().items():
                    baseline[key] = baseline.get(key, 0) + value

            meter.apply(attach)

        progress(
            f"running {options.seconds:g} s: {options.speed:g} meter seconds per second, "
            f"a reading every {options.push_interval_s / options.speed:.2f} s, "
            f"Kp renewed every {options.max_payloads} C1s"
        )
        stop = threading.Event()
        threads = [
            threading.Thread(
                target=meter.run, args=(stop, 0.05), name=f"demo-meter-{i}", daemon=True
            )
            for i, (_, meter) in enumerate(meters)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        deadline = started + options.seconds
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(1.0, left))
            opened = sum(s.head_end.stats().get("opened", 0) for s in stations)
            progress(
                f"  t={time.monotonic() - started:4.1f} s  C1s opened by the head-ends: {opened}"
            )
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        time.sleep(0.3)  # let the last datagrams on loopback arrive
        result.elapsed_s = time.monotonic() - started

        shared: dict[str, int] = {}
        for _, meter in meters:
            assert meter.shared is not None
            for key, value in meter.shared.stats().items():
                shared[key] = shared.get(key, 0) + value
        result.provisioning = baseline
        result.shared = {key: value - baseline.get(key, 0) for key, value in shared.items()}
        result.classic = {
            "sent": sum(c.sent for c in classic_meters),
            "bytes_sent": sum(c.sent_bytes for c in classic_meters),
            "aes_operations": sum(c.aes_operations for c in classic_meters),
            "received": sum(r.received for r in receivers.values()),
            "verified": sum(r.verified for r in receivers.values()),
        }
        for s in stations:
            readings, last = _readings(s.db)
            result.head_ends.append(
                HeadEndReport(
                    s.name,
                    s.title,
                    tuple(s.assigned),
                    readings,
                    last,
                    s.head_end.stats(),
                    receivers[s.title].verified,
                )
            )
        return result


def _provision(
    title: bytes,
    address: tuple[str, int],
    chosen: list[_Station],
    registry: Registry,
    centre: SupervisionService,
    workdir: Path,
    progress: Callable[[str], None],
) -> list[Provisioned]:
    host, port = address
    settings, counters = _management(workdir / "owner-counters.sqlite3")
    consents: dict[bytes, bytes] = {}
    with DlmsClient.tcp(host, port, settings, counters=counters) as owner:
        owner.associate()
        for station in chosen:
            raw = owner.action(
                ASSIGNMENT_OBIS,
                2,
                Structure([OctetString(station.title), Enumerated(_ASSIGN)]),
                ASSIGNMENT_CLASS_ID,
            )
            if not isinstance(raw, OctetString):
                raise RuntimeError("the meter did not return an enrollment request")
            consents[station.title] = bytes(raw)
    done: list[Provisioned] = []
    public = AssociationSettings(client_sap=16, server_sap=1)
    for number, station in enumerate(chosen):
        with SupervisionClient(
            *centre.address,
            head_end_id=station.title,
            ek=station.channel.ek,
            ak=station.channel.ak,
            counters=workdir / f"{_slug(station.name)}-channel.sqlite3",
            centre_id=CENTRE_ID,
        ) as channel:
            assignment = channel.assign(consents[station.title])
        station.store.set_credentials(title, shared_key=assignment.ks)
        station.assigned.append(title)
        with DlmsClient.tcp(host, port, public) as link:
            link.associate()
            if number % 2 == 0:
                relay_init_message(link, assignment.init_message)
                delivery = "relayed by the head-end (Fig. 6c)"
            else:
                stored = registry.init_message(meter_id=title, sequence=assignment.sequence)
                deliver_init_message(link, stored)
                delivery = "delivered by the centre (Fig. 6b)"
        progress(
            f"  {title.hex().upper()} -> {station.name:14} consent from the meter, Ks to the "
            f"head-end, init message #{assignment.sequence} {delivery}: accepted"
        )
        done.append(Provisioned(title, station.name, assignment.sequence, delivery))
    return done


def _readings(db: Path) -> tuple[dict[bytes, int], dict[bytes, MeterReading]]:
    counts: dict[bytes, int] = {}
    last: dict[bytes, MeterReading] = {}
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT meter, kp_id, invocation_counter, date_time, body_json"
            " FROM readings ORDER BY id"
        ).fetchall()
    for meter_hex, kp_id, ic, date_time, body in rows:
        meter = bytes.fromhex(meter_hex)
        counts[meter] = counts.get(meter, 0) + 1
        values = {v["path"]: v["value"] for v in json.loads(body)}
        serial_hex = values.get("0")
        serial = bytes.fromhex(serial_hex).decode("latin-1") if isinstance(serial_hex, str) else "?"
        energy = values.get("2")
        power = values.get("3")
        last[meter] = MeterReading(
            meter,
            serial,
            _date_time(values.get("1")) or date_time,
            energy if isinstance(energy, int) else None,
            power if isinstance(power, int) else None,
            kp_id,
            int(ic),
        )
    return counts, last


def _date_time(value: object) -> str | None:
    """A clock value captured as octet-string(12), shown as a date-time (brief §9.3)."""
    if not isinstance(value, str) or len(value) != 24:
        return None
    try:
        return str(decode_data(b"\x19" + bytes.fromhex(value)))
    except (DecodeError, ValueError):
        return None
