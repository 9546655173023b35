"""The worked examples of specs/scheduling.md §9, byte for byte.

Every ``hex`` block and the offset table are rebuilt from the inputs the spec lists and
compared with the spec text, so code and spec cannot drift apart. The offsets are recomputed
here with ``hashlib`` and the rule of §3 written out in this file, independently of
``spread.py``; the group-command bytes are checked against the entry layout of §5.1 assembled by
hand.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from cosemcast.scheduling import (
    GroupCommand,
    GroupOrder,
    Order,
    apply_group_command,
    group_command_request,
    spread_input,
    spread_offset,
)

SPEC = Path(__file__).resolve().parents[1] / "specs" / "scheduling.md"
ST = bytes.fromhex("4D4D4D0000BC614E")
FIRMWARE, TARIFF = "FW-1.4.2", "TOU-2"
EXAMPLE = GroupCommand(
    (
        GroupOrder(7, Order.respond_within(0, 1200)),
        GroupOrder(12, Order.respond_within(1200, 1200)),
        GroupOrder(0, Order.set_window(840)),
    )
)


def spec_text() -> str:
    return SPEC.read_text(encoding="utf-8")


def spec_vectors() -> dict[str, bytes]:
    blocks = re.findall(r"```hex\n# ([\w-]+)\n(.*?)```", spec_text(), flags=re.DOTALL)
    return {name: bytes.fromhex("".join(body.split())) for name, body in blocks}


def independent_offset(title: bytes, firmware: bytes, tariff: bytes, window: int) -> int:
    """§3 written out again: label, 08 ST, u16-prefixed fields, u32 counter, u64 words."""
    message = (
        b"cosemcast/upstream-spread/v1\x00"
        + b"\x08"
        + title
        + len(firmware).to_bytes(2, "big")
        + firmware
        + len(tariff).to_bytes(2, "big")
        + tariff
    )
    limit = 2**64 - 2**64 % window
    counter = 0
    while True:
        digest = hashlib.sha256(message + counter.to_bytes(4, "big")).digest()
        for i in range(0, 32, 8):
            word = int.from_bytes(digest[i : i + 8], "big")
            if word < limit:
                return word % window
        counter += 1


def test_the_spec_has_every_block() -> None:
    assert set(spec_vectors()) == {
        "spread-message",
        "spread-digest",
        "group-command",
        "group-command-apdu",
        "set-offset-apdu",
    }


def test_spread_message_and_digest() -> None:
    vectors = spec_vectors()
    message = spread_input(ST, FIRMWARE, TARIFF) + bytes(4)
    assert message == vectors["spread-message"]
    assert len(message) == 59
    assert hashlib.sha256(message).digest() == vectors["spread-digest"]


def test_offset_table() -> None:
    rows = re.findall(r"^\| (\d+) \| (\d+) \|$", spec_text(), flags=re.MULTILINE)
    assert len(rows) == 5
    for window, offset in ((int(w), int(o)) for w, o in rows):
        assert spread_offset(ST, FIRMWARE, TARIFF, window) == offset
        assert independent_offset(ST, FIRMWARE.encode(), TARIFF.encode(), window) == offset


@pytest.mark.parametrize(
    ("title", "firmware", "tariff", "phrase"),
    [
        (ST, "FW-1.5.0", TARIFF, "`FW-1.5.0` the offset in 900 s is {}"),
        (ST, FIRMWARE, "FLAT", "`FLAT` (firmware\n`FW-1.4.2`) it is {}"),
        (
            bytes.fromhex("4D4D4D0000BC614F"),
            FIRMWARE,
            TARIFF,
            "`4D4D4D0000BC614F` (same firmware and tariff) has {}",
        ),
    ],
)
def test_offsets_in_the_prose(title: bytes, firmware: str, tariff: str, phrase: str) -> None:
    offset = spread_offset(title, firmware, tariff, 900)
    assert offset == independent_offset(title, firmware.encode(), tariff.encode(), 900)
    assert phrase.format(offset) in spec_text()


def test_group_command_bytes() -> None:
    vectors = spec_vectors()
    assert EXAMPLE.encode() == vectors["group-command"]
    by_hand = bytes.fromhex("0103") + b"".join(
        bytes.fromhex("0202 12")
        + group.to_bytes(2, "big")
        + bytes.fromhex("0203 16")
        + bytes([kind])
        + b"\x06"
        + offset.to_bytes(4, "big")
        + b"\x06"
        + window.to_bytes(4, "big")
        for group, kind, offset, window in ((7, 3, 0, 1200), (12, 3, 1200, 1200), (0, 0, 0, 840))
    )
    assert by_hand == vectors["group-command"]
    assert GroupCommand.decode(vectors["group-command"]) == EXAMPLE


def test_group_command_selection_in_the_prose() -> None:
    assert apply_group_command(EXAMPLE, {7, 12}) == Order.respond_within(0, 1200)
    assert apply_group_command(EXAMPLE, {12}) == Order.respond_within(1200, 1200)
    assert apply_group_command(EXAMPLE, {3}) == Order.set_window(840)
    assert apply_group_command(EXAMPLE, ()) == Order.set_window(840)


def test_broadcast_apdus() -> None:
    vectors = spec_vectors()
    header = bytes.fromhex("C3 01 01 2304 0000800500FF 01 01")  # method 1, parameters present
    assert group_command_request(EXAMPLE).encode() == vectors["group-command-apdu"]
    assert vectors["group-command-apdu"] == header + vectors["group-command"]
    unicast = GroupCommand((GroupOrder(0, Order.set_offset(300)),))
    assert group_command_request(unicast).encode() == vectors["set-offset-apdu"]
