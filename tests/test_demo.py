"""``quantum-gate demo`` end to end: the whole story at high speed, read from /metrics as a person (or
Prometheus) would, then Ctrl-C (SIGINT) and a clean exit 0. Needs nothing installed: the demo brings its
own Redis-compatible server and its own stand-in ``systemctl``."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import fakeredis
from conftest import REPO, free_port, require_tool

from quantum_gate.cutover import fixed_cutover
from quantum_gate.demo import _banner, demo_settings
from quantum_gate.demo_engine import HEALTHY
from quantum_gate.demo_story import SimulatedUnit, Simulator
from quantum_gate.gate import evaluate
from quantum_gate.pipeline import new_windows
from quantum_gate.stream import load_windows

SPEED = 20
STORY_BOUND_SECONDS = 120
SAMPLE = re.compile(r'^(quantum_gate_[a-z_]+)(?:\{verdict="([a-z_]+)"\})? ([0-9.e+-]+)$', re.MULTILINE)


def scrape(url: str) -> tuple[str | None, float]:
    """(the one-hot verdict, quantum_gate_cutovers_total) from /metrics."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    verdict, cutovers = None, 0.0
    for name, label, value in SAMPLE.findall(text):
        if name == "quantum_gate_verdict" and float(value) == 1.0:
            verdict = label
        elif name == "quantum_gate_cutovers_total":
            cutovers = float(value)
    return verdict, cutovers


def test_the_demo_plays_fail_then_pass_after_the_patch_then_fail_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    reports = tmp_path / "reports"
    env = {name: value for name, value in os.environ.items() if not name.startswith("QUANTUM_GATE_")}
    env["QUANTUM_GATE_REDIS_URL"] = "redis://127.0.0.1:6379/0"  # must be ignored: the demo never uses it
    stdout, stderr = (tmp_path / "stdout").open("w+b"), (tmp_path / "stderr").open("w+b")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "quantum_gate",
            "demo",
            "--listen",
            f"127.0.0.1:{port}",
            "--speed",
            str(SPEED),
            "--report-dir",
            str(reports),
            "--ledger",
            str(tmp_path / "ledger.sqlite3"),
        ],
        env=env,
        stdout=stdout,
        stderr=stderr,
    )
    seen: list[tuple[str | None, float]] = []
    try:
        deadline = time.monotonic() + STORY_BOUND_SECONDS
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "stderr").read_text()
            try:
                state = scrape(url)
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
                continue
            if not seen or seen[-1] != state:
                seen.append(state)
            passed = [
                index for index, (verdict, cutovers) in enumerate(seen) if verdict == "pass" and cutovers >= 2
            ]
            if passed and any(verdict == "fail" for verdict, _ in seen[passed[0] :]):
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

    # The story, in order: collapsed (FAIL) under the first cutover, PASS after the patch, FAIL again.
    assert seen[0][0] in {None, "fail"}, seen
    first_pass = next(index for index, (verdict, _) in enumerate(seen) if verdict == "pass")
    assert ("fail", 1.0) in seen[:first_pass], seen
    assert seen[first_pass][1] == 2.0, seen
    assert any(verdict == "fail" and cutovers == 3.0 for verdict, cutovers in seen[first_pass:]), seen

    # The first lines say where to look and what will happen; the Redis is the embedded one.
    head = out.splitlines()[:20]
    assert any(f"{url}/" in line for line in head)
    assert any(f"{url}/metrics" in line for line in head) and any(f"{url}/gate" in line for line in head)
    assert any("restarts with the patch" in line for line in head)
    redis_line = next(line for line in head if "Redis" in line and "redis://" in line)
    assert ":6379" not in redis_line
    assert "demo stopped" in out.splitlines()[-1]

    # The real daemon's normal code paths ran: cutovers from systemctl, gate.completed and reports.
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    names = [event["event"] for event in events]
    assert names.count("cutover.detected") >= 3
    assert all(event["source"] == "systemd" for event in events if event["event"] == "cutover.detected")
    completed = [event["verdict"] for event in events if event["event"] == "gate.completed"]
    assert completed == ["FAIL", "PASS", "FAIL"]
    verdicts = sorted(json.loads(path.read_text())["verdict"] for path in reports.glob("*.json"))
    assert verdicts == ["FAIL", "FAIL", "PASS"]
    assert names[-1] == "daemon.stopped"

    # The deployment ledger kept the three acts, and `quantum-gate history` reads them after the demo.
    assert f"history: quantum-gate history --ledger {tmp_path / 'ledger.sqlite3'}" in out.splitlines()[-1]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "quantum_gate",
            "history",
            "--ledger",
            str(tmp_path / "ledger.sqlite3"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    acts = json.loads(done.stdout)["cutovers"][::-1]  # oldest first
    assert [act["verdict_at_min_events"] for act in acts[-3:]] == ["FAIL", "PASS", "FAIL"]
    for act in acts[-3:]:
        assert act["seconds_to_min_events"] is not None and act["seconds_to_min_events"] > 0
        assert act["reports"] and all(Path(path).parent == reports for path in act["reports"])


def test_make_run_passes_args_to_the_demo(tmp_path: Path) -> None:
    """README: ``make run ARGS='--listen 127.0.0.1:9732'`` moves the demo. Run through make itself, with
    this test's interpreter's venv as BIN and the install stamp taken as done (``-o``), so the test never
    reinstalls anything."""
    make = require_tool("make")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "quantum-gate").exists(), "run the tests from the venv `make test` creates"
    env = {name: value for name, value in os.environ.items() if not name.startswith("QUANTUM_GATE_")}
    stdout = (tmp_path / "stdout").open("w+b")
    process = subprocess.Popen(
        [
            make,
            "-o",
            ".venv/.installed",
            "run",
            f"BIN={bin_dir}",
            f"ARGS=--listen 127.0.0.1:{port} --speed 5",
        ],
        cwd=REPO,
        env=env,
        stdout=stdout,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # SIGINT to the group reaches make and the demo, as Ctrl-C would
    )
    try:
        deadline = time.monotonic() + 30
        status = None
        while status is None:
            assert process.poll() is None, (tmp_path / "stdout").read_text()
            assert time.monotonic() < deadline, "the demo never answered on the port given in ARGS"
            try:
                with urllib.request.urlopen(url + "/", timeout=5) as response:
                    status = response.status
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
        stdout.close()
    out = (tmp_path / "stdout").read_text()
    assert status == 200
    assert f"status page  {url}/" in out
    assert "demo stopped" in out  # the demo itself ended cleanly on Ctrl-C


