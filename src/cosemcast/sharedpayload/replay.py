"""The C1 anti-replay window of a head-end (specs/shared-payload.md §7.2).

A pure value: :meth:`ReplayWindow.refusal` says whether a counter must be refused,
:meth:`ReplayWindow.accept` returns the window after accepting one. Stores keep one window
per (meter, kp_id) and apply this rule (:mod:`.headend`, and the head-end service's SQLite
store, which keeps the windows in memory and writes them in group commits, specs §9.2).
"""

from __future__ import annotations

from dataclasses import dataclass

from cosemcast.errors import ReplayError

__all__ = ["ReplayWindow"]


@dataclass(frozen=True, slots=True)
class ReplayWindow:
    """The C1 counters accepted under one key: the highest, and a bitmap of the ``size``
    counters at and below it (bit i set: ``highest - i`` was accepted), as in the IPsec
    anti-replay window (RFC 4303 §3.4.3). specs/shared-payload.md §7.2."""

    highest: int
    bitmap: int = 1

    def refusal(self, invocation_counter: int, size: int) -> ReplayError | None:
        """Why ``invocation_counter`` must be refused, or None if it is new and recent."""
        offset = self.highest - invocation_counter
        if offset < 0:
            return None
        if offset >= size:
            return ReplayError(
                f"C1 invocation counter {invocation_counter} is more than {size} below the "
                f"highest accepted ({self.highest})",
                received=invocation_counter,
                expected_min=self.highest - size + 1,
            )
        if self.bitmap >> offset & 1:
            return ReplayError(
                f"C1 invocation counter {invocation_counter} was accepted before",
                received=invocation_counter,
            )
        return None

    def accept(self, invocation_counter: int, size: int) -> ReplayWindow:
        """The window after accepting ``invocation_counter`` (check :meth:`refusal` first)."""
        mask = (1 << size) - 1
        offset = invocation_counter - self.highest
        if offset > 0:
            return ReplayWindow(invocation_counter, (self.bitmap << offset | 1) & mask)
        return ReplayWindow(self.highest, self.bitmap | 1 << -offset)
