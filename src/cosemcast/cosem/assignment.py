"""Assignment, manufacturer interface class 8962 (version 0): the meter side of supervision.

Theory of operation (specs/supervision.md §6.5-§6.7, specs/shared-payload.md §8.3). The object
at ``0-0:128.3.0.255`` is how initialization messages reach the meter: straight from the
supervision centre or relayed by a head-end (Figs. 6b, 6c), as the octet-string parameter of
method 1 ``load_init_message``. It runs :class:`~cosemcast.supervision.MeterAuthorization`
(tag under ``Ki``, signature, meter ID, window T against the meter's own clock, sequence) and
hands the verified message to an injected :class:`AssignmentStore`, which persists the new
sequence and the action atomically. Every rejection of specs/supervision.md §6.3 becomes one
Action-Result and one log line (:data:`REJECTIONS`); the store is not touched.

Method 2 ``enroll`` produces the meter's consent ([0051], specs §7): the sealed enrollment
request for the head-end the owner chose, which the owner hands to that head-end.

Attributes: 2 ``assigned_head_ends`` (system title, K1 kind, destination; never a key),
3 ``last_init_sequence``, 4 ``renewal_deadline`` and 5 ``interrupted``: the validity counter of
[0049]. The counter runs on the meter's clock: when no initialization message is accepted for
``renewal_timeout_s``, :meth:`Assignment.check_validity` enters the interrupted mode (the
Disconnect control gets ``remote_disconnect``), and the next accepted message leaves it
(``remote_reconnect``, only if the interruption moved the control itself).

Time is the meter's (claim 13): ``clock`` when given (POSIX seconds), otherwise the time of
the logical device the object belongs to (its Clock object). The object keeps ``Kt`` and
never shows it; the store keeps ``I0`` and ``Ks`` is re-derived on demand (specs §6.4).
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

from cryptography.hazmat.primitives.asymmetric import ec

from cosemcast.apdu.common import ActionResult, DataAccessResult, SelectiveAccess
from cosemcast.association.backend import AccessContext
from cosemcast.axdr.types import (
    Array,
    Data,
    DoubleLongUnsigned,
    Enumerated,
    Long64Unsigned,
    OctetString,
    Structure,
)
from cosemcast.cosem.access import AccessRights
from cosemcast.cosem.base import LOGICAL_NAME, AttributeSpec, CosemObject, MethodSpec
from cosemcast.cosem.common import ValueRejected, want_enum, want_octet_string, want_structure
from cosemcast.cosem.disconnect import ControlState, DisconnectControl, Trigger
from cosemcast.errors import AuthenticationFailed, DecodeError, DlmsError, ReplayError
from cosemcast.obis import Obis
from cosemcast.supervision.enrollment import EnrollmentRequest
from cosemcast.supervision.errors import FutureInitMessage, StaleInitMessage, WrongMeterError
from cosemcast.supervision.initmsg import InitAction
from cosemcast.supervision.kdf import SYSTEM_TITLE_LENGTH, derive_ks
from cosemcast.supervision.validation import (
    DEFAULT_TOLERANCE_S,
    AcceptedInit,
    MeterAuthorization,
)

__all__ = [
    "ASSIGNMENT_CLASS_ID",
    "ASSIGNMENT_OBIS",
    "REJECTIONS",
    "AssignedHeadEnd",
    "Assignment",
    "AssignmentStore",
    "Interruption",
    "K1Kind",
    "StoredHeadEnd",
    "Validity",
    "rejection_result",
]

ASSIGNMENT_CLASS_ID: Final = 8962
ASSIGNMENT_OBIS: Final = Obis(0, 0, 128, 3, 0, 255)

_log = logging.getLogger("cosemcast.meter.assignment")


class K1Kind(enum.IntEnum):
    """How C2s to a head-end are wrapped (specs/shared-payload.md §8.3, attribute 2)."""

    SHARED_KEY = 0
    PUBLIC_KEY = 1


class Interruption(enum.IntEnum):
    """The validity counter's mode ([0049]; specs/supervision.md §6.7)."""

    NORMAL = 0
    SUPPLY_INTERRUPTED = 1  # the counter moved the Disconnect control to disconnected
    INTERRUPTED = 2  # interrupted, but the control was not moved (already off, mode 0, none)
    RECONNECT_PENDING = 3  # a message was accepted in mode 1; the control is yet to be switched


@dataclass(frozen=True, slots=True)
class StoredHeadEnd:
    """One assigned head-end as the store keeps it: ``I0``, never ``Ks``."""

    system_title: bytes
    sequence: int
    i0: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Validity:
    """The validity counter's persisted state: when it last restarted, and the mode."""

    renewed_at: int
    interruption: Interruption = Interruption.NORMAL


