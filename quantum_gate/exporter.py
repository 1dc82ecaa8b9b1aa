"""Prometheus collector and the small HTTP app (``/metrics``, ``/gate``, ``/healthz``, ``/``).

Metrics are computed at scrape time from one immutable ``Snapshot`` of the daemon (the latest
evaluation plus live counters), by a custom collector in the project's own registry. A broken
snapshot source yields ``quantum_gate_up 0``-style gauges, never an exception in the scrape.
Names and labels are documented in docs/metrics.md; label sets are bounded (model keys are capped by
the contract limits, actions by the label table, reasons by ``SkipReason``, checks by ``gate.CHECK_SPECS``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from quantum_gate.checks import check_thresholds, readable
from quantum_gate.config import HttpSettings, Settings
from quantum_gate.connection import Endpoint
from quantum_gate.contract import SkipReason
from quantum_gate.cutover import Cutover
from quantum_gate.failover import ReplicaStatus
from quantum_gate.formatting import TIDY_DIGITS, tidy
from quantum_gate.gate import GateResult
from quantum_gate.histograms import Histogram
from quantum_gate.httpserver import HardenedServer
from quantum_gate.ledger import LedgerError, LedgerState, read_history
from quantum_gate.modelstats import ModelStats
from quantum_gate.report import dumps
from quantum_gate.retention import RISK_KINDS, Retention
from quantum_gate.verdicts import Verdict
from quantum_gate.webconfig import WebConfig

P = "quantum_gate_"
ALERTS = ("low_event_rate", "collapse")


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


def _gauge(
    name: str, doc: str, value: float | None = None, labels: tuple[str, ...] = ()
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(P + name, doc, labels=list(labels) or None)
    if value is not None and not labels:
        family.add_metric([], float(value))
    return family


def _counter(
    name: str, doc: str, value: float | None = None, labels: tuple[str, ...] = ()
) -> CounterMetricFamily:
    family = CounterMetricFamily(P + name, doc, labels=list(labels) or None)
    if value is not None and not labels:
        family.add_metric([], float(value))
    return family


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
            return generate_latest(_Families([_gauge("snapshot_up", SNAPSHOT_UP_DOC, 0)]))
        live = [_gauge("snapshot_up", SNAPSHOT_UP_DOC, 1), *self._daemon(snap), *self._stream(snap)]
        text = generate_latest(_Families(live))
        result = snap.result
        if result is None:
            return text
        cached = self._gate_text
        if cached is None or cached[0] is not result:
            cached = (result, generate_latest(_Families(list(self._gate(snap, result)))))
            self._gate_text = cached
        return text + cached[1]

    def collect(self) -> Iterator[Metric]:
        try:
            snap = self._snapshot()
        except Exception:  # broad on purpose: a scrape must answer even if the daemon state is broken
            yield _gauge("snapshot_up", "1 when the daemon state could be read for this scrape", 0)
            return
        yield _gauge("snapshot_up", "1 when the daemon state could be read for this scrape", 1)
        yield from self._daemon(snap)
        yield from self._stream(snap)
        if snap.result is not None:
            yield from self._gate(snap, snap.result)

    # ---- daemon, systemd, Redis --------------------------------------------------------------------

    def _cutover_source(self, snap: Snapshot) -> Iterator[Metric]:
        """systemd keeps its own names (alerts use them); every source also has the labelled pair."""
        source = snap.cutover_source
        if source in {"systemd", "fixed"}:  # as before sources existed
            if snap.systemd_up is not None:
                yield _gauge("systemd_up", "1 when the last systemctl show answered", int(snap.systemd_up))
            errors = _counter(
                "systemd_errors_total", "systemctl queries that failed, by reason", labels=("reason",)
            )
            for reason, count in sorted(snap.systemd_errors_total.items()):
                errors.add_metric([reason], count)
            yield errors
        if snap.systemd_up is not None:
            up = _gauge("cutover_source_up", "1 when the cutover source last answered", labels=("source",))
            up.add_metric([source], int(snap.systemd_up))
            yield up
        failed = _counter(
            "cutover_source_errors_total",
            "cutover source queries that failed, by source and reason",
            labels=("source", "reason"),
        )
        for reason, count in sorted(snap.systemd_errors_total.items()):
            failed.add_metric([source, reason], count)
        yield failed

    def _daemon(self, snap: Snapshot) -> Iterator[Metric]:
        info = _gauge("build_info", "quantum-gate version", labels=("version",))
        info.add_metric([snap.version], 1)
        yield info
        yield _gauge("redis_up", "1 when the last Redis command succeeded", int(snap.redis_up))
        yield from _redis_endpoint(snap)
        yield from self._cutover_source(snap)
        yield _gauge("cutover_known", "1 when a cutover is known", int(snap.cutover is not None))
        if snap.cutover is not None:
            yield _gauge(
                "cutover_timestamp_seconds",
                "cutover time (UTC epoch seconds)",
                snap.cutover.stream_id.seconds,
            )
            if snap.cutover.rollout is not None:
                yield _gauge(
                    "rollout_complete",
                    "1 when the Kubernetes rollout of the cutover is complete; 0 while old pods still run",
                    int(snap.cutover.rollout.complete),
                )
        yield _counter(
            "cutovers_total", "cutovers adopted, the first one found at start included", snap.cutovers_total
        )
        yield _gauge(
            "last_evaluation_timestamp_seconds", "when the gate was last evaluated", snap.last_evaluation_at
        )
        yield _gauge(
            "evaluation_duration_seconds", "duration of the last evaluation", snap.evaluation_duration
        )
        yield _counter("evaluations_total", "gate evaluations run", snap.evaluations_total)
        yield _counter(
            "evaluation_errors_total", "gate evaluations that raised", snap.evaluation_errors_total
        )
        yield _counter("reports_written_total", "gate reports written", snap.reports_written_total)
        yield _counter(
            "report_errors_total", "gate reports that could not be written", snap.report_errors_total
        )
        yield _counter(
            "reports_removed_total",
            "report files removed by the retention limits",
            snap.reports_removed_total,
        )
        yield _counter(
            "verdict_changes_total",
            "times the verdict changed from one evaluation to the next (flapping shows here)",
            snap.verdict_changes_total,
        )
        yield from _ledger(snap.ledger)
        alerts = _gauge("alert_active", "1 while the daemon's own alert is raised", labels=("alert",))
        for alert in ALERTS:
            alerts.add_metric([alert], int(snap.alerts.get(alert, False)))
        yield alerts
        yield _gauge(
            "event_rate_threshold_per_minute",
            "the low event rate alert threshold",
            snap.settings.alerts.low_rate_per_minute,
        )
        yield _gauge(
            "stall_threshold_seconds",
            "no accepted event for this long means stalled",
            snap.settings.alerts.stall_seconds,
        )

    # ---- stream and windows ------------------------------------------------------------------------

    def _stream(self, snap: Snapshot) -> Iterator[Metric]:
        yield _counter("events_accepted_total", "entries accepted into the gate", snap.accepted_total)
        skipped = _counter("events_skipped_total", "entries skipped, by reason", labels=("reason",))
        for reason in SkipReason:
            skipped.add_metric([reason], snap.skipped_total.get(reason, 0))
        yield skipped
        yield _counter("entries_read_total", "stream entries read", snap.entries_read_total)
        yield _counter("events_lost_total", "entries trimmed before they could be read", snap.lost_total)
        yield _counter(
            "stream_resets_total", "stream deleted, recreated or emptied under the daemon", snap.resets_total
        )
        yield _counter("model_keys_refused_total", "model keys refused by the caps", snap.refused_total)
        events = _gauge("window_events", "accepted events in the window", labels=("window",))
        capacity = _gauge("window_capacity", "window size limit", labels=("window",))
        for window in ("pre", "post"):
            events.add_metric([window], snap.window_events.get(window, 0))
            capacity.add_metric([window], snap.window_capacity.get(window, 0))
        yield events
        yield capacity
        yield _gauge(
            "min_events", "accepted post-cutover events the gate needs", snap.settings.gate.min_events
        )
        if snap.rate_per_minute is not None:
            yield _gauge(
                "event_rate_per_minute",
                "accepted events per minute (stream-ID time)",
                tidy(snap.rate_per_minute),
            )
        if snap.last_event_ms is not None:
            yield _gauge("last_event_timestamp_seconds", "newest accepted event", snap.last_event_ms / 1000)
        if snap.last_entry_ms is not None:
            yield _gauge(
                "last_entry_timestamp_seconds", "newest stream entry of any kind", snap.last_entry_ms / 1000
            )
        if snap.stream_type is not None:
            yield _gauge(
                "stream_exists",
                "1 when the stream key exists and is a stream",
                int(snap.stream_type == "stream"),
            )
        if snap.stream_length is not None:
            yield _gauge("stream_length", "XLEN of the stream", snap.stream_length)
        yield from _retention(snap.retention)
        if snap.post_window_truncated is not None:
            yield _gauge(
                "post_window_truncated",
                "1 when the stream no longer holds its first post-cutover entries",
                int(snap.post_window_truncated),
            )

    # ---- the gate ----------------------------------------------------------------------------------

    def _gate(self, snap: Snapshot, result: GateResult) -> Iterator[Metric]:
        """Only ``result`` and the (frozen) settings may feed these families: ``render`` caches their
        text per evaluation."""
        verdict = _gauge("verdict", "the gate verdict, one-hot", labels=("verdict",))
        for name in Verdict:
            verdict.add_metric([name.lower()], int(result.verdict == name))
        yield verdict
        progress = result.progress
        if progress.eta_seconds is not None:
            yield _gauge("eta_seconds", "time to min_events at the current rate", tidy(progress.eta_seconds))
        yield from self._models(result)
        yield from self._checks(snap, result)
        yield from self._ensemble(result)

    def _models(self, result: GateResult) -> Iterator[Metric]:
        labels = ("model", "window")
        gated = _gauge("model_gated", "1 when the model is gated", labels=("model",))
        model_verdict = _gauge("model_verdict", "per-model verdict, one-hot", labels=("model", "verdict"))
        collapsed = _gauge("model_collapsed", "1 when a gated model collapsed", labels=("model",))
        sporadic = _gauge(
            "model_sporadic",
            "1 when the model voted after the cutover too rarely to be gated",
            labels=("model",),
        )
        samples = _gauge("model_samples", "valid votes in the window", labels=labels)
        respelled = _gauge(
            "model_action_label_variants",
            "votes in the window whose action label was a spelling variant of its normal form",
            labels=labels,
        )
        presence = _gauge("model_presence", "share of window events with a valid vote", labels=labels)
        shares = _gauge("model_action_share", "share of votes per action", labels=(*labels, "action"))
        stats = {
            key: _gauge(f"model_{key}", doc, labels=labels)
            for key, doc in (
                ("confidence_mean", "mean confidence"),
                ("confidence_std", "population std of confidence"),
                ("confidence_p10", "10th percentile of confidence"),
                ("confidence_p90", "90th percentile of confidence"),
                ("confidence_p10_p90", "P90 - P10 of confidence"),
                ("top_value_share", "share of the most frequent exact confidence"),
                ("suspect_share", "share of confidences at a suspect constant"),
                ("out_of_range_share", "share of confidences outside [0, 1]"),
            )
        }
        minimum = result.thresholds.min_samples
        for name, report in result.models.items():
            gated.add_metric([name], int(report.gated))
            sporadic.add_metric([name], int(report.sporadic))
            if report.gated:
                for verdict_name in Verdict:
                    model_verdict.add_metric(
                        [name, verdict_name.lower()], int(report.verdict == verdict_name)
                    )
                collapsed.add_metric([name], int(report.collapsed(minimum)))
            for window, model_stats in (("post", report.post), ("pre", report.pre)):
                samples.add_metric([name, window], model_stats.samples)
                respelled.add_metric([name, window], model_stats.action_label_variants)
                if model_stats.presence is not None:
                    presence.add_metric([name, window], tidy(model_stats.presence))
                for action, share in model_stats.action_shares.items():
                    shares.add_metric([name, window, action], tidy(share))
                for key, value in _stat_values(model_stats).items():
                    if value is not None:
                        stats[key].add_metric([name, window], tidy(value))
        yield from (gated, model_verdict, collapsed, sporadic, samples, respelled, presence, shares)
        yield from stats.values()

    def _checks(self, snap: Snapshot, result: GateResult) -> Iterator[Metric]:
        passing = _gauge("check_passing", "1 when the check passes", labels=("model", "check"))
        values = _gauge("check_value", "the value the check compares", labels=("model", "check"))
        borderline = _gauge(
            "check_borderline",
            "1 when the check's 95 % interval straddles its threshold (the verdict may flip)",
            labels=("model", "check"),
        )
        margins = _gauge(
            "check_margin",
            "how far the value clears its threshold (positive passes, negative fails)",
            labels=("model", "check"),
        )
        for report in result.gated():
            for check in report.checks:
                passing.add_metric([report.name, check.name], int(check.passed))
                if check.value is not None:
                    shown = readable(check.value, check.comparator, check.threshold, digits=TIDY_DIGITS)
                    values.add_metric([report.name, check.name], float(shown))
                if check.interval is not None:
                    borderline.add_metric([report.name, check.name], int(check.borderline))
                margin = check.margin
                if margin is not None:
                    margins.add_metric([report.name, check.name], tidy(margin))
        thresholds = _gauge("check_threshold", "the threshold of each check", labels=("check",))
        for name, value in check_thresholds(snap.settings.gate).items():
            thresholds.add_metric([name], value)
        yield from (passing, values, thresholds, borderline, margins)

    def _ensemble(self, result: GateResult) -> Iterator[Metric]:
        fallback = _gauge(
            "ensemble_fallback_share", "share of events where the rule fallback fired", labels=("window",)
        )
        sides = _gauge(
            "ensemble_side_share", "share of ensemble decisions per side", labels=("window", "action")
        )
        agreement = _gauge(
            "ensemble_agreement", "mean share of votes on the modal action", labels=("window",)
        )
        hard = _gauge(
            "ensemble_hard_disagree_share", "share of events with BUY and SELL votes", labels=("window",)
        )
        for window, stats in (("post", result.ensemble_post), ("pre", result.ensemble_pre)):
            scalars: list[tuple[GaugeMetricFamily, float | None]] = [
                (fallback, stats.fallback_share),
                (agreement, stats.agreement),
                (hard, stats.hard_disagree_share),
            ]
            for family, value in scalars:
                if value is not None:
                    family.add_metric([window], tidy(value))
            for action, share in stats.side_shares.items():
                sides.add_metric([window, action], tidy(share))
        yield from (fallback, sides, agreement, hard)


def _retention(retention: Retention | None) -> Iterator[Metric]:
    """How much time and how many entries the stream covers, and the trimming risks (docs/retention.md)."""
    if retention is None:
        return
    if retention.first_ms is not None:
        yield _gauge(
            "stream_first_entry_timestamp_seconds",
            "oldest entry still in the stream",
            retention.first_ms / 1000,
        )
    if retention.covers_seconds is not None:
        yield _gauge(
            "stream_retention_seconds",
            "time from the oldest to the newest stream entry",
            retention.covers_seconds,
        )
    if retention.entries_added is not None:
        yield _gauge(
            "stream_entries_added", "XINFO entries-added: entries ever added", retention.entries_added
        )
    risk = _gauge(
        "retention_risk", "1 when trimming threatens the baseline or the post window", labels=("kind",)
    )
    for kind in RISK_KINDS:
        risk.add_metric([kind], int(retention.risks[kind]))
    yield risk


def _ledger(state: LedgerState | None) -> Iterator[Metric]:
    """Absent without a ledger; otherwise whether it is usable and what it has written or failed."""
    if state is None:
        return
    yield _gauge("ledger_up", "1 when the deployment ledger file is usable", int(state.up))
    yield _counter("ledger_writes_total", "ledger rows written", state.writes_total)
    yield _counter("ledger_errors_total", "ledger opens or writes that failed", state.errors_total)


def _stat_values(stats: ModelStats) -> dict[str, float | None]:
    return {
        "confidence_mean": stats.mean,
        "confidence_std": stats.std,
        "confidence_p10": stats.p10,
        "confidence_p90": stats.p90,
        "confidence_p10_p90": stats.p10_p90,
        "top_value_share": stats.top_value_share,
        "suspect_share": stats.suspect_share,
        "out_of_range_share": stats.out_of_range_share,
    }


class _Families:
    """What ``generate_latest`` needs of a registry: ``collect()`` over a fixed list of families."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


