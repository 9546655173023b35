"""Worked examples of specs/supervision.md §9, checked byte for byte, and rebuilt independently.

Every vector here is [DERIVED] (there is no published one: the construction is ours). To make
them worth more than a regression check, each is also rebuilt from the spec's byte layout with
independent code: F with ``hmac``/``hashlib`` written out, the bodies with ``struct``, the
signature with ``cryptography``'s ECDSA directly (not ``cosemcast.security.ecdsa``), AES-GCM with
the one-shot ``AESGCM`` and an explicit 12-byte truncation (not ``cosemcast.security.gcm``). The
centre's key and the check of deterministic signing come from RFC 6979 §A.2.5 (published).

The other ``test_supervision_*`` files import the inputs from here.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cosemcast.security.ecdsa import sign_raw
from cosemcast.security.kdf import public_key_to_xy
from cosemcast.supervision import (
    EnrollmentRequest,
    InitAction,
    InitMessage,
    derive_enrollment_key,
    derive_ki,
    derive_ks,
)

SPEC = Path(__file__).resolve().parent.parent / "specs" / "supervision.md"

# --- inputs of the worked examples (specs §9.1) ---------------------------------------------------

KT = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
METER_ID = bytes.fromhex("4D414E0100BC614E")
HEAD_END_ID = bytes.fromhex("48454E4400000001")
CENTRE_ID = bytes.fromhex("5355504500000001")
I0 = bytes.fromhex("F0E1D2C3B4A5968778695A4B3C2D1E0F")
NOT_BEFORE = 1_767_225_600  # 2026-01-01T00:00:00Z
NOT_AFTER = NOT_BEFORE + 86_400
REQUESTED_AT = NOT_BEFORE - 600
# RFC 6979 §A.2.5: the P-256 private key x and its public key U = (Ux, Uy).
CENTRE_D = 0xC9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721
CENTRE_PUBLIC_XY = bytes.fromhex(
    "60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6"
    "7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299"
)


def centre_key() -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(CENTRE_D, ec.SECP256R1())


def example_message(**changes: object) -> InitMessage:
    fields: dict[str, object] = {
        "meter_id": METER_ID,
        "head_end_id": HEAD_END_ID,
        "i0": I0,
        "not_before": NOT_BEFORE,
        "not_after": NOT_AFTER,
        "sequence": 1,
        "action": InitAction.ASSIGN,
    }
    fields.update(changes)
    return InitMessage(**fields)  # type: ignore[arg-type]


def example_enrollment() -> EnrollmentRequest:
    return EnrollmentRequest(METER_ID, HEAD_END_ID, REQUESTED_AT, 1, InitAction.ASSIGN)


# --- expected bytes ([DERIVED], specs §9; pinned below against the spec text) ---------------------

KS = bytes.fromhex("4DA3703DA3B6812D7C21189F96F8A992")
KI = bytes.fromhex("1020ED3608D0F84B81B7E836A2F49FB4")
KE = bytes.fromhex("66245C02493B30619FA8682553605CE9")
INIT_BODY = bytes.fromhex(
    "02081601160109084D414E0100BC614E090848454E44000000010910F0E1D2C3B4A5968778695A4B3C2D1E0F"
    "15000000006955B900150000000069570A800600000001"
)
INIT_SIGNING = bytes.fromhex(
    "DF00085355504500000001084D414E0100BC614E00004302081601160109084D414E0100BC614E090848454E"
    "44000000010910F0E1D2C3B4A5968778695A4B3C2D1E0F15000000006955B900150000000069570A80060000"
    "000140704009D986EC88B22FAC21BFFD3509CEDBF06559DC96D6C07869B7E1C4877BAC38DF6130153EAFA373"
    "D5C88DC91635F308865C17D6140261526BC17513BE1497"
)
INIT_SEALED = bytes.fromhex(
    "DD00085355504500000001084D414E0100BC614E00000081AC3100000001B3A365DE01F28D60B65EA7CBB8A6"
    "E19022AE0B5153CD23E0B7CD610BADF1E2215779E8522EF01BD3CFE175DA60705CC8B08BDC1CC4D7861425E5"
    "57E54CFEEF0906D48E44BD72D3DB13ECB2B0A38419BC609AA0618C9EBDE2FF65EEDE46246F166996AC1A7D6C"
    "FE8CDCE23BF7F588A3F302C5999D35A25977E5283B5752010E165AF26CADC5711CD4B72FE16A144808ABC43F"
    "E16C6F94EFDE98E0A32190994E01F7DAA93ECA402C"
)
ENROLLMENT_BODY = bytes.fromhex(
    "02061602160109084D414E0100BC614E090848454E440000000115000000006955B6A80600000001"
)
ENROLLMENT_SEALED = bytes.fromhex(
    "DD00084D414E0100BC614E0848454E440000000100000039110000000102061602160109084D414E0100BC61"
    "4E090848454E440000000115000000006955B6A80600000001FDDC6FC5A2A06FE61C09E7C9"
)

# --- independent implementations (from the spec's layouts, not from cosemcast) --------------------


def independent_f(key: bytes, label: bytes, context: bytes, length: int = 16) -> bytes:
    """SP 800-108r1 §4.1, HMAC-SHA-256, r = 32, fixed input = label ‖ 00 ‖ context ‖ [L]_32."""
    out = b""
    counter = 1
    while len(out) < length:
        fixed = label + b"\x00" + context + struct.pack(">I", 8 * length)
        out += hmac.new(key, struct.pack(">I", counter) + fixed, hashlib.sha256).digest()
        counter += 1
    return out[:length]


def octets(value: bytes) -> bytes:
    assert len(value) < 0x80
    return bytes((len(value),)) + value


def independent_init_body(
    meter: bytes,
    head_end: bytes,
    i0: bytes,
    not_before: int,
    not_after: int,
    sequence: int,
    action: int = 1,
) -> bytes:
    return (
        bytes((0x02, 0x08, 0x16, 0x01, 0x16, action))
        + b"\x09"
        + octets(meter)
        + b"\x09"
        + octets(head_end)
        + b"\x09"
        + octets(i0)
        + b"\x15"
        + struct.pack(">Q", not_before)
        + b"\x15"
        + struct.pack(">Q", not_after)
        + b"\x06"
        + struct.pack(">I", sequence)
    )


def independent_signature(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    der = key.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def header(originator: bytes, recipient: bytes) -> bytes:
    """transaction-id, originator, recipient, date-time, other-information (all but two empty)."""
    return b"\x00" + octets(originator) + octets(recipient) + b"\x00\x00"


def axdr_length(n: int) -> bytes:
    return bytes((n,)) if n < 0x80 else bytes((0x81, n)) if n < 0x100 else b"\x82" + n.to_bytes(2)


def independent_seal(
    body: bytes,
    *,
    key: ec.EllipticCurvePrivateKey,
    ki: bytes,
    centre: bytes,
    recipient: bytes,
    sequence: int,
) -> bytes:
    signed_data = header(centre, recipient) + axdr_length(len(body)) + body
    signing = b"\xdf" + signed_data + b"\x40" + independent_signature(key, signed_data)
    hdr = header(centre, recipient)
    iv = centre + struct.pack(">I", sequence)
    full = AESGCM(ki).encrypt(iv, signing, b"\x31" + hdr)
    content = b"\x31" + struct.pack(">I", sequence) + full[:-16] + full[-16:-4]
    return b"\xdd" + hdr + b"\x00" + axdr_length(len(content)) + content


def independent_enrollment(
    body: bytes, *, ke: bytes, meter: bytes, head_end: bytes, counter: int
) -> bytes:
    hdr = header(meter, head_end)
    iv = meter + struct.pack(">I", counter)
    tag = AESGCM(ke).encrypt(iv, b"", b"\x11" + hdr + body)[:12]
    content = b"\x11" + struct.pack(">I", counter) + body + tag
    return b"\xdd" + hdr + b"\x00" + axdr_length(len(content)) + content


# --- the tests ------------------------------------------------------------------------------------


def test_rfc6979_a25_deterministic_signature() -> None:
    # RFC 6979 §A.2.5, P-256, SHA-256, message "sample": published r and s.
    signature = sign_raw(centre_key(), b"sample", deterministic=True)
    assert signature == bytes.fromhex(
        "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716"
        "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8"
    )
    assert public_key_to_xy(centre_key().public_key()) == CENTRE_PUBLIC_XY


def test_derived_keys() -> None:
    assert derive_ks(KT, meter_id=METER_ID, head_end_id=HEAD_END_ID, i0=I0) == KS
    assert derive_ki(KT, meter_id=METER_ID) == KI
    assert derive_enrollment_key(KT, meter_id=METER_ID) == KE


def test_derived_keys_independently() -> None:
    assert independent_f(KT, b"cosemcast Ks", METER_ID + HEAD_END_ID + I0) == KS
    assert independent_f(KT, b"cosemcast Ki", METER_ID) == KI
    assert independent_f(KT, b"cosemcast Ke", METER_ID) == KE


def test_init_message_worked_example() -> None:
    message = example_message()
    assert message.encode_body() == INIT_BODY
    assert message.seal(centre_key(), KI, centre_id=CENTRE_ID) == INIT_SEALED


def test_init_message_independently() -> None:
    body = independent_init_body(METER_ID, HEAD_END_ID, I0, NOT_BEFORE, NOT_AFTER, 1)
    assert body == INIT_BODY
    sealed = independent_seal(
        body, key=centre_key(), ki=KI, centre=CENTRE_ID, recipient=METER_ID, sequence=1
    )
    assert sealed == INIT_SEALED
    # The inner general-signing APDU: decrypt with the raw AES-GCM keystream.
    iv = CENTRE_ID + struct.pack(">I", 1)
    text = INIT_SEALED[-(len(INIT_SIGNING) + 12) : -12]
    keystream_xor = AESGCM(KI).encrypt(iv, text, None)[: len(text)]
    assert keystream_xor == INIT_SIGNING


def test_enrollment_worked_example() -> None:
    request = example_enrollment()
    assert request.encode_body() == ENROLLMENT_BODY
    assert request.seal(KT) == ENROLLMENT_SEALED


def test_enrollment_independently() -> None:
    body = (
        bytes((0x02, 0x06, 0x16, 0x02, 0x16, 0x01))
        + b"\x09"
        + octets(METER_ID)
        + b"\x09"
        + octets(HEAD_END_ID)
        + b"\x15"
        + struct.pack(">Q", REQUESTED_AT)
        + b"\x06"
        + struct.pack(">I", 1)
    )
    assert body == ENROLLMENT_BODY
    ke = independent_f(KT, b"cosemcast Ke", METER_ID)
    sealed = independent_enrollment(body, ke=ke, meter=METER_ID, head_end=HEAD_END_ID, counter=1)
    assert sealed == ENROLLMENT_SEALED


def spec_vectors() -> dict[str, bytes]:
    text = SPEC.read_text(encoding="utf-8")
    found = re.findall(r"<!-- vector: ([a-z0-9_-]+) -->\s*```\w*\n(.*?)```", text, re.S)
    return {name: bytes.fromhex("".join(block.split())) for name, block in found}


EXPECTED = {
    "kt": KT,
    "meter-id": METER_ID,
    "head-end-id": HEAD_END_ID,
    "centre-id": CENTRE_ID,
    "i0": I0,
    "centre-public-key": CENTRE_PUBLIC_XY,
    "ks": KS,
    "ki": KI,
    "ke": KE,
    "init-body": INIT_BODY,
    "init-signing": INIT_SIGNING,
    "init-sealed": INIT_SEALED,
    "enrollment-body": ENROLLMENT_BODY,
    "enrollment-sealed": ENROLLMENT_SEALED,
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_spec_shows_the_same_bytes(name: str) -> None:
    vectors = spec_vectors()
    assert name in vectors, f"specs/supervision.md has no vector block {name!r}"
    assert vectors[name] == EXPECTED[name]


def test_tests_named_in_the_spec_exist() -> None:
    text = SPEC.read_text(encoding="utf-8")
    named = set(re.findall(r"`(test_[a-z0-9_]+)(?=[`\[])", text))
    tests = SPEC.parent.parent / "tests"
    files = [*tests.glob("test_supervision_*.py"), *tests.glob("test_meter_assignment*.py")]
    sources = "".join(p.read_text(encoding="utf-8") for p in files)
    missing = sorted(name for name in named if f"def {name}(" not in sources)
    assert named and missing == []
