"""Shared pieces of the association tests: keys, a dict-backed ServerBackend, an in-memory
pairing of ClientConnection and ServerConnection, and settings factories.

The keys are the Green Book example keys (brief §5.3: EK 000102…0F, AK D0…DF; GB Table 40
via DC tests/test_security.py); the 32-byte suite-2 keys are made up for these tests.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from cosemcast.apdu.acse import MechanismName
from cosemcast.apdu.common import (
    ActionResult,
    CosemAttributeDescriptor,
    CosemMethodDescriptor,
    DataAccessResult,
    SelectiveAccess,
)
from cosemcast.apdu.initiate import Conformance
from cosemcast.association import (
    NEED_DATA,
    AccessContext,
    Associate,
    AssociationSettings,
    Ciphering,
    ClientConnection,
    ClientEvent,
    ClientRequest,
    GlobalKeys,
    SecurityPolicy,
    SecuritySettings,
    ServerConnection,
    ServerEvent,
)
from cosemcast.association.settings import DEFAULT_CONFORMANCE
from cosemcast.axdr.types import Data, DoubleLongUnsigned, OctetString
from cosemcast.obis import Obis
from cosemcast.security.counters import CounterStore, ReceivedCounterStore

EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
EK32 = bytes(range(0x20, 0x40))
AK32 = bytes(range(0x40, 0x60))
CLIENT_ST = bytes.fromhex("4D4D4D0000000001")
SERVER_ST = bytes.fromhex("4D4D4D0000BC614E")
PASSWORD = b"12345678"
NOW = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)

ENERGY = CosemAttributeDescriptor(3, Obis.parse("1-0:1.8.0.255"), 2)
SERIAL = CosemAttributeDescriptor(1, Obis.parse("0-0:96.1.0.255"), 2)
BLOB = CosemAttributeDescriptor(1, Obis.parse("0-0:96.99.0.255"), 2)
ECHO = CosemMethodDescriptor(1, Obis.parse("0-0:96.99.0.255"), 1)
RESET = CosemMethodDescriptor(3, Obis.parse("1-0:1.8.0.255"), 1)
MISSING = CosemAttributeDescriptor(1, Obis.parse("0-0:1.2.3.255"), 2)

_KEYS_BY_CURVE: dict[str, tuple[ec.EllipticCurvePrivateKey, ec.EllipticCurvePrivateKey]] = {}


def signing_keys(suite: int) -> tuple[ec.EllipticCurvePrivateKey, ec.EllipticCurvePrivateKey]:
    """(client key, server key) on the suite's curve; made once per test session."""
    curve: ec.EllipticCurve = ec.SECP256R1() if suite == 1 else ec.SECP384R1()
    if curve.name not in _KEYS_BY_CURVE:
        _KEYS_BY_CURVE[curve.name] = (
            ec.generate_private_key(curve),
            ec.generate_private_key(curve),
        )
    return _KEYS_BY_CURVE[curve.name]


class DictBackend:
    """A ServerBackend over a dict of attribute values and a dict of methods."""

    def __init__(self) -> None:
        self.values: dict[tuple[int, Obis, int], Data] = {
            (ENERGY.class_id, ENERGY.instance_id, 2): DoubleLongUnsigned(5009),
            (SERIAL.class_id, SERIAL.instance_id, 2): OctetString(b"CC-0001"),
            (BLOB.class_id, BLOB.instance_id, 2): OctetString(bytes(range(256)) * 8),
        }
        self.calls: list[tuple[str, AccessContext]] = []

    def get_attribute(
        self,
        ctx: AccessContext,
        descriptor: CosemAttributeDescriptor,
        selection: SelectiveAccess | None,
    ) -> Data | DataAccessResult:
        self.calls.append(("get", ctx))
        key = (descriptor.class_id, descriptor.instance_id, descriptor.attribute_id)
        if key not in self.values:
            return DataAccessResult.OBJECT_UNDEFINED
        return self.values[key]

    def set_attribute(
        self,
        ctx: AccessContext,
        descriptor: CosemAttributeDescriptor,
        selection: SelectiveAccess | None,
        value: Data,
    ) -> DataAccessResult:
        self.calls.append(("set", ctx))
        key = (descriptor.class_id, descriptor.instance_id, descriptor.attribute_id)
        if key not in self.values:
            return DataAccessResult.OBJECT_UNDEFINED
        self.values[key] = value
        return DataAccessResult.SUCCESS

    def invoke_method(
        self, ctx: AccessContext, descriptor: CosemMethodDescriptor, parameters: Data | None
    ) -> tuple[ActionResult, Data | None]:
        self.calls.append(("action", ctx))
        if descriptor == ECHO:
            return ActionResult.SUCCESS, parameters
        if descriptor == RESET:
            self.values[(ENERGY.class_id, ENERGY.instance_id, 2)] = DoubleLongUnsigned(0)
            return ActionResult.SUCCESS, None
        return ActionResult.OBJECT_UNDEFINED, None


