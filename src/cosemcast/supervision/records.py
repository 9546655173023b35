"""What the registry lists and issues (specs/supervision.md §3.1, §8): no key in any repr."""

from __future__ import annotations

from dataclasses import dataclass, field

from cosemcast.supervision.initmsg import InitAction

__all__ = ["AssignmentRecord", "AuditEntry", "HeadEndRecord", "Issued", "MeterRecord"]


@dataclass(frozen=True, slots=True)
class MeterRecord:
    meter_id: bytes
    status: str
    last_sequence: int
    created_at: int


@dataclass(frozen=True, slots=True)
class HeadEndRecord:
    head_end_id: bytes
    name: str
    status: str
    created_at: int


@dataclass(frozen=True, slots=True)
class AssignmentRecord:
    meter_id: bytes
    head_end_id: bytes
    action: InitAction
    sequence: int
    state: str
    not_before: int
    not_after: int
    created_at: int


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: int
    actor: str
    operation: str
    meter_id: bytes | None
    head_end_id: bytes | None
    decision: str
    detail: str


@dataclass(frozen=True, slots=True)
class Issued:
    """An issued initialization message; ``ks`` goes to the head-end over the protected channel.

    ``init_message`` is the sealed ``DD`` (encrypted under Ki): deliver it straight to the meter
    (Fig. 6b) or through the head-end (Fig. 6c). ``ks`` is ``None`` for a revocation.
    """

    meter_id: bytes
    head_end_id: bytes
    action: InitAction
    sequence: int
    not_before: int
    not_after: int
    init_message: bytes
    ks: bytes | None = field(repr=False)
