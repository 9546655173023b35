"""More sample captures (imported by ``generate.py``): LLS, HLS-GMAC, one multicast C1 for
several head-ends, and a supervision assignment.

Deterministic like the rest: GCM IVs are system title ‖ invocation counter, key wrap is RFC
3394, the HLS challenges are fixed, the centre signs with RFC 6979 nonces and its key is
derived from a fixed scalar. Every value below is a public test value of these captures.
"""

from __future__ import annotations

from pathlib import Path

from _samples import (
    AK,
    CLIENT_TITLE,
    CONFORMANCE,
    EK,
    METER_TITLE,
    START,
    Clock,
    cosem_time,
    get_request,
    reads,
    value_response,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cosemcast.apdu.acse import (
    AARE,
    AARQ,
    RLRE,
    RLRQ,
    AcseRequirements,
    AcseServiceUser,
    ApplicationContextName,
    MechanismName,
)
from cosemcast.apdu.action import ActionRequestNormal, ActionResponseNormal
from cosemcast.apdu.common import (
    ActionResult,
    CosemMethodDescriptor,
    GetDataValue,
    InvokeIdAndPriority,
    LongInvokeIdAndPriority,
)
from cosemcast.apdu.initiate import InitiateRequest, InitiateResponse
from cosemcast.apdu.notifications import DataNotification
from cosemcast.axdr import (
    Array,
    DoubleLongUnsigned,
    Enumerated,
    LongUnsigned,
    OctetString,
    Structure,
    Unsigned,
)
from cosemcast.capture.pcap import PcapWriter
from cosemcast.link.wrapper import WrapperFrame
from cosemcast.obis import Obis
from cosemcast.security.gcm import SymmetricKeys
from cosemcast.security.hls import gmac_f
from cosemcast.security.protection import PresharedKey, WrapContentKey, cipher_apdu, cipher_general
from cosemcast.supervision.enrollment import EnrollmentRequest
from cosemcast.supervision.initmsg import InitAction, InitMessage
from cosemcast.supervision.kdf import derive_enrollment_key, derive_ki

# --- HLS-GMAC ------------------------------------------------------------------------------------

CTOS = bytes.fromhex("4354536368616C6C656E67652D303031")  # "CTSchallenge-001"
STOC = bytes.fromhex("5354436368616C6C656E67652D303031")  # "STCchallenge-001"
ASSOCIATION_LN = Obis.parse("0-0:40.0.0.255")

# --- one C1 for several head-ends ----------------------------------------------------------------

METER2_TITLE = bytes.fromhex("4D4D4D0000C0FFEE")
HEAD_ENDS = [bytes.fromhex(f"48454144000000{n:02X}") for n in (1, 2, 3, 4)]  # "HEAD" 1..4
HEAD_END_IPS = [f"10.0.1.{n}" for n in (1, 2, 3, 4)]
# Ks of the meter with head-ends 1..3 (keys.toml); head-end 4's is deliberately not there.
KS = [bytes([0xB0 + n]) * 16 for n in (1, 2, 3, 4)]
KP2 = bytes.fromhex("7A7B7C7D7E7F80818283848586878889")
KP2_ID = bytes.fromhex("0000000300000001")
GROUP2_IP = "239.1.2.4"
METER2_IP = "10.0.1.10"

# --- supervision ---------------------------------------------------------------------------------

CENTRE_TITLE = bytes.fromhex("43454E5452450001")  # "CENTRE" 0001
KT = bytes.fromhex("1F1E1D1C1B1A19181716151413121110")
I0 = bytes.fromhex("10293847566574839201ABCDEFFEDCBA")
CENTRE_SCALAR = 0x1C3A5E7F9B2D4F6A8C0E1234567890ABCDEF0123456789ABCDEF0123456789AB
ASSIGNMENT = Obis.parse("0-0:128.3.0.255")
CENTRE_IP = "10.0.2.1"


def centre_signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(CENTRE_SCALAR, ec.SECP256R1())


def centre_public_pem() -> str:
    return (
        centre_signing_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def ki() -> bytes:
    return derive_ki(KT, meter_id=METER_TITLE)


def ke() -> bytes:
    return derive_enrollment_key(KT, meter_id=METER_TITLE)


class _Tcp:
    """A TCP conversation written with :class:`PcapWriter` (wPorts client -> server)."""

    def __init__(
        self,
        w: PcapWriter,
        client: tuple[str, int],
        server: tuple[str, int],
        wports: tuple[int, int],
    ) -> None:
        self.w, self.client, self.server, self.wports = w, client, server, wports
        self.clock = Clock()

    def send(self, raw: bytes, to_meter: bool) -> None:
        t = self.clock.tick(10)
        src, dst = (self.client, self.server) if to_meter else (self.server, self.client)
        sap = self.wports if to_meter else self.wports[::-1]
        self.w.write_tcp(t, src[0], src[1], dst[0], dst[1], WrapperFrame(*sap, raw).encode())


def lls_association_tcp(path: Path) -> None:
    """The reader client (SAP 17, as in the default meter) with LLS (password, mechanism 1):
    AARQ/AARE, reads, RLRQ/RLRE; no ciphering. The password travels in clear; `cosemcast pcap`
    hides it."""
    aarq = AARQ(
        sender_acse_requirements=AcseRequirements.AUTHENTICATION,
        mechanism_name=MechanismName.LOW,
        calling_authentication_value=b"12345678",
        user_information=InitiateRequest(
            proposed_conformance=CONFORMANCE, client_max_receive_pdu_size=0xFFFF
        ),
    )
    aare = AARE(
        responder_acse_requirements=AcseRequirements.AUTHENTICATION,
        mechanism_name=MechanismName.LOW,
        user_information=InitiateResponse(
            negotiated_conformance=CONFORMANCE, server_max_receive_pdu_size=512
        ),
    )
    with PcapWriter(path) as w:
        tcp = _Tcp(w, ("10.0.0.1", 50003), ("10.0.0.10", 4059), (17, 1))
        tcp.send(aarq.encode(), True)
        tcp.send(aare.encode(), False)
        for request, response in reads():
            tcp.send(request.encode(), True)
            tcp.send(response.encode(), False)
        tcp.send(RLRQ().encode(), True)
        tcp.send(RLRE().encode(), False)


def hls_gmac_association_tcp(path: Path) -> None:
    """HLS-GMAC (mechanism 5) with suite 0 glo-ciphering: AARQ with CtoS and a glo-initiate,
    AARE with StoC ("authentication required"), the HLS pass in glo-action (method 1 of the
    association object: f(StoC) from the client, f(CtoS) back, GMAC under the Green Book
    EK/AK), two reads in glo-get, RLRQ/RLRE. SC 0x30 for the APDUs, 0x10 inside f()."""
    keys = SymmetricKeys(EK, AK)
    client, meter = CLIENT_TITLE, METER_TITLE
    ic = {client: 200, meter: 700}

    def glo(apdu: bytes, title: bytes) -> bytes:
        ic[title] += 1
        return cipher_apdu(
            apdu,
            kind="glo",
            security_control=0x30,
            keys=keys,
            system_title=title,
            invocation_counter=ic[title],
        ).encode()

    def glo_initiate(apdu: bytes, title: bytes) -> object:
        ic[title] += 1
        return cipher_apdu(
            apdu,
            kind="glo",
            security_control=0x30,
            keys=keys,
            system_title=title,
            invocation_counter=ic[title],
        )

    initiate = InitiateRequest(proposed_conformance=CONFORMANCE, client_max_receive_pdu_size=0xFFFF)
    aarq = AARQ(
        application_context_name=ApplicationContextName.LOGICAL_NAME_WITH_CIPHERING,
        calling_ap_title=client,
        sender_acse_requirements=AcseRequirements.AUTHENTICATION,
        mechanism_name=MechanismName.HIGH_GMAC,
        calling_authentication_value=CTOS,
        user_information=glo_initiate(initiate.encode(), client),
    )
    response = InitiateResponse(negotiated_conformance=CONFORMANCE, server_max_receive_pdu_size=512)
    aare = AARE(
        application_context_name=ApplicationContextName.LOGICAL_NAME_WITH_CIPHERING,
        result_source_diagnostic=AcseServiceUser.AUTHENTICATION_REQUIRED,
        responding_ap_title=meter,
        responder_acse_requirements=AcseRequirements.AUTHENTICATION,
        mechanism_name=MechanismName.HIGH_GMAC,
        responding_authentication_value=STOC,
        user_information=glo_initiate(response.encode(), meter),
    )
    ic[client] += 1
    f_stoc = gmac_f(keys, client, ic[client], STOC)
    ic[meter] += 1
    f_ctos = gmac_f(keys, meter, ic[meter], CTOS)
    reply = ActionRequestNormal(
        CosemMethodDescriptor(15, ASSOCIATION_LN, 1),
        OctetString(f_stoc),
        invoke_id_and_priority=InvokeIdAndPriority(1),
    )
    answer = ActionResponseNormal(
        ActionResult.SUCCESS,
        GetDataValue(OctetString(f_ctos)),
        invoke_id_and_priority=InvokeIdAndPriority(1),
    )
    with PcapWriter(path) as w:
        tcp = _Tcp(w, ("10.0.0.1", 50004), ("10.0.0.10", 4059), (1, 1))
        tcp.send(aarq.encode(), True)
        tcp.send(aare.encode(), False)
        tcp.send(glo(reply.encode(), client), True)
        tcp.send(glo(answer.encode(), meter), False)
        for request, result in reads()[1:3]:
            tcp.send(glo(request.encode(), client), True)
            tcp.send(glo(result.encode(), meter), False)
        tcp.send(RLRQ().encode(), True)
        tcp.send(RLRE().encode(), False)


def _reading2(n: int) -> DataNotification:
    time = cosem_time(12, 15 * n)
    return DataNotification(
        LongInvokeIdAndPriority(n),
        time,
        Structure(
            (OctetString(METER2_TITLE), DoubleLongUnsigned(2000000 + 125 * n), LongUnsigned(n))
        ),
    )


def shared_payload_multicast(path: Path) -> None:
    """One payload key for four head-ends: a C2 (wrapped-key, Kp under that head-end's own
    Ks) to each of head-ends 1-4, then two C1s to multicast group 239.1.2.4 that every one
    of them opens with Kp. keys.toml has Ks for head-ends 1-3 (the `kek` of their entries),
    not for head-end 4: its C2 stays "no key"; the C1s open all the same."""
    start = START
    not_before = int(start)
    control = DataNotification(
        LongInvokeIdAndPriority(0),
        None,
        Structure(
            (
                OctetString(KP2_ID),
                DoubleLongUnsigned(not_before),
                DoubleLongUnsigned(not_before + 86400),
                DoubleLongUnsigned(2),
                Unsigned(0),
            )
        ),
    ).encode()
    ic = 0
    with PcapWriter(path) as w:
        for n, (head_end, ip, ks) in enumerate(zip(HEAD_ENDS, HEAD_END_IPS, KS, strict=True)):
            ic += 1
            c2 = cipher_general(
                control,
                key=WrapContentKey(ks, KP2),
                security_control=0x30,
                invocation_counter=ic,
                transaction_id=KP2_ID,
                originator_system_title=METER2_TITLE,
                recipient_system_title=head_end,
            )
            frame = WrapperFrame(1, 16, c2.encode()).encode()
            w.write_udp(start + n, METER2_IP, 4059, ip, 4059, frame)
        for n in (1, 2):
            ic += 1
            c1 = cipher_general(
                _reading2(n).encode(),
                key=PresharedKey(KP2),
                security_control=0x30,
                invocation_counter=ic,
                transaction_id=KP2_ID,
                originator_system_title=METER2_TITLE,
                recipient_system_title=b"",
            )
            frame = WrapperFrame(1, 16, c1.encode()).encode()
            w.write_udp(start + 60 * n, METER2_IP, 4059, GROUP2_IP, 4059, frame)


def supervision_assignment(path: Path) -> None:
    """The meter's consent, then its initialization message (specs/supervision.md §5, §7, §8):
    an enrollment request (general-ciphering, SC 0x11, GMAC under Ke, body in clear) from
    the meter to the head-end it chose, over UDP; then the head-end, given the sealed
    initialization message by the centre, relays it (Fig. 6c) in a management association
    (LLS): ACTION load_init_message (method 1 of the assignment object 0-0:128.3.0.255, class
    8962) with the DD as octet-string, and reads back last_init_sequence and
    assigned_head_ends. `cosemcast pcap` opens the init message with the meter's Ki
    (supervision_keys.toml) and shows meter, head-end, action, sequence and window, never I0."""
    start = START
    meter, head_end = METER_TITLE, CLIENT_TITLE
    meter_ip, head_end_ip = "10.0.0.10", "10.0.0.1"
    enrollment = EnrollmentRequest(meter, head_end, int(start), 1).seal(KT)
    message = InitMessage(
        meter_id=meter,
        head_end_id=head_end,
        i0=I0,
        not_before=int(start) + 60,
        not_after=int(start) + 60 + 30 * 86400,
        sequence=1,
        action=InitAction.ASSIGN,
    ).seal(centre_signing_key(), ki(), centre_id=CENTRE_TITLE)
    aarq = AARQ(
        sender_acse_requirements=AcseRequirements.AUTHENTICATION,
        mechanism_name=MechanismName.LOW,
        calling_authentication_value=b"12345678",
        user_information=InitiateRequest(
            proposed_conformance=CONFORMANCE, client_max_receive_pdu_size=0xFFFF
        ),
    )
    aare = AARE(
        responder_acse_requirements=AcseRequirements.AUTHENTICATION,
        mechanism_name=MechanismName.LOW,
        user_information=InitiateResponse(
            negotiated_conformance=CONFORMANCE, server_max_receive_pdu_size=1024
        ),
    )
    load = ActionRequestNormal(
        CosemMethodDescriptor(8962, ASSIGNMENT, 1),
        OctetString(message),
        invoke_id_and_priority=InvokeIdAndPriority(1),
    )
    loaded = ActionResponseNormal(
        ActionResult.SUCCESS, invoke_id_and_priority=InvokeIdAndPriority(1)
    )
    assigned = Array(
        [Structure((OctetString(head_end), Enumerated(0), OctetString(b"10.0.0.1:4059")))]
    )
    with PcapWriter(path) as w:
        w.write_udp(
            start, meter_ip, 4059, head_end_ip, 4059, WrapperFrame(1, 16, enrollment).encode()
        )
        tcp = _Tcp(w, (head_end_ip, 50005), (meter_ip, 4059), (1, 1))
        tcp.clock.ms = 30_000
        tcp.send(aarq.encode(), True)
        tcp.send(aare.encode(), False)
        tcp.send(load.encode(), True)
        tcp.send(loaded.encode(), False)
        tcp.send(get_request(8962, ASSIGNMENT, 3, 2).encode(), True)
        tcp.send(value_response(DoubleLongUnsigned(1), 2).encode(), False)
        tcp.send(get_request(8962, ASSIGNMENT, 2, 3).encode(), True)
        tcp.send(value_response(assigned, 3).encode(), False)
        tcp.send(RLRQ().encode(), True)
        tcp.send(RLRE().encode(), False)
