"""The KS p-value above the exact path: Kolmogorov's limit in ``math`` (shipped) against scipy.special.

Measures what each costs a ``check`` process (import wall time and peak RSS, in a fresh interpreter),
what one ``ks_2samp`` costs at the window sizes the gate sees, and how far the shipped p-values are
from ``scipy.stats.ks_2samp`` over randomized comparisons. scipy is a dev dependency, so this section
needs the dev extra (``make bench`` has it).
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

ACCURACY_TRIALS = 3000
SIZES = ((2000, 2000), (2000, 1500), (2000, 200), (200, 2000), (10_000, 7_000), (100_000, 100_000))


def import_costs(run_process: Callable[[Sequence[str]], Any]) -> list[list[str]]:
    rows = []
    for label, statement in (
        ("nothing (the interpreter alone)", "pass"),
        ("`quantum_gate.stats` (shipped)", "import quantum_gate.stats"),
        ("`scipy.special` (for `kolmogorov`)", "import scipy.special"),
        ("`scipy.stats` (for `kstwo`, as scipy's ks_2samp)", "import scipy.stats"),
    ):
        runs = [run_process([sys.executable, "-c", statement]) for _ in range(5)]
        wall = statistics.median(run.seconds for run in runs) * 1000
        rss = max(run.peak_rss_mb for run in runs)
        rows.append([label, f"{wall:.0f}", f"{rss:.1f}"])
    return rows


def _samples(rng: np.random.Generator, n1: int, n2: int, kind: int, shift: float) -> tuple[Any, Any]:
    if kind == 0:
        return rng.normal(0, 1, n1), rng.normal(shift, 1, n2)
    if kind == 1:  # confidences on a 0.01 grid: ties across and within
        first = np.clip(rng.normal(0.6, 0.1, n1), 0, 1).round(2)
        return first, np.clip(rng.normal(0.6 + shift / 10, 0.1, n2), 0, 1).round(2)
    return rng.choice([0.5, 0.65, 0.75], n1), rng.choice([0.5, 0.65, 0.75 + shift / 100], n2)


def call_times(seed: int) -> list[list[str]]:
    from scipy import stats as scipy_stats

    from quantum_gate import stats

    rng = np.random.default_rng(seed)
    rows = []
    for n1, n2 in SIZES:
        first, second = _samples(rng, n1, n2, 1, 0.1)
        first, second = np.sort(first), np.sort(second)
        repeat = 5 if n1 >= 100_000 else 30
        ours = _median_ms(partial(stats.ks_2samp, first, second, presorted=True), repeat)
        theirs = _median_ms(partial(scipy_stats.ks_2samp, first, second), repeat)
        d, _ = stats.ks_2samp(first, second, presorted=True)
        lcm = n1 // np.gcd(n1, n2) * n2
        path = "exact" if stats.exact_p_value_applies(n1, n2, max(round(d * lcm), 1)) else "asymptotic"
        rows.append([f"{n1:,} vs {n2:,}", path, f"{ours:.2f}", f"{theirs:.2f}"])
    return rows


def _median_ms(call: Callable[[], object], repeat: int) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


def accuracy(seed: int) -> list[list[str]]:
    """Randomized comparisons with scipy: sizes 2..3,000 (two in three) or 2..40,000, three kinds of data."""
    from scipy import stats as scipy_stats

    from quantum_gate import stats

    rng = np.random.default_rng(seed)
    worst_abs = {"exact": 0.0, "asymptotic": 0.0}
    worst_rel = {"exact": 0.0, "asymptotic": 0.0}
    counts = {"exact": 0, "asymptotic": 0}
    for trial in range(ACCURACY_TRIALS):
        wide = trial % 3 == 0
        n1 = int(rng.integers(2, 40_000 if wide else 3000))
        n2 = int(rng.integers(2, 40_000 if trial % 4 == 0 else 3000))
        first, second = _samples(rng, n1, n2, trial % 3, (0.0, 0.005, 0.02, 0.05, 0.2, 1.0)[trial % 6])
        d, p = stats.ks_2samp(first, second)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = float(scipy_stats.ks_2samp(first, second).pvalue)
        lcm = n1 // np.gcd(n1, n2) * n2
        h = round(d * lcm)
        path = "exact" if h == 0 or stats.exact_p_value_applies(n1, n2, h) else "asymptotic"
        counts[path] += 1
        worst_abs[path] = max(worst_abs[path], abs(p - expected))
        if expected >= 1e-3 and n1 * n2 / (n1 + n2) >= 20:
            worst_rel[path] = max(worst_rel[path], abs(p - expected) / expected)
    return [[path, str(counts[path]), f"{worst_abs[path]:.2e}", f"{worst_rel[path]:.2e}"] for path in counts]
