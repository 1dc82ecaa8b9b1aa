"""quantum_gate.stats held to scipy: two-sample KS (exact and asymptotic), Kolmogorov's distribution,
chi-square.

The package computes the pre-vs-post comparison without scipy; scipy (a dev dependency) is the
reference here. D and the chi-square statistic must be the same floats. Where ``ks_2samp`` takes the
exact path, its p-value is the same arithmetic as scipy's and so the same bits (checked directly against
scipy's compiled recursion), compared within 1e-12 absolute and 1e-10 relative. Where it takes the
asymptotic path (Kolmogorov's limit with Stephens' correction), it is held to the accuracy
docs/benchmarks.md states: within 0.04 absolute, and within 6 % relative where scipy's p >= 0.001 and
the effective size n1 n2 / (n1 + n2) is at least 20.
"""

from __future__ import annotations

import ast
import importlib
import json
import math
import subprocess
import sys
import warnings
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
import redis
from conftest import REPO, RedisServer
from eventkit import CUTOVER_MS, collapsed_entries, healthy_entries, write_entries
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special
from scipy import stats as scipy_stats

from quantum_gate import stats

Floats = npt.NDArray[np.float64]
TINY = 1e-290  # below this scipy's own values are (near) subnormal: compared absolutely only


def assert_p_close(ours: float, theirs: float, rel: float = 1e-10, absolute: float = 1e-12) -> None:
    assert abs(ours - theirs) <= absolute, (ours, theirs)
    if theirs > TINY:
        assert abs(ours - theirs) <= rel * theirs, (ours, theirs, abs(ours - theirs) / theirs)


def scipy_ks(first: Floats, second: Floats) -> tuple[float, float]:
    d, p, _ = scipy_ks_exact_failed(first, second)
    return d, p


