"""The gate engine: statistics against numpy, each check at its threshold, the verdict rules, pre vs post."""

from __future__ import annotations

import dataclasses
import math
from decimal import Decimal, localcontext
from typing import Any

import numpy as np
import pytest
from eventkit import (
    CUTOVER,
    CUTOVER_MS,
    collapsed_vote,
    event,
    fill,
    healthy_events,
    healthy_vote,
    run_gate,
    windows_of,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from quantum_gate.checks import CHECKS, holds, model_checks, model_verdict, plain_number, readable
from quantum_gate.compare import compare
from quantum_gate.config import GateSettings
from quantum_gate.contract import Event, Vote
from quantum_gate.gate import event_rate_per_minute, progress
from quantum_gate.modelstats import ModelStats, ensemble_stats, model_stats, percentile_of_sorted
from quantum_gate.verdicts import Verdict
from quantum_gate.vocabulary import Vocabulary
from quantum_gate.windows import Window

SUSPECTS = (0.5, 0.65, 0.68, 0.72, 0.75)
POST_MS = CUTOVER_MS + 1000
PRE_MS = CUTOVER_MS - 10_000_000


def single_model_window(votes: list[tuple[str, float]], extra_events: int = 0) -> Window:
    window = Window("post", max(len(votes) + extra_events, 1), Vocabulary.bounded())
    for index, (action, confidence) in enumerate(votes):
        window.add(event(POST_MS + index, {"m": (action, confidence)}))
    for index in range(extra_events):
        window.add(event(POST_MS + len(votes) + index, {"other": ("BUY", 0.5)}))
    return window


# ---- statistics equal numpy's ----------------------------------------------------------------------

confidences = st.floats(-0.5, 1.5, allow_nan=False, allow_infinity=False) | st.sampled_from(
    [0.0, 0.5, 0.65, 0.68, 0.72, 0.75, 1.0, 1.05]
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["BUY", "SELL", "HOLD", "LONG"]), confidences), min_size=1, max_size=80
    ),
    st.integers(0, 5),
)
def test_statistics_equal_numpy(votes: list[tuple[str, float]], extra_events: int) -> None:
    window = single_model_window(votes, extra_events)
    stats = model_stats(window, "m", SUSPECTS)
    values = np.array([confidence for _, confidence in votes], dtype=np.float64)
    actions = [action for action, _ in votes]
    n = len(votes)

    assert stats.samples == n
    assert stats.presence == n / (n + extra_events)
    assert stats.mean == float(np.mean(values))
    assert stats.std == float(np.std(values))  # population std (ddof=0)
    p10, p90 = np.percentile(values, [10, 90], method="linear")
    assert stats.p10 == float(p10)
    assert stats.p90 == float(p90)
    assert stats.p10_p90 == float(p90) - float(p10)
    assert stats.min == float(values.min()) and stats.max == float(values.max())
    uniques, counts = np.unique(values, return_counts=True)
    assert stats.unique_values == uniques.size
    assert stats.top_value_share == counts.max() / n
    assert stats.top_value in uniques[counts == counts.max()].tolist()
    counted = {label: actions.count(label) for label in set(actions)}
    assert stats.action_counts == counted
    assert stats.action_shares == pytest.approx({label: count / n for label, count in counted.items()})
    assert stats.hold_share == counted.get("HOLD", 0) / n
    assert stats.majority_share == max(counted.values()) / n
    assert stats.majority_action is not None and counted[stats.majority_action] == max(counted.values())
    outside = int(np.count_nonzero((values < 0) | (values > 1)))
    assert stats.out_of_range == outside
    assert stats.out_of_range_share == outside / n
    for constant in SUSPECTS:
        assert stats.suspect_shares[f"{constant:g}"] == float(np.count_nonzero(values == constant)) / n
    assert stats.suspect_share == pytest.approx(sum(stats.suspect_shares.values()))
    assert stats.invalid_votes == 0 and stats.invalid_share == 0.0


