"""Shared helpers for the tests of cosemcast.cosem (a fake time source, contexts, a meter)."""

from __future__ import annotations

import datetime as dt

from cosemcast.apdu.acse import MechanismName
from cosemcast.association.backend import AccessContext
from cosemcast.axdr import DoubleLongUnsigned, OctetString, VisibleString
from cosemcast.cosem import (
    AccessRights,
    AssociationLN,
    CaptureObjectDefinition,
    Clock,
    DataObject,
    ObjectModel,
    ProfileGeneric,
    Register,
    Unit,
)
from cosemcast.obis import Obis

PUBLIC = 16
MANAGEMENT = 1
ENERGY = Obis.parse("1-0:1.8.0.255")
CLOCK = Obis.parse("0-0:1.0.0.255")
LOAD_PROFILE = Obis.parse("1-0:99.1.0.255")
SERIAL = Obis.parse("0-0:96.1.0.255")
CLOCK_TIME = CaptureObjectDefinition(8, CLOCK, 2)
ENERGY_VALUE = CaptureObjectDefinition(3, ENERGY, 2)


class FakeTime:
    """An injectable time source that only moves when told to."""

    def __init__(self, start: dt.datetime) -> None:
        self.moment = start

    def __call__(self) -> dt.datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += dt.timedelta(seconds=seconds)


def ctx(
    client_sap: int = PUBLIC,
    *,
    mechanism: MechanismName = MechanismName.LOWEST,
    authenticated: bool = False,
    ciphered: bool = False,
) -> AccessContext:
    return AccessContext(client_sap, mechanism, authenticated, None, ciphered)


def small_meter(start: dt.datetime | None = None) -> tuple[ObjectModel, FakeTime]:
    """Clock, energy register, serial number, load profile and an association per client;
    the public client reads, the management client may do everything."""
    time = FakeTime(start or dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    read = {PUBLIC: AccessRights.read_only(), MANAGEMENT: AccessRights.full()}
    model = ObjectModel(
        [
            Clock(CLOCK, time_source=time, access=read),
            Register(ENERGY, DoubleLongUnsigned(0), scaler=0, unit=Unit.WATT_HOUR, access=read),
            DataObject(SERIAL, VisibleString("CC0000001"), access=read),
            ProfileGeneric(
                LOAD_PROFILE,
                [CLOCK_TIME, ENERGY_VALUE],
                capture_period=900,
                profile_entries=96,
                access=read,
            ),
            AssociationLN(
                Obis(0, 0, 40, 0, 2, 255),
                client_sap=PUBLIC,
                access={PUBLIC: AccessRights.read_only()},
            ),
            AssociationLN(
                Obis(0, 0, 40, 0, 1, 255),
                client_sap=MANAGEMENT,
                authentication_mechanism_name=MechanismName.HIGH_GMAC,
                secret=b"secret",
                access={MANAGEMENT: AccessRights.full()},
            ),
        ]
    )
    return model, time


def test_fake_time_moves_only_when_told() -> None:
    time = FakeTime(dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    first = time()
    assert time() == first
    time.advance(1.5)
    assert time() - first == dt.timedelta(seconds=1.5)
    assert OctetString(b"") == b""
