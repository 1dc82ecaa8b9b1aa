"""The status page's confidence histograms: pre vs post per model, drawn as inline SVG (no script, no
external asset), each bin as a share of its own window's samples.
"""

from __future__ import annotations

from typing import Any

from quantum_gate.exporter import Snapshot
from quantum_gate.histograms import Histogram
from quantum_gate.statuspage_html import chip, esc

SVG_W, SVG_H = 340, 170
PLOT_L, PLOT_R, PLOT_T, PLOT_B = 34, 330, 12, 140


def histogram_svg(model: str, pre: Histogram | None, post: Histogram | None) -> str:
    """Pre (orange outline) vs post (blue bars), each as a share of its own window's samples."""
    sample = post or pre
    if sample is None:
        return ""
    lo, hi = sample.lo, sample.hi
    width, height = PLOT_R - PLOT_L, PLOT_B - PLOT_T

    def share_of(hist: Histogram | None) -> list[float]:
        if hist is None or not hist.total:
            return []
        return [count / hist.total for count in hist.counts]

    post_shares, pre_shares = share_of(post), share_of(pre)
    top = max([*post_shares, *pre_shares, 0.0]) or 1.0
    top = min(1.0, _nice_ceiling(top))

    def x(value: float) -> float:
        return PLOT_L + (value - lo) / (hi - lo) * width

    def y(share: float) -> float:
        return PLOT_B - share / top * height

    parts = [
        f"<svg class=hist data-model='{esc(model)}' xmlns='http://www.w3.org/2000/svg' "
        f"viewBox='0 0 {SVG_W} {SVG_H}' role=img aria-label='confidence histogram of {esc(model)}'>",
        f"<title>{esc(model)}: confidence, pre vs post (share of samples per bin)</title>",
        f"<rect x='{PLOT_L}' y='{PLOT_T}' width='{width}' height='{height}' "
        "fill='#fafbfc' stroke='#d9dee5'/>",
    ]
    for fraction in (0.5, 1.0):
        level = y(top * fraction)
        parts.append(
            f"<line x1='{PLOT_L}' x2='{PLOT_R}' y1='{level:.1f}' y2='{level:.1f}' stroke='#e6e9ee'/>"
            f"<text x='{PLOT_L - 4}' y='{level + 4:.1f}' font-size='10' text-anchor='end' "
            f"fill='#5f6b7a'>{top * fraction * 100:.0f}%</text>"
        )
    if post is not None and post_shares:
        edges = post.edges()
        for index, share in enumerate(post_shares):
            if share <= 0:
                continue
            left, right = x(edges[index]), x(edges[index + 1])
            parts.append(
                f"<rect class=post x='{left + 0.5:.1f}' y='{y(share):.1f}' "
                f"width='{max(right - left - 1, 1):.1f}' "
                f"height='{PLOT_B - y(share):.1f}' fill='#2f6fdf' fill-opacity='0.75'/>"
            )
    if pre is not None and pre_shares:
        edges = pre.edges()
        points = [f"{x(edges[0]):.1f},{PLOT_B}"]
        for index, share in enumerate(pre_shares):
            points.append(f"{x(edges[index]):.1f},{y(share):.1f}")
            points.append(f"{x(edges[index + 1]):.1f},{y(share):.1f}")
        points.append(f"{x(edges[-1]):.1f},{PLOT_B}")
        parts.append(
            f"<polyline class=pre points='{' '.join(points)}' "
            "fill='none' stroke='#e07b00' stroke-width='1.6'/>"
        )
    if lo < 1.0 < hi:
        at = x(1.0)
        parts.append(
            f"<line x1='{at:.1f}' x2='{at:.1f}' y1='{PLOT_T}' y2='{PLOT_B}' stroke='#c62828' "
            "stroke-dasharray='3 3'/>"
            f"<text x='{at + 3:.1f}' y='{PLOT_T + 10}' font-size='9' fill='#c62828'>&gt; 1</text>"
        )
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        if lo <= tick <= hi:
            parts.append(
                f"<line x1='{x(tick):.1f}' x2='{x(tick):.1f}' y1='{PLOT_B}' y2='{PLOT_B + 4}' "
                "stroke='#5f6b7a'/>"
                f"<text x='{x(tick):.1f}' y='{PLOT_B + 15}' font-size='10' text-anchor='middle' "
                f"fill='#5f6b7a'>{tick:g}</text>"
            )
    parts.append(
        f"<text x='{(PLOT_L + PLOT_R) / 2:.0f}' y='{SVG_H - 2}' font-size='10' text-anchor='middle' "
        "fill='#5f6b7a'>confidence</text></svg>"
    )
    return "".join(parts)


def _nice_ceiling(value: float) -> float:
    for step in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0):
        if value <= step:
            return step
    return 1.0


def histograms_section(snap: Snapshot, document: dict[str, Any] | None) -> str:
    if not snap.evaluation.histograms:
        return ""
    cards = []
    for model, sides in snap.evaluation.histograms.items():
        pre, post = sides.get("pre"), sides.get("post")
        counts = (
            f"<span class=swatch style='background:#2f6fdf'></span>post n={post.total if post else 0}"
            f"<span class=swatch style='background:#e07b00'></span>pre n={pre.total if pre else 0}"
        )
        outside = sum(hist.above + hist.below for hist in (pre, post) if hist is not None)
        note = f" <span class=bad>{outside} beyond the axis</span>" if outside else ""
        gated = document is not None and document["models"].get(model, {}).get("gated", False)
        badge = chip(document["models"][model]["verdict"]) if gated and document else ""
        cards.append(
            f"<div class='card hist-card'><h3>{esc(model)} {badge}</h3>"
            f"{histogram_svg(model, pre, post)}<div class=legend>{counts}{note}</div></div>"
        )
    return (
        "<h2>Confidence histograms <span class=sub>share of each window's samples per 0.05 bin; "
        "bars = post, outline = pre; right of the dashed line is out of range</span></h2>"
        f"<div class=hists id=histograms>{''.join(cards)}</div>"
    )
