"""Client credentials: who the client is, how it authenticates and which keys it holds.

Theory of operation. A credentials file is the key file of ``cosemcast decode --keys``
(:mod:`cosemcast.security.keyring`: one ``[[keys]]`` table per system title) plus one
``[client]`` table with the association settings. :meth:`Credentials.load` reads it,
:meth:`Credentials.association_settings` turns it into the
:class:`~cosemcast.association.AssociationSettings` the client state machine takes. The
command line (``cosemcast read``) overrides single fields with :func:`dataclasses.replace`.

Format (every field optional; defaults in brackets)::

    [client]
    client_sap = 1                # client SAP / wrapper wPort [16: the public client]
    server_sap = 1                # logical device (server upper HDLC address / wPort) [1]
    server_physical_address = 17  # HDLC lower address, serial only [none: 1-byte address]
    auth = "hls-gmac"             # none | lls | hls-gmac | hls-ecdsa [none]
    password = "12345678"         # LLS password as text (or password_hex = "3132...")
    system_title = "4142434445464748"         # the client's; selects its [[keys]] entry
    server_system_title = "4D4D4D0000BC614E"  # pins the meter's title [take it from the AARE]
    security_suite = 0            # 0, 1, 2 [0; 1 for hls-ecdsa]
    ciphering = "glo"             # none | glo | ded | general-glo | general-ded
                                  # [glo for hls-gmac/hls-ecdsa, else none]
    counters = "counters.sqlite"  # invocation-counter file, relative to this file
                                  # [$COSEMCAST_STATE_DIR or the user state dir]
    max_pdu_size = 65535          # our max-receive-pdu-size [65535]

    [[keys]]                      # the client's keys (its system title)
    system_title = "4142434445464748"
    ek = "000102030405060708090A0B0C0D0E0F"   # global unicast encryption key
    ak = "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"   # authentication key
    kek = "..."                   # master key (key transfer), optional
    broadcast_key = "..."         # optional
    signing_private_key = "client-sign.pem"   # HLS-ECDSA: our key (PEM path or text)

    [[keys]]                      # the meter, for HLS-ECDSA or to pin its keys
    system_title = "4D4D4D0000BC614E"
    ek = "000102030405060708090A0B0C0D0E0F"
    ak = "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"
    signing_public_key = "meter-sign.pem"     # HLS-ECDSA: the meter's key or certificate

Rules (decisions, also in ``specs/client.md``): the global keys (EK, AK, broadcast key,
master key) come from the client's ``[[keys]]`` entry, else from the meter's; when both
entries exist they must hold the same EK and AK (global keys are shared by both ends, only
the system title in the IV differs). The client's signing key comes from its own entry, the
meter's public key from the meter's entry. Security (system title and keys) is needed for
HLS-GMAC, HLS-ECDSA and any ciphering. Every problem raises
:class:`~cosemcast.errors.ConfigurationError` naming the file and the field, never a value.
"""

from __future__ import annotations

import enum
import os
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ec

from cosemcast.apdu.acse import MechanismName
from cosemcast.association.settings import (
    AssociationSettings,
    Ciphering,
    GlobalKeys,
    SecuritySettings,
)
from cosemcast.errors import ConfigurationError
from cosemcast.security.keyring import PartyKeys, party_from_table

__all__ = [
    "STATE_DIR_VARIABLE",
    "Authentication",
    "Credentials",
    "default_counters_path",
]

STATE_DIR_VARIABLE: Final = "COSEMCAST_STATE_DIR"
_COUNTERS_FILE: Final = "client-counters.sqlite"


class Authentication(enum.Enum):
    """The authentication levels of ``cosemcast read --auth`` (brief §4.2 mechanism names)."""

    NONE = "none"
    LLS = "lls"
    HLS_GMAC = "hls-gmac"
    HLS_ECDSA = "hls-ecdsa"

    @property
    def mechanism(self) -> MechanismName:
        return _MECHANISMS[self]

    @property
    def hls(self) -> bool:
        return self in (Authentication.HLS_GMAC, Authentication.HLS_ECDSA)


_MECHANISMS: Final = {
    Authentication.NONE: MechanismName.LOWEST,
    Authentication.LLS: MechanismName.LOW,
    Authentication.HLS_GMAC: MechanismName.HIGH_GMAC,
    Authentication.HLS_ECDSA: MechanismName.HIGH_ECDSA,
}


