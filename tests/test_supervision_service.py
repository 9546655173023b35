"""The supervision centre as a service (specs/supervision.md §8): real TCP, real SQLite.

A centre on 127.0.0.1 with a registry in tmp_path; head-ends reach it through
:class:`SupervisionClient` (HLS-GMAC, glo-ciphering); meters are DLMS servers on TCP whose
assignment object (class 8962, method 1) runs :class:`MeterAuthorization`. Every rejection is
refused with a clear error and leaves the registry (but for one audit row) and the meter
unchanged; the database files never hold Kt, Ki, Ks, I0 or a channel key in clear.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from cosemcast.apdu.acse import MechanismName
from cosemcast.apdu.action import ActionRequestNormal
from cosemcast.apdu.base import decode_apdu
from cosemcast.apdu.common import (
    ActionResult,
    CosemAttributeDescriptor,
    CosemMethodDescriptor,
    DataAccessResult,
    SelectiveAccess,
)
from cosemcast.apdu.notifications import ExceptionResponse
from cosemcast.association import (
    NEED_DATA,
    AccessContext,
    Associate,
    AssociationSettings,
    ClientConnection,
    ServerConnection,
)
from cosemcast.axdr.types import Data, OctetString
from cosemcast.client import Credentials, DlmsClient
from cosemcast.client.errors import ActionError
from cosemcast.errors import AssociationRejected, AuthenticationFailed, DlmsError, ReplayError
from cosemcast.link.wrapper import WrapperFrame
from cosemcast.security.counters import CounterStore, ReceivedCounterStore
from cosemcast.supervision import (
    ConsentError,
    EnrollmentRequest,
    FutureInitMessage,
    InitAction,
    MemoryAuthorizationStore,
    MeterAuthorization,
    StaleInitMessage,
    UnknownPartyError,
    derive_ki,
    derive_ks,
)
from cosemcast.supervision.atrest import MasterKey
from cosemcast.supervision.channel import ChannelKeys, client_settings
from cosemcast.supervision.client import (
    SupervisionClient,
    deliver_init_message,
    relay_init_message,
)
from cosemcast.supervision.registry import Registry, public_key_bytes
from cosemcast.supervision.service import SupervisionService
from cosemcast.supervision.wire import ASSIGNMENT_CLASS_ID, ASSIGNMENT_OBIS, SERVICE_OBIS
from cosemcast.transport.tcp import TcpServerConnection, TcpWrapperLink, TcpWrapperServer

NOW = 1_767_225_600
CENTRE_ID = bytes.fromhex("5355504500000001")
MASTER = MasterKey(bytes(range(0xA0, 0xC0)))
HEAD_ENDS = [bytes.fromhex(f"48454E44000000{n:02X}") for n in (1, 2, 3)]
STRANGER = bytes.fromhex("48454E44000000FF")


def meter_id(n: int) -> bytes:
    return bytes.fromhex("4D414E01") + n.to_bytes(4, "big")


def meter_kt(n: int) -> bytes:
    return bytes([n & 0xFF, 0x5A]) + bytes(range(0x10, 0x1E))


def enroll(
    n: int,
    head_end: bytes,
    counter: int,
    *,
    at: int = NOW,
    kt: bytes | None = None,
    action: InitAction = InitAction.ASSIGN,
) -> bytes:
    request = EnrollmentRequest(meter_id(n), head_end, at, counter, action)
    return request.seal(meter_kt(n) if kt is None else kt)


@dataclass
class Clock:
    now: int = NOW

    def __call__(self) -> float:
        return float(self.now)


@dataclass
class Centre:
    """A running centre and what the head-ends hold."""

    registry: Registry
    service: SupervisionService
    keys: dict[bytes, ChannelKeys]
    clock: Clock
    tmp: Path

    def client(self, head_end: bytes, keys: ChannelKeys | None = None) -> SupervisionClient:
        chosen = self.keys[head_end] if keys is None else keys
        host, port = self.service.address
        return SupervisionClient(
            host,
            port,
            head_end_id=head_end,
            ek=chosen.ek,
            ak=chosen.ak,
            counters=self.tmp / f"{head_end.hex()}.counters",
            centre_id=CENTRE_ID,
        )


def start_centre(tmp: Path, meters: int = 4) -> Centre:
    registry = Registry(tmp / "centre.db", MASTER)
    registry.initialise(centre_id=CENTRE_ID, now=NOW)
    keys = {}
    for n, head_end in enumerate(HEAD_ENDS):
        keys[head_end] = ChannelKeys.generate()
        registry.register_head_end(
            head_end, name=f"head-end {n}", credential=keys[head_end].credential, now=NOW
        )
    for n in range(meters):
        registry.add_meter(meter_id(n), meter_kt(n), now=NOW)
    clock = Clock()
    service = SupervisionService(registry, port=0, clock=clock)
    service.start()
    return Centre(registry, service, keys, clock, tmp)


@pytest.fixture
def centre(tmp_path: Path) -> Iterator[Centre]:
    running = start_centre(tmp_path)
    yield running
    running.service.close()
    running.registry.close()


# --- a meter on TCP: the assignment object (class 8962) over MeterAuthorization ---------------


@dataclass
class MeterBackend:
    """Method 1 of 0-0:128.3.0.255 loads an init message; remembers why it refused."""

    authorization: MeterAuthorization
    clock: Clock
    errors: list[DlmsError] = field(default_factory=list)

    def get_attribute(
        self,
        ctx: AccessContext,
        descriptor: CosemAttributeDescriptor,
        selection: SelectiveAccess | None,
    ) -> Data | DataAccessResult:
        return DataAccessResult.OBJECT_UNDEFINED

    def set_attribute(
        self,
        ctx: AccessContext,
        descriptor: CosemAttributeDescriptor,
        selection: SelectiveAccess | None,
        value: Data,
    ) -> DataAccessResult:
        return DataAccessResult.READ_WRITE_DENIED

    def invoke_method(
        self, ctx: AccessContext, descriptor: CosemMethodDescriptor, parameters: Data | None
    ) -> tuple[ActionResult, Data | None]:
        wanted = (ASSIGNMENT_CLASS_ID, ASSIGNMENT_OBIS, 1)
        if (descriptor.class_id, descriptor.instance_id, descriptor.method_id) != wanted:
            return ActionResult.OBJECT_UNDEFINED, None
        if type(parameters) is not OctetString:
            return ActionResult.TYPE_UNMATCHED, None
        try:
            self.authorization.load(bytes(parameters), int(self.clock()))
        except DlmsError as exc:
            self.errors.append(exc)
            return ActionResult.READ_WRITE_DENIED, None
        return ActionResult.SUCCESS, None


@dataclass
class Meter:
    n: int
    store: MemoryAuthorizationStore
    backend: MeterBackend
    server: TcpWrapperServer

    def client(self) -> DlmsClient:
        host, port = self.server.address
        return DlmsClient.tcp(host, port, Credentials())

    def state(self) -> tuple[int, dict[bytes, bytes | None]]:
        return self.store.last_sequence(), {
            h: self.store.head_end_key(h) for h in self.store.head_ends()
        }


def start_meter(
    n: int, centre_key: ec.EllipticCurvePublicKey, clock: Clock, kt: bytes | None = None
) -> Meter:
    store = MemoryAuthorizationStore()
    authorization = MeterAuthorization(
        meter_id=meter_id(n),
        kt=meter_kt(n) if kt is None else kt,
        centre_public_key=centre_key,
        store=store,
    )
    backend = MeterBackend(authorization, clock)
    sessions: dict[TcpServerConnection, ServerConnection] = {}
    lock = threading.Lock()

    def handler(conn: TcpServerConnection, frame: WrapperFrame) -> bytes | None:
        with lock:
            server = sessions.setdefault(
                conn, ServerConnection(AssociationSettings(client_sap=16), backend)
            )
        server.receive_data(frame.apdu)
        while server.next_event() is not NEED_DATA:
            pass
        answers = server.data_to_send()
        return answers[-1] if answers else None

    tcp = TcpWrapperServer("127.0.0.1", 0, handler)
    tcp.start()
    return Meter(n, store, backend, tcp)


@pytest.fixture
def meters(centre: Centre) -> Iterator[list[Meter]]:
    running = [start_meter(n, centre.registry.centre_public_key(), centre.clock) for n in range(2)]
    yield running
    for meter in running:
        meter.server.close()


def snapshot(registry: Registry) -> dict[str, list[tuple[object, ...]]]:
    """Every table but the audit log."""
    conn = sqlite3.connect(registry.path)
    try:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            for table in ("settings", "meters", "head_ends", "consents", "assignments")
        }
    finally:
        conn.close()


# --- the assignment protocol end to end --------------------------------------------------------


def test_three_head_ends_assigned_and_relayed(centre: Centre, meters: list[Meter]) -> None:
    """Claim 7 and Fig. 6c: each head-end gets Ks, relays the message, the meter agrees."""
    counter = 0
    for head_end in HEAD_ENDS:
        with centre.client(head_end) as channel:
            assert channel.centre_id == CENTRE_ID
            for meter in meters:
                counter += 1
                assignment = channel.assign(enroll(meter.n, head_end, counter))
                assert assignment.meter_id == meter_id(meter.n)
                with meter.client() as link:
                    link.associate()
                    relay_init_message(link, assignment.init_message)
                assert meter.store.head_end_key(head_end) == assignment.ks
                assert assignment.ks == centre.registry.head_end_key(
                    meter_id=meter_id(meter.n), head_end_id=head_end
                )
    for meter in meters:
        assert meter.store.head_ends() == frozenset(HEAD_ENDS)
        assert meter.store.last_sequence() == 3
        assert meter.backend.errors == []


def test_delivered_straight_by_the_centre(centre: Centre, meters: list[Meter]) -> None:
    """Fig. 6b: the same bytes, taken from the registry and delivered by the centre."""
    meter = meters[0]
    with centre.client(HEAD_ENDS[0]) as channel:
        assignment = channel.assign(enroll(0, HEAD_ENDS[0], 7))
    stored = centre.registry.init_message(meter_id=meter_id(0), sequence=assignment.sequence)
    assert stored == assignment.init_message
    with meter.client() as link:
        link.associate()
        deliver_init_message(link, stored)
    assert meter.store.head_end_key(HEAD_ENDS[0]) == assignment.ks


def test_reissue_keeps_ks_and_attributes_are_readable(centre: Centre) -> None:
    with centre.client(HEAD_ENDS[1]) as channel:
        first = channel.assign(enroll(1, HEAD_ENDS[1], 1))
        again = channel.reissue(meter_id(1))
        assert (again.sequence, again.ks) == (first.sequence + 1, first.ks)
        assert channel.centre_public_key() == public_key_bytes(centre.registry.centre_public_key())
        with pytest.raises(UnknownPartyError, match="no meter"):
            channel.reissue(meter_id(99))


def test_change_of_owner_through_the_service(centre: Centre, meters: list[Meter]) -> None:
    meter = meters[0]
    for counter, (head_end, action) in enumerate(
        [(HEAD_ENDS[0], InitAction.ASSIGN), (HEAD_ENDS[2], InitAction.ASSIGN_EXCLUSIVE)], 1
    ):
        with centre.client(head_end) as channel:
            assignment = channel.assign(enroll(0, head_end, counter, action=action))
        assert assignment.action is action
        with meter.client() as link:
            link.associate()
            relay_init_message(link, assignment.init_message)
    assert meter.store.head_ends() == frozenset({HEAD_ENDS[2]})


# --- rejections at the centre ------------------------------------------------------------------


def audit_rows(registry: Registry) -> list[tuple[str, str]]:
    return [(e.operation, e.decision) for e in registry.audit_log()]


@pytest.mark.parametrize(
    "case",
    ["unknown head-end", "revoked head-end", "wrong EK", "wrong AK", "no authentication"],
)
def test_unauthenticated_parties_are_refused(centre: Centre, case: str) -> None:
    if case == "revoked head-end":
        centre.registry.revoke_head_end(HEAD_ENDS[2], now=NOW)
    before, audit = snapshot(centre.registry), audit_rows(centre.registry)
    head_end, keys = HEAD_ENDS[2], centre.keys[HEAD_ENDS[2]]
    if case == "unknown head-end":
        head_end = STRANGER
    elif case == "wrong EK":
        keys = ChannelKeys(bytes(16), keys.ak)
    elif case == "wrong AK":
        keys = ChannelKeys(keys.ek, bytes(16))
    with pytest.raises(AssociationRejected, match="rejected the association"):
        if case == "no authentication":
            host, port = centre.service.address
            with DlmsClient.tcp(host, port, Credentials(client_sap=1)) as public:
                public.associate()
        else:
            centre.client(head_end, keys)
    assert snapshot(centre.registry) == before
    assert audit_rows(centre.registry) == [*audit, ("associate", "rejected")]


def raw_aare(centre: Centre, head_end: bytes, keys: ChannelKeys) -> bytes:
    """The centre's answer to one AARQ, as bytes."""
    stores = centre.tmp / f"raw-{head_end.hex()}-{keys.ek.hex()[:8]}.counters"
    connection = ClientConnection(
        client_settings(head_end_id=head_end, keys=keys),
        counters=CounterStore(stores),
        received_counters=ReceivedCounterStore(stores),
    )
    host, port = centre.service.address
    with TcpWrapperLink.connect(host, port, client_wport=1, server_wport=1) as link:
        link.send_apdu(connection.send(Associate()))
        return link.receive_apdu(10.0)


