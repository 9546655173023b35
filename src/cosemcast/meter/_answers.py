"""What the meter answers to clients it does not know, and what it logs of associations.

Decisions (copy to specs/): a client SAP or logical device that is not configured gets an
AARE rejected-permanent with diagnostic no-reason-given for an AARQ, an EXCEPTION-Response
(service-not-allowed, operation-not-possible) for anything else. Log lines name client SAPs,
links, mechanisms and reasons, never keys or passwords (the association layer's reasons
carry none).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from cosemcast.apdu.acse import AARE, AARQ, AcseServiceUser, AssociationResult
from cosemcast.apdu.base import decode_apdu
from cosemcast.apdu.notifications import (
    ExceptionResponse,
    ExceptionServiceError,
    ExceptionStateError,
)
from cosemcast.association import (
    AssociationRefused,
    ClientAssociated,
    ClientReleased,
    RequestRejected,
    ServerEvent,
)
from cosemcast.cosem.disconnect import DisconnectControl
from cosemcast.errors import DecodeError

if TYPE_CHECKING:
    from cosemcast.meter.meter import MeterSession

__all__ = ["log_event", "log_output", "refusal"]

_log = logging.getLogger("cosemcast.meter")


def refusal(apdu: bytes) -> bytes:
    try:
        request = decode_apdu(apdu)
    except DecodeError:
        request = None
    if isinstance(request, AARQ):
        return AARE(
            application_context_name=request.application_context_name,
            result=AssociationResult.REJECTED_PERMANENT,
            result_source_diagnostic=AcseServiceUser.NO_REASON_GIVEN,
        ).encode()
    return ExceptionResponse(
        ExceptionStateError.SERVICE_NOT_ALLOWED, ExceptionServiceError.OPERATION_NOT_POSSIBLE
    ).encode()


def log_output(control: DisconnectControl, on: bool) -> None:
    _log.info("%s: supply %s", control.logical_name, "connected" if on else "disconnected")


def log_event(session: MeterSession, event: ServerEvent) -> None:
    who = f"client {session.client_sap} ({session.link})"
    if isinstance(event, ClientAssociated):
        _log.info(
            "%s associated: %s%s",
            who,
            event.mechanism.name,
            ", ciphered" if event.ciphered else "",
        )
    elif isinstance(event, AssociationRefused):
        _log.warning("%s refused: %s (%s)", who, event.diagnostic.name, event.reason)
    elif isinstance(event, ClientReleased):
        _log.info("%s released", who)
    elif isinstance(event, RequestRejected):
        _log.warning("%s request rejected: %s", who, event.error)
