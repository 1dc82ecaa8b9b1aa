"""The cutover sources: docker and kubernetes parsing (pure, on the documented shapes in
tests/fixtures/cutover/), and the real edge functions against the stand-in ``docker`` and ``kubectl``
first on PATH: restart, recreate, a rollout over three polls, a rollback, a missing CLI, a hanging one,
garbage and RBAC "forbidden". Each ends in a Cutover or a CutoverUnavailable with a reason, never a
crash; the gate never PASSes while a rollout is in progress.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cutoverkit import DEPLOYMENT, NAMESPACE, FakeCluster, FakeDocker, fake_cluster, fake_docker, fixture
from eventkit import collapsed_vote, event, healthy_events, run_gate
from test_statuspage import HOSTILE_MODEL, HOSTILE_UNIT, NOW, Page, build_windows, snapshot

from quantum_gate.config import ConfigError, CutoverSettings, Settings
from quantum_gate.config_loading import load_settings
from quantum_gate.cutover import (
    Cutover,
    CutoverUnavailable,
    FixedSource,
    Rollout,
    SystemdSource,
    parse_rfc3339,
)
from quantum_gate.cutover_docker import DockerSource, cutover_from_inspect, query_container
from quantum_gate.cutover_kubernetes import (
    KubernetesSource,
    cutover_from_rollout,
    label_selector,
    owned_replicasets,
    rollout_state,
)
from quantum_gate.cutover_sources import cutover_source
from quantum_gate.report import gate_document, render_markdown
from quantum_gate.statuspage import render_status_page
from quantum_gate.streamids import StreamId
from quantum_gate.verdicts import Verdict

__all__ = ["fake_cluster", "fake_docker"]  # pytest fixtures, imported to be found

CONTAINER = "quantum-ai-engine"
TARGET = f"{NAMESPACE}/{DEPLOYMENT}"
START = 1_768_023_795  # 2026-01-10T05:43:15Z


def unavailable(call: Any) -> CutoverUnavailable:
    with pytest.raises(CutoverUnavailable) as caught:
        call()
    return caught.value


# ---- pure: times ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-10T05:43:15.123456789Z", StreamId(1_768_023_795_123, 0)),  # nanoseconds: truncated to ms
        ("2026-01-10T05:43:15.999999999Z", StreamId(1_768_023_795_999, 0)),  # never rounded up
        ("2026-01-10T05:43:15Z", StreamId(1_768_023_795_000, 0)),  # Kubernetes' creationTimestamp
        ("2026-01-10T06:43:15.5+01:00", StreamId(1_768_023_795_500, 0)),
    ],
)
def test_rfc3339_to_the_millisecond(value: str, expected: StreamId) -> None:
    assert parse_rfc3339(value, "StartedAt") == expected


@pytest.mark.parametrize(
    "value", ["", "yesterday", "2026-01-10 05:43:15", "1969-12-31T23:59:59Z", "2026-13-45T00:00:00Z"]
)
def test_unreadable_rfc3339_is_bad_output(value: str) -> None:
    assert unavailable(lambda: parse_rfc3339(value, "StartedAt")).reason == "bad_output"


# ---- pure: docker inspect -------------------------------------------------------------------------


def test_inspect_fixture_becomes_a_cutover_with_provenance() -> None:
    inspected = fixture("docker_inspect_container.json")
    cutover = cutover_from_inspect(CONTAINER, inspected)
    assert cutover.stream_id == StreamId(1_768_023_795_123, 0)
    assert cutover.source == "docker"
    assert cutover.identity_key == f"{inspected['Id']}@2026-01-10T05:43:15.123456789Z"
    assert cutover.label == "container quantum-ai-engine"
    assert cutover.active_state == "running" and cutover.n_restarts == 0
    provenance = dict(cutover.provenance)
    assert provenance["image"] == "registry.example.com/quantum/ai-engine:2026.01.10"
    assert provenance["image_id"] == inspected["Image"]
    assert provenance["label:org.opencontainers.image.revision"] == "4f2a9c1d"
    keys = [key for key, _ in cutover.provenance if key.startswith("label:")]
    assert keys[0].startswith("label:org.opencontainers")  # OCI labels first: they name the build
    data = cutover.to_json()
    assert data["identity"] == cutover.identity_key
    assert data["provenance"] == provenance


def test_restart_and_recreate_are_new_identities_a_stop_is_not() -> None:
    first = fixture("docker_inspect_container.json")
    restarted = fixture("docker_inspect_container.json")
    restarted["State"]["StartedAt"] = "2026-01-10T05:43:15.523456789Z"  # same second, same Id
    restarted["RestartCount"] = 1
    recreated = fixture("docker_inspect_container.json")
    recreated["Id"] = "f" * 64  # same StartedAt, new container
    stopped = fixture("docker_inspect_container.json")
    stopped["State"].update(Running=False, Status="exited", FinishedAt="2026-01-10T06:00:00.1Z")
    base = cutover_from_inspect(CONTAINER, first)
    assert cutover_from_inspect(CONTAINER, restarted).identity() != base.identity()
    assert cutover_from_inspect(CONTAINER, recreated).identity() != base.identity()
    assert cutover_from_inspect(CONTAINER, recreated).stream_id == base.stream_id
    down = cutover_from_inspect(CONTAINER, stopped)  # like an inactive unit: the last start stays
    assert down.identity() == base.identity() and down.active_state == "exited"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"State": {"StartedAt": "0001-01-01T00:00:00Z", "Running": False}}, "never_started"),
        ({"State": {"StartedAt": "", "Running": False}}, "never_started"),
        ({"State": {"StartedAt": "soon"}}, "bad_output"),
        ({"State": None}, "bad_output"),
        ({"Id": None}, "bad_output"),
    ],
)
def test_inspect_without_a_usable_start(change: dict[str, Any], reason: str) -> None:
    inspected = {**fixture("docker_inspect_container.json"), **change}
    assert unavailable(lambda: cutover_from_inspect(CONTAINER, inspected)).reason == reason


# ---- pure: kubernetes -----------------------------------------------------------------------------


def test_deployment_fixture_complete_rollout() -> None:
    deployment = fixture("kubectl_deployment.json")
    listing = fixture("kubectl_replicasets.json")
    assert label_selector(deployment) == "app=ai-engine"
    state = rollout_state(deployment, owned_replicasets(deployment, listing))
    assert state.revision == "1" and state.replicaset == "ai-engine-7d9f8c6b5d"
    assert state.created == StreamId(1_767_956_560_000, 0)  # 2026-01-09T11:02:40Z
    assert state.rollout == Rollout(replicas=2, updated=2, old_ready=0, observed=True)
    assert state.rollout.complete and not state.reused
    cutover = cutover_from_rollout(TARGET, state)
    assert cutover.identity_key == "revision 1 a41f0c2e-8d7b-4b6a-9e53-1c2d3e4f5a60"
    assert cutover.label == "deployment quantum-trader/ai-engine revision 1"
    provenance = dict(cutover.provenance)
    assert provenance["image:ai-engine"] == "registry.example.com/quantum/ai-engine:2026.01.09"
    assert provenance["change_cause"] == "kubectl apply --filename=k8s/ai-engine.yaml"
    assert cutover.to_json()["rollout"] == {
        "complete": True,
        "replicas": 2,
        "updated": 2,
        "old_ready": 0,
        "observed": True,
        "reason": None,
    }


def test_selector_expressions_and_foreign_replicasets() -> None:
    deployment = fixture("kubectl_deployment.json")
    deployment["spec"]["selector"] = {
        "matchLabels": {"app": "ai-engine"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ],
    }
    assert label_selector(deployment) == "app=ai-engine,tier in (a,b),!canary"
    listing = fixture("kubectl_replicasets.json")
    stranger = fixture("kubectl_replicasets.json")["items"][0]
    stranger["metadata"]["ownerReferences"][0]["uid"] = "someone-else"
    listing["items"].append(stranger)  # matches the selector, owned by another Deployment
    assert len(owned_replicasets(deployment, listing)) == 1
    deployment["spec"]["selector"] = {}
    assert unavailable(lambda: label_selector(deployment)).reason == "bad_output"


@pytest.mark.parametrize(
    ("rollout", "reason"),
    [
        (
            Rollout(replicas=2, updated=1, old_ready=1, observed=True),
            "rollout in progress: 1 of 2 pods updated",
        ),
        (
            Rollout(replicas=2, updated=0, old_ready=2, observed=True),
            "rollout in progress: 0 of 2 pods updated",
        ),
        (
            Rollout(replicas=2, updated=2, old_ready=1, observed=True),
            "rollout in progress: 2 of 2 pods updated, 1 old pod still ready",
        ),
        (
            Rollout(replicas=2, updated=2, old_ready=0, observed=False),
            "rollout in progress: the Deployment controller has not observed the new spec yet",
        ),
    ],
)
def test_a_rollout_in_progress_is_never_pass(rollout: Rollout, reason: str) -> None:
    assert not rollout.complete and rollout.reason() == reason
    cutover = Cutover(StreamId(START * 1000, 0), source="kubernetes", identity_key="r", rollout=rollout)
    start = START * 1000
    healthy = run_gate(healthy_events(300, start), cutover=cutover)
    assert healthy.verdict == Verdict.INSUFFICIENT_DATA and healthy.reasons == (reason,)
    # collapsed votes mid-rollout may be the old pods': INSUFFICIENT_DATA too, never a verdict on the new
    collapsed = [event(start + i, {"xgb": collapsed_vote(i), "lgbm": collapsed_vote(i)}) for i in range(300)]
    assert run_gate(collapsed, cutover=cutover).verdict == Verdict.INSUFFICIENT_DATA
    done = Cutover(cutover.stream_id, source="kubernetes", identity_key="r", rollout=Rollout(2, 2, 0, True))
    assert run_gate(healthy_events(300, start), cutover=done).verdict == Verdict.PASS
    assert run_gate(collapsed, cutover=done).verdict == Verdict.FAIL
    thin = run_gate(healthy_events(50, start), cutover=cutover)  # the other reasons stay visible
    assert thin.reasons[0] == reason and "post window holds 50 of 200 events" in thin.reasons


# ---- settings -------------------------------------------------------------------------------------


def test_sources_from_settings() -> None:
    assert isinstance(cutover_source(CutoverSettings()), SystemdSource)
    docker = cutover_source(CutoverSettings(source="docker", docker_host="unix:///run/docker.sock"))
    assert isinstance(docker, DockerSource) and docker.host == "unix:///run/docker.sock"
    kube = cutover_source(CutoverSettings(source="kubernetes", deployment="ai-engine"))
    assert isinstance(kube, KubernetesSource) and kube.target == "ai-engine"
    fixed = cutover_source(CutoverSettings(source="docker", after="2026-01-10T05:43:15Z"))
    assert isinstance(fixed, FixedSource)  # a set `after` wins, as it always has
    assert fixed.query().stream_id == StreamId(START * 1000, 0)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"cutover.container": "-rf"}, "cutover.container: must be a container name"),
        ({"cutover.deployment": "Quantum/AI_Engine"}, "cutover.deployment: must be [NAMESPACE/]NAME"),
        ({"cutover.deployment": "a/b/c"}, "cutover.deployment"),
        ({"cutover.source": "nomad"}, "cutover.source"),
        ({"cutover.source": "fixed"}, "cutover.source fixed needs cutover.after"),
    ],
)
def test_bad_source_settings_are_one_line(overrides: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={}, overrides=overrides)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


# ---- the stand-in docker ---------------------------------------------------------------------------


def test_docker_restart_and_recreate(fake_docker: FakeDocker) -> None:
    first_id = fake_docker.run(CONTAINER, START)
    source = DockerSource(CONTAINER, host="unix:///run/user/1000/docker.sock", timeout=10)
    first = source.query()
    assert first.stream_id == StreamId(START * 1000 + 123, 0)
    assert first.identity_key is not None and first.identity_key.startswith(first_id)
    assert fake_docker.calls()[-1] == [
        "-H",
        "unix:///run/user/1000/docker.sock",
        "inspect",
        "--type",
        "container",
        "--format",
        "{{json .}}",
        CONTAINER,
    ]
    assert source.query().identity() == first.identity()  # nothing happened: the same cutover
    fake_docker.restart(CONTAINER, START + 60)
    restarted = source.query()
    assert restarted.identity() != first.identity()
    assert restarted.stream_id == StreamId((START + 60) * 1000 + 987, 0) and restarted.n_restarts == 1
    fake_docker.run(CONTAINER, START + 120, image="registry.example.com/quantum/ai-engine:2026.01.11")
    recreated = source.query()
    assert recreated.identity_key is not None and not recreated.identity_key.startswith(first_id)
    assert dict(recreated.provenance)["image"].endswith(":2026.01.11")
    fake_docker.stop(CONTAINER, START + 200)
    stopped = source.query()
    assert stopped.identity() == recreated.identity() and stopped.active_state == "exited"


@pytest.mark.parametrize(
    ("stderr", "reason"),
    [
        ("Error: No such object: quantum-ai-engine", "no_such_container"),
        (
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
            "Is the docker daemon running?",
            "no_daemon",
        ),
        (
            "permission denied while trying to connect to the Docker daemon socket at "
            'unix:///var/run/docker.sock: Get "http://%2Fvar%2Frun%2Fdocker.sock/v1.47/containers/json"',
            "permission_denied",
        ),
        ("error during connect: something else entirely", "docker_error"),
    ],
)
def test_docker_failures_have_reasons(fake_docker: FakeDocker, stderr: str, reason: str) -> None:
    fake_docker.fail(stderr)
    found = unavailable(lambda: query_container(CONTAINER, timeout=10))
    assert found.reason == reason and stderr.splitlines()[0][:40] in found.message


def test_docker_unknown_container_missing_cli_garbage_and_hang(
    fake_docker: FakeDocker, tmp_path: Path
) -> None:
    assert unavailable(lambda: query_container("nope", timeout=10)).reason == "no_such_container"
    assert (
        unavailable(lambda: query_container(CONTAINER, docker=str(tmp_path / "none"))).reason
        == "docker_missing"
    )
    fake_docker.run(CONTAINER, START)
    for garbage in ("<html>502 Bad Gateway</html>", "", "[]", "[1, 2]", '"a string"', "{}"):
        fake_docker.misbehave(stdout=garbage)
        assert unavailable(lambda: query_container(CONTAINER, timeout=10)).reason == "bad_output", garbage
    fake_docker.misbehave(hang=True)
    started = time.monotonic()
    found = unavailable(lambda: query_container(CONTAINER, timeout=0.5))
    assert found.reason == "timeout" and "0.5s" in found.message
    assert time.monotonic() - started < 30  # bounded by the timeout, not by the stand-in's hour


def test_docker_array_answer_is_read(fake_docker: FakeDocker) -> None:
    """An old CLI ignoring --format prints the documented array: one object in it is still the answer."""
    fake_docker.run(CONTAINER, START)
    wrapped = [fake_docker.containers[CONTAINER]]
    fake_docker.misbehave(stdout=json.dumps(wrapped))
    assert query_container(CONTAINER, timeout=10).stream_id == StreamId(START * 1000 + 123, 0)


# ---- the stand-in kubectl --------------------------------------------------------------------------


def test_rollout_over_three_polls(fake_cluster: FakeCluster) -> None:
    source = KubernetesSource(TARGET, timeout=10)
    before = source.query()
    assert before.rollout is not None and before.rollout.complete
    assert fake_cluster.calls() == [
        ["get", "deployments.apps", DEPLOYMENT, "-n", NAMESPACE, "-o", "json"],
        ["get", "replicasets.apps", "-n", NAMESPACE, "-l", "app=ai-engine", "-o", "json"],
    ]
    new = fake_cluster.rollout(
        "registry.example.com/quantum/ai-engine:2026.01.10", START, "set image to 01.10"
    )
    fake_cluster.progress(updated=1)
    poll1 = source.query()
    assert poll1.identity() != before.identity()  # a new ReplicaSet: a new cutover
    assert poll1.stream_id == StreamId(START * 1000, 0)  # the ReplicaSet's creation
    assert poll1.rollout is not None and poll1.rollout.reason() == "rollout in progress: 1 of 2 pods updated"
    assert dict(poll1.provenance)["change_cause"] == "set image to 01.10"
    assert dict(poll1.provenance)["replicaset"] == new["metadata"]["name"]
    fake_cluster.progress(updated=2, old_ready=1)
    poll2 = source.query()
    assert poll2.identity() == poll1.identity() and poll2.rollout_in_progress
    fake_cluster.complete()
    poll3 = source.query()
    assert poll3.identity() == poll1.identity() and not poll3.rollout_in_progress
    assert poll3.stream_id == poll1.stream_id


def test_rollback_is_a_new_cutover_at_the_time_it_was_seen(fake_cluster: FakeCluster) -> None:
    clock = [float(START + 600)]
    source = KubernetesSource(TARGET, timeout=10, clock=lambda: clock[0])
    original = fake_cluster.current()
    fake_cluster.rollout("registry.example.com/quantum/ai-engine:bad", START)
    fake_cluster.complete()
    bad = source.query()
    assert bad.stream_id == StreamId(START * 1000, 0)
    fake_cluster.rollback(to=original)  # revision 3, the ReplicaSet of revision 1, created a day earlier
    clock[0] = START + 900.25
    back = source.query()
    assert back.identity() != bad.identity()
    assert back.label == "deployment quantum-trader/ai-engine revision 3"
    # its creationTimestamp would put a day of old and bad predictions in the post window
    assert back.stream_id == StreamId((START + 900) * 1000 + 250, 0)
    assert back.rollout_in_progress
    clock[0] = START + 1000
    fake_cluster.complete()
    assert source.query().stream_id == back.stream_id  # remembered: the cutover does not drift
    # A fresh source (a one-shot check, a daemon started after the rollback) cannot know when it happened.
    fresh = unavailable(KubernetesSource(TARGET, timeout=10).query)
    assert fresh.reason == "rollback_time_unknown" and "revision 3" in fresh.message


@pytest.mark.parametrize(
    ("forbidden", "verb"),
    [
        (["deployments"], 'cannot get resource "deployments"'),
        (["replicasets"], 'cannot list resource "replicasets"'),
    ],
)
def test_rbac_forbidden(fake_cluster: FakeCluster, forbidden: list[str], verb: str) -> None:
    fake_cluster.misbehave(forbidden=forbidden)
    found = unavailable(KubernetesSource(TARGET, timeout=10).query)
    assert found.reason == "forbidden" and verb in found.message


def test_kubectl_missing_not_found_garbage_hang_and_no_cluster(
    fake_cluster: FakeCluster, tmp_path: Path
) -> None:
    missing = unavailable(KubernetesSource(TARGET, kubectl=str(tmp_path / "none")).query)
    assert missing.reason == "kubectl_missing"
    assert unavailable(KubernetesSource(f"{NAMESPACE}/other", timeout=10).query).reason == "not_found"
    assert (
        unavailable(KubernetesSource(DEPLOYMENT, timeout=10).query).reason == "not_found"
    )  # namespace default
    for garbage in ("Unable to decode", "", "[]", '{"kind": "Pod"}'):
        fake_cluster.misbehave(stdout=garbage)
        assert unavailable(KubernetesSource(TARGET, timeout=10).query).reason == "bad_output", garbage
    fake_cluster.misbehave(
        stderr="The connection to the server 10.0.0.1:6443 was refused - "
        "did you specify the right host or port?"
    )
    assert unavailable(KubernetesSource(TARGET, timeout=10).query).reason == "no_cluster"
    fake_cluster.misbehave(stderr="error: You must be logged in to the server (Unauthorized)")
    assert unavailable(KubernetesSource(TARGET, timeout=10).query).reason == "kubectl_error"
    fake_cluster.misbehave(stderr="Unable to connect to the server: dial tcp 10.0.0.1:6443: i/o timeout")
    assert unavailable(KubernetesSource(TARGET, timeout=10).query).reason == "no_cluster"
    fake_cluster.misbehave(hang=True)
    found = unavailable(KubernetesSource(TARGET, timeout=0.5).query)
    assert found.reason == "timeout"
    fake_cluster.heal()
    assert KubernetesSource(TARGET, timeout=10).query().rollout is not None


def test_no_replicaset_at_the_revision_yet(fake_cluster: FakeCluster) -> None:
    fake_cluster.deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "7"
    fake_cluster.save()
    assert unavailable(KubernetesSource(TARGET, timeout=10).query).reason == "no_replicaset"


def test_a_spec_change_the_controller_has_not_seen_is_in_progress(fake_cluster: FakeCluster) -> None:
    fake_cluster.deployment["metadata"]["generation"] = 2  # kubectl set image, a moment ago
    fake_cluster.save()
    cutover = KubernetesSource(TARGET, timeout=10).query()
    assert cutover.rollout_in_progress and cutover.rollout is not None and not cutover.rollout.observed


# ---- the status page -------------------------------------------------------------------------------


def test_status_page_shows_a_container_cutover_escaped() -> None:
    inspected = fixture("docker_inspect_container.json")
    inspected["Config"]["Labels"] = {"org.opencontainers.image.revision": HOSTILE_MODEL}
    cutover = cutover_from_inspect(HOSTILE_UNIT, inspected)
    post, pre = build_windows({"xgb": "healthy"})
    settings = Settings.model_validate({"cutover": {"source": "docker"}})
    snap = snapshot(post, pre, cutover=cutover, settings=settings, source="docker")
    html = render_status_page(snap, NOW)
    page = Page(html)
    assert not {tag for tag, _ in page.tags} & {"script", "img", "iframe"}
    text = "".join(page.text)
    assert f"container {HOSTILE_UNIT}" in text and HOSTILE_MODEL in text  # escaped, intact
    assert "Docker" in text and "<script>" not in html
    rolling = Cutover(
        cutover.stream_id,
        "kubernetes",
        identity_key="r",
        label="deployment a/b revision 2",
        rollout=Rollout(replicas=2, updated=1, old_ready=1, observed=True),
    )
    page_text = "".join(Page(render_status_page(snapshot(post, pre, cutover=rolling), NOW)).text)
    assert "rollout in progress: 1 of 2 pods updated" in page_text
    assert "INSUFFICIENT_DATA" in page_text


def test_report_markdown_names_the_container_and_the_rollout() -> None:
    inspected = fixture("docker_inspect_container.json")
    cutover = cutover_from_inspect(CONTAINER, inspected)
    result = run_gate(healthy_events(300, cutover.stream_id.ms), cutover=cutover)
    markdown = render_markdown(gate_document(result, stream="s"))
    assert "- Deployment: container quantum-ai-engine (state running)" in markdown
    assert f"- Identity: `{cutover.identity_key}`" in markdown
    assert "- StartedAt: `2026-01-10T05:43:15.123456789Z`, RestartCount 0" in markdown
    assert "- label:org.opencontainers.image.revision: `4f2a9c1d`" in markdown
    assert "none, the cutover was unknown" not in markdown
    deployment = fixture("kubectl_deployment.json")
    state = rollout_state(deployment, owned_replicasets(deployment, fixture("kubectl_replicasets.json")))
    rolling = replace(cutover_from_rollout(TARGET, state), rollout=Rollout(2, 1, 1, True))
    markdown = render_markdown(
        gate_document(run_gate(healthy_events(300, START * 1000), cutover=rolling), stream="s")
    )
    assert "- Deployment: deployment quantum-trader/ai-engine revision 1" in markdown
    assert "- Rollout: rollout in progress: 1 of 2 pods updated" in markdown
    assert "- image:ai-engine: `registry.example.com/quantum/ai-engine:2026.01.09`" in markdown
