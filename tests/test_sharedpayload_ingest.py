"""The head-end C1 fast path (``split_payload``, the ingest slots of ``HeadEndOpener``) behaves
exactly like the full decode path: same results, same refusals, same state changes
(specs/shared-payload.md §9.1, §10; tools/bench.py case I)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.common import LongInvokeIdAndPriority
from cosemcast.apdu.general import GeneralCiphering
from cosemcast.apdu.notifications import DataNotification
from cosemcast.axdr import DoubleLongUnsigned, OctetString, Structure
from cosemcast.errors import DecodeError, DlmsError, ReplayError
from cosemcast.sharedpayload import (
    HeadEndAssignment,
    HeadEndOpener,
    KpId,
    MemoryCounterSource,
    MemoryPayloadKeyStore,
    OpenedPayload,
    PayloadSealer,
    ReceivedPayloadKey,
    ReplayWindow,
    StaleKeyId,
    StaticMeterCredentials,
    as_general_ciphering,
)
from cosemcast.sharedpayload.sealing import check_payload_shape, split_payload

METER = bytes.fromhex("4D4D4D0000BC614E")
HEAD_END = bytes.fromhex("4D4D4D0000000001")
KS = bytes(range(16))
NOW = 1_700_000_000.0


def _rng(n: int) -> bytes:
    return hashlib.sha256(n.to_bytes(4, "big") + b"ingest").digest()[:n]


def _notification(value: int) -> bytes:
    body = Structure((OctetString(bytes.fromhex("0100010800FF")), DoubleLongUnsigned(value)))
    return DataNotification(LongInvokeIdAndPriority(1), None, body).encode()


def _traffic(count: int) -> tuple[list[bytes], list[bytes]]:
    """C2s and ``count`` C1s of one meter, with a renewal halfway."""
    sealer = PayloadSealer(
        system_title=METER,
        head_ends=[HeadEndAssignment(HEAD_END, shared_key=KS)],
        counters=MemoryCounterSource(),
        rng=_rng,
    )
    c1s = []
    for i in range(count):
        if i == count // 2:
            sealer.renew(NOW)
        c1s.append(sealer.seal_c1(_notification(i), NOW).encode())
    return [entry.apdu.encode() for entry in sealer.controls], c1s


C2S, C1S = _traffic(8)


class _GenericStore:
    """A PayloadKeyStore that is not a MemoryPayloadKeyStore (as the SQLite store is not)."""

    def __init__(self) -> None:
        self.inner = MemoryPayloadKeyStore()

    def get(self, meter: bytes, kp_id: KpId) -> ReceivedPayloadKey | None:
        return self.inner.get(meter, kp_id)

    def add(self, key: ReceivedPayloadKey) -> bool:
        return self.inner.add(key)

    def accept_counter(self, meter: bytes, kp_id: KpId, ic: int, window_size: int) -> bool:
        return self.inner.accept_counter(meter, kp_id, ic, window_size)

    def retire(self, meter: bytes, kp_id: KpId) -> None:
        self.inner.retire(meter, kp_id)

    def retired_floor(self, meter: bytes) -> KpId | None:
        return self.inner.retired_floor(meter)

    def expired(self, before: float) -> list[tuple[bytes, KpId]]:
        return self.inner.expired(before)


def _opener(store: object | None = None) -> HeadEndOpener:
    opener = HeadEndOpener(
        system_title=HEAD_END,
        credentials=StaticMeterCredentials({METER: KS}),
        store=store if store is not None else MemoryPayloadKeyStore(),  # type: ignore[arg-type]
    )
    for c2 in C2S:
        opener.accept_c2(c2, NOW)
    return opener


def _outcome(call: Callable[[], OpenedPayload]) -> object:
    try:
        return call()
    except DlmsError as exc:
        return (type(exc), str(exc))


# --- split_payload -------------------------------------------------------------------------------


def test_split_payload_matches_the_full_decoder() -> None:
    for raw in C1S:
        split = split_payload(raw)
        assert split is not None
        apdu = decode_apdu(raw)
        assert isinstance(apdu, GeneralCiphering)
        check_payload_shape(apdu)
        assert split == (apdu.header_fields(), apdu.invocation_counter, apdu.ciphered_text)


def test_split_payload_takes_a_long_form_length_and_refuses_other_layouts() -> None:
    raw = C1S[0]
    n = raw[23]
    long_form = raw[:23] + bytes((0x81, n)) + raw[24:]
    assert split_payload(long_form) == split_payload(raw)
    assert split_payload(raw[:23] + bytes((0x82, 0, n)) + raw[24:]) == split_payload(raw)
    assert split_payload(C2S[0]) is None
    assert split_payload(raw[:-1]) is None
    assert split_payload(raw + b"\x00") is None
    assert split_payload(raw[:24] + b"\x31" + raw[25:]) is None


@settings(max_examples=400, deadline=None)
@given(
    index=st.integers(0, len(C1S) - 1),
    position=st.integers(0, 200),
    value=st.integers(0, 255),
    cut=st.integers(0, 200),
)
def test_split_payload_never_accepts_what_the_decoder_refuses(
    index: int, position: int, value: int, cut: int
) -> None:
    raw = bytearray(C1S[index])
    raw[position % len(raw)] = value
    mutated = bytes(raw[: max(1, len(raw) - cut % 8)])
    split = split_payload(mutated)
    if split is None:
        return
    apdu = decode_apdu(mutated)
    assert isinstance(apdu, GeneralCiphering)
    check_payload_shape(apdu)
    assert split == (apdu.header_fields(), apdu.invocation_counter, apdu.ciphered_text)


@given(st.binary(max_size=80))
def test_split_payload_on_arbitrary_bytes(raw: bytes) -> None:
    split = split_payload(raw)
    if split is not None:
        apdu = decode_apdu(raw)
        assert isinstance(apdu, GeneralCiphering)
        assert split[0] == apdu.header_fields()


# --- open_c1: bytes and decoded APDUs give the same outcomes ------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, len(C1S) - 1), st.integers(-1, 140), st.integers(0, 255)),
        min_size=1,
        max_size=20,
    ),
    st.sampled_from(["memory", "generic"]),
)
def test_open_c1_bytes_and_objects_agree(
    steps: list[tuple[int, int, int]], store_kind: str
) -> None:
    """Fresh, replayed and altered C1s, in any order: the bytes path and the decoded path
    give equal results or the same refusal, and leave equal replay state."""
    make = MemoryPayloadKeyStore if store_kind == "memory" else _GenericStore
    by_bytes, by_object = _opener(make()), _opener(make())
    for index, position, value in steps:
        raw = bytearray(C1S[index])
        if position >= 0:
            raw[position % len(raw)] = value
        mutated = bytes(raw)
        first = _outcome(lambda m=mutated: by_bytes.open_c1(m, NOW))  # type: ignore[misc]
        try:
            decoded = as_general_ciphering(mutated)
        except DecodeError as exc:
            assert first == (type(exc), str(exc))
            continue
        second = _outcome(lambda d=decoded: by_object.open_c1(d, NOW))  # type: ignore[misc]
        assert first == second


def test_a_replayed_c1_is_refused_on_both_paths() -> None:
    opener = _opener()
    opened = opener.open_c1(C1S[0], NOW)
    assert opened.notification == _notification(0)
    with pytest.raises(ReplayError):
        opener.open_c1(C1S[0], NOW)
    with pytest.raises(ReplayError):
        opener.open_c1(as_general_ciphering(C1S[0]), NOW)


@pytest.mark.parametrize("store_kind", ["memory", "generic"])
def test_a_key_retired_behind_the_openers_back_is_not_used(store_kind: str) -> None:
    """The ingest slot caches the AESGCM context, not the key's existence: a key retired
    directly in the (shared) store is refused at the next C1."""
    store = MemoryPayloadKeyStore() if store_kind == "memory" else _GenericStore()
    opener = _opener(store)
    opener.open_c1(C1S[0], NOW)
    kp_id = KpId.from_bytes(C1S[0][2:10])
    store.retire(METER, kp_id)
    with pytest.raises(StaleKeyId):
        opener.open_c1(C1S[1], NOW)


def test_two_openers_on_one_store_share_the_replay_window() -> None:
    store = MemoryPayloadKeyStore()
    first, second = _opener(store), _opener(store)
    second_store_view = HeadEndOpener(
        system_title=HEAD_END, credentials=StaticMeterCredentials({METER: KS}), store=store
    )
    first.open_c1(C1S[1], NOW)
    for opener in (second, second_store_view):
        with pytest.raises(ReplayError):
            opener.open_c1(C1S[1], NOW)
    second.open_c1(C1S[2], NOW)
    with pytest.raises(ReplayError):
        first.open_c1(C1S[2], NOW)
    key = store.get(METER, KpId.from_bytes(C1S[1][2:10]))
    assert key is not None and key.replay is not None
    assert key.replay.highest == decode_apdu(C1S[2]).invocation_counter  # type: ignore[attr-defined]


def test_the_memory_store_entry_path_matches_accept_counter() -> None:
    store = MemoryPayloadKeyStore()
    opener = _opener(store)
    kp_id = KpId.from_bytes(C1S[0][2:10])
    entry = store.entry(METER, kp_id)
    assert entry is not None
    ics = [decode_apdu(raw).invocation_counter for raw in C1S[:3]]  # type: ignore[attr-defined]
    opener.open_c1(C1S[2], NOW)
    assert entry.replay == ReplayWindow(ics[2])
    assert MemoryPayloadKeyStore.accept_in(entry, ics[0], opener.replay_window)
    assert not store.accept_counter(METER, kp_id, ics[0], opener.replay_window)
    store.retire(METER, kp_id)
    assert not MemoryPayloadKeyStore.accept_in(entry, ics[1], opener.replay_window)
