"""Security setup (class 64): key_transfer of wrapped keys, security_activate, attributes."""

from __future__ import annotations

import pytest

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.action import ActionRequestNormal
from cosemcast.apdu.common import ABSENT, ActionResult, DataAccessResult
from cosemcast.association.settings import SecurityPolicy
from cosemcast.axdr import Array, Enumerated, OctetString, Structure, Unsigned, encode_data
from cosemcast.cosem import (
    AccessRights,
    KeyId,
    ObjectModel,
    SecuritySetup,
    TransferredKey,
    key_transfer_parameters,
)
from cosemcast.cosem.access import MethodAccessMode
from cosemcast.security.keywrap import wrap_key
from test_cosem_fixtures import MANAGEMENT, PUBLIC, ctx

MASTER = bytes(range(16))  # 000102...0F
GUEK = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
SERVER_ST = bytes.fromhex("4D4D4D0000BC614E")

# brief §10.3 [DERIVED]: key_transfer of GUEK 00112233..FF wrapped under the master key
# 000102..0F (the wrapped bytes are the RFC 3394 §4.1 vector, brief §6.4).
KEY_TRANSFER_REQUEST = bytes.fromhex(
    "C301C1004000002B0000FF020101010202160009181FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"
)


def setup(**kwargs: object) -> tuple[SecuritySetup, list[tuple[TransferredKey, ...]]]:
    received: list[tuple[TransferredKey, ...]] = []
    obj = SecuritySetup(
        server_system_title=SERVER_ST,
        master_key=MASTER,
        access={MANAGEMENT: AccessRights.full(), PUBLIC: AccessRights.read_only()},
        **kwargs,  # type: ignore[arg-type]
    )
    obj.on_key_transfer = lambda _obj, keys: received.append(keys)
    return obj, received


def test_key_transfer_vector() -> None:
    request = decode_apdu(KEY_TRANSFER_REQUEST)
    assert isinstance(request, ActionRequestNormal)
    assert request.method_invocation_parameters is not ABSENT
    obj, received = setup()
    model = ObjectModel([obj])
    result = model.invoke_method(
        ctx(MANAGEMENT),
        request.cosem_method_descriptor,
        request.method_invocation_parameters,  # type: ignore[arg-type]
    )
    assert result == (ActionResult.SUCCESS, None)
    assert received == [(TransferredKey(KeyId.GLOBAL_UNICAST_ENCRYPTION_KEY, GUEK),)]
    assert obj.master_key == MASTER


def test_key_transfer_builder_reproduces_the_vector() -> None:
    params = key_transfer_parameters(MASTER, {KeyId.GLOBAL_UNICAST_ENCRYPTION_KEY: GUEK})
    assert KEY_TRANSFER_REQUEST.endswith(encode_data(params))


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


@pytest.mark.parametrize("index", [0, 7, 8, 23])
def test_a_bad_wrap_is_rejected_and_changes_nothing(index: int) -> None:
    obj, received = setup()
    wrapped = flip(wrap_key(MASTER, GUEK), index)
    params = Array([Structure([Enumerated(0), OctetString(wrapped)])])
    assert obj.action(ctx(MANAGEMENT), 2, params) == (ActionResult.OTHER_REASON, None)
    assert received == []


def test_wrong_master_key_is_rejected() -> None:
    obj, received = setup()
    params = key_transfer_parameters(bytes(16), {KeyId.AUTHENTICATION_KEY: GUEK})
    assert obj.invoke(2, params) == (ActionResult.OTHER_REASON, None)
    assert received == []


def test_key_transfer_is_all_or_nothing() -> None:
    obj, received = setup()
    good = Structure([Enumerated(2), OctetString(wrap_key(MASTER, GUEK))])
    bad = Structure([Enumerated(0), OctetString(flip(wrap_key(MASTER, GUEK), 3))])
    assert obj.invoke(2, Array([good, bad])) == (ActionResult.OTHER_REASON, None)
    assert received == []


def test_key_lengths_follow_the_suite() -> None:
    obj, received = setup(security_suite=2)
    short = key_transfer_parameters(MASTER, {KeyId.GLOBAL_UNICAST_ENCRYPTION_KEY: GUEK})
    assert obj.invoke(2, short) == (ActionResult.OTHER_REASON, None)
    long_key = bytes(range(32))
    ok = key_transfer_parameters(MASTER, {KeyId.GLOBAL_UNICAST_ENCRYPTION_KEY: long_key})
    assert obj.invoke(2, ok) == (ActionResult.SUCCESS, None)
    assert received[0][0].key == long_key


