"""The worked examples of specs/shared-payload.md §12, byte for byte.

Every ``hex`` block of the spec's §12 is rebuilt here from the inputs listed there and compared
with the spec text itself, so code and spec cannot drift apart. The examples are [DERIVED]
(built with this project's code, brief §0); two anchors tie them to the brief's own derived
vectors (brief §10.8 wrapped key, brief §10.9 Q_eU and Z), and every block is re-verified with
``cryptography`` primitives directly (AESGCM with its 16-byte tag, aes_key_unwrap,
ConcatKDFHash, a hand-written SP 800-108 HMAC KDF), independently of cosemcast's GCM,
general-ciphering and KDF code.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.general import GeneralCiphering
from cosemcast.security import kdf
from cosemcast.security.general_protection import RecipientKeys, decipher_general
from cosemcast.sharedpayload import (
    AckBody,
    AckKind,
    AckRequest,
    ControlBody,
    HeadEndAssignment,
    HeadEndOpener,
    KpId,
    MemoryCounterSource,
    MemoryPayloadKeyStore,
    PayloadKey,
    PayloadSealer,
    RenewalPolicy,
    StaticMeterCredentials,
    seal_ack,
    seal_control,
    seal_payload,
)

SPEC = Path(__file__).resolve().parents[1] / "specs" / "shared-payload.md"

# Inputs of specs/shared-payload.md §12.
METER = bytes.fromhex("4D4D4D0000BC614E")
HE_A = bytes.fromhex("4D4D4D0000000001")
HE_B = bytes.fromhex("4D4D4D0000000002")
HE_C = bytes.fromhex("4D4D4D0000000003")
KS_A = bytes.fromhex("000102030405060708090A0B0C0D0E0F")  # brief §10.8 KEK
KS_B = bytes.fromhex("202122232425262728292A2B2C2D2E2F")
KP = bytes.fromhex("101112131415161718191A1B1C1D1E1F")  # brief §10.8 payload key
D_E = int("11" * 32, 16)  # brief §10.9 d_eU
D_C = int("22" * 32, 16)  # brief §10.9 d_sV
D_M = int("33" * 32, 16)
NOW = 1_700_000_000
NOT_AFTER = NOW + 86_400 + 3_600
# brief §10.8 plaintext: DATA-NOTIFICATION, OBIS 1.0.1.8.0.255, value 123456.
READINGS = bytes.fromhex("0F0000000100020209060100010800FF060001E240")
KP_ID = KpId(1, 1)

# brief §10.8 [DERIVED]: Wrap(000102…0F, 101112…1F).
BRIEF_WRAPPED_KP = bytes.fromhex("FB8CBD940CD80857285ED544D551141AD7D56FDC5F9A0170")
# brief §10.9 [DERIVED]: Q_eU (without 04) and Z for d_eU = 11…11, d_sV = 22…22.
BRIEF_Q_EU = bytes.fromhex(
    "0217E617F0B6443928278F96999E69A23A4F2C152BDF6D6CDF66E5B80282D4ED"
    "194A7DEBCB97712D2DDA3CA85AA8765A56F45FC758599652F2897C65306E5794"
)
BRIEF_Z = bytes.fromhex("CCFC261F58193C98CA4AD4A53BBAC6F0EE29BC4D48438090446908622CA79AF6")


def spec_vectors() -> dict[str, bytes]:
    text = SPEC.read_text(encoding="utf-8")
    blocks = re.findall(r"```hex\n# ([\w-]+)\n(.*?)```", text, flags=re.DOTALL)
    return {name: bytes.fromhex("".join(body.split())) for name, body in blocks}


def _private(scalar: int) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(scalar, ec.SECP256R1())


class ScriptedRng:
    """Returns the given byte strings in order; each call must ask for exactly the next one."""

    def __init__(self, *chunks: bytes) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)

    def __call__(self, n: int) -> bytes:
        chunk = next(self._chunks)
        assert len(chunk) == n
        return chunk


KEY = PayloadKey(KP_ID, KP, NOW, NOT_AFTER, 4)
BODY = ControlBody(KP_ID, NOW, NOT_AFTER, 4, AckRequest.CONTROL)


def build_examples() -> dict[str, bytes]:
    """Every example of the spec, from the spec's inputs, with the pure sealing functions."""
    c_priv, m_priv = _private(D_C), _private(D_M)
    sealed_a = seal_control(
        KEY,
        BODY,
        meter_system_title=METER,
        head_end=HeadEndAssignment(HE_A, shared_key=KS_A),
        invocation_counter=1,
        rng=ScriptedRng(),
    )
    sealed_c = seal_control(
        KEY,
        BODY,
        meter_system_title=METER,
        head_end=HeadEndAssignment(HE_C, agreement_public_key=c_priv.public_key()),
        invocation_counter=3,
        rng=ScriptedRng(D_E.to_bytes(32, "big")),
        meter_agreement_key=m_priv,
    )
    ephemeral = _private(D_E)
    ze = kdf.ecdh_z(ephemeral, c_priv.public_key())
    zs = kdf.ecdh_z(m_priv, c_priv.public_key())
    kek = kdf.derive_agreed_key(
        ze + zs,
        suite=1,
        algorithm=kdf.AlgorithmId.AES_WRAP_128,
        originator_system_title=METER,
        recipient_system_title=HE_C,
    )
    c1 = seal_payload(KEY, meter_system_title=METER, invocation_counter=4, notification=READINGS)
    ack = seal_ack(
        AckBody(KP_ID, 1, AckKind.CONTROL),
        ack_key=sealed_a.ack_key,
        head_end_system_title=HE_A,
        meter_system_title=METER,
    )
    return {
        "control-plaintext": BODY.to_apdu(),
        "c2-a": sealed_a.apdu.encode(),
        "qe": kdf.public_key_to_xy(ephemeral.public_key()),
        "ze": ze,
        "zs": zs,
        "kek-c": kek,
        "c2-c": sealed_c.apdu.encode(),
        "c1-aad": bytes((0x30,)) + c1.header_fields(),
        "c1": c1.encode(),
        "ka-a": sealed_a.ack_key,
        "ka-c": sealed_c.ack_key,
        "ack-a": ack.encode(),
    }


