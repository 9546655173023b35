"""The payload sealer's state in the meter's SQLite file (specs/shared-payload.md §8.5).

Theory of operation. :func:`dump_state` turns a :class:`~cosemcast.sharedpayload.SealerState`
into named A-XDR values for the ``object_fields`` table and named byte strings for the
``secrets`` table (the current ``Kp``, each C2 entry's ``Ka`` and the assignment digest);
:func:`load_state` reverses it and raises :class:`MeterStateError` on anything damaged. Both
live under the owner name :data:`OWNER` of the unit's logical device, and are written by the
meter's one-transaction-per-step flush.

What survives a restart (decision, specs §8.5): the current ``Kp`` and its counters, every C2
entry (acknowledged or not: unacknowledged ones are re-sent unchanged) and the buffer of sealed
C1s. The invocation counters themselves are not in here: they come from the meter's durable
:class:`~cosemcast.security.counters.CounterStore`, so a restored ``Kp`` continues with ICs
above every one handed out before, even when this state is older than the last C1 sent (a
power loss can lose the last commits of this WAL file, never a counter reservation).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from cosemcast.axdr.types import (
    Array,
    Data,
    DoubleLongUnsigned,
    Float64,
    Long64Unsigned,
    OctetString,
    Structure,
)
from cosemcast.errors import DlmsError
from cosemcast.meter.state import MeterStateError
from cosemcast.sharedpayload import (
    ControlEntry,
    KpId,
    PayloadKey,
    SealedPayload,
    SealerState,
    as_general_ciphering,
)

__all__ = ["OWNER", "dump_state", "load_state"]

OWNER: Final = "shared-payload/sealer"
_KP: Final = "kp"
_DIGEST: Final = "assignment_digest"


def _ka_name(head_end: bytes, kp_id: KpId) -> str:
    return f"ka/{head_end.hex()}/{kp_id.to_bytes().hex()}"


def _time(value: float | None) -> Data:
    return None if value is None else Float64(value)


def dump_state(state: SealerState) -> tuple[dict[str, Data], dict[str, bytes]]:
    """(fields, secrets) of ``state``."""
    secrets = {_DIGEST: state.assignment_digest}
    current: Data = None
    if state.current is not None:
        key = state.current
        secrets[_KP] = key.key
        current = Structure(
            (
                OctetString(key.kp_id.to_bytes()),
                Long64Unsigned(key.not_before),
                Long64Unsigned(key.not_after),
                DoubleLongUnsigned(key.first_invocation_counter),
            )
        )
    controls = []
    for entry in state.controls:
        secrets[_ka_name(entry.head_end, entry.kp_id)] = entry.ack_key
        controls.append(
            Structure(
                (
                    OctetString(entry.head_end),
                    OctetString(entry.kp_id.to_bytes()),
                    OctetString(entry.apdu.encode()),
                    Long64Unsigned(entry.not_after),
                    entry.acknowledged,
                    _time(entry.last_sent),
                )
            )
        )
    buffer = [
        Structure(
            (
                OctetString(item.kp_id.to_bytes()),
                OctetString(item.apdu.encode()),
                Long64Unsigned(item.not_after),
            )
        )
        for item in state.buffer
    ]
    fields: dict[str, Data] = {
        "epoch": None if state.epoch is None else DoubleLongUnsigned(state.epoch),
        "current": current,
        "drawn_at": Float64(state.drawn_at),
        "payloads_sealed": Long64Unsigned(state.payloads_sealed),
        "controls": Array(controls),
        "buffer": Array(buffer),
    }
    return fields, secrets


def _items(value: Data, width: int, what: str) -> list[Structure]:
    if not isinstance(value, Array):
        raise MeterStateError(f"the stored shared-payload {what} is not an array")
    out = []
    for item in value:
        if not isinstance(item, Structure) or len(item) != width:
            raise MeterStateError(f"a stored shared-payload {what} entry is damaged")
        out.append(item)
    return out


def _int(value: Data) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise MeterStateError("a stored shared-payload number is damaged")
    return int(value)


def _bytes(value: Data) -> bytes:
    if not isinstance(value, bytes):
        raise MeterStateError("a stored shared-payload octet-string is damaged")
    return bytes(value)


def _float(value: Data) -> float | None:
    if value is None:
        return None
    if not isinstance(value, float | int) or isinstance(value, bool):
        raise MeterStateError("a stored shared-payload time is damaged")
    return float(value)


def load_state(fields: Mapping[str, Data], secrets: Mapping[str, bytes]) -> SealerState | None:
    """The stored state, or None when nothing was stored; :class:`MeterStateError` if damaged."""
    if not fields:
        return None
    try:
        epoch = fields.get("epoch")
        current = None
        raw = fields.get("current")
        if raw is not None:
            if not isinstance(raw, Structure) or len(raw) != 4 or _KP not in secrets:
                raise MeterStateError("the stored payload key is damaged")
            current = PayloadKey(
                KpId.from_bytes(_bytes(raw[0])),
                secrets[_KP],
                _int(raw[1]),
                _int(raw[2]),
                _int(raw[3]),
            )
        controls = []
        for item in _items(fields.get("controls"), 6, "C2"):
            head_end, kp_id = _bytes(item[0]), KpId.from_bytes(_bytes(item[1]))
            ack_key = secrets.get(_ka_name(head_end, kp_id))
            if ack_key is None or not isinstance(item[4], bool):
                raise MeterStateError("a stored C2 entry is damaged")
            controls.append(
                ControlEntry(
                    head_end,
                    kp_id,
                    as_general_ciphering(_bytes(item[2])),
                    _int(item[3]),
                    ack_key,
                    acknowledged=item[4],
                    last_sent=_float(item[5]),
                )
            )
        buffer = [
            SealedPayload(
                KpId.from_bytes(_bytes(item[0])),
                as_general_ciphering(_bytes(item[1])),
                _int(item[2]),
            )
            for item in _items(fields.get("buffer"), 3, "buffer")
        ]
        drawn_at = _float(fields.get("drawn_at"))
        return SealerState(
            None if epoch is None else _int(epoch),
            current,
            0.0 if drawn_at is None else drawn_at,
            _int(fields.get("payloads_sealed")),
            tuple(controls),
            tuple(buffer),
            secrets.get(_DIGEST, b""),
        )
    except (DlmsError, ValueError) as exc:
        if isinstance(exc, MeterStateError):
            raise
        raise MeterStateError(f"the stored shared-payload state is damaged: {exc}") from exc
