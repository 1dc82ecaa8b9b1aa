"""``quantum_gate_verdict_changes_total`` counts changes *per cutover* (issue 15): a deployment's new
cutover resetting the verdict to INSUFFICIENT_DATA is not a flap, or an ordinary patch loop (FAIL,
restart, FAIL, restart, PASS) trips QuantumGateVerdictFlapping (docs/metrics.md)."""

from __future__ import annotations

from pathlib import Path

from daemonkit import make_settings
from eventkit import CUTOVER_MS, collapsed_vote, event, healthy_events, run_gate

from quantum_gate.cutover import Cutover
from quantum_gate.daemon import Daemon
from quantum_gate.gate import GateResult
from quantum_gate.report import gate_document
from quantum_gate.streamids import StreamId


def cutover(index: int) -> Cutover:
    return Cutover(StreamId(CUTOVER_MS + index * 600_000), source="systemd", invocation_id=f"inv-{index}")


def result(at: Cutover, *, healthy: bool, count: int) -> GateResult:
    start = at.stream_id.ms
    if healthy:
        return run_gate(healthy_events(count, start_ms=start), cutover=at)
    events = [event(start + i, {"xgb": collapsed_vote(i), "lgbm": collapsed_vote(i)}) for i in range(count)]
    return run_gate(events, cutover=at)


def test_a_patch_loop_of_deployments_is_not_counted_as_flapping(tmp_path: Path) -> None:
    settings = make_settings("redis://127.0.0.1:1/0", "s", tmp_path / "reports")
    daemon = Daemon(settings, clock=lambda: 1.0)
    sequence = [
        result(cutover(0), healthy=False, count=50),  # INSUFFICIENT_DATA
        result(cutover(0), healthy=False, count=200),  # FAIL: 1 change under cutover 0
        result(cutover(1), healthy=False, count=50),  # the next deployment: INSUFFICIENT_DATA again
        result(cutover(1), healthy=False, count=200),  # FAIL: 1 change under cutover 1
        result(cutover(2), healthy=True, count=50),
        result(cutover(2), healthy=True, count=200),  # PASS: 1 change under cutover 2
    ]
    verdicts = [found.verdict for found in sequence]
    assert verdicts == ["INSUFFICIENT_DATA", "FAIL"] * 2 + ["INSUFFICIENT_DATA", "PASS"]
    for found in sequence:
        daemon.evaluator.after_evaluation(found, gate_document(found, stream="s"))
    assert (
        daemon.evaluator.state().verdict_changes_total == 3
    )  # one per cutover, as each ledger row's verdict_changes says
    # A verdict that really flips under one cutover is still counted every time.
    flips = [result(cutover(2), healthy=flag, count=200) for flag in (False, True, False)]
    for found in flips:
        daemon.evaluator.after_evaluation(found, gate_document(found, stream="s"))
    assert daemon.evaluator.state().verdict_changes_total == 6