def counting_rng(seed: int = 1) -> Callable[[int], bytes]:
    """A deterministic rng: byte values count up from ``seed`` (mod 256)."""
    state = [seed]

    def rng(n: int) -> bytes:
        out = bytes((state[0] + i) % 256 for i in range(n))
        state[0] = (state[0] + n) % 256
        return out

    return rng


@dataclass
class Stores:
    """One side's counter stores in SQLite files (reopen to simulate a restart)."""

    path: Path

    def __post_init__(self) -> None:
        self.sent = CounterStore(self.path / "sent.sqlite", block=4)
        self.received = ReceivedCounterStore(self.path / "received.sqlite")

    def reopen(self) -> Stores:
        self.sent.close()
        self.received.close()
        return Stores(self.path)


def stores(tmp_path: Path, name: str) -> Stores:
    directory = tmp_path / name
    directory.mkdir(parents=True, exist_ok=True)
    return Stores(directory)


def security(
    *,
    own: bytes,
    peer: bytes | None = None,
    suite: int = 0,
    ciphering: Ciphering = Ciphering.GLOBAL,
    policy: SecurityPolicy | None = None,
    side: str = "client",
    ek: bytes | None = None,
) -> SecuritySettings:
    key = EK if suite < 2 else EK32
    auth = AK if suite < 2 else AK32
    signing = None
    peer_signing = None
    if suite:
        client_key, server_key = signing_keys(suite)
        mine, theirs = (client_key, server_key) if side == "client" else (server_key, client_key)
        signing, peer_signing = mine, theirs.public_key()
    return SecuritySettings(
        system_title=own,
        global_keys=GlobalKeys(ek or key, auth),
        suite=suite,
        ciphering=ciphering,
        policy=policy,
        peer_system_title=peer,
        signing_key=signing,
        peer_signing_key=peer_signing,
    )


def settings_pair(
    mechanism: MechanismName = MechanismName.LOWEST,
    *,
    ciphering: Ciphering | None = None,
    suite: int = 0,
    client_pdu: int = 0xFFFF,
    server_pdu: int = 0xFFFF,
    conformance: Conformance = DEFAULT_CONFORMANCE,
    client_password: bytes = PASSWORD,
    client_ek: bytes | None = None,
    policy: SecurityPolicy | None = None,
) -> tuple[AssociationSettings, AssociationSettings]:
    """Client and server settings for one association."""
    secured = ciphering is not None or mechanism in (
        MechanismName.HIGH_GMAC,
        MechanismName.HIGH_ECDSA,
    )
    mode = Ciphering.NONE if ciphering is None else ciphering
    secret = b"" if mechanism is MechanismName.LOWEST else PASSWORD
    client = AssociationSettings(
        client_sap=1,
        mechanism=mechanism,
        secret=client_password if secret else b"",
        security=security(own=CLIENT_ST, suite=suite, ciphering=mode, policy=policy, ek=client_ek)
        if secured
        else None,
        conformance=conformance,
        max_receive_pdu_size=client_pdu,
        challenge_length=16,
    )
    server = AssociationSettings(
        client_sap=1,
        mechanism=mechanism,
        secret=secret,
        security=security(own=SERVER_ST, suite=suite, ciphering=mode, policy=policy, side="server")
        if secured
        else None,
        conformance=conformance,
        max_receive_pdu_size=server_pdu,
        challenge_length=16,
    )
    return client, server


