"""The head-end service core, sans-IO (specs/shared-payload.md §6, §9).

Theory of operation. :class:`HeadEnd` wraps a :class:`~cosemcast.sharedpayload.HeadEndOpener`
around a durable store (:class:`~.store.SqliteHeadEndStore`: keys, replay windows, parked C1s)
and a :class:`~.readings.ReadingSink`. :meth:`HeadEnd.handle_apdu` takes one received APDU and
its source, and returns the APDUs to send back as ``(destination, apdu)``; each goes back to
the source of the message it acknowledges. Per message kind:

* C2 → accept (unwrap ``Kp``, verify, store), acknowledge, then release the C1s parked for that
  (meter, kp_id) and open them in arrival order (each still checked for replay and tag);
* C1 → open, write the reading, acknowledge if asked; a C1 whose ``Kp`` is unknown is parked in
  the store (bounded count and age; what leaves unopened is counted and logged);
* anything refused (tampered, replayed, forged, misaddressed, not assigned, malformed) is
  counted under ``rejected.<reason>`` and logged with identifiers only, never key material;
  :meth:`handle_apdu` never raises a :class:`~cosemcast.errors.DlmsError`.

**Group commit (specs §9.2).** The store stages what a message changes; a message is
*accepted* when the commit that holds its changes returns. Until then its reading and its
acknowledgement wait in the batch; :meth:`HeadEnd.flush` commits the batch (replay windows,
keys, parked and released C1s and, when the store keeps readings, the readings rows: one
transaction), then writes the readings to the sink and returns every acknowledgement of the
batch, whatever its source. The batch is flushed when it holds ``GroupCommit.max_messages``
messages (1 by default: every message is durable before :meth:`handle_apdu` returns), by
:meth:`handle_apdu` or :meth:`poll` once it is ``max_delay_s`` old (``timer``), and by
:meth:`tick`. A crash loses the open batch as a whole: nothing of it was acknowledged or
written out, and its C1s may be accepted when the meter sends them again; no C1 accepted
before is accepted twice.

Every counter is in :meth:`HeadEnd.stats`. Time comes from the injected ``clock`` unless ``now``
is given. A lock makes the object safe to drive from several listener threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric import ec

from cosemcast.apdu.general import GeneralCiphering
from cosemcast.errors import DlmsError
from cosemcast.headend.readings import Reading, ReadingSink, reading_from
from cosemcast.headend.store import ParkedC1, SqliteHeadEndStore
from cosemcast.sharedpayload.errors import MeterNotAssigned, PayloadKeyUnknown
from cosemcast.sharedpayload.headend import HeadEndOpener, MeterCredentials, as_general_ciphering
from cosemcast.sharedpayload.messages import KpId, MessageKind, message_kind
from cosemcast.sharedpayload.sealing import split_payload

__all__ = ["SERVICE_GROUP_COMMIT", "GroupCommit", "HeadEnd"]

_log = logging.getLogger(__name__)

S = TypeVar("S")


def _reason(exc: DlmsError) -> str:
    """``AuthenticationFailed`` → ``authentication_failed`` (the stats key of a rejection)."""
    name = type(exc).__name__
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


@dataclass(frozen=True, slots=True)
class GroupCommit:
    """When :class:`HeadEnd` commits its batch: at ``max_messages`` messages, or once the
    oldest message of the batch is ``max_delay_s`` old (0: only by count)."""

    max_messages: int = 1
    max_delay_s: float = 0.0

    def __post_init__(self) -> None:
        if self.max_messages < 1 or self.max_delay_s < 0:
            raise ValueError("max_messages must be positive and max_delay_s not negative")


SERVICE_GROUP_COMMIT = GroupCommit(max_messages=1024, max_delay_s=0.02)
"""The batch of ``cosemcast headend listen`` (and tools/bench.py case I, SQLite): at most
20 ms of added latency for an acknowledgement or a reading, at most 1024 messages a commit."""


class HeadEnd:
    """One head-end: opens the shared-payload traffic of its meters (module doc)."""

    def __init__(
        self,
        system_title: bytes,
        store: SqliteHeadEndStore,
        sink: ReadingSink,
        credentials: MeterCredentials | None = None,
        agreement_private_key: ec.EllipticCurvePrivateKey | None = None,
        clock: Callable[[], float] = time.time,
        *,
        clock_skew_s: float = 300.0,
        allow_unauthenticated_agreement: bool = False,
        group_commit: GroupCommit | None = None,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.system_title = bytes(system_title)
        if store.system_title != self.system_title:
            raise ValueError("the store belongs to another head-end")
        self.store = store
        self.sink = sink
        self.clock = clock
        self.opener = HeadEndOpener(
            system_title=self.system_title,
            credentials=credentials if credentials is not None else store,
            store=store,
            agreement_private_key=agreement_private_key,
            clock_skew_s=clock_skew_s,
            allow_unauthenticated_agreement=allow_unauthenticated_agreement,
        )
        self.group_commit = group_commit if group_commit is not None else GroupCommit()
        self.timer = timer
        self._counts: Counter[str] = Counter()
        self._lock = threading.RLock()
        self._readings: list[Reading] = []
        self._acks: list[tuple[Any, bytes]] = []
        self._batched = 0
        self._batch_started = 0.0
        self._generation = store.generation

    def __repr__(self) -> str:
        return f"HeadEnd({self.system_title.hex().upper()}, store={self.store!r})"

    def stats(self) -> dict[str, int]:
        """Counters: received, opened (committed readings), parked, released, acks_sent,
        controls_accepted, controls_retransmitted, not_assigned, parked_evicted,
        parked_expired, commits, batches_lost, readings_lost, rejected (total) and
        rejected.<reason>; plus the current ``parked_now``, ``keys_now`` and ``batch_now``."""
        with self._lock:
            out = dict(self._counts)
            for name in (
                "received",
                "opened",
                "parked",
                "released",
                "acks_sent",
                "controls_accepted",
                "rejected",
            ):
                out.setdefault(name, 0)
            out["parked_now"] = self.store.parked_count()
            out["keys_now"] = self.store.key_count()
            out["batch_now"] = self._batched
            return out

    def _reject(self, exc: DlmsError, what: str) -> None:
        reason = _reason(exc)
        self._counts["rejected"] += 1
        self._counts[f"rejected.{reason}"] += 1
        _log.warning("%s %s refused: %s: %s", self.system_title.hex().upper(), what, reason, exc)

    def _report_gone(self, gone: list[ParkedC1], why: str) -> None:
        for item in gone:
            self._counts[f"parked_{why}"] += 1
            _log.warning(
                "%s parked C1 of meter %s kp_id %s %s unopened after %.0f s",
                self.system_title.hex().upper(),
                item.meter_system_title.hex().upper(),
                item.kp_id,
                why,
                self.clock() - item.parked_at,
            )

    def handle_apdu(
        self, source: S, apdu: bytes, now: float | None = None
    ) -> list[tuple[S, bytes]]:
        """Process one received APDU; returns the acknowledgements that became due, each
        with the source of the message it acknowledges (all sources of one type)."""
        when = self.clock() if now is None else now
        with self._lock:
            self._counts["received"] += 1
            if not self._batched:
                self._batch_started = self.timer()
                self._generation = self.store.generation
            self._batched += 1
            raw = bytes(apdu)
            decoded: GeneralCiphering | None = None
            kind: MessageKind | None = MessageKind.PAYLOAD
            if split_payload(raw) is None:  # not the exact C1 layout: decode in full
                try:
                    decoded = as_general_ciphering(raw)
                    kind = message_kind(decoded)
                except DlmsError as exc:
                    self._reject(exc, "message")
                    kind = None
            if kind is None:
                pass
            elif kind is MessageKind.PAYLOAD:
                ack = self._payload(raw, when, parked=False)
                if ack is not None:
                    self._acks.append((source, ack))
            elif kind is MessageKind.CONTROL and decoded is not None:
                self._acks.extend((source, a) for a in self._control(decoded, when))
            else:
                self._counts["rejected"] += 1
                self._counts["rejected.unexpected_ack"] += 1
            policy = self.group_commit
            if self._batched >= policy.max_messages or (
                policy.max_delay_s and self.timer() - self._batch_started >= policy.max_delay_s
            ):
                return self._flush()
            return []

    def poll(self) -> list[tuple[Any, bytes]]:
        """Flush the batch if its oldest message is ``max_delay_s`` old; else nothing."""
        with self._lock:
            if self._batched and self.timer() - self._batch_started >= (
                self.group_commit.max_delay_s
            ):
                return self._flush()
            return []

    def flush(self) -> list[tuple[Any, bytes]]:
        """Commit the batch, write its readings, return its acknowledgements (module doc)."""
        with self._lock:
            return self._flush()

    def _flush(self) -> list[tuple[Any, bytes]]:
        readings, acks, batched = self._readings, self._acks, self._batched
        self._readings, self._acks, self._batched = [], [], 0
        store = self.store
        if store.generation != self._generation:
            store.rollback()  # what was staged after the store's own rollback goes too
            self._drop(len(readings), batched, "the store rolled it back")
            return []
        try:
            store.commit(readings if store.keep_readings else ())
        except DlmsError as exc:
            self._drop(len(readings), batched, f"the commit failed: {exc}")
            return []
        sink = self.sink
        for reading in readings:
            try:
                sink.write(reading)
            except DlmsError as exc:
                self._reject(exc, "reading output")
        self._counts["opened"] += len(readings)
        self._counts["acks_sent"] += len(acks)
        if batched:
            self._counts["commits"] += 1
        return acks

    def _drop(self, readings: int, messages: int, why: str) -> None:
        self._counts["batches_lost"] += 1
        self._counts["readings_lost"] += readings
        _log.error(
            "%s batch of %d messages (%d readings) dropped unacknowledged: %s",
            self.system_title.hex().upper(),
            messages,
            readings,
            why,
        )

    def _control(self, c2: GeneralCiphering, now: float) -> list[bytes]:
        try:
            accepted = self.opener.accept_c2(c2, now)
        except DlmsError as exc:
            self._reject(exc, "C2")
            return []
        out: list[bytes] = []
        if accepted.retransmission:
            self._counts["controls_retransmitted"] += 1
        else:
            self._counts["controls_accepted"] += 1
            _log.info(
                "%s accepted kp_id %s of meter %s",
                self.system_title.hex().upper(),
                accepted.kp_id,
                accepted.meter_system_title.hex().upper(),
            )
        if accepted.ack is not None:
            out.append(accepted.ack.encode())
        try:
            parked = self.store.release(accepted.meter_system_title, accepted.kp_id)
        except DlmsError as exc:
            self._reject(exc, "parking release")
            parked = []
        for item in parked:
            self._counts["released"] += 1
            ack = self._payload(item.apdu, now, parked=True)
            if ack is not None:
                out.append(ack)
        return out

    def _payload(self, raw: bytes, now: float, *, parked: bool) -> bytes | None:
        try:
            opened = self.opener.open_c1(raw, now)  # the bytes take the fast path
        except PayloadKeyUnknown as exc:
            if parked:
                self._reject(exc, "released C1")
                return None
            self._park(exc.meter_system_title, KpId.from_bytes(exc.kp_id), raw, now)
            return None
        except MeterNotAssigned:
            self._counts["not_assigned"] += 1
            return None
        except DlmsError as exc:
            self._reject(exc, "C1")
            return None
        try:
            reading = reading_from(
                self.system_title,
                opened.meter_system_title,
                opened.kp_id,
                opened.invocation_counter,
                opened.notification,
                now,
            )
        except DlmsError as exc:
            self._reject(exc, "reading")
            return None
        self._readings.append(reading)
        return None if opened.ack is None else opened.ack.encode()

    def _park(self, meter: bytes, kp_id: KpId, raw: bytes, now: float) -> None:
        try:
            gone = self.store.park(meter, kp_id, raw, now)
        except DlmsError as exc:
            self._reject(exc, "parking")
            return
        self._counts["parked"] += 1
        self._report_gone(gone, "evicted")

    def tick(self, now: float | None = None) -> list[tuple[Any, bytes]]:
        """Housekeeping: retire expired keys, drop C1s parked too long (both reported), then
        flush the batch; returns its acknowledgements."""
        when = self.clock() if now is None else now
        with self._lock:
            if not self._batched:
                self._generation = self.store.generation
            try:
                for meter, kp_id in self.opener.expire(when):
                    self._counts["keys_expired"] += 1
                    _log.info(
                        "%s retired kp_id %s of meter %s (expired)",
                        self.system_title.hex().upper(),
                        kp_id,
                        meter.hex().upper(),
                    )
                self._report_gone(self.store.expire_parked(when), "expired")
            except DlmsError as exc:
                self._reject(exc, "housekeeping")
            return self._flush()
