"""Report depth: what an engineer reads after the gate says FAIL, to find out where and why. Pure.

Three views of the pre and post windows, per model, all JSON-ready (``report_depth``):

* **Per-symbol breakdown** (``symbols``): per model and symbol, samples, action shares, mean and
  population std of the confidence, pre and post; symbols ranked by how much they changed
  (``change`` = action shift + |mean delta| + |std delta|, see ``symbol_breakdown``); the top N listed,
  the rest pooled into one ``other`` bucket. Symbols never become Prometheus labels (cardinality).
* **Action transition matrices** (``transitions``): how a model's action changes from one decision to
  the next *on the same symbol*, as counts and row shares over BUY / SELL / HOLD / other, with the
  share of self-transitions as a "stuck" indicator (a collapsed model sits on HOLD -> HOLD).
* **Confidence histograms** (``histograms``): bin counts from the one shared implementation,
  ``quantum_gate.histograms.histogram`` (also used by the status page), over a fixed range that keeps
  out-of-range values visible (see ``histogram_range``).

No I/O, no clock: ``check``, ``diagnose``, the daemon's reports and ``/gate`` all call these on the
same windows the gate evaluated, so every surface shows the same numbers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from quantum_gate.histograms import Histogram, confidence_histogram
from quantum_gate.modelstats import model_names
from quantum_gate.vocabulary import BASE_ACTIONS, OTHER_LABEL
from quantum_gate.windows import ModelColumns, Window

TRANSITION_LABELS = (*BASE_ACTIONS, "other")  # BUY, SELL, HOLD, other: every other action label
OTHER_CATEGORY = len(TRANSITION_LABELS) - 1
# A symbol needs this many votes on each side for its change to rank among the well-sampled ones;
# below that a single vote can swing its action mix by 100 %, so it is listed after them.
MIN_RANKED_SAMPLES = 5
UNKNOWN_SYMBOL = "(unknown)"  # entries without a symbol, or beyond the symbol table's cap
RANKED_BY = "change = action_shift (total variation distance of the action mix) + |mean_delta| + |std_delta|"


# ---- shared helpers --------------------------------------------------------------------------------


def action_categories(action_names: list[str]) -> npt.NDArray[np.intp]:
    """Maps every action code of the vocabulary to its row in ``TRANSITION_LABELS``."""
    return np.array(
        [TRANSITION_LABELS.index(name) if name in BASE_ACTIONS else OTHER_CATEGORY for name in action_names],
        dtype=np.intp,
    )


def _shares(counts: npt.NDArray[np.int64]) -> dict[str, float]:
    total = int(counts.sum())
    return {
        label: (int(count) / total if total else 0.0)
        for label, count in zip(TRANSITION_LABELS, counts, strict=True)
    }


def _side(samples: int, action_counts: npt.NDArray[np.int64], mean: float, std: float) -> dict[str, Any]:
    return {
        "samples": samples,
        "action_counts": {
            label: int(count) for label, count in zip(TRANSITION_LABELS, action_counts, strict=True)
        },
        "action_shares": _shares(action_counts),
        "mean": mean if samples else None,
        "std": std if samples else None,
    }


def _side_of(values: npt.NDArray[np.float64], categories: npt.NDArray[np.intp]) -> dict[str, Any]:
    counts = np.bincount(categories, minlength=len(TRANSITION_LABELS)).astype(np.int64)
    if not values.size:
        return _side(0, counts, math.nan, math.nan)
    return _side(int(values.size), counts, float(np.mean(values)), float(np.std(values)))


# ---- per-symbol breakdown --------------------------------------------------------------------------


class _BySymbol:
    """One model's votes in one window, summarised per symbol code (all numpy, O(votes))."""

    def __init__(
        self, columns: ModelColumns | None, n_symbols: int, categories: npt.NDArray[np.intp]
    ) -> None:
        width = len(TRANSITION_LABELS)
        if columns is None or not columns.confidence.size:
            self.symbol = np.empty(0, dtype=np.intp)
            self.category = np.empty(0, dtype=np.intp)
            self.confidence = np.empty(0, dtype=np.float64)
        else:
            self.symbol = columns.symbol.astype(np.intp)
            self.category = categories[columns.action.astype(np.intp)]
            self.confidence = columns.confidence
        self.counts = np.bincount(self.symbol, minlength=n_symbols).astype(np.int64)
        self.action_counts = (
            np.bincount(self.symbol * width + self.category, minlength=n_symbols * width)
            .astype(np.int64)
            .reshape(n_symbols, width)
        )
        sums = np.bincount(self.symbol, weights=self.confidence, minlength=n_symbols)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.mean = sums / self.counts
            deviation = self.confidence - self.mean[self.symbol]
            self.std = np.sqrt(
                np.bincount(self.symbol, weights=deviation * deviation, minlength=n_symbols) / self.counts
            )

    def side(self, code: int) -> dict[str, Any]:
        return _side(
            int(self.counts[code]), self.action_counts[code], float(self.mean[code]), float(self.std[code])
        )

    def pooled(self, codes: npt.NDArray[np.intp]) -> dict[str, Any]:
        picked = np.isin(self.symbol, codes)
        return _side_of(self.confidence[picked], self.category[picked])


