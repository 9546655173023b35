"""The head-end side: accept C2s, open C1s, acknowledge (specs/shared-payload.md §9, §10).

Theory of operation. :class:`HeadEndOpener` holds no key state of its own: payload keys live in
a :class:`PayloadKeyStore` keyed by (meter system title, kp_id), with an in-memory
implementation here (:class:`MemoryPayloadKeyStore`); the SQLite store of the head-end service
implements the same protocol. The keys it shares with meters (``Ks``) and the meters' static
agreement keys come from a :class:`MeterCredentials` lookup. Time is passed in.

* :meth:`HeadEndOpener.accept_c2` refuses a C2 for another recipient before any cryptography,
  refuses retired kp_ids, treats a byte-identical C2 as a retransmission (acknowledged again,
  nothing changes) and a different one for a known kp_id as a conflict, recovers ``Kp``
  (unwrap with ``Ks``, or ECDH with our private key), verifies the tag, checks the validity
  window, stores the key and returns the acknowledgement to send.
* :meth:`HeadEndOpener.open_c1` checks the C1 header, finds ``Kp`` (or raises
  :class:`~.errors.PayloadKeyUnknown` so that the caller parks the C1,
  :class:`~.parking.ParkingLot`), checks the window and the counter (not below the first IC the
  C2 announced, never accepted before, within the replay window below the highest accepted:
  :class:`ReplayWindow`, because multicast UDP and parking reorder C1s), verifies the tag, and
  only then records the counter, so forgeries cannot move it. The ingest path keeps, per
  (meter, kp_id), the ``AESGCM`` context of ``Kp`` and reads C1 bytes in their exact layout
  without the generic decoder (:func:`~.sealing.split_payload`); the store is still asked on
  every C1, so a retired key is refused at once (tools/bench.py case I). A store that keeps
  its keys as :class:`StoredKey` entries in memory (:class:`CachedPayloadKeyStore`: the
  memory store, and the SQLite store of the head-end service, which writes them behind in
  group commits, specs §9.2) is asked through :meth:`~CachedPayloadKeyStore.entry` and
  :meth:`~CachedPayloadKeyStore.accept_in` instead: no record is rebuilt per C1.
* :meth:`HeadEndOpener.expire` retires keys whose window has passed; a retired kp_id, and every
  kp_id at or below it, is refused from then on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol, runtime_checkable

from cryptography.hazmat.primitives.asymmetric import ec

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.general import GeneralCiphering
from cosemcast.errors import DecodeError, ReplayError
from cosemcast.security.gcm import SymmetricKeys
from cosemcast.sharedpayload.errors import (
    ControlConflict,
    KeyNotYetValid,
    MeterNotAssigned,
    MisaddressedMessage,
    PayloadKeyUnknown,
    StaleKeyId,
)
from cosemcast.sharedpayload.messages import (
    KP_ID_LENGTH,
    SYSTEM_TITLE_LENGTH,
    AckBody,
    AckKind,
    AckRequest,
    KpId,
    MessageKind,
    message_kind,
)
from cosemcast.sharedpayload.replay import ReplayWindow
from cosemcast.sharedpayload.sealing import (
    check_payload_shape,
    open_control,
    open_payload_parts,
    seal_ack,
    split_payload,
)

__all__ = [
    "CachedPayloadKeyStore",
    "ControlAccepted",
    "HeadEndOpener",
    "MemoryPayloadKeyStore",
    "MeterCredentials",
    "OpenedPayload",
    "PayloadKeyStore",
    "ReceivedPayloadKey",
    "ReplayWindow",
    "StaticMeterCredentials",
    "StoredKey",
    "as_general_ciphering",
]

_KEY_CACHE_SIZE = 65_536
DEFAULT_REPLAY_WINDOW = 64


class MeterCredentials(Protocol):
    """What a head-end knows about each meter assigned to it."""

    def shared_key(self, meter_system_title: bytes) -> bytes | None:
        """The ``Ks`` shared with this meter, or None."""
        ...

    def agreement_public_key(self, meter_system_title: bytes) -> ec.EllipticCurvePublicKey | None:
        """The meter's static P-256 agreement key (authenticates agreed-key C2s), or None."""
        ...


