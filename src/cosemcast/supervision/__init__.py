"""The supervision centre of EP 2671052 and its meter-side counterpart (specs/supervision.md).

Sans-IO pieces: the key function ``F`` and the other Kt-derived keys (:mod:`.kdf`), the signed
and encrypted initialization message (:mod:`.initmsg`), the meter's authentication and validity
units (:mod:`.validation`), the meter's enrollment request (:mod:`.enrollment`); and the
centre's SQLite registry (:mod:`.registry`).

The centre as a service (import the modules directly; they pull in the client and transport
layers): :mod:`.service` (``SupervisionService``, a DLMS server over TCP), :mod:`.client`
(``SupervisionClient``, ``relay_init_message``, ``deliver_init_message``), :mod:`.channel`
(HLS-GMAC settings and ``ChannelKeys``), :mod:`.wire` (the class-8963 service object).
"""

from cosemcast.supervision.enrollment import (
    EnrollmentRequest,
    enrollment_meter_id,
    open_enrollment_request,
)
from cosemcast.supervision.errors import (
    ConsentError,
    FutureEnrollment,
    FutureInitMessage,
    NotAuthorizedError,
    RegistryError,
    StaleEnrollment,
    StaleInitMessage,
    UnknownPartyError,
    ValidityWindowError,
    WrongMeterError,
)
from cosemcast.supervision.initmsg import InitAction, InitMessage, unseal
from cosemcast.supervision.kdf import derive_enrollment_key, derive_ki, derive_ks
from cosemcast.supervision.validation import (
    AcceptedInit,
    AuthorizationStore,
    MemoryAuthorizationStore,
    MeterAuthorization,
    open_init_message,
)

__all__ = [
    "AcceptedInit",
    "AuthorizationStore",
    "ConsentError",
    "EnrollmentRequest",
    "FutureEnrollment",
    "FutureInitMessage",
    "InitAction",
    "InitMessage",
    "MemoryAuthorizationStore",
    "MeterAuthorization",
    "NotAuthorizedError",
    "RegistryError",
    "StaleEnrollment",
    "StaleInitMessage",
    "UnknownPartyError",
    "ValidityWindowError",
    "WrongMeterError",
    "derive_enrollment_key",
    "derive_ki",
    "derive_ks",
    "enrollment_meter_id",
    "open_enrollment_request",
    "open_init_message",
    "unseal",
]
