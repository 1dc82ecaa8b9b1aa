"""The cutover: when the deployment under test started, as a stream ID, from one of four sources.

* ``systemd``: the unit's last start (``systemctl show``), here;
* ``docker``: the container's ``State.StartedAt`` (``docker inspect``), in ``cutover_docker``;
* ``kubernetes``: the creation of the Deployment's current ReplicaSet, with the rollout's progress
  (``kubectl get``), in ``cutover_kubernetes``;
* ``fixed``: an operator-given time (``--after``), here.

Each source is a small object with ``query() -> Cutover`` (``CutoverSource``); ``cutover_sources``
builds the one the settings name. This module holds what every source shares: the ``Cutover`` it
yields, ``CutoverUnavailable``, ``run_tool`` (the tool found on PATH run with an argv list, no shell,
bounded time, every failure a ``CutoverUnavailable``) and the readers of the JSON tools' answers
(``parse_rfc3339``, ``one_json_object``). The parsers (``parse_show_output``,
``cutover_from_properties``, and the docker and kubernetes ones) are pure.
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
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from quantum_gate.streamids import (
    AmbiguousZoneError,
    StreamId,
    StreamIdError,
    cutover_to_stream_id,
    datetime_to_stream_id,
    parse_systemd_timestamp,
    stream_id_to_iso,
)

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


# ---- the source interface -------------------------------------------------------------------------


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


# ---- running a tool -------------------------------------------------------------------------------

CANCEL_POLL_SECONDS = 0.1


def run_tool(
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


# ---- reading the JSON tools' answers (docker's StartedAt, Kubernetes' creationTimestamp) -----------

_RFC3339_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$"
)


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


def bounded(text: object, limit: int = 200) -> str:
    """A value from a tool's answer as kept in provenance: text, at most ``limit`` characters."""
    return str(text)[:limit]


def one_json_object(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        shown = text.strip().splitlines()[0][:80] if text.strip() else "nothing"
        raise CutoverUnavailable("bad_output", f"{what} did not print JSON (got {shown!r})") from None


# Labels kept as provenance (docker's labels, a pod template's images): bounded.
MAX_PROVENANCE_LABELS = 16


# ---- systemd --------------------------------------------------------------------------------------


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
    result = run_tool([*base, "--timestamp=unix"], env, timeout, cancel=cancel)
    if result.returncode != 0 and "timestamp" in result.stderr:
        result = run_tool(base, env, timeout, cancel=cancel)  # systemd < 248 does not know --timestamp
    if result.returncode != 0:
        raise _classify_failure(result.stderr)
    return cutover_from_properties(unit, parse_show_output(result.stdout))


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
