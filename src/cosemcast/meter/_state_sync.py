"""What the software meter writes to its state file, and when (see state.py for the file).

Theory of operation. :class:`StateSync` is the meter's persistence bookkeeping. At start-up it
puts the stored values back into each freshly built logical device (:meth:`StateSync.restore`,
:meth:`StateSync.shared_state`), before the meter wires its hooks, and records the
configuration's fingerprint (:meth:`StateSync.check_fingerprint`). While the meter runs, the
object hooks report what changed (:meth:`~StateSync.changed`), which rows were captured
(:meth:`~StateSync.captured`) and which keys a key_transfer replaced
(:meth:`~StateSync.transfer_keys`); nothing is written then. After each request, time step
or :meth:`~cosemcast.meter.meter.SoftwareMeter.apply`, :meth:`StateSync.flush` writes all of it
in one transaction, with the source time, every load-curve register and its energy accumulator,
and the shared-payload sealer state when it changed.

A profile whose buffer was rewritten (a SET, a reset, a sort other than FIFO) is stored whole;
otherwise only its new rows are appended and the oldest trimmed to ``profile_entries``.

It has no lock of its own: the meter calls it only under ``SoftwareMeter._lock``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from cosemcast.axdr.types import Float64
from cosemcast.cosem.base import CosemObject
from cosemcast.cosem.profile import ProfileGeneric, SortMethod
from cosemcast.cosem.security_setup import KeyId, SecuritySetup, TransferredKey
from cosemcast.meter._persist import restore, secrets_of, snapshot
from cosemcast.meter._shared_state import OWNER as SHARED_OWNER
from cosemcast.meter._shared_state import dump_state, load_state
from cosemcast.meter.build import LogicalDevice
from cosemcast.meter.state import MeterState, MeterStateError, StateWriter

if TYPE_CHECKING:
    from cosemcast.meter.shared import SharedPayloadUnit
    from cosemcast.sharedpayload import SealerState

__all__ = ["StateSync"]

_log = logging.getLogger("cosemcast.meter")


class StateSync:
    """The changes of a meter not yet written to its :class:`MeterState`."""

    __slots__ = ("_dirty", "_key_updates", "_rewrite", "_rows", "state")

    def __init__(self, state: MeterState) -> None:
        self.state = state
        self._dirty: dict[int, dict[int, tuple[LogicalDevice, CosemObject]]] = {}
        self._rows: list[tuple[LogicalDevice, ProfileGeneric, tuple[Any, ...]]] = []
        self._rewrite: dict[int, tuple[LogicalDevice, ProfileGeneric]] = {}
        self._key_updates: list[tuple[int, str, str, bytes]] = []

    def __repr__(self) -> str:
        return f"StateSync({self.state.path})"

    # --- start-up -------------------------------------------------------------------------------

    def restore(self, device: LogicalDevice) -> None:
        """Put the stored values, rows, energy accumulators and keys back into ``device``."""
        state = self.state
        for obj in device.model:
            name = str(obj.logical_name)
            fields = state.fields(device.sap, name)
            restore(obj, fields, state.secrets(device.sap, name), f"{name} ({state.path})")
            if isinstance(obj, ProfileGeneric):
                obj.load_buffer(state.rows(device.sap, name))
        for follower in device.curves:
            energy = state.fields(device.sap, str(follower.register.logical_name)).get("energy_wh")
            if isinstance(energy, float):
                follower.energy_wh = float(energy)
        for client in device.clients.values():
            if client.keys is None or client.security_setup is None:
                continue
            stored = state.secrets(device.sap, str(client.security_setup.logical_name))
            client.keys.ek = stored.get("ek", client.keys.ek)
            client.keys.ak = stored.get("ak", client.keys.ak)
            client.keys.broadcast_key = stored.get("broadcast_key", client.keys.broadcast_key)

    def shared_state(self, sap: int) -> SealerState | None:
        """The stored shared-payload sealer state of logical device ``sap``, if usable."""
        fields = self.state.fields(sap, SHARED_OWNER)
        try:
            return load_state(fields, self.state.secrets(sap, SHARED_OWNER))
        except MeterStateError as exc:
            _log.warning("%s; a new payload key will be drawn", exc)
            return None

    def check_fingerprint(self, config_text: str, source_now: dt.datetime) -> None:
        """Warn when the configuration changed since the file was written; record it."""
        fingerprint = hashlib.sha256(config_text.encode("utf-8")).hexdigest()
        stored = self.state.meta("config_sha256")
        if stored is not None and stored != fingerprint:
            _log.warning(
                "the configuration changed since %s was written; stored values win for the "
                "objects they describe (use a new --state file to start afresh)",
                self.state.path,
            )
        with self.state.transaction() as tx:
            tx.set_meta("config_sha256", fingerprint)
            tx.set_meta("source_time", source_now.isoformat())

    # --- hooks ----------------------------------------------------------------------------------

    def changed(self, device: LogicalDevice, obj: CosemObject) -> None:
        self._dirty.setdefault(device.sap, {})[id(obj)] = (device, obj)
        if isinstance(obj, ProfileGeneric):
            self._rewrite[id(obj)] = (device, obj)

    def captured(
        self, device: LogicalDevice, profile: ProfileGeneric, row: tuple[Any, ...]
    ) -> None:
        self._rows.append((device, profile, row))

    def transfer_keys(
        self, device: LogicalDevice, setup: SecuritySetup, keys: tuple[TransferredKey, ...]
    ) -> None:
        """Give the client of ``setup`` its new keys (for later associations) and record them."""
        client = next(c for c in device.clients.values() if c.security_setup is setup)
        current = client.keys
        assert current is not None
        owner = str(setup.logical_name)
        for key in keys:
            if key.key_id is KeyId.GLOBAL_UNICAST_ENCRYPTION_KEY:
                current.ek = key.key
                self._key_updates.append((device.sap, owner, "ek", key.key))
            elif key.key_id is KeyId.AUTHENTICATION_KEY:
                current.ak = key.key
                self._key_updates.append((device.sap, owner, "ak", key.key))
            elif key.key_id is KeyId.GLOBAL_BROADCAST_ENCRYPTION_KEY:
                current.broadcast_key = key.key
                self._key_updates.append((device.sap, owner, "broadcast_key", key.key))
        names = ", ".join(k.key_id.name for k in keys)
        _log.info(
            "%s: key_transfer changed %s (for associations established from now on)", owner, names
        )

    # --- writing --------------------------------------------------------------------------------

    def flush(
        self,
        source_now: dt.datetime,
        devices: Iterable[LogicalDevice],
        shared: SharedPayloadUnit | None,
    ) -> None:
        """Write what changed since the last flush, in one transaction."""
        with self.state.transaction() as tx:
            tx.set_meta("source_time", source_now.isoformat())
            for device in devices:
                for follower in device.curves:
                    register = follower.register
                    fields = snapshot(register)
                    fields["energy_wh"] = Float64(follower.energy_wh)
                    tx.set_fields(device.sap, str(register.logical_name), fields)
            for objects in self._dirty.values():
                for device, obj in objects.values():
                    _write_object(tx, device, obj)
            for device, profile, row in self._rows:
                if id(profile) not in self._rewrite:
                    name = str(profile.logical_name)
                    tx.append_rows(device.sap, name, [row])
                    if profile.sort_method == SortMethod.FIFO:
                        tx.keep_last_rows(device.sap, name, profile.profile_entries)
                    else:
                        self._rewrite[id(profile)] = (device, profile)
            for device, profile in self._rewrite.values():
                tx.replace_rows(device.sap, str(profile.logical_name), profile.buffer)
            for sap, owner, name, value in self._key_updates:
                tx.set_secret(sap, owner, name, value)
            if shared is not None and shared.dirty:
                fields, secrets = dump_state(shared.sealer.snapshot())
                tx.set_fields(shared.device.sap, SHARED_OWNER, fields)
                tx.replace_secrets(shared.device.sap, SHARED_OWNER, secrets)
        self._dirty.clear()
        self._rows.clear()
        self._rewrite.clear()
        self._key_updates.clear()
        if shared is not None:
            shared.dirty = False


def _write_object(tx: StateWriter, device: LogicalDevice, obj: CosemObject) -> None:
    name = str(obj.logical_name)
    tx.set_fields(device.sap, name, snapshot(obj))
    for secret_name, value in secrets_of(obj).items():
        tx.set_secret(device.sap, name, secret_name, value)
