"""SET-Request (``C1``) and SET-Response (``C5``), LN referencing (brief §4.5).

Theory of operation. Each APDU is ``tag ‖ choice ‖ Invoke-Id-And-Priority ‖ body``; one
decoder per tag reads the choice byte and dispatches. The bodies, from the Green Book ASN.1
(JD ``cosem.asn``):

=====================================  ==================================================
SetRequestNormal (01)                  attribute-descriptor ‖ access-selection OPT ‖ Data
SetRequestWithFirstDataBlock (02)      attribute-descriptor ‖ access-selection OPT ‖
                                       DataBlock-SA
SetRequestWithDataBlock (03)           DataBlock-SA
SetRequestWithList (04)                SEQUENCE OF descriptor-with-selection ‖
                                       SEQUENCE OF Data
SetRequestWithListAndFirstDataBlock    SEQUENCE OF descriptor-with-selection ‖
(05)                                   DataBlock-SA
SetResponseNormal (01)                 Data-Access-Result
SetResponseDataBlock (02)              block-number u32
SetResponseLastDataBlock (03)          Data-Access-Result ‖ block-number u32
SetResponseLastDataBlockWithList (04)  SEQUENCE OF Data-Access-Result ‖ block-number u32
SetResponseWithList (05)               SEQUENCE OF Data-Access-Result
=====================================  ==================================================

DataBlock-SA = last-block BOOLEAN ‖ block-number u32 ‖ raw-data OCTET STRING. The two lists of
:class:`SetRequestWithList` are encoded as given; the Green Book expects one value per
descriptor but the codec does not enforce it (a server answers a mismatch with an error).
Invoke-Id-And-Priority comes last in each dataclass (default ``C1``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, TypeAlias

from cosemcast.apdu.base import Reader, register
from cosemcast.apdu.common import (
    CosemAttributeDescriptor,
    CosemAttributeDescriptorWithSelection,
    DataAccessResult,
    DataBlockSA,
    InvokeIdAndPriority,
    SelectiveAccess,
    ServiceTag,
    dispatch_choice,
    encode_access_selection,
    encode_block_number,
    encode_data_access_result,
    encode_sequence_of,
    read_access_selection,
    read_attribute_descriptor,
    read_attribute_descriptor_with_selection,
    read_data_access_result,
    read_data_block_sa,
    read_invoke_id_and_priority,
    read_sequence_of,
)
from cosemcast.axdr.codec import encode_data
from cosemcast.axdr.types import Data

__all__ = [
    "SetRequest",
    "SetRequestChoice",
    "SetRequestNormal",
    "SetRequestWithDataBlock",
    "SetRequestWithFirstDataBlock",
    "SetRequestWithList",
    "SetRequestWithListAndFirstDataBlock",
    "SetResponse",
    "SetResponseChoice",
    "SetResponseDataBlock",
    "SetResponseLastDataBlock",
    "SetResponseLastDataBlockWithList",
    "SetResponseNormal",
    "SetResponseWithList",
]

_DEFAULT_INVOKE = InvokeIdAndPriority()
_DESCRIPTOR_WITH_SELECTION = "Cosem-Attribute-Descriptor-With-Selection"


class SetRequestChoice(enum.IntEnum):
    NORMAL = 1
    WITH_FIRST_DATABLOCK = 2
    WITH_DATABLOCK = 3
    WITH_LIST = 4
    WITH_LIST_AND_FIRST_DATABLOCK = 5


class SetResponseChoice(enum.IntEnum):
    NORMAL = 1
    DATABLOCK = 2
    LAST_DATABLOCK = 3
    LAST_DATABLOCK_WITH_LIST = 4
    WITH_LIST = 5


def _head(tag: int, choice: int, invoke: InvokeIdAndPriority) -> bytes:
    return bytes((tag, choice, invoke.to_byte()))


def _encode_descriptor_list(items: tuple[CosemAttributeDescriptorWithSelection, ...]) -> bytes:
    return encode_sequence_of(items, CosemAttributeDescriptorWithSelection.encode)


def _encode_results(results: tuple[DataAccessResult, ...]) -> bytes:
    return encode_sequence_of(results, encode_data_access_result)


# --- requests --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetRequestNormal:
    """Set-Request-Normal: write one attribute."""

    TAG: ClassVar[int] = ServiceTag.SET_REQUEST
    CHOICE: ClassVar[int] = SetRequestChoice.NORMAL

    cosem_attribute_descriptor: CosemAttributeDescriptor
    value: Data
    access_selection: SelectiveAccess | None = None
    invoke_id_and_priority: InvokeIdAndPriority = field(default=_DEFAULT_INVOKE)

    def encode(self) -> bytes:
        return (
            _head(self.TAG, self.CHOICE, self.invoke_id_and_priority)
            + self.cosem_attribute_descriptor.encode()
            + encode_access_selection(self.access_selection)
            + encode_data(self.value)
        )


@dataclass(frozen=True, slots=True)
class SetRequestWithFirstDataBlock:
    """Set-Request-With-First-Datablock: start writing one attribute in blocks."""

    TAG: ClassVar[int] = ServiceTag.SET_REQUEST
    CHOICE: ClassVar[int] = SetRequestChoice.WITH_FIRST_DATABLOCK

    cosem_attribute_descriptor: CosemAttributeDescriptor
    datablock: DataBlockSA
    access_selection: SelectiveAccess | None = None
    invoke_id_and_priority: InvokeIdAndPriority = field(default=_DEFAULT_INVOKE)

    def encode(self) -> bytes:
        return (
            _head(self.TAG, self.CHOICE, self.invoke_id_and_priority)
            + self.cosem_attribute_descriptor.encode()
            + encode_access_selection(self.access_selection)
            + self.datablock.encode()
        )


@dataclass(frozen=True, slots=True)
class SetRequestWithDataBlock:
    """Set-Request-With-Datablock: a following block of a block-wise SET."""

    TAG: ClassVar[int] = ServiceTag.SET_REQUEST
    CHOICE: ClassVar[int] = SetRequestChoice.WITH_DATABLOCK

    datablock: DataBlockSA
    invoke_id_and_priority: InvokeIdAndPriority = field(default=_DEFAULT_INVOKE)

    def encode(self) -> bytes:
        return _head(self.TAG, self.CHOICE, self.invoke_id_and_priority) + self.datablock.encode()


@dataclass(frozen=True, slots=True)
class SetRequestWithList:
    """Set-Request-With-List: write several attributes (one value per descriptor)."""

    TAG: ClassVar[int] = ServiceTag.SET_REQUEST
    CHOICE: ClassVar[int] = SetRequestChoice.WITH_LIST

    attribute_descriptor_list: tuple[CosemAttributeDescriptorWithSelection, ...]
    value_list: tuple[Data, ...]
    invoke_id_and_priority: InvokeIdAndPriority = field(default=_DEFAULT_INVOKE)

    def encode(self) -> bytes:
        return (
            _head(self.TAG, self.CHOICE, self.invoke_id_and_priority)
            + _encode_descriptor_list(self.attribute_descriptor_list)
            + encode_sequence_of(self.value_list, encode_data)
        )


@dataclass(frozen=True, slots=True)
class SetRequestWithListAndFirstDataBlock:
    """Set-Request-With-List-And-First-Datablock: several attributes, values in blocks."""

    TAG: ClassVar[int] = ServiceTag.SET_REQUEST
    CHOICE: ClassVar[int] = SetRequestChoice.WITH_LIST_AND_FIRST_DATABLOCK

    attribute_descriptor_list: tuple[CosemAttributeDescriptorWithSelection, ...]
    datablock: DataBlockSA
    invoke_id_and_priority: InvokeIdAndPriority = field(default=_DEFAULT_INVOKE)

    def encode(self) -> bytes:
        return (
            _head(self.TAG, self.CHOICE, self.invoke_id_and_priority)
            + _encode_descriptor_list(self.attribute_descriptor_list)
            + self.datablock.encode()
        )


# --- responses -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetResponseNormal:
    """Set-Response-Normal: the outcome of a Set-Request-Normal."""

    TAG: ClassVar[int] = ServiceTag.SET_RESPONSE
    CHOICE: ClassVar[int] = SetResponseChoice.NORMAL

    result: DataAccessResult
    invoke_id_and_priority: InvokeIdAndPriority = field(default=_DEFAULT_INVOKE)

    def encode(self) -> bytes:
        return _head(
            self.TAG, self.CHOICE, self.invoke_id_and_priority
        ) + encode_data_access_result(self.result)


@dataclass(frozen=True, slots=True)
class SetResponseDataBlock:
    """Set-Response-Datablock: acknowledges block ``block_number``; send the next one."""

    TAG: ClassVar[int] = ServiceTag.SET_RESPONSE
    CHOICE: ClassVar[int] = SetResponseChoice.DATABLOCK

    block_number: int
    invoke_id_and_priority: InvokeIdAndPriority = field(default=_DEFAULT_INVOKE)

    def encode(self) -> bytes:
        return _head(self.TAG, self.CHOICE, self.invoke_id_and_priority) + encode_block_number(
            self.block_number
        )


@dataclass(frozen=True, slots=True)
class SetResponseLastDataBlock:
    """Set-Response-Last-Datablock: the outcome after the last block of a block-wise SET."""

    TAG: ClassVar[int] = ServiceTag.SET_RESPONSE
    CHOICE: ClassVar[int] = SetResponseChoice.LAST_DATABLOCK

    result: DataAccessResult
    block_number: int
    invoke_id_and_priority: InvokeIdAndPriority = field(default=_DEFAULT_INVOKE)

    def encode(self) -> bytes:
        return (
            _head(self.TAG, self.CHOICE, self.invoke_id_and_priority)
            + encode_data_access_result(self.result)
            + encode_block_number(self.block_number)
        )


@dataclass(frozen=True, slots=True)
class SetResponseLastDataBlockWithList:
    """Set-Response-Last-Datablock-With-List: one outcome per attribute, after the last block."""

    TAG: ClassVar[int] = ServiceTag.SET_RESPONSE
    CHOICE: ClassVar[int] = SetResponseChoice.LAST_DATABLOCK_WITH_LIST

    result: tuple[DataAccessResult, ...]
    block_number: int
    invoke_id_and_priority: InvokeIdAndPriority = field(default=_DEFAULT_INVOKE)

    def encode(self) -> bytes:
        return (
            _head(self.TAG, self.CHOICE, self.invoke_id_and_priority)
            + _encode_results(self.result)
            + encode_block_number(self.block_number)
        )


@dataclass(frozen=True, slots=True)
class SetResponseWithList:
    """Set-Response-With-List: one outcome per attribute of a Set-Request-With-List."""

    TAG: ClassVar[int] = ServiceTag.SET_RESPONSE
    CHOICE: ClassVar[int] = SetResponseChoice.WITH_LIST

    result: tuple[DataAccessResult, ...]
    invoke_id_and_priority: InvokeIdAndPriority = field(default=_DEFAULT_INVOKE)

    def encode(self) -> bytes:
        return _head(self.TAG, self.CHOICE, self.invoke_id_and_priority) + _encode_results(
            self.result
        )


SetRequest: TypeAlias = (
    SetRequestNormal
    | SetRequestWithFirstDataBlock
    | SetRequestWithDataBlock
    | SetRequestWithList
    | SetRequestWithListAndFirstDataBlock
)
SetResponse: TypeAlias = (
    SetResponseNormal
    | SetResponseDataBlock
    | SetResponseLastDataBlock
    | SetResponseLastDataBlockWithList
    | SetResponseWithList
)


# --- decoders --------------------------------------------------------------------------------


def _read_data(r: Reader) -> Data:
    return r.data()


def _set_request_normal(r: Reader) -> SetRequestNormal:
    invoke = read_invoke_id_and_priority(r)
    descriptor = read_attribute_descriptor(r)
    selection = read_access_selection(r)
    return SetRequestNormal(descriptor, r.data(), selection, invoke)


def _set_request_with_first_datablock(r: Reader) -> SetRequestWithFirstDataBlock:
    invoke = read_invoke_id_and_priority(r)
    descriptor = read_attribute_descriptor(r)
    selection = read_access_selection(r)
    return SetRequestWithFirstDataBlock(descriptor, read_data_block_sa(r), selection, invoke)


def _set_request_with_datablock(r: Reader) -> SetRequestWithDataBlock:
    invoke = read_invoke_id_and_priority(r)
    return SetRequestWithDataBlock(read_data_block_sa(r), invoke)


def _set_request_with_list(r: Reader) -> SetRequestWithList:
    invoke = read_invoke_id_and_priority(r)
    descriptors = read_sequence_of(
        r, read_attribute_descriptor_with_selection, _DESCRIPTOR_WITH_SELECTION
    )
    values = read_sequence_of(r, _read_data, "Data")
    return SetRequestWithList(descriptors, values, invoke)


def _set_request_with_list_and_first_datablock(r: Reader) -> SetRequestWithListAndFirstDataBlock:
    invoke = read_invoke_id_and_priority(r)
    descriptors = read_sequence_of(
        r, read_attribute_descriptor_with_selection, _DESCRIPTOR_WITH_SELECTION
    )
    return SetRequestWithListAndFirstDataBlock(descriptors, read_data_block_sa(r), invoke)


def _set_response_normal(r: Reader) -> SetResponseNormal:
    invoke = read_invoke_id_and_priority(r)
    return SetResponseNormal(read_data_access_result(r), invoke)


def _set_response_datablock(r: Reader) -> SetResponseDataBlock:
    invoke = read_invoke_id_and_priority(r)
    return SetResponseDataBlock(r.u32("a block-number"), invoke)


def _set_response_last_datablock(r: Reader) -> SetResponseLastDataBlock:
    invoke = read_invoke_id_and_priority(r)
    result = read_data_access_result(r)
    return SetResponseLastDataBlock(result, r.u32("a block-number"), invoke)


def _set_response_last_datablock_with_list(r: Reader) -> SetResponseLastDataBlockWithList:
    invoke = read_invoke_id_and_priority(r)
    results = read_sequence_of(r, read_data_access_result, "Data-Access-Result")
    return SetResponseLastDataBlockWithList(results, r.u32("a block-number"), invoke)


def _set_response_with_list(r: Reader) -> SetResponseWithList:
    invoke = read_invoke_id_and_priority(r)
    results = read_sequence_of(r, read_data_access_result, "Data-Access-Result")
    return SetResponseWithList(results, invoke)


_REQUESTS: dict[int, Callable[[Reader], SetRequest]] = {
    SetRequestChoice.NORMAL: _set_request_normal,
    SetRequestChoice.WITH_FIRST_DATABLOCK: _set_request_with_first_datablock,
    SetRequestChoice.WITH_DATABLOCK: _set_request_with_datablock,
    SetRequestChoice.WITH_LIST: _set_request_with_list,
    SetRequestChoice.WITH_LIST_AND_FIRST_DATABLOCK: _set_request_with_list_and_first_datablock,
}
_RESPONSES: dict[int, Callable[[Reader], SetResponse]] = {
    SetResponseChoice.NORMAL: _set_response_normal,
    SetResponseChoice.DATABLOCK: _set_response_datablock,
    SetResponseChoice.LAST_DATABLOCK: _set_response_last_datablock,
    SetResponseChoice.LAST_DATABLOCK_WITH_LIST: _set_response_last_datablock_with_list,
    SetResponseChoice.WITH_LIST: _set_response_with_list,
}


@register(ServiceTag.SET_REQUEST)
def decode_set_request(reader: Reader) -> SetRequest:
    return dispatch_choice(reader, _REQUESTS, "SET-Request")


@register(ServiceTag.SET_RESPONSE)
def decode_set_response(reader: Reader) -> SetResponse:
    return dispatch_choice(reader, _RESPONSES, "SET-Response")
