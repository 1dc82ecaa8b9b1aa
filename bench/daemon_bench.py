"""Daemon benchmarks for ``make bench`` (issue 6): tail throughput at saturation, XADD -> /metrics latency.

Plain functions for ``bench/run.py`` to call with the URL of its private ``redis-server``; each runs
the real ``quantum-gate run`` as a child process on a fresh stream key of its own (the key is deleted
afterwards) and measures it from outside, over HTTP, exactly as Prometheus would see it::

    from bench.daemon_bench import daemon_tail_throughput, xadd_to_metrics_latency
    tail = daemon_tail_throughput(url)          # TailThroughput; tail.markdown() for the report
    latency = xadd_to_metrics_latency(url)      # MetricsLatency; latency.markdown()

Entries are compact real-format AI-engine envelopes (three models, healthy votes).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from bench.kit_daemon import DaemonProcess


def _envelope(index: int) -> dict[bytes, bytes]:
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
        "symbol": "BTCUSDT",
        "side": ("BUY", "SELL")[index % 2],
        "confidence": 0.7,
        "model_breakdown": votes,
    }
    return {
        b"event_type": b"trade.intent",
        b"payload": json.dumps(body).encode(),
        b"trace_id": b"",
        b"correlation_id": str(uuid.UUID(int=index)).encode(),
        b"timestamp": b"2026-01-10T05:47:45.847268",
        b"source": b"ai-engine",
    }


VARIANTS = [_envelope(index) for index in range(300)]


@contextmanager
def _daemon(
    redis_url: str, args: Sequence[str], write_url: str | None = None
) -> Iterator[tuple[DaemonProcess, redis.Redis, str]]:
    """The daemon reads ``redis_url``; the bench writes through ``write_url`` (default the same), which
    must be a plain URL of the same master (a Sentinel URL is for the daemon only). The interval is
    the daemon's default unless ``args`` say otherwise."""
    key = f"bench:daemon:{uuid.uuid4().hex[:12]}"
    client = redis.Redis.from_url(write_url or redis_url)
    with tempfile.TemporaryDirectory(prefix="qg-daemon-bench-") as folder:
        daemon = DaemonProcess(redis_url, key, Path(folder), interval=None, args=args)
        try:
            daemon.start()
            daemon.wait_until(
                lambda metrics: metrics.get("cutover_known") == 1,
                timeout=60,
                what="cutover_known",
                every=0.05,
            )
            yield daemon, client, key
        finally:
            daemon.stop()
            client.delete(key)
            client.close()


def _seen(
    daemon: DaemonProcess, name: str, at_least: float, timeout: float, every: float, **labels: str
) -> float:
    """Poll /metrics every ``every`` s until ``quantum_gate_<name>{labels}`` (a count) reaches
    ``at_least``; the monotonic time it was seen (the bench's latency clock)."""
    daemon.wait_until(
        lambda metrics: (metrics.get(name, **labels) or 0.0) >= at_least,
        timeout=timeout,
        what=name,
        every=every,
    )
    return time.monotonic()


# ---- tail throughput ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TailThroughput:
    entries_per_round: int
    rounds: tuple[float, ...]  # entries/s, one per round

    @property
    def median(self) -> float:
        return statistics.median(self.rounds)

    @property
    def best(self) -> float:
        return max(self.rounds)

    def markdown(self, target: float = 50_000) -> str:
        verdict = "met" if self.median >= target else "NOT met"
        rounds = ", ".join(f"{rate:,.0f}" for rate in self.rounds)
        return "\n".join(
            [
                "| metric | value |",
                "| --- | --- |",
                f"| entries per round (one MULTI/EXEC of XADDs) | {self.entries_per_round:,} |",
                f"| rounds (entries/s, XADD -> accepted into the window) | {rounds} |",
                f"| median | {self.median:,.0f} /s |",
                f"| best | {self.best:,.0f} /s |",
                f"| target (issue 6): at least {target:,.0f} /s | {verdict} |",
            ]
        )


