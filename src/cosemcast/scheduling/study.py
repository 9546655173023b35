"""Upstream messages per second with and without scheduling (issue 7 item 2; specs §8).

Theory of operation. Two scenarios, each under two schemes:

* **broadcast**: at t = 0 the head-end broadcasts a command that every meter acknowledges
  ([0044]: a firmware upgrade). *Unscheduled*, each meter answers on receipt, within
  ``jitter_s`` seconds (uniform); *scheduled*, the broadcast carries a group command with one
  respond-within order per location group g (G groups, meter i in group ``i mod G + 1``):
  group g answers in ``[g·w, (g+1)·w)`` with ``w = ack_window_s // G``, each meter at
  ``g·w + spread(w)``. Horizon: ``max(ack_window_s, jitter_s)`` seconds.
* **reporting**: every meter pushes one C1 at each of ``periods`` synchronised reporting
  instants ``p·period_s`` (the quarter hour), and at the first one also its k C2s (a fleet-wide
  ``Kp`` renewal: a new head-end assignment epoch renews every meter at once). *Unscheduled*,
  at the instant plus a uniform jitter drawn per period; *scheduled*, at the instant plus its
  offset ``spread(report_window_s)``, the same every period. Horizon: ``(periods - 1)·period_s
  + max(period_s, report_window_s, jitter_s)`` seconds.

The mean is total messages / horizon; the peak is the busiest second; their ratio is the
peak-to-mean. :func:`model` is the statistical model: spread offsets behave as independent
uniform choices (they are SHA-256 outputs), so each block of meters is a multinomial sample
(:mod:`.stats`) and it scales to 10 million meters; byte counts use real message sizes
(``traffic.measure_message_sizes`` for C1 and C2, :func:`measure_ack_size` for the
acknowledgement). ``peak_band`` gives the model's 0.05 %, 50 % and 99.95 % quantiles of the
peak. :mod:`.realsim` generates every message for real; :func:`compare` checks one against the
other: equal totals, the real peak inside the model's band, and a chi-square test of the
per-second occupancy.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from cosemcast.apdu.common import LongInvokeIdAndPriority
from cosemcast.apdu.notifications import DataNotification
from cosemcast.axdr.types import CosemDateTime, Enumerated, OctetString, Structure
from cosemcast.scheduling.orders import GroupCommand, GroupOrder, Order, group_command_request
from cosemcast.scheduling.stats import (
    Block,
    multinomial_uniform,
    occupancy_chi_square,
    peak_quantile,
)
from cosemcast.security.gcm import SymmetricKeys
from cosemcast.security.protection import cipher_apdu
from cosemcast.sharedpayload.traffic import frame_overhead, measure_message_sizes

__all__ = [
    "BAND_QUANTILES",
    "KINDS",
    "Comparison",
    "Scenario",
    "Series",
    "StudyParams",
    "StudyResult",
    "ack_notification",
    "broadcast_blocks",
    "compare",
    "group_plan",
    "measure_ack_size",
    "model",
]

KINDS: Final = ("c1", "c2", "ack")
BAND_QUANTILES: Final = (0.0005, 0.5, 0.9995)
SCENARIOS: Final = ("broadcast", "reporting")
# Image transfer status 6, "image activation successful" (Blue Book, Image transfer class 18).
ACTIVATION_SUCCESSFUL: Final = 6
NEW_IMAGE: Final = b"FW-2.0.0"
ACK_SECURITY_CONTROL: Final = 0x30


@dataclass(frozen=True, slots=True)
class StudyParams:
    """The population, head-ends per meter, reporting instants, windows, groups and jitter."""

    meters: int
    head_ends: int = 3
    period_s: int = 900
    periods: int = 4
    report_window_s: int = 900
    ack_window_s: int = 3600
    groups: int = 1
    jitter_s: int = 1
    register_values: int = 4
    ip_version: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.meters < 0 or self.head_ends < 1 or self.periods < 1 or self.period_s < 1:
            raise ValueError("meters >= 0, head_ends >= 1, periods >= 1, period_s >= 1")
        if self.groups < 1 or self.jitter_s < 1:
            raise ValueError("groups >= 1 and jitter_s >= 1 (1: within the same second)")
        if self.report_window_s < 0 or self.ack_window_s < self.groups:
            raise ValueError("report_window_s >= 0 and ack_window_s >= groups are required")

    @property
    def group_window_s(self) -> int:
        return self.ack_window_s // self.groups

    @property
    def report_buckets(self) -> int:
        return max(1, self.report_window_s)

    def horizon_s(self, scenario: str) -> int:
        if scenario == "broadcast":
            return max(self.ack_window_s, self.jitter_s)
        last = max(self.period_s, self.report_window_s, self.jitter_s)
        return (self.periods - 1) * self.period_s + last

    def group_of(self, meter: int) -> int:
        return meter % self.groups + 1

    def group_sizes(self) -> list[int]:
        n, g = self.meters, self.groups
        return [n // g + (1 if i < n % g else 0) for i in range(g)]


def group_plan(params: StudyParams) -> GroupCommand:
    """The broadcast's group command: group g + 1 responds within ``[g·w, (g+1)·w)``."""
    w = params.group_window_s
    return GroupCommand(
        tuple(GroupOrder(g + 1, Order.respond_within(g * w, w)) for g in range(params.groups))
    )


