"""The cutover: when the deployment under test started, as a stream ID, from one of four sources.

* ``systemd``: the unit's last start (``systemctl show``);
* ``docker``: the container's ``State.StartedAt`` (``docker inspect``);
* ``kubernetes``: the creation of the Deployment's current ReplicaSet, with the rollout's progress
  (``kubectl get``);
* ``fixed``: an operator-given time (``--after``).

Each source is a small object with ``query() -> Cutover`` (``CutoverSource``), built from the settings
by ``cutover_source``. The parsers (``parse_show_output``, ``cutover_from_properties``,
``cutover_from_inspect``, ``cutover_from_rollout``) are pure; the edge functions run the tools found on
PATH with an argv list, no shell, bounded time, and turn every failure into ``CutoverUnavailable``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from quantum_gate.streamids import (
    AmbiguousZoneError,
    StreamId,
    StreamIdError,
    cutover_to_stream_id,
    datetime_to_stream_id,
    parse_systemd_timestamp,
    stream_id_to_iso,
)

if TYPE_CHECKING:
    from quantum_gate.config import CutoverSettings

PROPERTIES = ("InvocationID", "ActiveEnterTimestamp", "ActiveState", "NRestarts")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class CutoverUnavailable(Exception):  # noqa: N818 - it is a state, not a programming error
    """The source could not tell the cutover; ``reason`` is a short bounded label for metrics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class Rollout:
    """A Kubernetes Deployment's rollout as the cutover saw it. While it is in progress, old and new
    pods both write to the stream, so the gate can never PASS (gate.verdict)."""

    replicas: int  # spec.replicas: the pods the Deployment wants
    updated: int  # status.updatedReplicas: pods that run the current template
    old_ready: int  # ready pods of the Deployment's older ReplicaSets, still writing predictions
    observed: bool  # the controller has seen the Deployment's current generation

    @property
    def complete(self) -> bool:
        return self.observed and self.updated >= self.replicas and self.old_ready == 0

    def reason(self) -> str:
        """One line for the verdict's reasons: "rollout in progress: 1 of 2 pods updated"."""
        if not self.observed:
            return "rollout in progress: the Deployment controller has not observed the new spec yet"
        text = f"rollout in progress: {self.updated} of {self.replicas} pods updated"
        if self.updated >= self.replicas and self.old_ready:
            text += f", {self.old_ready} old pod{'s' if self.old_ready != 1 else ''} still ready"
        return text

    def to_json(self) -> dict[str, object]:
        return {
            "complete": self.complete,
            "replicas": self.replicas,
            "updated": self.updated,
            "old_ready": self.old_ready,
            "observed": self.observed,
            "reason": None if self.complete else self.reason(),
        }


@dataclass(frozen=True, slots=True)
class Cutover:
    stream_id: StreamId
    source: str  # "after" (operator-fixed), "systemd", "docker" or "kubernetes"
    unit: str | None = None
    invocation_id: str | None = None
    active_enter_timestamp: str | None = None
    active_state: str | None = None
    n_restarts: int | None = None
    # docker and kubernetes: what makes "this deployment" (systemd's is the InvocationID)
    identity_key: str | None = None
    label: str | None = None  # "container quantum-ai-engine", "deployment quantum-trader/ai-engine rev 3"
    provenance: tuple[tuple[str, str], ...] = ()  # image, digest, labels, change-cause (bounded)
    rollout: Rollout | None = None  # kubernetes only

    @property
    def timestamp(self) -> str:
        return stream_id_to_iso(self.stream_id)

    @property
    def rollout_in_progress(self) -> bool:
        return self.rollout is not None and not self.rollout.complete

    def identity(self) -> tuple[str | None, StreamId]:
        """What makes a restart: a new InvocationID (container start, ReplicaSet) or a new start time."""
        return self.identity_key or self.invocation_id, self.stream_id

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "stream_id": str(self.stream_id),
            "timestamp": self.timestamp,
            "timestamp_seconds": self.stream_id.seconds,
            "source": self.source,
            "unit": self.unit,
            "invocation_id": self.invocation_id,
            "active_enter_timestamp": self.active_enter_timestamp,
            "active_state": self.active_state,
            "n_restarts": self.n_restarts,
        }
        # The docker and kubernetes keys only where they mean something: systemd's document is unchanged.
        if self.identity_key is not None:
            data["identity"] = self.identity_key
        if self.label is not None:
            data["label"] = self.label
        if self.provenance:
            data["provenance"] = dict(self.provenance)
        if self.rollout is not None:
            data["rollout"] = self.rollout.to_json()
        return data


