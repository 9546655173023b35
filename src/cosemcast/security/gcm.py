"""AES-GCM with the 12-byte DLMS tag (suites 0, 1, 2; brief §5), sans-IO and fast.

DLMS truncates the GCM tag to 12 bytes. ``cryptography``'s one-shot ``AESGCM`` only takes
16-byte tags on decryption, while the ``Cipher(AES, GCM(iv, tag, min_tag_length=12))`` path
costs about ten times more per call. We get the one-shot speed without weakening the check:

* GCM encryption is CTR mode keyed by (K, IV): ``C = P xor KS``. So ``AESGCM.encrypt(iv, C)``
  returns ``C xor KS = P`` as its first ``len(C)`` bytes (its tag is discarded).
* ``AESGCM.encrypt(iv, P, aad)`` then returns exactly ``C`` followed by the full 16-byte tag
  that a sender would have computed over ``(aad, C)``.
* We compare its first 12 bytes with the received tag in constant time
  (:func:`hmac.compare_digest`) and release ``P`` only when they match.

The vectors of Green Book Table 40 in all three modes and the GMAC of Table 43 prove the
construction (``tests/test_gcm.py``), and a test cross-checks it against the ``Cipher``
path on random inputs. The proof that it is equivalent is in ``specs/security.md`` §2.

AAD (brief §5.2): SC ‖ AK ‖ header, where ``header`` is empty for the service-specific
and general-glo/ded APDUs and carries the general-ciphering fields (``specs/security.md``).
With authentication only, the APDU itself is appended to the AAD and sent in clear.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cosemcast.errors import AuthenticationFailed, DecodeError, EncodeError

__all__ = [
    "TAG_LENGTH",
    "SecurityControl",
    "SymmetricKeys",
    "gmac",
    "make_iv",
    "protect",
    "unprotect",
]

TAG_LENGTH = 12

_AUTH = 0x10
_ENC = 0x20
_BROADCAST = 0x40
_COMPRESSED = 0x80


@dataclass(frozen=True, slots=True)
class SecurityControl:
    """The security control byte (brief §5.1): suite id in bits 0-3, then A, E, Key_Set, C."""

    suite: int = 0
    authenticated: bool = False
    encrypted: bool = False
    broadcast_key: bool = False
    compressed: bool = False

    @classmethod
    def from_byte(cls, value: int) -> SecurityControl:
        if cls is SecurityControl and 0 <= value <= 0xFF:
            return _SC_TABLE[value]
        return cls._build(value)

    @classmethod
    def _build(cls, value: int) -> SecurityControl:
        return cls(
            value & 0x0F,
            bool(value & _AUTH),
            bool(value & _ENC),
            bool(value & _BROADCAST),
            bool(value & _COMPRESSED),
        )

    def to_byte(self) -> int:
        if not 0 <= self.suite <= 15:
            raise EncodeError(f"security suite {self.suite} does not fit in 4 bits")
        return (
            self.suite
            | (_AUTH if self.authenticated else 0)
            | (_ENC if self.encrypted else 0)
            | (_BROADCAST if self.broadcast_key else 0)
            | (_COMPRESSED if self.compressed else 0)
        )

    def __int__(self) -> int:
        return self.to_byte()


# Every byte value decoded once: SC parsing is on the path of every ciphered APDU.
_SC_TABLE = [SecurityControl._build(v) for v in range(256)]


class SymmetricKeys:
    """A block-cipher key EK and the authentication key AK, ready for GCM.

    Built once per key (it keeps the ``AESGCM`` context), never shows the keys in its repr.
    """

    __slots__ = ("_aad", "_aead", "ak", "ek")

    def __init__(self, ek: bytes, ak: bytes = b"") -> None:
        if len(ek) not in (16, 32):
            raise ValueError(f"EK must be 16 or 32 bytes, got {len(ek)}")
        if ak and len(ak) not in (16, 32):
            raise ValueError(f"AK must be 16 or 32 bytes, got {len(ak)}")
        self.ek = bytes(ek)
        self.ak = bytes(ak)
        self._aead = AESGCM(self.ek)
        self._aad: dict[int, bytes] = {}  # SC ‖ AK per SC value seen, filled on first use

    @property
    def aead(self) -> AESGCM:
        return self._aead

    def __repr__(self) -> str:
        return f"SymmetricKeys(<{len(self.ek) * 8}-bit EK>, <{'AK' if self.ak else 'no AK'}>)"


def make_iv(system_title: bytes, invocation_counter: int) -> bytes:
    """IV = system title (8 bytes) ‖ invocation counter (u32 BE) (brief §5.2)."""
    if len(system_title) != 8:
        raise ValueError(f"a system title is 8 bytes, got {len(system_title)}")
    if not 0 <= invocation_counter <= 0xFFFFFFFF:
        raise ValueError(f"invocation counter {invocation_counter} is out of range 0..2^32-1")
    return system_title + invocation_counter.to_bytes(4, "big")


def protect(
    sc: int,
    keys: SymmetricKeys,
    system_title: bytes,
    invocation_counter: int,
    apdu: bytes,
    header: bytes = b"",
) -> bytes:
    """Protect ``apdu``; return what follows SC ‖ IC on the wire (C ‖ T, APDU ‖ T or C).

    ``header`` is appended to SC ‖ AK in the AAD (general-ciphering fields).
    """
    iv = make_iv(system_title, invocation_counter)
    auth = bool(sc & _AUTH)
    enc = bool(sc & _ENC)
    if auth and not enc:
        tag = keys.aead.encrypt(iv, b"", bytes((sc,)) + keys.ak + header + apdu)
        return apdu + tag[:TAG_LENGTH]
    if auth:
        out = keys.aead.encrypt(iv, apdu, bytes((sc,)) + keys.ak + header)
        return out[:-4]
    if enc:
        return keys.aead.encrypt(iv, apdu, None)[: len(apdu)]
    return bytes(apdu)


def unprotect(
    sc: int,
    keys: SymmetricKeys,
    system_title: bytes,
    invocation_counter: int,
    payload: bytes,
    header: bytes = b"",
) -> bytes:
    """Check and remove the protection of ``payload`` (what follows SC ‖ IC on the wire).

    Returns the APDU. Raises :class:`AuthenticationFailed` when the tag does not verify; no
    byte of the plaintext escapes in that case.
    """
    if len(system_title) == 8 and 0 <= invocation_counter <= 0xFFFFFFFF:
        iv = system_title + invocation_counter.to_bytes(4, "big")
    else:
        iv = make_iv(system_title, invocation_counter)
    auth = bool(sc & _AUTH)
    enc = bool(sc & _ENC)
    if auth:
        if len(payload) < TAG_LENGTH:
            raise DecodeError(
                f"ciphered payload of {len(payload)} bytes is shorter than the 12-byte tag",
                expected="at least 12 bytes",
            )
        body = payload[:-TAG_LENGTH]
        tag = payload[-TAG_LENGTH:]
        aad = keys._aad.get(sc)
        if aad is None:
            aad = keys._aad[sc] = bytes((sc,)) + keys.ak
        if header:
            aad += header
        aead = keys.aead
        if enc:
            plain = aead.encrypt(iv, body, None)[: len(body)]
            expected = aead.encrypt(iv, plain, aad)[len(body) : len(body) + TAG_LENGTH]
        else:
            plain = bytes(body)
            expected = aead.encrypt(iv, b"", aad + plain)[:TAG_LENGTH]
        if not hmac.compare_digest(expected, tag):
            raise AuthenticationFailed("authentication tag does not verify")
        return plain
    if enc:
        return keys.aead.encrypt(iv, payload, None)[: len(payload)]
    return bytes(payload)


def gmac(
    keys: SymmetricKeys,
    system_title: bytes,
    invocation_counter: int,
    challenge: bytes,
    sc: int = 0x10,
) -> bytes:
    """The 12-byte GMAC of HLS mechanism 5 (brief §7.2): GCM tag over SC ‖ AK ‖ challenge."""
    iv = make_iv(system_title, invocation_counter)
    return keys.aead.encrypt(iv, b"", bytes((sc,)) + keys.ak + challenge)[:TAG_LENGTH]
