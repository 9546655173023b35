"""The software meter's TOML configuration: what it is, who may talk to it, and how.

Theory of operation. :func:`load_config` reads a TOML file (or the shipped
``default_meter.toml`` when no path is given; ``cosemcast meter config`` prints it) into frozen
dataclasses: :class:`MeterConfig` holds load curves, serial-line settings and
:class:`LogicalDeviceConfig` entries; each logical device has a server SAP, a system title, a
manufacturer id, its :class:`ClientConfig` entries (client SAP, authentication, password,
access level, security with keys) and its objects (:class:`ObjectConfig`). Nothing is built
here: :mod:`cosemcast.meter.build` turns the configuration into COSEM objects.

Every problem raises :class:`~cosemcast.errors.ConfigurationError` naming the file, the table
(``logical_devices[0].clients[2].security``) and the field; unknown fields are errors too (a
typo must not silently leave a default in place). Key bytes never appear in a message or a
repr. Object-specific fields are parsed in :mod:`cosemcast.meter._objects_config`.

Access levels (decision, copy to specs/): ``none`` (the object is invisible), ``read``
(every attribute readable), ``read-write``, ``full`` (read-write and every method), and
``authenticated-read`` / ``authenticated-full`` (the same, only for ciphered requests). A
client's ``access`` applies to every configured object unless the object's ``access`` table
overrides it for that client SAP. The Association LN and Security setup objects made for a
client are visible to that client only, with its level.
"""

from __future__ import annotations

import dataclasses
import enum
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cosemcast.apdu.acse import MechanismName
from cosemcast.association.settings import Ciphering, SecurityPolicy
from cosemcast.errors import ConfigurationError
from cosemcast.meter._objects_config import (
    ACCESS_LEVELS,
    ObjectConfig,
    PushConfig,
    Table,
    parse_object,
)
from cosemcast.meter._schedule_config import ScheduleConfig, parse_schedule
from cosemcast.meter._shared_config import (
    SharedHeadEndConfig,
    SharedPayloadConfig,
    parse_shared_payload,
    reserved_objects,
)
from cosemcast.meter.loadcurve import LoadCurve
from cosemcast.obis import Obis
from cosemcast.scheduling.orders import UPSTREAM_SCHEDULE_OBIS

__all__ = [
    "ACCESS_LEVELS",
    "DEFAULT_CONFIG_NAME",
    "Authentication",
    "ClientConfig",
    "LogicalDeviceConfig",
    "MeterConfig",
    "ScheduleConfig",
    "SecurityConfig",
    "SerialConfig",
    "SharedHeadEndConfig",
    "SharedPayloadConfig",
    "default_config_text",
    "load_config",
    "parse_config",
]

DEFAULT_CONFIG_NAME: Final = "default_meter.toml"

_POLICIES: Final[dict[str, SecurityPolicy]] = {
    "none": SecurityPolicy(0),
    "authenticated": SecurityPolicy.AUTHENTICATED_REQUEST | SecurityPolicy.AUTHENTICATED_RESPONSE,
    "authenticated-encrypted": SecurityPolicy.all_ciphered(),
    **{flag.name.lower().replace("_", "-"): flag for flag in SecurityPolicy if flag.name},
}


class Authentication(enum.Enum):
    """How a client authenticates (brief §4.2 mechanism names, §7)."""

    NONE = "none"
    LLS = "lls"
    HLS_GMAC = "hls-gmac"
    HLS_ECDSA = "hls-ecdsa"

    @property
    def mechanism(self) -> MechanismName:
        return _MECHANISMS[self]


