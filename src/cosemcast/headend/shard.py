"""Sharded head-end ingest: N worker processes on one UDP port (specs/shared-payload.md §9.4).

Theory of operation. Each meter belongs to exactly one shard, ``shard_of(system title, N)``
(the XOR of the title's last four bytes, modulo N), and each shard to one worker process with
its own :class:`~.store.SqliteHeadEndStore` file (``<db stem>.shard-<i>-of-<N><suffix>``),
holding that shard's keys, replay windows, parked C1s and readings: no state is shared, no
lock is contended, and a meter's C2 and C1s always meet in the same file.

Getting each datagram to its owner:

* **unicast** (C2s, unicast C1s): every worker binds the same UDP port with ``SO_REUSEPORT``,
  in index order, and worker 0 attaches a classic BPF program to the port group
  (``SO_ATTACH_REUSEPORT_CBPF``, Linux ≥ 4.5) that reads the meter's system title at its
  fixed offset in the datagram (wrapper header, ``DD 08 kp_id 08 title``) and returns the
  owner's index: the kernel itself delivers each meter's datagrams to its owner, whatever
  their source port. A datagram of another layout falls back to the kernel's hash;
* **multicast** C1s: every worker joins the group and gets a copy; non-owners drop theirs;
* **safety net**: a worker that receives a unicast datagram it does not own (no BPF
  available, another layout, the instants before every worker is bound) forwards it, with
  its source address and wPorts, to the owner's inbox (a UDP socket on 127.0.0.1); the
  owner acknowledges from the shared port, so the meter sees no difference.

Workers are started one after the other (the BPF index is the order of binding; port 0 is
resolved by the first), bind everything, report their inbox to the parent, and start
processing only once they know every inbox. The parent (:class:`ShardedHeadEnd`) stops them
through their pipes; each flushes its last batch and returns its statistics. TCP is not
sharded. Changing N would move meters between files (their replay windows with them), so
files of another N are refused.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import struct
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

from cosemcast.errors import DlmsError
from cosemcast.headend.headend import SERVICE_GROUP_COMMIT, HeadEnd
from cosemcast.headend.readings import ReadingSink, ReadingWriter
from cosemcast.headend.service import HeadEndService, Origin
from cosemcast.headend.store import SqliteHeadEndStore
from cosemcast.link.wrapper import WrapperFrame
from cosemcast.transport.base import Address
from cosemcast.transport.udp import UdpWrapperServer

__all__ = [
    "ShardError",
    "ShardedHeadEnd",
    "WorkerConfig",
    "meter_of",
    "shard_file",
    "shard_of",
    "steering_program",
]

_log = logging.getLogger(__name__)

# Offsets in a UDP payload: wrapper header (8), then DD, 08 kp_id (1 + 8), 08 title (1 + 8).
_WRAPPER: Final = 8
_TITLE: Final = 11
SO_ATTACH_REUSEPORT_CBPF: Final = 51
_FALLBACK: Final = 0xFFFFFFFF  # an index past the group: the kernel hashes instead
_START_TIMEOUT_S: Final = 30.0
_RECEIVE_BUFFER: Final = 4 << 20


class ShardError(DlmsError):
    """A sharded head-end cannot start or stop."""


def shard_of(meter_system_title: bytes, shards: int) -> int:
    """The shard that owns a meter: XOR of the last four title bytes, modulo ``shards``."""
    t = meter_system_title
    return (t[4] ^ t[5] ^ t[6] ^ t[7]) % shards


def meter_of(apdu: bytes) -> bytes | None:
    """The originator system title of a C1 or C2 (``DD 08 kp_id 08 title``), else None."""
    if len(apdu) >= _TITLE + 8 and apdu[0] == 0xDD and apdu[1] == 8 and apdu[10] == 8:
        return apdu[_TITLE : _TITLE + 8]
    return None


def shard_file(db: Path, index: int, shards: int) -> Path:
    """The store file of shard ``index`` of ``shards``."""
    return db.with_name(f"{db.stem}.shard-{index}-of-{shards}{db.suffix}")


def steering_program(shards: int) -> bytes:
    """The classic BPF program (``struct sock_filter[]``) that returns :func:`shard_of` of a
    wrapper datagram's meter, or an index past the group for any other layout."""

    def op(code: int, k: int = 0, jt: int = 0, jf: int = 0) -> bytes:
        return struct.pack("HBBI", code, jt, jf, k)

    ld_byte, jeq, ret_k, ret_a, tax, xor_x, mod_k = 0x30, 0x15, 0x06, 0x16, 0x07, 0xAC, 0x94
    base = _WRAPPER + _TITLE + 4
    return b"".join(
        (
            op(ld_byte, _WRAPPER),
            op(jeq, 0xDD, jf=16),
            op(ld_byte, _WRAPPER + 1),
            op(jeq, 8, jf=14),
            op(ld_byte, _WRAPPER + 10),
            op(jeq, 8, jf=12),
            op(ld_byte, base),
            op(tax),
            op(ld_byte, base + 1),
            op(xor_x),
            op(tax),
            op(ld_byte, base + 2),
            op(xor_x),
            op(tax),
            op(ld_byte, base + 3),
            op(xor_x),
            op(mod_k, shards),
            op(ret_a),
            op(ret_k, _FALLBACK),
        )
    )