def daemon_tail_throughput(
    redis_url: str, entries: int = 100_000, rounds: int = 5, write_url: str | None = None
) -> TailThroughput:
    """Entries/s from XADD to the daemon's window at saturation.

    Each round queues ``entries`` XADDs in one MULTI/EXEC, so the daemon sees none of them until EXEC
    and building the batch costs the measurement nothing; the clock runs from EXEC until
    ``quantum_gate_events_accepted_total`` shows all of them (polled every 20 ms). One warm-up round is
    not counted. The window is large enough that every entry stays in it.
    """
    rates: list[float] = []
    with _daemon(redis_url, ["--window", str(max(entries, 2000)), "--interval", "5"], write_url) as (
        daemon,
        client,
        key,
    ):
        for round_number in range(rounds + 1):
            base = daemon.value("quantum_gate_events_accepted_total") or 0.0
            pipe = client.pipeline(transaction=True)
            for index in range(entries):
                pipe.xadd(key, VARIANTS[index % len(VARIANTS)])  # type: ignore[arg-type]
            pipe.execute()
            started = time.monotonic()
            target = base + entries
            done = _seen(daemon, "events_accepted_total", target, timeout=300, every=0.02)
            if round_number:
                rates.append(entries / (done - started))
    return TailThroughput(entries, tuple(rates))


# ---- XADD -> /metrics latency ----------------------------------------------------------------------


@dataclass(frozen=True)
class MetricsLatency:
    interval_seconds: float
    to_counter: tuple[float, ...]  # seconds until events_accepted_total shows the entry
    to_evaluation: tuple[float, ...]  # seconds until the evaluated model_samples gauge shows it

    @staticmethod
    def _summary(values: Sequence[float]) -> str:
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        median = statistics.median(ordered)
        return f"median {median * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms"

    @property
    def within_interval(self) -> bool:
        return max(self.to_evaluation) <= self.interval_seconds

    def markdown(self) -> str:
        verdict = "met" if self.within_interval else "NOT met"
        evaluated = self._summary(self.to_evaluation)
        return "\n".join(
            [
                "| metric | value |",
                "| --- | --- |",
                f"| samples | {len(self.to_counter)} |",
                f"| evaluation interval | {self.interval_seconds:g} s |",
                f"| XADD -> `quantum_gate_events_accepted_total` | {self._summary(self.to_counter)} |",
                f"| XADD -> evaluated `quantum_gate_model_samples{{window=post}}` | {evaluated} |",
                f"| target (issue 6): within one evaluation interval | {verdict} |",
            ]
        )


def xadd_to_metrics_latency(redis_url: str, samples: int = 30, interval: float = 2.0) -> MetricsLatency:
    """Seconds from one XADD until /metrics shows it: the live counter, and the evaluated gauge.

    Each sample XADDs one entry at a moment that drifts against the evaluation schedule (a step of
    0.37 intervals), then polls /metrics every 5 ms. Issue 6 asks the evaluated figure to stay within
    one evaluation interval.
    """
    counter: list[float] = []
    evaluated: list[float] = []
    args = ["--window", "100000", "--interval", f"{interval:g}"]
    with _daemon(redis_url, args) as (daemon, client, key):
        label = {"model": "xgb", "window": "post"}
        for index in range(samples):
            time.sleep((index * 0.37 % 1.0) * interval)  # spread over the evaluation phase (pacing only)
            accepted = daemon.value("quantum_gate_events_accepted_total") or 0.0
            voted = daemon.value("quantum_gate_model_samples", **label) or 0.0
            client.xadd(key, VARIANTS[index % len(VARIANTS)])  # type: ignore[arg-type]
            started = time.monotonic()
            seen = _seen(daemon, "events_accepted_total", accepted + 1, timeout=60, every=0.005)
            counter.append(seen - started)
            seen = _seen(daemon, "model_samples", voted + 1, timeout=60, every=0.005, **label)
            evaluated.append(seen - started)
    return MetricsLatency(interval, tuple(counter), tuple(evaluated))


if __name__ == "__main__":  # python -m bench.daemon_bench redis://127.0.0.1:PORT/0 (a private server!)
    if len(sys.argv) != 2:
        raise SystemExit(
            "usage: python -m bench.daemon_bench REDIS_URL  (it writes: never a production Redis)"
        )
    url = sys.argv[1]
    print(daemon_tail_throughput(url).markdown())
    print()
    print(xadd_to_metrics_latency(url).markdown())