SNAPSHOT_UP_DOC = "1 when the daemon state could be read for this scrape"


def _redis_endpoint(snap: Snapshot) -> Iterator[Metric]:
    """Where the daemon reads (Sentinel, Cluster or a plain address), failovers, rollbacks, replica link."""
    endpoint = snap.endpoint
    info = _gauge(
        "redis_endpoint_info",
        "the Redis node read now (role master, replica or direct)",
        labels=("role", "address"),
    )
    if endpoint is not None:
        info.add_metric([endpoint.role, endpoint.address], 1)
    yield info
    if endpoint is not None and endpoint.topology == "sentinel":
        yield _gauge(
            "redis_replica_fallback",
            "1 when a replica was asked for (read_from=replica) and none was up, so the master is read",
            int(endpoint.fallback),
        )
    yield _counter(
        "redis_failovers_total",
        "reconnections that found Sentinel naming another node than before",
        snap.failovers_total,
    )
    yield _counter(
        "stream_rollbacks_total",
        "reconnections to a node whose stream ends before the last ID already counted",
        snap.rollbacks_total,
    )
    replica = snap.replica
    if replica is not None:
        yield _gauge(
            "redis_replica_link_up",
            "1 when the replica read says its master link is up",
            int(replica.link_up),
        )
        if replica.last_io_seconds is not None:
            yield _gauge(
                "redis_replica_last_io_seconds",
                "seconds since the replica read last heard from its master (INFO replication)",
                replica.last_io_seconds,
            )


