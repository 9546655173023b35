"""The authenticated channel between a head-end and the centre (specs/supervision.md §8.1).

Theory of operation. The channel is the project's own DLMS stack: the centre is a DLMS server
over TCP (IEC 62056-47 wrapper) and a head-end is a DLMS client. Every association uses
HLS-GMAC (mechanism 5), security suite 0 and glo-ciphering with requests and responses
authenticated and encrypted. Each head-end has its own pair of global keys (EK, AK): its
channel credential in the registry is ``EK ‖ AK`` (32 bytes, sealed at rest). The server picks
the keys by the AARQ's calling-AP-title, which is the head-end's system title; a title that
is not an active head-end gets freshly drawn keys that nobody holds, so an unknown head-end,
a revoked one and a wrong key all end in the same refusal (the InitiateRequest does not
decipher) and an unauthenticated party learns nothing about the registry.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from cosemcast.apdu.acse import MechanismName
from cosemcast.association.settings import (
    AssociationSettings,
    Ciphering,
    GlobalKeys,
    SecurityPolicy,
    SecuritySettings,
)
from cosemcast.errors import ConfigurationError

__all__ = [
    "CHANNEL_CLIENT_SAP",
    "CHANNEL_SERVER_SAP",
    "CREDENTIAL_LENGTH",
    "DEFAULT_PORT",
    "ChannelKeys",
    "client_settings",
    "server_settings",
]

CREDENTIAL_LENGTH = 32
CHANNEL_CLIENT_SAP = 1
CHANNEL_SERVER_SAP = 1
DEFAULT_PORT = 4063
"""Decision: not 4059 (the DLMS port of the meters on the same hosts in a test bench)."""

_KEY = 16


@dataclass(frozen=True, slots=True)
class ChannelKeys:
    """A head-end's channel keys: global unicast encryption key and authentication key."""

    ek: bytes = field(repr=False)
    ak: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.ek) != _KEY or len(self.ak) != _KEY:
            raise ConfigurationError("channel keys are 16 bytes each (security suite 0)")

    @classmethod
    def generate(cls, rng: Callable[[int], bytes] = os.urandom) -> ChannelKeys:
        return cls(rng(_KEY), rng(_KEY))

    @classmethod
    def from_credential(cls, credential: bytes) -> ChannelKeys:
        """Split a registry credential ``EK ‖ AK``."""
        if len(credential) != CREDENTIAL_LENGTH:
            raise ConfigurationError(
                f"a channel credential is EK ‖ AK ({CREDENTIAL_LENGTH} bytes), "
                f"got {len(credential)} bytes"
            )
        return cls(bytes(credential[:_KEY]), bytes(credential[_KEY:]))

    @property
    def credential(self) -> bytes:
        """What the registry keeps: ``EK ‖ AK``."""
        return self.ek + self.ak


def _security(own_title: bytes, peer_title: bytes | None, keys: ChannelKeys) -> SecuritySettings:
    return SecuritySettings(
        system_title=own_title,
        global_keys=GlobalKeys(keys.ek, keys.ak),
        suite=0,
        ciphering=Ciphering.GLOBAL,
        policy=SecurityPolicy.all_ciphered(),
        peer_system_title=peer_title,
    )


def server_settings(
    *,
    centre_id: bytes,
    head_end_id: bytes | None,
    keys: ChannelKeys,
    client_sap: int = CHANNEL_CLIENT_SAP,
    server_sap: int = CHANNEL_SERVER_SAP,
) -> AssociationSettings:
    """What the centre grants the head-end ``head_end_id`` (the AARQ's calling-AP-title)."""
    return AssociationSettings(
        client_sap=client_sap,
        server_sap=server_sap,
        mechanism=MechanismName.HIGH_GMAC,
        security=_security(centre_id, head_end_id, keys),
    )


def client_settings(
    *, head_end_id: bytes, keys: ChannelKeys, centre_id: bytes | None = None
) -> AssociationSettings:
    """What a head-end asks for; ``centre_id``, when given, pins the centre's system title."""
    return AssociationSettings(
        client_sap=CHANNEL_CLIENT_SAP,
        server_sap=CHANNEL_SERVER_SAP,
        mechanism=MechanismName.HIGH_GMAC,
        security=_security(head_end_id, centre_id, keys),
    )