def fixed_cutover(text: str) -> Cutover:
    """``--after``: any form ``cutover_to_stream_id`` accepts; raises StreamIdError with a reason."""
    return Cutover(stream_id=cutover_to_stream_id(text), source="after")


def parse_show_output(text: str) -> dict[str, str]:
    properties: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            properties[key.strip()] = value.strip()
    return properties


def parse_active_enter(value: str) -> datetime:
    """``@1768023795`` (--timestamp=unix) or ``Sat 2026-01-10 05:43:15 UTC`` (the human form)."""
    if value.startswith("@"):
        try:
            seconds = float(value[1:])
            return EPOCH + timedelta(seconds=seconds)
        except (ValueError, OverflowError):
            raise CutoverUnavailable("bad_output", f"unreadable ActiveEnterTimestamp {value!r}") from None
    try:
        return parse_systemd_timestamp(value)
    except AmbiguousZoneError as exc:  # CST, IST, Europe/Berlin: guessing would move the cutover by hours
        raise CutoverUnavailable("non_utc_timestamp", f"ActiveEnterTimestamp {value!r}: {exc}") from None
    except StreamIdError:
        raise CutoverUnavailable("bad_output", f"unreadable ActiveEnterTimestamp {value!r}") from None


def cutover_from_properties(unit: str, properties: Mapping[str, str]) -> Cutover:
    if "ActiveEnterTimestamp" not in properties:  # systemctl show -p always prints the line, maybe empty
        raise CutoverUnavailable("bad_output", "systemctl show printed no ActiveEnterTimestamp line")
    entered = properties["ActiveEnterTimestamp"]
    if not entered or entered in {"0", "n/a"}:
        raise CutoverUnavailable("never_started", f"unit {unit} has never started (no ActiveEnterTimestamp)")
    moment = parse_active_enter(entered)
    if moment == EPOCH:  # systemd's "never" is 0 µs, which some versions print as @0, not as an empty value
        raise CutoverUnavailable(
            "never_started", f"unit {unit} has never started (ActiveEnterTimestamp {entered})"
        )
    try:
        stream_id = datetime_to_stream_id(moment)
    except StreamIdError as exc:
        raise CutoverUnavailable("bad_output", str(exc)) from None
    restarts = properties.get("NRestarts", "")
    return Cutover(
        stream_id=stream_id,
        source="systemd",
        unit=unit,
        invocation_id=properties.get("InvocationID") or None,
        active_enter_timestamp=entered,
        active_state=properties.get("ActiveState") or None,
        n_restarts=int(restarts) if restarts.isdigit() else None,
    )


def _classify_failure(stderr: str) -> CutoverUnavailable:
    text = stderr.strip()
    first = text.splitlines()[0] if text else "no message"
    if "Failed to connect to bus" in text or "not been booted with systemd" in text:
        return CutoverUnavailable("no_bus", f"systemd is not reachable: {first}")
    return CutoverUnavailable("systemctl_error", f"systemctl failed: {first[:200]}")


