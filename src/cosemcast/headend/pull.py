"""Pulling shared payloads from a meter instead of waiting for pushes (specs §8.1, §8.2).

Theory of operation. :func:`pull_from_meter` reads, over an established association of a
:class:`~cosemcast.client.DlmsClient`, the meter's Payload key control entries (class 8961,
``0-0:128.2.0.255`` attribute 2) and keeps the C2s addressed to this head-end (it cannot open
the others), then the sealed C1s waiting in the Shared payload buffer (class 8960,
``0-0:128.1.0.255`` attribute 3). It feeds the C2s first, then the C1s, to
:meth:`~cosemcast.headend.HeadEnd.handle_apdu`, exactly as if they had been pushed: C2s are
accepted (or recognised as retransmissions), C1s opened, replays refused. The acknowledgements
the head-end produces are sent to the meter over the same link as unsolicited APDUs (the meter
routes general-ciphering acknowledgements to its sealer, specs §6), unless ``send_acks`` is off.

:func:`parse_control_entries` and :func:`parse_buffer` read the two attributes strictly and
raise only :class:`~cosemcast.errors.DecodeError` on anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from cosemcast.axdr.types import Array, Data, DoubleLongUnsigned, OctetString, Structure
from cosemcast.errors import DecodeError
from cosemcast.obis import Obis

if TYPE_CHECKING:
    from cosemcast.client import DlmsClient
    from cosemcast.headend.headend import HeadEnd

__all__ = [
    "KEY_CONTROL_OBIS",
    "SHARED_PAYLOAD_OBIS",
    "PullResult",
    "PulledControl",
    "parse_buffer",
    "parse_control_entries",
    "pull_from_meter",
]

SHARED_PAYLOAD_OBIS: Final = Obis(0, 0, 128, 1, 0, 255)
KEY_CONTROL_OBIS: Final = Obis(0, 0, 128, 2, 0, 255)
_SHARED_PAYLOAD_CLASS: Final = 8960
_KEY_CONTROL_CLASS: Final = 8961
_SOURCE: Final = "pull"


@dataclass(frozen=True, slots=True)
class PulledControl:
    """One entry of the meter's payload key control object (attribute 2)."""

    head_end_system_title: bytes
    kp_id: bytes
    c2: bytes
    acknowledged: bool
    invocation_counter: int
    not_after: int


@dataclass(frozen=True, slots=True)
class PullResult:
    """What one pull found and what the head-end made of it (deltas of its counters)."""

    controls: int
    payloads: int
    controls_accepted: int
    opened: int
    rejected: int
    acks_sent: int


def _octets(value: Data, what: str, length: int | None = None) -> bytes:
    if not isinstance(value, OctetString) or (length is not None and len(value) != length):
        size = "" if length is None else f"({length})"
        raise DecodeError(f"{what} is not an octet-string{size}", expected="octet-string")
    return bytes(value)


def _u32(value: Data, what: str) -> int:
    if not isinstance(value, DoubleLongUnsigned):
        raise DecodeError(f"{what} is not a double-long-unsigned", expected="06")
    return int(value)


def parse_control_entries(value: Data) -> list[PulledControl]:
    """Payload key control attribute 2 (specs §8.2), strictly; DecodeError otherwise."""
    if not isinstance(value, Array):
        raise DecodeError("the payload key control entries are not an array", expected="01")
    out = []
    for item in value:
        if not isinstance(item, Structure) or len(item) != 6:
            raise DecodeError("an entry is not a structure of 6", expected="02 06")
        if not isinstance(item[3], bool):
            raise DecodeError("acknowledged is not a boolean", expected="03")
        out.append(
            PulledControl(
                _octets(item[0], "head_end_system_title", 8),
                _octets(item[1], "kp_id", 8),
                _octets(item[2], "c2"),
                item[3],
                _u32(item[4], "invocation_counter"),
                _u32(item[5], "not_after"),
            )
        )
    return out


def parse_buffer(value: Data) -> list[bytes]:
    """Shared payload attribute 3 (specs §8.1): the sealed C1s; DecodeError otherwise."""
    if not isinstance(value, Array):
        raise DecodeError("the shared-payload buffer is not an array", expected="01")
    return [_octets(item, "a buffered C1") for item in value]


def _count(stats: dict[str, int], name: str) -> int:
    return stats.get(name, 0)


def pull_from_meter(client: DlmsClient, head_end: HeadEnd, *, send_acks: bool = True) -> PullResult:
    """GET this head-end's C2s and the buffered C1s and process them (module docstring).

    ``client`` must be associated. Raises what the client raises (the meter refused, the link
    failed) and :class:`DecodeError` when an attribute has the wrong shape.
    """
    entries = parse_control_entries(client.get(KEY_CONTROL_OBIS, 2, _KEY_CONTROL_CLASS))
    mine = [e for e in entries if e.head_end_system_title == head_end.system_title]
    payloads = parse_buffer(client.get(SHARED_PAYLOAD_OBIS, 3, _SHARED_PAYLOAD_CLASS))
    before = head_end.stats()
    acks: list[bytes] = []
    for entry in mine:
        acks.extend(ack for _, ack in head_end.handle_apdu(_SOURCE, entry.c2))
    for c1 in payloads:
        acks.extend(ack for _, ack in head_end.handle_apdu(_SOURCE, c1))
    if send_acks:
        for ack in acks:
            client.link.send_apdu(ack)
    after = head_end.stats()
    return PullResult(
        controls=len(mine),
        payloads=len(payloads),
        controls_accepted=_count(after, "controls_accepted") - _count(before, "controls_accepted"),
        opened=_count(after, "opened") - _count(before, "opened"),
        rejected=_count(after, "rejected") - _count(before, "rejected"),
        acks_sent=len(acks) if send_acks else 0,
    )
