"""Shared pieces of the assignment tests (no tests here): a real supervision Registry that
issues initialization messages for the default software meter, the meter's ``[supervision]``
table, and a dump of every row of the meter's state file (to prove that a rejection changes
nothing)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from cosemcast.cosem.assignment import AssignedHeadEnd
from cosemcast.meter import SoftwareMeter
from cosemcast.meter.config import default_config_text, parse_config
from cosemcast.supervision import EnrollmentRequest, InitAction
from cosemcast.supervision.atrest import MasterKey
from cosemcast.supervision.registry import Issued, Registry
from test_meter_support import START, FakeClock

METER_ID = bytes.fromhex("4D4D4D0000BC614E")  # the default configuration's system title
KT = bytes.fromhex("6B74206F6620746865206D657465722E")
CENTRE_ID = bytes.fromhex("5355504500000001")
HE1 = bytes.fromhex("48454E4400000001")
HE2 = bytes.fromhex("48454E4400000002")
HE3 = bytes.fromhex("48454E4400000003")
MASTER = MasterKey(bytes(range(0xA0, 0xC0)))
NOW = int(START.timestamp())
ASSIGNMENT = "0-0:128.3.0.255"


def centre_key(seed: int = 0x5EED) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(seed, ec.SECP256R1())


def public_pem(key: ec.EllipticCurvePrivateKey) -> str:
    from cryptography.hazmat.primitives import serialization

    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def supervision_toml(
    centre_public_pem: str,
    *,
    kt: bytes = KT,
    renewal_timeout_s: int = 0,
    extra: str = "",
    destinations: bool = True,
) -> str:
    table = f'''
[supervision]
kt = "{kt.hex().upper()}"
centre_public_key = """{centre_public_pem}"""
renewal_timeout_s = {renewal_timeout_s}
{extra}
'''
    if not destinations:
        return table
    return (
        table
        + f'''
[[supervision.head_ends]]
system_title = "{HE1.hex().upper()}"
destination = "127.0.0.1:4061"

[[supervision.head_ends]]
system_title = "{HE2.hex().upper()}"
destination = "tcp://127.0.0.1:4062"
'''
    )


class Centre:
    """A real Registry with the default meter and three head-ends registered."""

    def __init__(self, path: Path, *, key: ec.EllipticCurvePrivateKey | None = None) -> None:
        self.key = key or centre_key()
        self.registry = Registry(path, MASTER)
        self.registry.initialise(centre_id=CENTRE_ID, now=NOW, signing_key=self.key)
        self.registry.add_meter(METER_ID, KT, now=NOW)
        for n, title in enumerate((HE1, HE2, HE3)):
            self.registry.register_head_end(
                title, name=f"head-end {n + 1}", credential=bytes([n + 1]) * 32, now=NOW
            )
        self._counter = 0
        self._sample: bytes | None = None

    def sample_message(self) -> bytes:
        """One valid initialization message for the meter (issued once, then the same)."""
        if self._sample is None:
            self._sample = self.assign(HE1).init_message
        return self._sample

    @property
    def public_pem(self) -> str:
        return public_pem(self.key)

    def enrollment(
        self, head_end: bytes, action: InitAction = InitAction.ASSIGN, *, at: int = NOW
    ) -> bytes:
        """An enrollment request as the meter would make it (the tests' own counter)."""
        self._counter += 1
        return EnrollmentRequest(METER_ID, head_end, at, 10_000 + self._counter, action).seal(KT)

    def assign(
        self, head_end: bytes, action: InitAction = InitAction.ASSIGN, *, now: int = NOW
    ) -> Issued:
        return self.registry.assign(
            head_end_id=head_end, enrollment=self.enrollment(head_end, action, at=now), now=now
        )

    def close(self) -> None:
        self.registry.close()


def make_meter(
    state: Path, centre: Centre, clock: FakeClock, *, renewal_timeout_s: int = 0, extra: str = ""
) -> SoftwareMeter:
    text = default_config_text() + supervision_toml(
        centre.public_pem, renewal_timeout_s=renewal_timeout_s, extra=extra
    )
    return SoftwareMeter(parse_config(text, source="<test>"), state, clock=clock)


def dump_state(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table of the state file, through a separate connection."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [
            str(name)
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
    finally:
        conn.close()


def assignment_rows(path: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        fields = conn.execute(
            "SELECT 'f', field, value FROM object_fields WHERE obis = ? ORDER BY field",
            (ASSIGNMENT,),
        ).fetchall()
        secrets = conn.execute(
            "SELECT 's', name, value FROM secrets WHERE owner = ? ORDER BY name", (ASSIGNMENT,)
        ).fetchall()
        return fields + secrets
    finally:
        conn.close()


class Recorder:
    """Records what the assignment hands the shared-payload unit."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[AssignedHeadEnd, ...], int]] = []

    def __call__(self, head_ends: tuple[AssignedHeadEnd, ...], now: int) -> None:
        self.calls.append((head_ends, now))

    @property
    def last(self) -> dict[bytes, AssignedHeadEnd]:
        return {h.system_title: h for h in self.calls[-1][0]}


@contextmanager
def centre_at(path: Path) -> Iterator[Centre]:
    centre = Centre(path)
    try:
        yield centre
    finally:
        centre.close()


def at(moment: dt.datetime) -> int:
    return int(moment.timestamp())
