"""``quantum-gate demo --engine kubernetes`` end to end at high speed: the regression FAILs under
revision 1; the patch's rollout is a new cutover that is INSUFFICIENT_DATA with "rollout in progress"
while old and new pods write (quantum_gate_rollout_complete 0); it PASSes once the rollout completes;
``kubectl rollout undo`` is a third cutover and FAILs. Ctrl-C, exit 0. Needs nothing installed: the demo
brings its own Redis-compatible server and its own stand-in ``kubectl``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from conftest import free_port
from prometheus_client.parser import text_string_to_metric_families

SPEED = 20
STORY_BOUND_SECONDS = 150


def observe(url: str) -> tuple[str, float, float | None, str]:
    """(verdict, cutovers_total, rollout_complete, first reason) from /metrics and /gate."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    values: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, sample.labels.get("verdict", ""))] = sample.value
    verdict = next(
        (v for v in ("pass", "fail", "insufficient_data") if values.get(("quantum_gate_verdict", v))), ""
    )
    try:
        with urllib.request.urlopen(url + "/gate", timeout=5) as response:
            gate: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError:
        gate = {}
    reasons = gate.get("reasons") or [""]
    return (
        verdict,
        values.get(("quantum_gate_cutovers_total", ""), 0.0),
        values.get(("quantum_gate_rollout_complete", "")),
        str(reasons[0]),
    )


def test_the_kubernetes_demo_waits_for_the_rollout(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    reports = tmp_path / "reports"
    env = {name: value for name, value in os.environ.items() if not name.startswith("QUANTUM_GATE_")}
    argv = [
        sys.executable,
        "-m",
        "quantum_gate",
        "demo",
        "--engine",
        "kubernetes",
        "--listen",
        f"127.0.0.1:{port}",
    ]
    argv += ["--speed", str(SPEED), "--report-dir", str(reports)]
    stdout, stderr = (tmp_path / "stdout").open("w+b"), (tmp_path / "stderr").open("w+b")
    process = subprocess.Popen(argv, env=env, stdout=stdout, stderr=stderr)
    seen: list[tuple[str, float, float | None, str]] = []
    try:
        deadline = time.monotonic() + STORY_BOUND_SECONDS
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "stderr").read_text()
            try:
                state = observe(url)
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
                continue
            if not seen or seen[-1] != state:
                seen.append(state)
            if any(verdict == "fail" and cutovers == 3 for verdict, cutovers, _, _ in seen):
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"the story did not finish in {STORY_BOUND_SECONDS}s: {seen}")
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        stdout.close()
        stderr.close()
    out, err = (tmp_path / "stdout").read_text(), (tmp_path / "stderr").read_text()
    assert code == 0, err

    assert ("fail", 1.0, 1.0, seen[0][3]) in seen or any(s[:3] == ("fail", 1.0, 1.0) for s in seen), seen
    rolling = [s for s in seen if s[1] == 2.0 and s[2] == 0.0]
    assert rolling, seen
    # While it rolls the verdict (read with rollout_complete in the same /metrics scrape) is
    # INSUFFICIENT_DATA, or for a moment after each step of the rollout none at all: the previous
    # state's verdict is withdrawn until the new state is evaluated. The reason comes from a second
    # request (/gate), so it may already belong to the next state: the any() below checks it.
    assert all(s[0] in {"insufficient_data", ""} for s in rolling), seen
    assert any(s[3] == "rollout in progress: 1 of 2 pods updated" for s in rolling), seen
    first_pass = next(index for index, s in enumerate(seen) if s[0] == "pass")
    assert seen[first_pass][1:3] == (2.0, 1.0), seen  # only once the rollout of revision 2 is complete
    assert all(s[0] != "pass" for s in seen if s[2] == 0.0), seen  # never PASS mid-rollout
    assert any(s[0] == "fail" and s[1] == 3.0 for s in seen[first_pass:]), seen  # the rollback

    assert any("kubectl set image" in line for line in out.splitlines()[:20])
    assert "demo stopped" in out.splitlines()[-1]
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    detected = [event for event in events if event["event"] == "cutover.detected"]
    assert [event["source"] for event in detected] == ["kubernetes"] * 3
    assert [event["label"] for event in detected] == [
        f"deployment quantum-trader/ai-engine revision {n}" for n in (1, 2, 3)
    ]
    completed = [event["verdict"] for event in events if event["event"] == "gate.completed"]
    assert completed == ["FAIL", "PASS", "FAIL"]
