"""The status page in a real browser: headless Chromium (Debian's ``chromium``) loads ``/`` from a daemon
running as a subprocess on a private redis-server, and the test asserts what a person looks for.

Chromium is driven over the DevTools protocol on ``--remote-debugging-pipe`` (file descriptors 3 and 4,
NUL-separated JSON), which needs nothing beyond the standard library. Every request the page makes,
every console message and every CSP violation is recorded, so "no failed requests" and "loads nothing
from elsewhere" are checked the way the browser saw them. The screenshot is kept in the test's temporary
folder (and copied to ``$STATUS_PAGE_SCREENSHOT_DIR`` when that is set, for a human to look at).
"""

from __future__ import annotations

import base64
import json
import os
import random
import select
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import RedisServer, envelope, payload, require_tool
from hardening_kit import DaemonProcess
from snapshotkit import published

from quantum_gate.config import Settings
from quantum_gate.contract import Event, Vote
from quantum_gate.cutover import Cutover
from quantum_gate.exporter import Snapshot
from quantum_gate.gate import evaluate
from quantum_gate.histograms import window_histograms
from quantum_gate.httpapp import HttpApp, HttpServer
from quantum_gate.report import gate_document
from quantum_gate.statuspage import render_status_page
from quantum_gate.streamids import StreamId
from quantum_gate.windows import Window, window_pair

CUTOVER_S = int(time.time()) - 3600
HOSTILE_MODEL = "<img src=/pwned onerror=alert(1)>"
MODELS = ["lgbm", "nhits", "xgb", HOSTILE_MODEL]
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--remote-debugging-pipe",
    "--window-size=1280,2200",
)


TRAMPOLINE = """
import fcntl, os, sys
read, write = (fcntl.fcntl(int(fd), fcntl.F_DUPFD, 10) for fd in sys.argv[1:3])
for fd in sys.argv[1:3]:
    os.close(int(fd))
os.dup2(read, 3)
os.dup2(write, 4)
os.close(read)
os.close(write)
os.execv(sys.argv[3], sys.argv[3:])
"""


