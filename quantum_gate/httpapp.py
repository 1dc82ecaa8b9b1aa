"""The daemon's HTTP app: its routes, the query each takes, and the answers of ``/metrics``, ``/gate``,
``/healthz``, ``/history``, ``/reports/<name>`` and ``/`` (the status page, drawn by the function the
daemon passes in).

Every answer is built from one immutable ``Snapshot``; ``HttpServer`` puts the app behind the hardened
listener (quantum_gate/httpserver.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE

from quantum_gate.config import HttpSettings
from quantum_gate.exporter import GateCollector, Snapshot
from quantum_gate.httpserver import HardenedServer
from quantum_gate.ledger_store import LedgerError, read_history
from quantum_gate.report import dumps
from quantum_gate.verdicts import Verdict
from quantum_gate.webconfig import WebConfig


def health(snap: Snapshot, now: float) -> tuple[bool, str]:
    cutovers, tail, evaluation = snap.cutovers, snap.tail, snap.evaluation
    if cutovers.systemd_waiting_since is not None:  # start-up: Redis is not asked before systemd answers
        waited = max(now - cutovers.systemd_waiting_since, 0.0)
        limit = snap.settings.cutover.timeout_seconds
        tool = {"docker": "docker inspect", "kubernetes": "kubectl get"}.get(
            cutovers.source, "systemctl show"
        )
        return (
            False,
            f"{cutovers.source} not answering ({tool} running for {waited:.0f}s, timeout {limit:g}s)",
        )
    if not tail.redis_up:
        # no condition yet: the first connection has not been tried to the end
        return False, f"redis {tail.redis_condition or 'not connected yet'}"
    if evaluation.last_evaluation_at is None:
        return False, "no evaluation yet"
    age = now - evaluation.last_evaluation_at
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


def wants_openmetrics(accept: str) -> bool:
    """Whether an Accept header lists OpenMetrics (Prometheus puts it first) with a weight above 0;
    anything else, or no header, gets the text format 0.0.4, as prometheus_client decides it."""
    for accepted in accept.split(","):
        media, *parameters = (part.strip() for part in accepted.split(";"))
        if media.lower() != "application/openmetrics-text":
            continue
        weights = [value for name, _, value in (p.partition("=") for p in parameters) if name == "q"]
        try:
            if not weights or float(weights[0]) > 0:
                return True
        except ValueError:  # a malformed weight: as if it were absent
            return True
    return False


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

    def handle(self, path: str, accept: str = "") -> tuple[int, str, bytes]:  # noqa: PLR0911 - one return per route
        route, _, query = path.partition("?")
        checked = "/reports/" if route.startswith("/reports/") else route
        if checked in ROUTE_PARAMETERS and (problem := query_problem(checked, query)) is not None:
            return 400, "text/plain; charset=utf-8", problem.encode("utf-8") + b"\n"
        if route == "/metrics":
            if wants_openmetrics(accept):
                return 200, OPENMETRICS_CONTENT_TYPE, self.collector.render(openmetrics=True)
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
    document = snap.evaluation.document
    if document is None:
        return 503, "application/json", b'{"error": "no evaluation yet"}\n'
    require = dict(parse_qsl(path.partition("?")[2])).get("require")
    verdict = document["verdict"]
    unmet = (require == "pass" and verdict != Verdict.PASS) or (
        require == "not_fail" and verdict == Verdict.FAIL
    )
    return (412 if unmet else 200), "application/json", dumps(document) + b"\n"


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
            status, content_type, body = self.app.handle(self.path, self.headers.get("Accept", ""))
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
