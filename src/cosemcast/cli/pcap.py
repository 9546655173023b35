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
  control messages and shared-payload C1s of DESIGN.md §4; a C2 whose meter has no ``kek``
  is unwrapped with the ``kek`` of its recipient head-end's entry (that head-end's ``Ks``);
* the f(StoC) and f(CtoS) of an HLS-GMAC pass are checked with the responders' keys;
* enrollment requests and initialization messages (specs/supervision.md) are shown, checked
  with the ``ke``/``ki`` fields of the key file (:mod:`cosemcast.capture.supervision_view`).

The analysis lives in :mod:`cosemcast.cli._pcap_analysis`; this module reads the arguments and
prints.

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
from pathlib import Path
from typing import Final

from cosemcast.capture.summary import apdu_facts, apdu_kind, invoke_id
from cosemcast.capture.supervision_view import (
    EnrollmentView,
    InitMessageView,
    SupervisionKeys,
    load_capture_keys,
)
from cosemcast.capture.traffic import Capture, CapturedFrame, read_capture
from cosemcast.cli._pcap_analysis import Analyser, Item
from cosemcast.cli.decode import EXIT_CONFIGURATION, EXIT_MALFORMED, EXIT_NO_KEY, EXIT_OK
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
  cosemcast pcap --keys captures/supervision_keys.toml captures/supervision_assignment.pcap
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
    parser.add_argument(
        "--any-port",
        action="store_true",
        help="find the wrapper on any TCP/UDP port (automatic when nothing is on 4059 and no "
        "--port is given: captures written by --pcap)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    path: Path = args.file
    keyring: KeyRing | None = None
    extras = SupervisionKeys()
    if args.keys is not None:
        try:
            keyring, extras = load_capture_keys(args.keys)
        except ConfigurationError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_CONFIGURATION
    try:
        if args.any_port:
            capture = read_capture(path, ports=None)
        else:
            capture = read_capture(path, ports=args.port or (DLMS_PORT,))
            if not capture.frames and args.port is None:
                capture = read_capture(path, ports=None)  # our own --pcap captures
    except OSError as exc:
        print(f"error: {path}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_MALFORMED
    except DecodeError as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return EXIT_MALFORMED
    progress = _Progress(len(capture.frames), enabled=not args.no_progress and _big(path))
    analyser = Analyser(keyring, GeneralCipheringAad(args.general_aad), extras)
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


def _kind(apdu: object) -> str:
    if isinstance(apdu, InitMessageView):
        return "initialization-message"
    if isinstance(apdu, EnrollmentView):
        return "enrollment-request"
    return apdu_kind(apdu)


def _apdu_text(apdu: object) -> str:
    if isinstance(apdu, InitMessageView | EnrollmentView):
        return apdu.text()
    parts = [apdu_kind(apdu)]
    ident = invoke_id(apdu)
    if ident is not None:
        parts.append(f"id={ident}")
    facts = apdu_facts(apdu)
    if facts:
        parts.append(facts)
    return " ".join(parts)


def _summary(item: Item) -> str:
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


def _line(capture: Capture, item: Item) -> str:
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


def _shown(item: Item, verbose: bool) -> bool:
    frame = item.frame
    if verbose or frame.apdu is not None or frame.error is not None or frame.text is not None:
        return True
    link = frame.link
    return isinstance(link, HdlcFrame) and link.frame_type not in _QUIET_HDLC and not link.segmented


def _by_conversation(capture: Capture, items: list[Item]) -> Iterator[tuple[int, list[Item]]]:
    groups: dict[int, list[Item]] = {c.index: [] for c in capture.conversations}
    for item in items:
        groups[item.frame.conversation.index].append(item)
    yield from groups.items()


def _print_text(capture: Capture, items: list[Item], *, verbose: bool) -> None:
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


def _overrides(item: Item) -> dict[str, object]:
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


def _json_item(capture: Capture, item: Item) -> dict[str, JsonValue]:
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
            out["deciphered_type"] = _kind(plain[0])
            if out["invoke_id"] is None:
                out["invoke_id"] = invoke_id(plain[0])
    out["summary"] = _summary(item)
    if frame.link is not None:
        out["frame"] = to_jsonable(frame.link, overrides=_overrides(item))
    elif frame.text is not None:
        out["text"] = frame.text.decode("latin-1")
    return out


def _print_json(capture: Capture, items: list[Item]) -> None:
    for _index, group in _by_conversation(capture, items):
        for item in group:
            print(json.dumps(_json_item(capture, item)))
