"""Intervals and margins at their edges: a check that fails on its second statistic, shares of exactly 0
and 1, tiny and degenerate samples (docs/ledger.md#how-sure-a-verdict-is)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from eventkit import CUTOVER, CUTOVER_MS, event, run_gate

from quantum_gate.uncertainty import spread_interval, std_interval, wilson


def test_a_failed_constant_check_never_shows_a_positive_margin() -> None:
    """``constant`` fails on either its std or its P10-P90; the margin is documented as "positive passes",
    so a constant that fails on a P10-P90 of 0 with a healthy std must not read as clearing its line."""
    votes = [0.9 if index % 20 == 0 else 0.5 for index in range(300)]
    events = [
        event(CUTOVER_MS + i, {"xgb": (("BUY", "SELL", "HOLD")[i % 3], c)}) for i, c in enumerate(votes)
    ]
    result = run_gate(events, cutover=CUTOVER)
    checks = {check.name: check for check in result.models["xgb"].checks}
    constant = checks["constant"]
    assert not constant.passed and constant.margin is not None
    assert constant.margin < 0
    for check in checks.values():  # the contract for every check: the sign of the margin is the outcome
        if check.margin is not None and check.margin != 0:
            assert (check.margin > 0) == check.passed, check


@pytest.mark.parametrize("n", [1, 2, 7, 200, 10_000])
def test_wilson_at_zero_and_all_is_exactly_the_bound(n: int) -> None:
    """No violation seen: the interval starts at exactly 0 (not 8.7e-19 in the document); all: ends at 1."""
    none_seen = wilson(0, n)
    all_seen = wilson(n, n)
    assert none_seen is not None and all_seen is not None
    assert none_seen.low == 0.0 and none_seen.to_json()[0] == 0.0
    assert all_seen.high == 1.0 and all_seen.to_json()[1] == 1.0
    assert not none_seen.straddles(0.0) and not all_seen.straddles(1.0)


@pytest.mark.parametrize(
    "values",
    [[0.5], [float("nan"), 0.5, 0.6], [0.5, float("inf")], [float("-inf"), 0.2, 0.3], []],
)
def test_degenerate_samples_have_no_interval(values: list[float]) -> None:
    ordered = np.sort(np.array(values, dtype=np.float64))
    assert std_interval(ordered) is None
    assert spread_interval(ordered) is None


def test_a_constant_sample_has_a_zero_width_interval() -> None:
    ordered = np.full(500, 0.5)
    std = std_interval(ordered)
    spread = spread_interval(ordered)
    assert std is not None and spread is not None
    assert (std.low, std.high) == (0.0, 0.0) and (spread.low, spread.high) == (0.0, 0.0)
    assert wilson(0, 0) is None
    assert all(math.isfinite(bound) for bound in (std.low, std.high))