class StaticMeterCredentials:
    """A :class:`MeterCredentials` from two mappings; its repr shows counts, never keys."""

    def __init__(
        self,
        shared_keys: Mapping[bytes, bytes] | None = None,
        agreement_public_keys: Mapping[bytes, ec.EllipticCurvePublicKey] | None = None,
    ) -> None:
        self._shared = {bytes(k): bytes(v) for k, v in (shared_keys or {}).items()}
        self._public = dict(agreement_public_keys or {})

    def shared_key(self, meter_system_title: bytes) -> bytes | None:
        return self._shared.get(bytes(meter_system_title))

    def agreement_public_key(self, meter_system_title: bytes) -> ec.EllipticCurvePublicKey | None:
        return self._public.get(bytes(meter_system_title))

    def __repr__(self) -> str:
        return f"StaticMeterCredentials(shared={len(self._shared)}, public={len(self._public)})"


@dataclass(frozen=True, slots=True)
class ReceivedPayloadKey:
    """A payload key accepted from a C2, and the C1 counters accepted under it."""

    meter_system_title: bytes
    kp_id: KpId
    payload_key: bytes = field(repr=False)
    not_before: int
    not_after: int
    first_invocation_counter: int
    ack_request: AckRequest
    ack_key: bytes = field(repr=False)
    control_digest: bytes
    control_invocation_counter: int
    replay: ReplayWindow | None = None


class PayloadKeyStore(Protocol):
    """Head-end key state per (meter system title, kp_id) (specs §9.2)."""

    def get(self, meter: bytes, kp_id: KpId) -> ReceivedPayloadKey | None: ...

    def add(self, key: ReceivedPayloadKey) -> bool:
        """Store a new key; False (and nothing stored) if (meter, kp_id) is already there."""
        ...

    def accept_counter(
        self, meter: bytes, kp_id: KpId, invocation_counter: int, window_size: int
    ) -> bool:
        """Atomically record ``invocation_counter`` in the key's :class:`ReplayWindow` if the
        window accepts it; else False (nothing changes)."""
        ...

    def retire(self, meter: bytes, kp_id: KpId) -> None:
        """Forget the key and raise the meter's retirement floor to at least ``kp_id``."""
        ...

    def retired_floor(self, meter: bytes) -> KpId | None: ...

    def expired(self, before: float) -> list[tuple[bytes, KpId]]:
        """The keys whose not-after is before ``before``."""
        ...


class StoredKey:
    """One key entry of a :class:`CachedPayloadKeyStore`: the record as added, its replay
    window, and whether the entry is still current. :class:`HeadEndOpener` keeps the entry of
    each active (meter, kp_id) between C1s; ``live`` turns False when the key is retired or
    the store drops the entry from memory (the opener then asks the store again). ``row``
    is the store's own handle on the entry's persisted window (the SQLite row id), if any."""

    __slots__ = ("live", "record", "replay", "row")

    def __init__(self, record: ReceivedPayloadKey, row: int | None = None) -> None:
        self.record = record
        self.replay = record.replay
        self.live = True
        self.row = row

    def __repr__(self) -> str:
        return f"StoredKey({self.record.meter_system_title.hex().upper()}, {self.record.kp_id})"


@runtime_checkable
class CachedPayloadKeyStore(PayloadKeyStore, Protocol):
    """A :class:`PayloadKeyStore` whose keys are :class:`StoredKey` entries in memory."""

    def entry(self, meter: bytes, kp_id: KpId) -> StoredKey | None:
        """The current entry of (meter, kp_id), or None if no such key is active."""
        ...

    def accept_in(self, entry: StoredKey, invocation_counter: int, window_size: int) -> bool:
        """:meth:`PayloadKeyStore.accept_counter` on an entry from :meth:`entry`; False once
        the entry is no longer live."""
        ...


