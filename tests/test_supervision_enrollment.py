"""The meter's enrollment request, its consent to a head-end (specs/supervision.md §7).

The byte-exact worked example is in test_supervision_vectors.py; here: round trips, every
rejection of specs §7.3 and arbitrary or mutated bytes.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosemcast.errors import AuthenticationFailed, DecodeError, EncodeError, ReplayError
from cosemcast.security.protection import PresharedKey, cipher_general
from cosemcast.supervision import (
    EnrollmentRequest,
    FutureEnrollment,
    InitAction,
    StaleEnrollment,
    WrongMeterError,
    enrollment_meter_id,
    open_enrollment_request,
)
from cosemcast.supervision.enrollment import DEFAULT_MAX_AGE_S, decode_enrollment_body
from cosemcast.supervision.validation import DEFAULT_TOLERANCE_S
from test_supervision_vectors import (
    ENROLLMENT_BODY,
    ENROLLMENT_SEALED,
    HEAD_END_ID,
    KE,
    KT,
    METER_ID,
    REQUESTED_AT,
    example_enrollment,
    independent_enrollment,
)

titles = st.binary(min_size=8, max_size=8)
NOW = REQUESTED_AT + 60


@st.composite
def requests(draw: st.DrawFn) -> EnrollmentRequest:
    return EnrollmentRequest(
        meter_id=draw(titles),
        head_end_id=draw(titles),
        requested_at=draw(st.integers(0, 2**64 - 1)),
        counter=draw(st.integers(1, 2**32 - 1)),
        action=draw(st.sampled_from([InitAction.ASSIGN, InitAction.ASSIGN_EXCLUSIVE])),
    )


def _open(raw: bytes, *, now: int = NOW, used: frozenset[int] = frozenset()) -> EnrollmentRequest:
    return open_enrollment_request(raw, kt=KT, now=now, used_counters=used)


@given(requests())
def test_body_round_trip(request: EnrollmentRequest) -> None:
    assert decode_enrollment_body(request.encode_body()) == request


@given(requests(), st.binary(min_size=16, max_size=16))
def test_seal_open_round_trip(request: EnrollmentRequest, kt: bytes) -> None:
    raw = request.seal(kt)
    assert enrollment_meter_id(raw) == request.meter_id
    opened = open_enrollment_request(
        raw,
        kt=kt,
        now=min(request.requested_at, 2**64 - 1),
        used_counters={request.counter - 1, request.counter + 1},
    )
    assert opened == request


def test_the_worked_example_opens() -> None:
    assert _open(ENROLLMENT_SEALED) == example_enrollment()
    # The body is readable by the head-end: it travels in clear (authentication only).
    assert ENROLLMENT_BODY in ENROLLMENT_SEALED


def _seal_body(body: bytes, *, counter: int = 1, meter: bytes = METER_ID, key: bytes = KE) -> bytes:
    return independent_enrollment(body, ke=key, meter=meter, head_end=HEAD_END_ID, counter=counter)


@pytest.mark.parametrize(
    ("raw", "now", "used", "error", "match"),
    [
        pytest.param(
            _seal_body(ENROLLMENT_BODY, key=bytes(16)),
            NOW,
            (),
            AuthenticationFailed,
            "tag",
            id="wrong key",
        ),
        pytest.param(
            ENROLLMENT_SEALED[:-1] + bytes((ENROLLMENT_SEALED[-1] ^ 1,)),
            NOW,
            (),
            AuthenticationFailed,
            "tag",
            id="flipped tag",
        ),
        pytest.param(ENROLLMENT_SEALED, NOW, (1,), ReplayError, "already used", id="replayed"),
        pytest.param(
            ENROLLMENT_SEALED,
            REQUESTED_AT + DEFAULT_MAX_AGE_S + DEFAULT_TOLERANCE_S + 1,
            (),
            StaleEnrollment,
            "expired",
            id="too old",
        ),
        pytest.param(
            ENROLLMENT_SEALED,
            REQUESTED_AT - DEFAULT_TOLERANCE_S - 1,
            (),
            FutureEnrollment,
            "not valid yet",
            id="from the future",
        ),
        pytest.param(
            _seal_body(ENROLLMENT_BODY, counter=2),
            NOW,
            (),
            DecodeError,
            "IC 2",
            id="IC",
        ),
        pytest.param(b"\x00", NOW, (), DecodeError, None, id="garbage"),
    ],
)
def test_rejections(
    raw: bytes, now: int, used: tuple[int, ...], error: type[Exception], match: str | None
) -> None:
    with pytest.raises(error, match=match):
        _open(raw, now=now, used=frozenset(used))


def test_window_edges() -> None:
    assert _open(ENROLLMENT_SEALED, now=REQUESTED_AT - DEFAULT_TOLERANCE_S).counter == 1
    edge = REQUESTED_AT + DEFAULT_MAX_AGE_S + DEFAULT_TOLERANCE_S
    assert _open(ENROLLMENT_SEALED, now=edge).counter == 1


def test_body_must_match_the_envelope() -> None:
    other = bytes.fromhex("4D414E0100000001")
    body = EnrollmentRequest(other, HEAD_END_ID, REQUESTED_AT, 1).encode_body()
    with pytest.raises(WrongMeterError, match="another meter"):
        _open(_seal_body(body))
    body = EnrollmentRequest(METER_ID, other, REQUESTED_AT, 1).encode_body()
    with pytest.raises(WrongMeterError, match="another head-end"):
        _open(_seal_body(body))


def test_envelope_rules() -> None:
    def envelope(sc: int = 0x11, tid: bytes = b"") -> bytes:
        return cipher_general(
            ENROLLMENT_BODY,
            key=PresharedKey(KE),
            security_control=sc,
            invocation_counter=1,
            transaction_id=tid,
            originator_system_title=METER_ID,
            recipient_system_title=HEAD_END_ID,
        ).encode()

    assert envelope() == ENROLLMENT_SEALED
    with pytest.raises(DecodeError, match="security control 0x31"):
        _open(envelope(sc=0x31))
    with pytest.raises(DecodeError, match="transaction-id"):
        _open(envelope(tid=b"\x01"))


def test_only_consenting_actions() -> None:
    with pytest.raises(EncodeError, match="consents"):
        EnrollmentRequest(METER_ID, HEAD_END_ID, 0, 1, InitAction.REVOKE).encode_body()
    body = bytearray(ENROLLMENT_BODY)
    body[5] = InitAction.REVOKE
    with pytest.raises(DecodeError, match="action 3"):
        decode_enrollment_body(bytes(body))
    body[3] = 1
    with pytest.raises(DecodeError, match="message type 1"):
        decode_enrollment_body(bytes(body))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"meter_id": bytes(3)}, "meter-id"),
        ({"head_end_id": bytes(3)}, "head-end-id"),
        ({"counter": 0}, "counter"),
        ({"requested_at": -1}, "requested-at"),
    ],
)
def test_encode_refuses_bad_fields(changes: dict[str, object], match: str) -> None:
    fields: dict[str, object] = {
        "meter_id": METER_ID,
        "head_end_id": HEAD_END_ID,
        "requested_at": REQUESTED_AT,
        "counter": 1,
    }
    fields.update(changes)
    with pytest.raises(EncodeError, match=match):
        EnrollmentRequest(**fields).encode_body()  # type: ignore[arg-type]


@given(st.binary(max_size=100))
def test_arbitrary_bytes(data: bytes) -> None:
    try:
        decode_enrollment_body(data)
    except DecodeError:
        pass
    try:
        enrollment_meter_id(data)
    except DecodeError:
        pass
    with pytest.raises((DecodeError, AuthenticationFailed)):
        _open(data)


@given(st.data())
def test_mutations_never_open(data: st.DataObject) -> None:
    raw = bytearray(ENROLLMENT_SEALED)
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] ^= data.draw(st.integers(1, 255))
    with pytest.raises((DecodeError, AuthenticationFailed)):
        _open(bytes(raw))
