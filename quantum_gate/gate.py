"""The gate engine: windows -> per-model statistics, checks and one verdict. Pure (clock passed in).

``check``, ``/gate``, the reports and the daemon's gauges all come from ``evaluate``, so they agree.
Statistics follow numpy: population std, linear-interpolated percentiles. Out-of-range confidences are
kept raw in every statistic and reported as a contract violation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal, localcontext
from typing import Any

import numpy as np
import numpy.typing as npt

from quantum_gate.columns import INACTIVE, RESPELLED, SHADOW
from quantum_gate.config import GateSettings
from quantum_gate.contract import SkipReason
from quantum_gate.cutover import Cutover
from quantum_gate.stats import chi2_contingency, ks_2samp
from quantum_gate.uncertainty import Interval, margin, spread_interval, std_interval, wilson
from quantum_gate.windows import ModelColumns, Window

PASS, FAIL, INSUFFICIENT = "PASS", "FAIL", "INSUFFICIENT_DATA"
VERDICTS = (PASS, FAIL, INSUFFICIENT)


# ---- the checks, as data -------------------------------------------------------------------------


@dataclass(frozen=True)
class Bound:
    """One statistic held against one threshold: a ``ModelStats`` field and a ``GateSettings`` field."""

    statistic: str
    threshold: str

    def value(self, stats: ModelStats) -> float | None:
        found = getattr(stats, self.statistic)
        return None if found is None else float(found)

    def limit(self, settings: GateSettings) -> float:
        threshold: float = getattr(settings, self.threshold)  # as written: min_samples stays an int
        return threshold


@dataclass(frozen=True)
class CheckSpec:
    """One check, everything about it in one row of ``CHECK_SPECS``: the gate, the verdict, the
    exporter's ``check_threshold`` gauge, the reports and the status page all derive from the table,
    so adding a check is one row plus its setting, and no list has to stay in step with another."""

    name: str  # the ``check`` label and the document's name: a contract (docs/metrics.md, docs/cli.md)
    title: str  # as the status page heads its column
    comparator: str  # ">=" or "<=": the value must be at least / at most the threshold
    bound: Bound  # the check's value and threshold
    # Further bounds that must hold too, with the same comparator; reported in ``Check.detail`` (the
    # ``constant`` check: a std above its line is still constant when P10-P90 has no width).
    also: tuple[Bound, ...] = ()
    # A share of votes: (count, votes) for its Wilson interval; the page shows it in percent.
    share_of: Callable[[ModelStats], tuple[int, int]] | None = None
    # The 95 % interval of a value that is not a share, from the sorted confidences.
    interval: Callable[[npt.NDArray[np.float64]], Interval | None] | None = None
    collapse: bool = False  # failing it means the model collapsed (not a contract problem): alerts
    sufficiency: bool = False  # failing it means too few samples to judge: INSUFFICIENT_DATA, not FAIL
    count: bool = False  # the value counts samples: shown as a whole number

    @property
    def share(self) -> bool:
        return self.share_of is not None

    @property
    def bounds(self) -> tuple[Bound, ...]:
        return (self.bound, *self.also)

    def check(self, stats: ModelStats, settings: GateSettings) -> Check:
        value, threshold = self.bound.value(stats), self.bound.limit(settings)
        passed = all(holds(b.value(stats), self.comparator, b.limit(settings)) for b in self.bounds)
        detail: dict[str, float | None] = {}
        for extra in self.also:
            detail[extra.statistic] = extra.value(stats)
            detail[f"{extra.statistic}_threshold"] = extra.limit(settings)
        return Check(self.name, value, threshold, passed, self.comparator, detail)


CHECK_SPECS: tuple[CheckSpec, ...] = (
    CheckSpec("min_samples", "samples", ">=", Bound("samples", "min_samples"), sufficiency=True, count=True),
    CheckSpec(
        "majority",
        "majority",
        "<=",
        Bound("majority_share", "majority_max"),
        share_of=lambda stats: (stats.action_counts.get(stats.majority_action or "", 0), stats.samples),
        collapse=True,
    ),
    CheckSpec(
        "hold",
        "HOLD",
        "<=",
        Bound("hold_share", "hold_max"),
        share_of=lambda stats: (stats.action_counts.get("HOLD", 0), stats.samples),
        collapse=True,
    ),
    CheckSpec("std", "std", ">=", Bound("std", "std_min"), interval=std_interval, collapse=True),
    CheckSpec(
        "p10_p90", "P10-P90", ">=", Bound("p10_p90", "p10_p90_min"), interval=spread_interval, collapse=True
    ),
    CheckSpec(
        "constant",
        "constant",
        ">=",
        Bound("std", "constant_std_min"),
        also=(Bound("p10_p90", "constant_width_min"),),
        interval=std_interval,  # of its value, the std
        collapse=True,
    ),
    CheckSpec(
        "out_of_range",
        "out of range",
        "<=",
        Bound("out_of_range_share", "out_of_range_max"),
        share_of=lambda stats: (stats.out_of_range, stats.samples),
    ),
    CheckSpec(
        "invalid_votes",
        "invalid votes",
        "<=",
        Bound("invalid_share", "invalid_votes_max"),
        share_of=lambda stats: (stats.invalid_votes, stats.samples + stats.invalid_votes),
    ),
)
CHECK_SPEC_BY_NAME = {spec.name: spec for spec in CHECK_SPECS}
CHECKS = tuple(CHECK_SPEC_BY_NAME)
# The checks that mean "the model collapsed" (as opposed to a contract problem); alerts use these.
COLLAPSE_CHECKS = tuple(spec.name for spec in CHECK_SPECS if spec.collapse)
SUFFICIENCY_CHECKS = tuple(spec.name for spec in CHECK_SPECS if spec.sufficiency)
REFUSED_NAMED = 10  # refused model keys named in a document (hostile keys: bounded)


def check_thresholds(settings: GateSettings) -> dict[str, float]:
    """Each check's threshold by its name (the exporter's ``check_threshold`` gauge)."""
    return {spec.name: spec.bound.limit(settings) for spec in CHECK_SPECS}


@dataclass(frozen=True)
class ModelStats:
    samples: int
    presence: float | None
    action_shares: dict[str, float]
    action_counts: dict[str, int]
    hold_share: float | None
    majority_share: float | None
    majority_action: str | None
    mean: float | None
    std: float | None
    p10: float | None
    p90: float | None
    p10_p90: float | None
    min: float | None
    max: float | None
    unique_values: int
    top_value: float | None
    top_value_share: float | None
    suspect_shares: dict[str, float]
    suspect_share: float | None
    out_of_range: int
    out_of_range_share: float | None
    invalid_votes: int
    invalid_share: float | None
    variants: dict[str, int]
    shadow: int
    inactive: int
    # Votes whose raw action label was a spelling variant of its normal form (``hold``, ``Hold ``):
    # counted as the normal form, and counted here so a producer's sloppy labels are visible.
    action_label_variants: int

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class Check:
    name: str
    value: float | None
    threshold: float
    passed: bool
    comparator: str
    detail: dict[str, float | None] = field(default_factory=dict)
    interval: Interval | None = None  # the value's 95 % interval (quantum_gate.uncertainty)

    @property
    def margin(self) -> float | None:
        """How far the value clears the threshold: positive passes, negative fails. ``constant`` fails on
        its std or on its P10-P90 (``detail``): it clears by the smaller of the two margins."""
        own = margin(self.value, self.threshold, self.comparator)
        if own is None or "p10_p90_threshold" not in self.detail:
            return own
        width, width_min = self.detail.get("p10_p90"), self.detail["p10_p90_threshold"]
        second = margin(width, width_min, self.comparator) if width_min is not None else None
        return None if second is None else min(own, second)

    @property
    def borderline(self) -> bool:
        """The interval straddles the threshold: more events may flip this check either way."""
        return self.interval is not None and self.interval.straddles(self.threshold)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "value": self.value,
            "threshold": self.threshold,
            "comparator": self.comparator,
            "passed": self.passed,
            "interval": self.interval.to_json() if self.interval is not None else None,
            "margin": self.margin,
            "borderline": self.borderline,
        }
        if self.detail:
            data["detail"] = self.detail
        return data


@dataclass(frozen=True)
class ModelReport:
    name: str
    gated: bool
    verdict: str
    post: ModelStats
    pre: ModelStats
    checks: tuple[Check, ...]
    comparison: dict[str, Any]
    # Voted after the cutover, but too rarely to be gated (``is_sporadic``): reported, never gated.
    sporadic: bool = False

    def failed(self, names: tuple[str, ...] = CHECKS) -> list[Check]:
        return [check for check in self.checks if not check.passed and check.name in names]

    def collapsed(self, min_samples: int) -> bool:
        return self.post.samples >= min_samples and bool(self.failed(COLLAPSE_CHECKS))

    def borderline(self) -> list[Check]:
        return [check for check in self.checks if check.borderline]


@dataclass(frozen=True)
class EnsembleStats:
    events: int
    side_shares: dict[str, float]
    fallback_share: float | None
    agreement: float | None
    hard_disagree_share: float | None
    votes_per_event: float | None

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class WindowSummary:
    events: int
    capacity: int
    skipped: dict[SkipReason, int]
    refused_model_keys: int
    refused_models: dict[str, int]  # keys refused by the max_models cap -> votes (at most 10 named)
    first_id_ms: int | None
    last_id_ms: int | None

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class Progress:
    events: int
    min_events: int
    rate_per_minute: float | None
    eta_seconds: float | None


@dataclass(frozen=True)
class GateResult:
    verdict: str
    reasons: tuple[str, ...]
    evaluated_at: float
    cutover: Cutover | None
    post: WindowSummary
    pre: WindowSummary
    models: dict[str, ModelReport]
    ensemble_post: EnsembleStats
    ensemble_pre: EnsembleStats
    progress: Progress
    thresholds: GateSettings

    def gated(self) -> list[ModelReport]:
        return [report for report in self.models.values() if report.gated]

    def sporadic(self) -> list[ModelReport]:
        return [report for report in self.models.values() if report.sporadic]

    def collapsed_models(self) -> list[str]:
        minimum = self.thresholds.min_samples
        return [report.name for report in self.gated() if report.collapsed(minimum)]

    def borderline(self) -> list[tuple[str, Check]]:
        """(model, check) of every gated model's check whose 95 % interval straddles its threshold."""
        return [(report.name, check) for report in self.gated() for check in report.borderline()]

    def verdict_borderline(self) -> bool:
        """Whether more events may flip the verdict itself: a PASS with any borderline check, or a FAIL
        whose every failing check is borderline. INSUFFICIENT_DATA is not a decision to flip."""
        if self.verdict == PASS:
            return bool(self.borderline())
        if self.verdict == FAIL:
            failing = [check for report in self.gated() for check in report.failed()]
            return bool(failing) and all(check.borderline for check in failing)
        return False