def test_statistics_on_a_known_sample() -> None:
    votes = [("BUY", 0.75)] * 6 + [("HOLD", 0.5)] * 3 + [("SELL", 1.05)]
    stats = model_stats(single_model_window(votes), "m", SUSPECTS)
    assert stats.samples == 10
    assert stats.top_value == 0.75 and stats.top_value_share == 0.6
    assert stats.majority_action == "BUY" and stats.majority_share == 0.6
    assert stats.hold_share == pytest.approx(0.3)
    assert stats.unique_values == 3
    assert stats.suspect_shares == {"0.5": 0.3, "0.65": 0.0, "0.68": 0.0, "0.72": 0.0, "0.75": 0.6}
    assert stats.suspect_share == pytest.approx(0.9)
    assert stats.out_of_range == 1 and stats.out_of_range_share == 0.1
    assert stats.max == 1.05  # kept raw in every statistic
    assert stats.mean == pytest.approx((0.75 * 6 + 0.5 * 3 + 1.05) / 10)


def test_variants_shadow_inactive_and_invalid_votes_counted() -> None:
    window = Window("post", 10, Vocabulary.bounded())
    window.add(event(1, {"p": Vote("p", "BUY", 0.6, "patchtst_shadow", True, False)}))
    window.add(event(2, {"p": Vote("p", "SELL", 0.4, "patchtst_shadow", True, True)}))
    window.add(event(3, {"p": Vote("p", "HOLD", 0.5, "vv5", False, False)}))
    window.add(event(4, {"x": ("BUY", 0.5)}, invalid=("p",)))
    stats = model_stats(window, "p", SUSPECTS)
    assert stats.samples == 3
    assert stats.variants == {"patchtst_shadow": 2, "vv5": 1}
    assert (stats.shadow, stats.inactive) == (2, 1)
    assert stats.invalid_votes == 1
    assert stats.invalid_share == 0.25
    assert stats.presence == 0.75


def test_model_with_only_invalid_votes() -> None:
    window = Window("post", 10, Vocabulary.bounded())
    window.add(event(1, {"x": ("BUY", 0.5)}, invalid=("p",)))
    stats = model_stats(window, "p", SUSPECTS)
    assert (stats.samples, stats.presence, stats.invalid_votes, stats.invalid_share) == (0, 0.0, 1, 1.0)
    assert stats.std is None and stats.majority_share is None
    assert model_stats(window, "absent", SUSPECTS).samples == 0


def test_ensemble_statistics() -> None:
    events = [
        event(1, {"a": ("BUY", 0.6), "b": ("BUY", 0.6), "c": ("SELL", 0.6)}, side="BUY", fallback=True),
        event(2, {"a": ("HOLD", 0.6), "b": ("HOLD", 0.6)}, side="SELL"),
        event(
            3, {"a": ("BUY", 0.6), "b": ("SELL", 0.6), "c": ("HOLD", 0.6), "d": ("HOLD", 0.6)}, side="SELL"
        ),
        event(4, {"a": ("SELL", 0.6)}, side="SELL", fallback=True),
    ]
    window = fill(Window("post", 10, Vocabulary.bounded()), events)
    stats = ensemble_stats(window)
    assert stats.events == 4
    assert stats.side_shares == {"BUY": 0.25, "SELL": 0.75}
    assert stats.fallback_share == 0.5
    assert stats.agreement == pytest.approx((2 / 3 + 1 + 2 / 4 + 1) / 4)
    assert stats.hard_disagree_share == 0.5  # events 1 and 3 hold both a BUY and a SELL vote
    assert stats.votes_per_event == pytest.approx(10 / 4)
    empty = ensemble_stats(Window("post", 3, Vocabulary.bounded()))
    assert (empty.events, empty.fallback_share, empty.agreement) == (0, None, None)


# ---- each check at and around its threshold --------------------------------------------------------


def base_stats() -> ModelStats:
    window = single_model_window([healthy_vote(i) for i in range(300)])
    return model_stats(window, "m", SUSPECTS)


def check(stats: ModelStats, name: str, gate: GateSettings | None = None) -> bool:
    found = {item.name: item for item in model_checks(stats, gate or GateSettings())}
    assert tuple(found) == CHECKS
    return found[name].passed


def test_healthy_base_passes_every_check() -> None:
    stats = base_stats()
    assert all(item.passed for item in model_checks(stats, GateSettings()))
    assert stats.majority_share is not None and stats.majority_share <= 0.34


