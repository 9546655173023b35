"""The blocking DLMS/COSEM client: associate, read, write, invoke, release.

Theory of operation. :class:`DlmsClient` joins a blocking
:class:`~cosemcast.transport.ApduLink` (TCP or UDP with the IEC 62056-47 wrapper, HDLC over a
serial line) to the sans-IO :class:`~cosemcast.association.ClientConnection`. Each public
method runs one operation of :class:`~cosemcast.client._core.ClientCore` (a generator of
requests): the request's APDU goes out, APDUs are received and fed to the connection, and the
APDUs it produces by itself (the HLS pass, GET-Request-Next, further SET/ACTION blocks,
general-block-transfer acknowledgements) go out, until the request's result arrives. Unsolicited
notifications received meanwhile are kept in :attr:`DlmsClient.notifications`::

    with DlmsClient.tcp("127.0.0.1", 4059, Credentials(client_sap=16)) as meter:
        meter.associate()
        energy = meter.read_register("1-0:1.8.0.255")      # RegisterValue: value, scaler, unit
        rows = meter.read_profile("1-0:99.1.0.255", from_=start, to=end).rows

Failures are exceptions of the :class:`~cosemcast.errors.DlmsError` tree: the meter's error
answers are :class:`~cosemcast.client.errors.RequestFailed` subclasses (the association stays
usable); a refused association is :class:`~cosemcast.errors.AssociationRejected`; transport,
security and protocol failures leave the connection unusable (close and reconnect). Leaving the
``with`` block releases an open association and closes the link and the counter stores.
"""

from __future__ import annotations

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
from cosemcast.transport.base import ApduLink
from cosemcast.transport.serial import HdlcSerialLink
from cosemcast.transport.tcp import TcpWrapperLink
from cosemcast.transport.udp import UdpWrapperLink

__all__ = ["DlmsClient"]

_log = logging.getLogger(__name__)
T = TypeVar("T")


