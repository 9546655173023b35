"""The sample captures of issue 6 item 4, flow by flow: LLS, HLS-GMAC (the f(StoC)/f(CtoS) of
the HLS pass checked with the keys, here and in the independent gurux capture), one C1 for
several head-ends each with its own Ks, and a supervision assignment (the enrollment request,
the initialization message opened with the meter's Ki, never I0). Every file also goes
through the scapy layers. Captures: ``captures/`` (``generate.py``, ``generate_more.py``);
``../shared/captures/`` (gurux-dlms on loopback, see its README)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.acse import AARE, AARQ, AcseRequirements, AcseServiceUser, MechanismName
from cosemcast.apdu.action import ActionRequestNormal
from cosemcast.apdu.common import CosemMethodDescriptor, InvokeIdAndPriority
from cosemcast.axdr import OctetString
from cosemcast.capture.pcap import PcapWriter
from cosemcast.capture.supervision_view import load_capture_keys
from cosemcast.cli.main import main
from cosemcast.link.wrapper import WrapperFrame
from cosemcast.obis import Obis

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = ROOT / "captures"
SHARED = ROOT.parent / "shared" / "captures"
KEYS = CAPTURES / "keys.toml"
SUPERVISION_KEYS = CAPTURES / "supervision_keys.toml"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("captures_generate", CAPTURES / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()
MORE = GEN.generate_more
NEW = [
    "lls_association_tcp.pcap",
    "hls_gmac_association_tcp.pcap",
    "shared_payload_multicast.pcap",
    "supervision_assignment.pcap",
]


def pcap(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    status = main(["pcap", *argv])
    return status, capsys.readouterr().out


def frames(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, Any]]]:
    status, out = pcap(capsys, "--json", *argv)
    return status, [json.loads(line) for line in out.splitlines()]


# --- key files -----------------------------------------------------------------------------------


def test_key_files_hold_what_the_generator_used() -> None:
    with KEYS.open("rb") as fh:
        entries = {e["system_title"]: e for e in tomllib.load(fh)["keys"]}
    for head_end, ks in zip(MORE.HEAD_ENDS[:3], MORE.KS[:3], strict=True):
        assert bytes.fromhex(entries[head_end.hex().upper()]["kek"]) == ks
    assert MORE.HEAD_ENDS[3].hex().upper() not in entries
    ring, extras = load_capture_keys(SUPERVISION_KEYS)
    assert extras.ki == {GEN.METER_TITLE: MORE.ki()}
    assert extras.ke == {GEN.METER_TITLE: MORE.ke()}
    centre = ring.get(MORE.CENTRE_TITLE)
    assert centre is not None and centre.signing_public_key is not None
    assert centre.signing_public_key == MORE.centre_signing_key().public_key()
    assert "C91D" not in repr(extras)


def test_bad_ki_is_an_unusable_key_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    keys = tmp_path / "k.toml"
    keys.write_text(SUPERVISION_KEYS.read_text().replace('ki = "C91D', 'ki = "ZZ1D'))
    status = main(["pcap", "--keys", str(keys), str(CAPTURES / "supervision_assignment.pcap")])
    assert status == 1 and "field 'ki' is not hex" in capsys.readouterr().err


# --- LLS and HLS-GMAC ----------------------------------------------------------------------------


def test_lls_association_hides_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    status, out = pcap(capsys, "-V", str(CAPTURES / "lls_association_tcp.pcap"))
    assert status == 0
    assert "mechanism low" in out and "wPort 17->1" in out
    assert "calling_authentication_value: <hidden>" in out
    assert "12345678 " not in out and b"12345678".hex() not in out.lower()


@pytest.mark.parametrize(
    ("path", "keys"),
    [
        (CAPTURES / "hls_gmac_association_tcp.pcap", KEYS),
        (SHARED / "hls_gmac_gurux_service_glo.pcap", SHARED / "keys.toml"),
    ],
    ids=["ours", "gurux"],
)
def test_hls_gmac_pass_verifies_both_ways(
    capsys: pytest.CaptureFixture[str], path: Path, keys: Path
) -> None:
    if not path.exists():
        pytest.skip(f"{path} is not there")
    status, found = frames(capsys, "--keys", str(keys), str(path))
    assert status == 0
    summaries = [f["summary"] for f in found]
    assert sum("(HLS f(StoC) verified)" in s for s in summaries) == 1
    assert sum("(HLS f(CtoS) verified)" in s for s in summaries) == 1
    reply = next(f for f in found if "f(StoC)" in f["summary"])
    assert reply["apdu_type"] == "glo-action-request"
    assert reply["deciphered_type"] == "action-request-normal"


def _plain_hls(path: Path, f_stoc: bytes) -> None:
    """An unciphered HLS-GMAC association whose f(StoC) is ``f_stoc``."""
    aarq = AARQ(
        calling_ap_title=GEN.CLIENT_TITLE,
        sender_acse_requirements=AcseRequirements.AUTHENTICATION,
        mechanism_name=MechanismName.HIGH_GMAC,
        calling_authentication_value=MORE.CTOS,
    )
    aare = AARE(
        result_source_diagnostic=AcseServiceUser.AUTHENTICATION_REQUIRED,
        responding_ap_title=GEN.METER_TITLE,
        mechanism_name=MechanismName.HIGH_GMAC,
        responding_authentication_value=MORE.STOC,
    )
    reply = ActionRequestNormal(
        CosemMethodDescriptor(15, Obis.parse("0-0:40.0.0.255"), 1),
        OctetString(f_stoc),
        invoke_id_and_priority=InvokeIdAndPriority(1),
    )
    with PcapWriter(path) as w:
        for n, (apdu, up) in enumerate(((aarq, True), (aare, False), (reply, True))):
            src, dst = (("10.0.0.1", 50010), ("10.0.0.10", 4059))[:: 1 if up else -1]
            frame = WrapperFrame(1, 1, apdu.encode()).encode()
            w.write_tcp(100.0 + n, src[0], src[1], dst[0], dst[1], frame)


def test_wrong_hls_response_is_authentication_failed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from cosemcast.security.gcm import SymmetricKeys
    from cosemcast.security.hls import gmac_f

    good = gmac_f(SymmetricKeys(GEN.EK, GEN.AK), GEN.CLIENT_TITLE, 9, MORE.STOC)
    path = tmp_path / "hls.pcap"
    _plain_hls(path, good)
    status, out = pcap(capsys, "--keys", str(KEYS), str(path))
    assert status == 0 and "(HLS f(StoC) verified)" in out
    _plain_hls(path, good[:-1] + bytes((good[-1] ^ 1,)))
    status, found = frames(capsys, "--keys", str(KEYS), str(path))
    assert status == 3
    assert found[2]["status"] == "authentication-failed"
    assert "HLS f(StoC) does not verify" in found[2]["problem"]


# --- one C1 for several head-ends ----------------------------------------------------------------


def test_multicast_c1_opens_with_kp_from_any_head_ends_c2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, found = frames(
        capsys, "--keys", str(KEYS), str(CAPTURES / "shared_payload_multicast.pcap")
    )
    assert status == 4
    c2 = [f for f in found if f["destination"].startswith("10.0.1.")]
    c1 = [f for f in found if f["destination"].startswith("239.1.2.4")]
    assert [f["status"] for f in c2] == ["ok", "ok", "ok", "not-deciphered"]
    assert all(f["deciphered_type"] == "data-notification" for f in c2[:3])
    assert "neither meter 4D4D4D0000C0FFEE nor recipient 4845414400000004" in c2[3]["problem"]
    assert [(f["status"], f["deciphered_type"], f["invoke_id"]) for f in c1] == [
        ("ok", "data-notification", 1),
        ("ok", "data-notification", 2),
    ]


def test_multicast_without_the_head_ends_keys_leaves_c1_unknown(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    keys = tmp_path / "k.toml"
    keys.write_text(KEYS.read_text().split("# shared_payload_multicast.pcap")[0])
    status, found = frames(
        capsys, "--keys", str(keys), str(CAPTURES / "shared_payload_multicast.pcap")
    )
    assert status == 4
    assert all(f["status"] == "not-deciphered" for f in found)
    assert "unknown kp_id 0000000300000001" in found[-1]["problem"]


# --- supervision ---------------------------------------------------------------------------------


def test_supervision_shows_enrollment_and_init_message_but_never_i0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = CAPTURES / "supervision_assignment.pcap"
    status, found = frames(capsys, "--keys", str(SUPERVISION_KEYS), str(path))
    assert status == 0
    enrollment, load = found[0], found[3]
    assert enrollment["deciphered_type"] == "enrollment-request"
    assert (
        "meter 4D4D4D0000BC614E asks to assign head-end 4142434445464748" in enrollment["summary"]
    )
    assert "counter 1, tag verified" in enrollment["summary"]
    assert load["apdu_type"] == "action-request-normal"
    assert load["deciphered_type"] == "initialization-message"
    assert (
        "initialization message assign head-end 4142434445464748 for meter 4D4D4D0000BC614E, "
        "sequence 1, valid 2026-01-01T00:01:00Z..2026-01-31T00:01:00Z, signature verified"
    ) in load["summary"]
    tree = load["frame"]["deciphered_init_message"]
    assert tree["sequence"] == 1 and tree["signature"] == "verified"
    for mode in ("-V", "--json"):
        _, out = pcap(capsys, mode, "--keys", str(SUPERVISION_KEYS), str(path))
        for secret in (MORE.I0, MORE.ki(), MORE.ke(), MORE.KT):
            assert secret.hex().upper() not in out.upper()


def test_supervision_without_ki_or_ke_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    status, found = frames(
        capsys, "--keys", str(KEYS), str(CAPTURES / "supervision_assignment.pcap")
    )
    assert status == 4
    assert "tag not verified (no ke for meter 4D4D4D0000BC614E)" in found[0]["summary"]
    assert found[0]["status"] == "not-deciphered"
    assert found[3]["status"] == "not-deciphered"
    assert "no ki for meter 4D4D4D0000BC614E" in found[3]["problem"]


def test_supervision_wrong_ki_or_centre_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = CAPTURES / "supervision_assignment.pcap"
    keys = tmp_path / "k.toml"
    keys.write_text(SUPERVISION_KEYS.read_text().replace('ki = "C91D', 'ki = "C91E'))
    status, found = frames(capsys, "--keys", str(keys), str(path))
    assert status == 3 and found[3]["status"] == "authentication-failed"
    text = SUPERVISION_KEYS.read_text()
    keys.write_text(text[: text.index("signing_public_key")])  # no centre key
    status, found = frames(capsys, "--keys", str(keys), str(path))
    assert status == 0
    assert (
        "signature not checked (no signing_public_key for centre 43454E5452450001)"
        in (found[3]["summary"])
    )
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = (
        ec.derive_private_key(12345, ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    keys.write_text(text.replace(MORE.centre_public_pem(), other))
    status, found = frames(capsys, "--keys", str(keys), str(path))
    assert status == 3 and found[3]["status"] == "authentication-failed"


# --- scapy ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NEW)
def test_new_captures_dissect_with_scapy(name: str) -> None:
    scapy_all = pytest.importorskip("scapy.all")
    import cosemcast.dissect as dissect

    packets = scapy_all.sniff(offline=str(CAPTURES / name), session=scapy_all.TCPSession)
    apdus = [p for p in packets if p.haslayer(dissect.DlmsApdu)]
    assert apdus and all(p.haslayer(dissect.DlmsWrapper) for p in apdus)
    assert not any(p.haslayer(dissect.DlmsMalformedApdu) for p in packets)
    for packet in packets:
        assert "###[" in packet.show(dump=True)


# --- robustness ----------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    sc=st.sampled_from([0x11, 0x31]),
    body=st.binary(max_size=300),
    flips=st.lists(st.tuples(st.integers(0, 400), st.integers(1, 255)), max_size=4),
)
def test_supervision_views_raise_only_protocol_errors(
    sc: int, body: bytes, flips: list[tuple[int, int]]
) -> None:
    """Arbitrary or mutated ciphered content: only DecodeError, AuthenticationFailed or
    KeyUnavailableError come out of the views."""
    from cosemcast.apdu.general import GeneralCiphering
    from cosemcast.capture.supervision_view import open_init_message, read_enrollment
    from cosemcast.errors import AuthenticationFailed, DecodeError, KeyUnavailableError

    ring, extras = load_capture_keys(SUPERVISION_KEYS)
    message = MORE.InitMessage(GEN.METER_TITLE, GEN.CLIENT_TITLE, MORE.I0, 1, 2, 1).seal(
        MORE.centre_signing_key(), MORE.ki(), centre_id=MORE.CENTRE_TITLE
    )
    genuine = decode_apdu(message)
    assert isinstance(genuine, GeneralCiphering)
    text = bytearray(genuine.ciphered_text if body == b"" else body)
    for at, mask in flips:
        if text:
            text[at % len(text)] ^= mask
    for originator, recipient in ((MORE.CENTRE_TITLE, GEN.METER_TITLE), (GEN.METER_TITLE, b"")):
        apdu = dataclasses.replace(
            genuine,
            security_control=sc,
            ciphered_text=bytes(text),
            originator_system_title=originator,
            recipient_system_title=recipient,
        )
        try:
            open_init_message(apdu, ring, extras)
        except (DecodeError, AuthenticationFailed, KeyUnavailableError):
            pass
        try:
            read_enrollment(apdu, extras)
        except (DecodeError, AuthenticationFailed, KeyUnavailableError):
            pass


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(flips=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(1, 255)), max_size=6))
def test_mutated_supervision_capture_never_stops_the_command(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flips: list[tuple[int, int]]
) -> None:
    data = bytearray((CAPTURES / "supervision_assignment.pcap").read_bytes())
    for at, mask in flips:
        data[24 + at % (len(data) - 24)] ^= mask
    path = tmp_path / "fuzz.pcap"
    path.write_bytes(bytes(data))
    status = main(["pcap", "--keys", str(SUPERVISION_KEYS), str(path)])
    capsys.readouterr()
    assert status in (0, 2, 3, 4)