def test_an_unknown_head_end_learns_no_more_than_a_wrong_key(centre: Centre) -> None:
    """The refusal is the same bytes whether the title is registered or not."""
    stranger = raw_aare(centre, STRANGER, ChannelKeys(bytes(16), bytes(16)))
    wrong_key = raw_aare(centre, HEAD_ENDS[0], ChannelKeys(bytes(16), bytes(16)))
    assert stranger == wrong_key
    assert decode_apdu(stranger).result != 0  # type: ignore[attr-defined]


def test_a_plain_request_gets_nothing(centre: Centre) -> None:
    """An ACTION in clear, without an association, is refused before any registry work."""
    before, audit = snapshot(centre.registry), audit_rows(centre.registry)
    request = ActionRequestNormal(
        CosemMethodDescriptor(8963, SERVICE_OBIS, 1), OctetString(enroll(0, HEAD_ENDS[0], 1))
    )
    host, port = centre.service.address
    with TcpWrapperLink.connect(host, port, client_wport=1, server_wport=1) as link:
        link.send_apdu(request.encode())
        answer = decode_apdu(link.receive_apdu(10.0))
    assert isinstance(answer, ExceptionResponse)
    assert snapshot(centre.registry) == before
    assert audit_rows(centre.registry) == [*audit, ("request", "rejected")]


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ("for another head-end", ConsentError, "chose head-end"),
        ("forged tag", ConsentError, "no valid consent"),
        ("replayed consent", ConsentError, "already used"),
        ("stale consent", ConsentError, "no valid consent"),
        ("unknown meter", UnknownPartyError, "no meter"),
        ("malformed", ConsentError, "malformed"),
    ],
)
def test_assignments_without_consent_are_refused(
    centre: Centre, case: str, error: type[Exception], message: str
) -> None:
    head_end = HEAD_ENDS[0]
    with centre.client(head_end) as channel:
        channel.assign(enroll(0, head_end, 1))
        before, audit = snapshot(centre.registry), audit_rows(centre.registry)
        request = {
            "for another head-end": lambda: enroll(0, HEAD_ENDS[1], 2),
            "forged tag": lambda: enroll(0, head_end, 2, kt=bytes(16)),
            "replayed consent": lambda: enroll(0, head_end, 1),
            "stale consent": lambda: enroll(0, head_end, 2, at=NOW - 3 * 86_400),
            "unknown meter": lambda: EnrollmentRequest(meter_id(77), head_end, NOW, 1).seal(
                bytes(16)
            ),
            "malformed": lambda: b"\xdd\x00",
        }[case]()
        with pytest.raises(error, match=message):
            channel.assign(request)
        assert snapshot(centre.registry) == before
        assert audit_rows(centre.registry) == [*audit, ("assign", "rejected")]
        # The association survives a refusal: the head-end goes on.
        assert channel.assign(enroll(1, head_end, 1)).meter_id == meter_id(1)


