"""Pre vs post, reported and never gated: the two-sample comparison of one model's windows and the
change of every statistic. Pure.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from quantum_gate.modelstats import EnsembleStats, ModelStats, ModelView
from quantum_gate.stats import chi2_contingency, ks_2samp
from quantum_gate.windows import Window


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
