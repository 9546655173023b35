"""A-XDR encoding and decoding of COSEM Data (brief §9): the public face of
:mod:`cosemcast.axdr._decode` (hand-written, bounds-checked, hot) and
:mod:`cosemcast.axdr._encode`."""

from cosemcast.axdr._decode import (
    MAX_DEPTH,
    decode_data,
    decode_data_at,
    decode_datetime_bytes,
    decode_length,
)
from cosemcast.axdr._encode import encode_data, encode_datetime_bytes, encode_length

__all__ = [
    "MAX_DEPTH",
    "decode_data",
    "decode_data_at",
    "decode_datetime_bytes",
    "decode_length",
    "encode_data",
    "encode_datetime_bytes",
    "encode_length",
]
