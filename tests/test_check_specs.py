"""Issue 13.3: checks as data. One table (``checks.CHECK_SPECS``) names each check's statistic, comparator,
threshold setting and roles; the gate, the verdict, the exporter and the page derive from it, so the
order of the table cannot mislabel a metric or change a verdict."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from eventkit import healthy_vote
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry
from test_gate import single_model_window
from test_statuspage import NOW, build_windows, snapshot

from quantum_gate import checks as check_table
from quantum_gate.checks import CHECK_SPECS, CHECKS, model_checks, model_verdict
from quantum_gate.config import GateSettings, Settings
from quantum_gate.exporter import GateCollector
from quantum_gate.modelstats import ModelStats, model_stats
from quantum_gate.statuspage import render_status_page
from quantum_gate.statuspage_html import CHECK_TITLES, COUNT_CHECKS, SHARE_CHECKS
from quantum_gate.verdicts import Verdict

# The contract, written out once more on purpose: the ``check`` label -> the setting it is held to.
THRESHOLD_SETTING = {
    "min_samples": "min_samples",
    "majority": "majority_max",
    "hold": "hold_max",
    "std": "std_min",
    "p10_p90": "p10_p90_min",
    "constant": "constant_std_min",
    "out_of_range": "out_of_range_max",
    "invalid_votes": "invalid_votes_max",
}
# Every threshold different from every other, so a label moved to another check's value shows.
DISTINCT = GateSettings(
    min_samples=201,
    min_events=201,
    majority_max=0.61,
    hold_max=0.52,
    std_min=0.13,
    p10_p90_min=0.3,
    constant_std_min=0.011,
    constant_width_min=0.002,
    out_of_range_max=0.01,
    invalid_votes_max=0.02,
)
THRESHOLD = re.compile(r'^quantum_gate_check_threshold\{check="([a-z0-9_]+)"\} (\S+)$', re.MULTILINE)


def exported_thresholds(settings: Settings) -> dict[str, float]:
    post, pre = build_windows({"xgb": "healthy", "lgbm": "pinned"})
    snap = snapshot(post, pre, settings=settings)
    registry = CollectorRegistry()
    registry.register(GateCollector(lambda: snap))
    text = generate_latest(registry).decode()
    found = THRESHOLD.findall(text)
    assert len(found) == len(CHECK_SPECS), text
    return {name: float(value) for name, value in found}


def test_every_spec_names_a_real_statistic_and_setting() -> None:
    settings_fields = set(GateSettings.model_fields)
    stats_fields = {field.name for field in dataclasses.fields(ModelStats)}
    assert len(CHECKS) == len(set(CHECKS)) == len(CHECK_SPECS)
    for spec in CHECK_SPECS:
        assert spec.comparator in {">=", "<="}, spec.name
        for bound in spec.bounds:
            assert bound.threshold in settings_fields, (spec.name, bound.threshold)
            assert bound.statistic in stats_fields, (spec.name, bound.statistic)
        assert not (spec.share and spec.interval), f"{spec.name}: a share takes the Wilson interval"
    assert {spec.name: spec.bound.threshold for spec in CHECK_SPECS} == THRESHOLD_SETTING


def test_exported_thresholds_are_the_setting_of_each_check_by_name() -> None:
    exported = exported_thresholds(Settings(gate=DISTINCT))
    assert exported == {name: float(getattr(DISTINCT, field)) for name, field in THRESHOLD_SETTING.items()}


def test_a_reordered_table_cannot_mislabel_a_threshold_or_a_check(monkeypatch: pytest.MonkeyPatch) -> None:
    reordered = tuple(reversed(CHECK_SPECS))
    monkeypatch.setattr(check_table, "CHECK_SPECS", reordered)
    exported = exported_thresholds(Settings(gate=DISTINCT))
    assert exported == {name: float(getattr(DISTINCT, field)) for name, field in THRESHOLD_SETTING.items()}
    stats = model_stats(single_model_window([healthy_vote(i) for i in range(300)]), "m", (0.5,))
    checks = model_checks(stats, DISTINCT)
    assert [check.name for check in checks] == [spec.name for spec in reordered]
    for check in checks:
        assert check.threshold == getattr(DISTINCT, THRESHOLD_SETTING[check.name]), check.name


@pytest.mark.parametrize("order", [CHECK_SPECS, tuple(reversed(CHECK_SPECS))], ids=["table", "reversed"])
def test_the_verdict_finds_min_samples_by_its_role_not_its_place(
    monkeypatch: pytest.MonkeyPatch, order: tuple[check_table.CheckSpec, ...]
) -> None:
    monkeypatch.setattr(check_table, "CHECK_SPECS", order)
    healthy = model_stats(single_model_window([healthy_vote(i) for i in range(300)]), "m", (0.5,))
    few = dataclasses.replace(healthy, samples=10, hold_share=1.0)
    assert model_verdict(model_checks(few, GateSettings())) == Verdict.INSUFFICIENT_DATA
    assert model_verdict(model_checks(dataclasses.replace(few, samples=200), GateSettings())) == Verdict.FAIL
    assert model_verdict(model_checks(healthy, GateSettings())) == Verdict.PASS
    # Whatever order the checks come in, too few samples is INSUFFICIENT_DATA, never FAIL.
    assert model_verdict(tuple(reversed(model_checks(few, GateSettings())))) == Verdict.INSUFFICIENT_DATA


def test_constant_holds_both_of_its_bounds_and_reports_the_second_in_detail() -> None:
    base = model_stats(single_model_window([healthy_vote(i) for i in range(300)]), "m", (0.5,))
    settings = GateSettings()
    for std, width, passed in ((0.02, 0.0, False), (0.0, 0.2, False), (0.02, 0.002, True)):
        stats = dataclasses.replace(base, std=std, p10_p90=width)
        constant = {check.name: check for check in model_checks(stats, settings)}["constant"]
        assert (constant.value, constant.threshold, constant.passed) == (std, 0.01, passed)
        assert constant.detail == {"p10_p90": width, "p10_p90_threshold": 0.001}


def test_the_page_takes_titles_and_units_from_the_table() -> None:
    assert set(CHECK_TITLES) == set(CHECKS)
    assert set(SHARE_CHECKS) == {"majority", "hold", "out_of_range", "invalid_votes"}
    assert set(COUNT_CHECKS) == {"min_samples"}
    assert check_table.COLLAPSE_CHECKS == ("majority", "hold", "std", "p10_p90", "constant")


# The page's checks table under DISTINCT, written out once more: each check's column heading (its title)
# and the threshold shown under it, so a title or threshold shifted into another check's column shows.
PAGE_COLUMNS = {
    "min_samples": ("samples", "≥ 201"),
    "majority": ("majority", "≤ 61%"),
    "hold": ("HOLD", "≤ 52%"),
    "std": ("std", "≥ 0.13"),
    "p10_p90": ("P10-P90", "≥ 0.3"),
    "constant": ("constant", "≥ 0.011"),
    "out_of_range": ("out of range", "≤ 1%"),
    "invalid_votes": ("invalid votes", "≤ 2%"),
}
HEADING = re.compile(r"<th>([^<]+)<span class=sub>([^<]+)</span></th>")
ROW = re.compile(r"<tr data-model='([a-z]+)'>(.*?)</tr>")
CELL_CHECK = re.compile(r"data-check='([a-z0-9_]+)'")


@pytest.mark.parametrize("order", [CHECK_SPECS, tuple(reversed(CHECK_SPECS))], ids=["table", "reversed"])
def test_the_page_shows_every_check_under_its_own_title_and_threshold(
    monkeypatch: pytest.MonkeyPatch, order: tuple[check_table.CheckSpec, ...]
) -> None:
    """Every row of the table reaches the page's checks table, each cell and threshold in its own
    check's column, looked up by name: the document's checks may come in any order."""
    monkeypatch.setattr(check_table, "CHECK_SPECS", order)
    post, pre = build_windows({"xgb": "healthy", "lgbm": "pinned"})
    snap = snapshot(post, pre, settings=Settings(gate=DISTINCT))
    document = snap.evaluation.document
    assert document is not None
    assert [check["name"] for check in document["models"]["xgb"]["checks"]] == [s.name for s in order]
    page = render_status_page(snap, NOW)
    table = page[page.index("<table id=checks>") : page.index("</table>", page.index("<table id=checks>"))]
    assert set(PAGE_COLUMNS) == set(CHECKS)
    assert HEADING.findall(table) == [PAGE_COLUMNS[name] for name in CHECKS]
    rows = dict(ROW.findall(table))
    assert set(rows) == {"xgb", "lgbm"}
    for model, cells in rows.items():
        assert CELL_CHECK.findall(cells) == list(CHECKS), model


def test_the_metrics_reference_lists_every_check_with_its_setting_and_comparator() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "metrics.md").read_text(encoding="utf-8")
    label_line = next(line for line in text.splitlines() if line.startswith("* `check` is one of"))
    assert re.findall(r"`([a-z0-9_]+)`", label_line)[1:] == list(CHECKS)
    rows = re.findall(r"^\| `([a-z0-9_]+)` \| (.+?) \| `gate\.([a-z0-9_]+)` \|$", text, re.MULTILINE)
    assert [name for name, _, _ in rows] == list(CHECKS)
    for name, passes_when, setting in rows:
        spec = check_table.CHECK_SPEC_BY_NAME[name]
        assert setting == spec.bound.threshold, name
        assert f"{spec.comparator} threshold" in passes_when, name
        for extra in spec.also:
            assert f"`gate.{extra.threshold}`" in passes_when, name
