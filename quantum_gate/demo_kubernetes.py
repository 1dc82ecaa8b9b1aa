"""``quantum-gate demo --engine kubernetes``: the same daemon and simulated engine, deployed as the
Kubernetes Deployment ``quantum-trader/ai-engine`` (2 replicas) instead of a systemd unit.

A stand-in ``kubectl`` first on PATH answers ``kubectl get deployments.apps`` and ``kubectl get
replicasets.apps`` from two JSON files that the simulator rewrites as it rolls out, in the shapes the
real kubectl prints. The story: revision 1 runs the regression (nhits pinned at 0.65) and the gate
FAILs; the patch rolls out pod by pod, old and new pods both write and the gate says "rollout in
progress" instead of a verdict; once the rollout completes it PASSes; then someone runs ``kubectl
rollout undo``, the old ReplicaSet comes back as revision 3 (a new cutover at the time it is seen)
and, 200 events later, the gate FAILs again.
"""

from __future__ import annotations

import json
import shlex
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from quantum_gate.demo_story import Act, Simulator

NAMESPACE, NAME, REPLICAS = "quantum-trader", "ai-engine", 2
TARGET = f"{NAMESPACE}/{NAME}"
IMAGES = {"regressed": "ai-engine:2026.01.09", "patched": "ai-engine:2026.01.10-patch"}
STAGE_SECONDS = 6.0  # each step of a rollout at --speed 1 (one more pod moved)
MIXED_PER_SECOND = 0.5  # entries per second at --speed 1 while old and new pods both write

STANDIN_KUBECTL = """#!/bin/sh
# quantum-gate demo: a stand-in for kubectl. It answers `kubectl get` for the simulated Deployment
# quantum-trader/ai-engine from files that the simulator rewrites as it rolls out.
[ "$1" = get ] || {{ echo "demo kubectl: only 'get' is simulated" >&2; exit 1; }}
case "$2" in
  deployments.apps) exec cat {state}/deployment.json ;;
  replicasets.apps) exec cat {state}/replicasets.json ;;
esac
echo "demo kubectl: unknown resource $2" >&2
exit 1
"""

STORY = (
    Act("regressed", 24, 1.2),
    Act("patched", 200, 2.5, restart="kubectl set image: the patch rolls out, one pod at a time"),
    Act("patched", 60, 2.5, min_seconds=4.0),
    Act("regressed", 200, 2.5, restart="kubectl rollout undo: back to revision 1's ReplicaSet, by mistake"),
    Act("regressed", None, 0.5),
)


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SimulatedDeployment:
    """The Deployment and its ReplicaSets as the stand-in ``kubectl`` reports them."""

    def __init__(self, directory: Path) -> None:
        self.bin_dir = directory / "bin"
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir = directory / "cluster"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        script = self.bin_dir / "kubectl"
        script.write_text(STANDIN_KUBECTL.format(state=shlex.quote(str(self.state_dir))), encoding="utf-8")
        script.chmod(0o755)
        self.uid = str(uuid.uuid4())
        self.generation = 0
        self.revision = 0
        self.replicasets: list[dict[str, Any]] = []
        self.current: dict[str, Any] | None = None
        self.updated = 0

    def start(self, entered: int) -> None:
        """Revision 1 (the regression), created at ``entered`` and fully rolled out."""
        self.rollout("regressed", entered)
        self.progress(REPLICAS, 0)

    def rollout(self, mode: str, created: float) -> None:
        """A new revision: a new ReplicaSet (``kubectl set image``), or an old one reused
        (``kubectl rollout undo``) when ``mode`` already has one."""
        self.revision += 1
        self.generation += 1
        reused = next((rs for rs in self.replicasets if rs["mode"] == mode), None)
        if reused is None:
            reused = {"mode": mode, "name": f"{NAME}-{uuid.uuid4().hex[:10]}", "uid": str(uuid.uuid4())}
            reused.update(created=_stamp(created), history=[])
            self.replicasets.append(reused)
        else:
            reused["history"].append(reused["revision"])
        reused["revision"] = self.revision
        self.current = reused
        self.progress(0, REPLICAS)

    def progress(self, updated: int, old_ready: int) -> None:
        self.updated = updated
        for rs in self.replicasets:
            rs["ready"] = updated if rs is self.current else 0
        older = [rs for rs in self.replicasets if rs is not self.current]
        if older:
            older[-1]["ready"] = old_ready
        self._write()

    def _write(self) -> None:
        # The ReplicaSets first: the Deployment's revision must never point at one not yet written.
        items = [self._replicaset(rs) for rs in self.replicasets]
        self._replace("replicasets.json", {"apiVersion": "v1", "kind": "List", "items": items})
        self._replace("deployment.json", self._deployment())

    def _replace(self, name: str, document: dict[str, Any]) -> None:
        temporary = self.state_dir / f".{name}.tmp"
        temporary.write_text(json.dumps(document), encoding="utf-8")
        temporary.replace(self.state_dir / name)

    def _deployment(self) -> dict[str, Any]:
        current = self.current or {}
        mode = str(current.get("mode", "regressed"))
        ready = sum(int(rs.get("ready", 0)) for rs in self.replicasets)
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": NAME,
                "namespace": NAMESPACE,
                "uid": self.uid,
                "generation": self.generation,
                "annotations": {
                    "deployment.kubernetes.io/revision": str(self.revision),
                    "kubernetes.io/change-cause": f"image {IMAGES[mode]}",
                },
            },
            "spec": {
                "replicas": REPLICAS,
                "selector": {"matchLabels": {"app": NAME}},
                "template": _template(mode),
            },
            "status": {
                "observedGeneration": self.generation,
                "replicas": ready,
                "updatedReplicas": self.updated,
                "readyReplicas": ready,
                "availableReplicas": ready,
            },
        }

    def _replicaset(self, rs: dict[str, Any]) -> dict[str, Any]:
        annotations = {"deployment.kubernetes.io/revision": str(rs["revision"])}
        if rs["history"]:
            annotations["deployment.kubernetes.io/revision-history"] = ",".join(map(str, rs["history"]))
        return {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": rs["name"],
                "namespace": NAMESPACE,
                "uid": rs["uid"],
                "creationTimestamp": rs["created"],
                "labels": {"app": NAME},
                "annotations": annotations,
                "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME, "uid": self.uid}
                ],
            },
            "spec": {"replicas": rs["ready"], "template": _template(rs["mode"])},
            "status": {
                "replicas": rs["ready"],
                "readyReplicas": rs["ready"],
                "availableReplicas": rs["ready"],
            },
        }


