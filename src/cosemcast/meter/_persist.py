"""What of each COSEM object is persisted, and how it comes back (see state.py).

Theory of operation. :func:`snapshot` returns the named COSEM values that describe an
object's changeable state; :func:`restore` puts them back into a freshly built object,
before the meter wires its change hooks. Attributes a client can write are stored as the
attribute value (``attr<n>``, read and written through the object's own access-free
:meth:`~cosemcast.cosem.base.CosemObject.read` / ``write``, so the class keeps checking them);
state no attribute can restore is stored under its own name: the clock ``offset_us``, a
Disconnect control's ``control_state``, a Security setup's ``policy``, an Extended register's
``status`` and ``capture_time``. Keys and passwords go to the ``secrets`` table instead
(:func:`secrets_of`). Profile buffers are rows of their own (state.py).

Decision (copy to specs/): persisted values win over the configuration for the same object
(logical device and OBIS code); a value the object refuses on restore (the configuration
changed its type) is skipped and reported, and the configured value stays.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping

from cosemcast.apdu.common import DataAccessResult
from cosemcast.association.settings import SecurityPolicy
from cosemcast.axdr.types import Data, Enumerated, Long64, OctetString
from cosemcast.cosem.association_ln import AssociationLN
from cosemcast.cosem.base import CosemObject
from cosemcast.cosem.clock import Clock
from cosemcast.cosem.common import ValueRejected, datetime_octets, want_datetime
from cosemcast.cosem.data import DataObject
from cosemcast.cosem.disconnect import ControlState, DisconnectControl
from cosemcast.cosem.profile import ProfileGeneric
from cosemcast.cosem.push_setup import PushSetup
from cosemcast.cosem.register import ExtendedRegister, Register
from cosemcast.cosem.security_setup import SecuritySetup
from cosemcast.cosem.shared_payload import PayloadKeyControl, SharedPayload
from cosemcast.scheduling.cosem import UpstreamScheduleObject

__all__ = ["restore", "secrets_of", "snapshot"]

_log = logging.getLogger("cosemcast.meter")

# Attributes stored as their value, in restore order (profile attributes 3, 5 and 6 empty the
# buffer when written, so they come first and the rows after).
_ATTRIBUTES: dict[type[CosemObject], tuple[int, ...]] = {
    Clock: (3, 5, 6, 7, 8),
    ExtendedRegister: (2, 3),
    Register: (2, 3),
    DataObject: (2,),
    ProfileGeneric: (3, 5, 6, 4, 8),
    PushSetup: (2, 3, 4, 5, 6, 7),
    DisconnectControl: (4,),
    SecuritySetup: (),
    AssociationLN: (),
    SharedPayload: (4, 5, 6),
    PayloadKeyControl: (3,),
    UpstreamScheduleObject: (2, 3, 4, 5),
}


def _attributes(obj: CosemObject) -> tuple[int, ...]:
    for cls in type(obj).__mro__:
        if cls in _ATTRIBUTES:
            return _ATTRIBUTES[cls]
    return ()


def snapshot(obj: CosemObject) -> dict[str, Data]:
    """The persisted fields of ``obj`` (keys excluded)."""
    fields: dict[str, Data] = {}
    for attribute_id in _attributes(obj):
        value = obj.read(attribute_id)
        if not isinstance(value, DataAccessResult):
            fields[f"attr{attribute_id}"] = value
    if isinstance(obj, Clock):
        fields["offset_us"] = Long64(obj.offset // dt.timedelta(microseconds=1))
    elif isinstance(obj, ExtendedRegister):
        fields["status"] = obj.status
        stamp = obj.capture_time
        fields["capture_time"] = None if stamp is None else datetime_octets(stamp)
    elif isinstance(obj, DisconnectControl):
        fields["control_state"] = Enumerated(obj.control_state)
    elif isinstance(obj, SecuritySetup):
        fields["policy"] = Enumerated(int(obj.security_policy))
        fields["client_system_title"] = (
            None if obj.client_system_title is None else OctetString(obj.client_system_title)
        )
    return fields


def secrets_of(obj: CosemObject) -> dict[str, bytes]:
    """The secrets an object holds itself: an association's password, a master key."""
    if isinstance(obj, AssociationLN):
        return {"secret": obj.secret}
    if isinstance(obj, SecuritySetup) and obj.master_key is not None:
        return {"kek": obj.master_key}
    return {}


def restore(
    obj: CosemObject, fields: Mapping[str, Data], secrets: Mapping[str, bytes], where: str
) -> None:
    """Put persisted ``fields`` and ``secrets`` back into a freshly built ``obj``."""
    for attribute_id in _attributes(obj):
        value = fields.get(f"attr{attribute_id}")
        if f"attr{attribute_id}" not in fields:
            continue
        result = obj.write(attribute_id, value)
        if result != DataAccessResult.SUCCESS:
            _log.warning(
                "%s: the stored attribute %d was refused (%s); the configured value stays",
                where,
                attribute_id,
                result.name,
            )
    try:
        _restore_special(obj, fields, secrets)
    except (ValueRejected, ValueError, TypeError) as exc:
        _log.warning("%s: part of the stored state was refused (%s)", where, exc)


def _restore_special(
    obj: CosemObject, fields: Mapping[str, Data], secrets: Mapping[str, bytes]
) -> None:
    if isinstance(obj, Clock):
        offset = fields.get("offset_us")
        if isinstance(offset, int):
            obj.offset = dt.timedelta(microseconds=int(offset))
    elif isinstance(obj, ExtendedRegister):
        if "status" in fields:
            obj.status = fields["status"]
        stamp = fields.get("capture_time")
        if stamp is not None:
            obj.capture_time = want_datetime(stamp)
    elif isinstance(obj, DisconnectControl):
        state = fields.get("control_state")
        if isinstance(state, int):
            obj.control_state = ControlState(int(state))
    elif isinstance(obj, SecuritySetup):
        policy = fields.get("policy")
        if isinstance(policy, int):
            obj.security_policy = SecurityPolicy(int(policy))
        if "client_system_title" in fields:
            title = fields["client_system_title"]
            obj.client_system_title = bytes(title) if isinstance(title, bytes) else None
        if "kek" in secrets:
            obj.master_key = secrets["kek"]
    elif isinstance(obj, AssociationLN) and "secret" in secrets:
        obj.secret = secrets["secret"]
