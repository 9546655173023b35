"""scapy dissectors for DLMS/COSEM: ``import cosemcast.dissect``, then ``rdpcap(...)`` and
``show()`` just work.

Theory of operation. Importing this package (the optional extra ``dissect``; scapy is GPL and
is imported nowhere else in cosemcast) binds the layers:

* :class:`DlmsWrapper` (IEC 62056-47 wrapper) on TCP and UDP port 4059, either direction,
  with TCP reassembly for ``sniff(offline=..., session=TCPSession)``;
* :class:`DlmsSerial` on pcap link type 147 (``LINKTYPE_USER0``), cosemcast's serial captures
  of :class:`Hdlc` frames (:mod:`cosemcast.capture.serial_pcap`, ``specs/pcap.md``);
* :class:`DlmsApdu` on every APDU, decoded by the project's codecs
  (:func:`cosemcast.apdu.decode_apdu`), never by a second parser.

Malformed bytes are dissected into layers that say so (:class:`DlmsMalformedApdu`, the
``check`` field of :class:`Hdlc`); dissection never raises out of ``rdpcap`` or ``show()``.
"""

from __future__ import annotations

from scapy.config import conf
from scapy.layers.inet import TCP, UDP
from scapy.packet import bind_bottom_up, bind_layers

from cosemcast.capture.serial_pcap import LINKTYPE_DLMS_SERIAL
from cosemcast.dissect.apdu import DlmsApdu, DlmsMalformedApdu, apdu_layer_class
from cosemcast.dissect.hdlc import (
    DlmsLlc,
    DlmsSerial,
    DlmsSerialBytes,
    Hdlc,
    HdlcParametersLayer,
    HdlcReassembled,
    HdlcSegment,
    HdlcSession,
    HdlcTruncated,
    control_text,
    reassemble_hdlc,
)
from cosemcast.dissect.wrapper import DlmsWrapper, DlmsWrapperFragment
from cosemcast.link.wrapper import DLMS_PORT

__all__ = [
    "DLMS_PORT",
    "DlmsApdu",
    "DlmsLlc",
    "DlmsMalformedApdu",
    "DlmsSerial",
    "DlmsSerialBytes",
    "DlmsWrapper",
    "DlmsWrapperFragment",
    "Hdlc",
    "HdlcParametersLayer",
    "HdlcReassembled",
    "HdlcSegment",
    "HdlcSession",
    "HdlcTruncated",
    "apdu_layer_class",
    "control_text",
    "reassemble_hdlc",
]

# Both directions: requests go to 4059, answers and pushes may come from it (doip.py style).
bind_bottom_up(UDP, DlmsWrapper, sport=DLMS_PORT)
bind_bottom_up(UDP, DlmsWrapper, dport=DLMS_PORT)
bind_layers(UDP, DlmsWrapper, sport=DLMS_PORT, dport=DLMS_PORT)
bind_layers(TCP, DlmsWrapper, sport=DLMS_PORT)
bind_layers(TCP, DlmsWrapper, dport=DLMS_PORT)

conf.l2types.register(LINKTYPE_DLMS_SERIAL, DlmsSerial)
