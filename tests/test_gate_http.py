"""``/gate`` as rollout tools call it, over real HTTP: Argo Rollouts' web provider GETs it and reads
``$.verdict``; Flagger's webhooks POST a JSON body and read only the status code (``?require=``)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from test_statuspage import NOW, build_windows, snapshot

from quantum_gate.exporter import Snapshot
from quantum_gate.httpapp import HttpApp, HttpServer
from quantum_gate.statuspage import render_status_page

VERDICTS = {
    "FAIL": {"lgbm": "pinned", "xgb": "healthy"},
    "PASS": {"lgbm": "healthy", "xgb": "healthy"},
    "INSUFFICIENT_DATA": {"lgbm": "healthy"},
}


def snapshot_for(verdict: str) -> Snapshot:
    post, pre = build_windows(VERDICTS[verdict], post_events=100 if verdict == "INSUFFICIENT_DATA" else 240)
    snap = snapshot(post, pre)
    document = snap.evaluation.document
    assert document is not None and document["verdict"] == verdict
    return snap


@dataclass
class Served:
    """A real HttpServer on a free port serving whatever snapshot the test puts in ``snap``."""

    port: int = 0
    snap: Snapshot | None = None

    def current(self) -> Snapshot:
        assert self.snap is not None
        return self.snap


@pytest.fixture
def serve() -> Iterator[Served]:
    served = Served()
    server = HttpServer(HttpApp(served.current, lambda: NOW, render_status_page), "127.0.0.1", 0)
    server.start()
    served.port = server.port
    yield served
    server.stop()


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("verdict", "plain", "require_pass", "require_not_fail"),
    [("PASS", 200, 200, 200), ("INSUFFICIENT_DATA", 200, 412, 200), ("FAIL", 200, 412, 412)],
)
def test_gate_status_codes_for_rollout_tools(
    serve: Served, verdict: str, plain: int, require_pass: int, require_not_fail: int
) -> None:
    serve.snap = snapshot_for(verdict)
    port = serve.port
    status, body = request(port, "GET", "/gate")
    assert status == plain and json.loads(body)["verdict"] == verdict  # what jsonPath {$.verdict} reads
    assert request(port, "GET", "/gate?require=pass")[0] == require_pass
    assert request(port, "GET", "/gate?require=not_fail")[0] == require_not_fail
    flagger_body = json.dumps({"name": "engine", "namespace": "trading", "phase": "Progressing"}).encode()
    status, body = request(port, "POST", "/gate?require=pass", flagger_body)
    assert status == require_pass and json.loads(body)["verdict"] == verdict
    assert request(port, "POST", "/gate?require=not_fail", flagger_body)[0] == require_not_fail


def test_gate_refuses_what_it_does_not_understand(serve: Served) -> None:
    serve.snap = snapshot_for("PASS")
    port = serve.port
    assert request(port, "GET", "/gate?require=maybe")[0] == 400
    assert request(port, "POST", "/metrics", b"{}")[0] == 405
    assert request(port, "POST", "/", b"{}")[0] == 405


def test_gate_before_the_first_evaluation_is_503(serve: Served) -> None:
    serve.snap = snapshot(None, None, evaluated=False)
    port = serve.port
    assert request(port, "GET", "/gate")[0] == 503
    assert request(port, "POST", "/gate?require=not_fail", b"{}")[0] == 503
