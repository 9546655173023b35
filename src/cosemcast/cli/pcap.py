"""``cosemcast pcap``: list, decode and decipher the DLMS traffic of a capture file.

The capture is read with :func:`cosemcast.capture.traffic.read_capture` (TCP streams
reassembled, UDP datagrams, serial HDLC records reassembled from their segments) and shown
conversation by conversation: one line per APDU (time relative to the first packet,
addresses, wPorts or HDLC frame, APDU type, invoke-id, key facts), the full tree of each frame
with ``-V``, or one JSON object per line with ``--json``.

With ``--keys`` every ciphered APDU is deciphered with :func:`decipher_for_display`, the
helper ``cosemcast decode`` uses, given what the capture itself teaches, in capture order:

* service-specific glo-/ded- APDUs carry no system title: each sender's title comes from the
  AARQ (calling-AP-title) or AARE (responding-AP-title) of its conversation, else every party
  of the key ring is tried;
* ded- APDUs use the dedicated key of the deciphered InitiateRequest of their association
  when the key file holds none;
* a general-ciphering APDU whose key-info (wrapped-key, agreed-key) yields a content key
  ``Kp`` teaches it under (originator, transaction-id); a later general-ciphering APDU of the
  same originator and transaction-id (``kp_id``) without key-info is opened with it: the C2
  control messages and shared-payload C1s of DESIGN.md §4.

Every APDU that is not deciphered says why (no key, tag does not verify, unknown kp_id), and a
malformed frame or APDU is shown as such with its offset; the listing never stops on them.
Exit status: 0 all decoded (and deciphered, with keys); 1 unusable key file; 2 unreadable file
or some malformed frame; 3 some tag did not verify; 4 some APDU had no key (the worst wins).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.acse import AARE, AARQ
from cosemcast.apdu.general import AgreedKey as _AgreedKey
from cosemcast.apdu.general import GeneralCiphering, WrappedKey
from cosemcast.apdu.initiate import InitiateRequest
from cosemcast.capture.summary import apdu_facts, apdu_kind, invoke_id
from cosemcast.capture.traffic import Capture, CapturedFrame, read_capture
from cosemcast.cli.decode import (
    EXIT_CONFIGURATION,
    EXIT_MALFORMED,
    EXIT_NO_KEY,
    EXIT_OK,
    Decipherment,
    ciphered_parts,
    decipher_for_display,
)
from cosemcast.cli.render import JsonValue, Note, render_tree, to_jsonable
from cosemcast.errors import ConfigurationError, DecodeError
from cosemcast.link.hdlc import FrameType, HdlcFrame, decode_parameters
from cosemcast.link.wrapper import DLMS_PORT, WrapperFrame
from cosemcast.security.keyring import KeyRing
from cosemcast.security.protection import GeneralCipheringAad

__all__ = ["register", "run"]

_PROGRESS_BYTES: Final = 4 << 20
_PROGRESS_EVERY_S: Final = 1.0
_QUIET_HDLC: Final = frozenset({FrameType.RR, FrameType.RNR})
_STATUS_NAMES: Final = {
    EXIT_OK: "ok",
    EXIT_MALFORMED: "malformed",
    3: "authentication-failed",
    EXIT_NO_KEY: "not-deciphered",
}

_DESCRIPTION = """\
Decode the DLMS/COSEM traffic of a capture file (classic pcap): TCP port 4059 streams
reassembled into wrapper frames, UDP datagrams, and serial HDLC captures (link type 147, see
specs/pcap.md), conversation by conversation. With --keys, glo-, ded- and general-ciphering
APDUs are deciphered; payload keys (Kp) unwrapped from control messages open the keyless
shared-payload messages that follow."""

_EPILOG = """\
examples:
  cosemcast pcap captures/plain_association_tcp.pcap
  cosemcast pcap -V captures/serial_hdlc_session.pcap
  cosemcast pcap --keys captures/keys.toml captures/shared_payload_c2_c1.pcap
  cosemcast pcap --json --keys keys.toml capture.pcap | jq .summary

