"""The gate's metric families: one evaluation's verdict, ETA, per-model statistics, per-check values,
margins and thresholds, and the ensemble's shares.

They are a function of the evaluation (``GateResult``) and the gate settings alone, never of the live
counters, so ``exporter.GateCollector`` formats their text once per evaluation. Label sets are bounded:
model keys by the contract limits, actions by the label table, checks by ``checks.CHECK_SPECS``.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from quantum_gate.checks import check_thresholds, readable
from quantum_gate.config import GateSettings
from quantum_gate.formatting import TIDY_DIGITS, tidy
from quantum_gate.gate import GateResult
from quantum_gate.metrics_families import gauge
from quantum_gate.modelstats import ModelStats
from quantum_gate.verdicts import Verdict


def gate_families(result: GateResult, settings: GateSettings) -> Iterator[Metric]:
    """Only ``result`` and the (frozen) gate settings feed these families: ``GateCollector.render``
    caches their text per evaluation."""
    verdict = gauge("verdict", "the gate verdict, one-hot", labels=("verdict",))
    for name in Verdict:
        verdict.add_metric([name.lower()], int(result.verdict == name))
    yield verdict
    progress = result.progress
    if progress.eta_seconds is not None:
        yield gauge("eta_seconds", "time to min_events at the current rate", tidy(progress.eta_seconds))
    yield from _models(result)
    yield from _checks(result, settings)
    yield from _ensemble(result)


def _models(result: GateResult) -> Iterator[Metric]:
    labels = ("model", "window")
    gated = gauge("model_gated", "1 when the model is gated", labels=("model",))
    model_verdict = gauge("model_verdict", "per-model verdict, one-hot", labels=("model", "verdict"))
    collapsed = gauge("model_collapsed", "1 when a gated model collapsed", labels=("model",))
    sporadic = gauge(
        "model_sporadic",
        "1 when the model voted after the cutover too rarely to be gated",
        labels=("model",),
    )
    samples = gauge("model_samples", "valid votes in the window", labels=labels)
    respelled = gauge(
        "model_action_label_variants",
        "votes in the window whose action label was a spelling variant of its normal form",
        labels=labels,
    )
    presence = gauge("model_presence", "share of window events with a valid vote", labels=labels)
    shares = gauge("model_action_share", "share of votes per action", labels=(*labels, "action"))
    stats = {
        key: gauge(f"model_{key}", doc, labels=labels)
        for key, doc in (
            ("confidence_mean", "mean confidence"),
            ("confidence_std", "population std of confidence"),
            ("confidence_p10", "10th percentile of confidence"),
            ("confidence_p90", "90th percentile of confidence"),
            ("confidence_p10_p90", "P90 - P10 of confidence"),
            ("top_value_share", "share of the most frequent exact confidence"),
            ("suspect_share", "share of confidences at a suspect constant"),
            ("out_of_range_share", "share of confidences outside [0, 1]"),
        )
    }
    minimum = result.thresholds.min_samples
    for name, report in result.models.items():
        gated.add_metric([name], int(report.gated))
        sporadic.add_metric([name], int(report.sporadic))
        if report.gated:
            for verdict_name in Verdict:
                model_verdict.add_metric([name, verdict_name.lower()], int(report.verdict == verdict_name))
            collapsed.add_metric([name], int(report.collapsed(minimum)))
        for window, model_stats in (("post", report.post), ("pre", report.pre)):
            samples.add_metric([name, window], model_stats.samples)
            respelled.add_metric([name, window], model_stats.action_label_variants)
            if model_stats.presence is not None:
                presence.add_metric([name, window], tidy(model_stats.presence))
            for action, share in model_stats.action_shares.items():
                shares.add_metric([name, window, action], tidy(share))
            for key, value in _stat_values(model_stats).items():
                if value is not None:
                    stats[key].add_metric([name, window], tidy(value))
    yield from (gated, model_verdict, collapsed, sporadic, samples, respelled, presence, shares)
    yield from stats.values()


def _checks(result: GateResult, settings: GateSettings) -> Iterator[Metric]:
    passing = gauge("check_passing", "1 when the check passes", labels=("model", "check"))
    values = gauge("check_value", "the value the check compares", labels=("model", "check"))
    borderline = gauge(
        "check_borderline",
        "1 when the check's 95 % interval straddles its threshold (the verdict may flip)",
        labels=("model", "check"),
    )
    margins = gauge(
        "check_margin",
        "how far the value clears its threshold (positive passes, negative fails)",
        labels=("model", "check"),
    )
    for report in result.gated():
        for check in report.checks:
            passing.add_metric([report.name, check.name], int(check.passed))
            if check.value is not None:
                shown = readable(check.value, check.comparator, check.threshold, digits=TIDY_DIGITS)
                values.add_metric([report.name, check.name], float(shown))
            if check.interval is not None:
                borderline.add_metric([report.name, check.name], int(check.borderline))
            margin = check.margin
            if margin is not None:
                margins.add_metric([report.name, check.name], tidy(margin))
    thresholds = gauge("check_threshold", "the threshold of each check", labels=("check",))
    for name, value in check_thresholds(settings).items():
        thresholds.add_metric([name], value)
    yield from (passing, values, thresholds, borderline, margins)


def _ensemble(result: GateResult) -> Iterator[Metric]:
    fallback = gauge(
        "ensemble_fallback_share", "share of events where the rule fallback fired", labels=("window",)
    )
    sides = gauge("ensemble_side_share", "share of ensemble decisions per side", labels=("window", "action"))
    agreement = gauge("ensemble_agreement", "mean share of votes on the modal action", labels=("window",))
    hard = gauge(
        "ensemble_hard_disagree_share", "share of events with BUY and SELL votes", labels=("window",)
    )
    for window, stats in (("post", result.ensemble_post), ("pre", result.ensemble_pre)):
        scalars: list[tuple[GaugeMetricFamily, float | None]] = [
            (fallback, stats.fallback_share),
            (agreement, stats.agreement),
            (hard, stats.hard_disagree_share),
        ]
        for family, value in scalars:
            if value is not None:
                family.add_metric([window], tidy(value))
        for action, share in stats.side_shares.items():
            sides.add_metric([window, action], tidy(share))
    yield from (fallback, sides, agreement, hard)


def _stat_values(stats: ModelStats) -> dict[str, float | None]:
    return {
        "confidence_mean": stats.mean,
        "confidence_std": stats.std,
        "confidence_p10": stats.p10,
        "confidence_p90": stats.p90,
        "confidence_p10_p90": stats.p10_p90,
        "top_value_share": stats.top_value_share,
        "suspect_share": stats.suspect_share,
        "out_of_range_share": stats.out_of_range_share,
    }