def default_counters_path() -> Path:
    """Where the client keeps its invocation counters when nothing else is said.

    ``$COSEMCAST_STATE_DIR/client-counters.sqlite`` if that variable is set, else under the
    user's state directory: ``$XDG_STATE_HOME/cosemcast`` (``~/.local/state/cosemcast``) on
    POSIX, ``%LOCALAPPDATA%\\cosemcast`` on Windows.
    """
    override = os.environ.get(STATE_DIR_VARIABLE)
    if override:
        return Path(override) / _COUNTERS_FILE
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        state = os.environ.get("XDG_STATE_HOME")
        base = Path(state) if state else Path.home() / ".local" / "state"
    return base / "cosemcast" / _COUNTERS_FILE


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """Everything a client needs to open one association; secrets stay out of the repr."""

    client_sap: int = 16
    server_sap: int = 1
    server_physical_address: int | None = None
    auth: Authentication = Authentication.NONE
    password: bytes = field(default=b"", repr=False)
    system_title: bytes | None = None
    server_system_title: bytes | None = None
    security_suite: int | None = None
    ciphering: Ciphering | None = None
    unicast_key: bytes | None = field(default=None, repr=False)
    authentication_key: bytes | None = field(default=None, repr=False)
    broadcast_key: bytes | None = field(default=None, repr=False)
    master_key: bytes | None = field(default=None, repr=False)
    signing_key: ec.EllipticCurvePrivateKey | None = field(default=None, repr=False)
    server_signing_key: ec.EllipticCurvePublicKey | None = field(default=None, repr=False)
    counters: Path | None = None
    max_pdu_size: int = 0xFFFF

    @property
    def effective_ciphering(self) -> Ciphering:
        if self.ciphering is not None:
            return self.ciphering
        return Ciphering.GLOBAL if self.auth.hls else Ciphering.NONE

    @property
    def effective_suite(self) -> int:
        if self.security_suite is not None:
            return self.security_suite
        return 1 if self.auth is Authentication.HLS_ECDSA else 0

    @property
    def needs_security(self) -> bool:
        return self.auth.hls or self.effective_ciphering is not Ciphering.NONE

    @property
    def counters_path(self) -> Path:
        return self.counters if self.counters is not None else default_counters_path()

    def association_settings(self) -> AssociationSettings:
        """The client's :class:`AssociationSettings`; :class:`ConfigurationError` if incomplete."""
        secret = b""
        if self.auth is Authentication.LLS:
            if not self.password:
                raise ConfigurationError("--auth lls needs a password (--password or [client])")
            secret = self.password
        security = self._security() if self.needs_security else None
        return AssociationSettings(
            client_sap=self.client_sap,
            server_sap=self.server_sap,
            mechanism=self.auth.mechanism,
            secret=secret,
            security=security,
            max_receive_pdu_size=self.max_pdu_size,
        )

    def _security(self) -> SecuritySettings:
        why = f"--auth {self.auth.value}" if self.auth.hls else "ciphering"
        if self.system_title is None:
            raise ConfigurationError(
                f"{why} needs the client system title ([client] system_title in the --keys file)"
            )
        if self.unicast_key is None or not self.authentication_key:
            raise ConfigurationError(
                f"{why} needs the global keys ek and ak: a [[keys]] entry in --keys whose "
                "system_title is the client's (or the meter's [client] server_system_title)"
            )
        if self.auth is Authentication.HLS_ECDSA and (
            self.signing_key is None or self.server_signing_key is None
        ):
            raise ConfigurationError(
                "--auth hls-ecdsa needs the client's signing_private_key and the meter's "
                "signing_public_key ([[keys]] entries of both system titles in --keys)"
            )
        return SecuritySettings(
            system_title=self.system_title,
            global_keys=GlobalKeys(self.unicast_key, self.authentication_key, self.broadcast_key),
            suite=self.effective_suite,
            ciphering=self.effective_ciphering,
            peer_system_title=self.server_system_title,
            signing_key=self.signing_key,
            peer_signing_key=self.server_signing_key,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Credentials:
        """Read a credentials file (module docstring)."""
        file = Path(path)
        try:
            with file.open("rb") as fh:
                document = tomllib.load(fh)
        except OSError as exc:
            raise ConfigurationError(f"{file}: cannot read the key file ({exc.strerror})") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{file}: not valid TOML ({exc})") from exc
        unknown = set(document) - {"client", "keys"}
        if unknown:
            raise ConfigurationError(
                f"{file}: unknown top-level entries {sorted(unknown)}; expected [client] and "
                "[[keys]] tables"
            )
        table = document.get("client", {})
        if not isinstance(table, dict):
            raise ConfigurationError(f"{file}: [client] must be a table")
        parties = _parties(document.get("keys", []), file)
        return _from_tables(table, parties, file)


_CLIENT_FIELDS: Final = frozenset(
    {
        "client_sap",
        "server_sap",
        "server_physical_address",
        "auth",
        "password",
        "password_hex",
        "system_title",
        "server_system_title",
        "security_suite",
        "ciphering",
        "counters",
        "max_pdu_size",
    }
)


def _parties(entries: object, file: Path) -> dict[bytes, PartyKeys]:
    if not isinstance(entries, list):
        raise ConfigurationError(f"{file}: keys must be [[keys]] tables")
    parties: dict[bytes, PartyKeys] = {}
    for index, entry in enumerate(entries, start=1):
        where = f"{file}: [[keys]] entry {index}"
        if not isinstance(entry, dict):
            raise ConfigurationError(f"{where} is not a table")
        party = party_from_table(entry, where, file.parent)
        if party.system_title in parties:
            raise ConfigurationError(
                f"{where}: system_title {party.system_title.hex().upper()} appears twice"
            )
        parties[party.system_title] = party
    return parties


def _int(table: dict[str, Any], name: str, where: str, low: int, high: int) -> int | None:
    value = table.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigurationError(f"{where} {name} must be an integer {low}..{high}")
    return value


def _text(table: dict[str, Any], name: str, where: str) -> str | None:
    value = table.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"{where} {name} must be a string")
    return value


