"""The one exception tree of cosemcast.

Every error the library raises derives from :class:`DlmsError`. The split follows the h11
model: *local* errors mean the caller misused the API, *remote* errors mean the peer sent
something wrong; decoders raise :class:`DecodeError` (with the byte offset where decoding
failed), encoders :class:`EncodeError`; everything about keys, tags and counters is a
:class:`SecurityError`.

Errors carry typed fields. No exception message ever contains key material: messages are
built from offsets, lengths, tags and names only.
"""

from __future__ import annotations

__all__ = [
    "AssociationRejected",
    "AuthenticationFailed",
    "ConfigurationError",
    "DecodeError",
    "DlmsError",
    "EncodeError",
    "KeyUnavailableError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "ReplayError",
    "ResponseTimeout",
    "SecurityError",
    "TransportError",
]


class DlmsError(Exception):
    """Root of every exception raised by cosemcast."""


class DecodeError(DlmsError):
    """Malformed bytes: the input cannot be decoded.

    ``offset`` is the byte position (from the start of the buffer handed to the decoder)
    at which decoding failed, ``expected`` says what was expected there.
    """

    def __init__(self, message: str, *, offset: int | None = None, expected: str | None = None):
        self.message = message
        self.offset = offset
        self.expected = expected
        text = message if offset is None else f"at offset {offset}: {message}"
        super().__init__(text)


class EncodeError(DlmsError):
    """A value cannot be encoded (out of range, wrong type, too long)."""


class ConfigurationError(DlmsError):
    """A configuration or key file is invalid."""


class LocalProtocolError(DlmsError):
    """We (the caller) tried to do something the protocol does not allow in this state."""


class RemoteProtocolError(DlmsError):
    """The peer did something the protocol does not allow."""


class SecurityError(DlmsError):
    """Base of everything that concerns keys, authentication and replay protection."""


class AuthenticationFailed(SecurityError):
    """A GCM tag, GMAC, signature or HLS response did not verify. Nothing was decoded."""


class ReplayError(SecurityError):
    """A message repeats or goes back in sequence (invocation counter, kp_id, init message).

    ``received`` and ``expected_min`` are the offending value and the smallest one that would
    have been accepted, when they are counters.
    """

    def __init__(
        self, message: str, *, received: int | None = None, expected_min: int | None = None
    ):
        self.received = received
        self.expected_min = expected_min
        super().__init__(message)


class KeyUnavailableError(SecurityError):
    """No key is known for the party, key id or system title needed."""


class AssociationRejected(DlmsError):
    """The server rejected the association (AARE result not accepted)."""

    def __init__(self, message: str, *, result: int | None = None, diagnostic: int | None = None):
        self.result = result
        self.diagnostic = diagnostic
        super().__init__(message)


class TransportError(DlmsError):
    """The IO layer failed (socket, serial port)."""


class ResponseTimeout(TransportError):
    """No answer arrived in time."""
