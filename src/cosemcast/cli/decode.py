"""``cosemcast decode``: show what a hex dump of DLMS traffic contains, deciphered if keys allow.

The input is recognised by its first bytes:

* ``00 01`` and a length field that fits: one or more IEC 62056-47 wrapper frames (brief §1);
* ``7E``: one or more HDLC frames between flags (brief §2), whose FCS must verify; the
  information fields of segmented I/UI frames are joined into one APDU; SNRM/UA parameters
  are decoded; a frame whose format field ``A0..AF`` gives exactly the input length is taken
  as one frame listed without its flags (as JD's test vectors are);
* anything else: one bare APDU.

With ``--keys`` every ciphered APDU (glo-/ded-, general-glo/ded, general-ciphering) is
deciphered with the key ring and the inner APDU shown as a subtree; so is a ciphered APDU
carried in a field (the glo-initiate in an AARQ/AARE user-information). APDUs without a system
title are tried against every party of the ring: the tag tells which one protected it.
:func:`decipher_for_display` does that work for ``cosemcast pcap`` too, which passes it what
a capture teaches (AP titles, dedicated keys, payload keys learnt from control messages). A
general-ciphering APDU whose tag does not verify with the originator's AK is tried with no AK,
as the shared-payload messages compute their AAD (specs/shared-payload.md §4.1).

Exit status: 0 decoded; 1 unusable key file; 2 malformed input or usage; 3 a tag (or a
signature, or a wrapped key) did not verify, in which case no plaintext is shown; 4 no key
in the ring fits the APDU.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Final

from cosemcast.apdu import decode_apdu
from cosemcast.apdu.ciphered import ServiceSpecificCiphered
from cosemcast.apdu.general import GeneralCiphering, GeneralDedCiphering, GeneralGloCiphering
from cosemcast.cli.render import JsonValue, Note, render_tree, to_jsonable
from cosemcast.errors import (
    AuthenticationFailed,
    ConfigurationError,
    DecodeError,
    KeyUnavailableError,
)
from cosemcast.link.hdlc import (
    FLAG,
    FrameType,
    HdlcFrame,
    decode_frame,
    decode_parameters,
)
from cosemcast.link.wrapper import HEADER_LENGTH, WrapperDecoder, WrapperFrame
from cosemcast.security.gcm import SecurityControl, SymmetricKeys
from cosemcast.security.keyring import KeyRing
from cosemcast.security.protection import (
    Deciphered,
    DecipheredGeneral,
    GeneralCipheringAad,
    decipher_apdu,
    decipher_general_with_keyring,
    decipher_with_keyring,
)

__all__ = [
    "EXIT_AUTHENTICATION",
    "EXIT_CONFIGURATION",
    "EXIT_MALFORMED",
    "EXIT_NO_KEY",
    "EXIT_OK",
    "DecipheredView",
    "Decipherment",
    "ciphered_parts",
    "decipher_for_display",
    "register",
    "run",
]

EXIT_OK: Final = 0
EXIT_CONFIGURATION: Final = 1
EXIT_MALFORMED: Final = 2
EXIT_AUTHENTICATION: Final = 3
EXIT_NO_KEY: Final = 4

EXAMPLE_APDU: Final = "push_general_glo_ciphering.hex"
EXAMPLE_KEYS: Final = "push_keys.toml"
_MAX_NESTING: Final = 4

_DESCRIPTION = """\
Decode DLMS/COSEM traffic given in hex: an IEC 62056-47 wrapper frame (TCP/UDP), HDLC
frames between 7E flags (serial, optical probe) or a bare APDU, recognised by their first
bytes. With --keys, ciphered APDUs are deciphered and the inner APDU is shown too."""

_EPILOG = """\
examples:
  cosemcast decode C001C1000100002B0100FF0200
  cosemcast decode "7E A0 07 03 21 93 0F 01 7E"
  cosemcast decode --json 0001000100010046DB08...
  cosemcast decode --keys captures/keys.toml C81E3001234567411312...
  xxd -p capture.bin | cosemcast decode -
  cosemcast decode --example

key file (TOML), one table per party that protects traffic:
  [[keys]]
  system_title = "4D4D4D0000BC614E"
  ek = "000102030405060708090A0B0C0D0E0F"
  ak = "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"