def query_unit(
    unit: str, systemctl: str = "systemctl", timeout: float = 5.0, cancel: threading.Event | None = None
) -> Cutover:
    """Ask systemd for the unit's last start. Raises CutoverUnavailable with a bounded reason.

    ``cancel`` (the daemon's stop flag) ends a hanging query at once: systemctl and anything it started
    are killed and CutoverUnavailable("cancelled") is raised, so a SIGTERM never waits for systemd."""
    binary = shutil.which(systemctl)
    if binary is None:
        raise CutoverUnavailable("systemctl_missing", f"{systemctl!r} not found on PATH")
    env = {**os.environ, "TZ": "UTC", "LC_ALL": "C", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"}
    base = [binary, "show", unit, "-p", ",".join(PROPERTIES), "--no-pager"]
    result = _run([*base, "--timestamp=unix"], env, timeout, cancel=cancel)
    if result.returncode != 0 and "timestamp" in result.stderr:
        result = _run(base, env, timeout, cancel=cancel)  # systemd < 248 does not know --timestamp
    if result.returncode != 0:
        raise _classify_failure(result.stderr)
    return cutover_from_properties(unit, parse_show_output(result.stdout))


CANCEL_POLL_SECONDS = 0.1


def _run(
    argv: list[str],
    env: dict[str, str],
    timeout: float,
    tool: str = "systemctl",
    cancel: threading.Event | None = None,
) -> subprocess.CompletedProcess[str]:
    """``argv`` with a deadline; ``cancel`` (the daemon's stop flag) kills it at once."""
    try:  # a session of its own, so a kill reaches whatever a wrapper script started too
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        raise CutoverUnavailable(f"{tool}_error", f"cannot run {tool}: {exc.strerror or exc}") from None
    deadline = time.monotonic() + timeout
    with process:
        while True:
            left = deadline - time.monotonic()
            step = min(left, CANCEL_POLL_SECONDS) if cancel is not None else left
            try:
                stdout, stderr = process.communicate(timeout=max(step, 0.0))
                return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)
            except subprocess.TimeoutExpired:
                if cancel is not None and cancel.is_set():
                    _kill(process)
                    raise CutoverUnavailable("cancelled", f"{tool} query abandoned: stopping") from None
                if time.monotonic() >= deadline:
                    _kill(process)
                    raise CutoverUnavailable(
                        "timeout", f"{tool} did not answer within {timeout:g}s"
                    ) from None


def _kill(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(OSError):  # already gone
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


# ---- RFC 3339 times (docker's StartedAt, Kubernetes' creationTimestamp) ------------------------------

_RFC3339_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$"
)
_ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time: docker's StartedAt of a never-started container


def parse_rfc3339(value: str, what: str) -> StreamId:
    """``2026-01-10T05:43:15.123456789Z`` -> the stream ID of its millisecond (nanoseconds truncated,
    as the stream's own clock has milliseconds)."""
    match = _RFC3339_RE.match(value.strip())
    if not match:
        raise CutoverUnavailable("bad_output", f"unreadable {what} {value[:64]!r}")
    day, clock, fraction, zone = match.groups()
    micro = (fraction or "0")[:6].ljust(6, "0")
    offset = "+00:00" if zone in {"Z", "z"} else zone
    try:
        moment = datetime.fromisoformat(f"{day}T{clock}.{micro}{offset}")
        return datetime_to_stream_id(moment.astimezone(UTC))
    except (ValueError, OverflowError, StreamIdError):
        raise CutoverUnavailable("bad_output", f"unreadable {what} {value[:64]!r}") from None


def _bounded(text: object, limit: int = 200) -> str:
    return str(text)[:limit]


# ---- docker ------------------------------------------------------------------------------------------

# Labels kept as provenance: the OCI image annotations say which build runs; other labels are bounded.
MAX_PROVENANCE_LABELS = 16


