"""Independent check: Wireshark's own DLMS dissector reads our captures without error.

Runs only where a ``tshark`` with the ``dlms`` dissector is installed (Wireshark 4.6 or newer,
``epan/dissectors/asn1/cosem/packet-cosem-template.c``; Debian 12's 4.0 has none). It registers
on TCP and UDP port 4059; serial captures reach it through the User DLTs table (link type 147,
a 1-byte pseudo-header to skip, specs/pcap.md). A frame fails the test when tshark marks it
malformed, unless the dissector says it does not implement that APDU (``dlms.not_implemented``:
general-ciphering, for one), which is a frame it does not support.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = sorted((ROOT / "captures").glob("*.pcap"))
SHARED = ROOT.parent / "shared" / "captures"
ALL = CAPTURES + (sorted(SHARED.glob("*.pcap")) if SHARED.is_dir() else [])
USER_DLT = 'uat:user_dlts:"User 0 (DLT=147)","dlms","1","","0",""'


def _tshark_with_dlms() -> str | None:
    tshark = shutil.which("tshark")
    if tshark is None:
        return None
    try:
        done = subprocess.run(
            [tshark, "-G", "protocols"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    names = {line.split("\t")[2] for line in done.stdout.splitlines() if line.count("\t") >= 2}
    return tshark if "dlms" in names else None


TSHARK = _tshark_with_dlms()
pytestmark = pytest.mark.skipif(
    TSHARK is None, reason="no tshark with a DLMS dissector (Wireshark >= 4.6) installed"
)


def _frames(path: Path, display_filter: str) -> list[str]:
    assert TSHARK is not None
    command = [TSHARK, "-n", "-r", str(path), "-Y", display_filter, "-T", "fields"]
    command += ["-e", "frame.number"]
    if path.name.startswith("serial"):
        command += ["-o", USER_DLT]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_wireshark_dissects_our_frames_without_malformed_packets(path: Path) -> None:
    assert _frames(path, "dlms"), "the DLMS dissector saw no frame"
    malformed = _frames(path, "dlms && _ws.malformed && !dlms.not_implemented")
    assert malformed == [], f"frames tshark marks malformed: {malformed}"
