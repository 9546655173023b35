"""GET-Request (``C0``) and GET-Response (``C4``), LN referencing (brief §4.5).

Theory of operation. Each APDU is ``tag ‖ choice ‖ Invoke-Id-And-Priority ‖ body``; one
decoder per tag reads the choice byte and dispatches to the decoder of that alternative
(:func:`~cosemcast.apdu.common.dispatch_choice`). The bodies, from the Green Book ASN.1
(JD ``cosem.asn``):

=========================  ==========================================================
GetRequestNormal (01)      attribute-descriptor ‖ access-selection OPTIONAL
GetRequestNext (02)        block-number u32
GetRequestWithList (03)    SEQUENCE OF (attribute-descriptor ‖ access-selection OPTIONAL)
GetResponseNormal (01)     Get-Data-Result (``00 Data`` | ``01 Data-Access-Result``)
GetResponseWithDataBlock   DataBlock-G: last-block ‖ block-number u32 ‖
(02)                       (``00 len raw-data`` | ``01 Data-Access-Result``)
GetResponseWithList (03)   SEQUENCE OF Get-Data-Result
=========================  ==========================================================

A Get-Data-Result is :class:`~cosemcast.apdu.common.GetDataValue` (the value) or
:class:`~cosemcast.apdu.common.GetDataError` (a ``DataAccessResult``); see the decisions in
:mod:`cosemcast.apdu.common`. The response decode path is kept short because decoding
profile buffers through :class:`GetResponseNormal` is the hot path: one byte for the choice,
one table lookup for the invoke-id, then the A-XDR Data decoder.

Invoke-Id-And-Priority comes last in each dataclass (with the default ``C1``) so that the
payload can be given positionally; on the wire it follows the choice byte.
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
    DataBlockG,
    GetDataResult,
    InvokeIdAndPriority,
    SelectiveAccess,
    ServiceTag,
    dispatch_choice,
    encode_access_selection,
    encode_block_number,
    encode_sequence_of,
    read_access_selection,
    read_attribute_descriptor,
    read_attribute_descriptor_with_selection,
    read_data_block_g,
    read_get_data_result,
    read_invoke_id_and_priority,
    read_sequence_of,
)

__all__ = [
    "GetRequest",
    "GetRequestChoice",
    "GetRequestNext",
    "GetRequestNormal",
    "GetRequestWithList",
    "GetResponse",
    "GetResponseChoice",
    "GetResponseNormal",
    "GetResponseWithDataBlock",
    "GetResponseWithList",
]

_DEFAULT_INVOKE = InvokeIdAndPriority()


class GetRequestChoice(enum.IntEnum):
    NORMAL = 1
    NEXT = 2
    WITH_LIST = 3


class GetResponseChoice(enum.IntEnum):
    NORMAL = 1
    WITH_DATABLOCK = 2
    WITH_LIST = 3


def _head(tag: int, choice: int, invoke: InvokeIdAndPriority) -> bytes:
    return bytes((tag, choice, invoke.to_byte()))


@dataclass(frozen=True, slots=True)
class GetRequestNormal:
    """Get-Request-Normal: read one attribute, optionally with selective access."""

    TAG: ClassVar[int] = ServiceTag.GET_REQUEST
    CHOICE: ClassVar[int] = GetRequestChoice.NORMAL

    cosem_attribute_descriptor: CosemAttributeDescriptor
    access_selection: SelectiveAccess | None = None
    invoke_id_and_priority: InvokeIdAndPriority = field(default=_DEFAULT_INVOKE)

    def encode(self) -> bytes:
        return (
            _head(self.TAG, self.CHOICE, self.invoke_id_and_priority)
            + self.cosem_attribute_descriptor.encode()
            + encode_access_selection(self.access_selection)
        )


@dataclass(frozen=True, slots=True)
class GetRequestNext:
    """Get-Request-Next: ask for the next block after ``block_number`` (block transfer)."""

    TAG: ClassVar[int] = ServiceTag.GET_REQUEST
    CHOICE: ClassVar[int] = GetRequestChoice.NEXT

    block_number: int
    invoke_id_and_priority: InvokeIdAndPriority = field(default=_DEFAULT_INVOKE)

    def encode(self) -> bytes:
        return _head(self.TAG, self.CHOICE, self.invoke_id_and_priority) + encode_block_number(
            self.block_number
        )


@dataclass(frozen=True, slots=True)
class GetRequestWithList:
    """Get-Request-With-List: read several attributes in one request."""

    TAG: ClassVar[int] = ServiceTag.GET_REQUEST
    CHOICE: ClassVar[int] = GetRequestChoice.WITH_LIST

    attribute_descriptor_list: tuple[CosemAttributeDescriptorWithSelection, ...]
    invoke_id_and_priority: InvokeIdAndPriority = field(default=_DEFAULT_INVOKE)

    def encode(self) -> bytes:
        return _head(self.TAG, self.CHOICE, self.invoke_id_and_priority) + encode_sequence_of(
            self.attribute_descriptor_list, CosemAttributeDescriptorWithSelection.encode
        )


@dataclass(frozen=True, slots=True)
class GetResponseNormal:
    """Get-Response-Normal: the value of one attribute, or why it could not be read."""

    TAG: ClassVar[int] = ServiceTag.GET_RESPONSE
    CHOICE: ClassVar[int] = GetResponseChoice.NORMAL

    result: GetDataResult
    invoke_id_and_priority: InvokeIdAndPriority = field(default=_DEFAULT_INVOKE)

    def encode(self) -> bytes:
        return _head(self.TAG, self.CHOICE, self.invoke_id_and_priority) + self.result.encode()


@dataclass(frozen=True, slots=True)
class GetResponseWithDataBlock:
    """Get-Response-With-Datablock: one block of a long GET (DataBlock-G)."""

    TAG: ClassVar[int] = ServiceTag.GET_RESPONSE
    CHOICE: ClassVar[int] = GetResponseChoice.WITH_DATABLOCK

    result: DataBlockG
    invoke_id_and_priority: InvokeIdAndPriority = field(default=_DEFAULT_INVOKE)

    def encode(self) -> bytes:
        return _head(self.TAG, self.CHOICE, self.invoke_id_and_priority) + self.result.encode()


@dataclass(frozen=True, slots=True)
class GetResponseWithList:
    """Get-Response-With-List: one Get-Data-Result per requested attribute, in order."""

    TAG: ClassVar[int] = ServiceTag.GET_RESPONSE
    CHOICE: ClassVar[int] = GetResponseChoice.WITH_LIST

    result: tuple[GetDataResult, ...]
    invoke_id_and_priority: InvokeIdAndPriority = field(default=_DEFAULT_INVOKE)

    def encode(self) -> bytes:
        return _head(self.TAG, self.CHOICE, self.invoke_id_and_priority) + encode_sequence_of(
            self.result, _encode_get_data_result
        )


def _encode_get_data_result(result: GetDataResult) -> bytes:
    return result.encode()


GetRequest: TypeAlias = GetRequestNormal | GetRequestNext | GetRequestWithList
GetResponse: TypeAlias = GetResponseNormal | GetResponseWithDataBlock | GetResponseWithList


def _get_request_normal(r: Reader) -> GetRequestNormal:
    invoke = read_invoke_id_and_priority(r)
    descriptor = read_attribute_descriptor(r)
    return GetRequestNormal(descriptor, read_access_selection(r), invoke)


def _get_request_next(r: Reader) -> GetRequestNext:
    invoke = read_invoke_id_and_priority(r)
    return GetRequestNext(r.u32("a block-number"), invoke)


def _get_request_with_list(r: Reader) -> GetRequestWithList:
    invoke = read_invoke_id_and_priority(r)
    items = read_sequence_of(
        r, read_attribute_descriptor_with_selection, "Cosem-Attribute-Descriptor-With-Selection"
    )
    return GetRequestWithList(items, invoke)


def _get_response_normal(r: Reader) -> GetResponseNormal:
    invoke = read_invoke_id_and_priority(r)
    return GetResponseNormal(read_get_data_result(r), invoke)


def _get_response_with_datablock(r: Reader) -> GetResponseWithDataBlock:
    invoke = read_invoke_id_and_priority(r)
    return GetResponseWithDataBlock(read_data_block_g(r), invoke)


def _get_response_with_list(r: Reader) -> GetResponseWithList:
    invoke = read_invoke_id_and_priority(r)
    return GetResponseWithList(read_sequence_of(r, read_get_data_result, "Get-Data-Result"), invoke)


_REQUESTS: dict[int, Callable[[Reader], GetRequest]] = {
    GetRequestChoice.NORMAL: _get_request_normal,
    GetRequestChoice.NEXT: _get_request_next,
    GetRequestChoice.WITH_LIST: _get_request_with_list,
}
_RESPONSES: dict[int, Callable[[Reader], GetResponse]] = {
    GetResponseChoice.NORMAL: _get_response_normal,
    GetResponseChoice.WITH_DATABLOCK: _get_response_with_datablock,
    GetResponseChoice.WITH_LIST: _get_response_with_list,
}


@register(ServiceTag.GET_REQUEST)
def decode_get_request(reader: Reader) -> GetRequest:
    return dispatch_choice(reader, _REQUESTS, "GET-Request")


@register(ServiceTag.GET_RESPONSE)
def decode_get_response(reader: Reader) -> GetResponse:
    return dispatch_choice(reader, _RESPONSES, "GET-Response")