def ack_notification(now: int, invoke_id: int = 0) -> bytes:
    """The acknowledgement after the broadcast: a DATA-NOTIFICATION {image identifier, image
    transfer status = activation successful}, the same size for every meter."""
    moment = dt.datetime.fromtimestamp(now, dt.UTC)
    body = Structure((OctetString(NEW_IMAGE), Enumerated(ACTIVATION_SUCCESSFUL)))
    return DataNotification(
        LongInvokeIdAndPriority(invoke_id & 0xFFFFFF), CosemDateTime.from_datetime(moment), body
    ).encode()


def measure_ack_size(ip_version: int | None = None) -> int:
    """Wire bytes of one acknowledgement: general-glo-ciphering (to the broadcasting head-end,
    under its global key) framed in the wrapper, plus UDP/IP when asked."""
    key = bytes(range(16))
    apdu = cipher_apdu(
        ack_notification(1_700_000_000),
        kind="general-glo",
        security_control=ACK_SECURITY_CONTROL,
        keys=SymmetricKeys(key, key),
        system_title=bytes.fromhex("4D4D4D0000BC614E"),
        invocation_counter=1,
    )
    return len(apdu.encode()) + frame_overhead(ip_version)


@dataclass(frozen=True, slots=True)
class Series:
    """Per-second upstream load of one scenario under one scheme (index = second)."""

    by_kind: dict[str, list[int]]
    bytes_per_s: list[int]

    @property
    def messages_per_s(self) -> list[int]:
        return [sum(col) for col in zip(*self.by_kind.values(), strict=True)]

    @property
    def total(self) -> int:
        return sum(sum(v) for v in self.by_kind.values())

    @property
    def totals(self) -> dict[str, int]:
        return {kind: sum(values) for kind, values in self.by_kind.items()}

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes_per_s)

    @property
    def peak(self) -> int:
        return max(self.messages_per_s, default=0)

    @property
    def mean(self) -> float:
        n = len(self.bytes_per_s)
        return self.total / n if n else 0.0

    @property
    def peak_to_mean(self) -> float:
        return self.peak / self.mean if self.mean else 0.0

    @property
    def peak_bytes(self) -> int:
        return max(self.bytes_per_s, default=0)

    def from_second(self, start: int) -> tuple[int, float, float]:
        """Peak, mean and peak-to-mean of the seconds from ``start`` on."""
        tail = self.messages_per_s[start:]
        if not tail or not sum(tail):
            return 0, 0.0, 0.0
        mean = sum(tail) / len(tail)
        return max(tail), mean, max(tail) / mean

    def summary(self) -> dict[str, Any]:
        return {
            "total_messages": self.total,
            "totals": self.totals,
            "total_bytes": self.total_bytes,
            "mean_per_s": self.mean,
            "peak_per_s": self.peak,
            "peak_to_mean": self.peak_to_mean,
            "peak_bytes_per_s": self.peak_bytes,
            "mean_bytes_per_s": self.total_bytes / len(self.bytes_per_s),
        }


def empty_series(horizon: int) -> Series:
    return Series({kind: [0] * horizon for kind in KINDS}, [0] * horizon)


