"""A-XDR: the COSEM Data types and their encoding (brief §9)."""

from cosemcast.axdr.codec import (
    MAX_DEPTH,
    decode_data,
    decode_data_at,
    decode_datetime_bytes,
    decode_length,
    encode_data,
    encode_datetime_bytes,
    encode_length,
)
from cosemcast.axdr.types import *  # noqa: F403
from cosemcast.axdr.types import __all__ as _types_all

__all__ = [
    "MAX_DEPTH",
    "decode_data",
    "decode_data_at",
    "decode_datetime_bytes",
    "decode_length",
    "encode_data",
    "encode_datetime_bytes",
    "encode_length",
    *_types_all,
]
