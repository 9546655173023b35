"""The derived upstream offset (specs/scheduling.md §3): deterministic, in range, uniform."""

from __future__ import annotations

import hashlib
import struct
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosemcast.scheduling import (
    MAX_WINDOW_S,
    SPREAD_LABEL,
    MeterIdentity,
    spread_input,
    spread_offset,
    uniform_below,
)
from cosemcast.scheduling.spread import _words

ST = bytes.fromhex("4D4D4D0000BC614E")


def test_the_same_inputs_give_the_same_offset_and_each_input_counts() -> None:
    base = spread_offset(ST, "FW-1.4.2", "TOU-2", 86_400)
    assert base == spread_offset(ST, b"FW-1.4.2", b"TOU-2", 86_400)
    others = {
        spread_offset(bytes.fromhex("4D4D4D0000BC614F"), "FW-1.4.2", "TOU-2", 86_400),
        spread_offset(ST, "FW-1.5.0", "TOU-2", 86_400),
        spread_offset(ST, "FW-1.4.2", "FLAT", 86_400),
    }
    assert base not in others and len(others) == 3


def test_length_prefixes_keep_field_boundaries() -> None:
    assert spread_input(ST, "AB", "C") != spread_input(ST, "A", "BC")
    assert spread_input(ST, "", "ABC") != spread_input(ST, "ABC", "")


@pytest.mark.parametrize("window", [0, 1])
def test_no_window_means_no_offset(window: int) -> None:
    assert spread_offset(ST, "x", "y", window) == 0


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="8 bytes"):
        spread_offset(ST[:7], "x", "y", 900)
    with pytest.raises(ValueError, match="window_s"):
        spread_offset(ST, "x", "y", MAX_WINDOW_S + 1)
    with pytest.raises(ValueError, match="window_s"):
        spread_offset(ST, "x", "y", -1)
    with pytest.raises(ValueError, match="65535"):
        spread_offset(ST, b"x" * 65_536, "y", 900)
    with pytest.raises(ValueError, match="8 bytes"):
        MeterIdentity(b"short", b"fw", b"t")


@given(
    title=st.binary(min_size=8, max_size=8),
    firmware=st.binary(max_size=40),
    tariff=st.text(max_size=20),
    window=st.integers(0, MAX_WINDOW_S),
)
def test_offset_is_below_the_window(
    title: bytes, firmware: bytes, tariff: str, window: int
) -> None:
    offset = spread_offset(title, firmware, tariff, window)
    assert 0 <= offset < max(window, 1)
    assert MeterIdentity(title, firmware, tariff.encode()).offset(window) == offset


def test_first_word_rule_matches_an_independent_computation() -> None:
    message = SPREAD_LABEL + b"\x08" + ST + b"\x00\x03" + b"1.0" + b"\x00\x04" + b"TOU1" + bytes(4)
    word = int.from_bytes(hashlib.sha256(message).digest()[:8], "big")
    for window in (2, 60, 900, 3600, 86_400, MAX_WINDOW_S):
        assert spread_offset(ST, "1.0", "TOU1", window) == word % window


def test_rejection_sampling_skips_the_biased_tail() -> None:
    bound = (1 << 63) + 1  # the limit is bound itself: about half of all words are rejected
    assert uniform_below([bound + 5, (1 << 64) - 1, 7], bound) == 7
    assert uniform_below([bound - 1], bound) == bound - 1
    assert uniform_below([5], 1) == 0
    with pytest.raises(ValueError, match="ran out"):
        uniform_below([bound], bound)
    with pytest.raises(ValueError, match="bound"):
        uniform_below([1], 0)


def test_offsets_of_a_fleet_are_uniform() -> None:
    """100,000 system titles over 100 buckets of a 900 s window: chi-square with 99 degrees of
    freedom stays below its 0.1 % critical value (148.2); a biased reduction would not."""
    window, buckets, n = 900, 100, 100_000
    counts = Counter(
        spread_offset(b"MTR" + i.to_bytes(5, "big"), "FW-1.4.2", "TOU-2", window)
        * buckets
        // window
        for i in range(n)
    )
    expected = n / buckets
    chi = sum((counts.get(b, 0) - expected) ** 2 / expected for b in range(buckets))
    assert chi < 148.2, chi
    # The same test rejects the slots of a bad function (the title's last byte mod the window).
    bad = Counter((i & 0xFF) % window * buckets // window for i in range(n))
    bad_chi = sum((bad.get(b, 0) - expected) ** 2 / expected for b in range(buckets))
    assert bad_chi > 148.2


def test_words_continue_with_the_next_counter() -> None:
    # A bound that rejects every word of the first digest is unreachable in practice; check the
    # counter stream itself: words 4..7 come from counter 1.
    message = spread_input(ST, "fw", "t")
    first = struct.unpack(">4Q", hashlib.sha256(message + bytes(4)).digest())
    second = struct.unpack(">4Q", hashlib.sha256(message + b"\x00\x00\x00\x01").digest())
    stream = _words(message)
    assert [next(stream) for _ in range(8)] == [*first, *second]
