"""``quantum-gate check / cutover`` with ``--deployment`` and ``--container``: real subprocesses, a
private redis-server, the stand-in ``kubectl`` / ``docker`` first on PATH (tests/cutoverkit.py).
Mid-rollout the same healthy events are blocked (exit 2, the rollout named); once the rollout is
complete they PASS (exit 0)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from conftest import REPO, RedisServer
from cutoverkit import DEPLOYMENT, NAMESPACE, FakeCluster, FakeDocker, fake_cluster, fake_docker
from eventkit import CUTOVER_MS, collapsed_entries, healthy_entries, write_entries

__all__ = ["fake_cluster", "fake_docker"]  # pytest fixtures, imported to be found

CONSOLE_SCRIPT = REPO / ".venv" / "bin" / "quantum-gate"
COMMAND = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "quantum_gate"]
START = CUTOVER_MS // 1000  # 2026-01-10T05:43:15Z
TARGET = f"{NAMESPACE}/{DEPLOYMENT}"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("QUANTUM_GATE_")}
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=60, env=env, check=False)


def check(server: RedisServer, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run("check", "--redis-url", server.url, "--stream", key, "--json", *args)


def document(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert "Traceback" not in result.stderr, result.stderr
    found = json.loads(result.stdout)
    assert isinstance(found, dict)
    return found


def test_check_deployment_mid_rollout_blocks_then_passes(
    redis_server: RedisServer, stream_key: str, fake_cluster: FakeCluster
) -> None:
    client = redis_server.admin()
    write_entries(client, stream_key, collapsed_entries(100, CUTOVER_MS - 200_000, 1000))  # the old model
    write_entries(client, stream_key, healthy_entries(250, CUTOVER_MS, 1000))
    fake_cluster.rollout("registry.example.com/quantum/ai-engine:2026.01.10", START, "set image 2026.01.10")
    fake_cluster.progress(updated=1)

    mid = check(redis_server, stream_key, "--deployment", TARGET)
    assert mid.returncode == 2, mid.stderr
    gate = document(mid)
    assert gate["verdict"] == "INSUFFICIENT_DATA"
    assert gate["reasons"] == ["rollout in progress: 1 of 2 pods updated"]
    assert gate["cutover"]["stream_id"] == f"{CUTOVER_MS}-0"
    assert gate["cutover"]["rollout"]["complete"] is False
    assert gate["cutover"]["label"] == "deployment quantum-trader/ai-engine revision 2"
    assert gate["windows"]["post"]["events"] == 250  # the same healthy events as below
    table = run("check", "--redis-url", redis_server.url, "--stream", stream_key, "--deployment", TARGET)
    assert table.returncode == 2 and "rollout in progress: 1 of 2 pods updated" in table.stdout

    fake_cluster.progress(updated=2, old_ready=1)
    assert check(redis_server, stream_key, "--deployment", TARGET).returncode == 2

    fake_cluster.complete()
    done = check(redis_server, stream_key, "--deployment", TARGET)
    assert done.returncode == 0, done.stdout + done.stderr
    gate = document(done)
    assert gate["verdict"] == "PASS" and gate["cutover"]["rollout"]["complete"] is True
    assert gate["cutover"]["stream_id"] == f"{CUTOVER_MS}-0"
    assert gate["windows"]["post"]["events"] == 250


@pytest.mark.parametrize(
    ("misbehaviour", "fragment"),
    [
        ({"forbidden": ["deployments"]}, "not allowed (RBAC)"),
        ({"stdout": "<html>"}, "did not print JSON"),
        ({"stderr": 'Error from server (NotFound): deployments.apps "ai-engine" not found'}, "not found"),
    ],
)
def test_check_deployment_unavailable_is_one_line_exit_1(
    stream_key: str, fake_cluster: FakeCluster, misbehaviour: dict[str, Any], fragment: str
) -> None:
    fake_cluster.misbehave(**misbehaviour)
    result = run("check", "--stream", stream_key, "--deployment", TARGET)
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("quantum-gate: cutover: ") and fragment in lines[0]


def test_check_after_a_rollback_needs_after(stream_key: str, fake_cluster: FakeCluster) -> None:
    original = fake_cluster.current()
    fake_cluster.rollout("registry.example.com/quantum/ai-engine:bad", START)
    fake_cluster.rollback(to=original)
    result = run("check", "--stream", stream_key, "--deployment", TARGET)
    assert result.returncode == 1
    assert "reused by a rollback" in result.stderr and "--after" in result.stderr


def test_cutover_command_for_a_container_and_a_deployment(
    fake_docker: FakeDocker, fake_cluster: FakeCluster
) -> None:
    container_id = fake_docker.run("quantum-ai-engine", START)
    shown = run("cutover", "--container", "quantum-ai-engine")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[:4] == [
        "cutover    2026-01-10T05:43:15.123Z",
        f"stream ID  {CUTOVER_MS + 123}-0",
        "source     container quantum-ai-engine (running)",
        f"identity   {container_id}@2026-01-10T05:43:15.123456789Z",
    ]
    assert "image      registry.example.com/quantum/ai-engine:2026.01.10" in lines
    as_json = json.loads(run("cutover", "--container", "quantum-ai-engine", "--json").stdout)
    assert as_json["source"] == "docker" and as_json["n_restarts"] == 0

    fake_cluster.rollout("registry.example.com/quantum/ai-engine:2026.01.10", START)
    fake_cluster.progress(updated=1)
    rolling = run("cutover", "--deployment", TARGET)
    assert rolling.returncode == 0, rolling.stderr
    assert "rollout    rollout in progress: 1 of 2 pods updated" in rolling.stdout.splitlines()


@pytest.mark.parametrize(
    "flags",
    [
        ["--container", "a", "--deployment", "b"],
        ["--unit", "x.service", "--container", "a"],
        ["--after", "2026-01-10T05:43:15Z", "--deployment", "b"],
    ],
)
def test_source_flags_are_mutually_exclusive(flags: list[str]) -> None:
    result = run("check", *flags)
    assert result.returncode == 1 and "not allowed with argument" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_flag_beats_the_source_in_the_environment(fake_docker: FakeDocker) -> None:
    fake_docker.run("quantum-ai-engine", START)
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("QUANTUM_GATE_")},
        "QUANTUM_GATE_CUTOVER_SOURCE": "kubernetes",
        "QUANTUM_GATE_CUTOVER_AFTER": "2020-01-01T00:00:00Z",
    }
    result = subprocess.run(
        [*COMMAND, "cutover", "--container", "quantum-ai-engine", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["source"] == "docker"
