"""The pre-vs-post comparison's numbers in numpy and ``math`` only: no scipy at run time.

``import scipy.stats`` costs every ``check`` about 0.8 s and 45 MB for numbers that are reported, never
gated. This module computes:

* ``ks_2samp``: scipy's two-sample KS statistic D (the same float; on large windows found by a pruned
  search, ``pruned_cdf_extremes``, that evaluates only where the maximum can be), and its two-sided
  p-value
  - exactly as ``scipy.stats.ks_2samp(a, b)`` does (the same bits) when scipy would compute it exactly
    (neither sample over 10,000 values) *and* the exact walk is cheap: equal sizes always (scipy's
    ``_compute_prob_outside_square``, O(n)), unequal sizes while the lattice-path recursion of
    ``_compute_outer_prob_inside_method`` is estimated under ``KS_EXACT_BUDGET_SECONDS``. scipy runs
    that recursion in compiled code; in Python its sequential steps cost ~12 ms for 2,000 vs 1,500
    values, per model, per evaluation, for a number that never gates;
  - otherwise from Kolmogorov's limiting distribution with Stephens' correction
    (``ks_asymptotic_sf``), within a few per cent of scipy's value (docs/benchmarks.md, "KS p-values").
* ``chi2_contingency``: ``scipy.stats.chi2_contingency(table, correction=False)``, Pearson's statistic
  **without** Yates' continuity correction (the tables are actions x windows with hundreds of counts,
  where the correction only biases towards 1), the same expected table and statistic, and the p-value
  ``chi2.sf`` as the upper regularized incomplete gamma function (series or Lentz's continued fraction
  over ``math.lgamma``).

tests/test_stats.py holds all of it to scipy.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# scipy's ks_2samp(method="auto") computes the exact p-value up to this many samples per side.
KS_EXACT_MAX_N = 10_000
# The exact p-value for unequal sizes is a Python loop over the lattice; above this estimated cost the
# asymptotic p-value is used instead (equal sizes are O(n) and always exact up to KS_EXACT_MAX_N).
KS_EXACT_BUDGET_SECONDS = 0.001


# ---- Kolmogorov-Smirnov, two samples ---------------------------------------------------------------


def ks_2samp(first: FloatArray, second: FloatArray, *, presorted: bool = False) -> tuple[float, float]:
    """Two-sided two-sample KS: (D, p-value), equal to ``scipy.stats.ks_2samp(first, second)``.

    A NaN in either sample gives (nan, nan), as scipy's default ``nan_policy="propagate"`` does.
    ``presorted`` says both samples are already sorted (the gate sorted them for its percentiles).
    """
    n1, n2 = int(first.size), int(second.size)
    if not n1 or not n2:
        raise ValueError("ks_2samp needs at least one value on each side")
    ordered1, ordered2 = (first, second) if presorted else (np.sort(first), np.sort(second))
    if np.isnan(ordered1[-1]) or np.isnan(ordered2[-1]):
        return math.nan, math.nan
    d = ks_statistic(ordered1, ordered2)
    if max(n1, n2) <= KS_EXACT_MAX_N:
        # scipy's _attempt_exact_2kssamp: D becomes the lattice fraction h / lcm(n1, n2).
        g = math.gcd(n1, n2)
        lcm = (n1 // g) * n2
        h = round(d * lcm)  # round half to even, as np.round
        d = h / lcm
        if h == 0:
            return d, 1.0
        if not exact_p_value_applies(n1, n2, h):
            return d, ks_asymptotic_sf(d, n1, n2)
        # outside_square can round a certainty to a hair above 1: that is 1 (scipy warns "Exact
        # calculation unsuccessful" there and falls back to an approximation instead).
        return d, _clip(outside_square(n1, h) if n1 == n2 else outside_band(n1, n2, g, h))
    return d, ks_asymptotic_sf(d, n1, n2)


def exact_p_value_applies(n1: int, n2: int, h: int) -> bool:
    """Whether ``ks_2samp`` computes the exact p-value for sizes n1, n2 and lattice distance h >= 1.

    Equal sizes: up to ``KS_EXACT_MAX_N`` (an O(n) sum). Unequal sizes: also while the lattice walk is
    estimated under ``KS_EXACT_BUDGET_SECONDS``; otherwise the asymptotic p-value is used.
    """
    if max(n1, n2) > KS_EXACT_MAX_N:
        return False
    return n1 == n2 or outside_band_cost(n1, n2, math.gcd(n1, n2), h) <= KS_EXACT_BUDGET_SECONDS


def ks_statistic(ordered1: FloatArray, ordered2: FloatArray) -> float:
    """The two-sided KS statistic of two sorted samples, the same float as ``ks_2samp`` gives.

    scipy evaluates ``searchsorted(data, all, side="right") / n`` for both samples at every value of
    both; the difference only changes at the last copy of each distinct value (duplicates repeat the
    same difference), so evaluating there with the same integer counts and the same divisions finds the
    same extremes. Few distinct values (a collapsed model): one binary search per distinct value.
    Mostly distinct values: the counts come from one stable merge of the two sorted runs instead.
    """
    n1, n2 = ordered1.size, ordered2.size
    if n1 + n2 >= KS_PRUNE_MIN_N:
        extremes = pruned_cdf_extremes(ordered1, ordered2)
        if extremes is not None:
            return _two_sided(*extremes)
    last1, last2 = _last_of_each_value(ordered1), _last_of_each_value(ordered2)
    if np.count_nonzero(last1) + np.count_nonzero(last2) > (n1 + n2) // 8:
        cddiffs = _merged_cdf_differences(ordered1, ordered2)
    else:
        diffs = []
        for ordered, last, other, own_n, other_n, sign in (
            (ordered1, last1, ordered2, n1, n2, 1),
            (ordered2, last2, ordered1, n2, n1, -1),
        ):
            ends = np.flatnonzero(last)
            own = (ends + 1) / own_n
            theirs = np.searchsorted(other, ordered[ends], side="right") / other_n
            diffs.append(own - theirs if sign > 0 else theirs - own)
        cddiffs = np.concatenate(diffs)
    return _two_sided(float(np.max(cddiffs)), float(-np.min(cddiffs)))


def _two_sided(above: float, below: float) -> float:
    """scipy's two-sided D from the largest ECDF1 - ECDF2 (``above``) and ECDF2 - ECDF1 (``below``)."""
    below = min(max(below, 0.0), 1.0)
    return below if below > above else above


