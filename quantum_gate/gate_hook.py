"""The ``daemon.on_gate_complete`` hook (docs/configuration.md): the operator's program, run once per
completed gate on a thread of its own, with an environment that holds no secret."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Mapping
from typing import Any

import structlog

from quantum_gate.config import DaemonSettings

log = structlog.get_logger("quantum_gate")

# What the on_gate_complete hook inherits from the daemon's environment (docs/configuration.md): enough
# to run a program (PATH, HOME, locale, zone, temp folder, user), never QUANTUM_GATE_REDIS_URL (it may
# hold a password), QUANTUM_GATE_REDIS_PASSWORD or CREDENTIALS_DIRECTORY.
HOOK_INHERITED = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR")


def hook_environment(environ: Mapping[str, str], verdict: str, report: Any) -> dict[str, str]:
    env = {name: value for name, value in environ.items() if name in HOOK_INHERITED or name.startswith("LC_")}
    env.update(QUANTUM_GATE_VERDICT=verdict, QUANTUM_GATE_REPORT=str(report or ""))
    return env


def run_hook(settings: DaemonSettings, environ: Mapping[str, str], path: Any, verdict: str) -> None:
    """Start the hook, if one is configured, and return at once (a thread waits for it, bounded)."""
    argv = list(settings.on_gate_complete)
    if not argv:
        return
    env = hook_environment(environ, verdict, path)
    timeout = settings.on_gate_complete_timeout_seconds

    def run() -> None:
        try:
            done = subprocess.run(argv, env=env, timeout=timeout, check=False, capture_output=True)
            log.info("hook.finished", argv0=argv[0], returncode=done.returncode)
        except subprocess.TimeoutExpired:
            log.error("hook.timeout", argv0=argv[0], timeout_seconds=timeout)
        except OSError as exc:
            log.error("hook.failed", argv0=argv[0], error=exc.strerror or str(exc))

    threading.Thread(target=run, name="on-gate-complete", daemon=True).start()
