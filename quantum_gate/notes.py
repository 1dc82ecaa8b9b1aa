"""What a window knows about entries its columns do not hold: skipped entries and refused keys.

Notes are keyed by the entry's packed stream ID, so they age out with the events around them, and the
gate reads them only as statistics of the window's span (``summarize``). ``WindowCounters`` are the
opposite: lifetime totals, never aged, never read by the gate.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import NamedTuple

from quantum_gate.contract import SkipReason


class Note(NamedTuple):
    """Something about one entry of a window's range that the columns do not hold: a skipped entry
    (``reason``), or the refused keys of an accepted event (``reason`` None). Keyed by the entry's
    packed ID so it ages out with the events around it."""

    key: int
    reason: SkipReason | None
    invalid_models: tuple[str, ...] = ()
    refused_keys: int = 0  # by the contract: keys too long, or beyond max_models per entry
    refused_models: tuple[str, ...] = ()  # by the max_models cap of the vocabulary


@dataclass(frozen=True)
class NoteSummary:
    """A window's notes, as statistics of the window: only notes of entries the window still spans."""

    skipped: dict[SkipReason, int]
    invalid: dict[str, int]
    refused_keys: int
    refused_models: dict[str, int]


@dataclass
class WindowCounters:
    """Lifetime totals of what this window was offered: never aged, never read by the gate (whose
    numbers come from ``Window.notes``). The daemon's first backfill adds them to its counters."""

    skipped: Counter[SkipReason] = field(default_factory=Counter)
    refused_keys: int = 0

    def clear(self) -> None:
        self.skipped.clear()
        self.refused_keys = 0


def spanned(notes: list[Note], floor: int | None, capacity: int) -> list[Note]:
    """The notes a window still spans: all of them while it is not full (``floor`` None), else only
    those at or after its oldest event (``floor``); of those, the newest ``capacity``. A function of
    the notes and the events, not of their arrival order, so ``check`` (newest first) and the daemon
    (oldest first) keep the same ones."""
    if floor is not None:
        notes = [note for note in notes if note.key >= floor]
    if len(notes) > capacity:
        notes.sort(key=itemgetter(0))
        notes = notes[-capacity:]
    return notes


def summarize(notes: Iterable[Note]) -> NoteSummary:
    """Skip reasons, invalid votes in skipped entries and refused keys, over ``notes``."""
    skipped: Counter[SkipReason] = Counter()
    invalid: Counter[str] = Counter()
    refused_models: Counter[str] = Counter()
    refused = 0
    for note in notes:
        if note.reason is not None:
            skipped[note.reason] += 1
        if note.invalid_models:
            invalid.update(note.invalid_models)
        if note.refused_models:
            refused_models.update(note.refused_models)
        refused += note.refused_keys + len(note.refused_models)
    return NoteSummary(
        skipped=dict(sorted(skipped.items())),
        invalid=dict(invalid),
        refused_keys=refused,
        refused_models=dict(sorted(refused_models.items())),
    )