# ---- statistics ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelView:
    """One model's columns in one window, fetched (copied) once per evaluation, with the confidences
    sorted once for both the percentiles and the KS comparison."""

    columns: ModelColumns | None
    ordered: npt.NDArray[np.float64] | None

    @classmethod
    def of(cls, window: Window, model: str) -> ModelView:
        columns = window.model(model)
        if columns is None or not columns.confidence.size:
            return cls(columns, None)
        return cls(columns, np.sort(columns.confidence))


def model_stats(
    window: Window, model: str, suspects: tuple[float, ...], view: ModelView | None = None
) -> ModelStats:
    view = view or ModelView.of(window, model)
    columns = view.columns
    vocab = window.vocabulary
    if columns is None:
        return _empty_stats(0)
    values = columns.confidence
    samples = int(values.size)
    action_counts = _label_counts(columns.action, vocab.actions.names)
    variants = _label_counts(columns.variant, vocab.variants.names)
    total_votes = samples + columns.invalid
    if samples == 0:
        return _empty_stats(columns.invalid, presence=0.0 if len(window) else None)
    shares = {label: count / samples for label, count in action_counts.items()}
    majority_action = max(action_counts, key=lambda label: (action_counts[label], label))
    shape = _distribution(values, suspects, view.ordered)
    p10, p90 = shape.p10, shape.p90
    uniques, counts = shape.uniques, shape.counts
    top = int(np.argmax(counts))
    out_of_range = shape.out_of_range
    suspect_shares = {
        _number_label(c): n / samples for c, n in zip(suspects, shape.suspect_counts, strict=True)
    }
    return ModelStats(
        samples=samples,
        presence=samples / len(window) if len(window) else None,
        action_shares=shares,
        action_counts=action_counts,
        hold_share=shares.get("HOLD", 0.0),
        majority_share=action_counts[majority_action] / samples,
        majority_action=majority_action,
        mean=float(np.mean(values)),
        std=float(np.std(values)),
        p10=p10,
        p90=p90,
        p10_p90=p90 - p10,
        min=float(values.min()),
        max=float(values.max()),
        unique_values=int(uniques.size),
        top_value=float(uniques[top]),
        top_value_share=int(counts[top]) / samples,
        suspect_shares=suspect_shares,
        suspect_share=shape.suspect_total / samples,
        out_of_range=out_of_range,
        out_of_range_share=out_of_range / samples,
        invalid_votes=columns.invalid,
        invalid_share=columns.invalid / total_votes,
        variants=variants,
        shadow=int(np.count_nonzero(columns.flags & SHADOW)),
        inactive=int(np.count_nonzero(columns.flags & INACTIVE)),
        action_label_variants=int(np.count_nonzero(columns.flags & RESPELLED)),
    )


