"""The alerting chain end to end, with real programs: redis-server -> ``quantum-gate run`` -> Prometheus
(the shipped rules) -> Alertmanager (the example routing) -> a webhook receiver inside this test.

Only the test's copies change timings: Prometheus scrapes and evaluates every second, every rule's
``for`` / ``keep_firing_for`` is cut to seconds, and Alertmanager groups and repeats within seconds. The
expressions, labels, annotations, routes, grouping and inhibitions are the shipped ones. The webhook
URLs keep their paths (``/quantum-gate/page`` for critical, ``/quantum-gate/ticket`` for warning) and
only move host and port to the receiver.

Story: a baseline before a fixed cutover (``--after``), then a post window where lgbm votes HOLD at
0.5 every time. The collapse page must reach the pager with lgbm's labels, the stuck-confidence
warning the ticket receiver; every dashboard query must return data from that Prometheus. Redis is
killed: RedisDown pages and inhibits the collapse alert, which keeps firing in Prometheus. Redis comes
back, a healthy window replaces the collapsed one, and the pager hears that the collapse resolved.
Last, the planned-deployment silence from docs/alerting.md is added and expired with amtool.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from conftest import REPO, RedisServer, envelope, free_port, payload, require_tool, wait_until
from test_alerting_rules import ALERTMANAGER, DASHBOARD, EXPORTED_METRICS, RULES, panel_targets

from bench.kit_daemon import DaemonProcess
from bench.kit_daemon import running as running_daemon

pytestmark = pytest.mark.slow  # still part of `make test`: pytest runs every marker by default

QUANTUM_GATE = REPO / ".venv" / "bin" / "quantum-gate"
FAST = "2s"  # every `for` and `keep_firing_for` in the test's copy of the rules
# Alerts that could flicker while the chain starts up (no scrape yet): kept slow in the copy.
SLOW_FOR = {"QuantumGateDaemonAbsent": "5m", "QuantumGateDaemonDown": "5m"}
# Dashboard queries allowed to come back empty in this setup, and why.
EXPECTED_EMPTY = {
    (
        "systemd answers",
        "A",
    ): "quantum_gate_systemd_up exists only with a systemd cutover; this test uses --after",
}
# Served only by some cutover sources; this test fixes the cutover with --after.
CONDITIONAL_ON_THE_SOURCE = frozenset(
    {
        "quantum_gate_systemd_up",  # systemd
        "quantum_gate_cutover_source_up",  # any polled source (systemd, docker, kubernetes)
        "quantum_gate_cutover_source_errors_total",  # a sample per (source, reason) once a query failed
        "quantum_gate_rollout_complete",  # kubernetes
    }
)
GRAFANA_VARIABLES = {
    "${datasource}": "",
    "$__rate_interval": "15s",
    "$__interval": "5s",
    "$__range": "1m",
    "$instance": ".+",
    "$model": ".+",
}


# ---- small helpers ---------------------------------------------------------------------------------

HTTP_TROUBLE = (OSError, ValueError)  # a component still starting, or a half-written answer: "not yet"


def http_get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def http_get_text(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode("utf-8"))


def tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return f"({path.name}: not written)"
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    return f"--- {path.name} (last {lines} lines)\n" + "\n".join(text)


@dataclass
class Process:
    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as sink:
            self.popen = subprocess.Popen(
                self.argv, stdout=sink, stderr=subprocess.STDOUT, env=self.env, cwd=self.log.parent
            )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=10)


@contextmanager
def running(process: Process) -> Iterator[Process]:
    process.start()
    try:
        yield process
    finally:
        process.stop()


# ---- the webhook receiver --------------------------------------------------------------------------


@dataclass
class Notification:
    path: str
    body: dict[str, Any]

    @property
    def status(self) -> str:
        return str(self.body["status"])

    @property
    def group(self) -> dict[str, str]:
        return dict(self.body["groupLabels"])

    def alerts(self, alertname: str | None = None) -> list[dict[str, Any]]:
        return [
            alert
            for alert in self.body["alerts"]
            if alertname is None or alert["labels"]["alertname"] == alertname
        ]


@dataclass
class Receiver:
    """Alertmanager's webhook target: keeps every notification it is sent."""

    port: int = field(default_factory=free_port)
    notifications: list[Notification] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self) -> list[Notification]:
        with self.lock:
            return list(self.notifications)

    def find(self, path: str, predicate: Callable[[Notification], bool]) -> list[Notification]:
        return [item for item in self.received() if item.path == path and predicate(item)]

    def describe(self) -> str:
        return "notifications so far:\n" + "\n".join(
            f"  {item.path} {item.status} {item.group} "
            f"{[alert['labels'].get('alertname') for alert in item.alerts()]}"
            for item in self.received()
        )

    @contextmanager
    def serving(self) -> Iterator[Receiver]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                with receiver.lock:
                    receiver.notifications.append(Notification(self.path, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, name="webhook", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


# ---- the test's copies of the shipped files --------------------------------------------------------


def fast_rules(target: Path) -> Path:
    """The shipped rules with every `for` / `keep_firing_for` cut to seconds (expressions untouched)."""
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    for group in document["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            if "for" in rule:
                rule["for"] = SLOW_FOR.get(rule["alert"], FAST)
            if "keep_firing_for" in rule:
                rule["keep_firing_for"] = FAST
    target.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return target


def fast_alertmanager(target: Path, receiver_port: int) -> Path:
    """The example routing with its webhooks moved to the receiver and its waits cut to seconds."""
    document = yaml.safe_load(ALERTMANAGER.read_text(encoding="utf-8"))

    def shorten(route: dict[str, Any]) -> None:
        for key, value in (("group_wait", "1s"), ("group_interval", "1s"), ("repeat_interval", "1h")):
            if key in route or route is document["route"]:
                route[key] = value
        for child in route.get("routes", []):
            shorten(child)

    shorten(document["route"])
    for receiver in document["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            path = urllib.parse.urlsplit(hook["url"]).path
            hook["url"] = f"http://127.0.0.1:{receiver_port}{path}"
    target.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return target


def prometheus_config(target: Path, rules: Path, daemon_port: int, alertmanager_port: int) -> Path:
    document = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]
        },
        "scrape_configs": [
            {"job_name": "quantum-gate", "static_configs": [{"targets": [f"127.0.0.1:{daemon_port}"]}]}
        ],
    }
    target.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return target


# ---- events ----------------------------------------------------------------------------------------

ACTIONS = ("BUY", "SELL", "HOLD")


def healthy_vote(index: int, offset: int) -> tuple[str, float]:
    """A third of each action, confidences spread over 0.30..0.894 (passes every check)."""
    return ACTIONS[(index + offset) % 3], round(0.30 + 0.006 * ((index * 37 + offset * 11) % 100), 6)


def entry(index: int, *, lgbm_collapsed: bool) -> dict[str, str]:
    lgbm = ("HOLD", 0.5) if lgbm_collapsed else healthy_vote(index, 1)
    votes: dict[str, tuple[str, float] | dict[str, Any]] = {"xgb": healthy_vote(index, 0), "lgbm": lgbm}
    return envelope(payload(votes, side=("BUY", "SELL")[index % 2]))


def write(client: redis.Redis, key: str, entries: list[tuple[str, dict[str, str]]]) -> None:
    with client.pipeline(transaction=False) as pipe:
        for stream_id, fields in entries:
            values: dict[Any, Any] = dict(fields)
            pipe.xadd(key, values, id=stream_id)
        pipe.execute()


# ---- the chain -------------------------------------------------------------------------------------


@dataclass
class Chain:
    daemon_port: int
    prometheus_port: int
    alertmanager_port: int
    logs: list[Path]

    @property
    def instance(self) -> str:
        return f"127.0.0.1:{self.daemon_port}"

    def explain(self) -> str:
        return "\n".join(tail(path) for path in self.logs)

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.prometheus_port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": expr}
        )
        answer = http_get_json(url)
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def prometheus_alerts(self, alertname: str) -> list[dict[str, Any]]:
        answer = http_get_json(f"http://127.0.0.1:{self.prometheus_port}/api/v1/alerts")
        return [alert for alert in answer["data"]["alerts"] if alert["labels"]["alertname"] == alertname]

    def alertmanager_alerts(self, alertname: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"filter": f'alertname="{alertname}"'})
        alerts: list[dict[str, Any]] = http_get_json(
            f"http://127.0.0.1:{self.alertmanager_port}/api/v2/alerts?{query}"
        )
        return alerts

    def metric(self, name: str) -> float | None:
        for line in http_get_text(f"http://{self.instance}/metrics").splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(panel title, refId, PromQL with Grafana's variables filled in) for every panel target."""
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    out = []
    for title, target in panel_targets(board):
        expr = target["expr"]
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"unsubstituted variable in {title}: {expr}"
        out.append((title, target["refId"], expr))
    return out


@pytest.mark.timeout(300)
def test_collapse_pages_through_prometheus_and_alertmanager_then_resolves(
    own_redis: RedisServer, tmp_path: Path, stream_key: str
) -> None:
    prometheus_bin = require_tool("prometheus")
    alertmanager_bin = require_tool("prometheus-alertmanager")
    require_tool("promtool")
    assert QUANTUM_GATE.exists(), f"{QUANTUM_GATE} missing: run `make test` (it installs the package)"

    client = own_redis.admin()
    now_ms = int(time.time() * 1000)
    cutover_ms = now_ms - 60_000
    # 120 baseline events before the cutover (healthy), plus entries the contract skips, before the
    # daemon starts: the stream exists when it starts, so no reset is counted.
    baseline = [
        (f"{cutover_ms - 120_000 + index * 500}-0", entry(index, lgbm_collapsed=False))
        for index in range(120)
    ]
    skipped: list[tuple[str, dict[str, str]]] = [
        (f"{cutover_ms - 50}-0", {"data": json.dumps({"symbol": "BTCUSDT"})}),
        (f"{cutover_ms - 40}-0", {"intent_type": "entry", "symbol": "ETHUSDT", "side": "LONG"}),
    ]
    write(client, stream_key, baseline + skipped)

    receiver = Receiver()
    daemon_port, prometheus_port, alertmanager_port = free_port(), free_port(), free_port()
    chain = Chain(
        daemon_port,
        prometheus_port,
        alertmanager_port,
        [tmp_path / "daemon.log", tmp_path / "prometheus.log", tmp_path / "alertmanager.log"],
    )
    daemon = DaemonProcess(  # its log is chain.logs[0], tmp_path / "daemon.log"
        own_redis.url,
        stream_key,
        tmp_path,
        after=f"{cutover_ms}-0",
        interval=1,
        args=[
            *("--window", "200", "--baseline", "200"),
            *("--ledger", str(tmp_path / "ledger.sqlite3")),  # so the ledger's metrics are served too
        ],
        env={"QUANTUM_GATE_REDIS_BACKOFF_MAX_SECONDS": "1"},
        port=daemon_port,
    )
    rules = fast_rules(tmp_path / "quantum-gate.rules.yml")
    promtool = shutil.which("promtool")
    assert promtool
    checked = subprocess.run(
        [promtool, "check", "rules", str(rules)], check=False, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    (tmp_path / "prometheus-data").mkdir()
    (tmp_path / "alertmanager-data").mkdir()
    prometheus_yml = prometheus_config(tmp_path / "prometheus.yml", rules, daemon_port, alertmanager_port)
    prometheus = Process(
        "prometheus",
        [
            prometheus_bin,
            f"--config.file={prometheus_yml}",
            f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
            "--rules.alert.resend-delay=1s",
        ],
        chain.logs[1],
    )
    alertmanager = Process(
        "alertmanager",
        [
            alertmanager_bin,
            f"--config.file={fast_alertmanager(tmp_path / 'alertmanager.yml', receiver.port)}",
            f"--storage.path={tmp_path / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{alertmanager_port}",
            "--cluster.listen-address=",
        ],
        chain.logs[2],
    )

    def explain() -> str:
        return receiver.describe() + "\n" + chain.explain()

    with ExitStack() as stack:
        stack.enter_context(receiver.serving())
        stack.enter_context(running(alertmanager))
        stack.enter_context(running_daemon(daemon, wait_http=False))
        stack.enter_context(running(prometheus))
        wait_until(
            lambda: chain.metric("quantum_gate_redis_up") == 1,
            30,
            "the daemon's /metrics",
            every=0.25,
            ignore=HTTP_TROUBLE,
            explain=explain,
        )
        wait_until(
            lambda: chain.query('up{job="quantum-gate"} == 1'),
            60,
            "Prometheus to scrape the daemon",
            every=0.25,
            ignore=HTTP_TROUBLE,
            explain=explain,
        )
        wait_until(
            lambda: http_get_json(f"http://127.0.0.1:{alertmanager_port}/api/v2/status"),
            30,
            "Alertmanager to answer",
            every=0.25,
            ignore=HTTP_TROUBLE,
            explain=explain,
        )

        # ---- a collapse: 200 post-cutover events, lgbm always HOLD at 0.5 -------------------------
        write(client, stream_key, [("*", entry(index, lgbm_collapsed=True)) for index in range(200)])
        wait_until(
            lambda: chain.query('quantum_gate_verdict{verdict="fail"} == 1'),
            30,
            "verdict FAIL on /metrics",
            every=0.25,
            ignore=HTTP_TROUBLE,
            explain=explain,
        )

        def collapse_pages() -> list[Notification]:
            return receiver.find(
                "/quantum-gate/page",
                lambda item: item.status == "firing" and bool(item.alerts("QuantumGatePredictionCollapse")),
            )

        pages = wait_until(
            collapse_pages,
            60,
            "the collapse page at the pager webhook",
            every=0.25,
            ignore=HTTP_TROUBLE,
            explain=explain,
        )
        page = pages[0]
        assert page.group == {"job": "quantum-gate", "instance": chain.instance, "model": "lgbm"}
        checks = set()
        for alert in page.alerts("QuantumGatePredictionCollapse"):
            labels = alert["labels"]
            assert labels["severity"] == "critical"
            assert labels["model"] == "lgbm"
            assert labels["job"] == "quantum-gate"
            assert labels["instance"] == chain.instance
            checks.add(labels["check"])
            assert "lgbm collapsed: 100% of its votes are" in alert["annotations"]["summary"]
            assert "over its 200 post-cutover votes" in alert["annotations"]["description"]
            assert alert["annotations"]["runbook_url"].endswith("#quantumgatepredictioncollapse")
        assert checks <= {"majority", "hold"} and checks
        # xgb is healthy: no page names it.
        assert not [
            alert
            for item in receiver.received()
            for alert in item.alerts()
            if alert["labels"].get("model") == "xgb"
        ], receiver.describe()

        # warnings go to the ticket receiver: lgbm's confidence sits on one exact value
        tickets = wait_until(
            lambda: receiver.find(
                "/quantum-gate/ticket",
                lambda item: item.status == "firing" and bool(item.alerts("QuantumGateConfidenceStuckValue")),
            ),
            60,
            "the stuck-confidence warning at the ticket webhook",
            every=0.25,
            ignore=HTTP_TROUBLE,
            explain=explain,
        )
        stuck = tickets[0].alerts("QuantumGateConfidenceStuckValue")[0]
        assert stuck["labels"]["model"] == "lgbm"
        assert stuck["labels"]["severity"] == "warning"
        # the FAIL page names lgbm's failing checks
        verdict_pages = wait_until(
            lambda: receiver.find(
                "/quantum-gate/page", lambda item: bool(item.alerts("QuantumGateVerdictFail"))
            ),
            60,
            "the FAIL page",
            every=0.25,
            ignore=HTTP_TROUBLE,
            explain=explain,
        )
        assert (
            "lgbm hold 1"
            in verdict_pages[0].alerts("QuantumGateVerdictFail")[0]["annotations"]["description"]
        )

        # ---- the daemon serves every name the rules and the dashboard rely on ---------------------
        served = {
            line.split("{", 1)[0].split(" ", 1)[0]
            for line in http_get_text(f"http://{chain.instance}/metrics").splitlines()
            if line and not line.startswith("#")
        }
        not_served = EXPORTED_METRICS - served - CONDITIONAL_ON_THE_SOURCE
        assert not not_served, f"the daemon does not serve {sorted(not_served)}"

        # ---- every dashboard panel query answers from this Prometheus ----------------------------
        def without_data() -> list[str]:
            empty = []
            for title, ref, expr in dashboard_queries():
                result = chain.query(expr)
                if (title, ref) in EXPECTED_EMPTY:
                    assert not result, f"{title} {ref} now returns data: drop it from EXPECTED_EMPTY"
                elif not result:
                    empty.append(f"{title} [{ref}]: {expr}")
            return empty

        # rate() panels need two scrapes inside $__rate_interval; everything else answers at once
        wait_until(
            lambda: not without_data(),
            60,
            "every dashboard query to return data",
            every=0.25,
            ignore=HTTP_TROUBLE,
            explain=lambda: "still without data:\n" + "\n".join(without_data()),
        )
        models = {
            series["metric"]["model"] for series in chain.query('quantum_gate_model_samples{instance=~".+"}')
        }
        assert models == {"lgbm", "xgb"}  # what the `model` variable offers
        assert chain.query(
            "quantum_gate_cutover_timestamp_seconds * 1000 and quantum_gate_cutover_known == 1"
        )

        # ---- Redis goes away: RedisDown pages and inhibits the collapse page ----------------------
        own_redis.kill()
        wait_until(
            lambda: receiver.find(
                "/quantum-gate/page", lambda item: bool(item.alerts("QuantumGateRedisDown"))
            ),
            60,
            "the RedisDown page",
            every=0.25,
            ignore=HTTP_TROUBLE,
            explain=explain,
        )

        def collapse_inhibited() -> bool:
            alerts = chain.alertmanager_alerts("QuantumGatePredictionCollapse")
            return bool(alerts) and all(
                alert["status"]["state"] == "suppressed" and alert["status"]["inhibitedBy"]
                for alert in alerts
            )

        wait_until(
            collapse_inhibited,
            30,
            "the collapse alert to be inhibited by RedisDown",
            every=0.25,
            ignore=HTTP_TROUBLE,
            explain=explain,
        )
        assert chain.prometheus_alerts("QuantumGatePredictionCollapse"), "the rule itself still fires"

        # ---- Redis back, a healthy window: the collapse page resolves -----------------------------
        own_redis.start()
        wait_until(
            lambda: chain.metric("quantum_gate_redis_up") == 1,
            30,
            "the daemon to reconnect",
            every=0.25,
            ignore=HTTP_TROUBLE,
            explain=explain,
        )
        write(client, stream_key, [("*", entry(index, lgbm_collapsed=False)) for index in range(200)])
        wait_until(
            lambda: chain.query('quantum_gate_verdict{verdict="pass"} == 1'),
            30,
            "verdict PASS",
            every=0.25,
            ignore=HTTP_TROUBLE,
            explain=explain,
        )

        def collapse_resolved() -> list[Notification]:
            return receiver.find(
                "/quantum-gate/page",
                lambda item: (
                    item.status == "resolved"
                    and item.group.get("model") == "lgbm"
                    and bool(item.alerts("QuantumGatePredictionCollapse"))
                    and all(alert["status"] == "resolved" for alert in item.alerts())
                ),
            )

        resolved = wait_until(
            collapse_resolved,
            60,
            "the resolved collapse notification",
            every=0.25,
            ignore=HTTP_TROUBLE,
            explain=explain,
        )
        assert resolved[0].group == page.group
        assert not chain.prometheus_alerts("QuantumGatePredictionCollapse")
        daemon.assert_alive()
        assert prometheus.alive() and alertmanager.alive(), explain()

        # ---- docs/alerting.md's planned-deployment silence works as written ----------------------
        amtool = require_tool("amtool")
        url = f"--alertmanager.url=http://127.0.0.1:{alertmanager_port}"
        added = subprocess.run(
            [
                amtool,
                "silence",
                "add",
                url,
                "--author=test",
                "--duration=1h",
                "--comment=planned deploy of quantum-ai-engine (change 1234)",
                'alertname=~"QuantumGate(LowEventRate|StreamStalled|RestartStorm|PostWindowStuck'
                '|CutoverUnknown|SystemdUnreachable)"',
                f'instance="{chain.instance}"',
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert added.returncode == 0, added.stdout + added.stderr
        silence = added.stdout.strip()
        listed = subprocess.run(
            [amtool, "silence", "query", url, "-q", f'instance="{chain.instance}"'],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert listed.stdout.split() == [silence], listed.stdout + listed.stderr
        expired = subprocess.run(
            [amtool, "silence", "expire", url, silence],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert expired.returncode == 0, expired.stdout + expired.stderr


def test_fast_copies_keep_expressions_routes_and_inhibitions(tmp_path: Path) -> None:
    """The live test changes only timings (and webhook hosts), never what is being proven."""
    shipped = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    fast = yaml.safe_load(fast_rules(tmp_path / "rules.yml").read_text(encoding="utf-8"))

    def essence(document: dict[str, Any]) -> list[Any]:
        return [
            {key: value for key, value in rule.items() if key not in {"for", "keep_firing_for"}}
            for group in document["groups"]
            for rule in group["rules"]
        ]

    assert essence(fast) == essence(shipped)
    example = yaml.safe_load(ALERTMANAGER.read_text(encoding="utf-8"))
    moved = yaml.safe_load(fast_alertmanager(tmp_path / "am.yml", 4242).read_text(encoding="utf-8"))
    assert moved["inhibit_rules"] == example["inhibit_rules"]

    def skeleton(route: dict[str, Any]) -> Any:
        return (
            route.get("receiver"),
            route.get("matchers"),
            route.get("group_by"),
            [skeleton(child) for child in route.get("routes", [])],
        )

    assert skeleton(moved["route"]) == skeleton(example["route"])
    urls = [hook["url"] for receiver in moved["receivers"] for hook in receiver.get("webhook_configs", [])]
    assert urls == [
        "http://127.0.0.1:4242/quantum-gate/page",
        "http://127.0.0.1:4242/quantum-gate/ticket",
    ]
