"""The ``[shared_payload]`` table of the meter configuration (specs/shared-payload.md §8.5).

Theory of operation. :func:`parse_shared_payload` reads the table into a frozen
:class:`SharedPayloadConfig`: where C1s go (``c1_destination``, UDP unicast, multicast or
broadcast), how often a C1 is captured and pushed, the sealer's renewal policy, and one
:class:`SharedHeadEndConfig` per assigned head-end (its system title, where its C2s go, and its
K1: ``ks`` or ``public_key``). Nothing is built here; :mod:`cosemcast.meter.shared` builds the
objects and the sealer. Errors are :class:`~cosemcast.errors.ConfigurationError` naming the
file, table and field, never a key value.

Destinations: ``"HOST:PORT"`` or ``"udp://HOST:PORT"`` is UDP, ``"tcp://HOST:PORT"`` TCP (C2
only). The capture objects default to the ``push_object_list`` of the logical device's first
Push setup, so a configuration that already pushes readings shares the same ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from cryptography.hazmat.primitives.asymmetric import ec

from cosemcast.cosem.common import CaptureObjectDefinition
from cosemcast.cosem.push_setup import TransportService
from cosemcast.meter._objects_config import Table, capture_list
from cosemcast.obis import Obis

__all__ = [
    "MAX_HEAD_ENDS",
    "SharedHeadEndConfig",
    "SharedPayloadConfig",
    "c1_push_name",
    "c2_push_name",
    "parse_destination",
    "parse_shared_payload",
    "reserved_objects",
]

_FIELDS: Final = (
    "logical_device",
    "c1_destination",
    "broadcast",
    "push_interval_s",
    "capture_interval_s",
    "capture_objects",
    "buffer_capacity",
    "retry_interval_s",
    "renewal",
    "agreement_key",
    "head_ends",
)
_RENEWAL: Final = ("max_payloads", "max_age_s", "delivery_window_s", "ack_payloads")
_U32: Final = 0xFFFFFFFF
MAX_HEAD_ENDS: Final = 246

PublicKeyLoader = Callable[[Table, str], ec.EllipticCurvePublicKey]
PrivateKeyLoader = Callable[[Table, str], ec.EllipticCurvePrivateKey]


@dataclass(frozen=True, slots=True)
class SharedHeadEndConfig:
    """One assigned head-end: where its C2s go and its K1 (exactly one of the two keys)."""

    system_title: bytes
    transport: TransportService
    destination: str
    shared_key: bytes | None = field(default=None, repr=False)
    public_key: ec.EllipticCurvePublicKey | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class SharedPayloadConfig:
    """The shared-payload unit of one logical device (``server_sap``)."""

    server_sap: int | None
    c1_destination: str
    broadcast: bool
    push_interval_s: int
    capture_interval_s: int
    capture_objects: tuple[CaptureObjectDefinition, ...] | None
    buffer_capacity: int
    retry_interval_s: int
    max_payloads: int | None
    max_age_s: int
    delivery_window_s: int
    ack_payloads: bool
    head_ends: tuple[SharedHeadEndConfig, ...]
    agreement_key: ec.EllipticCurvePrivateKey | None = field(default=None, repr=False)


def c1_push_name() -> Obis:
    """The C1 Push setup (specs §8.4)."""
    return Obis(0, 1, 25, 9, 0, 255)


def c2_push_name(index: int) -> Obis:
    """The C2 Push setup of the ``index``-th head-end, ordered by system title (specs §8.4)."""
    return Obis(0, 10 + index, 25, 9, 0, 255)


def reserved_objects(head_ends: int) -> dict[Obis, int]:
    """The logical names (and classes) the scheme adds to its logical device."""
    names = {Obis(0, 0, 128, 1, 0, 255): 8960, Obis(0, 0, 128, 2, 0, 255): 8961}
    names[c1_push_name()] = 40
    for index in range(head_ends):
        names[c2_push_name(index)] = 40
    return names


def parse_destination(text: str) -> tuple[TransportService, str] | None:
    """``HOST:PORT``, ``udp://HOST:PORT`` or ``tcp://HOST:PORT`` → (transport, ``HOST:PORT``)."""
    transport = TransportService.UDP
    scheme, sep, rest = text.partition("://")
    if sep:
        if scheme.lower() not in ("udp", "tcp"):
            return None
        transport = TransportService.TCP if scheme.lower() == "tcp" else TransportService.UDP
        text = rest
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return transport, text