# --- rejections at the meter (relayed messages) ------------------------------------------------


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("bad signature", AuthenticationFailed),
        ("wrong Ki", AuthenticationFailed),
        ("expired", StaleInitMessage),
        ("future", FutureInitMessage),
        ("replayed", ReplayError),
    ],
)
def test_meter_refuses_and_stays_unchanged(
    centre: Centre, case: str, error: type[DlmsError]
) -> None:
    clock = Clock()
    key = centre.registry.centre_public_key()
    if case == "bad signature":
        key = ec.generate_private_key(ec.SECP256R1()).public_key()
    meter = start_meter(0, key, clock, kt=bytes(16) if case == "wrong Ki" else None)
    try:
        with centre.client(HEAD_ENDS[0]) as channel:
            first = channel.assign(enroll(0, HEAD_ENDS[0], 1))
            second = channel.assign(enroll(0, HEAD_ENDS[0], 2))
        with meter.client() as link:
            link.associate()
            if case == "replayed":
                relay_init_message(link, second.init_message)
            before = meter.state()
            clock.now = {"expired": NOW + 2 * 86_400, "future": NOW - 3_600}.get(case, NOW)
            with pytest.raises(ActionError, match="read-write-denied"):
                relay_init_message(link, first.init_message)
        assert meter.state() == before
        assert isinstance(meter.backend.errors[-1], error)
    finally:
        meter.server.close()


