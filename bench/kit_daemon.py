"""The daemon as a child process for the tests and the bench (part of the kit, ``bench/kit.py``):
``DaemonProcess`` runs ``quantum-gate run`` and reads it through HTTP (``/metrics`` as ``Metrics``) and
its JSON log lines; every wait polls a condition against a deadline.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from prometheus_client.parser import text_string_to_metric_families

from bench.kit import EARLY_CUTOVER, REPO, base_env, free_port, quantum_gate_argv, wait_until

T = TypeVar("T")
Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Metrics:
    """One scrape: ``(name, labels) -> value``; counters keep their ``_total`` name."""

    samples: Mapping[tuple[str, Labels], float]
    text: str

    @classmethod
    def parse(cls, text: str) -> Metrics:
        samples: dict[tuple[str, Labels], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return cls(samples, text)

    def get(self, name: str, **labels: str) -> float | None:
        return self.samples.get(("quantum_gate_" + name, tuple(sorted(labels.items()))))

    def value(self, name: str, **labels: str) -> float:
        found = self.get(name, **labels)
        if found is None:
            raise AssertionError(f"quantum_gate_{name}{labels or ''} is not on /metrics")
        return found

    def family(self, name: str) -> dict[Labels, float]:
        full = "quantum_gate_" + name
        return {labels: value for (sample, labels), value in self.samples.items() if sample == full}

    def label_values(self) -> dict[str, set[str]]:
        """Every label name on the page with the distinct values it takes (label-set cardinality)."""
        seen: dict[str, set[str]] = {}
        for _, labels in self.samples:
            for key, value in labels:
                seen.setdefault(key, set()).add(value)
        return seen

    def skipped_total(self) -> int:
        return int(sum(self.family("events_skipped_total").values()))


def http_get(port: int, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def vm_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


@dataclass
class DaemonProcess:
    """``quantum-gate run`` as a child process, exactly as an operator runs it (its own process, so a
    test can SIGSTOP, SIGTERM and measure its RSS), read only through HTTP and its JSON log lines.

    The cutover is fixed (``after``, an early one by default) or a unit's; ``interval=None`` leaves
    ``--interval`` to ``args``; ``config`` is written to ``directory/config.yaml`` and passed with
    ``--config``. The environment is this process's without QUANTUM_GATE_* variables, plus ``env``.
    stdout and stderr go to files in ``directory`` (appended to, so a restart keeps the earlier lines).
    """

    redis_url: str
    stream: str
    directory: Path
    after: str | None = EARLY_CUTOVER
    unit: str | None = None
    interval: float | None = 0.5
    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    config: Mapping[str, Any] | None = None
    port: int = field(default_factory=free_port)
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The child process (``start`` first)."""
        assert self.popen is not None, "the daemon was never started"
        return self.popen

    @property
    def stdout_path(self) -> Path:
        return self.directory / "stdout.log"

    @property
    def stderr_path(self) -> Path:
        return self.directory / "daemon.log"

    @property
    def log_path(self) -> Path:
        """The daemon's log lines (it logs to stderr; stdout stays empty for ``run``)."""
        return self.stderr_path

    @property
    def pid(self) -> int:
        return self.process.pid

    def argv(self) -> list[str]:
        argv = [*quantum_gate_argv(), "run", "--redis-url", self.redis_url, "--stream", self.stream]
        argv += ["--listen", f"127.0.0.1:{self.port}", "--report-dir", str(self.directory / "reports")]
        if self.interval is not None:
            argv += ["--interval", f"{self.interval:g}"]
        if self.after is not None:
            argv += ["--after", self.after]
        if self.unit is not None:
            argv += ["--unit", self.unit]
        if self.config is not None:
            path = self.directory / "config.yaml"
            path.write_text(yaml.safe_dump(dict(self.config)), encoding="utf-8")
            argv += ["--config", str(path)]
        return argv + list(self.args)

    def start(self, wait_http: bool = True) -> DaemonProcess:
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = self.argv()
        with self.stdout_path.open("ab") as out, self.stderr_path.open("ab") as err:
            self.popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=base_env(**self.env), cwd=REPO
            )
        if wait_http:
            self.wait_for(lambda: self.get("/healthz") is not None, 30, "the HTTP listener")
        return self

    # ---- observing -----------------------------------------------------------------------------

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

    def scrape(self, timeout: float = 10.0) -> Metrics:
        status, body = http_get(self.port, "/metrics", timeout)
        assert status == 200, f"/metrics answered {status}"
        return Metrics.parse(body.decode("utf-8"))

    def try_scrape(self) -> Metrics | None:
        try:
            return self.scrape(timeout=5.0)
        except (OSError, http.client.HTTPException):
            return None

    def value(self, name: str, **labels: str) -> float | None:
        """One sample by its full name (``quantum_gate_...``), or None when it is not on the page."""
        return self.scrape().samples.get((name, tuple(sorted(labels.items()))))

    def rss_kib(self) -> int:
        return vm_rss_kib(self.pid)

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def logs(self) -> list[dict[str, Any]]:
        """Every log line as a dict (JSON when stderr is not a terminal); others as ``<not json>``."""
        if not self.stderr_path.exists():
            return []
        events = []
        for line in self.stderr().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                events.append({"event": "<not json>", "line": line})
        return events

    def log_events(self) -> list[str]:
        return [str(item.get("event")) for item in self.logs()]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [entry for entry in self.logs() if entry.get("event") == name]

    def not_json(self) -> list[str]:
        return [line for line in self.stderr().splitlines() if line.strip() and not line.startswith("{")]

    def log_tail(self, lines: int = 30) -> str:
        if not self.stderr_path.exists():
            return "<no log>"
        return "\n".join(self.stderr().splitlines()[-lines:])

    # ---- waiting -------------------------------------------------------------------------------

    def assert_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise AssertionError(f"the daemon exited with {code}\nlog tail:\n{self.log_tail()}")

    def wait_for(
        self,
        predicate: Callable[[], T | None],
        timeout: float = 10.0,
        what: str = "condition",
        *,
        every: float = 0.02,
    ) -> T:
        """``wait_until`` that fails at once, with the log, if the daemon exits meanwhile."""

        def check() -> T | None:
            self.assert_alive()
            return predicate()

        def explain() -> str:
            return f"--- daemon log ---\n{self.stderr()[-6000:]}"

        return wait_until(check, timeout, what, every=every, explain=explain)

    def wait_until(
        self, predicate: Callable[[Metrics], bool], *, timeout: float, what: str, every: float = 0.02
    ) -> Metrics:
        """Poll /metrics until ``predicate`` holds; fail after ``timeout`` s with the evidence."""
        last: list[Metrics] = []

        def check() -> Metrics | None:
            self.assert_alive()
            scraped = self.try_scrape()
            if scraped is not None:
                last[:] = [scraped]
            return last[0] if last and predicate(last[0]) else None

        def explain() -> str:
            text = last[0].text if last else ""
            shown = "\n".join(line for line in text.splitlines() if line and not line.startswith("#"))
            return f"last metrics:\n{shown[-4000:]}\nlog tail:\n{self.log_tail()}"

        return wait_until(check, timeout, what, every=every, explain=explain)

    def wait_value(self, name: str, expected: float, timeout: float = 10.0, **labels: str) -> None:
        what = f"{name}{labels} == {expected}"
        self.wait_for(lambda: self.value(name, **labels) == expected, timeout, what)

    def wait_log(self, name: str, timeout: float = 10.0, count: int = 1) -> list[dict[str, Any]]:
        return self.wait_for(
            lambda: found if len(found := self.events(name)) >= count else None,
            timeout,
            f"{count} log event(s) {name}",
        )

    # ---- controlling ---------------------------------------------------------------------------

    def send(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def pause(self) -> None:
        self.send(signal.SIGSTOP)

    def resume(self) -> None:
        self.send(signal.SIGCONT)

    def terminate(self, within: float = 10.0, signum: int = signal.SIGTERM) -> tuple[int, float]:
        """Send the signal and wait at most ``within`` seconds; returns (exit code, seconds taken)."""
        started = time.monotonic()
        self.process.send_signal(signum)
        try:
            code = self.process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.close()
            tail = self.log_tail(60)
            raise AssertionError(f"the daemon did not stop within {within:g}s:\n{tail}") from None
        return code, time.monotonic() - started

    def close(self) -> None:
        """SIGKILL (after SIGCONT, in case it is paused) if it still runs."""
        if self.popen is not None and self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGCONT)
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within 10 s: the way out of every run."""
        if self.popen is not None and self.popen.poll() is None:
            try:
                self.terminate(within=10)
            except AssertionError:
                self.close()


@contextmanager
def running(daemon: DaemonProcess, wait_http: bool = True) -> Iterator[DaemonProcess]:
    """Start ``daemon``; on the way out stop it (SIGTERM, then SIGKILL) whatever happened."""
    try:
        yield daemon.start(wait_http)
    finally:
        daemon.stop()
