"""COSEM interface classes, server side and client side (Blue Book; brief §8, §9.4).

Server side: the interface classes (Data, Register, Extended register, Profile generic,
Clock, Association LN, Push setup, Security setup, Disconnect control) as
:class:`CosemObject` subclasses holding a meter's state, and :class:`ObjectModel`, one
logical device, which implements the association layer's ``ServerBackend``.

Client side: :mod:`cosemcast.cosem.client_views` (register values with scaler and unit,
profile buffers, object lists, selective-access builders) and the attribute/method tables of
every class (``Register.attribute_id("scaler_unit") == 3``).
"""

from cosemcast.cosem.access import AccessMode, AccessRights, MethodAccessMode
from cosemcast.cosem.association_ln import AssociationLN, AssociationStatus, XdlmsContextInfo
from cosemcast.cosem.base import AttributeSpec, CosemObject, MethodSpec, ModelView, class_for
from cosemcast.cosem.client_views import (
    ProfileBuffer,
    RegisterValue,
    parse_capture_objects,
    parse_profile_buffer,
    parse_scaler_unit,
)
from cosemcast.cosem.clock import Clock, ClockBase
from cosemcast.cosem.common import CaptureObjectDefinition
from cosemcast.cosem.data import DataObject
from cosemcast.cosem.disconnect import ControlMode, ControlState, DisconnectControl, Trigger
from cosemcast.cosem.model import CURRENT_ASSOCIATION, ObjectModel
from cosemcast.cosem.object_list import (
    AttributeAccessItem,
    MethodAccessItem,
    ObjectListEntry,
    encode_object_list,
    parse_object_list,
)
from cosemcast.cosem.profile import ProfileGeneric, SortMethod
from cosemcast.cosem.push_setup import (
    CommunicationWindow,
    MessageType,
    PushSetup,
    SendDestinationAndMethod,
    TransportService,
)
from cosemcast.cosem.register import ExtendedRegister, Register
from cosemcast.cosem.security_setup import (
    CertificateInfo,
    KeyId,
    SecuritySetup,
    TransferredKey,
    key_transfer_parameters,
)
from cosemcast.cosem.selective import (
    EntryDescriptor,
    RangeDescriptor,
    clock_range,
    entry_selection,
    parse_selective_access,
    range_selection,
)
from cosemcast.cosem.units import Unit, unit_symbol

__all__ = [
    "CURRENT_ASSOCIATION",
    "AccessMode",
    "AccessRights",
    "AssociationLN",
    "AssociationStatus",
    "AttributeAccessItem",
    "AttributeSpec",
    "CaptureObjectDefinition",
    "CertificateInfo",
    "Clock",
    "ClockBase",
    "CommunicationWindow",
    "ControlMode",
    "ControlState",
    "CosemObject",
    "DataObject",
    "DisconnectControl",
    "EntryDescriptor",
    "ExtendedRegister",
    "KeyId",
    "MessageType",
    "MethodAccessItem",
    "MethodAccessMode",
    "MethodSpec",
    "ModelView",
    "ObjectListEntry",
    "ObjectModel",
    "ProfileBuffer",
    "ProfileGeneric",
    "PushSetup",
    "RangeDescriptor",
    "Register",
    "RegisterValue",
    "SecuritySetup",
    "SendDestinationAndMethod",
    "SortMethod",
    "TransferredKey",
    "TransportService",
    "Trigger",
    "Unit",
    "XdlmsContextInfo",
    "class_for",
    "clock_range",
    "encode_object_list",
    "entry_selection",
    "key_transfer_parameters",
    "parse_capture_objects",
    "parse_object_list",
    "parse_profile_buffer",
    "parse_scaler_unit",
    "parse_selective_access",
    "range_selection",
    "unit_symbol",
]
