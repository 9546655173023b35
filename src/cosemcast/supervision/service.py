"""The supervision centre as a service: a DLMS server over TCP in front of the registry.

Theory of operation (specs/supervision.md §8.1). :class:`SupervisionService` runs a
:class:`~cosemcast.transport.tcp.TcpWrapperServer` (one thread per connection). Each connection
holds at most one :class:`~cosemcast.association.ServerConnection` at a time. Whenever the
connection has no association (idle), the next APDU decides which one: an AARQ's
calling-AP-title is looked up in the registry and, when it names an active head-end, the
association is configured with that head-end's channel keys (:mod:`.channel`); any other
title, or no AARQ at all, gets keys drawn for the occasion, so it is refused exactly like a
wrong key. The association layer then does the rest: HLS-GMAC, glo-ciphering, replay checks
with invocation counters persisted next to the registry (``<db>.counters``).

Behind the association, :class:`_ServiceBackend` serves the supervision service object
(:mod:`.wire`): ``assign`` and ``reissue`` call the registry with the head-end ID that HLS
authenticated, never one the request names. Every decision goes into the registry's audit
log: the association accepted or refused, each refused request, and (by the registry itself)
each assignment accepted or refused. Time comes from ``clock`` (POSIX seconds).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from cosemcast.apdu.acse import AARQ
from cosemcast.apdu.base import decode_apdu
from cosemcast.apdu.common import (
    ActionResult,
    CosemAttributeDescriptor,
    CosemMethodDescriptor,
    DataAccessResult,
    SelectiveAccess,
)
from cosemcast.association import (
    NEED_DATA,
    AccessContext,
    AssociationRefused,
    ClientAssociated,
    RequestRejected,
    ServerConnection,
    ServerEvent,
    ServerState,
)
from cosemcast.axdr.types import Data, OctetString
from cosemcast.errors import ConfigurationError, DecodeError
from cosemcast.link.wrapper import WrapperFrame
from cosemcast.security.counters import CounterStore, ReceivedCounterStore
from cosemcast.supervision.channel import DEFAULT_PORT, ChannelKeys, server_settings
from cosemcast.supervision.errors import RegistryError
from cosemcast.supervision.registry import Registry, public_key_bytes
from cosemcast.supervision.wire import (
    SERVICE_CLASS_ID,
    SERVICE_OBIS,
    ServiceMethod,
    encode_assignment,
    encode_refusal,
    refusal_for,
)
from cosemcast.transport.base import Address, format_address
from cosemcast.transport.tcp import TcpServerConnection, TcpWrapperServer

__all__ = ["SupervisionService", "counters_path_for"]

_log = logging.getLogger("cosemcast.supervision")
_TITLE = 8


def counters_path_for(registry_path: Path) -> Path:
    """Where the service keeps the channel's invocation counters: ``<db>.counters``."""
    return registry_path.with_name(registry_path.name + ".counters")


@dataclass(slots=True)
class _Link:
    """One TCP connection: its peer, its current association and whose keys that uses."""

    peer: str
    server: ServerConnection | None = None
    head_end_id: bytes | None = None  # None: the keys were drawn for an unknown party
    claimed: bytes | None = None  # the AARQ's calling-AP-title, as claimed


class _ServiceBackend:
    """The supervision service object (class 8963) for one authenticated head-end."""

    def __init__(self, service: SupervisionService, link: _Link) -> None:
        self._service = service
        self._link = link

    def _caller(self, ctx: AccessContext) -> bytes | None:
        head_end_id = self._link.head_end_id
        if (
            head_end_id is None
            or not ctx.authenticated
            or not ctx.ciphered
            or ctx.client_system_title != head_end_id
        ):
            return None
        return head_end_id

    def get_attribute(
        self,
        ctx: AccessContext,
        descriptor: CosemAttributeDescriptor,
        selection: SelectiveAccess | None,
    ) -> Data | DataAccessResult:
        if descriptor.class_id != SERVICE_CLASS_ID or descriptor.instance_id != SERVICE_OBIS:
            return DataAccessResult.OBJECT_UNDEFINED
        if self._caller(ctx) is None:
            return DataAccessResult.READ_WRITE_DENIED
        registry = self._service.registry
        if descriptor.attribute_id == 1:
            return OctetString(SERVICE_OBIS.to_bytes())
        if descriptor.attribute_id == 2:
            return OctetString(registry.centre_id())
        if descriptor.attribute_id == 3:
            return OctetString(public_key_bytes(registry.centre_public_key()))
        return DataAccessResult.OBJECT_UNDEFINED

    def set_attribute(
        self,
        ctx: AccessContext,
        descriptor: CosemAttributeDescriptor,
        selection: SelectiveAccess | None,
        value: Data,
    ) -> DataAccessResult:
        if descriptor.class_id != SERVICE_CLASS_ID or descriptor.instance_id != SERVICE_OBIS:
            return DataAccessResult.OBJECT_UNDEFINED
        return DataAccessResult.READ_WRITE_DENIED

    def invoke_method(
        self,
        ctx: AccessContext,
        descriptor: CosemMethodDescriptor,
        parameters: Data | None,
    ) -> tuple[ActionResult, Data | None]:
        if descriptor.class_id != SERVICE_CLASS_ID or descriptor.instance_id != SERVICE_OBIS:
            return ActionResult.OBJECT_UNDEFINED, None
        head_end_id = self._caller(ctx)
        if head_end_id is None:
            return ActionResult.READ_WRITE_DENIED, None
        if descriptor.method_id not in tuple(ServiceMethod):
            return ActionResult.OBJECT_UNDEFINED, None
        if type(parameters) is not OctetString:
            return ActionResult.TYPE_UNMATCHED, None
        registry = self._service.registry
        now = self._service.now()
        try:
            if descriptor.method_id == ServiceMethod.ASSIGN:
                issued = registry.assign(
                    head_end_id=head_end_id, enrollment=bytes(parameters), now=now
                )
            else:
                if len(parameters) != _TITLE:
                    return ActionResult.TYPE_UNMATCHED, None
                issued = registry.reissue(
                    meter_id=bytes(parameters),
                    head_end_id=head_end_id,
                    now=now,
                    actor=f"head-end {head_end_id.hex().upper()}",
                )
        except RegistryError as exc:
            return ActionResult.SUCCESS, encode_refusal(refusal_for(exc))
        return ActionResult.SUCCESS, encode_assignment(issued)


