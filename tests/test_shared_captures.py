"""Sessions recorded from an independent DLMS implementation (../shared/captures/).

gurux-dlms 1.0.203 played both meter and client on loopback; `*.client.json` holds what its
client read. Every APDU of both captures must decode, every glo- APDU must decipher with the
keys beside them, the HLS-GMAC handshake must verify with our GMAC, and the values we decode
must equal the peer's. Nothing here was produced by cosemcast.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.acse import AARE, AARQ
from cosemcast.apdu.action import ActionRequestNormal, ActionResponseNormal
from cosemcast.apdu.ciphered import ServiceSpecificCiphered
from cosemcast.apdu.common import GetDataValue
from cosemcast.apdu.get import GetRequestNormal, GetResponseNormal
from cosemcast.axdr import CosemDateTime, OctetString
from cosemcast.capture.pcap import read_pcap, tcp_streams
from cosemcast.link.wrapper import WrapperDecoder
from cosemcast.security.gcm import SymmetricKeys
from cosemcast.security.hls import verify_gmac_f
from cosemcast.security.keyring import KeyRing
from cosemcast.security.protection import decipher_with_keyring

CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "captures"
pytestmark = pytest.mark.skipif(not CAPTURES.is_dir(), reason="../shared/captures not present")


def _conversation(pcap: Path, ring: KeyRing) -> list[tuple[int, int, Any]]:
    """(client port, direction 0=request/1=response, APDU deciphered) in wire order per stream."""
    out = []
    for stream in tcp_streams(list(read_pcap(pcap))):
        decoder = WrapperDecoder()
        decoder.receive_data(bytes(stream.data))
        to_server = stream.dport == 4059
        while (frame := decoder.next_frame()) is not None:
            apdu = decode_apdu(frame.apdu)
            if isinstance(apdu, ServiceSpecificCiphered):
                apdu = decode_apdu(decipher_with_keyring(apdu, ring).plain)
            port = stream.sport if to_server else stream.dport
            out.append((port, 0 if to_server else 1, apdu))
    return out


def _reads(conversation: list[tuple[int, int, Any]]) -> dict[tuple[int, str, int], Any]:
    """Pair each GET request with its response (same association, same order)."""
    values: dict[tuple[int, str, int], Any] = {}
    by_port: dict[int, tuple[list[Any], list[Any]]] = {}
    for port, direction, apdu in conversation:
        by_port.setdefault(port, ([], []))[direction].append(apdu)
    for requests, responses in by_port.values():
        gets = [r for r in requests if isinstance(r, GetRequestNormal)]
        answers = [r for r in responses if isinstance(r, GetResponseNormal)]
        assert len(gets) == len(answers)
        for req, resp in zip(gets, answers, strict=True):
            d = req.cosem_attribute_descriptor
            assert isinstance(resp.result, GetDataValue), resp
            values[(d.class_id, str(d.instance_id), d.attribute_id)] = resp.result.value
    return values


def _utc(value: Any) -> str:
    if isinstance(value, OctetString):
        value = value.as_datetime()
    assert isinstance(value, CosemDateTime)
    return value.to_datetime().astimezone(dt.UTC).isoformat()


def _check_objects(values: dict[tuple[int, str, int], Any], expected: dict[str, Any]) -> None:
    clock = expected["0.0.1.0.0.255"]
    assert _utc(values[(8, "0-0:1.0.0.255", 2)]) == clock["time"]
    assert values[(8, "0-0:1.0.0.255", 3)] == clock["time_zone"]
    assert values[(8, "0-0:1.0.0.255", 4)] == clock["status"]

    register = expected["1.0.1.8.0.255"]
    assert values[(3, "1-0:1.8.0.255", 2)] == register["value_raw"]
    scaler, unit = values[(3, "1-0:1.8.0.255", 3)]
    assert (scaler, unit) == (register["scaler"], register["unit"])
    assert register["value_raw"] * 10**scaler == pytest.approx(register["value"])

    serial = expected["0.0.96.1.0.255"]
    assert bytes(values[(1, "0-0:96.1.0.255", 2)]).hex().upper() == serial["raw"]

    profile = expected["1.0.99.1.0.255"]
    captured = [
        f"{c}/{'.'.join(str(b) for b in bytes(o))}/{a}"
        for c, o, a, _ in values[(7, "1-0:99.1.0.255", 3)]
    ]
    assert captured == profile["capture_objects"]
    assert values[(7, "1-0:99.1.0.255", 7)] == profile["entries_in_use"]
    rows = [[_utc(t), v] for t, v in values[(7, "1-0:99.1.0.255", 2)]]
    assert rows == profile["buffer"]


def test_plain_session_values_match_the_peer() -> None:
    ring = KeyRing.from_toml(CAPTURES / "keys.toml")
    conversation = _conversation(CAPTURES / "plain_none_gurux.pcap", ring)
    assert isinstance(conversation[0][2], AARQ)
    expected = json.loads((CAPTURES / "plain_none_gurux.client.json").read_text())
    _check_objects(_reads(conversation), expected["objects"])
    aare = next(a for _, d, a in conversation if d == 1 and isinstance(a, AARE))
    initiate = aare.user_information
    # The peer reports conformance in Gurux's enum numbering, where bit n of brief §4.3 (bit 0 =
    # MSB of the wire's first octet) is 1 << n: the 24-bit wire value reversed bit for bit.
    wire = int(initiate.negotiated_conformance)
    assert wire == 0x401E5D
    assert int(f"{wire:024b}"[::-1], 2) == expected["negotiated_conformance"]


def test_hls_gmac_session_deciphers_verifies_and_matches_the_peer() -> None:
    ring = KeyRing.from_toml(CAPTURES / "keys.toml")
    conversation = _conversation(CAPTURES / "hls_gmac_gurux_service_glo.pcap", ring)
    expected = json.loads((CAPTURES / "hls_gmac_gurux_service_glo.client.json").read_text())
    _check_objects(_reads(conversation), expected["objects"])

    # The HLS-GMAC passes 3 and 4 (brief §7.1-7.2) verify with our GMAC, and the counters are
    # those the capture README lists: f(StoC) inside uses client IC 2, f(CtoS) server IC 2.
    hls = [(d, a) for port, d, a in conversation if port == 55046]
    aarq = next(a for d, a in hls if isinstance(a, AARQ))
    aare = next(a for d, a in hls if isinstance(a, AARE))
    action = next(a for d, a in hls if isinstance(a, ActionRequestNormal))
    reply = next(a for d, a in hls if isinstance(a, ActionResponseNormal))
    client = ring.get(aarq.calling_ap_title)
    server = ring.get(aare.responding_ap_title)
    assert client is not None and server is not None
    keys = SymmetricKeys(client.ek, client.ak)
    f_stoc = bytes(action.method_invocation_parameters)
    assert (
        verify_gmac_f(keys, aarq.calling_ap_title, aare.responding_authentication_value, f_stoc)
        == 2
    )
    assert isinstance(reply.return_parameters, GetDataValue)
    f_ctos = bytes(reply.return_parameters.value)
    assert (
        verify_gmac_f(
            SymmetricKeys(server.ek, server.ak),
            aare.responding_ap_title,
            aarq.calling_authentication_value,
            f_ctos,
        )
        == 2
    )
