"""The errors a client request can end in when the meter answers it with an error.

A meter that *answers* (as opposed to one that does not, or sends garbage) can refuse a
request in four ways (brief §4.4-§4.6); each becomes one :class:`RequestFailed` subclass
with the typed result, so callers can ``except DataAccessError as exc: exc.result``:

* :class:`DataAccessError`: a Data-Access-Result other than success in a GET, SET or in the
  return parameters of an ACTION (``object-undefined``, ``read-write-denied``, ...);
* :class:`ActionError`: an Action-Result other than success;
* :class:`ExceptionResponseError`: an EXCEPTION-Response (``D8``), e.g. a replayed or too old
  invocation counter (service error 6 carries the counter the meter expects);
* :class:`ServiceErrorResponse`: a confirmedServiceError (``0E``).

``protected`` says whether the error came ciphered; a clear error in a ciphered association is
a common meter quirk (issue 3) and is surfaced, not hidden. Messages name OBIS codes, class ids
and result names only.
"""

from __future__ import annotations

from typing import Final

from cosemcast.apdu.common import ActionResult, DataAccessResult
from cosemcast.apdu.notifications import ConfirmedServiceError, ExceptionResponse
from cosemcast.errors import DlmsError
from cosemcast.obis import Obis

__all__ = [
    "ActionError",
    "DataAccessError",
    "ExceptionResponseError",
    "RequestFailed",
    "ServiceErrorResponse",
]

_CLASS_RELATED: Final = frozenset(
    {DataAccessResult.OBJECT_CLASS_INCONSISTENT, DataAccessResult.OBJECT_UNDEFINED}
)


class RequestFailed(DlmsError):
    """The meter answered a request with an error."""


def _target(class_id: int | None, obis: Obis | None, member: str, index: int | None) -> str:
    if obis is None:
        return "the request"
    where = f"{obis}" if class_id is None else f"{class_id}/{obis}"
    return where if index is None else f"{where} {member} {index}"


class DataAccessError(RequestFailed):
    """A Data-Access-Result other than success (GET, SET, ACTION return data)."""

    def __init__(
        self,
        result: DataAccessResult,
        *,
        class_id: int | None = None,
        obis: Obis | None = None,
        attribute: int | None = None,
    ) -> None:
        self.result = result
        self.class_id = class_id
        self.obis = obis
        self.attribute = attribute
        target = _target(class_id, obis, "attribute", attribute)
        super().__init__(f"{target}: {_name(result)}")

    @property
    def class_related(self) -> bool:
        """True for the results a wrong class id can cause (object-undefined/-inconsistent)."""
        return self.result in _CLASS_RELATED


class ActionError(RequestFailed):
    """An Action-Result other than success."""

    def __init__(
        self,
        result: ActionResult,
        *,
        class_id: int | None = None,
        obis: Obis | None = None,
        method: int | None = None,
    ) -> None:
        self.result = result
        self.class_id = class_id
        self.obis = obis
        self.method = method
        target = _target(class_id, obis, "method", method)
        super().__init__(f"{target}: {_name(result)}")

    @property
    def class_related(self) -> bool:
        return self.result in (
            ActionResult.OBJECT_CLASS_INCONSISTENT,
            ActionResult.OBJECT_UNDEFINED,
        )


class ExceptionResponseError(RequestFailed):
    """The meter answered with EXCEPTION-Response (brief §4.6)."""

    def __init__(self, response: ExceptionResponse, *, protected: bool) -> None:
        self.response = response
        self.protected = protected
        detail = f"{_name(response.state_error)}, {_name(response.service_error)}"
        if response.invocation_counter_error is not None:
            detail += f" (the meter expects invocation counter {response.invocation_counter_error})"
        clear = "" if protected else " (in clear)"
        super().__init__(f"the meter answered with an exception-response{clear}: {detail}")


class ServiceErrorResponse(RequestFailed):
    """The meter answered with confirmedServiceError (brief §4.6)."""

    def __init__(self, error: ConfirmedServiceError, *, protected: bool) -> None:
        self.error = error
        self.protected = protected
        value = getattr(error.value, "name", error.value)
        clear = "" if protected else " (in clear)"
        super().__init__(
            f"the meter answered with a confirmed-service-error{clear}: "
            f"{_name(error.service)} {_name(error.error)} {value}"
        )


def _name(member: object) -> str:
    name = getattr(member, "name", None)
    return str(member) if name is None else name.lower().replace("_", "-")
