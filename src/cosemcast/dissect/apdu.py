"""The scapy layer of a DLMS APDU, dissected by the project's own codecs.

Theory of operation. :class:`DlmsApdu` never parses bytes itself: its ``dispatch_hook`` hands
the bytes to :func:`cosemcast.apdu.decode_apdu` and picks a layer class made for the type
that came back (``DlmsGetRequestNormal``, ``DlmsGloGetRequest``, ``DlmsGeneralCiphering``...,
built once per type and cached). Every such class has three kinds of fields:

* ``tag``: the first byte, shown with its Blue Book name (brief §4.1);
* ``body``: the bytes after the tag, as received (building writes them back unchanged);
* one field per dataclass field of the decoded APDU (``invoke_id_and_priority``,
  ``cosem_attribute_descriptor``, ``key_info``...), whose value is the decoded object and
  whose ``show()`` text is :func:`cosemcast.cli.render.render_tree`'s, so secrets
  (``repr=False`` fields) read ``<hidden>``. Assigning one of them re-encodes the APDU with
  the codec when the packet is built.

The decoded dataclass is :attr:`DlmsApdu.apdu`. Bytes that do not decode become a
:class:`DlmsMalformedApdu` that names the error and its offset; dissection never raises.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Final

from scapy.fields import AnyField, Field, StrField, XByteEnumField
from scapy.packet import Packet

from cosemcast.apdu import decode_apdu
from cosemcast.capture.summary import TAG_NAMES, apdu_facts, apdu_kind, invoke_id
from cosemcast.cli.render import render_tree
from cosemcast.errors import DecodeError

__all__ = ["DlmsApdu", "DlmsMalformedApdu", "HexField", "apdu_layer_class"]

_PREVIEW: Final = 24
_INDENT: Final = "  "


_LAST: list[tuple[bytes, object] | None] = [None]


def _decode(raw: bytes) -> object:
    """The decoded APDU, or the :class:`DecodeError` it raised (a one-entry cache: the
    dispatch hook and the dissection decode the same bytes one after the other)."""
    cached = _LAST[0]
    if cached is not None and cached[0] == raw:
        return cached[1]
    try:
        result: object = decode_apdu(raw)
    except DecodeError as exc:
        result = exc
    _LAST[0] = (raw, result)
    return result


class HexField(StrField):
    """Bytes shown as hex, the first 24 of them (the length says how many there are)."""

    def i2repr(self, pkt: Packet | None, x: bytes) -> str:
        raw = bytes(x or b"")
        shown = raw[:_PREVIEW].hex(" ").upper()
        more = f" ... ({len(raw)} bytes)" if len(raw) > _PREVIEW else ""
        return shown + more if raw else "(empty)"


class _BodyField(HexField):
    """The APDU bytes after the tag; dissecting it decodes the whole APDU with the codec."""

    def getfield(self, pkt: Packet, s: bytes) -> tuple[bytes, bytes]:
        tag = pkt.getfieldval("tag")
        raw = bytes((tag,)) + bytes(s) if isinstance(tag, int) else bytes(s)
        object.__setattr__(pkt, "_decoded", _decode(raw))
        return b"", bytes(s)


class _DecodedField(Field[Any, Any]):
    """One field of the decoded APDU: consumes no bytes, shows the decoded value."""

    __slots__ = ["attribute"]

    def __init__(self, name: str, attribute: str) -> None:
        super().__init__(name, None)
        self.attribute = attribute

    def getfield(self, pkt: Packet, s: bytes) -> tuple[bytes, Any]:
        decoded = pkt.__dict__.get("_decoded")
        return s, getattr(decoded, self.attribute, None)

    def addfield(self, pkt: Packet, s: bytes, val: Any) -> bytes:
        return s

    def i2repr(self, pkt: Packet | None, x: Any) -> str:
        decoded = pkt.__dict__.get("_decoded") if pkt is not None else None
        if decoded is not None and getattr(decoded, self.attribute, None) is x:
            return _field_blocks(decoded).get(self.attribute, repr(x))
        return render_tree(x)


def _field_blocks(apdu: object) -> dict[str, str]:
    """The tree of each top-level field of ``apdu``, as ``render_tree`` draws it."""
    lines = render_tree(apdu).splitlines()[1:]
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        if line.startswith(_INDENT) and not line.startswith(_INDENT * 2):
            name, _, summary = line[len(_INDENT) :].partition(": ")
            current = blocks.setdefault(name, [summary])
        elif current is not None:
            current.append(line[2 * len(_INDENT) :])
    return {name: "\n".join(text) for name, text in blocks.items()}


class _ErrorField(Field[Any, Any]):
    """What the codec said about bytes it could not decode (consumes nothing)."""

    __slots__ = ["part"]

    def __init__(self, name: str, part: str) -> None:
        super().__init__(name, None)
        self.part = part

    def getfield(self, pkt: Packet, s: bytes) -> tuple[bytes, Any]:
        error = pkt.__dict__.get("_decoded")
        if not isinstance(error, DecodeError):
            return s, None
        if self.part == "offset":
            return s, error.offset
        expected = (
            f" (expected {error.expected})"
            if error.expected and error.expected not in error.message
            else ""
        )
        return s, f"{error.message}{expected}"

    def addfield(self, pkt: Packet, s: bytes, val: Any) -> bytes:
        return s

    def i2repr(self, pkt: Packet | None, x: Any) -> str:
        return "unknown" if x is None else str(x)


class DlmsApdu(Packet):
    """A DLMS/COSEM APDU (ACSE or xDLMS); the layer class depends on what the bytes decode to."""

    name = "DLMS APDU"
    match_subclass = True
    apdu_type: ClassVar[type | None] = None
    fields_desc: ClassVar[list[AnyField]] = [
        XByteEnumField("tag", None, dict(TAG_NAMES)),
        _BodyField("body", b""),
    ]

    @classmethod
    def dispatch_hook(cls, _pkt: bytes | None = None, *args: Any, **kargs: Any) -> type[Packet]:
        if not _pkt:
            return cls
        decoded = _decode(bytes(_pkt))
        if isinstance(decoded, DecodeError):
            return DlmsMalformedApdu
        return apdu_layer_class(type(decoded))

    @classmethod
    def from_apdu(cls, apdu: Any) -> DlmsApdu:
        """The layer for a decoded APDU dataclass (encoded with its codec)."""
        packet = cls(apdu.encode())
        assert isinstance(packet, DlmsApdu)
        return packet

    @property
    def apdu(self) -> object | None:
        """The decoded APDU dataclass, with any field assigned since dissection applied."""
        base = self.__dict__.get("_decoded")
        if base is None:
            tag = self.getfieldval("tag")
            body = bytes(self.getfieldval("body") or b"")
            base = _decode(bytes((tag,)) + body) if isinstance(tag, int) else None
            object.__setattr__(self, "_decoded", base)
        if base is None or isinstance(base, DecodeError):
            return None
        changes = {
            f.attribute: self.getfieldval(f.name)
            for f in self.fields_desc
            if isinstance(f, _DecodedField)
            and self.getfieldval(f.name) is not getattr(base, f.attribute)
        }
        return dataclasses.replace(base, **changes) if changes else base  # type: ignore[type-var]

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        base = self.__dict__.get("_decoded")
        current = self.apdu
        if current is not None and current is not base:
            encoded: bytes = current.encode()  # type: ignore[attr-defined]
            return encoded + pay
        return pkt + pay

    def mysummary(self) -> str:
        apdu = self.apdu
        if apdu is None:
            return self.sprintf("DLMS %tag%")
        ident = invoke_id(apdu)
        parts = [apdu_kind(apdu)] + ([f"id={ident}"] if ident is not None else [])
        facts = apdu_facts(apdu)
        return "DLMS " + " ".join(parts + ([facts] if facts else []))


class DlmsMalformedApdu(DlmsApdu):
    """Bytes that do not decode as an APDU: the codec's error and its offset in the APDU."""

    name = "DLMS APDU (malformed)"
    fields_desc: ClassVar[list[AnyField]] = [
        XByteEnumField("tag", None, dict(TAG_NAMES)),
        _BodyField("body", b""),
        _ErrorField("error", "message"),
        _ErrorField("offset", "offset"),
    ]

    def mysummary(self) -> str:
        return f"DLMS malformed APDU at offset {self.getfieldval('offset')}"


_CLASSES: dict[type, type[DlmsApdu]] = {}


def _field_name(attribute: str) -> str:
    """A scapy field name that does not shadow a Packet attribute (``time``, ``name``...)."""
    return (
        f"{attribute}_"
        if hasattr(Packet, attribute) or attribute in ("apdu", "body")
        else attribute
    )


def apdu_layer_class(apdu_type: type) -> type[DlmsApdu]:
    """The layer class for one APDU dataclass type (built on first use)."""
    found = _CLASSES.get(apdu_type)
    if found is not None:
        return found
    kind = apdu_kind(apdu_type)
    fields: list[Field[Any, Any]] = [
        XByteEnumField("tag", None, dict(TAG_NAMES)),
        _BodyField("body", b""),
    ]
    fields.extend(_DecodedField(_field_name(f.name), f.name) for f in dataclasses.fields(apdu_type))
    layer = type(
        f"Dlms{apdu_type.__name__}",
        (DlmsApdu,),
        {
            "name": f"DLMS {kind}",
            "fields_desc": fields,
            "apdu_type": apdu_type,
            "__module__": __name__,
        },
    )
    _CLASSES[apdu_type] = layer
    return layer
