"""How sure a check is: the 95 % intervals against independent computations (statsmodels, scipy), their
coverage, and borderline verdicts as a person sees them in /gate, the report and the status page."""

from __future__ import annotations

import math

import numpy as np
import pytest
from eventkit import CUTOVER_MS, event, healthy_vote, run_gate
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats
from statsmodels.stats.proportion import proportion_confint

from quantum_gate import uncertainty
from quantum_gate.config import GateSettings
from quantum_gate.gate import GateResult
from quantum_gate.report import gate_document, render_markdown, render_table


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 5000), data=st.data())
def test_wilson_is_statsmodels_wilson(n: int, data: st.DataObject) -> None:
    count = data.draw(st.integers(0, n))
    interval = uncertainty.wilson(count, n)
    assert interval is not None
    low, high = proportion_confint(count, n, alpha=0.05, method="wilson")
    assert interval.low == pytest.approx(low, abs=1e-12)
    assert interval.high == pytest.approx(high, abs=1e-12)


def test_wilson_without_votes_has_no_interval() -> None:
    assert uncertainty.wilson(0, 0) is None


@pytest.mark.parametrize("n", [20, 200, 2000])
@pytest.mark.parametrize("q", [0.10, 0.90])
def test_quantile_ranks_bracket_scipys_exact_order_statistic_interval(n: int, q: float) -> None:
    """scipy's quantile_test inverts the exact binomial; the normal-approximation ranks used here must
    be at least as wide (never claim more certainty), and within two ranks of it."""
    values = np.arange(n, dtype=np.float64)  # value == rank, so scipy's bounds read as ranks
    exact = scipy_stats.quantile_test(values, q=float(np.quantile(values, q)), p=q).confidence_interval(0.975)
    low, high = uncertainty.quantile_rank_bounds(n, q, 2.241402727604947)
    exact_low = 0 if math.isnan(exact.low) or exact.low == -math.inf else int(exact.low)
    exact_high = n - 1 if math.isnan(exact.high) or exact.high == math.inf else int(exact.high)
    assert low <= exact_low and high >= exact_high, (low, high, exact_low, exact_high)
    assert exact_low - low <= 2 and high - exact_high <= 2


def coverage(statistic: str, sampler: str, n: int, trials: int = 400) -> float:
    """Share of seeded samples whose 95 % interval holds the population's true value."""
    rng = np.random.default_rng(20261204)
    population = (
        np.concatenate([rng.normal(0.35, 0.04, 500_000), rng.normal(0.8, 0.05, 500_000)])  # bimodal
        if sampler == "bimodal"
        else rng.beta(2, 5, 1_000_000)
    )
    truth = (
        float(np.std(population))
        if statistic == "std"
        else float(np.quantile(population, 0.9) - np.quantile(population, 0.1))
    )
    hits = 0
    for _ in range(trials):
        sample = np.sort(rng.choice(population, n))
        interval = (
            uncertainty.std_interval(sample) if statistic == "std" else uncertainty.spread_interval(sample)
        )
        assert interval is not None
        hits += interval.low <= truth <= interval.high
    return hits / trials


@pytest.mark.parametrize("sampler", ["bimodal", "skewed"])
@pytest.mark.parametrize("statistic", ["std", "p10_p90"])
def test_intervals_cover_the_truth_about_95_percent_of_the_time(statistic: str, sampler: str) -> None:
    """Distribution-free means it holds for the bimodal and skewed confidences models emit: at 200 events
    (the gate's minimum) the share of intervals holding the truth is near 95 % (P10-P90's Bonferroni pair
    is conservative, so higher)."""
    share = coverage(statistic, sampler, 200)
    assert share >= 0.91, share
    if statistic == "std":
        assert share <= 0.985, share


def test_std_interval_agrees_with_scipys_bootstrap() -> None:
    rng = np.random.default_rng(7)
    sample = np.clip(np.concatenate([rng.normal(0.4, 0.05, 700), rng.normal(0.75, 0.06, 1300)]), 0, 1)
    ours = uncertainty.std_interval(sample)
    assert ours is not None
    boot = scipy_stats.bootstrap(
        (sample,), np.std, confidence_level=0.95, n_resamples=2000, method="percentile", random_state=rng
    ).confidence_interval
    assert ours.low == pytest.approx(boot.low, rel=0.02) and ours.high == pytest.approx(boot.high, rel=0.02)


