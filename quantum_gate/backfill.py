"""Rebuilding both windows from Redis for a cutover (docs/architecture.md, "The stream is the source of
truth"): the paged backfill, the first backfill's count (docs/architecture.md, "Counting"), and the
adoption of the rebuilt pair. Runs on the tail thread, which owns the connection.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
import structlog

from quantum_gate.config import Settings
from quantum_gate.cutover import Cutover
from quantum_gate.logfields import cutover_fields
from quantum_gate.shared_windows import SharedWindows
from quantum_gate.stream import Backfill, fill_baseline, fill_post, load_windows
from quantum_gate.tail_progress import BacklogCount, TailProgress

log = structlog.get_logger("quantum_gate")


class Stopping(Exception):  # noqa: N818 - control flow, not an error
    """Raised inside a backfill to abandon it when the daemon is asked to stop."""


def backfill(
    client: redis.Redis,
    settings: Settings,
    cutover: Cutover,
    windows: SharedWindows,
    progress: TailProgress,
    *,
    on_page: Callable[[], None],
) -> None:
    """Both windows rebuilt for ``cutover`` and adopted with it; the first backfill (no cutover yet)
    counts what it read, later ones re-read entries that were counted already."""
    post, pre = windows.new_pair()  # private until adopted below; guarded from then on
    with windows.lock:
        counting = windows.cutover is None
        upto = progress.backlog_end
    backlog = BacklogCount(upto) if counting and upto is not None else None
    started = time.monotonic()
    if backlog is None:
        result = load_windows(client, settings, cutover.stream_id, post, pre, on_page=on_page)
    else:  # window by window, so each entry's refused keys are read off its own window
        newer = fill_post(client, settings, cutover.stream_id, post, on_page=on_page, **backlog.hooks(post))
        older = fill_baseline(client, settings, cutover.stream_id, pre, on_page=on_page, **backlog.hooks(pre))
        result = Backfill(read=newer.read + older.read, newest=newer.newest or older.newest)
    with windows.lock:
        windows.replace(post, pre, cutover)
        if counting:
            progress.count_backfill(post, pre, result.read, backlog)
        progress.advance(result.newest)
    log.info(
        "stream.backfilled",
        **cutover_fields(cutover),
        post_events=len(post),
        baseline_events=len(pre),
        entries_read=result.read,
        seconds=round(time.monotonic() - started, 3),
    )