def _printable(label: str) -> str:
    """A symbol as valid UTF-8: a producer's lone surrogate (JSON ``\\ud800``) is shown escaped, so
    the document still encodes."""
    return label.encode("utf-8", "backslashreplace").decode("utf-8")


def _change(pre: dict[str, Any], post: dict[str, Any]) -> dict[str, float | None]:
    if not pre["samples"] or not post["samples"]:
        return {"change": None, "action_shift": None, "mean_delta": None, "std_delta": None}
    shift = 0.5 * sum(abs(post["action_shares"][k] - pre["action_shares"][k]) for k in TRANSITION_LABELS)
    mean_delta = post["mean"] - pre["mean"]
    std_delta = post["std"] - pre["std"]
    return {
        "change": shift + abs(mean_delta) + abs(std_delta),
        "action_shift": shift,
        "mean_delta": mean_delta,
        "std_delta": std_delta,
    }


def symbol_breakdown(post: Window, pre: Window, model: str, top_n: int) -> dict[str, Any]:
    """One model's per-symbol breakdown, pre and post, ranked by change, bounded to ``top_n`` rows.

    Ranking: symbols with at least ``MIN_RANKED_SAMPLES`` votes on both sides first, by ``change``
    (largest first); then symbols seen on both sides with fewer votes, by ``change``; then symbols
    seen on one side only (``change`` None); ties by total votes, then name. Symbols past ``top_n``
    are pooled into ``other`` (their votes together: samples, action shares, mean, std).
    """
    vocab = post.vocabulary
    names = vocab.symbols.names
    categories = action_categories(vocab.actions.names)
    sides = {
        "pre": _BySymbol(pre.model(model), len(names), categories),
        "post": _BySymbol(post.model(model), len(names), categories),
    }
    seen = np.flatnonzero(sides["pre"].counts + sides["post"].counts)
    rows: list[tuple[tuple[int, float, int, str], int, dict[str, Any]]] = []
    for code in seen.tolist():
        pre_side, post_side = sides["pre"].side(code), sides["post"].side(code)
        change = _change(pre_side, post_side)
        well_sampled = min(pre_side["samples"], post_side["samples"]) >= MIN_RANKED_SAMPLES
        group = 2 if change["change"] is None else (0 if well_sampled else 1)
        label = UNKNOWN_SYMBOL if names[code] == OTHER_LABEL else _printable(names[code])
        row = {"symbol": label, "pre": pre_side, "post": post_side, **change, "well_sampled": well_sampled}
        total = pre_side["samples"] + post_side["samples"]
        rows.append(((group, -(change["change"] or 0.0), -total, label), code, row))
    rows.sort(key=lambda item: item[0])
    listed = [row for _, _, row in rows[:top_n]]
    rest = np.array([code for _, code, _ in rows[top_n:]], dtype=np.intp)
    other: dict[str, Any] | None = None
    if rest.size:
        other_pre, other_post = sides["pre"].pooled(rest), sides["post"].pooled(rest)
        other = {
            "symbols": int(rest.size),
            "pre": other_pre,
            "post": other_post,
            **_change(other_pre, other_post),
        }
    return {"distinct": int(seen.size), "symbols": listed, "other": other}


def symbols_document(post: Window, pre: Window, top_n: int) -> dict[str, Any]:
    return {
        "top_n": top_n,
        "min_ranked_samples": MIN_RANKED_SAMPLES,
        "ranked_by": RANKED_BY,
        "models": {name: symbol_breakdown(post, pre, name, top_n) for name in model_names(post, pre)},
    }


# ---- action transitions ----------------------------------------------------------------------------


