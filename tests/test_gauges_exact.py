"""Issue 10.6: gauges carry no float noise (``62.00000000000001``), and a check's value gauge still
reads the way the check decided. Rates are integers until one division; statistics are exported with
12 significant digits; ``check_value`` gets as many digits as it takes to read as failing."""

from __future__ import annotations

import re

import numpy as np
from test_statuspage import CUTOVER_MS, snapshot, vote

from quantum_gate.contract import Event
from quantum_gate.exporter import GateCollector
from quantum_gate.formatting import tidy
from quantum_gate.gate import event_rate_per_minute, progress
from quantum_gate.retention import Retention
from quantum_gate.streamids import StreamId
from quantum_gate.windows import Window, window_pair

SAMPLE = re.compile(r"^(quantum_gate_[a-z0-9_]+)(\{[^}]*\})? (\S+)$", re.MULTILINE)
# Families whose values are statistics (ratios, confidences, rates): the ones tidied for export.
STATISTICS = re.compile(
    r"quantum_gate_(model_(presence|action_share|confidence_\w+|top_value_share|suspect_share|out_of_range_share)"
    r"|ensemble_\w+|event_rate_per_minute|eta_seconds|check_value)$"
)


def significant_digits(text: str) -> int:
    mantissa = text.lower().split("e")[0].lstrip("-").replace(".", "").lstrip("0")
    return len(mantissa.rstrip("0")) if mantissa else 0


def samples(text: str) -> list[tuple[str, str, str]]:
    return [(name, labels or "", value) for name, labels, value in SAMPLE.findall(text)]


def noisy_windows() -> tuple[Window, Window]:
    """nhits pinned at 0.65 (np.mean gives 0.6500000000000001); xgb between 0.5 and 0.65 (P90 - P10 is
    0.15000000000000002 in doubles); a third model with a std just below its 0.05 line."""
    post, pre = window_pair(2000, 2000)
    actions = ("BUY", "SELL", "HOLD")
    for index in range(240):
        votes = (
            vote("nhits", "BUY", 0.65),
            vote("xgb", actions[index % 3], 0.5 if index % 2 else 0.65),
            vote("lgbm", actions[index % 3], 0.5 if index % 2 else 0.5 + 2 * 0.0499999999999999),
        )
        post.add(Event(StreamId(CUTOVER_MS + 1000 * index), "ETHUSDT", "SELL", False, votes, (), 0))
        pre.add(Event(StreamId(CUTOVER_MS - 1000 * (240 - index)), "ETHUSDT", "SELL", False, votes, (), 0))
    return post, pre


def test_raw_statistics_are_noisy_so_the_test_means_something() -> None:
    assert np.mean(np.full(240, 0.65)) != 0.65
    assert 0.65 - 0.5 != 0.15
    assert 62 / 60 * 60.0 != 62.0


def test_no_statistic_gauge_carries_float_noise() -> None:
    post, pre = noisy_windows()
    snap = snapshot(post, pre, rate_per_minute=62 / 60 * 60.0)
    text = GateCollector(lambda: snap).render().decode()
    found = samples(text)
    statistics = [(name, labels, value) for name, labels, value in found if STATISTICS.match(name)]
    assert len(statistics) > 30
    noisy = [
        sample
        for sample in statistics
        if significant_digits(sample[2]) > 12 and not sample[0].endswith("check_value")
    ]
    assert not noisy, noisy
    values = {(name, labels): value for name, labels, value in found}
    assert values["quantum_gate_model_confidence_mean", '{model="nhits",window="post"}'] == "0.65"
    assert values["quantum_gate_model_confidence_p10_p90", '{model="xgb",window="post"}'] == "0.15"
    assert values["quantum_gate_model_confidence_std", '{model="nhits",window="post"}'] == "0.0"
    assert values["quantum_gate_event_rate_per_minute", ""] == "62.0"


def test_a_check_value_gauge_still_reads_the_way_the_check_decided() -> None:
    post, pre = noisy_windows()
    snap = snapshot(post, pre)
    text = GateCollector(lambda: snap).render().decode()
    values = {(name, labels): value for name, labels, value in samples(text)}
    std = float(values["quantum_gate_check_value", '{check="std",model="lgbm"}'])
    passing = values["quantum_gate_check_passing", '{check="std",model="lgbm"}']
    assert passing == "0.0" and std < 0.05  # 12 digits would have printed 0.05: the check's own line
    assert tidy(0.0499999999999999) == 0.05


def test_the_event_rate_is_exact() -> None:
    now_ms = CUTOVER_MS + 600_000
    inexact = []
    for count in range(1, 400):
        events = np.array(
            [now_ms - 59_000 + index * 59_000 // count for index in range(count)], dtype=np.int64
        )
        one_minute = event_rate_per_minute(events, now_ms, 60, observed_since_ms=now_ms - 60_000)
        two_minutes = event_rate_per_minute(events, now_ms, 120, observed_since_ms=now_ms - 120_000)
        if (one_minute, two_minutes) != (count, count / 2):
            inexact.append((count, one_minute, two_minutes))
    assert not inexact, inexact[:5]


def test_the_eta_and_the_retention_rate_are_exact() -> None:
    assert progress(138, 200, 31.0).eta_seconds == 120.0
    retention = Retention(
        length=63, entries_added=63, first_ms=0, last_ms=60_000, trimming=False, risks={}, reasons={}
    )
    assert retention.entry_rate_per_minute == 62.0
