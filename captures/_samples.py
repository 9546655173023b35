"""What the sample captures share: times, system titles, keys, OBIS codes, APDU helpers.

Imported by ``generate.py`` and ``generate_more.py`` (which put this folder on ``sys.path``).
Every key here is a public test value of the captures (``keys.toml``).
"""

from __future__ import annotations

from cosemcast.apdu.acse import AARE, AARQ
from cosemcast.apdu.common import CosemAttributeDescriptor, GetDataValue, InvokeIdAndPriority
from cosemcast.apdu.get import GetRequestNormal, GetResponseNormal
from cosemcast.apdu.initiate import Conformance, InitiateRequest, InitiateResponse
from cosemcast.axdr import (
    Array,
    CosemDateTime,
    DoubleLongUnsigned,
    Enumerated,
    Integer,
    OctetString,
    Structure,
    encode_datetime_bytes,
)
from cosemcast.obis import Obis

START = 1767225600.0  # 2026-01-01T00:00:00Z

# keys.toml (Green Book example EK/AK, brief §5.3; the KEK is the Ks the meter shares with the
# head-end, DESIGN.md §4).
CLIENT_TITLE = bytes.fromhex("4142434445464748")
METER_TITLE = bytes.fromhex("4D4D4D0000BC614E")
EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
KEK = bytes.fromhex("A0A1A2A3A4A5A6A7A8A9AAABACADAEAF")
# Drawn by the meter for the shared-payload capture; travels only wrapped under KEK.
KP = bytes.fromhex("5A5B5C5D5E5F60616263646566676869")
# kp_id = u32 assignment epoch ‖ u32 sequence (specs/shared-payload.md §3.1).
KP_ID = bytes.fromhex("0000000100000001")
# The dedicated key the client proposes in the ciphered association.
DEDICATED_KEY = bytes.fromhex("C0C1C2C3C4C5C6C7C8C9CACBCCCDCECF")

CLIENT_IP, METER_IP, HEADEND_IP, GROUP_IP = "10.0.0.1", "10.0.0.10", "10.0.0.1", "239.1.2.3"
CONFORMANCE = Conformance(0x007E1F)

CLOCK = Obis.parse("0-0:1.0.0.255")
ENERGY = Obis.parse("1-0:1.8.0.255")
SERIAL_NUMBER = Obis.parse("0-0:96.1.0.255")
LOAD_PROFILE = Obis.parse("1-0:99.1.0.255")


class Clock:
    """Capture time in whole milliseconds after START (no float drift between records)."""

    def __init__(self) -> None:
        self.ms = 0

    def tick(self, ms: int) -> float:
        self.ms += ms
        return START + self.ms / 1000


def cosem_time(hour: int, minute: int = 0) -> CosemDateTime:
    return CosemDateTime(2026, 1, 1, 4, hour, minute, 0, 0, -60, None)


def get_request(class_id: int, obis: Obis, attribute: int, invoke: int) -> GetRequestNormal:
    return GetRequestNormal(
        CosemAttributeDescriptor(class_id, obis, attribute),
        invoke_id_and_priority=InvokeIdAndPriority(invoke),
    )


def value_response(value: object, invoke: int) -> GetResponseNormal:
    return GetResponseNormal(
        GetDataValue(value),  # type: ignore[arg-type]
        invoke_id_and_priority=InvokeIdAndPriority(invoke),
    )


def profile_rows(count: int) -> Array:
    return Array(
        Structure(
            (OctetString(encode_datetime_bytes(cosem_time(h))), DoubleLongUnsigned(1000 + 17 * h))
        )
        for h in range(count)
    )


def plain_association() -> tuple[AARQ, AARE]:
    aarq = AARQ(
        user_information=InitiateRequest(
            proposed_conformance=CONFORMANCE, client_max_receive_pdu_size=0xFFFF
        )
    )
    aare = AARE(
        user_information=InitiateResponse(
            negotiated_conformance=CONFORMANCE, server_max_receive_pdu_size=512
        )
    )
    return aarq, aare


def reads() -> list[tuple[object, object]]:
    return [
        (
            get_request(8, CLOCK, 2, 1),
            value_response(OctetString(encode_datetime_bytes(cosem_time(10, 30))), 1),
        ),
        (get_request(3, ENERGY, 2, 2), value_response(DoubleLongUnsigned(123456789), 2)),
        (get_request(3, ENERGY, 3, 3), value_response(Structure((Integer(0), Enumerated(30))), 3)),
        (get_request(1, SERIAL_NUMBER, 2, 4), value_response(OctetString(b"CCAST0000001"), 4)),
    ]
