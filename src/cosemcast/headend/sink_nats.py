"""Decoded readings into a NATS JetStream stream, partitioned by meter (issue 7 item 4).

Theory of operation. :class:`NatsJetStreamSink` has the interface the head-end writes to
(``write(reading)``, ``close()``), so it can stand alone or ride behind a
:class:`~.readings.ReadingSink` (``ReadingSink(also=[sink])``). Each :class:`~.readings.Reading`
becomes one JSON message (the ``ReadingSink`` JSON line plus ``"partition"``) on the subject
``<prefix>.<partition>.<METER HEX>``, where ``partition = crc32(meter system title) mod P``
(:func:`partition_of`: stable across processes and machines, so every reading of a meter lands
in the same partition and a consumer group can split the stream by ``<prefix>.<p>.>``). The
header ``Nats-Msg-Id`` is ``<METER>|<KP_ID>|<IC>``: one C1 is named by its meter, payload key
and invocation counter, so JetStream drops a re-published reading inside the stream's
duplicate window, whether it comes from a retry here or from another head-end of the same
operator publishing into the same stream (specs/deployment.md §4).

Threads. :meth:`write` is called from the head-end's listener threads and never waits for the
network: it appends to a buffer and wakes a private asyncio loop running in its own thread,
which publishes asynchronously (``publish_async``) and counts the broker's acknowledgements.
At most ``max_in_flight`` readings are buffered or unacknowledged; when that many are pending,
:meth:`write` blocks up to ``buffer_wait_s`` and then raises :class:`ReadingsError`: memory
stays bounded, the head-end counts the reading under ``rejected.readings_error`` and goes on
(the reading is still in the store's ``readings`` table when the store keeps readings; the
stream misses it). A publish the broker does not acknowledge within ``ack_timeout_s``, or that
fails while the client reconnects, is sent again with the same ``Nats-Msg-Id`` up to
``max_retries`` times, then counted as ``failed`` and logged with identifiers only.
:meth:`flush` waits until nothing is pending; :meth:`close` flushes, drains the connection
and raises if any reading was never confirmed. An unreachable broker, or one without
JetStream, fails the constructor with a :class:`ReadingsError` that says which.

``nats-py`` is an optional dependency (``pip install cosemcast[nats]``).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import json
import logging
import threading
import zlib
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from cosemcast.headend.readings import Reading, ReadingsError

if TYPE_CHECKING:
    import nats.aio.client
    import nats.js

__all__ = ["NatsJetStreamSink", "NatsSinkConfig", "message_id", "partition_of", "subject_of"]

_log = logging.getLogger(__name__)

T = TypeVar("T")


def partition_of(meter_system_title: bytes, partitions: int) -> int:
    """The partition of a meter: CRC-32 (IEEE) of its system title, modulo ``partitions``."""
    return zlib.crc32(meter_system_title) % partitions


def subject_of(prefix: str, meter_system_title: bytes, partitions: int) -> str:
    """``<prefix>.<partition>.<METER HEX>``."""
    meter = meter_system_title.hex().upper()
    return f"{prefix}.{partition_of(meter_system_title, partitions)}.{meter}"


def message_id(reading: Reading) -> str:
    """``<METER>|<KP_ID>|<IC>``: the JetStream de-duplication key of a reading."""
    return (
        f"{reading.meter_system_title.hex().upper()}|"
        f"{reading.kp_id.to_bytes().hex().upper()}|{reading.invocation_counter}"
    )


@dataclass(frozen=True, slots=True)
class NatsSinkConfig:
    """Where and how to publish (module doc)."""

    servers: tuple[str, ...] = ("nats://127.0.0.1:4222",)
    stream: str = "COSEMCAST_READINGS"
    subject_prefix: str = "cosemcast.readings"
    partitions: int = 16
    create_stream: bool = True
    replicas: int = 1
    duplicate_window_s: float = 120.0
    max_in_flight: int = 8192
    buffer_wait_s: float = 5.0
    ack_timeout_s: float = 5.0
    max_retries: int = 5
    connect_timeout_s: float = 5.0
    close_timeout_s: float = 30.0
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.servers:
            raise ValueError("give at least one NATS server")
        if not 1 <= self.partitions <= 1 << 16:
            raise ValueError("partitions must be between 1 and 65536")
        if self.max_in_flight < 1 or self.max_retries < 0:
            raise ValueError("max_in_flight ≥ 1 and max_retries ≥ 0")
        if not self.stream or any(c in self.stream for c in " .*>"):
            raise ValueError(f"{self.stream!r} is not a JetStream stream name")
        if not self.subject_prefix or any(c in self.subject_prefix for c in " *>"):
            raise ValueError(f"{self.subject_prefix!r} is not a subject prefix")

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> NatsSinkConfig:
        """``nats://host:port[,host:port…][/STREAM][?prefix=SUBJECT.PREFIX&partitions=P]``
        (user:password@ allowed on the first server). Streams of one JetStream account may not
        share subjects, so two streams on one cluster need two prefixes."""
        if not url.startswith(("nats://", "tls://")):
            raise ValueError(f"{url!r} is not a nats:// URL")
        scheme, _, rest = url.partition("://")
        rest, _, query = rest.partition("?")
        hosts, _, stream = rest.partition("/")
        parts = [p for p in hosts.split(",") if p]
        if not parts:
            raise ValueError(f"{url!r} names no server")
        first = urlsplit(f"{scheme}://{parts[0]}")
        if first.hostname is None:
            raise ValueError(f"{url!r} names no server")
        servers = [f"{scheme}://{first.hostname}:{first.port or 4222}"]
        for part in parts[1:]:
            split = urlsplit(f"{scheme}://{part}")
            servers.append(f"{scheme}://{split.hostname}:{split.port or 4222}")
        values: dict[str, Any] = {"servers": tuple(servers)}
        if stream:
            values["stream"] = stream
        for name, value in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)):
            if name == "prefix":
                values["subject_prefix"] = value
            elif name == "partitions" and value.isdigit():
                values["partitions"] = int(value)
            else:
                raise ValueError(f"{url!r}: unknown or bad parameter {name}={value!r}")
        if first.username is not None:
            values["user"] = first.username
            values["password"] = first.password
        values.update(overrides)
        return cls(**values)


@dataclass(slots=True)
class _Item:
    subject: str
    payload: bytes
    headers: dict[str, str]
    attempts: int = 0


class NatsJetStreamSink:
    """Publishes readings to JetStream from a background event loop (module doc)."""

    def __init__(self, config: NatsSinkConfig | None = None) -> None:
        try:
            import nats  # noqa: F401  (fail early and clearly when the extra is missing)
        except ImportError as exc:
            raise ReadingsError(
                "the NATS sink needs nats-py: pip install 'cosemcast[nats]'"
            ) from exc
        self.config = config if config is not None else NatsSinkConfig()
        self._cond = threading.Condition()
        self._incoming: collections.deque[_Item] = collections.deque()
        self._wake_scheduled = False
        self._in_flight = 0
        self._counts: collections.Counter[str] = collections.Counter()
        self._last_error: str | None = None
        self._closed = False
        self._nc: nats.aio.client.Client | None = None
        self._js: nats.js.JetStreamContext | None = None
        self._queue: asyncio.Queue[_Item | None] | None = None
        self._pending: collections.deque[tuple[float, asyncio.Future[Any], _Item]] = (
            collections.deque()
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="cosemcast-nats-sink", daemon=True
        )
        self._thread.start()
        try:
            self._call(self._connect(), self.config.connect_timeout_s * 2 + 10.0)
        except BaseException:
            self._stop_loop()
            raise

    def __repr__(self) -> str:
        return (
            f"NatsJetStreamSink({','.join(self.config.servers)}, stream={self.config.stream},"
            f" partitions={self.config.partitions})"
        )

    # --- the caller's side -------------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout_s)
        except TimeoutError as exc:
            future.cancel()
            raise ReadingsError(f"{self!r}: no answer within {timeout_s:.0f} s") from exc

    def write(self, reading: Reading) -> None:
        cfg = self.config
        record = reading.to_json()
        partition = partition_of(reading.meter_system_title, cfg.partitions)
        record["partition"] = partition
        item = _Item(
            f"{cfg.subject_prefix}.{partition}.{record['meter']}",
            json.dumps(record, separators=(",", ":")).encode(),
            {"Nats-Msg-Id": message_id(reading), "Cosemcast-Partition": str(partition)},
        )
        with self._cond:
            if self._closed:
                raise ReadingsError("the NATS sink is closed")
            if self._in_flight >= cfg.max_in_flight and not self._cond.wait_for(
                lambda: self._in_flight < cfg.max_in_flight or self._closed, cfg.buffer_wait_s
            ):
                self._counts["refused_full"] += 1
                raise ReadingsError(
                    f"NATS sink: {self._in_flight} readings still await the broker's"
                    f" acknowledgement after {cfg.buffer_wait_s:.0f} s (broker slow or"
                    f" unreachable; last error: {self._last_error})"
                )
            if self._closed:
                raise ReadingsError("the NATS sink is closed")
            self._in_flight += 1
            self._counts["accepted"] += 1
            self._incoming.append(item)
            wake = not self._wake_scheduled
            self._wake_scheduled = True
        if wake:
            self._loop.call_soon_threadsafe(self._take_incoming)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until every accepted reading is acknowledged or has failed."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._in_flight == 0, timeout_s):
                raise ReadingsError(
                    f"NATS sink: {self._in_flight} readings unconfirmed after {timeout_s:.0f} s"
                    f" (last error: {self._last_error})"
                )

    def stats(self) -> dict[str, int]:
        """accepted, published (acknowledged), duplicates (the broker had it already),
        retried, failed, refused_full, reconnects, and the current ``in_flight``."""
        with self._cond:
            out = dict(self._counts)
            for name in ("accepted", "published", "duplicates", "retried", "failed"):
                out.setdefault(name, 0)
            out["in_flight"] = self._in_flight
            return out

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
        problem: ReadingsError | None = None
        try:
            self.flush(self.config.close_timeout_s)
        except ReadingsError as exc:
            problem = exc
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        try:
            self._call(self._shutdown(), self.config.close_timeout_s + 10.0)
        except ReadingsError as exc:
            problem = problem or exc
        finally:
            self._stop_loop()
        failed = self.stats()["failed"]
        if problem is None and failed:
            problem = ReadingsError(
                f"NATS sink: {failed} readings could not be published"
                f" (last error: {self._last_error})"
            )
        if problem is not None:
            raise problem

    def __enter__(self) -> NatsJetStreamSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _stop_loop(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10.0)
        if not self._thread.is_alive():
            self._loop.close()

    # --- the loop's side ---------------------------------------------------------------------

    async def _connect(self) -> None:
        import nats
        import nats.errors
        import nats.js.errors
        from nats.js.api import StorageType

        cfg = self.config

        async def on_error(exc: Exception) -> None:
            self._last_error = f"{type(exc).__name__}: {exc}"

        async def on_disconnected() -> None:
            if not self._closed:
                _log.warning("NATS sink: disconnected from %s", ",".join(cfg.servers))

        async def on_reconnected() -> None:
            self._counts["reconnects"] += 1
            _log.info("NATS sink: reconnected")

        try:
            self._nc = await nats.connect(
                list(cfg.servers),
                user=cfg.user,
                password=cfg.password,
                connect_timeout=max(1, round(cfg.connect_timeout_s)),
                allow_reconnect=True,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.5,
                error_cb=on_error,
                disconnected_cb=on_disconnected,
                reconnected_cb=on_reconnected,
                pending_size=64 << 20,
            )
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise ReadingsError(
                f"cannot reach the NATS server at {','.join(cfg.servers)}:"
                f" {self._last_error or type(exc).__name__}"
            ) from exc
        # Fail fast on the first connection, then reconnect for as long as the sink runs.
        self._nc.options["max_reconnect_attempts"] = -1
        self._js = self._nc.jetstream(
            timeout=cfg.ack_timeout_s, publish_async_max_pending=cfg.max_in_flight + 64
        )
        wanted = f"{cfg.subject_prefix}.>"
        try:
            try:
                info = await self._js.stream_info(cfg.stream)
            except nats.js.errors.NotFoundError:
                if not cfg.create_stream:
                    raise ReadingsError(f"JetStream stream {cfg.stream} does not exist") from None
                await self._js.add_stream(
                    name=cfg.stream,
                    subjects=[wanted],
                    storage=StorageType.FILE,
                    num_replicas=cfg.replicas,
                    duplicate_window=cfg.duplicate_window_s,
                )
            else:
                subjects = info.config.subjects or []
                if wanted not in subjects:
                    raise ReadingsError(
                        f"JetStream stream {cfg.stream} holds {subjects}, not {wanted}"
                    )
        except (nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError) as exc:
            await self._nc.close()
            raise ReadingsError(
                f"the NATS server at {','.join(cfg.servers)} has no JetStream (start it with -js)"
            ) from exc
        except (nats.errors.Error, OSError) as exc:
            await self._nc.close()
            raise ReadingsError(
                f"cannot set up JetStream stream {cfg.stream}: {type(exc).__name__}: {exc}"
            ) from exc
        except ReadingsError:
            await self._nc.close()
            raise
        self._queue = asyncio.Queue()
        self._tasks = [
            asyncio.create_task(self._publisher(), name="nats-sink-publisher"),
            asyncio.create_task(self._reaper(), name="nats-sink-reaper"),
        ]

    def _take_incoming(self) -> None:
        assert self._queue is not None
        with self._cond:
            items = list(self._incoming)
            self._incoming.clear()
            self._wake_scheduled = False
        for item in items:
            self._queue.put_nowait(item)

    async def _publisher(self) -> None:
        import nats.errors

        assert self._queue is not None and self._js is not None
        loop = asyncio.get_running_loop()
        while True:
            item = await self._queue.get()
            if item is None:
                return
            try:
                future = await self._js.publish_async(
                    item.subject, item.payload, headers=dict(item.headers)
                )
            except (nats.errors.Error, OSError) as exc:
                self._retry(item, exc)
                continue
            self._pending.append((loop.time() + self.config.ack_timeout_s, future, item))
            future.add_done_callback(functools.partial(self._acked, item))

    def _acked(self, item: _Item, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            self._retry(item, exc)
            return
        with self._cond:
            self._counts["published"] += 1
            if getattr(future.result(), "duplicate", False):
                self._counts["duplicates"] += 1
            self._in_flight -= 1
            self._cond.notify_all()

    def _retry(self, item: _Item, exc: BaseException) -> None:
        assert self._queue is not None
        self._last_error = f"{type(exc).__name__}: {exc}"
        item.attempts += 1
        if item.attempts > self.config.max_retries or self._closed:
            _log.warning(
                "NATS sink: reading %s not published after %d attempts: %s",
                item.headers["Nats-Msg-Id"],
                item.attempts,
                self._last_error,
            )
            with self._cond:
                self._counts["failed"] += 1
                self._in_flight -= 1
                self._cond.notify_all()
            return
        with self._cond:
            self._counts["retried"] += 1
        delay = min(2.0, 0.1 * 2**item.attempts)
        asyncio.get_running_loop().call_later(delay, self._queue.put_nowait, item)

    async def _reaper(self) -> None:
        loop = asyncio.get_running_loop()
        pending = self._pending
        while True:
            await asyncio.sleep(0.1)
            now = loop.time()
            while pending:
                deadline, future, item = pending[0]
                if future.done():
                    pending.popleft()
                elif deadline < now:
                    pending.popleft()
                    future.cancel()
                    self._retry(item, TimeoutError(f"no ack in {self.config.ack_timeout_s} s"))
                else:
                    break

    async def _shutdown(self) -> None:
        import nats.errors

        if self._queue is not None:
            self._queue.put_nowait(None)
        for task in self._tasks[1:]:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._nc is not None:
            try:
                await self._nc.drain()
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                _log.warning("NATS sink: drain on close: %s", exc)
                await self._nc.close()
