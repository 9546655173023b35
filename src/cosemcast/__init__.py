"""cosemcast: a DLMS/COSEM (IEC 62056) protocol stack with the EP 2671052 shared-payload scheme."""

from cosemcast.errors import DecodeError, DlmsError, EncodeError, SecurityError
from cosemcast.obis import Obis

__version__ = "0.1.0"

__all__ = ["DecodeError", "DlmsError", "EncodeError", "Obis", "SecurityError", "__version__"]
