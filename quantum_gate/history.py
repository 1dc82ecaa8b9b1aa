"""The ledger's rows as a person reads them: one definition of the columns for ``quantum-gate history``
and the status page's "Recent cutovers" table. Pure (the clock is passed in)."""

from __future__ import annotations

from pathlib import Path

from quantum_gate.formatting import duration
from quantum_gate.ledger import LedgerRow

HEADER = (
    "cutover (UTC)",
    "age",
    "source",
    "deployment",
    "time to min",
    "verdict at min",
    "verdict",
    "report",
)


def at_min_events(row: LedgerRow) -> str:
    if row.verdict_at_min_events is None:
        return "-"
    return row.verdict_at_min_events + (" (borderline)" if row.borderline_at_min_events else "")


def current_verdict(row: LedgerRow) -> str:
    """The last verdict, marked "final" once a newer cutover superseded this one."""
    verdict = row.last_verdict or "-"
    return f"{verdict} (final)" if row.superseded_at is not None else verdict


def deployment(row: LedgerRow) -> str:
    """The source's own identity without the stream ID already shown as the cutover."""
    identity = row.identity.partition(":")[2].rpartition("@")[0]
    name = row.label or ""
    if identity and identity != "-":
        return f"{name} {identity[:12]}".strip()
    return name or "-"


def cells(row: LedgerRow, now: float) -> tuple[str, ...]:
    report = Path(row.reports[-1]).name if row.reports else "-"
    return (
        row.cutover_at.replace("+00:00", "Z"),
        duration(now - row.cutover_ms / 1000),
        row.source,
        deployment(row),
        duration(row.seconds_to_min_events),
        at_min_events(row),
        current_verdict(row),
        report,
    )


def render_history(rows: list[LedgerRow], now: float) -> str:
    if not rows:
        return "no cutovers recorded yet"
    table = [HEADER, *(cells(row, now) for row in rows)]
    widths = [max(len(line[column]) for line in table) for column in range(len(HEADER))]
    lines = [
        "  ".join(value.ljust(width) for value, width in zip(line, widths, strict=True)).rstrip()
        for line in table
    ]
    return "\n".join(lines)
