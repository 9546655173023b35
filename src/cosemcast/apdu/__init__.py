"""ACSE and xDLMS APDUs (brief §4-§6): frozen dataclasses with ``encode()``, and
:func:`decode_apdu`, which dispatches on the first byte to the decoder each module registers."""

# Importing each module registers its decoders with cosemcast.apdu.base.
from cosemcast.apdu import (  # noqa: F401
    acse,
    action,
    ciphered,
    common,
    gbt,
    general,
    get,
    initiate,
    notifications,
    set,
)
from cosemcast.apdu.base import Apdu, Reader, decode_apdu, register, registered_tags

__all__ = ["Apdu", "Reader", "decode_apdu", "register", "registered_tags"]
