"""What describes one application association, on either side (brief §4.2, §4.3, §5, §7, §8).

Theory of operation. Both state machines take one :class:`AssociationSettings`: the client
the association it wants, the server the association it grants to the client SAP that the
link layer connected (a meter keeps one per client SAP and picks it before the AARQ arrives).
"Own" and "peer" are relative to the side that holds the settings: a client's
``security.system_title`` is the client title, a server's is the server title.

* ``mechanism`` and ``secret``: the authentication mechanism (brief §4.2 mechanism-name) and
  the LLS password or the HLS 2/3/4/6 secret; mechanisms 5 and 7 use the keys of
  :class:`SecuritySettings` instead.
* ``security``: system titles, the suite (brief §5.5), the global keys (unicast, broadcast,
  AK; brief §5.2), the dedicated key, how APDUs are ciphered (:class:`Ciphering`, brief §5.4)
  and the :class:`SecurityPolicy` (Security Setup attribute 2 version 1 bits, brief §8).
  With ``ciphering=Ciphering.NONE`` the security settings only serve HLS-GMAC/ECDSA; the
  application context is then the plain LN one.
* ``conformance`` and ``max_receive_pdu_size``: what the client proposes / the server
  supports (the negotiated block is the intersection, brief §4.3) and the largest APDU
  this side accepts; the peer's limit decides when block transfer starts.

Validation happens at construction and raises :class:`ConfigurationError`; no key or
secret appears in a repr or a message.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec

from cosemcast.apdu.acse import ApplicationContextName, MechanismName
from cosemcast.apdu.initiate import Conformance
from cosemcast.errors import ConfigurationError

__all__ = [
    "DEFAULT_CONFORMANCE",
    "MIN_PDU_SIZE",
    "AssociationSettings",
    "Ciphering",
    "GlobalKeys",
    "SecurityPolicy",
    "SecuritySettings",
]

MIN_PDU_SIZE = 64
"""Smallest max-receive-pdu-size we accept or configure (decision: below it no block
transfer header plus a ciphering header fits with room for data)."""

DEFAULT_CONFORMANCE = Conformance(0x007E1F)
"""Bits 9-14 and 19-23 (brief §4.3, the DC test object): priority-mgmt, attribute0 with GET,
block transfer with GET/SET/ACTION, multiple references, GET, SET, selective access,
event notification, ACTION."""


class SecurityPolicy(enum.IntFlag):
    """Security Setup attribute 2, version 1 bit flags (brief §8; bits 0-1 are zero)."""

    AUTHENTICATED_REQUEST = 1 << 2
    ENCRYPTED_REQUEST = 1 << 3
    DIGITALLY_SIGNED_REQUEST = 1 << 4
    AUTHENTICATED_RESPONSE = 1 << 5
    ENCRYPTED_RESPONSE = 1 << 6
    DIGITALLY_SIGNED_RESPONSE = 1 << 7

    @classmethod
    def all_ciphered(cls) -> SecurityPolicy:
        """Requests and responses authenticated and encrypted."""
        return (
            cls.AUTHENTICATED_REQUEST
            | cls.ENCRYPTED_REQUEST
            | cls.AUTHENTICATED_RESPONSE
            | cls.ENCRYPTED_RESPONSE
        )


class Ciphering(enum.Enum):
    """How xDLMS APDUs of the association are protected (brief §5.4)."""

    NONE = "none"
    GLOBAL = "glo"
    DEDICATED = "ded"
    GENERAL_GLOBAL = "general-glo"
    GENERAL_DEDICATED = "general-ded"

    @property
    def dedicated(self) -> bool:
        return self in (Ciphering.DEDICATED, Ciphering.GENERAL_DEDICATED)

    @property
    def general(self) -> bool:
        return self in (Ciphering.GENERAL_GLOBAL, Ciphering.GENERAL_DEDICATED)


def _key_length(suite: int) -> int:
    return 32 if suite == 2 else 16


@dataclass(frozen=True, slots=True)
class GlobalKeys:
    """The global keys shared by client and server (brief §5.2): GUEK, AK, optional GBEK."""

    unicast_key: bytes = field(repr=False)
    authentication_key: bytes = field(repr=False)
    broadcast_key: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name in ("unicast_key", "authentication_key", "broadcast_key"):
            value = getattr(self, name)
            if value is not None and len(value) not in (16, 32):
                raise ConfigurationError(f"{name} must be 16 or 32 bytes, got {len(value)}")


_CURVE_FOR_SUITE = {1: "secp256r1", 2: "secp384r1"}


@dataclass(frozen=True, slots=True, kw_only=True)
class SecuritySettings:
    """One side's security material for the association.

    ``policy=None`` means "authenticated and encrypted both ways" when ciphering is on and
    "nothing" when it is off (see :attr:`effective_policy`). ``dedicated_key`` is, for a
    client using dedicated ciphering, the key it proposes (drawn from the rng when None);
    a server ignores it (it takes the client's from the InitiateRequest).
    ``peer_system_title``, when given, is required of the peer (and used when the peer does
    not send one, as the brief §7.2 GMAC AARQ does not).
    """

    system_title: bytes
    global_keys: GlobalKeys
    suite: int = 0
    ciphering: Ciphering = Ciphering.GLOBAL
    policy: SecurityPolicy | None = None
    dedicated_key: bytes | None = field(default=None, repr=False)
    peer_system_title: bytes | None = None
    signing_key: ec.EllipticCurvePrivateKey | None = field(default=None, repr=False)
    peer_signing_key: ec.EllipticCurvePublicKey | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if len(self.system_title) != 8:
            raise ConfigurationError(f"system_title must be 8 bytes, got {len(self.system_title)}")
        if self.peer_system_title is not None and len(self.peer_system_title) != 8:
            raise ConfigurationError("peer_system_title must be 8 bytes")
        if self.suite not in (0, 1, 2):
            raise ConfigurationError(f"security suite {self.suite} is not 0, 1 or 2")
        need = _key_length(self.suite)
        keys = self.global_keys
        for name, value in (
            ("unicast_key", keys.unicast_key),
            ("authentication_key", keys.authentication_key),
            ("broadcast_key", keys.broadcast_key),
            ("dedicated_key", self.dedicated_key),
        ):
            if value is not None and len(value) != need:
                raise ConfigurationError(
                    f"suite {self.suite} needs {need}-byte keys; {name} has {len(value)}"
                )
        if self.ciphering is Ciphering.NONE and self.policy:
            raise ConfigurationError("a security policy needs ciphering")
        for name, key in (("signing_key", self.signing_key), ("peer", self.peer_signing_key)):
            if key is not None and key.curve.name != _CURVE_FOR_SUITE.get(self.suite):
                raise ConfigurationError(
                    f"{name} is on {key.curve.name}; suite {self.suite} signs with "
                    f"{_CURVE_FOR_SUITE.get(self.suite, 'no curve')}"
                )

    @property
    def key_length(self) -> int:
        return _key_length(self.suite)

    @property
    def effective_policy(self) -> SecurityPolicy:
        if self.policy is not None:
            return self.policy
        if self.ciphering is Ciphering.NONE:
            return SecurityPolicy(0)
        return SecurityPolicy.all_ciphered()


_HLS_WITH_SECRET = (
    MechanismName.HIGH,
    MechanismName.HIGH_MD5,
    MechanismName.HIGH_SHA1,
    MechanismName.HIGH_SHA256,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class AssociationSettings:
    """One association: addressing, authentication, security, negotiation limits."""

    client_sap: int = 16
    server_sap: int = 1
    mechanism: MechanismName = MechanismName.LOWEST
    secret: bytes = field(default=b"", repr=False)
    security: SecuritySettings | None = None
    conformance: Conformance = DEFAULT_CONFORMANCE
    max_receive_pdu_size: int = 0xFFFF
    challenge_length: int = 32
    gbt_window: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.client_sap <= 0x7F or not 0 <= self.server_sap <= 0x3FFF:
            raise ConfigurationError("client SAP must be 0..127 and server SAP 0..16383")
        if not MIN_PDU_SIZE <= self.max_receive_pdu_size <= 0xFFFF:
            raise ConfigurationError(
                f"max_receive_pdu_size must be {MIN_PDU_SIZE}..65535, "
                f"got {self.max_receive_pdu_size}"
            )
        if not 8 <= self.challenge_length <= 64:
            raise ConfigurationError("challenge_length must be 8..64 (brief §7.1)")
        if self.gbt_window != 1:
            raise ConfigurationError("only a general-block-transfer window of 1 is supported")
        mechanism = self.mechanism
        if mechanism in (MechanismName.LOW, *_HLS_WITH_SECRET) and not self.secret:
            raise ConfigurationError(f"mechanism {mechanism.name} needs a secret")
        if mechanism in (
            MechanismName.HIGH_GMAC,
            MechanismName.HIGH_SHA256,
            MechanismName.HIGH_ECDSA,
        ):
            if self.security is None:
                raise ConfigurationError(f"mechanism {mechanism.name} needs security settings")
            if mechanism is MechanismName.HIGH_ECDSA:
                security = self.security
                if security.suite == 0:
                    raise ConfigurationError("HLS-ECDSA needs security suite 1 or 2")
                if security.signing_key is None or security.peer_signing_key is None:
                    raise ConfigurationError("HLS-ECDSA needs our signing key and the peer's")

    @property
    def effective_conformance(self) -> Conformance:
        """``conformance``, plus general-protection when general-glo/ded ciphering is used."""
        if self.security is not None and self.security.ciphering.general:
            return self.conformance | Conformance.GENERAL_PROTECTION
        return self.conformance

    @property
    def hls(self) -> bool:
        """True for the mechanisms that need the reply_to_HLS_authentication pass."""
        return self.mechanism >= MechanismName.HIGH

    @property
    def ciphered(self) -> bool:
        return self.security is not None and self.security.ciphering is not Ciphering.NONE

    @property
    def application_context_name(self) -> ApplicationContextName:
        """LN referencing, with ciphering when the association ciphers (brief §4.2)."""
        if self.ciphered:
            return ApplicationContextName.LOGICAL_NAME_WITH_CIPHERING
        return ApplicationContextName.LOGICAL_NAME
