"""Windows -> evaluated document: the one path ``check`` and the daemon's evaluation both take.

``new_windows`` builds the pair from the settings; ``rate_from_windows`` is the one definition of the
event rate (and so of the ETA, which is derived from it in ``gate.progress``); ``evaluate_document``
evaluates the pair and assembles the gate document with its report depth (symbols, transitions,
histograms, deployment, notes, retention). What differs between the two callers is only where the
inputs come from (``check`` runs the deployment command and reads XINFO itself; the daemon captured
them earlier, off this path), so it is passed in, never assembled twice.

No I/O here and the clock is passed in: this module sits between the pure core (windows, gate) and
the edges (cli, daemon), and imports neither edge.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from quantum_gate.breakdown import report_depth
from quantum_gate.config import Settings
from quantum_gate.cutover import Cutover
from quantum_gate.gate import GateResult, evaluate, event_rate_per_minute
from quantum_gate.provenance import DeploymentInfo, provenance_json
from quantum_gate.report import gate_document
from quantum_gate.retention import Retention
from quantum_gate.streamids import SEQ_BITS
from quantum_gate.windows import Window, window_pair


def new_windows(settings: Settings) -> tuple[Window, Window]:
    """An empty (post, pre) pair sharing one label vocabulary, bounded by the contract's limits."""
    contract = settings.contract
    return window_pair(
        settings.windows.post,
        settings.windows.baseline,
        max_models=contract.max_models,
        max_actions=contract.max_actions,
        max_variants=contract.max_variants,
        max_symbols=contract.max_symbols,
    )


def rate_from_windows(post: Window, pre: Window, now: float, horizon_seconds: float) -> float:
    """Accepted events per minute: the stream-ID times of the events the windows hold that fall within
    the last ``horizon_seconds`` (docs/architecture.md, "Event rate"). ``check`` and the daemon compute
    it from the same windows, so on the same data they agree.

    Only a contiguous run of the newest events is counted, over the time it covers: the post window
    alone once it is at capacity (it dropped older post-cutover events), otherwise the baseline and the
    post window together (everything since the baseline's oldest event). So a flow faster than the
    windows can hold within the horizon is measured over the shorter span they cover, never read low.
    """
    held = post.keys() if len(post) >= post.capacity else np.concatenate([pre.keys(), post.keys()])
    return event_rate_per_minute(held >> SEQ_BITS, int(now * 1000), horizon_seconds)


def evaluate_document(
    post: Window,
    pre: Window,
    cutover: Cutover | None,
    settings: Settings,
    now: float,
    *,
    deployment: DeploymentInfo | None = None,
    retention: Retention | None = None,
    operator_note: str | None = None,
    cutover_error: str | None = None,
) -> tuple[GateResult, dict[str, Any]]:
    """The typed result and the gate document (docs/cli.md) for ``post`` against ``pre`` at ``now``.

    ``deployment`` is report.deployment_info's output for this cutover (None when none was captured),
    ``retention`` the stream's retention as last read. The windows are only read, never changed."""
    # Without a cutover the windows are empty by construction: the rate is unknown, not zero (a zero
    # would raise the low-event-rate alert for what is a cutover problem, alerted on by itself).
    rate = rate_from_windows(post, pre, now, settings.windows.rate_horizon_seconds) if cutover else None
    result = evaluate(post, pre, cutover, settings.gate, now=now, rate_per_minute=rate)
    report = settings.report
    extra = {
        **report_depth(post, pre, top_symbols=report.top_symbols, histogram_bins=report.histogram_bins),
        **provenance_json(deployment, report.notes, operator_note, configured=report.deployment_info),
        "retention": retention.to_json() if retention is not None else None,
    }
    document = gate_document(result, stream=settings.redis.stream, cutover_error=cutover_error, extra=extra)
    return result, document
