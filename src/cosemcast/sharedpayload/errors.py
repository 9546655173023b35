"""Errors of the shared-payload scheme, grafted onto the one tree of :mod:`cosemcast.errors`.

Every rejection of a C1, C2 or acknowledgement raises exactly one exception from the
:class:`~cosemcast.errors.DecodeError` or :class:`~cosemcast.errors.SecurityError` families;
``specs/shared-payload.md`` §10 lists which check raises which. System titles and kp_ids are
identifiers, not secrets, so messages may name them; no message names a key.
"""

from __future__ import annotations

from cosemcast.errors import AuthenticationFailed, KeyUnavailableError, ReplayError, SecurityError

__all__ = [
    "ControlConflict",
    "KeyNotYetValid",
    "MeterNotAssigned",
    "MisaddressedMessage",
    "PayloadKeyUnknown",
    "StaleKeyId",
    "UnauthenticatedOrigin",
]


def _title(value: bytes) -> str:
    return bytes(value).hex().upper()


class PayloadKeyUnknown(KeyUnavailableError):
    """A C1 names a kp_id whose C2 has not been accepted (yet): park the C1 and retry."""

    def __init__(self, meter_system_title: bytes, kp_id: bytes) -> None:
        self.meter_system_title = bytes(meter_system_title)
        self.kp_id = bytes(kp_id)
        super().__init__(
            f"no payload key {self.kp_id.hex().upper()} for meter {_title(meter_system_title)}"
        )


class MeterNotAssigned(KeyUnavailableError):
    """Traffic of a meter this head-end holds no K1 for: drop it (never park it)."""

    def __init__(self, meter_system_title: bytes) -> None:
        self.meter_system_title = bytes(meter_system_title)
        super().__init__(f"meter {_title(meter_system_title)} is not assigned to this head-end")


class StaleKeyId(ReplayError):
    """The kp_id is retired (expired, or at or below the meter's retirement floor)."""

    def __init__(self, message: str, *, meter_system_title: bytes, kp_id: bytes) -> None:
        self.meter_system_title = bytes(meter_system_title)
        self.kp_id = bytes(kp_id)
        super().__init__(
            f"{message}: kp_id {self.kp_id.hex().upper()} of meter {_title(meter_system_title)}"
        )


class ControlConflict(ReplayError):
    """A second, different C2 for a kp_id already accepted: the first one stands."""


class MisaddressedMessage(SecurityError):
    """The message names another recipient than us (a C2 or acknowledgement for someone else)."""

    def __init__(self, message: str, *, expected: bytes, received: bytes) -> None:
        self.expected = bytes(expected)
        self.received = bytes(received)
        super().__init__(f"{message}: addressed to {_title(received)}, we are {_title(expected)}")


class KeyNotYetValid(SecurityError):
    """now < not-before − tolerance: the payload key's validity window has not started."""

    def __init__(self, message: str, *, not_before: int, now: float, tolerance_s: float) -> None:
        self.not_before = not_before
        self.now = now
        self.tolerance_s = tolerance_s
        super().__init__(f"{message}: now {now:.0f}, valid from {not_before} (± {tolerance_s} s)")


class UnauthenticatedOrigin(AuthenticationFailed):
    """A C2 whose key agreement does not authenticate the meter, which our policy refuses."""
