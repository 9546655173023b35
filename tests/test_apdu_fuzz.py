"""Every registered APDU decoder: arbitrary bytes after its tag only ever raise DecodeError.

Complements the per-module fuzz tests: this one walks the registry, so a decoder added later
is covered without anyone remembering to add a test.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosemcast.apdu import decode_apdu, registered_tags
from cosemcast.errors import DecodeError

TAGS = sorted(registered_tags())


def test_registry_covers_the_brief_tag_table() -> None:
    # brief §4.1: every APDU of the foundation issue has a decoder.
    expected = {
        0x01, 0x08, 0x0E, 0x0F, 0x21, 0x28, 0x60, 0x61, 0x62, 0x63, 0xC0, 0xC1, 0xC2, 0xC3,
        0xC4, 0xC5, 0xC7, 0xC8, 0xC9, 0xCA, 0xCB, 0xCC, 0xCD, 0xCF, 0xD0, 0xD1, 0xD2, 0xD3,
        0xD4, 0xD5, 0xD7, 0xD8, 0xDB, 0xDC, 0xDD, 0xDF, 0xE0,
    }  # fmt: skip
    assert expected <= set(TAGS)


@pytest.mark.parametrize("tag", TAGS, ids=[f"{t:02X}" for t in TAGS])
@settings(max_examples=150, deadline=None)
@given(tail=st.binary(max_size=120))
def test_arbitrary_tail_only_decode_error(tag: int, tail: bytes) -> None:
    try:
        decode_apdu(bytes([tag]) + tail)
    except DecodeError as exc:
        assert exc.offset is None or 0 <= exc.offset <= len(tail) + 1


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_decode_error(raw: bytes) -> None:
    try:
        decode_apdu(raw)
    except DecodeError:
        pass