@pytest.mark.parametrize(
    ("field", "value", "check_name", "passed"),
    [
        ("samples", 200, "min_samples", True),
        ("samples", 199, "min_samples", False),
        ("majority_share", 0.70, "majority", True),
        ("majority_share", math.nextafter(0.70, 1), "majority", False),
        ("majority_share", 0.71, "majority", False),
        ("hold_share", 0.85, "hold", True),
        ("hold_share", math.nextafter(0.85, 1), "hold", False),
        ("hold_share", 1.0, "hold", False),
        ("std", 0.05, "std", True),
        ("std", math.nextafter(0.05, 0), "std", False),
        ("std", 0.0, "std", False),
        ("p10_p90", 0.12, "p10_p90", True),
        ("p10_p90", math.nextafter(0.12, 0), "p10_p90", False),
        ("std", 0.01, "constant", True),
        ("std", math.nextafter(0.01, 0), "constant", False),
        ("p10_p90", 0.001, "constant", True),
        ("p10_p90", math.nextafter(0.001, 0), "constant", False),
        ("out_of_range_share", 0.0, "out_of_range", True),
        ("out_of_range_share", 1 / 2000, "out_of_range", False),
        ("invalid_share", 0.0, "invalid_votes", True),
        ("invalid_share", 1 / 2000, "invalid_votes", False),
    ],
)
def test_check_at_threshold(field: str, value: float, check_name: str, passed: bool) -> None:
    changes: dict[str, Any] = {field: value}
    stats = dataclasses.replace(base_stats(), **changes)
    assert check(stats, check_name) is passed


def test_counted_majority_and_hold_thresholds() -> None:
    at_majority = [("BUY", 0.3 + i / 500) for i in range(140)] + [("SELL", 0.3 + i / 200) for i in range(60)]
    assert check(model_stats(single_model_window(at_majority), "m", SUSPECTS), "majority")
    over = [("BUY", 0.3 + i / 500) for i in range(141)] + [("SELL", 0.3 + i / 200) for i in range(59)]
    assert not check(model_stats(single_model_window(over), "m", SUSPECTS), "majority")
    at_hold = [("HOLD", 0.3 + i / 500) for i in range(170)] + [("SELL", 0.4)] * 30
    at_hold_stats = model_stats(single_model_window(at_hold), "m", SUSPECTS)
    assert at_hold_stats.hold_share == 0.85
    assert check(at_hold_stats, "hold")
    over_hold = [("HOLD", 0.3 + i / 500) for i in range(171)] + [("SELL", 0.4)] * 29
    assert not check(model_stats(single_model_window(over_hold), "m", SUSPECTS), "hold")


def test_thresholds_come_from_settings() -> None:
    stats = dataclasses.replace(base_stats(), majority_share=0.8, samples=50)
    loose = GateSettings(majority_max=0.9, min_samples=50, min_events=50)
    assert check(stats, "majority", loose) and check(stats, "min_samples", loose)
    assert not check(stats, "majority") and not check(stats, "min_samples")


def test_checks_report_value_threshold_and_comparator() -> None:
    stats = dataclasses.replace(base_stats(), hold_share=0.9)
    found = {item.name: item for item in model_checks(stats, GateSettings())}
    assert found["hold"].to_json() == {
        "name": "hold",
        "value": 0.9,
        "threshold": 0.85,
        "comparator": "<=",
        "passed": False,
        "interval": None,  # model_checks alone has no sample to take an interval from (with_intervals)
        "margin": -0.05,
        "borderline": False,
    }
    assert found["std"].comparator == ">=" and found["std"].threshold == 0.05
    assert found["constant"].detail == {"p10_p90": stats.p10_p90, "p10_p90_threshold": 0.001}


def test_model_verdict_needs_samples_first() -> None:
    collapsed = dataclasses.replace(base_stats(), hold_share=1.0, samples=10)
    assert model_verdict(model_checks(collapsed, GateSettings())) == Verdict.INSUFFICIENT_DATA
    assert (
        model_verdict(model_checks(dataclasses.replace(collapsed, samples=200), GateSettings()))
        == Verdict.FAIL
    )
    assert model_verdict(model_checks(base_stats(), GateSettings())) == Verdict.PASS


# ---- verdict rules ---------------------------------------------------------------------------------


def test_healthy_post_window_passes() -> None:
    result = run_gate(healthy_events(250, POST_MS))
    assert result.verdict == Verdict.PASS
    assert result.reasons == ()
    assert sorted(result.models) == ["lgbm", "xgb"]
    assert all(report.verdict == Verdict.PASS and report.gated for report in result.models.values())
    assert result.collapsed_models() == []


