"""Block transfer: service-specific datablocks and general-block-transfer (brief §4.5, §4.7).

Theory of operation. An APDU that would exceed the peer's max-receive-pdu-size (brief §4.3)
travels in blocks. Two mechanisms exist and this module holds the bookkeeping of both; the
state machines decide which one applies and build the APDUs.

* **Service-specific** (GET-Response-With-Datablock, SET-Request-With-(First-)Datablock,
  ACTION-Request/Response-With-(First-)PBlock): the *raw data* of the field that the block
  form replaces is cut into blocks numbered from 1; the receiver acknowledges each block
  (GET-Request-Next, SET-Response-Datablock, ACTION-Request/Response-Next-PBlock) and
  reassembles. :class:`OutgoingBlocks` hands out the blocks, :class:`IncomingBlocks` checks
  their numbers and joins them; :func:`payload_room` sizes a block so that the whole block
  APDU, once ciphered, fits the peer's limit.
* **general-block-transfer** (GBT, ``E0``), when both parties' conformance has it: any
  APDU, ciphered or not, is cut into GBT blocks (:class:`GbtSession`). Every GBT APDU a party
  sends in one exchange carries the next number of its own sequence (from 1) and, in
  block-number-ack, the last number it received. With our window of 1 the receiver
  acknowledges each block that is neither the last nor streamed with an empty GBT APDU,
  and the sender then sends the next one. A party that received a request in GBT answers
  in GBT ("the other party shall follow": Green Book ed. 8, general-block-transfer protocol
  clause, as quoted by a public excerpt).

Decisions (where the sources are silent):

* The raw data of the with-list block forms is the encoding of the replaced SEQUENCE OF
  (count ‖ items): values for SET, Get-Data-Results for GET, parameters for ACTION.
* ACTION-Response-With-PBlock carries one Get-Data-Result per method, concatenated, the
  result being success (as JD's client reads it, ``processActionWithPblock``); a method
  without return data contributes null-data.
* GBT numbering counts acknowledgements too (each side numbers every GBT APDU it sends in
  an exchange); not yet checked against a peer's GBT implementation.
* Block numbers must be consecutive from 1; a repeated or skipped block ends the transfer
  (the receiver answers with an error instead of asking again).
"""

from __future__ import annotations

from typing import TypeAlias

from cosemcast.apdu.action import (
    ActionRequestWithFirstPBlock,
    ActionRequestWithListAndFirstPBlock,
    ActionRequestWithPBlock,
)
from cosemcast.apdu.base import Apdu, Reader
from cosemcast.apdu.common import (
    Absent,
    DataBlockSA,
    GetDataResult,
    InvokeIdAndPriority,
    encode_sequence_of,
    read_get_data_result,
    read_sequence_of,
)
from cosemcast.apdu.gbt import GeneralBlockTransfer
from cosemcast.apdu.set import (
    SetRequestWithDataBlock,
    SetRequestWithFirstDataBlock,
    SetRequestWithListAndFirstDataBlock,
)
from cosemcast.association.events import Action, ActionList, Set, SetList
from cosemcast.axdr.codec import encode_data
from cosemcast.axdr.types import Data
from cosemcast.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "GBT_OVERHEAD",
    "RAW_LENGTH_ALLOWANCE",
    "BlockedRequest",
    "GbtSession",
    "IncomingBlocks",
    "OutgoingBlocks",
    "decode_get_data_results",
    "decode_pblock_results",
    "decode_values",
    "payload_room",
    "request_block",
    "request_raw_data",
    "split",
]

RAW_LENGTH_ALLOWANCE = 3
"""Bytes of the A-XDR length in front of raw data up to 65535 bytes (``82 hi lo``)."""

GBT_OVERHEAD = 6 + RAW_LENGTH_ALLOWANCE
"""``E0`` ‖ block-control ‖ block-number ‖ block-number-ack ‖ length (brief §4.7)."""


