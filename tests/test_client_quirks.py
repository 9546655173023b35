"""Meter quirks the client must survive (issue 3): AARE with long-form BER lengths,
EXCEPTION-Response and confirmedServiceError in clear inside a ciphered association, an
error answer to the HLS pass. The assembled meter is made to misbehave through its hooks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cosemcast.apdu.notifications import (
    ConfirmedService,
    ConfirmedServiceError,
    ExceptionResponse,
    ExceptionServiceError,
    ExceptionStateError,
    ServiceErrorKind,
)
from cosemcast.association import ServerConnection
from cosemcast.client import (
    Authentication,
    DlmsClient,
    ExceptionResponseError,
    ServiceErrorResponse,
)
from cosemcast.errors import AssociationRejected
from test_client_support import (
    ENERGY,
    ENERGY_RAW,
    SERIAL,
    SERIAL_NUMBER,
    TestMeter,
    credentials,
    tcp_client,
)


def long_form(tlvs: bytes) -> bytes:
    """Re-encode BER elements with long-form lengths (81 nn / 82 nnnn) everywhere, going into
    constructed elements (a meter quirk; X.690 allows it, brief §4.2)."""
    out = bytearray()
    pos = 0
    while pos < len(tlvs):
        tag = tlvs[pos]
        length = tlvs[pos + 1]
        head = 2
        if length & 0x80:
            count = length & 0x7F
            length = int.from_bytes(tlvs[pos + 2 : pos + 2 + count], "big")
            head = 2 + count
        content = tlvs[pos + head : pos + head + length]
        if tag & 0x20:
            content = long_form(content)
        size = len(content)
        out += bytes((tag, 0x81, size)) if size < 0x100 else bytes((tag, 0x82)) + size.to_bytes(2)
        out += content
        pos += head + length
    return bytes(out)


def aare_long_form(apdu: bytes) -> bytes:
    return long_form(apdu) if apdu[0] == 0x61 else apdu


@pytest.fixture
def meter(tmp_path: Path) -> Iterator[TestMeter]:
    instance = TestMeter(tmp_path / "meter")
    yield instance
    instance.close()


def test_the_long_form_encoder_really_uses_the_long_form() -> None:
    # A made-up AARE fragment: [APPLICATION 1] { [1] { OBJECT IDENTIFIER (5 bytes) } }.
    short = bytes.fromhex("6109A10706056085740508")
    assert long_form(short) == bytes.fromhex("61810BA181080681056085740508")


@pytest.mark.parametrize("auth", list(Authentication))
def test_an_aare_with_long_form_lengths(
    meter: TestMeter, tmp_path: Path, auth: Authentication
) -> None:
    meter.rewrite = aare_long_form
    client, link = tcp_client(meter, credentials(auth, tmp_path))
    with client:
        client.associate()
        assert client.read_register(ENERGY).raw == ENERGY_RAW
    aare = link.received[0]
    assert aare[:2] == b"\x61\x81" and b"\xa1\x81" in aare


def _error_for_the_nth_request(n: int, answer: bytes) -> tuple[list[int], object]:
    seen = [0]

    def responder(sap: int, request: bytes, association: ServerConnection) -> list[bytes] | None:
        seen[0] += 1
        return [answer] if seen[0] == n else None

    return seen, responder


@pytest.mark.parametrize("auth", [Authentication.NONE, Authentication.HLS_GMAC])
def test_an_exception_response_in_clear(
    meter: TestMeter, tmp_path: Path, auth: Authentication
) -> None:
    answer = ExceptionResponse(
        ExceptionStateError.SERVICE_NOT_ALLOWED, ExceptionServiceError.OPERATION_NOT_POSSIBLE
    )
    first_get = 3 if auth.hls else 2  # after the AARQ (and the HLS pass)
    _, meter.responder = _error_for_the_nth_request(first_get, answer.encode())  # type: ignore[assignment]
    with DlmsClient.tcp("127.0.0.1", meter.tcp_port, credentials(auth, tmp_path)) as client:
        client.associate()
        with pytest.raises(ExceptionResponseError) as caught:
            client.get(SERIAL)
        assert caught.value.response == answer
        assert caught.value.protected is False
        assert "operation-not-possible" in str(caught.value)
        assert client.get(SERIAL) == SERIAL_NUMBER  # the association is still open


def test_a_confirmed_service_error_in_clear(meter: TestMeter, tmp_path: Path) -> None:
    error = ConfirmedServiceError(ConfirmedService.READ, ServiceErrorKind.ACCESS, 1)
    _, meter.responder = _error_for_the_nth_request(3, error.encode())  # type: ignore[assignment]
    creds = credentials(Authentication.HLS_GMAC, tmp_path)
    with DlmsClient.tcp("127.0.0.1", meter.tcp_port, creds) as client:
        client.associate()
        with pytest.raises(ServiceErrorResponse) as caught:
            client.get(SERIAL)
        assert caught.value.error.service is ConfirmedService.READ
        assert not caught.value.protected
        assert client.get(SERIAL) == SERIAL_NUMBER


def test_an_exception_response_to_the_hls_pass_is_a_rejection(
    meter: TestMeter, tmp_path: Path
) -> None:
    answer = ExceptionResponse(
        ExceptionStateError.SERVICE_NOT_ALLOWED, ExceptionServiceError.DECIPHERING_ERROR
    )
    _, meter.responder = _error_for_the_nth_request(2, answer.encode())  # type: ignore[assignment]
    creds = credentials(Authentication.HLS_GMAC, tmp_path)
    with (
        DlmsClient.tcp("127.0.0.1", meter.tcp_port, creds) as client,
        pytest.raises(AssociationRejected) as caught,
    ):
        client.associate()
    assert caught.value.diagnostic == 13