def test_no_data_is_never_pass() -> None:
    result = run_gate([])
    assert result.verdict == Verdict.INSUFFICIENT_DATA
    assert "post window holds 0 of 200 events" in result.reasons
    assert "no gated model in the post window" in result.reasons


def test_no_cutover_is_never_pass() -> None:
    result = run_gate(healthy_events(250, POST_MS), cutover=None)
    assert result.verdict == Verdict.INSUFFICIENT_DATA
    assert result.reasons == ("cutover unknown",)


def test_too_few_events_is_insufficient_even_when_healthy() -> None:
    result = run_gate(healthy_events(199, POST_MS))
    assert result.verdict == Verdict.INSUFFICIENT_DATA
    assert "post window holds 199 of 200 events" in result.reasons


def test_gated_model_below_min_samples_blocks_pass() -> None:
    events = healthy_events(250, POST_MS)
    # tft votes in only 150 of the 250 events: everything else is healthy
    events = [
        item._replace(votes=(*item.votes, Vote("tft", *healthy_vote(index, 2), None, False, False)))
        if index < 150
        else item
        for index, item in enumerate(events)
    ]
    result = run_gate(events)
    assert result.verdict == Verdict.INSUFFICIENT_DATA
    assert result.reasons == ("tft: 150 of 200 samples",)
    assert result.models["tft"].verdict == Verdict.INSUFFICIENT_DATA
    assert result.models["xgb"].verdict == Verdict.PASS


def test_fail_beats_insufficient_and_lists_every_failure() -> None:
    events = [
        event(
            POST_MS + index,
            {"xgb": healthy_vote(index), "lgbm": collapsed_vote(index), "nhits": ("BUY", 0.75)}
            | ({"tft": healthy_vote(index, 1)} if index < 20 else {}),
        )
        for index in range(210)
    ]
    result = run_gate(events, cutover=None)  # no cutover and a model short of samples: FAIL still wins
    assert result.verdict == Verdict.FAIL
    assert result.models["xgb"].verdict == Verdict.PASS
    assert result.models["lgbm"].verdict == Verdict.FAIL
    assert result.models["nhits"].verdict == Verdict.FAIL
    assert result.models["tft"].verdict == Verdict.INSUFFICIENT_DATA
    failed = {(reason.split(":")[0], reason.split(":")[1].split()[0]) for reason in result.reasons}
    assert failed == {
        ("lgbm", "majority"),
        ("lgbm", "hold"),
        ("lgbm", "std"),
        ("lgbm", "p10_p90"),
        ("lgbm", "constant"),
        ("nhits", "majority"),
        ("nhits", "std"),
        ("nhits", "p10_p90"),
        ("nhits", "constant"),
    }
    assert "lgbm: hold 1 (must be <= 0.85)" in result.reasons
    assert sorted(result.collapsed_models()) == ["lgbm", "nhits"]


def test_collapse_below_min_samples_is_insufficient_not_fail() -> None:
    events = [event(POST_MS + index, {"lgbm": collapsed_vote(index)}) for index in range(50)]
    result = run_gate(events)
    assert result.verdict == Verdict.INSUFFICIENT_DATA
    assert result.models["lgbm"].verdict == Verdict.INSUFFICIENT_DATA


def test_out_of_range_and_invalid_votes_fail_the_gate() -> None:
    events = healthy_events(250, POST_MS)
    events[7] = events[7]._replace(votes=(Vote("xgb", "SELL", 1.05, "lgbm_fallback_rules", False, False),))
    events[9] = events[9]._replace(invalid_models=("lgbm",))
    result = run_gate(events)
    assert result.verdict == Verdict.FAIL
    assert {reason.split(" (")[0] for reason in result.reasons} == {
        f"xgb: out_of_range {1 / 250:.4g}",
        f"lgbm: invalid_votes {1 / 250:.4g}",
    }


def test_exclude_models() -> None:
    events = [
        event(POST_MS + index, {"xgb": healthy_vote(index), "lgbm": collapsed_vote(index)})
        for index in range(250)
    ]
    assert run_gate(events).verdict == Verdict.FAIL
    excluded = run_gate(events, settings=GateSettings(exclude_models=("lgbm",)))
    assert excluded.verdict == Verdict.PASS
    assert excluded.models["lgbm"].gated is False
    assert excluded.models["lgbm"].verdict == Verdict.FAIL  # still evaluated and reported
    assert excluded.collapsed_models() == []