def make_registry(snapshot: Callable[[], Snapshot]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GateCollector(snapshot))
    return registry


# ---- HTTP ------------------------------------------------------------------------------------------


def health(snap: Snapshot, now: float) -> tuple[bool, str]:
    if snap.systemd_waiting_since is not None:  # start-up: Redis is not asked before systemd answers
        waited = max(now - snap.systemd_waiting_since, 0.0)
        limit = snap.settings.cutover.timeout_seconds
        tool = {"docker": "docker inspect", "kubernetes": "kubectl get"}.get(
            snap.cutover_source, "systemctl show"
        )
        return (
            False,
            f"{snap.cutover_source} not answering ({tool} running for {waited:.0f}s, timeout {limit:g}s)",
        )
    if not snap.redis_up:
        # no condition yet: the first connection has not been tried to the end
        return False, f"redis {snap.redis_condition or 'not connected yet'}"
    if snap.last_evaluation_at is None:
        return False, "no evaluation yet"
    age = now - snap.last_evaluation_at
    limit = snap.settings.daemon.staleness_limit()
    if age > limit:
        return False, f"last evaluation {age:.0f}s ago (limit {limit:.0f}s)"
    return True, "ok"


# The query parameters each route takes, with the values each accepts. Anything else, an empty value
# or a repeated parameter is refused with 400: a webhook with a typo (?requires=pass) must not get a
# 200 that reads like a PASS.
ROUTE_PARAMETERS: dict[str, dict[str, frozenset[str]]] = {
    "/metrics": {},
    "/gate": {"require": frozenset({"pass", "not_fail"})},
    "/healthz": {},
    "/": {},
    "/index.html": {},
    "/reports/": {},  # /reports/<name>; /history checks its own (limit)
}