@dataclass(frozen=True, slots=True)
class AssignedHeadEnd:
    """An assigned head-end with its ``Ks`` and where its C2s go ("" = it pulls them)."""

    system_title: bytes
    destination: str
    sequence: int
    ks: bytes = field(repr=False)


class AssignmentStore(Protocol):
    """The meter's persistent authorization state (an ``AuthorizationStore`` plus more).

    ``accept`` MUST check that the sequence is above the stored one, then persist the new
    sequence, the action of specs §6.4 and, when ``renewed_at`` is given, restart the validity
    counter, all in one atomic step. Restarting leaves the interrupted mode: to
    ``RECONNECT_PENDING`` from ``SUPPLY_INTERRUPTED`` (the object then switches the Disconnect
    control and stores ``NORMAL``), to ``NORMAL`` from any other mode. ``set_validity`` may also
    persist, in the same transaction, the Disconnect control the object switched.
    """

    def last_sequence(self) -> int: ...

    def accept(self, accepted: AcceptedInit, *, renewed_at: int | None = None) -> None: ...

    def head_ends(self) -> tuple[StoredHeadEnd, ...]: ...

    def validity(self) -> Validity | None: ...

    def set_validity(self, validity: Validity) -> None: ...


class _AtTime:
    """The store as ``MeterAuthorization`` sees it during one load at meter time ``now``."""

    __slots__ = ("_now", "_store")

    def __init__(self, store: AssignmentStore, now: int) -> None:
        self._store = store
        self._now = now

    def last_sequence(self) -> int:
        return self._store.last_sequence()

    def accept(self, accepted: AcceptedInit) -> None:
        self._store.accept(accepted, renewed_at=self._now)


# Decision (specs/supervision.md §6.5): one Action-Result per kind of rejection, so that a
# relaying head-end knows what to do without the log: retry later, ask for a reissue, or give up.
REJECTIONS: Final[tuple[tuple[type[DlmsError], ActionResult, str], ...]] = (
    (FutureInitMessage, ActionResult.TEMPORARY_FAILURE, "not valid yet"),
    (StaleInitMessage, ActionResult.OTHER_REASON, "expired"),
    (ReplayError, ActionResult.OTHER_REASON, "replayed or older sequence"),
    (WrongMeterError, ActionResult.SCOPE_OF_ACCESS_VIOLATED, "for another meter"),
    (AuthenticationFailed, ActionResult.READ_WRITE_DENIED, "authentication failed"),
    (DecodeError, ActionResult.TYPE_UNMATCHED, "malformed"),
    (DlmsError, ActionResult.HARDWARE_FAULT, "could not be stored"),
)


def rejection_result(error: DlmsError) -> tuple[ActionResult, str]:
    """The Action-Result and short reason for a refused initialization message."""
    for cls, result, reason in REJECTIONS:
        if isinstance(error, cls):
            return result, reason
    return ActionResult.OTHER_REASON, "refused"


def _title(value: bytes) -> str:
    return bytes(value).hex().upper()