def test_include_models() -> None:
    events = [
        event(POST_MS + index, {"xgb": healthy_vote(index), "lgbm": collapsed_vote(index)})
        for index in range(250)
    ]
    only_xgb = run_gate(events, settings=GateSettings(include_models=("xgb",)))
    assert only_xgb.verdict == Verdict.PASS
    assert [report.name for report in only_xgb.gated()] == ["xgb"]
    only_lgbm = run_gate(events, settings=GateSettings(include_models=("lgbm",)))
    assert only_lgbm.verdict == Verdict.FAIL
    both = run_gate(events, settings=GateSettings(include_models=("xgb", "lgbm"), exclude_models=("lgbm",)))
    assert both.verdict == Verdict.PASS  # exclude wins


def test_included_model_missing_from_post_window_never_passes() -> None:
    """An operator who gates on ``tft`` must not get a PASS when tft never voted after the cutover."""
    result = run_gate(healthy_events(250, POST_MS), settings=GateSettings(include_models=("xgb", "tft")))
    assert result.verdict == Verdict.INSUFFICIENT_DATA
    assert any(reason.startswith("tft: 0 of 200 samples") for reason in result.reasons)


def test_model_only_in_the_baseline_is_reported_not_gated() -> None:
    pre = [event(PRE_MS + index, {"old": collapsed_vote(index)}) for index in range(30)]
    result = run_gate(healthy_events(250, POST_MS), pre)
    assert result.verdict == Verdict.PASS
    assert result.models["old"].gated is False
    assert result.models["old"].pre.samples == 30


def test_regression_fallback_pseudo_key_never_blocks_a_healthy_deployment() -> None:
    """Regression (upstream bug 2): the producer's gate counted `fallback` as a model, so its
    constant 0.68/0.72 confidences failed the gate and a healthy deployment could never pass."""
    events = healthy_events(250, POST_MS, fallback_every=1)
    result = run_gate(events)
    assert result.verdict == Verdict.PASS
    assert "fallback" not in result.models
    assert result.ensemble_post.fallback_share == 1.0


def test_regression_confidence_above_one_is_counted_not_reshaped() -> None:
    """Regression (upstream bug 3): confidences above 1 were run through a sigmoid (1.05 -> ~0.741)."""
    events = [
        event(POST_MS + index, {"lgbm": ("SELL", 1.05 if index % 2 else 0.4 + index / 1000)})
        for index in range(200)
    ]
    result = run_gate(events)
    lgbm = result.models["lgbm"].post
    assert lgbm.max == 1.05
    assert lgbm.out_of_range == 100 and lgbm.out_of_range_share == 0.5
    assert lgbm.top_value == 1.05 and lgbm.top_value_share == 0.5
    assert result.verdict == Verdict.FAIL
    assert any(reason.startswith("lgbm: out_of_range 0.5") for reason in result.reasons)


# ---- pre vs post -----------------------------------------------------------------------------------


def shifted_pre_events(count: int) -> list[Event]:
    return [event(PRE_MS + index, {"xgb": ("HOLD", 0.5 + (index % 3) / 1000)}) for index in range(count)]


def test_pre_vs_post_delta_and_tests() -> None:
    result = run_gate(healthy_events(250, POST_MS), shifted_pre_events(300))
    xgb = result.models["xgb"]
    assert xgb.pre.samples == 300 and xgb.post.samples == 250
    comparison = xgb.comparison
    pre_values = np.array([0.5 + (index % 3) / 1000 for index in range(300)])
    post_values = np.array([healthy_vote(index)[1] for index in range(250)])
    expected_ks = scipy_stats.ks_2samp(pre_values, post_values)
    assert comparison["ks"]["statistic"] == pytest.approx(float(expected_ks.statistic))
    assert comparison["ks"]["pvalue"] == pytest.approx(float(expected_ks.pvalue))
    assert comparison["ks"]["effect_size"] == comparison["ks"]["statistic"]
    assert comparison["ks"]["statistic"] > 0.5
    chi2 = comparison["chi2"]
    assert chi2["dof"] == 2 and chi2["pvalue"] < 1e-6 and 0 < chi2["cramers_v"] <= 1
    table = np.array([[0, 0, 300], [84, 83, 83]])
    expected_chi2 = scipy_stats.chi2_contingency(table, correction=False)
    assert chi2["statistic"] == pytest.approx(float(expected_chi2[0]))


