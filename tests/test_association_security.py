"""Ciphering rules of the association: replay protection and persisted counters, the security
policy, error answers in clear, tag failures, secrets kept out of reprs (brief §5, §8)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.acse import AARE, AARQ, RLRE, RLRQ, MechanismName, ReleaseResponseReason
from cosemcast.apdu.ciphered import ServiceSpecificCiphered
from cosemcast.apdu.general import GeneralGloCiphering
from cosemcast.apdu.get import GetRequestNormal
from cosemcast.apdu.initiate import Conformance
from cosemcast.apdu.notifications import (
    ConfirmedService,
    ConfirmedServiceError,
    ExceptionResponse,
    ExceptionServiceError,
    ExceptionStateError,
    ServiceErrorKind,
    ServiceHandlingError,
)
from cosemcast.association import (
    NEED_DATA,
    Action,
    Associate,
    Ciphering,
    ClientState,
    Get,
    GetResult,
    Release,
    RequestRejected,
    SecurityPolicy,
    ServerState,
    ServiceError,
    ServiceException,
)
from cosemcast.association.settings import DEFAULT_CONFORMANCE
from cosemcast.errors import AuthenticationFailed, ReplayError
from cosemcast.security.gcm import SymmetricKeys
from cosemcast.security.protection import cipher_apdu
from test_association_support import (
    AK,
    CLIENT_ST,
    ECHO,
    EK,
    ENERGY,
    PASSWORD,
    Pair,
    associated_pair,
    make_pair,
    settings_pair,
    stores,
)


def deliver_to_server(pair: Pair, apdu: bytes) -> tuple[bytes, list[object]]:
    pair.server.receive_data(apdu)
    events = []
    while (event := pair.server.next_event()) is not NEED_DATA:
        events.append(event)
    (answer,) = pair.server.data_to_send()
    return answer, events


def client_receives(pair: Pair, apdu: bytes) -> list[object]:
    pair.client.receive_data(apdu)
    out = []
    while (event := pair.client.next_event()) is not NEED_DATA:
        out.append(event)
    return out


# --- replay ------------------------------------------------------------------------------------


def test_replayed_request_is_answered_with_invocation_counter_error(tmp_path: Path) -> None:
    pair = associated_pair(tmp_path, MechanismName.LOW, ciphering=Ciphering.GLOBAL)
    pair.one(Get(ENERGY))
    request = next(a for d, a in reversed(pair.log) if d == "C")
    counter = decode_apdu(request).invocation_counter  # type: ignore[attr-defined]
    answer, events = deliver_to_server(pair, request)
    # brief §5.1: D8 01 06 <expected IC>, the smallest counter the server would accept
    assert answer == bytes.fromhex("D80106") + (counter + 1).to_bytes(4, "big")
    (rejected,) = events
    assert isinstance(rejected, RequestRejected) and isinstance(rejected.error, ReplayError)
    assert pair.server.state is ServerState.ASSOCIATED
    assert isinstance(pair.one(Get(ENERGY)), GetResult)  # the association goes on


def test_older_counter_is_rejected_too(tmp_path: Path) -> None:
    pair = associated_pair(tmp_path, ciphering=Ciphering.GLOBAL)
    pair.one(Get(ENERGY))
    older = cipher_apdu(
        GetRequestNormal(ENERGY).encode(),
        kind="glo",
        security_control=0x30,
        keys=SymmetricKeys(EK, AK),
        system_title=CLIENT_ST,
        invocation_counter=0,
    ).encode()
    answer, _ = deliver_to_server(pair, older)
    assert answer[:3] == bytes.fromhex("D80106")


def test_client_rejects_a_replayed_response(tmp_path: Path) -> None:
    pair = associated_pair(tmp_path, ciphering=Ciphering.GLOBAL)
    pair.one(Get(ENERGY))
    old_response = pair.log[-1][1]
    pair.server.receive_data(pair.client.send(Get(ENERGY)))
    pair.server.next_event()
    pair.server.data_to_send()
    pair.client.receive_data(old_response)
    with pytest.raises(ReplayError):
        pair.client.next_event()
    assert pair.client.state is ClientState.ERROR


def _counters(log: list[tuple[str, bytes]], direction: str) -> list[int]:
    out = []
    for d, raw in log:
        if d != direction:
            continue
        apdu = decode_apdu(raw)
        if isinstance(apdu, AARQ | AARE | RLRQ | RLRE):
            apdu = apdu.user_information  # type: ignore[assignment]
        if isinstance(apdu, ServiceSpecificCiphered | GeneralGloCiphering):
            out.append(apdu.invocation_counter)
    return out


def test_counters_stay_monotonic_across_a_restart(tmp_path: Path) -> None:
    client_settings, server_settings = settings_pair(
        MechanismName.HIGH_GMAC, ciphering=Ciphering.GLOBAL
    )
    client_stores, server_stores = stores(tmp_path, "client"), stores(tmp_path, "server")
    first = make_pair(
        client_settings, server_settings, client_stores=client_stores, server_stores=server_stores
    )
    first.one(Associate())
    for _ in range(5):
        first.one(Get(ENERGY))
    replay_candidate = next(a for d, a in reversed(first.log) if d == "C")
    # the meter and the head-end restart: new objects, the same SQLite files
    client_stores, server_stores = client_stores.reopen(), server_stores.reopen()
    second = make_pair(
        client_settings, server_settings, client_stores=client_stores, server_stores=server_stores
    )
    second.one(Associate())
    second.one(Get(ENERGY))
    for direction in ("C", "S"):
        before, after = _counters(first.log, direction), _counters(second.log, direction)
        assert before == sorted(before) and len(set(before)) == len(before)
        assert after == sorted(after) and min(after) > max(before), direction
    answer, _ = deliver_to_server(second, replay_candidate)
    assert answer[:3] == bytes.fromhex("D80106")


# --- policy --------------------------------------------------------------------------------------


def test_plain_request_is_refused_when_the_policy_requires_ciphering(tmp_path: Path) -> None:
    pair = associated_pair(tmp_path, MechanismName.LOW, ciphering=Ciphering.GLOBAL)
    answer, events = deliver_to_server(pair, GetRequestNormal(ENERGY).encode())
    assert answer == bytes.fromhex("D80101")
    assert isinstance(events[0], RequestRejected)
    assert pair.backend.calls == []


def test_authenticated_only_request_is_refused_when_encryption_is_required(
    tmp_path: Path,
) -> None:
    pair = associated_pair(tmp_path, ciphering=Ciphering.GLOBAL)
    auth_only = cipher_apdu(
        GetRequestNormal(ENERGY).encode(),
        kind="glo",
        security_control=0x10,
        keys=SymmetricKeys(EK, AK),
        system_title=CLIENT_ST,
        invocation_counter=1_000_000,
    ).encode()
    answer, _ = deliver_to_server(pair, auth_only)
    assert answer == bytes.fromhex("D80105")  # deciphering error
    assert pair.backend.calls == []


def test_authentication_only_policy_is_followed_both_ways(tmp_path: Path) -> None:
    policy = SecurityPolicy.AUTHENTICATED_REQUEST | SecurityPolicy.AUTHENTICATED_RESPONSE
    pair = associated_pair(tmp_path, ciphering=Ciphering.GLOBAL, policy=policy)
    assert isinstance(pair.one(Get(ENERGY)), GetResult)
    request, response = pair.log[-2][1], pair.log[-1][1]
    assert decode_apdu(request).security_control == 0x10  # type: ignore[attr-defined]
    assert decode_apdu(response).security_control == 0x10  # type: ignore[attr-defined]
    assert GetRequestNormal(ENERGY, invoke_id_and_priority=_invoke(pair)).encode() in request


def _invoke(pair: Pair):  # type: ignore[no-untyped-def]
    from cosemcast.apdu.common import InvokeIdAndPriority

    return InvokeIdAndPriority(pair.client._invoke_id)


# --- error answers -------------------------------------------------------------------------------


def test_unciphered_exception_response_is_a_typed_result(tmp_path: Path) -> None:
    pair = associated_pair(tmp_path, ciphering=Ciphering.GLOBAL)
    pair.server.receive_data(pair.client.send(Get(ENERGY)))
    pair.server.next_event()
    pair.server.data_to_send()
    plain = ExceptionResponse(
        ExceptionStateError.SERVICE_NOT_ALLOWED, ExceptionServiceError.OTHER_REASON
    )
    (event,) = client_receives(pair, plain.encode())
    assert event == ServiceException(plain, protected=False)
    assert pair.client.state is ClientState.ASSOCIATED


def test_unciphered_confirmed_service_error_is_a_typed_result(tmp_path: Path) -> None:
    pair = associated_pair(tmp_path, ciphering=Ciphering.GLOBAL)
    pair.client.send(Get(ENERGY))
    error = ConfirmedServiceError(
        ConfirmedService.READ, ServiceErrorKind.SERVICE, ServiceHandlingError.SERVICE_UNSUPPORTED
    )
    (event,) = client_receives(pair, error.encode())
    assert event == ServiceError(error, protected=False)


def test_plain_normal_response_in_a_ciphered_association_is_refused(tmp_path: Path) -> None:
    pair = associated_pair(tmp_path, ciphering=Ciphering.GLOBAL)
    pair.client.send(Get(ENERGY))
    pair.client.receive_data(bytes.fromhex("C401C1000600001391"))
    with pytest.raises(AuthenticationFailed):
        pair.client.next_event()


@pytest.mark.parametrize(
    ("ciphering", "protected"),
    [(None, False), (Ciphering.GLOBAL, False), (Ciphering.GENERAL_GLOBAL, True)],
)
def test_service_outside_the_conformance_gets_an_exception_response(
    tmp_path: Path, ciphering: Ciphering | None, protected: bool
) -> None:
    without_action = DEFAULT_CONFORMANCE & ~Conformance.ACTION
    pair = associated_pair(tmp_path, ciphering=ciphering, conformance=without_action)
    result = pair.one(Action(ECHO))
    assert isinstance(result, ServiceException)
    assert result.response.service_error is ExceptionServiceError.SERVICE_NOT_SUPPORTED
    # an exception-response has no glo- twin: it goes in clear; general-glo protects it
    assert result.protected is protected


def test_flipped_bit_in_a_ciphered_request_is_a_deciphering_error(tmp_path: Path) -> None:
    pair = associated_pair(tmp_path, ciphering=Ciphering.DEDICATED)
    request = pair.client.send(Get(ENERGY))
    broken = request[:-3] + bytes((request[-3] ^ 0x40,)) + request[-2:]
    answer, events = deliver_to_server(pair, broken)
    assert answer == bytes.fromhex("D80105")
    assert isinstance(events[0].error, AuthenticationFailed)  # type: ignore[attr-defined]


def test_flipped_bit_in_a_ciphered_response_fails_the_client(tmp_path: Path) -> None:
    pair = associated_pair(tmp_path, ciphering=Ciphering.GENERAL_GLOBAL)
    pair.server.receive_data(pair.client.send(Get(ENERGY)))
    pair.server.next_event()
    (answer,) = pair.server.data_to_send()
    pair.client.receive_data(answer[:-1] + bytes((answer[-1] ^ 1,)))
    with pytest.raises(AuthenticationFailed):
        pair.client.next_event()
    assert pair.client.state is ClientState.ERROR


def test_release_with_a_forged_user_information_is_not_finished(tmp_path: Path) -> None:
    pair = associated_pair(tmp_path, ciphering=Ciphering.GLOBAL)
    rlrq = decode_apdu(pair.client.send(Release()))
    assert isinstance(rlrq, RLRQ) and isinstance(rlrq.user_information, ServiceSpecificCiphered)
    forged = dataclasses.replace(
        rlrq.user_information, ciphered_text=bytes(len(rlrq.user_information.ciphered_text))
    )
    answer, events = deliver_to_server(pair, RLRQ(user_information=forged).encode())
    assert decode_apdu(answer) == RLRE(reason=ReleaseResponseReason.NOT_FINISHED)
    assert isinstance(events[0], RequestRejected)
    assert pair.server.state is ServerState.ASSOCIATED


def test_secrets_stay_out_of_reprs(tmp_path: Path) -> None:
    pair = associated_pair(tmp_path, MechanismName.LOW, ciphering=Ciphering.DEDICATED)
    text = " ".join(
        repr(x)
        for x in (
            pair.client,
            pair.server,
            pair.client.settings,
            pair.server.settings,
            pair.client._protection,
            pair.server_events,
        )
    )
    for secret in (EK, AK, PASSWORD):
        assert secret.hex() not in text.lower() and secret.hex().upper() not in text
    assert "12345678" not in text


def test_ciphered_association_releases_with_ciphered_user_information(tmp_path: Path) -> None:
    # brief §4.2: RLRQ/RLRE may carry a (glo-)initiate APDU (DC test_rlrq.py / test_rlre.py)
    pair = associated_pair(tmp_path, MechanismName.LOW, ciphering=Ciphering.GLOBAL)
    pair.one(Release())
    rlrq, rlre = decode_apdu(pair.log[-2][1]), decode_apdu(pair.log[-1][1])
    assert isinstance(rlrq, RLRQ) and isinstance(rlre, RLRE)
    assert rlrq.user_information is not None and rlrq.user_information.TAG == 0x21
    assert rlre.user_information is not None and rlre.user_information.TAG == 0x28
    assert pair.client.state is ClientState.IDLE and pair.server.state is ServerState.IDLE


def test_requests_out_of_state_are_local_errors(tmp_path: Path) -> None:
    from cosemcast.errors import LocalProtocolError

    pair = associated_pair(tmp_path)
    with pytest.raises(LocalProtocolError):
        pair.client.send(Associate())
    pair.client.send(Get(ENERGY))
    with pytest.raises(LocalProtocolError):
        pair.client.send(Get(ENERGY))  # one request at a time
    with pytest.raises(LocalProtocolError):
        pair.client.send(Release())


def test_plain_notification_is_reported_in_a_ciphered_association(tmp_path: Path) -> None:
    from cosemcast.apdu.notifications import EventNotificationRequest
    from cosemcast.association import Notification
    from cosemcast.axdr.types import Unsigned

    pair = associated_pair(tmp_path, ciphering=Ciphering.GLOBAL)
    notification = EventNotificationRequest(
        cosem_attribute_descriptor=ENERGY, attribute_value=Unsigned(1)
    )
    (event,) = client_receives(pair, notification.encode())
    assert event == Notification(notification, protected=False)
    assert pair.client.state is ClientState.ASSOCIATED


@pytest.mark.parametrize(
    ("ciphering", "tag"),
    [(None, 0x0F), (Ciphering.GLOBAL, 0xDB), (Ciphering.DEDICATED, 0xDC)],
)
def test_server_pushes_a_protected_data_notification(
    tmp_path: Path, ciphering: Ciphering | None, tag: int
) -> None:
    from cosemcast.apdu.common import LongInvokeIdAndPriority
    from cosemcast.apdu.notifications import DataNotification
    from cosemcast.association import Notification
    from cosemcast.axdr.types import Unsigned
    from cosemcast.errors import LocalProtocolError

    pair = associated_pair(tmp_path, ciphering=ciphering)
    push = DataNotification(LongInvokeIdAndPriority(7), None, Unsigned(42))
    wire = pair.server.send(push)
    # DATA-NOTIFICATION has no glo-/ded- twin: it goes in general-glo/ded-ciphering
    assert wire[0] == tag
    (event,) = client_receives(pair, wire)
    assert event == Notification(push, protected=ciphering is not None)
    pair.one(Release())
    with pytest.raises(LocalProtocolError):
        pair.server.send(push)
