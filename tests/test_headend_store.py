"""The head-end's SQLite store and readings sink (specs/shared-payload.md §7.2, §9.2, §9.3).

The store must behave like the in-memory reference :class:`MemoryPayloadKeyStore` (checked by
a Hypothesis run of the same operations on both), keep everything across a reopen, bound its
parking table by count and age, and never show a key in its repr.
"""

from __future__ import annotations

import copy
import io
import itertools
import json
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cosemcast.apdu.common import LongInvokeIdAndPriority
from cosemcast.apdu.notifications import DataNotification
from cosemcast.axdr import (
    Array,
    CosemDateTime,
    DoubleLongUnsigned,
    LongUnsigned,
    OctetString,
    Structure,
    VisibleString,
)
from cosemcast.errors import ConfigurationError, DecodeError
from cosemcast.headend import HeadEndStoreError, ReadingSink, SqliteHeadEndStore, reading_from
from cosemcast.headend.keys import load_keys
from cosemcast.sharedpayload import (
    AckRequest,
    KpId,
    MemoryPayloadKeyStore,
    ReceivedPayloadKey,
)

HEAD_END = bytes.fromhex("4D4D4D0000000001")
METER = bytes.fromhex("4D4D4D0000BC614E")
SECRET = bytes(range(16))


def key(kp: KpId, *, not_after: int = 2_000) -> ReceivedPayloadKey:
    return ReceivedPayloadKey(
        METER, kp, SECRET, 1_000, not_after, 4, AckRequest.CONTROL, SECRET[::-1], b"d" * 32, 1
    )


def test_keys_windows_floors_and_credentials_survive_a_reopen(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite3"
    public = ec.derive_private_key(7, ec.SECP256R1()).public_key()
    with SqliteHeadEndStore(db, system_title=HEAD_END) as store:
        assert store.add(key(KpId(1, 1)))
        assert not store.add(key(KpId(1, 1)))
        assert store.accept_counter(METER, KpId(1, 1), 10, 64)
        assert store.accept_counter(METER, KpId(1, 1), 8, 64)
        assert store.add(key(KpId(1, 2)))
        store.retire(METER, KpId(1, 2))
        store.set_credentials(METER, shared_key=SECRET, agreement_public_key=public)
        assert SECRET.hex() not in repr(store)
        store.commit()
    with SqliteHeadEndStore(db, system_title=HEAD_END) as store:
        got = store.get(METER, KpId(1, 1))
        assert got is not None and got.payload_key == SECRET
        assert got.replay is not None and got.replay.highest == 10
        assert not store.accept_counter(METER, KpId(1, 1), 8, 64)
        assert not store.accept_counter(METER, KpId(1, 1), 10, 64)
        assert store.accept_counter(METER, KpId(1, 1), 9, 64)
        assert store.get(METER, KpId(1, 2)) is None
        assert not store.add(key(KpId(1, 2)))  # a retired kp_id is never stored again
        assert store.retired_floor(METER) == KpId(1, 2)
        assert store.shared_key(METER) == SECRET
        loaded = store.agreement_public_key(METER)
        assert loaded is not None and loaded.public_numbers() == public.public_numbers()
        assert store.expired(2_001) == [(METER, KpId(1, 1))]
        assert store.expired(1_999) == []
    # Retired rows keep no key bytes.
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT payload_key FROM payload_keys WHERE state='retired'")
        assert rows.fetchall() == [(None,)]


def test_a_store_refuses_another_head_end_and_a_newer_schema(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite3"
    SqliteHeadEndStore(db, system_title=HEAD_END).close()
    with pytest.raises(HeadEndStoreError, match="belongs to head-end"):
        SqliteHeadEndStore(db, system_title=bytes(8))
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(HeadEndStoreError, match="newer"):
        SqliteHeadEndStore(db, system_title=HEAD_END)


def test_parking_is_bounded_by_count_and_age_and_persisted(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite3"
    with SqliteHeadEndStore(
        db, system_title=HEAD_END, parking_capacity=3, parking_max_age_s=100
    ) as store:
        for n in range(3):
            assert store.park(METER, KpId(1, 1), bytes([n]), 1_000 + n) == []
        evicted = store.park(METER, KpId(1, 2), b"\x03", 1_003)
        assert [p.apdu for p in evicted] == [b"\x00"]
        store.commit()
    with SqliteHeadEndStore(
        db, system_title=HEAD_END, parking_capacity=3, parking_max_age_s=100
    ) as store:
        assert store.parked_count() == 3
        expired = store.expire_parked(1_101.5)
        assert [p.apdu for p in expired] == [b"\x01"]
        assert [p.apdu for p in store.release(METER, KpId(1, 1))] == [b"\x02"]
        assert store.release(METER, KpId(1, 1)) == []
        assert [p.apdu for p in store.release(METER, KpId(1, 2))] == [b"\x03"]
        assert store.parked_count() == 0


_SERIAL = itertools.count()
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(1, 4)),
        st.tuples(st.just("accept"), st.integers(1, 4), st.integers(0, 200)),
        st.tuples(st.just("retire"), st.integers(1, 4)),
        st.tuples(st.sampled_from(["commit", "reopen", "crash"]), st.just(1)),
    ),
    max_size=40,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_OPS)
