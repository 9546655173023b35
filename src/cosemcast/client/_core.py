"""What the blocking and the asyncio client share: the operations, written once, sans IO.

Theory of operation. Every client operation (read a register, a profile, the object list)
is a generator that *yields* association requests (:class:`~cosemcast.association.Get`, ...)
and is *sent* back the result event of each; its return value is the operation's result::

    def register_op(obis):
        value = yield Get(...)          # the driver exchanges APDUs until the result is there
        scaler_unit = yield Get(...)
        return RegisterValue(...)

:class:`~cosemcast.client.client.DlmsClient` drives these generators over a blocking
:class:`~cosemcast.transport.ApduLink`, :class:`~cosemcast.client.aio.AsyncDlmsClient` over an
asyncio one, so block transfer, HLS, typed errors and class-id resolution behave the same in
both. The exchange of one request (send, then feed APDUs to the
:class:`~cosemcast.association.ClientConnection` until it produces a result) is the only thing
each driver writes itself.

Class ids (decision, ``specs/client.md``). ``get(obis, attribute)`` without ``class_id`` uses
the class the association's object list gives (once read), else a guess from the OBIS code
(:func:`guess_class_id`); when a guess is answered with object-undefined or
object-class-inconsistent, the object list is read once and the request repeated with the
listed class.

Invocation counters: both counter stores live in one SQLite file
(:func:`open_counter_stores`), so a client never reuses a counter across runs and refuses a
meter's replayed or older answers across runs too.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections import deque
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeAlias, TypeVar, cast

from cosemcast.apdu.common import (
    Absent,
    ActionResult,
    CosemAttributeDescriptor,
    CosemAttributeDescriptorWithSelection,
    CosemMethodDescriptor,
    DataAccessResult,
    GetDataError,
    GetDataResult,
    SelectiveAccess,
)
from cosemcast.apdu.initiate import Conformance
from cosemcast.association import (
    Action,
    Associate,
    AssociationEstablished,
    AssociationReleased,
    AssociationSettings,
    ClientConnection,
    ClientEvent,
    ClientRequest,
    ClientState,
    Get,
    GetList,
    GetListResult,
    GetResult,
    MethodResult,
    Notification,
    Release,
    ServiceError,
    ServiceException,
    Set,
    SetResult,
)
from cosemcast.axdr.types import CosemDateTime, Data
from cosemcast.client.credentials import Credentials
from cosemcast.client.errors import (
    ActionError,
    DataAccessError,
    ExceptionResponseError,
    RequestFailed,
    ServiceErrorResponse,
)
from cosemcast.cosem.client_views import (
    DATETIME_ATTRIBUTES,
    ProfileBuffer,
    RegisterValue,
    parse_capture_objects,
    parse_profile_buffer,
)
from cosemcast.cosem.common import CaptureObjectDefinition
from cosemcast.cosem.object_list import ObjectListEntry, parse_object_list
from cosemcast.cosem.selective import CLOCK_TIME, clock_range, entry_selection
from cosemcast.errors import ConfigurationError, LocalProtocolError, RemoteProtocolError
from cosemcast.obis import Obis
from cosemcast.security.counters import CounterStore, ReceivedCounterStore

__all__ = [
    "CURRENT_ASSOCIATION",
    "DEFAULT_COUNTER_BLOCK",
    "AttributeRef",
    "ClientCore",
    "ObisLike",
    "Operation",
    "ProgressCallback",
    "ReadProgress",
    "guess_class_id",
    "open_counter_stores",
    "split_settings",
]

T = TypeVar("T")
Operation: TypeAlias = Generator[ClientRequest, ClientEvent, T]
ObisLike: TypeAlias = Obis | str
AttributeRef: TypeAlias = (
    CosemAttributeDescriptor | tuple[ObisLike, int] | tuple[ObisLike, int, int | None]
)

CURRENT_ASSOCIATION: Final = Obis(0, 0, 40, 0, 0, 255)
DEFAULT_COUNTER_BLOCK: Final = 100
"""Counters reserved durably at a time: a crash skips at most this many (security.counters)."""

_PROFILE_FROM: Final = dt.datetime(2000, 1, 1)
_PROFILE_TO: Final = dt.datetime(2099, 12, 31, 23, 59, 59)
_REGISTER, _PROFILE, _ASSOCIATION_LN = 3, 7, 15


@dataclass(frozen=True, slots=True)
class ReadProgress:
    """How much of a long answer has arrived: APDUs (blocks) and their bytes."""

    apdus: int
    bytes_received: int


ProgressCallback: TypeAlias = Callable[[ReadProgress], None]


def guess_class_id(obis: Obis) -> int:
    """The interface class an OBIS code usually names (IEC 62056-6-2 object identification).

    Clock 0-x:1.0.x (8), Association LN 0-0:40.0.x (15), Security setup 0-0:43.0.x (64),
    Push setup 0-x:25.9.0 (40), Disconnect control 0-x:96.3.10 (70), profiles C = 98/99 (7),
    measured quantities of an energy type (A 1..9, C not 0/96/97/98/99) Register (3);
    everything else Data (1).
    """
    a, _b, c, d, e, _f = obis
    if a == 0:
        if c == 1 and d == 0:
            return 8
        if c == 40 and d == 0:
            return _ASSOCIATION_LN
        if c == 43 and d == 0:
            return 64
        if c == 25 and d == 9:
            return 40
        if c == 96 and d == 3 and e == 10:
            return 70
    if c in (98, 99):
        return _PROFILE
    if 1 <= a <= 9 and c not in (0, 96, 97):
        return _REGISTER
    return 1


def as_obis(value: ObisLike) -> Obis:
    if isinstance(value, Obis):
        return value
    try:
        return Obis.parse(value)
    except ValueError as exc:
        raise LocalProtocolError(str(exc)) from exc


def split_settings(
    settings: AssociationSettings | Credentials, counters: str | os.PathLike[str] | None
) -> tuple[AssociationSettings, Path | None]:
    """The association settings and the counter file a client was given."""
    if isinstance(settings, Credentials):
        path = Path(counters) if counters is not None else settings.counters_path
        return settings.association_settings(), path
    if counters is not None:
        return settings, Path(counters)
    if settings.security is None:
        return settings, None
    return settings, Credentials().counters_path


def open_counter_stores(
    path: Path, *, block: int = DEFAULT_COUNTER_BLOCK
) -> tuple[CounterStore, ReceivedCounterStore]:
    """The sending and the receiving counter store, both in ``path`` (created if needed)."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot create {path.parent} for the invocation counters ({exc.strerror}); "
            "give another counters path"
        ) from exc
    sent = CounterStore(path, block=block)
    try:
        received = ReceivedCounterStore(path)
    except BaseException:
        sent.close()
        raise
    return sent, received