def query_problem(route: str, query: str) -> str | None:
    """One line saying what is wrong with the query string, or None when the route takes it."""
    allowed = ROUTE_PARAMETERS.get(route, {})
    seen: set[str] = set()
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in allowed:
            takes = ", ".join(sorted(allowed)) or "no parameters"
            return f"unknown query parameter {name[:40]!r}: {route} takes {takes}"
        if not value:
            return f"empty query parameter {name!r}: give one of {', '.join(sorted(allowed[name]))}"
        if name in seen:
            return f"query parameter {name!r} given twice"
        if value not in allowed[name]:
            return f"{name} must be one of {', '.join(sorted(allowed[name]))}, not {value[:40]!r}"
        seen.add(name)
    return None


class HttpApp:
    """Routes for the daemon's listener; ``render_index`` draws ``/`` (the status page)."""

    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        clock: Callable[[], float],
        render_index: Callable[[Snapshot, float], str],
    ) -> None:
        self.snapshot = snapshot
        self.clock = clock
        self.render_index = render_index
        self.collector = GateCollector(snapshot)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)

    def handle(self, path: str) -> tuple[int, str, bytes]:  # noqa: PLR0911 - one return per route
        route, _, query = path.partition("?")
        checked = "/reports/" if route.startswith("/reports/") else route
        if checked in ROUTE_PARAMETERS and (problem := query_problem(checked, query)) is not None:
            return 400, "text/plain; charset=utf-8", problem.encode("utf-8") + b"\n"
        if route == "/metrics":
            return 200, CONTENT_TYPE_LATEST, self.collector.render()
        snap = self.snapshot()
        if route == "/gate":
            return gate_response(snap, path)
        if route == "/healthz":
            ok, why = health(snap, self.clock())
            body = dumps({"status": "ok" if ok else "unhealthy", "reason": why}, indent=False) + b"\n"
            return (200 if ok else 503), "application/json", body
        if route == "/history":
            return history_response(snap, path)
        if route.startswith("/reports/"):
            return report_file_response(snap.settings.daemon.report_dir, route.removeprefix("/reports/"))
        if route in {"/", "/index.html"}:
            return 200, "text/html; charset=utf-8", self.render_index(snap, self.clock()).encode("utf-8")
        return 404, "text/plain; charset=utf-8", b"not found: try /, /metrics, /gate, /healthz, /history\n"


