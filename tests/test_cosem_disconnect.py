"""Disconnect control (class 70): the state machine against the Blue Book method texts."""

from __future__ import annotations

import itertools

import pytest

from cosemcast.apdu.common import ActionResult, DataAccessResult
from cosemcast.axdr import Enumerated, Integer, OctetString
from cosemcast.cosem import (
    AccessRights,
    ControlMode,
    ControlState,
    DisconnectControl,
    Trigger,
)
from test_cosem_fixtures import MANAGEMENT, PUBLIC, ctx

D, C, R = ControlState.DISCONNECTED, ControlState.CONNECTED, ControlState.READY_FOR_RECONNECTION


def expected(mode: int, trigger: Trigger, state: ControlState) -> ControlState:
    """Written from the method and mode descriptions (see disconnect.py), not from the table:
    remote_disconnect -> disconnected when mode > 0; remote_reconnect -> ready in modes
    1, 3, 5, 6 and connected in 2, 4 (from disconnected); manual disconnection in modes 1, 2, 5;
    manual reconnection in every mode > 0; local disconnection in every mode > 0; local
    reconnection in modes 5, 6."""
    if mode == 0:
        return state
    if trigger is Trigger.REMOTE_DISCONNECT and state in (C, R):
        return D
    if trigger is Trigger.REMOTE_RECONNECT and state == D:
        return C if mode in (2, 4) else R
    if trigger is Trigger.MANUAL_DISCONNECT and state == C and mode in (1, 2, 5):
        return R
    if trigger is Trigger.MANUAL_RECONNECT and state == R:
        return C
    if trigger is Trigger.LOCAL_DISCONNECT and state == C:
        return R
    if trigger is Trigger.LOCAL_RECONNECT and state == R and mode in (5, 6):
        return C
    return state


@pytest.mark.parametrize(
    ("mode", "trigger", "state"),
    list(itertools.product(range(1, 7), list(Trigger), [D, C, R])),
)
def test_every_transition(mode: int, trigger: Trigger, state: ControlState) -> None:
    dc = DisconnectControl(control_mode=ControlMode(mode), control_state=state)
    outputs: list[bool] = []
    dc.on_output = lambda _dc, on: outputs.append(on)
    moved = dc.fire(trigger)
    target = expected(mode, trigger, state)
    assert dc.control_state == target
    assert moved == (target != state)
    assert dc.output_state == (target == C)
    assert outputs == ([target == C] if (target == C) != (state == C) else [])


@pytest.mark.parametrize("trigger", list(Trigger))
def test_mode_zero_is_always_connected(trigger: Trigger) -> None:
    dc = DisconnectControl(control_mode=ControlMode.NONE, control_state=D)
    assert dc.control_state == C
    assert not dc.fire(trigger)
    assert dc.output_state


def test_remote_methods_through_action() -> None:
    dc = DisconnectControl(
        control_mode=ControlMode.MODE_1,
        access={PUBLIC: AccessRights.read_only(), MANAGEMENT: AccessRights.full()},
    )
    changes: list[DisconnectControl] = []
    dc.on_change = changes.append
    assert dc.get(ctx(PUBLIC), 2) is True
    assert dc.action(ctx(PUBLIC), 1, Integer(0)) == (ActionResult.READ_WRITE_DENIED, None)
    assert dc.action(ctx(MANAGEMENT), 1, Integer(0)) == (ActionResult.SUCCESS, None)
    assert dc.get(ctx(PUBLIC), 2) is False
    assert dc.get(ctx(PUBLIC), 3) == Enumerated(0)
    assert dc.action(ctx(MANAGEMENT), 2, Integer(0)) == (ActionResult.SUCCESS, None)
    assert dc.control_state == R and not dc.output_state
    assert dc.manual_reconnect()
    assert dc.get(ctx(PUBLIC), 3) == Enumerated(1)
    assert len(changes) == 3
    assert dc.action(ctx(MANAGEMENT), 1, OctetString(b"")) == (ActionResult.TYPE_UNMATCHED, None)
    assert dc.action(ctx(MANAGEMENT), 3, Integer(0)) == (ActionResult.OBJECT_UNDEFINED, None)


def test_control_mode_attribute() -> None:
    dc = DisconnectControl(control_mode=ControlMode.MODE_2, access={None: AccessRights.full()})
    dc.fire(Trigger.REMOTE_DISCONNECT)
    assert dc.get(ctx(), 4) == Enumerated(2)
    assert dc.set(ctx(), 4, Enumerated(7)) == DataAccessResult.OTHER_REASON
    assert dc.set(ctx(), 4, Integer(1)) == DataAccessResult.TYPE_UNMATCHED
    assert dc.set(ctx(), 4, Enumerated(0)) == DataAccessResult.SUCCESS
    assert dc.control_state == C and dc.output_state
    assert dc.set(ctx(), 3, Enumerated(0)) == DataAccessResult.READ_WRITE_DENIED
    assert dc.set(ctx(), 2, False) == DataAccessResult.READ_WRITE_DENIED
    assert str(dc.logical_name) == "0-0:96.3.10.255"