@dataclass(frozen=True)
class _Distribution:
    p10: float
    p90: float
    uniques: npt.NDArray[np.float64]
    counts: npt.NDArray[np.intp]
    out_of_range: int
    suspect_counts: tuple[float, ...]
    suspect_total: float


def _distribution(
    values: npt.NDArray[np.float64],
    suspects: tuple[float, ...],
    ordered: npt.NDArray[np.float64] | None = None,
) -> _Distribution:
    """Percentiles, exact-value counts, out-of-range and suspect-constant counts from one sort.

    Equal, value for value, to ``np.percentile(values, [10, 90])``, ``np.unique(values,
    return_counts=True)``, ``count_nonzero((values < 0) | (values > 1))``, ``count_nonzero(values == c)``
    and ``count_nonzero(isin(values, suspects))``: the order statistics do not depend on the input
    order, and on a sorted array the counts are ``searchsorted`` differences. NaN (never produced by
    the contract parser, but a hand-built window may hold it) takes the direct forms instead.
    """
    ordered = np.sort(values) if ordered is None else ordered
    if np.isnan(ordered[-1]):
        p10, p90 = (float(v) for v in np.percentile(values, [10, 90]))
        uniques, counts = np.unique(values, return_counts=True)
        return _Distribution(
            p10=p10,
            p90=p90,
            uniques=uniques,
            counts=counts,
            out_of_range=int(np.count_nonzero((values < 0.0) | (values > 1.0))),
            suspect_counts=tuple(float(np.count_nonzero(values == c)) for c in suspects),
            suspect_total=float(np.count_nonzero(np.isin(values, suspects))),
        )
    p10, p90 = (float(v) for v in np.percentile(ordered, [10, 90]))
    starts = np.empty(ordered.size, dtype=np.bool_)
    starts[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    first = np.flatnonzero(starts)
    counts = np.diff(np.append(first, ordered.size))
    below_zero = int(np.searchsorted(ordered, 0.0, side="left"))
    above_one = ordered.size - int(np.searchsorted(ordered, 1.0, side="right"))

    def count_equal(constants: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
        found = np.searchsorted(ordered, constants, side="right") - np.searchsorted(ordered, constants)
        return np.where(np.isnan(constants), 0, found)

    wanted = np.asarray(suspects, dtype=np.float64)
    return _Distribution(
        p10=p10,
        p90=p90,
        uniques=ordered[first],
        counts=counts,
        out_of_range=below_zero + above_one,
        suspect_counts=tuple(float(n) for n in count_equal(wanted)),
        suspect_total=float(count_equal(np.unique(wanted)).sum()),
    )


def _empty_stats(invalid: int, presence: float | None = None) -> ModelStats:
    return ModelStats(
        samples=0,
        presence=presence,
        action_shares={},
        action_counts={},
        hold_share=None,
        majority_share=None,
        majority_action=None,
        mean=None,
        std=None,
        p10=None,
        p90=None,
        p10_p90=None,
        min=None,
        max=None,
        unique_values=0,
        top_value=None,
        top_value_share=None,
        suspect_shares={},
        suspect_share=None,
        out_of_range=0,
        out_of_range_share=None,
        invalid_votes=invalid,
        invalid_share=1.0 if invalid else None,
        variants={},
        shadow=0,
        inactive=0,
        action_label_variants=0,
    )


def _label_counts(codes: npt.NDArray[np.int8], names: list[str]) -> dict[str, int]:
    """Counts per label name; code -1 (no label) is not counted. One bincount, shifted by one so the
    -1s land in a bin of their own instead of being filtered out first."""
    if not codes.size:
        return {}
    counts = np.bincount(codes.astype(np.intp) + 1, minlength=len(names) + 1)[1:]
    return {names[code]: int(count) for code, count in enumerate(counts) if count}


def _number_label(value: float) -> str:
    return f"{value:g}"


def ensemble_stats(window: Window) -> EnsembleStats:
    events = len(window)
    if not events:
        return EnsembleStats(0, {}, None, None, None, None)
    names = window.vocabulary.actions.names
    sides = _label_counts(window.sides(), names)
    votes = window.vote_matrix()
    per_action = _votes_per_action(votes, len(names)) if votes.size else None
    agreement = hard = per_event = None
    if per_action is not None:
        totals = per_action.sum(axis=0)
        voted = totals > 0
        agreement = float(np.mean(per_action.max(axis=0)[voted] / totals[voted])) if voted.any() else None
        both = (per_action[names.index("BUY")] > 0) & (per_action[names.index("SELL")] > 0)
        hard = float(np.mean(both))
        per_event = float(np.mean(totals))
    return EnsembleStats(
        events=events,
        side_shares={label: count / events for label, count in sides.items()},
        fallback_share=float(np.mean(window.fallback())),
        agreement=agreement,
        hard_disagree_share=hard,
        votes_per_event=per_event,
    )


def _votes_per_action(votes: npt.NDArray[np.int8], labels: int) -> npt.NDArray[np.int16]:
    """(labels, events): how many models voted each action code in each event. Equal to
    ``stack([(votes == code).sum(axis=0) for code in range(labels)])``, but by contiguous row
    additions (a column sum over a few rows is numpy's slow direction)."""
    # int16: at most contract.max_models (<= 1000) votes per event, and a quarter of intp's bandwidth.
    counts = np.zeros((labels, votes.shape[1]), dtype=np.int16)
    for code in range(labels):
        total = counts[code]
        for row in votes:
            total += row == code
    return counts


def summarize(window: Window) -> WindowSummary:
    span = window.first_last_ms()
    notes = window.notes()
    return WindowSummary(
        events=len(window),
        capacity=window.capacity,
        skipped=notes.skipped,
        refused_model_keys=notes.refused_keys,
        refused_models=dict(list(notes.refused_models.items())[:REFUSED_NAMED]),
        first_id_ms=span[0] if span else None,
        last_id_ms=span[1] if span else None,
    )


# ---- checks and verdict ----------------------------------------------------------------------------


def model_checks(stats: ModelStats, settings: GateSettings) -> tuple[Check, ...]:
    return tuple(spec.check(stats, settings) for spec in CHECK_SPECS)


def with_intervals(checks: tuple[Check, ...], stats: ModelStats, view: ModelView) -> tuple[Check, ...]:
    """The same checks, each with its value's 95 % interval where one is defined: Wilson for a share
    (given samples), else the spec's interval over the sorted confidences (each taken once)."""
    ordered = view.ordered
    taken: dict[Callable[[npt.NDArray[np.float64]], Interval | None], Interval | None] = {}

    def interval_of(check: Check) -> Interval | None:
        spec = CHECK_SPEC_BY_NAME.get(check.name)
        if spec is None:
            return None
        if spec.share_of is not None:
            return wilson(*spec.share_of(stats)) if stats.samples else None
        if spec.interval is None or ordered is None:
            return None
        if spec.interval not in taken:
            taken[spec.interval] = spec.interval(ordered)
        return taken[spec.interval]

    return tuple(replace(check, interval=interval_of(check)) for check in checks)


def model_verdict(checks: tuple[Check, ...]) -> str:
    if not all(check.passed for check in checks if check.name in SUFFICIENCY_CHECKS):
        return INSUFFICIENT
    return PASS if all(check.passed for check in checks) else FAIL


def verdict(
    models: dict[str, ModelReport],
    post_events: int,
    settings: GateSettings,
    cutover: Cutover | None,
    refused: WindowSummary | None = None,
) -> tuple[str, tuple[str, ...]]:
    """FAIL beats INSUFFICIENT_DATA beats PASS; never PASS without a cutover or data, nor with a
    model key refused in the post window (``refused``): a model the gate did not see is not gated.
    While a Kubernetes rollout is in progress the verdict is INSUFFICIENT_DATA, FAIL included: old and
    new pods both write to the post window, so neither verdict would be about the new deployment."""
    rollout = cutover.rollout if cutover is not None else None
    rolling = rollout is not None and not rollout.complete
    gated = [report for report in models.values() if report.gated]
    failures = [
        f"{report.name}: {failure_text(check)}"
        for report in gated
        if report.verdict == FAIL
        for check in report.failed()
    ]
    if refused is not None and refused.refused_model_keys:
        failures.append(refusal_reason(refused))
    if failures and not rolling:
        return FAIL, tuple(failures)
    reasons: list[str] = []
    if rollout is not None and rolling:
        reasons.append(rollout.reason())
    if cutover is None:
        reasons.append("cutover unknown")
    if post_events < settings.min_events:
        reasons.append(f"post window holds {post_events} of {settings.min_events} events")
    if not gated:
        reasons.append("no gated model in the post window")
    reasons.extend(
        f"{report.name}: {report.post.samples} of {settings.min_samples} samples"
        for report in gated
        if report.verdict == INSUFFICIENT
    )
    if reasons:
        return INSUFFICIENT, tuple(reasons)
    return PASS, ()


def refusal_reason(summary: WindowSummary) -> str:
    named = ", ".join(f"{name!r} ({count})" for name, count in summary.refused_models.items())
    by_cap = f"; by the max_models cap: {named}" if named else ""
    return (
        f"post window: {summary.refused_model_keys} model key(s) refused, votes not gated{by_cap}"
        " (see docs/contract.md, refused model keys)"
    )


def failure_text(check: Check) -> str:
    """``std 0.0499997 (must be >= 0.05)``: the value with as many digits as it takes to read as failing.

    A check with more than one bound (``constant``: std and P10-P90) names the one(s) that fail: a std
    above its line next to a P10-P90 of 0 must not read "constant 0.018 (must be >= 0.01)"."""
    spec = CHECK_SPEC_BY_NAME.get(check.name)
    if spec is not None and spec.also and check.detail:
        bounds = [(spec.bound.statistic, check.value, check.threshold)] + [
            (
                extra.statistic,
                check.detail.get(extra.statistic),
                check.detail.get(f"{extra.statistic}_threshold"),
            )
            for extra in spec.also
        ]
        parts = [
            _bound_text(name, value, check.comparator, threshold)
            for name, value, threshold in bounds
            if threshold is not None and not holds(value, check.comparator, threshold)
        ]
        if parts:
            return f"{check.name} " + ", ".join(parts)
    return _bound_text(check.name, check.value, check.comparator, check.threshold)


def _bound_text(name: str, value: float | None, comparator: str, threshold: float) -> str:
    shown = "n/a" if value is None else readable(value, comparator, threshold)
    return f"{name} {shown} (must be {comparator} {plain_number(threshold)})"


def plain_number(number: float) -> str:
    """The shortest text that reads back as ``number`` (a threshold as the operator wrote it): 0.7, 200."""
    text = repr(number)
    return text[:-2] if text.endswith(".0") else text


def holds(value: float | Decimal | None, comparator: str, threshold: float | Decimal) -> bool:
    """``value comparator threshold`` for the two comparators checks use; no value never holds."""
    if value is None:
        return False
    return value <= threshold if comparator == "<=" else value >= threshold


def readable(
    value: float, comparator: str, threshold: float, *, digits: int = 4, style: str = "g", scale: int = 1
) -> str:
    """``value * scale`` formatted with ``digits`` (significant for ``g``, decimals for ``f``), or with
    more when fewer would read as the opposite outcome: a failing std of 0.0499997 printed "0.05" next
    to ">= 0.05" reads as a pass. The reading is the printed text against the threshold as printed
    (``plain_number``), both as exact decimals, so it agrees with the check down to the last bit.
    Float noise of a constant model's std (1e-17) reads as what it means, "0", when that reads the
    same way."""
    if not (math.isfinite(value) and math.isfinite(threshold)):
        return f"{value:g}"  # nothing to read against (NaN is never produced by the contract parser)
    passed = holds(value, comparator, threshold)
    line = Decimal(plain_number(threshold))
    if abs(value) < 1e-12 and holds(Decimal(0), comparator, line) == passed:
        return "0"
    with localcontext() as exact:
        exact.prec = 800  # enough for any double's full decimal expansion: no rounding in here
        for places in range(digits, digits + 17):
            text = f"{value * scale:.{places}{style}}"
            read_back = holds(Decimal(text) / scale, comparator, line)
            # ... and as a machine parses it (a gauge in a PromQL comparison with its threshold)
            parsed = scale != 1 or holds(float(text), comparator, threshold)
            if read_back == passed and parsed == passed:
                return text
        # The shortest text that reads back as the value: ordered against the threshold's like the
        # doubles are (rounding to nearest is monotonic), so it always reads the way the check decided.
        return str(Decimal(repr(value)) * scale)


# ---- pre vs post -----------------------------------------------------------------------------------


def compare(
    window_pre: Window,
    window_post: Window,
    model: str,
    views: tuple[ModelView, ModelView] | None = None,
) -> dict[str, Any]:
    """Reported, not gated: KS on confidences (D is the effect size), chi-square on the action mix
    (Cramér's V as effect size). None where a side has too few samples to say anything.

    The numbers are scipy's ``ks_2samp`` and ``chi2_contingency(correction=False)``, computed by
    ``quantum_gate.stats`` in numpy without importing scipy (which would cost every ``check`` ~0.8 s).
    """
    pre_view, post_view = views or (ModelView.of(window_pre, model), ModelView.of(window_post, model))
    pre, post = pre_view.columns, post_view.columns
    if (
        pre is None
        or post is None
        or pre_view.ordered is None
        or post_view.ordered is None
        or pre.confidence.size < 2
        or post.confidence.size < 2
    ):
        return {"ks": None, "chi2": None, "note": "needs at least 2 samples on each side"}
    statistic, ks_pvalue = ks_2samp(pre_view.ordered, post_view.ordered, presorted=True)
    result: dict[str, Any] = {
        "ks": {
            "statistic": statistic,
            "pvalue": ks_pvalue,
            "effect_size": statistic,
        }
    }
    # Columns: the action codes seen on either side, in code order (votes carry codes >= 0).
    size = int(max(pre.action.max(), post.action.max())) + 1
    counts = np.stack([np.bincount(side.action.astype(np.intp), minlength=size) for side in (pre, post)])
    table = counts[:, counts.sum(axis=0) > 0]
    if table.shape[1] < 2:
        result["chi2"] = None
        return result
    chi2, pvalue, dof = chi2_contingency(table)
    total = table.sum()
    cramers_v = math.sqrt(chi2 / (total * (min(table.shape) - 1))) if total else None
    result["chi2"] = {
        "statistic": chi2,
        "pvalue": pvalue,
        "dof": dof,
        "cramers_v": cramers_v,
    }
    return result


def delta(pre: ModelStats | EnsembleStats, post: ModelStats | EnsembleStats) -> dict[str, Any]:
    """post - pre for every number; for share maps, per label."""
    out: dict[str, Any] = {}
    for name in post.__dataclass_fields__:
        before, after = getattr(pre, name), getattr(post, name)
        if isinstance(after, dict) or isinstance(before, dict):
            before, after = before or {}, after or {}
            labels = sorted(set(before) | set(after))
            if all(isinstance(v, float) for v in (*before.values(), *after.values())):
                out[name] = {label: after.get(label, 0.0) - before.get(label, 0.0) for label in labels}
        elif _is_number(before) and _is_number(after):
            out[name] = after - before
        elif _is_number(before) or _is_number(after):
            out[name] = None
    return out


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ---- the evaluation --------------------------------------------------------------------------------


def model_names(post: Window, pre: Window) -> list[str]:
    seen = dict.fromkeys(post.models())
    seen.update(dict.fromkeys(pre.models()))
    return sorted(seen)


def votes(stats: ModelStats) -> int:
    """Every vote the model cast in the window, valid or invalid."""
    return stats.samples + stats.invalid_votes


def is_sporadic(
    post: ModelStats,
    post_events: int,
    settings: GateSettings,
    pre: ModelStats | None = None,
    pre_events: int = 0,
) -> bool:
    """A model that voted after the cutover too rarely to be gated: rare in the post window (fewer
    than ``min_samples`` votes and fewer than ``sporadic_share`` of its events) and not a regular
    voter in the baseline either. One stray vote of a typo key (``typo_modl``) must not hold a
    cutover at INSUFFICIENT_DATA. A real new model votes in most events, so it is gated from its
    first votes on (and blocks the gate until it has ``min_samples``). A model with ``min_samples``
    votes can be judged, so it is gated whatever its share. A model that voted regularly before the
    cutover and has become rare after it is broken, not noise: it stays gated (fail closed)."""
    if votes(post) == 0 or post_events == 0 or _regular(post, post_events, settings):
        return False
    return pre is None or not _regular(pre, pre_events, settings)


def _regular(stats: ModelStats, events: int, settings: GateSettings) -> bool:
    cast = votes(stats)
    # A division, not ``cast >= share * events``: 0.07 * 100 is 7.000000000000001 in floating point,
    # which would call 7 votes in 100 events rare at a share of exactly 7 %.
    return cast >= settings.min_samples or (events > 0 and cast / events >= settings.sporadic_share)


def evaluate(
    post: Window,
    pre: Window,
    cutover: Cutover | None,
    settings: GateSettings,
    *,
    now: float,
    rate_per_minute: float | None,
    compare_windows: bool = True,
) -> GateResult:
    # A model the operator explicitly includes is gated even when it never voted after the cutover:
    # its 0 samples make the verdict INSUFFICIENT_DATA, never a PASS that silently left it out. It is
    # never sporadic either.
    required = {name for name in settings.include_models if settings.gates(name)}
    post_models = set(post.models())
    post_events = len(post)
    models: dict[str, ModelReport] = {}
    for name in sorted({*model_names(post, pre), *required}):
        views = (ModelView.of(pre, name), ModelView.of(post, name))
        post_stats = model_stats(post, name, settings.suspect_constants, views[1])
        pre_stats = model_stats(pre, name, settings.suspect_constants, views[0])
        checks = with_intervals(model_checks(post_stats, settings), post_stats, views[1])
        # Gated: the model votes in the post window (often enough, see is_sporadic) or is required.
        sporadic = (
            name not in required
            and settings.gates(name)
            and is_sporadic(post_stats, post_events, settings, pre_stats, len(pre))
        )
        models[name] = ModelReport(
            name=name,
            gated=settings.gates(name) and (name in required or (name in post_models and not sporadic)),
            verdict=model_verdict(checks),
            post=post_stats,
            pre=pre_stats,
            checks=checks,
            comparison=compare(pre, post, name, views) if compare_windows else {},
            sporadic=sporadic,
        )
    post_summary = summarize(post)
    final, reasons = verdict(models, len(post), settings, cutover, post_summary)
    return GateResult(
        verdict=final,
        reasons=reasons,
        evaluated_at=now,
        cutover=cutover,
        post=post_summary,
        pre=summarize(pre),
        models=models,
        ensemble_post=ensemble_stats(post),
        ensemble_pre=ensemble_stats(pre),
        progress=progress(len(post), settings.min_events, rate_per_minute),
        thresholds=settings,
    )


def progress(events: int, min_events: int, rate_per_minute: float | None) -> Progress:
    remaining = max(min_events - events, 0)
    eta: float | None
    if remaining == 0:
        eta = 0.0
    elif rate_per_minute and rate_per_minute > 0:
        eta = remaining * 60.0 / rate_per_minute  # one rounding: 138 at 62/min is 133.5483..., no noise
    else:
        eta = None
    return Progress(events, min_events, rate_per_minute, eta)


def event_rate_per_minute(
    event_ms: npt.NDArray[np.int64], now_ms: int, horizon_seconds: float, observed_since_ms: int | None = None
) -> float:
    """Accepted events per minute over the last ``horizon_seconds`` of stream-ID time.

    When the evidence is younger than the horizon (a new stream, a daemon that just started with a
    short backlog), the rate is taken over what was observed, never less than one minute.
    """
    since = now_ms - int(horizon_seconds * 1000)
    count = int(np.count_nonzero(event_ms >= since))
    starts = [value for value in (observed_since_ms, int(event_ms.min()) if event_ms.size else None) if value]
    observed_from = max(min(starts), since) if starts else now_ms
    span_ms = max(now_ms - observed_from, 60_000)
    # Integers until one division: count / seconds * 60 gave 62.00000000000001 for 31 events in 30 s.
    return count * 60_000 / span_ms
