"""Parking for C1s that arrive before their C2 (specs/shared-payload.md §9.3).

Theory of operation. UDP reorders and C2s are unicast while C1s are multicast, so a head-end
can see a C1 whose ``Kp`` it does not hold yet (:class:`~.errors.PayloadKeyUnknown`). It parks
the C1 here, keyed by (meter system title, kp_id), and releases the C1s of a kp_id, in arrival
order, as soon as that kp_id's C2 is accepted. The lot is bounded twice: by ``capacity`` (the
oldest C1 is evicted first) and by ``max_age_s``; everything that leaves unopened is returned
to the caller so it can be reported, never dropped silently. Sans-IO: time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

from cosemcast.apdu.general import GeneralCiphering
from cosemcast.sharedpayload.messages import KpId

__all__ = ["ParkedPayload", "ParkingLot"]


@dataclass(frozen=True, slots=True)
class ParkedPayload:
    """A C1 waiting for its payload key."""

    meter_system_title: bytes
    kp_id: KpId
    apdu: GeneralCiphering
    parked_at: float


class ParkingLot:
    """Bounded store of C1s waiting for their C2 (module doc)."""

    def __init__(self, *, capacity: int = 10_000, max_age_s: float = 3_600.0) -> None:
        if capacity < 1 or max_age_s <= 0:
            raise ValueError("capacity and max_age_s must be positive")
        self.capacity = capacity
        self.max_age_s = max_age_s
        self._serial = 0
        self._items: dict[int, ParkedPayload] = {}
        self._by_key: dict[tuple[bytes, KpId], list[int]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"ParkingLot({len(self._items)}/{self.capacity}, keys={len(self._by_key)})"

    def _remove(self, serial: int) -> ParkedPayload:
        item = self._items.pop(serial)
        slot = (item.meter_system_title, item.kp_id)
        serials = self._by_key[slot]
        serials.remove(serial)
        if not serials:
            del self._by_key[slot]
        return item

    def park(
        self, meter_system_title: bytes, kp_id: KpId, apdu: GeneralCiphering, now: float
    ) -> list[ParkedPayload]:
        """Park one C1; returns what had to leave unopened to make room (oldest first)."""
        evicted = self.expire(now)
        while len(self._items) >= self.capacity:
            evicted.append(self._remove(next(iter(self._items))))
        self._serial += 1
        item = ParkedPayload(bytes(meter_system_title), kp_id, apdu, now)
        self._items[self._serial] = item
        self._by_key.setdefault((item.meter_system_title, kp_id), []).append(self._serial)
        return evicted

    def release(self, meter_system_title: bytes, kp_id: KpId) -> list[GeneralCiphering]:
        """Take out the C1s parked for this kp_id, in arrival order."""
        serials = self._by_key.pop((bytes(meter_system_title), kp_id), [])
        return [self._items.pop(serial).apdu for serial in serials]

    def expire(self, now: float) -> list[ParkedPayload]:
        """Remove and return the C1s parked longer than ``max_age_s``."""
        expired: list[ParkedPayload] = []
        for serial, item in list(self._items.items()):
            if now - item.parked_at <= self.max_age_s:
                break
            expired.append(self._remove(serial))
        return expired
