"""The blocking client end to end over TCP on 127.0.0.1, against a meter assembled from the
library's server layers (``test_client_support.TestMeter``): every authentication level, suite
0 glo ciphering, typed errors, replays in both directions, wrong credentials, class-id
fallback, block transfer with progress, and invocation counters that persist."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import logging
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.acse import AARQ
from cosemcast.apdu.ciphered import ServiceSpecificCiphered
from cosemcast.apdu.common import ActionResult, DataAccessResult
from cosemcast.apdu.notifications import ExceptionResponse, ExceptionServiceError
from cosemcast.association import AssociationRefused, ClientReleased, RequestRejected
from cosemcast.axdr.types import (
    CosemDateTime,
    DoubleLongUnsigned,
    Integer,
    OctetString,
    VisibleString,
)
from cosemcast.client import (
    ActionError,
    Authentication,
    DataAccessError,
    DlmsClient,
    ReadProgress,
)
from cosemcast.cosem.units import Unit
from cosemcast.errors import (
    AssociationRejected,
    AuthenticationFailed,
    DlmsError,
    ReplayError,
    TransportError,
)
from test_client_support import (
    AK,
    CLOCK,
    DEMAND,
    EK,
    ENERGY,
    ENERGY_RAW,
    NOTE,
    ODD_REGISTER,
    PASSWORD,
    PROFILE,
    PROFILE_ROWS,
    PROFILE_START,
    SERIAL,
    SERIAL_NUMBER,
    TestMeter,
    credentials,
    profile_row,
    tcp_client,
)


@pytest.fixture
def meter(tmp_path: Path) -> Iterator[TestMeter]:
    instance = TestMeter(tmp_path / "meter")
    yield instance
    instance.close()


def _ic(apdu: bytes) -> int:
    decoded = decode_apdu(apdu)
    if isinstance(decoded, AARQ):
        decoded = decoded.user_information
    assert isinstance(decoded, ServiceSpecificCiphered), decoded
    return decoded.invocation_counter


@pytest.mark.parametrize("auth", list(Authentication))
def test_each_authentication_level_reads_the_meter(
    meter: TestMeter, tmp_path: Path, auth: Authentication
) -> None:
    with DlmsClient.tcp("127.0.0.1", meter.tcp_port, credentials(auth, tmp_path)) as client:
        established = client.associate()
        assert established.mechanism is auth.mechanism
        energy = client.read_register(ENERGY)
        assert energy.raw == ENERGY_RAW and energy.scaler == -1 and energy.unit is Unit.WATT_HOUR
        assert energy.value == Decimal("12345678.9")
        assert client.get(SERIAL) == VisibleString(SERIAL_NUMBER)
        clock = client.get(CLOCK)
        assert isinstance(clock, OctetString) and len(clock) == 12
        end = PROFILE_START + dt.timedelta(hours=1)
        profile = client.read_profile(PROFILE, from_=PROFILE_START, to=end)
        assert [row[1] for row in profile.rows] == [profile_row(i)[1] for i in range(5)]
        first = profile.rows[0][0]
        assert isinstance(first, CosemDateTime) and first.to_datetime() == PROFILE_START
        listed = {entry.logical_name: entry.class_id for entry in client.object_list()}
        assert listed[ENERGY] == 3 and listed[PROFILE] == 7 and listed[DEMAND] == 4
    assert any(isinstance(e, ClientReleased) for e in meter.events)


def test_hls_gmac_traffic_is_ciphered_and_plaintext_never_on_the_wire(
    meter: TestMeter, tmp_path: Path
) -> None:
    client, link = tcp_client(meter, credentials(Authentication.HLS_GMAC, tmp_path))
    with client:
        client.associate()
        assert client.get(SERIAL) == SERIAL_NUMBER
    tags = [apdu[0] for apdu in link.sent]
    assert tags[0] == 0x60 and tags[-1] == 0x62  # AARQ ... RLRQ
    assert set(tags[1:-1]) <= {0xC8, 0xCB}  # glo-get-request, glo-action-request (pass 3)
    assert {apdu[0] for apdu in link.received[1:-1]} <= {0xCC, 0xCF}
    assert all(SERIAL_NUMBER.encode() not in apdu for apdu in link.received)
    counters = [_ic(apdu) for apdu in link.sent[:-1]]
    assert counters == sorted(set(counters))  # strictly increasing


def test_lls_with_a_wrong_password_is_rejected_and_leaks_nothing(
    meter: TestMeter, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = b"Wr0ngPa55"
    creds = credentials(Authentication.LLS, tmp_path, password=secret)
    assert secret.decode() not in repr(creds)
    with (
        DlmsClient.tcp("127.0.0.1", meter.tcp_port, creds) as client,
        pytest.raises(AssociationRejected) as caught,
    ):
        client.associate()
    assert caught.value.diagnostic == 13  # authentication-failure
    refused = [e for e in meter.events if isinstance(e, AssociationRefused)]
    assert refused
    for text in (str(caught.value), repr(refused), caplog.text):
        assert secret.decode() not in text and PASSWORD.decode() not in text


@pytest.mark.parametrize("wrong", ["ek", "ak"])
def test_hls_gmac_with_a_wrong_key_is_rejected_and_leaks_nothing(
    meter: TestMeter, tmp_path: Path, caplog: pytest.LogCaptureFixture, wrong: str
) -> None:
    caplog.set_level(logging.DEBUG)
    bad = bytes(16 - i for i in range(16))
    field = "unicast_key" if wrong == "ek" else "authentication_key"
    creds = credentials(Authentication.HLS_GMAC, tmp_path, **{field: bad})
    with (
        DlmsClient.tcp("127.0.0.1", meter.tcp_port, creds) as client,
        pytest.raises((AssociationRejected, AuthenticationFailed)) as caught,
    ):
        client.associate()
        client.get(SERIAL)  # not reached: the association fails
    assert not client.associated
    for text in (str(caught.value), repr(meter.events), caplog.text, repr(creds)):
        for key in (bad, EK, AK):
            assert key.hex() not in text.lower()


def test_a_replayed_request_is_refused_by_the_meter(meter: TestMeter, tmp_path: Path) -> None:
    client, link = tcp_client(meter, credentials(Authentication.HLS_GMAC, tmp_path))
    with client:
        client.associate()
        client.get(SERIAL)
        request = link.sent[-1]
        link.link.send_apdu(request)  # the same ciphered bytes again, at the link level
        answer = decode_apdu(link.link.receive_apdu(5.0))
        assert isinstance(answer, ExceptionResponse)
        assert answer.service_error is ExceptionServiceError.INVOCATION_COUNTER_ERROR
        assert answer.invocation_counter_error == _ic(request) + 1
        assert any(
            isinstance(e, RequestRejected) and isinstance(e.error, ReplayError)
            for e in meter.events
        )
        assert client.get(SERIAL) == SERIAL_NUMBER  # the association goes on


def test_a_replayed_answer_is_refused_by_the_client(meter: TestMeter, tmp_path: Path) -> None:
    client, link = tcp_client(meter, credentials(Authentication.HLS_GMAC, tmp_path))
    with client:
        client.associate()
        client.get(SERIAL)
        link.substitute = link.received[-1]  # an old, authentic answer instead of the new one
        with pytest.raises(ReplayError):
            client.get(SERIAL)


def test_invocation_counters_persist_across_sessions(meter: TestMeter, tmp_path: Path) -> None:
    creds = credentials(Authentication.HLS_GMAC, tmp_path)
    seen: list[tuple[list[int], list[int]]] = []
    for _ in range(2):
        client, link = tcp_client(meter, creds)
        with client:
            client.associate()
            client.get(SERIAL)
        seen.append(([_ic(a) for a in link.sent[:-1]], [_ic(a) for a in link.received[1:-1]]))
    (sent1, received1), (sent2, received2) = seen
    assert min(sent2) > max(sent1)
    assert min(received2) > max(received1)


def test_a_meter_restart_keeps_counters_monotonic(meter: TestMeter, tmp_path: Path) -> None:
    creds = credentials(Authentication.HLS_GMAC, tmp_path)
    client, link = tcp_client(meter, creds)
    with client:
        client.associate()
        client.get(SERIAL)
        before = _ic(link.received[-1])
        restarted = meter.restart()  # mid-session: the connection drops
        try:
            with pytest.raises(TransportError):
                client.get(SERIAL)
            again, link2 = tcp_client(restarted, creds)
            with again:
                again.associate()
                assert again.get(SERIAL) == SERIAL_NUMBER
            assert min(_ic(a) for a in link2.received[1:-1]) > before
        finally:
            restarted.close()


def test_a_meter_that_forgot_its_counters_is_refused(meter: TestMeter, tmp_path: Path) -> None:
    """The negative control of the restart test: a meter whose counter state was lost
    reuses counters, and the client (whose received counters persist) refuses it."""
    creds = credentials(Authentication.HLS_GMAC, tmp_path)
    with DlmsClient.tcp("127.0.0.1", meter.tcp_port, creds) as client:
        client.associate()
        for _ in range(20):
            client.get(SERIAL)
    amnesiac = TestMeter(tmp_path / "fresh-state")
    try:
        with (
            DlmsClient.tcp("127.0.0.1", amnesiac.tcp_port, creds) as client,
            pytest.raises(ReplayError),
        ):
            client.associate()
    finally:
        amnesiac.close()


def test_typed_errors_and_the_association_goes_on(meter: TestMeter, tmp_path: Path) -> None:
    with DlmsClient.tcp(
        "127.0.0.1", meter.tcp_port, credentials(Authentication.NONE, tmp_path)
    ) as c:
        c.associate()
        with pytest.raises(DataAccessError) as missing:
            c.get("1-0:1.9.0.255")
        assert missing.value.result is DataAccessResult.OBJECT_UNDEFINED
        with pytest.raises(DataAccessError) as denied:
            c.set(NOTE, 2, OctetString(b"x"))
        assert denied.value.result is DataAccessResult.READ_WRITE_DENIED
        with pytest.raises(ActionError) as refused:
            c.action(ENERGY, 1, Integer(0))
        assert refused.value.result is ActionResult.READ_WRITE_DENIED
        assert "1-0:1.8.0.255" in str(refused.value)
        values = c.get_many([(SERIAL, 2), ("1-0:1.9.0.255", 2), (ENERGY, 3, 3)])
        assert values[0] == SERIAL_NUMBER
        assert isinstance(values[1], DataAccessError)
        assert values[2] == (-1, 30)
        assert c.get(SERIAL) == SERIAL_NUMBER


def test_set_and_action_as_the_management_client(meter: TestMeter, tmp_path: Path) -> None:
    creds = credentials(Authentication.HLS_GMAC, tmp_path)
    with DlmsClient.tcp("127.0.0.1", meter.tcp_port, creds) as client:
        client.associate()
        client.set(NOTE, 2, OctetString(b"written by the client"))
        assert client.get(NOTE) == b"written by the client"
        assert client.action(ENERGY, 1, Integer(0)) is None  # Register.reset
        assert client.read_register(ENERGY).raw == 0


def test_a_wrong_class_guess_falls_back_to_the_object_list(
    meter: TestMeter, tmp_path: Path
) -> None:
    with DlmsClient.tcp(
        "127.0.0.1", meter.tcp_port, credentials(Authentication.NONE, tmp_path)
    ) as c:
        c.associate()
        assert c.get(ODD_REGISTER) == DoubleLongUnsigned(7)  # guessed Data, is a Register
        demand = c.read_register(DEMAND)  # guessed Register, is an Extended register
        assert demand.raw == 4321 and demand.unit is Unit.WATT
        with pytest.raises(DataAccessError) as wrong:
            c.get(ODD_REGISTER, class_id=1)  # a class given is never second-guessed
        assert wrong.value.result is DataAccessResult.OBJECT_CLASS_INCONSISTENT


def test_a_long_profile_arrives_in_blocks_with_progress(meter: TestMeter, tmp_path: Path) -> None:
    creds = credentials(Authentication.HLS_GMAC, tmp_path, max_pdu_size=128)
    steps: list[ReadProgress] = []
    with DlmsClient.tcp("127.0.0.1", meter.tcp_port, creds) as client:
        client.associate()
        profile = client.read_profile(PROFILE, progress=steps.append)
        window = client.read_profile(PROFILE, entries=(3, 4))
    assert len(profile.rows) == PROFILE_ROWS
    assert [row[1] for row in profile.rows] == [profile_row(i)[1] for i in range(PROFILE_ROWS)]
    assert len(steps) > 10
    assert [s.apdus for s in steps] == list(range(1, len(steps) + 1))
    assert all(a.bytes_received < b.bytes_received for a, b in itertools.pairwise(steps))
    assert [row[1] for row in window.rows] == [profile_row(2)[1], profile_row(3)[1]]


def test_settings_can_be_association_settings_with_a_counter_path(
    meter: TestMeter, tmp_path: Path
) -> None:
    settings = credentials(Authentication.HLS_GMAC, tmp_path).association_settings()
    counters = tmp_path / "elsewhere" / "counters.sqlite"
    with DlmsClient.tcp("127.0.0.1", meter.tcp_port, settings, counters=counters) as client:
        client.associate()
        assert client.get(SERIAL) == SERIAL_NUMBER
    assert counters.exists()


def test_the_state_dir_variable_sets_the_default_counter_file(
    meter: TestMeter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COSEMCAST_STATE_DIR", str(tmp_path / "state"))
    creds = dataclasses.replace(credentials(Authentication.HLS_GMAC, tmp_path), counters=None)
    with DlmsClient.tcp("127.0.0.1", meter.tcp_port, creds) as client:
        client.associate()
    assert (tmp_path / "state" / "client-counters.sqlite").exists()


def test_requests_after_close_are_refused(meter: TestMeter, tmp_path: Path) -> None:
    client = DlmsClient.tcp("127.0.0.1", meter.tcp_port, credentials(Authentication.NONE, tmp_path))
    client.associate()
    client.close()
    with pytest.raises(DlmsError):
        client.get(SERIAL)
