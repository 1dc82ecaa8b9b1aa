"""The docker cutover source: a container's ``State.StartedAt`` (``docker inspect``).

``cutover_from_inspect`` is pure; ``query_container`` runs the CLI (``cutover.run_tool``) and turns
every failure into ``CutoverUnavailable``; ``DockerSource`` is the ``CutoverSource``.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from quantum_gate.cutover import (
    MAX_PROVENANCE_LABELS,
    Cutover,
    CutoverUnavailable,
    bounded,
    one_json_object,
    parse_rfc3339,
    run_tool,
)

# Go's zero time (0001-01-01T00:00:00Z) is docker's StartedAt of a container that never started.
_GO_ZERO_DAY = "0001-01-01"


def cutover_from_inspect(container: str, inspected: Mapping[str, Any]) -> Cutover:
    """One container from ``docker inspect``: the cutover is ``State.StartedAt``. A restart keeps the
    ``Id`` and moves ``StartedAt``; a recreate changes the ``Id``: both change the identity."""
    state = inspected.get("State")
    container_id = inspected.get("Id")
    if not isinstance(state, Mapping) or not isinstance(container_id, str) or not container_id:
        raise CutoverUnavailable("bad_output", f"docker inspect {container}: no Id or State in the answer")
    started = state.get("StartedAt")
    if not isinstance(started, str) or not started or started.startswith(_GO_ZERO_DAY):
        raise CutoverUnavailable("never_started", f"container {container} has never started (no StartedAt)")
    stream_id = parse_rfc3339(started, "State.StartedAt")
    running = state.get("Running") is True
    status = state.get("Status") if isinstance(state.get("Status"), str) else None
    restarts = inspected.get("RestartCount")
    config = inspected.get("Config") if isinstance(inspected.get("Config"), Mapping) else {}
    provenance: list[tuple[str, str]] = [("container_id", container_id)]
    if isinstance(config, Mapping) and isinstance(config.get("Image"), str):
        provenance.append(("image", bounded(config["Image"])))
    if isinstance(inspected.get("Image"), str):
        provenance.append(("image_id", bounded(inspected["Image"])))
    labels = config.get("Labels") if isinstance(config, Mapping) else None
    if isinstance(labels, Mapping):
        # OCI labels first (they name the revision), then the rest, in a stable order, bounded
        ordered = sorted(
            labels.items(), key=lambda kv: (not str(kv[0]).startswith("org.opencontainers"), kv[0])
        )
        for key, value in ordered[:MAX_PROVENANCE_LABELS]:
            provenance.append((f"label:{bounded(key, 100)}", bounded(value)))
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
    result = run_tool(argv, {**os.environ, "LC_ALL": "C"}, timeout, "docker", cancel)
    if result.returncode != 0:
        raise _docker_failure(container, result.stderr)
    inspected = one_json_object(result.stdout, "docker inspect")
    if isinstance(inspected, list):  # without --format (or an old CLI) the answer is an array
        if len(inspected) != 1:
            raise CutoverUnavailable("bad_output", f"docker inspect returned {len(inspected)} objects, not 1")
        inspected = inspected[0]
    if not isinstance(inspected, Mapping):
        raise CutoverUnavailable("bad_output", "docker inspect did not return a JSON object")
    return cutover_from_inspect(container, inspected)


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
