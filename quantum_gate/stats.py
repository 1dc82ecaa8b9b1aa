"""The pre-vs-post tests in numpy and ``math`` only: scipy's numbers without importing scipy.

``import scipy.stats`` costs every ``check`` about 0.8 s and 45 MB for three numbers that are reported,
never gated. This module computes them the way scipy 1.17 does:

* ``ks_2samp`` is ``scipy.stats.ks_2samp(a, b)`` (two-sided, method "auto"): the same D, the exact
  p-value when neither sample holds more than 10,000 values (scipy's ``_compute_prob_outside_square``
  for equal sizes, its ``_compute_outer_prob_inside_method`` lattice-path recursion otherwise, the
  same arithmetic cell for cell, so the same bits), else Smirnov's distribution
  ``kstwo.sf(D, round(n1 * n2 / (n1 + n2)))`` as scipy's ``_ksstats._kolmogn`` computes it (Simard and
  L'Ecuyer's choice between Ruben-Gambino, Durbin-Marsaglia-Tsang-Wang, Pomeranz, Pelz-Good and the
  one-sided Smirnov sum). The one piece that is not a transcription is the one-sided Smirnov sum,
  which scipy evaluates in double-double arithmetic in C: here every term is a binomial probability
  by Loader's saddle-point form, summed in float64 (relative error about 1e-13).
* ``chi2_contingency`` is ``scipy.stats.chi2_contingency(table, correction=False)``: the same
  expected table and statistic, and the p-value ``chi2.sf`` as the upper regularized incomplete gamma
  function (series or Lentz's continued fraction over ``math.lgamma``).

tests/test_stats.py holds both to scipy.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# scipy's ks_2samp(method="auto") computes the exact p-value up to this many samples per side and uses
# Smirnov's distribution (kstwo) above it.
KS_EXACT_MAX_N = 10_000


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
        prob = outside_square(n1, h) if n1 == n2 else outside_band(n1, n2, g, h)
        if 0.0 <= prob <= 1.0:
            return d, prob
        # scipy warns "Exact calculation unsuccessful" and falls through to the asymptotic form with
        # this rounded D; outside_square can round a certainty to a hair above 1.
    m, n = sorted((float(n1), float(n2)), reverse=True)
    return d, _clip(kstwo_sf(d, round(m * n / (m + n))))


def ks_statistic(ordered1: FloatArray, ordered2: FloatArray) -> float:
    """The two-sided KS statistic of two sorted samples, the same float as ``ks_2samp`` gives.

    scipy evaluates ``searchsorted(data, all, side="right") / n`` for both samples at every value of
    both; the difference only changes at the last copy of each distinct value (duplicates repeat the
    same difference), so evaluating there with the same integer counts and the same divisions finds the
    same extremes. Few distinct values (a collapsed model): one binary search per distinct value.
    Mostly distinct values: the counts come from one stable merge of the two sorted runs instead.
    """
    n1, n2 = ordered1.size, ordered2.size
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
    min_s = float(np.clip(-np.min(cddiffs), 0, 1))
    max_s = float(np.max(cddiffs))
    return min_s if min_s > max_s else max_s


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
    cells = (short_n + 1) * (2 * h / short_g + 1)
    scalar = _SCALAR_PER_CELL * cells + _SCALAR_PER_COLUMN * (short_n + 1)
    diagonal = _DIAGONAL_PER_STEP * (long_n + short_n) + _DIAGONAL_PER_CELL * cells
    if scalar <= diagonal:
        return _outside_band_scalar(long_n, short_n, long_g, short_g, h)
    return _outside_band_diagonal(long_n, short_n, long_g, short_g, h)


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


# ---- Kolmogorov-Smirnov distribution (scipy.stats.kstwo, scipy/stats/_ksstats.py) -------------------

_E128 = 128
_EP128 = np.ldexp(np.longdouble(1), _E128)
_EM128 = np.ldexp(np.longdouble(1), -_E128)
_SQRT2PI = np.sqrt(2 * np.pi)
_LOG_2PI = np.log(2 * np.pi)
_MIN_LOG = -708
_SQRT3 = np.sqrt(3)
_PI_SQUARED = np.pi**2
_PI_FOUR = np.pi**4
_PI_SIX = np.pi**6
# Stirling coefficients B_2j / (2j) / (2j - 1) for j = 8, ..., 1.
_STIRLING_COEFFS = (
    -2.955065359477124183e-2,
    6.4102564102564102564e-3,
    -1.9175269175269175269e-3,
    8.4175084175084175084e-4,
    -5.952380952380952381e-4,
    7.9365079365079365079e-4,
    -2.7777777777777777778e-3,
    8.3333333333333333333e-2,
)
# fdlibm's split of log(2): LN2_HI has its low bits zero, so k * LN2_HI is exact for |k| < 2**20.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10


def kstwo_sf(d: float, n: int) -> float:
    """``scipy.stats.kstwo.sf(d, n)``: P(D_n >= d) for the one-sample two-sided KS statistic."""
    if math.isnan(d) or n < 1:
        return math.nan
    if d <= 0.5 / n:
        return 1.0
    if d >= 1.0:
        return 0.0
    return _kolmogn_sf(n, d)


def _kolmogn_sf(n: int, x: float) -> float:  # noqa: PLR0911 - one return per method, in scipy's order
    """``_kolmogn(n, x, cdf=False)``: Simard and L'Ecuyer's choice of method, as scipy makes it."""
    t = n * x
    if t <= 1.0:  # Ruben-Gambino: 1/2n <= x <= 1/n
        if t <= 0.5:
            return 1.0
        if n <= 140:
            prob = np.prod(np.arange(1, n + 1) * (1.0 / n) * (2 * t - 1))
        else:
            prob = np.exp(_log_nfactorial_div_n_pow_n(n) + n * np.log(2 * t - 1))
        return _clip(1.0 - prob)
    if t >= n - 1:  # Ruben-Gambino
        return _clip(2 * (1.0 - x) ** n)
    if x >= 0.5:  # exact: 2 * smirnov
        return _clip(2 * smirnov_sf(n, x))
    nxsquared = t * x
    if n <= 140:
        if nxsquared <= 0.754693:
            return _clip(1.0 - _kolmogn_dmtw_cdf(n, x))
        if nxsquared <= 4:
            return _clip(1.0 - _kolmogn_pomeranz_cdf(n, x))
        return _clip(2 * smirnov_sf(n, x))  # Miller's approximation
    if nxsquared >= 370.0:
        return 0.0
    if nxsquared >= 2.2:
        return _clip(2 * smirnov_sf(n, x))
    if n <= 100000 and n * x**1.5 <= 1.4:
        return _clip(1.0 - _kolmogn_dmtw_cdf(n, x))
    return _clip(1.0 - _kolmogn_pelz_good_cdf(n, x))


def _log_nfactorial_div_n_pow_n(n: int) -> Any:
    """log(n! / n**n) by Stirling's series, with n * log(n) taken out up front."""
    rn = 1.0 / n
    return np.log(n) / 2 - n + _LOG_2PI / 2 + rn * np.polyval(_STIRLING_COEFFS, rn / n)