def gate_response(snap: Snapshot, path: str) -> tuple[int, str, bytes]:
    """``/gate``: the ``check --json`` document. ``?require=pass`` (200 only on PASS) or
    ``?require=not_fail`` (non-2xx only on FAIL) are for rollout webhooks that read the status code,
    such as Flagger's (docs/rollouts.md); 412 when the requirement is unmet, with the same body.
    The query was checked by ``query_problem`` (400 for anything else)."""
    if snap.document is None:
        return 503, "application/json", b'{"error": "no evaluation yet"}\n'
    require = dict(parse_qsl(path.partition("?")[2])).get("require")
    verdict = snap.document["verdict"]
    unmet = (require == "pass" and verdict != Verdict.PASS) or (
        require == "not_fail" and verdict == Verdict.FAIL
    )
    return (412 if unmet else 200), "application/json", dumps(snap.document) + b"\n"


# Only the files write_report names, so nothing else in (or outside) the folder can be asked for.
_REPORT_NAME = re.compile(r"^quality_gate_\d{8}T\d{9}Z\.(md|json)$")


def report_file_response(directory: Path, name: str) -> tuple[int, str, bytes]:
    """``/reports/<name>``: a report the daemon wrote (the status page's "Recent cutovers" links)."""
    match = _REPORT_NAME.match(name)
    if match is None:
        return 404, "text/plain; charset=utf-8", b"not a report name\n"
    try:
        data = (directory / name).read_bytes()
    except OSError:
        return 404, "text/plain; charset=utf-8", b"no such report (it may have been removed)\n"
    kind = "application/json" if match.group(1) == "json" else "text/markdown; charset=utf-8"
    return 200, kind, data