class SupervisionService:
    """The centre on TCP: ``start()``, then head-ends connect; ``close()`` stops it.

    ``port`` 0 picks a free port (see :attr:`address`). ``counters_path`` defaults to
    :func:`counters_path_for` the registry's file. The registry must be initialised.
    """

    def __init__(
        self,
        registry: Registry,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        counters_path: str | Path | None = None,
        clock: Callable[[], float] = time.time,
        rng: Callable[[int], bytes] = secrets.token_bytes,
        max_connections: int = 64,
        idle_timeout_s: float | None = 300.0,
    ) -> None:
        self.registry = registry
        self._centre_id = registry.centre_id()
        self._clock = clock
        self._rng = rng
        path = counters_path_for(registry.path) if counters_path is None else Path(counters_path)
        self._counters = CounterStore(path)
        self._received = ReceivedCounterStore(path)
        self._links: dict[TcpServerConnection, _Link] = {}
        self._lock = threading.Lock()
        try:
            self._server = TcpWrapperServer(
                host,
                port,
                self._handle,
                on_connect=self._on_connect,
                on_disconnect=self._on_disconnect,
                max_connections=max_connections,
                idle_timeout_s=idle_timeout_s,
            )
        except BaseException:
            self._counters.close()
            self._received.close()
            raise
        self.address: Address = self._server.address

    def __repr__(self) -> str:
        return f"SupervisionService({format_address(self.address)})"

    def now(self) -> int:
        return int(self._clock())

    def start(self) -> None:
        self._server.start()
        _log.info("supervision centre listening on %s", format_address(self.address))

    def serve_forever(self) -> None:
        """Start if needed and block until :meth:`close` (from another thread or a signal)."""
        self.start()
        self._server.serve_forever()

    def close(self) -> None:
        self._server.close()
        self._counters.close()
        self._received.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- connections -------------------------------------------------------------------------

    def _on_connect(self, conn: TcpServerConnection) -> None:
        with self._lock:
            self._links[conn] = _Link(format_address(conn.peer))

    def _on_disconnect(self, conn: TcpServerConnection) -> None:
        with self._lock:
            self._links.pop(conn, None)
        self.registry.release_thread()

    def _handle(self, conn: TcpServerConnection, frame: WrapperFrame) -> bytes | None:
        with self._lock:
            link = self._links.setdefault(conn, _Link(format_address(conn.peer)))
        if link.server is None or link.server.state is ServerState.IDLE:
            link.server = self._open(link, frame)
        server = link.server
        server.receive_data(frame.apdu)
        while (event := server.next_event()) is not NEED_DATA:
            self._audit(link, event)
        answers = server.data_to_send()
        for extra in answers[:-1]:
            conn.send_apdu(
                extra, source_wport=frame.destination_wport, destination_wport=frame.source_wport
            )
        return answers[-1] if answers else None

    def _open(self, link: _Link, frame: WrapperFrame) -> ServerConnection:
        """A fresh association for ``frame``: the keys of the head-end its AARQ names."""
        title: bytes | None = None
        try:
            apdu = decode_apdu(frame.apdu)
        except DecodeError:
            apdu = None
        if isinstance(apdu, AARQ) and apdu.calling_ap_title is not None:
            title = bytes(apdu.calling_ap_title)
        link.claimed = title
        link.head_end_id = None
        keys: ChannelKeys | None = None
        if title is not None and len(title) == _TITLE:
            try:
                keys = ChannelKeys.from_credential(self.registry.head_end_credential(title))
                link.head_end_id = title
            except (RegistryError, ConfigurationError):
                keys = None
        if keys is None:
            keys = ChannelKeys.generate(self._rng)
        settings = server_settings(
            centre_id=self._centre_id,
            head_end_id=title if title is not None and len(title) == _TITLE else None,
            keys=keys,
            client_sap=frame.source_wport,
            server_sap=frame.destination_wport,
        )
        return ServerConnection(
            settings,
            _ServiceBackend(self, link),
            counters=self._counters,
            received_counters=self._received,
            rng=self._rng,
        )

    def _audit(self, link: _Link, event: ServerEvent) -> None:
        actor = f"channel {link.peer}"
        claimed = link.claimed if link.claimed is not None and len(link.claimed) == 8 else None
        if isinstance(event, ClientAssociated):
            detail = "HLS-GMAC passed"
            accepted = True
        elif isinstance(event, AssociationRefused):
            known = "registered" if link.head_end_id is not None else "unknown or inactive"
            detail = f"association refused ({known} calling-AP-title): {event.reason}"
            accepted = False
        elif isinstance(event, RequestRejected):
            detail = f"request refused: {type(event.error).__name__}: {event.error}"
            self.registry.record(
                "request",
                actor=actor,
                now=self.now(),
                accepted=False,
                detail=detail,
                head_end_id=claimed,
            )
            return
        else:
            return
        _log.info("%s: %s", actor, detail)
        self.registry.record(
            "associate",
            actor=actor,
            now=self.now(),
            accepted=accepted,
            detail=detail,
            head_end_id=claimed,
        )
