"""The process kit shared by the tests and the bench: ``free_port``, ``wait_until``, a private
``redis-server`` (``RedisServer``); the real daemon as a child process (``DaemonProcess``) is in
``bench/kit_daemon.py``.

It lives here, and imports nothing from pytest, so that ``python -m bench.run`` works from the
repository root without the test dependencies; the tests import it too (pytest puts the repository
root on ``sys.path``, see ``pythonpath`` in pyproject.toml), and ``tests/conftest.py`` wraps
``RedisServer`` so that a missing ``redis-server`` fails in CI and skips locally.

Every wait polls an observable against a deadline and says what it waited for; nothing sleeps blindly.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import redis

REPO = Path(__file__).resolve().parent.parent
EARLY_CUTOVER = "2020-01-01T00:00:00Z"  # every auto-ID entry a test or the bench writes is after it
MACHINE_REDIS_PORT = 6379  # the machine's own Redis: never ours
T = TypeVar("T")


def free_port() -> int:
    """A loopback TCP port nothing listens on right now (the kernel's choice, never 6379)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port != MACHINE_REDIS_PORT:
            return port


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float = 10.0,
    what: str = "condition",
    *,
    every: float = 0.02,
    ignore: tuple[type[BaseException], ...] = (),
    explain: Callable[[], str] | None = None,
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    Fails with an ``AssertionError`` naming ``what`` after ``timeout`` seconds (at least one poll is
    made); ``ignore`` lists exceptions that count as "not yet" (the last one is shown), ``explain``
    adds evidence to the failure. ``every`` is the polling cadence, not synchronisation.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
        except ignore as exc:
            last_error, value = exc, None
        if value:
            return value
        if time.monotonic() >= deadline:
            message = f"timed out after {timeout:g}s waiting for {what}"
            if last_error is not None:
                message += f" (last error: {last_error!r})"
            if explain is not None:
                message += "\n" + explain()
            raise AssertionError(message)
        time.sleep(every)


# ---- a private redis-server -------------------------------------------------------------------------


@dataclass
class RedisServer:
    """One private redis-server process on a free loopback port, no RDB snapshots; ``kill`` and
    ``start`` let fault tests take it away and bring it back."""

    directory: Path
    port: int = field(default_factory=free_port)
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def binary(self) -> str:
        found = shutil.which("redis-server")
        if found is None:
            raise RuntimeError("redis-server is not on PATH (apt-get install -y redis-server)")
        return found

    def start(self) -> None:
        binary = self.binary()
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--dir", str(self.directory), "--logfile", str(self.directory / "redis.log")]
        self.process = subprocess.Popen(
            [*argv, *self.extra_args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        process = self.process
        log = self.directory / "redis.log"
        failed = RuntimeError(f"redis-server on port {self.port} did not start; see {log}")
        try:  # an exit (a taken port, a bad argument) ends the wait early: redis.log says why
            wait_until(
                lambda: process.poll() is not None or self.admin().ping(),
                10,
                f"redis-server on port {self.port}",
                every=0.05,
                ignore=(redis.RedisError,),
            )
        except AssertionError:
            raise failed from None
        if process.poll() is not None:
            raise failed

    def admin(self) -> redis.Redis:
        """A client for the test or bench itself (it may write: only the product is read-only)."""
        return redis.Redis(port=self.port, socket_timeout=5)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


# ---- the daemon as a child process ------------------------------------------------------------------


RUNTIME_PREFIXES = (b"process_", b"python_")  # the process collector's, GC's and python_info


def without_runtime_families(text: bytes) -> bytes:
    """Exposition text without the process's own families, whose CPU seconds and GC counts move
    between two renders: what is left is the gate's, a function of the daemon's state alone."""
    kept = []
    for line in text.splitlines(keepends=True):
        parts = line.split(b" ", 3)
        name = parts[2] if line.startswith(b"# ") and len(parts) > 2 else line
        if not name.startswith(RUNTIME_PREFIXES):
            kept.append(line)
    return b"".join(kept)


def quantum_gate_argv() -> list[str]:
    script = Path(sys.executable).parent / "quantum-gate"
    return [str(script)] if script.exists() else [sys.executable, "-m", "quantum_gate"]


def base_env(**extra: str) -> dict[str, str]:
    """This process's environment without any QUANTUM_GATE_* leftovers, plus ``extra``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("QUANTUM_GATE_")}
    env.update(extra)
    return env
