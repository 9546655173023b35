"""ACTION-Request (``C3``) and ACTION-Response (``C7``), LN referencing (brief §4.5).

Theory of operation. Each APDU is ``tag ‖ choice ‖ Invoke-Id-And-Priority ‖ body``; one
decoder per tag reads the choice byte and dispatches. The bodies, from the Green Book ASN.1
(JD ``cosem.asn``; the same layout in other public copies of the Green Book ASN.1):

=======================================  ================================================
ActionRequestNormal (01)                 method-descriptor ‖ Data OPTIONAL (``00`` |
                                         ``01 Data``)
ActionRequestNextPBlock (02)             block-number u32
ActionRequestWithList (03)               SEQUENCE OF method-descriptor ‖ SEQUENCE OF Data
ActionRequestWithFirstPBlock (04)        method-descriptor ‖ DataBlock-SA
ActionRequestWithListAndFirstPBlock      SEQUENCE OF method-descriptor ‖ DataBlock-SA
(05)
ActionRequestWithPBlock (06)             DataBlock-SA
ActionResponseNormal (01)                Action-Result ‖ Get-Data-Result OPTIONAL
ActionResponseWithPBlock (02)            DataBlock-SA
ActionResponseWithList (03)              SEQUENCE OF (Action-Result ‖ Get-Data-Result
                                         OPTIONAL)
ActionResponseNextPBlock (04)            block-number u32
=======================================  ================================================

Decisions (copy to specs/): the OPTIONAL method-invocation-parameters of
:class:`ActionRequestNormal` is :data:`~cosemcast.apdu.common.ABSENT` when not on the wire and
a Data value (``None`` = null-data) when present, so ``00`` and ``01 00`` both round-trip.
:class:`ActionResponseNormal` flattens its single Action-Response-With-Optional-Data into
``result`` and ``return_parameters`` (``None`` = absent); the list form uses
:class:`ActionResponseWithOptionalData`. Invoke-Id-And-Priority comes last (default ``C1``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, TypeAlias

from cosemcast.apdu.base import Reader, register
from cosemcast.apdu.common import (
    ABSENT,
    Absent,
    ActionResult,
    CosemMethodDescriptor,
    DataBlockSA,
    GetDataResult,
    InvokeIdAndPriority,
    ServiceTag,
    dispatch_choice,
    encode_action_result,
    encode_block_number,
    encode_sequence_of,
    read_action_result,
    read_data_block_sa,
    read_get_data_result,
    read_invoke_id_and_priority,
    read_method_descriptor,
    read_sequence_of,
)
from cosemcast.axdr.codec import encode_data
from cosemcast.axdr.types import Data

__all__ = [
    "ActionRequest",
    "ActionRequestChoice",
    "ActionRequestNextPBlock",
    "ActionRequestNormal",
    "ActionRequestWithFirstPBlock",
    "ActionRequestWithList",
    "ActionRequestWithListAndFirstPBlock",
    "ActionRequestWithPBlock",
    "ActionResponse",
    "ActionResponseChoice",
    "ActionResponseNextPBlock",
    "ActionResponseNormal",
    "ActionResponseWithList",
    "ActionResponseWithOptionalData",
    "ActionResponseWithPBlock",
]

_DEFAULT_INVOKE = InvokeIdAndPriority()


class ActionRequestChoice(enum.IntEnum):
    NORMAL = 1
    NEXT_PBLOCK = 2
    WITH_LIST = 3
    WITH_FIRST_PBLOCK = 4
    WITH_LIST_AND_FIRST_PBLOCK = 5
    WITH_PBLOCK = 6


class ActionResponseChoice(enum.IntEnum):
    NORMAL = 1
    WITH_PBLOCK = 2
    WITH_LIST = 3
    NEXT_PBLOCK = 4


def _head(tag: int, choice: int, invoke: InvokeIdAndPriority) -> bytes:
    return bytes((tag, choice, invoke.to_byte()))


def _encode_methods(items: tuple[CosemMethodDescriptor, ...]) -> bytes:
    return encode_sequence_of(items, CosemMethodDescriptor.encode)


def _encode_optional_result(result: GetDataResult | None) -> bytes:
    if result is None:
        return b"\x00"
    return b"\x01" + result.encode()


# --- requests --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActionRequestNormal:
    """Action-Request-Normal: invoke one method, with parameters or without (``ABSENT``)."""

    TAG: ClassVar[int] = ServiceTag.ACTION_REQUEST
    CHOICE: ClassVar[int] = ActionRequestChoice.NORMAL

    cosem_method_descriptor: CosemMethodDescriptor
    method_invocation_parameters: Data | Absent = ABSENT
    invoke_id_and_priority: InvokeIdAndPriority = field(default=_DEFAULT_INVOKE)

    def encode(self) -> bytes:
        head = _head(self.TAG, self.CHOICE, self.invoke_id_and_priority)
        params = self.method_invocation_parameters
        if params is ABSENT:
            return head + self.cosem_method_descriptor.encode() + b"\x00"
        return head + self.cosem_method_descriptor.encode() + b"\x01" + encode_data(params)


@dataclass(frozen=True, slots=True)
class ActionRequestNextPBlock:
    """Action-Request-Next-Pblock: acknowledges block ``block_number`` of the response."""

    TAG: ClassVar[int] = ServiceTag.ACTION_REQUEST
    CHOICE: ClassVar[int] = ActionRequestChoice.NEXT_PBLOCK

    block_number: int
    invoke_id_and_priority: InvokeIdAndPriority = field(default=_DEFAULT_INVOKE)

    def encode(self) -> bytes:
        return _head(self.TAG, self.CHOICE, self.invoke_id_and_priority) + encode_block_number(
            self.block_number
        )


@dataclass(frozen=True, slots=True)
class ActionRequestWithList:
    """Action-Request-With-List: invoke several methods (null-data where none is needed)."""

    TAG: ClassVar[int] = ServiceTag.ACTION_REQUEST
    CHOICE: ClassVar[int] = ActionRequestChoice.WITH_LIST

    cosem_method_descriptor_list: tuple[CosemMethodDescriptor, ...]
    method_invocation_parameters: tuple[Data, ...]
    invoke_id_and_priority: InvokeIdAndPriority = field(default=_DEFAULT_INVOKE)

    def encode(self) -> bytes:
        return (
            _head(self.TAG, self.CHOICE, self.invoke_id_and_priority)
            + _encode_methods(self.cosem_method_descriptor_list)
            + encode_sequence_of(self.method_invocation_parameters, encode_data)
        )


@dataclass(frozen=True, slots=True)
class ActionRequestWithFirstPBlock:
    """Action-Request-With-First-Pblock: one method, parameters sent in blocks."""

    TAG: ClassVar[int] = ServiceTag.ACTION_REQUEST
    CHOICE: ClassVar[int] = ActionRequestChoice.WITH_FIRST_PBLOCK

    cosem_method_descriptor: CosemMethodDescriptor
    pblock: DataBlockSA
    invoke_id_and_priority: InvokeIdAndPriority = field(default=_DEFAULT_INVOKE)

    def encode(self) -> bytes:
        return (
            _head(self.TAG, self.CHOICE, self.invoke_id_and_priority)
            + self.cosem_method_descriptor.encode()
            + self.pblock.encode()
        )


@dataclass(frozen=True, slots=True)
class ActionRequestWithListAndFirstPBlock:
    """Action-Request-With-List-And-First-Pblock: several methods, parameters in blocks."""

    TAG: ClassVar[int] = ServiceTag.ACTION_REQUEST
    CHOICE: ClassVar[int] = ActionRequestChoice.WITH_LIST_AND_FIRST_PBLOCK

    cosem_method_descriptor_list: tuple[CosemMethodDescriptor, ...]
    pblock: DataBlockSA
    invoke_id_and_priority: InvokeIdAndPriority = field(default=_DEFAULT_INVOKE)

    def encode(self) -> bytes:
        return (
            _head(self.TAG, self.CHOICE, self.invoke_id_and_priority)
            + _encode_methods(self.cosem_method_descriptor_list)
            + self.pblock.encode()
        )


@dataclass(frozen=True, slots=True)
class ActionRequestWithPBlock:
    """Action-Request-With-Pblock: a following block of the parameters."""

    TAG: ClassVar[int] = ServiceTag.ACTION_REQUEST
    CHOICE: ClassVar[int] = ActionRequestChoice.WITH_PBLOCK

    pblock: DataBlockSA
    invoke_id_and_priority: InvokeIdAndPriority = field(default=_DEFAULT_INVOKE)

    def encode(self) -> bytes:
        return _head(self.TAG, self.CHOICE, self.invoke_id_and_priority) + self.pblock.encode()


# --- responses -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActionResponseWithOptionalData:
    """Action-Response-With-Optional-Data: Action-Result ‖ Get-Data-Result OPTIONAL."""

    result: ActionResult
    return_parameters: GetDataResult | None = None

    def encode(self) -> bytes:
        return encode_action_result(self.result) + _encode_optional_result(self.return_parameters)


@dataclass(frozen=True, slots=True)
class ActionResponseNormal:
    """Action-Response-Normal: the outcome of one method and its optional return value."""

    TAG: ClassVar[int] = ServiceTag.ACTION_RESPONSE
    CHOICE: ClassVar[int] = ActionResponseChoice.NORMAL

    result: ActionResult
    return_parameters: GetDataResult | None = None
    invoke_id_and_priority: InvokeIdAndPriority = field(default=_DEFAULT_INVOKE)

    def encode(self) -> bytes:
        return (
            _head(self.TAG, self.CHOICE, self.invoke_id_and_priority)
            + encode_action_result(self.result)
            + _encode_optional_result(self.return_parameters)
        )


@dataclass(frozen=True, slots=True)
class ActionResponseWithPBlock:
    """Action-Response-With-Pblock: one block of a long return value."""

    TAG: ClassVar[int] = ServiceTag.ACTION_RESPONSE
    CHOICE: ClassVar[int] = ActionResponseChoice.WITH_PBLOCK

    pblock: DataBlockSA
    invoke_id_and_priority: InvokeIdAndPriority = field(default=_DEFAULT_INVOKE)

    def encode(self) -> bytes:
        return _head(self.TAG, self.CHOICE, self.invoke_id_and_priority) + self.pblock.encode()


@dataclass(frozen=True, slots=True)
class ActionResponseWithList:
    """Action-Response-With-List: one outcome per method of an Action-Request-With-List."""

    TAG: ClassVar[int] = ServiceTag.ACTION_RESPONSE
    CHOICE: ClassVar[int] = ActionResponseChoice.WITH_LIST

    list_of_responses: tuple[ActionResponseWithOptionalData, ...]
    invoke_id_and_priority: InvokeIdAndPriority = field(default=_DEFAULT_INVOKE)

    def encode(self) -> bytes:
        return _head(self.TAG, self.CHOICE, self.invoke_id_and_priority) + encode_sequence_of(
            self.list_of_responses, ActionResponseWithOptionalData.encode
        )


@dataclass(frozen=True, slots=True)
class ActionResponseNextPBlock:
    """Action-Response-Next-Pblock: acknowledges parameter block ``block_number``."""

    TAG: ClassVar[int] = ServiceTag.ACTION_RESPONSE
    CHOICE: ClassVar[int] = ActionResponseChoice.NEXT_PBLOCK

    block_number: int
    invoke_id_and_priority: InvokeIdAndPriority = field(default=_DEFAULT_INVOKE)

    def encode(self) -> bytes:
        return _head(self.TAG, self.CHOICE, self.invoke_id_and_priority) + encode_block_number(
            self.block_number
        )


ActionRequest: TypeAlias = (
    ActionRequestNormal
    | ActionRequestNextPBlock
    | ActionRequestWithList
    | ActionRequestWithFirstPBlock
    | ActionRequestWithListAndFirstPBlock
    | ActionRequestWithPBlock
)
ActionResponse: TypeAlias = (
    ActionResponseNormal
    | ActionResponseWithPBlock
    | ActionResponseWithList
    | ActionResponseNextPBlock
)


# --- decoders --------------------------------------------------------------------------------


def _read_data(r: Reader) -> Data:
    return r.data()


def _read_optional_result(r: Reader) -> GetDataResult | None:
    if not r.optional("the return-parameters presence flag"):
        return None
    return read_get_data_result(r)


def _read_response_with_optional_data(r: Reader) -> ActionResponseWithOptionalData:
    result = read_action_result(r)
    return ActionResponseWithOptionalData(result, _read_optional_result(r))


def _action_request_normal(r: Reader) -> ActionRequestNormal:
    invoke = read_invoke_id_and_priority(r)
    method = read_method_descriptor(r)
    if not r.optional("the method-invocation-parameters presence flag"):
        return ActionRequestNormal(method, ABSENT, invoke)
    return ActionRequestNormal(method, r.data(), invoke)


def _action_request_next_pblock(r: Reader) -> ActionRequestNextPBlock:
    invoke = read_invoke_id_and_priority(r)
    return ActionRequestNextPBlock(r.u32("a block-number"), invoke)


def _action_request_with_list(r: Reader) -> ActionRequestWithList:
    invoke = read_invoke_id_and_priority(r)
    methods = read_sequence_of(r, read_method_descriptor, "Cosem-Method-Descriptor")
    params = read_sequence_of(r, _read_data, "Data")
    return ActionRequestWithList(methods, params, invoke)


def _action_request_with_first_pblock(r: Reader) -> ActionRequestWithFirstPBlock:
    invoke = read_invoke_id_and_priority(r)
    method = read_method_descriptor(r)
    return ActionRequestWithFirstPBlock(method, read_data_block_sa(r), invoke)


def _action_request_with_list_and_first_pblock(r: Reader) -> ActionRequestWithListAndFirstPBlock:
    invoke = read_invoke_id_and_priority(r)
    methods = read_sequence_of(r, read_method_descriptor, "Cosem-Method-Descriptor")
    return ActionRequestWithListAndFirstPBlock(methods, read_data_block_sa(r), invoke)


def _action_request_with_pblock(r: Reader) -> ActionRequestWithPBlock:
    invoke = read_invoke_id_and_priority(r)
    return ActionRequestWithPBlock(read_data_block_sa(r), invoke)


def _action_response_normal(r: Reader) -> ActionResponseNormal:
    invoke = read_invoke_id_and_priority(r)
    result = read_action_result(r)
    return ActionResponseNormal(result, _read_optional_result(r), invoke)


def _action_response_with_pblock(r: Reader) -> ActionResponseWithPBlock:
    invoke = read_invoke_id_and_priority(r)
    return ActionResponseWithPBlock(read_data_block_sa(r), invoke)


def _action_response_with_list(r: Reader) -> ActionResponseWithList:
    invoke = read_invoke_id_and_priority(r)
    responses = read_sequence_of(
        r, _read_response_with_optional_data, "Action-Response-With-Optional-Data"
    )
    return ActionResponseWithList(responses, invoke)


def _action_response_next_pblock(r: Reader) -> ActionResponseNextPBlock:
    invoke = read_invoke_id_and_priority(r)
    return ActionResponseNextPBlock(r.u32("a block-number"), invoke)


_REQUESTS: dict[int, Callable[[Reader], ActionRequest]] = {
    ActionRequestChoice.NORMAL: _action_request_normal,
    ActionRequestChoice.NEXT_PBLOCK: _action_request_next_pblock,
    ActionRequestChoice.WITH_LIST: _action_request_with_list,
    ActionRequestChoice.WITH_FIRST_PBLOCK: _action_request_with_first_pblock,
    ActionRequestChoice.WITH_LIST_AND_FIRST_PBLOCK: _action_request_with_list_and_first_pblock,
    ActionRequestChoice.WITH_PBLOCK: _action_request_with_pblock,
}
_RESPONSES: dict[int, Callable[[Reader], ActionResponse]] = {
    ActionResponseChoice.NORMAL: _action_response_normal,
    ActionResponseChoice.WITH_PBLOCK: _action_response_with_pblock,
    ActionResponseChoice.WITH_LIST: _action_response_with_list,
    ActionResponseChoice.NEXT_PBLOCK: _action_response_next_pblock,
}


@register(ServiceTag.ACTION_REQUEST)
def decode_action_request(reader: Reader) -> ActionRequest:
    return dispatch_choice(reader, _REQUESTS, "ACTION-Request")


@register(ServiceTag.ACTION_RESPONSE)
def decode_action_response(reader: Reader) -> ActionResponse:
    return dispatch_choice(reader, _RESPONSES, "ACTION-Response")
