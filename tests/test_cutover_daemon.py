"""The daemon with the docker and kubernetes sources: ``quantum-gate run --container`` as a real
process adopting a ``docker restart``; the daemon in process following a Kubernetes rollout poll by
poll (never PASS while it rolls, the automatic gate waits, the status page and
``quantum_gate_rollout_complete`` say so) and a rollback as a new cutover."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from conftest import RedisServer
from cutoverkit import DEPLOYMENT, NAMESPACE, FakeCluster, FakeDocker, fake_cluster, fake_docker, rfc3339
from daemonkit import (
    cutover_of,
    daemon_process,
    document_of,
    make_settings,
    result_of,
    tailing,
    wait_until,
    write_atomically,
)
from eventkit import healthy_entries
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from quantum_gate.cutover import Rollout
from quantum_gate.cutover_kubernetes import KubernetesSource
from quantum_gate.daemon import Daemon
from quantum_gate.exporter import make_registry
from quantum_gate.statuspage import render_status_page
from quantum_gate.streamids import StreamId

__all__ = ["fake_cluster", "fake_docker"]  # pytest fixtures, imported to be found

CONTAINER = "quantum-ai-engine"
TARGET = f"{NAMESPACE}/{DEPLOYMENT}"


def now_s() -> int:
    return int(time.time())


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_run_container_adopts_a_docker_restart(
    redis_server: RedisServer, stream_key: str, tmp_path: Path, fake_docker: FakeDocker
) -> None:
    client = redis_server.admin()
    start = now_s() - 600
    write_atomically(client, stream_key, healthy_entries(30, (start - 100) * 1000, 1000))
    write_atomically(client, stream_key, healthy_entries(20, start * 1000 + 500, 1000))
    fake_docker.run(CONTAINER, start, nanos=0)
    poll = 3.0  # long next to an adoption (a baseline of 30 entries), so "within one poll" means something
    config = {"cutover": {"poll_seconds": poll}, "redis": {"block_ms": 200}}
    with daemon_process(
        tmp_path, redis_server.url, stream_key, "--container", CONTAINER, config=config
    ) as daemon:
        daemon.wait_value("quantum_gate_cutovers_total", 1, timeout=20)
        assert daemon.value("quantum_gate_cutover_source_up", source="docker") == 1
        assert daemon.value("quantum_gate_cutover_timestamp_seconds") == start
        assert daemon.value("quantum_gate_systemd_up") is None  # systemd is not asked
        daemon.wait_value("quantum_gate_window_events", 20, window="post")
        gate = daemon.wait_for(lambda: d if (d := daemon.json("/gate")).get("cutover") else None, 10, "/gate")
        assert gate["cutover"]["source"] == "docker" and gate["cutover"]["label"] == f"container {CONTAINER}"

        fake_docker.restart(CONTAINER, start + 10, nanos=0)  # `docker restart quantum-ai-engine`
        daemon.wait_value("quantum_gate_cutovers_total", 2, timeout=20)
        assert daemon.value("quantum_gate_cutover_timestamp_seconds") == start + 10
        assert daemon.value("quantum_gate_window_events", window="post") == 10  # 10.5 s .. 19.5 s
        detected = daemon.wait_log("cutover.detected", count=2)
        assert detected[1]["source"] == "docker" and detected[1]["previous"] == f"{start * 1000}-0"
        assert detected[1]["identity"] != detected[0]["identity"]
        # Within one poll interval: the first poll that saw the restart is the one adopted; no second
        # poll of the new start came before the adoption.
        adopted_at = datetime.fromisoformat(detected[1]["timestamp"]).timestamp()
        new_start = rfc3339(start + 10)
        seen = [answer["at"] for answer in fake_docker.answers() if answer["started"] == new_start]
        assert seen and seen[0] <= adopted_at
        assert len([at for at in seen if at <= adopted_at]) == 1, (seen, adopted_at)
        assert all(call[-1] == CONTAINER for call in fake_docker.calls())

        fake_docker.fail("Cannot connect to the Docker daemon at unix:///var/run/docker.sock.")
        daemon.wait_value("quantum_gate_cutover_source_up", 0, timeout=20, source="docker")
        assert daemon.value("quantum_gate_cutover_source_errors_total", source="docker", reason="no_daemon")
        assert daemon.value("quantum_gate_cutovers_total") == 2  # the last known cutover is kept
        unavailable = daemon.wait_log("cutover.unavailable")
        assert unavailable[0]["reason"] == "no_daemon" and unavailable[0]["source"] == "docker"
        code, _ = daemon.terminate(within=5)
        assert code == 0, daemon.stderr()


def test_daemon_follows_a_rollout_and_a_rollback(
    redis_server: RedisServer, stream_key: str, tmp_path: Path, fake_cluster: FakeCluster
) -> None:
    client = redis_server.admin()
    start = now_s() - 900
    fake_cluster.created(start - 86_400)
    write_atomically(client, stream_key, healthy_entries(100, (start - 200) * 1000, 1000))
    write_atomically(client, stream_key, healthy_entries(250, start * 1000, 1000))
    clock = [float(now_s())]
    settings = make_settings(
        redis_server.url,
        stream_key,
        tmp_path / "reports",
        {"cutover": {"source": "kubernetes", "deployment": TARGET}},
    )
    fake_cluster.rollout("registry.example.com/quantum/ai-engine:2026.01.10", start, "set image 2026.01.10")
    fake_cluster.progress(updated=1)
    daemon = Daemon(settings, clock=lambda: clock[0])
    registry = make_registry(daemon.snapshot)
    with capture_logs() as logs, tailing(daemon):
        wait_until(lambda: daemon.tracker.state().cutover is not None, 20, "the first cutover")
        # poll 1 (at start): 1 of 2 pods updated
        daemon.evaluator.tick()
        assert cutover_of(daemon).stream_id == StreamId(start * 1000, 0)
        assert result_of(daemon).verdict == "INSUFFICIENT_DATA"
        assert result_of(daemon).reasons == ("rollout in progress: 1 of 2 pods updated",)
        assert len(daemon.windows.post) == 250  # enough events: only the rollout holds the gate
        assert sample(registry, "quantum_gate_rollout_complete") == 0
        assert sample(registry, "quantum_gate_cutover_source_up", source="kubernetes") == 1
        page = render_status_page(daemon.snapshot(), clock[0])
        assert "rollout in progress: 1 of 2 pods updated" in page and "the gate waits for the rollout" in page
        assert list((tmp_path / "reports").glob("quality_gate_*.json")) == []  # the automatic gate waits

        # A rollout that moves on while its cutover is being adopted leaves a pending cutover with the
        # same identity: it is the same deployment, taken in place, not adopted (or counted) again.
        adopted = cutover_of(daemon)
        assert adopted.rollout == Rollout(2, 1, 1, True)
        daemon.tracker.propose(replace(adopted, rollout=Rollout(2, 1, 0, True)))  # the old pod went
        wait_until(lambda: daemon.tracker.state().pending is None, 20, "the newer state to be taken")
        assert cutover_of(daemon).rollout == Rollout(2, 1, 0, True)
        # The verdict served was for the older state: withdrawn until the new state is evaluated.
        assert daemon.evaluator.state().result is None
        assert sample(registry, "quantum_gate_cutovers_total") == 1
        assert len(daemon.windows.post) == 250

        fake_cluster.progress(updated=2, old_ready=1)  # poll 2
        daemon.tracker.watch()
        daemon.evaluator.tick()
        assert result_of(daemon).reasons == (
            "rollout in progress: 2 of 2 pods updated, 1 old pod still ready",
        )
        assert sample(registry, "quantum_gate_cutovers_total") == 1  # progress is not a new cutover
        assert list((tmp_path / "reports").glob("quality_gate_*.json")) == []

        fake_cluster.complete()  # poll 3
        daemon.tracker.watch()
        daemon.evaluator.tick()
        assert result_of(daemon).verdict == "PASS", result_of(daemon).reasons
        assert sample(registry, "quantum_gate_rollout_complete") == 1
        assert sample(registry, "quantum_gate_cutovers_total") == 1
        assert sample(registry, "quantum_gate_verdict", verdict="pass") == 1
        reports = list((tmp_path / "reports").glob("quality_gate_*.json"))
        assert len(reports) == 1  # the automatic gate ran once the rollout completed
        assert [entry["event"] for entry in logs if entry["event"].startswith("rollout.")] == [
            "rollout.progressing",
            "rollout.completed",
        ]

        # kubectl rollout undo: the ReplicaSet of the day before gets revision 3; seen now, a new cutover
        clock[0] = float(now_s())
        fake_cluster.rollback(to=fake_cluster.replicasets[0])
        fake_cluster.progress(updated=1)
        daemon.tracker.watch()
        wait_until(lambda: sample(registry, "quantum_gate_cutovers_total") == 2, 20, "the rollback's cutover")
        assert cutover_of(daemon).stream_id == StreamId(int(clock[0] * 1000), 0)
        assert cutover_of(daemon).label == f"deployment {TARGET} revision 3"
        daemon.evaluator.tick()
        assert result_of(daemon).verdict == "INSUFFICIENT_DATA"
        assert result_of(daemon).reasons[0] == "rollout in progress: 1 of 2 pods updated"
        assert sample(registry, "quantum_gate_rollout_complete") == 0


def test_daemon_with_a_forbidden_then_hanging_kubectl_fails_closed(
    redis_server: RedisServer, stream_key: str, tmp_path: Path, fake_cluster: FakeCluster
) -> None:
    client = redis_server.admin()
    start = now_s() - 900
    fake_cluster.created(start)
    write_atomically(client, stream_key, healthy_entries(250, start * 1000, 1000))
    settings = make_settings(
        redis_server.url,
        stream_key,
        tmp_path / "reports",
        {"cutover": {"source": "kubernetes", "deployment": TARGET, "timeout_seconds": 10}},
    )
    fake_cluster.misbehave(forbidden=["replicasets"])
    daemon = Daemon(settings)
    registry = make_registry(daemon.snapshot)
    with capture_logs() as logs, tailing(daemon):
        daemon.evaluator.tick()
        assert result_of(daemon).verdict == "INSUFFICIENT_DATA"
        assert result_of(daemon).reasons[0] == "cutover unknown"
        assert "forbidden" in document_of(daemon)["cutover"]["error"]
        assert sample(registry, "quantum_gate_cutover_source_up", source="kubernetes") == 0
        assert (
            sample(
                registry, "quantum_gate_cutover_source_errors_total", source="kubernetes", reason="forbidden"
            )
            == 1
        )
        assert sample(registry, "quantum_gate_systemd_up") is None
        assert sample(registry, "quantum_gate_rollout_complete") is None

        fake_cluster.heal()
        daemon.tracker.watch()
        wait_until(lambda: daemon.tracker.state().cutover is not None, 20, "the cutover once kubectl answers")
        daemon.evaluator.tick()
        assert result_of(daemon).verdict == "PASS"
        assert sample(registry, "quantum_gate_cutover_source_up", source="kubernetes") == 1

        fake_cluster.misbehave(hang=True)  # bounded by cutover.timeout_seconds; the cutover is kept
        assert isinstance(daemon.tracker.source, KubernetesSource)
        daemon.tracker.source.timeout = 0.5  # short only here: a loaded machine may start kubectl slowly
        daemon.tracker.watch()
        assert (
            sample(
                registry, "quantum_gate_cutover_source_errors_total", source="kubernetes", reason="timeout"
            )
            == 1
        )
        assert (
            daemon.tracker.state().cutover is not None
            and sample(registry, "quantum_gate_cutovers_total") == 1
        )
    unavailable = [entry for entry in logs if entry["event"] == "cutover.unavailable"]
    assert [entry["reason"] for entry in unavailable] == ["forbidden", "timeout"]
    assert unavailable[0]["source"] == "kubernetes" and unavailable[0]["target"] == TARGET
