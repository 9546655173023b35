"""Shared pieces of the client tests: a meter assembled from the library's own server layers.

``TestMeter`` is an :class:`~cosemcast.cosem.ObjectModel` (clock, energy register with scaler
and unit, serial number, a 15-minute load profile, one Association LN per client, a writable
data object) behind one :class:`~cosemcast.association.ServerConnection` per connection and
client SAP, served over TCP and UDP with the IEC 62056-47 wrapper on 127.0.0.1. Its
invocation-counter stores live in SQLite files, so :meth:`TestMeter.restart` is a real restart.

Clients (client SAP → authentication):

* 16: public client, no security, read only;
* 17: LLS, password ``12345678`` (the password of the independent meter of
  ``../shared/captures``);
* 1: management, HLS-GMAC (mechanism 5), suite 0, glo ciphering, everything allowed;
* 3: HLS-ECDSA (mechanism 7), suite 1, glo ciphering (keys generated per session).

Keys: the Green Book example EK/AK (brief §5.3; GB Table 40 via DC tests/test_security.py);
system titles of ``../shared/captures/keys.toml`` (meter 4D4D4D0000BC614E, client
4142434445464748).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cosemcast.apdu.acse import MechanismName
from cosemcast.association import (
    NEED_DATA,
    AssociationSettings,
    Ciphering,
    GlobalKeys,
    SecuritySettings,
    ServerConnection,
    ServerEvent,
)
from cosemcast.axdr.types import (
    CosemDateTime,
    Data,
    DoubleLongUnsigned,
    OctetString,
    VisibleString,
)
from cosemcast.client import Authentication, Credentials, DlmsClient
from cosemcast.cosem import (
    AccessRights,
    AssociationLN,
    CaptureObjectDefinition,
    Clock,
    DataObject,
    ExtendedRegister,
    ObjectModel,
    ProfileGeneric,
    Register,
    Unit,
)
from cosemcast.cosem.common import datetime_octets
from cosemcast.link.wrapper import WrapperFrame
from cosemcast.obis import Obis
from cosemcast.security.counters import CounterStore, ReceivedCounterStore
from cosemcast.transport.base import Address, ApduLink
from cosemcast.transport.tcp import TcpServerConnection, TcpWrapperLink, TcpWrapperServer
from cosemcast.transport.udp import UdpWrapperServer

EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
METER_TITLE = bytes.fromhex("4D4D4D0000BC614E")
CLIENT_TITLE = bytes.fromhex("4142434445464748")
PASSWORD = b"12345678"

PUBLIC, LLS_CLIENT, MANAGEMENT, ECDSA_CLIENT = 16, 17, 1, 3

CLOCK = Obis.parse("0-0:1.0.0.255")
ENERGY = Obis.parse("1-0:1.8.0.255")
SERIAL = Obis.parse("0-0:96.1.0.255")
PROFILE = Obis.parse("1-0:99.1.0.255")
NOTE = Obis.parse("0-0:96.99.0.255")
ODD_REGISTER = Obis.parse("0-0:96.50.0.255")  # a Register where the OBIS code suggests Data
DEMAND = Obis.parse("1-0:1.6.0.255")  # an Extended register where Register is guessed
ENERGY_RAW = 123456789
ENERGY_SCALER = -1
SERIAL_NUMBER = "CC0000000042"
PROFILE_START = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
PROFILE_ROWS = 96
CLOCK_TIME = CaptureObjectDefinition(8, CLOCK, 2)
ENERGY_VALUE = CaptureObjectDefinition(3, ENERGY, 2)

_SIGNING: dict[str, ec.EllipticCurvePrivateKey] = {}


def signing_key(who: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 key per role ("client", "meter"), made once per test session."""
    if who not in _SIGNING:
        _SIGNING[who] = ec.generate_private_key(ec.SECP256R1())
    return _SIGNING[who]


def write_pem(path: Path, key: ec.EllipticCurvePrivateKey, *, public: bool = False) -> Path:
    if public:
        data = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    else:
        data = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    path.write_bytes(data)
    return path


def profile_row(index: int) -> tuple[Data, ...]:
    moment = PROFILE_START + dt.timedelta(minutes=15 * index)
    when = datetime_octets(CosemDateTime.from_datetime(moment))
    return (when, DoubleLongUnsigned(ENERGY_RAW - 1000 * (PROFILE_ROWS - index)))


