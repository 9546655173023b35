"""From configuration to COSEM objects: one :class:`LogicalDevice` per configured device.

Theory of operation. :func:`build_device` creates the configured objects (Clock, Data,
Register, Extended register, Profile generic, Push setup, Disconnect control) and, per client,
an Association LN object (``client_sap`` set, so 0-0:40.0.0.255 resolves to it) and, for a
client with security, a Security setup object holding its master key. Access rights are
granted from the client's access level and the object's overrides (see config.py). The
:class:`LogicalDevice` keeps what the meter needs beyond the object model: the registers that
follow a load curve (:class:`CurveRegister`, with the energy accumulator in Wh), the profiles
and pushes with their next due time, each client's current keys (:class:`CurrentKeys`), and
:meth:`LogicalDevice.settings_for`, which builds the association settings of a client *now*,
from the current keys, policy and password (so that key_transfer, security_activate and a
changed secret apply to every association established afterwards).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from cosemcast.apdu.acse import ApplicationContextName
from cosemcast.association.settings import (
    DEFAULT_CONFORMANCE,
    AssociationSettings,
    Ciphering,
    GlobalKeys,
    SecuritySettings,
)
from cosemcast.axdr.types import CosemDateTime, Data, Float32, Float64
from cosemcast.cosem.association_ln import AssociationLN, XdlmsContextInfo
from cosemcast.cosem.base import CosemObject
from cosemcast.cosem.clock import Clock
from cosemcast.cosem.data import DataObject
from cosemcast.cosem.disconnect import DisconnectControl
from cosemcast.cosem.model import ObjectModel
from cosemcast.cosem.profile import ProfileGeneric
from cosemcast.cosem.push_setup import CommunicationWindow, PushSetup, SendDestinationAndMethod
from cosemcast.cosem.register import ExtendedRegister, Register
from cosemcast.cosem.security_setup import SecuritySetup
from cosemcast.cosem.shared_payload import SharedPayload
from cosemcast.meter._objects_config import (
    ACCESS_LEVELS,
    ClockConfig,
    DataConfig,
    DisconnectConfig,
    ObjectConfig,
    ProfileConfig,
    PushConfig,
    RegisterConfig,
)
from cosemcast.meter.config import ClientConfig, LogicalDeviceConfig, MeterConfig
from cosemcast.meter.loadcurve import LoadCurve
from cosemcast.obis import Obis

__all__ = [
    "ClientRuntime",
    "CurrentKeys",
    "CurveRegister",
    "LogicalDevice",
    "Scheduled",
    "build_device",
    "next_boundary",
    "register_value",
]

# EU summer time in the Clock's terms (cosem/clock.py compares both bounds with local *normal*
# time): from the last Sunday of March, 02:00, to the last Sunday of October, 02:00 normal time
# (03:00 summer time). Day 0xFE is the last day of the month, day_of_week 7 Sunday (brief §9.3).
_EU_BEGIN = CosemDateTime(None, 3, 0xFE, 7, 2, 0, 0, 0, None, None)
_EU_END = CosemDateTime(None, 10, 0xFE, 7, 2, 0, 0, 0, None, None)
_PROFILE_CAPACITY = 100_000


@dataclass(slots=True)
class CurrentKeys:
    """A client's global keys as they are now (changed by key_transfer); never shown."""

    ek: bytes = field(repr=False)
    ak: bytes = field(repr=False)
    broadcast_key: bytes | None = field(repr=False, default=None)


@dataclass(slots=True)
class ClientRuntime:
    config: ClientConfig
    association: AssociationLN
    security_setup: SecuritySetup | None = None
    keys: CurrentKeys | None = None


@dataclass(slots=True)
class CurveRegister:
    """A register that follows a load curve: its energy (Wh) or its power."""

    register: Register
    curve: LoadCurve
    energy: bool
    energy_wh: float = 0.0


