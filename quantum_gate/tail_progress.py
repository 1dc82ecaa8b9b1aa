"""Where the tail is in the stream and what it counted (docs/architecture.md, "Counting").

One ``TailProgress`` is shared by the ingestor (live entries, resets, rollbacks) and the cutover
tracker (the first backfill counts what it read), and guarded by the windows' lock.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from quantum_gate.contract import Event, Skip
from quantum_gate.stream_gaps import GapTracker
from quantum_gate.streamids import SEQ_BITS, StreamId
from quantum_gate.windows import Window


class BacklogCount:
    """What a backfill read up to ``upto``, the tail's starting position when the cutover became known
    only after the tail had started: those entries are not counted yet; the tail counted the newer."""

    def __init__(self, upto: StreamId) -> None:
        self.upto = upto
        self.accepted = 0
        self.skipped: Counter[str] = Counter()
        self.refused = 0

    def hooks(self, window: Window) -> dict[str, Any]:
        """``fill_newest`` callbacks for one window. Each entry's refused keys are the growth of the
        window's lifetime count since the previous entry (the contract's and the vocabulary cap's)."""
        seen = window.counters.refused_keys

        def take(stream_id: StreamId | None) -> bool:
            nonlocal seen
            grown, seen = window.counters.refused_keys - seen, window.counters.refused_keys
            inside = stream_id is None or stream_id <= self.upto
            self.refused += grown if inside else 0
            return inside

        def on_accepted(event: Event) -> None:
            self.accepted += take(event.stream_id)

        def on_skip(stream_id: StreamId | None, skip: Skip) -> None:
            if take(stream_id):
                self.skipped[skip.reason] += 1

        return {"on_accepted": on_accepted, "on_skip": on_skip}


class TailProgress:
    """The stream position and the lifetime counts (every attribute under the windows' lock)."""

    def __init__(self) -> None:
        self.last_id: StreamId | None = None
        # The tail's first position when it started before any cutover was known: the entries up to
        # it are counted by the first backfill, those after it by the tail as they arrive.
        self.backlog_end: StreamId | None = None
        self.accepted_total = 0
        self.entries_read_total = 0
        self.skipped_total: Counter[str] = Counter()
        self.refused_total = 0  # each refused model key once (contract limits or the max_models cap)
        self.last_event_ms: int | None = None
        self.last_entry_ms: int | None = None
        self.gaps = GapTracker()

    def advance(self, newest: StreamId | None) -> None:
        """A backfill read up to ``newest``: the tail goes on from there unless it is further already."""
        if newest is not None and (self.last_id is None or newest > self.last_id):
            self.last_id = newest
            self.last_entry_ms = newest.ms

    def count_backfill(self, post: Window, pre: Window, read: int, backlog: BacklogCount | None) -> None:
        """The first backfill counts what it read (docs/metrics.md): all of it when nothing was tailed
        yet, or, when the cutover became known after the tail had started, the entries up to the tail's
        starting position (the tail counted those after it as they arrived)."""
        keys = np.concatenate([pre.keys(), post.keys()])
        if backlog is None:
            self.accepted_total += int(keys.size)
            self.entries_read_total += read
            for window in (post, pre):
                self.skipped_total.update(window.counters.skipped)
                self.refused_total += window.counters.refused_keys
        else:
            keys = keys[keys <= backlog.upto.packed_clamped()]
            self.accepted_total += backlog.accepted
            self.entries_read_total += backlog.accepted + sum(backlog.skipped.values())
            self.skipped_total.update(backlog.skipped)
            self.refused_total += backlog.refused
        if keys.size:
            self.last_event_ms = max(self.last_event_ms or 0, int(keys.max()) >> SEQ_BITS)
