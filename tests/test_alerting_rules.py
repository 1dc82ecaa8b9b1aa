"""The shipped alerting and dashboard files: Prometheus rules, their promtool unit tests, the Alertmanager
example and the Grafana dashboard.

promtool and amtool come from Debian's ``prometheus`` and ``prometheus-alertmanager`` packages: in CI a
missing tool fails these tests (.ci/run installs both), locally they skip loudly (``require_tool``).
Every metric name a rule, a template query or a panel uses must be one the daemon exports (the contract
below) or a recording rule defined in the rules file, so a typo cannot make an alert that never fires or a
panel that never draws. tests/test_live_alerting.py proves the same files against the real daemon.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, require_tool

RULES = REPO / "deploy" / "prometheus" / "quantum-gate.rules.yml"
PROMTOOL_TESTS = REPO / "tests" / "promtool"
ALERTMANAGER = REPO / "deploy" / "alertmanager" / "alertmanager.example.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "quantum-gate.json"
ALERTING_DOC = REPO / "docs" / "alerting.md"

# The daemon's /metrics contract (issue 3 and the exporter): rules and dashboards may use these only.
EXPORTED_METRICS = frozenset(
    {
        "quantum_gate_build_info",
        "quantum_gate_redis_up",
        "quantum_gate_systemd_up",
        "quantum_gate_cutover_source_up",
        "quantum_gate_cutover_source_errors_total",
        "quantum_gate_rollout_complete",
        "quantum_gate_cutover_known",
        "quantum_gate_cutover_timestamp_seconds",
        "quantum_gate_cutovers_total",
        "quantum_gate_events_accepted_total",
        "quantum_gate_events_skipped_total",
        "quantum_gate_entries_read_total",
        "quantum_gate_events_lost_total",
        "quantum_gate_stream_resets_total",
        "quantum_gate_model_keys_refused_total",
        "quantum_gate_window_events",
        "quantum_gate_window_capacity",
        "quantum_gate_min_events",
        "quantum_gate_verdict",
        "quantum_gate_verdict_changes_total",
        "quantum_gate_check_borderline",
        "quantum_gate_check_margin",
        "quantum_gate_ledger_up",
        "quantum_gate_ledger_writes_total",
        "quantum_gate_ledger_errors_total",
        "quantum_gate_model_gated",
        "quantum_gate_model_verdict",
        "quantum_gate_model_samples",
        "quantum_gate_model_presence",
        "quantum_gate_model_action_share",
        "quantum_gate_model_confidence_mean",
        "quantum_gate_model_confidence_std",
        "quantum_gate_model_confidence_p10",
        "quantum_gate_model_confidence_p90",
        "quantum_gate_model_confidence_p10_p90",
        "quantum_gate_model_top_value_share",
        "quantum_gate_model_suspect_share",
        "quantum_gate_model_out_of_range_share",
        "quantum_gate_check_passing",
        "quantum_gate_check_value",
        "quantum_gate_check_threshold",
        "quantum_gate_model_collapsed",
        "quantum_gate_ensemble_fallback_share",
        "quantum_gate_ensemble_side_share",
        "quantum_gate_ensemble_agreement",
        "quantum_gate_ensemble_hard_disagree_share",
        "quantum_gate_event_rate_per_minute",
        "quantum_gate_event_rate_threshold_per_minute",
        "quantum_gate_stall_threshold_seconds",
        "quantum_gate_last_event_timestamp_seconds",
        "quantum_gate_last_entry_timestamp_seconds",
        "quantum_gate_last_evaluation_timestamp_seconds",
        "quantum_gate_evaluation_duration_seconds",
        "quantum_gate_evaluations_total",
        "quantum_gate_evaluation_errors_total",
        "quantum_gate_eta_seconds",
        "quantum_gate_alert_active",
        "quantum_gate_reports_written_total",
        "quantum_gate_stream_length",
        "quantum_gate_post_window_truncated",
    }
)
# Series Prometheus itself makes: `up` for the daemon-down rules, ALERTS for the dashboard's annotation.
PROMETHEUS_SERIES = frozenset({"up", "ALERTS"})
SEVERITIES = frozenset({"critical", "warning"})

# ---- reading the files -----------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = load_yaml(RULES)["groups"]
    return groups


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def recording_rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "record" in rule]


def recorded_names() -> frozenset[str]:
    return frozenset(rule["record"] for rule in recording_rules())


def promtool_test_files() -> list[Path]:
    return sorted(PROMTOOL_TESTS.glob("*.test.yml"))


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested (collapsed) panels included."""
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def panel_targets(board: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(panel title, target) for every query target of every panel."""
    return [
        (panel["title"], target)
        for panel in all_panels(board["panels"])
        for target in panel.get("targets", [])
    ]


# ---- PromQL metric names ---------------------------------------------------------------------------

_STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_VARIABLES = re.compile(r"\$\{[^}]*\}|\$\w+")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
)
_NUMBERS = frozenset({"inf", "nan"})


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (Grafana variables allowed in it).

    Not a parser: strips strings, label matchers, ranges, variables and label lists, then keeps every
    identifier that is not a function call, a keyword or a number.
    """
    text = _STRINGS.sub('""', expr)
    text = _VARIABLES.sub("", text)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _LABEL_LISTS.sub("", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name in _KEYWORDS or name.lower() in _NUMBERS:
            continue
        names.add(name)
    return names


def template_queries(text: str) -> list[str]:
    """The PromQL of an annotation's ``query`` calls (written as backquoted ``printf`` formats)."""
    return re.findall(r"printf\s+`([^`]*)`", text)


def test_metric_name_extraction() -> None:
    assert metric_names(
        'sum by (reason) (rate(quantum_gate_events_skipped_total{i=~"$i"}[$__rate_interval]))'
    ) == {"quantum_gate_events_skipped_total"}
    assert metric_names(
        'a{check="x"} > ignoring(window, model) group_left b and on(instance) c == 1 offset 5m'
    ) == {"a", "b", "c"}
    assert metric_names("time() - quantum_gate:cutover_age_seconds > 4 * 3600") == {
        "quantum_gate:cutover_age_seconds"
    }
    assert metric_names('absent(up{job="quantum-gate"}) or vector(1e3)') == {"up"}


# ---- Prometheus rules ------------------------------------------------------------------------------


def run_tool(argv: list[str], cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run promtool / amtool; the caller asserts on the return code with the output as the message."""
    return subprocess.run(argv, cwd=cwd, check=False, capture_output=True, text=True, timeout=120)


def test_promtool_check_rules() -> None:
    promtool = require_tool("promtool")
    done = run_tool([promtool, "check", "rules", str(RULES)])
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "SUCCESS" in output, output


def test_promtool_unit_tests_pass() -> None:
    promtool = require_tool("promtool")
    files = [str(path.relative_to(REPO)) for path in promtool_test_files()]
    assert files, "no promtool tests under tests/promtool"
    done = run_tool([promtool, "test", "rules", *files])
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert output.count("SUCCESS") == len(files), output


def _alert_cases() -> dict[str, dict[str, int]]:
    """alertname -> how many promtool cases expect it firing / quiet."""
    cases: dict[str, dict[str, int]] = {}
    for path in promtool_test_files():
        document = load_yaml(path)
        assert document["rule_files"] == ["../../deploy/prometheus/quantum-gate.rules.yml"], path
        for test in document["tests"]:
            for case in test.get("alert_rule_test", []):
                kind = "firing" if case.get("exp_alerts") else "quiet"
                counts = cases.setdefault(case["alertname"], {"firing": 0, "quiet": 0})
                counts[kind] += 1
    return cases


def test_every_alert_has_firing_and_quiet_promtool_cases() -> None:
    cases = _alert_cases()
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names)), "duplicate alert names"
    missing = [
        name
        for name in names
        if cases.get(name, {}).get("firing", 0) == 0 or cases.get(name, {}).get("quiet", 0) == 0
    ]
    assert not missing, f"alerts without a firing and a not-firing promtool case: {missing}"
    unknown = sorted(set(cases) - set(names))
    assert not unknown, f"promtool cases for alerts that do not exist: {unknown}"


def test_every_recording_rule_has_a_promtool_case() -> None:
    tested = {
        case["expr"]
        for path in promtool_test_files()
        for test in load_yaml(path)["tests"]
        for case in test.get("promql_expr_test", [])
    }
    untested = sorted(recorded_names() - tested)
    assert not untested, f"recording rules without a promql_expr_test: {untested}"


def test_the_alerts_issue_4_asks_for_are_there() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    assert {
        "QuantumGateDaemonDown",
        "QuantumGateDaemonAbsent",
        "QuantumGateRedisDown",
        "QuantumGateLowEventRate",
        "QuantumGateStreamStalled",
        "QuantumGatePredictionCollapse",
        "QuantumGateConfidenceFlat",
        "QuantumGateConfidenceStuckValue",
        "QuantumGateConfidenceOutOfRange",
        "QuantumGateVerdictFail",
        "QuantumGatePostWindowStuck",
        "QuantumGateRestartStorm",
        "QuantumGateEvaluationStale",
    } <= names


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: str(rule["alert"]))
def test_alert_is_labelled_explained_and_has_hysteresis(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert set(annotations) >= {"summary", "description", "runbook_url"}
    assert annotations["runbook_url"].endswith(f"/docs/alerting.md#{name.lower()}")
    assert "{{" in annotations["summary"] or name == "QuantumGateDaemonAbsent", "summary is not specific"
    assert "for" in rule or "keep_firing_for" in rule, f"{name}: no hysteresis"


def test_every_alert_has_a_runbook_section() -> None:
    doc = ALERTING_DOC.read_text(encoding="utf-8")
    headings = set(re.findall(r"^### (\S+)\s*$", doc, flags=re.MULTILINE))
    missing = sorted({rule["alert"] for rule in alert_rules()} - headings)
    assert not missing, f"docs/alerting.md has no '### <alert>' section for {missing}"
    assert "amtool silence add" in doc


def test_rules_and_their_template_queries_use_only_exported_metrics() -> None:
    allowed = EXPORTED_METRICS | recorded_names() | {"up"}
    problems: list[str] = []
    for group in rule_groups():
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            unknown = metric_names(rule["expr"]) - allowed
            if unknown:
                problems.append(f"{name} expr: {sorted(unknown)}")
            for key, text in rule.get("annotations", {}).items():
                for query in template_queries(text):
                    unknown = metric_names(query) - allowed
                    if unknown:
                        problems.append(f"{name} {key}: {sorted(unknown)}")
    assert not problems, problems


def test_every_recording_rule_is_drawn_by_the_dashboard() -> None:
    drawn = set().union(*(metric_names(target["expr"]) for _, target in panel_targets(dashboard())))
    unused = sorted(recorded_names() - drawn)
    assert not unused, f"recording rules nothing uses: {unused}"


def test_recording_rules_follow_the_naming_convention() -> None:
    for rule in recording_rules():
        assert re.fullmatch(r"quantum_gate:[a-z0-9_]+(:[a-z0-9_]+)?", rule["record"]), rule["record"]


# ---- Alertmanager ----------------------------------------------------------------------------------


def test_amtool_check_config() -> None:
    amtool = require_tool("amtool")
    done = run_tool([amtool, "check-config", str(ALERTMANAGER)])
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "SUCCESS" in output, output


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: str(rule["alert"]))
def test_alertmanager_routes_each_alert_by_its_severity(rule: dict[str, Any]) -> None:
    amtool = require_tool("amtool")
    severity = rule["labels"]["severity"]
    receiver = {"critical": "quantum-gate-pager", "warning": "quantum-gate-tickets"}[severity]
    done = run_tool(
        [
            amtool,
            "config",
            "routes",
            "test",
            f"--config.file={ALERTMANAGER}",
            f"--verify.receivers={receiver}",
            f"alertname={rule['alert']}",
            f"severity={severity}",
            "job=quantum-gate",
            "instance=qg:9731",
            "model=lgbm",
        ]
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_alertmanager_groups_by_model_and_inhibits_on_daemon_or_redis_down() -> None:
    config = load_yaml(ALERTMANAGER)
    quantum = next(route for route in config["route"]["routes"] if "QuantumGate" in str(route["matchers"]))
    assert "model" in quantum["group_by"]
    names = {rule["alert"] for rule in alert_rules()}
    sources: set[str] = set()
    targets: set[str] = set()
    for inhibit in config["inhibit_rules"]:
        for matcher in inhibit["source_matchers"]:
            sources |= {name for name in names if _matches(matcher, name)}
        for matcher in inhibit["target_matchers"]:
            targets |= {name for name in names if _matches(matcher, name)}
    assert {"QuantumGateDaemonDown", "QuantumGateRedisDown", "QuantumGateDaemonAbsent"} <= sources
    assert {
        "QuantumGatePredictionCollapse",
        "QuantumGateConfidenceFlat",
        "QuantumGateLowEventRate",
        "QuantumGateStreamStalled",
    } <= targets
    assert not sources & targets
    webhooks = [hook for receiver in config["receivers"] for hook in receiver.get("webhook_configs", [])]
    assert webhooks
    assert all(hook.get("send_resolved") for hook in webhooks)


def _matches(matcher: str, alertname: str) -> bool:
    found = re.fullmatch(r'alertname(=~|=)"(.*)"', matcher)
    assert found, f"unexpected matcher form {matcher!r}"
    operator, value = found.groups()
    return bool(re.fullmatch(value, alertname)) if operator == "=~" else value == alertname


# ---- Grafana dashboard -----------------------------------------------------------------------------


def test_dashboard_is_an_importable_dashboard() -> None:
    board = dashboard()
    assert board["uid"] == "quantum-gate"
    assert board["title"]
    assert isinstance(board["schemaVersion"], int)
    assert "id" not in board or board["id"] is None, "an exported id would clash on import"
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["model"]["type"] == "query"
    assert variables["model"]["datasource"]["uid"] == "${datasource}"
    ids = [panel["id"] for panel in all_panels(board["panels"])]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in all_panels(board["panels"]):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        assert grid["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel.get("description"), f"panel {panel['id']}: title and description"
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel.get("targets"), panel["title"]
    for title, target in panel_targets(board):
        assert target["datasource"]["uid"] == "${datasource}", title
        assert target["expr"].strip(), title
    refs = [(title, target["refId"]) for title, target in panel_targets(board)]
    assert len(refs) == len(set(refs)), "duplicate refId within a panel"


def test_dashboard_queries_use_only_exported_metrics_and_recording_rules() -> None:
    board = dashboard()
    allowed = EXPORTED_METRICS | recorded_names()
    problems = [
        f"{title} {target['refId']}: {sorted(metric_names(target['expr']) - allowed)}"
        for title, target in panel_targets(board)
        if metric_names(target["expr"]) - allowed or not metric_names(target["expr"])
    ]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", variable["query"]["query"])
            assert inner, variable["name"]
            if metric_names(inner.group(1)) - allowed:
                problems.append(f"variable {variable['name']}")
    for annotation in board["annotations"]["list"]:
        if "expr" in annotation and metric_names(annotation["expr"]) - allowed - PROMETHEUS_SERIES:
            problems.append(f"annotation {annotation['name']}")
    assert not problems, problems


def test_dashboard_covers_what_issue_4_asks_for() -> None:
    board = dashboard()
    exprs = " ".join(target["expr"] for _, target in panel_targets(board))
    for needed in (
        "quantum_gate:verdict_code",
        "quantum_gate:check_failing",
        "quantum_gate_eta_seconds",
        "quantum_gate:post_window_progress:ratio",
        "quantum_gate_event_rate_per_minute",
        "quantum_gate_event_rate_threshold_per_minute",
        "quantum_gate_model_action_share",
        "quantum_gate_model_confidence_mean",
        "quantum_gate_model_confidence_std",
        "quantum_gate_model_confidence_p10",
        "quantum_gate_model_confidence_p90",
        "quantum_gate_check_threshold",
        "quantum_gate_model_top_value_share",
        "quantum_gate_events_skipped_total",
        "quantum_gate_redis_up",
    ):
        assert needed in exprs, needed
    annotations = [item for item in board["annotations"]["list"] if "expr" in item]
    assert any("quantum_gate_cutover_timestamp_seconds" in item["expr"] for item in annotations)
    model_panels = [title for title, target in panel_targets(board) if '$model"' in target["expr"]]
    assert model_panels, "no panel follows the model variable"