def scipy_ks_exact_failed(first: Floats, second: Floats) -> tuple[float, float, bool]:
    """scipy's (D, p) and whether its exact p-value rounded out of [0, 1] (it warns and approximates)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        result = scipy_stats.ks_2samp(first, second)
    failed = any("Exact calculation unsuccessful" in str(w.message) for w in caught)
    return float(result.statistic), float(result.pvalue), failed


ASYMPTOTIC_ABSOLUTE = 0.04  # measured worst 0.033 (effective size below 5); 0.022 from 20 up
ASYMPTOTIC_RELATIVE = 0.06  # where scipy's p >= ASYMPTOTIC_RELATIVE_FROM and n_eff >= ASYMPTOTIC_MIN_N
ASYMPTOTIC_RELATIVE_FROM = 1e-3
ASYMPTOTIC_MIN_N = 20


def took_exact_path(first: Floats, second: Floats, d: float) -> bool:
    n1, n2 = first.size, second.size
    lcm = n1 // math.gcd(n1, n2) * n2
    h = round(d * lcm)
    return h == 0 or stats.exact_p_value_applies(n1, n2, h)


def assert_ks_matches(first: Floats, second: Floats) -> None:
    d, p = stats.ks_2samp(first, second)
    expected_d, expected_p, scipy_exact_failed = scipy_ks_exact_failed(first, second)
    assert d == expected_d, (first.size, second.size, d, expected_d)
    if scipy_exact_failed:  # the exact sum rounded above 1: we say 1, scipy approximates near it
        assert p == 1.0 and expected_p >= 1.0 - ASYMPTOTIC_ABSOLUTE, (p, expected_p)
        return
    if math.isnan(d) or took_exact_path(first, second, d):
        assert_p_close(p, expected_p)
        return
    assert abs(p - expected_p) <= ASYMPTOTIC_ABSOLUTE, (first.size, second.size, p, expected_p)
    effective = first.size * second.size / (first.size + second.size)
    if expected_p >= ASYMPTOTIC_RELATIVE_FROM and effective >= ASYMPTOTIC_MIN_N:
        assert abs(p - expected_p) <= ASYMPTOTIC_RELATIVE * expected_p, (
            first.size,
            second.size,
            p,
            expected_p,
        )


def sample(seed: int, size: int, kind: str, shift: float) -> Floats:
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return rng.normal(shift, 1.0, size)
    if kind == "ties":  # confidences on a 0.01 grid: many equal values across and within the samples
        return np.clip(rng.normal(0.6 + shift / 10, 0.1, size), 0.0, 1.0).round(2)
    if kind == "constants":  # a collapsed model: a few rule constants
        return np.asarray(rng.choice(np.array([0.5, 0.65, 0.75 + shift / 100]), size), dtype=np.float64)
    raise AssertionError(kind)


# ---- two-sample KS against scipy.stats.ks_2samp ----------------------------------------------------

KS_CASES = [
    # exact, equal sizes (scipy's _compute_prob_outside_square)
    (2, 2, "normal", 0.0),
    (3, 3, "normal", 5.0),
    (7, 7, "ties", 0.5),
    (200, 200, "normal", 0.3),
    (2000, 2000, "constants", 1.0),
    # exact, unequal sizes (the lattice-path recursion)
    (2, 3, "normal", 0.0),
    (3, 2, "normal", 3.0),
    (13, 7, "ties", 1.0),
    (250, 120, "normal", 0.2),
    (2000, 1990, "normal", 0.0),
    (2000, 1990, "ties", 2.0),
    (1990, 2000, "constants", 0.0),
    (5000, 7, "normal", 0.5),
    (3, 9000, "ties", 0.0),
    # around scipy's exact/asymptotic switch at 10,000 per side
    (9999, 10000, "normal", 0.05),
    (10000, 10000, "ties", 0.2),
    (10000, 9999, "constants", 0.0),
    (10000, 10001, "normal", 0.02),
    (10001, 10001, "normal", 0.0),
    (10001, 2, "normal", 1.0),
    (2, 10001, "ties", 0.0),
    (10001, 37, "normal", 0.3),
    (140, 10001, "normal", 0.1),
    # large: Smirnov's distribution with n = round(n1 n2 / (n1 + n2)) in the thousands to 500,000
    (20_000, 19_000, "normal", 0.03),
    (100_000, 99_000, "normal", 0.01),
    (99_000, 100_000, "ties", 0.0),
    (100_000, 100_000, "constants", 0.0),
    (200_000, 150_000, "normal", 0.005),
    (1_000_000, 999_983, "normal", 0.004),
]


@pytest.mark.parametrize(("n1", "n2", "kind", "shift"), KS_CASES)
def test_ks_2samp_matches_scipy(n1: int, n2: int, kind: str, shift: float) -> None:
    assert_ks_matches(sample(n1 + 17 * n2, n1, kind, 0.0), sample(n2 + 31 * n1, n2, kind, shift))


@pytest.mark.parametrize("size", [2, 3, 100, 10_000, 10_001, 50_000])
def test_ks_2samp_identical_and_disjoint_samples(size: int) -> None:
    values = sample(size, size, "normal", 0.0)
    assert stats.ks_2samp(values, values.copy()) == (0.0, 1.0) == scipy_ks(values, values.copy())
    assert_ks_matches(values, values + 100.0)  # D = 1
    assert_ks_matches(np.full(size, 0.75), np.full(size + 1, 0.75))  # constant, equal: D = 0
    assert_ks_matches(np.full(size, 0.75), np.full(size + 1, 0.68))


def test_ks_2samp_nan_propagates_like_scipy() -> None:
    clean = np.array([0.1, 0.2, 0.3])
    dirty = np.array([0.1, math.nan, 0.3])
    for first, second in ((dirty, clean), (clean, dirty)):
        d, p = stats.ks_2samp(first, second)
        assert math.isnan(d) and math.isnan(p)
        assert all(math.isnan(value) for value in scipy_ks(first, second))


def test_ks_2samp_infinities() -> None:
    assert_ks_matches(np.array([0.1, math.inf, 0.3]), np.array([0.2, -math.inf]))


tie_values = st.sampled_from([0.0, 0.5, 0.65, 0.68, 0.72, 0.75, 1.0, 1.05])
confidence = st.floats(-0.5, 1.5, allow_nan=False, allow_infinity=False) | tie_values


@settings(max_examples=300, deadline=None)
@given(
    first=st.lists(confidence, min_size=2, max_size=60),
    second=st.lists(confidence, min_size=2, max_size=60),
)
def test_ks_2samp_small_samples_match_scipy(first: list[float], second: list[float]) -> None:
    assert_ks_matches(np.array(first), np.array(second))


@settings(max_examples=60, deadline=None)
@given(
    n1=st.integers(2, 3000),
    n2=st.integers(2, 3000),
    kind=st.sampled_from(["normal", "ties", "constants"]),
    shift=st.sampled_from([0.0, 0.01, 0.05, 0.2, 1.0, 10.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_ks_2samp_exact_sizes_match_scipy(n1: int, n2: int, kind: str, shift: float, seed: int) -> None:
    assert_ks_matches(sample(seed, n1, kind, 0.0), sample(seed + 1, n2, kind, shift))


@settings(max_examples=25, deadline=None)
@given(
    n1=st.integers(10_001, 40_000),
    n2=st.integers(2, 40_000),
    kind=st.sampled_from(["normal", "ties", "constants"]),
    shift=st.sampled_from([0.0, 0.005, 0.02, 0.1, 1.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_ks_2samp_asymptotic_sizes_match_scipy(n1: int, n2: int, kind: str, shift: float, seed: int) -> None:
    first, second = sample(seed, n1, kind, 0.0), sample(seed + 1, n2, kind, shift)
    if seed % 2:  # the larger sample second as often as first
        first, second = second, first
    assert_ks_matches(first, second)


@settings(max_examples=300, deadline=None)
@given(
    first=st.lists(confidence, min_size=1, max_size=80),
    second=st.lists(confidence, min_size=1, max_size=80),
    grid_points=st.integers(1, 12),
)
def test_the_pruned_search_finds_the_full_merges_extremes(
    first: list[float], second: list[float], grid_points: int
) -> None:
    """ks_statistic's pruned search (a coarse grid, then only the bins that can hold a larger
    difference) returns the very floats the full merge finds, whatever the ties and the grid."""
    ordered1, ordered2 = np.sort(np.array(first)), np.sort(np.array(second))
    full = stats._merged_cdf_differences(ordered1, ordered2)
    found = stats.pruned_cdf_extremes(ordered1, ordered2, grid_points=grid_points, max_share=1.0)
    assert found == (float(np.max(full)), float(-np.min(full)))


@pytest.mark.parametrize(("kind", "shift"), [("normal", 0.0), ("normal", 0.02), ("ties", 0.0), ("ties", 0.1)])
def test_large_windows_take_the_pruned_search_and_keep_scipys_statistic(kind: str, shift: float) -> None:
    first, second = sample(3, 100_000, kind, 0.0), sample(4, 90_000, kind, shift)
    ordered1, ordered2 = np.sort(first), np.sort(second)
    assert stats.pruned_cdf_extremes(ordered1, ordered2) is not None  # the pruned search answered
    assert_ks_matches(first, second)


# ---- the exact recursions, bit for bit against scipy's own ------------------------------------------


def scipy_private(module: str, name: str) -> Callable[..., float]:
    function = getattr(importlib.import_module(module), name, None)
    if function is None:
        pytest.skip(f"{module}.{name} is not in this scipy")
    return function  # type: ignore[no-any-return]


def test_outside_band_is_scipys_recursion_bit_for_bit() -> None:
    reference = scipy_private("scipy.stats._stats_pythran", "_compute_outer_prob_inside_method")
    rng = np.random.default_rng(2024)
    shapes = [(int(rng.integers(1, 80)), int(rng.integers(1, 80))) for _ in range(400)]
    shapes += [(700, 300), (300, 700), (1000, 999), (2000, 3), (5, 1500), (1200, 800)]
    for m, n in shapes:
        if m == n:
            continue
        g = math.gcd(m, n)
        lcm = m // g * n
        for h in {1, lcm, int(rng.integers(1, lcm + 1)), max(1, lcm // 10), max(1, lcm // 50)}:
            expected = reference(m, n, g, h)
            long_n, short_n = max(m, n), min(m, n)
            args = (long_n, short_n, long_n // g, short_n // g, h)
            assert stats._outside_band_scalar(*args) == expected, (m, n, h)
            assert stats._outside_band_diagonal(*args) == expected, (m, n, h)
            assert stats.outside_band(m, n, g, h) == expected


def test_outside_square_is_scipys_bit_for_bit() -> None:
    reference = scipy_private("scipy.stats._stats_py", "_compute_prob_outside_square")
    for n in (1, 2, 3, 10, 57, 400, 10_000):
        for h in sorted({1, 2, n // 3 or 1, n // 2 or 1, n - 1 or 1, n}):
            assert stats.outside_square(n, h) == reference(n, h), (n, h)


# ---- the path ks_2samp takes, and Kolmogorov's distribution -------------------------------------------


def test_equal_sizes_are_always_exact_and_unequal_sizes_by_cost() -> None:
    assert stats.exact_p_value_applies(2000, 2000, 1)
    assert stats.exact_p_value_applies(10_000, 10_000, 3000)
    assert not stats.exact_p_value_applies(10_001, 10_001, 1)
    assert stats.exact_p_value_applies(250, 120, 100)  # a small lattice: cheap
    # the case the Python loop was slow on (12 ms): 2,000 post vs 1,500 pre votes, D = 0.06
    assert not stats.exact_p_value_applies(2000, 1500, round(0.06 * 6000))


def test_unequal_large_windows_use_the_asymptotic_value_near_scipy() -> None:
    first, second = sample(1, 2000, "ties", 0.0), sample(2, 1500, "ties", 0.5)
    d, p = stats.ks_2samp(first, second)
    assert not took_exact_path(first, second, d)
    assert p == stats.ks_asymptotic_sf(d, 2000, 1500)
    assert_ks_matches(first, second)


@settings(max_examples=200, deadline=None)
@given(lam=st.floats(0.0, 40.0))
def test_kolmogorov_sf_is_scipys_kolmogorov(lam: float) -> None:
    assert_p_close(stats.kolmogorov_sf(lam), float(special.kolmogorov(lam)), rel=1e-12)


def test_kolmogorov_sf_edges() -> None:
    assert stats.kolmogorov_sf(0.0) == 1.0
    assert stats.kolmogorov_sf(-1.0) == 1.0
    assert stats.kolmogorov_sf(1e-3) == 1.0
    assert stats.kolmogorov_sf(50.0) == 0.0
    assert math.isnan(stats.ks_asymptotic_sf(math.nan, 10, 20))


# ---- chi-square ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dof", [1, 2, 3, 4, 5, 7, 10, 31, 100])
def test_chi2_sf_matches_scipy(dof: int) -> None:
    points = [0.0, 1e-300, 1e-12, 1e-3, 0.5, dof / 2, dof - 1.0, float(dof), dof + 1.0, dof + 2.0, 3.0 * dof]
    points += [10.0, 50.0, 100.0, 500.0, 1000.0, 1400.0, 1500.0, 1e6, math.inf]
    for x in points:
        assert_p_close(stats.chi2_sf(x, dof), float(scipy_stats.chi2.sf(x, dof)), rel=1e-12)


@settings(max_examples=300, deadline=None)
@given(dof=st.integers(1, 60), x=st.floats(0.0, 2000.0))
def test_chi2_sf_matches_scipy_anywhere(dof: int, x: float) -> None:
    assert_p_close(stats.chi2_sf(x, dof), float(scipy_stats.chi2.sf(x, dof)), rel=1e-12)


@settings(max_examples=300, deadline=None)
@given(a=st.floats(0.05, 200.0), x=st.floats(0.0, 1000.0))
def test_gammaincc_matches_scipy(a: float, x: float) -> None:
    assert_p_close(stats.gammaincc(a, x), float(special.gammaincc(a, x)), rel=1e-11)


@st.composite
def tables(draw: st.DrawFn) -> npt.NDArray[np.int64]:
    """2 x k action-mix tables as compare() builds them: every column and row total positive."""
    columns = draw(st.integers(2, 6))
    scale = draw(st.sampled_from([3, 30, 3000, 1_000_000]))
    counts = draw(st.lists(st.integers(0, scale), min_size=2 * columns, max_size=2 * columns))
    table = np.array(counts, dtype=np.int64).reshape(2, columns)
    table[:, table.sum(axis=0) == 0] = 1
    table[table.sum(axis=1) == 0, 0] = 1
    return table


@settings(max_examples=300, deadline=None)
@given(table=tables())
def test_chi2_contingency_matches_scipy(table: npt.NDArray[np.int64]) -> None:
    statistic, pvalue, dof = stats.chi2_contingency(table)
    expected = scipy_stats.chi2_contingency(table, correction=False)
    assert statistic == float(expected.statistic)
    assert dof == int(expected.dof)
    assert_p_close(pvalue, float(expected.pvalue), rel=1e-12)


@pytest.mark.parametrize(
    "table",
    [
        [[0, 0, 300], [84, 83, 83]],
        [[120, 0, 1], [0, 3, 250]],
        [[5, 5], [5, 5]],
        [[1, 2], [3, 4]],
        [[1_000_000, 1], [1, 1_000_000]],
        [[10], [20]],  # one action: no degrees of freedom
    ],
)
def test_chi2_contingency_fixed_tables(table: list[list[int]]) -> None:
    statistic, pvalue, dof = stats.chi2_contingency(table)
    expected = scipy_stats.chi2_contingency(table, correction=False)
    assert (statistic, dof) == (float(expected.statistic), int(expected.dof))
    assert_p_close(pvalue, float(expected.pvalue), rel=1e-12)


def test_chi2_contingency_refuses_what_scipy_refuses() -> None:
    for table in ([[0, 1], [0, 2]], [[-1, 2], [3, 4]]):
        with pytest.raises(ValueError):
            scipy_stats.chi2_contingency(table, correction=False)
        with pytest.raises(ValueError):
            stats.chi2_contingency(table)


# ---- scipy stays off the runtime path --------------------------------------------------------------


def test_package_source_never_imports_scipy() -> None:
    for path in sorted((REPO / "quantum_gate").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(name.split(".")[0] == "scipy" for name in names), (path.name, names)


NO_SCIPY_CHECK = """
import json, sys
import quantum_gate.cli, quantum_gate.daemon
code = quantum_gate.cli.main(sys.argv[1:])
sys.stdout.flush()
loaded = sorted(name for name in sys.modules if name == "scipy" or name.startswith("scipy."))
print(json.dumps(loaded), file=sys.stderr)
sys.exit(code)
"""


def test_check_over_data_never_imports_scipy(redis_server: RedisServer, stream_key: str) -> None:
    """``import quantum_gate.cli, quantum_gate.daemon`` and a full ``check --json`` (with the KS and
    chi-square comparison of every model) leave no scipy module in ``sys.modules``."""
    client: redis.Redis = redis_server.admin()
    write_entries(client, stream_key, collapsed_entries(120, CUTOVER_MS - 200_000, 1000))
    write_entries(client, stream_key, healthy_entries(250, CUTOVER_MS, 1000, fallback_every=4))
    argv = ["check", "--redis-url", redis_server.url, "--stream", stream_key]
    argv += ["--after", "2026-01-10T05:43:15Z", "--json"]
    result = subprocess.run(
        [sys.executable, "-c", NO_SCIPY_CHECK, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stderr.strip().splitlines()[-1]) == []  # the scipy modules loaded
    comparison = json.loads(result.stdout)["comparison"]["xgb"]
    assert comparison["ks"]["statistic"] > 0.5 and 0 <= comparison["ks"]["pvalue"] < 1e-6
    assert comparison["chi2"]["dof"] == 2 and comparison["chi2"]["pvalue"] < 1e-6
