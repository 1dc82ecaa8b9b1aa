"""Cutover provenance: what was deployed at the cutover, and the notes that go with it.

``capture_deployment_info`` is the one edge function here: it runs the configured
``report.deployment_info`` command (an argv list, never a shell; e.g.
``["git", "-C", "/opt/engine", "rev-parse", "HEAD"]``) with bounded time and output size. The daemon
calls it when it adopts a cutover, ``check`` when it evaluates. Everything else is pure.

The unit, InvocationID, ActiveEnterTimestamp and stream ID come with the cutover itself
(``Cutover.to_json``, the document's ``cutover`` key); this module adds the ``deployment`` and
``notes`` keys.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

log = structlog.get_logger("quantum_gate")
_READ_CHUNK = 65_536
STDERR_KEEP = 300


@dataclass(frozen=True)
class DeploymentInfo:
    argv: tuple[str, ...]
    captured_at: float
    duration_seconds: float
    returncode: int | None
    output: str
    truncated: bool
    error: str | None  # why the output is not to be trusted: timeout, exit status, cannot run

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        return {
            "argv": list(self.argv),
            "captured_at": datetime.fromtimestamp(self.captured_at, tz=UTC)
            .isoformat(timespec="seconds")
            .replace("+00:00", "Z"),
            "duration_seconds": round(self.duration_seconds, 3),
            "returncode": self.returncode,
            "output": self.output,
            "truncated": self.truncated,
            "error": self.error,
        }


def capture_deployment_info(
    argv: Sequence[str],
    *,
    timeout: float,
    max_bytes: int,
    clock: Callable[[], float] = time.time,
) -> DeploymentInfo | None:
    """Run ``argv`` (no shell, stdin closed), keep at most ``max_bytes`` of stdout, stop it after
    ``timeout`` seconds or once it writes more than that. None when nothing is configured.

    Never raises: a command that cannot run, fails or hangs gives a DeploymentInfo with ``error``.
    """
    if not argv:
        return None
    argv = tuple(argv)
    captured_at = clock()
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, so a timeout can stop its children too
        )
    except OSError as exc:
        return DeploymentInfo(argv, captured_at, 0.0, None, "", False, f"cannot run: {exc.strerror or exc}")
    with process:  # closes both pipes and reaps the process on the way out
        stdout, stderr, truncated, timed_out = _bounded_read(process, timeout, max_bytes)
        if truncated or timed_out:
            _stop(process)
        try:
            returncode: int | None = process.wait(timeout=max(timeout - (time.monotonic() - started), 0.1))
        except subprocess.TimeoutExpired:
            _stop(process)
            timed_out, returncode = True, None
    error: str | None = None
    if timed_out:
        error = f"timed out after {timeout:g}s"
        returncode = None
    elif truncated:
        error = None  # the first max_bytes are kept; that is the configured bound, not a failure
    elif returncode != 0:
        detail = stderr.decode("utf-8", "replace").strip().splitlines()
        error = f"exit status {returncode}" + (f": {detail[0][:STDERR_KEEP]}" if detail else "")
    return DeploymentInfo(
        argv=argv,
        captured_at=captured_at,
        duration_seconds=time.monotonic() - started,
        returncode=returncode,
        output=stdout[:max_bytes].decode("utf-8", "replace").rstrip(),
        truncated=truncated,
        error=error,
    )


def _bounded_read(
    process: subprocess.Popen[bytes], timeout: float, max_bytes: int
) -> tuple[bytes, bytes, bool, bool]:
    """Read stdout (up to max_bytes + 1) and stderr (a little) until EOF, the cap, or the deadline."""
    assert process.stdout is not None and process.stderr is not None
    deadline = time.monotonic() + timeout
    out, err = bytearray(), bytearray()
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ, out)
        selector.register(process.stderr, selectors.EVENT_READ, err)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return bytes(out), bytes(err), False, True
            for key, _ in selector.select(remaining):
                chunk = os.read(key.fd, _READ_CHUNK)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                buffer: bytearray = key.data
                limit = max_bytes + 1 if buffer is out else 4 * STDERR_KEEP
                buffer.extend(chunk[: max(limit - len(buffer), 0)])
                if buffer is out and len(out) > max_bytes:
                    return bytes(out), bytes(err), True, False
    return bytes(out), bytes(err), False, False


def _stop(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()
    process.wait(timeout=5)


def capture_logged(
    argv: Sequence[str], *, timeout: float, max_bytes: int, cutover_id: str | None = None
) -> DeploymentInfo | None:
    """``capture_deployment_info`` plus one log line (``deployment.captured`` or ``deployment.failed``)."""
    info = capture_deployment_info(argv, timeout=timeout, max_bytes=max_bytes)
    if info is None:
        return None
    fields: dict[str, Any] = {
        "argv0": info.argv[0],
        "cutover_id": cutover_id,
        "returncode": info.returncode,
        "seconds": round(info.duration_seconds, 3),
    }
    if info.ok:
        log.info(
            "deployment.captured", output=info.output.splitlines()[0][:120] if info.output else "", **fields
        )
    else:
        log.warning("deployment.failed", error=info.error, **fields)
    return info


def provenance_json(
    deployment: DeploymentInfo | None,
    config_notes: str | None,
    operator_note: str | None,
    *,
    configured: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``deployment`` and ``notes`` keys of the gate document. ``deployment`` is null when no
    command is configured; when one is (``configured``) but nothing was captured for this cutover yet,
    it says so in ``error`` instead of showing another cutover's output."""
    document: dict[str, Any] | None = deployment.to_json() if deployment is not None else None
    if document is None and configured:
        document = {
            "argv": list(configured),
            "captured_at": None,
            "duration_seconds": None,
            "returncode": None,
            "output": "",
            "truncated": False,
            "error": "not captured yet for this cutover",
        }
    return {
        "deployment": document,
        "notes": {"config": config_notes or None, "operator": operator_note or None},
    }
