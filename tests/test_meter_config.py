"""The meter's TOML configuration: the shipped default, every kind of error (named by file,
table and field, never with a key in the message), and an HLS-ECDSA client with PEM keys
associating over TCP."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cosemcast.apdu.acse import MechanismName
from cosemcast.association import (
    Associate,
    AssociationEstablished,
    AssociationSettings,
    Ciphering,
    GlobalKeys,
    SecurityPolicy,
    SecuritySettings,
)
from cosemcast.cli.meter import DEFAULT_KEYS_HELP
from cosemcast.errors import ConfigurationError
from cosemcast.meter import SoftwareMeter, default_config_text, load_config
from cosemcast.meter.build import build_device
from cosemcast.meter.config import Authentication, parse_config
from cosemcast.obis import Obis
from test_meter_support import (
    AK,
    EK,
    ENERGY,
    KEK,
    METER_TITLE,
    PASSWORD,
    START,
    ClientStores,
    tcp_client,
)

DEFAULT = default_config_text()


def test_the_default_configuration_is_a_typical_electricity_meter() -> None:
    config = load_config()
    (device,) = config.devices
    assert device.server_sap == 1 and device.system_title == METER_TITLE
    clients = {c.sap: c for c in device.clients}
    assert clients[16].authentication is Authentication.NONE
    assert clients[17].authentication is Authentication.LLS and clients[17].password == PASSWORD
    management = clients[1]
    assert management.authentication is Authentication.HLS_GMAC
    security = management.security
    assert security is not None
    assert (security.suite, security.ek, security.ak, security.kek) == (0, EK, AK, KEK)
    assert security.policy == SecurityPolicy.all_ciphered()
    assert security.ciphering is Ciphering.GLOBAL
    names = {o.obis: o.class_id for o in device.objects}
    for obis, class_id in (
        ("0-0:1.0.0.255", 8),
        ("1-0:1.8.0.255", 3),
        ("0-0:96.1.0.255", 1),
        ("1-0:99.1.0.255", 7),
        ("0-0:25.9.0.255", 40),
        ("0-0:96.3.10.255", 70),
    ):
        assert names[Obis.parse(obis)] == class_id
    assert "PUBLIC TEST KEYS" in DEFAULT


def test_the_help_lists_exactly_the_default_keys_and_password() -> None:
    """The keys printed by `meter serve --help` are the ones the default file uses."""
    config = load_config()
    security = config.devices[0].clients[2].security
    assert security is not None
    for label, key in (("EK", security.ek), ("AK", security.ak), ("KEK", security.kek)):
        assert key is not None
        assert re.search(rf"{label}\s+{key.hex().upper()}", DEFAULT_KEYS_HELP)
    assert config.devices[0].clients[1].password.decode() in DEFAULT_KEYS_HELP
    assert config.devices[0].system_title.hex().upper() in DEFAULT_KEYS_HELP


def mutated(old: str, new: str) -> str:
    assert old in DEFAULT, old
    return DEFAULT.replace(old, new, 1)


CASES = [
    ("not toml [", "", "not valid TOML"),
    ("[meter]\n", "[meter]\ncolour = 'blue'\n", "[meter] colour: unknown field"),
    (
        'system_title = "4D4D4D0000BC614E"',
        'system_title = "4D4D4D00"',
        "[logical_devices[0]] system_title: must be 8 bytes, got 4",
    ),
    (
        'ek = "000102030405060708090A0B0C0D0E0F"',
        'ek = "000102030405060708090A0B0C0D0EZZ"',
        "[logical_devices[0].clients[2].security] ek: is not hexadecimal",
    ),
    (
        'ak = "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"',
        'ak = "D0D1D2D3D4D5D6D7D8D9DADBDCDD"',
        "[logical_devices[0].clients[2].security] ak: must be 16 bytes, got 14",
    ),
    ("sap = 17", "sap = 16", "[logical_devices[0].clients[1]] sap: client SAP 16 is used twice"),
    (
        'password = "12345678"',
        "",
        "[logical_devices[0].clients[1]] password: an LLS client needs a password",
    ),
    (
        'authentication = "hls-gmac"',
        'authentication = "hls-magic"',
        "[logical_devices[0].clients[2]] authentication: must be one of",
    ),
    (
        'policy = "authenticated-encrypted"',
        'policy = "paranoid"',
        "[logical_devices[0].clients[2].security] policy: unknown policy 'paranoid'",
    ),
    (
        'obis = "0-0:96.1.0.255"',
        'obis = "0-0:96.1.0.999"',
        "[logical_devices[0].objects[1]] obis: '0-0:96.1.0.999' is not an OBIS code",
    ),
    (
        '["8/0-0:1.0.0.255/2", "3/1-0:1.8.0.255/2"]',
        '["8/0-0:1.0.0.255/2", "3/1-0:2.8.0.255/2"]',
        "refers to 1-0:2.8.0.255, which is no object",
    ),
    (
        '["8/0-0:1.0.0.255/2", "3/1-0:1.8.0.255/2"]',
        '["8/0-0:1.0.0.255/2", "3/1-0:1.8.0.255"]',
        "[logical_devices[0].objects[5]] capture_objects: '3/1-0:1.8.0.255' is not \"class/obis",
    ),
    (
        'energy_of = "household"',
        'energy_of = "office"',
        "[logical_devices[0].objects[2]] energy_of: no load curve is named 'office'",
    ),
    (
        "value = 2301",
        "value = 70000",
        "[logical_devices[0].objects[4]] value: 70000 does not fit a long-unsigned",
    ),
    ('unit = "Wh"', 'unit = "furlongs"', "[logical_devices[0].objects[2]] unit: 'furlongs'"),
    (
        'destination = "127.0.0.1:4060"',
        'destination = "localhost"',
        "[logical_devices[0].objects[6]] destination: 'localhost' is not HOST:PORT",
    ),
    (
        'access = "read"',
        'access = "some"',
        "[logical_devices[0].clients[0]] access: must be one of none, read",
    ),
    (
        "[0, 260], [5, 220]",
        "[5, 260], [0, 220]",
        "[load_curves[0]] points: load curve hours must rise",
    ),
    (
        'manufacturer_id = "MMM"',
        'manufacturer_id = "MM1"',
        "[logical_devices[0]] manufacturer_id: must be 3 ASCII letters",
    ),
    (
        'obis = "1-0:32.7.0.255"',
        'obis = "1-0:1.7.0.255"',
        "[logical_devices[0]] objects: logical name 1-0:1.7.0.255 is used twice",
    ),
    (
        "client_sap = 1 ",
        "client_sap = 16 ",
        "objects (0-0:25.9.0.255) protection: client 16 has no keys",
    ),
    (
        'class = "disconnect-control"',
        'class = "toaster"',
        "[logical_devices[0].objects[7]] class: 'toaster' is not one of",
    ),
    ("control_mode = 1", "control_mode = 9", "control_mode: 9 is outside 0..6"),
    ("max_pdu_size = 1024", "max_pdu_size = 10", "[meter] max_pdu_size: 10 is outside 64..65535"),
]


@pytest.mark.parametrize(("old", "new", "message"), CASES, ids=[c[2][:40] for c in CASES])
def test_configuration_errors_name_the_file_table_and_field(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(old if old.startswith("not toml") else mutated(old, new))
    with pytest.raises(ConfigurationError) as info:
        load_config(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text
    for key in (EK, AK):
        assert key.hex() not in text.lower()
    assert "0D0EZZ" not in text and "DCDD" not in text


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"nowhere\.toml"):
        load_config(tmp_path / "nowhere.toml")


def test_a_configuration_needs_a_device_and_a_client() -> None:
    with pytest.raises(ConfigurationError, match="logical_devices: at least one"):
        parse_config("[meter]\n")
    text = '[[logical_devices]]\nserver_sap = 1\nsystem_title = "0000000000000001"\n'
    with pytest.raises(ConfigurationError, match="clients: at least one client"):
        parse_config(text + 'manufacturer_id = "AAA"\n')


def _pem_private(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_public(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


ECDSA_CLIENT = """
  [[logical_devices.clients]]
  sap = 2
  name = "signing head-end"
  authentication = "hls-ecdsa"
  access = "read"

    [logical_devices.clients.security]
    security_setup = "0-0:43.0.1.255"
    suite = 1
    ek = "000102030405060708090A0B0C0D0E0F"
    ak = "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"
    signing_key = "meter-sign.pem"
    client_signing_key = "client-sign.pub.pem"