def _template(mode: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": NAME}},
        "spec": {"containers": [{"name": NAME, "image": f"registry.example.com/quantum/{IMAGES[mode]}"}]},
    }


class KubernetesSimulator(Simulator):
    """Plays ``STORY``; a restart is a rollout: one pod moves per step, and while old and new pods both
    run, each entry comes from an old or a new pod in proportion."""

    backlog_modes = ("patched", "regressed")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deployed = "regressed"

    def run(self) -> None:
        self.story = STORY
        super().run()

    def _restart(self, story: str) -> None:
        deployment = self.unit
        if not isinstance(deployment, SimulatedDeployment):
            raise TypeError("KubernetesSimulator needs a SimulatedDeployment")
        target = next(act.mode for act in STORY if act.restart == story)
        self.say(f"engine: {story}")
        old, self.deployed = self.deployed, target
        deployment.rollout(target, datetime.now(UTC).timestamp())
        for updated, old_ready in ((1, 1), (2, 1)):
            deployment.progress(updated, old_ready)
            self.say(f"rollout: {updated} of {REPLICAS} pods updated, {old_ready} old pod still ready")
            share = updated / (updated + old_ready)
            self._play_mixed(old, target, share, max(STAGE_SECONDS / self.speed, 2.5))
        deployment.progress(REPLICAS, 0)
        self.say("rollout complete: only new pods write now")

    def _play_mixed(self, old: str, new: str, new_share: float, seconds: float) -> None:
        # Slowly: a real rollout takes a minute or two, a few entries next to the 200 the gate needs.
        # Here the steps must last long enough to be seen, so the mixed entries come at the quiet rate.
        rate = MIXED_PER_SECOND * self.speed
        deadline = datetime.now(UTC).timestamp() + seconds
        while not self.stop.is_set() and datetime.now(UTC).timestamp() < deadline:
            mode = new if self.engine.rng.random() < new_share else old
            self._xadd(self.engine.ai_entry(mode, datetime.now(UTC)))
            self.written += 1
            self.stop.wait(self.engine.rng.uniform(0.5, 1.5) / rate)


def banner_story(clock: Any, times: list[float]) -> list[str]:
    return [
        f"  {clock(times[0])}  revision 1 of {TARGET} (2 pods) runs a regression: nhits pinned at 0.65. "
        "The gate FAILs.",
        f"  {clock(times[1])}  kubectl set image: revision 2 rolls out pod by pod (a new cutover, "
        "quantum_gate_cutovers_total 2). Old and new pods both write: the verdict is INSUFFICIENT_DATA, "
        '"rollout in progress: 1 of 2 pods updated", quantum_gate_rollout_complete 0.',
        f"  {clock(times[2])}  the rollout completes: the gate PASSes and writes a report.",
        f"  {clock(times[3])}  kubectl rollout undo: revision 1's ReplicaSet returns as revision 3, a new "
        "cutover at the time it is seen; the gate FAILs again.",
    ]
