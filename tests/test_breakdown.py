"""Report depth on windows with known symbols and action sequences: exact transition matrices,
per-symbol breakdowns, histogram bins and the retention assessment."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pytest

from quantum_gate.breakdown import (
    MIN_RANKED_SAMPLES,
    TRANSITION_LABELS,
    UNKNOWN_SYMBOL,
    histogram_range,
    histograms_document,
    report_depth,
    symbol_breakdown,
    transition_counts,
    transition_matrix,
    transitions_document,
)
from quantum_gate.contract import Event, Vote
from quantum_gate.retention import Retention, RetentionWatch, assess_retention
from quantum_gate.stream_gaps import StreamInfo
from quantum_gate.streamids import StreamId
from quantum_gate.windows import Window, window_pair

T0 = 1_768_023_795_000


def vote(model: str, action: str, confidence: float) -> Vote:
    return Vote(model, action, confidence, f"{model}_main", False, False)


def ev(index: int, symbol: str | None, votes: dict[str, tuple[str, float]]) -> Event:
    built = tuple(vote(model, action, conf) for model, (action, conf) in votes.items())
    return Event(StreamId(T0 + index * 1000, 0), symbol, "BUY", False, built, (), 0)


def sequence(model: str, steps: Sequence[tuple[str | None, str, float]], start: int = 0) -> list[Event]:
    """Events in chronological order, one vote each: (symbol, action, confidence)."""
    return [ev(start + i, symbol, {model: (action, conf)}) for i, (symbol, action, conf) in enumerate(steps)]


def filled(
    events: Iterable[Event], pre_events: Iterable[Event] = (), capacity: int = 100
) -> tuple[Window, Window]:
    post, pre = window_pair(capacity, capacity)
    for item in events:
        post.add(item)
    for item in pre_events:
        pre.add(item)
    return post, pre


# ---- transitions -----------------------------------------------------------------------------------

# A: BUY BUY HOLD HOLD HOLD, B: SELL HOLD SELL, interleaved in time: A B A A B A B A
INTERLEAVED = [
    ("A", "BUY", 0.6),
    ("B", "SELL", 0.7),
    ("A", "BUY", 0.6),
    ("A", "HOLD", 0.5),
    ("B", "HOLD", 0.5),
    ("A", "HOLD", 0.5),
    ("B", "SELL", 0.7),
    ("A", "HOLD", 0.5),
]


def test_transitions_follow_each_symbol_in_time_order() -> None:
    post, _ = filled(sequence("lgbm", INTERLEAVED))
    matrix = transition_matrix(post.model("lgbm"), post.vocabulary.actions.names)
    # A: BUY->BUY, BUY->HOLD, HOLD->HOLD, HOLD->HOLD; B: SELL->HOLD, HOLD->SELL
    assert matrix["counts"] == [
        [1, 0, 1, 0],
        [0, 0, 1, 0],
        [0, 1, 2, 0],
        [0, 0, 0, 0],
    ]
    assert matrix["row_shares"] == [
        [0.5, 0.0, 0.5, 0.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 1 / 3, 2 / 3, 0.0],
        None,
    ]
    assert matrix["transitions"] == 6
    assert matrix["symbols"] == 2
    assert matrix["self_transitions"] == 3
    assert matrix["self_share"] == 0.5
    assert matrix["dominant"] == {"from": "HOLD", "to": "HOLD", "count": 2, "share": 2 / 6}


def test_transitions_skip_events_where_the_model_did_not_vote_and_fold_unknown_actions_into_other() -> None:
    events = [
        ev(0, "A", {"xgb": ("BUY", 0.6), "lgbm": ("HOLD", 0.5)}),
        ev(1, "A", {"lgbm": ("HOLD", 0.5)}),  # xgb missing (raised): not a break in xgb's sequence
        ev(2, "A", {"xgb": ("EXIT", 0.9), "lgbm": ("HOLD", 0.5)}),
        ev(3, "A", {"xgb": ("CLOSE", 0.8), "lgbm": ("BUY", 0.5)}),
        ev(4, "A", {"xgb": ("BUY", 0.7)}),
    ]
    post, pre = filled(events)
    doc = transitions_document(post, pre)
    assert doc["labels"] == ["BUY", "SELL", "HOLD", "other"]
    xgb = doc["models"]["xgb"]["post"]
    # BUY->other, other->other (EXIT->CLOSE), other->BUY
    assert xgb["counts"] == [[0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 1]]
    assert xgb["self_share"] == pytest.approx(1 / 3)
    lgbm = doc["models"]["lgbm"]["post"]
    assert lgbm["counts"][2] == [1, 0, 2, 0]  # HOLD->HOLD twice, HOLD->BUY once
    assert doc["models"]["xgb"]["pre"] == {
        "counts": [[0] * 4] * 4,
        "row_shares": [None] * 4,
        "transitions": 0,
        "symbols": 0,
        "self_transitions": 0,
        "self_share": None,
        "dominant": None,
    }


def test_transitions_use_window_order_after_the_ring_wraps() -> None:
    steps = [("A", "BUY", 0.6), ("A", "SELL", 0.6), ("A", "HOLD", 0.5), ("A", "HOLD", 0.5), ("A", "BUY", 0.6)]
    post, _ = filled(sequence("m", steps), capacity=3)  # keeps HOLD HOLD BUY
    matrix = transition_matrix(post.model("m"), post.vocabulary.actions.names)
    assert matrix["counts"] == [[0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]


def test_transition_counts_match_a_plain_python_walk_on_random_data() -> None:
    rng = np.random.default_rng(7)
    symbols = rng.integers(0, 9, size=3000).astype(np.int16)
    categories = rng.integers(0, 4, size=3000).astype(np.intp)
    expected = np.zeros((4, 4), dtype=np.int64)
    last: dict[int, int] = {}
    for symbol, category in zip(symbols.tolist(), categories.tolist(), strict=True):
        if symbol in last:
            expected[last[symbol], category] += 1
        last[symbol] = category
    assert transition_counts(symbols, categories).tolist() == expected.tolist()


# ---- per-symbol breakdown --------------------------------------------------------------------------


def symbol_scenario() -> tuple[Window, Window]:
    """A collapses (BUY 0.6 / SELL 0.8 -> HOLD 0.5); B is unchanged; C has one vote per side;
    D appears only after the cutover."""
    pre_steps = (
        [("A", "BUY", 0.6)] * 5
        + [("A", "SELL", 0.8)] * 5
        + [("B", "BUY", 0.7)] * 6
        + [("B", "HOLD", 0.4)] * 4
        + [("C", "BUY", 0.9)]
    )
    post_steps = (
        [("A", "HOLD", 0.5)] * 10
        + [("B", "BUY", 0.7)] * 6
        + [("B", "HOLD", 0.4)] * 4
        + [("C", "SELL", 0.1)]
        + [("D", "SELL", 0.3)] * 2
    )
    return filled(sequence("lgbm", post_steps, start=100), sequence("lgbm", pre_steps))


def test_symbol_breakdown_ranks_the_collapsed_symbol_first_with_exact_numbers() -> None:
    post, pre = symbol_scenario()
    result = symbol_breakdown(post, pre, "lgbm", top_n=10)
    assert result["distinct"] == 4
    assert [row["symbol"] for row in result["symbols"]] == ["A", "B", "C", "D"]
    a = result["symbols"][0]
    assert a["pre"]["samples"] == 10 and a["post"]["samples"] == 10
    assert a["pre"]["action_counts"] == {"BUY": 5, "SELL": 5, "HOLD": 0, "other": 0}
    assert a["pre"]["action_shares"] == {"BUY": 0.5, "SELL": 0.5, "HOLD": 0.0, "other": 0.0}
    assert a["post"]["action_shares"] == {"BUY": 0.0, "SELL": 0.0, "HOLD": 1.0, "other": 0.0}
    assert a["pre"]["mean"] == pytest.approx(0.7)
    assert a["pre"]["std"] == pytest.approx(0.1)
    assert a["post"]["mean"] == pytest.approx(0.5)
    assert a["post"]["std"] == 0.0
    assert a["action_shift"] == 1.0
    assert a["mean_delta"] == pytest.approx(-0.2)
    assert a["std_delta"] == pytest.approx(-0.1)
    assert a["change"] == pytest.approx(1.3)
    assert a["well_sampled"] is True
    b = result["symbols"][1]
    assert b["change"] == pytest.approx(0.0, abs=1e-12)
    assert b["pre"]["action_shares"]["BUY"] == 0.6 and b["pre"]["mean"] == pytest.approx(0.58)
    assert b["pre"]["std"] == pytest.approx(float(np.std([0.7] * 6 + [0.4] * 4)))
    c = result["symbols"][2]  # change 1 + 0.8 + 0 = 1.8 > A's, but one vote a side ranks it after A and B
    assert c["change"] == pytest.approx(1.8)
    assert c["well_sampled"] is False
    d = result["symbols"][3]
    assert d["change"] is None and d["pre"]["samples"] == 0 and d["pre"]["mean"] is None
    assert d["post"]["action_counts"]["SELL"] == 2
    assert result["other"] is None


def test_symbols_past_top_n_are_pooled_into_other() -> None:
    post, pre = symbol_scenario()
    result = symbol_breakdown(post, pre, "lgbm", top_n=1)
    assert [row["symbol"] for row in result["symbols"]] == ["A"]
    other = result["other"]
    assert other["symbols"] == 3  # B, C, D
    assert other["pre"]["samples"] == 11 and other["post"]["samples"] == 13
    assert other["pre"]["action_counts"] == {"BUY": 7, "SELL": 0, "HOLD": 4, "other": 0}
    assert other["post"]["action_counts"] == {"BUY": 6, "SELL": 3, "HOLD": 4, "other": 0}
    pre_values = [0.7] * 6 + [0.4] * 4 + [0.9]
    post_values = [0.7] * 6 + [0.4] * 4 + [0.1, 0.3, 0.3]
    assert other["pre"]["mean"] == pytest.approx(float(np.mean(pre_values)))
    assert other["post"]["std"] == pytest.approx(float(np.std(post_values)))
    assert other["action_shift"] == pytest.approx(
        0.5 * (abs(6 / 13 - 7 / 11) + 3 / 13 + abs(4 / 13 - 4 / 11))
    )


def test_symbol_breakdown_names_missing_symbols_and_ranks_ties_by_volume() -> None:
    steps = [(None, "BUY", 0.5)] * MIN_RANKED_SAMPLES + [("Z", "BUY", 0.5)] * (MIN_RANKED_SAMPLES + 1)
    post, pre = filled(sequence("m", steps, start=50), sequence("m", steps))
    rows = symbol_breakdown(post, pre, "m", top_n=5)["symbols"]
    assert [row["symbol"] for row in rows] == ["Z", UNKNOWN_SYMBOL]  # both change 0; Z has more votes
    assert all(row["change"] == 0.0 for row in rows)


def test_report_depth_has_every_model_and_the_three_keys() -> None:
    post, pre = symbol_scenario()
    depth = report_depth(post, pre, top_symbols=2, histogram_bins=20)
    assert set(depth) == {"symbols", "transitions", "histograms"}
    assert depth["symbols"]["top_n"] == 2
    assert list(depth["symbols"]["models"]) == ["lgbm"]
    assert depth["transitions"]["models"]["lgbm"]["post"]["counts"][2][2] == 9 + 3  # A: 10 HOLDs, B: 4
    assert depth["histograms"]["models"]["lgbm"]["post"]["total"] == 23


# ---- histograms ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bins_per_unit", "expected"),
    [(20, (22, 0.0, 1.1)), (10, (11, 0.0, 1.1)), (4, (5, 0.0, 1.25)), (40, (44, 0.0, 1.1))],
)
def test_histogram_range_keeps_one_on_an_edge_and_reaches_past_1_1(
    bins_per_unit: int, expected: tuple[int, float, float]
) -> None:
    bins, lo, hi = histogram_range(bins_per_unit)
    assert (bins, lo, hi) == expected
    edges = [round(lo + (hi - lo) * i / bins, 12) for i in range(bins + 1)]
    assert 1.0 in edges


def test_histograms_count_constants_and_out_of_range_values_in_the_right_bins() -> None:
    values = [0.5, 0.5, 0.75, 0.75, 0.75, 1.0, 1.05, -0.1, 0.0, 1.3]
    steps = [("A", "HOLD", v) for v in values]
    post, pre = filled(sequence("lgbm", steps))
    doc = histograms_document(post, pre, 20)
    assert doc["bins"] == 22 and doc["lo"] == 0.0 and doc["hi"] == 1.1 and doc["closed"] == "right"
    assert doc["edges"][10] == 0.5 and doc["edges"][15] == 0.75 and doc["edges"][20] == 1.0
    counts = doc["models"]["lgbm"]["post"]["counts"]
    expected = [0] * 22
    expected[0] = 2  # 0.0 and -0.1 (below, folded into the first bin)
    expected[9] = 2  # (0.45, 0.50]
    expected[14] = 3  # (0.70, 0.75]
    expected[19] = 1  # (0.95, 1.00]
    expected[20] = 1  # (1.00, 1.05]: out of range
    expected[21] = 1  # 1.3 (above, folded into the last bin)
    assert counts == expected
    assert doc["models"]["lgbm"]["post"]["below"] == 1
    assert doc["models"]["lgbm"]["post"]["above"] == 1
    assert doc["models"]["lgbm"]["post"]["total"] == 10
    assert doc["models"]["lgbm"]["pre"] == {"counts": [0] * 22, "below": 0, "above": 0, "total": 0}


# ---- retention -------------------------------------------------------------------------------------

HOUR = 3_600_000
CUT = T0


def info(length: int, added: int, first_ms: int, last_ms: int) -> StreamInfo:
    return StreamInfo(length, added, StreamId(last_ms, 0), StreamId(first_ms, 0), StreamId(last_ms, 0))


def assess(
    stream: StreamInfo | None, *, baseline_first: int | None, post: int, eta_h: float | None, now: int
) -> Retention | None:
    return assess_retention(
        stream,
        cutover_ms=CUT,
        baseline_first_ms=baseline_first,
        post_events=post,
        min_events=200,
        eta_seconds=None if eta_h is None else eta_h * 3600,
        now_ms=now,
    )


def test_retention_reports_span_rate_and_no_risk_while_not_trimming() -> None:
    stream = info(length=601, added=601, first_ms=CUT - 2 * HOUR, last_ms=CUT + 3 * HOUR)
    result = assess(stream, baseline_first=CUT - 2 * HOUR, post=50, eta_h=100.0, now=CUT + 3 * HOUR)
    assert result is not None
    assert result.covers_seconds == 5 * 3600
    assert result.entry_rate_per_minute == pytest.approx(2.0)
    assert result.trimmed == 0 and result.trimming is False
    assert result.risks == {"baseline": False, "post_window": False}


def test_retention_flags_a_post_window_that_cannot_fill_before_trimming() -> None:
    # 10000 entries cover 10 h; 1 h after the cutover 20 events, ETA 10 more hours: 11 h > 10 h
    stream = info(length=10_000, added=50_000, first_ms=CUT - 9 * HOUR, last_ms=CUT + 1 * HOUR)
    result = assess(stream, baseline_first=CUT - 2 * HOUR, post=20, eta_h=10.0, now=CUT + HOUR)
    assert result is not None and result.trimming and result.trimmed == 40_000
    assert result.risks["post_window"] is True
    assert "11.0 h from the cutover" in result.reasons["post_window"]
    assert "covers only 10.0 h" in result.reasons["post_window"]
    # the baseline starts 2 h before the cutover: trimmed at ~cutover + 8 h, before the window completes
    assert result.risks["baseline"] is True
    ok = assess(stream, baseline_first=CUT - 2 * HOUR, post=100, eta_h=1.0, now=CUT + HOUR)
    assert ok is not None and ok.risks == {"baseline": False, "post_window": False}


def test_retention_flags_what_trimming_already_took() -> None:
    stream = info(length=10_000, added=20_000, first_ms=CUT - HOUR, last_ms=CUT + 2 * HOUR)
    result = assess(stream, baseline_first=CUT - 3 * HOUR, post=500, eta_h=0.0, now=CUT + 2 * HOUR)
    assert result is not None
    assert result.risks == {"baseline": True, "post_window": False}
    assert "already removed the oldest baseline events" in result.reasons["baseline"]
    gone = info(length=10_000, added=20_000, first_ms=CUT + HOUR, last_ms=CUT + 5 * HOUR)
    result = assess(gone, baseline_first=None, post=150, eta_h=0.5, now=CUT + 5 * HOUR)
    assert result is not None
    assert result.risks == {"baseline": True, "post_window": True}
    assert "already trimmed post-cutover entries" in result.reasons["post_window"]
    assert assess(None, baseline_first=None, post=0, eta_h=None, now=CUT) is None


def test_retention_watch_logs_state_changes_only() -> None:
    from structlog.testing import capture_logs

    risky = assess(
        info(length=100, added=1000, first_ms=CUT + HOUR, last_ms=CUT + 2 * HOUR),
        baseline_first=None,
        post=10,
        eta_h=1.0,
        now=CUT + 2 * HOUR,
    )
    watch = RetentionWatch()
    with capture_logs() as logs:
        watch.observe(risky, "s")
        watch.observe(risky, "s")
        watch.observe(None, "s")
    assert [(entry["event"], entry["kind"]) for entry in logs] == [
        ("retention.warning", "baseline"),
        ("retention.warning", "post_window"),
        ("retention.cleared", "baseline"),
        ("retention.cleared", "post_window"),
    ]
    assert logs[0]["log_level"] == "warning"


def test_transition_labels_are_the_base_actions_plus_other() -> None:
    assert TRANSITION_LABELS == ("BUY", "SELL", "HOLD", "other")


def test_a_lone_surrogate_symbol_still_encodes() -> None:
    from quantum_gate.report import dumps

    post, pre = filled(sequence("m", [("\ud800", "BUY", 0.5)] * 3))
    depth = report_depth(post, pre, top_symbols=5, histogram_bins=20)
    assert depth["symbols"]["models"]["m"]["symbols"][0]["symbol"] == "\\ud800"
    assert b"\\\\ud800" in dumps(depth)
