"""The cutover: the engine unit's last start, from ``systemctl show``, as a stream ID.

``parse_show_output`` and ``cutover_from_properties`` are pure; ``query_unit`` is the one edge function
that runs ``systemctl`` (found on PATH, argv list, no shell, bounded time, ``TZ=UTC`` so the human
timestamp form comes back in UTC where systemd honours it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

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
    """systemd could not tell the cutover; ``reason`` is a short bounded label for metrics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class Cutover:
    stream_id: StreamId
    source: str  # "after" (operator-fixed) or "systemd"
    unit: str | None = None
    invocation_id: str | None = None
    active_enter_timestamp: str | None = None
    active_state: str | None = None
    n_restarts: int | None = None

    @property
    def timestamp(self) -> str:
        return stream_id_to_iso(self.stream_id)

    def identity(self) -> tuple[str | None, StreamId]:
        """What makes a restart: a new InvocationID or a new start time."""
        return self.invocation_id, self.stream_id

    def to_json(self) -> dict[str, object]:
        return {
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
    result = _run([*base, "--timestamp=unix"], env, timeout, cancel)
    if result.returncode != 0 and "timestamp" in result.stderr:
        result = _run(base, env, timeout, cancel)  # systemd < 248 does not know --timestamp
    if result.returncode != 0:
        raise _classify_failure(result.stderr)
    return cutover_from_properties(unit, parse_show_output(result.stdout))


CANCEL_POLL_SECONDS = 0.1


def _run(
    argv: list[str], env: dict[str, str], timeout: float, cancel: threading.Event | None = None
) -> subprocess.CompletedProcess[str]:
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
        raise CutoverUnavailable("systemctl_error", f"cannot run systemctl: {exc.strerror or exc}") from None
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
                    raise CutoverUnavailable("cancelled", "systemctl query abandoned: stopping") from None
                if time.monotonic() >= deadline:
                    _kill(process)
                    raise CutoverUnavailable(
                        "timeout", f"systemctl did not answer within {timeout:g}s"
                    ) from None


def _kill(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(OSError):  # already gone
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
