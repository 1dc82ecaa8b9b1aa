"""The tail thread (docs/architecture.md, "Thread model"): every Redis command runs here.

It connects (``RedisLink`` keeps what it knows of the node), adopts pending cutovers through the
cutover tracker, reads with XREAD BLOCK after the last ID and routes each entry into the post or pre
window under the lock, counting it once (``TailProgress``). Every few seconds, and after a quiet block,
it reads XINFO: gaps, resets, retention, and a stream recreated below our position (the rewind).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import redis
import structlog

from quantum_gate.backfill import Stopping
from quantum_gate.config import Settings
from quantum_gate.connection import open_client
from quantum_gate.contract import Skip
from quantum_gate.cutover import Cutover
from quantum_gate.cutover_tracker import CutoverTracker
from quantum_gate.daemon_state import IngestorState
from quantum_gate.redis_link import RedisLink, redis_detail
from quantum_gate.redis_state import describe_redis_error
from quantum_gate.shared_windows import SharedWindows
from quantum_gate.stream import (
    RawEntry,
    entry_id,
    limits_from,
    parse_raw,
    read_after,
)
from quantum_gate.stream_watch import StreamWatch
from quantum_gate.streamids import StreamId
from quantum_gate.tail_progress import TailProgress

log = structlog.get_logger("quantum_gate")
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
XINFO_EVERY_SECONDS = 5.0

EventsArrived = Callable[[Cutover | None, int, bool], None]


class Ingestor:
    """The tail thread and what it routes. It never evaluates: it tells the evaluator what arrived
    (``events_arrived``) and asks for the first evaluation once caught up (``request_evaluation``)."""

    def __init__(
        self,
        settings: Settings,
        windows: SharedWindows,
        progress: TailProgress,
        tracker: CutoverTracker,
        stopping: threading.Event,
        *,
        clock: Callable[[], float],
        request_evaluation: Callable[[], None],
        events_arrived: EventsArrived,
    ) -> None:
        self.settings = settings
        self.windows = windows
        self.lock = windows.lock
        self.progress = progress
        self.tracker = tracker
        self.stopping = stopping
        self.clock = clock
        self.request_evaluation = request_evaluation
        self.events_arrived = events_arrived  # after each batch: (cutover, post window size, any accepted)
        self.limits = limits_from(settings)
        self.link = RedisLink(settings, windows.lock)
        self.watch = StreamWatch(settings, windows, progress, self.link, clock)
        self.ready = threading.Event()  # set once the first catch-up is done (or Redis is known down)

    def state(self) -> IngestorState:
        with self.lock:
            progress, link, watch = self.progress, self.link, self.watch
            return IngestorState(
                ready=self.ready.is_set(),
                redis_up=link.up,
                redis_condition=link.condition,
                stream_type=link.stream_type,
                endpoint=link.endpoints.endpoint,
                failovers_total=link.endpoints.failovers,
                rollbacks_total=watch.rollbacks_total,
                replica=link.replica,
                last_id=progress.last_id,
                accepted_total=progress.accepted_total,
                entries_read_total=progress.entries_read_total,
                refused_total=progress.refused_total,
                lost_total=progress.gaps.lost,
                resets_total=progress.gaps.resets,
                synced_added=progress.gaps.synced_added,
                last_event_ms=progress.last_event_ms,
                last_entry_ms=progress.last_entry_ms,
                stream_length=watch.stream_length,
                post_window_truncated=watch.post_window_truncated,
                retention=watch.retention,
                skipped_total=dict(progress.skipped_total),
            )

    def start(self) -> threading.Thread:
        tail = threading.Thread(target=self.tail_forever, name="tail", daemon=True)
        tail.start()
        return tail

    def tail_forever(self) -> None:
        backoff = 0.5
        client: redis.Redis | None = None
        next_xinfo = 0.0
        while not self.stopping.is_set():
            try:
                if client is None:
                    client, endpoint = open_client(self.settings)
                    client.ping()
                    self.watch.connected(client, endpoint)
                    self._set_redis_up(True)
                self.catch_up(client)
                now = time.monotonic()
                if now >= next_xinfo:
                    self.watch.observe(client)
                    next_xinfo = now + XINFO_EVERY_SECONDS
                if not self._read_once(client):  # a quiet block: maybe the stream was recreated below
                    next_xinfo = 0.0  # our position; look now
                self._set_redis_up(True)  # also after a RedisError (WRONGTYPE, NOPERM) kept the client
                backoff = 0.5
            except Stopping:
                break
            except REDIS_ERRORS as exc:
                self._set_redis_up(False, exc, self.link.condition_of(client, exc))
                if client is not None:
                    client.close()
                    client = None
                self.ready.set()  # READY means "serving what we know"; redis_up 0 says the rest
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, self.settings.redis.backoff_max_seconds)
            except redis.RedisError as exc:  # e.g. NOPERM or WRONGTYPE: say so, keep trying slowly
                self._set_redis_up(False, exc, self.link.condition_of(client, exc))
                if client is not None and self.link.follows_sentinel():
                    client.close()  # e.g. a demoted master's UNBLOCKED: ask the sentinels again
                    client = None
                self.ready.set()  # or Type=notify would never see READY and kill us in a loop
                self.stopping.wait(self.settings.redis.backoff_max_seconds)
            except Exception as exc:  # broad on purpose: e.g. a credential file gone: never die silently
                self._set_redis_up(False, exc, describe_redis_error(exc))
                log.error("stream.failed", error=type(exc).__name__, detail=redis_detail(exc), exc_info=exc)
                if client is not None:
                    client.close()
                    client = None
                self.ready.set()
                self.stopping.wait(self.settings.redis.backoff_max_seconds)
        if client is not None:
            client.close()

    def _set_redis_up(self, up: bool, exc: BaseException | None = None, condition: str | None = None) -> None:
        self.link.set_state(up, self.progress.last_id, exc, condition)

    def _read_once(self, client: redis.Redis) -> bool:
        """One XREAD BLOCK after the last ID read; False when the block passed with nothing new."""
        entries = read_after(
            client,
            self.settings.redis.stream,
            self.progress.last_id or StreamId(0, 0),
            self.settings.redis.read_count,
            self.settings.redis.block_ms,
        )
        if entries:
            self.ingest(entries)
        return bool(entries)

    def catch_up(self, client: redis.Redis) -> None:
        """Start-up and cutover work that needs Redis: the first position, backfills, cutovers."""
        self.tracker.adopt_pending(client)
        if self.progress.last_id is None:
            newest: list[RawEntry] = client.xrevrange(self.settings.redis.stream, count=1)  # type: ignore[assignment]
            with self.lock:
                self.progress.last_id = (entry_id(newest[0][0]) if newest else None) or StreamId(0, 0)
                # No cutover yet: its backfill counts up to here, the tail what comes after.
                self.progress.backlog_end = self.progress.last_id
        if not self.ready.is_set():
            self.ready.set()
            self.request_evaluation()

    def ingest(self, entries: list[RawEntry]) -> None:
        """Route one XREAD batch into the windows under the lock, counting each entry once; then tell
        the evaluator what arrived (it decides whether, and when, to evaluate)."""
        progress, windows = self.progress, self.windows
        with self.lock:
            cutover = windows.cutover
            accepted_before = progress.accepted_total
            for raw in entries:
                stream_id, parsed = parse_raw(raw, self.limits)
                progress.entries_read_total += 1
                if stream_id is None:
                    progress.skipped_total[parsed.reason] += 1  # type: ignore[union-attr]
                    continue
                progress.last_id = stream_id
                progress.last_entry_ms = stream_id.ms
                window = (
                    windows.post if cutover is not None and stream_id >= cutover.stream_id else windows.pre
                )
                if isinstance(parsed, Skip):
                    progress.skipped_total[parsed.reason] += 1
                    progress.refused_total += parsed.refused_keys
                    if cutover is not None:
                        window.note_skip(parsed, stream_id)
                    continue
                progress.accepted_total += 1
                progress.last_event_ms = stream_id.ms
                if cutover is not None:
                    refused_before = window.counters.refused_keys
                    window.add(parsed)
                    progress.refused_total += window.counters.refused_keys - refused_before
                else:  # not windowed: only the contract's own refusals are known
                    progress.refused_total += parsed.refused_keys
            progress.gaps.note_read(len(entries))
            post_events = len(windows.post)
            fresh = progress.accepted_total != accepted_before
        self.events_arrived(cutover, post_events, fresh)
