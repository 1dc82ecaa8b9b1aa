"""Helpers for the daemon tests: settings, an in-process tail, a daemon subprocess.

The daemon subprocess, ``wait_until`` and ``base_env`` are the shared kit's (``bench/kit.py``,
``bench/kit_daemon.py``) and stay importable from here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from bench.kit import base_env, wait_until
from bench.kit_daemon import DaemonProcess, running
from quantum_gate.config import Settings
from quantum_gate.cutover import Cutover
from quantum_gate.daemon import Daemon
from quantum_gate.gate import GateResult

__all__ = [
    "DaemonProcess",
    "add_entry",
    "base_env",
    "cutover_of",
    "daemon_process",
    "document_of",
    "fast_config",
    "make_settings",
    "merge",
    "result_of",
    "tailing",
    "wait_until",
    "write_atomically",
]


def merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def fast_config(
    redis_url: str, stream: str, report_dir: Path, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Settings data tuned for tests: short blocks, polls, backoffs and intervals."""
    data: dict[str, Any] = {
        "redis": {"url": redis_url, "stream": stream, "block_ms": 100, "backoff_max_seconds": 0.5},
        "cutover": {"poll_seconds": 0.2, "timeout_seconds": 5},
        "daemon": {
            "listen": "127.0.0.1:0",
            "interval_seconds": 1,
            "report_dir": str(report_dir),
            "shutdown_timeout_seconds": 3,
        },
    }
    return merge(data, extra or {})


def make_settings(
    redis_url: str, stream: str, report_dir: Path, extra: Mapping[str, Any] | None = None
) -> Settings:
    return Settings.model_validate(fast_config(redis_url, stream, report_dir, extra))


def write_atomically(client: redis.Redis, key: str, entries: Iterable[tuple[str, Mapping[str, str]]]) -> int:
    """XADD in one MULTI/EXEC, so a blocked XREAD sees all of them at once (deterministic batches)."""
    written = 0
    with client.pipeline(transaction=True) as pipe:
        for stream_id, fields in entries:
            values: dict[Any, Any] = dict(fields)  # redis-py's key type is a union; ours are str
            pipe.xadd(key, values, id=stream_id)
            written += 1
        pipe.execute()
    return written


def add_entry(client: redis.Redis, key: str, fields: Mapping[str, str], stream_id: str) -> None:
    write_atomically(client, key, [(stream_id, fields)])


# ---- in process ------------------------------------------------------------------------------------


@contextmanager
def tailing(daemon: Daemon, timeout: float = 30.0) -> Iterator[Daemon]:
    """The daemon's start phase and tail thread, without HTTP, scheduler or signal handlers: tests
    drive ``evaluator.tick``/``tracker.watch`` themselves and read ``snapshot()``."""
    daemon.tracker.initial_cutover()
    thread = threading.Thread(target=daemon.ingestor.tail_forever, name="test-tail", daemon=True)
    thread.start()
    try:
        wait_until(daemon.ingestor.ready.is_set, timeout, "the daemon to become ready")
        yield daemon
    finally:
        daemon.stopping.set()
        thread.join(timeout=5)
        assert not thread.is_alive(), "the tail thread did not stop within 5 s"


def result_of(daemon: Daemon) -> GateResult:
    """The result the daemon serves now; there must be one."""
    result = daemon.evaluator.state().result
    assert result is not None, "the daemon serves no evaluation"
    return result


def document_of(daemon: Daemon) -> dict[str, Any]:
    """The gate document the daemon serves now; there must be one."""
    document = daemon.evaluator.state().document
    assert document is not None, "the daemon serves no gate document"
    return document


def cutover_of(daemon: Daemon) -> Cutover:
    """The cutover the daemon has adopted; there must be one."""
    cutover = daemon.tracker.state().cutover
    assert cutover is not None, "the daemon has adopted no cutover"
    return cutover


# ---- as a subprocess -------------------------------------------------------------------------------


@contextmanager
def daemon_process(
    workdir: Path,
    redis_url: str,
    stream: str,
    *args: str,
    config: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    wait_http: bool = True,
) -> Iterator[DaemonProcess]:
    """The kit's ``DaemonProcess`` with this module's defaults (no cutover flag of its own: pass
    ``--after`` or ``--unit`` in ``args``; a 1 s interval); stopped on the way out whatever happened."""
    daemon = DaemonProcess(
        redis_url, stream, workdir, after=None, interval=1, args=args, env=env or {}, config=config
    )
    with running(daemon, wait_http) as started:
        yield started
