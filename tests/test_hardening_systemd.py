"""Hardening, systemd faults (issue 6, item 7), through the stand-in ``systemctl`` on the real path.

The daemon runs as a child process with ``--unit``; ``systemctl`` is the conftest stand-in found on
PATH (or a configured absolute path that does not exist yet). With 300 healthy events in the stream
and systemd unable to say when the engine started, the daemon must stay up, say so on /metrics, and
never PASS; the same stream must PASS once systemd answers, which shows the fault is what blocked it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import STANDIN_SYSTEMCTL, FakeSystemd, RedisServer
from hardening_kit import DaemonProcess, Metrics, http_get, xadd_many

UNIT = "quantum-ai-engine.service"
FAULTS: dict[str, dict[str, Any]] = {
    "systemctl_missing": {},
    "no_bus": {"stderr": "Failed to connect to bus: No such file or directory", "exit": 1},
    "never_started": {"entered": None, "invocation": ""},
    "non_utc_timestamp": {
        "entered": 1_768_023_795,
        "old_systemd": True,
        "human": "Sat 2026-01-10 06:43:15 CST",  # ambiguous (US Central, China, Cuba): never guessed
        "invocation": "5f2c0a3a4d3e4b8c9a1e2f3a4b5c6d7e",
    },
}


def gate_verdict(daemon: DaemonProcess) -> str | None:
    status, body = http_get(daemon.port, "/gate")
    if status != 200:
        return None
    return str(json.loads(body)["verdict"])


@pytest.mark.parametrize("reason", list(FAULTS))
def test_systemd_fault_keeps_running_says_so_and_never_passes(
    reason: str, fake_systemd: FakeSystemd, redis_server: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    systemctl = fake_systemd.bin_dir / "systemctl"
    env = {"QUANTUM_GATE_CUTOVER_POLL_SECONDS": "0.2"}
    if reason == "systemctl_missing":  # an absolute path where nothing is installed (yet)
        systemctl = tmp_path / "later" / "systemctl"
        env["QUANTUM_GATE_CUTOVER_SYSTEMCTL"] = str(systemctl)
    else:
        fake_systemd.set(**FAULTS[reason])
    admin = redis_server.admin()
    xadd_many(admin, stream_key, 150)  # healthy backlog, newer than the start the engine will report
    daemon = DaemonProcess(
        redis_server.url, stream_key, tmp_path / "daemon", after=None, unit=UNIT, interval=0.2, env=env
    )
    try:
        daemon.start()
        daemon.wait_until(
            lambda m: (m.get("systemd_errors_total", reason=reason) or 0) >= 2,
            timeout=30,
            what=f"systemd_errors_total{{reason={reason!r}}}",
        )
        xadd_many(admin, stream_key, 150)  # and 150 more arrive live: 300 healthy events in all
        evaluations = daemon.scrape().value("evaluations_total")
        blocked = daemon.wait_until(
            lambda m: m.value("evaluations_total") >= evaluations + 3,
            timeout=30,
            what="three evaluations after the live events",
        )
        assert blocked.value("systemd_up") == 0
        assert blocked.value("cutover_known") == 0
        assert blocked.get("cutover_timestamp_seconds") is None
        assert blocked.value("verdict", verdict="pass") == 0
        assert blocked.value("verdict", verdict="insufficient_data") == 1
        assert blocked.value("redis_up") == 1
        assert set(blocked.family("systemd_errors_total")) == {(("reason", reason),)}
        assert gate_verdict(daemon) == "INSUFFICIENT_DATA"
        unavailable = [line for line in daemon.logs() if line.get("event") == "cutover.unavailable"]
        assert len(unavailable) == 1, "logged once, as a state change, not on every poll"
        assert unavailable[0]["reason"] == reason
        assert not [line for line in daemon.logs() if line.get("level") in {"error", "critical"}]

        # systemd answers again: the same 300 events now PASS (the fault was what blocked them).
        if reason == "systemctl_missing":
            systemctl.parent.mkdir()
            systemctl.write_text(STANDIN_SYSTEMCTL, encoding="utf-8")
            systemctl.chmod(0o755)
        fake_systemd.restart(entered=time.time() - 3600)
        healed: Metrics = daemon.wait_until(
            lambda m: m.get("verdict", verdict="pass") == 1, timeout=30, what="PASS once systemd answers"
        )
        assert healed.value("systemd_up") == 1
        assert healed.value("cutover_known") == 1
        assert healed.value("window_events", window="post") == 300
        assert gate_verdict(daemon) == "PASS"
        assert "cutover.available" in daemon.log_events()
    finally:
        daemon.close()