def test_the_sqlite_store_matches_the_memory_store(
    tmp_path: Path, ops: list[tuple[object, ...]]
) -> None:
    """Group commit: the store matches the reference after every operation; a commit then a
    reopen changes nothing; a crash (rollback) returns to the reference as last committed.
    A cache of 2 entries makes keys leave memory and come back from the file."""
    db = tmp_path / f"m{next(_SERIAL)}.sqlite3"
    reference = MemoryPayloadKeyStore()
    committed = copy.deepcopy(reference)
    store = SqliteHeadEndStore(db, system_title=HEAD_END, cache_size=2)
    try:
        for op in ops:
            kp = KpId(1, int(str(op[1])))
            if op[0] == "commit":
                store.commit()
                committed = copy.deepcopy(reference)
            elif op[0] == "reopen":
                store.commit()
                committed = copy.deepcopy(reference)
                store.close()
                store = SqliteHeadEndStore(db, system_title=HEAD_END, cache_size=2)
            elif op[0] == "crash":
                generation = store.generation
                store.rollback()
                assert store.generation == generation + 1
                reference = copy.deepcopy(committed)
            elif op[0] == "add":
                floor = reference.retired_floor(METER)
                if floor is not None and kp <= floor:
                    continue  # the opener refuses these before adding (specs §9.1 step 5)
                assert store.add(key(kp)) == reference.add(key(kp))
            elif op[0] == "accept":
                ic = int(str(op[2]))
                accepted = store.accept_counter(METER, kp, ic, 16)
                assert accepted == reference.accept_counter(METER, kp, ic, 16)
            else:
                store.retire(METER, kp)
                reference.retire(METER, kp)
            assert store.retired_floor(METER) == reference.retired_floor(METER)
            for n in range(1, 5):
                mine, theirs = store.get(METER, KpId(1, n)), reference.get(METER, KpId(1, n))
                assert (mine is None) == (theirs is None)
                if mine is not None and theirs is not None:
                    assert mine.replay == theirs.replay
    finally:
        store.close()


def test_readings_are_flattened_with_their_type_names(tmp_path: Path) -> None:
    stamp = CosemDateTime(2024, 1, 2, None, 3, 4, 5, 0, -60)
    body = Structure(
        (
            OctetString(bytes.fromhex("0100010800FF")),
            DoubleLongUnsigned(123456),
            Array((LongUnsigned(7), VisibleString("ok"))),
            None,
        )
    )
    notification = DataNotification(LongInvokeIdAndPriority(1), stamp, body).encode()
    reading = reading_from(HEAD_END, METER, KpId(1, 2), 9, notification, 1_700_000_000)
    out = io.StringIO()
    sink = ReadingSink(stream=out, db_path=tmp_path / "r.sqlite3")
    sink.write(reading)
    sink.close()
    record = json.loads(out.getvalue())
    assert record["meter"] == METER.hex().upper()
    assert record["kp_id"] == "0000000100000002"
    assert record["invocation_counter"] == 9
    assert record["date_time"] == str(stamp)
    assert record["values"] == [
        {"path": "0", "type": "octet-string", "value": "0100010800FF"},
        {"path": "1", "type": "double-long-unsigned", "value": 123456},
        {"path": "2.0", "type": "long-unsigned", "value": 7},
        {"path": "2.1", "type": "visible-string", "value": "ok"},
        {"path": "3", "type": "null-data", "value": None},
    ]
    with sqlite3.connect(tmp_path / "r.sqlite3") as conn:
        row = conn.execute("SELECT meter, invocation_counter, body_json FROM readings").fetchone()
    assert row[0] == METER.hex().upper() and row[1] == 9
    assert json.loads(row[2]) == record["values"]
    with pytest.raises(DecodeError):
        reading_from(HEAD_END, METER, KpId(1, 2), 9, bytes.fromhex("C0010000"), 0)


