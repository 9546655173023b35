"""Transports: the only code that touches sockets, serial ports and clocks.

Each link carries whole APDUs (:class:`ApduLink`, :class:`AsyncApduLink`) and leaves framing
to the sans-IO codecs of ``cosemcast.link``: the IEC 62056-47 wrapper over TCP and UDP
(``tcp``, ``udp``, ``aio``), HDLC over a serial line (``serial``).
"""

from cosemcast.transport.aio import (
    AsyncTcpWrapperLink,
    AsyncTcpWrapperServer,
    AsyncUdpPushReceiver,
    AsyncUdpPushSender,
    AsyncUdpWrapperLink,
    AsyncUdpWrapperServer,
    open_push_receiver,
    open_push_sender,
    open_tcp_link,
    open_udp_link,
    start_tcp_server,
    start_udp_server,
)
from cosemcast.transport.base import ApduLink, AsyncApduLink, ConnectionClosed
from cosemcast.transport.serial import AsyncHdlcSerialLink, HdlcSerialLink, HdlcSerialServer
from cosemcast.transport.tcp import TcpServerConnection, TcpWrapperLink, TcpWrapperServer
from cosemcast.transport.udp import (
    UdpPushReceiver,
    UdpPushSender,
    UdpWrapperLink,
    UdpWrapperServer,
)

__all__ = [
    "ApduLink",
    "AsyncApduLink",
    "AsyncHdlcSerialLink",
    "AsyncTcpWrapperLink",
    "AsyncTcpWrapperServer",
    "AsyncUdpPushReceiver",
    "AsyncUdpPushSender",
    "AsyncUdpWrapperLink",
    "AsyncUdpWrapperServer",
    "ConnectionClosed",
    "HdlcSerialLink",
    "HdlcSerialServer",
    "TcpServerConnection",
    "TcpWrapperLink",
    "TcpWrapperServer",
    "UdpPushReceiver",
    "UdpPushSender",
    "UdpWrapperLink",
    "UdpWrapperServer",
    "open_push_receiver",
    "open_push_sender",
    "open_tcp_link",
    "open_udp_link",
    "start_tcp_server",
    "start_udp_server",
]