HISTORY_DEFAULT_LIMIT = 20
HISTORY_MAX_LIMIT = 1000


def history_response(snap: Snapshot, path: str) -> tuple[int, str, bytes]:
    """``/history``: the ledger's rows, newest first (``?limit=N``, 1..1000, default 20)."""
    text = "text/plain; charset=utf-8"
    query = parse_qs(path.partition("?")[2], keep_blank_values=True)
    unknown = sorted(set(query) - {"limit"})
    if unknown:
        return 400, text, f"unknown query parameter {unknown[0]!r}: /history takes only limit\n".encode()
    raw = query.get("limit", [str(HISTORY_DEFAULT_LIMIT)])[-1]
    # ASCII digits only, and few: str.isdigit accepts '²' and 5,000 digits, which int() then refuses.
    if re.fullmatch(r"[0-9]{1,7}", raw) is None or not 1 <= int(raw) <= HISTORY_MAX_LIMIT:
        return 400, text, f"limit must be a whole number from 1 to {HISTORY_MAX_LIMIT}\n".encode()
    if snap.ledger is None:
        return 404, "application/json", b'{"error": "no ledger configured (ledger.path, --ledger)"}\n'
    try:
        found = read_history(Path(snap.ledger.path), int(raw))
    except LedgerError as exc:
        return 503, "application/json", dumps({"error": exc.message}, indent=False) + b"\n"
    body = {"ledger": snap.ledger.path, "cutovers": [row.to_json() for row in found]}
    return 200, "application/json", dumps(body) + b"\n"