@dataclass(slots=True)
class Scheduled:
    """A profile, push setup or shared-payload capture and the meter time it is next due."""

    obj: ProfileGeneric | PushSetup | SharedPayload
    period_s: int
    config: PushConfig | None = None
    next_due: dt.datetime | None = None
    invoke_id: int = 0
    basis: tuple[dt.timedelta, int] | None = None


def register_value(template: Data, amount: float) -> Data:
    """``amount`` (in register units) in the wire type of ``template``: integers are
    truncated and roll over like a register's digits (signed ones saturate)."""
    if isinstance(template, Float32 | Float64):
        return type(template)(amount)
    assert isinstance(template, int) and not isinstance(template, bool)
    cls = type(template)
    low, high = cls.MIN, cls.MAX
    whole = int(amount // 1)
    if low == 0:
        return cls(whole % (high + 1))
    return cls(max(low, min(high, whole)))


class LogicalDevice:
    """One logical device: its object model and the meter's bookkeeping around it."""

    def __init__(self, config: LogicalDeviceConfig, meter: MeterConfig) -> None:
        self.config = config
        self.meter_config = meter
        self.sap = config.server_sap
        self.system_title = config.system_title
        self.model = ObjectModel()
        self.clock: Clock | None = None
        self.clients: dict[int, ClientRuntime] = {}
        self.curves: list[CurveRegister] = []
        self.profiles: list[Scheduled] = []
        self.pushes: list[Scheduled] = []
        self.disconnect: DisconnectControl | None = None

    def __repr__(self) -> str:
        return f"LogicalDevice(server_sap={self.sap}, objects={len(self.model)})"

    @property
    def supply_on(self) -> bool:
        return self.disconnect is None or self.disconnect.output_state

    @property
    def time_zone(self) -> int:
        return 0 if self.clock is None else self.clock.time_zone

    def settings_for(self, client_sap: int) -> AssociationSettings | None:
        """The association this device grants ``client_sap`` now (``None``: unknown client)."""
        client = self.clients.get(client_sap)
        if client is None:
            return None
        security = None
        config = client.config
        if config.security is not None:
            assert client.security_setup is not None and client.keys is not None
            setup = client.security_setup
            keys = client.keys
            ciphering = config.security.ciphering
            security = SecuritySettings(
                system_title=self.system_title,
                global_keys=GlobalKeys(keys.ek, keys.ak, keys.broadcast_key),
                suite=setup.security_suite,
                ciphering=ciphering,
                policy=None if ciphering is Ciphering.NONE else setup.security_policy,
                peer_system_title=setup.client_system_title,
                signing_key=config.security.signing_key,
                peer_signing_key=config.security.client_signing_key,
            )
        return AssociationSettings(
            client_sap=client_sap,
            server_sap=self.sap,
            mechanism=config.authentication.mechanism,
            secret=client.association.secret,
            security=security,
            conformance=DEFAULT_CONFORMANCE,
            max_receive_pdu_size=self.meter_config.max_pdu_size,
        )


def build_device(
    config: LogicalDeviceConfig, meter: MeterConfig, time_source: Callable[[], dt.datetime]
) -> LogicalDevice:
    """The objects of one logical device, in their configured initial state."""
    device = LogicalDevice(config, meter)
    for client in config.clients:
        _add_client(device, client)
    for item in config.objects:
        obj = _make_object(device, item, meter, time_source)
        for client in config.clients:
            rights = ACCESS_LEVELS[item.access.get(client.sap, client.access)]
            if rights is not None:
                obj.grant(client.sap, rights)
        device.model.add(obj)
    for client_runtime in device.clients.values():
        # Validate the association settings once, at start-up (ConfigurationError otherwise).
        device.settings_for(client_runtime.config.sap)
    return device


def _add_client(device: LogicalDevice, client: ClientConfig) -> None:
    level = client.access if client.access != "none" else "read"
    rights = ACCESS_LEVELS[level]
    assert rights is not None
    security = client.security
    ciphered = security is not None and security.ciphering is not Ciphering.NONE
    context_name = (
        ApplicationContextName.LOGICAL_NAME_WITH_CIPHERING
        if ciphered
        else ApplicationContextName.LOGICAL_NAME
    )
    association = AssociationLN(
        client.association,
        client_sap=client.sap,
        server_sap=device.sap,
        application_context_name=context_name,
        authentication_mechanism_name=client.authentication.mechanism,
        xdlms_context_info=XdlmsContextInfo(
            conformance=int(DEFAULT_CONFORMANCE),
            max_receive_pdu_size=device.meter_config.max_pdu_size,
        ),
        secret=client.password,
        security_setup_reference=None if security is None else security.security_setup,
        access={client.sap: rights},
    )
    device.model.add(association)
    runtime = ClientRuntime(client, association)
    if security is not None:
        setup = SecuritySetup(
            security.security_setup,
            server_system_title=device.system_title,
            client_system_title=security.client_system_title,
            security_policy=security.policy,
            security_suite=security.suite,
            master_key=security.kek,
            access={client.sap: rights},
        )
        device.model.add(setup)
        runtime.security_setup = setup
        runtime.keys = CurrentKeys(security.ek, security.ak, security.broadcast_key)
    device.clients[client.sap] = runtime


def _make_object(
    device: LogicalDevice,
    item: ObjectConfig,
    meter: MeterConfig,
    time_source: Callable[[], dt.datetime],
) -> CosemObject:
    if isinstance(item, ClockConfig):
        clock = Clock(
            item.obis,
            time_source=time_source,
            time_zone=item.time_zone,
            daylight_savings_begin=_EU_BEGIN if item.daylight_saving else None,
            daylight_savings_end=_EU_END if item.daylight_saving else None,
            daylight_savings_enabled=item.daylight_saving,
        )
        if device.clock is None or item.obis == Obis(0, 0, 1, 0, 0, 255):
            device.clock = clock
        return clock
    if isinstance(item, DataConfig):
        return DataObject(item.obis, item.value)
    if isinstance(item, RegisterConfig):
        cls = ExtendedRegister if item.class_id == 4 else Register
        register = cls(item.obis, item.value, scaler=item.scaler, unit=item.unit)
        curve_name = item.energy_of or item.power_of
        if curve_name is not None:
            assert isinstance(item.value, int | float)
            follower = CurveRegister(
                register,
                meter.load_curves[curve_name],
                energy=item.energy_of is not None,
                energy_wh=float(item.value) * 10.0**item.scaler,
            )
            device.curves.append(follower)
        return register
    if isinstance(item, ProfileConfig):
        profile = ProfileGeneric(
            item.obis,
            item.capture_objects,
            capture_period=item.capture_period,
            profile_entries=item.profile_entries,
            capacity=max(_PROFILE_CAPACITY, item.profile_entries),
            sort_method=item.sort_method,
        )
        device.profiles.append(Scheduled(profile, item.capture_period))
        return profile
    if isinstance(item, PushConfig):
        push = PushSetup(
            item.obis,
            item.push_object_list,
            send_destination_and_method=SendDestinationAndMethod(
                item.transport, item.destination.encode("ascii", errors="replace")
            ),
            communication_window=[CommunicationWindow(a, b) for a, b in item.windows],
            randomisation_start_interval=item.randomisation_start_interval,
            number_of_retries=item.number_of_retries,
            repetition_delay=item.repetition_delay,
        )
        device.pushes.append(Scheduled(push, item.interval, item))
        return push
    assert isinstance(item, DisconnectConfig)
    disconnect = DisconnectControl(item.obis, control_mode=item.control_mode)
    device.disconnect = disconnect
    return disconnect


def next_boundary(moment: dt.datetime, period_s: int) -> dt.datetime | None:
    """The next multiple of ``period_s`` after local midnight, strictly after ``moment``."""
    if period_s <= 0:
        return None
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed = (moment - midnight).total_seconds()
    return midnight + dt.timedelta(seconds=(int(elapsed // period_s) + 1) * period_s)
