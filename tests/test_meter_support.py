"""Shared pieces of the software-meter tests: a fake clock, a tiny client over a wrapper link
(the association ClientConnection driven by a TcpWrapperLink or UdpWrapperLink; the proper
client API lives in cosemcast.client), settings for the default configuration's clients.

The keys are the default configuration's public test keys (the Green Book example keys,
brief §5.3: EK 000102…0F, AK D0…DF), read back from the shipped file by the config tests.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from cosemcast.apdu.acse import MechanismName
from cosemcast.apdu.common import (
    CosemAttributeDescriptor,
    CosemMethodDescriptor,
    GetDataValue,
    SelectiveAccess,
)
from cosemcast.association import (
    NEED_DATA,
    AssociationSettings,
    Ciphering,
    ClientConnection,
    ClientEvent,
    ClientRequest,
    Get,
    GetResult,
    GlobalKeys,
    SecuritySettings,
)
from cosemcast.axdr.types import Data
from cosemcast.obis import Obis
from cosemcast.security.counters import CounterStore, ReceivedCounterStore
from cosemcast.transport.base import ApduLink
from cosemcast.transport.tcp import TcpWrapperLink

EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
KEK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
METER_TITLE = bytes.fromhex("4D4D4D0000BC614E")
CLIENT_TITLE = b"CSCTEST1"
PASSWORD = b"12345678"
START = dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)  # 12:00 CEST

CLOCK = CosemAttributeDescriptor(8, Obis.parse("0-0:1.0.0.255"), 2)
ENERGY = CosemAttributeDescriptor(3, Obis.parse("1-0:1.8.0.255"), 2)
ENERGY_SCALER_UNIT = CosemAttributeDescriptor(3, Obis.parse("1-0:1.8.0.255"), 3)
POWER = CosemAttributeDescriptor(3, Obis.parse("1-0:1.7.0.255"), 2)
SERIAL = CosemAttributeDescriptor(1, Obis.parse("0-0:96.1.0.255"), 2)
PROFILE = CosemAttributeDescriptor(7, Obis.parse("1-0:99.1.0.255"), 2)
PROFILE_ENTRIES = CosemAttributeDescriptor(7, Obis.parse("1-0:99.1.0.255"), 7)
OBJECT_LIST = CosemAttributeDescriptor(15, Obis.parse("0-0:40.0.0.255"), 2)
DISCONNECT_STATE = CosemAttributeDescriptor(70, Obis.parse("0-0:96.3.10.255"), 2)
REMOTE_DISCONNECT = CosemMethodDescriptor(70, Obis.parse("0-0:96.3.10.255"), 1)
KEY_TRANSFER = CosemMethodDescriptor(64, Obis.parse("0-0:43.0.0.255"), 2)
PUSH = CosemMethodDescriptor(40, Obis.parse("0-0:25.9.0.255"), 1)
PUSH_DESTINATION = CosemAttributeDescriptor(40, Obis.parse("0-0:25.9.0.255"), 3)


@dataclass
class FakeClock:
    """Injected time: moves only when a test says so."""

    now: dt.datetime = START

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


def public_settings() -> AssociationSettings:
    return AssociationSettings(client_sap=16, server_sap=1)


def lls_settings(password: bytes = PASSWORD) -> AssociationSettings:
    return AssociationSettings(
        client_sap=17, server_sap=1, mechanism=MechanismName.LOW, secret=password
    )


def management_settings(
    ek: bytes = EK, ak: bytes = AK, ciphering: Ciphering = Ciphering.GLOBAL
) -> AssociationSettings:
    return AssociationSettings(
        client_sap=1,
        server_sap=1,
        mechanism=MechanismName.HIGH_GMAC,
        security=SecuritySettings(
            system_title=CLIENT_TITLE, global_keys=GlobalKeys(ek, ak), ciphering=ciphering
        ),
    )


@dataclass
class Client:
    """A ClientConnection driven over an ApduLink; ``log`` keeps every APDU both ways."""

    link: ApduLink
    connection: ClientConnection
    log: list[tuple[str, bytes]] = field(default_factory=list)
    timeout_s: float = 5.0

    def request(self, event: ClientRequest) -> ClientEvent:
        self._send(self.connection.send(event))
        while True:
            result = self.connection.next_event()
            for apdu in self.connection.data_to_send():
                self._send(apdu)
            if result is not NEED_DATA:
                return result
            apdu = self.link.receive_apdu(self.timeout_s)
            self.log.append(("<", apdu))
            self.connection.receive_data(apdu)

    def _send(self, apdu: bytes) -> None:
        self.log.append((">", apdu))
        self.link.send_apdu(apdu)

    def get(self, descriptor: CosemAttributeDescriptor) -> Data:
        result = self.request(Get(descriptor))
        assert isinstance(result, GetResult), result
        assert isinstance(result.result, GetDataValue), result.result
        return result.result.value

    def get_selected(
        self, descriptor: CosemAttributeDescriptor, selection: SelectiveAccess
    ) -> Data:
        result = self.request(Get(descriptor, selection))
        assert isinstance(result, GetResult), result
        assert isinstance(result.result, GetDataValue), result.result
        return result.result.value

    def close(self) -> None:
        self.link.close()


@dataclass
class ClientStores:
    """The client's invocation counters (a ciphering client needs them)."""

    directory: Path

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.sent = CounterStore(self.directory / "client.sqlite3")
        self.received = ReceivedCounterStore(self.directory / "client.sqlite3")

    def close(self) -> None:
        self.sent.close()
        self.received.close()


def tcp_client(
    address: tuple[str, int], settings: AssociationSettings, stores: ClientStores | None = None
) -> Client:
    link = TcpWrapperLink.connect(
        address[0], address[1], client_wport=settings.client_sap, server_wport=settings.server_sap
    )
    return Client(link, client_connection(settings, stores))


def client_connection(
    settings: AssociationSettings, stores: ClientStores | None = None
) -> ClientConnection:
    if stores is None:
        return ClientConnection(settings)
    return ClientConnection(settings, counters=stores.sent, received_counters=stores.received)