def test_degenerate_samples() -> None:
    constant = np.full(300, 0.75)
    std = uncertainty.std_interval(constant)
    spread = uncertainty.spread_interval(constant)
    assert std is not None and std.low == std.high == 0.0
    assert spread is not None and spread.low == spread.high == 0.0
    assert uncertainty.std_interval(np.array([0.5])) is None
    assert uncertainty.margin(None, 0.5, "<=") is None
    assert uncertainty.margin(0.84, 0.85, "<=") == 0.01 and uncertainty.margin(0.04, 0.05, ">=") == -0.01


# ---- borderline, as the operator sees it ----------------------------------------------------------------


def gate_with_hold_share(hold: int, count: int = 200) -> GateResult:
    """One model, ``hold`` HOLD votes of ``count`` and the rest BUY/SELL; confidences healthy."""
    events = []
    for index in range(count):
        action = "HOLD" if index < hold else ("BUY", "SELL")[index % 2]
        events.append(event(CUTOVER_MS + index, {"lgbm": (action, healthy_vote(index)[1])}))
    return run_gate(events, settings=GateSettings(majority_max=0.9))


def test_a_pass_one_point_under_its_limit_is_borderline_and_ten_points_under_is_not() -> None:
    close, clear = gate_with_hold_share(168), gate_with_hold_share(150)  # 84 % and 75 % (limit 85 %)
    assert close.verdict == clear.verdict == "PASS"  # fail-closed semantics unchanged
    assert [(model, check.name) for model, check in close.borderline()] == [("lgbm", "hold")]
    assert clear.borderline() == []

    document = gate_document(close, stream="s")
    hold = next(c for c in document["models"]["lgbm"]["checks"] if c["name"] == "hold")
    assert hold["borderline"] is True and hold["margin"] == 0.01
    assert hold["interval"][0] < 0.85 < hold["interval"][1]
    assert [item["name"] for item in document["borderline"]] == ["hold"]
    assert document["recommendation"].startswith("PASS, borderline on lgbm hold")
    assert "Wait for 400 events" in document["recommendation"]
    markdown = render_markdown(document)
    assert "## Deployment recommendation" in markdown
    assert markdown.index("## Deployment recommendation") < markdown.index("## Models")
    assert "| hold | 0.8400 |" in markdown and "| yes (borderline) |" in markdown
    table = render_table(document).splitlines()  # what `check` prints on a terminal
    assert any(line.startswith("borderline: lgbm hold 0.84, 95% interval ") for line in table)
    assert table[-1].startswith("recommendation: PASS, borderline on lgbm hold")

    solid = gate_document(clear, stream="s")
    assert solid["borderline"] == []
    assert solid["recommendation"].startswith("PASS, solid: every check clears its threshold")
    clear_hold = next(c for c in solid["models"]["lgbm"]["checks"] if c["name"] == "hold")
    assert clear_hold["borderline"] is False and clear_hold["margin"] == 0.1
    assert "(borderline)" not in render_markdown(solid)


def test_a_failing_value_near_its_limit_is_a_borderline_fail() -> None:
    result = gate_with_hold_share(172)  # 86 %: fails HOLD, but the interval reaches 85 %
    assert result.verdict == "FAIL"
    document = gate_document(result, stream="s")
    assert document["recommendation"].startswith("FAIL, borderline:")
    far = gate_document(gate_with_hold_share(200), stream="s")
    assert far["recommendation"].startswith("FAIL: lgbm: majority 1 (must be <= 0.9); lgbm: hold 1")


def test_the_verdict_is_borderline_only_when_more_events_could_flip_it() -> None:
    assert gate_with_hold_share(168).verdict_borderline()  # PASS, HOLD 84 % against 85 %
    assert not gate_with_hold_share(150).verdict_borderline()  # PASS, solid
    assert gate_with_hold_share(172).verdict_borderline()  # FAIL only on HOLD 86 %: could still pass
    assert not gate_with_hold_share(200).verdict_borderline()  # FAIL at HOLD 100 %: solid
    # a solid failure next to a borderline check: the FAIL cannot flip, so it is not borderline
    events = []
    for index in range(200):
        action = "HOLD" if index < 168 else ("BUY", "SELL")[index % 2]
        events.append(
            event(CUTOVER_MS + index, {"lgbm": (action, healthy_vote(index)[1]), "xgb": ("BUY", 0.9)})
        )
    mixed = run_gate(events, settings=GateSettings(majority_max=0.9))
    assert mixed.verdict == "FAIL" and [c.name for _, c in mixed.borderline()] == ["hold"]
    assert not mixed.verdict_borderline()