class MemoryPayloadKeyStore:
    """An in-memory :class:`PayloadKeyStore` (tests, examples, small deployments)."""

    def __init__(self) -> None:
        self._keys: dict[tuple[bytes, KpId], StoredKey] = {}
        self._floors: dict[bytes, KpId] = {}

    def __repr__(self) -> str:
        return f"MemoryPayloadKeyStore(keys={len(self._keys)}, meters_retired={len(self._floors)})"

    def get(self, meter: bytes, kp_id: KpId) -> ReceivedPayloadKey | None:
        entry = self._keys.get((bytes(meter), kp_id))
        if entry is None:
            return None
        key, replay = entry.record, entry.replay
        if replay == key.replay:
            return key
        return ReceivedPayloadKey(
            key.meter_system_title,
            key.kp_id,
            key.payload_key,
            key.not_before,
            key.not_after,
            key.first_invocation_counter,
            key.ack_request,
            key.ack_key,
            key.control_digest,
            key.control_invocation_counter,
            replay,
        )

    def entry(self, meter: bytes, kp_id: KpId) -> StoredKey | None:
        """The stored entry of (meter, kp_id) (the opener's C1 path: no merged record)."""
        return self._keys.get((meter, kp_id))

    @staticmethod
    def accept_in(entry: StoredKey, invocation_counter: int, window_size: int) -> bool:
        """:meth:`accept_counter` on an entry from :meth:`entry`; False once it is retired."""
        if not entry.live:
            return False
        replay = entry.replay
        if replay is None:
            entry.replay = ReplayWindow(invocation_counter)
            return True
        if replay.refusal(invocation_counter, window_size) is not None:
            return False
        entry.replay = replay.accept(invocation_counter, window_size)
        return True

    def add(self, key: ReceivedPayloadKey) -> bool:
        slot = (key.meter_system_title, key.kp_id)
        if slot in self._keys:
            return False
        self._keys[slot] = StoredKey(key)
        return True

    def accept_counter(
        self, meter: bytes, kp_id: KpId, invocation_counter: int, window_size: int
    ) -> bool:
        entry = self._keys.get((bytes(meter), kp_id))
        return entry is not None and self.accept_in(entry, invocation_counter, window_size)

    def retire(self, meter: bytes, kp_id: KpId) -> None:
        slot = (bytes(meter), kp_id)
        entry = self._keys.pop(slot, None)
        if entry is not None:
            entry.live = False
        floor = self._floors.get(slot[0])
        if floor is None or kp_id > floor:
            self._floors[slot[0]] = kp_id

    def retired_floor(self, meter: bytes) -> KpId | None:
        return self._floors.get(bytes(meter))

    def expired(self, before: float) -> list[tuple[bytes, KpId]]:
        return [slot for slot, entry in self._keys.items() if entry.record.not_after < before]


@dataclass(frozen=True, slots=True)
class ControlAccepted:
    """A C2 accepted (or recognised as a retransmission) and the acknowledgement to send back."""

    meter_system_title: bytes
    kp_id: KpId
    not_before: int
    not_after: int
    retransmission: bool
    ack: GeneralCiphering | None


@dataclass(frozen=True, slots=True)
class OpenedPayload:
    """A verified C1: the DATA-NOTIFICATION it carried and the acknowledgement to send, if any."""

    meter_system_title: bytes
    kp_id: KpId
    invocation_counter: int
    notification: bytes
    ack: GeneralCiphering | None


_HEADER_KP_ID: Final = slice(1, 1 + KP_ID_LENGTH)
_HEADER_METER: Final = slice(2 + KP_ID_LENGTH, 2 + KP_ID_LENGTH + SYSTEM_TITLE_LENGTH)
_EMPTY_HEADER_TAIL: Final = b"\x00\x00\x00"


