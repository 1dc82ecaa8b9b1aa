"""Issue 13.5: the verdict is one type, ``Verdict``. A misspelt verdict cannot be constructed, and a
``Verdict`` is written exactly as the string it replaced, in every place a verdict leaves the process:
the JSON document (orjson and json), the Prometheus text, the status page, the reports, structlog's JSON
and console lines, SQLite, a hook's environment."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sqlite3
from typing import Any

import pytest
import structlog
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry
from test_statuspage import NOW, build_windows, snapshot

from bench.kit import without_runtime_families
from quantum_gate.exporter import GateCollector, Snapshot
from quantum_gate.gate import GateResult
from quantum_gate.report import dumps, gate_document, render_markdown, render_table
from quantum_gate.statuspage import render_status_page
from quantum_gate.verdicts import Verdict

# The verdict label of the one-hot gauges quantum_gate_verdict and quantum_gate_model_verdict.
ONE_HOT = re.compile(
    r'^quantum_gate_(?:model_)?verdict\{(?:model="[a-z]+",)?verdict="([a-z_]+)"\} ', re.MULTILINE
)
# The three scenes, one per verdict: (models and their behaviour, post-window events).
SCENES = {
    Verdict.PASS: ({"xgb": "healthy", "lgbm": "healthy"}, 240),
    Verdict.FAIL: ({"xgb": "healthy", "lgbm": "pinned"}, 240),
    Verdict.INSUFFICIENT_DATA: ({"xgb": "healthy", "lgbm": "healthy"}, 20),
}


@pytest.mark.parametrize(
    "spelling", ["pass ", "pass", "Pass", " PASS", "INSUFFICIENT", "INSUFFICIENT DATA", ""]
)
def test_a_misspelt_verdict_cannot_be_constructed(spelling: str) -> None:
    with pytest.raises(ValueError, match="is not a valid Verdict"):
        Verdict(spelling)


def test_the_verdicts_are_the_strings_they_replaced_in_the_order_the_gauges_list_them() -> None:
    assert [verdict.value for verdict in Verdict] == ["PASS", "FAIL", "INSUFFICIENT_DATA"]
    for verdict in Verdict:
        assert Verdict(verdict.value) is verdict
        assert verdict == verdict.value and hash(verdict) == hash(verdict.value)  # a dictionary key alike
        texts = (str(verdict), f"{verdict}", format(verdict), "%s" % verdict, f"{verdict}")  # noqa: UP031
        assert set(texts) == {verdict.value}
        assert os.fsencode(verdict) == verdict.value.encode()  # a hook's QUANTUM_GATE_VERDICT


def test_sqlite_stores_a_verdict_as_its_text() -> None:
    with sqlite3.connect(":memory:") as connection:
        row = connection.execute("SELECT ?, typeof(?)", (Verdict.FAIL, Verdict.FAIL)).fetchone()
    assert row == ("FAIL", "text")
    assert type(row[0]) is str


@pytest.mark.parametrize("renderer", ["json", "console"])
def test_structlog_writes_a_verdict_as_its_string(renderer: str) -> None:
    render = (
        structlog.processors.JSONRenderer()
        if renderer == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    for verdict in Verdict:
        line = render(None, "info", {"event": "gate.verdict_changed", "verdict": verdict})
        assert line == render(None, "info", {"event": "gate.verdict_changed", "verdict": verdict.value})
        assert verdict.value in str(line)


def plain(verdict: Verdict) -> Any:
    """The verdict as the plain string the gate used before ``Verdict``."""
    return verdict.value


def with_plain_verdicts(result: GateResult) -> GateResult:
    models = {
        name: dataclasses.replace(report, verdict=plain(report.verdict))
        for name, report in result.models.items()
    }
    return dataclasses.replace(result, verdict=plain(result.verdict), models=models)


def scrape(snap: Snapshot) -> bytes:
    """The gate's families (the process's own move between two scrapes: CPU seconds, GC counts)."""
    registry = CollectorRegistry()
    registry.register(GateCollector(lambda: snap))
    return without_runtime_families(generate_latest(registry))


@pytest.mark.parametrize("expected", list(SCENES), ids=[verdict.value for verdict in SCENES])
def test_documents_metrics_page_and_reports_are_byte_identical_to_plain_strings(expected: Verdict) -> None:
    models, post_events = SCENES[expected]
    post, pre = build_windows(models, post_events=post_events)
    typed = snapshot(post, pre)
    assert typed.evaluation.result is not None and typed.evaluation.document is not None
    assert typed.evaluation.result.verdict is expected
    assert all(type(report.verdict) is Verdict for report in typed.evaluation.result.models.values())
    legacy_result = with_plain_verdicts(typed.evaluation.result)
    legacy_document = gate_document(legacy_result, stream=typed.settings.redis.stream)
    evaluation = dataclasses.replace(typed.evaluation, result=legacy_result, document=legacy_document)
    legacy = dataclasses.replace(typed, evaluation=evaluation)
    assert type(legacy_document["verdict"]) is str

    assert dumps(typed.evaluation.document) == dumps(legacy_document)
    assert json.dumps(typed.evaluation.document, sort_keys=True) == json.dumps(
        legacy_document, sort_keys=True
    )
    assert render_markdown(typed.evaluation.document) == render_markdown(legacy_document)
    assert render_table(typed.evaluation.document) == render_table(legacy_document)
    assert render_status_page(typed, NOW) == render_status_page(legacy, NOW)
    metrics = scrape(typed)
    assert metrics == scrape(legacy)
    labels = set(ONE_HOT.findall(metrics.decode()))
    assert labels == {"pass", "fail", "insufficient_data"}
    assert f'quantum_gate_verdict{{verdict="{expected.value.lower()}"}} 1.0' in metrics.decode()
