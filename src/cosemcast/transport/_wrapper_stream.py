"""The non-IO half of a wrapper TCP stream, shared by :mod:`~cosemcast.transport.tcp` (blocking)
and :mod:`~cosemcast.transport.aio` (asyncio).

A :class:`StreamFramer` holds the sans-IO :class:`~cosemcast.link.wrapper.WrapperDecoder` of one
connection and words every failure of that stream for its peer: broken framing (the header has
no flag, so the stream cannot be resynchronised), the peer closing inside or between frames, a
closed connection, a receive deadline. The transports own the socket, the locks and the capture
tap; they feed the framer what they read and raise what it returns.

:func:`apdu_from_server` is the client-link check that a frame came back from the logical device
to the client SAP the link was opened for (the wPorts of brief §1); :func:`reply_frame` is the
servers' rule that a response goes back with the request's wPorts swapped.
"""

from __future__ import annotations

from cosemcast.errors import DecodeError, RemoteProtocolError, ResponseTimeout, TransportError
from cosemcast.link.wrapper import WrapperDecoder, WrapperFrame
from cosemcast.transport.base import Address, ConnectionClosed, format_address

__all__ = ["StreamFramer", "apdu_from_server", "reply_frame"]


class StreamFramer:
    """The wrapper decoder of one TCP stream from ``peer``, and the errors worded for it."""

    __slots__ = ("_decoder", "peer")

    def __init__(self, peer: Address, max_apdu_length: int) -> None:
        self.peer = peer
        self._decoder = WrapperDecoder(max_apdu_length=max_apdu_length)

    def receive_data(self, data: bytes) -> None:
        self._decoder.receive_data(data)

    def next_frame(self) -> WrapperFrame | None:
        """The next complete frame (``None``: none buffered yet).

        Raises :class:`TransportError` when the stream broke the framing; the caller closes it.
        """
        try:
            return self._decoder.next_frame()
        except DecodeError as exc:
            raise TransportError(
                f"the stream from {format_address(self.peer)} broke the IEC 62056-47 wrapper "
                f"framing ({exc}); is that port a wrapper port (not HDLC)? Reconnect"
            ) from exc

    def end_of_stream(self) -> TransportError:
        """The error for the peer closing its side: :class:`ConnectionClosed` between frames."""
        pending = self._decoder.buffered
        if pending:
            return TransportError(
                f"{format_address(self.peer)} closed the connection inside a frame "
                f"({pending} bytes of it received)"
            )
        return ConnectionClosed(f"{format_address(self.peer)} closed the connection")

    def closed_error(self) -> TransportError:
        return TransportError(f"the connection to {format_address(self.peer)} is closed")

    def timeout_error(self, timeout_s: float | None) -> ResponseTimeout:
        return ResponseTimeout(
            f"no complete wrapper frame from {format_address(self.peer)} within {timeout_s} s: "
            "is the meter busy, are the wPorts right, is the timeout long enough?"
        )


def apdu_from_server(frame: WrapperFrame, client_wport: int, server_wport: int) -> bytes:
    """``frame``'s APDU if it went from ``server_wport`` to ``client_wport``.

    Raises :class:`RemoteProtocolError` for any other wPorts.
    """
    if frame.source_wport != server_wport or frame.destination_wport != client_wport:
        raise RemoteProtocolError(
            f"frame from wPort {frame.source_wport} to wPort {frame.destination_wport} on a "
            f"link from client {client_wport} to logical device {server_wport}: check the "
            "client SAP and the logical device address"
        )
    return frame.apdu


def reply_frame(request: WrapperFrame, apdu: bytes) -> WrapperFrame:
    """The frame carrying ``apdu`` back to where ``request`` came from (wPorts swapped)."""
    return WrapperFrame(request.destination_wport, request.source_wport, apdu)
