"""Disconnect control, interface class 70 (version 0): the supply breaker or valve.

Attributes: 1 logical_name (0-0:96.3.10.255), 2 output_state (boolean, true = supply
connected), 3 control_state (enum: 0 disconnected, 1 connected, 2 ready_for_reconnection), 4
control_mode (enum 0..6). Methods: 1 remote_disconnect and 2 remote_reconnect (integer(0)).

The state machine (Blue Book transitions a..h; the table below is the whole of it)::

    a  remote_reconnect   disconnected           -> connected
    b  remote_disconnect  ready_for_reconnection -> disconnected
    c  remote_disconnect  connected              -> disconnected
    d  remote_reconnect   disconnected           -> ready_for_reconnection
    e  manual_reconnect   ready_for_reconnection -> connected
    f  manual_disconnect  connected              -> ready_for_reconnection
    g  local_disconnect   connected              -> ready_for_reconnection
    h  local_reconnect    ready_for_reconnection -> connected

control_mode says which transitions are enabled: 0 none (always connected); 1 b c d e f g;
2 a b c e f g; 3 b c d e g; 4 a b c e g; 5 b c d e f g h; 6 b c d e g h. Sources: the mode
list is in Gurux's ``ControlMode`` comments; the method descriptions ("remote_reconnect goes
to ready_for_reconnection in modes 1, 3, 5, 6 and to connected in modes 2, 4";
"remote_disconnect goes to disconnected when control_mode > 0") are quoted identically by
Gurux and by an independent Renesas DLMS library, which fixes the letters a and d.

Manual and local triggers (the push button, a limiter) are Python methods for the meter.

Decisions (copy to specs/): a trigger with no enabled transition from the current state
changes nothing, and the remote methods still answer ``success`` (in mode 0 "the method has
no effect"); writing control_mode 0 forces connected; ``on_output`` tells the owner when the
output changes so that it can switch the (simulated) breaker.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Mapping
from typing import Final

from cosemcast.apdu.common import ActionResult, DataAccessResult, SelectiveAccess
from cosemcast.association.backend import AccessContext
from cosemcast.axdr.types import Data, Enumerated
from cosemcast.cosem.access import AccessRights
from cosemcast.cosem.base import (
    LOGICAL_NAME,
    AttributeSpec,
    CosemObject,
    MethodSpec,
    want_no_parameter,
)
from cosemcast.cosem.common import want_enum
from cosemcast.obis import Obis

__all__ = ["TRANSITIONS", "ControlMode", "ControlState", "DisconnectControl", "Trigger"]


class ControlState(enum.IntEnum):
    DISCONNECTED = 0
    CONNECTED = 1
    READY_FOR_RECONNECTION = 2


class ControlMode(enum.IntEnum):
    NONE = 0
    MODE_1 = 1
    MODE_2 = 2
    MODE_3 = 3
    MODE_4 = 4
    MODE_5 = 5
    MODE_6 = 6


class Trigger(enum.Enum):
    REMOTE_DISCONNECT = "remote_disconnect"
    REMOTE_RECONNECT = "remote_reconnect"
    MANUAL_DISCONNECT = "manual_disconnect"
    MANUAL_RECONNECT = "manual_reconnect"
    LOCAL_DISCONNECT = "local_disconnect"
    LOCAL_RECONNECT = "local_reconnect"


_DISCONNECT_OBIS = Obis(0, 0, 96, 3, 10, 255)

_D, _C, _R = ControlState.DISCONNECTED, ControlState.CONNECTED, ControlState.READY_FOR_RECONNECTION

TRANSITIONS: Final[dict[str, tuple[Trigger, ControlState, ControlState]]] = {
    "a": (Trigger.REMOTE_RECONNECT, _D, _C),
    "b": (Trigger.REMOTE_DISCONNECT, _R, _D),
    "c": (Trigger.REMOTE_DISCONNECT, _C, _D),
    "d": (Trigger.REMOTE_RECONNECT, _D, _R),
    "e": (Trigger.MANUAL_RECONNECT, _R, _C),
    "f": (Trigger.MANUAL_DISCONNECT, _C, _R),
    "g": (Trigger.LOCAL_DISCONNECT, _C, _R),
    "h": (Trigger.LOCAL_RECONNECT, _R, _C),
}

ENABLED: Final[dict[ControlMode, str]] = {
    ControlMode.NONE: "",
    ControlMode.MODE_1: "bcdefg",
    ControlMode.MODE_2: "abcefg",
    ControlMode.MODE_3: "bcdeg",
    ControlMode.MODE_4: "abceg",
    ControlMode.MODE_5: "bcdefgh",
    ControlMode.MODE_6: "bcdegh",
}

_TABLE: Final[dict[tuple[ControlMode, Trigger, ControlState], ControlState]] = {
    (mode, trigger, source): target
    for mode, letters in ENABLED.items()
    for letter in letters
    for trigger, source, target in [TRANSITIONS[letter]]
}


class DisconnectControl(CosemObject):
    """Disconnect control (class 70); see the module docstring."""

    CLASS_ID = 70
    VERSION = 0
    ATTRIBUTES = (
        LOGICAL_NAME,
        AttributeSpec(2, "output_state", "boolean"),
        AttributeSpec(3, "control_state", "enum"),
        AttributeSpec(4, "control_mode", "enum", writable=True),
    )
    METHODS = (MethodSpec(1, "remote_disconnect"), MethodSpec(2, "remote_reconnect"))

    def __init__(
        self,
        logical_name: Obis | str = _DISCONNECT_OBIS,
        *,
        control_mode: ControlMode = ControlMode.MODE_1,
        control_state: ControlState = ControlState.CONNECTED,
        access: Mapping[int | None, AccessRights] | None = None,
    ) -> None:
        super().__init__(logical_name, access=access)
        self.control_mode = control_mode
        self.control_state = ControlState.CONNECTED if control_mode == 0 else control_state
        self.on_output: Callable[[DisconnectControl, bool], None] | None = None

    @property
    def output_state(self) -> bool:
        return self.control_state == ControlState.CONNECTED

    def fire(self, trigger: Trigger) -> bool:
        """Apply ``trigger`` (no ``on_change``); True when the state changed."""
        target = _TABLE.get((self.control_mode, trigger, self.control_state))
        if target is None:
            return False
        self._enter(target)
        return True

    def _enter(self, target: ControlState) -> None:
        before = self.output_state
        self.control_state = target
        if self.output_state != before and self.on_output is not None:
            self.on_output(self, self.output_state)

    def _local_trigger(self, trigger: Trigger) -> bool:
        moved = self.fire(trigger)
        if moved:
            self.changed()
        return moved

    def manual_disconnect(self) -> bool:
        return self._local_trigger(Trigger.MANUAL_DISCONNECT)

    def manual_reconnect(self) -> bool:
        return self._local_trigger(Trigger.MANUAL_RECONNECT)

    def local_disconnect(self) -> bool:
        return self._local_trigger(Trigger.LOCAL_DISCONNECT)

    def local_reconnect(self) -> bool:
        return self._local_trigger(Trigger.LOCAL_RECONNECT)

    def _read(
        self,
        attribute_id: int,
        selection: SelectiveAccess | None,
        ctx: AccessContext | None,
        now: dt.datetime | None,
    ) -> Data | DataAccessResult:
        if attribute_id == 2:
            return self.output_state
        if attribute_id == 3:
            return Enumerated(self.control_state)
        return Enumerated(self.control_mode)

    def _write(self, attribute_id: int, value: Data, ctx: AccessContext | None) -> DataAccessResult:
        self.control_mode = ControlMode(want_enum(value, range(7)))
        if self.control_mode == ControlMode.NONE:
            self._enter(ControlState.CONNECTED)
        return DataAccessResult.SUCCESS

    def _invoke(
        self, method_id: int, params: Data | None, ctx: AccessContext | None
    ) -> tuple[ActionResult, Data | None]:
        want_no_parameter(params)
        self.fire(Trigger.REMOTE_DISCONNECT if method_id == 1 else Trigger.REMOTE_RECONNECT)
        return ActionResult.SUCCESS, None
