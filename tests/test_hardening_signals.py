"""Hardening, signals (issue 6, item 8): SIGTERM during the start-up backfill of a large stream.

300,000 entries, windows large enough that the backfill has to read all of them. A first daemon
measures how long the whole backfill takes; a second one gets SIGTERM while its Redis connection is
seen running XREVRANGE (CLIENT LIST), i.e. in the middle of the backfill, and must exit 0 within 5 s,
having abandoned the backfill (``daemon.stopped clean=true``) rather than being cut off by the timeout.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
from conftest import RedisServer
from hardening_kit import COMPACT_VARIANTS, DaemonProcess, xadd_many

ENTRIES = 300_000
BIG_WINDOWS = ["--window", "1000000", "--baseline", "1000000"]
TRADING_BOT = {
    b"event_type": b"trade.intent",
    b"payload": b'{"symbol": "BTCUSDT", "side": "BUY", "confidence": 0.61, "source": "trading-bot"}',
    b"timestamp": b"2026-01-10T05:47:45.847268",
    b"source": b"trading-bot",
}


def backfilling(client: redis.Redis) -> bool:
    """True while some connection's latest command is XREVRANGE: the daemon is mid-backfill."""
    clients: list[dict[str, str]] = client.client_list()
    return any(item.get("cmd") == "xrevrange" for item in clients)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["accepted", "skipped"])
def test_sigterm_during_startup_backfill_exits_0_within_5s(
    kind: str, fresh_redis: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    """``accepted``: healthy events; ``skipped``: trading-bot entries that never fill a window, so the
    backfill reads the whole stream and must still notice the signal."""
    admin = fresh_redis.admin()
    fields = COMPACT_VARIANTS if kind == "accepted" else [TRADING_BOT]
    xadd_many(admin, stream_key, ENTRIES, fields=fields)

    full = DaemonProcess(fresh_redis.url, stream_key, tmp_path / "full", args=BIG_WINDOWS)
    try:
        started = time.monotonic()
        full.start()
        done = full.wait_until(
            lambda m: m.get("entries_read_total") == ENTRIES, timeout=120, what="the whole backfill"
        )
        backfill_seconds = time.monotonic() - started
        expected = ENTRIES if kind == "accepted" else 0
        assert done.value("window_events", window="post") == expected
        assert full.terminate()[0] == 0
    finally:
        full.close()

    interrupted = DaemonProcess(fresh_redis.url, stream_key, tmp_path / "interrupted", args=BIG_WINDOWS)
    try:
        interrupted.start(wait_http=False)
        # a fine cadence: the SIGTERM must land while the backfill is still running
        interrupted.wait_for(
            lambda: backfilling(admin), 30, "the backfill to show in CLIENT LIST", every=0.005
        )
        code, seconds = interrupted.terminate(within=30)
    finally:
        interrupted.close()
    events = interrupted.logs()
    names = [str(line.get("event")) for line in events]
    print(f"{kind}: backfill {backfill_seconds:.2f}s; SIGTERM mid-backfill: exit {code} in {seconds:.2f}s")
    assert code == 0
    assert seconds < 5.0
    assert "daemon.ready" not in names, "the SIGTERM was meant to land before the backfill finished"
    assert "stream.backfilled" not in names
    stopped = [line for line in events if line.get("event") == "daemon.stopped"]
    assert stopped and stopped[0]["clean"] is True, "the backfill ignored the signal until the timeout"