# From this many values (both samples) on, ks_statistic tries the pruned search first: below it the
# full merge costs well under a millisecond anyway.
KS_PRUNE_MIN_N = 20_000
_PRUNE_GRID = 2048  # grid points taken from each sample
_PRUNE_MAX_SHARE = 0.25  # more candidates than this share of all values: the full merge is cheaper


def pruned_cdf_extremes(
    ordered1: FloatArray,
    ordered2: FloatArray,
    grid_points: int = _PRUNE_GRID,
    max_share: float = _PRUNE_MAX_SHARE,
) -> tuple[float, float] | None:
    """The largest ECDF1 - ECDF2 and ECDF2 - ECDF1 over the values of both sorted samples (the floats
    the full merge finds), evaluating only where the maximum can be; None when too much is left.

    A grid of values from both samples (each sample's largest among them) is evaluated exactly, and
    cuts the line into open bins ``(g[k-1], g[k])``. Inside bin k ECDF1 is at most its count of values
    below ``g[k]`` and ECDF2 at least its count up to ``g[k-1]``, so their difference (as floats too:
    correctly rounded division and subtraction are monotone) bounds ECDF1 - ECDF2 there, and
    symmetrically. A bin whose bounds are not above what the grid reached cannot hold a larger
    value and is skipped; the values inside the other bins are evaluated exactly, with the same
    integer counts (``searchsorted(..., side="right")``) and the same divisions as the merge. For
    100,000 + 100,000 mostly distinct values a few thousand are evaluated instead of all of them.
    """
    n1, n2 = ordered1.size, ordered2.size
    # At least both ends of each sample: the bins must reach the largest value of both.
    picks1 = np.linspace(0, n1 - 1, max(2, min(grid_points, n1))).astype(np.intp)
    picks2 = np.linspace(0, n2 - 1, max(2, min(grid_points, n2))).astype(np.intp)
    grid = np.unique(np.concatenate((ordered1[picks1], ordered2[picks2])))
    upto1 = np.searchsorted(ordered1, grid, side="right")
    upto2 = np.searchsorted(ordered2, grid, side="right")
    at_grid = upto1 / n1 - upto2 / n2
    above, below = float(np.max(at_grid)), float(-np.min(at_grid))
    # Bin k holds the values strictly between g[k-1] (or -inf) and g[k]: [after, under) in each sample.
    after1 = np.concatenate(([0], upto1[:-1]))
    after2 = np.concatenate(([0], upto2[:-1]))
    under1 = np.searchsorted(ordered1, grid, side="left")
    under2 = np.searchsorted(ordered2, grid, side="left")
    open_bins = np.flatnonzero((under1 / n1 - after2 / n2 > above) | (under2 / n2 - after1 / n1 > below))
    inside = int((under1 - after1 + under2 - after2)[open_bins].sum())
    if inside > max_share * (n1 + n2):
        return None
    if inside:
        bins = open_bins.tolist()
        candidates = np.concatenate(
            [ordered1[after1[k] : under1[k]] for k in bins] + [ordered2[after2[k] : under2[k]] for k in bins]
        )
        differences = np.searchsorted(ordered1, candidates, side="right") / n1 - (
            np.searchsorted(ordered2, candidates, side="right") / n2
        )
        above = max(above, float(np.max(differences)))
        below = max(below, float(-np.min(differences)))
    return above, below


