"""How sure a check is: a 95 % interval around each check's value, its margin and whether it is borderline.

Pure, no I/O. A PASS at 200 events with HOLD at 84 % (limit 85 %) is a coin toss: the verdict stays what
the thresholds say (fail-closed semantics never change), but a check whose interval straddles its
threshold is *borderline*, and the document, ``/gate``, the reports, the page and the metrics say so.

* Shares (majority, HOLD, out-of-range, invalid votes): the Wilson score interval of count / n. Which
  check takes which interval is a column of ``checks.CHECK_SPECS``.
* Confidence std: the large-sample interval for the variance from the sample's own fourth moment,
  s**2 +- z sqrt((m4 - s**4) / n), square-rooted. It assumes no distribution (unlike the chi-square
  interval, which is only right for normal data and is far too narrow for the bimodal confidences these
  models emit).
* P10-P90: distribution-free order-statistic intervals for P10 and for P90, each at 97.5 % (Bonferroni,
  so the pair holds at >= 95 %), combined as [lower P90 - upper P10, upper P90 - lower P10].

Every interval costs O(1) on top of the statistics ``modelstats.model_stats`` already computes, plus one pass
over the (already sorted) confidences for the fourth moment: `make bench` (section ``intervals``) measured
+1.8 ms for a whole evaluation of 4 models at 2,000 + 2,000 events (docs/benchmarks.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from quantum_gate.formatting import tidy

CONFIDENCE = 0.95
_Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile
_Z975 = 2.241402727604947  # its 98.75 % quantile: each of the two quantile intervals at 97.5 %


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float

    def straddles(self, threshold: float) -> bool:
        """Plausible values lie on both sides of the threshold. Strict: a zero-tolerance check (limit 0)
        with no violation in the window has the interval [0, x] and is not borderline."""
        return self.low < threshold < self.high

    def to_json(self) -> list[float]:
        return [tidy(self.low), tidy(self.high)]


def wilson(count: int, n: int, z: float = _Z95) -> Interval | None:
    """The Wilson score interval for a share count / n (None when n == 0)."""
    if n <= 0:
        return None
    share = count / n
    z2 = z * z
    centre = (share + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(share * (1 - share) / n + z2 / (4 * n * n))
    # At 0 and n the bound is exact (the formula leaves float noise such as 8.7e-19 in the document).
    low = 0.0 if count <= 0 else max(0.0, centre - half)
    high = 1.0 if count >= n else min(1.0, centre + half)
    return Interval(low, high)


def std_interval(values: npt.NDArray[np.float64], z: float = _Z95) -> Interval | None:
    """An asymptotic interval for the population std of ``values`` from the variance's standard error
    sqrt((m4 - m2**2) / n), with m2, m4 the sample's central moments (no normality assumed)."""
    n = int(values.size)
    if n < 2 or not np.all(np.isfinite(values)):
        return None
    centred = values - values.mean()
    squared = centred * centred
    m2 = float(squared.mean())
    m4 = float((squared * squared).mean())
    half = z * math.sqrt(max(m4 - m2 * m2, 0.0) / n)
    return Interval(math.sqrt(max(m2 - half, 0.0)), math.sqrt(m2 + half))


def quantile_rank_bounds(n: int, q: float, z: float) -> tuple[int, int]:
    """0-based ranks (lo, hi) of the order statistics that bracket the q-quantile with confidence ~ the
    normal approximation to the binomial at z (clamped to the sample)."""
    centre = n * q
    spread = z * math.sqrt(n * q * (1 - q))
    low = math.floor(centre - spread) - 1
    high = math.ceil(centre + spread)
    return max(low, 0), min(high, n - 1)


def spread_interval(ordered: npt.NDArray[np.float64], z: float = _Z975) -> Interval | None:
    """A distribution-free interval for P90 - P10 from sorted values: each quantile's order-statistic
    interval at 97.5 %, combined conservatively."""
    n = int(ordered.size)
    if n < 2 or not np.isfinite(ordered[-1]) or not np.isfinite(ordered[0]):
        return None
    p10_low, p10_high = quantile_rank_bounds(n, 0.10, z)
    p90_low, p90_high = quantile_rank_bounds(n, 0.90, z)
    low = float(ordered[p90_low]) - float(ordered[p10_high])
    high = float(ordered[p90_high]) - float(ordered[p10_low])
    return Interval(max(low, 0.0), max(high, 0.0))


def margin(value: float | None, threshold: float, comparator: str) -> float | None:
    """How far the value clears its threshold: positive passes, negative fails (None without a value)."""
    if value is None or not math.isfinite(value):
        return None
    return tidy(value - threshold if comparator == ">=" else threshold - value)