"""


def test_an_hls_ecdsa_client_with_pem_keys_associates(tmp_path: Path) -> None:
    meter_key = ec.generate_private_key(ec.SECP256R1())
    client_key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "meter-sign.pem").write_bytes(_pem_private(meter_key))
    (tmp_path / "client-sign.pub.pem").write_bytes(_pem_public(client_key))
    marker = "  [[logical_devices.objects]]"
    config = tmp_path / "meter.toml"
    config.write_text(DEFAULT.replace(marker, ECDSA_CLIENT + "\n" + marker, 1))
    settings = AssociationSettings(
        client_sap=2,
        server_sap=1,
        mechanism=MechanismName.HIGH_ECDSA,
        security=SecuritySettings(
            system_title=b"CSCTEST2",
            global_keys=GlobalKeys(EK, AK),
            suite=1,
            signing_key=client_key,
            peer_signing_key=meter_key.public_key(),
        ),
    )
    stores = ClientStores(tmp_path / "client")
    with SoftwareMeter.from_config(config, tmp_path / "s.sqlite3") as meter:
        client = tcp_client(meter.serve_tcp("127.0.0.1", 0).address, settings, stores)
        try:
            established = client.request(Associate())
            assert isinstance(established, AssociationEstablished)
            assert established.mechanism is MechanismName.HIGH_ECDSA
            assert client.get(ENERGY) == 1520400
        finally:
            client.close()
            stores.close()
    wrong_curve = tmp_path / "wrong.toml"
    (tmp_path / "meter-sign.pem").write_bytes(_pem_private(ec.generate_private_key(ec.SECP384R1())))
    wrong_curve.write_text(config.read_text())
    with pytest.raises(ConfigurationError, match=r"clients\[3\]\.security\] signing_key"):
        load_config(wrong_curve)


LINES = DEFAULT.splitlines()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(LINES) - 1),
            st.sampled_from(["drop", "dup", "flip", "value"]),
            st.integers(0, 200),
            st.sampled_from(['"x"', "-1", "[]", "{}", "1.5", "true", '"0-0:1.0.0.255"', "99999"]),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_mangled_configurations_raise_only_configuration_errors(
    edits: list[tuple[int, str, int, str]],
) -> None:
    """Lines dropped, doubled, a character changed or a value replaced: the configuration
    either loads and builds, or raises ConfigurationError, never anything else."""
    lines = list(LINES)
    for index, action, position, value in edits:
        index %= len(lines)
        line = lines[index]
        if action == "drop":
            del lines[index]
        elif action == "dup":
            lines.insert(index, line)
        elif action == "flip" and line:
            at = position % len(line)
            lines[index] = line[:at] + chr((ord(line[at]) + 1) % 128) + line[at + 1 :]
        elif "=" in line:
            lines[index] = line.split("=", 1)[0] + "= " + value
        if not lines:
            break
    try:
        config = parse_config("\n".join(lines))
        for device in config.devices:
            build_device(device, config, lambda: START)
    except ConfigurationError:
        pass
