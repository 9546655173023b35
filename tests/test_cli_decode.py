"""``cosemcast decode``: run as a real program (console script and ``python -m cosemcast``).

Vectors (brief = ../shared/reference/DLMS_BRIEF.md):
* GET-Request / GET-Response: brief §10.3 (DC tests/test_xdlms/test_get.py);
* UDP wrapper push: brief §10.6 (DC tests/test_udp_message.py), keys EK = AK =
  "MYDUMMYGLOBALKEY", system title 2F19229199164103 (brief §10.5, DC
  tests/test_general_global_cipher.py);
* HDLC frames: brief §10.1 a, c (DC tests/test_hdlc), h (JD FcsCalcTest), m [DERIVED];
* glo-get-request: brief §5.3 (GB Table 40 via DC tests/test_security.py);
* LLS AARQ: brief §10.2 (DC tests/test_asce/test_aarq.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosemcast.axdr import Data, DataType, LongUnsigned, OctetString, Structure
from cosemcast.cli.main import main
from cosemcast.cli.render import render_tree, to_jsonable
from cosemcast.link.hdlc import FrameType, HdlcAddress, HdlcFrame, LlcHeader

GET_REQUEST = "C001C1000100002B0100FF0200"
GET_RESPONSE = "C401C10006 00001391"
PUSH = (
    "DB082F192291991641033B30000001E5025CE9D2271FD78BE8C204211A916A9D7F587E0A7A814CADEA89E959"
    "3F01F92EA8C087B5BDFDEFEAB6BECF282DFE49C08F5BE6DC8400"
)
PUSH_PLAIN_BODY = "125A8591360000000049000000110000000A5A8513D014800000000D0000000A0100"
UDP = "0001000100010046" + PUSH
SNRM = "7E A0 07 03 21 93 0F 01 7E"
UA_WITH_PARAMETERS = "7EA01F21022373E6C781801205019A06019A070400000001080400000001CCA27E"
JD_GET_CLOCK = "7E A0199575546835E6E600C0018100080000010000FF0100 0DFD 7E"
GB_GLO_GET = "C81E3001234567411312FF935A47566827C467BC7D825C3BE4A77C3FCC056B6B"
GB_PLAIN = "C0010000080000010000FF0200"
HDLC_GLO_GET = (
    "7EA02D02232132FB96E6E600C81E3001234567411312FF935A47566827C467BC7D825C3BE4A77C3FCC056B6BC5237E"
)
LLS_AARQ = (
    "6036A1090607608574050801018A0207808B0760857405080201AC0A80083132333435363738BE10040E0100"
    "0000065F1F0400007E1F04B0"
)
GB_KEYS = """\
[[keys]]
system_title = "4D4D4D0000BC614E"
ek = "000102030405060708090A0B0C0D0E0F"
ak = "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"
"""


def cosemcast(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cosemcast", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def gb_keys(tmp_path: Path) -> Path:
    path = tmp_path / "keys.toml"
    path.write_text(GB_KEYS)
    return path


def test_console_script() -> None:
    script = shutil.which("cosemcast") or str(Path(sys.executable).parent / "cosemcast")
    if not Path(script).exists():
        pytest.skip("the cosemcast console script is not installed")
    done = subprocess.run(
        [script, "decode", GET_REQUEST], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "GetRequestNormal" in done.stdout


def test_bare_apdu() -> None:
    done = cosemcast("decode", GET_REQUEST)
    assert done.returncode == 0, done.stderr
    assert "GetRequestNormal" in done.stdout
    assert "0-0:43.1.0.255" in done.stdout
    assert done.stderr == ""


def test_bare_apdu_with_colons_and_data_value() -> None:
    done = cosemcast(
        "decode", ":".join(GET_RESPONSE.replace(" ", "")[i : i + 2] for i in range(0, 18, 2))
    )
    assert done.returncode == 0, done.stderr
    assert "double-long-unsigned 5009" in done.stdout


def test_wrapper_frame() -> None:
    done = cosemcast("decode", UDP)
    assert done.returncode == 0, done.stderr
    assert "WrapperFrame" in done.stdout
    assert "GeneralGloCiphering" in done.stdout
    assert "2F19229199164103" in done.stdout
    assert "deciphered" not in done.stdout  # no keys given


def test_hdlc_frame() -> None:
    done = cosemcast("decode", JD_GET_CLOCK)
    assert done.returncode == 0, done.stderr
    assert "HdlcFrame" in done.stdout
    assert "GetRequestNormal" in done.stdout
    assert "0-0:1.0.0.255" in done.stdout
    assert "send_sequence: 2" in done.stdout


def test_hdlc_parameters_and_several_frames() -> None:
    done = cosemcast("decode", SNRM + UA_WITH_PARAMETERS)
    assert done.returncode == 0, done.stderr
    assert "SNRM" in done.stdout and "UA" in done.stdout
    assert "max_info_length_transmit: 154" in done.stdout


def test_stdin() -> None:
    done = cosemcast("decode", "-", stdin=SNRM + "\n")
    assert done.returncode == 0, done.stderr
    assert "SNRM" in done.stdout


def test_json_output() -> None:
    done = cosemcast("decode", "--json", UDP)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["_class"] == "WrapperFrame"
    assert document["apdu"]["_class"] == "GeneralGloCiphering"
    assert document["apdu"]["system_title"] == "2F19229199164103"
    done = cosemcast("decode", "--json", GET_RESPONSE)
    value = json.loads(done.stdout)["result"]["value"]
    assert value == {"data_type": "double-long-unsigned", "value": 5009}


def test_keys_decipher_glo_get_request(gb_keys: Path) -> None:
    done = cosemcast("decode", "--keys", str(gb_keys), GB_GLO_GET)
    assert done.returncode == 0, done.stderr
    assert "GloGetRequest" in done.stdout
    assert "deciphered" in done.stdout
    assert "GetRequestNormal" in done.stdout
    assert "0-0:1.0.0.255" in done.stdout


def test_keys_decipher_inside_hdlc_json(gb_keys: Path) -> None:
    done = cosemcast("decode", "--json", "--keys", str(gb_keys), HDLC_GLO_GET)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    inner = document["deciphered"]["apdu"]
    assert inner["_class"] == "GetRequestNormal"
    assert inner["cosem_attribute_descriptor"]["instance_id"] == "0-0:1.0.0.255"
    assert document["deciphered"]["system_title"] == "4D4D4D0000BC614E"


@pytest.mark.parametrize("position", [-1, -12, 20])
def test_flipped_tag_or_ciphertext_exit_3_without_plaintext(gb_keys: Path, position: int) -> None:
    raw = bytearray.fromhex(GB_GLO_GET)
    raw[position] ^= 0x01
    done = cosemcast("decode", "--keys", str(gb_keys), raw.hex())
    assert done.returncode == 3
    assert "authentication" in done.stderr
    assert "Traceback" not in done.stderr
    output = done.stdout + done.stderr
    assert "GetRequestNormal" not in output
    assert "0-0:1.0.0.255" not in output
    assert GB_PLAIN not in output.upper().replace(" ", "")


def test_no_key_for_system_title_exit_4(gb_keys: Path) -> None:
    done = cosemcast("decode", "--keys", str(gb_keys), PUSH)
    assert done.returncode == 4
    assert "2F19229199164103" in done.stderr
    assert "DataNotification" not in done.stdout


def test_bad_key_file_exit_1(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    path.write_text('[[keys]]\nsystem_title = "00"\n')
    done = cosemcast("decode", "--keys", str(path), GB_GLO_GET)
    assert done.returncode == 1
    assert done.stderr.startswith("error: ")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("hex_input", "offset"),
    [
        ("C001C1000100002B0100", 3),  # truncated GET-Request
        (GET_REQUEST + "FF", 13),  # trailing byte
        ("7EA00802232193BD657E", 7),  # bad FCS
        ("0001000100010047" + PUSH, 78),  # wrapper length one too long
        (
            "7EA02C02232110AF9FE6E600601DA109060760857405080101BE10040E01000000065F1F0400001E1DFFFFC5E47E"[
                :-4
            ]
            + "7E",
            None,
        ),
        ("DB082F1922", None),  # truncated general-glo-ciphering
    ],
)
def test_malformed_exit_2_single_line(hex_input: str, offset: int | None) -> None:
    done = cosemcast("decode", hex_input)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: at offset ")
    assert "offset" in lines[0]
    if offset is not None:
        assert lines[0].startswith(f"error: at offset {offset}:")
    assert done.stdout == ""


@pytest.mark.parametrize("hex_input", ["C0G1", "C01", ""])
def test_bad_hex_exit_2(hex_input: str) -> None:
    done = cosemcast("decode", hex_input)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_usage_errors_exit_2() -> None:
    assert cosemcast("decode").returncode == 2
    assert cosemcast("decode", "--example", "C0").returncode == 2
    done = cosemcast("decode", "--no-such-option", "C0")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


def test_example() -> None:
    done = cosemcast("decode", "--example")
    assert done.returncode == 0, done.stderr
    assert "GeneralGloCiphering" in done.stdout
    assert "DataNotification" in done.stdout
    assert PUSH_PLAIN_BODY in done.stdout.replace("\n", "").replace(" ", "")


def test_example_json() -> None:
    done = cosemcast("decode", "--example", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    body = document["deciphered"]["apdu"]["notification_body"]
    assert body == {"data_type": "octet-string", "value": PUSH_PLAIN_BODY}


def test_help() -> None:
    done = cosemcast("--help")
    assert done.returncode == 0
    assert "decode" in done.stdout
    assert "examples:" in done.stdout
    done = cosemcast("decode", "--help")
    assert done.returncode == 0
    for option in ("--json", "--keys", "--example", "examples:", "exit status"):
        assert option in done.stdout


def test_version() -> None:
    done = cosemcast("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("cosemcast ")


def test_secrets_are_hidden() -> None:
    # The LLS password "12345678" (31..38) of brief §10.2 must not be shown decoded.
    done = cosemcast("decode", LLS_AARQ)
    assert done.returncode == 0, done.stderr
    assert "calling_authentication_value: <hidden>" in done.stdout
    assert "3132333435363738" not in done.stdout
    assert "12345678" not in done.stdout
    document = json.loads(cosemcast("decode", "--json", LLS_AARQ).stdout)
    assert document["calling_authentication_value"] == "<hidden>"


# In-process: arbitrary input never escapes as an exception.


def _run_main(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(args)
    return status, out.getvalue(), err.getvalue()


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        st.binary(min_size=1, max_size=60),
        st.sampled_from([GET_REQUEST, UDP, HDLC_GLO_GET, LLS_AARQ, UA_WITH_PARAMETERS]).flatmap(
            lambda h: st.tuples(st.integers(0, len(h) // 2 - 1), st.integers(1, 255)).map(
                lambda t: (
                    bytes.fromhex(h)[: t[0]]
                    + bytes((bytes.fromhex(h)[t[0]] ^ t[1],))
                    + bytes.fromhex(h)[t[0] + 1 :]
                )
            )
        ),
    )
)
def test_arbitrary_input_only_clean_errors(data: bytes) -> None:
    status, _out, err = _run_main(["decode", data.hex()])
    assert status in (0, 2)
    if status == 2:
        assert len(err.strip().splitlines()) == 1
        assert err.startswith("error: ")


def test_segmented_hdlc_frames_are_reassembled() -> None:
    push = bytes.fromhex(PUSH)
    client, server = HdlcAddress.client(16), HdlcAddress.server(1, 17)
    first = HdlcFrame(
        FrameType.UI, client, server, segmented=True, llc=LlcHeader.RESPONSE, information=push[:30]
    )
    last = HdlcFrame(FrameType.UI, client, server, information=push[30:])
    done = cosemcast("decode", (first.encode() + last.encode()).hex())
    assert done.returncode == 0, done.stderr
    assert "segment 1 (30 bytes)" in done.stdout
    assert "reassembled_apdu: GeneralGloCiphering" in done.stdout
    # A damaged reassembled APDU is reported without a misleading input offset.
    bad = HdlcFrame(FrameType.UI, client, server, information=push[30:-1])
    done = cosemcast("decode", (first.encode() + bad.encode()).hex())
    assert done.returncode == 2
    assert done.stderr.startswith("error: in the reassembled APDU: at offset ")


def test_keys_decipher_glo_initiate_in_aarq(gb_keys: Path) -> None:
    # brief §10.2: AARQ with LN-ciphering context and a glo-initiate (DC
    # test_parse_ciphered_low_security2); the initiate carries dedicated key 0011..FF (§5.3).
    aarq = (
        "6066A109060760857405080103A60A04084D4D4D0000BC614E8A0207808B0760857405080201AC0A8008"
        "3132333435363738BE34043221303001234567801302FF8A7874133D414CED25B42534D28DB004772060"
        "6B175BD52211BE6841DB204D39EE6FDB8E356855"
    )
    done = cosemcast("decode", "--keys", str(gb_keys), aarq)
    assert done.returncode == 0, done.stderr
    assert "deciphered_user_information: DecipheredView" in done.stdout
    assert "InitiateRequest" in done.stdout
    assert "dedicated_key: <hidden>" in done.stdout
    assert "00112233445566778899AABBCCDDEEFF" not in done.stdout


# The renderer is generic over dataclasses written anywhere.


@dataclasses.dataclass(frozen=True, slots=True)
class _Secretive:
    name: str
    password: bytes = dataclasses.field(repr=False)
    level: DataType = DataType.ENUM
    value: Data = None
    raw: bytes = b"ABC\x01"


def test_render_hides_repr_false_fields() -> None:
    value = _Secretive("meter", b"hunter2-secret")
    tree = render_tree(value)
    document = json.dumps(to_jsonable(value))
    for text in (tree, document):
        assert "hunter2" not in text
        assert "68756E74657232" not in text.upper()
    assert "password: <hidden>" in tree
    document_dict = to_jsonable(value)
    assert isinstance(document_dict, dict)
    assert document_dict["password"] == "<hidden>"


def test_render_names_enums_data_and_octet_strings() -> None:
    value = _Secretive(
        "x",
        b"",
        value=Structure(
            [OctetString(bytes.fromhex("07E50118FF0E303950FFC400")), LongUnsigned(7), None]
        ),
    )
    tree = render_tree(value)
    assert "level: ENUM (22)" in tree
    # brief §9.3 vector (DC test_set.py): 2021-01-24 14:48:57.80, deviation -60 = UTC+01:00.
    assert "date-time 2021-01-24 14:48:57.80 UTC+01:00" in tree
    assert "long-unsigned 7" in tree
    assert "null-data" in tree
    assert 'raw: 41424301 (4 bytes)  "ABC."' in tree
    document = json.loads(json.dumps(to_jsonable(value)))
    assert document["value"]["value"][1] == {"data_type": "long-unsigned", "value": 7}
