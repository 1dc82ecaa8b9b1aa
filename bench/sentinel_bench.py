"""``make bench`` section ``sentinel`` (issue 11): the daemon's tail throughput through a Sentinel URL
against the same master addressed directly.

One ``redis-server --sentinel`` (quorum 1) is started next to the bench's private Redis, on a free
loopback port in a temporary folder, and stopped again. Through Sentinel, quantum-gate asks the sentinel
for the master once per connection and then reads the master directly, so the two figures should match
(the issue expects them within 10 %). Runs alternate direct / Sentinel so both see the same machine load.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import redis

from bench.daemon_bench import daemon_tail_throughput
from bench.kit import free_port, wait_until

MASTER_NAME = "mymaster"


class PrivateSentinel:
    """One sentinel monitoring ``127.0.0.1:master_port`` as ``mymaster``."""

    def __init__(self, master_port: int) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("bench: redis-server is not on PATH")
        self.directory = Path(tempfile.mkdtemp(prefix="quantum-gate-bench-sentinel-"))
        self.port = free_port()
        config = self.directory / "sentinel.conf"
        config.write_text(
            "\n".join([
                f"port {self.port}", "bind 127.0.0.1", f"dir {self.directory}",
                f"logfile {self.directory / 'sentinel.log'}",
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 1",
            ]) + "\n",
            encoding="utf-8",
        )  # fmt: skip
        self.process = subprocess.Popen(
            [binary, str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        process = self.process
        failed = SystemExit(f"bench: the sentinel did not start (see {self.directory})")
        try:  # an exited sentinel ends the wait early: it will not learn the master any more
            wait_until(lambda: process.poll() is not None or self._knows_master(), 20, "it", every=0.05)
        except AssertionError:
            self.stop()
            raise failed from None
        if process.poll() is not None:
            self.stop()
            raise failed

    def _knows_master(self) -> bool:
        try:
            client = redis.Redis(port=self.port, socket_timeout=2)
            try:
                return bool(client.sentinel_get_master_addr_by_name(MASTER_NAME))
            finally:
                client.close()
        except redis.RedisError:
            return False

    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/{MASTER_NAME}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclass(frozen=True)
class SentinelVsDirect:
    entries_per_round: int
    direct: tuple[float, ...]  # median entries/s of each daemon run
    sentinel: tuple[float, ...]

    @property
    def ratio(self) -> float:
        return statistics.median(self.sentinel) / statistics.median(self.direct)

    def markdown(self) -> str:
        within = "met" if abs(self.ratio - 1) <= 0.10 else "NOT met"
        runs = len(self.direct)
        direct, through = statistics.median(self.direct), statistics.median(self.sentinel)
        return "\n".join(
            [
                "| metric | value |",
                "| --- | --- |",
                f"| entries per round | {self.entries_per_round:,} |",
                f"| direct `redis://` (median of {runs} daemon runs) | {direct:,.0f} /s |",
                f"| `redis+sentinel://` (median of {runs} daemon runs) | {through:,.0f} /s |",
                f"| runs, direct (entries/s) | {', '.join(f'{rate:,.0f}' for rate in self.direct)} |",
                f"| runs, Sentinel (entries/s) | {', '.join(f'{rate:,.0f}' for rate in self.sentinel)} |",
                f"| Sentinel / direct | {self.ratio:.3f} |",
                f"| target (issue 11): within 10 % | {within} |",
            ]
        )


def sentinel_vs_direct(
    direct_url: str, master_port: int, entries: int = 50_000, rounds: int = 3, runs: int = 3
) -> SentinelVsDirect:
    """``runs`` daemon runs per URL, alternating; each run's figure is its median over ``rounds``."""
    sentinel = PrivateSentinel(master_port)
    direct: list[float] = []
    through: list[float] = []
    try:
        for _ in range(runs):
            direct.append(daemon_tail_throughput(direct_url, entries=entries, rounds=rounds).median)
            through.append(
                daemon_tail_throughput(sentinel.url(), entries, rounds, write_url=direct_url).median
            )
    finally:
        sentinel.stop()
    return SentinelVsDirect(entries, tuple(direct), tuple(through))
