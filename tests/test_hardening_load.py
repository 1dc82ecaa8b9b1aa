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
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from conftest import RedisServer, wait_until
from hardening_kit import COMPACT_VARIANTS, EARLY_CUTOVER, DaemonProcess, Metrics, xadd_many
from prometheus_client import generate_latest

from bench.kit import without_runtime_families
from quantum_gate.config import Settings
from quantum_gate.connection import connect
from quantum_gate.daemon import Daemon
from quantum_gate.httpapp import HttpApp
from quantum_gate.statuspage import render_status_page
from quantum_gate.stream import read_after

SOAK_ENTRIES = 1_000_000
WARM_UP_ENTRIES = 200_000
SCRAPERS, SCRAPE_SECONDS = 50, 30.0
# Each scraper scrapes, waits this long, scrapes again: 50 scrapers at 1/s are 50 scrapes/s, some 50 to
# 100 times what a Prometheus HA pair at a 15 s interval sends. Back-to-back loops would measure the
# test machine's two cores, not the daemon.
SCRAPE_PAUSE_SECONDS = 1.0
ROUND_ENTRIES = 100_000


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
    fresh_redis: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    admin = fresh_redis.admin()
    daemon = DaemonProcess(fresh_redis.url, stream_key, tmp_path / "daemon", interval=1.0)
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
import http.client, json, os, sys, threading, time
port, scrapers, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
pause, flag = float(sys.argv[4]), sys.argv[5]
active, finished, lock = threading.Event(), threading.Event(), threading.Lock()
stats = {"ok": 0, "bad": 0, "errors": 0, "max_seconds": 0.0}
latencies = []
def scrape():
    while not finished.is_set():
        if not active.wait(0.05):
            continue
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
            latencies.append(took)
        finished.wait(pause)
threads = [threading.Thread(target=scrape) for _ in range(scrapers)]
for thread in threads: thread.start()
spent, last = 0.0, time.monotonic()
while spent < seconds:  # scrape for `seconds` of active time; the test pauses us with its flag file
    time.sleep(0.01)
    now = time.monotonic()
    spent += (now - last) if active.is_set() else 0.0
    last = now
    active.clear() if os.path.exists(flag) else active.set()
