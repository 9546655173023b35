"""The supervision service object's answers (specs/supervision.md §8.1.3): codec properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosemcast.axdr import Enumerated, OctetString, Structure, Utf8String, decode_data, encode_data
from cosemcast.errors import DecodeError
from cosemcast.supervision import ConsentError, InitAction, NotAuthorizedError, UnknownPartyError
from cosemcast.supervision.errors import RegistryError
from cosemcast.supervision.records import Issued
from cosemcast.supervision.wire import (
    Assignment,
    ServiceRefusal,
    ServiceStatus,
    decode_service_result,
    encode_assignment,
    encode_refusal,
    refusal_for,
)

issued = st.builds(
    Issued,
    meter_id=st.binary(min_size=8, max_size=8),
    head_end_id=st.binary(min_size=8, max_size=8),
    action=st.sampled_from([InitAction.ASSIGN, InitAction.ASSIGN_EXCLUSIVE]),
    sequence=st.integers(1, 2**32 - 1),
    not_before=st.integers(0, 2**63),
    not_after=st.just(2**64 - 1),
    init_message=st.binary(min_size=1, max_size=300),
    ks=st.binary(min_size=16, max_size=16),
)


@given(issued)
def test_assignment_round_trip(value: Issued) -> None:
    wire = encode_data(encode_assignment(value))
    decoded = decode_service_result(decode_data(wire))
    assert decoded == Assignment(
        value.meter_id,
        value.action,
        value.sequence,
        value.not_before,
        value.not_after,
        value.init_message,
        value.ks or b"",
    )
    assert "ks=" not in repr(decoded)


@given(st.sampled_from(list(ServiceStatus)[1:]), st.text(max_size=80))
def test_refusal_round_trip(status: ServiceStatus, reason: str) -> None:
    wire = encode_data(encode_refusal(ServiceRefusal(status, reason)))
    assert decode_service_result(decode_data(wire)) == ServiceRefusal(status, reason)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_decode_error(raw: bytes) -> None:
    try:
        value = decode_data(raw)
        decode_service_result(value)
    except DecodeError:
        pass


@given(issued, st.data())
def test_mutated_answers_raise_only_decode_error(value: Issued, data: st.DataObject) -> None:
    wire = bytearray(encode_data(encode_assignment(value)))
    index = data.draw(st.integers(0, len(wire) - 1))
    wire[index] = data.draw(st.integers(0, 255))
    try:
        decode_service_result(decode_data(bytes(wire)))
    except DecodeError:
        pass


@pytest.mark.parametrize(
    "value",
    [
        None,
        OctetString(b""),
        Structure(()),
        Structure((Enumerated(9), Utf8String("x"))),
        Structure((Enumerated(1),)),
        Structure((Enumerated(1), OctetString(b"x"))),
        Structure((Enumerated(0), Utf8String("x"))),
    ],
)
def test_malformed_answers(value: object) -> None:
    with pytest.raises(DecodeError):
        decode_service_result(value)  # type: ignore[arg-type]


def test_refusals_map_to_the_registry_errors() -> None:
    for error in (
        ConsentError("c"),
        UnknownPartyError("u"),
        NotAuthorizedError("n"),
        RegistryError("r"),
    ):
        refusal = refusal_for(error)
        assert type(refusal.error()) is type(error)
        assert str(error) in str(refusal.error())
