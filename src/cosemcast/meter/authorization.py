"""The software meter's side of supervision: configuration, persistent store, wiring.

Theory of operation (specs/supervision.md §6.4-§6.7). The ``[supervision]`` table of the meter
configuration (:func:`parse_supervision_config`) gives the meter's ``Kt``, the centre's public
key, the clock tolerance, the validity counter's ``renewal_timeout_s`` and where each head-end's
C2s go. :class:`MeterSupervision` builds the Assignment object (interface class 8962,
:mod:`cosemcast.cosem.assignment`) in one logical device, with a
:class:`SqliteAuthorizationStore` in the meter's state file, and wires it to the meter:

* every accepted initialization message gives the new assigned set, with each ``Ks``, to the
  listeners (:attr:`MeterSupervision.listeners`); the default one feeds the shared-payload unit
  (``SoftwareMeter.shared.set_head_ends``), which renews ``Kp`` on a change;
* before every time step (``SoftwareMeter._step``) :meth:`MeterSupervision.before_step` cuts the
  step at the validity deadline, so the interrupted mode starts exactly then, also when the
  meter catches up after a stop.

Storage: the ``secrets`` table (as the meter stores every other secret: in clear, the file
protected like the configuration) holds one row, the A-XDR array of the assigned head-ends with
their ``I0`` (``Ks`` is re-derived from ``Kt``, which only the configuration holds: the state
file alone yields no ``Ks``); ``object_fields`` holds the last sequence and the validity
counter. :meth:`SqliteAuthorizationStore.accept` re-reads the last sequence inside its
``BEGIN IMMEDIATE`` transaction and writes everything in it: all or nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cosemcast.axdr.codec import decode_data, encode_data
from cosemcast.axdr.types import (
    Array,
    Data,
    DoubleLongUnsigned,
    Enumerated,
    Long64Unsigned,
    OctetString,
    Structure,
)
from cosemcast.cosem.access import AccessMode, AccessRights, MethodAccessMode
from cosemcast.cosem.assignment import (
    ASSIGNMENT_OBIS,
    AssignedHeadEnd,
    Assignment,
    Interruption,
    StoredHeadEnd,
    Validity,
)
from cosemcast.cosem.base import CosemObject
from cosemcast.cosem.disconnect import DisconnectControl
from cosemcast.cosem.push_setup import TransportService
from cosemcast.errors import ConfigurationError, DecodeError, ReplayError
from cosemcast.meter._objects_config import Table
from cosemcast.meter._persist import snapshot
from cosemcast.meter._shared_config import SharedHeadEndConfig, parse_destination
from cosemcast.meter.state import MeterState, MeterStateError
from cosemcast.obis import Obis
from cosemcast.security.counters import make_key_id
from cosemcast.supervision.initmsg import InitAction
from cosemcast.supervision.kdf import SYSTEM_TITLE_LENGTH
from cosemcast.supervision.validation import DEFAULT_TOLERANCE_S, AcceptedInit

if TYPE_CHECKING:
    from cosemcast.meter.build import LogicalDevice
    from cosemcast.meter.meter import SoftwareMeter

__all__ = [
    "DEFAULT_DISCONNECT",
    "HeadEndDestination",
    "MeterSupervision",
    "SqliteAuthorizationStore",
    "SupervisionConfig",
    "parse_supervision_config",
]

_log = logging.getLogger("cosemcast.meter.assignment")

DEFAULT_DISCONNECT: Final = Obis(0, 0, 96, 3, 10, 255)
_HEAD_ENDS = "head_ends"
_PENDING: Final = (Interruption.SUPPLY_INTERRUPTED, Interruption.RECONNECT_PENDING)
_U32_MAX = 0xFFFFFFFF
_DAY_S = 86_400


# --- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeadEndDestination:
    """Where the C2s for one head-end go (``host:port``; the shared-payload unit sends them)."""

    system_title: bytes
    destination: str


@dataclass(frozen=True, slots=True)
class SupervisionConfig:
    """The ``[supervision]`` table (specs/supervision.md §6.5)."""

    kt: bytes = field(repr=False)
    centre_public_key: ec.EllipticCurvePublicKey = field(repr=False)
    ki: bytes | None = field(repr=False, default=None)
    server_sap: int | None = None
    logical_name: Obis = ASSIGNMENT_OBIS
    clock_tolerance_s: int = DEFAULT_TOLERANCE_S
    renewal_timeout_s: int = 0
    disconnect: Obis | None = None
    management_client: int = 1
    default_destination: str = ""
    head_ends: tuple[HeadEndDestination, ...] = ()


def parse_supervision_config(table: Table, base_dir: Path) -> SupervisionConfig:
    """Check a ``[supervision]`` table; relative PEM paths are read from ``base_dir``.

    Raises :class:`~cosemcast.errors.ConfigurationError` naming the field, never a key.
    """
    table.only(
        "kt",
        "ki",
        "centre_public_key",
        "server_sap",
        "logical_name",
        "clock_tolerance_s",
        "renewal_timeout_s",
        "disconnect",
        "management_client",
        "default_destination",
        "head_ends",
    )
    kt_length = len(table.string("kt").replace(" ", "").replace(":", "")) // 2
    kt = table.hex_bytes("kt", 32 if kt_length == 32 else 16)
    destinations: list[HeadEndDestination] = []
    for entry in table.tables("head_ends"):
        entry.only("system_title", "destination")
        title = entry.hex_bytes("system_title", SYSTEM_TITLE_LENGTH)
        if any(d.system_title == title for d in destinations):
            raise entry.fail("system_title", "this head-end is listed twice")
        destinations.append(HeadEndDestination(title, _destination(entry, "destination")))
    return SupervisionConfig(
        kt=kt,
        centre_public_key=_centre_key(table, base_dir),
        ki=table.hex_bytes("ki", 16) if "ki" in table else None,
        server_sap=table.integer("server_sap", None, 1, 0x3FFF) if "server_sap" in table else None,
        logical_name=table.obis("logical_name", ASSIGNMENT_OBIS),
        clock_tolerance_s=table.integer("clock_tolerance_s", DEFAULT_TOLERANCE_S, 0, _DAY_S),
        renewal_timeout_s=table.integer("renewal_timeout_s", 0, 0, _U32_MAX),
        disconnect=table.obis("disconnect") if "disconnect" in table else None,
        management_client=table.integer("management_client", 1, 1, 0x7F),
        default_destination=_destination(table, "default_destination", ""),
        head_ends=tuple(destinations),
    )


def _destination(table: Table, name: str, default: Any = None) -> str:
    value = table.string(name) if default is None else table.string(name, default)
    if value and parse_destination(value) is None:
        raise table.fail(name, f"{value!r} is not [udp://|tcp://]HOST:PORT")
    return value


def _centre_key(table: Table, base_dir: Path) -> ec.EllipticCurvePublicKey:
    value = table.string("centre_public_key")
    if value.lstrip().startswith("-----BEGIN"):
        data = value.encode("ascii", errors="replace")
    else:
        path = base_dir / value
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise table.fail("centre_public_key", f"cannot read {path} ({exc.strerror})") from exc
    try:
        if b"CERTIFICATE" in data:
            key: object = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise table.fail("centre_public_key", "is not a PEM public key or certificate") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise table.fail("centre_public_key", "must be an EC public key on secp256r1 (P-256)")
    return key


# --- the store -----------------------------------------------------------------------------------


class SqliteAuthorizationStore:
    """The assignment state of one logical device in the meter's state file (module doc).

    Implements :class:`~cosemcast.supervision.AuthorizationStore` and
    :class:`~cosemcast.cosem.assignment.AssignmentStore`.
    """

    def __init__(self, state: MeterState, *, device: int, owner: str = str(ASSIGNMENT_OBIS)):
        self.state = state
        self.device = device
        self.owner = owner
        self.companions: tuple[CosemObject, ...] = ()

    def __repr__(self) -> str:
        return f"SqliteAuthorizationStore({str(self.state.path)!r}, {self.device}, {self.owner})"

    def _fields(self) -> dict[str, Data]:
        return self.state.fields(self.device, self.owner)

    def _damaged(self, what: str) -> MeterStateError:
        return MeterStateError(f"{self.state.path}: the stored {what} of {self.owner} is damaged")

    def last_sequence(self) -> int:
        value = self._fields().get("last_sequence", 0)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._damaged("last sequence")
        return int(value)

    def head_ends(self) -> tuple[StoredHeadEnd, ...]:
        raw = self.state.secrets(self.device, self.owner).get(_HEAD_ENDS)
        if raw is None:
            return ()
        try:
            value = decode_data(raw)
        except DecodeError as exc:
            raise self._damaged("head-end list") from exc
        if not isinstance(value, Array):
            raise self._damaged("head-end list")
        out: list[StoredHeadEnd] = []
        for item in value:
            if (
                not isinstance(item, Structure)
                or len(item) != 3
                or not isinstance(item[0], OctetString)
                or len(item[0]) != SYSTEM_TITLE_LENGTH
                or not isinstance(item[1], OctetString)
                or len(item[1]) != 16
                or not isinstance(item[2], DoubleLongUnsigned)
            ):
                raise self._damaged("head-end list")
            out.append(StoredHeadEnd(bytes(item[0]), int(item[2]), bytes(item[1])))
        return tuple(out)

    def validity(self) -> Validity | None:
        fields = self._fields()
        renewed, mode = fields.get("renewed_at"), fields.get("interruption", 0)
        if renewed is None:
            return None
        if not isinstance(renewed, Long64Unsigned) or not isinstance(mode, int):
            raise self._damaged("validity counter")
        try:
            return Validity(int(renewed), Interruption(int(mode)))
        except ValueError as exc:
            raise self._damaged("validity counter") from exc

    def set_validity(self, validity: Validity) -> None:
        """Store the counter, and the :attr:`companions` as they are now, in one transaction."""
        with self.state.transaction() as tx:
            tx.set_fields(self.device, self.owner, _validity_fields(validity))
            for obj in self.companions:
                tx.set_fields(self.device, str(obj.logical_name), snapshot(obj))

    def accept(self, accepted: AcceptedInit, *, renewed_at: int | None = None) -> None:
        """Check the sequence, apply the action, restart the counter: one transaction."""
        with self.state.transaction() as tx:
            last = self.last_sequence()
            if accepted.sequence <= last:
                raise ReplayError(
                    f"sequence {accepted.sequence} is not above {last}",
                    received=accepted.sequence,
                    expected_min=last + 1,
                )
            kept = {h.system_title: h for h in self.head_ends()}
            if accepted.action is InitAction.REVOKE:
                kept.pop(accepted.head_end_id, None)
            else:
                if accepted.action is InitAction.ASSIGN_EXCLUSIVE:
                    kept.clear()
                kept[accepted.head_end_id] = StoredHeadEnd(
                    accepted.head_end_id, accepted.sequence, accepted.i0
                )
            encoded = encode_data(
                Array(
                    Structure(
                        (
                            OctetString(h.system_title),
                            OctetString(h.i0),
                            DoubleLongUnsigned(h.sequence),
                        )
                    )
                    for h in sorted(kept.values(), key=lambda h: h.system_title)
                )
            )
            tx.set_secret(self.device, self.owner, _HEAD_ENDS, encoded)
            fields: dict[str, Data] = {"last_sequence": DoubleLongUnsigned(accepted.sequence)}
            if renewed_at is not None:
                state = self.validity()
                pending = state is not None and state.interruption in _PENDING
                mode = Interruption.RECONNECT_PENDING if pending else Interruption.NORMAL
                fields.update(_validity_fields(Validity(renewed_at, mode)))
            tx.set_fields(self.device, self.owner, fields)


def _validity_fields(validity: Validity) -> dict[str, Data]:
    return {
        "renewed_at": Long64Unsigned(validity.renewed_at),
        "interruption": Enumerated(validity.interruption),
    }


def _shared_destination(head_end: SharedHeadEndConfig) -> str:
    scheme = "tcp://" if head_end.transport is TransportService.TCP else ""
    return scheme + head_end.destination


# --- wiring into the software meter -------------------------------------------------------------

Listener = Callable[[tuple[AssignedHeadEnd, ...], int], None]


def _rights(level: str, *, enroll: bool, ciphered: bool) -> AccessRights | None:
    """Decision (specs §6.5): every client that sees the meter may read the object and load
    initialization messages (they protect themselves); only the management client enrolls."""
    if level == "none":
        return None
    authenticated = level.startswith("authenticated")
    read = AccessMode.AUTHENTICATED_READ_ONLY if authenticated else AccessMode.READ_ONLY
    call = MethodAccessMode.AUTHENTICATED_ACCESS if authenticated else MethodAccessMode.ACCESS
    methods = {1: call}
    if enroll:
        methods[2] = MethodAccessMode.AUTHENTICATED_ACCESS if ciphered else call
    return AccessRights(default_attribute=read, methods=methods)


class MeterSupervision:
    """The Assignment object of one software meter and its wiring (module doc)."""

    def __init__(self, meter: SoftwareMeter, config: SupervisionConfig) -> None:
        self.meter = meter
        self.config = config
        self.device = self._device(meter, config)
        device = self.device
        destinations = {}
        shared = meter.config.shared_payload
        if shared is not None and shared.server_sap in (None, device.sap):
            destinations.update(
                {h.system_title: _shared_destination(h) for h in shared.head_ends if h.destination}
            )
        destinations.update({d.system_title: d.destination for d in config.head_ends})
        self.store = SqliteAuthorizationStore(
            meter.state, device=device.sap, owner=str(config.logical_name)
        )
        counter_id = make_key_id(device.system_title, "enrollment")
        self.assignment = Assignment(
            config.logical_name,
            meter_id=device.system_title,
            kt=config.kt,
            ki=config.ki,
            centre_public_key=config.centre_public_key,
            store=self.store,
            enrollment_counter=lambda: meter.next_counter(counter_id),
            tolerance_s=config.clock_tolerance_s,
            renewal_timeout_s=config.renewal_timeout_s,
            destinations=destinations,
            default_destination=config.default_destination,
        )
        self.assignment.disconnect = self._disconnect(device, config)
        if self.assignment.disconnect is not None:
            self.store.companions = (self.assignment.disconnect,)
        for client in device.clients.values():
            security = client.config.security
            rights = _rights(
                client.config.access,
                enroll=client.config.sap == config.management_client,
                ciphered=security is not None and security.ciphering.value != "none",
            )
            if rights is not None:
                self.assignment.grant(client.config.sap, rights)
        device.model.add(self.assignment)
        self.listeners: list[Listener] = [self._feed_shared]
        self.assignment.on_assigned = self._assigned
        self._fed = False
        self.assignment.validity()
        self.assignment.resume()
        _log.info(
            "%s in logical device %d: %d head-end(s) assigned, last sequence %d%s",
            config.logical_name,
            device.sap,
            len(self.store.head_ends()),
            self.store.last_sequence(),
            ""
            if config.renewal_timeout_s == 0
            else f", renewal due within {config.renewal_timeout_s} s",
        )

    def __repr__(self) -> str:
        return f"MeterSupervision(device={self.device.sap}, {self.assignment!r})"

    @classmethod
    def from_meter(cls, meter: SoftwareMeter) -> MeterSupervision | None:
        """The unit for ``meter.config.supervision`` (the raw table), or None without one."""
        raw = meter.config.supervision
        if not raw:
            return None
        source = meter.config.source
        base = Path.cwd() if source.startswith("<") else Path(source).parent
        return cls(meter, parse_supervision_config(Table(source, "supervision", raw), base))

    @staticmethod
    def _device(meter: SoftwareMeter, config: SupervisionConfig) -> LogicalDevice:
        sap = config.server_sap if config.server_sap is not None else next(iter(meter.devices))
        device = meter.devices.get(sap)
        if device is None:
            raise ConfigurationError(f"[supervision] server_sap: no logical device {sap}")
        if config.management_client not in device.clients:
            raise ConfigurationError(
                f"[supervision] management_client: client SAP {config.management_client} "
                f"is not a client of logical device {sap}"
            )
        return device

    @staticmethod
    def _disconnect(device: LogicalDevice, config: SupervisionConfig) -> DisconnectControl | None:
        obis = config.disconnect or DEFAULT_DISCONNECT
        found = device.model.find(DisconnectControl.CLASS_ID, obis)
        if isinstance(found, DisconnectControl):
            return found
        if config.disconnect is not None:
            raise ConfigurationError(
                f"[supervision] disconnect: {obis} is not a Disconnect control of logical "
                f"device {device.sap}"
            )
        if config.renewal_timeout_s:
            _log.warning(
                "no Disconnect control at %s: the interrupted mode will not switch the supply",
                obis,
            )
        return None

    # --- hooks ----------------------------------------------------------------------------------

    def head_ends(self) -> tuple[AssignedHeadEnd, ...]:
        return self.assignment.head_ends()

    def _assigned(self, head_ends: tuple[AssignedHeadEnd, ...], now: int) -> None:
        for listener in self.listeners:
            listener(head_ends, now)
        self._fed = True

    def _feed_shared(self, head_ends: Iterable[AssignedHeadEnd], now: int) -> None:
        shared = getattr(self.meter, "shared", None)
        if shared is None:
            return
        from cosemcast.sharedpayload import HeadEndAssignment

        listed = list(head_ends)
        shared.set_head_ends(
            [HeadEndAssignment(h.system_title, shared_key=h.ks) for h in listed],
            now,
            destinations={h.system_title: h.destination for h in listed if h.destination},
        )

    def before_step(self, target: dt.datetime) -> None:
        """Called by the meter before a time step to ``target`` (source time, UTC)."""
        if not self._fed:
            self._fed = True
            if self.store.last_sequence() > 0:
                self._assigned(self.head_ends(), self.assignment.meter_now())
        deadline = self.assignment.renewal_deadline()
        if deadline is None or self.assignment.interrupted:
            return
        clock = self.device.clock
        offset = clock.offset if clock is not None else dt.timedelta(0)
        at = dt.datetime.fromtimestamp(deadline, dt.UTC) - offset
        if at > target:
            return
        if self.meter.source_time < at:
            if at == target:
                return  # the step ends at the deadline; the next one interrupts
            self.meter._step(at)
        self.assignment.check_validity(deadline)