def split(data: bytes, size: int) -> tuple[bytes, ...]:
    """``data`` cut into pieces of ``size`` bytes (the last may be shorter; never empty)."""
    if size < 1:
        raise LocalProtocolError(f"block size {size} is too small")
    if not data:
        return (b"",)
    return tuple(data[i : i + size] for i in range(0, len(data), size))


def payload_room(max_pdu_size: int, empty_block_apdu_length: int, wire_overhead: int) -> int:
    """Raw-data bytes that fit in one block APDU.

    ``empty_block_apdu_length`` is the encoded block APDU with empty raw data (whose length
    byte ``00`` is replaced by :data:`RAW_LENGTH_ALLOWANCE`); ``wire_overhead`` is what the
    ciphering adds around the APDU.
    """
    room = max_pdu_size - (empty_block_apdu_length - 1) - RAW_LENGTH_ALLOWANCE - wire_overhead
    if room < 1:
        raise LocalProtocolError(
            f"a block APDU does not fit in the peer's max PDU size of {max_pdu_size} bytes"
        )
    return room


class OutgoingBlocks:
    """Blocks 1..n of some raw data, handed out one at a time."""

    __slots__ = ("_chunks", "sent")

    def __init__(self, chunks: tuple[bytes, ...]) -> None:
        self._chunks = chunks
        self.sent = 0

    def __repr__(self) -> str:
        return f"OutgoingBlocks(sent={self.sent}, total={len(self._chunks)})"

    @property
    def done(self) -> bool:
        return self.sent >= len(self._chunks)

    def next_block(self) -> tuple[int, bytes, bool]:
        """``(block_number, raw_data, last_block)`` of the next block."""
        if self.done:
            raise LocalProtocolError("every block has been sent")
        raw = self._chunks[self.sent]
        self.sent += 1
        return self.sent, raw, self.done


class IncomingBlocks:
    """Joins blocks 1, 2, ...; anything out of order is a :class:`RemoteProtocolError`."""

    __slots__ = ("_parts", "received")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.received = 0

    def __repr__(self) -> str:
        return f"IncomingBlocks(received={self.received})"

    def add(self, block_number: int, raw_data: bytes) -> None:
        if block_number != self.received + 1:
            raise RemoteProtocolError(
                f"block {block_number} arrived where block {self.received + 1} was expected"
            )
        self._parts.append(bytes(raw_data))
        self.received = block_number

    def data(self) -> bytes:
        return b"".join(self._parts)


class GbtSession:
    """One side of a general-block-transfer exchange (brief §4.7), window 1."""

    __slots__ = ("_incoming", "_outgoing", "_received", "_sent", "window")

    def __init__(self, window: int = 1) -> None:
        self.window = window
        self.reset()

    def __repr__(self) -> str:
        return f"GbtSession(sent={self._sent}, received={self._received})"

    def reset(self) -> None:
        """Forget the exchange (after its last block, or when a new one starts)."""
        self._sent = 0
        self._received = 0
        self._outgoing: list[bytes] = []
        self._incoming: list[bytes] = []

    @property
    def sending(self) -> bool:
        """True while blocks of our APDU wait for the peer's acknowledgement."""
        return bool(self._outgoing)

    @property
    def in_exchange(self) -> bool:
        """True once a GBT APDU was sent or received in the current exchange."""
        return self._sent > 0 or self._received > 0

    def _block(self, data: bytes, *, last: bool) -> GeneralBlockTransfer:
        self._sent += 1
        return GeneralBlockTransfer(
            last_block=last,
            streaming=False,
            window=self.window,
            block_number=self._sent,
            block_number_ack=self._received,
            block_data=data,
        )

    def start_sending(self, apdu: bytes, block_size: int) -> GeneralBlockTransfer:
        """Cut ``apdu`` into blocks of ``block_size`` bytes; return the first block."""
        self._outgoing = list(split(apdu, block_size))
        return self._next_data_block()

    def _next_data_block(self) -> GeneralBlockTransfer:
        data = self._outgoing.pop(0)
        return self._block(data, last=not self._outgoing)

    def receive(self, gbt: GeneralBlockTransfer) -> GeneralBlockTransfer | bytes | None:
        """Take one GBT APDU from the peer.

        Returns the GBT APDU to send next (an acknowledgement or our next block), the
        reassembled APDU once its last block arrived, or None when nothing is due yet. A
        block numbered 1 after others starts a new exchange.
        """
        if gbt.block_number == 1 and self._received:
            self.reset()
        if gbt.block_number != self._received + 1:
            raise RemoteProtocolError(
                f"GBT block {gbt.block_number} arrived where {self._received + 1} was expected"
            )
        self._received = gbt.block_number
        if not gbt.block_data and not gbt.last_block:
            if not self._outgoing:
                raise RemoteProtocolError("a GBT acknowledgement arrived with nothing to send")
            if gbt.block_number_ack != self._sent:
                raise RemoteProtocolError(
                    f"GBT acknowledges block {gbt.block_number_ack}, we sent {self._sent}"
                )
            return self._next_data_block()
        if self._outgoing:
            raise RemoteProtocolError("GBT data arrived while our blocks were unacknowledged")
        self._incoming.append(bytes(gbt.block_data))
        if gbt.last_block:
            apdu = b"".join(self._incoming)
            self._incoming = []
            return apdu
        if gbt.streaming:
            return None
        return self._block(b"", last=False)


