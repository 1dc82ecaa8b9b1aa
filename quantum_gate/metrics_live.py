"""The live metric families: what the daemon, its cutover source, Redis, the stream and the windows
are doing now (counters, health, retention, the ledger), read from one ``Snapshot`` per scrape.

Unlike the gate's families (``metrics_gate``) these change between evaluations, so they are formatted
on every scrape. Label sets are bounded: reasons by ``SkipReason``, alerts by ``ALERTS``, retention
risks by ``RISK_KINDS``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import Metric

from quantum_gate.config import AlertSettings, Settings
from quantum_gate.contract import SkipReason
from quantum_gate.daemon_state import CutoverState, EvaluatorState, IngestorState, WindowsState
from quantum_gate.formatting import tidy
from quantum_gate.ledger_writer import LedgerState
from quantum_gate.metrics_families import counter, gauge
from quantum_gate.retention import RISK_KINDS, Retention

if TYPE_CHECKING:  # for annotations only: exporter (Snapshot's home) imports this module
    from quantum_gate.exporter import Snapshot

ALERTS = ("low_event_rate", "collapse")


def live_families(snap: Snapshot) -> Iterator[Metric]:
    """The daemon's families, then the stream's, in the order a scrape has always listed them."""
    yield from _daemon(snap)
    yield from _stream(snap.tail, snap.windows, snap.settings)


def _cutover_source(cutovers: CutoverState) -> Iterator[Metric]:
    """systemd keeps its own names (alerts use them); every source also has the labelled pair."""
    source = cutovers.source
    if source in {"systemd", "fixed"}:  # as before sources existed
        if cutovers.systemd_up is not None:
            yield gauge("systemd_up", "1 when the last systemctl show answered", int(cutovers.systemd_up))
        errors = counter(
            "systemd_errors_total", "systemctl queries that failed, by reason", labels=("reason",)
        )
        for reason, count in sorted(cutovers.systemd_errors.items()):
            errors.add_metric([reason], count)
        yield errors
    if cutovers.systemd_up is not None:
        up = gauge("cutover_source_up", "1 when the cutover source last answered", labels=("source",))
        up.add_metric([source], int(cutovers.systemd_up))
        yield up
    failed = counter(
        "cutover_source_errors_total",
        "cutover source queries that failed, by source and reason",
        labels=("source", "reason"),
    )
    for reason, count in sorted(cutovers.systemd_errors.items()):
        failed.add_metric([source, reason], count)
    yield failed


def _daemon(snap: Snapshot) -> Iterator[Metric]:
    info = gauge("build_info", "quantum-gate version", labels=("version",))
    info.add_metric([snap.version], 1)
    yield info
    yield gauge("redis_up", "1 when the last Redis command succeeded", int(snap.tail.redis_up))
    yield from _redis_endpoint(snap.tail)
    yield from _cutover_source(snap.cutovers)
    yield from _cutover(snap.cutovers)
    yield from _evaluations(snap.evaluation)
    yield from _ledger(snap.ledger)
    yield from _alerts(snap.evaluation, snap.settings.alerts)


def _cutover(cutovers: CutoverState) -> Iterator[Metric]:
    cutover = cutovers.cutover
    yield gauge("cutover_known", "1 when a cutover is known", int(cutover is not None))
    if cutover is not None:
        yield gauge(
            "cutover_timestamp_seconds",
            "cutover time (UTC epoch seconds)",
            cutover.stream_id.seconds,
        )
        if cutover.rollout is not None:
            yield gauge(
                "rollout_complete",
                "1 when the Kubernetes rollout of the cutover is complete; 0 while old pods still run",
                int(cutover.rollout.complete),
            )
    yield counter(
        "cutovers_total", "cutovers adopted, the first one found at start included", cutovers.cutovers_total
    )


def _evaluations(evaluation: EvaluatorState) -> Iterator[Metric]:
    yield gauge(
        "last_evaluation_timestamp_seconds", "when the gate was last evaluated", evaluation.last_evaluation_at
    )
    yield gauge(
        "evaluation_duration_seconds", "duration of the last evaluation", evaluation.evaluation_duration
    )
    yield counter("evaluations_total", "gate evaluations run", evaluation.evaluations_total)
    yield counter(
        "evaluation_errors_total", "gate evaluations that raised", evaluation.evaluation_errors_total
    )
    yield counter("reports_written_total", "gate reports written", evaluation.reports_written_total)
    yield counter(
        "report_errors_total", "gate reports that could not be written", evaluation.report_errors_total
    )
    yield counter(
        "reports_removed_total",
        "report files removed by the retention limits",
        evaluation.reports_removed_total,
    )
    yield counter(
        "verdict_changes_total",
        "times the verdict changed from one evaluation to the next (flapping shows here)",
        evaluation.verdict_changes_total,
    )


def _alerts(evaluation: EvaluatorState, settings: AlertSettings) -> Iterator[Metric]:
    alerts = gauge("alert_active", "1 while the daemon's own alert is raised", labels=("alert",))
    for alert in ALERTS:
        alerts.add_metric([alert], int(evaluation.alerts.get(alert, False)))
    yield alerts
    yield gauge(
        "event_rate_threshold_per_minute",
        "the low event rate alert threshold",
        settings.low_rate_per_minute,
    )
    yield gauge(
        "stall_threshold_seconds",
        "no accepted event for this long means stalled",
        settings.stall_seconds,
    )


def _stream(tail: IngestorState, windows: WindowsState, settings: Settings) -> Iterator[Metric]:
    yield counter("events_accepted_total", "entries accepted into the gate", tail.accepted_total)
    skipped = counter("events_skipped_total", "entries skipped, by reason", labels=("reason",))
    for reason in SkipReason:
        skipped.add_metric([reason], tail.skipped_total.get(reason, 0))
    yield skipped
    yield counter("entries_read_total", "stream entries read", tail.entries_read_total)
    yield counter("events_lost_total", "entries trimmed before they could be read", tail.lost_total)
    yield counter(
        "stream_resets_total", "stream deleted, recreated or emptied under the daemon", tail.resets_total
    )
    yield counter("model_keys_refused_total", "model keys refused by the caps", tail.refused_total)
    events = gauge("window_events", "accepted events in the window", labels=("window",))
    capacity = gauge("window_capacity", "window size limit", labels=("window",))
    for window in ("pre", "post"):
        events.add_metric([window], windows.events.get(window, 0))
        capacity.add_metric([window], windows.capacity.get(window, 0))
    yield events
    yield capacity
    yield gauge("min_events", "accepted post-cutover events the gate needs", settings.gate.min_events)
    if windows.rate_per_minute is not None:
        yield gauge(
            "event_rate_per_minute",
            "accepted events per minute (stream-ID time)",
            tidy(windows.rate_per_minute),
        )
    if tail.last_event_ms is not None:
        yield gauge("last_event_timestamp_seconds", "newest accepted event", tail.last_event_ms / 1000)
    if tail.last_entry_ms is not None:
        yield gauge(
            "last_entry_timestamp_seconds", "newest stream entry of any kind", tail.last_entry_ms / 1000
        )
    if tail.stream_type is not None:
        yield gauge(
            "stream_exists",
            "1 when the stream key exists and is a stream",
            int(tail.stream_type == "stream"),
        )
    if tail.stream_length is not None:
        yield gauge("stream_length", "XLEN of the stream", tail.stream_length)
    yield from _retention(tail.retention)
    if tail.post_window_truncated is not None:
        yield gauge(
            "post_window_truncated",
            "1 when the stream no longer holds its first post-cutover entries",
            int(tail.post_window_truncated),
        )


def _retention(retention: Retention | None) -> Iterator[Metric]:
    """How much time and how many entries the stream covers, and the trimming risks (docs/retention.md)."""
    if retention is None:
        return
    if retention.first_ms is not None:
        yield gauge(
            "stream_first_entry_timestamp_seconds",
            "oldest entry still in the stream",
            retention.first_ms / 1000,
        )
    if retention.covers_seconds is not None:
        yield gauge(
            "stream_retention_seconds",
            "time from the oldest to the newest stream entry",
            retention.covers_seconds,
        )
    if retention.entries_added is not None:
        yield gauge(
            "stream_entries_added", "XINFO entries-added: entries ever added", retention.entries_added
        )
    risk = gauge(
        "retention_risk", "1 when trimming threatens the baseline or the post window", labels=("kind",)
    )
    for kind in RISK_KINDS:
        risk.add_metric([kind], int(retention.risks[kind]))
    yield risk


def _ledger(state: LedgerState | None) -> Iterator[Metric]:
    """Absent without a ledger; otherwise whether it is usable and what it has written or failed."""
    if state is None:
        return
    yield gauge("ledger_up", "1 when the deployment ledger file is usable", int(state.up))
    yield counter("ledger_writes_total", "ledger rows written", state.writes_total)
    yield counter("ledger_errors_total", "ledger opens or writes that failed", state.errors_total)


def _redis_endpoint(tail: IngestorState) -> Iterator[Metric]:
    """Where the daemon reads (Sentinel, Cluster or a plain address), failovers, rollbacks, replica link."""
    endpoint = tail.endpoint
    info = gauge(
        "redis_endpoint_info",
        "the Redis node read now (role master, replica or direct)",
        labels=("role", "address"),
    )
    if endpoint is not None:
        info.add_metric([endpoint.role, endpoint.address], 1)
    yield info
    if endpoint is not None and endpoint.topology == "sentinel":
        yield gauge(
            "redis_replica_fallback",
            "1 when a replica was asked for (read_from=replica) and none was up, so the master is read",
            int(endpoint.fallback),
        )
    yield counter(
        "redis_failovers_total",
        "reconnections that found Sentinel naming another node than before",
        tail.failovers_total,
    )
    yield counter(
        "stream_rollbacks_total",
        "reconnections to a node whose stream ends before the last ID already counted",
        tail.rollbacks_total,
    )
    replica = tail.replica
    if replica is not None:
        yield gauge(
            "redis_replica_link_up",
            "1 when the replica read says its master link is up",
            int(replica.link_up),
        )
        if replica.last_io_seconds is not None:
            yield gauge(
                "redis_replica_last_io_seconds",
                "seconds since the replica read last heard from its master (INFO replication)",
                replica.last_io_seconds,
            )
