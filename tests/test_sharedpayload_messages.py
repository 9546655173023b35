"""Bodies and identifiers of the shared-payload scheme (specs/shared-payload.md §2, §3.1, §5, §6):
round trips, strict decoding, and "arbitrary or mutated bytes raise only DecodeError"."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosemcast.apdu.general import AgreedKey, GeneralCiphering, IdentifiedKey, KeyId, WrappedKey
from cosemcast.errors import DecodeError, EncodeError, SecurityError
from cosemcast.sharedpayload import (
    AckBody,
    AckKind,
    AckRequest,
    ControlBody,
    HeadEndOpener,
    KpId,
    MemoryPayloadKeyStore,
    MessageKind,
    StaticMeterCredentials,
    message_kind,
)
from cosemcast.sharedpayload.sealing import check_payload_shape

U32 = st.integers(min_value=0, max_value=0xFFFFFFFF)
kp_ids = st.builds(KpId, U32, U32)


def control_bodies() -> st.SearchStrategy[ControlBody]:
    return st.builds(
        lambda kp, nb, span, ic, flags: ControlBody(
            kp, nb, min(nb + span, 0xFFFFFFFF), ic, AckRequest(flags)
        ),
        kp_ids,
        U32,
        U32,
        U32,
        st.integers(min_value=0, max_value=3),
    )


ack_bodies = st.builds(AckBody, kp_ids, U32, st.sampled_from(list(AckKind)))


# --- kp_id ---------------------------------------------------------------------------------------


@given(kp_ids)
def test_kp_id_round_trip(kp_id: KpId) -> None:
    raw = kp_id.to_bytes()
    assert len(raw) == 8
    assert KpId.from_bytes(raw) == kp_id


@given(kp_ids, kp_ids)
def test_kp_id_order_is_the_u64_order(a: KpId, b: KpId) -> None:
    # specs §3.1: (epoch, sequence) order = big-endian u64 order.
    assert (a < b) == (int.from_bytes(a.to_bytes(), "big") < int.from_bytes(b.to_bytes(), "big"))


@pytest.mark.parametrize("raw", [b"", b"\x00" * 7, b"\x00" * 9])
def test_kp_id_length_is_checked(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        KpId.from_bytes(raw)


def test_kp_id_range_is_checked() -> None:
    with pytest.raises(ValueError):
        KpId(1 << 32, 0)
    assert str(KpId(1, 2)) == "00000001:00000002"


# --- control body --------------------------------------------------------------------------------


@given(control_bodies())
def test_control_body_round_trip(body: ControlBody) -> None:
    plain = body.to_apdu()
    assert plain[:6] == bytes.fromhex("0F0000000000")
    assert ControlBody.from_apdu(plain) == body


def test_control_body_layout() -> None:
    # specs §5.2: 0F 00000000 00 02 05 09 08 <kp_id> 06 <nb> 06 <na> 06 <first IC> 11 <flags>
    body = ControlBody(KpId(1, 2), 3, 4, 5, AckRequest.CONTROL | AckRequest.PAYLOADS)
    assert body.to_apdu() == bytes.fromhex(
        "0F00000000000205090800000001000000020600000003060000000406000000051103"
    )


@given(st.binary(max_size=64))
def test_control_body_arbitrary_bytes_raise_only_decode_error(raw: bytes) -> None:
    try:
        ControlBody.from_apdu(raw)
    except DecodeError:
        pass


@given(control_bodies(), st.data())
def test_control_body_mutations_are_rejected_or_canonical(
    body: ControlBody, data: st.DataObject
) -> None:
    raw = bytearray(body.to_apdu())
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] ^= data.draw(st.integers(1, 255))
    try:
        decoded = ControlBody.from_apdu(bytes(raw))
    except DecodeError:
        return
    assert decoded.to_apdu() == bytes(raw)


@pytest.mark.parametrize(
    ("hex_plain", "why"),
    [
        ("0F00000000000205090800000001000000020600000004060000000306000000051101", "na < nb"),
        ("0F00000000000205090800000001000000020600000003060000000406000000051104", "flag 4"),
        ("0F00000000000205090700000001000000020600000003060000000406000000051101", "kp 7"),
        ("0F0000000000020409080000000100000002060000000306000000040600000005", "4 elts"),
        ("0F00000000000205090800000001000000021200000003060000000406000000051101", "type"),
        ("0F00000001000205090800000001000000020600000003060000000406000000051101", "liip"),
        ("C0014100010000000000010200", "not a notification"),
    ],
)
def test_control_body_strictness(hex_plain: str, why: str) -> None:
    with pytest.raises(DecodeError):
        ControlBody.from_apdu(bytes.fromhex(hex_plain))


def test_control_body_encode_checks() -> None:
    with pytest.raises(EncodeError):
        ControlBody(KpId(0, 0), 5, 4, 0).to_apdu()
    with pytest.raises(EncodeError):
        ControlBody(KpId(0, 0), 0, 1 << 32, 0).to_apdu()


# --- acknowledgement body ------------------------------------------------------------------------


@given(ack_bodies)
def test_ack_body_round_trip(body: AckBody) -> None:
    plain = body.to_apdu()
    assert plain[:13] == bytes.fromhex("C3010123010000800200FF0101")
    assert AckBody.from_apdu(plain) == body


@given(st.binary(max_size=64))
def test_ack_body_arbitrary_bytes_raise_only_decode_error(raw: bytes) -> None:
    try:
        AckBody.from_apdu(raw)
    except DecodeError:
        pass


@given(ack_bodies, st.data())
def test_ack_body_mutations_are_rejected_or_canonical(body: AckBody, data: st.DataObject) -> None:
    raw = bytearray(body.to_apdu())
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] ^= data.draw(st.integers(1, 255))
    try:
        decoded = AckBody.from_apdu(bytes(raw))
    except DecodeError:
        return
    assert decoded.to_apdu() == bytes(raw)


def test_ack_body_refuses_other_methods_and_kinds() -> None:
    good = AckBody(KpId(1, 1), 7, AckKind.PAYLOAD).to_apdu()
    for pos, value in ((3, 0x24), (10, 0x00), (11, 0x02), (2, 0x41)):
        bad = bytearray(good)
        bad[pos] = value
        with pytest.raises(DecodeError):
            AckBody.from_apdu(bytes(bad))
    kind_two = good[:-1] + b"\x02"
    with pytest.raises(DecodeError):
        AckBody.from_apdu(kind_two)


# --- message kinds -------------------------------------------------------------------------------

ST = bytes.fromhex("4D4D4D0000BC614E")


def _gc(recipient: bytes, key_info: object, sc: int) -> GeneralCiphering:
    return GeneralCiphering(b"\0" * 8, ST, recipient, b"", b"", key_info, sc, 1, b"\0" * 13)  # type: ignore[arg-type]


def test_message_kinds() -> None:
    assert message_kind(_gc(b"", None, 0x30)) is MessageKind.PAYLOAD
    assert message_kind(_gc(ST, WrappedKey(b"\0" * 24), 0x30)) is MessageKind.CONTROL
    assert message_kind(_gc(ST, AgreedKey(b"\x82", b""), 0x31)) is MessageKind.CONTROL
    assert message_kind(_gc(ST, None, 0x10)) is MessageKind.ACK
    with pytest.raises(DecodeError):
        message_kind(_gc(ST, None, 0x30))
    with pytest.raises(DecodeError):
        message_kind(_gc(ST, IdentifiedKey(KeyId.GLOBAL_UNICAST_ENCRYPTION_KEY), 0x30))


@pytest.mark.parametrize(
    "apdu",
    [
        _gc(ST, None, 0x30),
        GeneralCiphering(b"\0" * 8, ST[:7], b"", b"", b"", None, 0x30, 1, b""),
        GeneralCiphering(b"\0" * 7, ST, b"", b"", b"", None, 0x30, 1, b""),
        _gc(b"", None, 0x20),
        _gc(b"", None, 0x31),
        _gc(b"", None, 0x70),
    ],
)
def test_payload_shape_rules(apdu: GeneralCiphering) -> None:
    with pytest.raises(DecodeError):
        check_payload_shape(apdu)


# --- the head-end never raises anything but DecodeError / SecurityError on arbitrary input -------


def _opener() -> HeadEndOpener:
    return HeadEndOpener(
        system_title=bytes.fromhex("4D4D4D0000000001"),
        credentials=StaticMeterCredentials({ST: bytes(16)}),
        store=MemoryPayloadKeyStore(),
    )


@settings(max_examples=300)
@given(st.binary(max_size=120))
def test_arbitrary_bytes_into_the_opener(raw: bytes) -> None:
    opener = _opener()
    for call in (opener.open_c1, opener.accept_c2):
        try:
            call(raw, 1_700_000_000)
        except (DecodeError, SecurityError):
            pass


@settings(max_examples=200)
@given(
    st.binary(min_size=8, max_size=8),
    st.sampled_from([b"", ST, bytes.fromhex("4D4D4D0000000001")]),
    st.one_of(
        st.none(),
        st.builds(WrappedKey, st.binary(max_size=48)),
        st.builds(AgreedKey, st.binary(max_size=2), st.binary(max_size=100)),
    ),
    st.integers(0, 255),
    U32,
    st.binary(max_size=64),
)
def test_arbitrary_general_ciphering_into_the_opener(
    tid: bytes, recipient: bytes, key_info: object, sc: int, ic: int, text: bytes
) -> None:
    apdu = GeneralCiphering(tid, ST, recipient, b"", b"", key_info, sc, ic, text)  # type: ignore[arg-type]
    opener = _opener()
    for call in (opener.open_c1, opener.accept_c2):
        try:
            call(apdu, 1_700_000_000)
        except (DecodeError, SecurityError):
            pass
