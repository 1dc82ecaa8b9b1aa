"""Per-model statistics of one window (``ModelStats``), the ensemble's (``EnsembleStats``) and the
window's summary (``WindowSummary``). Pure.

Statistics follow numpy: population std, linear-interpolated percentiles. Out-of-range confidences are
kept raw in every statistic and reported as a contract violation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from quantum_gate.columns import INACTIVE, RESPELLED, SHADOW
from quantum_gate.contract import SkipReason
from quantum_gate.windows import ModelColumns, Window

REFUSED_NAMED = 10  # refused model keys named in a document (hostile keys: bounded)


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
class ModelView:
    """One model's columns in one window, fetched (copied) once per evaluation, with the confidences
    sorted once for both the percentiles and the KS comparison."""

    columns: ModelColumns | None
    ordered: npt.NDArray[np.float64] | None

    @classmethod
    def of(cls, window: Window, model: str) -> ModelView:
        return window.memoized(("view", model), lambda: cls._read(window, model))

    @classmethod
    def _read(cls, window: Window, model: str) -> ModelView:
        columns = window.model(model)
        if columns is None or not columns.confidence.size:
            return cls(columns, None)
        return cls(columns, np.sort(columns.confidence))


def model_stats(
    window: Window, model: str, suspects: tuple[float, ...], view: ModelView | None = None
) -> ModelStats:
    """One model's statistics in ``window`` (``view``: its ``ModelView``, if the caller has it)."""
    return window.memoized(("stats", model, suspects), lambda: _model_stats(window, model, suspects, view))


def _model_stats(
    window: Window, model: str, suspects: tuple[float, ...], view: ModelView | None
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
    p10, p90 = percentile_of_sorted(ordered, 10 / 100), percentile_of_sorted(ordered, 90 / 100)
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


def percentile_of_sorted(ordered: npt.NDArray[np.float64], fraction: float) -> float:
    """``np.percentile(ordered, 100 * fraction)`` (method "linear") of values sorted ascending, with no
    NaN: the same float, by numpy's own arithmetic on the two order statistics around the virtual
    index (numpy's ``_quantile`` and ``_lerp``), without the partition it runs over the whole array.
    ``fraction`` is the percentage divided by 100, as numpy divides it."""
    last = ordered.size - 1
    virtual = last * fraction
    if virtual >= last:  # numpy takes index -1 for both neighbours, and the weight from that -1
        previous, following = -1, -1
    else:
        previous = math.floor(virtual)
        following = previous + 1
    low, high = float(ordered[previous]), float(ordered[following])
    gamma = virtual - previous
    step = high - low  # inf - inf is NaN here as in numpy (a hand-built window may hold infinities)
    return high - step * (1 - gamma) if gamma >= 0.5 else low + step * gamma


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
    return window.memoized("ensemble", lambda: _ensemble_stats(window))


def _ensemble_stats(window: Window) -> EnsembleStats:
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


def model_names(post: Window, pre: Window) -> list[str]:
    seen = dict.fromkeys(post.models())
    seen.update(dict.fromkeys(pre.models()))
    return sorted(seen)


def votes(stats: ModelStats) -> int:
    """Every vote the model cast in the window, valid or invalid."""
    return stats.samples + stats.invalid_votes
