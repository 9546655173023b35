"""The head-end service: durable key store, readings sink, sans-IO core and listeners.

See :mod:`.store`, :mod:`.readings`, :mod:`.headend` and :mod:`.service`.
"""

from cosemcast.headend.headend import HeadEnd
from cosemcast.headend.readings import Reading, ReadingSink, ReadingValue, reading_from
from cosemcast.headend.service import HeadEndService
from cosemcast.headend.store import HeadEndStoreError, ParkedC1, SqliteHeadEndStore

__all__ = [
    "HeadEnd",
    "HeadEndService",
    "HeadEndStoreError",
    "ParkedC1",
    "Reading",
    "ReadingSink",
    "ReadingValue",
    "SqliteHeadEndStore",
    "reading_from",
]
