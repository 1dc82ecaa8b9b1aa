"""Rendering one gate result: the JSON document, the terminal table, Markdown, atomic report files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eventkit import CUTOVER_MS, collapsed_vote, event, healthy_events, run_gate

from quantum_gate.report import dumps, gate_document, render_markdown, render_table
from quantum_gate.report_files import report_stamp, write_report

POST_MS = CUTOVER_MS + 1000


def test_document_shape() -> None:
    result = run_gate(healthy_events(250, POST_MS, fallback_every=5))
    document = gate_document(result, stream="quantum:stream:trade.intent")
    assert document["verdict"] == "PASS"
    assert document["cutover"] == {**document["cutover"], "stream_id": "1768023795000-0", "source": "after"}
    assert document["windows"]["post"]["events"] == 250
    assert document["windows"]["post"]["first_event_at"] == "2026-01-10T05:43:16.000Z"
    assert document["progress"] == {
        "events": 250,
        "min_events": 200,
        "rate_per_minute": 2.0,
        "eta_seconds": 0.0,
    }
    assert document["thresholds"]["majority_max"] == 0.7
    assert set(document["models"]["xgb"]) == {
        "verdict",
        "gated",
        "sporadic",
        "post",
        "pre",
        "delta",
        "checks",
    }
    assert document["sporadic_models"] == {}
    assert document["ensemble"]["post"]["fallback_share"] == pytest.approx(0.2)
    assert json.loads(dumps(document)) == json.loads(dumps(document, indent=False))


def test_document_without_a_cutover() -> None:
    result = run_gate(healthy_events(10, POST_MS), cutover=None)
    document = gate_document(result, stream="s", cutover_error="systemd is not reachable")
    assert document["cutover"] == {
        "stream_id": None,
        "timestamp": None,
        "source": "unknown",
        "error": "systemd is not reachable",
    }
    table = render_table(document)
    assert "cutover   unknown: systemd is not reachable" in table.splitlines()
    assert render_markdown(document).startswith("# Quality gate: INSUFFICIENT_DATA")


@pytest.mark.parametrize(
    ("rate", "shown"),
    [
        (5.0, "rate 5.00/min, ETA 30m00s"),
        (0.15, "rate 0.15/min, ETA 16h40m"),
        (None, "rate -/min, ETA unknown"),
    ],
)
def test_table_rate_and_eta(rate: float | None, shown: str) -> None:
    document = gate_document(run_gate(healthy_events(50, POST_MS)), stream="s")
    document["progress"]["rate_per_minute"] = rate
    document["progress"]["eta_seconds"] = None if rate is None else 150 / rate * 60
    assert f"post      50/200 events, {shown}" in render_table(document).splitlines()


def test_table_lists_models_and_why() -> None:
    events = [
        event(POST_MS + i, {"xgb": ("BUY", 0.3 + i / 1000), "lgbm": collapsed_vote(i)}) for i in range(200)
    ]
    table = render_table(gate_document(run_gate(events), stream="s"))
    lines = table.splitlines()
    assert lines[0] == "quantum-gate: FAIL"
    lgbm = next(line for line in lines if line.startswith("lgbm "))
    assert lgbm.split()[:3] == ["lgbm", "FAIL", "200"]
    assert "- -> 100.0%" in lgbm  # HOLD pre -> post
    assert "why: lgbm: hold 1 (must be <= 0.85)" in lines


def test_markdown_lists_every_check() -> None:
    events = [event(POST_MS + i, {"lgbm": collapsed_vote(i)}) for i in range(200)]
    markdown = render_markdown(gate_document(run_gate(events), stream="s"))
    assert "### lgbm: FAIL" in markdown
    assert "| hold | 1.0000 | 0.9812 to 1.0000 | <= 0.85 | **NO** |" in markdown  # Wilson, 200 of 200
    assert "| min_samples | 200.0000 | - | >= 200 | yes |" in markdown
    assert "Variants: `lgbm_main` 200" in markdown


def test_markdown_check_values_read_the_way_the_checks_decided() -> None:
    """Issue 10.6: a failing std of 0.0499997 once read "| std | 0.0500 | >= 0.05 | **NO** |"."""
    actions = ("BUY", "SELL", "HOLD")
    events = [
        event(POST_MS + index, {"m": (actions[index % 3], 0.5 if index % 2 else 0.5 + 2 * 0.0499997)})
        for index in range(200)
    ]
    markdown = render_markdown(gate_document(run_gate(events), stream="s"))
    row = next(line for line in markdown.splitlines() if line.startswith("| std |"))
    value = row.split("|")[2].strip()
    assert float(value) < 0.05 and row.endswith("| >= 0.05 | **NO** |"), row


def test_report_stamp_is_utc_with_milliseconds() -> None:
    assert report_stamp(1_768_023_795.25) == "20260110T054315250Z"


def test_write_report_is_atomic_and_complete(tmp_path: Path) -> None:
    document = gate_document(run_gate(healthy_events(200, POST_MS)), stream="s")
    path = write_report(tmp_path / "out", document)
    assert path.name == f"quality_gate_{report_stamp(document['evaluated_at_seconds'])}.json"
    assert sorted(item.name for item in path.parent.iterdir()) == [path.name, path.with_suffix(".md").name]
    assert json.loads(path.read_bytes()) == json.loads(dumps(document))
    assert path.with_suffix(".md").read_text(encoding="utf-8") == render_markdown(document)
