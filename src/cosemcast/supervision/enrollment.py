"""The meter's enrollment request: its owner's consent to a head-end (specs/supervision.md §7).

Theory of operation. Patent [0051]: the assignment request "can be seen as an enrollment request
sent by the meter to at least one head-end of its choice", which the head-end forwards to the
supervision centre. The head-end cannot check it (it has no ``Kt``); the centre can, because the
request is authenticated with ``Ke = KDF(Kt, "cosemcast Ke", meter ID)`` (specs §4.2). So a
head-end cannot enroll a meter whose owner did not choose it.

Wire form: a general-ciphering APDU ``DD`` from the meter (originator) to the chosen head-end
(recipient), key-info absent, SC ``11`` (suite 1, authentication only: the head-end may read the
request, nobody can alter it), IC = the meter's enrollment counter, AK empty, Green Book AAD;
its content is the body of §7.1 in clear, followed by the 12-byte GMAC tag under ``Ke``.

The centre checks, in order (specs §7.3): framing, the claimed meter is known (the caller looks
up ``Kt`` with :func:`enrollment_meter_id`), the tag, the body, that envelope and body agree,
freshness of ``requested_at``, and that the counter was never consumed before. The meter never
reuses a counter (it is the GCM IV's counter under ``Ke``: a repeated IV would expose the GMAC key).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.general import GeneralCiphering
from cosemcast.axdr import (
    DoubleLongUnsigned,
    Enumerated,
    Long64Unsigned,
    OctetString,
    Structure,
    encode_data,
)
from cosemcast.errors import DecodeError, EncodeError, ReplayError
from cosemcast.security.protection import (
    PresharedKey,
    RecipientKeys,
    cipher_general,
    decipher_general,
)
from cosemcast.supervision._body import as_bytes, as_int, read_structure
from cosemcast.supervision.errors import FutureEnrollment, StaleEnrollment, WrongMeterError
from cosemcast.supervision.initmsg import InitAction, MessageType
from cosemcast.supervision.kdf import SYSTEM_TITLE_LENGTH, derive_enrollment_key
from cosemcast.supervision.validation import DEFAULT_TOLERANCE_S, check_window

__all__ = [
    "DEFAULT_MAX_AGE_S",
    "ENROLLMENT_SECURITY_CONTROL",
    "EnrollmentRequest",
    "decode_enrollment_body",
    "enrollment_meter_id",
    "open_enrollment_request",
]

ENROLLMENT_SECURITY_CONTROL = 0x11  # suite 1, A = 1, E = 0 (brief §5.1)
DEFAULT_MAX_AGE_S = 86_400
_U32_MAX = 0xFFFFFFFF
_U64_MAX = 0xFFFFFFFFFFFFFFFF
_CONSENTED = (InitAction.ASSIGN, InitAction.ASSIGN_EXCLUSIVE)

_ENROLLMENT_SHAPE = (
    Enumerated,
    Enumerated,
    SYSTEM_TITLE_LENGTH,
    SYSTEM_TITLE_LENGTH,
    Long64Unsigned,
    DoubleLongUnsigned,
)


@dataclass(frozen=True, slots=True)
class EnrollmentRequest:
    """The meter asks that ``head_end_id`` be assigned to it (specs §7.1)."""

    meter_id: bytes
    head_end_id: bytes
    requested_at: int
    counter: int
    action: InitAction = InitAction.ASSIGN

    def encode_body(self) -> bytes:
        """The A-XDR body (specs §7.1)."""
        for value, what in ((self.meter_id, "meter-id"), (self.head_end_id, "head-end-id")):
            if len(value) != SYSTEM_TITLE_LENGTH:
                raise EncodeError(f"{what} is an 8-byte system title, got {len(value)} bytes")
        if self.action not in _CONSENTED:
            raise EncodeError(
                f"a meter consents to assign (1) or assign-exclusive (2), not {self.action}"
            )
        if not 0 <= self.requested_at <= _U64_MAX:
            raise EncodeError("requested-at is out of range 0..2^64-1")
        if not 1 <= self.counter <= _U32_MAX:
            raise EncodeError(f"counter {self.counter} is out of range 1..2^32-1")
        return encode_data(
            Structure(
                (
                    Enumerated(MessageType.ENROLLMENT),
                    Enumerated(self.action),
                    OctetString(self.meter_id),
                    OctetString(self.head_end_id),
                    Long64Unsigned(self.requested_at),
                    DoubleLongUnsigned(self.counter),
                )
            )
        )

    def seal(self, kt: bytes) -> bytes:
        """Authenticate with ``Ke`` derived from ``kt`` (specs §7.2); return the ``DD`` bytes."""
        body = self.encode_body()
        ke = derive_enrollment_key(kt, meter_id=self.meter_id)
        return cipher_general(
            body,
            key=PresharedKey(ke),
            security_control=ENROLLMENT_SECURITY_CONTROL,
            invocation_counter=self.counter,
            transaction_id=b"",
            originator_system_title=self.meter_id,
            recipient_system_title=self.head_end_id,
        ).encode()


def decode_enrollment_body(raw: bytes) -> EnrollmentRequest:
    """Read a body (specs §7.1) strictly; raise :class:`DecodeError` on anything else."""
    fields = read_structure(raw, _ENROLLMENT_SHAPE, "enrollment body")
    kind, action = as_int(fields[0]), as_int(fields[1])
    meter_id, head_end_id = as_bytes(fields[2]), as_bytes(fields[3])
    requested_at, counter = as_int(fields[4]), as_int(fields[5])
    if kind != MessageType.ENROLLMENT:
        raise DecodeError(f"message type {kind}", offset=3, expected="2 (enrollment)")
    if action not in _CONSENTED:
        raise DecodeError(f"action {action}", offset=5, expected="1 or 2")
    if counter == 0:
        raise DecodeError("counter 0 is reserved", expected="a counter >= 1")
    return EnrollmentRequest(meter_id, head_end_id, requested_at, counter, InitAction(action))


def _envelope(raw: bytes) -> GeneralCiphering:
    apdu = decode_apdu(raw)
    if not isinstance(apdu, GeneralCiphering):
        raise DecodeError(
            f"an enrollment request is general-ciphering, not {type(apdu).__name__}",
            offset=0,
            expected="DD",
        )
    if apdu.key_info is not None:
        raise DecodeError("key-info must be absent (Ke is derived from Kt)", expected="00")
    if apdu.security_control != ENROLLMENT_SECURITY_CONTROL:
        raise DecodeError(
            f"security control 0x{apdu.security_control:02X}",
            expected=f"0x{ENROLLMENT_SECURITY_CONTROL:02X}",
        )
    for value, what in (
        (apdu.originator_system_title, "originator-system-title"),
        (apdu.recipient_system_title, "recipient-system-title"),
    ):
        if len(value) != SYSTEM_TITLE_LENGTH:
            raise DecodeError(f"{what} of {len(value)} bytes", expected="8 bytes")
    for value, what in (
        (apdu.transaction_id, "transaction-id"),
        (apdu.date_time, "date-time"),
        (apdu.other_information, "other-information"),
    ):
        if value:
            raise DecodeError(f"{what} must be empty in an enrollment request", expected="00")
    return apdu


def enrollment_meter_id(raw: bytes) -> bytes:
    """The meter the request claims to come from, *unauthenticated*: only to look up ``Kt``."""
    return bytes(_envelope(raw).originator_system_title)


def open_enrollment_request(
    raw: bytes,
    *,
    kt: bytes,
    now: int,
    used_counters: Container[int],
    max_age_s: int = DEFAULT_MAX_AGE_S,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> EnrollmentRequest:
    """The centre's checks of specs §7.3, in order; return the request only if all pass.

    ``kt`` is the key of the meter named by :func:`enrollment_meter_id`; ``now`` the centre's
    time (POSIX seconds); ``used_counters`` the counters of that meter's requests already
    consumed (any container: a set, or an object whose ``__contains__`` asks a database).
    Accepts ``now - max_age_s - tolerance_s <= requested_at <= now + tolerance_s``. A meter may
    enroll with several head-ends at once and their requests may reach the centre in any order,
    so the replay rule is "never consumed before", not "above the last" (specs §7.3).
    """
    if max_age_s < 0:
        raise ValueError(f"max_age_s must not be negative, got {max_age_s}")
    apdu = _envelope(raw)
    ke = derive_enrollment_key(kt, meter_id=apdu.originator_system_title)
    body = decipher_general(apdu, RecipientKeys(preshared_key=ke)).plain
    request = decode_enrollment_body(body)
    if request.meter_id != apdu.originator_system_title:
        raise WrongMeterError(
            "the body names another meter than the originator",
            expected=apdu.originator_system_title,
            received=request.meter_id,
        )
    if request.head_end_id != apdu.recipient_system_title:
        raise WrongMeterError(
            "the body names another head-end than the recipient",
            expected=apdu.recipient_system_title,
            received=request.head_end_id,
        )
    if apdu.invocation_counter != request.counter:
        raise DecodeError(
            f"IC {apdu.invocation_counter} differs from counter {request.counter}",
            expected="IC = counter",
        )
    check_window(
        request.requested_at,
        request.requested_at + max_age_s,
        now,
        tolerance_s,
        stale=StaleEnrollment,
        future=FutureEnrollment,
        what="the enrollment request",
    )
    if request.counter in used_counters:
        raise ReplayError(
            f"enrollment counter {request.counter} of this meter was already used",
            received=request.counter,
        )
    return request