def test_signing_key_rotation(centre: Centre, meters: list[Meter]) -> None:
    """New messages are signed with the new key: a meter still holding the old one refuses."""
    old = centre.registry.centre_public_key()
    new = centre.registry.rotate_signing_key(now=NOW)
    assert public_key_bytes(new) != public_key_bytes(old)
    assert centre.registry.retired_signing_keys() == [(public_key_bytes(old), NOW)]
    with centre.client(HEAD_ENDS[0]) as channel:
        assert channel.centre_public_key() == public_key_bytes(new)
        assignment = channel.assign(enroll(0, HEAD_ENDS[0], 1))
    with meters[0].client() as link:
        link.associate()
        with pytest.raises(ActionError):
            relay_init_message(link, assignment.init_message)
    assert isinstance(meters[0].backend.errors[-1], AuthenticationFailed)
    renewed = start_meter(0, new, centre.clock)
    try:
        with renewed.client() as link:
            link.associate()
            relay_init_message(link, assignment.init_message)
        assert renewed.store.head_end_key(HEAD_ENDS[0]) == assignment.ks
    finally:
        renewed.server.close()
    assert ("rotate-signing-key", "accepted") in audit_rows(centre.registry)


# --- secrets at rest and the audit log ----------------------------------------------------------


def test_database_files_hold_no_secret_in_clear(centre: Centre, meters: list[Meter]) -> None:
    secrets: list[bytes] = []
    for keys in centre.keys.values():
        secrets += [keys.ek, keys.ak]
    for n in range(4):
        secrets += [meter_kt(n), derive_ki(meter_kt(n), meter_id=meter_id(n))]
    counter = 0
    for head_end in HEAD_ENDS:
        with centre.client(head_end) as channel:
            for meter in meters:
                counter += 1
                assignment = channel.assign(enroll(meter.n, head_end, counter))
                secrets.append(assignment.ks)
                accepted = meter.backend.authorization.load(assignment.init_message, NOW)
                secrets.append(accepted.i0)
                assert accepted.ks == derive_ks(
                    meter_kt(meter.n),
                    meter_id=meter_id(meter.n),
                    head_end_id=head_end,
                    i0=accepted.i0,
                )

    def scan() -> None:
        files = [p for p in centre.tmp.iterdir() if p.name.startswith("centre.db")]
        assert {p.name for p in files} >= {"centre.db", "centre.db.counters"}
        blob = b"".join(p.read_bytes() for p in files)
        for secret in secrets:
            assert secret not in blob
            assert secret.hex().encode() not in blob.lower()

    scan()  # WAL files live
    centre.service.close()
    centre.registry.close()
    scan()  # checkpointed


