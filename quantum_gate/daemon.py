"""``quantum-gate run``: the long-running service.

Phases, as in uvicorn's server: start (bind HTTP, find the cutover, backfill both windows from Redis,
sd_notify READY), main loop (one tail thread doing XREAD BLOCK; APScheduler running the evaluation
and the cutover watcher), shutdown (signal handler only sets a flag; bounded by a timeout; a second
signal forces). Every Redis command runs on the tail thread, so the connection has one owner; the
windows are guarded by one lock, under which the evaluation only copies them (``frozen_pair``) before
evaluating outside it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import redis
import structlog
from apscheduler.schedulers.background import BackgroundScheduler

from quantum_gate import __version__, logs
from quantum_gate.config import DaemonSettings, Settings, parse_listen
from quantum_gate.config_loading import resolve_redis_password
from quantum_gate.connection import (
    Endpoint,
    cluster_endpoint,
    open_client,
    sentinel_endpoint_current,
)
from quantum_gate.contract import Event, Skip
from quantum_gate.cutover import Cutover, CutoverUnavailable, Rollout
from quantum_gate.cutover_sources import cutover_source
from quantum_gate.exporter import Snapshot
from quantum_gate.failover import EndpointWatch, ReplicaStatus, detect_rollback, replica_status
from quantum_gate.gate import GateResult
from quantum_gate.histograms import Histogram, window_histograms
from quantum_gate.httpapp import HttpApp, HttpServer
from quantum_gate.ledger import CutoverHistory, LedgerRow, default_ledger_path
from quantum_gate.ledger_writer import LedgerWriter
from quantum_gate.pipeline import evaluate_document, new_windows, rate_from_windows
from quantum_gate.provenance import DeploymentInfo, capture_logged, provenance_json
from quantum_gate.redis_state import describe_redis_error, is_wrong_type, key_type, wrong_type_message
from quantum_gate.report_files import prune_reports, write_report
from quantum_gate.retention import Retention, RetentionWatch, retention_for_windows
from quantum_gate.statuspage import render_status_page
from quantum_gate.stream import (
    Backfill,
    RawEntry,
    entry_id,
    fill_baseline,
    fill_post,
    limits_from,
    load_windows,
    parse_raw,
    previous_id,
    read_after,
    revrange_pages,
    stream_info,
)
from quantum_gate.stream_gaps import GapTracker, StreamInfo
from quantum_gate.streamids import SEQ_BITS, StreamId
from quantum_gate.verdicts import Verdict
from quantum_gate.webconfig import WebConfig, load_web_config
from quantum_gate.windows import Window, frozen_pair

log = structlog.get_logger("quantum_gate")
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
XINFO_EVERY_SECONDS = 5.0


class _Stopping(Exception):  # noqa: N818 - control flow, not an error
    """Raised inside a backfill to abandon it when the daemon is asked to stop."""


def sd_notify(message: str) -> bool:
    """systemd's notify protocol (a datagram to $NOTIFY_SOCKET); a no-op outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
    except OSError:
        return False
    return True


class BacklogCount:
    """What a backfill read up to ``upto``, the tail's starting position when the cutover became known
    only after the tail had started: those entries are not counted yet; the tail counted the newer."""

    def __init__(self, upto: StreamId) -> None:
        self.upto = upto
        self.accepted = 0
        self.skipped: Counter[str] = Counter()
        self.refused = 0

    def hooks(self, window: Window) -> dict[str, Any]:
        """``fill_newest`` callbacks for one window. Each entry's refused keys are the growth of the
        window's lifetime count since the previous entry (the contract's and the vocabulary cap's)."""
        seen = window.counters.refused_keys

        def take(stream_id: StreamId | None) -> bool:
            nonlocal seen
            grown, seen = window.counters.refused_keys - seen, window.counters.refused_keys
            inside = stream_id is None or stream_id <= self.upto
            self.refused += grown if inside else 0
            return inside

        def on_accepted(event: Event) -> None:
            self.accepted += take(event.stream_id)

        def on_skip(stream_id: StreamId | None, skip: Skip) -> None:
            if take(stream_id):
                self.skipped[skip.reason] += 1

        return {"on_accepted": on_accepted, "on_skip": on_skip}


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