def test_delta_is_post_minus_pre_for_every_number() -> None:
    from quantum_gate.compare import delta

    result = run_gate(healthy_events(250, POST_MS), shifted_pre_events(300))
    xgb = result.models["xgb"]
    change = delta(xgb.pre, xgb.post)
    assert xgb.pre.hold_share == 1.0
    assert change["hold_share"] == pytest.approx(xgb.post.hold_share - 1.0)  # type: ignore[operator]
    assert change["std"] == pytest.approx(xgb.post.std - xgb.pre.std)  # type: ignore[operator]
    assert change["samples"] == -50
    assert change["action_shares"]["HOLD"] == pytest.approx(xgb.post.action_shares["HOLD"] - 1.0)
    assert change["action_shares"]["BUY"] == pytest.approx(xgb.post.action_shares["BUY"])
    numeric = {name for name, value in xgb.post.to_json().items() if isinstance(value, int | float)}
    assert numeric <= set(change)


def test_comparison_needs_two_samples_each_side() -> None:
    post, pre = windows_of(healthy_events(5, POST_MS), shifted_pre_events(1))
    assert compare(pre, post, "xgb")["ks"] is None
    post, pre = windows_of(healthy_events(5, POST_MS), [])
    assert compare(pre, post, "xgb") == {
        "ks": None,
        "chi2": None,
        "note": "needs at least 2 samples on each side",
    }


def test_comparison_with_a_single_action_has_no_chi_square() -> None:
    pre = [event(PRE_MS + index, {"xgb": ("BUY", 0.4 + index / 100)}) for index in range(10)]
    post_events = [event(POST_MS + index, {"xgb": ("BUY", 0.5 + index / 100)}) for index in range(10)]
    post, pre_window = windows_of(post_events, pre)
    comparison = compare(pre_window, post, "xgb")
    assert comparison["ks"] is not None
    assert comparison["chi2"] is None


# ---- rate and ETA ----------------------------------------------------------------------------------


def test_progress_eta() -> None:
    assert progress(50, 200, 5.0).eta_seconds == 1800.0
    assert progress(250, 200, None).eta_seconds == 0.0
    assert progress(50, 200, 0.0).eta_seconds is None
    assert progress(50, 200, None).eta_seconds is None


def test_event_rate_per_minute() -> None:
    now = 10_000_000
    ms = np.array([now - 500_000 + i * 10_000 for i in range(50)], dtype=np.int64)  # 50 in the last 500 s
    older = np.array([now - 5_000_000], dtype=np.int64)
    assert event_rate_per_minute(np.concatenate([older, ms]), now, 600) == pytest.approx(5.0)
    # younger evidence than the horizon: the rate is over what was observed
    assert event_rate_per_minute(ms, now, 600) == pytest.approx(50 / 500 * 60)
    # never over less than a minute
    assert event_rate_per_minute(np.array([now - 1000], dtype=np.int64), now, 600) == pytest.approx(1.0)
    assert event_rate_per_minute(np.array([], dtype=np.int64), now, 600) == 0.0


def test_result_knows_its_thresholds_and_windows() -> None:
    result = run_gate(healthy_events(250, POST_MS), shifted_pre_events(3))
    assert result.thresholds == GateSettings()
    assert result.post.events == 250 and result.pre.events == 3
    assert result.post.first_id_ms == POST_MS and result.post.last_id_ms == POST_MS + 249_000
    assert result.cutover == CUTOVER


# ---- reasons read the way the checks decided -------------------------------------------------------


def two_point_events(low: float, high: float, count: int = 200) -> list[Event]:
    """Half the votes at ``low``, half at ``high`` (std = (high - low) / 2, P10 = low, P90 = high), with
    the three actions in turn so that only the confidence checks can fail."""
    actions = ("BUY", "SELL", "HOLD")
    return [
        event(POST_MS + index, {"m": (actions[index % 3], low if index % 2 else high)})
        for index in range(count)
    ]


def test_a_failing_std_just_below_its_line_does_not_print_as_the_line() -> None:
    """Issue 10: a failing 0.0499997 printed "std 0.05 (must be >= 0.05)"."""
    result = run_gate(two_point_events(0.5, 0.5 + 2 * 0.0499997))
    std = result.models["m"].post.std
    assert std is not None and 0.04999 < std < 0.05
    reason = next(reason for reason in result.reasons if reason.startswith("m: std "))
    printed = reason.split()[2]
    assert float(printed) < 0.05, reason
    assert reason.endswith("(must be >= 0.05)")
    assert printed.startswith("0.049999")  # only as many digits as it takes


