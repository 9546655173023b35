"""The meter's authentication unit 18 and validity unit 19 for initialization messages (specs §6).

Theory of operation. :func:`open_init_message` runs every check in the order of specs §6.1 and
raises at the first one that fails; :class:`MeterAuthorization` is the meter-side unit built
on it. It holds the meter's identity, ``Kt``, ``Ki``, the centre's public key (all from
manufacture) and a persistence object (:class:`AuthorizationStore`, injected) that knows the
last accepted sequence number. :meth:`MeterAuthorization.load` takes the raw message and the
current time (sans-IO: the meter chooses its clock source, claim 13) and, only when everything
verifies, derives ``Ks = F(Kt, I0)`` and hands the decision to the store in one call, which
must persist it atomically. On every rejection the store is not called, so the meter's state
is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import ec

from cosemcast.errors import ReplayError
from cosemcast.supervision.errors import (
    FutureInitMessage,
    StaleInitMessage,
    ValidityWindowError,
    WrongMeterError,
)
from cosemcast.supervision.initmsg import InitAction, InitMessage, unseal
from cosemcast.supervision.kdf import SYSTEM_TITLE_LENGTH, derive_ki, derive_ks

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "AcceptedInit",
    "AuthorizationStore",
    "MemoryAuthorizationStore",
    "MeterAuthorization",
    "check_window",
    "open_init_message",
]

DEFAULT_TOLERANCE_S = 300


def check_window(
    not_before: int,
    not_after: int,
    now: int,
    tolerance_s: int,
    *,
    stale: type[ValidityWindowError],
    future: type[ValidityWindowError],
    what: str,
) -> None:
    """Accept ``not_before - tolerance <= now <= not_after + tolerance`` (specs §6.2)."""
    if tolerance_s < 0:
        raise ValueError(f"the clock tolerance must not be negative, got {tolerance_s}")
    if now < not_before - tolerance_s:
        raise future(
            f"{what} is not valid yet",
            not_before=not_before,
            not_after=not_after,
            now=now,
            tolerance_s=tolerance_s,
        )
    if now > not_after + tolerance_s:
        raise stale(
            f"{what} has expired",
            not_before=not_before,
            not_after=not_after,
            now=now,
            tolerance_s=tolerance_s,
        )


def open_init_message(
    raw: bytes,
    *,
    ki: bytes,
    centre_public_key: ec.EllipticCurvePublicKey,
    meter_id: bytes,
    now: int,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    last_sequence: int,
) -> InitMessage:
    """Every check of specs §6.1, in order; return the body only if all pass.

    ``now`` is the meter's time in POSIX seconds (UTC); ``last_sequence`` the last accepted
    sequence number (0 before the first). Raises :class:`~cosemcast.errors.DecodeError`,
    :class:`~cosemcast.errors.AuthenticationFailed`, :class:`WrongMeterError`,
    :class:`FutureInitMessage`, :class:`StaleInitMessage` or
    :class:`~cosemcast.errors.ReplayError`.
    """
    if len(meter_id) != SYSTEM_TITLE_LENGTH:
        raise ValueError(f"the meter ID is an 8-byte system title, got {len(meter_id)} bytes")
    sealed = unseal(raw, ki=ki, centre_public_key=centre_public_key)
    message = sealed.message
    if sealed.recipient_id != meter_id:
        raise WrongMeterError(
            "the message is addressed to another meter",
            expected=meter_id,
            received=sealed.recipient_id,
        )
    if message.meter_id != meter_id:
        raise WrongMeterError(
            "the signed body names another meter", expected=meter_id, received=message.meter_id
        )
    check_window(
        message.not_before,
        message.not_after,
        now,
        tolerance_s,
        stale=StaleInitMessage,
        future=FutureInitMessage,
        what="the initialization message",
    )
    if message.sequence <= last_sequence:
        raise ReplayError(
            f"initialization sequence {message.sequence} is not above {last_sequence}",
            received=message.sequence,
            expected_min=last_sequence + 1,
        )
    return message


@dataclass(frozen=True, slots=True)
class AcceptedInit:
    """A verified initialization message, ready to persist (specs §6.4).

    ``ks`` is ``None`` for :attr:`InitAction.REVOKE`. A store may keep ``i0`` instead of ``ks``
    and re-derive ([0056]).
    """

    action: InitAction
    head_end_id: bytes
    sequence: int
    not_after: int
    i0: bytes = field(repr=False)
    ks: bytes | None = field(repr=False)


class AuthorizationStore(Protocol):
    """The meter's persistent authorization state (injected; the meter owns the storage)."""

    def last_sequence(self) -> int:
        """The sequence number of the last accepted message; 0 before the first."""
        ...

    def accept(self, accepted: AcceptedInit) -> None:
        """Persist the new sequence and apply the action, atomically (all or nothing)."""
        ...


