"""``cosemcast supervision``: the admin commands in-process, the service as a real process.

The whole flow of the README: init (with a fresh master key), import a maker's manifest,
serve, register a head-end while the centre runs, the head-end's ``assign`` writes Ks into its
``cosemcast headend listen`` key file, ``deliver`` loads the message into a meter on TCP
(Fig. 6b), list, revoke, rotate the key; errors say what to do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cosemcast.cli.main import main
from cosemcast.headend.keys import load_keys
from cosemcast.supervision.atrest import MASTER_KEY_ENV
from test_supervision_service import (
    HEAD_ENDS,
    Clock,
    enroll,
    meter_id,
    meter_kt,
    start_meter,
)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["supervision", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """An initialised registry with two meters, served by ``cosemcast supervision serve``."""
    db = tmp_path / "centre.sqlite3"
    key = tmp_path / "master.key"
    base = ["supervision", "--db", str(db), "--master-key-file", str(key)]
    assert (
        main(
            [
                "supervision",
                "init",
                *base[1:],
                "--centre-id",
                "5355504500000001",
                "--generate-master-key",
                "--public-key-out",
                str(tmp_path / "centre.pem"),
            ]
        )
        == 0
    )
    manifest = tmp_path / "meters.csv"
    manifest.write_text(
        "system_title,kt\n" + "".join(f"{meter_id(n).hex()},{meter_kt(n).hex()}\n" for n in (0, 1))
    )
    assert main(["supervision", "import", *base[1:], str(manifest)]) == 0
    env = dict(os.environ, **{MASTER_KEY_ENV: key.read_text().strip()})
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cosemcast",
            "supervision",
            "serve",
            "--db",
            str(db),
            "--listen",
            "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on "), line + (
            process.stderr.read() if process.stderr else ""
        )
        yield tmp_path, line.split()[-1]
    finally:
        process.terminate()
        assert process.wait(30) == 0


def test_the_whole_flow(serving: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    tmp, address = serving
    admin = ["--db", str(tmp / "centre.sqlite3"), "--master-key-file", str(tmp / "master.key")]
    channel = tmp / "supplier-channel.toml"
    status, out, _ = run(
        capsys,
        "head-end",
        "add",
        *admin,
        HEAD_ENDS[0].hex(),
        "--name",
        "supplier",
        "--credentials-out",
        str(channel),
        "--centre",
        address,
    )
    assert status == 0 and "registered" in out
    assert channel.stat().st_mode & 0o777 == 0o600

    keys_file = tmp / "supplier-keys.toml"
    message = tmp / "init.bin"
    status, out, _ = run(
        capsys,
        "assign",
        "--credentials",
        str(channel),
        "--headend-keys",
        str(keys_file),
        "--message-out",
        str(message),
        enroll(0, HEAD_ENDS[0], 1, at=_now()).hex(),
    )
    assert status == 0
    result = json.loads(out)
    assert result["meter_id"] == meter_id(0).hex().upper() and result["sequence"] == 1
    assert "ks" not in result
    ks = load_keys(keys_file).meters[meter_id(0)].shared_key
    assert ks is not None

    status, _, err = run(
        capsys, "assign", "--credentials", str(channel), enroll(0, HEAD_ENDS[0], 1, at=_now()).hex()
    )
    assert status == 1 and "already used" in err and "error:" in err

    meter = start_meter(0, _public_key(tmp / "centre.pem"), Clock(_now()))
    try:
        host, port = meter.server.address
        status, out, _ = run(
            capsys, "deliver", *admin, "--meter", f"{host}:{port}", meter_id(0).hex()
        )
        assert status == 0 and "loaded message 1" in out
        assert meter.store.head_end_key(HEAD_ENDS[0]) == ks
    finally:
        meter.server.close()

    status, out, _ = run(capsys, "list", *admin, "assignments", "--json")
    rows = json.loads(out)
    assert [(r["meter_id"], r["sequence"], r["state"]) for r in rows] == [
        (meter_id(0).hex().upper(), 1, "active")
    ]
    status, out, _ = run(capsys, "list", *admin, "meters")
    assert out.splitlines()[0].split() == ["METER_ID", "STATUS", "LAST_SEQUENCE"]
    assert len(out.splitlines()) == 3

    status, out, _ = run(capsys, "revoke", *admin, "--head-end", HEAD_ENDS[0].hex())
    assert status == 0 and "sequence 2" in out
    status, out, _ = run(capsys, "rotate-key", *admin, "--public-key-out", str(tmp / "new.pem"))
    assert status == 0 and "retired" in out
    assert (tmp / "new.pem").read_bytes() != (tmp / "centre.pem").read_bytes()

    status, out, _ = run(capsys, "list", *admin, "audit", "--json")
    operations = [(e["operation"], e["decision"]) for e in json.loads(out)]
    for expected in [
        ("initialise", "accepted"),
        ("import-manifest", "accepted"),
        ("register-head-end", "accepted"),
        ("associate", "accepted"),
        ("assign", "accepted"),
        ("assign", "rejected"),
        ("revoke-head-end", "accepted"),
        ("rotate-signing-key", "accepted"),
    ]:
        assert expected in operations

    # A revoked head-end cannot open the channel any more.
    status, _, err = run(
        capsys, "assign", "--credentials", str(channel), enroll(1, HEAD_ENDS[0], 1, at=_now()).hex()
    )
    assert status == 1 and "rejected the association" in err


def test_errors_say_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MASTER_KEY_ENV, raising=False)
    db = str(tmp_path / "x.sqlite3")
    status, _, err = run(capsys, "list", "--db", db)
    assert status == 1 and "cosemcast supervision init" in err
    status, _, err = run(capsys, "init", "--db", db, "--centre-id", "5355504500000001")
    assert status == 1 and "--master-key-file" in err and MASTER_KEY_ENV in err
    monkeypatch.setenv(MASTER_KEY_ENV, "00" * 32)
    assert run(capsys, "init", "--db", db, "--centre-id", "5355504500000001")[0] == 0
    monkeypatch.setenv(MASTER_KEY_ENV, "11" * 32)
    status, _, err = run(capsys, "list", "--db", db)
    assert status == 1 and "master key does not open" in err
    with pytest.raises(SystemExit):
        main(["supervision", "init", "--db", db, "--centre-id", "1234"])
    assert "16 hex digits" in capsys.readouterr().err


def test_help_reads_like_a_tool(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["supervision", "--help"])
    out = capsys.readouterr().out
    for word in ("init", "import", "head-end", "serve", "assign", "deliver", "examples"):
        assert word in out


def _now() -> int:
    import time

    return int(time.time())


def _public_key(path: Path):  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_public_key(path.read_bytes())
