"""The formatting helpers the table, the reports, the page and the history share (issue 13.7): held equal
to the copies they replaced, with the differences between surfaces as explicit parameters."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from quantum_gate.formatting import duration, num, pct

SECONDS = st.floats(min_value=0, max_value=10**8, allow_nan=False) | st.integers(0, 10**8)


def report_eta_before(seconds: float) -> str:
    """report._duration as it was: no days."""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def page_duration_before(seconds: float) -> str:
    """statuspage._duration and history.duration as they were: with days."""
    total = max(round(seconds), 0)
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@given(SECONDS)
def test_duration_equals_the_copies_it_replaced(seconds: float) -> None:
    assert duration(seconds, missing="unknown", days=False) == report_eta_before(seconds)
    assert duration(seconds, missing="unknown") == page_duration_before(seconds)
    assert duration(seconds) == page_duration_before(seconds)  # history.duration, missing -> "-"


def test_duration_forms_and_the_differences_between_surfaces() -> None:
    assert [duration(s) for s in (0, 0.4, 45, 125, 3600 * 3 + 420, 86_400 + 7200)] == [
        "0s",
        "0s",
        "45s",
        "2m05s",
        "3h07m",
        "1d02h",
    ]
    assert duration(30 * 3600, days=False) == "30h00m"  # the terminal's and Markdown's ETA
    assert duration(30 * 3600) == "1d06h"  # the page's and the history's ages
    assert (duration(None), duration(None, missing="unknown")) == ("-", "unknown")
    assert duration(-5) == "0s"  # a clock behind the stream's IDs: never "-1d23h"


def test_pct_and_num() -> None:
    assert (pct(0.7049), pct(0.7049, 0), pct(None)) == ("70.5%", "70%", "-")
    assert (num(0.12345), num(0.12345, 2), num(None)) == ("0.123", "0.12", "-")