class MemoryAuthorizationStore:
    """An in-memory :class:`AuthorizationStore`: the reference semantics of the actions."""

    __slots__ = ("_keys", "_last")

    def __init__(self, last_sequence: int = 0) -> None:
        self._last = last_sequence
        self._keys: dict[bytes, bytes] = {}

    def last_sequence(self) -> int:
        return self._last

    def accept(self, accepted: AcceptedInit) -> None:
        if accepted.sequence <= self._last:
            raise ReplayError(
                f"sequence {accepted.sequence} is not above {self._last}",
                received=accepted.sequence,
                expected_min=self._last + 1,
            )
        keys = dict(self._keys)
        if accepted.action is InitAction.REVOKE:
            keys.pop(accepted.head_end_id, None)
        else:
            if accepted.ks is None:
                raise ValueError("an assignment without Ks")
            if accepted.action is InitAction.ASSIGN_EXCLUSIVE:
                keys.clear()
            keys[accepted.head_end_id] = accepted.ks
        self._keys = keys
        self._last = accepted.sequence

    def head_end_key(self, head_end_id: bytes) -> bytes | None:
        """The Ks shared with ``head_end_id``, if it is assigned."""
        return self._keys.get(head_end_id)

    def head_ends(self) -> frozenset[bytes]:
        """System titles of the assigned head-ends."""
        return frozenset(self._keys)

    def __repr__(self) -> str:
        return f"MemoryAuthorizationStore(last_sequence={self._last}, head_ends={len(self._keys)})"


class MeterAuthorization:
    """The meter side: verifies initialization messages and derives ``Ks`` (specs §6).

    ``ki`` defaults to ``derive_ki(kt, meter_id=...)`` (specs §4.2). Keys never show in the repr.
    """

    __slots__ = ("_centre_public_key", "_ki", "_kt", "meter_id", "store", "tolerance_s")

    def __init__(
        self,
        *,
        meter_id: bytes,
        kt: bytes,
        centre_public_key: ec.EllipticCurvePublicKey,
        store: AuthorizationStore,
        ki: bytes | None = None,
        tolerance_s: int = DEFAULT_TOLERANCE_S,
    ) -> None:
        if len(meter_id) != SYSTEM_TITLE_LENGTH:
            raise ValueError(f"the meter ID is an 8-byte system title, got {len(meter_id)}")
        if tolerance_s < 0:
            raise ValueError(f"the clock tolerance must not be negative, got {tolerance_s}")
        self.meter_id = bytes(meter_id)
        self._kt = bytes(kt)
        self._ki = derive_ki(self._kt, meter_id=self.meter_id) if ki is None else bytes(ki)
        self._centre_public_key = centre_public_key
        self.store = store
        self.tolerance_s = tolerance_s

    def load(self, raw: bytes, now: int) -> AcceptedInit:
        """Verify ``raw`` at time ``now`` (POSIX seconds); on success derive Ks and persist.

        Raises as :func:`open_init_message` does; the store is untouched on every rejection.
        """
        message = open_init_message(
            raw,
            ki=self._ki,
            centre_public_key=self._centre_public_key,
            meter_id=self.meter_id,
            now=now,
            tolerance_s=self.tolerance_s,
            last_sequence=self.store.last_sequence(),
        )
        ks = (
            None
            if message.action is InitAction.REVOKE
            else derive_ks(
                self._kt, meter_id=self.meter_id, head_end_id=message.head_end_id, i0=message.i0
            )
        )
        accepted = AcceptedInit(
            message.action, message.head_end_id, message.sequence, message.not_after, message.i0, ks
        )
        self.store.accept(accepted)
        return accepted

    def __repr__(self) -> str:
        return (
            f"MeterAuthorization(meter_id={self.meter_id.hex().upper()}, "
            f"tolerance_s={self.tolerance_s})"
        )
