"""The credentials TOML of the client: ``[client]`` plus the ``[[keys]]`` tables of the key
file. Keys: Green Book example EK/AK and the titles of ../shared/captures/keys.toml (brief
§5.3; GB Table 40 via DC tests/test_security.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cosemcast.apdu.acse import MechanismName
from cosemcast.association import Ciphering
from cosemcast.client import Authentication, Credentials, default_counters_path
from cosemcast.errors import ConfigurationError
from test_client_support import AK, CLIENT_TITLE, EK, METER_TITLE, signing_key, write_pem

CAPTURE_KEYS = Path(__file__).resolve().parents[2] / "shared" / "captures" / "keys.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "client.toml"
    path.write_text(text)
    return path


KEYS = f"""
[[keys]]
system_title = "{CLIENT_TITLE.hex().upper()}"
ek = "{EK.hex()}"
ak = "{AK.hex()}"
kek = "{bytes(range(16)).hex()}"

[[keys]]
system_title = "{METER_TITLE.hex()}"
ek = "{EK.hex()}"
ak = "{AK.hex()}"
"""


def test_a_full_hls_gmac_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
[client]
client_sap = 1
server_sap = 1
server_physical_address = 17
auth = "hls-gmac"
system_title = "{CLIENT_TITLE.hex()}"
server_system_title = "{METER_TITLE.hex()}"
counters = "state/counters.sqlite"
max_pdu_size = 512
"""
        + KEYS,
    )
    creds = Credentials.load(path)
    assert creds.client_sap == 1 and creds.server_physical_address == 17
    assert creds.auth is Authentication.HLS_GMAC
    assert creds.unicast_key == EK and creds.authentication_key == AK
    assert creds.master_key == bytes(range(16))
    assert creds.counters_path == tmp_path / "state" / "counters.sqlite"
    settings = creds.association_settings()
    assert settings.mechanism is MechanismName.HIGH_GMAC
    assert settings.max_receive_pdu_size == 512
    security = settings.security
    assert security is not None
    assert security.system_title == CLIENT_TITLE
    assert security.peer_system_title == METER_TITLE
    assert security.ciphering is Ciphering.GLOBAL and security.suite == 0
    for secret in (EK, AK, bytes(range(16))):
        assert secret.hex() not in repr(creds).lower()
        assert secret.hex() not in repr(settings).lower()


def test_defaults_are_the_public_client_without_security(tmp_path: Path) -> None:
    creds = Credentials.load(write(tmp_path, ""))
    settings = creds.association_settings()
    assert (settings.client_sap, settings.server_sap) == (16, 1)
    assert settings.mechanism is MechanismName.LOWEST and settings.security is None


def test_lls_password_as_text_or_hex(tmp_path: Path) -> None:
    text = Credentials.load(write(tmp_path, '[client]\nauth = "lls"\npassword = "12345678"\n'))
    assert text.association_settings().secret == b"12345678"
    assert "12345678" not in repr(text)
    raw = Credentials.load(write(tmp_path, '[client]\nauth = "lls"\npassword_hex = "00FF"\n'))
    assert raw.password == b"\x00\xff"
    with pytest.raises(ConfigurationError, match="password"):
        Credentials(auth=Authentication.LLS).association_settings()
    both = '[client]\npassword = "a"\npassword_hex = "00"\n'
    with pytest.raises(ConfigurationError, match="keep one"):
        Credentials.load(write(tmp_path, both))


