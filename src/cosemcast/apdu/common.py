"""Building blocks shared by the LN-referencing xDLMS services (GET, SET, ACTION, notifications).

Theory of operation. The GET/SET/ACTION APDUs (brief §4.5, Green Book xDLMS ASN.1 as in JD
``cosem.asn``) are A-XDR SEQUENCEs assembled from a few recurring items, each defined here
once as a frozen value type with an ``encode() -> bytes`` method and a ``read_*(reader)``
function that consumes it from a :class:`~cosemcast.apdu.base.Reader`:

* :class:`InvokeIdAndPriority` (1 byte) and :class:`LongInvokeIdAndPriority` (4 bytes), §4.4;
* :class:`CosemAttributeDescriptor` / :class:`CosemMethodDescriptor` (class-id u16 ‖ OBIS ‖
  id i8, §4.5) and the OPTIONAL :class:`SelectiveAccess` (``00`` | ``01 selector Data``);
* Get-Data-Result, the CHOICE ``00 Data`` | ``01 Data-Access-Result``;
* DataBlock-G (GET responses) and DataBlock-SA (SET requests, ACTION requests and responses).

Decisions (copy to specs/):

* **Get-Data-Result** is the union :data:`GetDataResult` = :class:`GetDataValue` |
  :class:`GetDataError`. A bare ``Data | DataAccessResult`` would be ambiguous because the
  integer Data types (``Enumerated`` ...) and the ``IntEnum`` compare equal; two small
  classes make the case explicit, narrow under ``isinstance``/``match`` and can never hold
  both a value and an error.
* **DataBlock-G** keeps ``result: bytes | DataAccessResult``: raw-data and the error are
  disjoint Python types, so ``isinstance`` tells them apart without ambiguity.
* **OPTIONAL Data** (ACTION method-invocation-parameters) uses the sentinel :data:`ABSENT`
  for "not on the wire", because ``None`` already means null-data (``01 00`` is not ``00``).
* Data-Access-Result and Action-Result values outside the enumerations raise
  ``DecodeError`` (and ``EncodeError`` when encoding).
* The reserved bits of the invoke-id bytes (4-5 of Invoke-Id-And-Priority, 24-27 of the
  long form) are ignored when decoding and written as zero.
* attribute-id and method-id are Integer8 (signed, -128..127) as in the ASN.1.
* Ranges are checked when encoding (``EncodeError``), not at construction, like the A-XDR
  types; decoding can only produce in-range values.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias, TypeVar

from cosemcast.apdu.base import Reader, encode_octet_string
from cosemcast.axdr.codec import encode_data, encode_length
from cosemcast.axdr.types import Data
from cosemcast.errors import DecodeError, EncodeError
from cosemcast.obis import Obis

__all__ = [
    "ABSENT",
    "Absent",
    "ActionResult",
    "CosemAttributeDescriptor",
    "CosemAttributeDescriptorWithSelection",
    "CosemMethodDescriptor",
    "DataAccessResult",
    "DataBlockG",
    "DataBlockSA",
    "GetDataError",
    "GetDataResult",
    "GetDataValue",
    "InvokeIdAndPriority",
    "LongInvokeIdAndPriority",
    "SelectiveAccess",
    "ServiceTag",
    "dispatch_choice",
    "encode_access_selection",
    "encode_action_result",
    "encode_block_number",
    "encode_data_access_result",
    "encode_sequence_of",
    "read_access_selection",
    "read_action_result",
    "read_attribute_descriptor",
    "read_attribute_descriptor_with_selection",
    "read_data_access_result",
    "read_data_block_g",
    "read_data_block_sa",
    "read_get_data_result",
    "read_invoke_id_and_priority",
    "read_method_descriptor",
    "read_sequence_of",
]

_DESCRIPTOR = struct.Struct(">H6sb")
_BLOCK_HEAD = struct.Struct(">BI")
_U32 = struct.Struct(">I")


class ServiceTag(enum.IntEnum):
    """First byte of the LN service APDUs (brief §4.1)."""

    GET_REQUEST = 0xC0
    SET_REQUEST = 0xC1
    EVENT_NOTIFICATION_REQUEST = 0xC2
    ACTION_REQUEST = 0xC3
    GET_RESPONSE = 0xC4
    SET_RESPONSE = 0xC5
    ACTION_RESPONSE = 0xC7


class DataAccessResult(enum.IntEnum):
    """Data-Access-Result (brief §4.5, JD cosem.asn)."""

    SUCCESS = 0
    HARDWARE_FAULT = 1
    TEMPORARY_FAILURE = 2
    READ_WRITE_DENIED = 3
    OBJECT_UNDEFINED = 4
    OBJECT_CLASS_INCONSISTENT = 9
    OBJECT_UNAVAILABLE = 11
    TYPE_UNMATCHED = 12
    SCOPE_OF_ACCESS_VIOLATED = 13
    DATA_BLOCK_UNAVAILABLE = 14
    LONG_GET_ABORTED = 15
    NO_LONG_GET_IN_PROGRESS = 16
    LONG_SET_ABORTED = 17
    NO_LONG_SET_IN_PROGRESS = 18
    DATA_BLOCK_NUMBER_INVALID = 19
    OTHER_REASON = 250


class ActionResult(enum.IntEnum):
    """Action-Result (JD cosem.asn)."""

    SUCCESS = 0
    HARDWARE_FAULT = 1
    TEMPORARY_FAILURE = 2
    READ_WRITE_DENIED = 3
    OBJECT_UNDEFINED = 4
    OBJECT_CLASS_INCONSISTENT = 9
    OBJECT_UNAVAILABLE = 11
    TYPE_UNMATCHED = 12
    SCOPE_OF_ACCESS_VIOLATED = 13
    DATA_BLOCK_UNAVAILABLE = 14
    LONG_ACTION_ABORTED = 15
    NO_LONG_ACTION_IN_PROGRESS = 16
    OTHER_REASON = 250


_DAR_BY_VALUE: Final[dict[int, DataAccessResult]] = {int(m): m for m in DataAccessResult}
_ACTION_RESULT_BY_VALUE: Final[dict[int, ActionResult]] = {int(m): m for m in ActionResult}


class Absent(enum.Enum):
    """Type of :data:`ABSENT`: an OPTIONAL Data field that is not on the wire."""

    ABSENT = "absent"

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = Absent.ABSENT


def _enum_byte(value: int, table: Mapping[int, enum.IntEnum], what: str) -> bytes:
    if table.get(value) is None:
        raise EncodeError(f"{value!r} is not a {what} value")
    return bytes((value,))


# --- invoke-id ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InvokeIdAndPriority:
    """Invoke-Id-And-Priority (brief §4.4): bits 0-3 invoke-id, bit 6 service-class
    (1 = confirmed), bit 7 priority (1 = high). The default is ``C1``, the byte most
    clients send."""

    invoke_id: int = 1
    confirmed: bool = True
    high_priority: bool = True

    @classmethod
    def from_byte(cls, value: int) -> InvokeIdAndPriority:
        if not 0 <= value <= 0xFF:
            raise DecodeError(
                f"Invoke-Id-And-Priority {value} is not a byte", expected="a byte 0..255"
            )
        return _INVOKE_TABLE[value]

    def to_byte(self) -> int:
        if not 0 <= self.invoke_id <= 15:
            raise EncodeError(f"invoke-id {self.invoke_id} is out of range 0..15")
        return (
            self.invoke_id | (0x40 if self.confirmed else 0) | (0x80 if self.high_priority else 0)
        )


_INVOKE_TABLE: Final[tuple[InvokeIdAndPriority, ...]] = tuple(
    InvokeIdAndPriority(b & 0x0F, bool(b & 0x40), bool(b & 0x80)) for b in range(256)
)


def read_invoke_id_and_priority(reader: Reader) -> InvokeIdAndPriority:
    return _INVOKE_TABLE[reader.u8("Invoke-Id-And-Priority")]


class LongInvokeIdAndPriority(int):
    """Long-Invoke-Id-And-Priority (brief §4.4, 4 bytes): bits 0-23 invoke-id, 28
    self-descriptive, 29 processing-option (1 = break on error), 30 service-class
    (1 = confirmed), 31 priority (1 = high). Bit layout single-sourced [X1].

    An immutable ``int`` (the 32-bit wire value, reserved bits 24-27 zero) with the fields as
    properties: every DATA-NOTIFICATION carries one, and an ``int`` is built ~5x faster than
    a frozen dataclass on that hot path. Construct it from its fields like a dataclass.
    """

    __slots__ = ()

    def __new__(
        cls,
        invoke_id: int = 0,
        self_descriptive: bool = False,
        break_on_error: bool = False,
        confirmed: bool = False,
        high_priority: bool = False,
    ) -> LongInvokeIdAndPriority:
        if not 0 <= invoke_id <= 0xFFFFFF:
            raise EncodeError(f"long invoke-id {invoke_id} is out of range 0..2^24-1")
        return int.__new__(
            cls,
            invoke_id
            | (1 << 28 if self_descriptive else 0)
            | (1 << 29 if break_on_error else 0)
            | (1 << 30 if confirmed else 0)
            | (1 << 31 if high_priority else 0),
        )

    @classmethod
    def from_int(cls, value: int) -> LongInvokeIdAndPriority:
        if not 0 <= value <= 0xFFFFFFFF:
            raise DecodeError(
                f"Long-Invoke-Id-And-Priority {value} is not a 32-bit value",
                expected="an unsigned 32-bit value",
            )
        return int.__new__(cls, value & 0xF0FFFFFF)

    def to_int(self) -> int:
        return int(self)

    @property
    def invoke_id(self) -> int:
        return self & 0xFFFFFF

    @property
    def self_descriptive(self) -> bool:
        return bool(self & 1 << 28)

    @property
    def break_on_error(self) -> bool:
        return bool(self & 1 << 29)

    @property
    def confirmed(self) -> bool:
        return bool(self & 1 << 30)

    @property
    def high_priority(self) -> bool:
        return bool(self & 1 << 31)

    def __repr__(self) -> str:
        return (
            f"LongInvokeIdAndPriority(invoke_id={self.invoke_id}, "
            f"self_descriptive={self.self_descriptive}, break_on_error={self.break_on_error}, "
            f"confirmed={self.confirmed}, high_priority={self.high_priority})"
        )


# --- descriptors and selective access --------------------------------------------------------


def _pack_descriptor(class_id: int, instance_id: Obis, member_id: int, what: str) -> bytes:
    try:
        raw = bytes(instance_id)
        if len(raw) != 6:
            raise EncodeError(f"{what} instance-id must be 6 bytes, got {len(raw)}")
        return _DESCRIPTOR.pack(class_id, raw, member_id)
    except (struct.error, TypeError, ValueError) as exc:
        raise EncodeError(f"cannot encode {what} (class-id u16, OBIS, id int8): {exc}") from exc


@dataclass(frozen=True, slots=True)
class CosemAttributeDescriptor:
    """Cosem-Attribute-Descriptor: class-id u16 ‖ instance-id (OBIS) ‖ attribute-id int8."""

    class_id: int
    instance_id: Obis
    attribute_id: int

    def encode(self) -> bytes:
        return _pack_descriptor(
            self.class_id, self.instance_id, self.attribute_id, "Cosem-Attribute-Descriptor"
        )


@dataclass(frozen=True, slots=True)
class CosemMethodDescriptor:
    """Cosem-Method-Descriptor: class-id u16 ‖ instance-id (OBIS) ‖ method-id int8."""

    class_id: int
    instance_id: Obis
    method_id: int

    def encode(self) -> bytes:
        return _pack_descriptor(
            self.class_id, self.instance_id, self.method_id, "Cosem-Method-Descriptor"
        )


def read_attribute_descriptor(reader: Reader) -> CosemAttributeDescriptor:
    raw = reader.raw(9, "bytes of a Cosem-Attribute-Descriptor")
    class_id, obis, attribute_id = _DESCRIPTOR.unpack(raw)
    return CosemAttributeDescriptor(class_id, Obis.from_bytes(obis), attribute_id)


def read_method_descriptor(reader: Reader) -> CosemMethodDescriptor:
    raw = reader.raw(9, "bytes of a Cosem-Method-Descriptor")
    class_id, obis, method_id = _DESCRIPTOR.unpack(raw)
    return CosemMethodDescriptor(class_id, Obis.from_bytes(obis), method_id)


@dataclass(frozen=True, slots=True)
class SelectiveAccess:
    """Selective-Access-Descriptor: access-selector u8 ‖ access-parameters (Data)."""

    selector: int
    parameters: Data

    def encode(self) -> bytes:
        if not 0 <= self.selector <= 0xFF:
            raise EncodeError(f"access-selector {self.selector} is out of range 0..255")
        return bytes((self.selector,)) + encode_data(self.parameters)


def encode_access_selection(selection: SelectiveAccess | None) -> bytes:
    """OPTIONAL access-selection: ``00`` absent, ``01 selector Data`` present (brief §4.5)."""
    if selection is None:
        return b"\x00"
    return b"\x01" + selection.encode()


def read_access_selection(reader: Reader) -> SelectiveAccess | None:
    if not reader.optional("the access-selection presence flag"):
        return None
    selector = reader.u8("an access-selector")
    return SelectiveAccess(selector, reader.data())


@dataclass(frozen=True, slots=True)
class CosemAttributeDescriptorWithSelection:
    """Cosem-Attribute-Descriptor-With-Selection: descriptor ‖ OPTIONAL access-selection."""

    cosem_attribute_descriptor: CosemAttributeDescriptor
    access_selection: SelectiveAccess | None = None

    def encode(self) -> bytes:
        return self.cosem_attribute_descriptor.encode() + encode_access_selection(
            self.access_selection
        )


def read_attribute_descriptor_with_selection(
    reader: Reader,
) -> CosemAttributeDescriptorWithSelection:
    descriptor = read_attribute_descriptor(reader)
    return CosemAttributeDescriptorWithSelection(descriptor, read_access_selection(reader))


# --- results ---------------------------------------------------------------------------------


def read_data_access_result(reader: Reader) -> DataAccessResult:
    pos = reader.pos
    value = _DAR_BY_VALUE.get(reader.u8("a Data-Access-Result"))
    if value is None:
        raise reader.fail(
            f"0x{reader.buf[pos]:02X} is not a Data-Access-Result value",
            "a Data-Access-Result",
            offset=pos,
        )
    return value


def read_action_result(reader: Reader) -> ActionResult:
    pos = reader.pos
    value = _ACTION_RESULT_BY_VALUE.get(reader.u8("an Action-Result"))
    if value is None:
        raise reader.fail(
            f"0x{reader.buf[pos]:02X} is not an Action-Result value", "an Action-Result", offset=pos
        )
    return value


def encode_data_access_result(value: DataAccessResult) -> bytes:
    return _enum_byte(value, _DAR_BY_VALUE, "Data-Access-Result")


def encode_action_result(value: ActionResult) -> bytes:
    return _enum_byte(value, _ACTION_RESULT_BY_VALUE, "Action-Result")


@dataclass(frozen=True, slots=True)
class GetDataValue:
    """Get-Data-Result choice ``[0] data``: the attribute value."""

    value: Data

    def encode(self) -> bytes:
        return b"\x00" + encode_data(self.value)


@dataclass(frozen=True, slots=True)
class GetDataError:
    """Get-Data-Result choice ``[1] data-access-result``: why there is no value."""

    data_access_result: DataAccessResult

    def encode(self) -> bytes:
        return b"\x01" + encode_data_access_result(self.data_access_result)


GetDataResult: TypeAlias = GetDataValue | GetDataError


def read_get_data_result(reader: Reader) -> GetDataResult:
    pos = reader.pos
    choice = reader.u8("a Get-Data-Result choice")
    if choice == 0:
        return GetDataValue(reader.data())
    if choice == 1:
        return GetDataError(read_data_access_result(reader))
    raise reader.fail(
        f"Get-Data-Result choice 0x{choice:02X} is neither 00 (data) nor 01 (data-access-result)",
        "a Get-Data-Result choice",
        offset=pos,
    )


# --- data blocks -----------------------------------------------------------------------------


def _block_head(last_block: bool, block_number: int) -> bytes:
    try:
        return _BLOCK_HEAD.pack(1 if last_block else 0, block_number)
    except struct.error as exc:
        raise EncodeError(f"block-number {block_number!r} is not an Unsigned32") from exc


@dataclass(frozen=True, slots=True)
class DataBlockG:
    """DataBlock-G (GET responses): last-block ‖ block-number u32 ‖ result, where result is
    ``00 len raw-data`` (``bytes``) or ``01 Data-Access-Result``."""

    last_block: bool
    block_number: int
    result: bytes | DataAccessResult

    def encode(self) -> bytes:
        head = _block_head(self.last_block, self.block_number)
        result = self.result
        if isinstance(result, bytes | bytearray | memoryview):
            return head + b"\x00" + encode_octet_string(bytes(result))
        return head + b"\x01" + encode_data_access_result(result)


def read_data_block_g(reader: Reader) -> DataBlockG:
    last_block = reader.boolean("last-block")
    block_number = reader.u32("a block-number")
    pos = reader.pos
    choice = reader.u8("a DataBlock-G result choice")
    if choice == 0:
        return DataBlockG(last_block, block_number, reader.octet_string("raw-data"))
    if choice == 1:
        return DataBlockG(last_block, block_number, read_data_access_result(reader))
    raise reader.fail(
        f"DataBlock-G result choice 0x{choice:02X} is neither 00 (raw-data) nor 01 (error)",
        "a DataBlock-G result choice",
        offset=pos,
    )


@dataclass(frozen=True, slots=True)
class DataBlockSA:
    """DataBlock-SA (SET requests, ACTION requests/responses): last-block ‖ block-number u32
    ‖ raw-data (OCTET STRING)."""

    last_block: bool
    block_number: int
    raw_data: bytes

    def encode(self) -> bytes:
        return _block_head(self.last_block, self.block_number) + encode_octet_string(
            bytes(self.raw_data)
        )


def read_data_block_sa(reader: Reader) -> DataBlockSA:
    last_block = reader.boolean("last-block")
    block_number = reader.u32("a block-number")
    return DataBlockSA(last_block, block_number, reader.octet_string("raw-data"))


def encode_block_number(block_number: int) -> bytes:
    try:
        return _U32.pack(block_number)
    except struct.error as exc:
        raise EncodeError(f"block-number {block_number!r} is not an Unsigned32") from exc


# --- SEQUENCE OF -----------------------------------------------------------------------------

_T = TypeVar("_T")


def encode_sequence_of(items: Sequence[_T], encode_item: Callable[[_T], bytes]) -> bytes:
    """A-XDR SEQUENCE OF: count (length rule, brief §9.1) ‖ items."""
    return encode_length(len(items)) + b"".join([encode_item(item) for item in items])


def read_sequence_of(
    reader: Reader, read_item: Callable[[Reader], _T], what: str
) -> tuple[_T, ...]:
    pos = reader.pos
    count = reader.length()
    if count > reader.remaining():
        raise reader.fail(
            f"SEQUENCE OF {what} announces {count} items but only {reader.remaining()} "
            "bytes follow",
            f"at most {reader.remaining()} items",
            offset=pos,
        )
    return tuple([read_item(reader) for _ in range(count)])


def dispatch_choice(reader: Reader, table: Mapping[int, Callable[[Reader], _T]], what: str) -> _T:
    """Read a CHOICE byte and hand the reader to the decoder of that alternative."""
    pos = reader.pos
    if pos >= reader.end:
        raise reader.fail(f"truncated input, expected a {what} choice", f"a {what} choice")
    choice = reader.buf[pos]
    decode = table.get(choice)
    if decode is None:
        known = ", ".join(f"{c:02X}" for c in sorted(table))
        raise reader.fail(
            f"unknown {what} choice 0x{choice:02X} (known: {known})", f"a {what} choice"
        )
    reader.pos = pos + 1
    return decode(reader)