def _payload_header(meter: bytes, kp_id: KpId) -> bytes:
    """The header fields of a C1 as sealed, ``08 kp_id 08 meter 00 00 00`` (specs §4.1): the
    name of its ingest slot."""
    return b"\x08" + kp_id.to_bytes() + b"\x08" + meter + _EMPTY_HEADER_TAIL


class _PayloadSlot:
    """What the C1 path keeps per (meter, kp_id) between messages: the identifiers, the
    ``AESGCM`` context of ``Kp`` and the acknowledgement flag, built from one stored record.

    The stored record stays the authority: every C1 looks it up again (a retired key is gone
    at once) and a record with another ``Kp`` or flags rebuilds the slot.
    """

    __slots__ = ("ack_payloads", "entry", "keys", "kp_id", "meter", "record")

    def __init__(self, meter: bytes, kp_id: KpId, key: ReceivedPayloadKey) -> None:
        self.meter = meter
        self.kp_id = kp_id
        self.record = key
        self.entry: StoredKey | None = None
        self.keys = SymmetricKeys(key.payload_key)
        self.ack_payloads = bool(key.ack_request & AckRequest.PAYLOADS)

    def adopt(self, key: ReceivedPayloadKey) -> bool:
        """Take ``key`` as the current record if it has the same ``Kp`` and flags."""
        if key.payload_key != self.record.payload_key or key.ack_request != self.record.ack_request:
            return False
        self.record = key
        return True

    def __repr__(self) -> str:
        return f"_PayloadSlot({self.meter.hex().upper()}, {self.kp_id})"


def as_general_ciphering(apdu: GeneralCiphering | bytes) -> GeneralCiphering:
    """``apdu`` itself, or the general-ciphering APDU that the bytes encode (else DecodeError)."""
    if isinstance(apdu, GeneralCiphering):
        return apdu
    decoded = decode_apdu(apdu)
    if not isinstance(decoded, GeneralCiphering):
        raise DecodeError(
            f"expected general-ciphering, got {type(decoded).__name__}", offset=0, expected="DD"
        )
    return decoded