_MECHANISMS: Final = {
    Authentication.NONE: MechanismName.LOWEST,
    Authentication.LLS: MechanismName.LOW,
    Authentication.HLS_GMAC: MechanismName.HIGH_GMAC,
    Authentication.HLS_ECDSA: MechanismName.HIGH_ECDSA,
}


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    """A client's security: its Security setup object, suite, policy and initial keys."""

    security_setup: Obis
    suite: int
    policy: SecurityPolicy
    ciphering: Ciphering
    ek: bytes = field(repr=False)
    ak: bytes = field(repr=False)
    kek: bytes | None = field(repr=False, default=None)
    broadcast_key: bytes | None = field(repr=False, default=None)
    client_system_title: bytes | None = None
    signing_key: ec.EllipticCurvePrivateKey | None = field(repr=False, default=None)
    client_signing_key: ec.EllipticCurvePublicKey | None = field(repr=False, default=None)


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """One client SAP of a logical device."""

    sap: int
    name: str
    authentication: Authentication
    access: str
    association: Obis
    password: bytes = field(repr=False, default=b"")
    security: SecurityConfig | None = None


@dataclass(frozen=True, slots=True)
class LogicalDeviceConfig:
    name: str
    server_sap: int
    system_title: bytes
    manufacturer_id: str
    clients: tuple[ClientConfig, ...]
    objects: tuple[ObjectConfig, ...]


@dataclass(frozen=True, slots=True)
class SerialConfig:
    """The serial line: 8N1 rate without mode E, and the mode E identification (brief §3)."""

    baud_rate: int = 9600
    identification: str = "COSEMCAST"


@dataclass(frozen=True, slots=True)
class MeterConfig:
    source: str
    name: str
    max_pdu_size: int
    serial: SerialConfig
    load_curves: Mapping[str, LoadCurve]
    devices: tuple[LogicalDeviceConfig, ...]
    text: str = field(repr=False, default="")
    shared_payload: SharedPayloadConfig | None = None
    supervision: Mapping[str, Any] = field(repr=False, default_factory=dict)
    """The raw ``[supervision]`` table, parsed by the assignment unit (class 8962)."""
    schedule: ScheduleConfig | None = None
    """The ``[schedule]`` table: the upstream-schedule object (specs/scheduling.md §11)."""

    def device(self, server_sap: int) -> LogicalDeviceConfig | None:
        return next((d for d in self.devices if d.server_sap == server_sap), None)


# --- loading -------------------------------------------------------------------------------------


def default_config_text() -> str:
    """The shipped default configuration, as ``cosemcast meter config`` prints it."""
    return resources.files("cosemcast.meter").joinpath(DEFAULT_CONFIG_NAME).read_text("utf-8")


def load_config(path: str | Path | None = None) -> MeterConfig:
    """Read and check a configuration file; ``None`` is the shipped default."""
    if path is None:
        return parse_config(default_config_text(), source=f"<{DEFAULT_CONFIG_NAME}>")
    file = Path(path)
    try:
        text = file.read_text("utf-8")
    except OSError as exc:
        raise ConfigurationError(
            f"{file}: cannot read the meter configuration ({exc.strerror})"
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"{file}: not UTF-8 text ({exc.reason})") from exc
    return parse_config(text, source=str(file), base=file.parent)


