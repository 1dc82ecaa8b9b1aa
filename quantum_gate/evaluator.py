"""The evaluation (docs/architecture.md, "From XREAD to a gauge"): when to evaluate (the scheduler's job,
requests from the tail and the cutover tracker), the evaluation itself on frozen copies outside the
lock, and what follows it: the served result, verdict changes, alerts, reports, the on-gate-complete
hook and the ledger's row. APScheduler lives here and nowhere else.

A verdict is only served for the cutover state it was evaluated for: a result whose cutover changed
meanwhile is dropped and the evaluation asked for again, and a cutover change withdraws the served one.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from apscheduler.schedulers.background import BackgroundScheduler

from quantum_gate.alerts import Alerts
from quantum_gate.config import Settings
from quantum_gate.cutover import Cutover
from quantum_gate.daemon_state import EvaluatorState
from quantum_gate.gate import GateResult
from quantum_gate.gate_hook import run_hook
from quantum_gate.histograms import Histogram, window_histograms
from quantum_gate.ledger_feed import LedgerFeed
from quantum_gate.logfields import cutover_fields
from quantum_gate.pipeline import evaluate_document
from quantum_gate.provenance import DeploymentInfo
from quantum_gate.report_folder import ReportFiles
from quantum_gate.retention import Retention
from quantum_gate.shared_windows import SharedWindows
from quantum_gate.streamids import StreamId
from quantum_gate.systemd_notify import sd_notify
from quantum_gate.verdicts import Verdict

log = structlog.get_logger("quantum_gate")


@dataclass(frozen=True)
class EvaluationInputs:
    """What the evaluation reads besides the windows, taken with them under the lock."""

    cutover_error: str | None
    deployment: DeploymentInfo | None
    retention: Retention | None
    deployment_pending: bool = False  # deployment_info still runs: the automatic gate waits for it


class Evaluator:
    """The scheduler's evaluation and what follows it. It is handed callables (``inputs``) rather than
    the tracker and the tail, so it reads them only under the lock, with the windows' copy."""

    def __init__(
        self,
        settings: Settings,
        windows: SharedWindows,
        ledger: LedgerFeed,
        *,
        clock: Callable[[], float],
        inputs: Callable[[], EvaluationInputs],
    ) -> None:
        self.settings = settings
        self.windows = windows
        self.lock = windows.lock
        self.ledger = ledger
        self.clock = clock
        self.inputs = inputs  # called under the lock, with the windows' copy
        self.result: GateResult | None = None
        self.document: dict[str, Any] | None = None
        self.histograms: dict[str, dict[str, Histogram]] = {}
        self.last_evaluation_at: float | None = None
        self.evaluation_duration: float | None = None
        self.evaluations_total = 0
        self.evaluation_errors_total = 0
        self.reports = ReportFiles(settings.daemon, clock)
        self.alerts = Alerts(settings)
        self.requested = threading.Event()
        self.due: float | None = None  # monotonic time of the earliest pending request
        self.started_at = time.monotonic()
        self.scheduler: BackgroundScheduler | None = None
        self.job: Any = None
        self.completed_for: tuple[str | None, StreamId] | None = None
        self.reported_verdict: str | None = None
        self.last_verdict: str | None = None
        self.verdict_changes_total = 0
        self.last_verdict_cutover: tuple[str | None, StreamId] | None = None  # changes count per cutover
        windows.on_cutover_change(self._drop_stale_result)

    def state(self) -> EvaluatorState:
        with self.lock:
            return EvaluatorState(
                result=self.result,
                document=self.document,
                last_evaluation_at=self.last_evaluation_at,
                evaluation_duration=self.evaluation_duration,
                evaluations_total=self.evaluations_total,
                evaluation_errors_total=self.evaluation_errors_total,
                reports_written_total=self.reports.written_total,
                report_errors_total=self.reports.errors_total,
                reports_removed_total=self.reports.removed_total,
                verdict_changes_total=self.verdict_changes_total,
                requested=self.requested.is_set(),
                due=self.due,
                histograms=self.histograms,
                alerts=dict(self.alerts.active),
            )

    # ---- when to evaluate --------------------------------------------------------------------------

    def start(self, watcher: Callable[[], None] | None, poll_seconds: float) -> None:
        """The scheduler: this evaluation job and the cutover watcher's (``watcher``, every
        ``poll_seconds``). A request made before the job existed is honoured now, not lost."""
        logging.getLogger("apscheduler").setLevel(logging.ERROR)  # it logs every run at INFO
        scheduler = BackgroundScheduler(timezone=UTC)
        every = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        job = scheduler.add_job(
            self.tick, "interval", seconds=self.settings.daemon.interval_seconds, id="evaluate", **every
        )
        if watcher is not None:
            scheduler.add_job(watcher, "interval", seconds=poll_seconds, id="watch-cutover", **every)
        scheduler.start()
        self.scheduler, self.job = scheduler, job
        due = self.due
        if due is not None:
            self._move_job(max(due - time.monotonic(), 0.0))

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)

    def request(self, delay: float = 0.0) -> None:
        due = time.monotonic() + delay
        self.due = due if self.due is None else min(self.due, due)
        self.requested.set()
        self._move_job(delay)

    def _move_job(self, delay: float) -> None:
        job = self.job
        if job is not None:
            try:
                job.modify(next_run_time=datetime.now(UTC) + timedelta(seconds=delay))
            except Exception:  # broad on purpose: the scheduler may be shutting down; the tick will come
                return

    def events_arrived(self, cutover: Cutover | None, post_events: int, fresh: bool) -> None:
        """The tail routed a batch: reaching ``gate.min_events`` asks for the automatic gate now; new
        events otherwise are evaluated half an interval after the last evaluation started. While the
        gate is held (a rollout in progress, deployment_info still running) reaching min_events is not
        asked for at every batch (back-to-back evaluations): what releases the hold asks."""
        reached = False
        if cutover is not None and self.completed_for != cutover.identity():
            with self.lock:
                pending = self.inputs().deployment_pending
            reached = self._gate_may_complete(cutover, post_events, deployment_pending=pending)
        if reached:
            self.request()
        elif fresh and not self.requested.is_set():
            self.request(delay=self._half_interval_left())

    def _half_interval_left(self) -> float:
        """New events are evaluated half an interval after the last evaluation started (at once if that
        is past): with ticks alone, an event landing just after a tick would wait a whole interval plus
        the evaluation itself, more than "within one interval" from XADD to /metrics. Under a steady
        flow this evaluates twice per interval; a quiet stream keeps the plain interval."""
        due = self.started_at + self.settings.daemon.interval_seconds / 2
        return max(due - time.monotonic(), 0.0)

    # ---- the evaluation ----------------------------------------------------------------------------

    def tick(self) -> None:
        """Scheduler job (never overlapping, late runs coalesced). Under the lock it only copies what the
        evaluation reads (frozen windows, the cutover, what was captured for it); the evaluation, the
        document and the histograms run outside it, so the tail thread never waits on them."""
        self.requested.clear()
        self.due = None
        started = self.started_at = time.monotonic()
        try:
            with self.lock:
                now = self.clock()
                post, pre = self.windows.frozen()
                cutover, inputs = self.windows.cutover, self.inputs()
            result, document = evaluate_document(
                post,
                pre,
                cutover,
                self.settings,
                now,
                deployment=inputs.deployment,
                retention=inputs.retention,
                cutover_error=inputs.cutover_error,
            )
            histograms = window_histograms(post, pre)
        except Exception as exc:  # fail closed: never keep a PASS we can no longer vouch for
            self._evaluation_failed(exc)
            return
        with self.lock:
            superseded = self.windows.cutover != cutover  # it changed while we evaluated: never serve this
            if not superseded:
                self.result, self.document, self.histograms = result, document, histograms
                self.last_evaluation_at = now
                self.evaluation_duration = time.monotonic() - started
                self.evaluations_total += 1
        # A request that came in while this run was going (a new cutover, min_events reached) moved the
        # job's next run into this run, where max_instances=1 skips it: ask again, now it can run.
        pending = self.due
        if superseded:
            self.request()
            return
        if pending is not None:
            self.request(delay=max(pending - time.monotonic(), 0.0))
        self.after_evaluation(result, document, deployment_pending=inputs.deployment_pending)
        if os.environ.get("WATCHDOG_USEC"):
            sd_notify("WATCHDOG=1")

    def _drop_stale_result(self) -> None:
        """The cutover (or its rollout) just changed, under the lock: the served verdict belongs to the
        previous state, so nothing is served until the new state is evaluated, a moment later (fail
        closed: a PASS of revision 2 must never sit next to the rollback's rollout in progress)."""
        if self.result is not None and self.result.cutover != self.windows.cutover:
            self.result = None
            self.document = None

    def _evaluation_failed(self, exc: Exception) -> None:
        with self.lock:
            self.evaluation_errors_total += 1
            if self.result is not None and self.result.verdict != Verdict.INSUFFICIENT_DATA:
                self.result = None
                self.document = None
        log.error("gate.evaluation_failed", error=type(exc).__name__, detail=str(exc)[:300], exc_info=exc)

    # ---- what follows an evaluation ----------------------------------------------------------------

    def after_evaluation(
        self, result: GateResult, document: dict[str, Any], *, deployment_pending: bool = False
    ) -> None:
        """The ledger's row, verdict changes, alerts; the report and the hook once the gate completes
        (not while deployment_info still runs: the report would say "not captured yet")."""
        self.ledger.evaluated(result)
        self._count_verdict(result)
        self.alerts.update(result)
        cutover = result.cutover
        if cutover is None:
            return
        gated = result.gated()
        ready = (
            self._gate_may_complete(cutover, result.post.events, deployment_pending=deployment_pending)
            and bool(gated)
            and all(report.post.samples >= self.settings.gate.min_samples for report in gated)
        )
        if ready and self.completed_for != cutover.identity():
            self.completed_for = cutover.identity()
            path = self._write_report(document, cutover)
            log.info(
                "gate.completed",
                verdict=result.verdict,
                report=str(path) if path else None,
                post_events=result.post.events,
                **cutover_fields(cutover),
            )
            self.reported_verdict = result.verdict
            run_hook(self.settings.daemon, os.environ, path, result.verdict)
        elif self.completed_for == cutover.identity() and result.verdict != self.reported_verdict:
            self._write_report(document, cutover)
            self.reported_verdict = result.verdict

    def _gate_may_complete(self, cutover: Cutover, post_events: int, *, deployment_pending: bool) -> bool:
        """min_events reached and nothing holds the automatic gate: not a rollout in progress, not the
        deployment's description still being captured (at most its timeout)."""
        return (
            post_events >= self.settings.gate.min_events
            and not cutover.rollout_in_progress
            and not deployment_pending
        )

    def _count_verdict(self, result: GateResult) -> None:
        """A verdict change of the same cutover is a flap (counted); a new deployment is not."""
        identity = result.cutover.identity() if result.cutover is not None else None
        same_cutover, self.last_verdict_cutover = identity == self.last_verdict_cutover, identity
        if result.verdict == self.last_verdict:
            return
        if self.last_verdict is not None and same_cutover:
            with self.lock:
                self.verdict_changes_total += 1
        log.info(
            "gate.verdict_changed",
            verdict=result.verdict,
            previous=self.last_verdict,
            reasons=list(result.reasons)[:10],
            post_events=result.post.events,
        )
        sd_notify(f"STATUS=verdict {result.verdict}; post {result.post.events}/{result.progress.min_events}")
        self.last_verdict = result.verdict

    def _write_report(self, document: dict[str, Any], cutover: Cutover) -> Path | None:
        path = self.reports.write(document)
        if path is not None:
            self.ledger.report_written(path, cutover)
        return path
