"""Numbers and durations as people read them: one definition for the terminal table, the Markdown
reports, the status page and ``quantum-gate history``. Pure.

Where the surfaces differ on purpose, the difference is a parameter at the call, never a second copy:
the terminal and Markdown ETA has no days (``30h00m``, so it reads like the hours it is), the page and
the history say ``1d06h``; a missing ETA reads "unknown", a missing cell "-".
"""

from __future__ import annotations

import math

TIDY_DIGITS = 12  # significant digits of a statistic's gauge (a double holds ~16; noise lives in the last)


def pct(value: float | None, digits: int = 1) -> str:
    """A share as a percentage: 0.705 -> ``70.5%``; ``-`` without a value."""
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def num(value: float | None, digits: int = 3) -> str:
    """A number with fixed decimals: ``0.123``; ``-`` without a value."""
    return "-" if value is None else f"{value:.{digits}f}"


def duration(seconds: float | None, *, missing: str = "-", days: bool = True) -> str:
    """``45s``, ``2m05s``, ``3h07m`` and, with ``days``, ``1d02h``; whole seconds, rounded. A negative
    span (a clock behind the stream's IDs) reads as ``0s``, never ``-1d23h``."""
    if seconds is None:
        return missing
    total = max(round(seconds), 0)
    whole_days, rest = divmod(total, 86_400) if days else (0, total)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if whole_days:
        return f"{whole_days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def tidy(value: float) -> float:
    """A statistic as a gauge or a JSON number: 12 significant digits, so float noise (a mean of
    0.6500000000000001, a P10-P90 of 0.15000000000000002, a constant model's std of 1.1e-16) reads as
    what it means. Check values go through ``checks.readable`` instead, so that a failing value never
    reads as its threshold; timestamps and counts are exact and left alone."""
    if not math.isfinite(value):
        return value
    return 0.0 if abs(value) < 1e-12 else float(f"{value:.{TIDY_DIGITS}g}")
