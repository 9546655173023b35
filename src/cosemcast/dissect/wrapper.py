"""The scapy layer of the IEC 62056-47 wrapper (DLMS over TCP and UDP, port 4059).

Theory of operation. :class:`DlmsWrapper` is the 8-byte header of brief §1 (version, source
and destination wPort, length) in the style of scapy's ``contrib/automotive/doip.py``: the
length is filled in by ``post_build``, ``extract_padding`` cuts the APDU at the length, and
:meth:`DlmsWrapper.tcp_reassemble` lets ``sniff(offline=..., session=TCPSession)`` rebuild
frames that TCP split or merged. Without a session (plain ``rdpcap``) each segment is dissected
on its own: several frames in one segment are stacked one after the other
(``DlmsWrapper/DlmsApdu/DlmsWrapper/DlmsApdu``), and a frame whose APDU continues in a later
segment ends in a :class:`DlmsWrapperFragment`. The payload of a complete frame is a
:class:`~cosemcast.dissect.apdu.DlmsApdu`, decoded by the project's codecs.
"""

from __future__ import annotations

import struct
from typing import Any, ClassVar, Final

from scapy.config import conf
from scapy.fields import AnyField, ShortField
from scapy.packet import Packet

from cosemcast.dissect.apdu import DlmsApdu, HexField
from cosemcast.link.wrapper import HEADER_LENGTH, WRAPPER_VERSION

__all__ = ["DlmsWrapper", "DlmsWrapperFragment"]

_VERSION_BYTES: Final = WRAPPER_VERSION.to_bytes(2, "big")


def _complete_frames(data: bytes) -> int:
    """How many leading bytes of ``data`` are whole wrapper frames."""
    end = 0
    while len(data) - end >= HEADER_LENGTH and data[end : end + 2] == _VERSION_BYTES:
        length = int.from_bytes(data[end + 6 : end + 8], "big")
        if end + HEADER_LENGTH + length > len(data):
            break
        end += HEADER_LENGTH + length
    return end


class DlmsWrapperFragment(Packet):
    """Bytes of a frame that TCP split: a short header, the start of an APDU that continues
    in a later segment, or the rest of one begun earlier (see the module docstring)."""

    name = "DLMS wrapper fragment (reassemble with sniff(offline=..., session=TCPSession))"
    fields_desc: ClassVar[list[AnyField]] = [HexField("data", b"")]


class DlmsWrapper(Packet):
    """IEC 62056-47 wrapper header (brief §1); its payload is one APDU."""

    name = "DLMS wrapper (IEC 62056-47)"
    fields_desc: ClassVar[list[AnyField]] = [
        ShortField("version", WRAPPER_VERSION),
        ShortField("source_wport", 16),
        ShortField("destination_wport", 1),
        ShortField("length", None),
    ]

    @classmethod
    def dispatch_hook(cls, _pkt: bytes | None = None, *args: Any, **kargs: Any) -> type[Packet]:
        if _pkt is not None and (len(_pkt) < HEADER_LENGTH or _pkt[:2] != _VERSION_BYTES):
            return DlmsWrapperFragment
        return cls

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        if self.length is None:
            pkt = pkt[:6] + struct.pack("!H", len(pay)) + pkt[8:]
        return pkt + pay

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        length = self.length or 0
        return s[:length], s[length:]

    def guess_payload_class(self, payload: bytes) -> type[Packet]:
        if self.version != WRAPPER_VERSION:
            return conf.raw_layer
        if len(payload) < (self.length or 0):
            return DlmsWrapperFragment
        return DlmsApdu

    def dissect(self, s: bytes) -> None:
        super().dissect(s)
        # Further frames in the same segment: stack them instead of leaving them as padding.
        padding = self.getlayer(conf.padding_layer)
        if padding is None or self.version != WRAPPER_VERSION:
            return
        rest = bytes(padding.load)
        holder = padding.underlayer
        if holder is not None and len(rest) >= HEADER_LENGTH and rest[:2] == _VERSION_BYTES:
            holder.remove_payload()
            holder.add_payload(DlmsWrapper(rest, _internal=1, _underlayer=holder))

    def mysummary(self) -> str:
        return self.sprintf("DLMS wrapper %source_wport%->%destination_wport%")

    @classmethod
    def tcp_reassemble(
        cls, data: bytes, metadata: dict[str, Any], session: dict[str, Any]
    ) -> Packet | None:
        """Whole frames once TCP has delivered them (scapy ``TCPSession`` protocol)."""
        if len(data) >= 2 and data[:2] != _VERSION_BYTES:
            return cls(data)  # not wrapper framing: show it rather than buffer forever
        end = _complete_frames(data)
        if end == 0:
            return None
        packet = cls(data[:end])
        if end < len(data):
            packet.add_payload(conf.padding_layer(data[end:]))
        return packet