def test_spec_has_every_example() -> None:
    assert set(spec_vectors()) == set(build_examples())


@pytest.mark.parametrize("name", sorted(build_examples()))
def test_spec_example_byte_for_byte(name: str) -> None:
    # Source: specs/shared-payload.md §12 [DERIVED].
    assert build_examples()[name] == spec_vectors()[name]


def test_the_sealer_produces_the_same_bytes() -> None:
    """The stateful sealer (counter store from 1, scripted randomness) gives §12's C1 and C2s."""
    rng = ScriptedRng(KP, D_E.to_bytes(32, "big"))
    sealer = PayloadSealer(
        system_title=METER,
        head_ends=[
            HeadEndAssignment(HE_C, agreement_public_key=_private(D_C).public_key()),
            HeadEndAssignment(HE_A, shared_key=KS_A),
            HeadEndAssignment(HE_B, shared_key=KS_B),
        ],
        counters=MemoryCounterSource(first=1),
        rng=rng,
        policy=RenewalPolicy(max_age_s=86_400, delivery_window_s=3_600),
        agreement_private_key=_private(D_M),
    )
    c1 = sealer.seal_c1(READINGS, NOW)
    vectors = spec_vectors()
    assert c1.encode() == vectors["c1"]
    controls = dict(sealer.control_messages(NOW))
    assert controls[HE_A].encode() == vectors["c2-a"]
    assert controls[HE_C].encode() == vectors["c2-c"]
    assert controls[HE_B].invocation_counter == 2


# --- anchors to the brief ------------------------------------------------------------------------


def test_wrapped_key_is_the_brief_10_8_wrapped_key() -> None:
    # brief §10.8 [DERIVED]: same KEK and key, so the same RFC 3394 output.
    c2 = decode_apdu(spec_vectors()["c2-a"])
    assert isinstance(c2, GeneralCiphering)
    assert c2.key_info is not None
    assert c2.key_info.key_ciphered_data == BRIEF_WRAPPED_KP  # type: ignore[union-attr]


def test_ephemeral_point_and_ze_are_the_brief_10_9_values() -> None:
    # brief §10.9 [DERIVED]: Q_eU and Z for d_eU = 11…11, d_sV = 22…22.
    vectors = spec_vectors()
    assert vectors["qe"] == BRIEF_Q_EU
    assert vectors["ze"] == BRIEF_Z


def test_c2_keystream_matches_brief_10_8() -> None:
    # brief §10.8 seals its plaintext under the same Kp with IV = meter ST ‖ 00000001, like c2-a:
    # the two ciphertexts XOR their plaintexts to the same keystream.
    brief_plain = READINGS
    brief_cipher = bytes.fromhex("DCB591C9FA87CC8B3A457C26D6B8370802C5149647")
    c2 = decode_apdu(spec_vectors()["c2-a"])
    assert isinstance(c2, GeneralCiphering)
    ours = c2.ciphered_text[:-12]
    plain = BODY.to_apdu()
    n = len(brief_plain)
    assert bytes(a ^ b for a, b in zip(ours[:n], plain[:n], strict=True)) == bytes(
        a ^ b for a, b in zip(brief_cipher, brief_plain, strict=True)
    )


# --- independent re-verification with cryptography primitives -----------------------------------


def _gcm_check(key: bytes, iv: bytes, aad: bytes, plain: bytes, sent: bytes) -> None:
    full = AESGCM(key).encrypt(iv, plain, aad)
    assert sent == full[: len(plain)] + full[len(plain) : len(plain) + 12]


