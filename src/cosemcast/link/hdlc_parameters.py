"""SNRM/UA parameter negotiation of IEC 62056-46 HDLC (brief §2.6).

The information field of an SNRM (optional) and of a UA::

    81 (format identifier) 80 (group: HDLC parameters) LL (group length)
      05 n max_info_field_length_transmit   06 n max_info_field_length_receive
      07 n window_size_transmit             08 n window_size_receive

Values take n = 1 to 4 bytes, big-endian. Transmit and receive are seen from the sender of
the frame: the receiver of a UA swaps them. A parameter left out takes its default (128
bytes, window 1); an empty field means all defaults. Widths differ between implementations
(Gurux/DC send 154 on one byte and windows on four, JD sends 128 on two), so
:class:`HdlcParameters` remembers the widths it was decoded with and re-encodes the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from cosemcast.errors import DecodeError, EncodeError

__all__ = [
    "DEFAULT_MAX_INFO_LENGTH",
    "DEFAULT_WINDOW_SIZE",
    "HdlcParameters",
    "decode_parameters",
    "encode_parameters",
]

# Brief §2.6: format identifier 81, group HDLC parameters 80, then (id, length, value) items.
_FORMAT_IDENTIFIER: Final = 0x81
_GROUP_HDLC_PARAMETERS: Final = 0x80
_PARAMETER_IDS: Final = (0x05, 0x06, 0x07, 0x08)
DEFAULT_MAX_INFO_LENGTH: Final = 128
DEFAULT_WINDOW_SIZE: Final = 1


@dataclass(frozen=True, slots=True)
class HdlcParameters:
    """The HDLC parameters of an SNRM or UA information field (brief §2.6).

    Transmit and receive are seen from the sender of the frame. ``None`` means the parameter
    is absent, so its default applies (:meth:`with_defaults`). ``value_lengths`` records the
    width in bytes of each value as received (0 if absent) so a frame re-encodes to the same
    bytes: Gurux/DC send 154 on 1 byte, JD 128 on 2. It takes no part in equality.
    """

    max_info_length_transmit: int | None = None
    max_info_length_receive: int | None = None
    window_size_transmit: int | None = None
    window_size_receive: int | None = None
    value_lengths: tuple[int, int, int, int] | None = field(default=None, compare=False)

    def values(self) -> tuple[int | None, int | None, int | None, int | None]:
        return (
            self.max_info_length_transmit,
            self.max_info_length_receive,
            self.window_size_transmit,
            self.window_size_receive,
        )

    def with_defaults(self) -> HdlcParameters:
        """All four values, absent ones replaced by the defaults (128 bytes, window 1)."""

        def pick(v: int | None, default: int) -> int:
            return default if v is None else v

        return HdlcParameters(
            pick(self.max_info_length_transmit, DEFAULT_MAX_INFO_LENGTH),
            pick(self.max_info_length_receive, DEFAULT_MAX_INFO_LENGTH),
            pick(self.window_size_transmit, DEFAULT_WINDOW_SIZE),
            pick(self.window_size_receive, DEFAULT_WINDOW_SIZE),
        )


def _default_width(parameter_id: int, value: int) -> int:
    # Gurux (GXP appendHdlcParameter): lengths on 1 byte when they fit, else 2; windows on 4.
    if parameter_id in (0x07, 0x08):
        return 4
    return 1 if value <= 0xFF else 2 if value <= 0xFFFF else 4


def encode_parameters(parameters: HdlcParameters) -> bytes:
    """The SNRM/UA information field; empty when no parameter is present."""
    widths = parameters.value_lengths or (0, 0, 0, 0)
    items = bytearray()
    for parameter_id, value, width in zip(_PARAMETER_IDS, parameters.values(), widths, strict=True):
        if value is None:
            continue
        if not 0 <= value <= 0xFFFFFFFF:
            raise EncodeError(f"HDLC parameter 0x{parameter_id:02X} = {value} exceeds 4 bytes")
        n = width if width in (1, 2, 4) and value < 1 << (8 * width) else 0
        n = n or _default_width(parameter_id, value)
        items += bytes((parameter_id, n)) + value.to_bytes(n, "big")
    if not items:
        return b""
    return bytes((_FORMAT_IDENTIFIER, _GROUP_HDLC_PARAMETERS, len(items))) + bytes(items)


def decode_parameters(info: bytes | bytearray | memoryview, *, offset: int = 0) -> HdlcParameters:
    """Decode an SNRM/UA information field (empty means all defaults).

    ``offset`` is added to the offsets of errors (the position of ``info`` in the frame).
    """
    buf = bytes(info)
    if not buf:
        return HdlcParameters()
    if len(buf) < 3:
        raise DecodeError(
            "truncated HDLC parameter header",
            offset=offset + len(buf),
            expected="81 80 and a group length",
        )
    if buf[0] != _FORMAT_IDENTIFIER:
        raise DecodeError(f"format identifier 0x{buf[0]:02X}", offset=offset, expected="81")
    if buf[1] != _GROUP_HDLC_PARAMETERS:
        raise DecodeError(
            f"parameter group 0x{buf[1]:02X}", offset=offset + 1, expected="80 (HDLC parameters)"
        )
    if buf[2] != len(buf) - 3:
        raise DecodeError(
            f"group length {buf[2]} with {len(buf) - 3} bytes following",
            offset=offset + 2,
            expected=f"{len(buf) - 3}",
        )
    values: dict[int, int] = {}
    widths: dict[int, int] = {}
    pos = 3
    while pos < len(buf):
        parameter_id = buf[pos]
        if parameter_id not in _PARAMETER_IDS:
            raise DecodeError(
                f"unknown HDLC parameter 0x{parameter_id:02X}",
                offset=offset + pos,
                expected="05, 06, 07 or 08",
            )
        if parameter_id in values:
            raise DecodeError(
                f"HDLC parameter 0x{parameter_id:02X} given twice",
                offset=offset + pos,
                expected="each parameter once",
            )
        if pos + 2 > len(buf):
            raise DecodeError(
                "truncated HDLC parameter", offset=offset + len(buf), expected="a value length"
            )
        n = buf[pos + 1]
        if not 1 <= n <= 4:
            raise DecodeError(
                f"HDLC parameter value of {n} bytes",
                offset=offset + pos + 1,
                expected="1 to 4 bytes",
            )
        if pos + 2 + n > len(buf):
            raise DecodeError(
                "truncated HDLC parameter value",
                offset=offset + len(buf),
                expected=f"{n} value bytes",
            )
        values[parameter_id] = int.from_bytes(buf[pos + 2 : pos + 2 + n], "big")
        widths[parameter_id] = n
        pos += 2 + n
    v = [values.get(i) for i in _PARAMETER_IDS]
    w = [widths.get(i, 0) for i in _PARAMETER_IDS]
    return HdlcParameters(v[0], v[1], v[2], v[3], value_lengths=(w[0], w[1], w[2], w[3]))
