"""The pure-Python statistics behind the load model: exact binomial sampling, multinomial
buckets, the peak's quantiles and the occupancy test, checked against exact probabilities
computed here with ``math.comb`` and against brute-force simulation."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from cosemcast.scheduling.stats import (
    Block,
    binomial,
    binomial_pmf_table,
    multinomial_uniform,
    occupancy_chi_square,
    peak_quantile,
)

# Chi-square 0.1 % critical values by degrees of freedom.
CRITICAL = {5: 20.52, 8: 26.12, 10: 29.59, 12: 32.91, 15: 37.70, 20: 45.31, 25: 52.62}


def exact_pmf(n: int, p: float, k: int) -> float:
    # math.log takes the exact (big) integer C(n, k).
    return math.exp(math.log(math.comb(n, k)) + k * math.log(p) + (n - k) * math.log1p(-p))


@pytest.mark.parametrize(
    ("n", "p"),
    [(12, 0.3), (40, 0.1), (200, 0.3), (1000, 0.02), (5000, 0.5), (60, 0.9)],
)
def test_binomial_draws_follow_the_exact_distribution(n: int, p: float) -> None:
    """Inversion (mean < 10) and BTRS (mean >= 10), and the p > 0.5 reflection."""
    rng = random.Random(n)
    draws = 20_000
    seen = Counter(binomial(rng, n, p) for _ in range(draws))
    cells: list[tuple[int, float]] = []
    obs, exp = 0, 0.0
    for k in range(n + 1):
        obs += seen.get(k, 0)
        exp += draws * exact_pmf(n, p, k)
        if exp >= 20:
            cells.append((obs, exp))
            obs, exp = 0, 0.0
    last_obs, last_exp = cells.pop()
    cells.append((last_obs + obs, last_exp + exp))
    chi = sum((o - e) ** 2 / e for o, e in cells)
    df = len(cells) - 1
    critical = CRITICAL.get(df) or df + 3.3 * math.sqrt(2 * df)
    assert chi < critical, (chi, df)


def test_binomial_edges() -> None:
    rng = random.Random(0)
    assert binomial(rng, 0, 0.5) == 0
    assert binomial(rng, 10, 0.0) == 0
    assert binomial(rng, 10, 1.0) == 10
    with pytest.raises(ValueError):
        binomial(rng, -1, 0.5)
    with pytest.raises(ValueError):
        binomial(rng, 5, 1.5)


def test_large_binomial_mean_and_spread() -> None:
    rng = random.Random(3)
    n, p = 10_000_000, 1 / 900
    xs = [binomial(rng, n, p) for _ in range(4000)]
    mean = sum(xs) / len(xs)
    var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
    sd = math.sqrt(n * p * (1 - p))
    assert abs(mean - n * p) < 4 * sd / math.sqrt(len(xs))
    assert 0.9 < var / sd**2 < 1.1


def test_multinomial_buckets_sum_and_are_reproducible() -> None:
    counts = multinomial_uniform(random.Random(5), 10_000_000, 900)
    assert len(counts) == 900 and sum(counts) == 10_000_000
    assert counts == multinomial_uniform(random.Random(5), 10_000_000, 900)
    assert multinomial_uniform(random.Random(1), 7, 1) == [7]
    assert multinomial_uniform(random.Random(1), 0, 3) == [0, 0, 0]
    with pytest.raises(ValueError):
        multinomial_uniform(random.Random(1), 5, 0)


def test_pmf_table_matches_exact_values() -> None:
    lo, pmf = binomial_pmf_table(50, 0.2)
    assert lo == 0 and math.isclose(sum(pmf), 1.0, rel_tol=1e-12)
    for k in range(0, 30):
        assert math.isclose(pmf[k], exact_pmf(50, 0.2, k), rel_tol=1e-9, abs_tol=1e-300)
    n, p = 10_000_000, 1 / 900
    lo, pmf = binomial_pmf_table(n, p)
    assert lo > 0 and math.isclose(sum(pmf), 1.0, rel_tol=1e-12)
    for k in (11_111, 11_111 + 300, 11_111 - 500):
        assert math.isclose(pmf[k - lo], exact_pmf(n, p, k), rel_tol=1e-6)
    assert binomial_pmf_table(9, 1.0) == (9, [1.0])


def test_peak_quantiles_match_brute_force() -> None:
    """1,000 meters over 300 s, weight 2: the model's median and 99 % quantile of the peak
    against 3,000 simulated fleets (every meter drawing its second)."""
    rng = random.Random(11)
    peaks = sorted(
        2 * max(Counter(rng.randrange(300) for _ in range(1000)).values()) for _ in range(3000)
    )
    block = [Block(1000, 300, 2)]
    median, high = peak_quantile(block, 0.5), peak_quantile(block, 0.99)
    assert abs(median - peaks[1500]) <= 2
    assert abs(high - peaks[2970]) <= 2
    assert peak_quantile([Block(5, 1, 3)], 0.5) == 15
    assert peak_quantile([Block(0, 10)], 0.5) == 0
    # Two disjoint windows: the busier one decides.
    both = peak_quantile([Block(1000, 300), Block(100, 300)], 0.5)
    assert both == peak_quantile([Block(1000, 300)], 0.5)


def test_occupancy_accepts_uniform_and_rejects_bunched_counts() -> None:
    uniform = multinomial_uniform(random.Random(2), 2000, 900)
    test = occupancy_chi_square(uniform, [Block(2000, 900)])
    assert test.p_value > 0.001
    assert sum(o for _, o, _ in test.cells) == 900
    # The same 2000 messages over the first half of the window only.
    bunched = multinomial_uniform(random.Random(2), 2000, 450) + [0] * 450
    assert occupancy_chi_square(bunched, [Block(2000, 900)]).p_value < 1e-6
    with pytest.raises(ValueError, match="seconds"):
        occupancy_chi_square(uniform[:10], [Block(2000, 900)])