def _kolmogn_dmtw_cdf(n: int, d: float) -> Any:
    """P(D_n <= d) by Durbin's matrix algorithm as Marsaglia, Tsang and Wang compute it.

    scipy's ``_kolmogn_DMTW``. The final multiplication by n!/n**n is scipy's loop (in long double
    once rescaled, as there) for n <= 140; above, where the loop would run up to 100,000 times, it is
    one multiplication by exp(log(n!/n**n)) from Stirling's series, split so that nothing of size n
    is rounded (the two differ by about 1e-15 relative).
    """
    if d >= 1.0:
        return 1.0
    nd = n * d
    if nd <= 0.5:
        return 0.0
    k = math.ceil(nd)
    h = k - nd
    m = 2 * k - 1

    matrix = np.zeros([m, m])
    # first column (and reversed, the last row) and the Toeplitz part
    intm = np.arange(1, m + 1)
    v = 1.0 - h**intm
    w = np.empty(m)
    fac = 1.0
    for j in range(1, m + 1):
        w[j - 1] = fac
        fac /= j  # may underflow harmlessly
        v[j - 1] *= fac
    tt = max(2 * h - 1.0, 0) ** m - 2 * h**m
    v[-1] = (1.0 + tt) * fac
    for i in range(1, m):
        matrix[i - 1 :, i] = w[: m - i + 1]
    matrix[:, 0] = v
    matrix[-1, :] = np.flip(v, axis=0)

    power = np.eye(np.shape(matrix)[0])
    nn = n
    expnt = 0  # scaling of power
    matrix_expnt = 0  # scaling of matrix
    while nn > 0:
        if nn % 2:
            power = np.matmul(power, matrix)
            expnt += matrix_expnt
        matrix = np.matmul(matrix, matrix)
        matrix_expnt *= 2
        if np.abs(matrix[k - 1, k - 1]) > _EP128:
            matrix /= _EP128
            matrix_expnt += _E128
        nn = nn // 2

    p: Any = power[k - 1, k - 1]
    if n <= 140:
        for i in range(1, n + 1):
            p = i * p / n
            if np.abs(p) < _EM128:
                p *= _EP128
                expnt -= _E128
        if expnt != 0:
            p = np.ldexp(p, expnt)
        return np.clip(p, 0.0, 1.0)
    # n!/n**n = exp(-n) * exp(c), c = log(sqrt(2 pi n)) + Stirling's series; exp(-n) = 2**-q * exp(r)
    rn = 1.0 / n
    c = math.log(n) / 2 + float(_LOG_2PI) / 2 + rn * float(np.polyval(_STIRLING_COEFFS, rn / n))
    q = round(n / math.log(2))
    r = (q * _LN2_HI - n) + q * _LN2_LO
    mantissa, exponent = math.frexp(float(p))
    return min(max(math.ldexp(mantissa * math.exp(r + c), exponent + expnt - q), 0.0), 1.0)