@dataclass(frozen=True, slots=True)
class Scenario:
    """Both schemes of one scenario, with the model's peak band for each."""

    name: str
    horizon_s: int
    unscheduled: Series
    scheduled: Series
    band_unscheduled: tuple[int, ...]
    band_scheduled: tuple[int, ...] | None
    steady_from_s: int | None = None

    def series(self, scheme: str) -> Series:
        return self.scheduled if scheme == "scheduled" else self.unscheduled

    def steady(self) -> dict[str, dict[str, float]] | None:
        """Reporting after the first period (C1s only, no C2 burst), when there is one."""
        if self.steady_from_s is None or self.steady_from_s >= self.horizon_s:
            return None
        out = {}
        for scheme in ("unscheduled", "scheduled"):
            peak, mean, ratio = self.series(scheme).from_second(self.steady_from_s)
            out[scheme] = {"peak_per_s": peak, "mean_per_s": mean, "peak_to_mean": ratio}
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "horizon_s": self.horizon_s,
            "steady_from_s": self.steady_from_s,
            "steady": self.steady(),
            "unscheduled": self.unscheduled.summary()
            | {"model_peak_band": list(self.band_unscheduled)},
            "scheduled": self.scheduled.summary()
            | {
                "model_peak_band": None
                if self.band_scheduled is None
                else list(self.band_scheduled)
            },
        }


@dataclass(frozen=True, slots=True)
class StudyResult:
    """A study: ``mode`` is "model" (statistical) or "real" (every message generated)."""

    mode: str
    params: StudyParams
    sizes: dict[str, int]
    broadcast: Scenario
    reporting: Scenario
    group_command_hex: str
    extra: dict[str, Any] = field(default_factory=dict)

    def scenario(self, name: str) -> Scenario:
        return self.broadcast if name == "broadcast" else self.reporting

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "params": asdict(self.params),
            "sizes_bytes": self.sizes,
            "group_command_hex": self.group_command_hex,
            "broadcast": self.broadcast.summary(),
            "reporting": self.reporting.summary(),
            **self.extra,
        }


def message_sizes(params: StudyParams) -> dict[str, int]:
    sizes = measure_message_sizes(params.register_values, params.ip_version)
    return {"c1": sizes.c1, "c2": sizes.c2, "ack": measure_ack_size(params.ip_version)}


def broadcast_blocks(params: StudyParams, scheduled: bool) -> list[tuple[int, Block]]:
    """(first second, block) of the broadcast acknowledgements."""
    if not scheduled:
        return [(0, Block(params.meters, params.jitter_s))]
    w = params.group_window_s
    return [(g * w, Block(n, w)) for g, n in enumerate(params.group_sizes())]


def reporting_weight(params: StudyParams, period: int) -> int:
    return 1 + (params.head_ends if period == 0 else 0)


def peak_band(blocks: Sequence[Block]) -> tuple[int, ...]:
    return tuple(peak_quantile(blocks, q) for q in BAND_QUANTILES)


def steady_from(params: StudyParams, scenario: str) -> int | None:
    """Where the reporting scenario's steady state (C1 only) starts: the second period."""
    if scenario != "reporting" or params.periods < 2:
        return None
    return params.period_s


def bands(params: StudyParams) -> dict[str, tuple[tuple[int, ...], tuple[int, ...] | None]]:
    """The model's peak bands per scenario: (unscheduled, scheduled). The reporting band holds
    when the periods do not overlap (window and jitter at most one period)."""
    weight = reporting_weight(params, 0)
    fits = params.report_window_s <= params.period_s
    jitter_fits = params.jitter_s <= params.period_s
    report_unscheduled = peak_band([Block(params.meters, params.jitter_s, weight)])
    return {
        "broadcast": (
            peak_band([b for _, b in broadcast_blocks(params, False)]),
            peak_band([b for _, b in broadcast_blocks(params, True)]),
        ),
        "reporting": (
            report_unscheduled if jitter_fits else (),
            peak_band([Block(params.meters, params.report_buckets, weight)]) if fits else None,
        ),
    }


