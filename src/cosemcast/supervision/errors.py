"""Errors of the supervision layer, grafted onto the one tree of :mod:`cosemcast.errors`.

A rejected initialization message or enrollment request raises exactly one of these (or
:class:`~cosemcast.errors.AuthenticationFailed` for a tag or signature,
:class:`~cosemcast.errors.ReplayError` for a sequence number or counter,
:class:`~cosemcast.errors.DecodeError` for malformed bytes); specs/supervision.md §6.3 lists
which check raises which. System titles are identifiers, not secrets, so messages may name
them; no message names a key, I0 or Ks.
"""

from __future__ import annotations

from cosemcast.errors import DlmsError, SecurityError

__all__ = [
    "ConsentError",
    "FutureEnrollment",
    "FutureInitMessage",
    "NotAuthorizedError",
    "RegistryError",
    "StaleEnrollment",
    "StaleInitMessage",
    "UnknownPartyError",
    "ValidityWindowError",
    "WrongMeterError",
]


class WrongMeterError(SecurityError):
    """The message names another meter (or another head-end than its envelope)."""

    def __init__(self, message: str, *, expected: bytes, received: bytes) -> None:
        self.expected = bytes(expected)
        self.received = bytes(received)
        super().__init__(
            f"{message}: expected {expected.hex().upper()}, got {received.hex().upper()}"
        )


class ValidityWindowError(SecurityError):
    """``now`` is outside a message's validity window widened by the clock tolerance."""

    def __init__(
        self, message: str, *, not_before: int, not_after: int, now: int, tolerance_s: int
    ):
        self.not_before = not_before
        self.not_after = not_after
        self.now = now
        self.tolerance_s = tolerance_s
        super().__init__(
            f"{message}: now {now}, valid {not_before}..{not_after} (± {tolerance_s} s)"
        )


class StaleInitMessage(ValidityWindowError):
    """now > not-after + tolerance: the initialization message has expired."""


class FutureInitMessage(ValidityWindowError):
    """now < not-before − tolerance: the initialization message is not valid yet."""


class StaleEnrollment(ValidityWindowError):
    """The enrollment request is older than the centre accepts."""


class FutureEnrollment(ValidityWindowError):
    """The enrollment request is dated after the centre's clock plus the tolerance."""


class RegistryError(DlmsError):
    """The supervision registry refused an operation (nothing was changed but the audit log)."""


class UnknownPartyError(RegistryError):
    """No such meter or head-end in the registry."""


class NotAuthorizedError(RegistryError):
    """The party is known but not active (revoked head-end, retired meter) or not credentialed."""


class ConsentError(RegistryError):
    """The assignment lacks a valid meter consent (enrollment request) for this head-end."""
