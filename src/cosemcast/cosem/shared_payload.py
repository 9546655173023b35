"""The shared-payload extension classes 8960 and 8961 (specs/shared-payload.md §8.1, §8.2).

Shared payload, class_id 8960 (version 0), ``0-0:128.1.0.255``: 2 current_kp_id
octet-string(8) (empty before the first draw), 3 buffer (array of octet-string: the sealed C1s
waiting for transmission, oldest first, each a complete ``DD`` APDU), 4 capture_objects (array
of capture_object_definition, r/w), 5 buffer_capacity (long-unsigned, r/w), 6 renewal_policy
``structure {max_payloads double-long-unsigned (0 = none), max_age double-long-unsigned,
delivery_window double-long-unsigned, ack_payloads boolean}`` (r/w), 7 epoch
(double-long-unsigned). Methods 1 capture, 2 renew, 3 clear_buffer (integer(0)).

Payload key control, class_id 8961 (version 0), ``0-0:128.2.0.255``: 2 entries ``array of
structure {head_end_system_title octet-string(8), kp_id octet-string(8), c2 octet-string,
acknowledged boolean, invocation_counter double-long-unsigned, not_after
double-long-unsigned}``, 3 retry_interval (long-unsigned seconds, r/w). Method 1 acknowledge.

Theory of operation. Both objects are views: the state lives in the meter's payload sealer,
reached through a :class:`SharedPayloadBackend` (the software meter's shared-payload unit).
``capture`` reads capture_objects from the object model, as Push setup does, and hands the body
to the backend, which seals it as a C1 into the buffer. ``acknowledge`` is never executed as a
plain ACTION, not even over a ciphered association: it answers ``read-write-denied``; an
acknowledgement counts only as the verified plaintext of an authenticated general-ciphering APDU
(§6), which the meter checks before any object sees it.

Decisions (specs §8.5): an unreadable capture object is captured as null-data (as Push setup);
a renewal_policy or buffer_capacity the sealer refuses (zero, or max_age 0) is ``other-reason``;
retry_interval 0 is refused too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from cosemcast.apdu.common import ActionResult, DataAccessResult, SelectiveAccess
from cosemcast.association.backend import AccessContext
from cosemcast.axdr.types import (
    Array,
    Data,
    DoubleLongUnsigned,
    LongUnsigned,
    OctetString,
    Structure,
)
from cosemcast.cosem.access import AccessRights
from cosemcast.cosem.base import (
    LOGICAL_NAME,
    AttributeSpec,
    CosemObject,
    MethodSpec,
    want_no_parameter,
)
from cosemcast.cosem.common import (
    CaptureObjectDefinition,
    ValueRejected,
    want_array,
    want_bool,
    want_int,
    want_structure,
)
from cosemcast.obis import Obis

__all__ = [
    "KEY_CONTROL_CLASS_ID",
    "KEY_CONTROL_OBIS",
    "SHARED_PAYLOAD_CLASS_ID",
    "SHARED_PAYLOAD_OBIS",
    "ControlEntryView",
    "PayloadKeyControl",
    "RenewalSettings",
    "SharedPayload",
    "SharedPayloadBackend",
]

SHARED_PAYLOAD_CLASS_ID: Final = 8960
KEY_CONTROL_CLASS_ID: Final = 8961
SHARED_PAYLOAD_OBIS: Final = Obis(0, 0, 128, 1, 0, 255)
KEY_CONTROL_OBIS: Final = Obis(0, 0, 128, 2, 0, 255)
_U32: Final = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class RenewalSettings:
    """renewal_policy (attribute 6): ``max_payloads`` 0 means no payload limit."""

    max_payloads: int
    max_age_s: int
    delivery_window_s: int
    ack_payloads: bool

    def to_data(self) -> Structure:
        return Structure(
            (
                DoubleLongUnsigned(self.max_payloads),
                DoubleLongUnsigned(self.max_age_s),
                DoubleLongUnsigned(self.delivery_window_s),
                self.ack_payloads,
            )
        )

    @classmethod
    def from_data(cls, value: Data) -> RenewalSettings:
        s = want_structure(value, 4)
        return cls(
            want_int(s[0], DoubleLongUnsigned),
            want_int(s[1], DoubleLongUnsigned),
            want_int(s[2], DoubleLongUnsigned),
            want_bool(s[3]),
        )


@dataclass(frozen=True, slots=True)
class ControlEntryView:
    """One entry of payload key control attribute 2 (no key material: the C2 is ciphered)."""

    head_end_system_title: bytes
    kp_id: bytes
    c2: bytes
    acknowledged: bool
    invocation_counter: int
    not_after: int

    def to_data(self) -> Structure:
        return Structure(
            (
                OctetString(self.head_end_system_title),
                OctetString(self.kp_id),
                OctetString(self.c2),
                self.acknowledged,
                DoubleLongUnsigned(self.invocation_counter),
                DoubleLongUnsigned(min(self.not_after, _U32)),
            )
        )


class SharedPayloadBackend(Protocol):
    """What the two objects read and change (the meter's shared-payload unit)."""

    def current_kp_id(self) -> bytes: ...

    def epoch(self) -> int: ...

    def buffered(self) -> Sequence[bytes]: ...

    def capture(self, body: Structure) -> None: ...

    def renew(self) -> None: ...

    def clear_buffer(self) -> None: ...

    def buffer_capacity(self) -> int: ...

    def set_buffer_capacity(self, capacity: int) -> None: ...

    def renewal_settings(self) -> RenewalSettings: ...

    def set_renewal_settings(self, settings: RenewalSettings) -> None: ...

    def control_entries(self) -> Sequence[ControlEntryView]: ...

    def retry_interval_s(self) -> int: ...

    def set_retry_interval_s(self, seconds: int) -> None: ...


def _refused(exc: ValueError) -> ValueRejected:
    return ValueRejected(str(exc))


class SharedPayload(CosemObject):
    """Shared payload (class 8960); see the module docstring."""

    CLASS_ID = SHARED_PAYLOAD_CLASS_ID
    VERSION = 0
    ATTRIBUTES = (
        LOGICAL_NAME,
        AttributeSpec(2, "current_kp_id", "octet-string(8)"),
        AttributeSpec(3, "buffer", "array"),
        AttributeSpec(4, "capture_objects", "array", writable=True),
        AttributeSpec(5, "buffer_capacity", "long-unsigned", writable=True),
        AttributeSpec(6, "renewal_policy", "structure", writable=True),
        AttributeSpec(7, "epoch", "double-long-unsigned"),
    )
    METHODS = (MethodSpec(1, "capture"), MethodSpec(2, "renew"), MethodSpec(3, "clear_buffer"))

    def __init__(
        self,
        backend: SharedPayloadBackend,
        capture_objects: Sequence[CaptureObjectDefinition] = (),
        logical_name: Obis | str = SHARED_PAYLOAD_OBIS,
        *,
        access: Mapping[int | None, AccessRights] | None = None,
    ) -> None:
        super().__init__(logical_name, access=access)
        self.backend = backend
        self.capture_objects = tuple(capture_objects)

    def capture_body(self, now: dt.datetime | None = None) -> Structure:
        """The DATA-NOTIFICATION body: every capture object's value, in order."""
        return Structure(self.captured_value(item, now) for item in self.capture_objects)

    def capture(self, now: dt.datetime | None = None) -> None:
        """Method 1: capture now and let the backend seal the C1 into the buffer."""
        self.backend.capture(self.capture_body(now))

    def _read(
        self,
        attribute_id: int,
        selection: SelectiveAccess | None,
        ctx: AccessContext | None,
        now: dt.datetime | None,
    ) -> Data | DataAccessResult:
        backend = self.backend
        match attribute_id:
            case 2:
                return OctetString(backend.current_kp_id())
            case 3:
                return Array(OctetString(c1) for c1 in backend.buffered())
            case 4:
                return Array(c.to_data() for c in self.capture_objects)
            case 5:
                return LongUnsigned(backend.buffer_capacity())
            case 6:
                return backend.renewal_settings().to_data()
            case _:
                return DoubleLongUnsigned(backend.epoch())

    def _write(self, attribute_id: int, value: Data, ctx: AccessContext | None) -> DataAccessResult:
        match attribute_id:
            case 4:
                self.capture_objects = tuple(
                    CaptureObjectDefinition.from_data(v) for v in want_array(value)
                )
            case 5:
                capacity = want_int(value, LongUnsigned)
                try:
                    self.backend.set_buffer_capacity(capacity)
                except ValueError as exc:
                    raise _refused(exc) from exc
            case _:
                settings = RenewalSettings.from_data(value)
                try:
                    self.backend.set_renewal_settings(settings)
                except ValueError as exc:
                    raise _refused(exc) from exc
        return DataAccessResult.SUCCESS

    def _invoke(
        self, method_id: int, params: Data | None, ctx: AccessContext | None
    ) -> tuple[ActionResult, Data | None]:
        want_no_parameter(params)
        match method_id:
            case 1:
                self.capture()
            case 2:
                self.backend.renew()
            case _:
                self.backend.clear_buffer()
        return ActionResult.SUCCESS, None


class PayloadKeyControl(CosemObject):
    """Payload key control (class 8961); see the module docstring."""

    CLASS_ID = KEY_CONTROL_CLASS_ID
    VERSION = 0
    ATTRIBUTES = (
        LOGICAL_NAME,
        AttributeSpec(2, "entries", "array"),
        AttributeSpec(3, "retry_interval", "long-unsigned", writable=True),
    )
    METHODS = (MethodSpec(1, "acknowledge", "structure"),)

    def __init__(
        self,
        backend: SharedPayloadBackend,
        logical_name: Obis | str = KEY_CONTROL_OBIS,
        *,
        access: Mapping[int | None, AccessRights] | None = None,
    ) -> None:
        super().__init__(logical_name, access=access)
        self.backend = backend

    def _read(
        self,
        attribute_id: int,
        selection: SelectiveAccess | None,
        ctx: AccessContext | None,
        now: dt.datetime | None,
    ) -> Data | DataAccessResult:
        if attribute_id == 2:
            return Array(entry.to_data() for entry in self.backend.control_entries())
        return LongUnsigned(min(self.backend.retry_interval_s(), 0xFFFF))

    def _write(self, attribute_id: int, value: Data, ctx: AccessContext | None) -> DataAccessResult:
        seconds = want_int(value, LongUnsigned, low=1)
        try:
            self.backend.set_retry_interval_s(seconds)
        except ValueError as exc:
            raise _refused(exc) from exc
        return DataAccessResult.SUCCESS

    def _invoke(
        self, method_id: int, params: Data | None, ctx: AccessContext | None
    ) -> tuple[ActionResult, Data | None]:
        # specs §8.2: acknowledge only counts inside a verified acknowledgement APDU.
        return ActionResult.READ_WRITE_DENIED, None