def test_c1_independently() -> None:
    vectors = spec_vectors()
    c1 = vectors["c1"]
    aad = vectors["c1-aad"]
    # AAD = SC ‖ (AK empty) ‖ 08 kp_id ‖ 08 meter ‖ 00 00 00, written out by hand.
    assert aad == bytes.fromhex("30") + b"\x08" + KP_ID.to_bytes() + b"\x08" + METER + b"\0\0\0"
    iv = METER + (4).to_bytes(4, "big")
    _gcm_check(KP, iv, aad, READINGS, c1[-(len(READINGS) + 12) :])


def test_c2_a_independently() -> None:
    c2 = decode_apdu(spec_vectors()["c2-a"])
    assert isinstance(c2, GeneralCiphering)
    assert aes_key_unwrap(KS_A, BRIEF_WRAPPED_KP) == KP
    aad = b"\x30" + c2.header_fields()
    _gcm_check(KP, METER + (1).to_bytes(4, "big"), aad, BODY.to_apdu(), c2.ciphered_text)


def test_c2_c_independently() -> None:
    vectors = spec_vectors()
    c2 = decode_apdu(vectors["c2-c"])
    assert isinstance(c2, GeneralCiphering)
    data = c2.key_info.key_ciphered_data  # type: ignore[union-attr]
    head_end = _private(D_C)
    q_e = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + data[:64])
    q_m = _private(D_M).public_key()
    z = head_end.exchange(ec.ECDH(), q_e) + head_end.exchange(ec.ECDH(), q_m)
    other_info = bytes.fromhex("60857405080302") + METER + HE_C  # AlgorithmID AES-WRAP-128
    kek = ConcatKDFHash(hashes.SHA256(), 16, other_info).derive(z)
    assert kek == vectors["kek-c"]
    assert _sp800_108_hmac(kek, b"cosemcast Ka", METER + HE_C + KP_ID.to_bytes()) == vectors["ka-c"]
    assert aes_key_unwrap(kek, data[64:]) == KP
    aad = b"\x31" + c2.header_fields()
    _gcm_check(KP, METER + (3).to_bytes(4, "big"), aad, BODY.to_apdu(), c2.ciphered_text)


def _sp800_108_hmac(key: bytes, label: bytes, context: bytes) -> bytes:
    block = hmac.new(
        key, b"\x00\x00\x00\x01" + label + b"\x00" + context + b"\x00\x00\x00\x80", "sha256"
    )
    return block.digest()[:16]


def test_ack_independently() -> None:
    vectors = spec_vectors()
    ka = _sp800_108_hmac(KS_A, b"cosemcast Ka", METER + HE_A + KP_ID.to_bytes())
    assert ka == vectors["ka-a"]
    ack = decode_apdu(vectors["ack-a"])
    assert isinstance(ack, GeneralCiphering)
    plain, tag = ack.ciphered_text[:-12], ack.ciphered_text[-12:]
    aad = b"\x10" + ack.header_fields() + plain
    expected = AESGCM(ka).encrypt(HE_A + (1).to_bytes(4, "big"), b"", aad)[:12]
    assert hmac.compare_digest(tag, expected)
    assert plain == AckBody(KP_ID, 1, AckKind.CONTROL).to_apdu()  # in clear: SC 10


# --- the standard general-ciphering path opens a wrapped-key C2 unchanged ------------------------


def test_standard_decipher_opens_c2_a_with_ks_as_master_key() -> None:
    c2 = decode_apdu(spec_vectors()["c2-a"])
    assert isinstance(c2, GeneralCiphering)
    opened = decipher_general(c2, RecipientKeys(master_key=KS_A))
    assert opened.content_key == KP
    assert opened.plain == BODY.to_apdu()


def test_head_ends_open_the_spec_vectors() -> None:
    vectors = spec_vectors()
    store = MemoryPayloadKeyStore()
    opener = HeadEndOpener(
        system_title=HE_C,
        credentials=StaticMeterCredentials(
            agreement_public_keys={METER: _private(D_M).public_key()}
        ),
        store=store,
        agreement_private_key=_private(D_C),
    )
    accepted = opener.accept_c2(vectors["c2-c"], NOW)
    assert accepted.kp_id == KP_ID and not accepted.retransmission
    assert opener.open_c1(vectors["c1"], NOW).notification == READINGS
    opener_a = HeadEndOpener(
        system_title=HE_A,
        credentials=StaticMeterCredentials({METER: KS_A}),
        store=MemoryPayloadKeyStore(),
    )
    ack = opener_a.accept_c2(vectors["c2-a"], NOW).ack
    assert ack is not None and ack.encode() == vectors["ack-a"]
    assert opener_a.open_c1(vectors["c1"], NOW).notification == READINGS
