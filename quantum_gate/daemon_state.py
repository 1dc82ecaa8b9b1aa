"""What the daemon publishes: each part's frozen state, as ``Daemon.snapshot`` takes them together under
the lock into the exporter's ``Snapshot`` (docs/architecture.md, "From XREAD to a gauge").

The parts fill these (``Ingestor.state``, ``CutoverTracker.state``, ``Evaluator.state``,
``SharedWindows.state``); the exporter, the metric families and the status page read them. This module
holds data only and imports the package's types for annotations alone, so whoever reads the published
state never reaches the parts (Redis, subprocesses, the scheduler). A new metric is a field here, set
by its part, plus its family.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the published state depends on no part at run time
    from quantum_gate.connection import Endpoint
    from quantum_gate.cutover import Cutover
    from quantum_gate.failover import ReplicaStatus
    from quantum_gate.gate import GateResult
    from quantum_gate.histograms import Histogram
    from quantum_gate.retention import Retention
    from quantum_gate.streamids import StreamId


@dataclass(frozen=True)
class IngestorState:
    """What the tail knows, for a snapshot: Redis, the stream, the position and the lifetime counts."""

    ready: bool
    redis_up: bool
    # What is wrong with Redis in one line (redis_state.describe_redis_error); None while it answers
    redis_condition: str | None
    # TYPE of the stream key as last seen ("stream", "none" when missing, "string", ...); None: not yet
    stream_type: str | None
    # The node read now, failovers and rollbacks seen, the replica's link (docs/redis.md)
    endpoint: Endpoint | None
    failovers_total: int
    rollbacks_total: int
    replica: ReplicaStatus | None
    last_id: StreamId | None
    accepted_total: int
    entries_read_total: int
    refused_total: int
    lost_total: int
    resets_total: int
    synced_added: int | None  # the stream's entries_added at the last XINFO reading in step with ours
    last_event_ms: int | None
    last_entry_ms: int | None
    stream_length: int | None
    post_window_truncated: bool | None
    # What the stream covers (XINFO STREAM) and the trimming risks (retention.assess_retention)
    retention: Retention | None
    skipped_total: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CutoverState:
    """The tracker's state for a snapshot: the adopted and pending cutovers and the source's health."""

    source: str  # systemd, docker, kubernetes or fixed
    cutover: Cutover | None
    pending: Cutover | None
    cutovers_total: int
    systemd_up: bool | None
    systemd_reason: str | None
    systemd_errors: dict[str, int] = field(default_factory=dict)
    # When the start-up query began, while it has not answered (clock seconds)
    systemd_waiting_since: float | None = None
    deployment_capturing: bool = False  # report.deployment_info runs for the adopted cutover


@dataclass(frozen=True)
class EvaluatorState:
    """The served result and the evaluator's counts, for a snapshot."""

    result: GateResult | None
    document: dict[str, Any] | None
    last_evaluation_at: float | None
    evaluation_duration: float | None
    evaluations_total: int
    evaluation_errors_total: int
    reports_written_total: int
    report_errors_total: int
    reports_removed_total: int
    verdict_changes_total: int
    requested: bool  # an evaluation is asked for and has not started yet
    due: float | None  # monotonic time of the earliest pending request
    # {model: {"pre" | "post": Histogram}} of the latest evaluation (the status page draws them)
    histograms: dict[str, dict[str, Histogram]] = field(default_factory=dict)
    alerts: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class WindowsState:
    """The live windows at snapshot time: events held and capacity ({"post": n, "pre": n}), and the event
    rate now (``pipeline.rate_from_windows``; None while no cutover is known)."""

    events: dict[str, int]
    capacity: dict[str, int]
    rate_per_minute: float | None
