"""The Prometheus exporter: the ``Snapshot`` every scrape, ``/gate``, ``/healthz`` and the status page
read, and the collector that turns it into metric families.

Metrics are computed at scrape time from one immutable ``Snapshot`` of the daemon (the latest
evaluation plus live counters), by a custom collector in the project's own registry. A broken
snapshot source yields ``quantum_gate_up 0``-style gauges, never an exception in the scrape.
The families themselves live by job: ``metrics_live`` (the daemon, Redis, the stream: per scrape) and
``metrics_gate`` (one evaluation: per evaluation). Names and labels are documented in docs/metrics.md;
label sets are bounded (model keys are capped by the contract limits, actions by the label table,
reasons by ``SkipReason``, checks by ``checks.CHECK_SPECS``). The HTTP app is ``httpapp``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from quantum_gate.config import Settings
from quantum_gate.connection import Endpoint
from quantum_gate.cutover import Cutover
from quantum_gate.failover import ReplicaStatus
from quantum_gate.gate import GateResult
from quantum_gate.histograms import Histogram
from quantum_gate.ledger_writer import LedgerState
from quantum_gate.metrics_families import Families, gauge
from quantum_gate.metrics_gate import gate_families
from quantum_gate.metrics_live import live_families
from quantum_gate.retention import Retention

SNAPSHOT_UP_DOC = "1 when the daemon state could be read for this scrape"


@dataclass(frozen=True)
class Snapshot:
    """Everything a scrape, ``/gate`` or ``/healthz`` reads, taken under the daemon's lock."""

    version: str
    settings: Settings
    redis_up: bool
    systemd_up: bool | None
    systemd_reason: str | None
    cutover: Cutover | None
    cutovers_total: int
    accepted_total: int
    skipped_total: dict[str, int]
    entries_read_total: int
    lost_total: int
    resets_total: int
    refused_total: int
    window_events: dict[str, int]
    window_capacity: dict[str, int]
    result: GateResult | None
    document: dict[str, Any] | None
    rate_per_minute: float | None
    last_event_ms: int | None
    last_entry_ms: int | None
    last_evaluation_at: float | None
    evaluation_duration: float | None
    evaluations_total: int
    evaluation_errors_total: int
    alerts: dict[str, bool]
    reports_written_total: int
    stream_length: int | None
    post_window_truncated: bool | None
    systemd_errors_total: dict[str, int] = field(default_factory=dict)
    # {model: {"pre" | "post": Histogram}} of the latest evaluation (the status page draws them)
    histograms: dict[str, dict[str, Histogram]] = field(default_factory=dict)
    # What the stream covers (XINFO STREAM) and the trimming risks (retention.assess_retention)
    retention: Retention | None = None
    # What is wrong with Redis in one line (redis_state.describe_redis_error); None while it answers
    redis_condition: str | None = None
    # TYPE of the stream key as last seen ("stream", "none" when missing, "string", ...); None: not yet
    stream_type: str | None = None
    # When the start-up systemctl query began, while it has not answered (clock seconds)
    systemd_waiting_since: float | None = None
    report_errors_total: int = 0
    reports_removed_total: int = 0
    # The node read now, failovers and rollbacks seen, the replica's link (docs/redis.md)
    endpoint: Endpoint | None = None
    failovers_total: int = 0
    rollbacks_total: int = 0
    replica: ReplicaStatus | None = None
    verdict_changes_total: int = 0
    ledger: LedgerState | None = None  # None: no ledger configured
    # Where the cutover comes from: systemd, docker, kubernetes or fixed (cutover.source)
    cutover_source: str = "systemd"


class GateCollector(Collector):
    """Builds every family from ``snapshot()`` at scrape time."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot
        self._gate_text: tuple[GateResult, bytes] | None = None

    def render(self) -> bytes:
        """The exposition text of ``collect()``, byte for byte, for ``/metrics``. The gate families are
        a function of the evaluation alone, so their text is kept per evaluation (keyed by the result
        object) and only the live counters are formatted per scrape: 50 concurrent scrapers cost the
        tail thread a fraction of the GIL time (tests/test_hardening_load.py)."""
        try:
            snap = self._snapshot()
        except Exception:  # broad on purpose: a scrape must answer even if the daemon state is broken
            return generate_latest(Families([gauge("snapshot_up", SNAPSHOT_UP_DOC, 0)]))
        live = [gauge("snapshot_up", SNAPSHOT_UP_DOC, 1), *live_families(snap)]
        text = generate_latest(Families(live))
        result = snap.result
        if result is None:
            return text
        cached = self._gate_text
        if cached is None or cached[0] is not result:
            cached = (result, generate_latest(Families(list(gate_families(result, snap.settings.gate)))))
            self._gate_text = cached
        return text + cached[1]

    def collect(self) -> Iterator[Metric]:
        try:
            snap = self._snapshot()
        except Exception:  # broad on purpose: a scrape must answer even if the daemon state is broken
            yield gauge("snapshot_up", SNAPSHOT_UP_DOC, 0)
            return
        yield gauge("snapshot_up", SNAPSHOT_UP_DOC, 1)
        yield from live_families(snap)
        if snap.result is not None:
            yield from gate_families(snap.result, snap.settings.gate)


def make_registry(snapshot: Callable[[], Snapshot]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GateCollector(snapshot))
    return registry