def transition_counts(
    symbols: npt.NDArray[np.integer[Any]], categories: npt.NDArray[np.intp]
) -> npt.NDArray[np.int64]:
    """4x4 counts of (previous action, next action) over consecutive votes on the same symbol.

    ``symbols`` and ``categories`` are one model's votes in chronological order; a stable sort by
    symbol keeps each symbol's votes in time order, so neighbours with equal symbols are transitions.
    """
    width = len(TRANSITION_LABELS)
    if symbols.size < 2:
        return np.zeros((width, width), dtype=np.int64)
    order = np.argsort(symbols, kind="stable")
    ordered_symbols, ordered = symbols[order], categories[order]
    same = ordered_symbols[1:] == ordered_symbols[:-1]
    pairs = ordered[:-1][same] * width + ordered[1:][same]
    return np.bincount(pairs, minlength=width * width).astype(np.int64).reshape(width, width)


def transition_matrix(columns: ModelColumns | None, action_names: list[str]) -> dict[str, Any]:
    """Counts, row shares (None for a row with no transitions), the self-transition ("stuck") share,
    and the dominant move, for one model in one window."""
    if columns is None or not columns.action.size:
        counts = np.zeros((len(TRANSITION_LABELS),) * 2, dtype=np.int64)
        symbols = 0
    else:
        categories = action_categories(action_names)[columns.action.astype(np.intp)]
        counts = transition_counts(columns.symbol, categories)
        symbols = int(np.unique(columns.symbol).size)
    total = int(counts.sum())
    rows = counts.sum(axis=1)
    row_shares = [
        [int(count) / int(rows[i]) for count in counts[i]] if rows[i] else None
        for i in range(len(TRANSITION_LABELS))
    ]
    dominant: dict[str, Any] | None = None
    if total:
        flat = int(np.argmax(counts))  # first maximum in row-major order: BUY before SELL before HOLD
        frm, to = divmod(flat, len(TRANSITION_LABELS))
        dominant = {
            "from": TRANSITION_LABELS[frm],
            "to": TRANSITION_LABELS[to],
            "count": int(counts[frm, to]),
            "share": int(counts[frm, to]) / total,
        }
    return {
        "counts": counts.tolist(),
        "row_shares": row_shares,
        "transitions": total,
        "symbols": symbols,
        "self_transitions": int(np.trace(counts)),
        "self_share": int(np.trace(counts)) / total if total else None,
        "dominant": dominant,
    }


def transitions_document(post: Window, pre: Window) -> dict[str, Any]:
    names = post.vocabulary.actions.names
    return {
        "labels": list(TRANSITION_LABELS),
        "models": {
            name: {
                "pre": transition_matrix(pre.model(name), names),
                "post": transition_matrix(post.model(name), names),
            }
            for name in model_names(post, pre)
        },
    }


# ---- histograms ------------------------------------------------------------------------------------


def histogram_range(bins_per_unit: int) -> tuple[int, float, float]:
    """(bins, lo, hi) for ``settings.report.histogram_bins`` = bins over the contract range [0, 1].

    The range is extended above 1 by whole bins of the same width until it reaches at least 1.1, so
    1.0 stays a bin edge and the bars right of it hold only out-of-range values (e.g. lgbm's 1.05).
    The default 20 gives 22 bins of 0.05 over [0, 1.1], the status page's own default.
    """
    extra = math.ceil(bins_per_unit / 10)
    return bins_per_unit + extra, 0.0, round(1.0 + extra / bins_per_unit, 12)


def histogram_json(hist: Histogram) -> dict[str, Any]:
    return {"counts": list(hist.counts), "below": hist.below, "above": hist.above, "total": hist.total}


def histograms_document(post: Window, pre: Window, bins_per_unit: int) -> dict[str, Any]:
    bins, lo, hi = histogram_range(bins_per_unit)
    models = {
        name: {
            side: histogram_json(confidence_histogram(window, name, bins, lo, hi))
            for side, window in (("pre", pre), ("post", post))
        }
        for name in model_names(post, pre)
    }
    edges = [round(lo + (hi - lo) * i / bins, 12) for i in range(bins + 1)]
    return {
        "bins": bins,
        "lo": lo,
        "hi": hi,
        "edges": edges,
        "closed": "right",  # (edge_i, edge_i+1]; the first bin also takes lo; below/above fold into the ends
        "models": models,
    }


# ---- all of it -------------------------------------------------------------------------------------


def report_depth(post: Window, pre: Window, *, top_symbols: int, histogram_bins: int) -> dict[str, Any]:
    """The ``symbols``, ``transitions`` and ``histograms`` keys of the gate document."""
    return {
        "symbols": symbols_document(post, pre, top_symbols),
        "transitions": transitions_document(post, pre),
        "histograms": histograms_document(post, pre, histogram_bins),
    }
