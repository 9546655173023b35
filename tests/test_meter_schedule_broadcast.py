"""Group commands broadcast to software meters (specs/scheduling.md §5, §6, §11.3).

Two meters on one fake clock join a multicast group on 127.0.0.1 (the test skips, saying why,
only when the kernel refuses the multicast set-up); a test socket plays the head-end: it sends
one ACTION-Request ``group_command`` ciphered as general-glo under the management client's
global broadcast key to the all-station wPort, and each meter applies only its own group's
order. A confirmed command is acknowledged by each meter at its response slot, counted from the
receipt; an unconfirmed one never is. Replays, plain text and a wrong key are refused. The
unicast UDP port takes a broadcast too (wPort 0x7F), acknowledging over the same link, and
``cosemcast meter serve`` (a subprocess) joins the group its ``[schedule]`` table names.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.action import ActionRequestNormal, ActionResponseNormal
from cosemcast.apdu.common import ActionResult, CosemAttributeDescriptor, InvokeIdAndPriority
from cosemcast.apdu.general import GeneralGloCiphering
from cosemcast.association import Associate, AssociationEstablished
from cosemcast.errors import TransportError
from cosemcast.link.wrapper import WrapperFrame
from cosemcast.meter import SoftwareMeter
from cosemcast.scheduling import (
    UPSTREAM_SCHEDULE_OBIS,
    GroupCommand,
    GroupOrder,
    Order,
    ResponseWindow,
    group_command_request,
    spread_offset,
)
from cosemcast.security.gcm import SecurityControl, SymmetricKeys
from cosemcast.security.protection import cipher_apdu, decipher_apdu
from cosemcast.transport.udp import UdpPushReceiver, UdpWrapperServer, sender_socket
from test_meter_schedule_support import (
    BROADCAST_KEY,
    FIRMWARE,
    TARIFF,
    TITLE_A,
    TITLE_B,
    WAIT_S,
    Served,
    Sink,
    at,
    free_udp_port,
    meter_text,
    open_meter,
    unit,
    wait_for,
)
from test_meter_support import (
    AK,
    CLIENT_TITLE,
    EK,
    START,
    FakeClock,
    public_settings,
    tcp_client,
)

ALL_STATIONS = 0x7F
RECEIVED = START + dt.timedelta(minutes=1)


class HeadEnd:
    """Sends broadcasts from a bound socket (acknowledgements come back to it)."""

    def __init__(self, group: tuple[str, int]) -> None:
        self.sock, self.group = sender_socket(*group, interface="127.0.0.1")
        self.sock.bind(("127.0.0.1", 0))
        self.counter = 0

    def seal(self, plain: bytes, key: bytes = BROADCAST_KEY) -> bytes:
        self.counter += 1
        control = SecurityControl(0, authenticated=True, encrypted=True, broadcast_key=True)
        return cipher_apdu(
            plain,
            kind="general-glo",
            security_control=control.to_byte(),
            keys=SymmetricKeys(key, AK),
            system_title=CLIENT_TITLE,
            invocation_counter=self.counter,
        ).encode()

    def send(self, apdu: bytes, to: tuple[str, int] | None = None) -> None:
        self.sock.sendto(WrapperFrame(1, ALL_STATIONS, apdu).encode(), to or self.group)

    def receive(self, timeout_s: float = WAIT_S) -> WrapperFrame:
        self.sock.settimeout(timeout_s)
        data, _ = self.sock.recvfrom(65536)
        return WrapperFrame.decode(data)

    def quiet(self, timeout_s: float = 0.3) -> bool:
        try:
            self.receive(timeout_s)
        except TimeoutError:
            return True
        return False

    def close(self) -> None:
        self.sock.close()


def confirmed(command: GroupCommand, invoke_id: int) -> bytes:
    request = group_command_request(command)
    return ActionRequestNormal(
        request.cosem_method_descriptor,
        request.method_invocation_parameters,
        InvokeIdAndPriority(invoke_id, confirmed=True, high_priority=False),
    ).encode()


def opened_ack(frame: WrapperFrame, title: bytes) -> ActionResponseNormal:
    ciphered = decode_apdu(frame.apdu)
    assert isinstance(ciphered, GeneralGloCiphering) and ciphered.system_title == title
    plain = decipher_apdu(ciphered, keys=SymmetricKeys(EK, AK), system_title=title).plain
    response = decode_apdu(plain)
    assert isinstance(response, ActionResponseNormal)
    return response


@pytest.fixture
def group() -> tuple[str, int]:
    return f"239.255.{random.randint(1, 254)}.{random.randint(1, 254)}", free_udp_port()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sink() -> Iterator[Sink]:
    made = Sink()
    yield made
    made.close()


@pytest.fixture
def meters(
    tmp_path: Path, group: tuple[str, int], clock: FakeClock, sink: Sink
) -> Iterator[tuple[SoftwareMeter, SoftwareMeter]]:
    a = open_meter(
        meter_text(TITLE_A, sink, groups=(7,), group=group), tmp_path / "a.sqlite3", clock
    )
    b = open_meter(
        meter_text(TITLE_B, sink, groups=(12, 40), group=group), tmp_path / "b.sqlite3", clock
    )
    try:
        for meter in (a, b):
            try:
                unit(meter).listen()
            except TransportError as exc:
                pytest.skip(f"the kernel refuses the multicast set-up on 127.0.0.1: {exc}")
        yield a, b
    finally:
        a.close()
        b.close()


@pytest.fixture
def head_end(group: tuple[str, int]) -> Iterator[HeadEnd]:
    made = HeadEnd(group)
    yield made
    made.close()


def applied(meter: SoftwareMeter, count: int) -> bool:
    return unit(meter).stats()["broadcasts_applied"] == count


def refused(meter: SoftwareMeter, reason: str) -> int:
    return unit(meter).stats().get(f"broadcasts_refused.{reason}", 0)


def test_each_meter_applies_only_its_groups_order_and_sends_nothing_back(
    tmp_path: Path,
    meters: tuple[SoftwareMeter, SoftwareMeter],
    head_end: HeadEnd,
    clock: FakeClock,
    group: tuple[str, int],
    sink: Sink,
) -> None:
    a, b = meters
    command = GroupCommand(
        (
            GroupOrder(7, Order.set_offset(30)),
            GroupOrder(12, Order.set_offset(60)),
            GroupOrder(0, Order.set_window(840)),  # for the others; neither A nor B
        )
    )
    sealed = head_end.seal(group_command_request(command).encode())
    head_end.send(sealed)
    wait_for(lambda: applied(a, 1) and applied(b, 1), "both meters applied the command")
    assert unit(a).obj.schedule.explicit_offset_s == 30
    assert unit(b).obj.schedule.explicit_offset_s == 60
    assert unit(a).obj.schedule.window_s == unit(b).obj.schedule.window_s == 900
    assert head_end.quiet()  # unconfirmed: no response
    head_end.send(sealed)  # the same bytes again: a replay
    wait_for(lambda: refused(a, "ReplayError") == 1 and refused(b, "ReplayError") == 1, "replay")
    clear = group_command_request(GroupCommand((GroupOrder(0, Order.clear_offset()),))).encode()
    head_end.send(clear)
    wait_for(lambda: refused(a, "AuthenticationFailed") == 1, "plain text refused")
    head_end.send(head_end.seal(clear, key=bytes(16)))
    wait_for(lambda: refused(b, "AuthenticationFailed") == 2, "wrong key refused")
    assert unit(a).obj.schedule.explicit_offset_s == 30
    assert unit(b).obj.schedule.explicit_offset_s == 60
    # The applied order is persisted: a restarted meter keeps it.
    state_a = a.state.path
    a.close()
    text = meter_text(TITLE_A, sink, groups=(7,), group=group)
    with open_meter(text, state_a, clock) as again:
        assert unit(again).obj.schedule.explicit_offset_s == 30
        assert unit(again).report_offset_s() == 30


def test_a_confirmed_command_is_acknowledged_at_each_meters_response_slot(
    meters: tuple[SoftwareMeter, SoftwareMeter], head_end: HeadEnd, clock: FakeClock
) -> None:
    a, b = meters
    for meter in (a, b):
        at(meter, clock, RECEIVED)
    command = GroupCommand(
        (
            GroupOrder(7, Order.respond_within(5, 100)),
            GroupOrder(40, Order.respond_within(200, 100)),
        )
    )
    head_end.send(head_end.seal(confirmed(command, 2)))
    wait_for(lambda: applied(a, 1) and applied(b, 1), "both meters applied the command")
    assert unit(a).obj.schedule.response == ResponseWindow(5, 100)
    assert unit(b).obj.schedule.response == ResponseWindow(200, 100)
    due = {
        title: delay + spread_offset(title, FIRMWARE, TARIFF, 100)
        for title, delay in ((TITLE_A, 5), (TITLE_B, 200))
    }
    assert due[TITLE_A] < due[TITLE_B]
    for meter, title in ((a, TITLE_A), (b, TITLE_B)):
        for meter_ in (a, b):
            at(meter_, clock, RECEIVED + dt.timedelta(seconds=due[title] - 1))
        assert unit(meter).stats()["pending"] == 1 and head_end.quiet()
        for meter_ in (a, b):
            at(meter_, clock, RECEIVED + dt.timedelta(seconds=due[title]))
        frame = head_end.receive()
        assert (frame.source_wport, frame.destination_wport) == (1, 1)
        response = opened_ack(frame, title)
        assert response.result is ActionResult.SUCCESS
        assert response.invoke_id_and_priority.invoke_id == 2
        assert unit(meter).stats()["pending"] == 0
    assert head_end.quiet()


def test_a_broadcast_on_the_unicast_port_is_taken_and_acknowledged_on_that_link(
    tmp_path: Path, clock: FakeClock, sink: Sink, group: tuple[str, int]
) -> None:
    text = meter_text(TITLE_A, sink, groups=(7,))
    head_end = HeadEnd(group)
    try:
        with open_meter(text, tmp_path / "a.sqlite3", clock) as meter:
            udp = next(s for s in meter.servers if isinstance(s, UdpWrapperServer))
            command = GroupCommand((GroupOrder(7, Order.respond_within(10, 0)),))
            head_end.send(head_end.seal(confirmed(command, 3)), to=udp.address)
            wait_for(lambda: applied(meter, 1), "the command applied")
            assert unit(meter).stats()["pending"] == 1 and head_end.quiet()
            at(meter, clock, START + dt.timedelta(seconds=10))
            frame = head_end.receive()
            # The answer goes back over the session of the request (wPort 0x7F -> 1).
            assert (frame.source_wport, frame.destination_wport) == (ALL_STATIONS, 1)
            assert opened_ack(frame, TITLE_A).result is ActionResult.SUCCESS
            # An ordinary ciphered association on the same port is untouched: no claim.
            assert unit(meter).stats()["broadcasts_refused"] == 0
    finally:
        head_end.close()


def test_meter_serve_joins_the_configured_group(
    tmp_path: Path, sink: Sink, group: tuple[str, int]
) -> None:
    try:
        UdpPushReceiver(group[1], group=group[0], interface="127.0.0.1").close()
    except TransportError as exc:
        pytest.skip(f"the kernel refuses the multicast set-up on 127.0.0.1: {exc}")
    config = tmp_path / "meter.toml"
    config.write_text(meter_text(TITLE_A, sink, groups=(7,), group=group), "utf-8")
    served = Served(
        "--config",
        str(config),
        "--state",
        str(tmp_path / "m.sqlite3"),
        "--tcp",
        "127.0.0.1:0",
        "--udp",
        "127.0.0.1:0",
    )
    head_end = HeadEnd(group)
    try:
        found = served.wait_for(r"serving TCP on ([\d.]+):(\d+)")
        address = found.group(1), int(found.group(2))
        served.wait_for("group commands on")
        served.wait_for("meter ready")
        command = GroupCommand((GroupOrder(7, Order.set_offset(77)),))
        head_end.send(head_end.seal(group_command_request(command).encode()))
        served.wait_for("group command from client 1: success")
        public = tcp_client(address, public_settings())
        assert isinstance(public.request(Associate()), AssociationEstablished)
        assert public.get(CosemAttributeDescriptor(8964, UPSTREAM_SCHEDULE_OBIS, 3)) == 77
        public.close()
        assert head_end.quiet()
    finally:
        head_end.close()
        log = served.stop()
    assert served.process.returncode == 0, log
    assert "Traceback" not in log