def model(params: StudyParams, sizes: dict[str, int] | None = None) -> StudyResult:
    """The statistical model (module doc); reproducible for a given ``params.seed``."""
    sizes = sizes or message_sizes(params)
    rng = random.Random(params.seed)
    k = params.head_ends
    scenarios = {}
    found = bands(params)
    for name in SCENARIOS:
        horizon = params.horizon_s(name)
        out = {}
        for scheduled in (False, True):
            series = empty_series(horizon)
            if name == "broadcast":
                for start, block in broadcast_blocks(params, scheduled):
                    for s, x in enumerate(multinomial_uniform(rng, block.meters, block.seconds)):
                        _add(series, start + s, "ack", x, sizes)
            else:
                offsets = multinomial_uniform(rng, params.meters, params.report_buckets)
                for p in range(params.periods):
                    if not scheduled:
                        offsets = multinomial_uniform(rng, params.meters, params.jitter_s)
                    for s, x in enumerate(offsets):
                        second = p * params.period_s + s
                        _add(series, second, "c1", x, sizes)
                        if p == 0:
                            _add(series, second, "c2", x * k, sizes)
            out[scheduled] = series
        unscheduled_band, scheduled_band = found[name]
        scenarios[name] = Scenario(
            name,
            horizon,
            out[False],
            out[True],
            unscheduled_band,
            scheduled_band,
            steady_from(params, name),
        )
    return StudyResult(
        "model",
        params,
        sizes,
        scenarios["broadcast"],
        scenarios["reporting"],
        group_command_request(group_plan(params)).encode().hex().upper(),
    )


def _add(series: Series, second: int, kind: str, count: int, sizes: dict[str, int]) -> None:
    if count:
        series.by_kind[kind][second] += count
        series.bytes_per_s[second] += count * sizes[kind]


@dataclass(frozen=True, slots=True)
class Comparison:
    """:func:`compare`'s findings; ``ok`` when every check passed."""

    checks: tuple[tuple[str, bool, str], ...]

    @property
    def ok(self) -> bool:
        return all(passed for _, passed, _ in self.checks)

    def to_json(self) -> list[dict[str, Any]]:
        return [{"check": c, "passed": p, "detail": d} for c, p, d in self.checks]


def compare(real: StudyResult, predicted: StudyResult, min_p_value: float = 1e-3) -> Comparison:
    """Check a real-message run against the model of the same parameters (module doc)."""
    checks: list[tuple[str, bool, str]] = []
    for name in SCENARIOS:
        r, m = real.scenario(name), predicted.scenario(name)
        for scheme in ("unscheduled", "scheduled"):
            rs, ms = r.series(scheme), m.series(scheme)
            label = f"{name}/{scheme}"
            checks.append(
                (
                    f"{label} totals",
                    rs.totals == ms.totals and rs.total_bytes == ms.total_bytes,
                    f"real {rs.totals} {rs.total_bytes} B, model {ms.totals} {ms.total_bytes} B",
                )
            )
            band = m.band_scheduled if scheme == "scheduled" else m.band_unscheduled
            if band:
                inside = band[0] <= rs.peak <= band[-1]
                checks.append(
                    (f"{label} peak in model band", inside, f"real {rs.peak}, band {list(band)}")
                )
    observed, blocks = _occupancy(real, predicted.params)
    test = occupancy_chi_square(observed, blocks)
    checks.append(
        (
            "scheduled per-second occupancy (chi-square)",
            test.p_value >= min_p_value,
            f"chi2 {test.chi_square:.2f}, df {test.degrees_of_freedom}, p {test.p_value:.3g}",
        )
    )
    return Comparison(tuple(checks))


def _occupancy(result: StudyResult, params: StudyParams) -> tuple[list[int], list[Block]]:
    """Per-second counts of the scheduled broadcast acknowledgements (each group window) and of
    the scheduled C1s of the first reporting period, and the blocks they should follow under
    ``params`` (the model's)."""
    observed: list[int] = []
    blocks: list[Block] = []
    acks = result.broadcast.scheduled.by_kind["ack"]
    for start, block in broadcast_blocks(params, True):
        observed += acks[start : start + block.seconds]
        blocks.append(block)
    if params.report_window_s <= params.period_s:
        c1 = result.reporting.scheduled.by_kind["c1"]
        observed += c1[: params.report_buckets]
        blocks.append(Block(params.meters, params.report_buckets))
    return observed, blocks