def _pomeranz_compute_j1j2(i: int, n: int, ll: int, ceilf: int, roundf: int) -> tuple[int, int]:
    """The endpoints of the interval for row i (scipy's ``_pomeranz_compute_j1j2``)."""
    if i == 0:
        j1, j2 = -ll - ceilf - 1, ll + ceilf - 1
    else:
        ip1div2, ip1mod2 = divmod(i + 1, 2)
        if ip1mod2 == 0:  # i is odd
            if ip1div2 == n + 1:
                j1, j2 = n - ll - ceilf - 1, n + ll + ceilf - 1
            else:
                j1, j2 = ip1div2 - 1 - ll - roundf - 1, ip1div2 + ll - 1 + ceilf - 1
        else:
            j1, j2 = ip1div2 - 1 - ll - 1, ip1div2 + ll + roundf - 1
    return max(j1 + 2, 0), min(j2, n)


def _kolmogn_pomeranz_cdf(n: int, x: float) -> Any:
    """P(D_n <= x) by Pomeranz's recursion (scipy's ``_kolmogn_Pomeranz``; only called for n <= 140)."""
    t = n * x
    ll = math.floor(t)
    f = 1.0 * (t - ll)  # fractional part of t
    g = min(f, 1.0 - f)
    ceilf = 1 if f > 0 else 0
    roundf = 1 if f > 0.5 else 0
    npwrs = 2 * (ll + 1)  # the most powers the convolutions need
    gpower = np.empty(npwrs)  # (g/n)^m/m!
    twogpower = np.empty(npwrs)  # (2g/n)^m/m!
    onem2gpower = np.empty(npwrs)  # ((1-2g)/n)^m/m!
    gpower[0] = 1.0
    twogpower[0] = 1.0
    onem2gpower[0] = 1.0
    expnt = 0
    g_over_n, two_g_over_n, one_minus_two_g_over_n = g / n, 2 * g / n, (1 - 2 * g) / n
    for m in range(1, npwrs):
        gpower[m] = gpower[m - 1] * g_over_n / m
        twogpower[m] = twogpower[m - 1] * two_g_over_n / m
        onem2gpower[m] = onem2gpower[m - 1] * one_minus_two_g_over_n / m

    row0 = np.zeros([npwrs])
    row1 = np.zeros([npwrs])
    row1[0] = 1
    start0, start1 = 0, 0
    j1, j2 = _pomeranz_compute_j1j2(0, n, ll, ceilf, roundf)
    for i in range(1, 2 * n + 2):
        k1 = j1
        row0, row1 = row1, row0
        start0, start1 = start1, start0
        row1.fill(0.0)
        j1, j2 = _pomeranz_compute_j1j2(i, n, ll, ceilf, roundf)
        pwrs = gpower if i in (1, 2 * n + 1) else (twogpower if i % 2 else onem2gpower)
        ln2 = j2 - k1 + 1
        if ln2 > 0:
            conv = np.convolve(row0[k1 - start0 : k1 - start0 + ln2], pwrs[:ln2])
            conv_start = j1 - k1
            conv_len = j2 - j1 + 1
            row1[:conv_len] = conv[conv_start : conv_start + conv_len]
            if 0 < np.max(row1) < _EM128:  # scale to avoid underflow
                row1 *= _EP128
                expnt -= _E128
            start1 = start0 + j1 - k1

    ans: Any = row1[n - start1]
    for m in range(1, n + 1):  # multiply by n!
        if np.abs(ans) > _EP128:
            ans *= _EM128
            expnt += _E128
        ans *= m
    if expnt != 0:
        ans = np.ldexp(ans, expnt)
    return np.clip(ans, 0.0, 1.0)