def build_model() -> ObjectModel:
    def now() -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    read = AccessRights.read_only()
    full = AccessRights.full()
    everyone = {PUBLIC: read, LLS_CLIENT: read, MANAGEMENT: full, ECDSA_CLIENT: full}
    profile = ProfileGeneric(
        PROFILE,
        [CLOCK_TIME, ENERGY_VALUE],
        capture_period=900,
        profile_entries=1000,
        access=everyone,
    )
    profile.load_buffer(profile_row(i) for i in range(PROFILE_ROWS))
    associations = [
        AssociationLN(
            Obis(0, 0, 40, 0, index, 255),
            client_sap=sap,
            authentication_mechanism_name=mechanism,
            access={sap: read},
        )
        for index, (sap, mechanism) in enumerate(
            (
                (PUBLIC, MechanismName.LOWEST),
                (LLS_CLIENT, MechanismName.LOW),
                (MANAGEMENT, MechanismName.HIGH_GMAC),
                (ECDSA_CLIENT, MechanismName.HIGH_ECDSA),
            ),
            start=1,
        )
    ]
    return ObjectModel(
        [
            Clock(CLOCK, time_source=now, access=everyone),
            Register(
                ENERGY,
                DoubleLongUnsigned(ENERGY_RAW),
                scaler=ENERGY_SCALER,
                unit=Unit.WATT_HOUR,
                access=everyone,
            ),
            DataObject(SERIAL, VisibleString(SERIAL_NUMBER), access=everyone),
            DataObject(NOTE, OctetString(b"note"), access=everyone),
            Register(
                ODD_REGISTER, DoubleLongUnsigned(7), scaler=2, unit=Unit.COUNT, access=everyone
            ),
            ExtendedRegister(
                DEMAND, DoubleLongUnsigned(4321), scaler=0, unit=Unit.WATT, access=everyone
            ),
            profile,
            *associations,
        ]
    )


def server_settings() -> dict[int, AssociationSettings]:
    def secured(suite: int = 0) -> SecuritySettings:
        return SecuritySettings(
            system_title=METER_TITLE,
            global_keys=GlobalKeys(EK, AK),
            suite=suite,
            ciphering=Ciphering.GLOBAL,
            signing_key=signing_key("meter") if suite else None,
            peer_signing_key=signing_key("client").public_key() if suite else None,
        )

    return {
        PUBLIC: AssociationSettings(client_sap=PUBLIC),
        LLS_CLIENT: AssociationSettings(
            client_sap=LLS_CLIENT, mechanism=MechanismName.LOW, secret=PASSWORD
        ),
        MANAGEMENT: AssociationSettings(
            client_sap=MANAGEMENT, mechanism=MechanismName.HIGH_GMAC, security=secured()
        ),
        ECDSA_CLIENT: AssociationSettings(
            client_sap=ECDSA_CLIENT, mechanism=MechanismName.HIGH_ECDSA, security=secured(1)
        ),
    }


def credentials(auth: Authentication, tmp_path: Path, **changes: object) -> Credentials:
    """Client credentials for the meter's client of ``auth`` (counters under ``tmp_path``)."""
    sap = {
        Authentication.NONE: PUBLIC,
        Authentication.LLS: LLS_CLIENT,
        Authentication.HLS_GMAC: MANAGEMENT,
        Authentication.HLS_ECDSA: ECDSA_CLIENT,
    }[auth]
    values: dict[str, object] = {
        "client_sap": sap,
        "auth": auth,
        "counters": tmp_path / "client-counters.sqlite",
    }
    if auth is Authentication.LLS:
        values["password"] = PASSWORD
    if auth.hls:
        values.update(
            system_title=CLIENT_TITLE,
            unicast_key=EK,
            authentication_key=AK,
        )
    if auth is Authentication.HLS_ECDSA:
        values.update(
            signing_key=signing_key("client"),
            server_signing_key=signing_key("meter").public_key(),
        )
    values.update(changes)
    return Credentials(**values)  # type: ignore[arg-type]


Responder = Callable[[int, bytes, ServerConnection], list[bytes] | None]
"""A test hook: (client SAP, request APDU, association) → the answers to send instead, or
None to let the association answer."""