# --- the service-specific block APDUs --------------------------------------------------------

BlockedRequest: TypeAlias = Set | SetList | Action | ActionList


def request_raw_data(request: BlockedRequest) -> bytes:
    """The raw data a SET/ACTION request carries in blocks (the field the block form replaces)."""
    if isinstance(request, Set):
        return encode_data(request.value)
    if isinstance(request, SetList):
        return encode_sequence_of(request.values, encode_data)
    if isinstance(request, Action):
        if isinstance(request.parameters, Absent):
            return b""
        return encode_data(request.parameters)
    return encode_sequence_of(request.parameters, encode_data)


def request_block(
    request: BlockedRequest, invoke: InvokeIdAndPriority, block: DataBlockSA, *, first: bool
) -> Apdu:
    """The APDU carrying ``block`` of ``request`` (brief §4.5 SET/ACTION choices 02-06)."""
    if isinstance(request, Set | SetList):
        if not first:
            return SetRequestWithDataBlock(block, invoke)
        if isinstance(request, Set):
            return SetRequestWithFirstDataBlock(
                request.descriptor, block, request.selection, invoke
            )
        return SetRequestWithListAndFirstDataBlock(request.items, block, invoke)
    if not first:
        return ActionRequestWithPBlock(block, invoke)
    if isinstance(request, Action):
        return ActionRequestWithFirstPBlock(request.descriptor, block, invoke)
    return ActionRequestWithListAndFirstPBlock(request.descriptors, block, invoke)


def decode_values(raw: bytes) -> tuple[Data, ...]:
    """SEQUENCE OF Data (the raw data of the with-list SET and ACTION block forms)."""
    reader = Reader(raw)
    values = read_sequence_of(reader, _read_data, "Data")
    reader.expect_end()
    return values


def decode_get_data_results(raw: bytes) -> tuple[GetDataResult, ...]:
    """SEQUENCE OF Get-Data-Result (the raw data of a long GET-Response-With-List)."""
    reader = Reader(raw)
    results = read_sequence_of(reader, read_get_data_result, "Get-Data-Result")
    reader.expect_end()
    return results


def decode_pblock_results(raw: bytes) -> tuple[GetDataResult, ...]:
    """Concatenated Get-Data-Results (the raw data of ACTION-Response-With-PBlock)."""
    reader = Reader(raw)
    results = [read_get_data_result(reader)]
    while not reader.at_end():
        results.append(read_get_data_result(reader))
    return tuple(results)


def _read_data(reader: Reader) -> Data:
    return reader.data()
