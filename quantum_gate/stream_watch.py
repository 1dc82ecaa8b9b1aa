"""What the stream itself says about the tail's position (docs/architecture.md, "Stream resets"):
the XINFO reading every few seconds (gaps, resets, length, retention), a stream recreated below our
position (the rewind), and a node whose stream ends before what we counted (a failover's rollback).

Runs on the tail thread; what it records is read under the windows' lock.
"""

from __future__ import annotations

from collections.abc import Callable

import redis
import structlog

from quantum_gate.config import Settings
from quantum_gate.connection import Endpoint
from quantum_gate.failover import detect_rollback
from quantum_gate.redis_link import RedisLink
from quantum_gate.retention import Retention, RetentionWatch, retention_for_windows
from quantum_gate.shared_windows import SharedWindows
from quantum_gate.stream import entry_id, previous_id, revrange_pages, stream_info
from quantum_gate.stream_gaps import GapTracker, StreamInfo
from quantum_gate.streamids import StreamId
from quantum_gate.tail_progress import TailProgress

log = structlog.get_logger("quantum_gate")


class StreamWatch:
    """XINFO, resets, rewinds and rollbacks: the position's bookkeeping against the stream itself."""

    def __init__(
        self,
        settings: Settings,
        windows: SharedWindows,
        progress: TailProgress,
        link: RedisLink,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.windows = windows
        self.lock = windows.lock
        self.progress = progress
        self.link = link
        self.clock = clock
        self.rollbacks_total = 0
        self.stream_length: int | None = None
        self.post_window_truncated: bool | None = None
        self.retention: Retention | None = None
        self.retention_watch = RetentionWatch()

    def connected(self, client: redis.Redis, endpoint: Endpoint) -> None:
        """After every (re)connection: note a failover, and if this node's stream ends before the last
        ID already counted (writes the old master acknowledged but never replicated), count the rollback
        and read on from this node's end, so new entries with lower IDs than the lost ones are not
        skipped. The windows keep what they hold: nothing is counted twice, nothing re-read."""
        self.link.connected(endpoint)
        info = stream_info(client, self.settings.redis.stream)
        progress = self.progress
        with self.lock:
            rollback = detect_rollback(info, progress.last_id)
            if rollback is None:
                return
            self.rollbacks_total += 1
            progress.last_id = rollback.resume_after
            # The reset/gap bookkeeping starts over on this node: its entries_added is lower than the
            # old master's, which GapTracker would otherwise also report as a reset.
            progress.gaps = GapTracker(lost=progress.gaps.lost, resets=progress.gaps.resets)
            beyond = sum(
                int((window.keys() > rollback.resume_after.packed()).sum())
                for window in (self.windows.post, self.windows.pre)
            )
        log.warning(
            "stream.rollback",
            stream=self.settings.redis.stream,
            address=endpoint.address,
            counted_up_to=str(rollback.counted_up_to),
            stream_ends_at=str(rollback.resume_after),
            window_events_beyond_end=beyond,
            rollbacks=self.rollbacks_total,
        )

    def observe(self, client: redis.Redis) -> None:
        """The XINFO reading: the node still current, gaps and resets, the stream's length and what its
        trimming leaves of the windows (retention); a stream recreated below our position is rewound."""
        self.link.check_endpoint(client)
        info = stream_info(client, self.settings.redis.stream)
        rewound_from = self._rewind_after_reset(client, info)
        progress, windows = self.progress, self.windows
        with self.lock:
            self.link.stream_type = "stream" if info is not None else "none"
            happened = progress.gaps.observe(info, progress.last_id)
            if rewound_from is not None and happened != "reset":
                progress.gaps.resets += 1  # recreated between two readings, unnoticed by the counts alone
                happened = "reset"
            self.stream_length = info.length if info else 0
            cutover = windows.cutover
            if cutover is not None and info is not None and info.first is not None:
                self.post_window_truncated = (
                    info.first > cutover.stream_id and info.entries_added != info.length
                )
            self.retention = retention_for_windows(
                info,
                post=windows.post,
                pre=windows.pre,
                cutover=cutover,
                min_events=self.settings.gate.min_events,
                rate_per_minute=windows.rate(self.clock),
                now_ms=int(self.clock() * 1000),
            )
        self.retention_watch.observe(self.retention, self.settings.redis.stream)
        if happened == "reset":
            log.warning(
                "stream.reset",
                stream=self.settings.redis.stream,
                resets=progress.gaps.resets,
                exists=info is not None,
                rewound_from=str(rewound_from) if rewound_from is not None else None,
                resume_after=str(progress.last_id) if rewound_from is not None else None,
            )
        elif happened == "lost":
            log.warning("stream.gap", stream=self.settings.redis.stream, lost_total=progress.gaps.lost)

    def _rewind_after_reset(self, client: redis.Redis, info: StreamInfo | None) -> StreamId | None:
        """A stream whose newest ID lies below the last ID we read was recreated under us (a restore
        with explicit IDs, a failover to a replica that lacks our newest entries and whose clock is
        behind): XREAD after our position would never return its new entries. Move the position back
        to the newest entry of the stream we already hold (``_newest_held``), or to just before the
        cutover when we hold none of it (``0-0`` without a cutover): every entry after that is read
        and counted once, and none we counted before is counted again. Returns the position we left,
        or None. The windows keep what they hold."""
        progress, cutover = self.progress, self.windows.cutover
        if info is None or progress.last_id is None:
            return None
        top = info.last_generated or info.last
        if top is None or top >= progress.last_id:
            return None
        start = previous_id(cutover.stream_id) if cutover is not None else StreamId(0, 0)
        if start >= progress.last_id:
            return None
        resume = self._newest_held(client, start) if cutover is not None else start
        with self.lock:
            left, progress.last_id = progress.last_id, resume
            progress.gaps.synced_added = None  # the new stream's counts start over
            progress.gaps.read_since_sync = 0
        return left

    def _newest_held(self, client: redis.Redis, start: StreamId) -> StreamId:
        """The newest entry between the cutover and our position that the post window already holds
        (an event or a noted skip: same ID, same entry), walking the stream newest-first; an entry
        older than a full window's oldest event counts as held (read, or too old to matter). ``start``
        when there is none: the stream is new from the cutover on."""
        with self.lock:
            post, cutover = self.windows.post, self.windows.cutover
            held = post.held_keys()
            floor = int(post.keys().min()) if len(post) >= post.capacity else None
            upper, lower = str(self.progress.last_id), str(cutover.stream_id) if cutover else "-"
        key, page_size = self.settings.redis.stream, self.settings.redis.page_size
        for page in revrange_pages(client, key, upper, lower, page_size):
            for raw in page:
                found = entry_id(raw[0]) if raw[0] is not None else None
                if found is None:
                    continue
                packed = found.packed_clamped()
                if packed in held or (floor is not None and packed < floor):
                    return found
        return start
