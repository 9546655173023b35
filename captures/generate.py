"""Write the sample captures of this folder with cosemcast's own codecs (deterministic).

Run ``python captures/generate.py`` to rewrite them; ``tests/test_cli_pcap.py`` checks that
the committed files are byte for byte what this script produces. Every APDU is built from the
project's APDU dataclasses and protected by :mod:`cosemcast.security.protection`; the frames
are written with :class:`cosemcast.capture.pcap.PcapWriter` (TCP, UDP) and
:class:`cosemcast.capture.serial_pcap.SerialPcapWriter` (serial HDLC, link type 147). GCM is
deterministic here (IV = system title ‖ invocation counter) and so is RFC 3394 key wrap, so
the files never change unless the code does. ``keys.toml`` holds the keys of every capture;
the payload key ``Kp`` of the shared-payload capture is not in it: the capture teaches it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from cosemcast.apdu.acse import AARE, AARQ, RLRE, RLRQ, ApplicationContextName, MechanismName
from cosemcast.apdu.common import (
    CosemAttributeDescriptor,
    DataBlockG,
    InvokeIdAndPriority,
    LongInvokeIdAndPriority,
)
from cosemcast.apdu.get import (
    GetRequestNext,
    GetResponseWithDataBlock,
)
from cosemcast.apdu.initiate import InitiateRequest, InitiateResponse
from cosemcast.apdu.notifications import DataNotification, EventNotificationRequest
from cosemcast.axdr import (
    DoubleLongUnsigned,
    LongUnsigned,
    OctetString,
    Structure,
    Unsigned,
    encode_data,
    encode_datetime_bytes,
)
from cosemcast.capture.pcap import PcapWriter
from cosemcast.capture.serial_pcap import SerialDirection, SerialPcapWriter
from cosemcast.link.hdlc import (
    FrameType,
    HdlcAddress,
    HdlcFrame,
    HdlcParameters,
    LlcHeader,
    encode_parameters,
)
from cosemcast.link.wrapper import WrapperFrame
from cosemcast.security.gcm import SymmetricKeys
from cosemcast.security.protection import PresharedKey, WrapContentKey, cipher_apdu, cipher_general

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import generate_more  # noqa: E402
from _samples import (  # noqa: E402 - needs this folder on sys.path
    AK,
    CLIENT_IP,
    CLIENT_TITLE,
    CLOCK,
    CONFORMANCE,
    DEDICATED_KEY,
    EK,
    GROUP_IP,
    HEADEND_IP,
    KEK,
    KP,
    KP_ID,
    LOAD_PROFILE,
    METER_IP,
    METER_TITLE,
    START,
    Clock,
    cosem_time,
    get_request,
    plain_association,
    profile_rows,
    reads,
    value_response,
)

# --- TCP: a plain association and reads ----------------------------------------------------------


def plain_association_tcp(path: Path) -> None:
    """Client SAP 16 -> logical device 1, no security; the profile comes in two GET blocks.
    One request is split over two TCP segments and two answers share one segment."""
    aarq, aare = plain_association()
    client, meter = (CLIENT_IP, 50001), (METER_IP, 4059)
    clock = Clock()
    with PcapWriter(path) as w:

        def send(apdu: object, to_meter: bool, *, cut: int | None = None) -> None:
            t = clock.tick(10)
            src, dst = (client, meter) if to_meter else (meter, client)
            sap = (16, 1) if to_meter else (1, 16)
            frame = WrapperFrame(*sap, apdu.encode()).encode()  # type: ignore[attr-defined]
            if cut is None:
                w.write_tcp(t, src[0], src[1], dst[0], dst[1], frame)
            else:
                w.write_tcp(t, src[0], src[1], dst[0], dst[1], frame[:cut])
                t = clock.tick(2)
                w.write_tcp(t, src[0], src[1], dst[0], dst[1], frame[cut:])

        send(aarq, True)
        send(aare, False)
        for n, (request, response) in enumerate(reads()):
            send(request, True, cut=5 if n == 1 else None)
            send(response, False)
        rows = encode_data(profile_rows(6))
        half = len(rows) // 2
        send(get_request(7, LOAD_PROFILE, 2, 5), True)
        send(
            GetResponseWithDataBlock(DataBlockG(False, 1, rows[:half]), InvokeIdAndPriority(5)),
            False,
        )
        send(GetRequestNext(1, InvokeIdAndPriority(5)), True)
        # The last block and an event notification leave in one segment.
        t = clock.tick(10)
        last = GetResponseWithDataBlock(DataBlockG(True, 2, rows[half:]), InvokeIdAndPriority(5))
        event = EventNotificationRequest(
            time=cosem_time(10, 31),
            cosem_attribute_descriptor=CosemAttributeDescriptor(8, CLOCK, 2),
            attribute_value=OctetString(encode_datetime_bytes(cosem_time(10, 31))),
        )
        both = b"".join(WrapperFrame(1, 16, a.encode()).encode() for a in (last, event))
        w.write_tcp(t, meter[0], meter[1], client[0], client[1], both)
        send(RLRQ(), True)
        send(RLRE(), False)


# --- TCP: a ciphered association (glo- and ded-) -------------------------------------------------


def ciphered_association_tcp(path: Path) -> None:
    """LN with ciphering, LLS password, security control 0x30; the glo-initiate carries a
    dedicated key, reads use glo- then ded- ciphering."""
    keys = SymmetricKeys(EK, AK)
    dedicated = SymmetricKeys(DEDICATED_KEY, AK)
    client_ic, meter_ic = 100, 500
    initiate = InitiateRequest(
        dedicated_key=DEDICATED_KEY,
        proposed_conformance=CONFORMANCE,
        client_max_receive_pdu_size=0xFFFF,
    )
    aarq = AARQ(
        application_context_name=ApplicationContextName.LOGICAL_NAME_WITH_CIPHERING,
        calling_ap_title=CLIENT_TITLE,
        mechanism_name=MechanismName.LOW,
        calling_authentication_value=b"12345678",
        user_information=cipher_apdu(
            initiate.encode(),
            kind="glo",
            security_control=0x30,
            keys=keys,
            system_title=CLIENT_TITLE,
            invocation_counter=client_ic,
        ),
    )
    response = InitiateResponse(negotiated_conformance=CONFORMANCE, server_max_receive_pdu_size=512)
    aare = AARE(
        application_context_name=ApplicationContextName.LOGICAL_NAME_WITH_CIPHERING,
        responding_ap_title=METER_TITLE,
        user_information=cipher_apdu(
            response.encode(),
            kind="glo",
            security_control=0x30,
            keys=keys,
            system_title=METER_TITLE,
            invocation_counter=meter_ic,
        ),
    )
    client, meter = (CLIENT_IP, 50002), (METER_IP, 4059)
    clock = Clock()
    with PcapWriter(path) as w:

        def send(raw: bytes, to_meter: bool) -> None:
            t = clock.tick(10)
            src, dst = (client, meter) if to_meter else (meter, client)
            sap = (1, 1)
            w.write_tcp(t, src[0], src[1], dst[0], dst[1], WrapperFrame(*sap, raw).encode())

        send(aarq.encode(), True)
        send(aare.encode(), False)
        for n, (request, answer) in enumerate(reads()):
            kind: Literal["glo", "ded"] = "glo" if n < 2 else "ded"
            client_ic += 1
            meter_ic += 1
            for apdu, to_meter, title, ic in (
                (request, True, CLIENT_TITLE, client_ic),
                (answer, False, METER_TITLE, meter_ic),
            ):
                ciphered = cipher_apdu(
                    apdu.encode(),  # type: ignore[attr-defined]
                    kind=kind,
                    security_control=0x30,
                    keys=keys if kind == "glo" else dedicated,
                    system_title=title,
                    invocation_counter=ic,
                )
                send(ciphered.encode(), to_meter)
        send(RLRQ().encode(), True)
        send(RLRE().encode(), False)


# --- serial: HDLC with the mode E sign-on --------------------------------------------------------


def serial_hdlc_session(path: Path) -> None:
    """IEC 62056-21 mode E sign-on, SNRM/UA, a plain association, reads (the profile answer
    segmented over three I frames with RR in between), DISC/UA."""
    client = HdlcAddress.client(16)
    server = HdlcAddress.server(1, 17)
    aarq, aare = plain_association()
    clock = Clock()
    ns = {True: 0, False: 0}  # N(S) of the client (True) and of the meter
    with SerialPcapWriter(path) as w:

        def write(direction: SerialDirection, data: bytes) -> None:
            w.write(clock.tick(50), direction, data)

        def frame(to_meter: bool, frame: HdlcFrame) -> None:
            direction = (
                SerialDirection.CLIENT_TO_SERVER if to_meter else SerialDirection.SERVER_TO_CLIENT
            )
            write(direction, frame.encode())

        def i_frames(to_meter: bool, apdu: bytes, max_info: int = 128) -> None:
            dst, src = (server, client) if to_meter else (client, server)
            llc = LlcHeader.COMMAND if to_meter else LlcHeader.RESPONSE
            info = llc.value + apdu
            chunks = [info[i : i + max_info] for i in range(0, len(info), max_info)]
            for n, chunk in enumerate(chunks):
                last = n == len(chunks) - 1
                frame(
                    to_meter,
                    HdlcFrame(
                        FrameType.I,
                        dst,
                        src,
                        send_sequence=ns[to_meter],
                        receive_sequence=ns[not to_meter],
                        segmented=not last,
                        information=chunk,
                    ),
                )
                ns[to_meter] = (ns[to_meter] + 1) % 8
                if not last:
                    # The peer asks for the next segment (brief §2.7).
                    frame(
                        not to_meter,
                        HdlcFrame(FrameType.RR, src, dst, receive_sequence=ns[to_meter]),
                    )

        write(SerialDirection.CLIENT_TO_SERVER, b"/?!\r\n")
        write(SerialDirection.SERVER_TO_CLIENT, b"/CCT5\\2cosemcast\r\n")
        write(SerialDirection.CLIENT_TO_SERVER, b"\x06" + b"252\r\n")
        parameters = encode_parameters(HdlcParameters(128, 128, 1, 1))
        frame(True, HdlcFrame(FrameType.SNRM, server, client, information=parameters))
        frame(False, HdlcFrame(FrameType.UA, client, server, information=parameters))
        i_frames(True, aarq.encode())
        i_frames(False, aare.encode())
        for request, response in reads():
            i_frames(True, request.encode())  # type: ignore[attr-defined]
            i_frames(False, response.encode())  # type: ignore[attr-defined]
        i_frames(True, get_request(7, LOAD_PROFILE, 2, 5).encode())
        i_frames(False, value_response(profile_rows(12), 5).encode())
        i_frames(True, RLRQ().encode())
        i_frames(False, RLRE().encode())
        frame(True, HdlcFrame(FrameType.DISC, server, client))
        frame(False, HdlcFrame(FrameType.UA, client, server))


# --- UDP: pushes ---------------------------------------------------------------------------------


def _reading(n: int) -> DataNotification:
    return DataNotification(
        LongInvokeIdAndPriority(n),
        cosem_time(11, 15 * n),
        Structure(
            (OctetString(METER_TITLE), DoubleLongUnsigned(123456789 + 250 * n), LongUnsigned(n))
        ),
    )


def push_general_glo_udp(path: Path) -> None:
    """Three DATA-NOTIFICATIONs in general-glo-ciphering (SC 0x30) to the head-end."""
    keys = SymmetricKeys(EK, AK)
    with PcapWriter(path) as w:
        for n in range(1, 4):
            ciphered = cipher_apdu(
                _reading(n).encode(),
                kind="general-glo",
                security_control=0x30,
                keys=keys,
                system_title=METER_TITLE,
                invocation_counter=1000 + n,
            )
            frame = WrapperFrame(1, 16, ciphered.encode()).encode()
            w.write_udp(START + 900 * n, METER_IP, 4059, HEADEND_IP, 4059, frame)


def shared_payload_c2_c1(path: Path) -> None:
    """The shared-payload flow in miniature (specs/shared-payload.md §4.1, §4.2, §5.2): a C2
    control message to the head-end (general-ciphering, wrapped-key: Kp wrapped under Ks,
    transaction-id = kp_id, the control body in a DATA-NOTIFICATION), then two C1 shared
    payloads to a multicast group (no key-info, empty recipient, the same kp_id), opened with
    the Kp learnt from C2. SC 0x30 and no AK in the AAD; the C2 takes IC 1, the C1s 2 and 3."""
    not_before = int(START)
    control_body = DataNotification(
        LongInvokeIdAndPriority(0),
        None,
        Structure(
            (
                OctetString(KP_ID),
                DoubleLongUnsigned(not_before),
                DoubleLongUnsigned(not_before + 86400),
                DoubleLongUnsigned(2),
                Unsigned(0),
            )
        ),
    )
    c2 = cipher_general(
        control_body.encode(),
        key=WrapContentKey(KEK, KP),
        security_control=0x30,
        invocation_counter=1,
        transaction_id=KP_ID,
        originator_system_title=METER_TITLE,
        recipient_system_title=CLIENT_TITLE,
    )
    with PcapWriter(path) as w:
        w.write_udp(
            START, METER_IP, 4059, HEADEND_IP, 4059, WrapperFrame(1, 16, c2.encode()).encode()
        )
        for n in (1, 2):
            c1 = cipher_general(
                _reading(n).encode(),
                key=PresharedKey(KP),
                security_control=0x30,
                invocation_counter=1 + n,
                transaction_id=KP_ID,
                originator_system_title=METER_TITLE,
                recipient_system_title=b"",
            )
            frame = WrapperFrame(1, 16, c1.encode()).encode()
            w.write_udp(START + 60 * n, METER_IP, 4059, GROUP_IP, 4059, frame)


CAPTURES: dict[str, Callable[[Path], None]] = {
    "plain_association_tcp.pcap": plain_association_tcp,
    "ciphered_association_tcp.pcap": ciphered_association_tcp,
    "serial_hdlc_session.pcap": serial_hdlc_session,
    "push_general_glo_udp.pcap": push_general_glo_udp,
    "shared_payload_c2_c1.pcap": shared_payload_c2_c1,
    "lls_association_tcp.pcap": generate_more.lls_association_tcp,
    "hls_gmac_association_tcp.pcap": generate_more.hls_gmac_association_tcp,
    "shared_payload_multicast.pcap": generate_more.shared_payload_multicast,
    "supervision_assignment.pcap": generate_more.supervision_assignment,
}
# The key file of each capture (default keys.toml): the supervision capture needs the meter's
# Ki and Ke, fields only `cosemcast pcap` reads (specs/pcap.md §3).
KEY_FILES: dict[str, str] = {"supervision_assignment.pcap": "supervision_keys.toml"}
# Exit status of `cosemcast pcap --keys` on each capture (default 0): head-end 4's Ks is not
# in keys.toml, so its C2 is "no key" (4) on purpose.
EXPECTED_STATUS: dict[str, int] = {"shared_payload_multicast.pcap": 4}


def write_all(folder: Path = HERE) -> list[Path]:
    """Write every capture into ``folder``; return their paths."""
    written = []
    for name, make in CAPTURES.items():
        make(folder / name)
        written.append(folder / name)
    return written


if __name__ == "__main__":
    for written_path in write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print(written_path)
