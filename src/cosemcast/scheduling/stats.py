"""Pure-Python statistics of the upstream load model (no numpy: CI may not have it).

Theory of operation. When N meters each pick one of W seconds uniformly and independently (what
:func:`~cosemcast.scheduling.spread.spread_offset` does, being a hash), the per-second counts
are Multinomial(N; 1/W, ..., 1/W). :func:`multinomial_uniform` samples them in O(W) with W
conditional binomial draws (bucket i gets Binomial(N left, 1/(W - i))), so 10 million meters
cost no more than 100. :func:`binomial` samples exactly: inversion when the mean is small,
Hörmann's BTRS transformed rejection (W. Hörmann, "The generation of binomial random
variates", J. Statist. Comput. Simul. 46, 1993) otherwise.

The peak second of a multinomial: the counts are negatively associated, so
``P(max <= m) <= F(m)^W`` with F the Binomial(N, 1/W) CDF, and the product is very close for
W >> 1; :func:`peak_quantile` inverts it (over several disjoint windows: the product of theirs).
:func:`occupancy_chi_square` compares an observed per-second histogram with the binomial
expectation (how many seconds carry 0, 1, 2, ... messages); its p-value uses the
Wilson-Hilferty normal approximation of the chi-square distribution.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "Block",
    "OccupancyTest",
    "binomial",
    "binomial_pmf_table",
    "multinomial_uniform",
    "occupancy_chi_square",
    "peak_quantile",
]

_INVERSION_MEAN: Final = 10.0
_TAIL_SD: Final = 14.0


def binomial(rng: random.Random, n: int, p: float) -> int:
    """One Binomial(n, p) draw."""
    if n < 0 or not 0.0 <= p <= 1.0:
        raise ValueError(f"binomial needs n >= 0 and 0 <= p <= 1, got n={n}, p={p}")
    if n == 0 or p == 0.0:
        return 0
    if p == 1.0:
        return n
    if p > 0.5:
        return n - binomial(rng, n, 1.0 - p)
    if n * p < _INVERSION_MEAN:
        return _inversion(rng, n, p)
    return _btrs(rng, n, p)


def _inversion(rng: random.Random, n: int, p: float) -> int:
    # Walk the CDF from 0 with the pmf recurrence f(k+1) = f(k) (n-k)/(k+1) p/q.
    q = 1.0 - p
    ratio = p / q
    u = rng.random()
    k = 0
    f = math.exp(n * math.log1p(-p))
    while u > f and k < n:
        u -= f
        f *= ratio * (n - k) / (k + 1)
        k += 1
    return k


def _btrs(rng: random.Random, n: int, p: float) -> int:
    q = 1.0 - p
    spq = math.sqrt(n * p * q)
    b = 1.15 + 2.53 * spq
    a = -0.0873 + 0.0248 * b + 0.01 * p
    c = n * p + 0.5
    v_r = 0.92 - 4.2 / b
    alpha = (2.83 + 5.1 / b) * spq
    lpq = math.log(p / q)
    m = math.floor((n + 1) * p)
    h = math.lgamma(m + 1) + math.lgamma(n - m + 1)
    while True:
        u = rng.random() - 0.5
        v = rng.random()
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + b) * u + c)
        if k < 0 or k > n:
            continue
        if us >= 0.07 and v <= v_r:
            return k
        if v <= 0.0:
            continue
        v = math.log(v * alpha / (a / (us * us) + b))
        if v <= h - math.lgamma(k + 1) - math.lgamma(n - k + 1) + (k - m) * lpq:
            return k


def multinomial_uniform(rng: random.Random, n: int, buckets: int) -> list[int]:
    """How many of ``n`` independent uniform choices among ``buckets`` land in each."""
    if buckets < 1 or n < 0:
        raise ValueError("buckets >= 1 and n >= 0 are required")
    counts = []
    left = n
    for i in range(buckets - 1):
        x = binomial(rng, left, 1.0 / (buckets - i))
        counts.append(x)
        left -= x
    counts.append(left)
    return counts


def binomial_pmf_table(n: int, p: float) -> tuple[int, list[float]]:
    """``(lo, pmf)``: pmf[i] = P(X = lo + i) for X ~ Binomial(n, p), over every value whose
    probability is not negligible (mean ± 14 standard deviations, and 0..40 for small means)."""
    if n == 0 or p == 0.0:
        return 0, [1.0]
    if p == 1.0:
        return n, [1.0]
    mean = n * p
    sd = math.sqrt(mean * (1.0 - p))
    lo = max(0, math.floor(mean - _TAIL_SD * sd - 40))
    hi = min(n, math.ceil(mean + _TAIL_SD * sd + 40))
    log_p, log_q = math.log(p), math.log1p(-p)
    base = math.lgamma(n + 1)
    pmf = [
        math.exp(base - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_p + (n - k) * log_q)
        for k in range(lo, hi + 1)
    ]
    # lgamma of 10^7 carries ~1e-8 relative error; the table covers all but ~1e-40 of the mass.
    total = math.fsum(pmf)
    return lo, [f / total for f in pmf]


@dataclass(frozen=True, slots=True)
class Block:
    """``meters`` spread uniformly over ``seconds`` seconds, every count times ``weight``
    (messages each meter sends in its second)."""

    meters: int
    seconds: int
    weight: int = 1


def peak_quantile(blocks: Sequence[Block], q: float) -> int:
    """The smallest m with P(peak messages/s <= m) >= q, for disjoint blocks (module doc)."""
    if not 0.0 < q < 1.0:
        raise ValueError("q must be in (0, 1)")
    tables = []
    for block in blocks:
        if block.meters == 0 or block.seconds == 0:
            continue
        lo, pmf = binomial_pmf_table(block.meters, 1.0 / block.seconds)
        upper: list[float] = [0.0] * len(pmf)  # upper[i] = P(X > lo + i)
        tail = 0.0
        for i in range(len(pmf) - 1, -1, -1):
            upper[i] = tail
            tail += pmf[i]
        tables.append((block, lo, upper))
    if not tables:
        return 0
    candidates = sorted({(lo + i) * b.weight for b, lo, upper in tables for i in range(len(upper))})
    target = math.log(q)
    for m in candidates:
        log_p = 0.0
        for block, lo, upper in tables:
            x = m // block.weight - lo
            if x < 0:
                log_p = -math.inf
                break
            tail = upper[x] if x < len(upper) else 0.0
            if tail >= 1.0:
                log_p = -math.inf
                break
            log_p += block.seconds * math.log1p(-tail)
        if log_p >= target:
            return m
    return candidates[-1]


@dataclass(frozen=True, slots=True)
class OccupancyTest:
    """Observed against expected numbers of seconds carrying c messages, pooled so that every
    expected cell holds at least 5; chi-square statistic, degrees of freedom, p-value."""

    cells: tuple[tuple[str, int, float], ...]
    chi_square: float
    degrees_of_freedom: int
    p_value: float


def occupancy_chi_square(observed: Iterable[int], blocks: Sequence[Block]) -> OccupancyTest:
    """Test per-second counts (of one message kind, weight 1) against ``blocks``."""
    seen = Counter(observed)
    total_seconds = sum(b.seconds for b in blocks)
    if sum(seen.values()) != total_seconds:
        raise ValueError(f"{sum(seen.values())} seconds observed, the blocks span {total_seconds}")
    expected: dict[int, float] = {}
    for block in blocks:
        lo, pmf = binomial_pmf_table(block.meters, 1.0 / block.seconds)
        for i, f in enumerate(pmf):
            expected[lo + i] = expected.get(lo + i, 0.0) + block.seconds * f
    values = sorted(set(expected) | set(seen))
    cells: list[tuple[str, int, float]] = []
    start, obs, exp = values[0], 0, 0.0
    for v in values:
        obs += seen.get(v, 0)
        exp += expected.get(v, 0.0)
        if exp >= 5.0:
            cells.append((f"{start}..{v}", obs, exp))
            start, obs, exp = v + 1, 0, 0.0
    if cells and (obs or exp):
        label, o, e = cells.pop()
        cells.append((f"{label.split('..')[0]}..{values[-1]}", o + obs, e + exp))
    chi = sum((o - e) ** 2 / e for _, o, e in cells if e > 0)
    df = max(1, len(cells) - 1)
    return OccupancyTest(tuple(cells), chi, df, _chi_square_sf(chi, df))


def _chi_square_sf(x: float, df: int) -> float:
    """P(chi-square(df) > x), Wilson-Hilferty approximation."""
    if x <= 0:
        return 1.0
    z = ((x / df) ** (1 / 3) - (1 - 2 / (9 * df))) / math.sqrt(2 / (9 * df))
    return 0.5 * math.erfc(z / math.sqrt(2))