def cutover_from_inspect(container: str, inspected: Mapping[str, Any]) -> Cutover:
    """One container from ``docker inspect``: the cutover is ``State.StartedAt``. A restart keeps the
    ``Id`` and moves ``StartedAt``; a recreate changes the ``Id``: both change the identity."""
    state = inspected.get("State")
    container_id = inspected.get("Id")
    if not isinstance(state, Mapping) or not isinstance(container_id, str) or not container_id:
        raise CutoverUnavailable("bad_output", f"docker inspect {container}: no Id or State in the answer")
    started = state.get("StartedAt")
    if not isinstance(started, str) or not started or started.startswith("0001-01-01"):
        raise CutoverUnavailable("never_started", f"container {container} has never started (no StartedAt)")
    stream_id = parse_rfc3339(started, "State.StartedAt")
    running = state.get("Running") is True
    status = state.get("Status") if isinstance(state.get("Status"), str) else None
    restarts = inspected.get("RestartCount")
    config = inspected.get("Config") if isinstance(inspected.get("Config"), Mapping) else {}
    provenance: list[tuple[str, str]] = [("container_id", container_id)]
    if isinstance(config, Mapping) and isinstance(config.get("Image"), str):
        provenance.append(("image", _bounded(config["Image"])))
    if isinstance(inspected.get("Image"), str):
        provenance.append(("image_id", _bounded(inspected["Image"])))
    labels = config.get("Labels") if isinstance(config, Mapping) else None
    if isinstance(labels, Mapping):
        # OCI labels first (they name the revision), then the rest, in a stable order, bounded
        ordered = sorted(
            labels.items(), key=lambda kv: (not str(kv[0]).startswith("org.opencontainers"), kv[0])
        )
        for key, value in ordered[:MAX_PROVENANCE_LABELS]:
            provenance.append((f"label:{_bounded(key, 100)}", _bounded(value)))
    return Cutover(
        stream_id=stream_id,
        source="docker",
        active_enter_timestamp=started,
        active_state=status or ("running" if running else "not running"),
        n_restarts=restarts if isinstance(restarts, int) and not isinstance(restarts, bool) else None,
        identity_key=f"{container_id}@{started}",
        label=f"container {container}",
        provenance=tuple(provenance),
    )


def _docker_failure(container: str, stderr: str) -> CutoverUnavailable:
    text = stderr.strip()
    first = (text.splitlines()[0] if text else "no message")[:200]
    lowered = text.lower()
    if "no such object" in lowered or "no such container" in lowered:
        return CutoverUnavailable("no_such_container", f"docker has no container {container!r}: {first}")
    if "permission denied" in lowered:
        return CutoverUnavailable("permission_denied", f"no access to the Docker socket: {first}")
    if "cannot connect to the docker daemon" in lowered or "is the docker daemon running" in lowered:
        return CutoverUnavailable("no_daemon", f"the Docker daemon is not reachable: {first}")
    return CutoverUnavailable("docker_error", f"docker inspect failed: {first}")


def query_container(
    container: str,
    docker: str = "docker",
    host: str | None = None,
    timeout: float = 5.0,
    cancel: threading.Event | None = None,
) -> Cutover:
    """``docker [-H HOST] inspect --type container --format '{{json .}}' NAME``."""
    binary = shutil.which(docker)
    if binary is None:
        raise CutoverUnavailable("docker_missing", f"{docker!r} not found on PATH")
    argv = [binary, *(["-H", host] if host else []), "inspect", "--type", "container"]
    argv += ["--format", "{{json .}}", container]
    result = _run(argv, {**os.environ, "LC_ALL": "C"}, timeout, "docker", cancel)
    if result.returncode != 0:
        raise _docker_failure(container, result.stderr)
    inspected = _one_json_object(result.stdout, "docker inspect")
    if isinstance(inspected, list):  # without --format (or an old CLI) the answer is an array
        if len(inspected) != 1:
            raise CutoverUnavailable("bad_output", f"docker inspect returned {len(inspected)} objects, not 1")
        inspected = inspected[0]
    if not isinstance(inspected, Mapping):
        raise CutoverUnavailable("bad_output", "docker inspect did not return a JSON object")
    return cutover_from_inspect(container, inspected)


