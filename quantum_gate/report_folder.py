"""The daemon's report folder: a report pair per completed gate and per later verdict change (written by
``report_files``), the retention limits applied after each, and what could not be written, counted."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from quantum_gate.config import DaemonSettings
from quantum_gate.report_files import prune_reports, write_report

log = structlog.get_logger("quantum_gate")


class ReportFiles:
    """The daemon's report folder: writes a report pair, applies the retention limits after each one,
    and counts what could not be written. A failure is never fatal (the verdict stays on /gate and
    /metrics) and is logged once per change of the failure, not once per report."""

    def __init__(self, settings: DaemonSettings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.clock = clock
        self.lock = threading.Lock()
        self.written_total = 0
        self.errors_total = 0
        self.removed_total = 0
        self.last_error: str | None = None

    def write(self, document: dict[str, Any]) -> Path | None:
        directory = self.settings.report_dir
        try:
            path = write_report(directory, document)
        except OSError as exc:
            self._failed(f"{exc.filename or directory}: {exc.strerror or exc}")
            return None
        with self.lock:
            self.written_total += 1
            recovered, self.last_error = self.last_error, None
        if recovered is not None:
            log.info("report.recovered", directory=str(directory), previous_error=recovered)
        log.info("report.written", path=str(path), verdict=document["verdict"])
        self._prune()
        return path

    def _failed(self, error: str) -> None:
        with self.lock:
            self.errors_total += 1
            changed, self.last_error = self.last_error != error, error
        if changed:
            log.error("report.failed", directory=str(self.settings.report_dir), error=error)

    def _prune(self) -> None:
        days = self.settings.reports_max_age_days
        try:
            removed = prune_reports(
                self.settings.report_dir,
                keep=self.settings.reports_keep,
                max_age_seconds=days * 86_400 if days is not None else None,
                now=self.clock(),
            )
        except OSError as exc:
            self._failed(f"retention: {exc.filename or self.settings.report_dir}: {exc.strerror or exc}")
            return
        if removed:
            with self.lock:
                self.removed_total += len(removed)
            log.info("report.removed", files=len(removed), keep=self.settings.reports_keep, max_age_days=days)