class HeadEndOpener:
    """Opens the shared-payload traffic of the meters assigned to one head-end (module doc)."""

    def __init__(
        self,
        *,
        system_title: bytes,
        credentials: MeterCredentials,
        store: PayloadKeyStore,
        agreement_private_key: ec.EllipticCurvePrivateKey | None = None,
        clock_skew_s: float = 300.0,
        allow_unauthenticated_agreement: bool = False,
        replay_window: int = DEFAULT_REPLAY_WINDOW,
    ) -> None:
        if len(system_title) != SYSTEM_TITLE_LENGTH:
            raise ValueError(f"a system title is 8 bytes, got {len(system_title)}")
        if clock_skew_s < 0:
            raise ValueError("clock_skew_s must not be negative")
        if not 1 <= replay_window <= 1024:
            raise ValueError("replay_window must be 1 to 1024 counters")
        self.replay_window = replay_window
        self.system_title = bytes(system_title)
        self._credentials = credentials
        self._store = store
        self._agreement_key = agreement_private_key
        self.clock_skew_s = clock_skew_s
        self._allow_unauthenticated = allow_unauthenticated_agreement
        self._slots: dict[bytes, _PayloadSlot] = {}
        self._memory = store if isinstance(store, CachedPayloadKeyStore) else None

    def __repr__(self) -> str:
        return f"HeadEndOpener({self.system_title.hex().upper()}, store={self._store!r})"

    def _check_floor(self, meter: bytes, kp_id: KpId) -> None:
        floor = self._store.retired_floor(meter)
        if floor is not None and kp_id <= floor:
            raise StaleKeyId("retired", meter_system_title=meter, kp_id=kp_id.to_bytes())

    def _check_assigned(self, meter: bytes) -> None:
        if self._allow_unauthenticated:
            return
        credentials = self._credentials
        if (
            credentials.shared_key(meter) is None
            and credentials.agreement_public_key(meter) is None
        ):
            raise MeterNotAssigned(meter)

    def _check_window(self, key: ReceivedPayloadKey, now: float) -> None:
        if now > key.not_after + self.clock_skew_s:
            self.retire(key.meter_system_title, key.kp_id)
            raise StaleKeyId(
                "expired", meter_system_title=key.meter_system_title, kp_id=key.kp_id.to_bytes()
            )
        if now < key.not_before - self.clock_skew_s:
            raise KeyNotYetValid(
                f"payload key {key.kp_id}",
                not_before=key.not_before,
                now=now,
                tolerance_s=self.clock_skew_s,
            )

    def _ack(self, key: ReceivedPayloadKey, ic: int, kind: AckKind) -> GeneralCiphering:
        return seal_ack(
            AckBody(key.kp_id, ic, kind),
            ack_key=key.ack_key,
            head_end_system_title=self.system_title,
            meter_system_title=key.meter_system_title,
        )

    # --- C2 ----------------------------------------------------------------------------------

    def accept_c2(self, apdu: GeneralCiphering | bytes, now: float) -> ControlAccepted:
        """Accept a control message addressed to us (specs §9.1, §10)."""
        c2 = as_general_ciphering(apdu)
        if message_kind(c2) is not MessageKind.CONTROL:
            raise DecodeError("not a control message (C2)", expected="wrapped-key or agreed-key")
        if c2.recipient_system_title != self.system_title:
            raise MisaddressedMessage(
                "C2 for another head-end",
                expected=self.system_title,
                received=c2.recipient_system_title,
            )
        meter = bytes(c2.originator_system_title)
        if len(meter) != SYSTEM_TITLE_LENGTH:
            raise DecodeError("a C2 names its meter in 8 bytes", expected="08 <meter ST>")
        kp_id = KpId.from_bytes(c2.transaction_id)
        digest = hashlib.sha256(c2.encode()).digest()
        known = self._store.get(meter, kp_id)
        if known is not None:
            self._check_window(known, now)
            if known.control_digest != digest:
                raise ControlConflict(
                    f"a different C2 for kp_id {kp_id} of meter {meter.hex().upper()} was "
                    "accepted before"
                )
            return self._accepted(known, retransmission=True)
        self._check_floor(meter, kp_id)
        self._check_assigned(meter)
        opened = open_control(
            c2,
            shared_key=self._credentials.shared_key(meter),
            agreement_private_key=self._agreement_key,
            meter_agreement_public_key=self._credentials.agreement_public_key(meter),
            allow_unauthenticated=self._allow_unauthenticated,
        )
        body = opened.body
        key = ReceivedPayloadKey(
            meter,
            kp_id,
            opened.payload_key,
            body.not_before,
            body.not_after,
            body.first_invocation_counter,
            body.ack_request,
            opened.ack_key,
            digest,
            c2.invocation_counter,
        )
        self._check_window(key, now)
        if not self._store.add(key):
            raise ControlConflict(f"kp_id {kp_id} of meter {meter.hex().upper()} is already stored")
        return self._accepted(key, retransmission=False)

    def _accepted(self, key: ReceivedPayloadKey, *, retransmission: bool) -> ControlAccepted:
        ack = None
        if key.ack_request & AckRequest.CONTROL:
            ack = self._ack(key, key.control_invocation_counter, AckKind.CONTROL)
        return ControlAccepted(
            key.meter_system_title, key.kp_id, key.not_before, key.not_after, retransmission, ack
        )

    # --- C1 ----------------------------------------------------------------------------------

    def open_c1(self, apdu: GeneralCiphering | bytes, now: float) -> OpenedPayload:
        """Verify and decrypt a shared payload (specs §9.1, §10).

        Bytes in the exact C1 layout skip the generic APDU decoder (:func:`split_payload`);
        everything else, and every :class:`GeneralCiphering`, is decoded and shape-checked in
        full. Both then go through the same checks in the same order.
        """
        if type(apdu) is bytes:
            split = split_payload(apdu)
            if split is not None:
                header, ic, text = split
                return self._open(header, header, ic, text, now, None)
        c1 = as_general_ciphering(apdu)
        if message_kind(c1) is not MessageKind.PAYLOAD:
            raise DecodeError("not a shared payload (C1)", expected="no recipient, no key-info")
        kp_id = check_payload_shape(c1)
        canonical = _payload_header(bytes(c1.originator_system_title), kp_id)
        header = c1.header_fields() if c1.date_time or c1.other_information else canonical
        return self._open(canonical, header, c1.invocation_counter, c1.ciphered_text, now, kp_id)

    def _open(
        self,
        canonical: bytes,
        header: bytes,
        ic: int,
        text: bytes,
        now: float,
        kp_id: KpId | None,
    ) -> OpenedPayload:
        slot = self._slots.get(canonical)
        if slot is not None:
            meter, kp_id = slot.meter, slot.kp_id
        else:
            meter = canonical[_HEADER_METER]
            if kp_id is None:
                kp_id = KpId.from_bytes(canonical[_HEADER_KP_ID])
        memory = self._memory
        entry: StoredKey | None = None
        replay: ReplayWindow | None = None
        if memory is not None:
            entry = slot.entry if slot is not None else None
            if entry is None or not entry.live:
                entry = memory.entry(meter, kp_id)
            key = entry.record if entry is not None else None
        else:
            key = self._store.get(meter, kp_id)
        if key is None:
            if slot is not None:
                del self._slots[canonical]
            self._check_floor(meter, kp_id)
            self._check_assigned(meter)
            raise PayloadKeyUnknown(meter, kp_id.to_bytes())
        replay = entry.replay if entry is not None else key.replay
        if slot is None or (slot.record is not key and not slot.adopt(key)):
            slot = self._new_slot(canonical, key)
        slot.entry = entry
        skew = self.clock_skew_s
        if now > key.not_after + skew or now < key.not_before - skew:
            self._check_window(key, now)
        if ic < key.first_invocation_counter:
            raise ReplayError(
                f"C1 invocation counter {ic} is below the first one announced for kp_id {kp_id}",
                received=ic,
                expected_min=key.first_invocation_counter,
            )
        if replay is not None and ic <= replay.highest:
            refusal = replay.refusal(ic, self.replay_window)
            if refusal is not None:
                raise refusal
        notification = open_payload_parts(slot.keys, meter, ic, text, header)
        if memory is not None and entry is not None:
            accepted = memory.accept_in(entry, ic, self.replay_window)
        else:
            accepted = self._store.accept_counter(meter, kp_id, ic, self.replay_window)
        if not accepted:
            raise ReplayError(
                f"C1 invocation counter {ic} of kp_id {kp_id} was accepted meanwhile",
                received=ic,
            )
        ack = self._ack(key, ic, AckKind.PAYLOAD) if slot.ack_payloads else None
        return OpenedPayload(meter, kp_id, ic, notification, ack)

    def _new_slot(self, canonical: bytes, key: ReceivedPayloadKey) -> _PayloadSlot:
        slots = self._slots
        slots.pop(canonical, None)
        if len(slots) >= _KEY_CACHE_SIZE:
            slots.pop(next(iter(slots)))
        slot = slots[canonical] = _PayloadSlot(key.meter_system_title, key.kp_id, key)
        return slot

    # --- retirement --------------------------------------------------------------------------

    def retire(self, meter: bytes, kp_id: KpId) -> None:
        """Retire ``kp_id`` of ``meter`` now: it and every kp_id at or below it are refused."""
        self._store.retire(meter, kp_id)
        self._slots.pop(_payload_header(bytes(meter), kp_id), None)

    def expire(self, now: float) -> list[tuple[bytes, KpId]]:
        """Retire every key whose window (widened by the clock skew) has passed."""
        gone = self._store.expired(now - self.clock_skew_s)
        for meter, kp_id in gone:
            self.retire(meter, kp_id)
        return gone