def _set_option(fileno: int, option: int, value: int | bytes) -> None:
    sock = socket.socket(fileno=os.dup(fileno))  # the same socket, through a second descriptor
    try:
        sock.setsockopt(socket.SOL_SOCKET, option, value)
    finally:
        sock.close()


def attach_steering(fileno: int, shards: int) -> bool:
    """Attach :func:`steering_program` to the SO_REUSEPORT group of socket ``fileno``;
    False (and a log line) where the kernel refuses it."""
    program = steering_program(shards)
    buffer = ctypes.create_string_buffer(program)
    fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(buffer))
    try:
        _set_option(fileno, SO_ATTACH_REUSEPORT_CBPF, fprog)
    except OSError as exc:
        _log.warning("no SO_REUSEPORT steering (%s): misrouted datagrams are forwarded", exc)
        return False
    return True


def _envelope(origin: Origin, apdu: bytes) -> WrapperFrame:
    host, port = origin.peer if isinstance(origin.peer, tuple) else ("", 0)
    name = host.encode()
    body = bytes([len(name)]) + name + port.to_bytes(2, "big") + apdu
    return WrapperFrame(origin.source_wport, origin.destination_wport, body)


def _unwrap(frame: WrapperFrame) -> tuple[Origin, bytes] | None:
    body = frame.apdu
    if not body or len(body) < 3 + body[0]:
        return None
    n = body[0]
    address: Address = (
        body[1 : 1 + n].decode(errors="replace"),
        int.from_bytes(body[1 + n : 3 + n]),
    )
    return Origin(address, frame.source_wport, frame.destination_wport), body[3 + n :]


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Everything a worker process needs (it loads the keys itself: no key crosses a pipe)."""

    index: int
    shards: int
    keys: Path
    db: Path
    udp: tuple[str, int]
    group: tuple[str, int] | None = None
    interface: str = "0.0.0.0"
    out: Path | None = None
    steer: bool = True
    log_level: int = logging.WARNING
    sink: str | None = None  # a nats:// URL: readings also published there (after the commit)


class _Worker:
    """One shard: its store, core and service, plus its inbox for forwarded datagrams."""

    def __init__(self, config: WorkerConfig) -> None:
        from cosemcast.headend.keys import load_keys

        self.config = config
        keys = load_keys(config.keys)
        self.store = SqliteHeadEndStore(
            shard_file(config.db, config.index, config.shards),
            system_title=keys.system_title,
            keep_readings=True,
        )
        for meter, entry in keys.meters.items():
            if shard_of(meter, config.shards) == config.index:
                self.store.set_credentials(
                    meter,
                    shared_key=entry.shared_key,
                    agreement_public_key=entry.agreement_public_key,
                )
        self.stream = (
            open(config.out, "a", encoding="utf-8")  # noqa: SIM115
            if config.out is not None
            else sys.stdout
        )
        also: list[ReadingWriter] = []
        if config.sink is not None:
            from cosemcast.headend.sink_nats import NatsJetStreamSink, NatsSinkConfig

            also.append(NatsJetStreamSink(NatsSinkConfig.from_url(config.sink)))
        self.head_end = HeadEnd(
            keys.system_title,
            self.store,
            ReadingSink(stream=self.stream, also=also),
            agreement_private_key=keys.private_key,
            allow_unauthenticated_agreement=keys.allow_unauthenticated_agreement,
            group_commit=SERVICE_GROUP_COMMIT,
        )
        self.inboxes: list[Address] = []
        self.forwarded = 0
        self.service = HeadEndService(
            self.head_end,
            udp=config.udp,
            group=config.group,
            interface=config.interface,
            reuse_port=True,
            route=self._route,
        )
        self.inbox = UdpWrapperServer("127.0.0.1", 0, self._on_forwarded)
        self.steered = False
        if self.service.udp is not None:
            try:  # bursts of small datagrams: a deeper queue than the 208 kB default
                _set_option(self.service.udp.fileno(), socket.SO_RCVBUF, _RECEIVE_BUFFER)
            except OSError as exc:
                _log.warning("SO_RCVBUF not raised: %s", exc)
            if config.steer and config.index == 0:
                self.steered = attach_steering(self.service.udp.fileno(), config.shards)

    def _route(self, origin: Origin, apdu: bytes, multicast: bool) -> bool:
        meter = meter_of(apdu)
        if meter is None:
            return True
        owner = shard_of(meter, self.config.shards)
        if owner == self.config.index:
            return True
        if not multicast and self.inboxes:
            self.inbox.send_frame(_envelope(origin, apdu), self.inboxes[owner])
            self.forwarded += 1
        return False

    def _on_forwarded(self, source: Address, frame: WrapperFrame) -> bytes | None:
        unwrapped = _unwrap(frame)
        if unwrapped is not None:
            self.service.send(self.head_end.handle_apdu(*unwrapped))
        return None

    def stats(self) -> dict[str, int]:
        out = self.head_end.stats()
        out["forwarded"] = self.forwarded
        out["declined"] = self.service.declined
        out["steered"] = int(self.steered)
        return out

    def close(self) -> dict[str, int]:
        """Stop (the last batch is flushed); the final statistics."""
        try:
            self.inbox.close()
            self.service.close()
            return self.stats()
        finally:
            self.store.close()
            if self.stream is not sys.stdout:
                self.stream.close()
            else:
                self.stream.flush()


def _worker_main(config: WorkerConfig, pipe: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us through the pipe
    logging.basicConfig(level=config.log_level, stream=sys.stderr)
    try:
        worker = _Worker(config)
    except (DlmsError, OSError) as exc:
        pipe.send(("error", f"worker {config.index}: {exc}"))
        return
    try:
        assert worker.service.udp is not None
        pipe.send(("bound", worker.service.udp.address, worker.inbox.address))
        message = pipe.recv()
        if not isinstance(message, tuple) or message[0] != "inboxes":
            return  # stopped before it started
        worker.inboxes = list(message[1])
        worker.inbox.start()
        worker.service.start()
        pipe.send(("started",))
        while True:
            command = pipe.recv()
            if command == "stats":
                pipe.send(("stats", worker.stats()))
            elif command == "stop":
                break
    except EOFError:
        pass  # the parent is gone: stop as well
    finally:
        final = worker.close()
    try:
        pipe.send(("stopped", final))
    except OSError:
        pass


class ShardedHeadEnd:
    """The parent of N shard workers (module doc); :meth:`start`, then :meth:`stop`."""

    def __init__(
        self,
        *,
        workers: int,
        keys: Path,
        db: Path,
        udp: tuple[str, int],
        group: tuple[str, int] | None = None,
        interface: str = "0.0.0.0",
        out: Path | None = None,
        steer: bool = True,
        log_level: int = logging.WARNING,
        sink: str | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self._template = WorkerConfig(
            0, workers, Path(keys), Path(db), udp, group, interface, out, steer, log_level, sink
        )
        self._context = multiprocessing.get_context("spawn")
        self._processes: list[Any] = []
        self._pipes: list[Connection] = []
        self.address: Address | None = None

    def __repr__(self) -> str:
        return f"ShardedHeadEnd(workers={self.workers}, address={self.address})"

    def files(self) -> list[Path]:
        db = self._template.db
        return [shard_file(db, i, self.workers) for i in range(self.workers)]

    def _check_files(self) -> None:
        db = self._template.db
        mine = {p.name for p in self.files()}
        for path in db.parent.glob(f"{db.stem}.shard-*-of-*{db.suffix}"):
            if path.name not in mine and not path.name.endswith(("-wal", "-shm")):
                raise ShardError(
                    f"{path} belongs to another number of workers; re-sharding is not "
                    f"supported (its meters' replay windows would be lost)"
                )

    def _expect(self, index: int, kind: str) -> tuple[Any, ...]:
        pipe = self._pipes[index]
        if not pipe.poll(_START_TIMEOUT_S):
            raise ShardError(f"worker {index} did not answer within {_START_TIMEOUT_S} s")
        try:
            message: tuple[Any, ...] = pipe.recv()
        except EOFError as exc:
            raise ShardError(f"worker {index} exited while starting (see its stderr)") from exc
        if message[0] != kind:
            raise ShardError(str(message[1]) if message[0] == "error" else repr(message))
        return message

    def start(self) -> None:
        """Start the workers one after the other, then let them process."""
        self._check_files()
        inboxes: list[Address] = []
        host, port = self._template.udp
        try:
            for index in range(self.workers):
                config = WorkerConfig(
                    index,
                    self.workers,
                    self._template.keys,
                    self._template.db,
                    (host, port),
                    self._template.group,
                    self._template.interface,
                    self._template.out,
                    self._template.steer,
                    self._template.log_level,
                    self._template.sink,
                )
                parent, child = self._context.Pipe()
                process = self._context.Process(
                    target=_worker_main, args=(config, child), name=f"cosemcast-shard-{index}"
                )
                process.start()
                child.close()
                self._processes.append(process)
                self._pipes.append(parent)
                _, bound, inbox = self._expect(index, "bound")
                self.address = self.address or (str(bound[0]), int(bound[1]))
                port = self.address[1]
                inboxes.append((str(inbox[0]), int(inbox[1])))
            for pipe in self._pipes:
                pipe.send(("inboxes", inboxes))
            for index in range(self.workers):
                self._expect(index, "started")
        except BaseException:
            self.stop()
            raise

    def stats(self) -> list[dict[str, int]]:
        """Every worker's statistics, by index."""
        out = []
        for index, pipe in enumerate(self._pipes):
            pipe.send("stats")
            out.append(dict(self._expect(index, "stats")[1]))
        return out

    def stop(self, timeout_s: float = 10.0) -> list[dict[str, int]]:
        """Stop every worker (each flushes its last batch); returns their statistics."""
        stats: list[dict[str, int]] = []
        for pipe in self._pipes:
            try:
                pipe.send("stop")
            except OSError:
                continue
        for index, (process, pipe) in enumerate(zip(self._processes, self._pipes, strict=True)):
            try:
                if pipe.poll(timeout_s):
                    message = pipe.recv()
                    if message[0] == "stopped":
                        stats.append(dict(message[1]))
            except (EOFError, OSError):
                pass
            process.join(timeout_s)
            if process.is_alive():
                _log.error("shard worker %d did not stop: killing it", index)
                process.kill()
                process.join(timeout_s)
            pipe.close()
        self._processes.clear()
        self._pipes.clear()
        return stats

    def __enter__(self) -> ShardedHeadEnd:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