def _last_of_each_value(ordered: FloatArray) -> npt.NDArray[np.bool_]:
    last = np.empty(ordered.size, dtype=np.bool_)
    last[-1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=last[:-1])
    return last


def _merged_cdf_differences(ordered1: FloatArray, ordered2: FloatArray) -> FloatArray:
    """ECDF1 - ECDF2 at the last copy of each distinct value of both samples, from one merge."""
    n1, n2 = ordered1.size, ordered2.size
    merged = np.concatenate((ordered1, ordered2))
    order = np.argsort(merged, kind="stable")  # two sorted runs: a single merge pass
    count1 = np.cumsum(order < n1)
    count2 = np.arange(1, n1 + n2 + 1) - count1
    last = _last_of_each_value(merged[order])
    result: FloatArray = count1[last] / n1 - count2[last] / n2
    return result


def outside_square(n: int, h: int) -> float:
    """P(D >= h / n) for two samples of n each: scipy's ``_compute_prob_outside_square``, verbatim.

    2 * (C(2n, n-h) - C(2n, n-2h) + ...) / C(2n, n), each term divided by C(2n, n) first and nested
    Horner-like to avoid the cancellation.
    """
    total = 0.0
    k = n // h
    while k >= 0:
        term = 1.0
        for j in range(h):
            term = (n - k * h - j) * term / (n + k * h + j + 1)
        total = term * (1.0 - total)
        k -= 1
    return 2 * total


# Rough costs (s) of the two equivalent evaluations of outside_band, to pick the faster one.
_SCALAR_PER_CELL, _SCALAR_PER_COLUMN = 1.0e-7, 8.0e-7
_DIAGONAL_PER_STEP, _DIAGONAL_PER_CELL = 2.7e-6, 2.0e-9


