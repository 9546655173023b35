"""Published AARQ/AARE/GET/SET/ACTION vectors produced and consumed by the association
state machines (brief §4.2, §7.2, §10.2, §10.3).

Each test cites its source: "brief" is /work/shared/reference/DLMS_BRIEF.md; DC is
u9n/dlms-cosem (tests/test_asce/*, tests/test_xdlms/*, tests/test_security.py), GB the Green
Book tables as reproduced there. Byte-exact outputs need the exact invocation counters and
challenges of the vectors, so those tests inject a fixed counter source and a fixed rng.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.acse import AARE, MechanismName
from cosemcast.apdu.common import (
    CosemAttributeDescriptor,
    DataAccessResult,
    GetDataError,
    GetDataValue,
)
from cosemcast.apdu.initiate import Conformance
from cosemcast.association import (
    NEED_DATA,
    Associate,
    AssociationEstablished,
    AssociationSettings,
    Ciphering,
    ClientConnection,
    ClientState,
    Get,
    GetResult,
    GlobalKeys,
    SecuritySettings,
    ServerConnection,
    ServerState,
    Set,
    SetResult,
)
from cosemcast.axdr.types import DoubleLongUnsigned
from cosemcast.errors import AssociationRejected
from cosemcast.obis import Obis
from cosemcast.security.counters import ReceivedCounterStore
from test_association_support import AK, EK, DictBackend

H = bytes.fromhex
GB_ST = H("4D4D4D0000BC614E")  # brief §5.3: the GB example system title
CLIENT_ST = H("4D4D4D0000000001")  # brief §7.2: GB Table 43 client title
CTOS = b"K56iVagY"  # brief §7.2
STOC = b"P6wRJ21F"  # brief §7.2
DEDICATED_KEY = H("00112233445566778899AABBCCDDEEFF")  # brief §4.3 (GB)


class FixedCounters:
    """Hands out the given invocation counters in order (the vectors' values)."""

    def __init__(self, *values: int) -> None:
        self.values = list(values)

    def next(self, key_id: str) -> int:
        return self.values.pop(0)


def fixed_rng(value: bytes):  # type: ignore[no-untyped-def]
    def rng(n: int) -> bytes:
        assert n == len(value)
        return value

    return rng


def received(tmp_path: Path, name: str) -> ReceivedCounterStore:
    return ReceivedCounterStore(tmp_path / f"{name}.sqlite")


def client_events(client: ClientConnection) -> list[object]:
    out = []
    while (event := client.next_event()) is not NEED_DATA:
        out.append(event)
    return out


# --- AARQ produced by the client -------------------------------------------------------------


def test_lls_aarq_matches_dc_vector() -> None:
    # brief §10.2 (DC test_aarq.py): LLS, password "12345678", conformance 007E1F, PDU 1200.
    settings = AssociationSettings(
        mechanism=MechanismName.LOW,
        secret=b"12345678",
        conformance=Conformance(0x007E1F),
        max_receive_pdu_size=1200,
    )
    aarq = ClientConnection(settings).send(Associate())
    assert aarq == H(
        "6036A1090607608574050801018A0207808B0760857405080201AC0A80083132333435363738"
        "BE10040E01000000065F1F0400007E1F04B0"
    )


def test_ciphered_lls_aarq_with_dedicated_key_matches_gb_example(tmp_path: Path) -> None:
    # brief §10.2 (DC test_parse_ciphered_low_security2; GB example): LN-ciphering context,
    # calling-AP-title 4D4D4D0000BC614E, glo-initiateRequest SC 30 IC 01234567 whose
    # plaintext carries the dedicated key 0011..FF (brief §5.3 second GB vector).
    settings = AssociationSettings(
        mechanism=MechanismName.LOW,
        secret=b"12345678",
        conformance=Conformance(0x007E1F),
        max_receive_pdu_size=1200,
        security=SecuritySettings(
            system_title=GB_ST,
            global_keys=GlobalKeys(EK, AK),
            ciphering=Ciphering.DEDICATED,
            dedicated_key=DEDICATED_KEY,
        ),
    )
    client = ClientConnection(
        settings, counters=FixedCounters(0x01234567), received_counters=received(tmp_path, "c")
    )
    assert client.send(Associate()) == H(
        "6066A109060760857405080103A60A04084D4D4D0000BC614E8A0207808B0760857405080201"
        "AC0A80083132333435363738BE34043221303001234567801302FF8A7874133D414CED25B42534"
        "D28DB0047720606B175BD52211BE6841DB204D39EE6FDB8E356855"
    )


def test_hls_gmac_aarq_with_ciphering_matches_derived_vector(tmp_path: Path) -> None:
    # brief §10.2 [DERIVED]: HLS-GMAC, LN-ciphering context, client ST 4D4D4D0000000001,
    # IC 0, CtoS "K56iVagY", plaintext initiate 01000000065F1F0400007E1F04B0.
    settings = AssociationSettings(
        mechanism=MechanismName.HIGH_GMAC,
        conformance=Conformance(0x007E1F),
        max_receive_pdu_size=1200,
        challenge_length=8,
        security=SecuritySettings(system_title=CLIENT_ST, global_keys=GlobalKeys(EK, AK)),
    )
    client = ClientConnection(
        settings,
        counters=FixedCounters(0),
        received_counters=received(tmp_path, "c"),
        rng=fixed_rng(CTOS),
    )
    assert client.send(Associate()) == H(
        "6055A109060760857405080103A60A04084D4D4D00000000018A0207808B0760857405080205"
        "AC0A80084B35366956616759BE230421211F3000000000C0505B89E53A178DB31DED5CCCCEB1"
        "E19F3480524465A8595011"
    )


# --- HLS-GMAC four passes, both sides, GB Table 43 -------------------------------------------

GB_GMAC_AARQ = H(  # brief §7.2 (DC test_aarq.py)
    "6036A1090607608574050801018A0207808B0760857405080205AC0A80084B35366956616759"
    "BE10040E01000000065F1F0400007E1F04B0"
)
GB_GMAC_AARE = H(  # brief §7.2 (DC test_aare.py)
    "6142A109060760857405080101A203020100A305A10302010E88020780890760857405080205"
    "AA0A8008503677524A323146BE10040E0800065F1F040000501F01F40007"
)
GB_REPLY_REQUEST = H(  # brief §10.3 [DERIVED] GB Table 43 f(StoC) as the ACTION request
    "C301C1000F0000280000FF0101091110000000011A52FE7DD3E72748973C1E28"
)
GB_REPLY_RESPONSE = H(  # brief §10.3 [DERIVED] GB Table 43 f(CtoS) in the ACTION response
    "C701C100010009111001234567FE1466AFB3DBCD4F9389E2B7"
)


def gmac_security(own: bytes, peer: bytes) -> SecuritySettings:
    return SecuritySettings(
        system_title=own,
        global_keys=GlobalKeys(EK, AK),
        ciphering=Ciphering.NONE,
        peer_system_title=peer,
    )


def test_client_runs_gb_table_43_hls_gmac(tmp_path: Path) -> None:
    # The brief §7.2 AARQ/AARE carry no AP titles: both titles are configured.
    settings = AssociationSettings(
        mechanism=MechanismName.HIGH_GMAC,
        conformance=Conformance(0x007E1F),
        max_receive_pdu_size=1200,
        challenge_length=8,
        security=gmac_security(CLIENT_ST, GB_ST),
    )
    client = ClientConnection(
        settings,
        counters=FixedCounters(1),
        received_counters=received(tmp_path, "c"),
        rng=fixed_rng(CTOS),
    )
    aarq = client.send(Associate())
    assert dataclasses.replace(decode_apdu(aarq), calling_ap_title=None).encode() == GB_GMAC_AARQ  # type: ignore[type-var]
    client.receive_data(GB_GMAC_AARE)
    assert client_events(client) == []
    assert client.data_to_send() == [GB_REPLY_REQUEST]
    assert client.state is ClientState.AUTHENTICATING
    client.receive_data(GB_REPLY_RESPONSE)
    (event,) = client_events(client)
    assert isinstance(event, AssociationEstablished)
    assert event.conformance == Conformance(0x00501F)
    assert event.server_max_receive_pdu_size == 500
    assert client.state is ClientState.ASSOCIATED


def test_server_runs_gb_table_43_hls_gmac(tmp_path: Path) -> None:
    settings = AssociationSettings(
        mechanism=MechanismName.HIGH_GMAC,
        conformance=Conformance(0x00501F),
        max_receive_pdu_size=500,
        challenge_length=8,
        security=gmac_security(GB_ST, CLIENT_ST),
    )
    server = ServerConnection(
        settings,
        DictBackend(),
        counters=FixedCounters(0x01234567),
        received_counters=received(tmp_path, "s"),
        rng=fixed_rng(STOC),
    )
    server.receive_data(GB_GMAC_AARQ)
    assert server.next_event() is NEED_DATA
    (aare,) = server.data_to_send()
    decoded = decode_apdu(aare)
    assert isinstance(decoded, AARE) and decoded.responding_ap_title == GB_ST
    assert dataclasses.replace(decoded, responding_ap_title=None).encode() == GB_GMAC_AARE
    assert server.state is ServerState.AUTHENTICATING
    server.receive_data(GB_REPLY_REQUEST)
    assert server.next_event() is not NEED_DATA  # ClientAssociated
    assert server.data_to_send() == [GB_REPLY_RESPONSE]
    assert server.state is ServerState.ASSOCIATED


# --- AARE produced by the server -------------------------------------------------------------


def test_server_accepts_dc_aarq_with_dc_aare() -> None:
    # brief §10.1 d/e (DC TestInformationFrame): the AARQ and AARE inside the I-frames,
    # conformance 001E1D, client max PDU FFFF, server max PDU 04C8.
    aarq = H("601DA109060760857405080101BE10040E01000000065F1F0400001E1DFFFF")
    settings = AssociationSettings(conformance=Conformance(0x001E1D), max_receive_pdu_size=0x04C8)
    server = ServerConnection(settings, DictBackend())
    server.receive_data(aarq)
    server.next_event()
    assert server.data_to_send() == [
        H("6129A109060760857405080101A203020100A305A103020100BE10040E0800065F1F0400001E1D04C80007")
    ]


def test_server_answers_gb_ciphered_aarq_with_gb_glo_initiate_response(tmp_path: Path) -> None:
    # brief §5.3 second GB vector: the response 28 1F 30 01234567 8912… decrypts (server ST
    # 4D4D4D0000BC614E) to 0800065F1F0400007C1F04000007: conformance 007C1F, max PDU 0400.
    gb_aarq = H(
        "6066A109060760857405080103A60A04084D4D4D0000BC614E8A0207808B0760857405080201"
        "AC0A80083132333435363738BE34043221303001234567801302FF8A7874133D414CED25B42534"
        "D28DB0047720606B175BD52211BE6841DB204D39EE6FDB8E356855"
    )
    settings = AssociationSettings(
        mechanism=MechanismName.LOW,
        secret=b"12345678",
        conformance=Conformance(0x007C1F),
        max_receive_pdu_size=0x0400,
        security=SecuritySettings(
            system_title=GB_ST, global_keys=GlobalKeys(EK, AK), ciphering=Ciphering.DEDICATED
        ),
    )
    server = ServerConnection(
        settings,
        DictBackend(),
        counters=FixedCounters(0x01234567),
        received_counters=received(tmp_path, "s"),
    )
    server.receive_data(gb_aarq)
    server.next_event()
    (aare,) = server.data_to_send()
    decoded = decode_apdu(aare)
    assert isinstance(decoded, AARE)
    assert decoded.user_information is not None
    assert decoded.user_information.encode() == H(
        "281F3001234567891214A0845E475714383F65BC19745CA235906525E4F3E1C893"
    )
    assert server.state is ServerState.ASSOCIATED


# --- AAREs consumed by the client ------------------------------------------------------------


@pytest.mark.parametrize(
    ("aare", "diagnostic"),
    [
        # brief §10.2 (DC): application context not supported
        (
            "6129A109060760857405080101A203020101A305A103020102BE10040E0800065F1F040000501F01F40007",
            2,
        ),
        # brief §10.2 (DC): rejected, user-information = initiate error dlms-version-too-low
        ("611FA109060760857405080101A203020101A305A103020101BE0604040E010601", 1),
    ],
)
def test_client_raises_association_rejected_for_dc_rejections(aare: str, diagnostic: int) -> None:
    client = ClientConnection(AssociationSettings())
    client.send(Associate())
    client.receive_data(H(aare))
    with pytest.raises(AssociationRejected) as info:
        client.next_event()
    assert info.value.result == 1
    assert info.value.diagnostic == diagnostic
    assert client.state is ClientState.IDLE
    if diagnostic == 1:
        assert "DLMS_VERSION_TOO_LOW" in str(info.value)


def test_client_accepts_long_form_aare_lengths() -> None:
    # brief §10.1 e (DC) AARE, re-encoded with long-form BER lengths (81 xx) on the outer
    # element and on user-information: meters send this (issue 3 quirk).
    short = H(
        "6129A109060760857405080101A203020100A305A103020100BE10040E0800065F1F0400001E1D04C80007"
    )
    inner = short[2:]
    user_information = inner[inner.index(b"\xbe") :]
    long_ui = b"\xbe\x81\x10" + user_information[2:]
    body = inner[: inner.index(b"\xbe")] + long_ui
    long_form = b"\x61\x81" + bytes((len(body),)) + body
    client = ClientConnection(AssociationSettings(conformance=Conformance(0x001E1D)))
    client.send(Associate())
    client.receive_data(long_form)
    (event,) = client_events(client)
    assert isinstance(event, AssociationEstablished)
    assert event.server_max_receive_pdu_size == 0x04C8


# --- GET / SET through the client ------------------------------------------------------------


def associated_client() -> ClientConnection:
    client = ClientConnection(AssociationSettings())
    client.send(Associate())
    client.receive_data(
        H("6129A109060760857405080101A203020100A305A103020100BE10040E0800065F1F0400007E1F04C80007")
    )
    client_events(client)
    return client


def test_get_normal_matches_dc_vectors() -> None:
    # brief §10.3 (DC test_get.py): request C001C1 0001 00002B0100FF 02 00; response
    # C401C1 00 06 00001391 (double-long-unsigned 5009), error form C401C1 01 01.
    client = associated_client()
    descriptor = CosemAttributeDescriptor(1, Obis(0, 0, 43, 1, 0, 255), 2)
    assert client.send(Get(descriptor)) == H("C001C1000100002B0100FF0200")
    client.receive_data(H("C401C1000600001391"))
    assert client_events(client) == [GetResult(GetDataValue(DoubleLongUnsigned(5009)))]
    assert client.send(Get(descriptor)) == H("C001C2000100002B0100FF0200")
    client.receive_data(H("C401C20101"))
    assert client_events(client) == [GetResult(GetDataError(DataAccessResult.HARDWARE_FAULT))]


def test_set_normal_matches_dc_vectors() -> None:
    # brief §10.3 (DC test_set.py): SET Clock.time, response C501C1 00.
    client = associated_client()
    request = H("C101C100080000010000FF0200090C07E50118FF0E303950FFC400")
    value = decode_apdu(request).value  # type: ignore[attr-defined]
    clock_time = CosemAttributeDescriptor(8, Obis(0, 0, 1, 0, 0, 255), 2)
    assert client.send(Set(clock_time, value)) == request
    client.receive_data(H("C501C100"))
    assert client_events(client) == [SetResult(DataAccessResult.SUCCESS)]
