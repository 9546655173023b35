"""The shared-payload objects of the software meter (specs/shared-payload.md §8): their types
over GET with the project's client, their methods and writable attributes, acknowledgements
that must be refused, the ``[shared_payload]`` configuration, and the strict readers.

The meter runs on a fake clock and serves TCP and UDP on 127.0.0.1; its C1s go to a
:class:`UdpPushReceiver` (unicast) so the test can compare what was pushed with what the
objects show. The head-ends' C2 destinations are loopback ports nobody listens on: nothing is
acknowledged here (tests/test_meter_shared.py runs real head-ends).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosemcast.apdu.common import ActionResult, DataAccessResult
from cosemcast.association import AssociationSettings
from cosemcast.axdr.types import (
    Array,
    DoubleLongUnsigned,
    Integer,
    LongUnsigned,
    OctetString,
    Structure,
    Unsigned,
)
from cosemcast.client import DlmsClient
from cosemcast.client.errors import ActionError, DataAccessError
from cosemcast.errors import ConfigurationError, DecodeError
from cosemcast.headend.pull import parse_buffer, parse_control_entries
from cosemcast.meter import SoftwareMeter, default_config_text
from cosemcast.meter._shared_state import dump_state, load_state
from cosemcast.meter.config import parse_config
from cosemcast.meter.state import MeterStateError
from cosemcast.sharedpayload import AckBody, AckKind, KpId, as_general_ciphering, seal_ack
from cosemcast.transport.tcp import TcpWrapperServer
from cosemcast.transport.udp import UdpPushReceiver, UdpWrapperLink, UdpWrapperServer
from strategies import data_values
from test_meter_support import METER_TITLE, FakeClock, management_settings

SHARED = "0-0:128.1.0.255"
CONTROL = "0-0:128.2.0.255"
HEAD_ENDS = (bytes.fromhex("4D4D4D0000000002"), bytes.fromhex("4D4D4D0000000001"))


def ks(head_end: bytes) -> bytes:
    return hashlib.sha256(b"Ks" + head_end + METER_TITLE).digest()[:16]


def config_text(c1_port: int, extra: str = "") -> str:
    lines = [
        "[shared_payload]",
        f'c1_destination = "127.0.0.1:{c1_port}"',
        "push_interval_s = 900",
        "buffer_capacity = 4",
        "retry_interval_s = 45",
        "renewal = { max_payloads = 10, max_age_s = 3600, delivery_window_s = 300 }",
        extra,
    ]
    for title in HEAD_ENDS:
        lines += [
            "[[shared_payload.head_ends]]",
            f'system_title = "{title.hex()}"',
            'destination = "127.0.0.1:9"',
            f'ks = "{ks(title).hex()}"',
        ]
    return default_config_text() + "\n" + "\n".join(lines) + "\n"


@pytest.fixture
def receiver() -> Iterator[UdpPushReceiver]:
    with UdpPushReceiver(0, host="127.0.0.1") as receiver:
        yield receiver


@pytest.fixture
def meter(tmp_path: Path, receiver: UdpPushReceiver) -> Iterator[SoftwareMeter]:
    clock = FakeClock()
    text = config_text(receiver.address[1])
    with SoftwareMeter(parse_config(text), tmp_path / "m.sqlite3", clock=clock) as meter:
        meter.serve_tcp("127.0.0.1", 0)
        meter.serve_udp("127.0.0.1", 0)
        clock.advance(minutes=15)
        meter.advance_to()
        yield meter


def tcp_port(meter: SoftwareMeter) -> int:
    return next(s.address[1] for s in meter.servers if isinstance(s, TcpWrapperServer))


def public(meter: SoftwareMeter) -> DlmsClient:
    settings = AssociationSettings(client_sap=16, server_sap=1)
    return DlmsClient.tcp("127.0.0.1", tcp_port(meter), settings)


def management(meter: SoftwareMeter, tmp_path: Path) -> DlmsClient:
    return DlmsClient.tcp(
        "127.0.0.1", tcp_port(meter), management_settings(), counters=tmp_path / "c.sqlite3"
    )


def test_get_shows_the_types_of_the_spec(meter: SoftwareMeter, receiver: UdpPushReceiver) -> None:
    _, frame = receiver.receive(5)
    pushed = as_general_ciphering(frame.apdu)
    with public(meter) as client:
        client.associate()
        kp_id = client.get(SHARED, 2, 8960)
        assert isinstance(kp_id, OctetString) and kp_id == pushed.transaction_id
        buffer = client.get(SHARED, 3, 8960)
        assert isinstance(buffer, Array) and len(buffer) == 0
        captured = client.get(SHARED, 4, 8960)
        assert isinstance(captured, Array) and all(isinstance(c, Structure) for c in captured)
        assert client.get(SHARED, 5, 8960) == LongUnsigned(4)
        policy = client.get(SHARED, 6, 8960)
        assert policy == Structure(
            (DoubleLongUnsigned(10), DoubleLongUnsigned(3600), DoubleLongUnsigned(300), False)
        )
        assert policy[0].TAG == DoubleLongUnsigned.TAG and policy[3] is False  # type: ignore[union-attr]
        epoch = client.get(SHARED, 7, 8960)
        assert isinstance(epoch, DoubleLongUnsigned) and epoch == KpId.from_bytes(kp_id).epoch
        entries = parse_control_entries(client.get(CONTROL, 2, 8961))
        assert [e.head_end_system_title for e in entries] == sorted(HEAD_ENDS)
        assert all(e.kp_id == bytes(kp_id) and not e.acknowledged for e in entries)
        assert [e.invocation_counter for e in entries] == [1, 2]
        assert pushed.invocation_counter == 3
        assert all(as_general_ciphering(e.c2).recipient_system_title in HEAD_ENDS for e in entries)
        assert client.get(CONTROL, 3, 8961) == LongUnsigned(45)
        listed = {(e.class_id, str(e.logical_name), e.version) for e in client.object_list()}
        assert {(8960, SHARED, 0), (8961, CONTROL, 0)} <= listed
        assert (40, "0-1:25.9.0.255", 0) in listed and (40, "0-11:25.9.0.255", 0) in listed
        with pytest.raises(DataAccessError) as refused:
            client.set(SHARED, 5, LongUnsigned(8), 8960)
        assert refused.value.result == DataAccessResult.READ_WRITE_DENIED


def test_methods_and_writable_attributes(meter: SoftwareMeter, tmp_path: Path) -> None:
    with management(meter, tmp_path) as client:
        client.associate()
        first = client.get(SHARED, 2, 8960)
        for _ in range(5):
            client.action(SHARED, 1, Integer(0), 8960)  # capture
        buffer = parse_buffer(client.get(SHARED, 3, 8960))
        assert len(buffer) == 4  # capacity 4: the oldest was evicted
        ics = [as_general_ciphering(c1).invocation_counter for c1 in buffer]
        assert ics == sorted(ics) and len(set(ics)) == 4
        client.action(SHARED, 3, Integer(0), 8960)  # clear_buffer
        assert client.get(SHARED, 3, 8960) == Array(())
        client.action(SHARED, 2, Integer(0), 8960)  # renew
        assert client.get(SHARED, 2, 8960) != first
        new_policy = Structure(
            (DoubleLongUnsigned(0), DoubleLongUnsigned(60), DoubleLongUnsigned(0), True)
        )
        client.set(SHARED, 6, new_policy, 8960)
        assert client.get(SHARED, 6, 8960) == new_policy
        with pytest.raises(DataAccessError) as bad:
            client.set(SHARED, 6, Structure((DoubleLongUnsigned(0),) * 3 + (True,)), 8960)
        assert bad.value.result == DataAccessResult.OTHER_REASON  # max_age 0
        with pytest.raises(DataAccessError) as typed:
            client.set(CONTROL, 3, Unsigned(5), 8961)
        assert typed.value.result == DataAccessResult.TYPE_UNMATCHED
        client.set(CONTROL, 3, LongUnsigned(90), 8961)
        with pytest.raises(ActionError) as denied:
            ack = Structure((OctetString(bytes(8)), DoubleLongUnsigned(1), DoubleLongUnsigned(0)))
            client.action(CONTROL, 1, ack, 8961)
        assert denied.value.result == ActionResult.READ_WRITE_DENIED
    stats = meter.shared.stats() if meter.shared else {}
    assert stats["c1_evicted"] == 1 and stats["keys_drawn"] == 2
    assert meter.shared is not None and meter.shared.sealer.policy.retry_interval_s == 90


def test_policy_written_by_a_client_survives_a_restart(
    tmp_path: Path, receiver: UdpPushReceiver
) -> None:
    clock = FakeClock()
    text = config_text(receiver.address[1])
    state = tmp_path / "m.sqlite3"
    with SoftwareMeter(parse_config(text), state, clock=clock) as meter:
        meter.serve_tcp("127.0.0.1", 0)
        with management(meter, tmp_path) as client:
            client.associate()
            client.set(SHARED, 5, LongUnsigned(7), 8960)
            client.set(CONTROL, 3, LongUnsigned(120), 8961)
    with SoftwareMeter(parse_config(text), state, clock=clock) as meter:
        assert meter.shared is not None
        assert meter.shared.sealer.policy.buffer_capacity == 7
        assert meter.shared.sealer.policy.retry_interval_s == 120


def test_bad_acknowledgements_are_counted_and_dropped(meter: SoftwareMeter) -> None:
    assert meter.shared is not None
    entry = meter.shared.sealer.controls[0]
    body = AckBody(entry.kp_id, entry.invocation_counter, AckKind.CONTROL)
    forged = seal_ack(  # another head-end's idea of Ka: the tag fails
        body,
        ack_key=bytes(16),
        head_end_system_title=entry.head_end,
        meter_system_title=METER_TITLE,
    )
    udp = next(s for s in meter.servers if isinstance(s, UdpWrapperServer))
    with UdpWrapperLink.connect("127.0.0.1", udp.address[1], 1, 1) as link:
        link.send_apdu(b"\xdd\x01\x02")
        link.send_apdu(forged.encode())
        link.send_apdu(entry.apdu.encode())  # a C2 is no acknowledgement
    deadline = time.monotonic() + 10
    while meter.shared.stats()["acks_rejected"] < 3:
        assert time.monotonic() < deadline, "timed out waiting for the refusals"
        time.sleep(0.01)
    stats = meter.shared.stats()
    assert stats["acks_rejected.AuthenticationFailed"] == 1
    assert stats["acks_rejected.DecodeError"] == 2 and stats["acks_received"] == 0
    assert not any(c.acknowledged for c in meter.shared.sealer.controls)
    with public(meter) as client:
        client.associate()
        assert isinstance(client.get(SHARED, 2, 8960), OctetString)


# --- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("c1_destination = ", "c1_destination = 'tcp://x:1' #"), "c1_destination"),
        (("retry_interval_s = 45", "retry_interval_s = 0"), "retry_interval_s"),
        (("push_interval_s = 900", "push_interval_s = 900\nbogus = 1"), "unknown field"),
        (('destination = "127.0.0.1:9"', 'destination = "ftp://h:1"'), "destination"),
        (("max_payloads = 10,", "max_payloads = -1,"), "max_payloads"),
    ],
)
def test_configuration_errors_name_the_field(change: tuple[str, str], message: str) -> None:
    text = config_text(4059)
    assert change[0] in text
    with pytest.raises(ConfigurationError, match=message):
        parse_config(text.replace(change[0], change[1], 1))


def test_configuration_cross_checks() -> None:
    text = config_text(4059)
    duplicate = text.replace(HEAD_ENDS[1].hex(), HEAD_ENDS[0].hex())
    with pytest.raises(ConfigurationError, match="listed twice"):
        parse_config(duplicate)
    both = text.replace(
        'destination = "127.0.0.1:9"', 'destination = "127.0.0.1:9"\npublic_key = "x.pem"', 1
    )
    with pytest.raises(ConfigurationError, match="exactly one K1"):
        parse_config(both)
    missing = text.replace(
        "[shared_payload]", '[shared_payload]\ncapture_objects = ["3/1-0:2.8.0.255/2"]'
    )
    with pytest.raises(ConfigurationError, match="names no such object"):
        parse_config(missing)
    device = text.replace("[shared_payload]", "[shared_payload]\nlogical_device = 7")
    with pytest.raises(ConfigurationError, match="server SAP 7"):
        parse_config(device)
    assert parse_config(text + "\n[supervision]\nanything = 1\n").supervision == {"anything": 1}


def test_the_shipped_example_parses() -> None:
    from importlib import resources

    text = resources.files("cosemcast.meter").joinpath("shared_meter.toml").read_text("utf-8")
    config = parse_config(text)
    assert config.shared_payload is not None
    assert [h.transport.name for h in config.shared_payload.head_ends] == ["UDP", "TCP"]


# --- strict readers -----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(data_values)
def test_pull_readers_raise_only_decode_errors(value: object) -> None:
    for reader in (parse_control_entries, parse_buffer):
        try:
            reader(value)  # type: ignore[arg-type]
        except DecodeError:
            pass


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["epoch", "current", "drawn_at", "payloads_sealed", "controls", "buffer"]),
        data_values,
        min_size=1,
    ),
    st.dictionaries(st.sampled_from(["kp", "assignment_digest"]), st.binary(max_size=20)),
)
def test_stored_state_reader_raises_only_state_errors(fields: dict, secrets: dict) -> None:  # type: ignore[type-arg]
    try:
        load_state(fields, secrets)
    except MeterStateError:
        pass


def test_stored_state_round_trips(meter: SoftwareMeter) -> None:
    assert meter.shared is not None
    state = meter.shared.sealer.snapshot()
    fields, secrets = dump_state(state)
    assert load_state(fields, secrets) == state
    assert all(
        not isinstance(v, bytes) or len(v) != 16 or v not in secrets.values()
        for v in fields.values()
    )


def test_push_now_and_a_shorter_interval(meter: SoftwareMeter, receiver: UdpPushReceiver) -> None:
    unit = meter.shared
    assert unit is not None
    first = as_general_ciphering(receiver.receive(5)[1].apdu)  # 12:15, the configured interval
    unit.push_now()
    second = as_general_ciphering(receiver.receive(5)[1].apdu)
    unit.set_intervals(push_interval_s=60)
    assert isinstance(meter.clock, FakeClock)
    meter.clock.advance(minutes=1)
    meter.advance_to()
    third = as_general_ciphering(receiver.receive(5)[1].apdu)
    ics = [c1.invocation_counter for c1 in (first, second, third)]
    assert ics == sorted(ics) and len(set(ics)) == 3
    assert {c1.transaction_id for c1 in (first, second, third)} == {first.transaction_id}
    stats = unit.stats()
    assert stats["c1_sealed"] == stats["c1_queued"] == 3
    assert stats["c2_unacknowledged"] == 2 and stats["buffered"] == 0


def test_a_public_key_head_end_pulls_and_reads(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    from cosemcast.headend import HeadEnd, ReadingSink, SqliteHeadEndStore
    from cosemcast.headend.pull import pull_from_meter

    head_end_key = ec.derive_private_key(0x5EED, ec.SECP256R1())
    meter_key = ec.derive_private_key(0xBEEF, ec.SECP256R1())
    public_pem = head_end_key.public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "meter.pem").write_bytes(
        meter_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    text = default_config_text() + (
        "\n[shared_payload]\n"
        'c1_destination = "127.0.0.1:9"\n'
        "push_interval_s = 0\n"
        'agreement_key = "meter.pem"\n'
        "[[shared_payload.head_ends]]\n"
        'system_title = "4D4D4D0000000003"\n'
        f"public_key = '''{public_pem.decode()}'''\n"
    )
    title = bytes.fromhex("4D4D4D0000000003")
    store = SqliteHeadEndStore(tmp_path / "h.sqlite3", system_title=title)
    store.set_credentials(METER_TITLE, agreement_public_key=meter_key.public_key())
    head_end = HeadEnd(title, store, ReadingSink(), agreement_private_key=head_end_key)
    try:
        config = parse_config(text, base=tmp_path)
        with SoftwareMeter(config, tmp_path / "m.sqlite3") as meter:
            assert meter.shared is not None
            meter.serve_tcp("127.0.0.1", 0)
            meter.shared.capture_now()
            with public(meter) as client:
                client.associate()
                result = pull_from_meter(client, head_end)
            assert (result.controls_accepted, result.opened, result.rejected) == (1, 1, 0)
            c2 = as_general_ciphering(meter.shared.sealer.controls[0].apdu.encode())
            assert c2.security_control == 0x31  # agreed-key C2 (specs §4.3)
    finally:
        head_end.sink.close()
        store.close()


def test_mutated_acknowledgements_never_raise(meter: SoftwareMeter) -> None:
    unit = meter.shared
    assert unit is not None
    entry = unit.sealer.controls[0]
    body = AckBody(entry.kp_id, entry.invocation_counter, AckKind.CONTROL)
    good = seal_ack(
        body,
        ack_key=entry.ack_key,
        head_end_system_title=entry.head_end,
        meter_system_title=METER_TITLE,
    ).encode()
    variants = [good[:cut] for cut in range(len(good))]
    for index in range(len(good)):
        for flip in (0x01, 0x80, 0xFF):
            variants.append(good[:index] + bytes((good[index] ^ flip,)) + good[index + 1 :])
    for variant in variants:
        assert meter.receive_ack(variant) is (variant[:1] == b"\xdd")
    assert unit.stats()["acks_received"] == 0
    assert meter.receive_ack(good) and unit.stats()["acks_received"] == 1
    assert any(c.acknowledged for c in unit.sealer.controls)
