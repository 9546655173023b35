"""The asyncio DLMS/COSEM client: :class:`AsyncDlmsClient`, the same API as the blocking one.

Theory of operation. The operations are those of :class:`~cosemcast.client._core.ClientCore`
(generators of association requests); this module only drives them over an
:class:`~cosemcast.transport.AsyncApduLink`: TCP or UDP with the wrapper
(:func:`~cosemcast.transport.open_tcp_link`, :func:`~cosemcast.transport.open_udp_link`) or
HDLC over a serial line (:class:`~cosemcast.transport.serial.AsyncHdlcSerialLink`)::

    client = await AsyncDlmsClient.tcp("127.0.0.1", 4059, credentials)
    async with client:
        await client.associate()
        energy = await client.read_register("1-0:1.8.0.255")

The invocation-counter stores are SQLite files written synchronously from the event loop; a
write is a few milliseconds every ``counter_block`` APDUs. One request at a time: concurrent
calls on one client are serialised by a lock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import secrets
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Self, TypeVar, cast

from cosemcast.apdu.common import ABSENT, Absent, SelectiveAccess
from cosemcast.association import (
    NEED_DATA,
    AssociationEstablished,
    AssociationSettings,
    ClientEvent,
    ClientRequest,
    Notification,
)
from cosemcast.axdr.types import CosemDateTime, Data
from cosemcast.client._core import (
    DEFAULT_COUNTER_BLOCK,
    AttributeRef,
    ClientCore,
    ObisLike,
    Operation,
    ProgressCallback,
    split_settings,
)
from cosemcast.client.credentials import Credentials
from cosemcast.client.errors import DataAccessError
from cosemcast.cosem.client_views import ProfileBuffer, RegisterValue
from cosemcast.cosem.object_list import ObjectListEntry
from cosemcast.errors import DlmsError, LocalProtocolError
from cosemcast.link.hdlc import HdlcAddress
from cosemcast.link.wrapper import DLMS_PORT
from cosemcast.transport.aio import open_tcp_link, open_udp_link
from cosemcast.transport.base import AsyncApduLink
from cosemcast.transport.serial import AsyncHdlcSerialLink

__all__ = ["AsyncDlmsClient"]

_log = logging.getLogger(__name__)
T = TypeVar("T")


class AsyncDlmsClient(ClientCore):
    """An asyncio client of one meter over ``link``; see :class:`~cosemcast.client.DlmsClient`."""

    def __init__(
        self,
        link: AsyncApduLink,
        settings: AssociationSettings | Credentials,
        *,
        counters: str | os.PathLike[str] | None = None,
        timeout_s: float | None = 10.0,
        counter_block: int = DEFAULT_COUNTER_BLOCK,
        rng: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        super().__init__(settings, counters=counters, counter_block=counter_block, rng=rng)
        self.link = link
        self.timeout_s = timeout_s
        self._closed = False
        self._lock = asyncio.Lock()

    @classmethod
    async def _create(
        cls,
        link: AsyncApduLink,
        settings: AssociationSettings | Credentials,
        counters: str | os.PathLike[str] | None,
        timeout_s: float | None,
        rng: Callable[[int], bytes],
    ) -> Self:
        try:
            return cls(link, settings, counters=counters, timeout_s=timeout_s, rng=rng)
        except BaseException:
            await link.close()
            raise

    @classmethod
    async def tcp(
        cls,
        host: str,
        port: int = DLMS_PORT,
        settings: AssociationSettings | Credentials | None = None,
        *,
        counters: str | os.PathLike[str] | None = None,
        timeout_s: float | None = 10.0,
        rng: Callable[[int], bytes] = secrets.token_bytes,
    ) -> Self:
        settings = Credentials() if settings is None else settings
        association, _ = split_settings(settings, counters)
        link = await open_tcp_link(
            host, port, association.client_sap, association.server_sap, timeout_s
        )
        return await cls._create(link, settings, counters, timeout_s, rng)

    @classmethod
    async def udp(
        cls,
        host: str,
        port: int = DLMS_PORT,
        settings: AssociationSettings | Credentials | None = None,
        *,
        counters: str | os.PathLike[str] | None = None,
        timeout_s: float | None = 10.0,
        rng: Callable[[int], bytes] = secrets.token_bytes,
    ) -> Self:
        settings = Credentials() if settings is None else settings
        association, _ = split_settings(settings, counters)
        link = await open_udp_link(host, port, association.client_sap, association.server_sap)
        return await cls._create(link, settings, counters, timeout_s, rng)

    @classmethod
    async def serial(
        cls,
        port_url: str,
        settings: AssociationSettings | Credentials | None = None,
        *,
        mode_e: bool = True,
        server_physical_address: int | None = None,
        baud_rate: int = 9600,
        max_baud_rate: int | None = None,
        handover_delay_s: float = 0.5,
        hdlc_timeout_s: float = 3.0,
        counters: str | os.PathLike[str] | None = None,
        timeout_s: float | None = 10.0,
        rng: Callable[[int], bytes] = secrets.token_bytes,
    ) -> Self:
        settings = Credentials() if settings is None else settings
        association, _ = split_settings(settings, counters)
        if server_physical_address is None and isinstance(settings, Credentials):
            server_physical_address = settings.server_physical_address
        link = await AsyncHdlcSerialLink.open(
            port_url,
            client_address=HdlcAddress.client(association.client_sap),
            server_address=HdlcAddress.server(association.server_sap, server_physical_address),
            mode_e=mode_e,
            baud_rate=baud_rate,
            max_baud_rate=max_baud_rate,
            handover_delay_s=handover_delay_s,
            response_timeout_s=hdlc_timeout_s,
        )
        try:
            await link.connect(timeout_s)
        except BaseException:
            await link.close()
            raise
        return await cls._create(link, settings, counters, timeout_s, rng)

    # --- the driver ----------------------------------------------------------------------------

    async def _exchange(self, request: ClientRequest) -> ClientEvent:
        connection = self.connection
        await self.link.send_apdu(connection.send(request))
        while True:
            event = connection.next_event()
            for apdu in connection.data_to_send():
                await self.link.send_apdu(apdu)
            if event is NEED_DATA:
                data = await self.link.receive_apdu(self.timeout_s)
                self._received(data)
                connection.receive_data(data)
            elif isinstance(event, Notification):
                self.notifications.append(event)
            else:
                return event

    async def _run(self, operation: Operation[T]) -> T:
        async with self._lock:
            if self._closed:
                operation.close()
                raise LocalProtocolError("the client is closed; open a new one")
            try:
                request = next(operation)
                while True:
                    request = operation.send(await self._exchange(request))
            except StopIteration as stop:
                return cast(T, stop.value)
            finally:
                operation.close()

    # --- the API (see DlmsClient for the details) ----------------------------------------------

    async def associate(self) -> AssociationEstablished:
        return await self._run(self._associate_op())

    async def release(self) -> None:
        await self._run(self._release_op())

    async def get(
        self,
        obis: ObisLike,
        attribute: int = 2,
        class_id: int | None = None,
        selection: SelectiveAccess | None = None,
    ) -> Data:
        return await self._run(self._get_op(obis, attribute, class_id, selection))

    async def get_many(self, refs: Sequence[AttributeRef]) -> list[Data | DataAccessError]:
        return await self._run(self._get_many_op(refs))

    async def set(
        self,
        obis: ObisLike,
        attribute: int,
        value: Data,
        class_id: int | None = None,
        selection: SelectiveAccess | None = None,
    ) -> None:
        await self._run(self._set_op(obis, attribute, value, class_id, selection))

    async def action(
        self,
        obis: ObisLike,
        method: int,
        parameters: Data | Absent = ABSENT,
        class_id: int | None = None,
    ) -> Data | None:
        return await self._run(self._action_op(obis, method, parameters, class_id))

    async def read_register(self, obis: ObisLike, class_id: int | None = None) -> RegisterValue:
        return await self._run(self._register_op(obis, class_id))

    async def read_profile(
        self,
        obis: ObisLike,
        *,
        from_: dt.datetime | CosemDateTime | None = None,
        to: dt.datetime | CosemDateTime | None = None,
        entries: tuple[int, int] | None = None,
        progress: ProgressCallback | None = None,
        class_id: int | None = None,
    ) -> ProfileBuffer:
        return await self._run(self._profile_op(obis, from_, to, entries, progress, class_id))

    async def object_list(self) -> tuple[ObjectListEntry, ...]:
        return await self._run(self._object_list_op())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self.link.close()
        finally:
            self._close_stores()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.associated and not self._closed:
                try:
                    await self.release()
                except DlmsError as error:
                    if exc is None:
                        raise
                    _log.debug("release after %s failed: %s", type(exc).__name__, error)
        finally:
            await self.close()
