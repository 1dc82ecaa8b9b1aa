"""Which cutover the daemon gates (docs/architecture.md, "Cutover moves", "A rollout is not a restart").

The start-up query and the watcher (a scheduler job) ask the cutover source and only record a
*pending* cutover; the tail thread adopts it (``adopt_pending``), because adopting reads Redis: a
backfill, or the baseline re-read when the cutover moved forward. The same identity in a newer state (a
rollout's progress) replaces the cutover in place. Also here: whether the source answers (systemd up,
reason, error counts), the deployment information captured for the adopted cutover, and its ledger row.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import redis
import structlog

from quantum_gate.backfill import Stopping, backfill
from quantum_gate.config import Settings
from quantum_gate.cutover import Cutover, CutoverUnavailable, Rollout
from quantum_gate.cutover_sources import cutover_source
from quantum_gate.daemon_state import CutoverState
from quantum_gate.ledger_feed import LedgerFeed
from quantum_gate.logfields import cutover_fields
from quantum_gate.provenance import DeploymentInfo, capture_logged, provenance_json
from quantum_gate.shared_windows import SharedWindows
from quantum_gate.stream import fill_baseline
from quantum_gate.streamids import StreamId
from quantum_gate.tail_progress import TailProgress
from quantum_gate.windows import Window

log = structlog.get_logger("quantum_gate")


class CutoverTracker:
    """The cutover source and the cutover's life: found (pending), adopted (in ``windows.cutover``),
    moved on in place (a rollout). Adopting needs Redis, so the tail thread calls ``adopt_pending``."""

    def __init__(
        self,
        settings: Settings,
        windows: SharedWindows,
        progress: TailProgress,
        ledger: LedgerFeed,
        stopping: threading.Event,
        *,
        clock: Callable[[], float],
        request_evaluation: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.windows = windows
        self.lock = windows.lock
        self.progress = progress
        self.ledger = ledger
        self.stopping = stopping
        self.clock = clock
        self.request_evaluation = request_evaluation
        self.source = cutover_source(settings.cutover, clock, cancel=stopping)
        self.pending: Cutover | None = None
        self.error: str | None = None
        self.systemd_up: bool | None = None
        self.systemd_errors: Counter[str] = Counter()
        self.cutovers_total = 0
        # When the start-up query began (clock seconds), while it has not answered yet.
        self.systemd_waiting_since: float | None = None
        # report.deployment_info's output, captured when a cutover is adopted, with that cutover's identity
        self.deployment: tuple[tuple[str | None, StreamId], DeploymentInfo] | None = None
        # The identity whose deployment_info capture is running (on a thread of its own, never the tail)
        self.capturing: tuple[str | None, StreamId] | None = None

    def state(self) -> CutoverState:
        with self.lock:
            return CutoverState(
                source=self.source.kind,
                cutover=self.windows.cutover,
                pending=self.pending,
                cutovers_total=self.cutovers_total,
                systemd_up=self.systemd_up,
                systemd_reason=self.error,
                systemd_errors=dict(self.systemd_errors),
                systemd_waiting_since=self.systemd_waiting_since,
                deployment_capturing=self.capture_pending(),
            )

    def deployment_now(self) -> DeploymentInfo | None:
        """report.deployment_info's output captured for the current cutover, never another's. Under
        the lock."""
        captured = self.deployment
        current = self.windows.cutover.identity() if self.windows.cutover is not None else None
        return captured[1] if captured is not None and captured[0] == current else None

    def capture_pending(self) -> bool:
        """Whether deployment_info is still running for the current cutover (the automatic gate waits
        for it, so the report it writes carries the deployment). Under the lock."""
        cutover = self.windows.cutover
        return cutover is not None and self.capturing == cutover.identity()

    def propose(self, cutover: Cutover) -> None:
        """Record ``cutover`` as pending, as the watcher does on finding one; the tail adopts it."""
        with self.lock:
            self.pending = cutover

    # ---- asking the source (start-up, the watcher job) --------------------------------------------

    def initial_cutover(self) -> None:
        if self.source.kind == "fixed":
            self.pending = self.source.query()
            return
        self.watch()

    def await_initial_cutover(self) -> None:
        """Start-up: the first query of the cutover source (systemctl, docker, kubectl) runs on a thread
        of its own while this one waits for it or for a stop request, so SIGTERM never waits for a hung
        source (the query is killed)."""
        if self.source.kind == "fixed":
            self.initial_cutover()
            return
        with self.lock:
            self.systemd_waiting_since = self.clock()

        def query() -> None:
            try:
                self.initial_cutover()
            finally:
                with self.lock:
                    self.systemd_waiting_since = None

        worker = threading.Thread(target=query, name="initial-cutover", daemon=True)
        worker.start()
        while worker.is_alive() and not self.stopping.is_set():
            worker.join(0.1)
        worker.join(timeout=2)  # stopping: the query kills systemctl within a poll step; let it finish

    def watch(self) -> None:
        """Scheduler job: ask the source (systemd, docker, kubernetes); a new identity (InvocationID,
        container start, ReplicaSet) or start time becomes a pending cutover. The same identity with a
        new state (a rollout's progress) replaces the cutover in place: the windows stay as they are."""
        target = {"source": self.source.kind, "target": self.source.target}
        try:
            found = self.source.query()
        except CutoverUnavailable as exc:
            if self.stopping.is_set():
                return  # abandoned on the way out: not a systemd fault
            with self.lock:
                changed = self.systemd_up is not False or self.error != exc.message
                self.systemd_up = False
                self.error = exc.message
                self.systemd_errors[exc.reason] += 1
            if changed:
                cutover = self.windows.cutover
                log.warning(
                    "cutover.unavailable",
                    **target,
                    reason=exc.reason,
                    error=exc.message,
                    keeping=str(cutover.stream_id) if cutover else None,
                )
            return
        with self.lock:
            if self.systemd_up is False:
                log.info("cutover.available", **target)
            self.systemd_up = True
            self.error = None
            current = self.pending or self.windows.cutover
            if current is None or current.identity() != found.identity():
                self.pending = found
                return
            if current == found:
                return
            if self.pending is not None:
                self.pending = found
            else:
                self.windows.set_cutover(found)
        if _rollout_changed(current.rollout, found.rollout):
            self._rollout_progressed(found)

    def _rollout_progressed(self, cutover: Cutover) -> None:
        """A rollout moved on: say so once per change and evaluate now, so a completed rollout's gate
        does not wait for the next tick."""
        rollout = cutover.rollout
        if rollout is not None:
            log.info(
                "rollout.completed" if rollout.complete else "rollout.progressing",
                target=self.source.target,
                cutover_id=str(cutover.stream_id),
                updated=rollout.updated,
                replicas=rollout.replicas,
                old_ready=rollout.old_ready,
            )
        self.request_evaluation()

    # ---- adopting (the tail thread, which owns the connection) ------------------------------------

    def adopt_pending(self, client: redis.Redis) -> None:
        """Adopt the pending cutover, if any."""
        taken_in_place = False
        with self.lock:
            pending, cutover = self.pending, self.windows.cutover
            if pending is not None and cutover is not None and pending.identity() == cutover.identity():
                # The deployment already adopted, in a newer state (a rollout moved on while it was
                # being adopted): take the state, neither re-read nor count it again.
                self.windows.set_cutover(pending)  # withdraws the verdict served for the older state
                self.pending, pending, taken_in_place = None, None, pending != cutover
        if taken_in_place:
            self.request_evaluation()  # the new state's verdict, without waiting for the next tick
        if pending is not None:
            self._adopt(client, pending)

    def _adopt(self, client: redis.Redis, new: Cutover) -> None:
        """Adopt a cutover: the post window keeps what it read at or after it; the baseline is
        re-read from Redis as the newest events before it (a backwards move rebuilds both)."""
        with self.lock:
            old = self.windows.cutover
        if old is None or new.stream_id < old.stream_id:
            backfill(client, self.settings, new, self.windows, self.progress, on_page=self.abort_if_stopping)
            log.info(
                "cutover.detected",
                **cutover_fields(new),
                previous=str(old.stream_id) if old else None,
                post_events=len(self.windows.post),
                baseline_events=len(self.windows.pre),
            )
        else:
            self._move_forward(client, old, new)
        configured = bool(self.settings.report.deployment_info)
        with self.lock:
            self.cutovers_total += 1
            self.pending = None if self.pending == new else self.pending
            self.capturing = new.identity() if configured else None
            changed = self.ledger.history.adopt(new, self.clock(), _provenance(self.settings, new, None))
        self.ledger.record(changed)
        self.request_evaluation()
        if configured:
            # A subprocess of up to deployment_info_timeout_seconds: never on the tail thread.
            threading.Thread(
                target=self._capture_deployment, args=(new,), name="deployment-info", daemon=True
            ).start()

    def _capture_deployment(self, cutover: Cutover) -> None:
        """Run report.deployment_info for ``cutover``; keep what it printed only while that cutover is
        still the one gated (a later one has its own capture), then evaluate again."""
        report = self.settings.report
        deployment = None
        try:
            deployment = capture_logged(
                report.deployment_info,
                timeout=report.deployment_info_timeout_seconds,
                max_bytes=report.deployment_info_max_bytes,
                cutover_id=str(cutover.stream_id),
            )
        finally:
            with self.lock:
                if self.capturing == cutover.identity():
                    self.capturing = None
                current = (
                    self.windows.cutover is not None and self.windows.cutover.identity() == cutover.identity()
                )
                if current and deployment is not None:
                    self.deployment = (cutover.identity(), deployment)
                provenance = _provenance(self.settings, cutover, deployment)
                changed = self.ledger.history.provenance_captured(cutover, provenance) if current else []
        self.ledger.record(changed)
        if current:
            self.request_evaluation()

    def _move_forward(self, client: redis.Redis, old: Cutover, new: Cutover) -> None:
        """The cutover moved forward: the post window keeps its events at or after the new one, the
        baseline is re-read as the newest events before it."""
        windows = self.windows
        fresh_pre = Window("pre", self.settings.windows.baseline, windows.post.vocabulary)
        fill_baseline(client, self.settings, new.stream_id, fresh_pre, on_page=self.abort_if_stopping)
        with self.lock:
            dropped = windows.post.retain_from(new.stream_id.packed_clamped())  # notes too
            windows.pre = fresh_pre
            windows.set_cutover(new)
        log.info(
            "cutover.detected",
            **cutover_fields(new),
            previous=str(old.stream_id),
            post_events_kept=len(windows.post),
            post_events_moved=dropped,
            baseline_events=len(fresh_pre),
        )

    def abort_if_stopping(self) -> None:
        """Called once per backfill page: a stop request abandons the backfill even when every
        entry on the way is skipped (and so never reaches a window)."""
        if self.stopping.is_set():
            raise Stopping


def _rollout_changed(before: Rollout | None, after: Rollout | None) -> bool:
    return before != after and after is not None


def _provenance(settings: Settings, cutover: Cutover, deployment: DeploymentInfo | None) -> dict[str, Any]:
    """The ledger row's provenance: the cutover document, the deployment's description, the notes."""
    report = settings.report
    return {
        "cutover": cutover.to_json(),
        **provenance_json(deployment, report.notes, None, configured=report.deployment_info),
    }