class DlmsClient(ClientCore):
    """A blocking client of one meter (one association at a time) over ``link``.

    ``settings`` are :class:`~cosemcast.association.AssociationSettings` or
    :class:`~cosemcast.client.credentials.Credentials`. ``counters`` is the SQLite file of
    the invocation counters (needed when the association has security; default: the
    credentials' ``counters``, else :func:`~cosemcast.client.credentials.default_counters_path`).
    ``timeout_s`` bounds the wait for each APDU of an answer.
    """

    def __init__(
        self,
        link: ApduLink,
        settings: AssociationSettings | Credentials,
        *,
        counters: str | os.PathLike[str] | None = None,
        timeout_s: float | None = 10.0,
        counter_block: int = DEFAULT_COUNTER_BLOCK,
        rng: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        try:
            super().__init__(settings, counters=counters, counter_block=counter_block, rng=rng)
        except BaseException:
            link.close()
            raise
        self.link = link
        self.timeout_s = timeout_s
        self._closed = False

    # --- constructors --------------------------------------------------------------------------

    @classmethod
    def tcp(
        cls,
        host: str,
        port: int = DLMS_PORT,
        settings: AssociationSettings | Credentials | None = None,
        *,
        counters: str | os.PathLike[str] | None = None,
        timeout_s: float | None = 10.0,
        rng: Callable[[int], bytes] = secrets.token_bytes,
    ) -> Self:
        """Connect over TCP (wrapper; wPorts = client SAP and logical device)."""
        settings = Credentials() if settings is None else settings
        association, _ = split_settings(settings, counters)
        link = TcpWrapperLink.connect(
            host,
            port,
            client_wport=association.client_sap,
            server_wport=association.server_sap,
            timeout_s=timeout_s,
        )
        return cls(link, settings, counters=counters, timeout_s=timeout_s, rng=rng)

    @classmethod
    def udp(
        cls,
        host: str,
        port: int = DLMS_PORT,
        settings: AssociationSettings | Credentials | None = None,
        *,
        counters: str | os.PathLike[str] | None = None,
        timeout_s: float | None = 10.0,
        rng: Callable[[int], bytes] = secrets.token_bytes,
    ) -> Self:
        """Use UDP (wrapper). UDP does not retransmit: a lost datagram is a timeout."""
        settings = Credentials() if settings is None else settings
        association, _ = split_settings(settings, counters)
        link = UdpWrapperLink.connect(
            host, port, client_wport=association.client_sap, server_wport=association.server_sap
        )
        return cls(link, settings, counters=counters, timeout_s=timeout_s, rng=rng)

    @classmethod
    def serial(
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
        """Open ``port_url`` (any pyserial URL), sign on in mode E when asked, open HDLC.

        The HDLC server address is the logical device (``server_sap``) with
        ``server_physical_address`` (default: the credentials', else a 1-byte address).
        ``handover_delay_s`` is the pause between the mode E acknowledgement and the switch
        to the agreed rate; ``hdlc_timeout_s`` the wait before an HDLC frame is sent again.
        """
        settings = Credentials() if settings is None else settings
        association, _ = split_settings(settings, counters)
        if server_physical_address is None and isinstance(settings, Credentials):
            server_physical_address = settings.server_physical_address
        link = HdlcSerialLink.open(
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
            link.connect(timeout_s)
        except BaseException:
            link.close()
            raise
        return cls(link, settings, counters=counters, timeout_s=timeout_s, rng=rng)

    # --- the driver ----------------------------------------------------------------------------

    def _exchange(self, request: ClientRequest) -> ClientEvent:
        if self._closed:
            raise LocalProtocolError("the client is closed; open a new one")
        connection = self.connection
        self.link.send_apdu(connection.send(request))
        while True:
            event = connection.next_event()
            for apdu in connection.data_to_send():
                self.link.send_apdu(apdu)
            if event is NEED_DATA:
                data = self.link.receive_apdu(self.timeout_s)
                self._received(data)
                connection.receive_data(data)
            elif isinstance(event, Notification):
                self.notifications.append(event)
            else:
                return event

    def _run(self, operation: Operation[T]) -> T:
        try:
            request = next(operation)
            while True:
                request = operation.send(self._exchange(request))
        except StopIteration as stop:
            return cast(T, stop.value)
        finally:
            operation.close()

    # --- the API -------------------------------------------------------------------------------

    def associate(self) -> AssociationEstablished:
        """Open the association (AARQ/AARE, and the HLS pass for HLS mechanisms)."""
        return self._run(self._associate_op())

    def release(self) -> None:
        """Release the association (RLRQ/RLRE); the link stays open for another one."""
        self._run(self._release_op())

    def get(
        self,
        obis: ObisLike,
        attribute: int = 2,
        class_id: int | None = None,
        selection: SelectiveAccess | None = None,
    ) -> Data:
        """Read one attribute; :class:`DataAccessError` when the meter refuses."""
        return self._run(self._get_op(obis, attribute, class_id, selection))

    def get_many(self, refs: Sequence[AttributeRef]) -> list[Data | DataAccessError]:
        """Read several attributes (one GET-Request-With-List when negotiated).

        ``refs`` are descriptors or ``(obis, attribute[, class_id])``; each result is the
        value or the :class:`DataAccessError` of that attribute (not raised).
        """
        return self._run(self._get_many_op(refs))

    def set(
        self,
        obis: ObisLike,
        attribute: int,
        value: Data,
        class_id: int | None = None,
        selection: SelectiveAccess | None = None,
    ) -> None:
        """Write one attribute; :class:`DataAccessError` when the meter refuses."""
        self._run(self._set_op(obis, attribute, value, class_id, selection))

    def action(
        self,
        obis: ObisLike,
        method: int,
        parameters: Data | Absent = ABSENT,
        class_id: int | None = None,
    ) -> Data | None:
        """Invoke a method; returns its return data (None when there is none).

        ``parameters`` omitted sends no method-invocation-parameters (pass ``None`` for an
        explicit null-data). :class:`~cosemcast.client.errors.ActionError` when refused.
        """
        return self._run(self._action_op(obis, method, parameters, class_id))

    def read_register(self, obis: ObisLike, class_id: int | None = None) -> RegisterValue:
        """Value and scaler_unit of a Register (3) or Extended register (4)."""
        return self._run(self._register_op(obis, class_id))

    def read_profile(
        self,
        obis: ObisLike,
        *,
        from_: dt.datetime | CosemDateTime | None = None,
        to: dt.datetime | CosemDateTime | None = None,
        entries: tuple[int, int] | None = None,
        progress: ProgressCallback | None = None,
        class_id: int | None = None,
    ) -> ProfileBuffer:
        """A Profile generic buffer with its columns.

        ``from_``/``to`` select by time (range descriptor on the first date-time column; an
        open end is 2000-01-01 / 2099-12-31; naive datetimes are the meter's local time),
        ``entries=(first, last)`` by entry number (1-based, last 0 = the newest). ``progress``
        is called after every APDU of the buffer's answer.
        """
        return self._run(self._profile_op(obis, from_, to, entries, progress, class_id))

    def object_list(self) -> tuple[ObjectListEntry, ...]:
        """The current association's object list (0-0:40.0.0.255 attribute 2)."""
        return self._run(self._object_list_op())

    def close(self) -> None:
        """Close the link and the counter stores (without releasing; see ``__exit__``)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.link.close()
        finally:
            self._close_stores()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.associated and not self._closed:
                try:
                    self.release()
                except DlmsError as error:
                    if exc is None:
                        raise
                    _log.debug("release after %s failed: %s", type(exc).__name__, error)
        finally:
            self.close()
