"""Names and one-line summaries of decoded APDUs, for capture listings and dissectors.

Theory of operation. :data:`TAG_NAMES` gives the Blue Book name of every first byte of brief
§4.1 (``C0`` get-request, ``DD`` general-ciphering...). :func:`apdu_kind` names a decoded APDU
more precisely, from its class (``get-request-normal``, ``glo-get-request``).
:func:`apdu_facts` says in a few words what matters in it: the object and attribute of a
GET/SET/ACTION, the result of a response, the AP titles and mechanism of an association, the
security control and invocation counter of a ciphered APDU, the transaction-id (``kp_id``) and
key-info of general-ciphering. Everything is read from the dataclasses the codecs return;
nothing here parses bytes. Secrets (``repr=False`` fields) are never shown.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Final

from cosemcast.apdu.acse import AARE, AARQ, RLRE, RLRQ
from cosemcast.apdu.ciphered import CipheredTag, ServiceSpecificCiphered
from cosemcast.apdu.common import (
    CosemAttributeDescriptor,
    CosemAttributeDescriptorWithSelection,
    CosemMethodDescriptor,
    DataBlockG,
    DataBlockSA,
    GetDataError,
    GetDataValue,
    ServiceTag,
)
from cosemcast.apdu.gbt import GeneralBlockTransfer
from cosemcast.apdu.general import (
    AgreedKey,
    GeneralCiphering,
    GeneralDedCiphering,
    GeneralGloCiphering,
    GeneralSigning,
    GeneralTag,
    IdentifiedKey,
    KeyInfo,
    WrappedKey,
)
from cosemcast.apdu.initiate import InitiateRequest, InitiateResponse
from cosemcast.apdu.notifications import (
    ConfirmedServiceError,
    DataNotification,
    EventNotificationRequest,
    ExceptionResponse,
)
from cosemcast.axdr.types import DataType, OctetString

__all__ = [
    "TAG_NAMES",
    "apdu_facts",
    "apdu_kind",
    "apdu_tag_name",
    "data_brief",
    "invoke_id",
    "key_info_text",
]


def _kebab(name: str) -> str:
    return name.lower().replace("_", "-")


# Brief §4.1; the glo-/ded-, LN service and general-* names come from the codecs' enums.
TAG_NAMES: Final[Mapping[int, str]] = {
    0x01: "initiate-request",
    0x05: "read-request",
    0x06: "write-request",
    0x08: "initiate-response",
    0x0C: "read-response",
    0x0D: "write-response",
    0x0E: "confirmed-service-error",
    0x0F: "data-notification",
    0x16: "unconfirmed-write-request",
    0x18: "information-report-request",
    0x60: "aarq",
    0x61: "aare",
    0x62: "rlrq",
    0x63: "rlre",
    0xD8: "exception-response",
    0xD9: "access-request",
    0xDA: "access-response",
    0xE0: "general-block-transfer",
    0xE6: "gateway-request",
    0xE7: "gateway-response",
    **{int(t): _kebab(t.name) for t in ServiceTag},
    **{int(t): _kebab(t.name) for t in CipheredTag},
    **{int(t): _kebab(t.name) for t in GeneralTag},
}

_WORD_START: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_MAX_HEX: Final = 16


def apdu_tag_name(tag: int) -> str:
    """The Blue Book name of an APDU's first byte (``unknown 0xNN`` if it names none)."""
    return TAG_NAMES.get(tag, f"unknown 0x{tag:02X}")


def apdu_kind(apdu: object) -> str:
    """The name of a decoded APDU (or APDU class): ``get-request-normal``, ``aarq``,
    ``glo-get-request``."""
    cls = apdu if isinstance(apdu, type) else type(apdu)
    return _WORD_START.sub("-", cls.__name__).lower()


def invoke_id(apdu: object) -> int | None:
    """The invoke-id of an APDU that carries one (short or long form), else ``None``."""
    for name in ("invoke_id_and_priority", "long_invoke_id_and_priority"):
        value = getattr(apdu, name, None)
        if value is not None:
            ident = getattr(value, "invoke_id", None)
            return ident if isinstance(ident, int) else None
    return None


