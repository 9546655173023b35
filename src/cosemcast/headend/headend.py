"""The head-end service core, sans-IO (specs/shared-payload.md §6, §9).

Theory of operation. :class:`HeadEnd` wraps a :class:`~cosemcast.sharedpayload.HeadEndOpener`
around a durable store (:class:`~.store.SqliteHeadEndStore`: keys, replay windows, parked C1s)
and a :class:`~.readings.ReadingSink`. :meth:`HeadEnd.handle_apdu` takes one received APDU and
its source, and returns the APDUs to send back as ``(destination, apdu)``; the destination is
always the source (acknowledgements go back the way the message came). Per message kind:

* C2 → accept (unwrap ``Kp``, verify, store), acknowledge, then release the C1s parked for that
  (meter, kp_id) and open them in arrival order (each still checked for replay and tag);
* C1 → open, write the reading, acknowledge if asked; a C1 whose ``Kp`` is unknown is parked in
  the store (bounded count and age; what leaves unopened is counted and logged);
* anything refused (tampered, replayed, forged, misaddressed, not assigned, malformed) is
  counted under ``rejected.<reason>`` and logged with identifiers only, never key material;
  :meth:`handle_apdu` never raises a :class:`~cosemcast.errors.DlmsError`.

Every counter is in :meth:`HeadEnd.stats`. Time comes from the injected ``clock`` unless ``now``
is given. A lock makes the object safe to drive from several listener threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric import ec

from cosemcast.apdu.general import GeneralCiphering
from cosemcast.errors import DlmsError
from cosemcast.headend.readings import ReadingSink, reading_from
from cosemcast.headend.store import ParkedC1, SqliteHeadEndStore
from cosemcast.sharedpayload.errors import MeterNotAssigned, PayloadKeyUnknown
from cosemcast.sharedpayload.headend import HeadEndOpener, MeterCredentials, as_general_ciphering
from cosemcast.sharedpayload.messages import KpId, MessageKind, message_kind

__all__ = ["HeadEnd"]

_log = logging.getLogger(__name__)

S = TypeVar("S")


def _reason(exc: DlmsError) -> str:
    """``AuthenticationFailed`` → ``authentication_failed`` (the stats key of a rejection)."""
    name = type(exc).__name__
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


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
        self._counts: Counter[str] = Counter()
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"HeadEnd({self.system_title.hex().upper()}, store={self.store!r})"

    def stats(self) -> dict[str, int]:
        """Counters: received, opened, parked, released, acks_sent, controls_accepted,
        controls_retransmitted, not_assigned, parked_evicted, parked_expired, rejected (total)
        and rejected.<reason>; plus the current ``parked_now`` and ``keys_now``."""
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
        """Process one received APDU; returns the acknowledgements to send, to ``source``."""
        when = self.clock() if now is None else now
        with self._lock:
            self._counts["received"] += 1
            try:
                decoded = as_general_ciphering(apdu)
                kind = message_kind(decoded)
            except DlmsError as exc:
                self._reject(exc, "message")
                return []
            if kind is MessageKind.CONTROL:
                return [(source, a) for a in self._control(decoded, when)]
            if kind is MessageKind.PAYLOAD:
                ack = self._payload(decoded, bytes(apdu), when, parked=False)
                return [] if ack is None else [(source, ack)]
            self._counts["rejected"] += 1
            self._counts["rejected.unexpected_ack"] += 1
            return []

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
            try:
                decoded = as_general_ciphering(item.apdu)
            except DlmsError as exc:
                self._reject(exc, "parked C1")
                continue
            ack = self._payload(decoded, item.apdu, now, parked=True)
            if ack is not None:
                out.append(ack)
        self._counts["acks_sent"] += len(out)
        return out

    def _payload(
        self, c1: GeneralCiphering, raw: bytes, now: float, *, parked: bool
    ) -> bytes | None:
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
            self.sink.write(reading)
        except DlmsError as exc:
            self._reject(exc, "reading")
            return None
        self._counts["opened"] += 1
        if opened.ack is None:
            return None
        if not parked:
            self._counts["acks_sent"] += 1
        return opened.ack.encode()

    def _park(self, meter: bytes, kp_id: KpId, raw: bytes, now: float) -> None:
        try:
            gone = self.store.park(meter, kp_id, raw, now)
        except DlmsError as exc:
            self._reject(exc, "parking")
            return
        self._counts["parked"] += 1
        self._report_gone(gone, "evicted")

    def tick(self, now: float | None = None) -> None:
        """Housekeeping: retire expired keys, drop C1s parked too long (both reported)."""
        when = self.clock() if now is None else now
        with self._lock:
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