finished.set()
for thread in threads: thread.join()
latencies.sort()
stats["active_seconds"] = round(spent, 1)
stats["p50_seconds"] = latencies[len(latencies) // 2] if latencies else None
stats["p99_seconds"] = latencies[int(len(latencies) * 0.99)] if latencies else None
print(json.dumps(stats))
"""


def tail_blocked(admin: redis.Redis) -> bool:
    """True when the daemon's tail connection waits in XREAD BLOCK, which Redis only lets it do once
    nothing newer than its last ID is left: it has read everything."""
    clients: list[dict[str, str]] = admin.client_list()
    return any(item.get("cmd") == "xread" and "b" in item.get("flags", "") for item in clients)


def ingest_round(daemon: DaemonProcess, server: RedisServer, key: str) -> float:
    """The daemon's own ingest rate: ROUND_ENTRIES queued in one MULTI/EXEC (the daemon sees none of
    them until EXEC, so building the batch in this process costs the measurement nothing), then
    entries/s from EXEC until the daemon's tail blocks again (seen in CLIENT LIST, which costs the
    daemon nothing, unlike polling its /metrics), checked against events_accepted_total."""
    admin = server.admin()
    base = accepted(daemon.scrape())
    pipe = admin.pipeline(transaction=True)
    for index in range(ROUND_ENTRIES):
        pipe.xadd(key, COMPACT_VARIANTS[index % len(COMPACT_VARIANTS)])  # type: ignore[arg-type]
    pipe.execute()
    started = time.monotonic()

    def rate_once_read() -> float | None:
        if not tail_blocked(admin):
            return None
        took = time.monotonic() - started
        return ROUND_ENTRIES / took if accepted(daemon.scrape()) >= base + ROUND_ENTRIES else None

    # a fine cadence of CLIENT LIST: the moment the tail blocks again is the measurement
    return wait_until(rate_once_read, 120, "the round to be read", every=0.005)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fifty_concurrent_scrapers_for_30s_all_answered_and_ingest_slows_under_20_percent(
    fresh_redis: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    """Paired rounds: quiet (scrapers paused by a flag file), then loaded (scrapers running), again and
    again until the scrapers have run for 30 s; the slowdown is the median of the paired ratios, so
    drift in the machine's load (other processes, CPU clocks) cancels out."""
    daemon = DaemonProcess(fresh_redis.url, stream_key, tmp_path / "daemon", interval=1.0)
    paused = tmp_path / "scrapers-paused"
    pairs: list[tuple[float, float]] = []
    try:
        daemon.start()
        daemon.wait_until(lambda m: m.get("cutover_known") == 1, timeout=30, what="ready")
        ingest_round(daemon, fresh_redis, stream_key)  # warm-up
        paused.touch()
        scrapers = subprocess.Popen(
            [sys.executable, "-c", SCRAPER_SCRIPT, str(daemon.port), str(SCRAPERS), str(SCRAPE_SECONDS),
             str(SCRAPE_PAUSE_SECONDS), str(paused)],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            while scrapers.poll() is None and len(pairs) < 40:
                quiet = ingest_round(daemon, fresh_redis, stream_key)
                paused.unlink()
                loaded = ingest_round(daemon, fresh_redis, stream_key)
                paused.touch()
                if scrapers.poll() is None:  # they ran through the whole loaded round
                    pairs.append((quiet, loaded))
            paused.unlink(missing_ok=True)
            output, _ = scrapers.communicate(timeout=SCRAPE_SECONDS + 60)
        finally:
            if scrapers.poll() is None:
                scrapers.kill()
                scrapers.wait()
        daemon.assert_alive()
    finally:
        daemon.close()
    stats = json.loads(output)
    ratios = [loaded / quiet for quiet, loaded in pairs]
    slowdown = 1 - statistics.median(ratios)
    print(
        f"scrapers: {stats}; {len(pairs)} paired rounds, ingest quiet median "
        f"{statistics.median(q for q, _ in pairs):,.0f}/s, under scrapers "
        f"{statistics.median(lo for _, lo in pairs):,.0f}/s; "
        f"pairs {[(round(q), round(lo)) for q, lo in pairs]}; "
        f"slowdown (median of paired ratios) {slowdown:+.1%}"
    )
    assert stats["bad"] == 0
    assert stats["errors"] == 0
    assert stats["active_seconds"] >= SCRAPE_SECONDS
    assert stats["max_seconds"] < 3.0, "a scrape waited for seconds (listen backlog or lock contention)"
    minimum = SCRAPERS * int(SCRAPE_SECONDS / (SCRAPE_PAUSE_SECONDS + 1.0))
    assert stats["ok"] >= minimum, f"only {stats['ok']} scrapes in {SCRAPE_SECONDS}s"
    assert len(pairs) >= 3
    assert slowdown < 0.20, f"ingest slowed by {slowdown:.1%} under {SCRAPERS} scrapers"


def same_text(served: bytes, registry_text: bytes) -> bool:
    """Byte for byte, but for the process's own families (CPU seconds move between the two renders),
    which both carry."""
    both = all(b"\nprocess_resident_memory_bytes " in text for text in (served, registry_text))
    return both and without_runtime_families(served) == without_runtime_families(registry_text)


def test_metrics_render_is_the_registry_text_byte_for_byte_while_counters_move(
    redis_server: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    """``/metrics`` keeps the gate families' text per evaluation (so scrapers cost the tail little);
    what it serves must still be exactly ``generate_latest`` over the registry, scrape after scrape."""
    settings = Settings.model_validate(
        {
            "redis": {"url": redis_server.url, "stream": stream_key},
            "cutover": {"after": EARLY_CUTOVER},
            "daemon": {"report_dir": str(tmp_path / "reports")},
        }
    )
    daemon = Daemon(settings)
    app = HttpApp(daemon.snapshot, lambda: 1_768_030_000.0, render_status_page)
    assert same_text(app.handle("/metrics")[2], generate_latest(app.registry))  # no evaluation yet
    admin = redis_server.admin()
    xadd_many(admin, stream_key, 300)
    client = connect(settings)
    try:
        daemon.tracker.initial_cutover()
        daemon.ingestor.catch_up(client)
        daemon.evaluator.tick()
        first = app.handle("/metrics")[2]
        assert same_text(first, generate_latest(app.registry))
        assert b'quantum_gate_verdict{verdict="pass"} 1.0' in first
        xadd_many(admin, stream_key, 50)
        last_id = daemon.ingestor.state().last_id
        assert last_id is not None
        daemon.ingestor.ingest(read_after(client, stream_key, last_id, 1000, None))  # no evaluation since
        moved = app.handle("/metrics")[2]
        assert same_text(moved, generate_latest(app.registry))
        assert b"quantum_gate_events_accepted_total 350.0" in moved
        daemon.evaluator.tick()
        assert same_text(app.handle("/metrics")[2], generate_latest(app.registry))
    finally:
        client.close()
