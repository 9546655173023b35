"""``cosemcast read`` as a user runs it: a subprocess against the assembled meter of
``test_client_support`` (threads of this process) on 127.0.0.1; text and ``--json`` output,
set/action, progress on stderr, and the documented exit statuses."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from test_client_support import (
    AK,
    CLIENT_TITLE,
    EK,
    ENERGY_RAW,
    METER_TITLE,
    NOTE,
    PROFILE_ROWS,
    SERIAL_NUMBER,
    TestMeter,
    profile_row,
)


@pytest.fixture
def meter(tmp_path: Path) -> Iterator[TestMeter]:
    instance = TestMeter(tmp_path / "meter")
    yield instance
    instance.close()


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COSEMCAST_STATE_DIR=str(tmp_path / "state"))
    return subprocess.run(
        [sys.executable, "-m", "cosemcast", "read", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def read_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def management_keys(tmp_path: Path, extra: str = "") -> str:
    path = tmp_path / "management.toml"
    path.write_text(
        f"""
[client]
client_sap = 1
auth = "hls-gmac"
system_title = "{CLIENT_TITLE.hex()}"
server_system_title = "{METER_TITLE.hex()}"
{extra}

[[keys]]
system_title = "{CLIENT_TITLE.hex()}"
ek = "{EK.hex()}"
ak = "{AK.hex()}"
"""
    )
    return str(path)


def test_a_register_in_text_and_json(meter: TestMeter, tmp_path: Path) -> None:
    where = f"127.0.0.1:{meter.tcp_port}"
    text = cli(tmp_path, "--tcp", where, "1-0:1.8.0.255")
    assert text.returncode == 0, text.stderr
    assert "value:  12345678.9 Wh" in text.stdout
    assert "scaler: -1" in text.stdout and "unit:   Wh (30)" in text.stdout
    document = read_json(cli(tmp_path, "--tcp", where, "1-0:1.8.0.255", "--json"))
    assert document["value"] == 12345678.9 and document["raw"] == ENERGY_RAW
    assert (document["scaler"], document["unit"], document["unit_symbol"]) == (-1, 30, "Wh")


def test_udp_several_codes_and_attributes(meter: TestMeter, tmp_path: Path) -> None:
    where = f"127.0.0.1:{meter.udp_port}"
    document = read_json(cli(tmp_path, "--udp", where, "0-0:96.1.0.255", "0-0:1.0.0.255", "--json"))
    assert [d["obis"] for d in document] == ["0-0:96.1.0.255", "0-0:1.0.0.255"]
    assert document[0]["data"] == {"data_type": "visible-string", "value": SERIAL_NUMBER}
    assert document[1]["data"]["data_type"] == "octet-string" and "date_time" in document[1]["data"]
    scaler = read_json(cli(tmp_path, "--udp", where, "1-0:1.8.0.255", "--attribute", "3", "--json"))
    assert scaler["data"]["data_type"] == "structure"


def test_a_profile_with_a_time_range(meter: TestMeter, tmp_path: Path) -> None:
    where = f"127.0.0.1:{meter.tcp_port}"
    window = ("--from", "2026-11-24T00:00+00:00", "--to", "2026-11-24T01:00+00:00")
    text = cli(tmp_path, "--tcp", where, "1-0:99.1.0.255", *window)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == "1-0:99.1.0.255: 5 rows"
    assert lines[1].split() == ["8/0-0:1.0.0.255/2", "3/1-0:1.8.0.255/2"]
    assert lines[2].split() == ["2026-11-24T00:00:00+00:00", str(profile_row(0)[1])]
    document = read_json(cli(tmp_path, "--tcp", where, "1-0:99.1.0.255", *window, "--json"))
    assert document["rows"][4] == ["2026-11-24T01:00:00+00:00", ENERGY_RAW - 1000 * 92]


def test_a_long_profile_shows_progress_on_stderr(meter: TestMeter, tmp_path: Path) -> None:
    keys = management_keys(tmp_path, "max_pdu_size = 128")
    where = f"127.0.0.1:{meter.tcp_port}"
    result = cli(tmp_path, "--tcp", where, "--keys", keys, "1-0:99.1.0.255", "--json")
    document = read_json(result)
    assert len(document["rows"]) == PROFILE_ROWS
    assert "blocks" in result.stderr and result.stderr.rstrip().endswith("done")
    quiet = cli(tmp_path, "--tcp", where, "--keys", keys, "1-0:99.1.0.255", "--no-progress")
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_the_object_list(meter: TestMeter, tmp_path: Path) -> None:
    where = f"127.0.0.1:{meter.tcp_port}"
    text = cli(tmp_path, "--tcp", where, "--list")
    assert text.returncode == 0, text.stderr
    assert any(line.split()[:3] == ["3", "0", "1-0:1.8.0.255"] for line in text.stdout.splitlines())
    listed = read_json(cli(tmp_path, "--tcp", where, "--list", "--json"))
    energy = next(e for e in listed if e["logical_name"] == "1-0:1.8.0.255")
    assert energy["class_id"] == 3 and energy["attributes"]["2"] == "r"


def test_set_and_action_with_hls_gmac(meter: TestMeter, tmp_path: Path) -> None:
    keys = management_keys(tmp_path)
    where = f"127.0.0.1:{meter.tcp_port}"
    done = cli(tmp_path, "--tcp", where, "--keys", keys, "--set", f"{NOTE}:2=octets:C0FFEE")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{NOTE} attribute 2: written"
    note = read_json(cli(tmp_path, "--tcp", where, "--keys", keys, str(NOTE), "--json"))
    assert note["data"]["value"] == "C0FFEE"
    reset = cli(
        tmp_path, "--tcp", where, "--keys", keys, "--action", "1-0:1.8.0.255:1=i8:0", "--json"
    )
    assert read_json(reset) == {"obis": "1-0:1.8.0.255", "method": 1, "result": "success"}
    energy = read_json(cli(tmp_path, "--tcp", where, "--keys", keys, "1-0:1.8.0.255", "--json"))
    assert energy["raw"] == 0


def test_exit_statuses_and_messages(meter: TestMeter, tmp_path: Path) -> None:
    where = f"127.0.0.1:{meter.tcp_port}"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{probe.getsockname()[1]}"
    refused = cli(tmp_path, "--tcp", closed, "1-0:1.8.0.255")
    assert refused.returncode == 5
    assert "cosemcast meter serve" in refused.stderr and "Traceback" not in refused.stderr
    wrong = cli(tmp_path, "--tcp", where, "--client-sap", "17", "--auth", "lls",
                "--password", "not-it", "1-0:1.8.0.255")  # fmt: skip
    assert wrong.returncode == 3 and "not-it" not in wrong.stderr + wrong.stdout
    assert "AUTHENTICATION_FAILURE" in wrong.stderr
    missing = cli(tmp_path, "--tcp", where, "1-0:1.9.0.255")
    assert missing.returncode == 4 and "object-undefined" in missing.stderr
    denied = cli(tmp_path, "--tcp", where, "--set", f"{NOTE}:2=octets:00")
    assert denied.returncode == 4 and "read-write-denied" in denied.stderr
    for args in (
        ("1-0:1.8",),
        ("--set", f"{NOTE}:2=42"),
        ("--set", f"{NOTE}:2=u8:300"),
        ("1-0:1.8.0.255", "--list"),
        ("--from", "2026-01-01"),
    ):
        usage = cli(tmp_path, "--tcp", where, *args)
        assert usage.returncode == 2, (args, usage.stderr)
        assert usage.stderr.startswith("error: ") and "Traceback" not in usage.stderr
    no_keys = cli(tmp_path, "--tcp", where, "--auth", "hls-gmac", "1-0:1.8.0.255")
    assert no_keys.returncode == 1 and "system title" in no_keys.stderr


def test_meter_reset_under_the_same_keys_is_refused_as_a_replay(tmp_path: Path) -> None:
    # Two software meters with the same keys and system title: the second starts from a fresh
    # state file, so its invocation counters restart. The client's counter file remembers the
    # first meter's counters and must refuse the second (nonce reuse under one key), with a
    # message about counters rather than keys.
    from cosemcast.meter import SoftwareMeter

    keys = tmp_path / "management.toml"
    keys.write_text(
        '[client]\nclient_sap = 1\nauth = "hls-gmac"\nsystem_title = "4142434445464748"\n'
        '[[keys]]\nsystem_title = "4142434445464748"\n'
        'ek = "000102030405060708090A0B0C0D0E0F"\nak = "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"\n'
    )
    counters = tmp_path / "client-counters.sqlite3"
    outcomes = []
    for state in ("first.sqlite3", "second.sqlite3"):
        with SoftwareMeter.from_config(None, tmp_path / state) as meter:
            server = meter.serve_tcp("127.0.0.1", 0)
            host, port = server.address[:2]
            done = subprocess.run(
                [sys.executable, "-m", "cosemcast", "read", "--tcp", f"{host}:{port}",
                 "--keys", str(keys), "--counters", str(counters), "1-0:1.8.0.255"],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            server.close()
        outcomes.append(done)
    assert outcomes[0].returncode == 0, outcomes[0].stderr
    assert outcomes[1].returncode == 3
    assert "went backwards" in outcomes[1].stderr
    assert "Traceback" not in outcomes[1].stderr