class Daemon:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        web: WebConfig | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.web = web  # the parsed --web-config-file (TLS, basic auth, headers), None = plain HTTP
        self.limits = limits_from(settings)
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.post, self.pre = new_windows(settings)
        self.post.vocabulary.guard = self.lock
        self.source = cutover_source(settings.cutover, clock, cancel=self.stopping)
        self.cutover: Cutover | None = None
        self.pending_cutover: Cutover | None = None
        self.cutover_error: str | None = None
        self.systemd_up: bool | None = None
        self.systemd_errors: Counter[str] = Counter()
        self.cutovers_total = 0
        self.last_id: StreamId | None = None
        # The tail's first position when it started before any cutover was known: the entries up to
        # it are counted by the first backfill, those after it by the tail as they arrive.
        self.backlog_end: StreamId | None = None
        # When the start-up systemctl query began (clock seconds), while it has not answered yet.
        self.systemd_waiting_since: float | None = None
        self.redis_up = False
        self.redis_condition: str | None = None  # what is wrong with Redis, one line (None while up)
        self.stream_type: str | None = None  # TYPE of the stream key as last seen: stream, none, string...
        self.redis_state_logged = False  # the first outcome is logged even when it is "down"
        self.accepted_total = 0
        self.entries_read_total = 0
        self.skipped_total: Counter[str] = Counter()
        self.refused_total = 0  # each refused model key once (contract limits or the max_models cap)
        self.last_event_ms: int | None = None
        self.last_entry_ms: int | None = None
        self.gaps = GapTracker()
        self.endpoints = EndpointWatch()  # the node read now; failovers seen (Sentinel)
        self.rollbacks_total = 0
        self.replica: ReplicaStatus | None = None
        self.stream_length: int | None = None
        self.post_window_truncated: bool | None = None
        self.retention: Retention | None = None
        self.retention_watch = RetentionWatch()
        # report.deployment_info's output, captured when a cutover is adopted, with that cutover's identity
        self.deployment: tuple[tuple[str | None, StreamId], DeploymentInfo] | None = None
        self._init_evaluation()
        self._init_ledger()

    def _init_evaluation(self) -> None:
        """What the evaluator owns: the latest result and its document, counts, the scheduler's job."""
        self.result: GateResult | None = None
        self.document: dict[str, Any] | None = None
        self.histograms: dict[str, dict[str, Histogram]] = {}
        self.last_evaluation_at: float | None = None
        self.evaluation_duration: float | None = None
        self.evaluations_total = 0
        self.evaluation_errors_total = 0
        self.reports = ReportFiles(self.settings.daemon, self.clock)
        self.evaluation_requested = threading.Event()
        self.evaluation_due: float | None = None  # monotonic time of the earliest pending request
        self.evaluation_started_at = time.monotonic()
        self.evaluation_job: Any = None
        self.alerts: dict[str, bool] = {"low_event_rate": False, "collapse": False}
        self.completed_for: tuple[str | None, StreamId] | None = None
        self.reported_verdict: str | None = None
        self.last_verdict: str | None = None

    def _init_ledger(self) -> None:
        """The deployment ledger's state: the current cutover's row, the writer (or None), flapping."""
        self.verdict_changes_total = 0
        self.last_verdict_cutover: tuple[str | None, StreamId] | None = None  # changes count per cutover
        self.history = CutoverHistory(self.settings.gate.min_events)
        self.ledger = _ledger_writer(self.settings, self.clock)

    @property
    def reports_written_total(self) -> int:
        return self.reports.written_total

    # ---- snapshot for HTTP -------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        with self.lock:
            return Snapshot(
                version=__version__,
                settings=self.settings,
                redis_up=self.redis_up,
                redis_condition=self.redis_condition,
                stream_type=self.stream_type,
                systemd_waiting_since=self.systemd_waiting_since,
                systemd_up=self.systemd_up,
                systemd_reason=self.cutover_error,
                cutover=self.cutover,
                cutovers_total=self.cutovers_total,
                accepted_total=self.accepted_total,
                skipped_total=dict(self.skipped_total),
                entries_read_total=self.entries_read_total,
                lost_total=self.gaps.lost,
                resets_total=self.gaps.resets,
                refused_total=self.refused_total,
                window_events={"post": len(self.post), "pre": len(self.pre)},
                window_capacity={"post": self.post.capacity, "pre": self.pre.capacity},
                result=self.result,
                document=self.document,
                rate_per_minute=self._rate(),
                last_event_ms=self.last_event_ms,
                last_entry_ms=self.last_entry_ms,
                last_evaluation_at=self.last_evaluation_at,
                evaluation_duration=self.evaluation_duration,
                evaluations_total=self.evaluations_total,
                evaluation_errors_total=self.evaluation_errors_total,
                alerts=dict(self.alerts),
                reports_written_total=self.reports.written_total,
                report_errors_total=self.reports.errors_total,
                reports_removed_total=self.reports.removed_total,
                stream_length=self.stream_length,
                post_window_truncated=self.post_window_truncated,
                systemd_errors_total=dict(self.systemd_errors),
                cutover_source=self.source.kind,
                histograms=self.histograms,
                retention=self.retention,
                endpoint=self.endpoints.endpoint,
                failovers_total=self.endpoints.failovers,
                rollbacks_total=self.rollbacks_total,
                replica=self.replica,
                verdict_changes_total=self.verdict_changes_total,
                ledger=self.ledger.state() if self.ledger is not None else None,
            )

    def _rate(self) -> float | None:
        """The event rate now, by the pipeline's one definition (from the windows); unknown while no
        cutover is (the windows are empty then). Under the lock."""
        if self.cutover is None:
            return None
        return rate_from_windows(
            self.post, self.pre, self.clock(), self.settings.windows.rate_horizon_seconds
        )

    # ---- cutover -----------------------------------------------------------------------------------

    def initial_cutover(self) -> None:
        if self.source.kind == "fixed":
            self.pending_cutover = self.source.query()
            return
        self.watch_cutover()

    def watch_cutover(self) -> None:
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
                changed = self.systemd_up is not False or self.cutover_error != exc.message
                self.systemd_up = False
                self.cutover_error = exc.message
                self.systemd_errors[exc.reason] += 1
            if changed:
                log.warning(
                    "cutover.unavailable",
                    **target,
                    reason=exc.reason,
                    error=exc.message,
                    keeping=str(self.cutover.stream_id) if self.cutover else None,
                )
            return
        with self.lock:
            if self.systemd_up is False:
                log.info("cutover.available", **target)
            self.systemd_up = True
            self.cutover_error = None
            current = self.pending_cutover or self.cutover
            if current is None or current.identity() != found.identity():
                self.pending_cutover = found
                return
            if current == found:
                return
            if self.pending_cutover is not None:
                self.pending_cutover = found
            else:
                self.cutover = found
                self._drop_stale_result()
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

    def _apply_cutover(self, client: redis.Redis, new: Cutover) -> None:
        """Adopt a cutover: the post window keeps what it read at or after it; the baseline is
        re-read from Redis as the newest events before it (a backwards move rebuilds both)."""
        with self.lock:
            old = self.cutover
        if old is None or new.stream_id < old.stream_id:
            self._backfill(client, new)
            log.info(
                "cutover.detected",
                **_cutover_fields(new),
                previous=str(old.stream_id) if old else None,
                post_events=len(self.post),
                baseline_events=len(self.pre),
            )
        else:
            fresh_pre = Window("pre", self.settings.windows.baseline, self.post.vocabulary)
            fill_baseline(client, self.settings, new.stream_id, fresh_pre, on_page=self._abort_if_stopping)
            with self.lock:
                dropped = self.post.retain_from(new.stream_id.packed_clamped())  # notes too
                self.pre = fresh_pre
                self.cutover = new
                self._drop_stale_result()
            log.info(
                "cutover.detected",
                **_cutover_fields(new),
                previous=str(old.stream_id),
                post_events_kept=len(self.post),
                post_events_moved=dropped,
                baseline_events=len(fresh_pre),
            )
        report = self.settings.report
        deployment = capture_logged(
            report.deployment_info,
            timeout=report.deployment_info_timeout_seconds,
            max_bytes=report.deployment_info_max_bytes,
            cutover_id=str(new.stream_id),
        )
        provenance = {
            "cutover": new.to_json(),
            **provenance_json(deployment, report.notes, None, configured=report.deployment_info),
        }
        with self.lock:
            self.deployment = (new.identity(), deployment) if deployment is not None else None
            self.cutovers_total += 1
            self.pending_cutover = None if self.pending_cutover == new else self.pending_cutover
            changed = self.history.adopt(new, self.clock(), provenance)
        self._record(changed)
        self.request_evaluation()

    def _record(self, changed: list[LedgerRow]) -> None:
        """Hand changed ledger rows to the ledger's own thread (never waits on the file)."""
        if self.ledger is not None:
            self.ledger.submit(changed)

    def _backfill(self, client: redis.Redis, cutover: Cutover) -> None:
        post, pre = new_windows(self.settings)
        post.vocabulary.guard = self.lock  # private until adopted below; guarded from then on
        with self.lock:
            counting = self.cutover is None  # the first backfill; later ones re-read counted entries
            upto = self.backlog_end
        backlog = BacklogCount(upto) if counting and upto is not None else None
        started = time.monotonic()
        if backlog is None:
            result = load_windows(
                client, self.settings, cutover.stream_id, post, pre, on_page=self._abort_if_stopping
            )
        else:  # window by window, so each entry's refused keys are read off its own window
            stop = self._abort_if_stopping
            newer = fill_post(
                client, self.settings, cutover.stream_id, post, on_page=stop, **backlog.hooks(post)
            )
            older = fill_baseline(
                client, self.settings, cutover.stream_id, pre, on_page=stop, **backlog.hooks(pre)
            )
            result = Backfill(read=newer.read + older.read, newest=newer.newest or older.newest)
        with self.lock:
            self.post, self.pre, self.cutover = post, pre, cutover
            self._drop_stale_result()
            if counting:
                self._count_backlog(post, pre, result.read, backlog)
            if result.newest is not None and (self.last_id is None or result.newest > self.last_id):
                self.last_id = result.newest
                self.last_entry_ms = result.newest.ms
        log.info(
            "stream.backfilled",
            **_cutover_fields(cutover),
            post_events=len(post),
            baseline_events=len(pre),
            entries_read=result.read,
            seconds=round(time.monotonic() - started, 3),
        )

    def _count_backlog(self, post: Window, pre: Window, read: int, backlog: BacklogCount | None) -> None:
        """The first backfill counts what it read (docs/metrics.md): all of it when nothing was tailed
        yet, or, when the cutover became known after the tail had started, the entries up to the tail's
        starting position (the tail counted those after it as they arrived). Under the lock."""
        keys = np.concatenate([pre.keys(), post.keys()])
        if backlog is None:
            self.accepted_total += int(keys.size)
            self.entries_read_total += read
            for window in (post, pre):
                self.skipped_total.update(window.counters.skipped)
                self.refused_total += window.counters.refused_keys
        else:
            keys = keys[keys <= backlog.upto.packed_clamped()]
            self.accepted_total += backlog.accepted
            self.entries_read_total += backlog.accepted + sum(backlog.skipped.values())
            self.skipped_total.update(backlog.skipped)
            self.refused_total += backlog.refused
        if keys.size:
            self.last_event_ms = max(self.last_event_ms or 0, int(keys.max()) >> SEQ_BITS)

    def _abort_if_stopping(self) -> None:
        """Called once per backfill page: a stop request abandons the backfill even when every
        entry on the way is skipped (and so never reaches a window)."""
        if self.stopping.is_set():
            raise _Stopping

    # ---- the tail thread ---------------------------------------------------------------------------

    def tail_forever(self) -> None:
        backoff = 0.5
        client: redis.Redis | None = None
        next_xinfo = 0.0
        while not self.stopping.is_set():
            try:
                if client is None:
                    client, endpoint = open_client(self.settings)
                    client.ping()
                    self._connected(client, endpoint)
                    self._set_redis_up(True)
                self._catch_up(client)
                now = time.monotonic()
                if now >= next_xinfo:
                    self._observe_stream(client)
                    next_xinfo = now + XINFO_EVERY_SECONDS
                if not self._read_once(client):  # a quiet block: maybe the stream was recreated below
                    next_xinfo = 0.0  # our position; look now
                self._set_redis_up(True)  # also after a RedisError (WRONGTYPE, NOPERM) kept the client
                backoff = 0.5
            except _Stopping:
                break
            except REDIS_ERRORS as exc:
                self._set_redis_up(False, exc, self._condition(client, exc))
                if client is not None:
                    client.close()
                    client = None
                self.ready.set()  # READY means "serving what we know"; redis_up 0 says the rest
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, self.settings.redis.backoff_max_seconds)
            except redis.RedisError as exc:  # e.g. NOPERM or WRONGTYPE: say so, keep trying slowly
                self._set_redis_up(False, exc, self._condition(client, exc))
                if client is not None and self._follows_sentinel():
                    client.close()  # e.g. a demoted master's UNBLOCKED: ask the sentinels again
                    client = None
                self.ready.set()  # or Type=notify would never see READY and kill us in a loop
                self.stopping.wait(self.settings.redis.backoff_max_seconds)
            except Exception as exc:  # broad on purpose: e.g. a credential file gone: never die silently
                self._set_redis_up(False, exc, describe_redis_error(exc))
                log.error("stream.failed", error=type(exc).__name__, detail=_redis_detail(exc), exc_info=exc)
                if client is not None:
                    client.close()
                    client = None
                self.ready.set()
                self.stopping.wait(self.settings.redis.backoff_max_seconds)
        if client is not None:
            client.close()

    def _read_once(self, client: redis.Redis) -> bool:
        """One XREAD BLOCK after the last ID read; False when the block passed with nothing new."""
        entries = read_after(
            client,
            self.settings.redis.stream,
            self.last_id or StreamId(0, 0),
            self.settings.redis.read_count,
            self.settings.redis.block_ms,
        )
        if entries:
            self._ingest(entries)
        return bool(entries)

    def _connected(self, client: redis.Redis, endpoint: Endpoint) -> None:
        """After every (re)connection: note a failover, and if this node's stream ends before the last
        ID already counted (writes the old master acknowledged but never replicated), count the rollback
        and read on from this node's end, so new entries with lower IDs than the lost ones are not
        skipped. The windows keep what they hold: nothing is counted twice, nothing re-read."""
        with self.lock:
            previous = self.endpoints.connected(endpoint)
            if endpoint.role != "replica":
                self.replica = None
        if previous is not None:
            log.warning(
                "redis.failover",
                role=endpoint.role,
                address=endpoint.address,
                previous=previous.address,
                failovers=self.endpoints.failovers,
            )
        if endpoint.fallback:
            log.warning("redis.replica_fallback", address=endpoint.address, reason="no replica is up")
        info = stream_info(client, self.settings.redis.stream)
        with self.lock:
            rollback = detect_rollback(info, self.last_id)
            if rollback is None:
                return
            self.rollbacks_total += 1
            self.last_id = rollback.resume_after
            # The reset/gap bookkeeping starts over on this node: its entries_added is lower than the
            # old master's, which GapTracker would otherwise also report as a reset.
            self.gaps = GapTracker(lost=self.gaps.lost, resets=self.gaps.resets)
            beyond = sum(
                int((window.keys() > rollback.resume_after.packed()).sum())
                for window in (self.post, self.pre)
            )
        log.warning(
            "stream.rollback",
            stream=self.settings.redis.stream,
            address=endpoint.address,
            counted_up_to=str(rollback.counted_up_to),
            stream_ends_at=str(rollback.resume_after),
            window_events_beyond_end=beyond,
            rollbacks=self.rollbacks_total,
        )

    def _follows_sentinel(self) -> bool:
        endpoint = self.endpoints.endpoint
        return endpoint is not None and endpoint.topology == "sentinel"

    def _check_endpoint(self, client: redis.Redis) -> None:
        """With Sentinel: reconnect when the sentinels name another node (a graceful failover leaves the
        old master readable); read the replica's link state from INFO replication (the replica only)."""
        endpoint = self.endpoints.endpoint
        if endpoint is not None and endpoint.topology == "cluster":  # the slot may have moved (resharding)
            moved = cluster_endpoint(client, self.settings.redis.stream)
            with self.lock:
                self.endpoints.endpoint = moved
            return
        if endpoint is None or endpoint.topology != "sentinel":
            return
        if not sentinel_endpoint_current(self.settings, endpoint):
            raise redis.ConnectionError(f"the sentinels no longer name {endpoint.address} ({endpoint.role})")
        if endpoint.role == "replica":
            status = replica_status(client.info("replication"))
            with self.lock:
                self.replica = status

    def _catch_up(self, client: redis.Redis) -> None:
        """Start-up and cutover work that needs Redis: the first position, backfills, cutovers."""
        with self.lock:
            pending = self.pending_cutover
            if (
                pending is not None
                and self.cutover is not None
                and pending.identity() == self.cutover.identity()
            ):
                # The deployment already adopted, in a newer state (a rollout moved on while it was
                # being adopted): take the state, neither re-read nor count it again.
                self.cutover, self.pending_cutover, pending = pending, None, None
        if pending is not None:
            self._apply_cutover(client, pending)
        if self.last_id is None:
            newest: list[RawEntry] = client.xrevrange(self.settings.redis.stream, count=1)  # type: ignore[assignment]
            with self.lock:
                self.last_id = (entry_id(newest[0][0]) if newest else None) or StreamId(0, 0)
                self.backlog_end = self.last_id  # no cutover yet: its backfill counts up to here
        if not self.ready.is_set():
            self.ready.set()
            self.request_evaluation()

    def _observe_stream(self, client: redis.Redis) -> None:
        self._check_endpoint(client)
        info = stream_info(client, self.settings.redis.stream)
        rewound_from = self._rewind_after_reset(client, info)
        with self.lock:
            self.stream_type = "stream" if info is not None else "none"
            happened = self.gaps.observe(info, self.last_id)
            if rewound_from is not None and happened != "reset":
                self.gaps.resets += 1  # recreated between two readings, unnoticed by the counts alone
                happened = "reset"
            self.stream_length = info.length if info else 0
            if self.cutover is not None and info is not None and info.first is not None:
                self.post_window_truncated = (
                    info.first > self.cutover.stream_id and info.entries_added != info.length
                )
            self.retention = retention_for_windows(
                info,
                post=self.post,
                pre=self.pre,
                cutover=self.cutover,
                min_events=self.settings.gate.min_events,
                rate_per_minute=self._rate(),
                now_ms=int(self.clock() * 1000),
            )
        self.retention_watch.observe(self.retention, self.settings.redis.stream)
        if happened == "reset":
            log.warning(
                "stream.reset",
                stream=self.settings.redis.stream,
                resets=self.gaps.resets,
                exists=info is not None,
                rewound_from=str(rewound_from) if rewound_from is not None else None,
                resume_after=str(self.last_id) if rewound_from is not None else None,
            )
        elif happened == "lost":
            log.warning("stream.gap", stream=self.settings.redis.stream, lost_total=self.gaps.lost)

    def _rewind_after_reset(self, client: redis.Redis, info: StreamInfo | None) -> StreamId | None:
        """A stream whose newest ID lies below the last ID we read was recreated under us (a restore
        with explicit IDs, a failover to a replica that lacks our newest entries and whose clock is
        behind): XREAD after our position would never return its new entries. Move the position back
        to the newest entry of the stream we already hold (``_newest_held``), or to just before the
        cutover when we hold none of it (``0-0`` without a cutover): every entry after that is read
        and counted once, and none we counted before is counted again. Returns the position we left,
        or None. The windows keep what they hold."""
        if info is None or self.last_id is None:
            return None
        top = info.last_generated or info.last
        if top is None or top >= self.last_id:
            return None
        start = previous_id(self.cutover.stream_id) if self.cutover is not None else StreamId(0, 0)
        if start >= self.last_id:
            return None
        resume = self._newest_held(client, start) if self.cutover is not None else start
        with self.lock:
            left, self.last_id = self.last_id, resume
            self.gaps.synced_added = None  # the new stream's counts start over
            self.gaps.read_since_sync = 0
        return left

    def _newest_held(self, client: redis.Redis, start: StreamId) -> StreamId:
        """The newest entry between the cutover and our position that the post window already holds
        (an event or a noted skip: same ID, same entry), walking the stream newest-first; an entry
        older than a full window's oldest event counts as held (read, or too old to matter). ``start``
        when there is none: the stream is new from the cutover on."""
        with self.lock:
            held = self.post.held_keys()
            floor = int(self.post.keys().min()) if len(self.post) >= self.post.capacity else None
            upper, lower = str(self.last_id), str(self.cutover.stream_id) if self.cutover else "-"
        key, page_size = self.settings.redis.stream, self.settings.redis.page_size
        for page in revrange_pages(client, key, upper, lower, page_size):
            for raw in page:
                found = entry_id(raw[0]) if raw[0] is not None else None
                if found is None:
                    continue
                packed = found.packed_clamped()
                if packed in held or (floor is not None and packed < floor):
                    return found
        return start

    def _ingest(self, entries: list[RawEntry]) -> None:
        with self.lock:
            cutover = self.cutover
            accepted_before = self.accepted_total
            for raw in entries:
                stream_id, parsed = parse_raw(raw, self.limits)
                self.entries_read_total += 1
                if stream_id is None:
                    self.skipped_total[parsed.reason] += 1  # type: ignore[union-attr]
                    continue
                self.last_id = stream_id
                self.last_entry_ms = stream_id.ms
                window = self.post if cutover is not None and stream_id >= cutover.stream_id else self.pre
                if isinstance(parsed, Skip):
                    self.skipped_total[parsed.reason] += 1
                    self.refused_total += parsed.refused_keys
                    if cutover is not None:
                        window.note_skip(parsed, stream_id)
                    continue
                self.accepted_total += 1
                self.last_event_ms = stream_id.ms
                if cutover is not None:
                    refused_before = window.counters.refused_keys
                    window.add(parsed)
                    self.refused_total += window.counters.refused_keys - refused_before
                else:  # not windowed: only the contract's own refusals are known
                    self.refused_total += parsed.refused_keys
            self.gaps.note_read(len(entries))
            reached = cutover is not None and len(self.post) >= self.settings.gate.min_events
            waiting = self.completed_for != (cutover.identity() if cutover else None)
            fresh = self.accepted_total != accepted_before
        if reached and waiting:
            self.request_evaluation()
        elif fresh and not self.evaluation_requested.is_set():
            self.request_evaluation(delay=self._half_interval_left())

    def _half_interval_left(self) -> float:
        """New events are evaluated half an interval after the last evaluation started (at once if that
        is past): with ticks alone, an event landing just after a tick would wait a whole interval plus
        the evaluation itself, more than "within one interval" from XADD to /metrics. Under a steady
        flow this evaluates twice per interval; a quiet stream keeps the plain interval."""
        due = self.evaluation_started_at + self.settings.daemon.interval_seconds / 2
        return max(due - time.monotonic(), 0.0)

    def _condition(self, client: redis.Redis | None, exc: BaseException) -> str:
        """The Redis condition in one line; a WRONGTYPE names the key and what it holds (TYPE)."""
        if not is_wrong_type(exc) or client is None:
            return describe_redis_error(exc)
        key = self.settings.redis.stream
        try:
            held = key_type(client, key)
        except redis.RedisError:
            held = "key of another type"
        with self.lock:
            self.stream_type = held
        return wrong_type_message(key, held)

    def _set_redis_up(self, up: bool, exc: BaseException | None = None, condition: str | None = None) -> None:
        with self.lock:
            moved = self.redis_up != up or (not up and condition != self.redis_condition)
            changed = moved or not self.redis_state_logged
            self.redis_up = up
            self.redis_condition = None if up else condition
            self.redis_state_logged = True
        if not changed:
            return
        if up:
            log.info(
                "stream.reconnected", redis=self.settings.redis.redacted_url(), resume_after=str(self.last_id)
            )
        else:
            log.warning(
                "stream.disconnected",
                redis=self.settings.redis.redacted_url(),
                error=type(exc).__name__ if exc else None,
                condition=condition,
                detail=_redis_detail(exc),
            )

    # ---- evaluation --------------------------------------------------------------------------------

    def _drop_stale_result(self) -> None:
        """The cutover (or its rollout) just changed, under the lock: the served verdict belongs to the
        previous state, so nothing is served until the new state is evaluated, a moment later (fail
        closed: a PASS of revision 2 must never sit next to the rollback's rollout in progress)."""
        if self.result is not None and self.result.cutover != self.cutover:
            self.result = None
            self.document = None

    def request_evaluation(self, delay: float = 0.0) -> None:
        due = time.monotonic() + delay
        self.evaluation_due = due if self.evaluation_due is None else min(self.evaluation_due, due)
        self.evaluation_requested.set()
        job = self.evaluation_job
        if job is not None:
            try:
                job.modify(next_run_time=datetime.now(UTC) + timedelta(seconds=delay))
            except Exception:  # broad on purpose: the scheduler may be shutting down; the tick will come
                return

    def evaluation_tick(self) -> None:
        """Scheduler job (never overlapping, late runs coalesced). Under the lock it only copies what the
        evaluation reads (frozen windows, the cutover, what was captured for it); the evaluation, the
        document and the histograms run outside it, so the tail thread never waits on them."""
        self.evaluation_requested.clear()
        self.evaluation_due = None
        started = self.evaluation_started_at = time.monotonic()
        try:
            with self.lock:
                now = self.clock()
                post, pre = frozen_pair(self.post, self.pre)
                cutover, cutover_error = self.cutover, self.cutover_error
                deployment, retention = self._deployment(), self.retention
            result, document = evaluate_document(
                post,
                pre,
                cutover,
                self.settings,
                now,
                deployment=deployment,
                retention=retention,
                cutover_error=cutover_error,
            )
            histograms = window_histograms(post, pre)
        except Exception as exc:  # fail closed: never keep a PASS we can no longer vouch for
            self._evaluation_failed(exc)
            return
        with self.lock:
            superseded = self.cutover != cutover  # it changed while we evaluated: never serve this
            if not superseded:
                self.result, self.document, self.histograms = result, document, histograms
                self.last_evaluation_at = now
                self.evaluation_duration = time.monotonic() - started
                self.evaluations_total += 1
        # A request that came in while this run was going (a new cutover, min_events reached) moved the
        # job's next run into this run, where max_instances=1 skips it: ask again, now it can run.
        pending = self.evaluation_due
        if superseded:
            self.request_evaluation()
            return
        if pending is not None:
            self.request_evaluation(delay=max(pending - time.monotonic(), 0.0))
        self._after_evaluation(result, document)
        if os.environ.get("WATCHDOG_USEC"):
            sd_notify("WATCHDOG=1")

    def _deployment(self) -> DeploymentInfo | None:
        """report.deployment_info's output captured for the current cutover, never another's."""
        captured = self.deployment
        current = self.cutover.identity() if self.cutover is not None else None
        return captured[1] if captured is not None and captured[0] == current else None

    def _evaluation_failed(self, exc: Exception) -> None:
        with self.lock:
            self.evaluation_errors_total += 1
            if self.result is not None and self.result.verdict != Verdict.INSUFFICIENT_DATA:
                self.result = None
                self.document = None
        log.error("gate.evaluation_failed", error=type(exc).__name__, detail=str(exc)[:300], exc_info=exc)

    def _after_evaluation(self, result: GateResult, document: dict[str, Any]) -> None:
        with self.lock:
            changed = self.history.evaluated(result, result.evaluated_at)
        self._record(changed)
        identity = result.cutover.identity() if result.cutover is not None else None
        same_cutover, self.last_verdict_cutover = identity == self.last_verdict_cutover, identity
        if result.verdict != self.last_verdict:
            if self.last_verdict is not None and same_cutover:  # a new deployment is not a flap
                with self.lock:
                    self.verdict_changes_total += 1
            log.info(
                "gate.verdict_changed",
                verdict=result.verdict,
                previous=self.last_verdict,
                reasons=list(result.reasons)[:10],
                post_events=result.post.events,
            )
            sd_notify(
                f"STATUS=verdict {result.verdict}; post {result.post.events}/{result.progress.min_events}"
            )
            self.last_verdict = result.verdict
        self._update_alerts(result)
        cutover = result.cutover
        if cutover is None:
            return
        gated = result.gated()
        ready = (
            result.post.events >= self.settings.gate.min_events
            and not cutover.rollout_in_progress  # the automatic gate waits for the rollout
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
                **_cutover_fields(cutover),
            )
            self.reported_verdict = result.verdict
            self._run_hook(path, result.verdict)
        elif self.completed_for == cutover.identity() and result.verdict != self.reported_verdict:
            self._write_report(document, cutover)
            self.reported_verdict = result.verdict

    def _write_report(self, document: dict[str, Any], cutover: Cutover) -> Any:
        path = self.reports.write(document)
        if path is not None:
            with self.lock:
                changed = self.history.report_written(path, cutover)
            self._record(changed)
        return path

    def _run_hook(self, path: Any, verdict: str) -> None:
        argv = list(self.settings.daemon.on_gate_complete)
        if not argv:
            return
        env = hook_environment(os.environ, verdict, path)
        timeout = self.settings.daemon.on_gate_complete_timeout_seconds

        def run() -> None:
            try:
                done = subprocess.run(argv, env=env, timeout=timeout, check=False, capture_output=True)
                log.info("hook.finished", argv0=argv[0], returncode=done.returncode)
            except subprocess.TimeoutExpired:
                log.error("hook.timeout", argv0=argv[0], timeout_seconds=timeout)
            except OSError as exc:
                log.error("hook.failed", argv0=argv[0], error=exc.strerror or str(exc))

        threading.Thread(target=run, name="on-gate-complete", daemon=True).start()

    def _update_alerts(self, result: GateResult) -> None:
        rate = result.progress.rate_per_minute
        threshold = self.settings.alerts.low_rate_per_minute
        states = {
            "low_event_rate": rate is not None and rate < threshold,
            "collapse": bool(result.collapsed_models()),
        }
        for alert, active in states.items():
            if active == self.alerts[alert]:
                continue
            self.alerts[alert] = active
            details: dict[str, Any] = (
                {"rate_per_minute": round(rate or 0.0, 3), "threshold": threshold}
                if alert == "low_event_rate"
                else {"models": result.collapsed_models()}
            )
            log.warning("alert.raised", alert=alert, **details) if active else log.info(
                "alert.cleared", alert=alert, **details
            )

    # ---- lifecycle ---------------------------------------------------------------------------------

    def run(self) -> int:
        settings = self.settings
        host, port = parse_listen(settings.daemon.listen)
        log.info(
            "daemon.starting",
            version=__version__,
            stream=settings.redis.stream,
            redis=settings.redis.redacted_url(),
            listen=settings.daemon.listen,
            tls=bool(self.web and self.web.tls),
            basic_auth_users=len(self.web.users) if self.web else 0,
            cutover_source="after"
            if self.source.kind == "fixed"
            else f"{self.source.kind}:{self.source.target}",
            interval_seconds=settings.daemon.interval_seconds,
        )
        try:
            app = HttpApp(self.snapshot, self.clock, render_status_page)
            server = HttpServer(app, host, port, settings.http, self.web)
        except OSError as exc:
            log.error(
                "daemon.failed", error=f"cannot listen on {settings.daemon.listen}: {exc.strerror or exc}"
            )
            return 1
        except ValueError as exc:  # the TLS pair changed between reading the web config and now
            log.error("daemon.failed", error=f"web config: {exc}")
            return 1
        self._install_signals(server)
        if self.ledger is not None:
            self.history = CutoverHistory(settings.gate.min_events, self.ledger.open())
            self.ledger.start()
        server.start()
        self.await_initial_cutover()
        tail = threading.Thread(target=self.tail_forever, name="tail", daemon=True)
        tail.start()
        scheduler = self._start_scheduler()
        while not self.stopping.is_set() and not self.ready.wait(0.2):
            pass
        if not self.stopping.is_set():
            sd_notify("READY=1")
            log.info(
                "daemon.ready",
                listen=f"[{host}]:{server.port}" if ":" in host else f"{host}:{server.port}",
                post_events=len(self.post),
                baseline_events=len(self.pre),
                redis_up=self.redis_up,
            )
        self.stopping.wait()
        log.info("daemon.stopping")
        sd_notify("STOPPING=1")
        scheduler.shutdown(wait=False)
        server.stop()
        tail.join(timeout=settings.daemon.shutdown_timeout_seconds)
        if self.ledger is not None:
            self.ledger.stop()
        log.info("daemon.stopped", clean=not tail.is_alive())
        return 0

    def _start_scheduler(self) -> BackgroundScheduler:
        logging.getLogger("apscheduler").setLevel(logging.ERROR)  # it logs every run at INFO
        scheduler = BackgroundScheduler(timezone=UTC)
        self.evaluation_job = scheduler.add_job(
            self.evaluation_tick,
            "interval",
            seconds=self.settings.daemon.interval_seconds,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            id="evaluate",
        )
        if self.source.kind != "fixed":
            scheduler.add_job(
                self.watch_cutover,
                "interval",
                seconds=self.settings.cutover.poll_seconds,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
                id="watch-cutover",
            )
        scheduler.start()
        return scheduler

    def _install_signals(self, server: HttpServer) -> None:
        def handle(signum: int, _frame: FrameType | None) -> None:
            if self.stopping.is_set():
                os._exit(1)  # the second signal forces
            self.stopping.set()

        def reload(signum: int, _frame: FrameType | None) -> None:
            server.reload_tls()  # sets a flag; the listener re-reads the certificate and key

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
        if self.web is not None:  # without --web-config-file, signals stay exactly as they were
            signal.signal(signal.SIGHUP, reload)