@dataclass
class Pair:
    """A client and a server wired back to back; every APDU is logged and size-checked."""

    client: ClientConnection
    server: ServerConnection
    backend: DictBackend
    log: list[tuple[str, bytes]] = field(default_factory=list)
    server_events: list[ServerEvent] = field(default_factory=list)

    def exchange(self, request: ClientRequest) -> list[ClientEvent]:
        """Send ``request`` and pump APDUs both ways until nobody has anything to send."""
        return self.deliver([self.client.send(request)])

    def deliver(self, to_server: list[bytes]) -> list[ClientEvent]:
        results: list[ClientEvent] = []
        while to_server:
            for apdu in to_server:
                self._check_size(apdu, self.server.settings.max_receive_pdu_size, "C")
                self.server.receive_data(apdu, NOW)
            self.server_events.extend(_drain_server(self.server))
            for apdu in self.server.data_to_send():
                self._check_size(apdu, self.client.settings.max_receive_pdu_size, "S")
                self.client.receive_data(apdu)
            results.extend(_drain_client(self.client))
            to_server = self.client.data_to_send()
        return results

    def one(self, request: ClientRequest) -> ClientEvent:
        results = self.exchange(request)
        assert len(results) == 1, results
        return results[0]

    def _check_size(self, apdu: bytes, limit: int, direction: str) -> None:
        self.log.append((direction, apdu))
        if apdu[0] not in (0x60, 0x61):  # the AARQ/AARE precede the negotiation
            assert len(apdu) <= limit, f"{direction} sent {len(apdu)} bytes over {limit}"

    def sent_by(self, direction: str) -> Iterator[bytes]:
        return (apdu for d, apdu in self.log if d == direction)


def _drain_server(server: ServerConnection) -> list[ServerEvent]:
    events: list[ServerEvent] = []
    while (event := server.next_event()) is not NEED_DATA:
        assert not isinstance(event, type(NEED_DATA))
        events.append(event)
    return events


def _drain_client(client: ClientConnection) -> list[ClientEvent]:
    events: list[ClientEvent] = []
    while (event := client.next_event()) is not NEED_DATA:
        assert not isinstance(event, type(NEED_DATA))
        events.append(event)
    return events


def make_pair(
    client_settings: AssociationSettings,
    server_settings: AssociationSettings,
    *,
    client_stores: Stores | None = None,
    server_stores: Stores | None = None,
    backend: DictBackend | None = None,
) -> Pair:
    client = ClientConnection(
        client_settings,
        counters=None if client_stores is None else client_stores.sent,
        received_counters=None if client_stores is None else client_stores.received,
        rng=counting_rng(1),
    )
    backend = backend or DictBackend()
    server = ServerConnection(
        server_settings,
        backend,
        counters=None if server_stores is None else server_stores.sent,
        received_counters=None if server_stores is None else server_stores.received,
        rng=counting_rng(101),
    )
    return Pair(client, server, backend)


def associated_pair(
    tmp_path: Path,
    mechanism: MechanismName = MechanismName.LOWEST,
    **kwargs: object,
) -> Pair:
    client_settings, server_settings = settings_pair(mechanism, **kwargs)  # type: ignore[arg-type]
    pair = make_pair(
        client_settings,
        server_settings,
        client_stores=stores(tmp_path, "client"),
        server_stores=stores(tmp_path, "server"),
    )
    pair.one(Associate())
    return pair


def test_dict_backend_answers_unknown_attributes_with_object_undefined() -> None:
    backend = DictBackend()
    ctx = AccessContext(1, MechanismName.LOWEST, False, None, False)
    assert backend.get_attribute(ctx, MISSING, None) is DataAccessResult.OBJECT_UNDEFINED
    assert backend.get_attribute(ctx, ENERGY, None) == 5009
