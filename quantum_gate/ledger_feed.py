"""The deployment ledger as the daemon feeds it (docs/ledger.md): the current cutover's row
(``CutoverHistory``, changed under the windows' lock by the cutover tracker and the evaluator) and the
writer thread the changed rows are handed to (never waited on)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from quantum_gate.config import Settings
from quantum_gate.cutover import Cutover
from quantum_gate.gate import GateResult
from quantum_gate.ledger import CutoverHistory, LedgerRow, default_ledger_path
from quantum_gate.ledger_writer import LedgerState, LedgerWriter


class LedgerFeed:
    """``history`` is the current cutover's row (under ``lock``); ``writer`` is None without a ledger."""

    def __init__(self, settings: Settings, clock: Callable[[], float], lock: threading.RLock) -> None:
        self.min_events = settings.gate.min_events
        self.lock = lock
        self.history = CutoverHistory(self.min_events)
        self.writer = _ledger_writer(settings, clock)

    def start(self) -> None:
        """Read the file's rows back (a restart continues its row), then start the writer thread."""
        if self.writer is not None:
            self.history = CutoverHistory(self.min_events, self.writer.open())
            self.writer.start()

    def stop(self) -> None:
        if self.writer is not None:
            self.writer.stop()

    def record(self, changed: list[LedgerRow]) -> None:
        """Hand changed ledger rows to the ledger's own thread (never waits on the file)."""
        if self.writer is not None:
            self.writer.submit(changed)

    def evaluated(self, result: GateResult) -> None:
        with self.lock:
            changed = self.history.evaluated(result, result.evaluated_at)
        self.record(changed)

    def report_written(self, path: Path, cutover: Cutover) -> None:
        """The report goes to the row of the cutover it was evaluated for (maybe superseded meanwhile)."""
        with self.lock:
            changed = self.history.report_written(path, cutover)
        self.record(changed)

    def state(self) -> LedgerState | None:
        return self.writer.state() if self.writer is not None else None


def _ledger_writer(settings: Settings, clock: Callable[[], float]) -> LedgerWriter | None:
    """The deployment ledger's writer, or None without a ledger (docs/ledger.md)."""
    path = default_ledger_path(settings.ledger.path, os.environ)
    if path is None:
        return None
    return LedgerWriter(
        path, max_rows=settings.ledger.max_rows, max_age_days=settings.ledger.max_age_days, clock=clock
    )