def test_a_failing_share_just_above_its_line_does_not_print_as_the_line() -> None:
    """The threshold too is printed as it is: 0.7005 against 0.70049 once read "(must be <= 0.7005)"."""
    buys = 1401  # of 2000: a majority of 0.7005
    events = [
        event(POST_MS + index, {"m": ("BUY" if index < buys else "SELL", 0.2 + (index % 50) / 80)})
        for index in range(2000)
    ]
    settings_ = GateSettings(majority_max=0.70049)
    result = run_gate(events, settings=settings_)
    reason = next(reason for reason in result.reasons if reason.startswith("m: majority "))
    assert float(reason.split()[2]) > 0.70049, reason
    assert reason.endswith("(must be <= 0.70049)")


def test_the_constant_reason_names_the_statistic_that_failed() -> None:
    """A std above constant_std_min next to a P10-P90 of 0 must not read "constant 0.2 (must be >= 0.01)"."""
    votes = [0.5] * 180 + [0.1, 0.9] * 10  # P10 = P90 = 0.5; std 0.126
    actions = ("BUY", "SELL", "HOLD")
    result = run_gate([event(POST_MS + i, {"m": (actions[i % 3], v)}) for i, v in enumerate(votes)])
    constant = [reason for reason in result.reasons if reason.startswith("m: constant")]
    assert constant == ["m: constant p10_p90 0 (must be >= 0.001)"]


@settings(max_examples=300, deadline=None)
@given(
    st.floats(-2, 2, allow_nan=False),
    st.sampled_from(["<=", ">="]),
    st.floats(0, 1, allow_nan=False) | st.sampled_from([0.05, 0.12, 0.7, 0.85, 0.0, 0.01]),
    st.data(),
)
def test_a_printed_value_reads_like_the_check_decided(
    value: float, comparator: str, threshold: float, data: st.DataObject
) -> None:
    """Read as a person would: the printed value against the printed threshold, as decimals."""
    nudged = data.draw(st.sampled_from([value, math.nextafter(threshold, 2), math.nextafter(threshold, -2)]))
    passed = holds(nudged, comparator, threshold)
    line = Decimal(plain_number(threshold))
    assert float(line) == threshold
    assert holds(Decimal(readable(nudged, comparator, threshold)), comparator, line) == passed
    as_percent = readable(nudged, comparator, threshold, digits=1, style="f", scale=100)
    with localcontext(prec=800):  # exact decimal arithmetic for the reading
        assert holds(Decimal(as_percent) / 100, comparator, line) == passed


_PERCENTILE_VALUES = st.lists(
    st.floats(allow_nan=False) | st.sampled_from([0.0, -0.0, 0.5, 0.65, 0.75, 1.0]),
    min_size=1,
    max_size=300,
)


@settings(max_examples=400, deadline=None)
@given(_PERCENTILE_VALUES)
def test_percentiles_of_sorted_values_are_numpys_to_the_bit(values: list[float]) -> None:
    """P10 and P90 gate (their spread is a check): the two order statistics and numpy's own arithmetic
    give the floats ``np.percentile`` gives, infinities and NaN results included."""
    raw = np.array(values, dtype=np.float64)
    ordered = np.sort(raw)
    for percent in (10, 90):
        with np.errstate(all="ignore"):  # infinities: numpy's inf - inf, silently NaN in Python too
            expected = float(np.percentile(raw, percent))
        found = percentile_of_sorted(ordered, percent / 100)
        # Equal as numbers; the sign of a zero may differ where -0.0 and 0.0 both occur, since which
        # of two equal values lands at an index depends on numpy's partition, not on the values.
        assert found == expected or (math.isnan(found) and math.isnan(expected)), (percent, found, expected)


@pytest.mark.parametrize("size", [2, 10, 11, 101, 99_999, 100_000, 100_001])
def test_percentiles_of_large_sorted_windows_are_numpys(size: int) -> None:
    raw = np.random.default_rng(size).random(size)
    raw[::3] = 0.75  # a rule constant: many ties
    ordered = np.sort(raw)
    assert [percentile_of_sorted(ordered, p / 100) for p in (10, 90)] == [
        float(v) for v in np.percentile(raw, [10, 90])
    ]
