"""The windows the daemon's parts share: the post and pre windows, the cutover that splits them, and the
one lock guarding all three (docs/architecture.md, "Thread model").

The ingestor routes entries into the windows, the cutover tracker replaces them when it adopts a
cutover, the evaluator copies them (``frozen``) and evaluates the copies outside the lock. Whoever
changes the cutover does it through ``set_cutover``, so the verdict served for the previous state is
withdrawn at that moment (the evaluator listens).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from quantum_gate.config import Settings
from quantum_gate.cutover import Cutover
from quantum_gate.daemon_state import WindowsState
from quantum_gate.pipeline import new_windows, rate_from_windows
from quantum_gate.windows import Window, frozen_pair


class SharedWindows:
    """Both windows, the cutover and the lock. Every attribute is read and written under ``lock``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lock = threading.RLock()
        self.post, self.pre = self.new_pair()
        self.cutover: Cutover | None = None
        self._cutover_listeners: list[Callable[[], None]] = []
        # (live baseline, its revision, the frozen copy of it the last evaluation read)
        self._pre_copy: tuple[Window, int, Window] | None = None

    def new_pair(self) -> tuple[Window, Window]:
        """Fresh windows (a backfill fills them before they replace these): the post window's
        vocabulary is guarded by the lock, since label releases happen once the pair is adopted."""
        post, pre = new_windows(self.settings)
        post.vocabulary.guard = self.lock
        return post, pre

    def on_cutover_change(self, listener: Callable[[], None]) -> None:
        """``listener`` runs under the lock each time the cutover (or its rollout's state) is set."""
        self._cutover_listeners.append(listener)

    def set_cutover(self, cutover: Cutover | None) -> None:
        """Under the lock: the cutover changed; the listeners withdraw what belonged to the old one."""
        self.cutover = cutover
        for listener in self._cutover_listeners:
            listener()

    def replace(self, post: Window, pre: Window, cutover: Cutover) -> None:
        """Under the lock: adopt windows rebuilt for ``cutover`` (a backfill)."""
        self.post, self.pre = post, pre
        self.set_cutover(cutover)

    def frozen(self) -> tuple[Window, Window]:
        """Under the lock: copies of both windows the evaluation reads outside it.

        The baseline rarely changes once a cutover is adopted, so the copy of an unchanged baseline
        (the same window at the same revision) is handed out again, with the statistics the earlier
        evaluations kept on it (``Window.memoized``): each tick then sorts and summarises only the
        post window. Its label codes still read right in the post copy's newer vocabulary: codes are
        never reassigned while a window (here the live baseline, unchanged) holds them."""
        post, pre = self.post, self.pre
        revision = pre.revision()
        kept = self._pre_copy
        if kept is not None and kept[0] is pre and kept[1] == revision:
            return post.frozen_copy(post.vocabulary.frozen_copy()), kept[2]
        post_copy, pre_copy = frozen_pair(post, pre)
        self._pre_copy = (pre, revision, pre_copy)
        return post_copy, pre_copy

    def rate(self, clock: Callable[[], float]) -> float | None:
        """The event rate now, by the pipeline's one definition (from the windows); unknown while no
        cutover is (the windows are empty then). Under the lock."""
        if self.cutover is None:
            return None
        return rate_from_windows(self.post, self.pre, clock(), self.settings.windows.rate_horizon_seconds)

    def state(self, clock: Callable[[], float]) -> WindowsState:
        """Under the lock: what a snapshot publishes of the windows (sizes, capacities, the rate now)."""
        return WindowsState(
            events={"post": len(self.post), "pre": len(self.pre)},
            capacity={"post": self.post.capacity, "pre": self.pre.capacity},
            rate_per_minute=self.rate(clock),
        )