class DevTools:
    """A Chromium process and its DevTools pipe; events are kept in arrival order."""

    def __init__(self, chromium: str, profile: Path) -> None:
        to_child_read, self._to_child = os.pipe()
        self._from_child, from_child_write = os.pipe()
        # The protocol expects the pipe on fds 3 (commands in) and 4 (replies out). A small Python
        # trampoline moves them there (sh cannot: dash only knows fds 0-9, and pytest's capture pushes
        # ours above that), then execs Chromium.
        argv = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"]
        self.process = subprocess.Popen(
            [sys.executable, "-c", TRAMPOLINE, str(to_child_read), str(from_child_write), *argv],
            pass_fds=(to_child_read, from_child_write),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child_read)
        os.close(from_child_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> Any:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive(time.monotonic() + 30)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float, after: int = 0) -> dict[str, Any]:
        """The first event ``method`` at index >= ``after`` (reading more from the pipe as needed)."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events[after:]:
                if event.get("method") == method:
                    return event
            self.events.append(self._receive(deadline))

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no message from Chromium in time")
            ready, _, _ = select.select([self._from_child], [], [], remaining)
            if ready:
                chunk = os.read(self._from_child, 1 << 20)
                if not chunk:
                    raise EOFError("Chromium closed its DevTools pipe")
                self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return dict(json.loads(message))

    def named(self, method: str) -> list[dict[str, Any]]:
        return [event.get("params", {}) for event in self.events if event.get("method") == method]

    def close(self) -> None:
        try:
            os.write(self._to_child, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
            self.process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait(timeout=10)
        finally:
            os.close(self._to_child)
            os.close(self._from_child)


def write_stream(server: RedisServer, key: str) -> None:
    """150 healthy events before the cutover; 210 after it, with lgbm pinned at 0.75 (a FAIL)."""
    admin = server.admin()
    for index in range(150):
        ms = (CUTOVER_S - 1500 + index * 10) * 1000
        votes = {model: ("SELL" if index % 3 else "BUY", 0.3 + (index % 13) / 20) for model in MODELS}
        admin.xadd(key, envelope(payload(votes)), id=f"{ms}-0")  # type: ignore[arg-type]
    for index in range(210):
        ms = (CUTOVER_S + 5 + index * 5) * 1000
        votes = {model: (("BUY", "SELL", "HOLD")[index % 3], 0.25 + (index % 11) / 16) for model in MODELS}
        votes["lgbm"] = ("BUY", 0.75)
        admin.xadd(key, envelope(payload(votes, fallback=index % 4 == 0)), id=f"{ms}-0")  # type: ignore[arg-type]
    admin.xadd(key, {"source": "trading-bot", "event_type": "trade.intent", "payload": "{}"})
    admin.close()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def daemon_url(redis_server: RedisServer, stream_key: str, tmp_path: Path) -> Iterator[str]:
    write_stream(redis_server, stream_key)
    ledger = ["--ledger", str(tmp_path / "ledger.sqlite3")]
    daemon = DaemonProcess(
        redis_server.url, stream_key, tmp_path, after=str(CUTOVER_S), interval=1, args=ledger
    )
    url = f"http://127.0.0.1:{daemon.port}"
    try:
        daemon.start(wait_http=False)
        daemon.wait_for(
            lambda: (daemon.get("/healthz") or (0,))[0] == 200, 30, "the daemon to become healthy"
        )
        daemon.wait_for(  # the ledger row is complete
            lambda: json.loads(get(url + "/history")[1])["cutovers"][0]["reports"],
            30,
            "the ledger to record the report",
        )
        yield url
        code, _ = daemon.terminate(within=15)
        assert code == 0, daemon.log_tail()
    finally:
        daemon.close()


def test_the_status_page_in_headless_chromium(daemon_url: str, tmp_path: Path) -> None:
    chromium = require_tool("chromium")
    browser = DevTools(chromium, tmp_path / "profile")
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Network", "Page", "Runtime", "Log"):
            browser.send(f"{domain}.enable", session=session)
        start = len(browser.events)
        browser.send("Page.navigate", {"url": daemon_url + "/"}, session=session)
        browser.wait_for("Page.loadEventFired", timeout=30, after=start)

        def evaluate(expression: str) -> Any:
            reply = browser.send(
                "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session
            )
            return reply["result"].get("value")

        verdict = evaluate("document.getElementById('verdict').textContent")
        histogram_models = evaluate("[...document.querySelectorAll('svg.hist')].map(s => s.dataset.model)")
        bars = evaluate("document.querySelectorAll('svg.hist rect.post').length")
        table_models = evaluate(
            "[...document.querySelectorAll('#models tbody tr')].map(r => r.dataset.model)"
        )
        failing = evaluate(
            "[...document.querySelectorAll('#checks td[data-passed=false]')]"
            ".map(td => td.closest('tr').dataset.model + ':' + td.dataset.check)"
        )
        images = evaluate("document.images.length")
        history = evaluate(
            "[...document.querySelectorAll('#history tbody tr')]"
            ".map(r => [...r.cells].map(c => c.textContent))"
        )
        report_links = evaluate("[...document.querySelectorAll('#history a')].map(a => a.href)")
        dom = evaluate("document.documentElement.outerHTML")
        shot = browser.send(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=session
        )
        screenshot = tmp_path / "status-page.png"
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        if os.environ.get("STATUS_PAGE_SCREENSHOT_DIR"):
            shutil.copy(screenshot, Path(os.environ["STATUS_PAGE_SCREENSHOT_DIR"]) / screenshot.name)

        # The page refreshes itself (interval 1 s -> every 2 s): a second load without our asking.
        reloads_from = len(browser.events)
        browser.wait_for("Page.loadEventFired", timeout=15, after=reloads_from)
        after_reload = evaluate("document.getElementById('verdict').textContent")
    finally:
        browser.close()

    assert verdict == "FAIL"
    assert after_reload == "FAIL"
    assert sorted(histogram_models) == sorted(MODELS)  # one histogram per model, hostile key intact
    assert bars > 0
    assert sorted(table_models) == sorted(MODELS)
    assert "lgbm:majority" in failing and "lgbm:std" in failing
    assert not any(model.startswith("xgb:") for model in failing)
    assert "lgbm: majority 1 (must be &lt;= 0.7)" in dom
    assert images == 0  # the hostile model key stayed text
    # "Recent cutovers" from the ledger: this cutover, FAIL at 200 events, a link to its report that works.
    assert len(history) == 1 and history[0][2] == "after", history
    assert history[0][5] == "FAIL" and history[0][6] == "FAIL", history
    assert len(report_links) == 1 and report_links[0].startswith(daemon_url + "/reports/quality_gate_")
    status, body = get(report_links[0])
    assert status == 200 and json.loads(body)["verdict"] == "FAIL"

    requests = [event["request"]["url"] for event in browser.named("Network.requestWillBeSent")]
    assert requests and all(url.startswith(daemon_url + "/") or url.startswith("data:") for url in requests)
    assert not [url for url in requests if "pwned" in url]
    assert not browser.named("Network.loadingFailed")
    statuses = [
        (event["response"]["url"], event["response"]["status"])
        for event in browser.named("Network.responseReceived")
    ]
    assert statuses and all(status < 400 for _, status in statuses), statuses
    errors = [
        entry["entry"] for entry in browser.named("Log.entryAdded") if entry["entry"]["level"] == "error"
    ]
    assert not errors, errors
    assert not browser.named("Runtime.exceptionThrown")
    assert not [call for call in browser.named("Runtime.consoleAPICalled") if call["type"] == "error"]
    assert screenshot.stat().st_size > 10_000


# ---- layout: every table fits from 1024 px up, in every verdict state (issue 10.7) ----------------------

LAYOUT_WIDTHS = (1024, 1400)
# Everything in <main> that sticks out of it, and every table its box scrolls or clips.
OVERFLOW_JS = """(() => {
  const main = document.querySelector('main').getBoundingClientRect();
  const doc = document.documentElement;
  const found = [];
  if (doc.scrollWidth > doc.clientWidth) found.push(`page ${doc.scrollWidth} > ${doc.clientWidth}`);
  for (const table of document.querySelectorAll('table')) {
    const box = table.parentElement;
    if (box.scrollWidth > box.clientWidth) found.push(`${table.id}: ${box.scrollWidth} > ${box.clientWidth}`);
  }
  for (const element of document.querySelectorAll('main *')) {
    const right = element.getBoundingClientRect().right;
    const name = `${element.tagName}.${element.className}`;
    if (right > main.right + 0.5) found.push(`${name} ends at ${right} > ${main.right}`);
  }
  return {found: found.slice(0, 20), tables: [...document.querySelectorAll('table')].map(t => t.id)};
})()"""


def demo_like_windows(state: str) -> tuple[Window, Window]:
    """The demo's four models with its variant names (where ``nhits_fallback_rules`` names the regression),
    three of lgbm's, and the hostile key: what made the models table overflow at 1400 px."""
    post, pre = window_pair(2000, 2000)
    rng = random.Random(11)
    post_events = {"PASS": 240, "FAIL": 240, "INSUFFICIENT_DATA": 120}[state]

    def votes(index: int, regressed: bool) -> tuple[Vote, ...]:
        def healthy(model: str, variant: str) -> Vote:
            action = rng.choice(("BUY", "SELL", "HOLD"))
            return Vote(model, action, min(max(rng.gauss(0.6, 0.12), 0.0), 1.0), variant, False, False)

        lgbm_variant = ("lgbm", "lgbm_fallback_rules", "lgbm_main_v2_shadow")[index % 3]
        nhits = (
            Vote("nhits", "BUY", 0.65, "nhits_fallback_rules", False, False)
            if regressed
            else healthy("nhits", "nhits")
        )
        return (
            healthy("xgb", "xgboost"),
            healthy("lgbm", lgbm_variant),
            nhits,
            healthy("patchtst", "patchtst_shadow"),
            healthy(HOSTILE_MODEL, "quantum_ai_engine_experimental_variant"),
        )

    for index in range(200):
        pre.add(
            Event(
                StreamId((CUTOVER_S - 2000 + index) * 1000),
                "BTCUSDT",
                "BUY",
                False,
                votes(index, False),
                (),
                0,
            )
        )
    for index in range(post_events):
        regressed = state == "FAIL"
        event = Event(
            StreamId((CUTOVER_S + index) * 1000),
            "ETHUSDT",
            "SELL",
            index % 4 == 0,
            votes(index, regressed),
            (),
            0,
        )
        post.add(event)
    return post, pre


