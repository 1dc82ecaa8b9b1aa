"""Hardening, Redis faults (issue 6, items 1-3): the daemon under SIGKILLed Redis, trims, DEL and gaps.

Every test runs the real ``quantum-gate run`` as a child process against a private ``redis-server``
and asserts only what an operator sees: ``/metrics`` over HTTP and the JSON log lines.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from conftest import RedisServer
from hardening_kit import COMPACT_VARIANTS, DaemonProcess, Metrics, xadd_many

from quantum_gate.stream_gaps import GapTracker, StreamInfo
from quantum_gate.streamids import StreamId, parse_stream_id

FAST_RECONNECT = {"QUANTUM_GATE_REDIS_BACKOFF_MAX_SECONDS": "0.5"}
XINFO_WAIT = 20.0  # the daemon reads XINFO STREAM every 5 s; allow several rounds on a busy CI machine


def first_ids(client: redis.Redis, key: str, count: int) -> list[StreamId]:
    entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(key, count=count)  # type: ignore[assignment]
    return [parse_stream_id(raw_id) for raw_id, _ in entries]


def accepted(metrics: Metrics) -> float:
    return metrics.get("events_accepted_total") or 0.0


def assert_exact(metrics: Metrics, total: int) -> None:
    """Every written entry accepted once, in the post window, nothing skipped, lost or read twice."""
    assert metrics.value("events_accepted_total") == total
    assert metrics.value("entries_read_total") == total
    assert metrics.value("window_events", window="post") == total
    assert metrics.skipped_total() == 0
    assert metrics.value("events_lost_total") == 0


def barrier(daemon: DaemonProcess, server: RedisServer, key: str, total: int) -> Metrics:
    """One more entry, then wait for it: the tail is sequential, so anything read twice (or still to
    come) before that entry shows in the counters by the time it has been accepted."""
    xadd_many(server.admin(), key, 1)
    return daemon.wait_until(lambda m: accepted(m) >= total + 1, timeout=30, what=f"{total + 1} accepted")


# ---- item 1: Redis SIGKILLed mid-stream, restarted from its append-only file ----------------------


def test_redis_sigkill_mid_stream_and_aof_restart_loses_and_doubles_nothing(
    own_redis: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    admin = own_redis.admin()
    xadd_many(admin, stream_key, 500)  # a backlog for the start-up backfill
    daemon = DaemonProcess(
        own_redis.url, stream_key, tmp_path / "daemon", args=["--window", "100000"], env=FAST_RECONNECT
    )
    try:
        daemon.start()
        daemon.wait_until(lambda m: accepted(m) == 500, timeout=30, what="the backfill")

        # Mid-stream: the daemon is frozen inside its XREAD BLOCK, Redis answers it with the first of
        # 20,000 new entries (they sit in the daemon's socket) and is SIGKILLed with the rest unread.
        daemon.pause()
        xadd_many(admin, stream_key, 20_000)
        own_redis.kill()
        daemon.resume()
        down = daemon.wait_until(lambda m: m.get("redis_up") == 0, timeout=30, what="redis_up 0")
        assert accepted(down) < 20_500, "the kill was meant to land before the daemon read everything"
        daemon.assert_alive()

        own_redis.start()  # same port, same directory: Redis replays its AOF
        assert admin.xlen(stream_key) == 20_500, "appendfsync always keeps every acknowledged XADD"
        daemon.wait_until(lambda m: m.get("redis_up") == 1, timeout=30, what="redis_up 1 again")
        xadd_many(admin, stream_key, 5_000)  # and the stream goes on after the outage

        # A second, idle outage: killed while the daemon waits in XREAD BLOCK with nothing unread.
        daemon.wait_until(lambda m: accepted(m) >= 25_500, timeout=60, what="25,500 accepted")
        own_redis.kill()
        daemon.wait_until(lambda m: m.get("redis_up") == 0, timeout=30, what="redis_up 0 (idle kill)")
        own_redis.start()
        daemon.wait_until(lambda m: m.get("redis_up") == 1, timeout=30, what="redis_up 1 (idle kill)")

        final = barrier(daemon, own_redis, stream_key, 25_500)
        assert_exact(final, 25_501)
        events = daemon.log_events()
        assert events.count("stream.disconnected") == 2
        assert events.count("stream.reconnected") >= 3  # the first connection, then one per outage
    finally:
        daemon.close()


# ---- item 2: XTRIM MAXLEN 0 and DEL under a running daemon (the seed's incident) ---------------------


def test_xtrim_to_zero_and_del_keep_windows_count_resets_and_later_entries(
    redis_server: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    admin = redis_server.admin()
    daemon = DaemonProcess(redis_server.url, stream_key, tmp_path / "daemon", args=["--window", "10000"])
    try:
        # The stream does not exist yet: that is not a reset (nothing was deleted under us).
        daemon.start()
        first = daemon.wait_until(lambda m: m.get("stream_length") == 0, timeout=XINFO_WAIT, what="XINFO")
        assert first.value("stream_resets_total") == 0

        total = xadd_many(admin, stream_key, 300)
        daemon.wait_until(
            lambda m: accepted(m) == total and m.get("stream_length") == total,
            timeout=XINFO_WAIT,
            what="300 read and seen by XINFO",
        )

        def trim_to_zero() -> None:
            admin.xtrim(stream_key, maxlen=0, approximate=False)

        def delete() -> None:
            admin.delete(stream_key)

        steps = [
            ("XTRIM MAXLEN 0, producer keeps writing at once", trim_to_zero, True),
            ("XTRIM MAXLEN 0, stream left empty", trim_to_zero, False),
            ("DEL, key left missing", delete, False),
            ("DEL, producer recreates it at once", delete, True),
        ]
        for resets, (what, command, refill_at_once) in enumerate(steps, start=1):
            read_before = total
            command()
            if refill_at_once:
                total += xadd_many(admin, stream_key, 20)
            seen = daemon.wait_until(
                lambda m, n=resets: m.get("stream_resets_total") == n,  # type: ignore[misc]
                timeout=XINFO_WAIT,
                what=f"reset {resets}: {what}",
            )
            # The windows keep everything read before the reset.
            assert seen.value("window_events", window="post") >= read_before, what
            if not refill_at_once:
                total += xadd_many(admin, stream_key, 20)
            after = daemon.wait_until(
                lambda m, t=total: accepted(m) == t and m.get("stream_length") == 20,  # type: ignore[misc]
                timeout=XINFO_WAIT,
                what=f"the entries after reset {resets} counted",
            )
            assert after.value("window_events", window="post") == total, what
            assert after.value("stream_resets_total") == resets, what
            assert after.value("events_lost_total") == 0, what

        final = barrier(daemon, redis_server, stream_key, total)
        assert_exact(final, total + 1)
        assert final.value("stream_resets_total") == 4
        assert daemon.log_events().count("stream.reset") == 4
    finally:
        daemon.close()


# ---- item 3: the stream trimmed past the last ID read ------------------------------------------------


def info(length: int, added: int, first: int | None, last: int | None) -> StreamInfo:
    return StreamInfo(
        length=length,
        entries_added=added,
        last_generated=StreamId(last, 0) if last is not None else StreamId(added, 0),
        first=StreamId(first, 0) if first is not None else None,
        last=StreamId(last, 0) if last is not None else None,
    )


def test_gap_tracker_counts_what_was_trimmed_unread_only_when_caught_up() -> None:
    gaps = GapTracker()
    assert gaps.observe(info(100, 100, 1, 100), StreamId(100, 0)) is None  # synced at 100 added
    # 500 added while we lag; the stream trimmed to its newest 200 (IDs 401..600).
    gaps.note_read(1)  # the reply already in flight before the trim
    assert gaps.observe(info(200, 600, 401, 600), StreamId(101, 0)) is None  # lagging: no verdict yet
    gaps.note_read(200)
    assert gaps.observe(info(200, 600, 401, 600), StreamId(600, 0)) == "lost"
    assert (gaps.lost, gaps.resets) == (299, 0)
    # Caught up with nothing missed: no further loss.
    gaps.note_read(5)
    assert gaps.observe(info(205, 605, 401, 605), StreamId(605, 0)) is None
    assert gaps.lost == 299


@pytest.mark.parametrize(
    ("readings", "resets"),
    [
        pytest.param([None], 0, id="never-existed-is-not-a-reset"),
        pytest.param([(10, 10, 1, 10), None, None], 1, id="deleted-counted-once"),
        pytest.param([(10, 10, 1, 10), (0, 10, None, None), (0, 10, None, None)], 1, id="emptied"),
        pytest.param([(10, 10, 1, 10), (3, 3, 11, 13)], 1, id="recreated-between-readings"),
        pytest.param([(300, 300, 1, 300), (5, 305, 301, 305)], 1, id="trimmed-to-0-and-refilled"),
        pytest.param([(300, 300, 1, 300), (300, 310, 11, 310)], 0, id="ordinary-maxlen-trim"),
        pytest.param([(300, 300, 1, 300), (300, 600, 301, 600)], 0, id="burst-pushes-all-old-out"),
    ],
)
def test_gap_tracker_resets(
    readings: list[tuple[int, int, int | None, int | None] | None], resets: int
) -> None:
    gaps = GapTracker()
    added = 0
    for reading in readings:
        current = info(*reading) if reading is not None else None
        if current is not None and current.entries_added is not None:  # the daemon read all of them
            fresh = current.entries_added - added
            gaps.note_read(fresh if fresh >= 0 else current.entries_added)
            added = current.entries_added
        gaps.observe(current, current.last_generated if current is not None else None)
    assert gaps.resets == resets
    assert gaps.lost == 0


def test_trim_past_last_read_id_while_daemon_is_frozen_is_counted_lost(
    redis_server: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    admin = redis_server.admin()
    xadd_many(admin, stream_key, 100)
    daemon = DaemonProcess(redis_server.url, stream_key, tmp_path / "daemon", args=["--window", "10000"])
    try:
        daemon.start()
        # The first XINFO reading after the backfill is a sync point: read everything, 100 added.
        daemon.wait_until(
            lambda m: accepted(m) == 100 and m.get("stream_length") == 100,
            timeout=XINFO_WAIT,
            what="the backfill and the first XINFO reading",
        )
        daemon.pause()  # the daemon lags: SIGSTOPped inside XREAD BLOCK
        # 500 entries and a trim to the newest 200 in one transaction, so Redis answers the blocked
        # XREAD only after the trim: 300 entries vanish unread, deterministically.
        pipe = admin.pipeline(transaction=True)
        for index in range(500):
            pipe.xadd(stream_key, COMPACT_VARIANTS[index % len(COMPACT_VARIANTS)])  # type: ignore[arg-type]
        pipe.xtrim(stream_key, maxlen=200, approximate=False)
        pipe.execute()
        daemon.resume()
        seen = daemon.wait_until(
            lambda m: m.get("events_lost_total") == 300, timeout=XINFO_WAIT, what="300 counted lost"
        )
        assert accepted(seen) == 300  # 100 + the 200 survivors
        assert seen.value("entries_read_total") + seen.value("events_lost_total") == 600
        assert seen.value("stream_resets_total") == 0
        assert "stream.gap" in daemon.log_events()
        final = barrier(daemon, redis_server, stream_key, 300)
        assert final.value("events_lost_total") == 300
        assert final.value("events_accepted_total") == 301
    finally:
        daemon.close()


def test_trim_past_cutover_while_daemon_is_down_flags_the_post_window(
    redis_server: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    admin = redis_server.admin()
    xadd_many(admin, stream_key, 300)
    cutover = str(first_ids(admin, stream_key, 100)[-1])  # the 100th entry
    admin.xtrim(stream_key, maxlen=250, approximate=False)  # trimmed, but only before it
    first = DaemonProcess(
        redis_server.url, stream_key, tmp_path / "first", after=cutover, args=["--window", "10000"]
    )
    try:
        first.start()
        seen = first.wait_until(
            lambda m: m.get("post_window_truncated") is not None, timeout=XINFO_WAIT, what="XINFO reading"
        )
        assert seen.value("post_window_truncated") == 0
        assert seen.value("window_events", window="post") == 201
        assert first.terminate()[0] == 0
    finally:
        first.close()
    # While it is down: 500 more, trimmed to the newest 200, so every post-cutover entry it had is gone.
    xadd_many(admin, stream_key, 500)
    admin.xtrim(stream_key, maxlen=200, approximate=False)
    second = DaemonProcess(
        redis_server.url, stream_key, tmp_path / "second", after=cutover, args=["--window", "10000"]
    )
    try:
        second.start()
        flagged = second.wait_until(
            lambda m: m.get("post_window_truncated") == 1, timeout=XINFO_WAIT, what="truncation flagged"
        )
        assert flagged.value("window_events", window="post") == 200
    finally:
        second.close()
