"""``cosemcast pcap``: our sample captures, the independent ones, key learning, malformed frames.

Captures: ``captures/`` (written by ``captures/generate.py`` with our codecs; its keys are
the Green Book example EK/AK, brief §5.3) and ``../shared/captures/`` (gurux-dlms 1.0.203 on
loopback; see its README). Negative cases are built here with the same writers.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import struct
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cosemcast.cli.pcap as pcap_cli
from cosemcast.apdu import decode_apdu
from cosemcast.apdu.general import AgreedKey, GeneralCiphering
from cosemcast.capture.pcap import PcapWriter
from cosemcast.capture.serial_pcap import SerialDirection, SerialPcapWriter
from cosemcast.capture.traffic import read_capture
from cosemcast.cli.main import main
from cosemcast.errors import DecodeError
from cosemcast.link.hdlc import FrameType, HdlcAddress, HdlcFrame, LlcHeader
from cosemcast.link.wrapper import WrapperFrame

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = ROOT / "captures"
KEYS = CAPTURES / "keys.toml"
SHARED = ROOT.parent / "shared" / "captures"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("captures_generate", CAPTURES / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()
SAMPLES = sorted(GEN.CAPTURES)
MORE = GEN.generate_more
SECRETS = [
    GEN.EK,
    GEN.AK,
    GEN.KEK,
    GEN.KP,
    GEN.DEDICATED_KEY,
    b"12345678",
    *MORE.KS,
    MORE.KP2,
    MORE.KT,
    MORE.I0,
    MORE.ki(),
    MORE.ke(),
    MORE.CENTRE_SCALAR.to_bytes(32, "big"),
]


def keys_for(name: str) -> Path:
    """The key file of a sample capture (captures/README.md)."""
    return CAPTURES / GEN.KEY_FILES.get(name, "keys.toml")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["pcap", *argv])
    out = capsys.readouterr()
    return status, out.out, out.err


def items(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, Any]]]:
    status, out, _ = run(capsys, "--json", *argv)
    return status, [json.loads(line) for line in out.splitlines()]


# --- the sample captures -------------------------------------------------------------------------


def test_committed_captures_are_what_the_generator_writes(tmp_path: Path) -> None:
    for path in GEN.write_all(tmp_path):
        assert path.read_bytes() == (CAPTURES / path.name).read_bytes(), path.name


def test_readme_lists_every_capture() -> None:
    readme = (CAPTURES / "README.md").read_text()
    for name in SAMPLES:
        assert f"`{name}`" in readme


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_decodes_and_deciphers(capsys: pytest.CaptureFixture[str], name: str) -> None:
    status, found = items(capsys, "--keys", str(keys_for(name)), str(CAPTURES / name))
    assert status == GEN.EXPECTED_STATUS.get(name, 0)
    apdus = [i for i in found if "apdu_type" in i]
    assert apdus
    for item in found:
        if item["status"] != "ok":  # only head-end 4's C2, whose Ks is not in keys.toml
            assert name == "shared_payload_multicast.pcap", item["summary"]
            assert item["destination"] == "10.0.1.4:4059" and "no Ks" in item["problem"]
    for item in apdus:
        ciphered = item["apdu_type"].startswith(("glo-", "ded-", "general-"))
        opened = "deciphered_type" in item or item["status"] != "ok"
        relayed = item.get("deciphered_type") == "initialization-message"
        assert ciphered == opened or item["apdu_type"] in ("aarq", "aare") or relayed


@pytest.mark.parametrize("name", SAMPLES)
def test_without_keys_nothing_is_deciphered(capsys: pytest.CaptureFixture[str], name: str) -> None:
    status, out, err = run(capsys, str(CAPTURES / name))
    assert status == 0 and err == ""
    assert "=>" not in out
    assert "MALFORMED" not in out


@pytest.mark.parametrize("name", SAMPLES)
@pytest.mark.parametrize("mode", ["-V", "--json"])
def test_no_key_ever_printed(capsys: pytest.CaptureFixture[str], name: str, mode: str) -> None:
    _, out, err = run(capsys, mode, "--keys", str(keys_for(name)), str(CAPTURES / name))
    text = (out + err).upper()
    for secret in SECRETS:
        assert secret.hex().upper() not in text


def test_plain_tcp_reassembles_split_and_merged_segments(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, found = items(capsys, str(CAPTURES / "plain_association_tcp.pcap"))
    kinds = [i["apdu_type"] for i in found]
    assert kinds == [
        "aarq",
        "aare",
        *["get-request-normal", "get-response-normal"] * 4,
        "get-request-normal",
        "get-response-with-data-block",
        "get-request-next",
        "get-response-with-data-block",
        "event-notification-request",
        "rlrq",
        "rlre",
    ]
    split = found[4]  # the second GET request, written as 5 + 16 bytes
    assert split["invoke_id"] == 2 and split["packet"] == 6
    merged = [i for i in found if i["packet"] == found[-3]["packet"]]
    assert len(merged) == 2


def test_line_shows_time_addresses_wports_type_invoke_id_and_facts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, out, _ = run(capsys, str(CAPTURES / "plain_association_tcp.pcap"))
    line = next(x for x in out.splitlines() if "id=2" in x and "get-request" in x)
    assert line.split()[:2] == ["6", "0.042000"]
    assert "10.0.0.1:50001 -> 10.0.0.10:4059" in line
    assert "wPort 16->1" in line
    assert "1-0:1.8.0.255 attribute 2 (class 3)" in line
    assert out.startswith("== conversation 1: TCP 10.0.0.1:50001 <-> 10.0.0.10:4059: 17 APDU(s)")


def test_ciphered_association_learns_titles_and_the_dedicated_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, found = items(capsys, "--keys", str(KEYS), str(CAPTURES / "ciphered_association_tcp.pcap"))
    ded = [i for i in found if i["apdu_type"].startswith("ded-")]
    assert len(ded) == 4
    assert all(i["status"] == "ok" and i["deciphered_type"].startswith("get-") for i in ded)
    # The server's answers are protected with its title, known from the AARE.
    answer = next(i for i in found if i["apdu_type"] == "glo-get-response")
    assert answer["frame"]["deciphered"]["system_title"] == GEN.METER_TITLE.hex().upper()


def test_serial_session_lines(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--keys", str(KEYS), str(CAPTURES / "serial_hdlc_session.pcap"))
    assert status == 0
    lines = out.splitlines()
    assert lines[0].startswith("== conversation 1: SERIAL")
    assert "serial bytes (not HDLC) b'/?!\\r\\n'" in lines[1]
    assert any("client 16 -> server 1/17  SNRM  max-info tx 128" in x for x in lines)
    profile = next(x for x in lines if "array[12]" in x)
    assert "server 1/17 -> client 16" in profile and "last of 3 segments" in profile
    assert not any(" RR " in x for x in lines)
    _, verbose, _ = run(capsys, "-V", str(CAPTURES / "serial_hdlc_session.pcap"))
    assert " RR N(R)=" in verbose and "segment 1" in verbose
    assert "reassembled_apdu: GetResponseNormal" in verbose


def test_shared_payload_kp_learnt_from_c2_opens_c1(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--keys", str(KEYS), str(CAPTURES / "shared_payload_c2_c1.pcap"))
    assert status == 0
    c1 = [x for x in out.splitlines() if "no key-info" in x]
    assert len(c1) == 2
    for line in c1:
        assert "kp_id/transaction-id 0000000100000001" in line
        assert "=> data-notification" in line
    assert "wrapped-key (24 bytes)" in out


# --- key problems --------------------------------------------------------------------------------


def _udp_capture(path: Path, apdus: list[bytes]) -> Path:
    with PcapWriter(path) as w:
        for n, apdu in enumerate(apdus):
            w.write_udp(
                1000.0 + n, "10.0.0.10", 4059, "10.0.0.1", 4059, WrapperFrame(1, 16, apdu).encode()
            )
    return path


def _shared_payload_frames() -> list[bytes]:
    capture = read_capture(CAPTURES / "shared_payload_c2_c1.pcap")
    return [f.apdu for f in capture.frames if f.apdu is not None]


def test_c1_before_its_c2_is_parked_then_opened(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    c2, c1, c1b = _shared_payload_frames()
    path = _udp_capture(tmp_path / "c.pcap", [c1, c2, c1b])
    status, found = items(capsys, "--keys", str(KEYS), str(path))
    assert status == 0
    assert [i["status"] for i in found] == ["ok"] * 3
    assert "(Kp from the control message in packet 2)" in found[0]["summary"]
    assert "=> data-notification" in found[0]["summary"]
    assert "control message in packet" not in found[2]["summary"]


def test_c1_without_any_c2_is_unknown_kp_id(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, c1, c1b = _shared_payload_frames()
    path = _udp_capture(tmp_path / "c.pcap", [c1, c1b])
    status, found = items(capsys, "--keys", str(KEYS), str(path))
    assert status == 4
    for item in found:
        assert item["status"] == "not-deciphered"
        assert item["problem"].startswith("unknown kp_id 0000000100000001: no control message")


def test_c2_that_does_not_unwrap_teaches_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    keys = tmp_path / "k.toml"
    keys.write_text(KEYS.read_text().replace("A0A1A2A3", "A0A1A2A4"))
    c2, c1, _ = _shared_payload_frames()
    path = _udp_capture(tmp_path / "c.pcap", [c2, c1])
    status, found = items(capsys, "--keys", str(keys), str(path))
    assert status == 4  # the C1's "unknown kp_id" outranks the C2's failure (3)
    assert found[0]["status"] == "authentication-failed"
    assert found[1]["status"] == "not-deciphered" and "unknown kp_id" in found[1]["problem"]


def test_extension_agreed_key_is_reported_unsupported(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    c2 = decode_apdu(_shared_payload_frames()[0])
    assert isinstance(c2, GeneralCiphering)
    extension = dataclasses.replace(c2, key_info=AgreedKey(b"\x81", bytes(88)))
    path = _udp_capture(tmp_path / "c.pcap", [extension.encode()])
    status, found = items(capsys, "--keys", str(KEYS), str(path))
    assert status == 4
    assert "agreed-key parameters 81 are not supported" in found[0]["problem"]


def test_wrong_key_is_authentication_failed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    keys = tmp_path / "k.toml"
    keys.write_text(KEYS.read_text().replace("D0D1D2D3", "D0D1D2D4"))
    status, found = items(capsys, "--keys", str(keys), str(CAPTURES / "push_general_glo_udp.pcap"))
    assert status == 3
    assert all(i["status"] == "authentication-failed" for i in found)
    assert "did not verify" in found[0]["problem"] or "verif" in found[0]["problem"]


def test_missing_party_is_no_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    keys = tmp_path / "k.toml"
    keys.write_text(
        '[[keys]]\nsystem_title = "0000000000000001"\nek = "00000000000000000000000000000000"\n'
    )
    status, found = items(capsys, "--keys", str(keys), str(CAPTURES / "push_general_glo_udp.pcap"))
    assert status == 4
    assert all(i["status"] == "not-deciphered" and "no key" in i["problem"] for i in found)


def test_unusable_key_file_is_status_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    keys = tmp_path / "k.toml"
    keys.write_text("not toml [")
    status, _, err = run(capsys, "--keys", str(keys), str(CAPTURES / "push_general_glo_udp.pcap"))
    assert status == 1 and err.startswith("error: ")


def test_not_a_pcap_is_status_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(b"\x0a\x0d\x0d\x0a" + bytes(40))
    status, _, err = run(capsys, str(path))
    assert status == 2 and "pcapng" in err
    status, _, err = run(capsys, str(tmp_path / "absent.pcap"))
    assert status == 2 and err.startswith("error: ")


# --- malformed frames ----------------------------------------------------------------------------


def test_malformed_frames_are_reported_and_decoding_continues(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    good = bytes.fromhex("C001C1000100002B0100FF0200")  # brief §10.3 (DC test_get.py)
    tcp = WrapperFrame(16, 1, good).encode()
    path = tmp_path / "m.pcap"
    with PcapWriter(path) as w:
        w.write_udp(1.0, "10.0.0.10", 4059, "10.0.0.1", 4059, b"\x00\x02" + tcp[2:])  # version
        w.write_udp(
            2.0, "10.0.0.10", 4059, "10.0.0.1", 4059, WrapperFrame(1, 16, good[:7]).encode()
        )
        w.write_tcp(3.0, "10.0.0.1", 50000, "10.0.0.10", 4059, tcp)
        w.write_tcp(4.0, "10.0.0.1", 50000, "10.0.0.10", 4059, b"\xff\xff\xff" + tcp)
        w.write_udp(5.0, "10.0.0.10", 4059, "10.0.0.1", 4059, WrapperFrame(1, 16, good).encode())
    status, out, _ = run(capsys, str(path))
    assert status == 2
    lines = out.splitlines()
    version = next(x for x in lines if "wrapper version 2" in x)
    assert "MALFORMED" in version and "offset 0 of UDP datagram in packet 1" in version
    truncated = next(x for x in lines if x.split()[0] == "2")
    assert (
        "malformed APDU at offset 3 of the APDU (UDP datagram in packet 2 offset 11)" in truncated
    )
    resync = next(x for x in lines if "bytes skipped" in x)
    assert "offset 21 of the TCP stream" in resync and "(3 bytes skipped)" in resync
    assert sum("get-request-normal" in x for x in lines) == 3  # TCP x2 after resync, UDP x1


def test_damaged_hdlc_frame_is_reported_and_the_next_decodes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    client, server = HdlcAddress.client(16), HdlcAddress.server(1)
    apdu = bytes.fromhex("C001C1000100002B0100FF0200")
    frame = HdlcFrame(FrameType.I, server, client, llc=LlcHeader.COMMAND, information=apdu).encode()
    damaged = frame[:-3] + bytes((frame[-3] ^ 0xFF,)) + frame[-2:]
    path = tmp_path / "s.pcap"
    with SerialPcapWriter(path) as w:
        w.write(1.0, SerialDirection.CLIENT_TO_SERVER, damaged)
        w.write(2.0, SerialDirection.CLIENT_TO_SERVER, frame)
    status, out, _ = run(capsys, str(path))
    assert status == 2
    first, second = [x for x in out.splitlines() if x.strip().startswith(("1 ", "2 "))]
    assert "MALFORMED" in first and "FCS check failed" in first and "serial record 1" in first
    assert "get-request-normal" in second


def test_raw_frame_records_without_pseudo_header(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    client, server = HdlcAddress.client(16), HdlcAddress.server(1)
    frames = [
        HdlcFrame(FrameType.SNRM, server, client).encode(),
        HdlcFrame(FrameType.UA, client, server).encode(),
        HdlcFrame(
            FrameType.I,
            client,
            server,
            llc=LlcHeader.RESPONSE,
            information=bytes.fromhex("C401C10006 00001391".replace(" ", "")),
        ).encode(),
    ]
    path = tmp_path / "raw.pcap"
    with path.open("wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 147))
        for n, raw in enumerate(frames):
            fh.write(struct.pack("<IIII", n, 0, len(raw), len(raw)) + raw)
    _, found = items(capsys, str(path))
    assert [i.get("to_server") for i in found] == [True, False, False]
    assert found[2]["apdu_type"] == "get-response-normal"


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from(SAMPLES),
    flips=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(1, 255)), max_size=6),
    cut=st.integers(0, 1 << 16),
)
def test_mutated_captures_never_stop_the_command(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    name: str,
    flips: list[tuple[int, int]],
    cut: int,
) -> None:
    data = bytearray((CAPTURES / name).read_bytes())
    for at, mask in flips:
        data[24 + at % max(len(data) - 24, 1)] ^= mask
    data = data[: max(24, len(data) - cut % 64)] if cut % 3 == 0 else data
    path = tmp_path / "fuzz.pcap"
    path.write_bytes(bytes(data))
    try:
        read_capture(path)
    except DecodeError:
        pass
    status, _, _ = run(capsys, "--keys", str(KEYS), str(path))
    assert status in (0, 2, 3, 4)


def test_progress_on_stderr_for_big_files(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pcap_cli, "_PROGRESS_BYTES", 0)
    monkeypatch.setattr(pcap_cli, "_PROGRESS_EVERY_S", 0.0)
    _, _, err = run(capsys, str(CAPTURES / "plain_association_tcp.pcap"))
    assert "pcap: 17 frames analysed" in err.splitlines()[-1]
    _, _, err = run(capsys, "--no-progress", str(CAPTURES / "plain_association_tcp.pcap"))
    assert err == ""


# --- the independent captures --------------------------------------------------------------------

shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/captures not present")


@shared
@pytest.mark.parametrize("name", ["plain_none_gurux.pcap", "hls_gmac_gurux_service_glo.pcap"])
def test_independent_captures_decode_and_glo_deciphers(
    capsys: pytest.CaptureFixture[str], name: str
) -> None:
    status, found = items(capsys, "--keys", str(SHARED / "keys.toml"), str(SHARED / name))
    assert status == 0
    assert all(i["status"] == "ok" for i in found)
    glo = [i for i in found if i["apdu_type"].startswith("glo-")]
    assert all(i.get("deciphered_type") for i in glo)
    if name.startswith("hls"):
        assert len(glo) == 20  # 2 HLS passes + 9 GETs, each way
        users = [i for i in found if i["apdu_type"] in ("aarq", "aare")]
        assert sum("deciphered_user_information" in i["frame"] for i in users) == 2


@shared
def test_independent_capture_without_keys(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, str(SHARED / "hls_gmac_gurux_service_glo.pcap"))
    assert status == 0
    assert "== conversation 2: TCP 127.0.0.1:55046 <-> 127.0.0.1:4059: 24 APDU(s) ==" in out