def _title(table: dict[str, Any], name: str, where: str) -> bytes | None:
    text = _text(table, name, where)
    if text is None:
        return None
    try:
        title = bytes.fromhex(text)
    except ValueError:
        raise ConfigurationError(f"{where} {name} is not hexadecimal") from None
    if len(title) != 8:
        raise ConfigurationError(f"{where} {name} must be 8 bytes, got {len(title)}")
    return title


def _choice(table: dict[str, Any], name: str, where: str, enum_type: type[enum.Enum]) -> Any:
    text = _text(table, name, where)
    if text is None:
        return None
    try:
        return enum_type(text)
    except ValueError:
        allowed = " | ".join(str(m.value) for m in enum_type)
        raise ConfigurationError(f"{where} {name} must be one of {allowed}") from None


def _password(table: dict[str, Any], where: str) -> bytes:
    text = _text(table, "password", where)
    hex_text = _text(table, "password_hex", where)
    if text is not None and hex_text is not None:
        raise ConfigurationError(f"{where} has both password and password_hex; keep one")
    if hex_text is not None:
        try:
            return bytes.fromhex(hex_text)
        except ValueError:
            raise ConfigurationError(f"{where} password_hex is not hexadecimal") from None
    return b"" if text is None else text.encode("utf-8")


def _from_tables(table: dict[str, Any], parties: dict[bytes, PartyKeys], file: Path) -> Credentials:
    where = f"{file}: [client]"
    unknown = set(table) - _CLIENT_FIELDS
    if unknown:
        raise ConfigurationError(f"{where} has unknown fields {sorted(unknown)}")
    title = _title(table, "system_title", where)
    server_title = _title(table, "server_system_title", where)
    own = parties.get(title) if title is not None else None
    peer = parties.get(server_title) if server_title is not None else None
    if own is not None and peer is not None and (own.ek, own.ak) != (peer.ek, peer.ak):
        raise ConfigurationError(
            f"{file}: the [[keys]] entries of the client and of the meter hold different "
            "ek/ak; global keys are shared by both ends"
        )
    keys = own or peer
    counters_text = _text(table, "counters", where)
    values: dict[str, Any] = {
        "client_sap": _int(table, "client_sap", where, 0, 0x7F),
        "server_sap": _int(table, "server_sap", where, 0, 0x3FFF),
        "server_physical_address": _int(table, "server_physical_address", where, 0, 0x3FFF),
        "auth": _choice(table, "auth", where, Authentication),
        "system_title": title,
        "server_system_title": server_title,
        "security_suite": _int(table, "security_suite", where, 0, 2),
        "ciphering": _choice(table, "ciphering", where, Ciphering),
        "counters": None if counters_text is None else file.parent / counters_text,
        "max_pdu_size": _int(table, "max_pdu_size", where, 64, 0xFFFF),
    }
    password = _password(table, where)
    if password:
        values["password"] = password
    if keys is not None:
        values.update(
            unicast_key=keys.ek,
            authentication_key=keys.ak or None,
            broadcast_key=keys.broadcast_key,
            master_key=keys.kek,
        )
    if own is not None:
        values["signing_key"] = own.signing_private_key
    if peer is not None:
        values["server_signing_key"] = peer.signing_public_key
    return Credentials(**{k: v for k, v in values.items() if v is not None})