def test_the_audit_log_records_every_decision(centre: Centre) -> None:
    start = len(centre.registry.audit_log())
    with centre.client(HEAD_ENDS[0]) as channel:
        channel.assign(enroll(0, HEAD_ENDS[0], 1))
        with pytest.raises(ConsentError):
            channel.assign(enroll(0, HEAD_ENDS[0], 1))
        channel.reissue(meter_id(0))
    with pytest.raises(AssociationRejected):
        centre.client(STRANGER, ChannelKeys(bytes(16), bytes(16)))
    entries = centre.registry.audit_log()[start:]
    assert [(e.operation, e.decision) for e in entries] == [
        ("associate", "accepted"),
        ("assign", "accepted"),
        ("assign", "rejected"),
        ("reissue", "accepted"),
        ("associate", "rejected"),
    ]
    assert entries[0].head_end_id == HEAD_ENDS[0]
    assert entries[1].actor == f"head-end {HEAD_ENDS[0].hex().upper()}"
    assert "already used" in entries[2].detail
    assert entries[4].head_end_id == STRANGER
    assert "unknown or inactive" in entries[4].detail
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn = sqlite3.connect(centre.registry.path)
        try:
            conn.execute("DELETE FROM audit")
        finally:
            conn.close()


def test_mechanism_is_hls_gmac_with_ciphering(centre: Centre) -> None:
    settings = client_settings(head_end_id=HEAD_ENDS[0], keys=centre.keys[HEAD_ENDS[0]])
    assert settings.mechanism is MechanismName.HIGH_GMAC
    assert settings.ciphered
