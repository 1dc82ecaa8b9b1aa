"""Hardening, load (issue 6, items 9 and 10): a million-entry soak, and /metrics under 50 scrapers.

Both run the real daemon as a child process against a private ``redis-server`` and measure it from
outside: ``events_accepted_total`` over HTTP for progress, ``VmRSS`` from ``/proc/<pid>/status`` for
memory. Entries are compact but real-format AI-engine envelopes (three models, healthy votes).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import RedisServer
from hardening_kit import COMPACT_VARIANTS, DaemonProcess, Metrics, xadd_many

SOAK_ENTRIES = 1_000_000
WARM_UP_ENTRIES = 200_000
SCRAPERS, SCRAPE_SECONDS = 50, 30.0
# Each scraper scrapes, waits this long, scrapes again: 50 scrapers at 1/s are 50 scrapes/s, some 50 to
# 100 times what a Prometheus HA pair at a 15 s interval sends. Back-to-back loops would measure the
# test machine's two cores, not the daemon.
SCRAPE_PAUSE_SECONDS = 1.0
ROUND_ENTRIES = 100_000


@pytest.fixture
def soak_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def accepted(metrics: Metrics) -> float:
    return metrics.get("events_accepted_total") or 0.0


@dataclass(frozen=True)
class Sample:
    at: float
    accepted: float
    rss_kib: int


class Sampler(threading.Thread):
    """Every ``every`` seconds: the daemon's accepted counter (one scrape) and its VmRSS."""

    def __init__(self, daemon: DaemonProcess, every: float = 0.5) -> None:
        super().__init__(name="sampler", daemon=True)
        self.daemon_process = daemon
        self.every = every
        self.samples: list[Sample] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every):
            metrics = self.daemon_process.try_scrape()
            if metrics is not None:
                self.samples.append(
                    Sample(time.monotonic(), accepted(metrics), self.daemon_process.rss_kib())
                )


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_soak_one_million_entries_keeps_up_and_rss_stays_flat(
    soak_redis: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    admin = soak_redis.admin()
    daemon = DaemonProcess(soak_redis.url, stream_key, tmp_path / "daemon", interval=1.0)
    sampler = Sampler(daemon)
    try:
        daemon.start()
        daemon.wait_until(lambda m: m.get("cutover_known") == 1, timeout=30, what="ready")
        rss_start = daemon.rss_kib()
        sampler.start()
        started = time.monotonic()
        xadd_many(admin, stream_key, SOAK_ENTRIES, batch=5000)
        written = time.monotonic() - started
        final = daemon.wait_until(
            lambda m: accepted(m) >= SOAK_ENTRIES, timeout=300, what="1,000,000 accepted", every=0.2
        )
        finished = time.monotonic() - started
        sampler.done.set()
        sampler.join(timeout=10)
        final = daemon.scrape()
        rss_end = daemon.rss_kib()
    finally:
        sampler.done.set()
        daemon.close()

    assert final.value("events_accepted_total") == SOAK_ENTRIES
    assert final.value("entries_read_total") == SOAK_ENTRIES
    assert final.value("events_lost_total") == 0
    assert final.skipped_total() == 0
    assert final.value("window_events", window="post") == final.value("window_capacity", window="post")
    warm = [sample for sample in sampler.samples if sample.accepted >= WARM_UP_ENTRIES]
    assert len(warm) >= 5, f"too few samples after warm-up: {sampler.samples}"
    rss_warm = warm[0].rss_kib
    rss_peak = max(sample.rss_kib for sample in [*warm, Sample(0, 0, rss_end)])
    growth = rss_peak / rss_warm - 1
    print(
        f"soak: wrote {SOAK_ENTRIES:,} in {written:.1f}s ({SOAK_ENTRIES / written:,.0f}/s); all accepted "
        "after "
        f"{finished:.1f}s ({SOAK_ENTRIES / finished:,.0f}/s); RSS start {rss_start / 1024:.1f} MiB, after "
        f"warm-up {rss_warm / 1024:.1f} MiB, peak {rss_peak / 1024:.1f} MiB, end {rss_end / 1024:.1f} MiB "
        f"(growth {growth:+.1%})"
    )
    assert growth < 0.10, f"RSS grew {growth:.1%} after warm-up ({rss_warm} -> {rss_peak} KiB)"
    assert finished < 240, "the daemon did not keep up: 1,000,000 entries took over 4 minutes"


# ---- item 10: /metrics under 50 concurrent scrapers --------------------------------------------------

SCRAPER_SCRIPT = """
import http.client, json, sys, threading, time
port, scrapers, seconds, pause = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
deadline = time.monotonic() + seconds
lock = threading.Lock()
stats = {"ok": 0, "bad": 0, "errors": 0, "max_seconds": 0.0, "latencies": []}
def scrape():
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            connection.request("GET", "/metrics")
            response = connection.getresponse()
            body = response.read()
            connection.close()
            good = response.status == 200 and b"quantum_gate_events_accepted_total" in body
        except Exception:
            good = None
        took = time.monotonic() - started
        with lock:
            stats["ok" if good else "bad" if good is False else "errors"] += 1
            stats["max_seconds"] = max(stats["max_seconds"], took)
            stats["latencies"].append(took)
        time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
threads = [threading.Thread(target=scrape) for _ in range(scrapers)]
for thread in threads: thread.start()
for thread in threads: thread.join()
latencies = sorted(stats.pop("latencies"))
stats["p50_seconds"] = latencies[len(latencies) // 2] if latencies else None
stats["p99_seconds"] = latencies[int(len(latencies) * 0.99)] if latencies else None
print(json.dumps(stats))
"""


def ingest_round(daemon: DaemonProcess, server: RedisServer, key: str) -> float:
    """The daemon's own ingest rate: ROUND_ENTRIES queued in one MULTI/EXEC (the daemon sees none of
    them until EXEC, so building the batch in this process costs the measurement nothing), then
    entries/s from EXEC until all of them are accepted."""
    base = accepted(daemon.scrape())
    pipe = server.admin().pipeline(transaction=True)
    for index in range(ROUND_ENTRIES):
        pipe.xadd(key, COMPACT_VARIANTS[index % len(COMPACT_VARIANTS)])  # type: ignore[arg-type]
    pipe.execute()
    started = time.monotonic()
    daemon.wait_until(
        lambda m: accepted(m) >= base + ROUND_ENTRIES, timeout=120, what="the round accepted", every=0.05
    )
    return ROUND_ENTRIES / (time.monotonic() - started)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fifty_concurrent_scrapers_for_30s_all_answered_and_ingest_slows_under_20_percent(
    soak_redis: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    daemon = DaemonProcess(soak_redis.url, stream_key, tmp_path / "daemon", interval=1.0)
    try:
        daemon.start()
        daemon.wait_until(lambda m: m.get("cutover_known") == 1, timeout=30, what="ready")
        ingest_round(daemon, soak_redis, stream_key)  # warm-up
        quiet = [ingest_round(daemon, soak_redis, stream_key) for _ in range(3)]  # before the scrapers
        scrapers = subprocess.Popen(
            [sys.executable, "-c", SCRAPER_SCRIPT, str(daemon.port), str(SCRAPERS), str(SCRAPE_SECONDS),
             str(SCRAPE_PAUSE_SECONDS)],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        loaded: list[float] = []
        try:
            while scrapers.poll() is None and len(loaded) < 20:
                loaded.append(ingest_round(daemon, soak_redis, stream_key))
            output, _ = scrapers.communicate(timeout=SCRAPE_SECONDS + 60)
        finally:
            if scrapers.poll() is None:
                scrapers.kill()
                scrapers.wait()
        quiet += [ingest_round(daemon, soak_redis, stream_key) for _ in range(3)]  # and after them
        daemon.assert_alive()
    finally:
        daemon.close()
    stats = json.loads(output)
    quiet_rate, loaded_rate = statistics.median(quiet), statistics.median(loaded[:-1] or loaded)
    slowdown = 1 - loaded_rate / quiet_rate
    print(
        f"scrapers: {stats}; ingest quiet {quiet_rate:,.0f}/s (rounds {[round(r) for r in quiet]}), under "
        f"scrapers {loaded_rate:,.0f}/s (rounds {[round(r) for r in loaded]}): slowdown {slowdown:+.1%}"
    )
    assert stats["bad"] == 0
    assert stats["errors"] == 0
    assert stats["max_seconds"] < 3.0, "a scrape waited for seconds (listen backlog or lock contention)"
    minimum = SCRAPERS * int(SCRAPE_SECONDS / (SCRAPE_PAUSE_SECONDS + 1.0))
    assert stats["ok"] >= minimum, f"only {stats['ok']} scrapes in {SCRAPE_SECONDS}s"
    assert len(loaded) >= 3
    assert slowdown < 0.20, f"ingest slowed by {slowdown:.1%} under {SCRAPERS} scrapers"