def layout_snapshot(state: str) -> Snapshot:
    now = float(CUTOVER_S + 3600)
    settings = Settings()
    cutover = Cutover(
        StreamId(CUTOVER_S * 1000),
        "systemd",
        unit="quantum-ai-engine.service",
        invocation_id="8143184bf6104f4e9d6a0c1b2e3f4a5b",
        active_state="active",
        n_restarts=2,
    )
    common: dict[str, Any] = {
        "systemd_errors": {},
        "cutovers_total": 3,
        "accepted_total": 12_345,
        "skipped_total": {"no_model_breakdown": 412, "no_event_type": 96, "payload_not_json": 3},
        "entries_read_total": 12_856,
        "lost_total": 0,
        "resets_total": 0,
        "refused_total": 0,
        "capacity": {"post": 2000, "pre": 2000},
        "rate_per_minute": 146.25,
        "last_event_ms": CUTOVER_S * 1000 + 239_000,
        "last_entry_ms": CUTOVER_S * 1000 + 239_000,
        "evaluation_duration": 0.012,
        "evaluations_total": 1234,
        "alerts": {"low_event_rate": False, "collapse": state == "FAIL"},
        "reports_written_total": 7,
        "stream_length": 10_000,
        "post_window_truncated": False,
    }
    if state == "NO_EVALUATION":
        return published(
            settings,
            **common,
            redis_up=False,
            systemd_up=False,
            systemd_reason="systemctl show quantum-ai-engine.service failed: Failed to connect to bus: "
            "No such file or directory (is this a container without systemd?)",
            cutover=None,
            events={"post": 0, "pre": 0},
            result=None,
            document=None,
            last_evaluation_at=None,
            evaluation_errors_total=3,
        )
    post, pre = demo_like_windows(state)
    result = evaluate(post, pre, cutover, settings.gate, now=now - 1, rate_per_minute=146.25)
    assert result.verdict == state, result.reasons
    return published(
        settings,
        **common,
        redis_up=True,
        systemd_up=True,
        systemd_reason=None,
        cutover=cutover,
        events={"post": len(post), "pre": len(pre)},
        result=result,
        document=gate_document(result, stream=settings.redis.stream),
        last_evaluation_at=now - 1,
        evaluation_errors_total=0,
        histograms=window_histograms(post, pre),
    )