def outside_band(m: int, n: int, g: int, h: int) -> float:
    """P(D >= h / lcm(m, n)) for samples of m and n values (m != n allowed), g = gcd(m, n).

    scipy's ``_compute_outer_prob_inside_method`` (Hodges' inside method with Viehmann's recursion for
    1 - p): over the lattice paths from (0, 0) to (L, S), L >= S the sample sizes, Q(i, j) is the
    share of the paths to (i, j) that have left the band ``|S/g * i - L/g * j| < h``: 1 outside the
    band, Q(0, 0) = 0, and inside ``Q(i, j) = (Q(i-1, j) * i + Q(i, j-1) * j) / (i + j)``. The p-value
    is Q(L, S). scipy (compiled) fills the band column by column; both evaluations here compute every
    cell with that same expression from the same two neighbours, so they give scipy's bits. Which one
    runs is only a matter of speed: a Python loop over the band's cells, or numpy over anti-diagonals
    (all cells of one anti-diagonal depend only on the previous one).
    """
    long_n, short_n = max(m, n), min(m, n)
    long_g, short_g = long_n // g, short_n // g
    scalar, diagonal = _outside_band_costs(long_n, short_n, short_g, h)
    if scalar <= diagonal:
        return _outside_band_scalar(long_n, short_n, long_g, short_g, h)
    return _outside_band_diagonal(long_n, short_n, long_g, short_g, h)