exit status:
  0 decoded, 1 unusable key file, 2 unreadable file or malformed frames,
  3 a tag did not verify, 4 an APDU had no key (the worst wins)"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "pcap",
        help="decode (and decipher) the DLMS traffic of a pcap capture",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE", type=Path, help="classic pcap capture")
    parser.add_argument(
        "--keys", metavar="FILE", type=Path, help="TOML key file used to decipher APDUs"
    )
    parser.add_argument(
        "--json", action="store_true", help="one JSON object per frame (JSON lines)"
    )
    parser.add_argument("-V", "--verbose", action="store_true", help="the full tree of every frame")
    parser.add_argument(
        "--general-aad",
        choices=[m.value for m in GeneralCipheringAad],
        default=GeneralCipheringAad.GREEN_BOOK.value,
        help="AAD of general-ciphering (DD) tags (brief §6.3); default: %(default)s",
    )
    parser.add_argument(
        "--port",
        metavar="N",
        type=int,
        action="append",
        help=f"TCP/UDP port carrying the wrapper (repeatable; default {DLMS_PORT})",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    path: Path = args.file
    keyring: KeyRing | None = None
    if args.keys is not None:
        try:
            keyring = KeyRing.from_toml(args.keys)
        except ConfigurationError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_CONFIGURATION
    try:
        capture = read_capture(path, ports=args.port or (DLMS_PORT,))
    except OSError as exc:
        print(f"error: {path}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_MALFORMED
    except DecodeError as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return EXIT_MALFORMED
    progress = _Progress(len(capture.frames), enabled=not args.no_progress and _big(path))
    analyser = _Analyser(keyring, GeneralCipheringAad(args.general_aad))
    items = []
    for n, frame in enumerate(capture.frames, start=1):
        items.append(analyser.analyse(frame))
        progress.tick(n)
    progress.done()
    if args.json:
        _print_json(capture, items)
    else:
        _print_text(capture, items, verbose=args.verbose)
    return max((item.status for item in items), default=EXIT_OK)


def _big(path: Path) -> bool:
    try:
        return path.stat().st_size >= _PROGRESS_BYTES
    except OSError:
        return False


class _Progress:
    """Frames analysed so far, on stderr, at most once a second (big captures only)."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled
        self.last = time.monotonic()

    def tick(self, n: int) -> None:
        if self.enabled and time.monotonic() - self.last >= _PROGRESS_EVERY_S:
            self.last = time.monotonic()
            print(f"pcap: {n}/{self.total} frames analysed", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.enabled:
            print(f"pcap: {self.total} frames analysed", file=sys.stderr, flush=True)


# --- analysis ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Item:
    """One frame and what was found in it."""

    frame: CapturedFrame
    apdu: object | None = None
    parts: list[tuple[str, Decipherment]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    status: int = EXIT_OK
    problem: str | None = None

    def fail(self, status: int, problem: str | None) -> None:
        if status > self.status:
            self.status, self.problem = status, problem

    def replace_part(self, index: int, result: Decipherment, note: str) -> None:
        self.parts[index] = (self.parts[index][0], result)
        self.notes.append(note)
        self.status, self.problem = EXIT_OK, None
        for _, part in self.parts:
            self.fail(part.status, part.problem)


_KeyName = tuple[bytes, bytes]  # (originator-system-title, transaction-id)


class _Analyser:
    """Decodes each frame's APDU and deciphers it with what the capture has taught so far."""

    def __init__(self, keyring: KeyRing | None, aad: GeneralCipheringAad) -> None:
        self.keyring = keyring
        self.aad = aad
        self.titles: dict[tuple[int, str], bytes] = {}
        self.dedicated_keys: dict[int, bytes] = {}
        self.content_keys: dict[_KeyName, bytes] = {}
        # C1s seen before the C2 of their kp_id (specs/shared-payload.md §9.3: parked).
        self.parked: dict[_KeyName, list[tuple[_Item, int, GeneralCiphering]]] = {}

    def analyse(self, frame: CapturedFrame) -> _Item:
        item = _Item(frame)
        if frame.error is not None:
            item.fail(EXIT_MALFORMED, _malformed_text(frame.error, frame.where))
            return item
        if frame.apdu is None:
            return item
        try:
            apdu = decode_apdu(frame.apdu)
        except DecodeError as exc:
            item.fail(EXIT_MALFORMED, _apdu_malformed_text(exc, frame))
            return item
        item.apdu = apdu
        conversation = frame.conversation.index
        if isinstance(apdu, AARQ) and apdu.calling_ap_title:
            self.titles[(conversation, frame.source)] = bytes(apdu.calling_ap_title)
        if isinstance(apdu, AARE) and apdu.responding_ap_title:
            self.titles[(conversation, frame.source)] = bytes(apdu.responding_ap_title)
        if self.keyring is None:
            return item
        for index, (name, target) in enumerate(ciphered_parts(apdu)):
            item.parts.append((name, self._decipher(target, item, index)))
            item.fail(item.parts[-1][1].status, item.parts[-1][1].problem)
        return item

    def _decipher(self, apdu: object, item: _Item, index: int) -> Decipherment:
        assert self.keyring is not None
        conversation, source = item.frame.conversation.index, item.frame.source
        preshared: bytes | None = None
        if isinstance(apdu, GeneralCiphering):
            unsupported = _unsupported_key_info(apdu)
            if unsupported is not None:
                return Decipherment(
                    Note(f"not deciphered: {unsupported}"), EXIT_NO_KEY, unsupported
                )
            name = (bytes(apdu.originator_system_title), bytes(apdu.transaction_id))
            if apdu.key_info is None:
                preshared = self.content_keys.get(name)
                if preshared is None:
                    self.parked.setdefault(name, []).append((item, index, apdu))
                    problem = (
                        f"unknown kp_id {name[1].hex().upper() or '(empty)'}: "
                        "no control message in the capture carries its key"
                    )
                    return Decipherment(Note(f"not deciphered: {problem}"), EXIT_NO_KEY, problem)
        result = decipher_for_display(
            apdu,
            self.keyring,
            self.aad,
            system_title=self.titles.get((conversation, source)),
            dedicated_key=self.dedicated_keys.get(conversation),
            preshared_key=preshared,
        )
        if (
            isinstance(apdu, GeneralCiphering)
            and isinstance(apdu.key_info, WrappedKey | _AgreedKey)
            and result.status == EXIT_OK
            and result.content_key is not None
        ):
            self._learn(apdu, result.content_key, item.frame.packet)
        if isinstance(result.plain, InitiateRequest) and result.plain.dedicated_key:
            self.dedicated_keys[conversation] = bytes(result.plain.dedicated_key)
        return result

    def _learn(self, apdu: GeneralCiphering, key: bytes, packet: int) -> None:
        """Remember a payload key and open the C1s that arrived before its C2."""
        assert self.keyring is not None
        name = (bytes(apdu.originator_system_title), bytes(apdu.transaction_id))
        self.content_keys[name] = key
        for item, index, parked in self.parked.pop(name, []):
            result = decipher_for_display(parked, self.keyring, self.aad, preshared_key=key)
            item.replace_part(index, result, f"Kp from the control message in packet {packet}")


def _unsupported_key_info(apdu: GeneralCiphering) -> str | None:
    info = apdu.key_info
    if isinstance(info, _AgreedKey) and bytes(info.key_parameters) not in (b"\x01", b"\x02"):
        shown = bytes(info.key_parameters).hex().upper() or "empty"
        return f"agreed-key parameters {shown} are not supported (brief §6.1: 01 or 02)"
    return None


def _expected(exc: DecodeError) -> str:
    return f" (expected {exc.expected})" if exc.expected and exc.expected not in exc.message else ""


def _malformed_text(exc: DecodeError, where: str) -> str:
    at = f" at offset {exc.offset} of {where}" if exc.offset is not None else f" in {where}"
    return f"malformed frame{at}: {exc.message}{_expected(exc)}"


def _apdu_malformed_text(exc: DecodeError, frame: CapturedFrame) -> str:
    if exc.offset is None:
        return f"malformed APDU: {exc.message}{_expected(exc)}"
    where = f"offset {exc.offset} of the APDU"
    if frame.apdu_offset is not None:
        where += f" ({frame.where} offset {frame.apdu_offset + exc.offset})"
    return f"malformed APDU at {where}: {exc.message}{_expected(exc)}"


# --- lines ---------------------------------------------------------------------------------------


def _addresses(frame: CapturedFrame) -> str:
    if frame.conversation.transport != "serial" or frame.text is not None:
        return f"{frame.source} -> {frame.destination}"
    if frame.to_server is None:
        return f"{frame.source} -> {frame.destination}"
    if frame.to_server:
        return f"client {frame.source} -> server {frame.destination}"
    return f"server {frame.source} -> client {frame.destination}"


def _link_text(link: WrapperFrame | HdlcFrame | None, frame: CapturedFrame) -> str:
    if isinstance(link, WrapperFrame):
        return f"wPort {link.source_wport}->{link.destination_wport}"
    if isinstance(link, HdlcFrame):
        text = link.frame_type.name
        if link.frame_type is FrameType.I:
            text += f" N(S)={link.send_sequence} N(R)={link.receive_sequence}"
        elif link.frame_type in _QUIET_HDLC:
            text += f" N(R)={link.receive_sequence}"
        if link.segmented:
            text += f" segment {frame.segments}"
        elif frame.segments > 1:
            text += f" last of {frame.segments} segments"
        return text
    return ""


def _hdlc_only_text(link: HdlcFrame) -> str:
    if link.frame_type in (FrameType.SNRM, FrameType.UA) and link.information:
        try:
            params = decode_parameters(link.information).with_defaults()
        except DecodeError as exc:
            return f"parameters malformed: {exc}"
        return (
            f"max-info tx {params.max_info_length_transmit} rx {params.max_info_length_receive}, "
            f"window tx {params.window_size_transmit} rx {params.window_size_receive}"
        )
    if link.segmented:
        return f"segment ({len(link.information)} bytes)"
    return ""


def _apdu_text(apdu: object) -> str:
    parts = [apdu_kind(apdu)]
    ident = invoke_id(apdu)
    if ident is not None:
        parts.append(f"id={ident}")
    facts = apdu_facts(apdu)
    if facts:
        parts.append(facts)
    return " ".join(parts)


def _summary(item: _Item) -> str:
    frame = item.frame
    if frame.error is not None:
        return item.problem or "malformed"
    if frame.text is not None:
        return f"serial bytes (not HDLC) {frame.text!r}"
    if item.apdu is None:
        if item.problem is not None:
            return item.problem
        return _hdlc_only_text(frame.link) if isinstance(frame.link, HdlcFrame) else ""
    text = _apdu_text(item.apdu)
    for _name, result in item.parts:
        if result.plain is not None and result.status != EXIT_MALFORMED:
            text += f" => {_apdu_text(result.plain)}"
        if result.problem is not None:
            text += f" [{_STATUS_NAMES.get(result.status, 'error')}: {result.problem}]"
    for note in item.notes:
        text += f" ({note})"
    return text


def _line(capture: Capture, item: _Item) -> str:
    frame = item.frame
    columns = [
        f"{frame.packet:>5}",
        f"{round(frame.timestamp - capture.start_time, 6):10.6f}",
        _addresses(frame),
    ]
    link = _link_text(frame.link, frame)
    if link:
        columns.append(link)
    if frame.error is not None or (item.apdu is None and item.problem is not None):
        columns.append("MALFORMED")
    summary = _summary(item)
    if summary:
        columns.append(summary)
    return "  ".join(columns)


def _shown(item: _Item, verbose: bool) -> bool:
    frame = item.frame
    if verbose or frame.apdu is not None or frame.error is not None or frame.text is not None:
        return True
    link = frame.link
    return isinstance(link, HdlcFrame) and link.frame_type not in _QUIET_HDLC and not link.segmented


def _by_conversation(capture: Capture, items: list[_Item]) -> Iterator[tuple[int, list[_Item]]]:
    groups: dict[int, list[_Item]] = {c.index: [] for c in capture.conversations}
    for item in items:
        groups[item.frame.conversation.index].append(item)
    yield from groups.items()


def _print_text(capture: Capture, items: list[_Item], *, verbose: bool) -> None:
    if not items:
        print("no DLMS traffic found")
        return
    for index, group in _by_conversation(capture, items):
        conversation = capture.conversations[index - 1]
        apdus = sum(1 for item in group if item.frame.apdu is not None)
        print(f"== conversation {index}: {conversation}: {apdus} APDU(s) ==")
        for item in group:
            if not _shown(item, verbose):
                continue
            print(_line(capture, item))
            if verbose and item.frame.link is not None:
                tree = render_tree(item.frame.link, overrides=_overrides(item))
                print("\n".join("      " + line for line in tree.splitlines()))
        print()


# --- trees and JSON ------------------------------------------------------------------------------


def _overrides(item: _Item) -> dict[str, object]:
    """The frame's fields to replace: its APDU bytes by the decoded APDU, and what was
    deciphered (the shape of ``cosemcast decode``)."""
    overrides: dict[str, object] = {}
    frame = item.frame
    link = frame.link
    name = "apdu" if isinstance(link, WrapperFrame) else "information"
    if isinstance(link, HdlcFrame) and frame.segments > 1 and frame.apdu is not None:
        overrides["information"] = Note(f"last of {frame.segments} segments")
        name = "reassembled_apdu"
    if item.apdu is not None:
        overrides[name] = item.apdu
    elif item.problem is not None:
        overrides[name] = Note(item.problem)
    elif (
        isinstance(link, HdlcFrame)
        and link.frame_type in (FrameType.SNRM, FrameType.UA)
        and link.information
    ):
        try:
            overrides["information"] = decode_parameters(link.information)
        except DecodeError as exc:
            overrides["information"] = Note(f"malformed parameters: {exc}")
    for part, result in item.parts:
        overrides[f"deciphered_{part}" if part else "deciphered"] = result.shown
    return overrides


def _json_item(capture: Capture, item: _Item) -> dict[str, JsonValue]:
    frame = item.frame
    out: dict[str, JsonValue] = {
        "conversation": frame.conversation.index,
        "transport": frame.conversation.transport,
        "packet": frame.packet,
        "time": round(frame.timestamp - capture.start_time, 6),
        "timestamp": frame.timestamp,
        "source": frame.source,
        "destination": frame.destination,
    }
    if frame.to_server is not None:
        out["to_server"] = frame.to_server
    out["status"] = _STATUS_NAMES.get(item.status, "error")
    out["problem"] = item.problem
    if item.apdu is not None:
        out["apdu_type"] = apdu_kind(item.apdu)
        out["invoke_id"] = invoke_id(item.apdu)
        plain = [r.plain for _, r in item.parts if r.plain is not None]
        if plain:
            out["deciphered_type"] = apdu_kind(plain[0])
            if out["invoke_id"] is None:
                out["invoke_id"] = invoke_id(plain[0])
    out["summary"] = _summary(item)
    if frame.link is not None:
        out["frame"] = to_jsonable(frame.link, overrides=_overrides(item))
    elif frame.text is not None:
        out["text"] = frame.text.decode("latin-1")
    return out


def _print_json(capture: Capture, items: list[_Item]) -> None:
    for _index, group in _by_conversation(capture, items):
        for item in group:
            print(json.dumps(_json_item(capture, item)))
