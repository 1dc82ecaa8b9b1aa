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
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client import generate_latest as text_latest
from prometheus_client.core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.registry import Collector

from quantum_gate.config import Settings
from quantum_gate.daemon_state import CutoverState, EvaluatorState, IngestorState, WindowsState
from quantum_gate.gate import GateResult
from quantum_gate.ledger_writer import LedgerState
from quantum_gate.metrics_families import Families, gauge
from quantum_gate.metrics_gate import gate_families
from quantum_gate.metrics_live import live_families

SNAPSHOT_UP_DOC = "1 when the daemon state could be read for this scrape"


@dataclass(frozen=True)
class Snapshot:
    """Everything a scrape, ``/gate`` or ``/healthz`` reads: the daemon parts' frozen states
    (``daemon_state``), taken together under the daemon's lock. A new metric is a field of its part's
    state plus its family; nothing here changes."""

    version: str
    settings: Settings
    tail: IngestorState
    cutovers: CutoverState
    evaluation: EvaluatorState
    windows: WindowsState
    ledger: LedgerState | None = None  # None: no ledger configured


class GateCollector(Collector):
    """Builds every family from ``snapshot()`` at scrape time."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot
        # The process's own families (CPU, RSS, open fds, GC, python_info), as every exporter has
        # them, in a registry of their own: a test's or an embedding program's registry stays clean.
        self._runtime = CollectorRegistry(auto_describe=False)
        for runtime in (ProcessCollector, PlatformCollector, GCCollector):
            runtime(registry=self._runtime)
        self._gate_text: dict[bool, tuple[GateResult, bytes]] = {}  # per format: text or OpenMetrics

    def render(self, *, openmetrics: bool = False) -> bytes:
        """The exposition of ``collect()``, byte for byte, in the text format (0.0.4) or OpenMetrics
        1.0 (what Prometheus asks for first). The gate families are a function of the evaluation
        alone, so their text is kept per evaluation (keyed by the result object) and only the live
        counters are formatted per scrape: 50 concurrent scrapers cost the tail thread a fraction of
        the GIL time (tests/test_hardening_load.py)."""
        try:
            snap = self._snapshot()
        except Exception:  # broad on purpose: a scrape must answer even if the daemon state is broken
            return _format([gauge("snapshot_up", SNAPSHOT_UP_DOC, 0)], openmetrics, end=True)
        live = [gauge("snapshot_up", SNAPSHOT_UP_DOC, 1), *live_families(snap), *self._runtime_families()]
        result = snap.evaluation.result
        if result is None:
            return _format(live, openmetrics, end=True)
        cached = self._gate_text.get(openmetrics)
        if cached is None or cached[0] is not result:
            gate = list(gate_families(result, snap.settings.gate))
            cached = self._gate_text[openmetrics] = (result, _format(gate, openmetrics, end=True))
        return _format(live, openmetrics, end=False) + cached[1]

    def collect(self) -> Iterator[Metric]:
        try:
            snap = self._snapshot()
        except Exception:  # broad on purpose: a scrape must answer even if the daemon state is broken
            yield gauge("snapshot_up", SNAPSHOT_UP_DOC, 0)
            return
        yield gauge("snapshot_up", SNAPSHOT_UP_DOC, 1)
        yield from live_families(snap)
        yield from self._runtime_families()
        if snap.evaluation.result is not None:
            yield from gate_families(snap.evaluation.result, snap.settings.gate)

    def _runtime_families(self) -> list[Metric]:
        # ProcessCollector answers nothing (no exception) where /proc cannot be read.
        return list(self._runtime.collect())


_OPENMETRICS_END = b"# EOF\n"


def _format(families: list[Metric], openmetrics: bool, *, end: bool) -> bytes:
    """The families in one format; OpenMetrics ends once, after the last part (``end``)."""
    if not openmetrics:
        return text_latest(Families(families))
    text: bytes = openmetrics_latest(Families(families))  # type: ignore[no-untyped-call]
    return text if end else text.removesuffix(_OPENMETRICS_END)


def make_registry(snapshot: Callable[[], Snapshot]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GateCollector(snapshot))
    return registry