def _hex(raw: bytes) -> str:
    text = bytes(raw).hex().upper()
    if len(raw) > _MAX_HEX:
        return text[: 2 * _MAX_HEX] + f"...({len(raw)} bytes)"
    return text or "empty"


def _enum_name(value: object) -> str:
    if isinstance(value, enum.Enum):
        return _kebab(value.name or str(value.value))
    return str(value)


def data_brief(value: object) -> str:
    """A short rendering of a COSEM Data value: scalars in full, containers by size."""
    if value is None:
        return "null-data"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    tag = getattr(type(value), "TAG", None)
    type_name = _kebab(tag.name) if isinstance(tag, DataType) else type(value).__name__
    if isinstance(value, OctetString | bytes | bytearray):
        return f"{type_name} {_hex(bytes(value))}"
    if isinstance(value, tuple):
        return f"{type_name}[{len(value)}]"
    if isinstance(value, str):
        return f'{type_name} "{value}"'
    if isinstance(value, int | float):
        return f"{type_name} {value}"
    return f"{type_name} {value}"


def _descriptor(value: object) -> str | None:
    if isinstance(value, CosemAttributeDescriptorWithSelection):
        text = _descriptor(value.cosem_attribute_descriptor)
        if value.access_selection is not None:
            text = f"{text} selector {value.access_selection.selector}"
        return text
    if isinstance(value, CosemAttributeDescriptor):
        return f"{value.instance_id} attribute {value.attribute_id} (class {value.class_id})"
    if isinstance(value, CosemMethodDescriptor):
        return f"{value.instance_id} method {value.method_id} (class {value.class_id})"
    return None


def _result(value: object) -> str | None:
    if isinstance(value, GetDataValue):
        return data_brief(value.value)
    if isinstance(value, GetDataError):
        return _enum_name(value.data_access_result)
    if isinstance(value, DataBlockG):
        last = ", last" if value.last_block else ""
        if isinstance(value.result, enum.Enum):
            return f"block {value.block_number}{last}: {_enum_name(value.result)}"
        return f"block {value.block_number}{last} ({len(value.result)} bytes)"
    if isinstance(value, DataBlockSA):
        last = ", last" if value.last_block else ""
        return f"block {value.block_number}{last} ({len(value.raw_data)} bytes)"
    if isinstance(value, enum.Enum):
        return _enum_name(value)
    if isinstance(value, tuple):
        return f"{len(value)} results"
    return None


def key_info_text(key_info: KeyInfo | None) -> str:
    """How a general-ciphering APDU says its content key was established."""
    if key_info is None:
        return "no key-info"
    if isinstance(key_info, IdentifiedKey):
        return f"identified-key {_enum_name(key_info.key_id)}"
    if isinstance(key_info, WrappedKey):
        return f"wrapped-key ({len(key_info.key_ciphered_data)} bytes)"
    if isinstance(key_info, AgreedKey):
        return f"agreed-key parameters {_hex(key_info.key_parameters)}"
    return str(key_info)


def _security(sc: int, ic: int) -> str:
    return f"SC 0x{sc:02X} IC {ic}"


def _association_facts(apdu: AARQ | AARE) -> list[str]:
    facts = [_enum_name(apdu.application_context_name)]
    if isinstance(apdu, AARE):
        facts.append(f"{_enum_name(apdu.result)} ({_enum_name(apdu.result_source_diagnostic)})")
    if apdu.mechanism_name is not None:
        facts.append(f"mechanism {_enum_name(apdu.mechanism_name)}")
    title = apdu.calling_ap_title if isinstance(apdu, AARQ) else apdu.responding_ap_title
    if title:
        facts.append(
            f"{'calling' if isinstance(apdu, AARQ) else 'responding'}-AP-title {_hex(title)}"
        )
    if apdu.user_information is not None:
        facts.append(f"user-information {apdu_kind(apdu.user_information)}")
    return facts


