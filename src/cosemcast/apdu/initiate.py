"""xDLMS-Initiate request (tag 01) and response (tag 08), and the conformance block.

Theory of operation. Both APDUs travel inside the user-information of an AARQ/AARE (or
ciphered, as glo-/ded-initiate). They are A-XDR SEQUENCEs (brief §4.3): OPTIONAL fields are a
``00``/``01`` presence flag, ``response-allowed`` is a BOOLEAN DEFAULT TRUE (``00`` = default),
integers are fixed-width big-endian. The one BER island is the conformance block, an
``[APPLICATION 31] IMPLICIT BIT STRING (SIZE(24))`` always written ``5F 1F 04 00 c0 c1 c2``; the
decoder insists on exactly that header.

Conformance bit *n* (Blue Book numbering, bit 0 = most significant bit of the first octet) is
the :class:`Conformance` member whose value is ``1 << (23 - n)``, so ``int(conformance)`` is
the 24-bit big-endian number on the wire.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import ClassVar

from cosemcast.apdu.base import Reader, encode_octet_string, register
from cosemcast.errors import EncodeError

__all__ = [
    "CONFORMANCE_HEADER",
    "VAA_NAME_LN",
    "VAA_NAME_SN",
    "Conformance",
    "InitiateRequest",
    "InitiateResponse",
    "encode_conformance",
    "read_conformance",
]

CONFORMANCE_HEADER = b"\x5f\x1f\x04\x00"
"""Tag [APPLICATION 31] (5F 1F), length 4, 0 unused bits (brief §4.3)."""

VAA_NAME_LN = 0x0007
VAA_NAME_SN = 0xFA00


def _bit(n: int) -> int:
    return 1 << (23 - n)


class Conformance(enum.IntFlag):
    """The 24-bit xDLMS conformance block (brief §4.3, newer Blue Book numbering)."""

    RESERVED_ZERO = _bit(0)
    GENERAL_PROTECTION = _bit(1)
    GENERAL_BLOCK_TRANSFER = _bit(2)
    READ = _bit(3)
    WRITE = _bit(4)
    UNCONFIRMED_WRITE = _bit(5)
    DELTA_VALUE_ENCODING = _bit(6)
    RESERVED_SEVEN = _bit(7)
    ATTRIBUTE0_SUPPORTED_WITH_SET = _bit(8)
    PRIORITY_MGMT_SUPPORTED = _bit(9)
    ATTRIBUTE0_SUPPORTED_WITH_GET = _bit(10)
    BLOCK_TRANSFER_WITH_GET_OR_READ = _bit(11)
    BLOCK_TRANSFER_WITH_SET_OR_WRITE = _bit(12)
    BLOCK_TRANSFER_WITH_ACTION = _bit(13)
    MULTIPLE_REFERENCES = _bit(14)
    INFORMATION_REPORT = _bit(15)
    DATA_NOTIFICATION = _bit(16)
    ACCESS = _bit(17)
    PARAMETERIZED_ACCESS = _bit(18)
    GET = _bit(19)
    SET = _bit(20)
    SELECTIVE_ACCESS = _bit(21)
    EVENT_NOTIFICATION = _bit(22)
    ACTION = _bit(23)

    @classmethod
    def from_bit_numbers(cls, *bits: int) -> Conformance:
        """Build from Blue Book bit numbers (0..23)."""
        value = cls(0)
        for n in bits:
            if not 0 <= n <= 23:
                raise ValueError(f"conformance bit {n} is outside 0..23")
            value |= cls(_bit(n))
        return value

    def bit_numbers(self) -> tuple[int, ...]:
        """The Blue Book bit numbers that are set, ascending."""
        return tuple(n for n in range(24) if int(self) & _bit(n))


def encode_conformance(value: Conformance) -> bytes:
    """``5F 1F 04 00`` followed by the three conformance octets."""
    return CONFORMANCE_HEADER + int(value).to_bytes(3, "big")


def read_conformance(reader: Reader) -> Conformance:
    """Read ``5F 1F 04 00 c0 c1 c2``; any other header is a DecodeError."""
    pos = reader.pos
    if reader.raw(4, "conformance header bytes") != CONFORMANCE_HEADER:
        raise reader.fail(
            "conformance block does not start with 5F 1F 04 00",
            expected="5F 1F 04 00",
            offset=pos,
        )
    return Conformance(int.from_bytes(reader.raw(3, "conformance bytes"), "big"))


def _check(value: int, lo: int, hi: int, name: str) -> int:
    if not lo <= value <= hi:
        raise EncodeError(f"{name} {value} is outside {lo}..{hi}")
    return value


def _optional_qos(qos: int | None) -> bytes:
    if qos is None:
        return b"\x00"
    return b"\x01" + _check(qos, -128, 127, "quality-of-service").to_bytes(1, "big", signed=True)


def _read_qos(reader: Reader) -> int | None:
    if reader.optional("a quality-of-service presence flag"):
        return reader.i8("quality-of-service")
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class InitiateRequest:
    """xDLMS InitiateRequest (tag 01, brief §4.3)."""

    TAG: ClassVar[int] = 0x01
    dedicated_key: bytes | None = field(default=None, repr=False)
    response_allowed: bool = True
    proposed_quality_of_service: int | None = None
    proposed_dlms_version_number: int = 6
    proposed_conformance: Conformance
    client_max_receive_pdu_size: int

    def encode(self) -> bytes:
        out = bytearray(b"\x01")
        if self.dedicated_key is None:
            out.append(0)
        else:
            out.append(1)
            out += encode_octet_string(self.dedicated_key)
        # BOOLEAN DEFAULT TRUE: the default is sent as 00 (brief §9.1).
        out += b"\x00" if self.response_allowed else b"\x01\x00"
        out += _optional_qos(self.proposed_quality_of_service)
        out.append(_check(self.proposed_dlms_version_number, 0, 0xFF, "dlms-version-number"))
        out += encode_conformance(self.proposed_conformance)
        out += _check(self.client_max_receive_pdu_size, 0, 0xFFFF, "max-receive-pdu-size").to_bytes(
            2, "big"
        )
        return bytes(out)


@register(InitiateRequest.TAG)
def decode_initiate_request(reader: Reader) -> InitiateRequest:
    dedicated_key = None
    if reader.optional("a dedicated-key presence flag"):
        dedicated_key = reader.octet_string("the dedicated-key")
    response_allowed = True
    if reader.optional("a response-allowed flag"):
        response_allowed = reader.boolean("response-allowed")
    qos = _read_qos(reader)
    version = reader.u8("the dlms-version-number")
    conformance = read_conformance(reader)
    return InitiateRequest(
        dedicated_key=dedicated_key,
        response_allowed=response_allowed,
        proposed_quality_of_service=qos,
        proposed_dlms_version_number=version,
        proposed_conformance=conformance,
        client_max_receive_pdu_size=reader.u16("client-max-receive-pdu-size"),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class InitiateResponse:
    """xDLMS InitiateResponse (tag 08, brief §4.3).

    ``vaa_name`` is read and written as an unsigned 16-bit number (0x0007 for LN referencing,
    0xFA00, the base name of Association SN, for SN referencing), although the ASN.1 types it
    as Integer16.
    """

    TAG: ClassVar[int] = 0x08
    negotiated_quality_of_service: int | None = None
    negotiated_dlms_version_number: int = 6
    negotiated_conformance: Conformance
    server_max_receive_pdu_size: int
    vaa_name: int = VAA_NAME_LN

    def encode(self) -> bytes:
        out = bytearray(b"\x08")
        out += _optional_qos(self.negotiated_quality_of_service)
        out.append(_check(self.negotiated_dlms_version_number, 0, 0xFF, "dlms-version-number"))
        out += encode_conformance(self.negotiated_conformance)
        out += _check(self.server_max_receive_pdu_size, 0, 0xFFFF, "max-receive-pdu-size").to_bytes(
            2, "big"
        )
        out += _check(self.vaa_name, 0, 0xFFFF, "vaa-name").to_bytes(2, "big")
        return bytes(out)


@register(InitiateResponse.TAG)
def decode_initiate_response(reader: Reader) -> InitiateResponse:
    qos = _read_qos(reader)
    version = reader.u8("the dlms-version-number")
    conformance = read_conformance(reader)
    return InitiateResponse(
        negotiated_quality_of_service=qos,
        negotiated_dlms_version_number=version,
        negotiated_conformance=conformance,
        server_max_receive_pdu_size=reader.u16("server-max-receive-pdu-size"),
        vaa_name=reader.u16("vaa-name"),
    )
