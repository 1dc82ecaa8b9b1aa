"""Snapshots for tests that render or scrape one without a daemon: ``published`` composes a ``Snapshot``
the way ``Daemon.snapshot`` does, from the parts' states at rest plus the fields a test names."""

from __future__ import annotations

import dataclasses
from typing import Any

from quantum_gate.config import Settings
from quantum_gate.daemon_state import CutoverState, EvaluatorState, IngestorState, WindowsState
from quantum_gate.exporter import Snapshot
from quantum_gate.ledger_writer import LedgerState

# Every part's state at rest: Redis up, nothing read, counted or evaluated yet (``published`` below).
PART_DEFAULTS: dict[type, dict[str, Any]] = {
    IngestorState: {
        "ready": True,
        "redis_up": True,
        "redis_condition": None,
        "stream_type": None,
        "endpoint": None,
        "failovers_total": 0,
        "rollbacks_total": 0,
        "replica": None,
        "last_id": None,
        "accepted_total": 0,
        "entries_read_total": 0,
        "refused_total": 0,
        "lost_total": 0,
        "resets_total": 0,
        "synced_added": None,
        "last_event_ms": None,
        "last_entry_ms": None,
        "stream_length": None,
        "post_window_truncated": None,
        "retention": None,
    },
    CutoverState: {
        "source": "systemd",
        "cutover": None,
        "pending": None,
        "cutovers_total": 0,
        "systemd_up": None,
        "systemd_reason": None,
    },
    EvaluatorState: {
        "result": None,
        "document": None,
        "last_evaluation_at": None,
        "evaluation_duration": None,
        "evaluations_total": 0,
        "evaluation_errors_total": 0,
        "reports_written_total": 0,
        "report_errors_total": 0,
        "reports_removed_total": 0,
        "verdict_changes_total": 0,
        "requested": False,
        "due": None,
    },
    WindowsState: {
        "events": {"post": 0, "pre": 0},
        "capacity": {"post": 0, "pre": 0},
        "rate_per_minute": None,
    },
}


def published(
    settings: Settings, *, version: str = "0.1.0", ledger: LedgerState | None = None, **fields: Any
) -> Snapshot:
    """A ``Snapshot`` as ``Daemon.snapshot`` composes it, each keyword going to the part whose state has
    that field (``redis_up`` to the tail's, ``cutover`` to the tracker's, ``events`` to the windows'...);
    a name no part publishes is an error, never ignored."""
    tail = IngestorState(**_part_fields(IngestorState, fields))
    cutovers = CutoverState(**_part_fields(CutoverState, fields))
    evaluation = EvaluatorState(**_part_fields(EvaluatorState, fields))
    windows = WindowsState(**_part_fields(WindowsState, fields))
    if fields:
        raise TypeError(f"no part publishes {sorted(fields)}")
    return Snapshot(
        version=version,
        settings=settings,
        tail=tail,
        cutovers=cutovers,
        evaluation=evaluation,
        windows=windows,
        ledger=ledger,
    )


def _part_fields(part: Any, fields: dict[str, Any]) -> dict[str, Any]:
    """The part's defaults with the keywords it has a field for, taken out of ``fields``."""
    names = {each.name for each in dataclasses.fields(part)}
    return {**PART_DEFAULTS[part], **{name: fields.pop(name) for name in names & fields.keys()}}