def parse_config(text: str, *, source: str = "<string>", base: Path | None = None) -> MeterConfig:
    """Check a configuration given as TOML text; ``base`` resolves relative PEM paths."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{source}: not valid TOML: {exc}") from exc
    root = Table(source, "", data)
    root.only(
        "meter",
        "serial",
        "load_curves",
        "logical_devices",
        "shared_payload",
        "supervision",
        "schedule",
    )
    meter = root.table("meter")
    meter.only("name", "max_pdu_size")
    serial = root.table("serial")
    serial.only("baud_rate", "identification")
    rate = serial.integer("baud_rate", 9600, 300, 115200)
    identification = serial.string("identification", "COSEMCAST")
    if not identification.isascii() or not identification.isprintable() or "/" in identification:
        raise serial.fail("identification", "must be printable ASCII without '/'")
    curves: dict[str, LoadCurve] = {}
    for curve_table in root.tables("load_curves"):
        curve = _load_curve(curve_table)
        if curve.name in curves:
            raise curve_table.fail("name", f"load curve {curve.name!r} is defined twice")
        curves[curve.name] = curve
    device_tables = root.tables("logical_devices")
    if not device_tables:
        raise root.fail("logical_devices", "at least one logical device is needed")
    devices: list[LogicalDeviceConfig] = []
    for table in device_tables:
        device = _device(table, curves, base or Path.cwd())
        if any(d.server_sap == device.server_sap for d in devices):
            raise table.fail("server_sap", f"server SAP {device.server_sap} is used twice")
        devices.append(device)
    shared = None
    if "shared_payload" in root:
        shared = _shared_payload(root.table("shared_payload"), devices, base or Path.cwd())
    schedule = None
    if "schedule" in root:
        schedule = _schedule(root.table("schedule"), devices)
    supervision = root.get("supervision", {})
    if not isinstance(supervision, dict):
        raise root.fail("supervision", "must be a table")
    return MeterConfig(
        source=source,
        name=meter.string("name", "cosemcast software meter"),
        max_pdu_size=meter.integer("max_pdu_size", 1024, 64, 0xFFFF),
        serial=SerialConfig(rate, identification),
        load_curves=curves,
        devices=tuple(devices),
        text=text,
        shared_payload=shared,
        supervision=supervision,
        schedule=schedule,
    )


def _schedule(table: Table, devices: list[LogicalDeviceConfig]) -> ScheduleConfig:
    """``[schedule]`` (specs/scheduling.md §11) and its references into a device."""
    schedule = parse_schedule(table)
    sap = schedule.server_sap
    device = devices[0] if sap is None else next((d for d in devices if d.server_sap == sap), None)
    if device is None:
        raise table.fail("logical_device", f"no logical device has server SAP {sap}")
    if any(o.obis == UPSTREAM_SCHEDULE_OBIS for o in device.objects):
        raise table.fail("logical_device", f"{UPSTREAM_SCHEDULE_OBIS} is taken by an object")
    saps = {c.sap for c in device.clients}
    if schedule.broadcast_client_sap not in saps:
        raise table.fail(
            "broadcast_client_sap", f"client {schedule.broadcast_client_sap} is not defined"
        )
    for client_sap in schedule.access:
        if client_sap not in saps:
            raise table.fail("access", f"client SAP {client_sap} is not defined")
    return dataclasses.replace(schedule, server_sap=device.server_sap)


def _shared_payload(
    table: Table, devices: list[LogicalDeviceConfig], base: Path
) -> SharedPayloadConfig:
    """``[shared_payload]`` (specs/shared-payload.md §8.5) and its references into a device."""
    curve = "secp256r1"
    shared = parse_shared_payload(
        table,
        public_key=lambda t, name: _public_key(t, name, base, curve),
        private_key=lambda t, name: _private_key(t, name, base, curve),
    )
    sap = shared.server_sap
    device = devices[0] if sap is None else next((d for d in devices if d.server_sap == sap), None)
    if device is None:
        raise table.fail("logical_device", f"no logical device has server SAP {sap}")
    captured = shared.capture_objects
    if captured is None:
        push = next((o for o in device.objects if isinstance(o, PushConfig)), None)
        if push is None:
            raise table.fail("capture_objects", "needed when the device has no push setup")
        captured = push.push_object_list
    classes = {o.obis: o.class_id for o in device.objects}
    reserved = reserved_objects(len(shared.head_ends))
    for obis in reserved:
        if obis in classes:
            raise table.fail("logical_device", f"{obis} is taken by the shared-payload scheme")
    classes.update(reserved)
    for ref in captured:
        if classes.get(ref.logical_name) != ref.class_id:
            raise table.fail("capture_objects", f"{ref} names no such object in the device")
    return dataclasses.replace(shared, server_sap=device.server_sap, capture_objects=captured)


def _load_curve(table: Table) -> LoadCurve:
    table.only("name", "points")
    name = table.string("name")
    raw = table.get("points")
    points: list[tuple[float, float]] = []
    if not isinstance(raw, list) or not raw:
        raise table.fail("points", "must be a non-empty list of [hour, watts] pairs")
    for item in raw:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in item)
        ):
            raise table.fail("points", f"{item!r} is not an [hour, watts] pair of numbers")
        points.append((float(item[0]), float(item[1])))
    try:
        return LoadCurve(name, tuple(points))
    except ValueError as exc:
        raise table.fail("points", str(exc)) from exc


def _device(table: Table, curves: Mapping[str, LoadCurve], base: Path) -> LogicalDeviceConfig:
    table.only("name", "server_sap", "system_title", "manufacturer_id", "clients", "objects")
    sap = table.integer("server_sap", None, 1, 0x3FFF)
    manufacturer = table.string("manufacturer_id")
    if len(manufacturer) != 3 or not manufacturer.isascii() or not manufacturer.isalpha():
        raise table.fail("manufacturer_id", "must be 3 ASCII letters (e.g. 'MMM')")
    clients: list[ClientConfig] = []
    for client_table in table.tables("clients"):
        client = _client(client_table, len(clients), base)
        if any(c.sap == client.sap for c in clients):
            raise client_table.fail("sap", f"client SAP {client.sap} is used twice")
        clients.append(client)
    if not clients:
        raise table.fail("clients", "at least one client is needed")
    objects: list[ObjectConfig] = []
    for object_table in table.tables("objects"):
        objects.append(parse_object(object_table, curves))
    device = LogicalDeviceConfig(
        name=table.string("name", f"logical device {sap}"),
        server_sap=sap,
        system_title=table.hex_bytes("system_title", 8),
        manufacturer_id=manufacturer,
        clients=tuple(clients),
        objects=tuple(objects),
    )
    _check_references(table, device)
    return device


def _client(table: Table, index: int, base: Path) -> ClientConfig:
    table.only("sap", "name", "authentication", "password", "access", "association", "security")
    sap = table.integer("sap", None, 1, 0x7F)
    try:
        authentication = Authentication(table.string("authentication", "none"))
    except ValueError:
        choices = ", ".join(a.value for a in Authentication)
        raise table.fail("authentication", f"must be one of {choices}") from None
    access = table.string("access", "read")
    if access not in ACCESS_LEVELS:
        raise table.fail("access", f"must be one of {', '.join(ACCESS_LEVELS)}")
    password = table.string("password", "").encode("utf-8")
    if authentication is Authentication.LLS and not password:
        raise table.fail("password", "an LLS client needs a password")
    if authentication is not Authentication.LLS and password:
        raise table.fail("password", "only an LLS client has a password")
    security = None
    if "security" in table:
        security = _security(table.table("security"), authentication, base)
    elif authentication in (Authentication.HLS_GMAC, Authentication.HLS_ECDSA):
        raise table.fail("security", f"{authentication.value} needs a [security] table with keys")
    return ClientConfig(
        sap=sap,
        name=table.string("name", f"client {sap}"),
        authentication=authentication,
        access=access,
        association=table.obis("association", Obis(0, 0, 40, 0, index + 1, 255)),
        password=password,
        security=security,
    )


def _security(table: Table, authentication: Authentication, base: Path) -> SecurityConfig:
    table.only(
        "security_setup",
        "suite",
        "policy",
        "ciphering",
        "ek",
        "ak",
        "kek",
        "broadcast_key",
        "client_system_title",
        "signing_key",
        "client_signing_key",
    )
    suite = table.integer("suite", 0, 0, 2)
    length = 32 if suite == 2 else 16
    try:
        ciphering = Ciphering(table.string("ciphering", "glo"))
    except ValueError:
        choices = ", ".join(c.value for c in Ciphering)
        raise table.fail("ciphering", f"must be one of {choices}") from None
    policy = _policy(table)
    if ciphering is Ciphering.NONE and policy:
        raise table.fail("policy", "a security policy needs ciphering (ciphering = 'none')")
    signing = client_signing = None
    if authentication is Authentication.HLS_ECDSA:
        if suite == 0:
            raise table.fail("suite", "HLS-ECDSA needs security suite 1 or 2")
        curve = "secp256r1" if suite == 1 else "secp384r1"
        signing = _private_key(table, "signing_key", base, curve)
        client_signing = _public_key(table, "client_signing_key", base, curve)
    else:
        for name in ("signing_key", "client_signing_key"):
            if name in table:
                raise table.fail(name, "signing keys are for an hls-ecdsa client only")
    title = table.get("client_system_title")
    return SecurityConfig(
        security_setup=table.obis("security_setup", Obis(0, 0, 43, 0, 0, 255)),
        suite=suite,
        policy=policy,
        ciphering=ciphering,
        ek=table.hex_bytes("ek", length),
        ak=table.hex_bytes("ak", length),
        kek=table.hex_bytes("kek", length) if "kek" in table else None,
        broadcast_key=table.hex_bytes("broadcast_key", length)
        if "broadcast_key" in table
        else None,
        client_system_title=None if title is None else table.hex_bytes("client_system_title", 8),
        signing_key=signing,
        client_signing_key=client_signing,
    )


def _policy(table: Table) -> SecurityPolicy:
    raw = table.get("policy", "authenticated-encrypted")
    names = [raw] if isinstance(raw, str) else raw
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise table.fail("policy", "must be a policy name or a list of policy flag names")
    policy = SecurityPolicy(0)
    for name in names:
        flag = _POLICIES.get(name)
        if flag is None:
            raise table.fail(
                "policy", f"unknown policy {name!r}; use one of {', '.join(_POLICIES)}"
            )
        policy |= flag
    return policy


def _pem(table: Table, name: str, base: Path) -> bytes:
    value = table.string(name)
    if value.lstrip().startswith("-----BEGIN"):
        return value.encode("ascii", errors="replace")
    path = base / value
    try:
        return path.read_bytes()
    except OSError as exc:
        raise table.fail(name, f"cannot read {path} ({exc.strerror})") from exc


def _private_key(table: Table, name: str, base: Path, curve: str) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(_pem(table, name, base), password=None)
    except (ValueError, TypeError) as exc:
        raise table.fail(name, "is not an unencrypted PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != curve:
        raise table.fail(name, f"must be an EC private key on {curve}")
    return key


def _public_key(table: Table, name: str, base: Path, curve: str) -> ec.EllipticCurvePublicKey:
    data = _pem(table, name, base)
    try:
        if b"CERTIFICATE" in data:
            key: object = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise table.fail(name, "is not a PEM public key or certificate") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != curve:
        raise table.fail(name, f"must be an EC public key on {curve}")
    return key


def _check_references(table: Table, device: LogicalDeviceConfig) -> None:
    """Unique logical names; capture and push lists naming objects that exist."""
    classes: dict[Obis, int] = {}
    where: dict[Obis, str] = {}
    for client in device.clients:
        names = [(client.association, 15, "association")]
        if client.security is not None:
            names.append((client.security.security_setup, 64, "security.security_setup"))
        for obis, class_id, name in names:
            if obis in classes:
                raise table.fail(
                    f"clients (SAP {client.sap}) {name}", f"{obis} is also {where[obis]}"
                )
            classes[obis] = class_id
            where[obis] = f"the {name} of client {client.sap}"
    for obj in device.objects:
        if obj.obis in classes:
            raise table.fail(
                "objects", f"logical name {obj.obis} is used twice ({where[obj.obis]})"
            )
        classes[obj.obis] = obj.class_id
        where[obj.obis] = f"a class {obj.class_id} object"
    for obj in device.objects:
        for ref in obj.references:
            found = classes.get(ref.logical_name)
            if found != ref.class_id:
                what = "no object" if found is None else f"a class {found} object"
                raise table.fail(
                    f"objects ({obj.obis})",
                    f"{ref} refers to {ref.logical_name}, which is {what} in this device",
                )
    for obj in device.objects:
        for sap in obj.access:
            if not any(c.sap == sap for c in device.clients):
                raise table.fail(f"objects ({obj.obis}) access", f"client SAP {sap} is not defined")
        if isinstance(obj, PushConfig):
            target = next((c for c in device.clients if c.sap == obj.client_sap), None)
            if target is None:
                raise table.fail(
                    f"objects ({obj.obis}) client_sap", f"client {obj.client_sap} is not defined"
                )
            if obj.protection != "none" and target.security is None:
                raise table.fail(
                    f"objects ({obj.obis}) protection",
                    f"client {obj.client_sap} has no keys to protect the push with",
                )
