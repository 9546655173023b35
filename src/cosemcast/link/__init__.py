"""Link layer, sans-IO: the IEC 62056-47 wrapper and IEC 62056-46 HDLC frames (brief §1, §2).

Codecs take and return bytes; the stream decoders buffer what they are given and return
whole frames. Nothing here opens a socket or a serial port (that is ``transport/``).
"""

from cosemcast.link.hdlc import (
    FrameType,
    HdlcAddress,
    HdlcFrame,
    HdlcFrameSplitter,
    HdlcParameters,
    LlcHeader,
    decode_frame,
    decode_parameters,
    encode_frame,
    encode_parameters,
    fcs16,
)
from cosemcast.link.hdlc_connection import (
    NEED_DATA,
    ApduReceived,
    Connected,
    Disconnected,
    DisconnectReason,
    HdlcConnection,
    LinkParameters,
    Role,
)
from cosemcast.link.mode_e import Identification, ModeEClient, ModeEServer
from cosemcast.link.wrapper import DLMS_PORT, WrapperDecoder, WrapperFrame

__all__ = [
    "DLMS_PORT",
    "NEED_DATA",
    "ApduReceived",
    "Connected",
    "DisconnectReason",
    "Disconnected",
    "FrameType",
    "HdlcAddress",
    "HdlcConnection",
    "HdlcFrame",
    "HdlcFrameSplitter",
    "HdlcParameters",
    "Identification",
    "LinkParameters",
    "LlcHeader",
    "ModeEClient",
    "ModeEServer",
    "Role",
    "WrapperDecoder",
    "WrapperFrame",
    "decode_frame",
    "decode_parameters",
    "encode_frame",
    "encode_parameters",
    "fcs16",
]