def _outcome(event: ClientEvent, kind: type[T]) -> T:
    """``event`` as a ``kind``; the meter's error answers raise their typed exception."""
    if isinstance(event, ServiceException):
        raise ExceptionResponseError(event.response, protected=event.protected)
    if isinstance(event, ServiceError):
        raise ServiceErrorResponse(event.error, protected=event.protected)
    if not isinstance(event, kind):
        raise RemoteProtocolError(f"expected {kind.__name__}, got {type(event).__name__}")
    return event


class ClientCore:
    """State shared by both clients: the association machine, stores and the operations."""

    def __init__(
        self,
        settings: AssociationSettings | Credentials,
        *,
        counters: str | os.PathLike[str] | None = None,
        counter_block: int = DEFAULT_COUNTER_BLOCK,
        rng: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        association, path = split_settings(settings, counters)
        self.settings = association
        self.counters_path = path
        self._stores: tuple[CounterStore, ReceivedCounterStore] | None = None
        if association.security is not None:
            assert path is not None
            self._stores = open_counter_stores(path, block=counter_block)
        sent, received = self._stores if self._stores is not None else (None, None)
        self.connection = ClientConnection(
            association, counters=sent, received_counters=received, rng=rng
        )
        self.established: AssociationEstablished | None = None
        self.notifications: deque[Notification] = deque()
        self._object_list: dict[Obis, ObjectListEntry] | None = None
        self._progress: ProgressCallback | None = None
        self._progress_apdus = 0
        self._progress_bytes = 0

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(client_sap={self.settings.client_sap}, "
            f"server_sap={self.settings.server_sap}, state={self.connection.state.value})"
        )

    @property
    def associated(self) -> bool:
        return self.connection.state is ClientState.ASSOCIATED

    def _close_stores(self) -> None:
        if self._stores is not None:
            for store in self._stores:
                store.close()
            self._stores = None

    def _received(self, apdu: bytes) -> None:
        """Called by the drivers for every APDU received; reports progress when asked."""
        if self._progress is None:
            return
        self._progress_apdus += 1
        self._progress_bytes += len(apdu)
        self._progress(ReadProgress(self._progress_apdus, self._progress_bytes))

    # --- operations ----------------------------------------------------------------------------

    def _associate_op(self) -> Operation[AssociationEstablished]:
        self._object_list = None
        event = yield Associate()
        self.established = _outcome(event, AssociationEstablished)
        return self.established

    def _release_op(self) -> Operation[AssociationReleased]:
        event = yield Release()
        self.established = None
        return _outcome(event, AssociationReleased)

    def _listed_class(self, obis: Obis) -> int | None:
        entry = None if self._object_list is None else self._object_list.get(obis)
        return None if entry is None else entry.class_id

    def _with_class(
        self,
        obis: Obis,
        class_id: int | None,
        guess: int,
        make: Callable[[int], Operation[T]],
    ) -> Operation[T]:
        """Run ``make(class_id)``; when the class was guessed and the meter says it is wrong,
        read the object list and run it again with the listed class."""
        if class_id is not None:
            return (yield from make(class_id))
        chosen = self._listed_class(obis) or guess
        try:
            return (yield from make(chosen))
        except (DataAccessError, ActionError) as exc:
            if not exc.class_related or self._object_list is not None:
                raise
            try:
                yield from self._object_list_op()
            except RequestFailed:
                raise exc from None
            listed = self._listed_class(obis)
            if listed is None or listed == chosen:
                raise
        return (yield from make(listed))

    def _get_op(
        self,
        obis: ObisLike,
        attribute: int,
        class_id: int | None,
        selection: SelectiveAccess | None,
    ) -> Operation[Data]:
        code = as_obis(obis)

        def get(cid: int) -> Operation[Data]:
            event = yield Get(CosemAttributeDescriptor(cid, code, attribute), selection)
            return _value(_outcome(event, GetResult).result, cid, code, attribute)

        return (yield from self._with_class(code, class_id, guess_class_id(code), get))

    def _descriptor(self, ref: AttributeRef) -> tuple[CosemAttributeDescriptor, bool]:
        """The descriptor of ``ref`` and whether its class id was guessed."""
        if isinstance(ref, CosemAttributeDescriptor):
            return ref, False
        code = as_obis(ref[0])
        given = ref[2] if len(ref) == 3 else None
        cid = given if given is not None else (self._listed_class(code) or guess_class_id(code))
        return CosemAttributeDescriptor(cid, code, ref[1]), given is None

    def _get_many_op(self, refs: Sequence[AttributeRef]) -> Operation[list[Data | DataAccessError]]:
        described = [self._descriptor(ref) for ref in refs]
        results: list[Data | DataAccessError] = []
        multiple = Conformance.MULTIPLE_REFERENCES in self.connection.conformance
        answers: Sequence[GetDataResult]
        if multiple and len(described) > 1:
            items = tuple(CosemAttributeDescriptorWithSelection(d) for d, _ in described)
            event = yield GetList(items)
            answers = _outcome(event, GetListResult).results
            if len(answers) != len(items):
                raise RemoteProtocolError(f"{len(items)} attributes asked, {len(answers)} answered")
        else:
            singles: list[GetDataResult] = []
            for descriptor, _ in described:
                event = yield Get(descriptor)
                singles.append(_outcome(event, GetResult).result)
            answers = singles
        for (descriptor, guessed), answer in zip(described, answers, strict=True):
            try:
                results.append(_value(answer, *_where(descriptor)))
            except DataAccessError as exc:
                if not (guessed and exc.class_related):
                    results.append(exc)
                    continue
                try:
                    results.append(
                        (
                            yield from self._get_op(
                                descriptor.instance_id, descriptor.attribute_id, None, None
                            )
                        )
                    )
                except DataAccessError as again:
                    results.append(again)
        return results

    def _set_op(
        self,
        obis: ObisLike,
        attribute: int,
        value: Data,
        class_id: int | None,
        selection: SelectiveAccess | None,
    ) -> Operation[None]:
        code = as_obis(obis)

        def set_(cid: int) -> Operation[None]:
            event = yield Set(CosemAttributeDescriptor(cid, code, attribute), value, selection)
            result = _outcome(event, SetResult).result
            if result is not DataAccessResult.SUCCESS:
                raise DataAccessError(result, class_id=cid, obis=code, attribute=attribute)

        yield from self._with_class(code, class_id, guess_class_id(code), set_)

    def _action_op(
        self, obis: ObisLike, method: int, parameters: Data | Absent, class_id: int | None
    ) -> Operation[Data | None]:
        code = as_obis(obis)

        def act(cid: int) -> Operation[Data | None]:
            event = yield Action(CosemMethodDescriptor(cid, code, method), parameters)
            outcome = _outcome(event, MethodResult)
            if outcome.result is not ActionResult.SUCCESS:
                raise ActionError(outcome.result, class_id=cid, obis=code, method=method)
            returned = outcome.return_parameters
            if returned is None:
                return None
            if isinstance(returned, GetDataError):
                raise DataAccessError(returned.data_access_result, class_id=cid, obis=code)
            return returned.value

        return (yield from self._with_class(code, class_id, guess_class_id(code), act))

    def _register_op(self, obis: ObisLike, class_id: int | None) -> Operation[RegisterValue]:
        code = as_obis(obis)

        def read(cid: int) -> Operation[RegisterValue]:
            refs = [(code, 2, cid), (code, 3, cid)]
            value, scaler_unit = yield from self._get_many_op(refs)
            for item in (value, scaler_unit):
                if isinstance(item, DataAccessError):
                    raise item
            return RegisterValue.from_data(cast(Data, value), cast(Data, scaler_unit))

        return (yield from self._with_class(code, class_id, _REGISTER, read))

    def _object_list_op(self) -> Operation[tuple[ObjectListEntry, ...]]:
        event = yield Get(CosemAttributeDescriptor(_ASSOCIATION_LN, CURRENT_ASSOCIATION, 2))
        result = _outcome(event, GetResult).result
        entries = parse_object_list(_value(result, _ASSOCIATION_LN, CURRENT_ASSOCIATION, 2))
        self._object_list = {entry.logical_name: entry for entry in entries}
        return entries

    def _profile_op(
        self,
        obis: ObisLike,
        from_: dt.datetime | CosemDateTime | None,
        to: dt.datetime | CosemDateTime | None,
        entries: tuple[int, int] | None,
        progress: ProgressCallback | None,
        class_id: int | None,
    ) -> Operation[ProfileBuffer]:
        code = as_obis(obis)
        cid = _PROFILE if class_id is None else class_id
        columns = parse_capture_objects((yield from self._get_op(code, 3, cid, None)))
        try:
            period = yield from self._get_op(code, 4, cid, None)
        except DataAccessError:
            period = None
        selection = None
        if from_ is not None or to is not None:
            if entries is not None:
                raise LocalProtocolError("select a profile by time or by entries, not both")
            selection = clock_range(
                _PROFILE_FROM if from_ is None else from_,
                _PROFILE_TO if to is None else to,
                clock=_time_column(columns),
            )
        elif entries is not None:
            selection = entry_selection(*entries)
        self._progress = progress
        self._progress_apdus = self._progress_bytes = 0
        try:
            buffer = yield from self._get_op(code, 2, cid, selection)
        finally:
            self._progress = None
        capture_period = int(period) if isinstance(period, int) and period > 0 else None
        return parse_profile_buffer(buffer, columns, capture_period=capture_period)


def _time_column(columns: Iterable[CaptureObjectDefinition]) -> CaptureObjectDefinition:
    """The column a time range restricts: the first date-time column, else Clock.time."""
    for column in columns:
        if column.data_index == 0 and (column.class_id, column.attribute_index) in (
            DATETIME_ATTRIBUTES
        ):
            return column
    return CLOCK_TIME


def _where(descriptor: CosemAttributeDescriptor) -> tuple[int, Obis, int]:
    return descriptor.class_id, descriptor.instance_id, descriptor.attribute_id


def _value(result: GetDataResult, class_id: int, obis: Obis, attribute: int) -> Data:
    if isinstance(result, GetDataError):
        raise DataAccessError(
            result.data_access_result, class_id=class_id, obis=obis, attribute=attribute
        )
    return result.value
