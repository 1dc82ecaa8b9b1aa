"""The kubernetes cutover source: the creation of a Deployment's current ReplicaSet, with the
rollout's progress (``kubectl get``).

The readers of kubectl's JSON (``label_selector``, ``owned_replicasets``, ``rollout_state``,
``cutover_from_rollout``) are pure; ``query_deployment`` runs the CLI (``cutover.run_tool``) and turns
every failure into ``CutoverUnavailable``; ``KubernetesSource`` is the ``CutoverSource``, with the
memory a rollback needs.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from quantum_gate.cutover import (
    MAX_PROVENANCE_LABELS,
    Cutover,
    CutoverUnavailable,
    Rollout,
    bounded,
    one_json_object,
    parse_rfc3339,
    run_tool,
)
from quantum_gate.streamids import StreamId, datetime_to_stream_id

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
CHANGE_CAUSE = "kubernetes.io/change-cause"
_SELECTOR_OPERATORS = {"In": "in", "NotIn": "notin"}


def split_deployment(value: str) -> tuple[str | None, str]:
    """``[NAMESPACE/]NAME`` -> (namespace or None for kubectl's current one, name)."""
    namespace, sep, name = value.rpartition("/")
    return (namespace if sep else None), name


def label_selector(deployment: Mapping[str, Any]) -> str:
    """The Deployment's ``spec.selector`` in kubectl's ``-l`` syntax."""
    spec = deployment.get("spec") if isinstance(deployment.get("spec"), Mapping) else {}
    selector = spec.get("selector") if isinstance(spec, Mapping) else None
    if not isinstance(selector, Mapping):
        raise CutoverUnavailable("bad_output", "the Deployment has no spec.selector")
    parts = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = ",".join(expression.get("values") or [])
        if operator in _SELECTOR_OPERATORS:
            parts.append(f"{key} {_SELECTOR_OPERATORS[operator]} ({values})")
        elif operator == "Exists":
            parts.append(str(key))
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
    if not parts:  # an empty selector matches every ReplicaSet: ownerReferences still filter them
        raise CutoverUnavailable("bad_output", "the Deployment's selector is empty")
    return ",".join(parts)


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    found = _meta(obj).get("annotations")
    return found if isinstance(found, Mapping) else {}


def _int(mapping: Mapping[str, Any] | None, key: str, default: int = 0) -> int:
    value = (mapping or {}).get(key, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def owned_replicasets(deployment: Mapping[str, Any], listing: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The ReplicaSets the Deployment owns (a selector can match others: ownerReferences decide)."""
    uid = _meta(deployment).get("uid")
    items = listing.get("items")
    if not isinstance(items, list):
        raise CutoverUnavailable("bad_output", "kubectl get replicasets: no items list")
    owned = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        owners = _meta(item).get("ownerReferences") or []
        if any(
            isinstance(o, Mapping) and o.get("uid") == uid and o.get("kind") == "Deployment" for o in owners
        ):
            owned.append(item)
    return owned


@dataclass(frozen=True, slots=True)
class RolloutState:
    """What the two kubectl answers say, before the cutover time is decided (a rollback needs memory)."""

    revision: str
    replicaset: str
    uid: str
    created: StreamId
    reused: bool  # the ReplicaSet existed before this revision: a rollback (`kubectl rollout undo`)
    rollout: Rollout
    provenance: tuple[tuple[str, str], ...]

    @property
    def identity_key(self) -> str:
        return f"revision {self.revision} {self.uid}"


def rollout_state(deployment: Mapping[str, Any], replicasets: list[Mapping[str, Any]]) -> RolloutState:
    """The ReplicaSet at the Deployment's revision, and how far the rollout to it has come."""
    revision = str(_annotations(deployment).get(REVISION) or "")
    if not revision:
        raise CutoverUnavailable("no_replicaset", "the Deployment has no revision yet")
    current = [rs for rs in replicasets if str(_annotations(rs).get(REVISION) or "") == revision]
    if len(current) != 1:
        raise CutoverUnavailable(
            "no_replicaset", f"{len(current)} ReplicaSets at the Deployment's revision {revision}, not 1"
        )
    new = current[0]
    created = _meta(new).get("creationTimestamp")
    if not isinstance(created, str):
        raise CutoverUnavailable("bad_output", "the ReplicaSet has no creationTimestamp")
    spec = deployment.get("spec") if isinstance(deployment.get("spec"), Mapping) else {}
    status = deployment.get("status") if isinstance(deployment.get("status"), Mapping) else {}
    old_ready = sum(_int(rs.get("status"), "readyReplicas") for rs in replicasets if rs is not new)
    rollout = Rollout(
        replicas=_int(spec, "replicas", 1),
        updated=_int(status, "updatedReplicas"),
        old_ready=old_ready,
        observed=_int(status, "observedGeneration") >= _int(_meta(deployment), "generation"),
    )
    return RolloutState(
        revision=revision,
        replicaset=bounded(_meta(new).get("name", "")),
        uid=bounded(_meta(new).get("uid", "")),
        created=parse_rfc3339(created, "ReplicaSet creationTimestamp"),
        reused=bool(_annotations(new).get(REVISION_HISTORY)),
        rollout=rollout,
        provenance=_rollout_provenance(deployment, new, revision),
    )


def _rollout_provenance(
    deployment: Mapping[str, Any], replicaset: Mapping[str, Any], revision: str
) -> tuple[tuple[str, str], ...]:
    found: list[tuple[str, str]] = [
        ("revision", revision),
        ("replicaset", bounded(_meta(replicaset).get("name", ""))),
        ("replicaset_uid", bounded(_meta(replicaset).get("uid", ""))),
    ]
    template = ((replicaset.get("spec") or {}).get("template") or {}).get("spec") or {}
    for container in (template.get("containers") or [])[:MAX_PROVENANCE_LABELS]:
        if isinstance(container, Mapping):
            found.append((f"image:{bounded(container.get('name'), 100)}", bounded(container.get("image"))))
    cause = _annotations(deployment).get(CHANGE_CAUSE) or _annotations(replicaset).get(CHANGE_CAUSE)
    if cause:
        found.append(("change_cause", bounded(cause)))
    return tuple(found)


def cutover_from_rollout(name: str, state: RolloutState, at: StreamId | None = None) -> Cutover:
    """The Cutover for the state; ``at`` replaces the ReplicaSet's creation (a rollback's time)."""
    return Cutover(
        stream_id=at or state.created,
        source="kubernetes",
        identity_key=state.identity_key,
        label=f"deployment {name} revision {state.revision}",
        provenance=state.provenance,
        rollout=state.rollout,
    )


def _kubectl_failure(stderr: str) -> CutoverUnavailable:
    text = stderr.strip()
    first = (text.splitlines()[0] if text else "no message")[:200]
    lowered = text.lower()
    if "forbidden" in lowered:
        return CutoverUnavailable("forbidden", f"kubectl: not allowed (RBAC): {first}")
    if "notfound" in lowered.replace(" ", "") or "not found" in lowered:
        return CutoverUnavailable("not_found", f"kubectl: {first}")
    unreachable = ("unable to connect", "connection to the server", "connection refused", "no configuration")
    if any(marker in lowered for marker in unreachable):
        return CutoverUnavailable("no_cluster", f"kubectl cannot reach the cluster: {first}")
    return CutoverUnavailable("kubectl_error", f"kubectl failed: {first}")


def query_deployment(
    deployment: str, kubectl: str = "kubectl", timeout: float = 5.0, cancel: threading.Event | None = None
) -> tuple[Mapping[str, Any], list[Mapping[str, Any]]]:
    """``kubectl get deployments.apps NAME -o json`` and the ReplicaSets it owns. The group is spelled
    out so an old ``extensions`` alias never answers instead."""
    binary = shutil.which(kubectl)
    if binary is None:
        raise CutoverUnavailable("kubectl_missing", f"{kubectl!r} not found on PATH")
    namespace, name = split_deployment(deployment)
    scope = ["-n", namespace] if namespace else []
    env = {**os.environ, "LC_ALL": "C"}
    get = [binary, "get", "deployments.apps", name, *scope, "-o", "json"]
    result = run_tool(get, env, timeout, "kubectl", cancel)
    if result.returncode != 0:
        raise _kubectl_failure(result.stderr)
    found = one_json_object(result.stdout, "kubectl get deployment")
    if not isinstance(found, Mapping) or found.get("kind") != "Deployment":
        raise CutoverUnavailable("bad_output", "kubectl get deployment did not return a Deployment")
    selector = label_selector(found)
    argv = [binary, "get", "replicasets.apps", *scope, "-l", selector, "-o", "json"]
    result = run_tool(argv, env, timeout, "kubectl", cancel)
    if result.returncode != 0:
        raise _kubectl_failure(result.stderr)
    listing = one_json_object(result.stdout, "kubectl get replicasets")
    if not isinstance(listing, Mapping):
        raise CutoverUnavailable("bad_output", "kubectl get replicasets did not return a list")
    return found, owned_replicasets(found, listing)


MAX_REMEMBERED_REVISIONS = 64


@dataclass
class KubernetesSource:
    """Remembers what it saw: a rollback reuses an old ReplicaSet whose creationTimestamp predates the
    rollback, so its cutover is the time this source first saw the new revision."""

    deployment: str
    kubectl: str = "kubectl"
    timeout: float = 5.0
    clock: Callable[[], float] = field(default=lambda: datetime.now(UTC).timestamp())
    kind: str = "kubernetes"
    seen: dict[str, StreamId] = field(default_factory=dict)
    cancel: threading.Event | None = None

    @property
    def target(self) -> str:
        return self.deployment

    def query(self) -> Cutover:
        found, replicasets = query_deployment(self.deployment, self.kubectl, self.timeout, self.cancel)
        state = rollout_state(found, replicasets)
        key = state.identity_key
        while len(self.seen) >= MAX_REMEMBERED_REVISIONS:  # bounded: the oldest revisions go first
            self.seen.pop(next(iter(self.seen)))
        if not state.reused:
            self.seen[key] = state.created
        elif key not in self.seen:
            if not self.seen:  # nothing seen before it: when the rollback happened is unknown
                raise CutoverUnavailable(
                    "rollback_time_unknown",
                    f"ReplicaSet {state.replicaset} was reused by a rollback to revision {state.revision}; "
                    "its creationTimestamp predates the rollback",
                )
            self.seen[key] = max(
                datetime_to_stream_id(datetime.fromtimestamp(self.clock(), UTC)), state.created
            )
        return cutover_from_rollout(self.deployment, state, self.seen[key])