def test_master_key_transfer_replaces_the_kek() -> None:
    obj, received = setup()
    new_master = bytes(range(16, 32))
    assert obj.invoke(2, key_transfer_parameters(MASTER, {KeyId.MASTER_KEY: new_master})) == (
        ActionResult.SUCCESS,
        None,
    )
    assert obj.master_key == new_master
    again = key_transfer_parameters(new_master, {KeyId.AUTHENTICATION_KEY: GUEK})
    assert obj.invoke(2, again) == (ActionResult.SUCCESS, None)
    assert [k.key_id for keys in received for k in keys] == [
        KeyId.MASTER_KEY,
        KeyId.AUTHENTICATION_KEY,
    ]


def test_malformed_key_transfer_parameters() -> None:
    obj, _ = setup()
    assert obj.invoke(2, Array([])) == (ActionResult.OTHER_REASON, None)
    assert obj.invoke(2, None) == (ActionResult.TYPE_UNMATCHED, None)
    assert obj.invoke(2, Array([Structure([Unsigned(0), OctetString(b"")])])) == (
        ActionResult.TYPE_UNMATCHED,
        None,
    )
    assert obj.invoke(2, Array([Structure([Enumerated(4), OctetString(bytes(24))])])) == (
        ActionResult.OTHER_REASON,
        None,
    )
    no_master, _ = setup()
    no_master.master_key = None
    params = key_transfer_parameters(MASTER, {KeyId.AUTHENTICATION_KEY: GUEK})
    assert no_master.invoke(2, params) == (ActionResult.OTHER_REASON, None)


def test_security_activate_only_strengthens() -> None:
    obj, _ = setup()
    step = SecurityPolicy.AUTHENTICATED_REQUEST | SecurityPolicy.AUTHENTICATED_RESPONSE
    assert obj.action(ctx(PUBLIC), 1, Enumerated(step)) == (ActionResult.READ_WRITE_DENIED, None)
    assert obj.action(ctx(MANAGEMENT), 1, Enumerated(step)) == (ActionResult.SUCCESS, None)
    assert obj.read(2) == Enumerated(0x24)
    weaker = Enumerated(SecurityPolicy.AUTHENTICATED_REQUEST)
    assert obj.invoke(1, weaker) == (ActionResult.OTHER_REASON, None)
    assert obj.invoke(1, Enumerated(0x25)) == (ActionResult.OTHER_REASON, None)
    assert obj.invoke(1, Enumerated(int(SecurityPolicy.all_ciphered()))) == (
        ActionResult.SUCCESS,
        None,
    )
    assert obj.security_policy == SecurityPolicy.all_ciphered()
    assert obj.invoke(1, Unsigned(0x7C)) == (ActionResult.TYPE_UNMATCHED, None)


def test_attributes() -> None:
    obj, _ = setup()
    assert obj.get(ctx(PUBLIC), 3) == Enumerated(0)
    assert obj.get(ctx(PUBLIC), 5) == SERVER_ST
    assert obj.get(ctx(PUBLIC), 4) == b""
    assert obj.get(ctx(PUBLIC), 6) == Array([])
    title = OctetString(bytes.fromhex("4D4D4D0000000001"))
    assert obj.set(ctx(PUBLIC), 4, title) == DataAccessResult.READ_WRITE_DENIED
    assert obj.set(ctx(MANAGEMENT), 4, title) == DataAccessResult.SUCCESS
    assert obj.read(4) == title
    assert obj.set(ctx(MANAGEMENT), 4, OctetString(b"short")) == DataAccessResult.OTHER_REASON
    assert obj.set(ctx(MANAGEMENT), 5, title) == DataAccessResult.READ_WRITE_DENIED
    assert obj.set(ctx(MANAGEMENT), 2, Enumerated(0)) == DataAccessResult.READ_WRITE_DENIED
    assert obj.invoke(3, Array([])) == (ActionResult.OBJECT_UNAVAILABLE, None)
    assert "000102" not in repr(obj) and repr(obj) == "SecuritySetup('0-0:43.0.0.255')"
    assert "00112233" not in repr(TransferredKey(KeyId.MASTER_KEY, GUEK))


def test_authenticated_access_needs_a_ciphered_request() -> None:
    obj, _ = setup()
    obj.grant(MANAGEMENT, AccessRights(default_method=MethodAccessMode.AUTHENTICATED_ACCESS))
    params = key_transfer_parameters(MASTER, {KeyId.AUTHENTICATION_KEY: GUEK})
    assert obj.action(ctx(MANAGEMENT), 2, params) == (ActionResult.READ_WRITE_DENIED, None)
    assert obj.action(ctx(MANAGEMENT, ciphered=True), 2, params) == (ActionResult.SUCCESS, None)


def test_constructor_checks() -> None:
    with pytest.raises(ValueError):
        SecuritySetup(server_system_title=b"short")
    with pytest.raises(ValueError):
        SecuritySetup(server_system_title=SERVER_ST, security_suite=3)
