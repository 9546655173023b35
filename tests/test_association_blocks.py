"""Block transfer in both directions: service-specific datablocks/pblocks and
general-block-transfer (brief §4.5, §4.7), through the in-memory pair with small PDU sizes;
and the bookkeeping of cosemcast.association.blocks on its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.acse import MechanismName
from cosemcast.apdu.common import (
    ActionResult,
    CosemAttributeDescriptorWithSelection,
    DataAccessResult,
    GetDataError,
    GetDataValue,
    InvokeIdAndPriority,
    encode_sequence_of,
)
from cosemcast.apdu.gbt import GeneralBlockTransfer
from cosemcast.apdu.get import GetRequestNext, GetResponseWithDataBlock
from cosemcast.apdu.initiate import Conformance
from cosemcast.apdu.notifications import ExceptionServiceError
from cosemcast.association import (
    Action,
    ActionList,
    Ciphering,
    ClientState,
    Get,
    GetList,
    GetListResult,
    GetResult,
    MethodListResult,
    MethodResult,
    ServiceException,
    Set,
    SetList,
    SetListResult,
    SetResult,
)
from cosemcast.association.blocks import (
    GbtSession,
    IncomingBlocks,
    OutgoingBlocks,
    decode_get_data_results,
    decode_pblock_results,
    decode_values,
    payload_room,
    split,
)
from cosemcast.association.settings import DEFAULT_CONFORMANCE
from cosemcast.axdr.codec import encode_data
from cosemcast.axdr.types import Array, OctetString, Structure, Unsigned, same_data
from cosemcast.errors import DecodeError, LocalProtocolError, RemoteProtocolError
from strategies import data_values
from test_association_support import (
    BLOB,
    ECHO,
    ENERGY,
    RESET,
    SERIAL,
    Pair,
    associated_pair,
)

W = CosemAttributeDescriptorWithSelection
GBT = DEFAULT_CONFORMANCE | Conformance.GENERAL_BLOCK_TRANSFER
BIG = OctetString(bytes(range(256)) * 6)


def blob(pair: Pair) -> object:
    return pair.backend.values[(BLOB.class_id, BLOB.instance_id, 2)]


def tags(pair: Pair, direction: str) -> set[tuple[int, int]]:
    """(tag, choice) of the plain APDUs sent one way (ciphered ones show their outer tag)."""
    return {(apdu[0], apdu[1]) for apdu in pair.sent_by(direction)}


CIPHERINGS = [None, Ciphering.GLOBAL, Ciphering.DEDICATED, Ciphering.GENERAL_GLOBAL]


@pytest.mark.parametrize("ciphering", CIPHERINGS)
def test_long_get_comes_in_datablocks(tmp_path: Path, ciphering: Ciphering | None) -> None:
    pair = associated_pair(tmp_path, ciphering=ciphering, client_pdu=96, server_pdu=96)
    result = pair.one(Get(BLOB))
    assert result == GetResult(GetDataValue(blob(pair)))  # type: ignore[arg-type]
    responses = list(pair.sent_by("S"))
    assert len(responses) > 20  # 2 KiB through 96-byte PDUs
    if ciphering is None:
        assert (0xC4, 0x02) in tags(pair, "S") and (0xC0, 0x02) in tags(pair, "C")


@pytest.mark.parametrize("ciphering", CIPHERINGS)
def test_long_set_goes_in_datablocks(tmp_path: Path, ciphering: Ciphering | None) -> None:
    pair = associated_pair(
        tmp_path, MechanismName.LOW, ciphering=ciphering, client_pdu=80, server_pdu=70
    )
    assert pair.one(Set(BLOB, BIG)) == SetResult(DataAccessResult.SUCCESS)
    assert blob(pair) == BIG
    if ciphering is None:
        assert {(0xC1, 0x02), (0xC1, 0x03)} <= tags(pair, "C")
        assert {(0xC5, 0x02), (0xC5, 0x03)} <= tags(pair, "S")
    values = (BIG, OctetString(b"short"))
    assert pair.one(SetList((W(BLOB), W(SERIAL)), values)) == SetListResult(
        (DataAccessResult.SUCCESS, DataAccessResult.SUCCESS)
    )
    assert pair.backend.values[(SERIAL.class_id, SERIAL.instance_id, 2)] == b"short"


@pytest.mark.parametrize("ciphering", CIPHERINGS)
def test_long_action_goes_in_pblocks_both_ways(tmp_path: Path, ciphering: Ciphering | None) -> None:
    pair = associated_pair(tmp_path, ciphering=ciphering, client_pdu=90, server_pdu=75)
    result = pair.one(Action(ECHO, BIG))
    assert result == MethodResult(ActionResult.SUCCESS, GetDataValue(BIG))
    if ciphering is None:
        assert {(0xC3, 0x04), (0xC3, 0x06), (0xC3, 0x02)} <= tags(pair, "C")
        assert {(0xC7, 0x04), (0xC7, 0x02)} <= tags(pair, "S")
    listed = pair.one(ActionList((ECHO, RESET), (BIG, None)))
    assert isinstance(listed, MethodListResult)
    assert [r.result for r in listed.results] == [ActionResult.SUCCESS, ActionResult.SUCCESS]
    assert listed.results[0].return_parameters == GetDataValue(BIG)


def test_long_get_with_list_comes_in_datablocks(tmp_path: Path) -> None:
    pair = associated_pair(tmp_path, ciphering=Ciphering.GLOBAL, client_pdu=100)
    from test_association_support import MISSING

    result = pair.one(GetList((W(ENERGY), W(BLOB), W(MISSING))))
    assert isinstance(result, GetListResult)
    assert [type(r).__name__ for r in result.results] == [
        "GetDataValue",
        "GetDataValue",
        "GetDataError",
    ]
    assert result.results[1] == GetDataValue(blob(pair))  # type: ignore[arg-type]


@pytest.mark.parametrize("ciphering", CIPHERINGS)
def test_general_block_transfer_both_ways(tmp_path: Path, ciphering: Ciphering | None) -> None:
    pair = associated_pair(
        tmp_path,
        MechanismName.HIGH_GMAC,
        ciphering=ciphering,
        conformance=GBT,
        client_pdu=120,
        server_pdu=100,
    )
    assert pair.one(Get(BLOB)) == GetResult(GetDataValue(blob(pair)))  # type: ignore[arg-type]
    assert pair.one(Set(BLOB, BIG)) == SetResult(DataAccessResult.SUCCESS)
    assert pair.one(Action(ECHO, BIG)) == MethodResult(ActionResult.SUCCESS, GetDataValue(BIG))
    client_gbt = [a for a in pair.sent_by("C") if a[0] == 0xE0]
    server_gbt = [a for a in pair.sent_by("S") if a[0] == 0xE0]
    assert len(client_gbt) > 10 and len(server_gbt) > 10
    # no service-specific block APDU was needed
    assert not {(0xC4, 0x02), (0xC1, 0x02), (0xC3, 0x04)} & (tags(pair, "S") | tags(pair, "C"))
    assert pair.client.state is ClientState.ASSOCIATED


def test_request_too_long_without_block_transfer_is_refused_locally(tmp_path: Path) -> None:
    conformance = DEFAULT_CONFORMANCE & ~Conformance.BLOCK_TRANSFER_WITH_SET_OR_WRITE
    pair = associated_pair(tmp_path, conformance=conformance, server_pdu=80)
    with pytest.raises(LocalProtocolError):
        pair.client.send(Set(BLOB, BIG))
    assert pair.client.state is ClientState.ASSOCIATED
    assert isinstance(pair.one(Get(ENERGY)), GetResult)


def test_response_too_long_without_block_transfer_is_pdu_too_long(tmp_path: Path) -> None:
    conformance = DEFAULT_CONFORMANCE & ~Conformance.BLOCK_TRANSFER_WITH_GET_OR_READ
    pair = associated_pair(tmp_path, conformance=conformance, client_pdu=100)
    result = pair.one(Get(BLOB))
    assert isinstance(result, ServiceException)
    assert result.response.service_error is ExceptionServiceError.PDU_TOO_LONG


def test_get_next_out_of_turn_aborts_the_long_get(tmp_path: Path) -> None:
    pair = associated_pair(tmp_path, client_pdu=100)
    pair.server.receive_data(pair.client.send(Get(BLOB)))
    pair.server.next_event()
    (first,) = pair.server.data_to_send()
    block = decode_apdu(first)
    assert isinstance(block, GetResponseWithDataBlock) and block.result.block_number == 1
    invoke = block.invoke_id_and_priority
    pair.server.receive_data(GetRequestNext(5, invoke).encode())
    pair.server.next_event()
    (answer,) = pair.server.data_to_send()
    refused = decode_apdu(answer)
    assert isinstance(refused, GetResponseWithDataBlock)
    assert refused.result.result is DataAccessResult.DATA_BLOCK_NUMBER_INVALID


def test_client_rejects_a_skipped_datablock(tmp_path: Path) -> None:
    pair = associated_pair(tmp_path, client_pdu=100)
    pair.client.send(Get(BLOB))
    invoke = InvokeIdAndPriority(pair.client._invoke_id)
    from cosemcast.apdu.common import DataBlockG

    pair.client.receive_data(GetResponseWithDataBlock(DataBlockG(False, 2, b"xx"), invoke).encode())
    with pytest.raises(RemoteProtocolError):
        pair.client.next_event()


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    size=st.integers(0, 1500),
    client_pdu=st.integers(64, 300),
    server_pdu=st.integers(64, 300),
    gbt=st.booleans(),
    ciphering=st.sampled_from(CIPHERINGS),
)
def test_any_size_round_trips(
    tmp_path_factory: pytest.TempPathFactory,
    size: int,
    client_pdu: int,
    server_pdu: int,
    gbt: bool,
    ciphering: Ciphering | None,
) -> None:
    tmp_path = tmp_path_factory.mktemp("pair")
    pair = associated_pair(
        tmp_path,
        ciphering=ciphering,
        conformance=GBT if gbt else DEFAULT_CONFORMANCE,
        client_pdu=client_pdu,
        server_pdu=server_pdu,
    )
    value = Structure((OctetString(bytes(i % 251 for i in range(size))), Unsigned(size % 256)))
    assert pair.one(Set(BLOB, value)) == SetResult(DataAccessResult.SUCCESS)
    assert pair.one(Get(BLOB)) == GetResult(GetDataValue(value))
    assert pair.one(Action(ECHO, value)) == MethodResult(ActionResult.SUCCESS, GetDataValue(value))


# --- blocks.py on its own ------------------------------------------------------------------------


def test_split_and_payload_room() -> None:
    assert split(b"abcdefg", 3) == (b"abc", b"def", b"g")
    assert split(b"", 3) == (b"",)
    with pytest.raises(LocalProtocolError):
        split(b"x", 0)
    # a 20-byte empty block APDU (one length byte) and 30 bytes of ciphering in 100 bytes
    assert payload_room(100, 20, 30) == 100 - 19 - 3 - 30
    with pytest.raises(LocalProtocolError):
        payload_room(40, 20, 30)


def test_outgoing_and_incoming_blocks() -> None:
    out = OutgoingBlocks(split(bytes(range(10)), 4))
    incoming = IncomingBlocks()
    while not out.done:
        number, raw, last = out.next_block()
        incoming.add(number, raw)
    assert last and incoming.data() == bytes(range(10))
    with pytest.raises(LocalProtocolError):
        out.next_block()
    with pytest.raises(RemoteProtocolError):
        incoming.add(2, b"")


@given(data=st.binary(max_size=600), block_size=st.integers(1, 80), answer=st.binary(max_size=300))
def test_gbt_sessions_exchange_any_apdu(data: bytes, block_size: int, answer: bytes) -> None:
    sender, receiver = GbtSession(), GbtSession()
    step: GeneralBlockTransfer | bytes | None = sender.start_sending(data, block_size)
    while isinstance(step, GeneralBlockTransfer):
        wire = decode_apdu(step.encode())
        assert isinstance(wire, GeneralBlockTransfer)
        reply = receiver.receive(wire)
        if isinstance(reply, GeneralBlockTransfer):
            assert not reply.block_data and reply.block_number_ack == step.block_number
            step = sender.receive(reply)
        else:
            step = reply
    assert step == data
    # the answer continues the numbering of the same exchange
    back: GeneralBlockTransfer | bytes | None = receiver.start_sending(
        answer or b"\x00", block_size
    )
    while isinstance(back, GeneralBlockTransfer):
        reply = sender.receive(back)
        back = receiver.receive(reply) if isinstance(reply, GeneralBlockTransfer) else reply
    assert back == (answer or b"\x00")


def test_gbt_rejects_out_of_order_blocks() -> None:
    receiver = GbtSession()
    block = GeneralBlockTransfer(last_block=False, block_number=2, block_data=b"x")
    with pytest.raises(RemoteProtocolError):
        receiver.receive(block)
    stray_ack = GeneralBlockTransfer(last_block=False, block_number=1, block_data=b"")
    with pytest.raises(RemoteProtocolError):
        GbtSession().receive(stray_ack)


# --- the raw-data decoders of blocks.py -------------------------------------------------------


@given(values=st.lists(data_values, max_size=5).map(tuple))
def test_raw_data_decoders_round_trip(values: tuple[object, ...]) -> None:
    raw = encode_sequence_of(values, encode_data)
    assert same_data(Array(decode_values(raw)), Array(values))
    error = GetDataError(DataAccessResult.OTHER_REASON)
    results = (*(GetDataValue(v) for v in values), error)  # type: ignore[arg-type]
    listed = encode_sequence_of(results, _encode)
    assert encode_sequence_of(decode_get_data_results(listed), _encode) == listed
    joined = b"".join(r.encode() for r in results)
    assert b"".join(r.encode() for r in decode_pblock_results(joined)) == joined


def _encode(result: GetDataValue | GetDataError) -> bytes:
    return result.encode()


@given(raw=st.binary(max_size=64))
def test_raw_data_decoders_raise_only_decode_error(raw: bytes) -> None:
    for decoder in (decode_values, decode_get_data_results, decode_pblock_results):
        try:
            decoder(raw)
        except DecodeError:
            pass
