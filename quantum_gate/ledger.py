"""The deployment ledger's rows: one per adopted cutover, kept across daemon restarts.

``CutoverHistory`` (pure, clock passed in) turns the daemon's events — a cutover adopted, an evaluation,
a report written — into the row of the current cutover (``LedgerRow``), and says when that row changed.
The SQLite file is ``ledger_store`` (schema, upsert, retention, read-only readers); the daemon's thread
that writes the changed rows is ``ledger_writer``. Nothing here does I/O. Schema and retention:
docs/ledger.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from quantum_gate.cutover import Cutover
from quantum_gate.gate import GateResult
from quantum_gate.verdicts import Verdict

MAX_REPORTS_PER_ROW = 20  # the newest report paths of one cutover (a flapping verdict writes many)
MAX_REASONS_PER_ROW = 10
MAX_RESUMABLE_ROWS = 1000  # earlier rows a returning cutover can continue (bounded like the file)


@dataclass(frozen=True, slots=True)
class LedgerRow:
    identity: str
    source: str
    label: str | None
    cutover_at: str
    cutover_stream_id: str
    cutover_ms: int
    adopted_at: float
    provenance: dict[str, Any] = field(default_factory=dict)
    reached_min_events_at: float | None = None
    seconds_to_min_events: float | None = None
    verdict_at_min_events: str | None = None
    borderline_at_min_events: bool | None = None
    last_verdict: str | None = None
    last_reasons: tuple[str, ...] = ()
    models: dict[str, str] = field(default_factory=dict)
    borderline: tuple[str, ...] = ()
    last_evaluated_at: float | None = None
    verdict_changes: int = 0
    reports: tuple[str, ...] = ()
    superseded_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("last_reasons", "borderline", "reports"):
            data[name] = list(data[name])
        return data


def cutover_identity(cutover: Cutover) -> str:
    """A stable text key for "this deployment": the source's own identity plus the cutover's stream ID."""
    key, stream_id = cutover.identity()
    return f"{cutover.source}:{key or '-'}@{stream_id}"


def cutover_label(cutover: Cutover) -> str | None:
    """What an operator recognises: the unit, container or deployment (or nothing for --after)."""
    return getattr(cutover, "label", None) or cutover.unit


# ---- the current cutover's row (pure) --------------------------------------------------------------


class CutoverHistory:
    """The row of the cutover being gated. Each method returns the rows that changed (to be written)."""

    def __init__(self, min_events: int, resumed: Mapping[str, LedgerRow] | None = None) -> None:
        self.min_events = min_events
        self.current: LedgerRow | None = None
        self._resumed = dict(resumed or {})  # rows read back at start: a restart continues its row

    def adopt(
        self, cutover: Cutover, now: float, provenance: Mapping[str, Any] | None = None
    ) -> list[LedgerRow]:
        identity = cutover_identity(cutover)
        changed: list[LedgerRow] = []
        previous = self.current
        if previous is not None and previous.identity == identity:
            return []
        if previous is not None and previous.superseded_at is None:
            superseded = replace(previous, superseded_at=now)
            changed.append(superseded)
            # A cutover that comes back (A -> B -> A) continues its own row, as after a restart.
            self._resumed[previous.identity] = superseded
            while len(self._resumed) > MAX_RESUMABLE_ROWS:
                del self._resumed[next(iter(self._resumed))]
        resumed = self._resumed.pop(identity, None)
        if resumed is not None:
            row = replace(resumed, superseded_at=None)
        else:
            row = LedgerRow(
                identity=identity,
                source=cutover.source,
                label=cutover_label(cutover),
                cutover_at=cutover.timestamp,
                cutover_stream_id=str(cutover.stream_id),
                cutover_ms=cutover.stream_id.ms,
                adopted_at=now,
                provenance=dict(provenance or {}),
            )
        self.current = row
        changed.append(row)
        return changed

    def evaluated(self, result: GateResult, now: float) -> list[LedgerRow]:
        """The row after an evaluation of the current cutover; [] when nothing worth writing changed."""
        row = self.current
        if row is None or result.cutover is None or cutover_identity(result.cutover) != row.identity:
            return []
        models: dict[str, str] = {report.name: report.verdict for report in result.gated()}
        borderline = tuple(f"{model} {check.name}" for model, check in result.borderline())
        reasons = tuple(result.reasons[:MAX_REASONS_PER_ROW])
        updated = replace(
            row, last_verdict=result.verdict, last_reasons=reasons, models=models, borderline=borderline
        )
        if row.last_verdict is not None and row.last_verdict != result.verdict:
            updated = replace(updated, verdict_changes=row.verdict_changes + 1)
        if row.reached_min_events_at is None and _complete(result):
            cutover_seconds = row.cutover_ms / 1000
            updated = replace(
                updated,
                reached_min_events_at=now,
                seconds_to_min_events=max(now - cutover_seconds, 0.0),
                verdict_at_min_events=result.verdict,
                borderline_at_min_events=result.verdict_borderline(),
            )
        if _same_but_time(updated, row):
            self.current = replace(updated, last_evaluated_at=now)
            return []
        self.current = replace(updated, last_evaluated_at=now)
        return [self.current]

    def provenance_captured(self, cutover: Cutover, provenance: Mapping[str, Any]) -> list[LedgerRow]:
        """The deployment information, captured after the row was adopted (off the tail thread)."""
        return self._update(cutover, lambda row: replace(row, provenance=dict(provenance)))

    def report_written(self, path: Path | str, cutover: Cutover) -> list[LedgerRow]:
        """The report goes to the row of the cutover it was evaluated for: the evaluation runs outside
        the lock, so the cutover may have been superseded (its row kept for resuming) in the meantime."""
        return self._update(cutover, lambda row: _with_report(row, path))

    def _update(self, cutover: Cutover, change: Callable[[LedgerRow], LedgerRow]) -> list[LedgerRow]:
        """``change`` applied to the row of ``cutover``: the current one, or one superseded meanwhile."""
        identity = cutover_identity(cutover)
        if self.current is not None and self.current.identity == identity:
            self.current = change(self.current)
            return [self.current]
        superseded = self._resumed.get(identity)
        if superseded is None:
            return []
        self._resumed[identity] = change(superseded)
        return [self._resumed[identity]]


def _with_report(row: LedgerRow, path: Path | str) -> LedgerRow:
    return replace(row, reports=(*row.reports, str(path))[-MAX_REPORTS_PER_ROW:])


def _complete(result: GateResult) -> bool:
    """The automatic gate's moment: min_events reached and a verdict that is not INSUFFICIENT_DATA."""
    return (
        result.progress.events >= result.progress.min_events and result.verdict != Verdict.INSUFFICIENT_DATA
    )


def _same_but_time(first: LedgerRow, second: LedgerRow) -> bool:
    return replace(first, last_evaluated_at=None) == replace(second, last_evaluated_at=None)


def default_ledger_path(configured: Path | None, environ: Mapping[str, str]) -> Path | None:
    """``ledger.path`` when set; else ``$STATE_DIRECTORY/ledger.sqlite3`` under systemd's StateDirectory=
    (its first entry when it lists several); else no ledger."""
    if configured is not None:
        return configured
    state = environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(state) / "ledger.sqlite3" if state else None
