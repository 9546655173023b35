"""general-block-transfer (tag E0, brief §4.7).

Theory of operation. One GBT APDU carries one block of a longer APDU (or of a stream of
them): ``E0 ‖ block-control ‖ block-number u16 ‖ block-number-ack u16 ‖ len ‖ block-data``.
In block-control, bit 7 is last-block, bit 6 streaming and bits 0-5 the window size. This
module only frames the block; reassembly, windows and acknowledgements belong to the
association layer.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from cosemcast.apdu.base import Reader, encode_octet_string, register
from cosemcast.errors import EncodeError

__all__ = ["GeneralBlockTransfer"]

_HEADER = struct.Struct(">BBHH")
_LAST_BLOCK = 0x80
_STREAMING = 0x40
_WINDOW = 0x3F


@dataclass(frozen=True, slots=True, kw_only=True)
class GeneralBlockTransfer:
    """One general-block-transfer APDU (brief §4.7)."""

    TAG: ClassVar[int] = 0xE0
    last_block: bool
    streaming: bool = False
    window: int = 1
    block_number: int
    block_number_ack: int = 0
    block_data: bytes

    def encode(self) -> bytes:
        if not 0 <= self.window <= _WINDOW:
            raise EncodeError(f"GBT window {self.window} is outside 0..63")
        control = (
            (_LAST_BLOCK if self.last_block else 0)
            | (_STREAMING if self.streaming else 0)
            | self.window
        )
        try:
            head = _HEADER.pack(self.TAG, control, self.block_number, self.block_number_ack)
        except struct.error as exc:
            raise EncodeError(f"GBT block number out of range: {exc}") from exc
        return head + encode_octet_string(self.block_data)


@register(GeneralBlockTransfer.TAG)
def decode_general_block_transfer(reader: Reader) -> GeneralBlockTransfer:
    control = reader.u8("the GBT block-control")
    block_number = reader.u16("the GBT block-number")
    block_number_ack = reader.u16("the GBT block-number-ack")
    return GeneralBlockTransfer(
        last_block=bool(control & _LAST_BLOCK),
        streaming=bool(control & _STREAMING),
        window=control & _WINDOW,
        block_number=block_number,
        block_number_ack=block_number_ack,
        block_data=reader.octet_string("the GBT block-data"),
    )
