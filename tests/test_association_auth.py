"""Authentication through an in-memory client/server pair: every level with and without
ciphering, wrong secrets, the HLS pass quirks of gurux and dlms-cosem (brief §7, issue 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.acse import AARE, AcseServiceUser, MechanismName
from cosemcast.apdu.action import ActionRequestNormal, ActionResponseNormal
from cosemcast.apdu.common import (
    ActionResult,
    CosemAttributeDescriptorWithSelection,
    DataAccessResult,
    GetDataValue,
    InvokeIdAndPriority,
)
from cosemcast.apdu.get import GetRequestNormal
from cosemcast.association import (
    REPLY_TO_HLS_AUTHENTICATION,
    Action,
    Associate,
    AssociationEstablished,
    AssociationRefused,
    AssociationReleased,
    Ciphering,
    ClientAssociated,
    ClientState,
    Get,
    GetList,
    GetResult,
    MethodResult,
    Release,
    RequestRejected,
    ServerState,
    Set,
    SetResult,
)
from cosemcast.axdr.types import DoubleLongUnsigned, OctetString, Unsigned
from cosemcast.errors import AssociationRejected, AuthenticationFailed
from cosemcast.security.counters import make_key_id
from cosemcast.security.gcm import SymmetricKeys
from cosemcast.security.hls import gmac_f
from cosemcast.security.protection import cipher_apdu, decipher_apdu
from test_association_support import (
    AK,
    CLIENT_ST,
    ECHO,
    EK,
    ENERGY,
    PASSWORD,
    SERIAL,
    SERVER_ST,
    Pair,
    make_pair,
    settings_pair,
    signing_keys,
    stores,
)

LEVELS = [
    pytest.param(MechanismName.LOWEST, 0, id="none"),
    pytest.param(MechanismName.LOW, 0, id="lls"),
    pytest.param(MechanismName.HIGH_GMAC, 0, id="hls-gmac"),
    pytest.param(MechanismName.HIGH_ECDSA, 1, id="hls-ecdsa-suite1"),
    pytest.param(MechanismName.HIGH_ECDSA, 2, id="hls-ecdsa-suite2"),
]
CIPHERINGS = [
    pytest.param(None, id="plain"),
    pytest.param(Ciphering.GLOBAL, id="glo"),
    pytest.param(Ciphering.DEDICATED, id="ded"),
    pytest.param(Ciphering.GENERAL_GLOBAL, id="general-glo"),
    pytest.param(Ciphering.GENERAL_DEDICATED, id="general-ded"),
]
# First byte of a GET request / response in each form (brief §4.1).
GET_TAGS = {
    None: (0xC0, 0xC4),
    Ciphering.GLOBAL: (0xC8, 0xCC),
    Ciphering.DEDICATED: (0xD0, 0xD4),
    Ciphering.GENERAL_GLOBAL: (0xDB, 0xDB),
    Ciphering.GENERAL_DEDICATED: (0xDC, 0xDC),
}


def pair_for(
    tmp_path: Path, mechanism: MechanismName, suite: int, ciphering: Ciphering | None, **kw: object
) -> Pair:
    client, server = settings_pair(mechanism, ciphering=ciphering, suite=suite, **kw)  # type: ignore[arg-type]
    return make_pair(
        client,
        server,
        client_stores=stores(tmp_path, "client"),
        server_stores=stores(tmp_path, "server"),
    )


@pytest.mark.parametrize("ciphering", CIPHERINGS)
@pytest.mark.parametrize(("mechanism", "suite"), LEVELS)
def test_every_level_and_ciphering_serves_get_set_action(
    tmp_path: Path, mechanism: MechanismName, suite: int, ciphering: Ciphering | None
) -> None:
    pair = pair_for(tmp_path, mechanism, suite, ciphering)
    established = pair.one(Associate())
    assert isinstance(established, AssociationEstablished)
    assert established.mechanism is mechanism
    assert pair.client.state is ClientState.ASSOCIATED
    assert pair.server.state is ServerState.ASSOCIATED
    associated = [e for e in pair.server_events if isinstance(e, ClientAssociated)]
    assert len(associated) == 1 and associated[0].ciphered == (ciphering is not None)
    if ciphering is not None or mechanism in (MechanismName.HIGH_GMAC, MechanismName.HIGH_ECDSA):
        assert established.server_system_title == SERVER_ST
        assert associated[0].client_system_title == CLIENT_ST

    start = len(pair.log)
    assert pair.one(Get(ENERGY)) == GetResult(GetDataValue(DoubleLongUnsigned(5009)))
    request, response = pair.log[start][1], pair.log[start + 1][1]
    assert (request[0], response[0]) == GET_TAGS[ciphering]
    assert pair.one(Set(SERIAL, OctetString(b"new"))) == SetResult(DataAccessResult.SUCCESS)
    assert pair.backend.values[(1, SERIAL.instance_id, 2)] == b"new"
    result = pair.one(Action(ECHO, Unsigned(7)))
    assert isinstance(result, MethodResult) and result.result is ActionResult.SUCCESS
    context = pair.backend.calls[-1][1]
    assert context.ciphered == (ciphering is not None)
    assert context.authenticated == (mechanism is not MechanismName.LOWEST)
    assert context.client_sap == 1 and context.now is not None

    assert isinstance(pair.one(Release()), AssociationReleased)
    assert pair.client.state is ClientState.IDLE
    assert pair.server.state is ServerState.IDLE


def test_wrong_lls_password_is_rejected_with_diagnostic_13_and_nothing_else(
    tmp_path: Path,
) -> None:
    pair = pair_for(tmp_path, MechanismName.LOW, 0, None, client_password=b"87654321")
    with pytest.raises(AssociationRejected) as info:
        pair.exchange(Associate())
    assert info.value.diagnostic == AcseServiceUser.AUTHENTICATION_FAILURE
    aare = decode_apdu(pair.log[-1][1])
    assert isinstance(aare, AARE)
    # brief §10.2: rejected AARE; nothing but the context, the result and the diagnostic.
    assert aare.user_information is None and aare.responding_ap_title is None
    assert aare.responding_authentication_value is None
    assert PASSWORD not in pair.log[-1][1] and b"87654321" not in pair.log[-1][1]
    (refused,) = pair.server_events
    assert isinstance(refused, AssociationRefused)
    assert "12345678" not in refused.reason and "87654321" not in refused.reason
    assert pair.client.state is ClientState.IDLE and pair.server.state is ServerState.IDLE


@pytest.mark.parametrize(
    ("client_mechanism", "diagnostic"),
    [
        (MechanismName.LOWEST, AcseServiceUser.AUTHENTICATION_MECHANISM_NAME_REQUIRED),
        (MechanismName.HIGH_GMAC, AcseServiceUser.AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED),
    ],
)
def test_mechanism_mismatch_is_rejected(
    tmp_path: Path, client_mechanism: MechanismName, diagnostic: AcseServiceUser
) -> None:
    client, _ = settings_pair(client_mechanism, ciphering=Ciphering.GLOBAL)
    _, server = settings_pair(MechanismName.LOW, ciphering=Ciphering.GLOBAL)
    pair = make_pair(
        client, server, client_stores=stores(tmp_path, "c"), server_stores=stores(tmp_path, "s")
    )
    with pytest.raises(AssociationRejected) as info:
        pair.exchange(Associate())
    assert info.value.diagnostic == diagnostic


def test_hls_gmac_wrong_key_without_ciphering_fails_the_hls_pass(tmp_path: Path) -> None:
    pair = pair_for(tmp_path, MechanismName.HIGH_GMAC, 0, None, client_ek=bytes(16))
    with pytest.raises(AssociationRejected) as info:
        pair.exchange(Associate())
    assert info.value.diagnostic == AcseServiceUser.AUTHENTICATION_FAILURE
    assert pair.client.state is ClientState.IDLE
    assert pair.server.state is ServerState.IDLE
    assert isinstance(pair.server_events[-1], AssociationRefused)
    # a request after the failure is refused: nothing is served without a new AARQ
    pair.server.receive_data(GetRequestNormal(ENERGY).encode())
    assert isinstance(pair.server.next_event(), RequestRejected)
    assert pair.server.data_to_send() == [bytes.fromhex("D80101")]
    assert pair.backend.calls == []


def test_hls_gmac_wrong_key_with_ciphering_rejects_the_aarq(tmp_path: Path) -> None:
    pair = pair_for(tmp_path, MechanismName.HIGH_GMAC, 0, Ciphering.GLOBAL, client_ek=bytes(16))
    with pytest.raises(AssociationRejected) as info:
        pair.exchange(Associate())
    assert info.value.diagnostic == AcseServiceUser.NO_REASON_GIVEN
    assert "DECIPHERING_ERROR" in str(info.value)
    assert bytes(16).hex() not in str(info.value) and EK.hex() not in str(info.value)


@pytest.mark.parametrize("suite", [1, 2])
def test_hls_ecdsa_wrong_client_key_is_refused(tmp_path: Path, suite: int) -> None:
    client, server = settings_pair(MechanismName.HIGH_ECDSA, suite=suite)
    assert client.security is not None
    impostor = signing_keys(suite)[1]  # the server's key, not the one the server expects
    client = _with_security(client, signing_key=impostor)
    pair = make_pair(
        client, server, client_stores=stores(tmp_path, "c"), server_stores=stores(tmp_path, "s")
    )
    with pytest.raises(AssociationRejected):
        pair.exchange(Associate())
    assert pair.server.state is ServerState.IDLE


@pytest.mark.parametrize("suite", [1, 2])
def test_hls_ecdsa_client_rejects_an_unexpected_server_signature(
    tmp_path: Path, suite: int
) -> None:
    client, server = settings_pair(MechanismName.HIGH_ECDSA, suite=suite)
    other = signing_keys(suite)[0].public_key()  # not the server's public key
    client = _with_security(client, peer_signing_key=other)
    pair = make_pair(
        client, server, client_stores=stores(tmp_path, "c"), server_stores=stores(tmp_path, "s")
    )
    with pytest.raises(AuthenticationFailed):
        pair.exchange(Associate())
    assert pair.client.state is ClientState.ERROR


def test_client_rejects_a_tampered_f_ctos(tmp_path: Path) -> None:
    pair = pair_for(tmp_path, MechanismName.HIGH_GMAC, 0, None)
    pair.server.receive_data(pair.client.send(Associate()))
    pair.server.next_event()
    pair.client.receive_data(pair.server.data_to_send()[0])
    pair.client.next_event()
    (reply,) = pair.client.data_to_send()
    pair.server.receive_data(reply)
    pair.server.next_event()
    (answer,) = pair.server.data_to_send()
    tampered = answer[:-1] + bytes((answer[-1] ^ 1,))
    pair.client.receive_data(tampered)
    with pytest.raises(AuthenticationFailed):
        pair.client.next_event()
    assert pair.client.state is ClientState.ERROR


def test_server_refuses_services_before_the_hls_pass(tmp_path: Path) -> None:
    pair = pair_for(tmp_path, MechanismName.HIGH_GMAC, 0, None)
    pair.server.receive_data(pair.client.send(Associate()))
    pair.server.next_event()
    pair.server.data_to_send()
    assert pair.server.state is ServerState.AUTHENTICATING
    pair.server.receive_data(GetRequestNormal(ENERGY).encode())
    pair.server.next_event()
    (answer,) = pair.server.data_to_send()
    assert answer == bytes.fromhex("D80101")  # service-not-allowed, operation-not-possible
    assert pair.server.state is ServerState.AUTHENTICATING


def test_server_refuses_an_unknown_client_system_title(tmp_path: Path) -> None:
    client, server = settings_pair(MechanismName.HIGH_GMAC, ciphering=Ciphering.GLOBAL)
    server = _with_security(server, peer_system_title=bytes.fromhex("0102030405060708"))
    pair = make_pair(
        client, server, client_stores=stores(tmp_path, "c"), server_stores=stores(tmp_path, "s")
    )
    with pytest.raises(AssociationRejected) as info:
        pair.exchange(Associate())
    assert info.value.diagnostic == AcseServiceUser.CALLING_AP_TITLE_NOT_RECOGNIZED


# --- the HLS pass-3 counter quirks (issue 3) ---------------------------------------------------


def _start_hls(tmp_path: Path, ciphering: Ciphering) -> tuple[Pair, bytes]:
    """AARQ/AARE of a ciphered HLS-GMAC association; returns the pair and StoC."""
    pair = pair_for(tmp_path, MechanismName.HIGH_GMAC, 0, ciphering)
    pair.server.receive_data(pair.client.send(Associate()))
    pair.server.next_event()
    (aare_bytes,) = pair.server.data_to_send()
    aare = decode_apdu(aare_bytes)
    assert isinstance(aare, AARE) and aare.responding_authentication_value is not None
    return pair, aare.responding_authentication_value


def _reply(stoc: bytes, hls_counter: int, apdu_counter: int, kind: str = "glo") -> bytes:
    keys = SymmetricKeys(EK, AK)
    reply = gmac_f(keys, CLIENT_ST, hls_counter, stoc)
    plain = ActionRequestNormal(
        REPLY_TO_HLS_AUTHENTICATION, OctetString(reply), InvokeIdAndPriority(1)
    ).encode()
    return cipher_apdu(
        plain,
        kind=kind,  # type: ignore[arg-type]
        security_control=0x30,
        keys=keys,
        system_title=CLIENT_ST,
        invocation_counter=apdu_counter,
    ).encode()


def _answer_result(answer: bytes) -> ActionResponseNormal:
    outer = decode_apdu(answer)
    inner = decipher_apdu(outer, keys=SymmetricKeys(EK, AK), system_title=SERVER_ST)  # type: ignore[arg-type]
    response = decode_apdu(inner.plain)
    assert isinstance(response, ActionResponseNormal)
    return response


@pytest.mark.parametrize(
    ("hls_counter", "apdu_counter"),
    [pytest.param(100, 101, id="gurux-n-then-n+1"), pytest.param(100, 100, id="dlms-cosem-n-n")],
)
def test_server_accepts_both_peer_counter_styles(
    tmp_path: Path, hls_counter: int, apdu_counter: int
) -> None:
    pair, stoc = _start_hls(tmp_path, Ciphering.GLOBAL)
    pair.server.receive_data(_reply(stoc, hls_counter, apdu_counter))
    event = pair.server.next_event()
    assert isinstance(event, ClientAssociated)
    (answer,) = pair.server.data_to_send()
    assert answer[0] == 0xCF  # glo-action-response: answered in the form it came in
    assert _answer_result(answer).result is ActionResult.SUCCESS


def test_general_glo_hls_reply_is_answered_in_general_glo(tmp_path: Path) -> None:
    # dlms-cosem cannot parse a glo-action-response as the pass-4 answer to its
    # general-glo-ciphered request (issue 3): the answer must be DB as well.
    pair, stoc = _start_hls(tmp_path, Ciphering.GLOBAL)
    pair.server.receive_data(_reply(stoc, 200, 200, kind="general-glo"))
    assert isinstance(pair.server.next_event(), ClientAssociated)
    (answer,) = pair.server.data_to_send()
    assert answer[0] == 0xDB
    assert _answer_result(answer).result is ActionResult.SUCCESS


def test_replayed_hls_counter_inside_f_stoc_is_refused(tmp_path: Path) -> None:
    pair, stoc = _start_hls(tmp_path, Ciphering.GLOBAL)
    pair.server.receive_data(_reply(stoc, 300, 301))
    assert isinstance(pair.server.next_event(), ClientAssociated)
    pair.server.data_to_send()
    # a new association whose f(StoC) reuses HLS counter 300 (the APDU counter is fresh)
    client_settings = pair.client.settings
    pair.client = type(pair.client)(
        client_settings, counters=_FreshCounters(), received_counters=_NoReplayCheck()
    )
    pair.server.receive_data(pair.client.send(Associate()))
    pair.server.next_event()
    aare = decode_apdu(pair.server.data_to_send()[0])
    assert isinstance(aare, AARE) and aare.responding_authentication_value is not None
    pair.server.receive_data(_reply(aare.responding_authentication_value, 300, 20_000))
    refused = pair.server.next_event()
    assert isinstance(refused, AssociationRefused)
    assert refused.diagnostic is AcseServiceUser.AUTHENTICATION_FAILURE
    assert _answer_result(pair.server.data_to_send()[0]).result is ActionResult.READ_WRITE_DENIED
    assert pair.server.state is ServerState.IDLE


def test_client_uses_gurux_counter_style_for_f_stoc(tmp_path: Path) -> None:
    pair = pair_for(tmp_path, MechanismName.HIGH_GMAC, 0, Ciphering.GLOBAL)
    pair.one(Associate())
    reply = decode_apdu(list(pair.sent_by("C"))[1])
    inner = decipher_apdu(reply, keys=SymmetricKeys(EK, AK), system_title=CLIENT_ST)  # type: ignore[arg-type]
    action = decode_apdu(inner.plain)
    assert isinstance(action, ActionRequestNormal)
    f_stoc = action.method_invocation_parameters
    assert isinstance(f_stoc, bytes)
    hls_counter = int.from_bytes(f_stoc[1:5], "big")
    assert inner.invocation_counter == hls_counter + 1


def test_key_id_of_the_unicast_counter_is_documented() -> None:
    # _cipher.py: counters live under make_key_id(sender title, purpose, key)
    from cosemcast.association._cipher import counter_key_id

    assert counter_key_id(CLIENT_ST, "unicast", EK) == make_key_id(CLIENT_ST, "unicast", EK)
    assert EK.hex() not in counter_key_id(CLIENT_ST, "unicast", EK)


def test_get_with_list_works_after_hls(tmp_path: Path) -> None:
    pair = pair_for(tmp_path, MechanismName.HIGH_GMAC, 0, Ciphering.GLOBAL)
    pair.one(Associate())
    items = (
        CosemAttributeDescriptorWithSelection(ENERGY),
        CosemAttributeDescriptorWithSelection(SERIAL),
    )
    result = pair.one(GetList(items))
    assert [r.value for r in result.results] == [5009, b"CC-0001"]  # type: ignore[union-attr]


class _FreshCounters:
    def __init__(self) -> None:
        self.value = 10_000

    def next(self, key_id: str) -> int:
        self.value += 1
        return self.value


class _NoReplayCheck:
    def check(self, key_id: str, invocation_counter: int) -> None:
        return None

    def check_and_update(self, key_id: str, invocation_counter: int) -> None:
        return None


def _with_security(settings, **changes):  # type: ignore[no-untyped-def]
    import dataclasses

    return dataclasses.replace(settings, security=dataclasses.replace(settings.security, **changes))
