"""The assignment protocol end to end with the software meter (specs/supervision.md §6.5-§6.7,
§7, §8): the meter's own enrollment request verifies at a real Registry, the init message is
relayed by a DlmsClient over TCP (Fig. 6c), the assigned set with each Ks reaches the
shared-payload side, a change of owner retires the other head-ends ([0057]), and the validity
counter switches the Disconnect control to the interrupted mode and back ([0049]). No key
appears in any log line."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from cosemcast.apdu.common import ActionResult, LongInvokeIdAndPriority
from cosemcast.apdu.notifications import DataNotification
from cosemcast.axdr.types import (
    DoubleLongUnsigned,
    Enumerated,
    Integer,
    Long64Unsigned,
    OctetString,
    Structure,
)
from cosemcast.client import ActionError, DlmsClient
from cosemcast.cosem.disconnect import ControlMode, ControlState, DisconnectControl
from cosemcast.cosem.register import Register
from cosemcast.errors import KeyUnavailableError
from cosemcast.meter import SoftwareMeter
from cosemcast.obis import Obis
from cosemcast.sharedpayload import (
    HeadEndAssignment,
    HeadEndOpener,
    MemoryCounterSource,
    MemoryPayloadKeyStore,
    MisaddressedMessage,
    PayloadSealer,
    StaticMeterCredentials,
)
from cosemcast.supervision import (
    ConsentError,
    InitAction,
    derive_enrollment_key,
    derive_ki,
    open_enrollment_request,
)
from test_meter_assignment_support import (
    ASSIGNMENT,
    HE1,
    HE2,
    HE3,
    KT,
    METER_ID,
    NOW,
    Centre,
    Recorder,
    make_meter,
)
from test_meter_support import START, FakeClock, management_settings

ENERGY = Obis.parse("1-0:1.8.0.255")
DISCONNECT = Obis.parse("0-0:96.3.10.255")


@pytest.fixture
def centre(tmp_path: Path) -> Iterator[Centre]:
    c = Centre(tmp_path / "centre.db")
    yield c
    c.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def client_of(meter: SoftwareMeter, tmp_path: Path, *, management: bool = True) -> DlmsClient:
    if not meter.servers:
        meter.serve_tcp("127.0.0.1", 0)
    host, port = meter.servers[0].address
    if management:
        settings = management_settings()
        client = DlmsClient.tcp(host, port, settings, counters=tmp_path / "client.db")
    else:
        from cosemcast.association import AssociationSettings

        client = DlmsClient.tcp(host, port, AssociationSettings(client_sap=16, server_sap=1))
    client.associate()
    return client


def enroll(client: DlmsClient, head_end: bytes, action: int = 1) -> bytes:
    raw = client.action(ASSIGNMENT, 2, Structure([OctetString(head_end), Enumerated(action)]), 8962)
    assert isinstance(raw, OctetString)
    return bytes(raw)


def load(client: DlmsClient, raw: bytes) -> None:
    client.action(ASSIGNMENT, 1, OctetString(raw), 8962)


# --- enrollment ------------------------------------------------------------------------------


def test_the_meters_enrollment_request_verifies_at_the_registry(
    tmp_path: Path, centre: Centre, clock: FakeClock
) -> None:
    state = tmp_path / "meter.db"
    recorder = Recorder()
    with make_meter(state, centre, clock) as meter:
        assert meter.supervision is not None
        meter.supervision.listeners.append(recorder)
        client = client_of(meter, tmp_path)
        try:
            first = enroll(client, HE1)
            second = enroll(client, HE2, InitAction.ASSIGN_EXCLUSIVE)
            issued = centre.registry.assign(head_end_id=HE1, enrollment=first, now=NOW)
            load(client, issued.init_message)  # relayed by the head-end (Fig. 6c)
            assert client.get(ASSIGNMENT, 3, 8962) == DoubleLongUnsigned(issued.sequence)
        finally:
            client.close()
    with pytest.raises(ConsentError):  # HE1's consent is not HE2's
        centre.registry.assign(head_end_id=HE2, enrollment=first, now=NOW)
    assert recorder.last[HE1].ks == issued.ks
    assert recorder.last[HE1].destination == "127.0.0.1:4061"
    counters = [
        open_enrollment_request(raw, kt=KT, now=NOW, used_counters=()).counter
        for raw in (first, second)
    ]
    assert counters[0] < counters[1]
    request = open_enrollment_request(second, kt=KT, now=NOW, used_counters=())
    assert (request.head_end_id, request.action) == (HE2, InitAction.ASSIGN_EXCLUSIVE)
    assert request.requested_at == NOW
    with make_meter(state, centre, clock) as meter:  # the counter is never reused
        client = client_of(meter, tmp_path)
        try:
            again = enroll(client, HE3)
        finally:
            client.close()
    assert open_enrollment_request(again, kt=KT, now=NOW, used_counters=()).counter > counters[1]
    centre.registry.assign(head_end_id=HE3, enrollment=again, now=NOW)


@pytest.mark.parametrize(
    ("parameter", "result"),
    [
        (Structure([OctetString(HE1[:7]), Enumerated(1)]), ActionResult.OTHER_REASON),
        (Structure([OctetString(HE1), Enumerated(3)]), ActionResult.OTHER_REASON),
        (Structure([OctetString(HE1)]), ActionResult.TYPE_UNMATCHED),
        (OctetString(HE1), ActionResult.TYPE_UNMATCHED),
        (Integer(0), ActionResult.TYPE_UNMATCHED),
    ],
)
def test_bad_enrollment_parameters_are_refused(
    tmp_path: Path, centre: Centre, clock: FakeClock, parameter: object, result: ActionResult
) -> None:
    with make_meter(tmp_path / "meter.db", centre, clock) as meter:
        client = client_of(meter, tmp_path)
        try:
            with pytest.raises(ActionError) as info:
                client.action(ASSIGNMENT, 2, parameter, 8962)  # type: ignore[arg-type]
        finally:
            client.close()
    assert info.value.result is result


def test_only_the_management_association_enrolls(
    tmp_path: Path, centre: Centre, clock: FakeClock
) -> None:
    with make_meter(tmp_path / "meter.db", centre, clock) as meter:
        client = client_of(meter, tmp_path, management=False)
        try:
            with pytest.raises(ActionError) as info:
                enroll(client, HE1)
            assert info.value.result is ActionResult.READ_WRITE_DENIED
            # ... but the public client may relay an initialization message (Fig. 6c)
            load(client, centre.assign(HE1).init_message)
            assert client.get(ASSIGNMENT, 3, 8962) == DoubleLongUnsigned(1)
        finally:
            client.close()


# --- the validity counter and the interrupted mode ([0049]) ----------------------------------


def parts(meter: SoftwareMeter) -> tuple[DisconnectControl, Register]:
    model = meter.devices[1].model
    disconnect = model.find(70, DISCONNECT)
    energy = model.find(3, ENERGY)
    assert isinstance(disconnect, DisconnectControl) and isinstance(energy, Register)
    return disconnect, energy


def test_no_renewal_interrupts_the_supply_exactly_at_the_deadline(
    tmp_path: Path, centre: Centre, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    hour = dt.timedelta(hours=1)
    with make_meter(tmp_path / "a.db", centre, clock, renewal_timeout_s=3600) as stepping:
        disconnect, energy = parts(stepping)
        assignment = stepping.supervision.assignment  # type: ignore[union-attr]
        assert assignment.read(4) == Long64Unsigned(NOW + 3600)
        stepping.advance_to(START + hour)
        at_deadline = energy.value
        assert disconnect.control_state == ControlState.CONNECTED
        with caplog.at_level(logging.WARNING, "cosemcast"):
            stepping.advance_to(START + 2 * hour)
        assert disconnect.control_state == ControlState.DISCONNECTED
        assert energy.value == at_deadline
        assert assignment.read(5) is True
        assert any("interrupted mode" in r.getMessage() for r in caplog.records)
    with make_meter(tmp_path / "b.db", centre, clock, renewal_timeout_s=3600) as jumping:
        disconnect, energy = parts(jumping)
        jumping.advance_to(START + 2 * hour)  # one step across the deadline: cut there
        assert disconnect.control_state == ControlState.DISCONNECTED
        assert energy.value == at_deadline


def test_a_renewal_resets_the_counter_and_leaves_the_interrupted_mode(
    tmp_path: Path, centre: Centre, clock: FakeClock
) -> None:
    state = tmp_path / "meter.db"
    with make_meter(state, centre, clock, renewal_timeout_s=3600) as meter:
        disconnect, _ = parts(meter)
        assignment = meter.supervision.assignment  # type: ignore[union-attr]
        meter.advance_to(clock.advance(minutes=50))
        assignment.load(centre.assign(HE1, now=NOW + 3000).init_message)
        assert assignment.renewal_deadline() == NOW + 3000 + 3600
        meter.advance_to(clock.advance(minutes=60))
        assert disconnect.control_state == ControlState.CONNECTED
        meter.advance_to(clock.advance(minutes=60))
        assert disconnect.control_state == ControlState.DISCONNECTED
    with make_meter(state, centre, clock, renewal_timeout_s=3600) as meter:  # restart
        disconnect, _ = parts(meter)
        assignment = meter.supervision.assignment  # type: ignore[union-attr]
        assert assignment.interrupted
        assert disconnect.control_state == ControlState.DISCONNECTED
        now = int(clock.now.timestamp())
        assignment.load(centre.assign(HE2, now=now).init_message)
        assert not assignment.interrupted
        # control_mode 1: remote_reconnect only readies; the customer's button reconnects
        assert disconnect.control_state == ControlState.READY_FOR_RECONNECTION
        assert disconnect.manual_reconnect()
        assert disconnect.output_state
        assert assignment.renewal_deadline() == now + 3600


def test_in_control_mode_2_a_renewal_reconnects_at_once(
    tmp_path: Path, centre: Centre, clock: FakeClock
) -> None:
    with make_meter(tmp_path / "meter.db", centre, clock, renewal_timeout_s=600) as meter:
        disconnect, _ = parts(meter)
        disconnect.write(4, Enumerated(ControlMode.MODE_2))
        meter.advance_to(clock.advance(minutes=11))
        assert disconnect.control_state == ControlState.DISCONNECTED
        now = int(clock.now.timestamp())
        meter.supervision.assignment.load(centre.assign(HE1, now=now).init_message)  # type: ignore[union-attr]
        assert disconnect.control_state == ControlState.CONNECTED


def test_a_renewal_does_not_undo_a_head_ends_own_disconnection(
    tmp_path: Path, centre: Centre, clock: FakeClock
) -> None:
    with make_meter(tmp_path / "meter.db", centre, clock, renewal_timeout_s=600) as meter:
        disconnect, _ = parts(meter)
        disconnect.write(4, Enumerated(ControlMode.MODE_2))
        disconnect.invoke(1)  # remote_disconnect by a head-end, before the deadline
        meter.advance_to(clock.advance(minutes=11))
        assignment = meter.supervision.assignment  # type: ignore[union-attr]
        assert assignment.interrupted
        now = int(clock.now.timestamp())
        assignment.load(centre.assign(HE1, now=now).init_message)
        assert not assignment.interrupted
        assert disconnect.control_state == ControlState.DISCONNECTED


def test_without_a_timeout_there_is_no_counter(
    tmp_path: Path, centre: Centre, clock: FakeClock
) -> None:
    with make_meter(tmp_path / "meter.db", centre, clock) as meter:
        disconnect, _ = parts(meter)
        meter.advance_to(clock.advance(days=2))
        assert disconnect.control_state == ControlState.CONNECTED
        assert meter.supervision.assignment.read(4) == Long64Unsigned(0)  # type: ignore[union-attr]


# --- change of owner ([0057]) ----------------------------------------------------------------


def notification(value: int) -> bytes:
    body = Structure([OctetString(ENERGY.to_bytes()), DoubleLongUnsigned(value)])
    return DataNotification(LongInvokeIdAndPriority(value), None, body).encode()


def opener(title: bytes, ks: bytes) -> HeadEndOpener:
    return HeadEndOpener(
        system_title=title,
        credentials=StaticMeterCredentials({METER_ID: ks}),
        store=MemoryPayloadKeyStore(),
    )


def test_a_change_of_owner_retires_every_other_head_end(
    tmp_path: Path, centre: Centre, clock: FakeClock
) -> None:
    recorder = Recorder()
    with make_meter(tmp_path / "meter.db", centre, clock) as meter:
        assert meter.supervision is not None
        meter.supervision.listeners.append(recorder)
        old = {title: centre.assign(title) for title in (HE1, HE2)}
        client = client_of(meter, tmp_path)
        try:
            for issued in old.values():
                load(client, issued.init_message)
            owner = centre.registry.assign(
                head_end_id=HE3,
                enrollment=enroll(client, HE3, InitAction.ASSIGN_EXCLUSIVE),
                now=NOW,
            )
            before = recorder.last
            load(client, owner.init_message)
            assert len(client.get(ASSIGNMENT, 2, 8962)) == 1  # type: ignore[arg-type]
        finally:
            client.close()
    after = recorder.last
    assert set(before) == {HE1, HE2} and set(after) == {HE3}
    assert after[HE3].ks == owner.ks
    sealer = PayloadSealer(
        system_title=METER_ID,
        head_ends=[HeadEndAssignment(h.system_title, shared_key=h.ks) for h in before.values()],
        counters=MemoryCounterSource(),
        rng=lambda n: bytes(range(n)),
    )
    assert old[HE1].ks is not None and old[HE2].ks is not None and owner.ks is not None
    openers = {t: opener(t, i.ks) for t, i in old.items() if i.ks is not None}
    openers[HE3] = opener(HE3, owner.ks)
    c1 = sealer.seal_c1(notification(1), NOW).encode()
    for title, c2 in sealer.control_messages(NOW):
        openers[title].accept_c2(c2.encode(), NOW)
    for title in (HE1, HE2):
        assert openers[title].open_c1(c1, NOW).notification == notification(1)
    sealer.set_head_ends(
        [HeadEndAssignment(h.system_title, shared_key=h.ks) for h in after.values()], NOW + 1
    )
    c1 = sealer.seal_c1(notification(2), NOW + 1).encode()
    controls = sealer.control_messages(NOW + 1)
    assert [title for title, _ in controls] == [HE3]
    openers[HE3].accept_c2(controls[0][1].encode(), NOW + 1)
    assert openers[HE3].open_c1(c1, NOW + 1).notification == notification(2)
    for title in (HE1, HE2):
        with pytest.raises(KeyUnavailableError):
            openers[title].open_c1(c1, NOW + 1)
        with pytest.raises(MisaddressedMessage):  # HE3's C2 is not theirs
            openers[title].accept_c2(controls[0][1].encode(), NOW + 1)


# --- no key in any log line -------------------------------------------------------------------


def test_no_key_bytes_in_the_logs(
    tmp_path: Path, centre: Centre, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    issued: list[bytes] = []
    with (
        caplog.at_level(logging.DEBUG),
        make_meter(tmp_path / "meter.db", centre, clock, renewal_timeout_s=600) as meter,
    ):
        client = client_of(meter, tmp_path)
        try:
            for title in (HE1, HE2):
                result = centre.registry.assign(
                    head_end_id=title, enrollment=enroll(client, title), now=NOW
                )
                assert result.ks is not None
                issued.append(result.ks)
                load(client, result.init_message)
            with pytest.raises(ActionError):
                load(client, result.init_message)
        finally:
            client.close()
        meter.advance_to(clock.advance(minutes=30))
    secrets = [KT, derive_ki(KT, meter_id=METER_ID), derive_enrollment_key(KT, meter_id=METER_ID)]
    secrets += issued
    text = caplog.text + "\n".join(record.getMessage() for record in caplog.records)
    assert "initialization message refused" in text and "interrupted mode" in text
    for secret in secrets:
        for form in (secret.hex(), secret.hex().upper(), repr(secret), str(list(secret))):
            assert form not in text


# --- change of owner through the meter's shared-payload unit --------------------------------

SHARED_PAYLOAD = "0-0:128.1.0.255"


class HeadEndSocket:
    """A head-end's UDP socket on 127.0.0.1: receives the meter's C2 pushes (wrapper)."""

    def __init__(self, title: bytes) -> None:
        import socket

        self.title = title
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(10.0)
        self.port = int(self.sock.getsockname()[1])

    def receive_c2(self) -> bytes:
        datagram = self.sock.recv(65_535)
        return datagram[8:]  # the IEC 62056-47 wrapper header

    def close(self) -> None:
        self.sock.close()


def test_a_change_of_owner_through_the_meter_renews_kp_for_the_new_owner_only(
    tmp_path: Path, centre: Centre, clock: FakeClock
) -> None:
    from cosemcast.meter.config import default_config_text, parse_config
    from test_meter_assignment_support import supervision_toml

    sockets = {title: HeadEndSocket(title) for title in (HE1, HE2, HE3)}
    destinations = "".join(
        f'[[supervision.head_ends]]\nsystem_title = "{t.hex()}"\n'
        f'destination = "127.0.0.1:{s.port}"\n'
        for t, s in sockets.items()
    )
    text = (
        default_config_text()
        + '\n[shared_payload]\nc1_destination = "127.0.0.1:9"\npush_interval_s = 0\n'
        + supervision_toml(centre.public_pem, destinations=False)
        + destinations
    )
    keys: dict[bytes, bytes] = {}
    try:
        with SoftwareMeter(parse_config(text, source="<t>"), tmp_path / "m.db", clock=clock) as m:
            client = client_of(m, tmp_path)
            try:
                for title in (HE1, HE2):
                    issued = centre.assign(title)
                    assert issued.ks is not None
                    keys[title] = issued.ks
                    load(client, issued.init_message)
                openers = {t: opener(t, k) for t, k in keys.items()}
                for title, count in ((HE1, 2), (HE2, 1)):  # HE1 again when HE2 joined
                    for _ in range(count):
                        openers[title].accept_c2(sockets[title].receive_c2(), NOW)
                client.action(SHARED_PAYLOAD, 1, Integer(0), 8960)
                (c1,) = client.get(SHARED_PAYLOAD, 3, 8960)  # type: ignore[misc]
                for title in (HE1, HE2):
                    assert openers[title].open_c1(bytes(c1), NOW).meter_system_title == METER_ID
                owner = centre.assign(HE3, InitAction.ASSIGN_EXCLUSIVE)
                assert owner.ks is not None
                load(client, owner.init_message)
                openers[HE3] = opener(HE3, owner.ks)
                openers[HE3].accept_c2(sockets[HE3].receive_c2(), NOW)
                client.action(SHARED_PAYLOAD, 3, Integer(0), 8960)  # clear the buffer
                client.action(SHARED_PAYLOAD, 1, Integer(0), 8960)
                (c1,) = client.get(SHARED_PAYLOAD, 3, 8960)  # type: ignore[misc]
            finally:
                client.close()
    finally:
        for s in sockets.values():
            s.close()
    assert openers[HE3].open_c1(bytes(c1), NOW).meter_system_title == METER_ID
    for title in (HE1, HE2):
        with pytest.raises(KeyUnavailableError):
            openers[title].open_c1(bytes(c1), NOW)


def test_a_crash_between_the_renewal_and_the_reconnection_is_finished_at_start(
    tmp_path: Path, centre: Centre, clock: FakeClock
) -> None:
    from cosemcast.cosem.assignment import Interruption
    from cosemcast.meter.authorization import SqliteAuthorizationStore
    from cosemcast.meter.state import MeterState
    from cosemcast.supervision import AcceptedInit

    state = tmp_path / "meter.db"
    with make_meter(state, centre, clock, renewal_timeout_s=600) as meter:
        meter.advance_to(clock.advance(minutes=11))
        assert parts(meter)[0].control_state == ControlState.DISCONNECTED
    now = int(clock.now.timestamp())
    file = MeterState(state)  # only the first commit of a load: then the process died
    try:
        store = SqliteAuthorizationStore(file, device=1)
        store.accept(AcceptedInit(InitAction.ASSIGN, HE1, 1, now, bytes(16), None), renewed_at=now)
        assert store.validity().interruption is Interruption.RECONNECT_PENDING  # type: ignore[union-attr]
    finally:
        file.close()
    with make_meter(state, centre, clock, renewal_timeout_s=600) as meter:
        disconnect, _ = parts(meter)
        assignment = meter.supervision.assignment  # type: ignore[union-attr]
        assert disconnect.control_state == ControlState.READY_FOR_RECONNECTION
        assert not assignment.interrupted
        assert assignment.renewal_deadline() == now + 600
    with make_meter(state, centre, clock, renewal_timeout_s=600) as meter:
        assert parts(meter)[0].control_state == ControlState.READY_FOR_RECONNECTION


def test_the_clock_source_is_pluggable(tmp_path: Path, centre: Centre, clock: FakeClock) -> None:
    with make_meter(tmp_path / "meter.db", centre, clock) as meter:
        assignment = meter.supervision.assignment  # type: ignore[union-attr]
        raw = centre.assign(HE1).init_message
        assignment.clock = lambda: NOW + 2 * 86_400  # e.g. a radio time signal, two days on
        with pytest.raises(ActionError) as info:
            client = client_of(meter, tmp_path, management=False)
            try:
                load(client, raw)
            finally:
                client.close()
        assert info.value.result is ActionResult.OTHER_REASON  # expired by that clock
        assignment.clock = None  # back to the meter's Clock object
        assignment.load(raw)
        assert assignment.read(3) == DoubleLongUnsigned(1)


def test_a_failing_listener_does_not_unload_the_message(
    tmp_path: Path, centre: Centre, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(head_ends: object, now: int) -> None:
        raise ValueError("the shared-payload unit is full")

    with make_meter(tmp_path / "meter.db", centre, clock) as meter:
        assert meter.supervision is not None
        meter.supervision.listeners.append(refuse)
        client = client_of(meter, tmp_path, management=False)
        try:
            with caplog.at_level(logging.ERROR, "cosemcast"):
                load(client, centre.assign(HE1).init_message)  # success: it is loaded
            assert client.get(ASSIGNMENT, 3, 8962) == DoubleLongUnsigned(1)
        finally:
            client.close()
    assert any("applying it failed" in r.getMessage() for r in caplog.records)
