"""Harness for the hardening tests: the real daemon as a child process, scraped over HTTP.

``DaemonProcess`` runs ``quantum-gate run`` exactly as an operator would (its own process, so the tests
can SIGSTOP, SIGTERM and measure its RSS), points it at a private ``redis-server`` and reads its state
only through ``/metrics`` and its JSON log lines. Waiting is always "poll an observable until a
predicate holds or a deadline passes"; a timeout fails with the last metrics and the log tail.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from conftest import REPO, free_port
from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]
EARLY_CUTOVER = "2020-01-01T00:00:00Z"  # every auto-ID entry a test writes is after it


def quantum_gate_argv() -> list[str]:
    script = Path(sys.executable).parent / "quantum-gate"
    return [str(script)] if script.exists() else [sys.executable, "-m", "quantum_gate"]


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
    """``quantum-gate run`` as a child process with a fixed cutover (``--after``) or a unit."""

    redis_url: str
    stream: str
    directory: Path
    after: str | None = EARLY_CUTOVER
    unit: str | None = None
    interval: float = 0.5
    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / "daemon.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def argv(self) -> list[str]:
        argv = [
            *quantum_gate_argv(),
            "run",
            "--redis-url",
            self.redis_url,
            "--stream",
            self.stream,
            "--listen",
            f"127.0.0.1:{self.port}",
            "--interval",
            str(self.interval),
            "--report-dir",
            str(self.directory / "reports"),
        ]
        if self.after is not None:
            argv += ["--after", self.after]
        if self.unit is not None:
            argv += ["--unit", self.unit]
        return argv + list(self.args)

    def start(self, wait_http: bool = True) -> DaemonProcess:
        self.directory.mkdir(parents=True, exist_ok=True)
        env = {key: value for key, value in os.environ.items() if not key.startswith("QUANTUM_GATE_")}
        env.update(self.env)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd=REPO
            )
        if wait_http:
            self.wait_until(lambda _m: True, timeout=30, what="/metrics answering")
        return self

    # ---- observing -----------------------------------------------------------------------------

    def scrape(self, timeout: float = 10.0) -> Metrics:
        status, body = http_get(self.port, "/metrics", timeout)
        assert status == 200, f"/metrics answered {status}"
        return Metrics.parse(body.decode("utf-8"))

    def try_scrape(self) -> Metrics | None:
        try:
            return self.scrape(timeout=5.0)
        except (OSError, http.client.HTTPException):
            return None

    def wait_until(
        self, predicate: Callable[[Metrics], bool], *, timeout: float, what: str, every: float = 0.02
    ) -> Metrics:
        """Poll /metrics until ``predicate`` holds; fail after ``timeout`` s with the evidence."""
        deadline = time.monotonic() + timeout
        last: Metrics | None = None
        while time.monotonic() < deadline:
            self.assert_alive()
            last = self.try_scrape() or last
            if last is not None and predicate(last):
                return last
            time.sleep(every)  # polling cadence, not synchronisation: the predicate decides
        shown = "\n".join(
            line for line in (last.text if last else "").splitlines() if line and not line.startswith("#")
        )
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what}\nlast metrics:\n{shown[-4000:]}\n"
            f"log tail:\n{self.log_tail()}"
        )

    def assert_alive(self) -> None:
        assert self.process is not None
        code = self.process.poll()
        if code is not None:
            raise AssertionError(f"the daemon exited with {code}\nlog tail:\n{self.log_tail()}")

    def rss_kib(self) -> int:
        return vm_rss_kib(self.pid)

    def logs(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                events.append({"event": "<not json>", "line": line})
        return events

    def log_events(self) -> list[str]:
        return [str(item.get("event")) for item in self.logs()]

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "<no log>"
        return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    # ---- controlling ---------------------------------------------------------------------------

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def terminate(self, timeout: float = 10.0) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds to exit)."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        return code, time.monotonic() - started

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.kill()
            self.process.wait(timeout=10)


# ---- writing real-format entries fast ------------------------------------------------------------


def compact_envelope(index: int) -> dict[bytes, bytes]:
    """A real-format AI-engine envelope with a small, healthy, varied payload (about 420 bytes)."""
    actions = ("BUY", "SELL", "HOLD")
    votes = {
        model: {
            "action": actions[(index + offset) % 3],
            "confidence": round(0.30 + 0.006 * ((index * 37 + offset * 11) % 100), 6),
            "model": f"{model}_main",
        }
        for offset, model in enumerate(("xgb", "lgbm", "nhits"))
    }
    body = {
        "symbol": ("BTCUSDT", "ETHUSDT", "SOLUSDT")[index % 3],
        "side": ("BUY", "SELL")[index % 2],
        "confidence": 0.7,
        "model": "ensemble",
        "model_breakdown": votes,
    }
    return {
        b"event_type": b"trade.intent",
        b"payload": json.dumps(body).encode(),
        b"trace_id": b"",
        b"correlation_id": f"00000000-0000-4000-8000-{index:012d}".encode(),
        b"timestamp": b"2026-01-10T05:47:45.847268",
        b"source": b"ai-engine",
    }


COMPACT_VARIANTS = [compact_envelope(index) for index in range(300)]


def xadd_many(
    client: redis.Redis,
    key: str,
    count: int,
    *,
    batch: int = 2000,
    fields: Sequence[Mapping[bytes, bytes]] = COMPACT_VARIANTS,
    maxlen: int | None = None,
) -> int:
    """Pipelined ``XADD key [MAXLEN ~ n] * ...`` with auto IDs, ``batch`` per round trip."""
    written = 0
    variants = [dict(variant) for variant in fields]
    while written < count:
        size = min(batch, count - written)
        pipe = client.pipeline(transaction=False)
        for offset in range(size):
            pipe.xadd(key, variants[(written + offset) % len(variants)], maxlen=maxlen, approximate=True)  # type: ignore[arg-type]
        pipe.execute()
        written += size
    return written


def xadd_entries(client: redis.Redis, key: str, entries: Iterable[Mapping[bytes | str, bytes | str]]) -> int:
    written = 0
    pipe = client.pipeline(transaction=False)
    for fields in entries:
        pipe.xadd(key, dict(fields))  # type: ignore[arg-type]
        written += 1
    pipe.execute()
    return written
