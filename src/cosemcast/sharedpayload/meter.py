"""The meter side: key generator (unit 16) and payload sealer (specs/shared-payload.md §3, §7).

Theory of operation. :class:`MeterKeyGenerator` draws ``Kp`` from an injected random source and
names it with a fresh kp_id, both halves of which come from the injected counter source (the
durable :class:`~cosemcast.security.counters.CounterStore` in production), so a kp_id never
repeats, not even across a crash. :class:`PayloadSealer` keeps the current ``Kp`` and:

* renews it by policy (:class:`RenewalPolicy`): every N payloads, every T seconds, when the
  set of assigned head-ends changes (a new assignment epoch), when its counters run out, and
  when the clock has gone back before its not-before;
* at each renewal seals one C2 per assigned head-end at once (the set is fixed per ``Kp``,
  since a change renews), drawing their ICs under ``Kp`` first, so every C1 IC is above them;
* seals C1s (:meth:`PayloadSealer.seal_c1`), also ahead of time into a bounded buffer
  (:meth:`PayloadSealer.seal_ahead`, [0038]); every IC comes from the counter source under the
  key id ``sp-kp/<meter ST>/<kp_id>``, so no IC is ever used twice under one ``Kp``;
* hands out the C2s due for (re)transmission until each is acknowledged
  (:meth:`PayloadSealer.control_messages`, [0048]) and checks acknowledgements
  (:meth:`PayloadSealer.accept_ack`).

Time (``now``, Unix seconds) and randomness are passed in; nothing here does IO. The state that
must survive a restart is :meth:`PayloadSealer.snapshot` (the meter persists it; a restored
sealer continues the same ``Kp`` with ICs above every one used before, because the counter
source is durable).
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import ec

from cosemcast.apdu.general import GeneralCiphering
from cosemcast.errors import DecodeError, KeyUnavailableError
from cosemcast.security import kdf
from cosemcast.security.counters import MAX_INVOCATION_COUNTER, CounterExhaustedError
from cosemcast.sharedpayload.errors import MisaddressedMessage
from cosemcast.sharedpayload.messages import (
    AckBody,
    AckKind,
    AckRequest,
    ControlBody,
    KpId,
    MessageKind,
    message_kind,
)
from cosemcast.sharedpayload.sealing import (
    KEY_LENGTH,
    HeadEndAssignment,
    PayloadKey,
    Rng,
    open_ack,
    seal_control,
    seal_payload,
)

__all__ = [
    "ControlEntry",
    "CounterSource",
    "MemoryCounterSource",
    "MeterKeyGenerator",
    "PayloadSealer",
    "RenewalPolicy",
    "SealedPayload",
    "SealerState",
    "counter_key_id",
]


class CounterSource(Protocol):
    """Hands out each value at most once per key id, increasing (``CounterStore`` does)."""

    def next(self, key_id: str) -> int: ...


class MemoryCounterSource:
    """An in-memory :class:`CounterSource` for tests and examples: lost on restart."""

    def __init__(self, first: int = 1) -> None:
        self._first = first
        self._next: dict[str, int] = {}

    def next(self, key_id: str) -> int:
        value = self._next.get(key_id, self._first)
        if value > MAX_INVOCATION_COUNTER:
            raise CounterExhaustedError(key_id)
        self._next[key_id] = value + 1
        return value

    def __repr__(self) -> str:
        return f"MemoryCounterSource(key_ids={len(self._next)})"


def counter_key_id(meter_system_title: bytes, kp_id: KpId) -> str:
    """The counter-store key id of the ICs under one ``Kp`` (specs §7.1)."""
    return f"sp-kp/{bytes(meter_system_title).hex()}/{kp_id.to_bytes().hex()}"


@dataclass(frozen=True, slots=True)
class RenewalPolicy:
    """When ``Kp`` is renewed and how long it stays valid (specs §3.3).

    ``max_payloads`` (N) and ``max_age_s`` (T) trigger a renewal; ``delivery_window_s`` is how
    long after its last use a C1 sealed under ``Kp`` may still arrive (buffered C1s, [0038]),
    so not-after = not-before + T + delivery window. C2s are sent again every
    ``retry_interval_s`` until acknowledged. ``ack_payloads`` asks head-ends to acknowledge
    C1s too. ``buffer_capacity`` bounds the C1s sealed ahead.
    """

    max_payloads: int | None = 1000
    max_age_s: int = 86_400
    delivery_window_s: int = 3_600
    retry_interval_s: float = 60.0
    ack_payloads: bool = False
    buffer_capacity: int = 96

    def __post_init__(self) -> None:
        if self.max_payloads is not None and self.max_payloads < 1:
            raise ValueError("max_payloads must be at least 1 (or None)")
        if self.max_age_s < 1 or self.delivery_window_s < 0:
            raise ValueError("max_age_s must be positive and delivery_window_s not negative")
        if self.retry_interval_s <= 0 or self.buffer_capacity < 1:
            raise ValueError("retry_interval_s and buffer_capacity must be positive")


@dataclass(frozen=True, slots=True)
class ControlEntry:
    """One entry of the payload-key-control object: a C2 and whether it was acknowledged."""

    head_end: bytes
    kp_id: KpId
    apdu: GeneralCiphering
    not_after: int
    ack_key: bytes = field(repr=False)
    acknowledged: bool = False
    last_sent: float | None = None

    @property
    def invocation_counter(self) -> int:
        return self.apdu.invocation_counter


@dataclass(frozen=True, slots=True)
class SealedPayload:
    """A C1 sealed ahead of transmission ([0038]) and the last moment it may be delivered."""

    kp_id: KpId
    apdu: GeneralCiphering
    not_after: int


@dataclass(frozen=True, slots=True)
class SealerState:
    """What a meter persists to continue after a restart (:meth:`PayloadSealer.snapshot`)."""

    epoch: int | None
    current: PayloadKey | None
    drawn_at: float
    payloads_sealed: int
    controls: tuple[ControlEntry, ...]
    buffer: tuple[SealedPayload, ...]
    assignment_digest: bytes = field(repr=False)


def _assignment_digest(head_ends: Iterable[HeadEndAssignment]) -> bytes:
    digest = hashlib.sha256(b"cosemcast/sp-assignment/v1\x00")
    for head_end in head_ends:
        digest.update(head_end.system_title)
        if head_end.shared_key is not None:
            digest.update(b"K" + head_end.shared_key)
        elif head_end.agreement_public_key is not None:
            digest.update(b"P" + kdf.public_key_to_xy(head_end.agreement_public_key))
    return digest.digest()


class MeterKeyGenerator:
    """Draws payload keys and their kp_ids (patent key generator 16; specs §3.1)."""

    def __init__(self, system_title: bytes, counters: CounterSource, rng: Rng) -> None:
        if len(system_title) != 8:
            raise ValueError(f"a system title is 8 bytes, got {len(system_title)}")
        self.system_title = bytes(system_title)
        self._counters = counters
        self._rng = rng
        st = self.system_title.hex()
        self._epoch_key = f"sp-epoch/{st}"
        self._sequence_key = f"sp-kpseq/{st}"

    def __repr__(self) -> str:
        return f"MeterKeyGenerator({self.system_title.hex().upper()})"

    def new_epoch(self) -> int:
        """A new assignment epoch: above every epoch this meter used before."""
        return self._counters.next(self._epoch_key)

    def draw(
        self, epoch: int, now: float, policy: RenewalPolicy, c2_count: int
    ) -> tuple[PayloadKey, list[int]]:
        """A new ``Kp`` and the ICs of its ``c2_count`` C2s; the C1s start above them."""
        kp_id = KpId(epoch, self._counters.next(self._sequence_key))
        key = self._rng(KEY_LENGTH)
        if len(key) != KEY_LENGTH:
            raise ValueError(f"the random source returned {len(key)} bytes, not {KEY_LENGTH}")
        counter_id = counter_key_id(self.system_title, kp_id)
        c2_ics = [self._counters.next(counter_id) for _ in range(c2_count)]
        first_ic = max(c2_ics) + 1 if c2_ics else 0
        if first_ic > MAX_INVOCATION_COUNTER:
            raise CounterExhaustedError(counter_id)
        not_before = math.floor(now)
        not_after = not_before + policy.max_age_s + policy.delivery_window_s
        return PayloadKey(kp_id, key, not_before, not_after, first_ic), c2_ics


class PayloadSealer:
    """Seals C1 once for every assigned head-end and keeps one C2 per head-end (module doc)."""

    def __init__(
        self,
        *,
        system_title: bytes,
        head_ends: Iterable[HeadEndAssignment],
        counters: CounterSource,
        rng: Rng,
        policy: RenewalPolicy | None = None,
        agreement_private_key: ec.EllipticCurvePrivateKey | None = None,
        state: SealerState | None = None,
    ) -> None:
        self._generator = MeterKeyGenerator(system_title, counters, rng)
        self.system_title = self._generator.system_title
        self._counters = counters
        self._rng = rng
        self.policy = policy or RenewalPolicy()
        self._agreement_key = agreement_private_key
        self._head_ends = self._check_head_ends(head_ends)
        self._digest = _assignment_digest(self._head_ends)
        self._epoch: int | None = None
        self._current: PayloadKey | None = None
        self._drawn_at = 0.0
        self._sealed = 0
        self._pending_change = False
        self._restored_digest: bytes | None = None
        self._controls: dict[tuple[bytes, KpId], ControlEntry] = {}
        self._buffer: deque[SealedPayload] = deque()
        self._payload_acks: dict[tuple[bytes, KpId], int] = {}
        self.dropped_expired = 0
        if state is not None:
            self._restore(state)

    def __repr__(self) -> str:
        current = self._current.kp_id if self._current else None
        return (
            f"PayloadSealer({self.system_title.hex().upper()}, kp_id={current}, "
            f"head_ends={len(self._head_ends)}, buffered={len(self._buffer)})"
        )

    @staticmethod
    def _check_head_ends(head_ends: Iterable[HeadEndAssignment]) -> tuple[HeadEndAssignment, ...]:
        ordered = tuple(sorted(head_ends, key=lambda h: h.system_title))
        titles = [h.system_title for h in ordered]
        if len(set(titles)) != len(titles):
            raise ValueError("a head-end is assigned twice")
        return ordered

    def _restore(self, state: SealerState) -> None:
        self._epoch = state.epoch
        self._current = state.current
        self._drawn_at = state.drawn_at
        self._sealed = state.payloads_sealed
        self._controls = {(c.head_end, c.kp_id): c for c in state.controls}
        self._buffer = deque(state.buffer)
        self._pending_change = state.assignment_digest != self._digest
        self._restored_digest = state.assignment_digest if self._pending_change else None

    def snapshot(self) -> SealerState:
        return SealerState(
            self._epoch,
            self._current,
            self._drawn_at,
            self._sealed,
            tuple(self._controls.values()),
            tuple(self._buffer),
            self._digest,
        )

    # --- the payload key ---------------------------------------------------------------------

    @property
    def current_key(self) -> PayloadKey | None:
        return self._current

    @property
    def head_ends(self) -> tuple[HeadEndAssignment, ...]:
        return self._head_ends

    def set_head_ends(self, head_ends: Iterable[HeadEndAssignment], now: float) -> bool:
        """Replace the assigned set; a change opens a new epoch and renews ``Kp`` at once."""
        ordered = self._check_head_ends(head_ends)
        digest = _assignment_digest(ordered)
        if digest == self._digest and not self._pending_change:
            return False
        if self._pending_change and digest == self._restored_digest:
            # After a restart the owner of the assignment gives back the set the restored
            # key was drawn for: the key stays (specs/shared-payload.md §3.3).
            self._head_ends, self._digest = ordered, digest
            self._pending_change = False
            self._restored_digest = None
            return False
        self._restored_digest = None
        self._head_ends, self._digest = ordered, digest
        self._pending_change = True
        self.renew(now)
        return True

    def renewal_due(self, now: float) -> str | None:
        """Why ``Kp`` must be renewed before the next C1, or None (specs §3.3)."""
        key = self._current
        if key is None:
            return "no payload key yet"
        if self._pending_change:
            return "the assigned head-ends changed"
        if now - self._drawn_at >= self.policy.max_age_s:
            return f"older than {self.policy.max_age_s} s"
        if now < key.not_before:
            return "the clock is before the key's not-before"
        limit = self.policy.max_payloads
        if limit is not None and self._sealed >= limit:
            return f"{limit} payloads sealed"
        return None

    def maybe_renew(self, now: float) -> PayloadKey | None:
        """Renew ``Kp`` if the policy says so; return the new key, or None."""
        return self.renew(now) if self.renewal_due(now) else None

    def renew(self, now: float) -> PayloadKey:
        """Draw a new ``Kp`` now and seal its C2 for every assigned head-end."""
        if self._epoch is None or self._pending_change:
            self._epoch = self._generator.new_epoch()
        key, c2_ics = self._generator.draw(self._epoch, now, self.policy, len(self._head_ends))
        flags = AckRequest.CONTROL | (
            AckRequest.PAYLOADS if self.policy.ack_payloads else AckRequest.NONE
        )
        body = ControlBody(
            key.kp_id, key.not_before, key.not_after, key.first_invocation_counter, flags
        )
        for head_end, ic in zip(self._head_ends, c2_ics, strict=True):
            sealed = seal_control(
                key,
                body,
                meter_system_title=self.system_title,
                head_end=head_end,
                invocation_counter=ic,
                rng=self._rng,
                meter_agreement_key=self._agreement_key,
            )
            self._controls[(head_end.system_title, key.kp_id)] = ControlEntry(
                head_end.system_title, key.kp_id, sealed.apdu, key.not_after, sealed.ack_key
            )
        self._current, self._drawn_at, self._sealed = key, now, 0
        self._pending_change = False
        self._restored_digest = None
        self._prune(now)
        return key

    def _prune(self, now: float) -> None:
        expired = [k for k, entry in self._controls.items() if entry.not_after < now]
        for k in expired:
            del self._controls[k]
            self._payload_acks.pop(k, None)

    # --- C1 ----------------------------------------------------------------------------------

    def seal_c1(self, notification: bytes, now: float) -> GeneralCiphering:
        """Seal one DATA-NOTIFICATION as C1 under the current ``Kp`` (renewed first if due)."""
        self.maybe_renew(now)
        key = self._current
        if key is None:
            raise KeyUnavailableError("no payload key")
        try:
            ic = self._counters.next(counter_key_id(self.system_title, key.kp_id))
        except CounterExhaustedError:
            key = self.renew(now)
            ic = self._counters.next(counter_key_id(self.system_title, key.kp_id))
        apdu = seal_payload(
            key,
            meter_system_title=self.system_title,
            invocation_counter=ic,
            notification=notification,
        )
        self._sealed += 1
        return apdu

    def seal_ahead(self, notification: bytes, now: float) -> list[SealedPayload]:
        """Seal a C1 now and buffer it for later transmission ([0038]); returns what the full
        buffer evicted (oldest first)."""
        apdu = self.seal_c1(notification, now)
        key = self._current
        if key is None:
            raise KeyUnavailableError("no payload key")
        self._buffer.append(SealedPayload(key.kp_id, apdu, key.not_after))
        evicted: list[SealedPayload] = []
        while len(self._buffer) > self.policy.buffer_capacity:
            evicted.append(self._buffer.popleft())
        return evicted

    @property
    def buffered(self) -> tuple[SealedPayload, ...]:
        return tuple(self._buffer)

    def take_buffered(self, now: float) -> list[GeneralCiphering]:
        """Empty the buffer, oldest first; C1s whose key window has passed are dropped
        (counted in :attr:`dropped_expired`): no head-end would accept them."""
        out: list[GeneralCiphering] = []
        while self._buffer:
            item = self._buffer.popleft()
            if item.not_after < now:
                self.dropped_expired += 1
            else:
                out.append(item.apdu)
        return out

    # --- C2 and acknowledgements -------------------------------------------------------------

    @property
    def controls(self) -> tuple[ControlEntry, ...]:
        """The payload-key-control entries, oldest kp_id first."""
        return tuple(sorted(self._controls.values(), key=lambda c: (c.kp_id, c.head_end)))

    def control_messages(self, now: float) -> list[tuple[bytes, GeneralCiphering]]:
        """The C2s due now, as (head-end system title, C2): each not yet acknowledged, whose
        ``Kp`` is still valid, never sent or last sent ``retry_interval_s`` ago ([0048])."""
        self._prune(now)
        due: list[tuple[bytes, GeneralCiphering]] = []
        for entry in self.controls:
            if entry.acknowledged:
                continue
            if entry.last_sent is not None and now - entry.last_sent < self.policy.retry_interval_s:
                continue
            self._controls[(entry.head_end, entry.kp_id)] = replace(entry, last_sent=now)
            due.append((entry.head_end, entry.apdu))
        return due

    def accept_ack(self, apdu: GeneralCiphering) -> AckBody:
        """Check an acknowledgement and record it (specs §6.3). A payload acknowledgement
        also proves the head-end holds ``Kp``, so it acknowledges the C2 too."""
        if message_kind(apdu) is not MessageKind.ACK:
            raise DecodeError("not an acknowledgement", expected="SC 10, no key-info")
        if apdu.recipient_system_title != self.system_title:
            raise MisaddressedMessage(
                "acknowledgement for another meter",
                expected=self.system_title,
                received=apdu.recipient_system_title,
            )
        kp_id = KpId.from_bytes(apdu.transaction_id)
        entry = self._controls.get((apdu.originator_system_title, kp_id))
        if entry is None:
            raise KeyUnavailableError(
                f"no C2 of kp_id {kp_id} for head-end {apdu.originator_system_title.hex().upper()}"
            )
        body = open_ack(apdu, entry.ack_key)
        if body.kind is AckKind.CONTROL and body.acknowledged_ic != entry.invocation_counter:
            raise DecodeError(
                f"the acknowledgement names IC {body.acknowledged_ic}, the C2 had "
                f"{entry.invocation_counter}"
            )
        if body.kind is AckKind.PAYLOAD:
            key = (entry.head_end, kp_id)
            self._payload_acks[key] = max(self._payload_acks.get(key, -1), body.acknowledged_ic)
        self._controls[(entry.head_end, kp_id)] = replace(entry, acknowledged=True)
        return body

    def acknowledged_payload_ic(self, head_end: bytes, kp_id: KpId) -> int | None:
        """The highest C1 IC ``head_end`` acknowledged under ``kp_id`` (transmission control)."""
        return self._payload_acks.get((bytes(head_end), kp_id))