class _Handler(BaseHTTPRequestHandler):
    app: HttpApp
    server_version = "quantum-gate"
    sys_version = ""

    def do_GET(self) -> None:  # the stdlib's name
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        """The headers GET would send (Content-Length included), and no body (RFC 9110)."""
        self._answer(with_body=False)

    def _answer(self, *, with_body: bool) -> None:
        try:
            status, content_type, body = self.app.handle(self.path)
        except Exception:  # broad on purpose: answer 500, keep serving
            status, content_type, body = 500, "text/plain; charset=utf-8", b"internal error\n"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_POST(self) -> None:
        """Rollout webhooks (Flagger) POST a JSON body: only ``/gate`` answers; the body is ignored."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.send_error(400, "bad Content-Length")
        elif self.path.partition("?")[0] != "/gate":
            self.send_error(405, "POST is for /gate only")
        elif length > 1 << 20:
            self.send_error(413, "a webhook body up to 1 MiB")
        else:
            self.rfile.read(length)
            self.do_GET()

    def log_message(self, format: str, *args: Any) -> None:  # the stdlib's signature
        return  # access logs would be one line per scrape; the daemon logs state changes only


class HttpServer:
    """The app behind the hardened listener (quantum_gate/httpserver.py): bounded workers, deadlines and
    caps always; TLS, basic auth and extra headers when a web configuration file is given."""

    def __init__(
        self,
        app: HttpApp,
        host: str,
        port: int,
        limits: HttpSettings | None = None,
        web: WebConfig | None = None,
    ) -> None:
        handler = type("Handler", (_Handler,), {"app": app})
        self._server = HardenedServer(handler, host, port, limits or HttpSettings(), web)

    @property
    def port(self) -> int:
        return self._server.port

    def start(self) -> None:
        self._server.start()

    def reload_tls(self) -> None:
        self._server.reload_tls()

    def stop(self) -> None:
        self._server.stop()