def _ledger_writer(settings: Settings, clock: Callable[[], float]) -> LedgerWriter | None:
    """The deployment ledger's writer, or None without a ledger (docs/ledger.md)."""
    path = default_ledger_path(settings.ledger.path, os.environ)
    if path is None:
        return None
    return LedgerWriter(
        path, max_rows=settings.ledger.max_rows, max_age_days=settings.ledger.max_age_days, clock=clock
    )


def _cutover_fields(cutover: Cutover) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "cutover": cutover.timestamp,
        "cutover_id": str(cutover.stream_id),
        "source": cutover.source,
        "invocation_id": cutover.invocation_id,
    }
    if cutover.identity_key is not None:  # docker and kubernetes
        fields.update(identity=cutover.identity_key, label=cutover.label)
    if cutover.rollout is not None:
        fields["rollout_complete"] = cutover.rollout.complete
    return fields


def _rollout_changed(before: Rollout | None, after: Rollout | None) -> bool:
    return before != after and after is not None


# What the on_gate_complete hook inherits from the daemon's environment (docs/configuration.md): enough
# to run a program (PATH, HOME, locale, zone, temp folder, user), never QUANTUM_GATE_REDIS_URL (it may
# hold a password), QUANTUM_GATE_REDIS_PASSWORD or CREDENTIALS_DIRECTORY.
HOOK_INHERITED = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR")


def hook_environment(environ: Mapping[str, str], verdict: str, report: Any) -> dict[str, str]:
    env = {name: value for name, value in environ.items() if name in HOOK_INHERITED or name.startswith("LC_")}
    env.update(QUANTUM_GATE_VERDICT=verdict, QUANTUM_GATE_REPORT=str(report or ""))
    return env


def _redis_detail(exc: BaseException | None) -> str | None:
    if exc is None:
        return None
    return str(exc).splitlines()[0][:200] if str(exc) else None


def run_daemon(settings: Settings, log_level: str = "info") -> int:
    resolve_redis_password(settings)  # an unreadable password source is refused at start (exit 1)
    web_file = settings.http.web_config_file
    web = load_web_config(web_file) if web_file is not None else None  # a bad file: one line, exit 1
    logs.configure(log_level)
    code = Daemon(settings, web=web).run()
    # A scheduler job still running (a systemctl poll hanging up to cutover.timeout_seconds, a long
    # evaluation) sits in a pool thread that concurrent.futures joins at interpreter exit, daemon or
    # not: the stop is already bounded and logged, so whatever is left is not waited for.
    if any(t.is_alive() for t in threading.enumerate() if t is not threading.current_thread()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