def _boolean(table: Table, name: str, default: bool) -> bool:
    value = table.get(name, default)
    if not isinstance(value, bool):
        raise table.fail(name, "must be true or false")
    return value


def _head_end(table: Table, public_key: PublicKeyLoader) -> SharedHeadEndConfig:
    table.only("system_title", "destination", "ks", "public_key")
    raw = table.string("destination", "")
    if raw:
        parsed = parse_destination(raw)
        if parsed is None:
            raise table.fail("destination", f"{raw!r} is not [udp://|tcp://]HOST:PORT")
        transport, destination = parsed
    else:
        transport, destination = TransportService.UDP, ""
    if ("ks" in table) == ("public_key" in table):
        raise table.fail("ks", "give exactly one K1: ks (16 bytes hex) or public_key (PEM)")
    return SharedHeadEndConfig(
        system_title=table.hex_bytes("system_title", 8),
        transport=transport,
        destination=destination,
        shared_key=table.hex_bytes("ks", 16) if "ks" in table else None,
        public_key=public_key(table, "public_key") if "public_key" in table else None,
    )


def parse_shared_payload(
    table: Table,
    *,
    public_key: PublicKeyLoader,
    private_key: PrivateKeyLoader,
) -> SharedPayloadConfig:
    """Check the ``[shared_payload]`` table (the key loaders read PEM text or files)."""
    table.only(*_FIELDS)
    destination = table.string("c1_destination")
    parsed = parse_destination(destination)
    if parsed is None or parsed[0] is not TransportService.UDP:
        raise table.fail("c1_destination", f"{destination!r} is not [udp://]HOST:PORT")
    renewal = table.table("renewal")
    renewal.only(*_RENEWAL)
    max_payloads = renewal.integer("max_payloads", 1000, 0, _U32)
    head_ends: list[SharedHeadEndConfig] = []
    for head_table in table.tables("head_ends"):
        head_end = _head_end(head_table, public_key)
        if any(h.system_title == head_end.system_title for h in head_ends):
            raise head_table.fail("system_title", "this head-end is listed twice")
        head_ends.append(head_end)
    if len(head_ends) > MAX_HEAD_ENDS:
        raise table.fail("head_ends", f"at most {MAX_HEAD_ENDS} (C2 pushes 0-10..0-255:25.9.0.255)")
    agreement = private_key(table, "agreement_key") if "agreement_key" in table else None
    if agreement is None and any(h.public_key is not None for h in head_ends):
        raise table.fail("agreement_key", "a head-end with a public_key needs the meter's key")
    return SharedPayloadConfig(
        server_sap=table.integer("logical_device", 0, 1, 0x3FFF)
        if "logical_device" in table
        else None,
        c1_destination=parsed[1],
        broadcast=_boolean(table, "broadcast", False),
        push_interval_s=table.integer("push_interval_s", 900, 0, _U32),
        capture_interval_s=table.integer("capture_interval_s", 0, 0, _U32),
        capture_objects=capture_list(table, "capture_objects")
        if "capture_objects" in table
        else None,
        buffer_capacity=table.integer("buffer_capacity", 96, 1, 0xFFFF),
        retry_interval_s=table.integer("retry_interval_s", 60, 1, 0xFFFF),
        max_payloads=max_payloads or None,
        max_age_s=renewal.integer("max_age_s", 86_400, 1, _U32),
        delivery_window_s=renewal.integer("delivery_window_s", 3_600, 0, _U32),
        ack_payloads=_boolean(renewal, "ack_payloads", False),
        head_ends=tuple(head_ends),
        agreement_key=agreement,
    )