exit status:
  0 decoded, 1 unusable key file, 2 malformed input or usage,
  3 authentication failed (nothing deciphered shown), 4 no key fits"""


class _Failure(Exception):
    """Ends the command with one line on stderr and an exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "decode",
        help="decode (and decipher) a wrapper frame, HDLC frames or an APDU given in hex",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "hex",
        nargs="?",
        metavar="HEX|-",
        help="the bytes in hex (spaces, colons and newlines allowed), or - to read stdin",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a tree")
    parser.add_argument(
        "--keys", metavar="FILE", type=Path, help="TOML key file used to decipher APDUs"
    )
    parser.add_argument(
        "--general-aad",
        choices=[m.value for m in GeneralCipheringAad],
        default=GeneralCipheringAad.GREEN_BOOK.value,
        help="AAD of general-ciphering (DD) tags: the Green Book header fields, or SC and AK "
        "only as Gurux computes it (brief §6.3); default: %(default)s",
    )
    parser.add_argument(
        "--example",
        action="store_true",
        help="decode and decipher a shipped example: a general-glo-ciphered DATA-NOTIFICATION",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except _Failure as failure:
        print(f"error: {failure}", file=sys.stderr)
        return failure.status


# --- input ---------------------------------------------------------------------------------------


def parse_hex(text: str) -> bytes:
    """Hex digits with optional spaces, colons, newlines and a leading ``0x``."""
    digits: list[str] = []
    body = text.strip()
    start = 2 if body[:2].lower() == "0x" else 0
    skip = len(text) - len(text.lstrip()) + start
    for i, char in enumerate(body[start:], start=skip):
        if char in "0123456789abcdefABCDEF":
            digits.append(char)
        elif not (char.isspace() or char == ":"):
            raise _Failure(
                f"at character {i} of the hex input: {char!r} is not a hex digit "
                "(expected hex digits, spaces or colons)",
                EXIT_MALFORMED,
            )
    if not digits:
        raise _Failure("no bytes given (expected hex digits)", EXIT_MALFORMED)
    if len(digits) % 2:
        raise _Failure(
            f"odd number of hex digits ({len(digits)}) (expected whole bytes)", EXIT_MALFORMED
        )
    return bytes.fromhex("".join(digits))


def _example() -> tuple[bytes, Path]:
    folder = resources.files("cosemcast").joinpath("examples")
    data = parse_hex(folder.joinpath(EXAMPLE_APDU).read_text(encoding="ascii"))
    keys = folder.joinpath(EXAMPLE_KEYS)
    return data, Path(str(keys))


# --- messages ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Message:
    """One frame (or a bare APDU) and what was found in it, ready to render."""

    frame: WrapperFrame | HdlcFrame | None
    overrides: dict[str, object] = field(default_factory=dict)
    status: int = EXIT_OK
    problem: str | None = None
    apdu_bytes: bytes | None = None
    apdu_offset: int | None = None
    apdu_field: str = "apdu"


@dataclass(frozen=True, slots=True)
class DecipheredView:
    """What the tree shows for a deciphered APDU (the content key, if any, is not kept)."""

    system_title: bytes
    security_control: int
    invocation_counter: int
    authenticated: bool
    apdu: object


def _malformed(exc: DecodeError, base: int | None, where: str = "") -> _Failure:
    expected = (
        f" (expected {exc.expected})" if exc.expected and exc.expected not in exc.message else ""
    )
    if exc.offset is not None and base is not None:
        return _Failure(f"at offset {base + exc.offset}: {exc.message}{expected}", EXIT_MALFORMED)
    if exc.offset is not None:
        return _Failure(f"{where}at offset {exc.offset}: {exc.message}{expected}", EXIT_MALFORMED)
    return _Failure(f"{where}{exc.message}{expected}", EXIT_MALFORMED)


def _split(data: bytes) -> list[_Message]:
    try:
        if data[0] == FLAG:
            return _hdlc_messages(data)
        if len(data) >= HEADER_LENGTH and data[:2] == b"\x00\x01":
            return _wrapper_messages(data)
        if data[0] & 0xF0 == 0xA0 and int.from_bytes(data[:2], "big") & 0x7FF == len(data):
            # Listed without flags: offset -1 makes "offset + payload_offset" index ``data``.
            return _hdlc_frame_messages([(-1, decode_frame(data))])
    except DecodeError as exc:
        raise _malformed(exc, 0) from exc
    return [_Message(None, apdu_bytes=data, apdu_offset=0)]


def _wrapper_messages(data: bytes) -> list[_Message]:
    decoder = WrapperDecoder()
    decoder.receive_data(data)
    decoder.receive_data(b"")
    messages = []
    offset = 0
    while (frame := decoder.next_frame()) is not None:
        messages.append(_Message(frame, apdu_bytes=frame.apdu, apdu_offset=offset + HEADER_LENGTH))
        offset += HEADER_LENGTH + len(frame.apdu)
    return messages


def _hdlc_messages(data: bytes) -> list[_Message]:
    """Frames one after the other; a closing flag may also open the next frame."""
    frames: list[tuple[int, HdlcFrame]] = []
    pos = 0
    continuation = False
    while pos < len(data):
        if data[pos] != FLAG:
            raise DecodeError("bytes after the last HDLC frame", offset=pos, expected="7E")
        if pos + 1 < len(data) and data[pos + 1] == FLAG:
            pos += 1
            continue
        if pos == len(data) - 1 and frames:
            break
        if pos + 3 > len(data):
            raise DecodeError("truncated HDLC frame", offset=len(data), expected="a format field")
        length = int.from_bytes(data[pos + 1 : pos + 3], "big") & 0x7FF
        raw = data[pos : pos + length + 2]
        try:
            frame = decode_frame(raw, split_llc=not continuation)
        except DecodeError as exc:
            raise DecodeError(
                exc.message,
                offset=None if exc.offset is None else pos + exc.offset,
                expected=exc.expected,
            ) from exc
        if frame.frame_type in (FrameType.I, FrameType.UI):
            continuation = frame.segmented
        frames.append((pos, frame))
        pos += length + 1
    return _hdlc_frame_messages(frames)


def _hdlc_frame_messages(frames: list[tuple[int, HdlcFrame]]) -> list[_Message]:
    messages = []
    segments: list[bytes] = []
    for offset, frame in frames:
        message = _Message(frame)
        if frame.frame_type in (FrameType.SNRM, FrameType.UA) and frame.information:
            message.overrides["information"] = decode_parameters(
                frame.information, offset=offset + frame.payload_offset
            )
        elif frame.frame_type in (FrameType.I, FrameType.UI) and frame.information_field:
            segments.append(frame.information)
            if frame.segmented:
                message.overrides["information"] = Note(
                    f"segment {len(segments)} ({len(frame.information)} bytes), continued below"
                )
            elif len(segments) == 1:
                message.apdu_bytes = frame.information
                message.apdu_offset = offset + frame.payload_offset
                message.apdu_field = "information"
            else:
                message.apdu_bytes = b"".join(segments)
                message.apdu_field = "reassembled_apdu"
                message.overrides["information"] = Note(
                    f"last of {len(segments)} segments ({len(frame.information)} bytes)"
                )
            if not frame.segmented:
                segments = []
        messages.append(message)
    if segments:
        messages[-1].overrides["incomplete"] = Note(
            f"the input ends inside a segmented APDU ({len(segments)} segment(s) so far)"
        )
    return messages


# --- deciphering ---------------------------------------------------------------------------------


def _is_ciphered(apdu: object) -> bool:
    return isinstance(
        apdu,
        ServiceSpecificCiphered | GeneralGloCiphering | GeneralDedCiphering | GeneralCiphering,
    )


@dataclass(frozen=True, slots=True)
class Decipherment:
    """What deciphering one ciphered APDU gave, ready to show (``decode`` and ``pcap``).

    ``shown`` goes under ``deciphered`` in the tree: a :class:`DecipheredView` or a
    :class:`~cosemcast.cli.render.Note` saying why nothing was deciphered. ``status`` is an
    exit status (``EXIT_OK``, ``EXIT_MALFORMED``, ``EXIT_AUTHENTICATION`` or ``EXIT_NO_KEY``)
    and ``problem`` the one-line reason. ``plain`` is the innermost deciphered APDU;
    ``content_key`` the key a general-ciphering key-info yielded (never shown).
    """

    shown: object
    status: int = EXIT_OK
    problem: str | None = None
    plain: object | None = None
    content_key: bytes | None = field(default=None, repr=False)


def decipher_for_display(
    apdu: object,
    keyring: KeyRing,
    aad: GeneralCipheringAad = GeneralCipheringAad.GREEN_BOOK,
    *,
    system_title: bytes | None = None,
    dedicated_key: bytes | None = None,
    preshared_key: bytes | None = None,
    depth: int = 0,
) -> Decipherment:
    """Decipher ``apdu`` with ``keyring`` (and nested ciphered APDUs, up to 4 levels).

    Never raises for bad input: a malformed ciphered or deciphered APDU gives
    ``EXIT_MALFORMED``. The hints serve captures: ``system_title`` is the sender's title for
    APDUs that carry none (from the AARQ/AARE), ``dedicated_key`` the association's dedicated
    key (from its InitiateRequest), ``preshared_key`` the content key of a general-ciphering
    APDU without key-info. Without a title every party of the ring is tried.
    """
    content_key: bytes | None = None
    try:
        if isinstance(apdu, GeneralCiphering):
            general = _decipher_general(apdu, keyring, aad, preshared_key)
            plain, st = general.plain, general.system_title
            sc, ic = general.security_control, general.invocation_counter
            content_key = general.content_key
        elif isinstance(apdu, ServiceSpecificCiphered | GeneralGloCiphering | GeneralDedCiphering):
            result = _decipher_glo_ded(apdu, keyring, system_title, dedicated_key)
            plain, st = result.plain, result.system_title
            sc, ic = result.security_control, result.invocation_counter
        else:
            return Decipherment(Note("not a ciphered APDU"))
    except AuthenticationFailed as exc:
        failed = f"authentication failed: {exc}"
        return Decipherment(
            Note(f"FAILED, {failed}; nothing deciphered"), EXIT_AUTHENTICATION, failed
        )
    except KeyUnavailableError as exc:
        return Decipherment(Note(f"not deciphered: {exc}"), EXIT_NO_KEY, f"no key: {exc}")
    except DecodeError as exc:
        return _malformed_part(exc, "in the ciphered APDU: ")
    try:
        inner = decode_apdu(plain)
    except DecodeError as exc:
        return _malformed_part(exc, "in the deciphered APDU: ")
    status: int = EXIT_OK
    problem: str | None = None
    shown: object = inner
    innermost: object = inner
    if _is_ciphered(inner) and depth < _MAX_NESTING:
        nested = decipher_for_display(inner, keyring, aad, depth=depth + 1)
        if nested.status == EXIT_MALFORMED:
            return nested
        status, problem = nested.status, nested.problem
        innermost = nested.plain
        shown = _Nested(inner, nested.shown)
    authenticated = SecurityControl.from_byte(sc).authenticated
    return Decipherment(
        DecipheredView(st, sc, ic, authenticated, shown), status, problem, innermost, content_key
    )


def _decipher_general(
    apdu: GeneralCiphering,
    keyring: KeyRing,
    aad: GeneralCipheringAad,
    preshared_key: bytes | None,
) -> DecipheredGeneral:
    """With the originator's AK, else with none: the shared-payload messages leave AK out
    of their AAD (specs/shared-payload.md §4.1)."""
    try:
        return decipher_general_with_keyring(
            apdu, keyring, preshared_key=preshared_key, aad=aad, require_authentication=False
        )
    except AuthenticationFailed as failure:
        parties = [
            keyring.get(title)
            for title in (apdu.originator_system_title, apdu.recipient_system_title)
            if title
        ]
        with_ak = [p for p in parties if p is not None and p.ak]
        if not with_ak:
            raise
        without_ak = KeyRing(dataclasses.replace(p, ak=b"") for p in parties if p is not None)
        try:
            return decipher_general_with_keyring(
                apdu, without_ak, preshared_key=preshared_key, aad=aad, require_authentication=False
            )
        except AuthenticationFailed:
            raise failure from None


def _decipher_glo_ded(
    apdu: ServiceSpecificCiphered | GeneralGloCiphering | GeneralDedCiphering,
    keyring: KeyRing,
    system_title: bytes | None,
    dedicated_key: bytes | None,
) -> Deciphered:
    dedicated = isinstance(apdu, GeneralDedCiphering) or (
        isinstance(apdu, ServiceSpecificCiphered) and apdu.DEDICATED
    )
    if not dedicated or dedicated_key is None:
        return decipher_with_keyring(
            apdu, keyring, hint_system_title=system_title, require_authentication=False
        )
    # A dedicated key learned from the association: the AK is the sender's global AK.
    sender = (apdu.system_title if isinstance(apdu, GeneralDedCiphering) else b"") or system_title
    party = keyring.get(sender) if sender is not None else None
    parties = [party] if party is not None else ([] if sender is not None else list(keyring))
    if not parties:
        raise KeyUnavailableError("no party in the key ring for this dedicated-key APDU")
    failure: AuthenticationFailed | None = None
    for candidate in parties:
        try:
            return decipher_apdu(
                apdu,
                keys=SymmetricKeys(dedicated_key, candidate.ak),
                system_title=candidate.system_title,
                require_authentication=False,
            )
        except AuthenticationFailed as exc:
            failure = exc
    raise AuthenticationFailed(
        f"the dedicated key verifies no tag ({len(parties)} candidate(s))"
    ) from failure


def _malformed_part(exc: DecodeError, where: str) -> Decipherment:
    problem = str(_malformed(exc, None, where))
    return Decipherment(Note(f"malformed: {problem}"), EXIT_MALFORMED, problem)


@dataclass(frozen=True, slots=True)
class _Nested:
    """A deciphered APDU that is itself ciphered, with what deciphering it gave."""

    apdu: object
    deciphered: object


# --- command -------------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    keys_path: Path | None = args.keys
    if args.example:
        if args.hex is not None:
            raise _Failure("--example takes no HEX argument", EXIT_MALFORMED)
        data, example_keys = _example()
        keys_path = keys_path or example_keys
        if not args.json:
            print(
                "# example: a general-glo-ciphered DATA-NOTIFICATION push, deciphered with its\n"
                "# public test keys (dlms-cosem tests/test_general_global_cipher.py)\n"
                f"# input: {data.hex().upper()}\n"
            )
    elif args.hex is None:
        raise _Failure("give HEX, - (read stdin) or --example", EXIT_MALFORMED)
    else:
        data = parse_hex(sys.stdin.read() if args.hex == "-" else args.hex)
    keyring = None
    if keys_path is not None:
        try:
            keyring = KeyRing.from_toml(keys_path)
        except ConfigurationError as exc:
            raise _Failure(str(exc), EXIT_CONFIGURATION) from exc
    aad = GeneralCipheringAad(args.general_aad)
    messages = _split(data)
    status = EXIT_OK
    for message in messages:
        _decode_message(message, keyring, aad)
        status = max(status, message.status)
    _print(messages, as_json=args.json)
    for message in messages:
        if message.problem is not None:
            print(f"error: {message.problem}", file=sys.stderr)
    return status


def _decode_message(message: _Message, keyring: KeyRing | None, aad: GeneralCipheringAad) -> None:
    if message.apdu_bytes is None:
        return
    try:
        apdu = decode_apdu(message.apdu_bytes)
    except DecodeError as exc:
        where = "in the reassembled APDU: " if message.apdu_offset is None else ""
        raise _malformed(exc, message.apdu_offset, where) from exc
    message.overrides[message.apdu_field] = apdu
    if keyring is None:
        return
    for name, target in ciphered_parts(apdu):
        result = decipher_for_display(target, keyring, aad)
        if result.status == EXIT_MALFORMED:
            raise _Failure(result.problem or "malformed", EXIT_MALFORMED)
        if result.status > message.status:
            message.status, message.problem = result.status, result.problem
        message.overrides[f"deciphered_{name}" if name else "deciphered"] = result.shown


def ciphered_parts(apdu: object) -> list[tuple[str, object]]:
    """The APDU itself if ciphered, else its ciphered fields (an AARQ's glo-initiate)."""
    if _is_ciphered(apdu):
        return [("", apdu)]
    if not dataclasses.is_dataclass(apdu):
        return []
    return [
        (f.name, getattr(apdu, f.name))
        for f in dataclasses.fields(apdu)
        if f.repr and _is_ciphered(getattr(apdu, f.name))
    ]


def _print(messages: list[_Message], *, as_json: bool) -> None:
    if as_json:
        items: list[JsonValue] = []
        for m in messages:
            if m.frame is None:
                apdu = m.overrides.pop("apdu")
                items.append(to_jsonable(apdu, overrides=m.overrides))
            else:
                items.append(to_jsonable(m.frame, overrides=m.overrides))
        print(json.dumps(items[0] if len(items) == 1 else items, indent=2))
        return
    blocks = []
    for m in messages:
        if m.frame is None:
            apdu = m.overrides.pop("apdu")
            blocks.append(render_tree(apdu, overrides=m.overrides))
        else:
            blocks.append(render_tree(m.frame, overrides=m.overrides))
    print("\n\n".join(blocks))