def apdu_facts(apdu: object) -> str:
    """The key facts of a decoded APDU in a few words (empty when there is nothing to add)."""
    facts: list[str] = []
    if isinstance(apdu, AARQ | AARE):
        facts = _association_facts(apdu)
    elif isinstance(apdu, RLRQ | RLRE):
        facts = [f"reason {_enum_name(apdu.reason)}"] if apdu.reason is not None else []
    elif isinstance(apdu, InitiateRequest):
        facts = [f"max-receive-pdu {apdu.client_max_receive_pdu_size}"]
    elif isinstance(apdu, InitiateResponse):
        facts = [f"max-receive-pdu {apdu.server_max_receive_pdu_size}"]
    elif isinstance(apdu, ServiceSpecificCiphered):
        facts = [_security(apdu.security_control, apdu.invocation_counter)]
    elif isinstance(apdu, GeneralGloCiphering | GeneralDedCiphering):
        facts = [
            f"system-title {_hex(apdu.system_title)}",
            _security(apdu.security_control, apdu.invocation_counter),
        ]
    elif isinstance(apdu, GeneralCiphering):
        facts = [
            f"kp_id/transaction-id {_hex(apdu.transaction_id)}",
            f"originator {_hex(apdu.originator_system_title)}",
            f"recipient {_hex(apdu.recipient_system_title)}",
            key_info_text(apdu.key_info),
            _security(apdu.security_control, apdu.invocation_counter),
        ]
    elif isinstance(apdu, GeneralSigning):
        facts = [
            f"transaction-id {_hex(apdu.transaction_id)}",
            f"originator {_hex(apdu.originator_system_title)}",
            f"content {len(apdu.content)} bytes",
        ]
    elif isinstance(apdu, DataNotification):
        if apdu.date_time is not None:
            facts.append(str(apdu.date_time))
        facts.append(data_brief(apdu.notification_body))
    elif isinstance(apdu, EventNotificationRequest):
        facts = [
            _descriptor(apdu.cosem_attribute_descriptor) or "",
            data_brief(apdu.attribute_value),
        ]
    elif isinstance(apdu, ExceptionResponse):
        facts = [_enum_name(apdu.state_error), _enum_name(apdu.service_error)]
    elif isinstance(apdu, ConfirmedServiceError):
        facts = [_enum_name(apdu.service), _enum_name(apdu.error), str(apdu.value)]
    elif isinstance(apdu, GeneralBlockTransfer):
        last = ", last" if apdu.last_block else ""
        facts = [
            f"block {apdu.block_number}{last} ack {apdu.block_number_ack} "
            f"({len(apdu.block_data)} bytes)"
        ]
    else:
        facts = _service_facts(apdu)
    return ", ".join(f for f in facts if f)


def _service_facts(apdu: object) -> list[str]:
    """GET / SET / ACTION requests and responses, by the fields they carry."""
    facts: list[str] = []
    for name in ("cosem_attribute_descriptor", "cosem_method_descriptor"):
        text = _descriptor(getattr(apdu, name, None))
        if text is not None:
            facts.append(text)
    selection = getattr(apdu, "access_selection", None)
    if selection is not None:
        facts.append(f"selector {selection.selector}")
    for name in ("attribute_descriptor_list", "cosem_method_descriptor_list"):
        items = getattr(apdu, name, None)
        if isinstance(items, tuple):
            first = _descriptor(items[0]) if items else None
            facts.append(f"{len(items)} items" + (f", first {first}" if first else ""))
    block = getattr(apdu, "block_number", None)
    if isinstance(block, int) and not isinstance(block, bool):
        facts.append(f"block {block}")
    for name in ("datablock", "pblock"):
        text = _result(getattr(apdu, name, None))
        if text is not None:
            facts.append(text)
    if hasattr(apdu, "value") and not isinstance(apdu, tuple):
        facts.append(data_brief(apdu.value))
    result = getattr(apdu, "result", None)
    if result is not None:
        text = _result(result)
        if text is not None:
            facts.append(text)
    returned = getattr(apdu, "return_parameters", None)
    if returned is not None:
        text = _result(returned)
        if text is not None:
            facts.append(f"returns {text}")
    return facts