def _kolmogn_pelz_good_cdf(n: int, x: float) -> Any:
    """Pelz and Good's approximation to P(D_n <= x) (scipy's ``_kolmogn_PelzGood``)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    z = np.sqrt(n) * x
    zsquared, zthree, zfour, zsix = z**2, z**3, z**4, z**6
    qlog = -_PI_SQUARED / 8 / zsquared
    if qlog < _MIN_LOG:  # z ~ 0.041743441416853426
        return 0.0
    q = np.exp(qlog)

    # coefficients of the terms of the sums for K1, K2 and K3
    k1a = -zsquared
    k1b = _PI_SQUARED / 4
    k2a = 6 * zsix + 2 * zfour
    k2b = (2 * zfour - 5 * zsquared) * _PI_SQUARED / 4
    k2c = _PI_FOUR * (1 - 2 * zsquared) / 16
    k3d = _PI_SIX * (5 - 30 * zsquared) / 64
    k3c = _PI_FOUR * (-60 * zsquared + 212 * zfour) / 16
    k3b = _PI_SQUARED * (135 * zfour - 96 * zsix) / 4
    k3a = -30 * zsix - 90 * z**8

    k0to3 = np.zeros(4)
    # Horner over sum c_i q^(i^2), a sum over the odd integers
    maxk = int(np.ceil(16 * z / np.pi))
    for k in range(maxk, 0, -1):
        m = 2 * k - 1
        msquared, mfour, msix = m**2, m**4, m**6
        qpower = np.power(q, 8 * k)
        coeffs = np.array(
            [
                1.0,
                k1a + k1b * msquared,
                k2a + k2b * msquared + k2c * mfour,
                k3a + k3b * msquared + k3c * mfour + k3d * msix,
            ]
        )
        k0to3 *= qpower
        k0to3 += coeffs
    k0to3 *= q
    k0to3 *= _SQRT2PI
    k0to3 /= np.array([z, 6 * zfour, 72 * z**7, 6480 * z**10])

    # the other sums, over all integers k
    q = np.exp(-_PI_SQUARED / 2 / zsquared)
    ks = np.arange(maxk, 0, -1)
    ksquared = ks**2
    sqrt3z = _SQRT3 * z
    kspi = np.pi * ks
    qpwers = q**ksquared
    k2extra = np.sum(ksquared * qpwers)
    k2extra *= _PI_SQUARED * _SQRT2PI / (-36 * zthree)
    k0to3[2] += k2extra
    k3extra = np.sum((sqrt3z + kspi) * (sqrt3z - kspi) * ksquared * qpwers)
    k3extra *= _PI_SQUARED * _SQRT2PI / (216 * zsix)
    k0to3[3] += k3extra
    powers_of_n = np.power(n * 1.0, np.arange(len(k0to3)) / 2.0)
    k0to3 /= powers_of_n
    return sum(k0to3)


# ---- the one-sided Smirnov distribution (scipy.special.smirnov) ------------------------------------

_MINLOG = -7.451332191019412076235e2  # cephes: log(2**-1075)
_SMIRNOV_MAX_COMPUTE_N = 1_000_000
_SMIRNOV_CHUNK = 8192
_DBL_EPSILON = 2.0**-52
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
# Loader's stirlerr(k) = log(k!) - log(sqrt(2 pi k) (k/e)**k) for k = 0..15 (k = 0 is unused).
_STIRLERR_SMALL = np.array(
    [0.0] + [math.lgamma(k + 1.0) - (k + 0.5) * math.log(k) + k - _LOG_SQRT_2PI for k in range(1, 16)]
)


def smirnov_sf(n: int, x: float) -> float:  # noqa: PLR0911 - scipy's special cases, in its order
    """``scipy.special.smirnov(n, x)``: P(D_n^+ >= x) for the one-sided one-sample KS statistic.

    Smirnov's (Birnbaum and Tingey's) sum over v = 0..floor(n(1 - x)) of
    ``x * C(n, v) (x + v/n)**(v-1) (1 - x - v/n)**(n-v)``, with scipy's special cases. All terms are
    positive; each is ``n*x / (v + n*x)`` times the binomial probability of v in n at p = x + v/n,
    computed by Loader's saddle-point form, so no term is formed from huge cancelling logarithms.
    """
    if math.isnan(x) or n <= 0 or not 0.0 <= x <= 1.0:
        return math.nan
    if n == 1:
        return 1.0 - x
    if x == 0.0:
        return 1.0
    if x == 1.0:
        return 0.0
    exact = Fraction(x) * n
    nxfl = math.floor(exact)
    alpha = float(exact - nxfl)
    nx = float(exact)
    if nxfl == 0 or (nxfl == 1 and alpha == 0):  # x <= 1/n: cdf = x (1 + x)**(n-1)
        return _clip(1.0 - x * math.exp((n - 1) * math.log1p(x)))
    if -2 * n * x * x < _MINLOG:
        return 0.0
    if nxfl >= n - 1:  # x >= 1 - 1/n; 1 - x is exact there
        return _clip((1.0 - x) ** n)
    if n > _SMIRNOV_MAX_COMPUTE_N:
        return _clip(math.exp(-((6 * n * x + 1.0) ** 2) / 18.0 / n))

    first = math.exp(n * math.log1p(-x))  # v = 0: (1 - x)**n
    stirlerr_n = float(_stirlerr(np.array([float(n)]))[0])
    last = n - nxfl - 1  # the largest v with 1 - x - v/n > 0
    total = 0.0
    for start in range(1, last + 1, _SMIRNOV_CHUNK):  # chunks small enough to stay in cache
        stop = min(start + _SMIRNOV_CHUNK, last + 1)
        v = np.arange(float(start), float(stop))
        rest = n - v
        mean_v = (v + nxfl) + alpha  # n * p
        mean_rest = (rest - nxfl) - alpha  # n * (1 - p)
        log_binom = stirlerr_n - _stirlerr(v)
        log_binom -= _stirlerr(rest)
        log_binom -= _bd0(v, mean_v, -nx)
        log_binom -= _bd0(rest, mean_rest, nx)
        # the binomial probability of v is exp(log_binom) / sqrt(2 pi v rest / n); a term is that / mean_v
        scale = v * rest
        scale *= 2 * np.pi / n
        np.sqrt(scale, out=scale)
        scale *= mean_v
        terms = np.exp(log_binom, out=log_binom)
        terms /= scale
        total += float(np.sum(terms))
        # scipy stops once 4 * (terms left) * (this term) < DBL_EPSILON * (the sum so far)
        if stop <= last and 4 * (last - stop + 1) * terms[-1] < _DBL_EPSILON * total:
            break
    return _clip(first + nx * total)


def _stirlerr(k: FloatArray) -> FloatArray:
    """Loader's stirlerr(k) = log(k!) - log(sqrt(2 pi k) (k/e)**k) for positive integers k."""
    s0, s1, s2, s3, s4 = 1 / 12, 1 / 360, 1 / 1260, 1 / 1680, 1 / 1188
    r = 1.0 / k
    r2 = r * r
    out = s4 * r2
    np.subtract(s3, out, out=out)
    out *= r2
    np.subtract(s2, out, out=out)
    out *= r2
    np.subtract(s1, out, out=out)
    out *= r2
    np.subtract(s0, out, out=out)
    out *= r  # the series, accurate for k > 15
    small = k <= 15
    if small.any():
        out[small] = _STIRLERR_SMALL[k[small].astype(np.intp)]
    return out


def _bd0(count: FloatArray, mean: FloatArray, difference: float) -> FloatArray:
    """Loader's bd0(count, mean) = count log(count / mean) + mean - count, given count - mean exactly.

    Where |count - mean| < 0.1 (count + mean), by the series in ((count - mean) / (count + mean))**2,
    else directly with log1p of the known difference.
    """
    total = count + mean
    near = abs(difference) < 0.1 * total
    out = np.empty_like(count)
    if near.any():
        ratio = difference / total[near]
        s = difference * ratio
        ej = 2 * count[near] * ratio
        ratio *= ratio
        worst = float(ratio.max())
        # terms shrink by ratio**2 <= 0.01 each: stop when the largest is below 2**-60 of the sum
        steps = 1 if worst == 0 else min(math.ceil(-60 * math.log(2) / math.log(worst)), 200)
        for j in range(1, steps + 1):
            ej *= ratio
            s += ej / (2 * j + 1)
        out[near] = s
    far = ~near
    if far.any():
        c = count[far]
        out[far] = c * np.log1p(difference / mean[far]) - difference
    return out


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