def outside_band_cost(m: int, n: int, g: int, h: int) -> float:
    """The estimated seconds ``outside_band(m, n, g, h)`` takes (a cost model, nothing is timed)."""
    return min(_outside_band_costs(max(m, n), min(m, n), min(m, n) // g, h))


def _outside_band_costs(long_n: int, short_n: int, short_g: int, h: int) -> tuple[float, float]:
    cells = (short_n + 1) * (2 * h / short_g + 1)
    scalar = _SCALAR_PER_CELL * cells + _SCALAR_PER_COLUMN * (short_n + 1)
    diagonal = _DIAGONAL_PER_STEP * (long_n + short_n) + _DIAGONAL_PER_CELL * cells
    return scalar, diagonal


def _outside_band_scalar(long_n: int, short_n: int, long_g: int, short_g: int, h: int) -> float:
    """Column by column over the short side j; the band's cells of column j are a run of i."""

    def window(j: int) -> tuple[int, int]:
        lo = max((long_g * j - h) // short_g + 1, 0)
        hi = min(-(-(long_g * j + h) // short_g) - 1, long_n)
        return lo, hi

    prev_lo, prev_hi = window(0)
    prev = [0.0] * (prev_hi - prev_lo + 1)  # every path to (i, 0) inside the band stays inside
    for j in range(1, short_n + 1):
        lo, hi = window(j)
        if lo > hi:
            return 1.0  # no path crosses column j inside the band
        column = [0.0] * (hi - lo + 1)
        value = 1.0 if lo > 0 else 0.0  # Q(lo - 1, j): outside the band, or multiplied by i == 0
        for i in range(lo, min(hi, prev_hi) + 1):
            value = (value * i + prev[i - prev_lo] * j) / (i + j)
            column[i - lo] = value
        outside = 1.0  # Q(i, j - 1) above the previous column's run
        for i in range(max(lo, prev_hi + 1), hi + 1):
            value = (value * i + outside * j) / (i + j)
            column[i - lo] = value
        prev, prev_lo, prev_hi = column, lo, hi
    return prev[long_n - prev_lo]


def _outside_band_diagonal(long_n: int, short_n: int, long_g: int, short_g: int, h: int) -> float:
    """Anti-diagonal by anti-diagonal: ``cells[i + 1]`` holds Q(i, s - i) on anti-diagonal s."""
    width = long_g + short_g
    cells = np.ones(long_n + 3)
    cells[1] = 0.0  # Q(0, 0)
    index = np.arange(-1, long_n + 2, dtype=np.float64)  # index[k] == k - 1 == i
    top = long_n + short_n + 2
    # countdown[k] == top - k, so that countdown[i - s + top] == s - i == j (a view, nothing computed)
    countdown = np.arange(top, -top - 1, -1, dtype=np.float64)
    left, down = np.empty(long_n + 3), np.empty(long_n + 3)
    prev_lo = 0
    for s in range(1, long_n + short_n + 1):
        # in the band: |short_g * i - long_g * (s - i)| < h  <=>  long_g*s - h < width*i < long_g*s + h
        lo = max((long_g * s - h) // width + 1, s - short_n, 0)
        hi = min(-(-(long_g * s + h) // width) - 1, long_n, s)
        if lo > hi:
            return 1.0
        size = hi - lo + 1
        a, b = left[:size], down[:size]
        np.multiply(cells[lo : hi + 1], index[lo + 1 : hi + 2], out=a)  # Q(i-1, j) * i
        j = countdown[lo - s + top : hi - s + top + 1]
        np.multiply(cells[lo + 1 : hi + 2], j, out=b)  # Q(i, j-1) * j
        np.add(a, b, out=a)
        if lo > prev_lo:
            cells[prev_lo + 1 : lo + 1] = 1.0  # cells that left the band below
        np.divide(a, s, out=cells[lo + 1 : hi + 2])
        prev_lo = lo
    return float(cells[long_n + 1])


# ---- Kolmogorov's limiting distribution, with Stephens' correction ---------------------------------

# Terms of the two series below; either converges to float precision in five terms on its own half.
_KOLMOGOROV_TERMS = 5
# Where the two series meet: the alternating series needs few terms above it, the theta series below.
_KOLMOGOROV_SWITCH = 1.18
# Below this lambda, 1 - Q is under 1e-50: Q is 1.0 in floating point (and 1 / lambda**2 may overflow).
_KOLMOGOROV_CERTAIN = 0.1


def ks_asymptotic_sf(d: float, n1: int, n2: int) -> float:
    """P(D >= d) for two samples of n1 and n2 values, from Kolmogorov's limiting distribution.

    The effective size is n = n1 n2 / (n1 + n2), and Stephens' (1970) correction
    lambda = (sqrt(n) + 0.12 + 0.11 / sqrt(n)) d makes the limit usable down to small n (Numerical
    Recipes' ``probks`` argument). Against scipy's exact and Smirnov p-values it is within 6 % (relative)
    wherever p >= 0.001 and n >= 20, and within 0.04 absolute everywhere: tests/test_stats.py holds it
    there, and docs/benchmarks.md has the measured figures.
    """
    if math.isnan(d):
        return math.nan
    effective = n1 * n2 / (n1 + n2)
    root = math.sqrt(effective)
    return kolmogorov_sf((root + 0.12 + 0.11 / root) * d)


def kolmogorov_sf(lam: float) -> float:
    """Q_KS(lambda) = 2 sum_k (-1)**(k-1) exp(-2 k**2 lambda**2), the limiting two-sided KS tail."""
    if lam < _KOLMOGOROV_CERTAIN:
        return 1.0
    if lam < _KOLMOGOROV_SWITCH:
        # The alternating series converges slowly here; Jacobi's theta form of 1 - Q converges fast.
        y = math.exp(-(math.pi**2) / (8.0 * lam * lam))
        cdf = (
            math.sqrt(2.0 * math.pi)
            / lam
            * sum(y ** ((2 * k - 1) ** 2) for k in range(1, _KOLMOGOROV_TERMS + 1))
        )
        return _clip(1.0 - cdf)
    x = math.exp(-2.0 * lam * lam)
    return _clip(2.0 * sum((-1) ** (k - 1) * x ** (k * k) for k in range(1, _KOLMOGOROV_TERMS + 1)))


# ---- chi-square ------------------------------------------------------------------------------------


def chi2_contingency(table: npt.ArrayLike) -> tuple[float, float, int]:
    """(statistic, p-value, dof) of Pearson's chi-square test of independence, no continuity
    correction: equal to ``scipy.stats.chi2_contingency(table, correction=False)[:3]``."""
    observed = np.asarray(table, dtype=np.float64)
    if np.any(observed < 0):
        raise ValueError("All values in `observed` must be nonnegative.")
    if observed.size == 0:
        raise ValueError("No data; `observed` has size 0.")
    margins = [
        observed.sum(axis=tuple(axis for axis in range(observed.ndim) if axis != keep), keepdims=True)
        for keep in range(observed.ndim)
    ]
    expected = margins[0]
    for margin in margins[1:]:
        expected = expected * margin
    expected = expected / observed.sum() ** (observed.ndim - 1)
    if np.any(expected == 0):
        raise ValueError("The table of expected frequencies has a zero element.")
    dof = int(expected.size - sum(expected.shape) + expected.ndim - 1)
    if dof == 0:
        return 0.0, 1.0, 0
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    return statistic, chi2_sf(statistic, dof), dof


def chi2_sf(x: float, dof: float) -> float:
    """``scipy.stats.chi2.sf(x, dof)`` (= ``scipy.special.chdtrc``): Q(dof / 2, x / 2)."""
    if math.isnan(x) or math.isnan(dof) or dof <= 0:
        return math.nan
    if x <= 0:
        return 1.0
    return gammaincc(dof / 2, x / 2)


_GAMMA_EPS = 2.0**-53
_GAMMA_TINY = 1e-300
_GAMMA_MAX_ITERATIONS = 10_000


def gammaincc(a: float, x: float) -> float:
    """The upper regularized incomplete gamma function Q(a, x) = Gamma(a, x) / Gamma(a), a > 0.

    As Numerical Recipes' ``gammq``: 1 - the series for P(a, x) when x < a + 1, else the continued
    fraction for Q(a, x) by the modified Lentz method; the prefactor x**a e**-x / Gamma(a) from
    ``math.lgamma``.
    """
    if math.isnan(a) or math.isnan(x) or a <= 0 or x < 0:
        return math.nan
    if x == 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    log_prefactor = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        return 1.0 - _gamma_series(a, x) * math.exp(log_prefactor)
    return _gamma_continued_fraction(a, x) * math.exp(log_prefactor)


def _gamma_series(a: float, x: float) -> float:
    """sum_k x**k / (a (a+1) ... (a+k)): P(a, x) = x**a e**-x / Gamma(a) * this."""
    term = total = 1.0 / a
    ap = a
    for _ in range(_GAMMA_MAX_ITERATIONS):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * _GAMMA_EPS:
            return total
    raise ArithmeticError(f"incomplete gamma series did not converge (a={a}, x={x})")


def _gamma_continued_fraction(a: float, x: float) -> float:
    """1/(x+1-a- 1(1-a)/(x+3-a- 2(2-a)/(x+5-a- ...))): Q(a, x) = x**a e**-x / Gamma(a) * this."""
    b = x + 1.0 - a
    c = 1.0 / _GAMMA_TINY
    d = 1.0 / b
    h = d
    for i in range(1, _GAMMA_MAX_ITERATIONS):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < _GAMMA_TINY:
            d = _GAMMA_TINY
        c = b + an / c
        if abs(c) < _GAMMA_TINY:
            c = _GAMMA_TINY
        d = 1.0 / d
        step = d * c
        h *= step
        if abs(step - 1.0) < _GAMMA_EPS:
            return h
    raise ArithmeticError(f"incomplete gamma continued fraction did not converge (a={a}, x={x})")


def _clip(p: Any) -> float:
    """``np.clip(p, 0, 1)`` as a float (NaN stays NaN)."""
    value = float(p)
    return value if math.isnan(value) else min(max(value, 0.0), 1.0)
