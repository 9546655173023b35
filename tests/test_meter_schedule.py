"""The software meter's upstream schedule: each meter reports at its own slot (scheduling §11).

Two meters on one fake clock (moved with ``advance_to``) push to test-owned UDP sockets on
127.0.0.1: the class 40 push of the default configuration and the shared-payload C2 and C1 of
the first reporting instant. Each meter captures at the nominal instant and transmits at
``report_instant``; the held sends are visible in ``schedule.stats()["pending"]`` (under the
meter's lock), so the test knows when they must leave without timing anything. A unicast SET
of the explicit offset by the ciphered management client moves the slot, and it survives a
restart with the group membership.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.common import CosemAttributeDescriptor, DataAccessResult
from cosemcast.apdu.general import GeneralGloCiphering
from cosemcast.apdu.notifications import DataNotification
from cosemcast.association import (
    Associate,
    AssociationEstablished,
    Release,
    Set,
    SetResult,
)
from cosemcast.axdr.types import Array, DoubleLongUnsigned, LongUnsigned, OctetString, Structure
from cosemcast.errors import ConfigurationError
from cosemcast.meter import SoftwareMeter, default_config_text
from cosemcast.meter.config import parse_config
from cosemcast.scheduling import (
    UPSTREAM_SCHEDULE_OBIS,
    GroupCommand,
    GroupOrder,
    Order,
    group_command_request,
    spread_offset,
)
from cosemcast.security.gcm import SecurityControl, SymmetricKeys
from cosemcast.security.protection import cipher_apdu, decipher_apdu
from cosemcast.sharedpayload import as_general_ciphering
from cosemcast.sharedpayload.messages import message_kind
from cosemcast.transport.tcp import TcpWrapperServer
from test_meter_schedule_support import (
    BROADCAST_KEY,
    FIRMWARE,
    NOMINAL,
    TARIFF,
    TITLE_A,
    TITLE_B,
    Sink,
    at,
    meter_text,
    open_meter,
    unit,
)
from test_meter_support import (
    AK,
    CLIENT_TITLE,
    EK,
    ClientStores,
    FakeClock,
    management_settings,
    public_settings,
    tcp_client,
)

SCHEDULE = UPSTREAM_SCHEDULE_OBIS


def attribute(n: int) -> CosemAttributeDescriptor:
    return CosemAttributeDescriptor(8964, SCHEDULE, n)


def tcp_address(meter: SoftwareMeter) -> tuple[str, int]:
    server = next(s for s in meter.servers if isinstance(s, TcpWrapperServer))
    return server.address


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sinks() -> Iterator[tuple[Sink, Sink]]:
    a, b = Sink(), Sink()
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def kind(frame_apdu: bytes) -> str:
    """``push`` (class 40, general-glo), or the shared-payload message kind."""
    if frame_apdu[0] == 0xDB:
        return "push"
    return message_kind(as_general_ciphering(frame_apdu)).value


def test_two_meters_report_at_their_own_deterministic_slots(
    tmp_path: Path, clock: FakeClock, sinks: tuple[Sink, Sink]
) -> None:
    sink_a, sink_b = sinks
    offsets = {t: spread_offset(t, FIRMWARE, TARIFF, 900) for t in (TITLE_A, TITLE_B)}
    # specs/scheduling.md §9 lists these; they differ, and B goes first.
    assert offsets == {TITLE_A: 496, TITLE_B: 120}
    with (
        open_meter(meter_text(TITLE_A, sink_a), tmp_path / "a.sqlite3", clock) as a,
        open_meter(meter_text(TITLE_B, sink_b), tmp_path / "b.sqlite3", clock) as b,
    ):
        for meter, title in ((a, TITLE_A), (b, TITLE_B)):
            assert unit(meter).report_offset_s() == offsets[title]
            assert unit(meter).obj.report_instant(1000) == 1000 + offsets[title]
        for meter in (a, b):
            at(meter, clock, NOMINAL - dt.timedelta(seconds=1))
            assert unit(meter).stats()["pending"] == 0
            at(meter, clock, NOMINAL)  # captured, sealed, held: push, C2, C1
            assert unit(meter).stats()["pending"] == 3
        assert sink_a.quiet() and sink_b.quiet()
        for meter in (a, b):
            at(meter, clock, NOMINAL + dt.timedelta(seconds=119))
        assert unit(b).stats()["pending"] == 3 and sink_b.quiet()
        for meter in (a, b):
            at(meter, clock, NOMINAL + dt.timedelta(seconds=120))
        assert unit(b).stats()["pending"] == 0
        frames_b = sink_b.take(3)
        assert unit(a).stats()["pending"] == 3 and sink_a.quiet()
        for meter in (a, b):
            at(meter, clock, NOMINAL + dt.timedelta(seconds=495))
        assert unit(a).stats()["pending"] == 3
        for meter in (a, b):
            at(meter, clock, NOMINAL + dt.timedelta(seconds=496))
        frames_a = sink_a.take(3)
        assert unit(a).stats()["reports_deferred"] == 3
        assert a.shared is not None and a.shared.stats()["c1_queued"] == 1
    for frames, title in ((frames_a, TITLE_A), (frames_b, TITLE_B)):
        # The class 40 push fires first (configured first), then the C2 before its C1.
        assert [kind(f.apdu) for f in frames] == ["push", "C2", "C1"]
        push = decode_apdu(frames[0].apdu)
        assert isinstance(push, GeneralGloCiphering) and push.system_title == title
        plain = decipher_apdu(push, keys=SymmetricKeys(EK, AK), system_title=title).plain
        notification = decode_apdu(plain)
        assert isinstance(notification, DataNotification)
        stamp = notification.date_time
        assert stamp is not None
        # Read and stamped at the nominal instant (12:15 local), sent at the slot.
        assert (stamp.hour, stamp.minute, stamp.second) == (12, 15, 0)


def test_the_schedule_object_is_public_read_and_management_full(
    tmp_path: Path, clock: FakeClock, sinks: tuple[Sink, Sink]
) -> None:
    text = meter_text(TITLE_A, sinks[0], groups=(7, 12))
    with open_meter(text, tmp_path / "a.sqlite3", clock) as meter:
        public = tcp_client(tcp_address(meter), public_settings())
        try:
            assert isinstance(public.request(Associate()), AssociationEstablished)
            assert public.get(attribute(2)) == DoubleLongUnsigned(900)
            assert public.get(attribute(3)) is None
            assert public.get(attribute(4)) == Array((LongUnsigned(7), LongUnsigned(12)))
            assert public.get(attribute(6)) == DoubleLongUnsigned(496)
            assert public.get(attribute(7)) == Structure(
                (OctetString(TITLE_A), OctetString(FIRMWARE.encode()), OctetString(TARIFF.encode()))
            )
            denied = public.request(Set(attribute(3), DoubleLongUnsigned(5)))
            assert isinstance(denied, SetResult)
            assert denied.result is DataAccessResult.READ_WRITE_DENIED
            public.request(Release())
        finally:
            public.close()


def test_an_explicit_offset_set_by_unicast_is_obeyed_and_survives_a_restart(
    tmp_path: Path, clock: FakeClock, sinks: tuple[Sink, Sink]
) -> None:
    sink = sinks[0]
    text = meter_text(TITLE_A, sink, groups=(7,))
    state = tmp_path / "a.sqlite3"
    stores = ClientStores(tmp_path / "client")
    try:
        with open_meter(text, state, clock) as meter:
            client = tcp_client(tcp_address(meter), management_settings(), stores)
            try:
                assert isinstance(client.request(Associate()), AssociationEstablished)
                for n, value in (
                    (3, DoubleLongUnsigned(42)),
                    (4, Array((LongUnsigned(3), LongUnsigned(9)))),
                ):
                    done = client.request(Set(attribute(n), value))
                    assert isinstance(done, SetResult) and done.result is DataAccessResult.SUCCESS
                assert client.get(attribute(6)) == DoubleLongUnsigned(42)
                client.request(Release())
            finally:
                client.close()
            at(meter, clock, NOMINAL + dt.timedelta(seconds=41))
            assert unit(meter).stats()["pending"] == 3 and sink.quiet()
            at(meter, clock, NOMINAL + dt.timedelta(seconds=42))
            assert [kind(f.apdu) for f in sink.take(3)] == ["push", "C2", "C1"]
        with open_meter(text, state, clock) as meter:
            obj = unit(meter).obj
            assert obj.schedule.explicit_offset_s == 42 and obj.groups == (3, 9)
            assert obj.schedule.window_s == 900
            second = NOMINAL + dt.timedelta(minutes=15)  # 12:30
            at(meter, clock, second + dt.timedelta(seconds=41))
            # Nobody acknowledged the C2: due again at 12:30, it waits for the slot too.
            assert unit(meter).stats()["pending"] == 3 and sink.quiet()
            at(meter, clock, second + dt.timedelta(seconds=42))
            assert [kind(f.apdu) for f in sink.take(3)] == ["push", "C2", "C1"]
    finally:
        stores.close()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[schedule]\nbroadcast_client_sap = 99\n", "broadcast_client_sap"),
        ("[schedule]\nlogical_device = 5\n", "logical_device"),
        ('[schedule]\ngroup = "127.0.0.1:4059"\n', "group"),
        ("[schedule]\ngroups = [0]\n", "groups"),
        ("[schedule]\ngroups = [3, 3]\n", "groups"),
        ("[schedule]\nwindow = 3\n", "window"),
    ],
)
def test_schedule_configuration_errors_name_the_field(table: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_config(default_config_text() + "\n" + table)


def test_arbitrary_broadcast_bytes_are_refused_never_raised_nor_answered(
    tmp_path: Path, clock: FakeClock, sinks: tuple[Sink, Sink]
) -> None:
    control = SecurityControl(0, authenticated=True, encrypted=True, broadcast_key=True)
    command = GroupCommand((GroupOrder(0, Order.set_offset(5)),))
    valid = cipher_apdu(
        group_command_request(command).encode(),
        kind="general-glo",
        security_control=control.to_byte(),
        keys=SymmetricKeys(BROADCAST_KEY, AK),
        system_title=CLIENT_TITLE,
        invocation_counter=1,
    ).encode()
    with open_meter(meter_text(TITLE_A, sinks[0]), tmp_path / "a.sqlite3", clock) as meter:
        session = meter.open_session(0x7F, 1, link="test")

        @settings(max_examples=150, deadline=None)
        @given(
            st.one_of(
                st.binary(max_size=80),
                st.binary(max_size=4).map(lambda b: bytes((0xDB,)) + b),
                st.tuples(st.integers(0, len(valid) - 1), st.integers(1, 255)).map(
                    lambda m: valid[: m[0]] + bytes((valid[m[0]] ^ m[1],)) + valid[m[0] + 1 :]
                ),
            )
        )
        def broadcast(apdu: bytes) -> None:
            assert meter.handle(session, apdu) == []

        broadcast()
        assert unit(meter).obj.schedule.explicit_offset_s is None
        assert unit(meter).stats()["broadcasts_applied"] == 0
        assert meter.handle(session, valid) == []
        assert unit(meter).obj.schedule.explicit_offset_s == 5
