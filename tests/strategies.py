"""Hypothesis strategies shared by the tests: COSEM Data values of every type."""

from __future__ import annotations

from hypothesis import strategies as st

from cosemcast.axdr import (
    DONT_CARE,
    Array,
    Bcd,
    BitString,
    ClockStatus,
    CompactArray,
    CosemDate,
    CosemDateTime,
    CosemTime,
    DataType,
    DeltaDoubleLong,
    DeltaDoubleLongUnsigned,
    DeltaInteger,
    DeltaLong,
    DeltaLongUnsigned,
    DeltaUnsigned,
    DoubleLong,
    DoubleLongUnsigned,
    Enumerated,
    Float32,
    Float64,
    Integer,
    Long,
    Long64,
    Long64Unsigned,
    LongUnsigned,
    OctetString,
    Structure,
    TypeDescription,
    Unsigned,
    Utf8String,
    VisibleString,
)
from cosemcast.obis import Obis

INT_TYPES = [
    Integer,
    Long,
    DoubleLong,
    Long64,
    Unsigned,
    LongUnsigned,
    DoubleLongUnsigned,
    Long64Unsigned,
    Enumerated,
    Bcd,
    DeltaInteger,
    DeltaLong,
    DeltaDoubleLong,
    DeltaUnsigned,
    DeltaLongUnsigned,
    DeltaDoubleLongUnsigned,
]


def _ints() -> st.SearchStrategy[object]:
    return st.one_of(
        [st.integers(cls.MIN, cls.MAX).map(cls) for cls in INT_TYPES]  # type: ignore[attr-defined]
    )


def _opt(lo: int, hi: int) -> st.SearchStrategy[int | None]:
    return st.one_of(st.none(), st.integers(lo, hi))


datetimes = st.builds(
    CosemDateTime,
    _opt(0, 0xFFFE),
    _opt(0, 0xFE),
    _opt(0, 0xFE),
    _opt(0, 0xFE),
    _opt(0, 0xFE),
    _opt(0, 0xFE),
    _opt(0, 0xFE),
    _opt(0, 0xFE),
    _opt(-0x7FFF, 0x7FFF),
    st.one_of(st.none(), st.integers(0, 0xFE).map(ClockStatus)),
)
dates = st.builds(CosemDate, _opt(0, 0xFFFE), _opt(0, 0xFE), _opt(0, 0xFE), _opt(0, 0xFE))
times = st.builds(CosemTime, _opt(0, 0xFE), _opt(0, 0xFE), _opt(0, 0xFE), _opt(0, 0xFE))
bitstrings = st.binary(max_size=8).flatmap(
    lambda b: st.integers(max(0, len(b) * 8 - 7) if b else 0, len(b) * 8).map(
        lambda n: BitString(
            bytes(b[:-1]) + bytes([b[-1] & (0xFF << (8 * len(b) - n)) & 0xFF]) if b else b"", n
        )
    )
)

scalars: st.SearchStrategy[object] = st.one_of(
    st.none(),
    st.booleans(),
    st.just(DONT_CARE),
    _ints(),
    st.floats(width=32, allow_nan=False).map(Float32),
    st.floats(allow_nan=False).map(Float64),
    st.binary(max_size=300).map(OctetString),
    st.text(st.characters(max_codepoint=255), max_size=40).map(VisibleString),
    st.text(max_size=40).map(Utf8String),
    bitstrings,
    datetimes,
    dates,
    times,
)


def _compact() -> st.SearchStrategy[object]:
    member_types = [
        (DataType.UNSIGNED, st.integers(0, 255).map(Unsigned)),
        (DataType.DOUBLE_LONG_UNSIGNED, st.integers(0, 2**32 - 1).map(DoubleLongUnsigned)),
        (DataType.LONG, st.integers(-(2**15), 2**15 - 1).map(Long)),
        (DataType.OCTET_STRING, st.binary(max_size=12).map(OctetString)),
        (DataType.BOOLEAN, st.booleans()),
    ]

    @st.composite
    def build(draw: st.DrawFn) -> CompactArray:
        picks = draw(st.lists(st.sampled_from(member_types), min_size=1, max_size=3))
        desc = TypeDescription(
            DataType.STRUCTURE, members=tuple(TypeDescription(t) for t, _ in picks)
        )
        rows = draw(
            st.lists(st.tuples(*[s for _, s in picks]).map(Structure), min_size=1, max_size=5)
        )
        return CompactArray(desc, tuple(rows))

    return build()


data_values: st.SearchStrategy[object] = st.recursive(
    st.one_of(scalars, _compact()),
    lambda children: st.one_of(
        st.lists(children, max_size=6).map(Array),
        st.lists(children, max_size=6).map(Structure),
    ),
    max_leaves=25,
)

obis_codes = st.tuples(*[st.integers(0, 255)] * 6).map(lambda t: Obis(*t))