def test_every_table_fits_from_1024_px_up_in_every_verdict_state(tmp_path: Path) -> None:
    """Issue 10.7: at 1400 px the models table clipped its variants column. Each verdict state (and the
    page before any evaluation, with Redis and systemd down) is rendered from a real evaluation of
    demo-like windows, served by the daemon's own HttpServer, and measured in Chromium at 1024 and
    1400 px: nothing may stick out of <main>, and no table may scroll inside its box. Screenshots go
    to $STATUS_PAGE_SCREENSHOT_DIR when it is set."""
    chromium = require_tool("chromium")
    states = ("PASS", "FAIL", "INSUFFICIENT_DATA", "NO_EVALUATION")
    snapshots = {state: layout_snapshot(state) for state in states}
    shown = {"state": states[0]}
    now = float(CUTOVER_S + 3600)
    app = HttpApp(lambda: snapshots[shown["state"]], lambda: now, render_status_page)
    server = HttpServer(app, "127.0.0.1", 0)
    server.start()
    browser = DevTools(chromium, tmp_path / "profile")
    measured: dict[tuple[str, int], dict[str, Any]] = {}
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        browser.send("Page.enable", session=session)
        for state in states:
            shown["state"] = state
            for width in LAYOUT_WIDTHS:
                metrics = {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}
                browser.send("Emulation.setDeviceMetricsOverride", metrics, session=session)
                start = len(browser.events)
                browser.send("Page.navigate", {"url": f"http://127.0.0.1:{server.port}/"}, session=session)
                browser.wait_for("Page.loadEventFired", timeout=30, after=start)
                reply = browser.send(
                    "Runtime.evaluate", {"expression": OVERFLOW_JS, "returnByValue": True}, session=session
                )
                measured[state, width] = reply["result"]["value"]
                shot = browser.send(
                    "Page.captureScreenshot",
                    {"format": "png", "captureBeyondViewport": True},
                    session=session,
                )
                screenshot = tmp_path / f"status-page-{state.lower()}-{width}.png"
                screenshot.write_bytes(base64.b64decode(shot["data"]))
                if os.environ.get("STATUS_PAGE_SCREENSHOT_DIR"):
                    shutil.copy(screenshot, Path(os.environ["STATUS_PAGE_SCREENSHOT_DIR"]) / screenshot.name)
    finally:
        browser.close()
        server.stop()

    overflowing = {key: value["found"] for key, value in measured.items() if value["found"]}
    assert not overflowing, overflowing
    for state in ("PASS", "FAIL", "INSUFFICIENT_DATA"):
        for width in LAYOUT_WIDTHS:
            assert {"models", "checks", "ensemble", "skips"} <= set(measured[state, width]["tables"])
    assert all(measured["NO_EVALUATION", width]["tables"] == ["skips"] for width in LAYOUT_WIDTHS)
