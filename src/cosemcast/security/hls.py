"""HLS authentication: challenges and the f(StoC) / f(CtoS) of mechanisms 2 to 7 (brief §7).

The four-pass flow (brief §7.1): the client sends CtoS in the AARQ, the server answers with StoC
in the AARE; the client proves itself with f(StoC) (Association LN method 1,
``reply_to_HLS_authentication``), the server with f(CtoS) in the ACTION response. This module
computes and checks those values; it does no IO and draws no counter itself (the GMAC invocation
counter is passed in, and the one a peer used is returned for the caller's replay check).

Every mechanism has the same shape once seen from the *responder*, the party that answers a
challenge: it mixes its own system title, the other party's, the challenge it answers and the
challenge it sent. So f(StoC) (client) and f(CtoS) (server) are one function with the roles
swapped:

===  ===========================================================================================
2    AES-128-ECB(secret zero-padded to 16 bytes, challenge zero-padded to a multiple of 16)
     (manufacturer-specific; brief §7.3 says DC and Gurux do this; **decision**, specs §4)
3    MD5(challenge ‖ secret)                                                       (brief §7.3)
4    SHA-1(challenge ‖ secret)                                                     (brief §7.3)
5    SC ‖ IC ‖ GMAC(EK, IV = ST_responder ‖ IC, AAD = SC ‖ AK ‖ challenge), 17 bytes,
     SC = 0x10 | suite                                                             (brief §7.2)
6    SHA-256(secret ‖ ST_responder ‖ ST_other ‖ challenge ‖ own challenge)         (brief §7.3)
7    ECDSA(responder's signing key, ST_responder ‖ ST_other ‖ challenge ‖ own challenge),
     raw r ‖ s                                                                     (brief §7.3)
===  ===========================================================================================

Every check compares in constant time and raises :class:`AuthenticationFailed`; a missing
secret or key raises :class:`KeyUnavailableError`. No secret appears in a repr or a message.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from cosemcast.errors import AuthenticationFailed, KeyUnavailableError, RemoteProtocolError
from cosemcast.security.ecdsa import sign_raw, verify_raw
from cosemcast.security.gcm import SymmetricKeys, gmac

__all__ = [
    "GMAC_RESPONSE_LENGTH",
    "MAX_CHALLENGE_LENGTH",
    "MIN_CHALLENGE_LENGTH",
    "HlsContext",
    "HlsCredentials",
    "HlsMechanism",
    "aes_ecb_f",
    "check_challenge",
    "ecdsa_f",
    "f_ctos",
    "f_stoc",
    "gmac_f",
    "make_challenge",
    "md5_f",
    "sha1_f",
    "sha256_f",
    "verify_ecdsa_f",
    "verify_f_ctos",
    "verify_f_stoc",
    "verify_gmac_f",
]

MIN_CHALLENGE_LENGTH = 8
MAX_CHALLENGE_LENGTH = 64
GMAC_RESPONSE_LENGTH = 17
_GMAC_SC = 0x10
_AES_BLOCK = 16


class HlsMechanism(IntEnum):
    """HLS mechanism ids, the last arc of mechanism-name 2.16.756.5.8.2.x (brief §7)."""

    HIGH = 2
    HIGH_MD5 = 3
    HIGH_SHA1 = 4
    HIGH_GMAC = 5
    HIGH_SHA256 = 6
    HIGH_ECDSA = 7


def make_challenge(length: int = 32, *, rng: Callable[[int], bytes] = secrets.token_bytes) -> bytes:
    """A fresh challenge of ``length`` bytes, 8 to 64 (brief §7.1), from ``rng``."""
    if not MIN_CHALLENGE_LENGTH <= length <= MAX_CHALLENGE_LENGTH:
        raise ValueError(f"a challenge is 8 to 64 bytes, not {length}")
    challenge = rng(length)
    if len(challenge) != length:
        raise ValueError(f"the random source returned {len(challenge)} bytes, not {length}")
    return bytes(challenge)


def check_challenge(challenge: bytes) -> None:
    """Refuse a peer's challenge outside 8..64 bytes (brief §7.1)."""
    if not MIN_CHALLENGE_LENGTH <= len(challenge) <= MAX_CHALLENGE_LENGTH:
        raise RemoteProtocolError(f"the peer's challenge has {len(challenge)} bytes, not 8 to 64")


def _check_system_title(system_title: bytes) -> None:
    if len(system_title) != 8:
        raise ValueError(f"a system title is 8 bytes, got {len(system_title)}")


def _compare(expected: bytes, response: bytes, what: str) -> None:
    if not hmac.compare_digest(expected, response):
        raise AuthenticationFailed(f"HLS {what} response does not verify")


