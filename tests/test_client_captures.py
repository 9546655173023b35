"""Our client against the recorded answers of an independent meter (../shared/captures/:
gurux-dlms 1.0.203 as meter, on loopback; see its README). A replay link hands the client,
in order, exactly the APDUs the gurux meter sent; the client must accept every one of them
(AARE, HLS-GMAC pass 4 with its f(CtoS), glo-get-responses, RLRE) and read the values the
gurux client read (``*.client.json``).

Two things are pinned so that recorded answers fit our requests: the random source returns
the challenge gurux's client sent (the meter's f(CtoS) is computed over it), and each request
is numbered invoke-id 1 as gurux numbers all of its requests (the answers echo it; a ciphered
answer cannot be renumbered without breaking its tag).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.acse import AARQ, MechanismName
from cosemcast.association import AssociationSettings, Ciphering, GlobalKeys, SecuritySettings
from cosemcast.axdr.types import CosemDateTime, OctetString
from cosemcast.capture.pcap import read_pcap, tcp_streams
from cosemcast.client import DlmsClient
from cosemcast.cosem.client_views import parse_capture_objects, parse_profile_buffer
from cosemcast.errors import ResponseTimeout
from cosemcast.link.wrapper import WrapperDecoder

CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "captures"
pytestmark = pytest.mark.skipif(not CAPTURES.is_dir(), reason="../shared/captures not present")

EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")  # captures/keys.toml (Green Book)
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
CLIENT_TITLE = bytes.fromhex("4142434445464748")
METER_TITLE = bytes.fromhex("4D4D4D0000BC614E")


def sessions(pcap: str) -> list[tuple[list[bytes], list[bytes]]]:
    """(client APDUs, meter APDUs) of each TCP connection, in capture order."""
    by_port: dict[int, tuple[list[bytes], list[bytes]]] = {}
    for stream in tcp_streams(list(read_pcap(CAPTURES / pcap))):
        decoder = WrapperDecoder()
        decoder.receive_data(bytes(stream.data))
        to_meter = stream.dport == 4059
        port = stream.sport if to_meter else stream.dport
        while (frame := decoder.next_frame()) is not None:
            by_port.setdefault(port, ([], []))[0 if to_meter else 1].append(frame.apdu)
    return [by_port[port] for port in sorted(by_port)]


class ReplayLink:
    """An ApduLink whose every receive returns the next recorded meter APDU."""

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = deque(answers)
        self.sent: list[bytes] = []

    def send_apdu(self, apdu: bytes) -> None:
        self.sent.append(apdu)

    def receive_apdu(self, timeout_s: float | None = None) -> bytes:
        if not self.answers:
            raise ResponseTimeout("the recording has no more answers")
        return self.answers.popleft()

    def close(self) -> None:
        pass

    def __enter__(self) -> ReplayLink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class NumberedOne(DlmsClient):
    """Numbers every request invoke-id 1, as gurux does (see the module docstring)."""

    def _exchange(self, request: Any) -> Any:
        self.connection._invoke_id = 0  # the next request takes invoke-id 1
        return super()._exchange(request)


def expected(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((CAPTURES / name).read_text())
    return document["objects"]


def utc(value: Any) -> str:
    if isinstance(value, OctetString):
        value = value.as_datetime()
    assert isinstance(value, CosemDateTime)
    return value.to_datetime().astimezone(dt.UTC).isoformat()


def read_like_gurux(client: DlmsClient, objects: dict[str, Any]) -> None:
    """The nine GETs of the recorded sessions, in their order; values as the peer read them."""
    clock = objects["0.0.1.0.0.255"]
    assert utc(client.get("0-0:1.0.0.255", 2, 8)) == clock["time"]
    assert client.get("0-0:1.0.0.255", 3, 8) == clock["time_zone"]
    assert client.get("0-0:1.0.0.255", 4, 8) == clock["status"]
    energy = objects["1.0.1.8.0.255"]
    assert client.get("1-0:1.8.0.255", 2, 3) == energy["value_raw"]
    assert client.get("1-0:1.8.0.255", 3, 3) == (energy["scaler"], energy["unit"])
    serial = objects["0.0.96.1.0.255"]
    assert client.get("0-0:96.1.0.255", 2, 1) == bytes.fromhex(serial["raw"])
    profile = objects["1.0.99.1.0.255"]
    columns = parse_capture_objects(client.get("1-0:99.1.0.255", 3, 7))
    assert [f"{c.class_id}/{c.logical_name}/{c.attribute_index}" for c in columns] == [
        text.replace("0.0.1.0.0.255", "0-0:1.0.0.255").replace("1.0.1.8.0.255", "1-0:1.8.0.255")
        for text in profile["capture_objects"]
    ]
    assert client.get("1-0:99.1.0.255", 7, 7) == profile["entries_in_use"]
    buffer = parse_profile_buffer(client.get("1-0:99.1.0.255", 2, 7), columns)
    assert [[utc(t), v] for t, v in buffer.rows] == profile["buffer"]


def test_the_plain_session_of_the_independent_meter() -> None:
    ((requests, answers),) = sessions("plain_none_gurux.pcap")
    link = ReplayLink(answers)
    with NumberedOne(link, AssociationSettings(client_sap=16)) as client:
        client.associate()
        read_like_gurux(client, expected("plain_none_gurux.client.json"))
    assert not link.answers  # every answer, RLRE included, was consumed and accepted
    assert [apdu[0] for apdu in link.sent] == [apdu[0] for apdu in requests]


@pytest.fixture
def counters(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "counters.sqlite"


def test_the_hls_gmac_session_of_the_independent_meter(counters: Path) -> None:
    public, management = sessions("hls_gmac_gurux_service_glo.pcap")
    link = ReplayLink(public[1])
    with NumberedOne(link, AssociationSettings(client_sap=16)) as client:
        client.associate()
        assert client.get("0-0:43.1.0.255", 2, 1) == 0  # the meter's counter, as gurux read it
    aarq = decode_apdu(management[0][0])
    assert isinstance(aarq, AARQ) and aarq.calling_authentication_value is not None
    challenge = aarq.calling_authentication_value
    settings = AssociationSettings(
        client_sap=1,
        mechanism=MechanismName.HIGH_GMAC,
        challenge_length=len(challenge),
        security=SecuritySettings(
            system_title=CLIENT_TITLE,
            global_keys=GlobalKeys(EK, AK),
            ciphering=Ciphering.GLOBAL,
            peer_system_title=METER_TITLE,
        ),
    )
    link = ReplayLink(management[1])
    with NumberedOne(link, settings, counters=counters, rng=lambda n: challenge) as client:
        established = client.associate()  # verifies the meter's f(CtoS) and its counters
        assert established.server_system_title == METER_TITLE
        read_like_gurux(client, expected("hls_gmac_gurux_service_glo.client.json"))
    assert not link.answers
    assert [apdu[0] for apdu in link.sent] == [apdu[0] for apdu in management[0]]


def test_a_replayed_recording_is_refused_the_second_time(counters: Path) -> None:
    """The same recorded answers, fed again to a client that keeps its counters, are old."""
    _, management = sessions("hls_gmac_gurux_service_glo.pcap")
    aarq = decode_apdu(management[0][0])
    assert isinstance(aarq, AARQ) and aarq.calling_authentication_value is not None
    challenge = aarq.calling_authentication_value
    settings = AssociationSettings(
        client_sap=1,
        mechanism=MechanismName.HIGH_GMAC,
        challenge_length=len(challenge),
        security=SecuritySettings(
            system_title=CLIENT_TITLE, global_keys=GlobalKeys(EK, AK), ciphering=Ciphering.GLOBAL
        ),
    )
    from cosemcast.errors import ReplayError

    for attempt in range(2):
        link = ReplayLink(management[1])
        client = NumberedOne(link, settings, counters=counters, rng=lambda n: challenge)
        try:
            if attempt == 0:
                client.associate()
            else:
                with pytest.raises(ReplayError):
                    client.associate()
        finally:
            client.close()