@dataclass
class TestMeter:
    """The assembled meter on 127.0.0.1 (TCP and UDP on ephemeral ports)."""

    state_dir: Path
    tcp_port: int = 0
    udp_port: int = 0
    responder: Responder | None = None
    rewrite: Callable[[bytes], bytes] | None = None
    model: ObjectModel = field(default_factory=build_model)
    events: list[ServerEvent] = field(default_factory=list)
    requests: list[tuple[int, bytes]] = field(default_factory=list)

    __test__ = False  # not a test class

    def __post_init__(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.settings = server_settings()
        self._lock = threading.Lock()
        self._associations: dict[tuple[object, int], ServerConnection] = {}
        self.sent = CounterStore(self.state_dir / "meter-counters.sqlite", block=10)
        self.received = ReceivedCounterStore(self.state_dir / "meter-counters.sqlite")
        self.tcp = TcpWrapperServer(
            "127.0.0.1",
            self.tcp_port,
            self._on_tcp,
            on_disconnect=self.forget,
        )
        self.udp = UdpWrapperServer("127.0.0.1", self.udp_port, self._on_udp)
        self.tcp_port = self.tcp.address[1]
        self.udp_port = self.udp.address[1]
        self.tcp.start()
        self.udp.start()

    def close(self) -> None:
        self.tcp.close()
        self.udp.close()
        self.sent.close()
        self.received.close()

    def restart(self) -> TestMeter:
        """Stop, and start a new meter on the same ports and state (and the same model)."""
        self.close()
        return TestMeter(
            self.state_dir, self.tcp_port, self.udp_port, self.responder, self.rewrite, self.model
        )

    def _association(self, key: object, client_sap: int) -> ServerConnection | None:
        settings = self.settings.get(client_sap)
        if settings is None:
            return None
        with self._lock:
            association = self._associations.get((key, client_sap))
            if association is None:
                association = ServerConnection(
                    settings, self.model, counters=self.sent, received_counters=self.received
                )
                self._associations[(key, client_sap)] = association
            return association

    def forget(self, key: object) -> None:
        """Drop the associations of ``key`` (a connection that closed)."""
        with self._lock:
            for pair in [p for p in self._associations if p[0] is key]:
                del self._associations[pair]

    def answers(self, key: object, client_sap: int, request: bytes) -> list[bytes]:
        """The answers of the association of (``key``, ``client_sap``) to ``request``."""
        association = self._association(key, client_sap)
        if association is None:
            return []
        self.requests.append((client_sap, request))
        if self.responder is not None:
            replaced = self.responder(client_sap, request, association)
            if replaced is not None:
                return replaced
        association.receive_data(request, dt.datetime.now(dt.UTC))
        while (event := association.next_event()) is not NEED_DATA:
            assert not isinstance(event, type(NEED_DATA))
            self.events.append(event)
        out = association.data_to_send()
        return out if self.rewrite is None else [self.rewrite(apdu) for apdu in out]

    def _on_tcp(self, connection: TcpServerConnection, frame: WrapperFrame) -> bytes | None:
        out = self.answers(connection, frame.source_wport, frame.apdu)
        for apdu in out[:-1]:
            connection.send_apdu(
                apdu, source_wport=frame.destination_wport, destination_wport=frame.source_wport
            )
        return out[-1] if out else None

    def _on_udp(self, source: Address, frame: WrapperFrame) -> bytes | None:
        out = self.answers(source, frame.source_wport, frame.apdu)
        for apdu in out[:-1]:
            self.udp.send_frame(
                WrapperFrame(frame.destination_wport, frame.source_wport, apdu), source
            )
        return out[-1] if out else None


class RecordingLink:
    """An ApduLink around another that records every APDU, and can hand the client an old
    answer in place of the next real one (``substitute``)."""

    def __init__(self, link: ApduLink) -> None:
        self.link = link
        self.sent: list[bytes] = []
        self.received: list[bytes] = []
        self.substitute: bytes | None = None

    def send_apdu(self, apdu: bytes) -> None:
        self.sent.append(apdu)
        self.link.send_apdu(apdu)

    def receive_apdu(self, timeout_s: float | None = None) -> bytes:
        data = self.link.receive_apdu(timeout_s)
        if self.substitute is not None:
            data, self.substitute = self.substitute, None
        self.received.append(data)
        return data

    def close(self) -> None:
        self.link.close()

    def __enter__(self) -> RecordingLink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def tcp_client(
    meter: TestMeter | int, creds: Credentials, **options: Any
) -> tuple[DlmsClient, RecordingLink]:
    """A client whose link records every APDU, to ``meter`` (or a TCP port on 127.0.0.1)."""
    port = meter if isinstance(meter, int) else meter.tcp_port
    link = RecordingLink(
        TcpWrapperLink.connect("127.0.0.1", port, client_wport=creds.client_sap, server_wport=1)
    )
    return DlmsClient(link, creds, **options), link
