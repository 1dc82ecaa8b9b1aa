"""Helpers for the daemon tests: settings, an in-process tail, a daemon subprocess, bounded waits.

Every wait polls against a deadline and says what it was waiting for; nothing sleeps blindly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import redis
import yaml
from conftest import REPO, free_port
from prometheus_client.parser import text_string_to_metric_families

from quantum_gate.config import Settings
from quantum_gate.daemon import Daemon

T = TypeVar("T")


def wait_until(predicate: Callable[[], T | None], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)


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
    drive ``evaluation_tick``/``watch_cutover`` themselves and read ``snapshot()``."""
    daemon.initial_cutover()
    thread = threading.Thread(target=daemon.tail_forever, name="test-tail", daemon=True)
    thread.start()
    try:
        wait_until(daemon.ready.is_set, timeout, "the daemon to become ready")
        yield daemon
    finally:
        daemon.stopping.set()
        thread.join(timeout=5)
        assert not thread.is_alive(), "the tail thread did not stop within 5 s"


# ---- as a subprocess -------------------------------------------------------------------------------


@dataclass
class DaemonProcess:
    """``python -m quantum_gate run ...`` with stdout/stderr in files, read back as data."""

    process: subprocess.Popen[bytes]
    port: int
    stdout_path: Path
    stderr_path: Path
    exit_code: int | None = field(default=None)

    @classmethod
    def start(
        cls,
        workdir: Path,
        redis_url: str,
        stream: str,
        *args: str,
        config: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        wait_http: bool = True,
    ) -> DaemonProcess:
        workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        argv = [
            sys.executable,
            "-m",
            "quantum_gate",
            "run",
            "--redis-url",
            redis_url,
            "--stream",
            stream,
            "--listen",
            f"127.0.0.1:{port}",
            "--interval",
            "1",
            "--report-dir",
            str(workdir / "reports"),
        ]
        if config is not None:
            path = workdir / "config.yaml"
            path.write_text(yaml.safe_dump(dict(config)), encoding="utf-8")
            argv += ["--config", str(path)]
        argv += list(args)
        stdout_path, stderr_path = workdir / "stdout.log", workdir / "stderr.log"
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            process = subprocess.Popen(
                argv, stdout=out, stderr=err, cwd=REPO, env=dict(env) if env is not None else None
            )
        daemon = cls(process, port, stdout_path, stderr_path)
        if wait_http:
            daemon.wait_for(lambda: daemon.get("/healthz") is not None, 15, "the HTTP listener")
        return daemon

    # ---- reading ---------------------------------------------------------------------------------

    def get(self, path: str) -> tuple[int, bytes] | None:
        """(status, body), or None while nothing listens yet."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as answer:
                return int(answer.status), bytes(answer.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    def json(self, path: str) -> Any:
        answer = self.get(path)
        assert answer is not None, f"nothing answered {path}"
        return json.loads(answer[1])

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        answer = self.get("/metrics")
        assert answer is not None and answer[0] == 200, f"/metrics answered {answer!r}"
        samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(answer[1].decode("utf-8")):
            for sample in family.samples:
                samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return samples

    def value(self, name: str, **labels: str) -> float | None:
        return self.metrics().get((name, frozenset(labels.items())))

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def logs(self) -> list[dict[str, Any]]:
        """Every log line as a dict (the daemon writes JSON lines when stderr is not a terminal)."""
        return [json.loads(line) for line in self.stderr().splitlines() if line.startswith("{")]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [entry for entry in self.logs() if entry.get("event") == name]

    def not_json(self) -> list[str]:
        return [line for line in self.stderr().splitlines() if line.strip() and not line.startswith("{")]

    # ---- waiting and stopping --------------------------------------------------------------------

    def wait_for(
        self, predicate: Callable[[], T | None], timeout: float = 10.0, what: str = "condition"
    ) -> T:
        def check() -> T | None:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise AssertionError(f"the daemon exited ({code}) while waiting for {what}:\n{self.stderr()}")
            return predicate()

        try:
            return wait_until(check, timeout, what)
        except AssertionError as exc:
            if "timed out" in str(exc):
                raise AssertionError(f"{exc}\n--- daemon stderr ---\n{self.stderr()[-6000:]}") from None
            raise

    def wait_value(self, name: str, expected: float, timeout: float = 10.0, **labels: str) -> None:
        self.wait_for(
            lambda: self.value(name, **labels) == expected, timeout, f"{name}{labels} == {expected}"
        )

    def wait_log(self, name: str, timeout: float = 10.0, count: int = 1) -> list[dict[str, Any]]:
        return self.wait_for(
            lambda: found if len(found := self.events(name)) >= count else None,
            timeout,
            f"{count} log event(s) {name}",
        )

    def send(self, signum: int) -> None:
        self.process.send_signal(signum)

    def terminate(self, within: float = 5.0, signum: int = signal.SIGTERM) -> tuple[int, float]:
        """Send the signal and wait at most ``within`` seconds; returns (exit code, seconds taken)."""
        started = time.monotonic()
        self.process.send_signal(signum)
        try:
            code = self.process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
            raise AssertionError(
                f"the daemon did not stop within {within:g}s:\n{self.stderr()[-4000:]}"
            ) from None
        self.exit_code = code
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)


@contextmanager
def daemon_process(*args: Any, **kwargs: Any) -> Iterator[DaemonProcess]:
    """Start a daemon; on the way out stop it (SIGTERM, then SIGKILL) whatever happened."""
    daemon = DaemonProcess.start(*args, **kwargs)
    try:
        yield daemon
    finally:
        if daemon.process.poll() is None:
            try:
                daemon.terminate(within=5)
            except AssertionError:
                daemon.kill()


def base_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any QUANTUM_GATE_* leftovers, plus ``extra``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("QUANTUM_GATE_")}
    env.update(extra)
    return env