def test_key_file(tmp_path: Path) -> None:
    pem = tmp_path / "he.pem"
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    private = ec.derive_private_key(5, ec.SECP256R1())
    pem.write_bytes(private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    point = (
        ec.derive_private_key(6, ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    )
    keys = tmp_path / "keys.toml"
    keys.write_text(
        f'system_title = "{HEAD_END.hex()}"\nprivate_key = "he.pem"\n'
        f'[meters.{METER.hex()}]\nks = "{SECRET.hex()}"\n'
        f'[meters.4D4D4D0000BC6150]\nagreement_public_key = "{point.hex()}"\n'
    )
    loaded = load_keys(keys)
    assert loaded.system_title == HEAD_END
    assert loaded.private_key is not None
    assert loaded.meters[METER].shared_key == SECRET
    assert loaded.meters[bytes.fromhex("4D4D4D0000BC6150")].agreement_public_key is not None
    assert SECRET.hex() not in repr(loaded)
    keys.write_text(f'system_title = "{HEAD_END.hex()}"\n[meters.{METER.hex()}]\nks = "ABCDEF"\n')
    with pytest.raises(ConfigurationError, match="16 bytes") as info:
        load_keys(keys)
    assert "abcdef" not in str(info.value).lower()  # the (wrong) key is never echoed


@pytest.mark.parametrize("size", [64, 1024])
def test_wide_replay_bitmaps_survive_a_reopen(tmp_path: Path, size: int) -> None:
    """Bitmaps are stored as signed 64-bit INTEGERs when they fit (bit 63 included) and as
    BLOBs beyond (windows of up to 1024 counters)."""
    db = tmp_path / "h.sqlite3"
    counters = sorted({1_000, 1_000 - 63, 1_000 - 62, 1_000 - size + 1, 1_000 - 1}, reverse=True)
    reference = MemoryPayloadKeyStore()
    reference.add(key(KpId(1, 1)))
    with SqliteHeadEndStore(db, system_title=HEAD_END) as store:
        store.add(key(KpId(1, 1)))
        for ic in counters:
            assert store.accept_counter(METER, KpId(1, 1), ic, size)
            assert reference.accept_counter(METER, KpId(1, 1), ic, size)
        store.commit()
    expected = reference.get(METER, KpId(1, 1))
    assert expected is not None and expected.replay is not None
    assert expected.replay.bitmap >> 63 & 1
    with SqliteHeadEndStore(db, system_title=HEAD_END) as store:
        got = store.get(METER, KpId(1, 1))
        assert got is not None and got.replay == expected.replay
        for ic in counters:
            assert not store.accept_counter(METER, KpId(1, 1), ic, size)


# --- readings: the text built by hand equals json.dumps ------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from strategies import data_values  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(body=data_values, received_at=st.floats(0, 4e9), ic=st.integers(0, 2**32 - 1))
def test_reading_json_text_equals_json_dumps(body: object, received_at: float, ic: int) -> None:
    """`values_json` and `json_line` build the JSON as text for speed; they must be exactly
    what json.dumps makes of `to_json()` (compact separators), for any COSEM Data body."""
    import json

    from cosemcast.apdu.common import LongInvokeIdAndPriority
    from cosemcast.apdu.notifications import DataNotification
    from cosemcast.headend.readings import json_line, reading_from
    from cosemcast.sharedpayload import KpId

    notification = DataNotification(LongInvokeIdAndPriority(7), None, body).encode()
    reading = reading_from(
        b"HEADEND1", b"MMM\x00\x00\x00\x00\x01", KpId(1, 2), ic, notification, received_at
    )
    record = reading.to_json()
    assert reading.values_json() == json.dumps(record["values"], separators=(",", ":"))
    assert json_line(reading) == json.dumps(record, separators=(",", ":"))
    assert json.loads(json_line(reading)) == record


from strategies import scalars  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(elements=st.lists(scalars, min_size=1, max_size=20))
def test_flat_shape_cache_gives_the_general_result(elements: list[object]) -> None:
    """Flat structures take a cached per-shape path in reading_from; twice in a row (the second
    from the cache) the leaves and the text equal the general flatten/values_json."""
    from cosemcast.apdu.common import LongInvokeIdAndPriority
    from cosemcast.apdu.notifications import DataNotification
    from cosemcast.axdr import Structure
    from cosemcast.headend.readings import flatten, reading_from, values_json
    from cosemcast.sharedpayload import KpId

    body = Structure(elements)
    notification = DataNotification(LongInvokeIdAndPriority(1), None, body).encode()
    decoded_body = reading_from(b"H" * 8, b"M" * 8, KpId(1, 1), 1, notification, 0.0)
    for _ in range(2):
        reading = reading_from(b"H" * 8, b"M" * 8, KpId(1, 1), 1, notification, 0.0)
        assert reading.values == decoded_body.values
    from cosemcast.apdu import decode_apdu

    general = tuple(flatten(decode_apdu(notification).notification_body))  # type: ignore[attr-defined]
    assert reading.values == general
    assert reading.values_json() == values_json(general)
