"""Stand-in ``docker`` and ``kubectl`` (tests/standins/, first on PATH) and the state they answer from.

The objects start as the documented shapes in tests/fixtures/cutover/ and change the way the real
tools' objects do: ``docker restart`` keeps the Id and moves ``State.StartedAt`` (``RestartCount`` + 1);
a recreate brings a new Id; a rollout adds a ReplicaSet at the next revision and moves pods to it; a
rollback (``kubectl rollout undo``) gives an old ReplicaSet the next revision and a revision history.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

FIXTURES = REPO / "tests" / "fixtures" / "cutover"
STANDINS = REPO / "tests" / "standins"
NAMESPACE, DEPLOYMENT = "quantum-trader", "ai-engine"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def rfc3339(seconds: float, nanos: int = 0) -> str:
    """Docker's form: nanoseconds, Z."""
    moment = datetime.fromtimestamp(int(seconds), UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{nanos:09d}Z" if nanos else "Z")


def _write(path: Path, state: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(state), encoding="utf-8")
    temporary.replace(path)


def _calls(path: Path) -> list[list[str]]:
    calls = Path(f"{path}.calls")
    if not calls.exists():
        return []
    return [json.loads(line) for line in calls.read_text(encoding="utf-8").splitlines()]


def _install(bin_dir: Path, name: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    shutil.copy(STANDINS / name, bin_dir / name)
    (bin_dir / name).chmod(0o755)


# ---- docker ------------------------------------------------------------------------------------------


@dataclass
class FakeDocker:
    state_file: Path
    containers: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self) -> None:
        _write(self.state_file, {"containers": self.containers, **self.extra})

    def run(self, name: str, started: float, *, nanos: int = 123_456_789, image: str | None = None) -> str:
        """``docker run``: a new container (a new Id), started at ``started``."""
        obj = fixture("docker_inspect_container.json")
        obj["Id"] = hashlib.sha256(uuid.uuid4().bytes).hexdigest()
        obj["Name"] = f"/{name}"
        obj["State"]["StartedAt"] = rfc3339(started, nanos)
        obj["RestartCount"] = 0
        if image is not None:
            obj["Config"]["Image"] = image
        self.containers[name] = obj
        self.save()
        return str(obj["Id"])

    def restart(self, name: str, started: float, *, nanos: int = 987_654_321) -> None:
        """``docker restart`` (or the restart policy): same Id, new StartedAt, RestartCount + 1."""
        obj = self.containers[name]
        obj["State"].update(StartedAt=rfc3339(started, nanos), Running=True, Status="running")
        obj["RestartCount"] += 1
        self.save()

    def stop(self, name: str, finished: float) -> None:
        obj = self.containers[name]
        obj["State"].update(Running=False, Status="exited", ExitCode=0, FinishedAt=rfc3339(finished, 1))
        self.save()

    def fail(self, stderr: str, code: int = 1) -> None:
        self.extra = {"stderr": stderr, "exit": code}
        self.save()

    def misbehave(self, **extra: Any) -> None:
        self.extra = extra
        self.save()

    def heal(self) -> None:
        self.extra = {}
        self.save()

    def calls(self) -> list[list[str]]:
        return _calls(self.state_file)

    def answers(self) -> list[dict[str, Any]]:
        """Each StartedAt the stand-in reported, with the (epoch) time it reported it."""
        found = Path(f"{self.state_file}.answers")
        if not found.exists():
            return []
        return [json.loads(line) for line in found.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeDocker:
    bin_dir = tmp_path / "bin"
    _install(bin_dir, "docker")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    state = tmp_path / "docker-state.json"
    monkeypatch.setenv("FAKE_DOCKER_STATE", str(state))
    fake = FakeDocker(state)
    fake.save()
    return fake


# ---- kubectl ----------------------------------------------------------------------------------------


@dataclass
class FakeCluster:
    """One Deployment (quantum-trader/ai-engine, 2 replicas) and the ReplicaSets it owns."""

    state_file: Path
    deployment: dict[str, Any] = field(default_factory=lambda: fixture("kubectl_deployment.json"))
    replicasets: list[dict[str, Any]] = field(
        default_factory=lambda: fixture("kubectl_replicasets.json")["items"]
    )
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self) -> None:
        state = {"deployments": [self.deployment], "replicasets": self.replicasets, **self.extra}
        _write(self.state_file, state)

    @property
    def revision(self) -> int:
        return int(self.deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"])

    def current(self) -> dict[str, Any]:
        wanted = str(self.revision)
        return next(
            rs
            for rs in self.replicasets
            if rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == wanted
        )

    def created(self, created: float) -> None:
        """Move the first ReplicaSet's creation (and the Deployment's) to ``created``."""
        self.replicasets[0]["metadata"]["creationTimestamp"] = rfc3339(created)
        self.deployment["metadata"]["creationTimestamp"] = rfc3339(created)
        self.save()

    def rollout(self, image: str, created: float, cause: str | None = None) -> dict[str, Any]:
        """``kubectl set image``: a new ReplicaSet at the next revision, no pod moved yet."""
        new = copy.deepcopy(self.replicasets[0])
        template_hash = hashlib.sha256(image.encode()).hexdigest()[:10]
        meta = new["metadata"]
        meta.update(
            name=f"{DEPLOYMENT}-{template_hash}",
            uid=str(uuid.uuid4()),
            creationTimestamp=rfc3339(created),
            labels={"app": "ai-engine", "pod-template-hash": template_hash},
        )
        meta["annotations"] = {
            **meta["annotations"],
            "deployment.kubernetes.io/revision": str(self.revision + 1),
        }
        meta["annotations"].pop("deployment.kubernetes.io/revision-history", None)
        new["spec"]["template"]["spec"]["containers"][0]["image"] = image
        new["status"] = {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0, "observedGeneration": 1}
        self.replicasets.append(new)
        self._point_at(new, cause)
        return new

    def rollback(self, to: dict[str, Any]) -> None:
        """``kubectl rollout undo``: the old ReplicaSet gets the next revision and a revision history."""
        annotations = to["metadata"]["annotations"]
        annotations["deployment.kubernetes.io/revision-history"] = annotations[
            "deployment.kubernetes.io/revision"
        ]
        annotations["deployment.kubernetes.io/revision"] = str(self.revision + 1)
        self._point_at(to, None)

    def _point_at(self, rs: dict[str, Any], cause: str | None) -> None:
        meta = self.deployment["metadata"]
        meta["generation"] += 1
        meta["annotations"]["deployment.kubernetes.io/revision"] = rs["metadata"]["annotations"][
            "deployment.kubernetes.io/revision"
        ]
        if cause is not None:
            meta["annotations"]["kubernetes.io/change-cause"] = cause
        self.deployment["spec"]["template"]["spec"]["containers"][0]["image"] = rs["spec"]["template"][
            "spec"
        ]["containers"][0]["image"]
        self.deployment["status"]["observedGeneration"] = meta["generation"]
        self.progress(updated=0)

    def progress(self, updated: int, old_ready: int | None = None) -> None:
        """Pods moved so far: ``updated`` run the current template; ``old_ready`` old ones still ready
        (by default what a rolling update with 2 replicas leaves: the rest)."""
        replicas = int(self.deployment["spec"]["replicas"])
        old = replicas - updated if old_ready is None else old_ready
        current = self.current()
        current["status"].update(replicas=updated, readyReplicas=updated, availableReplicas=updated)
        others = [rs for rs in self.replicasets if rs is not current]
        for index, rs in enumerate(others):
            ready = old if index == len(others) - 1 else 0
            rs["status"].update(replicas=ready, readyReplicas=ready, availableReplicas=ready)
        self.deployment["status"].update(
            updatedReplicas=updated,
            replicas=updated + old,
            readyReplicas=updated + old,
            availableReplicas=updated + old,
        )
        self.save()

    def complete(self) -> None:
        self.progress(updated=int(self.deployment["spec"]["replicas"]), old_ready=0)

    def misbehave(self, **extra: Any) -> None:
        self.extra = extra
        self.save()

    def heal(self) -> None:
        self.extra = {}
        self.save()

    def calls(self) -> list[list[str]]:
        return _calls(self.state_file)


@pytest.fixture
def fake_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    bin_dir = tmp_path / "bin"
    _install(bin_dir, "kubectl")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    state = tmp_path / "kubectl-state.json"
    monkeypatch.setenv("FAKE_KUBECTL_STATE", str(state))
    cluster = FakeCluster(state)
    cluster.save()
    return cluster
