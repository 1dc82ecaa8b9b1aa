"""The status page's small pieces of HTML: escaping, and the cells and labels every section shares.

Everything that came from the stream or from the cutover source (model keys, actions, variants, unit
names, invocation IDs, reasons that quote them) is untrusted and goes through ``esc`` (HTML escaping,
quotes included) before it reaches the page. Check values and thresholds are written with as many
digits as it takes to read the way the check decided.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from html import escape
from typing import Any

from quantum_gate.checks import CHECK_SPECS, plain_number, readable
from quantum_gate.formatting import duration, num, pct
from quantum_gate.verdicts import Verdict

NO_EVALUATION = "NO EVALUATION YET"
# CSS class per verdict; looked up, never built from input.
VERDICT_CLASS = {
    Verdict.PASS: "pass",
    Verdict.FAIL: "fail",
    Verdict.INSUFFICIENT_DATA: "insufficient",
    NO_EVALUATION: "none",
}
# Shown in percent, headed by their titles, in the gate's order: all from the one table of checks.
SHARE_CHECKS = frozenset(spec.name for spec in CHECK_SPECS if spec.share)
COUNT_CHECKS = frozenset(spec.name for spec in CHECK_SPECS if spec.count)
CHECK_TITLES = {spec.name: spec.title for spec in CHECK_SPECS}


def esc(value: object) -> str:
    """Escape for HTML text and quoted attributes alike."""
    return escape(str(value), quote=True)


def utc_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration_text(seconds: float | None) -> str:
    return duration(seconds, missing="unknown")


def signed(value: float | None, *, share: bool) -> str:
    if value is None:
        return ""
    if share:
        return "±0pp" if abs(value) < 0.0005 else f"{value * 100:+.1f}pp"
    return "±0" if abs(value) < 0.0005 else f"{value:+.3f}"


def pre_post(pre: float | None, post: float | None, *, share: bool) -> str:
    """A table cell: the post value, and under it the baseline value and the change."""
    shown = pct(post) if share else num(post)
    if pre is None:
        return f"{shown}<span class=sub>pre -</span>"
    change = signed(post - pre, share=share) if post is not None else ""
    before = pct(pre) if share else num(pre)
    # Two unbreakable halves: a narrow column wraps after the comma, never between "pre" and its value.
    after = f" <span class=nw>{change}</span>" if change else ""
    return f"{shown}<span class=sub><span class=nw>pre {before}{',' if change else ''}</span>{after}</span>"


def check_value(check: dict[str, Any]) -> str:
    """The value with as many digits as it takes to read the way the check decided: a failing
    majority of 0.70004 is "70.004%" under "≤ 70%", never "70.0%"."""
    name, value = check["name"], check["value"]
    if value is None:
        return "-"
    if name in COUNT_CHECKS:
        return f"{value:.0f}"
    comparator, threshold = check["comparator"], check["threshold"]
    if name in SHARE_CHECKS:
        return readable(value, comparator, threshold, digits=1, style="f", scale=100) + "%"
    return readable(value, comparator, threshold, digits=4, style="f")


def threshold_text(name: str, comparator: str, threshold: float) -> str:
    if name in SHARE_CHECKS:  # as the operator wrote it, in percent: 0.7 -> 70%, 0.70049 -> 70.049%
        shown = f"{(Decimal(plain_number(threshold)) * 100).normalize():f}%"
    else:
        shown = plain_number(threshold)
    return f"{'≤' if comparator == '<=' else '≥' if comparator == '>=' else comparator} {shown}"


def bound_text(name: str, value: float) -> str:
    """An interval bound: a share in percent with one decimal, anything else with four."""
    return f"{value * 100:.1f}%" if name in SHARE_CHECKS else f"{value:.4f}"


def interval_line(name: str, check: dict[str, Any]) -> str:
    """The 95 % interval under a check's value, and "borderline" when it straddles the threshold."""
    interval = check.get("interval")
    if not interval:
        return ""
    low, high = (bound_text(name, value) for value in interval)
    note = " · borderline" if check.get("borderline") else ""
    return f"<span class=sub>95% {esc(low)} to {esc(high)}{note}</span>"


def interval_text(name: str, interval: list[float]) -> str:
    return f" {esc(bound_text(name, interval[0]))} to {esc(bound_text(name, interval[1]))}"


def chip(verdict: str) -> str:
    # <wbr>: INSUFFICIENT_DATA may break after its "_" in a narrow column (the text stays the same).
    label = esc(verdict).replace("_", "_<wbr>")
    return f"<span class='chip {VERDICT_CLASS.get(verdict, 'none')}'>{label}</span>"


def dl_rows(rows: list[tuple[str, str]]) -> str:
    return "".join(f"<dt>{esc(label)}</dt><dd>{value}</dd>" for label, value in rows)