class Assignment(CosemObject):
    """Assignment (class 8962); see the module docstring."""

    CLASS_ID = ASSIGNMENT_CLASS_ID
    VERSION = 0
    ATTRIBUTES = (
        LOGICAL_NAME,
        AttributeSpec(2, "assigned_head_ends", "array"),
        AttributeSpec(3, "last_init_sequence", "double-long-unsigned"),
        AttributeSpec(4, "renewal_deadline", "long64-unsigned"),
        AttributeSpec(5, "interrupted", "boolean"),
    )
    METHODS = (
        MethodSpec(1, "load_init_message", "octet-string"),
        MethodSpec(2, "enroll", "structure"),
    )

    def __init__(
        self,
        logical_name: Obis | str = ASSIGNMENT_OBIS,
        *,
        meter_id: bytes,
        kt: bytes,
        centre_public_key: ec.EllipticCurvePublicKey,
        store: AssignmentStore,
        enrollment_counter: Callable[[], int],
        ki: bytes | None = None,
        tolerance_s: int = DEFAULT_TOLERANCE_S,
        renewal_timeout_s: int = 0,
        destinations: Mapping[bytes, str] | None = None,
        default_destination: str = "",
        clock: Callable[[], int] | None = None,
        access: Mapping[int | None, AccessRights] | None = None,
    ) -> None:
        super().__init__(logical_name, access=access)
        if renewal_timeout_s < 0:
            raise ValueError(f"renewal_timeout_s must not be negative, got {renewal_timeout_s}")
        self._authorization = MeterAuthorization(
            meter_id=meter_id,
            kt=kt,
            centre_public_key=centre_public_key,
            store=store,
            ki=ki,
            tolerance_s=tolerance_s,
        )
        self.meter_id = self._authorization.meter_id
        self._kt = bytes(kt)
        self.store = store
        self._enrollment_counter = enrollment_counter
        self.renewal_timeout_s = renewal_timeout_s
        self.destinations = dict(destinations or {})
        self.default_destination = default_destination
        self.clock = clock
        self.disconnect: DisconnectControl | None = None
        self.on_assigned: Callable[[tuple[AssignedHeadEnd, ...], int], None] | None = None

    def __repr__(self) -> str:
        return f"Assignment({str(self.logical_name)!r}, meter_id={_title(self.meter_id)})"

    # --- time and the assigned set -----------------------------------------------------------

    def meter_now(self) -> int:
        """The meter's time in POSIX seconds (the injected clock, else the device's Clock)."""
        if self.clock is not None:
            return int(self.clock())
        return int(self._now(None).timestamp())

    def destination(self, head_end_id: bytes) -> str:
        return self.destinations.get(bytes(head_end_id), self.default_destination)

    def head_ends(self) -> tuple[AssignedHeadEnd, ...]:
        """The assigned head-ends with their ``Ks`` (re-derived), ordered by system title."""
        return tuple(
            AssignedHeadEnd(
                stored.system_title,
                self.destination(stored.system_title),
                stored.sequence,
                derive_ks(
                    self._kt,
                    meter_id=self.meter_id,
                    head_end_id=stored.system_title,
                    i0=stored.i0,
                ),
            )
            for stored in sorted(self.store.head_ends(), key=lambda h: h.system_title)
        )

    # --- loading initialization messages (method 1) ------------------------------------------

    def load(self, raw: bytes, now: int | None = None) -> AcceptedInit:
        """Verify and load one initialization message at meter time ``now`` (default: the
        meter's clock). Raises as :func:`~cosemcast.supervision.open_init_message` does, or
        the store's error; on every error nothing changes."""
        moment = self.meter_now() if now is None else now
        stored = self.store.validity()
        before = Interruption.NORMAL if stored is None else stored.interruption
        self._authorization.store = _AtTime(self.store, moment)
        try:
            accepted = self._authorization.load(bytes(raw), moment)
        finally:
            self._authorization.store = self.store
        _log.info(
            "%s: initialization message %d loaded: %s head-end %s",
            self.logical_name,
            accepted.sequence,
            accepted.action.name.lower().replace("_", "-"),
            _title(accepted.head_end_id),
        )
        if before is not Interruption.NORMAL:
            _log.warning("%s: renewal accepted: the interrupted mode ends", self.logical_name)
        try:
            self.resume()
            if self.on_assigned is not None:
                self.on_assigned(self.head_ends(), moment)
        except (DlmsError, ValueError) as exc:
            # The message is loaded (a retry would be a replay); what follows is retried:
            # resume() at the next time step or start, the listeners with the next message.
            _log.error(
                "%s: initialization message %d loaded, but applying it failed: %s",
                self.logical_name,
                accepted.sequence,
                exc,
            )
        return accepted

    def _invoke(
        self, method_id: int, params: Data | None, ctx: AccessContext | None
    ) -> tuple[ActionResult, Data | None]:
        if method_id == 2:
            return self._enroll(params)
        raw = want_octet_string(params)
        try:
            self.load(raw)
        except DlmsError as exc:
            result, reason = rejection_result(exc)
            _log.warning(
                "%s: initialization message refused (%s) -> %s: %s",
                self.logical_name,
                reason,
                result.name.lower().replace("_", "-"),
                exc,
            )
            return result, None
        return ActionResult.SUCCESS, None

    # --- enrollment (method 2) ---------------------------------------------------------------

    def enroll(self, head_end_id: bytes, action: InitAction = InitAction.ASSIGN) -> bytes:
        """The sealed enrollment request naming ``head_end_id`` (specs §7), with a fresh
        counter that is persisted before it is used and never reused."""
        if len(head_end_id) != SYSTEM_TITLE_LENGTH:
            raise ValueError(f"a head-end ID is an 8-byte system title, got {len(head_end_id)}")
        if action not in (InitAction.ASSIGN, InitAction.ASSIGN_EXCLUSIVE):
            raise ValueError(f"a meter consents to assign or assign-exclusive, not {action.name}")
        counter = self._enrollment_counter()
        request = EnrollmentRequest(
            self.meter_id, bytes(head_end_id), self.meter_now(), counter, action
        )
        sealed = request.seal(self._kt)
        _log.info(
            "%s: enrollment request %d for head-end %s (%s)",
            self.logical_name,
            counter,
            _title(head_end_id),
            action.name.lower().replace("_", "-"),
        )
        return sealed

    def _enroll(self, params: Data | None) -> tuple[ActionResult, Data | None]:
        fields = want_structure(params, 2)
        head_end_id = want_octet_string(fields[0], SYSTEM_TITLE_LENGTH)
        action = InitAction(
            want_enum(fields[1], frozenset((InitAction.ASSIGN, InitAction.ASSIGN_EXCLUSIVE)))
        )
        try:
            return ActionResult.SUCCESS, OctetString(self.enroll(head_end_id, action))
        except ValueError as exc:
            raise ValueRejected(str(exc)) from exc
        except DlmsError as exc:
            _log.warning("%s: no enrollment request: %s", self.logical_name, exc)
            return ActionResult.HARDWARE_FAULT, None

    # --- the validity counter ([0049]) --------------------------------------------------------

    def validity(self) -> Validity:
        """The counter's state; started at the meter's current time if it never ran."""
        state = self.store.validity()
        if state is None:
            state = Validity(self.meter_now())
            self.store.set_validity(state)
        return state

    def renewal_deadline(self) -> int | None:
        """Meter time (POSIX s) at which the interrupted mode starts; None: no counter."""
        if self.renewal_timeout_s == 0:
            return None
        return self.validity().renewed_at + self.renewal_timeout_s

    @property
    def interrupted(self) -> bool:
        return self.validity().interruption in (
            Interruption.SUPPLY_INTERRUPTED,
            Interruption.INTERRUPTED,
        )

    def check_validity(self, now: int | None = None) -> bool:
        """Enter the interrupted mode if the deadline has passed; True when it was entered."""
        self.resume()
        deadline = self.renewal_deadline()
        state = self.validity()
        moment = self.meter_now() if now is None else now
        if deadline is None or state.interruption is not Interruption.NORMAL or moment < deadline:
            return False
        control = self.disconnect
        moved = control is not None and control.fire(Trigger.REMOTE_DISCONNECT)
        self.store.set_validity(
            Validity(
                state.renewed_at,
                Interruption.SUPPLY_INTERRUPTED if moved else Interruption.INTERRUPTED,
            )
        )
        if moved and control is not None:
            control.changed()
        _log.warning(
            "%s: no initialization message accepted for %d s (since %s): interrupted mode, %s",
            self.logical_name,
            self.renewal_timeout_s,
            dt.datetime.fromtimestamp(state.renewed_at, dt.UTC).isoformat(),
            "supply disconnected"
            if moved
            else "supply not switched (no Disconnect control could move)",
        )
        return True

    def resume(self) -> bool:
        """Finish leaving the interrupted mode after an accepted message (also after a crash
        between the two steps): ``remote_reconnect`` if the counter had switched the control
        off and it is still off, then ``NORMAL``. True when the control moved."""
        state = self.validity()
        if state.interruption is not Interruption.RECONNECT_PENDING:
            return False
        control = self.disconnect
        moved = (
            control is not None
            and control.control_state == ControlState.DISCONNECTED
            and control.fire(Trigger.REMOTE_RECONNECT)
        )
        self.store.set_validity(Validity(state.renewed_at))
        if moved and control is not None:
            control.changed()
            _log.warning(
                "%s: supply %s after the renewal",
                self.logical_name,
                control.control_state.name.lower().replace("_", " "),
            )
        return moved

    # --- attributes ---------------------------------------------------------------------------

    def _read(
        self,
        attribute_id: int,
        selection: SelectiveAccess | None,
        ctx: AccessContext | None,
        now: dt.datetime | None,
    ) -> Data | DataAccessResult:
        if attribute_id == 2:
            return Array(
                Structure(
                    (
                        OctetString(stored.system_title),
                        Enumerated(K1Kind.SHARED_KEY),
                        OctetString(self.destination(stored.system_title).encode("utf-8")),
                    )
                )
                for stored in sorted(self.store.head_ends(), key=lambda h: h.system_title)
            )
        if attribute_id == 3:
            return DoubleLongUnsigned(self.store.last_sequence())
        if attribute_id == 4:
            deadline = self.renewal_deadline()
            return Long64Unsigned(0 if deadline is None else deadline)
        return self.interrupted