def _one_json_object(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        shown = text.strip().splitlines()[0][:80] if text.strip() else "nothing"
        raise CutoverUnavailable("bad_output", f"{what} did not print JSON (got {shown!r})") from None


# ---- kubernetes ------------------------------------------------------------------------------------

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
        replicaset=_bounded(_meta(new).get("name", "")),
        uid=_bounded(_meta(new).get("uid", "")),
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
        ("replicaset", _bounded(_meta(replicaset).get("name", ""))),
        ("replicaset_uid", _bounded(_meta(replicaset).get("uid", ""))),
    ]
    template = ((replicaset.get("spec") or {}).get("template") or {}).get("spec") or {}
    for container in (template.get("containers") or [])[:MAX_PROVENANCE_LABELS]:
        if isinstance(container, Mapping):
            found.append((f"image:{_bounded(container.get('name'), 100)}", _bounded(container.get("image"))))
    cause = _annotations(deployment).get(CHANGE_CAUSE) or _annotations(replicaset).get(CHANGE_CAUSE)
    if cause:
        found.append(("change_cause", _bounded(cause)))
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
    result = _run(get, env, timeout, "kubectl", cancel)
    if result.returncode != 0:
        raise _kubectl_failure(result.stderr)
    found = _one_json_object(result.stdout, "kubectl get deployment")
    if not isinstance(found, Mapping) or found.get("kind") != "Deployment":
        raise CutoverUnavailable("bad_output", "kubectl get deployment did not return a Deployment")
    selector = label_selector(found)
    argv = [binary, "get", "replicasets.apps", *scope, "-l", selector, "-o", "json"]
    result = _run(argv, env, timeout, "kubectl", cancel)
    if result.returncode != 0:
        raise _kubectl_failure(result.stderr)
    listing = _one_json_object(result.stdout, "kubectl get replicasets")
    if not isinstance(listing, Mapping):
        raise CutoverUnavailable("bad_output", "kubectl get replicasets did not return a list")
    return found, owned_replicasets(found, listing)


# ---- sources -----------------------------------------------------------------------------------------


class CutoverSource(Protocol):
    """Where the cutover comes from: ``kind`` labels metrics and logs, ``target`` names the thing."""

    kind: str

    @property
    def target(self) -> str: ...

    def query(self) -> Cutover: ...


@dataclass
class FixedSource:
    text: str
    kind: str = "fixed"

    @property
    def target(self) -> str:
        return self.text

    def query(self) -> Cutover:
        return fixed_cutover(self.text)


@dataclass
class SystemdSource:
    unit: str
    systemctl: str = "systemctl"
    timeout: float = 5.0
    kind: str = "systemd"
    cancel: threading.Event | None = None  # the daemon's stop flag: a hung query is killed at once

    @property
    def target(self) -> str:
        return self.unit

    def query(self) -> Cutover:
        return query_unit(self.unit, self.systemctl, self.timeout, cancel=self.cancel)


@dataclass
class DockerSource:
    container: str
    docker: str = "docker"
    host: str | None = None
    timeout: float = 5.0
    kind: str = "docker"
    cancel: threading.Event | None = None

    @property
    def target(self) -> str:
        return self.container

    def query(self) -> Cutover:
        return query_container(self.container, self.docker, self.host, self.timeout, self.cancel)


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


def cutover_source(
    settings: CutoverSettings,
    clock: Callable[[], float] | None = None,
    cancel: threading.Event | None = None,
) -> CutoverSource:
    """The source the settings name; a fixed ``after`` wins (as it always has). ``cancel`` (the
    daemon's stop flag) kills a query in flight."""
    kind = settings.effective_source()
    timeout = settings.timeout_seconds
    if kind == "fixed":
        return FixedSource(settings.after or "")
    if kind == "docker":
        return DockerSource(settings.container, settings.docker, settings.docker_host, timeout, cancel=cancel)
    if kind == "kubernetes":
        source = KubernetesSource(settings.deployment, settings.kubectl, timeout, cancel=cancel)
        if clock is not None:
            source.clock = clock
        return source
    return SystemdSource(settings.unit, settings.systemctl, timeout, cancel=cancel)
