"""The key function ``F`` and the other keys derived from ``Kt`` (specs/supervision.md §4).

Theory of operation. Each meter holds a secret ``Kt`` from manufacture, known only to the meter and
the supervision centre (patent EP 2671052 [0033], [0055]). Every other per-meter key is derived
from it with one function, NIST SP 800-108r1 §4.1 KDF in counter mode with HMAC-SHA-256 as the
PRF, a 32-bit counter before the fixed input, and a 32-bit length field::

    K(i)  = HMAC-SHA-256(Kt, [i]_32 ‖ Label ‖ 0x00 ‖ Context ‖ [L]_32)
    out   = leftmost L bits of K(1) ‖ K(2) ‖ …        (L = 128: one PRF call)

Kt is already a uniformly random key, which is exactly the key-derivation key SP 800-108
expects; the extract step of SP 800-56C (meant for a raw shared secret Z) would add nothing.

The labels separate the uses (domain separation): no label contains 0x00 and every context has a
fixed length, so no two (label, context) pairs give the same PRF input.

* ``Ks = F(Kt, I0)`` (claims 3, 9; Fig. 3): label ``"cosemcast Ks"``, context = meter system
  title (8) ‖ head-end system title (8) ‖ I0 (16). Binding both identities means a given I0
  yields a different key for every (meter, head-end) pair.
* ``Ki``, the initialization-session key (claim 5), when the manufacturer derives it rather than
  drawing it independently: label ``"cosemcast Ki"``, context = meter system title.
* ``Ke``, the key that authenticates the meter's enrollment request (its consent, [0051]):
  label ``"cosemcast Ke"``, context = meter system title.

``cryptography``'s ``KBKDFHMAC`` does the work; the tests check it against a hand-written
HMAC construction.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFHMAC, CounterLocation, Mode

__all__ = [
    "I0_LENGTH",
    "KE_LABEL",
    "KI_LABEL",
    "KS_LABEL",
    "KT_LENGTHS",
    "SYSTEM_TITLE_LENGTH",
    "derive_enrollment_key",
    "derive_ki",
    "derive_ks",
    "kbkdf_hmac_sha256",
]

KS_LABEL = b"cosemcast Ks"
KI_LABEL = b"cosemcast Ki"
KE_LABEL = b"cosemcast Ke"

SYSTEM_TITLE_LENGTH = 8
I0_LENGTH = 16
KT_LENGTHS = (16, 32)
_KEY_LENGTHS = (16, 32)


def kbkdf_hmac_sha256(key: bytes, *, label: bytes, context: bytes, length: int = 16) -> bytes:
    """SP 800-108r1 §4.1 counter mode, HMAC-SHA-256, r = 32, L as 32 bits after the context."""
    if length not in _KEY_LENGTHS:
        raise ValueError(f"derived keys are 16 or 32 bytes, not {length}")
    if b"\x00" in label:
        raise ValueError("a label must not contain 0x00 (it separates label and context)")
    kdf = KBKDFHMAC(
        algorithm=hashes.SHA256(),
        mode=Mode.CounterMode,
        length=length,
        rlen=4,
        llen=4,
        location=CounterLocation.BeforeFixed,
        label=label,
        context=context,
        fixed=None,
    )
    return kdf.derive(bytes(key))


def _check_kt(kt: bytes) -> None:
    if len(kt) not in KT_LENGTHS:
        raise ValueError(f"Kt is 16 or 32 bytes, got {len(kt)}")


def _check_title(value: bytes, what: str) -> None:
    if len(value) != SYSTEM_TITLE_LENGTH:
        raise ValueError(f"{what} is an 8-byte system title, got {len(value)} bytes")


def derive_ks(
    kt: bytes, *, meter_id: bytes, head_end_id: bytes, i0: bytes, length: int = 16
) -> bytes:
    """``Ks = F(Kt, I0)``: the key the meter shares with one head-end (specs §4.1).

    ``length`` 16 serves suites 0 and 1; 32 (two PRF blocks, L = 256) is there for suite 2.
    """
    _check_kt(kt)
    _check_title(meter_id, "the meter ID")
    _check_title(head_end_id, "the head-end ID")
    if len(i0) != I0_LENGTH:
        raise ValueError(f"I0 is {I0_LENGTH} bytes, got {len(i0)}")
    context = bytes(meter_id) + bytes(head_end_id) + bytes(i0)
    return kbkdf_hmac_sha256(kt, label=KS_LABEL, context=context, length=length)


def derive_ki(kt: bytes, *, meter_id: bytes) -> bytes:
    """``Ki`` derived from ``Kt`` (specs §4.2), for makers that do not draw it independently."""
    _check_kt(kt)
    _check_title(meter_id, "the meter ID")
    return kbkdf_hmac_sha256(kt, label=KI_LABEL, context=bytes(meter_id))


def derive_enrollment_key(kt: bytes, *, meter_id: bytes) -> bytes:
    """``Ke``: authenticates the meter's enrollment request (specs §4.2, §7)."""
    _check_kt(kt)
    _check_title(meter_id, "the meter ID")
    return kbkdf_hmac_sha256(kt, label=KE_LABEL, context=bytes(meter_id))