# Mechanism 2 (decision, specs §4): the Gurux rule, which equals DC's when the challenge length
# is a multiple of 16 (brief §7.3).
def aes_ecb_f(secret: bytes, challenge: bytes) -> bytes:
    """Mechanism 2: AES-128-ECB of the zero-padded challenge under the zero-padded secret."""
    if not secret:
        raise KeyUnavailableError("HLS mechanism 2 needs a secret")
    if len(secret) > _AES_BLOCK:
        raise ValueError(f"an HLS mechanism 2 secret is at most 16 bytes, got {len(secret)}")
    key = bytes(secret).ljust(_AES_BLOCK, b"\x00")
    padded_length = -(-len(challenge) // _AES_BLOCK) * _AES_BLOCK
    block = bytes(challenge).ljust(padded_length, b"\x00")
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def md5_f(secret: bytes, challenge: bytes) -> bytes:
    """Mechanism 3: MD5(challenge ‖ secret) (brief §7.3)."""
    if not secret:
        raise KeyUnavailableError("HLS mechanism 3 needs a secret")
    return hashlib.md5(bytes(challenge) + bytes(secret)).digest()


def sha1_f(secret: bytes, challenge: bytes) -> bytes:
    """Mechanism 4: SHA-1(challenge ‖ secret) (brief §7.3)."""
    if not secret:
        raise KeyUnavailableError("HLS mechanism 4 needs a secret")
    return hashlib.sha1(bytes(challenge) + bytes(secret)).digest()


def gmac_f(
    keys: SymmetricKeys,
    system_title: bytes,
    invocation_counter: int,
    challenge: bytes,
    *,
    sc: int = _GMAC_SC,
) -> bytes:
    """Mechanism 5: SC ‖ IC ‖ GMAC, 17 bytes (brief §7.2).

    ``system_title`` and ``invocation_counter`` are the responder's: the client's for f(StoC),
    the server's for f(CtoS). The counter must come from the responder's counter store.
    """
    tag = gmac(keys, system_title, invocation_counter, challenge, sc)
    return bytes((sc,)) + invocation_counter.to_bytes(4, "big") + tag


def verify_gmac_f(
    keys: SymmetricKeys,
    system_title: bytes,
    challenge: bytes,
    response: bytes,
    *,
    sc: int = _GMAC_SC,
) -> int:
    """Check a mechanism 5 response from the party with ``system_title`` (brief §7.2).

    Returns the invocation counter the responder used, for the caller's replay check
    (``ReceivedCounterStore.check_and_update``).
    """
    if len(response) != GMAC_RESPONSE_LENGTH:
        raise AuthenticationFailed(
            f"an HLS-GMAC response is {GMAC_RESPONSE_LENGTH} bytes, got {len(response)}"
        )
    if response[0] != sc:
        raise AuthenticationFailed(
            f"HLS-GMAC response has security control {response[0]:#04x}, expected {sc:#04x}"
        )
    invocation_counter = int.from_bytes(response[1:5], "big")
    expected = gmac(keys, system_title, invocation_counter, challenge, sc)
    _compare(expected, response[5:], "GMAC")
    return invocation_counter


def _signed_bytes(
    responder_system_title: bytes,
    other_system_title: bytes,
    answered_challenge: bytes,
    own_challenge: bytes,
) -> bytes:
    _check_system_title(responder_system_title)
    _check_system_title(other_system_title)
    return (
        bytes(responder_system_title)
        + bytes(other_system_title)
        + bytes(answered_challenge)
        + bytes(own_challenge)
    )


def sha256_f(
    secret: bytes,
    responder_system_title: bytes,
    other_system_title: bytes,
    answered_challenge: bytes,
    own_challenge: bytes,
) -> bytes:
    """Mechanism 6: SHA-256(secret ‖ ST_resp ‖ ST_other ‖ answered ‖ own) (brief §7.3)."""
    if not secret:
        raise KeyUnavailableError("HLS mechanism 6 needs a secret")
    data = _signed_bytes(
        responder_system_title, other_system_title, answered_challenge, own_challenge
    )
    return hashlib.sha256(bytes(secret) + data).digest()


def ecdsa_f(
    private_key: ec.EllipticCurvePrivateKey,
    responder_system_title: bytes,
    other_system_title: bytes,
    answered_challenge: bytes,
    own_challenge: bytes,
) -> bytes:
    """Mechanism 7: r ‖ s over ST_resp ‖ ST_other ‖ answered ‖ own (brief §7.3, §5.5)."""
    data = _signed_bytes(
        responder_system_title, other_system_title, answered_challenge, own_challenge
    )
    return sign_raw(private_key, data)


def verify_ecdsa_f(
    public_key: ec.EllipticCurvePublicKey,
    response: bytes,
    responder_system_title: bytes,
    other_system_title: bytes,
    answered_challenge: bytes,
    own_challenge: bytes,
) -> None:
    """Check a mechanism 7 response against the responder's public key (brief §7.3)."""
    data = _signed_bytes(
        responder_system_title, other_system_title, answered_challenge, own_challenge
    )
    verify_raw(public_key, data, response)


@dataclass(frozen=True, slots=True)
class HlsContext:
    """What both parties know after the AARQ/AARE (brief §7.1).

    The system titles are needed by mechanisms 5, 6 and 7; ``security_suite`` sets the low
    nibble of the mechanism 5 security control byte.
    """

    mechanism: HlsMechanism
    ctos: bytes
    stoc: bytes
    client_system_title: bytes = b""
    server_system_title: bytes = b""
    security_suite: int = 0


@dataclass(frozen=True, slots=True)
class HlsCredentials:
    """One party's HLS secrets. Only the ones its mechanism needs have to be set.

    ``secret`` serves mechanisms 2, 3, 4 and 6; ``keys`` (EK and AK) mechanism 5;
    ``signing_key`` (own) and ``peer_public_key`` mechanism 7.
    """

    secret: bytes = field(default=b"", repr=False)
    keys: SymmetricKeys | None = field(default=None, repr=False)
    signing_key: ec.EllipticCurvePrivateKey | None = field(default=None, repr=False)
    peer_public_key: ec.EllipticCurvePublicKey | None = None


@dataclass(frozen=True, slots=True)
class _Roles:
    responder_system_title: bytes
    other_system_title: bytes
    answered: bytes
    own: bytes


def _roles(context: HlsContext, *, client_responds: bool) -> _Roles:
    if client_responds:
        return _Roles(
            context.client_system_title, context.server_system_title, context.stoc, context.ctos
        )
    return _Roles(
        context.server_system_title, context.client_system_title, context.ctos, context.stoc
    )


def _keys(credentials: HlsCredentials) -> SymmetricKeys:
    if credentials.keys is None:
        raise KeyUnavailableError("HLS mechanism 5 needs the EK and AK")
    return credentials.keys


def _respond(
    context: HlsContext,
    credentials: HlsCredentials,
    invocation_counter: int | None,
    *,
    client_responds: bool,
) -> bytes:
    roles = _roles(context, client_responds=client_responds)
    check_challenge(roles.answered)
    mechanism = HlsMechanism(context.mechanism)
    if mechanism is HlsMechanism.HIGH:
        return aes_ecb_f(credentials.secret, roles.answered)
    if mechanism is HlsMechanism.HIGH_MD5:
        return md5_f(credentials.secret, roles.answered)
    if mechanism is HlsMechanism.HIGH_SHA1:
        return sha1_f(credentials.secret, roles.answered)
    if mechanism is HlsMechanism.HIGH_GMAC:
        if invocation_counter is None:
            raise ValueError("HLS mechanism 5 needs the responder's invocation counter")
        return gmac_f(
            _keys(credentials),
            roles.responder_system_title,
            invocation_counter,
            roles.answered,
            sc=_GMAC_SC | context.security_suite,
        )
    if mechanism is HlsMechanism.HIGH_SHA256:
        return sha256_f(
            credentials.secret,
            roles.responder_system_title,
            roles.other_system_title,
            roles.answered,
            roles.own,
        )
    if credentials.signing_key is None:
        raise KeyUnavailableError("HLS mechanism 7 needs our signing key")
    return ecdsa_f(
        credentials.signing_key,
        roles.responder_system_title,
        roles.other_system_title,
        roles.answered,
        roles.own,
    )


def _verify(
    context: HlsContext,
    credentials: HlsCredentials,
    response: bytes,
    *,
    client_responds: bool,
) -> int | None:
    roles = _roles(context, client_responds=client_responds)
    mechanism = HlsMechanism(context.mechanism)
    if mechanism is HlsMechanism.HIGH_GMAC:
        return verify_gmac_f(
            _keys(credentials),
            roles.responder_system_title,
            roles.answered,
            response,
            sc=_GMAC_SC | context.security_suite,
        )
    if mechanism is HlsMechanism.HIGH_ECDSA:
        if credentials.peer_public_key is None:
            raise KeyUnavailableError("HLS mechanism 7 needs the peer's public key")
        verify_ecdsa_f(
            credentials.peer_public_key,
            response,
            roles.responder_system_title,
            roles.other_system_title,
            roles.answered,
            roles.own,
        )
        return None
    expected = _respond(context, credentials, None, client_responds=client_responds)
    _compare(expected, response, mechanism.name)
    return None


def f_stoc(
    context: HlsContext, credentials: HlsCredentials, *, invocation_counter: int | None = None
) -> bytes:
    """The client's f(StoC) for ``reply_to_HLS_authentication`` (brief §7.1 step 3).

    ``invocation_counter`` (mechanism 5 only) is the client's next counter for its key.
    Raises :class:`RemoteProtocolError` if StoC is not 8 to 64 bytes.
    """
    return _respond(context, credentials, invocation_counter, client_responds=True)


def verify_f_stoc(context: HlsContext, credentials: HlsCredentials, response: bytes) -> int | None:
    """The server's check of f(StoC); returns the client's IC for mechanism 5, else None."""
    return _verify(context, credentials, response, client_responds=True)


def f_ctos(
    context: HlsContext, credentials: HlsCredentials, *, invocation_counter: int | None = None
) -> bytes:
    """The server's f(CtoS) for the ACTION response (brief §7.1 step 4)."""
    return _respond(context, credentials, invocation_counter, client_responds=False)


def verify_f_ctos(context: HlsContext, credentials: HlsCredentials, response: bytes) -> int | None:
    """The client's check of f(CtoS); returns the server's IC for mechanism 5, else None."""
    return _verify(context, credentials, response, client_responds=False)
