"""The checks as data: one row of ``CHECK_SPECS`` per check, the checks of one model's statistics, its
verdict, and the text that says why a check failed. Pure.

The gate, the verdict, the exporter's ``check_threshold`` gauge, the reports and the status page all
derive from the table, each looking a check up by its name, never by its place in the table.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal, localcontext
from typing import Any

import numpy as np
import numpy.typing as npt

from quantum_gate.config import GateSettings
from quantum_gate.modelstats import ModelStats, ModelView
from quantum_gate.uncertainty import Interval, margin, spread_interval, std_interval, wilson
from quantum_gate.verdicts import Verdict


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


def check_thresholds(settings: GateSettings) -> dict[str, float]:
    """Each check's threshold by its name (the exporter's ``check_threshold`` gauge)."""
    return {spec.name: spec.bound.limit(settings) for spec in CHECK_SPECS}


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


def model_verdict(checks: tuple[Check, ...]) -> Verdict:
    if not all(check.passed for check in checks if check.name in SUFFICIENCY_CHECKS):
        return Verdict.INSUFFICIENT_DATA
    return Verdict.PASS if all(check.passed for check in checks) else Verdict.FAIL


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