def act_one_failures(tmp_path: Path) -> dict[str, list[str]]:
    """The gate over the windows the daemon reads at 0:00 (the demo's backlog, first cutover), on a
    fakeredis server: the models that fail, and their failed checks."""
    client = fakeredis.FakeRedis()
    unit = SimulatedUnit(tmp_path)
    Simulator(client, unit, 1.0, lambda _: None).write_backlog(time.time())
    settings = demo_settings("redis://127.0.0.1:1/0", "127.0.0.1:9731", tmp_path / "reports")
    cutover = fixed_cutover(f"@{unit.entered}")
    post, pre = new_windows(settings)
    load_windows(client, settings, cutover.stream_id, post, pre)
    result = evaluate(post, pre, cutover, settings.gate, now=time.time(), rate_per_minute=None)
    assert result.verdict == "FAIL"
    return {name: [check.name for check in report.failed()] for name, report in result.models.items()}


def named_models(line: str) -> set[str]:
    return {model for model in HEALTHY if re.search(rf"\b{model}\b", line)}


def test_the_banner_and_the_quickstart_tell_act_one_as_it_plays(tmp_path: Path) -> None:
    """Issue 10.8: xgb collapses in act 1 too (std and P10-P90 too narrow): the story must say so."""
    failures = act_one_failures(tmp_path)
    failing = {name for name, checks in failures.items() if checks}
    assert failing == set(HEALTHY), failures
    assert {"std", "p10_p90"} <= set(failures["xgb"])
    banner = _banner("127.0.0.1:9731", "redis://127.0.0.1:1/0", tmp_path, 1.0, tmp_path / "l.db").splitlines()
    act_one = next(line for line in banner if line.startswith("  0:00  "))
    assert named_models(act_one) == failing and "all four" in act_one
    quickstart = (REPO / "docs" / "quickstart.md").read_text(encoding="utf-8")
    documented = next(line for line in quickstart.splitlines() if line.startswith("  0:00  "))
    assert documented == act_one  # the quickstart quotes the banner
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    assert "starts with all four models collapsed" in readme
