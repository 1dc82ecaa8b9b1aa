"""Shared fixtures: private redis-server instances on free ports, stream writers, a stand-in systemctl.

The process kit (``free_port``, ``wait_until``, ``RedisServer``, ``DaemonProcess``) is ``bench/kit.py`` and
``bench/kit_daemon.py``, shared with the bench; ``free_port`` and ``wait_until`` are re-exported here.

Tests never touch the machine's own Redis on 6379: each session starts its own server, and fault tests
start one of their own so they can kill and restart it.
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench import kit

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "trade_intent_examples.jsonl"  # provenance: tests/fixtures/README.md
IN_CI = os.environ.get("CI") == "true"
free_port = kit.free_port  # the kit's, under the name the tests have always imported from here
wait_until = kit.wait_until


def require_tool(name: str) -> str:
    """A tool a test needs: in CI its absence is a failure, locally a loud skip."""
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is required in CI but not installed (.ci/run installs it)")
        pytest.skip(f"{name} not installed: install it to run this test (CI installs it)")
    return path


class RedisServer(kit.RedisServer):
    """The kit's private redis-server; a missing binary fails in CI and skips locally."""

    def binary(self) -> str:
        return require_tool("redis-server")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    yield from started(RedisServer(tmp_path_factory.mktemp("redis")))


def started(server: RedisServer) -> Iterator[RedisServer]:
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, for tests that kill, restart or reconfigure it (with an
    fsynced AOF, so a restart keeps what was written)."""
    yield from started(
        RedisServer(tmp_path / "redis", extra_args=("--appendonly", "yes", "--appendfsync", "always"))
    )


@pytest.fixture
def fresh_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own without persistence, for tests that fill it heavily or must
    not share it (soak and backfill tests)."""
    yield from started(RedisServer(tmp_path / "redis"))


@pytest.fixture
def stream_key() -> str:
    return f"test:trade.intent:{uuid.uuid4().hex[:12]}"


def load_fixture_entries() -> list[dict[str, Any]]:
    return [json.loads(line) for line in FIXTURES.read_text(encoding="utf-8").splitlines() if line.strip()]


def payload(
    votes: dict[str, tuple[str, float] | dict[str, Any]],
    *,
    symbol: str = "BTCUSDT",
    side: str = "BUY",
    fallback: bool = False,
) -> str:
    """A real-format AI-engine payload (Python json.dumps style) with the given model votes."""
    breakdown: dict[str, Any] = {}
    for model, vote in votes.items():
        if isinstance(vote, dict):
            breakdown[model] = vote
        else:
            breakdown[model] = {"action": vote[0], "confidence": vote[1], "model": f"{model}_main"}
    if fallback:
        breakdown["fallback"] = {
            "action": side,
            "confidence": 0.68,
            "reason": "consensus_not_met_or_hold_signal",
            "triggered_by": "rsi_macd_rules",
        }
    body = {
        "symbol": symbol,
        "side": side,
        "confidence": 0.7,
        "timestamp": "2026-01-10T05:47:45.000000+00:00",
        "model": "ensemble",
        "consensus_count": 2,
        "total_models": 4,
        "model_breakdown": breakdown,
        "regime": "unknown",
    }
    return json.dumps(body)


def envelope(payload_text: str) -> dict[str, str]:
    return {
        "event_type": "trade.intent",
        "payload": payload_text,
        "trace_id": "",
        "correlation_id": str(uuid.uuid4()),
        "timestamp": "2026-01-10T05:47:45.847268",
        "source": "ai-engine",
    }


STANDIN_SYSTEMCTL = textwrap.dedent(
    """\
    #!/usr/bin/env python3
    # Stand-in for systemctl: answers `show` from a JSON state file, like systemd would.
    import json, os, sys
    state = json.load(open(os.environ["FAKE_SYSTEMCTL_STATE"]))
    args = sys.argv[1:]
    if state.get("stderr"):
        sys.stderr.write(state["stderr"] + "\\n")
        sys.exit(state.get("exit", 1))
    if args[:1] != ["show"]:
        sys.exit(1)
    unix = "--timestamp=unix" in args
    if unix and state.get("old_systemd"):
        sys.stderr.write("systemctl: unrecognized option '--timestamp=unix'\\n")
        sys.exit(1)
    if state.get("hang_seconds"):  # a wedged bus: say so (the test polls for it), then hang in a
        # child of its own, as a wrapper's would (it holds stdout open: killing only us is not enough)
        with open(os.environ["FAKE_SYSTEMCTL_STATE"] + ".hung", "w") as hung:
            hung.write(str(os.getpid()))
        import subprocess
        subprocess.run(["sleep", str(state["hang_seconds"])])
    entered = state.get("entered")  # epoch seconds, or None when the unit never started
    human = state.get("human")
    if entered is None:
        stamp = ""
    elif unix:
        stamp = "@%d" % entered
    else:
        import datetime
        stamp = human or datetime.datetime.fromtimestamp(entered, datetime.timezone.utc).strftime(
            "%a %Y-%m-%d %H:%M:%S UTC")
    print("InvocationID=" + state.get("invocation", ""))
    print("ActiveEnterTimestamp=" + stamp)
    print("ActiveState=" + state.get("active_state", "active"))
    print("NRestarts=%d" % state.get("restarts", 0))
    """
)


@dataclass
class FakeSystemd:
    """Writes the state the stand-in ``systemctl`` (first on PATH) reports."""

    state_file: Path
    bin_dir: Path

    def set(self, **state: Any) -> None:
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(state), encoding="utf-8")
        temporary.replace(self.state_file)

    def restart(self, entered: float, invocation: str | None = None, restarts: int = 0) -> None:
        self.set(entered=entered, invocation=invocation or uuid.uuid4().hex, restarts=restarts)

    def hanging(self) -> int | None:
        """The PID of the query that has started hanging (after ``set(hang_seconds=...)``), if any."""
        marker = Path(f"{self.state_file}.hung")
        text = marker.read_text(encoding="utf-8").strip() if marker.exists() else ""
        return int(text) if text else None


@pytest.fixture
def fake_systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeSystemd:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "systemctl"
    script.write_text(STANDIN_SYSTEMCTL, encoding="utf-8")
    script.chmod(0o755)
    state = tmp_path / "systemctl-state.json"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SYSTEMCTL_STATE", str(state))
    fake = FakeSystemd(state, bin_dir)
    fake.set(entered=None)
    return fake
