"""Claim 7 end to end with the software meter: the meter's own consent, the service, Figs. 6b/6c.

The owner asks the real :class:`SoftwareMeter` (over TCP, management association) for an
enrollment request per head-end; each head-end forwards its request to the centre through the
authenticated channel, gets Ks, and relays the initialization message to the meter as the
public client (Fig. 6c); the last one is delivered by the centre itself (Fig. 6b). The meter
ends with the three head-ends and the same Ks as each of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cosemcast.association import AssociationSettings
from cosemcast.axdr.types import DoubleLongUnsigned, Enumerated, OctetString, Structure
from cosemcast.client import DlmsClient
from cosemcast.meter import SoftwareMeter
from cosemcast.meter.config import default_config_text, parse_config
from cosemcast.supervision.atrest import MasterKey
from cosemcast.supervision.channel import ChannelKeys
from cosemcast.supervision.client import (
    SupervisionClient,
    deliver_init_message,
    relay_init_message,
)
from cosemcast.supervision.registry import Registry
from cosemcast.supervision.service import SupervisionService
from cosemcast.supervision.wire import ASSIGNMENT_CLASS_ID, ASSIGNMENT_OBIS
from test_meter_support import START, FakeClock, management_settings

METER_ID = bytes.fromhex("4D4D4D0000BC614E")  # the default configuration's system title
KT = bytes.fromhex("0F1E2D3C4B5A69788796A5B4C3D2E1F0")
CENTRE_ID = bytes.fromhex("5355504500000001")
HEAD_ENDS = [bytes.fromhex(f"48454E44000000{n:02X}") for n in (1, 2, 3)]
NOW = int(START.timestamp())


class Clock:
    def __call__(self) -> float:
        return float(NOW)


@pytest.fixture
def world(
    tmp_path: Path,
) -> Iterator[tuple[Registry, SupervisionService, dict[bytes, ChannelKeys]]]:
    registry = Registry(tmp_path / "centre.db", MasterKey(bytes(range(32))))
    registry.initialise(centre_id=CENTRE_ID, now=NOW)
    registry.add_meter(METER_ID, KT, now=NOW)
    keys = {title: ChannelKeys.generate() for title in HEAD_ENDS}
    for title, key in keys.items():
        registry.register_head_end(title, name=title.hex(), credential=key.credential, now=NOW)
    service = SupervisionService(registry, port=0, clock=Clock())
    service.start()
    yield registry, service, keys
    service.close()
    registry.close()


def meter_config(centre_key: ec.EllipticCurvePublicKey) -> str:
    pem = centre_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")
    return (
        default_config_text()
        + f'\n[supervision]\nkt = "{KT.hex().upper()}"\ncentre_public_key = """{pem}"""\n'
    )


def test_the_software_meter_through_the_service(
    tmp_path: Path, world: tuple[Registry, SupervisionService, dict[bytes, ChannelKeys]]
) -> None:
    registry, service, keys = world
    config = parse_config(meter_config(registry.centre_public_key()), source="<test>")
    with SoftwareMeter(config, tmp_path / "meter.db", clock=FakeClock()) as meter:
        meter.serve_tcp("127.0.0.1", 0)
        host, port = meter.servers[0].address
        with DlmsClient.tcp(
            host, port, management_settings(), counters=tmp_path / "owner.db"
        ) as owner:
            owner.associate()
            consents = {}
            for title in HEAD_ENDS:
                raw = owner.action(
                    ASSIGNMENT_OBIS,
                    2,
                    Structure([OctetString(title), Enumerated(1)]),
                    ASSIGNMENT_CLASS_ID,
                )
                assert isinstance(raw, OctetString)
                consents[title] = bytes(raw)
        assignments = {}
        for title in HEAD_ENDS:
            with SupervisionClient(
                *service.address,
                head_end_id=title,
                ek=keys[title].ek,
                ak=keys[title].ak,
                counters=tmp_path / f"{title.hex()}.counters",
                centre_id=CENTRE_ID,
            ) as centre:
                assignments[title] = centre.assign(consents[title])
        public = AssociationSettings(client_sap=16, server_sap=1)
        with DlmsClient.tcp(host, port, public) as link:
            link.associate()
            for title in HEAD_ENDS[:2]:  # Fig. 6c: the head-ends relay
                relay_init_message(link, assignments[title].init_message)
            stored = registry.init_message(
                meter_id=METER_ID, sequence=assignments[HEAD_ENDS[2]].sequence
            )
            deliver_init_message(link, stored)  # Fig. 6b: the centre's copy, same bytes
            assert link.get(ASSIGNMENT_OBIS, 3, ASSIGNMENT_CLASS_ID) == DoubleLongUnsigned(3)
        assert meter.supervision is not None
        held = {h.system_title: h.ks for h in meter.supervision.assignment.head_ends()}
    assert held == {title: a.ks for title, a in assignments.items()}
