"""The gate engine: windows -> per-model statistics, checks and one verdict. Pure (clock passed in).

``check``, ``/gate``, the reports and the daemon's gauges all come from ``evaluate``, so they agree.
The statistics are ``modelstats``'s, the checks ``checks``'s, the pre/post comparison ``compare``'s;
this module holds the verdict over all models, the evaluation, and the progress (rate and ETA).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from quantum_gate.checks import (
    CHECKS,
    COLLAPSE_CHECKS,
    Check,
    failure_text,
    model_checks,
    model_verdict,
    with_intervals,
)
from quantum_gate.compare import compare
from quantum_gate.config import GateSettings
from quantum_gate.cutover import Cutover
from quantum_gate.modelstats import (
    EnsembleStats,
    ModelStats,
    ModelView,
    WindowSummary,
    ensemble_stats,
    model_names,
    model_stats,
    summarize,
    votes,
)
from quantum_gate.verdicts import Verdict
from quantum_gate.windows import Window


@dataclass(frozen=True)
class ModelReport:
    name: str
    gated: bool
    verdict: Verdict
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
class Progress:
    events: int
    min_events: int
    rate_per_minute: float | None
    eta_seconds: float | None


@dataclass(frozen=True)
class GateResult:
    verdict: Verdict
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
        if self.verdict == Verdict.PASS:
            return bool(self.borderline())
        if self.verdict == Verdict.FAIL:
            failing = [check for report in self.gated() for check in report.failed()]
            return bool(failing) and all(check.borderline for check in failing)
        return False


def verdict(
    models: dict[str, ModelReport],
    post_events: int,
    settings: GateSettings,
    cutover: Cutover | None,
    refused: WindowSummary | None = None,
) -> tuple[Verdict, tuple[str, ...]]:
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
        if report.verdict == Verdict.FAIL
        for check in report.failed()
    ]
    if refused is not None and refused.refused_model_keys:
        failures.append(refusal_reason(refused))
    if failures and not rolling:
        return Verdict.FAIL, tuple(failures)
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
        if report.verdict == Verdict.INSUFFICIENT_DATA
    )
    if reasons:
        return Verdict.INSUFFICIENT_DATA, tuple(reasons)
    return Verdict.PASS, ()


def refusal_reason(summary: WindowSummary) -> str:
    named = ", ".join(f"{name!r} ({count})" for name, count in summary.refused_models.items())
    by_cap = f"; by the max_models cap: {named}" if named else ""
    return (
        f"post window: {summary.refused_model_keys} model key(s) refused, votes not gated{by_cap}"
        " (see docs/contract.md, refused model keys)"
    )


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