def test_hls_ecdsa_takes_pem_paths_relative_to_the_file(tmp_path: Path) -> None:
    write_pem(tmp_path / "client.pem", signing_key("client"))
    write_pem(tmp_path / "meter.pem", signing_key("meter"), public=True)
    path = write(
        tmp_path,
        f"""
[client]
auth = "hls-ecdsa"
system_title = "{CLIENT_TITLE.hex()}"
server_system_title = "{METER_TITLE.hex()}"

[[keys]]
system_title = "{CLIENT_TITLE.hex()}"
ek = "{EK.hex()}"
ak = "{AK.hex()}"
signing_private_key = "client.pem"

[[keys]]
system_title = "{METER_TITLE.hex()}"
ek = "{EK.hex()}"
ak = "{AK.hex()}"
signing_public_key = "meter.pem"
""",
    )
    creds = Credentials.load(path)
    settings = creds.association_settings()
    assert settings.mechanism is MechanismName.HIGH_ECDSA
    assert settings.security is not None and settings.security.suite == 1
    assert settings.security.peer_signing_key is not None
    pem_free = dataclasses.replace(creds, server_signing_key=None)
    with pytest.raises(ConfigurationError, match="signing_public_key"):
        pem_free.association_settings()


def test_the_shared_capture_key_file_is_a_credentials_file(tmp_path: Path) -> None:
    if not CAPTURE_KEYS.is_file():
        pytest.skip("../shared/captures not present")
    text = CAPTURE_KEYS.read_text()
    text = f'[client]\nauth = "hls-gmac"\nsystem_title = "{CLIENT_TITLE.hex()}"\n' + text
    creds = Credentials.load(write(tmp_path, text))
    assert creds.unicast_key == EK and creds.authentication_key == AK


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[client]\nauth = "hls"\n', "none | lls | hls-gmac | hls-ecdsa"),
        ("[client]\nclient_sap = 300\n", "client_sap must be an integer 0..127"),
        ("[client]\ncolour = 1\n", "unknown fields"),
        ('[client]\nsystem_title = "0102"\n', "8 bytes"),
        ('[client]\nsystem_title = "zz"\n', "not hexadecimal"),
        ('[client]\nciphering = "aes"\n', "glo"),
        ("[meter]\nx = 1\n", "unknown top-level"),
        ("[client\n", "not valid TOML"),
        ('[[keys]]\nsystem_title = "4142434445464748"\nek = "00"\n', "16 or 32 bytes"),
    ],
)
def test_bad_files_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        Credentials.load(write(tmp_path, text))
    assert str(tmp_path) in str(caught.value)


def test_key_entries_that_disagree_are_refused_without_showing_keys(tmp_path: Path) -> None:
    other = bytes(range(16, 32))
    text = f"""
[client]
system_title = "{CLIENT_TITLE.hex()}"
server_system_title = "{METER_TITLE.hex()}"

[[keys]]
system_title = "{CLIENT_TITLE.hex()}"
ek = "{EK.hex()}"
ak = "{AK.hex()}"

[[keys]]
system_title = "{METER_TITLE.hex()}"
ek = "{other.hex()}"
ak = "{AK.hex()}"
"""
    with pytest.raises(ConfigurationError, match="different") as caught:
        Credentials.load(write(tmp_path, text))
    assert EK.hex() not in str(caught.value).lower()
    assert other.hex() not in str(caught.value).lower()


def test_security_needs_a_title_and_keys() -> None:
    with pytest.raises(ConfigurationError, match="system title"):
        Credentials(auth=Authentication.HLS_GMAC).association_settings()
    with pytest.raises(ConfigurationError, match="ek and ak"):
        Credentials(auth=Authentication.HLS_GMAC, system_title=CLIENT_TITLE).association_settings()
    ciphered = Credentials(
        ciphering=Ciphering.GLOBAL, system_title=CLIENT_TITLE, unicast_key=EK, authentication_key=AK
    )
    settings = ciphered.association_settings()
    assert settings.mechanism is MechanismName.LOWEST and settings.ciphered


def test_the_default_counter_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COSEMCAST_STATE_DIR", str(tmp_path / "s"))
    assert default_counters_path() == tmp_path / "s" / "client-counters.sqlite"
    monkeypatch.delenv("COSEMCAST_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_counters_path() == tmp_path / "xdg" / "cosemcast" / "client-counters.sqlite"
    assert Credentials().counters_path == default_counters_path()
