"""Confidence histograms (bin counts) of each model's votes in a window, for the status page. Pure.

Bins are right-closed, ``(edge_i, edge_i+1]`` (the first one also takes ``lo`` itself), so an exact
1.0 lands left of the 1.0 edge and every bar right of it holds out-of-range values only. Values below
``lo`` or above ``hi`` are counted into the first or last bin and also reported as ``below`` /
``above``: nothing is dropped and nothing is reshaped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from quantum_gate.modelstats import ModelView, model_names
from quantum_gate.windows import Window

# The page's default: 22 bins 0.05 wide over [0, 1.1], so 1.0 is a bin edge and the known constants
# (0.5, 0.65, 0.7, 0.75) sit on edges too, each at the top of its own bar.
PAGE_LO, PAGE_HI, PAGE_BINS = 0.0, 1.1, 22


@dataclass(frozen=True)
class Histogram:
    lo: float
    hi: float
    counts: tuple[int, ...]
    below: int  # values < lo (also counted in the first bin)
    above: int  # values > hi (also counted in the last bin)

    @property
    def total(self) -> int:
        return sum(self.counts)

    def edges(self) -> list[float]:
        return [float(edge) for edge in _edges(self.lo, self.hi, len(self.counts))]


def _edges(lo: float, hi: float, bins: int) -> npt.NDArray[np.float64]:
    # Rounded so that e.g. 0.75 is exactly the double 0.75, not 0.7500000000000001.
    return np.round(np.linspace(lo, hi, bins + 1), 12)


def histogram(values: npt.NDArray[np.float64], bins: int, lo: float, hi: float) -> Histogram:
    if bins < 1:
        raise ValueError("a histogram needs at least one bin")
    if not hi > lo:
        raise ValueError("a histogram needs hi > lo")
    edges = _edges(lo, hi, bins)
    index = np.clip(np.searchsorted(edges, values, side="left") - 1, 0, bins - 1)
    counts = np.bincount(index.astype(np.intp), minlength=bins)
    return Histogram(
        lo=lo,
        hi=hi,
        counts=tuple(int(count) for count in counts),
        below=int(np.count_nonzero(values < lo)),
        above=int(np.count_nonzero(values > hi)),
    )


def sorted_histogram(ordered: npt.NDArray[np.float64], bins: int, lo: float, hi: float) -> Histogram:
    """``histogram`` of values already sorted ascending, equal to it count for count, by one binary
    search per edge instead of a pass over the values. Bin i holds ``edges[i] < v <= edges[i+1]``, the
    first also everything up to ``edges[1]``, the last everything above ``edges[bins - 1]``: so the
    bins' bounds are the counts of values <= each inner edge. NaN (which a hand-built window may hold;
    it sorts last) takes the direct form."""
    if ordered.size and np.isnan(ordered[-1]):
        return histogram(ordered, bins, lo, hi)
    if bins < 1:
        raise ValueError("a histogram needs at least one bin")
    if not hi > lo:
        raise ValueError("a histogram needs hi > lo")
    edges = _edges(lo, hi, bins)
    inner = np.searchsorted(ordered, edges[1:bins], side="right")
    bounds = np.concatenate(([0], inner, [ordered.size]))
    return Histogram(
        lo=lo,
        hi=hi,
        counts=tuple(int(count) for count in np.diff(bounds)),
        below=int(np.searchsorted(ordered, lo, side="left")),
        above=int(ordered.size - np.searchsorted(ordered, hi, side="right")),
    )


def confidence_histogram(
    window: Window, model: str, bins: int = PAGE_BINS, lo: float = PAGE_LO, hi: float = PAGE_HI
) -> Histogram:
    """Bin counts of ``model``'s valid confidences in ``window`` (all zero when it never voted), from
    the sorted confidences the evaluation already made of a frozen copy (``ModelView``, kept with it)."""
    ordered = ModelView.of(window, model).ordered
    if ordered is None:
        return histogram(np.empty(0, dtype=np.float64), bins, lo, hi)
    return sorted_histogram(ordered, bins, lo, hi)


def window_histograms(
    post: Window, pre: Window, bins: int = PAGE_BINS, lo: float = PAGE_LO, hi: float = PAGE_HI
) -> dict[str, dict[str, Histogram]]:
    """``{model: {"pre": Histogram, "post": Histogram}}`` for every model seen in either window."""
    return {
        name: {
            "pre": confidence_histogram(pre, name, bins, lo, hi),
            "post": confidence_histogram(post, name, bins, lo, hi),
        }
        for name in model_names(post, pre)
    }
