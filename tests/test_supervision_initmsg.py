"""Initialization message codec (specs/supervision.md §5): body, seal/unseal, malformed input.

Round trips are Hypothesis properties; every decoder is fed arbitrary bytes and mutated valid
encodings and must raise only DecodeError (``unseal``, which also verifies, may raise
AuthenticationFailed). The byte-exact worked example is in test_supervision_vectors.py.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cosemcast.apdu.general import IdentifiedKey, KeyId
from cosemcast.errors import AuthenticationFailed, DecodeError, EncodeError
from cosemcast.security.protection import (
    IdentifiedGlobalKey,
    PresharedKey,
    cipher_general,
    sign_general,
)
from cosemcast.supervision.initmsg import (
    InitAction,
    InitMessage,
    decode_init_body,
    unseal,
)
from test_supervision_vectors import (
    CENTRE_ID,
    I0,
    INIT_BODY,
    INIT_SEALED,
    KI,
    METER_ID,
    centre_key,
    example_message,
    independent_init_body,
    independent_seal,
)

titles = st.binary(min_size=8, max_size=8)


@st.composite
def init_messages(draw: st.DrawFn) -> InitMessage:
    action = draw(st.sampled_from(InitAction))
    not_before = draw(st.integers(0, 2**64 - 1))
    return InitMessage(
        meter_id=draw(titles),
        head_end_id=draw(titles),
        i0=bytes(16) if action is InitAction.REVOKE else draw(st.binary(min_size=16, max_size=16)),
        not_before=not_before,
        not_after=draw(st.integers(not_before, 2**64 - 1)),
        sequence=draw(st.integers(1, 2**32 - 1)),
        action=action,
    )


@given(init_messages())
def test_body_round_trip(message: InitMessage) -> None:
    body = message.encode_body()
    assert decode_init_body(body) == message
    assert len(body) == 67


@given(init_messages())
def test_body_matches_the_independent_layout(message: InitMessage) -> None:
    assert message.encode_body() == independent_init_body(
        message.meter_id,
        message.head_end_id,
        message.i0,
        message.not_before,
        message.not_after,
        message.sequence,
        message.action,
    )


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow])
@given(init_messages(), st.binary(min_size=16, max_size=16), titles)
def test_seal_unseal_round_trip(message: InitMessage, ki: bytes, centre: bytes) -> None:
    key = centre_key()
    sealed = unseal(
        message.seal(key, ki, centre_id=centre), ki=ki, centre_public_key=key.public_key()
    )
    assert sealed.message == message
    assert sealed.centre_id == centre
    assert sealed.recipient_id == message.meter_id


def test_i0_stays_out_of_the_repr() -> None:
    text = repr(example_message())
    assert I0.hex() not in text.lower() and repr(I0) not in text
    assert "i0" not in text


@given(st.binary(max_size=120))
def test_arbitrary_bytes_only_raise_decode_error_for_the_body(data: bytes) -> None:
    try:
        decode_init_body(data)
    except DecodeError:
        pass


@given(st.data())
def test_mutated_bodies_only_raise_decode_error(data: st.DataObject) -> None:
    body = bytearray(INIT_BODY)
    if data.draw(st.booleans()):
        body = body[: data.draw(st.integers(0, len(body) - 1))]
    else:
        at = data.draw(st.integers(0, len(body) - 1))
        body[at] ^= data.draw(st.integers(1, 255))
    try:
        decode_init_body(bytes(body))
    except DecodeError:
        pass


@given(st.binary(max_size=250))
def test_arbitrary_bytes_never_unseal(data: bytes) -> None:
    with pytest.raises((DecodeError, AuthenticationFailed)):
        unseal(data, ki=KI, centre_public_key=centre_key().public_key())


@given(st.data())
def test_mutated_sealed_messages_never_unseal(data: st.DataObject) -> None:
    raw = bytearray(INIT_SEALED)
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] ^= data.draw(st.integers(1, 255))
    with pytest.raises((DecodeError, AuthenticationFailed)):
        unseal(bytes(raw), ki=KI, centre_public_key=centre_key().public_key())


def test_trailing_byte_is_refused() -> None:
    with pytest.raises(DecodeError):
        decode_init_body(INIT_BODY + b"\x00")
    with pytest.raises(DecodeError):
        unseal(INIT_SEALED + b"\x00", ki=KI, centre_public_key=centre_key().public_key())


def test_non_canonical_length_is_refused() -> None:
    # meter-id written with a long-form length 81 08: same value, other bytes.
    body = INIT_BODY[:6] + b"\x09\x81\x08" + INIT_BODY[8:]
    with pytest.raises(DecodeError, match="canonical"):
        decode_init_body(body)


@pytest.mark.parametrize(
    ("at", "value", "match"),
    [
        (3, 0x02, "message type"),
        (5, 0x00, "action"),
        (5, 0x04, "action"),
        (4, 0x11, "element 1"),  # action typed unsigned instead of enum
    ],
)
def test_body_field_checks(at: int, value: int, match: str) -> None:
    body = bytearray(INIT_BODY)
    body[at] = value
    with pytest.raises(DecodeError, match=match):
        decode_init_body(bytes(body))


def test_revocation_needs_zero_i0() -> None:
    body = independent_init_body(METER_ID, METER_ID, I0, 0, 1, 1, InitAction.REVOKE)
    with pytest.raises(DecodeError, match="all-zero I0"):
        decode_init_body(body)
    with pytest.raises(EncodeError, match="all-zero I0"):
        example_message(action=InitAction.REVOKE).encode_body()


def test_window_and_sequence_checks_in_the_body() -> None:
    with pytest.raises(DecodeError, match="not-before"):
        decode_init_body(independent_init_body(METER_ID, METER_ID, I0, 10, 9, 1))
    with pytest.raises(DecodeError, match="sequence 0"):
        decode_init_body(independent_init_body(METER_ID, METER_ID, I0, 9, 10, 0))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"meter_id": bytes(7)}, "meter-id"),
        ({"head_end_id": bytes(9)}, "head-end-id"),
        ({"i0": bytes(15)}, "I0"),
        ({"not_before": 10, "not_after": 9}, "validity window"),
        ({"not_after": 2**64}, "validity window"),
        ({"sequence": 0}, "sequence"),
        ({"sequence": 2**32}, "sequence"),
        ({"action": 7}, "action"),
    ],
)
def test_encode_refuses_bad_fields(changes: dict[str, object], match: str) -> None:
    with pytest.raises(EncodeError, match=match):
        example_message(**changes).encode_body()


def test_seal_refuses_bad_keys() -> None:
    message = example_message()
    with pytest.raises(EncodeError, match="Ki"):
        message.seal(centre_key(), bytes(32), centre_id=CENTRE_ID)
    with pytest.raises(ValueError, match="P-256"):
        message.seal(ec.generate_private_key(ec.SECP384R1()), KI, centre_id=CENTRE_ID)
    with pytest.raises(EncodeError, match="centre ID"):
        message.seal(centre_key(), KI, centre_id=bytes(4))


# --- envelopes that are well formed but break a rule of specs §5.2 ------------------------------


def _sign(body: bytes, *, recipient: bytes = METER_ID, transaction_id: bytes = b"") -> bytes:
    return sign_general(
        body,
        signing_private_key=centre_key(),
        transaction_id=transaction_id,
        originator_system_title=CENTRE_ID,
        recipient_system_title=recipient,
        deterministic=True,
    ).encode()


def _open(raw: bytes) -> object:
    return unseal(raw, ki=KI, centre_public_key=centre_key().public_key())


def test_ic_must_equal_the_sequence() -> None:
    raw = independent_seal(
        INIT_BODY, key=centre_key(), ki=KI, centre=CENTRE_ID, recipient=METER_ID, sequence=2
    )
    with pytest.raises(DecodeError, match="IC 2 differs from sequence 1"):
        _open(raw)


def test_wrong_security_control_is_refused() -> None:
    raw = cipher_general(
        _sign(INIT_BODY),
        key=PresharedKey(KI),
        security_control=0x30,
        invocation_counter=1,
        transaction_id=b"",
        originator_system_title=CENTRE_ID,
        recipient_system_title=METER_ID,
    ).encode()
    with pytest.raises(DecodeError, match="security control 0x30"):
        _open(raw)


def test_key_info_must_be_absent() -> None:
    raw = cipher_general(
        _sign(INIT_BODY),
        key=IdentifiedGlobalKey(KeyId.GLOBAL_UNICAST_ENCRYPTION_KEY, KI),
        security_control=0x31,
        invocation_counter=1,
        transaction_id=b"",
        originator_system_title=CENTRE_ID,
        recipient_system_title=METER_ID,
    )
    assert isinstance(raw.key_info, IdentifiedKey)
    with pytest.raises(DecodeError, match="key-info"):
        _open(raw.encode())


def test_signed_recipient_must_match_the_envelope() -> None:
    raw = cipher_general(
        _sign(INIT_BODY, recipient=bytes(8)),
        key=PresharedKey(KI),
        security_control=0x31,
        invocation_counter=1,
        transaction_id=b"",
        originator_system_title=CENTRE_ID,
        recipient_system_title=METER_ID,
    ).encode()
    with pytest.raises(DecodeError, match="recipients differ"):
        _open(raw)


def test_header_fields_must_be_empty() -> None:
    raw = cipher_general(
        _sign(INIT_BODY, transaction_id=b"\x01"),
        key=PresharedKey(KI),
        security_control=0x31,
        invocation_counter=1,
        transaction_id=b"",
        originator_system_title=CENTRE_ID,
        recipient_system_title=METER_ID,
    ).encode()
    with pytest.raises(DecodeError, match="transaction-id"):
        _open(raw)


def test_content_must_be_general_signing() -> None:
    raw = cipher_general(
        INIT_BODY,
        key=PresharedKey(KI),
        security_control=0x31,
        invocation_counter=1,
        transaction_id=b"",
        originator_system_title=CENTRE_ID,
        recipient_system_title=METER_ID,
    ).encode()
    with pytest.raises(DecodeError):
        _open(raw)


def test_other_apdus_are_refused() -> None:
    with pytest.raises(DecodeError, match="general-ciphering"):
        _open(_sign(INIT_BODY))
