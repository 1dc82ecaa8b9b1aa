"""Compact columnar windows of accepted events (numpy), bounded by count, plus bounded label tables.

A ``Window`` is a ring of the newest ``capacity`` events. Per event it keeps the packed stream ID, the
ensemble side, the symbol and the fallback flag; per model (a row, added when the model first votes)
the confidence, the action, the variant and the shadow/inactive/invalid flags. That is 12 bytes per
event plus 11 per model vote, instead of a ~1 KB Python object graph (docs/benchmarks.md measures it).

Pure: no I/O, no clock. The daemon and ``check`` both fill windows through ``Window.add``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from quantum_gate.contract import Event, Skip
from quantum_gate.streamids import SEQ_BITS

NO_ACTION = -1
SHADOW, INACTIVE, INVALID = 1, 2, 4
OTHER_LABEL = "other"
BASE_ACTIONS = ("BUY", "SELL", "HOLD")


class LabelTable:
    """Interns strings to small codes; once full, unknown names share the code of ``other``.

    Bounded on purpose: every code may become a Prometheus label value or a dict key in a report.
    """

    def __init__(self, limit: int, preset: Iterable[str] = ()) -> None:
        self.limit = limit
        self._codes: dict[str, int] = {}
        self.names: list[str] = []
        self.overflowed = 0
        for name in (*preset, OTHER_LABEL):
            self._intern(name)

    def _intern(self, name: str) -> int:
        code = len(self.names)
        self._codes[name] = code
        self.names.append(name)
        return code

    def code(self, name: str) -> int:
        found = self._codes.get(name)
        if found is not None:
            return found
        if len(self.names) >= self.limit:
            self.overflowed += 1
            return self._codes[OTHER_LABEL]
        return self._intern(name)

    def lookup(self, name: str) -> int | None:
        return self._codes.get(name)


class ModelTable:
    """Distinct model keys, capped: a key beyond the cap is refused (and counted), never relabelled,
    because merging unknown models into one bucket would gate a model that does not exist."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._codes: dict[str, int] = {}
        self.names: list[str] = []
        self.refused = 0

    def code(self, name: str) -> int | None:
        found = self._codes.get(name)
        if found is not None:
            return found
        if len(self.names) >= self.limit:
            self.refused += 1
            return None
        self._codes[name] = len(self.names)
        self.names.append(name)
        return self._codes[name]

    def lookup(self, name: str) -> int | None:
        return self._codes.get(name)


@dataclass
class Vocabulary:
    """Label tables shared by the pre and post windows so their codes compare."""

    models: ModelTable
    actions: LabelTable
    variants: LabelTable
    symbols: LabelTable

    @classmethod
    def bounded(
        cls, max_models: int = 32, max_actions: int = 16, max_variants: int = 64, max_symbols: int = 1024
    ) -> Vocabulary:
        return cls(
            models=ModelTable(max_models),
            actions=LabelTable(max_actions, BASE_ACTIONS),
            variants=LabelTable(min(max_variants, 127)),
            symbols=LabelTable(min(max_symbols, 32_767)),
        )


@dataclass
class ModelColumns:
    """One model's votes in window order (only events where it voted validly)."""

    confidence: npt.NDArray[np.float64]
    action: npt.NDArray[np.int8]
    variant: npt.NDArray[np.int8]
    flags: npt.NDArray[np.uint8]
    symbol: npt.NDArray[np.int16]
    invalid: int


@dataclass
class WindowCounters:
    """What passed by the window without entering it: skip reasons and refused or invalid keys."""

    skipped: Counter[str] = field(default_factory=Counter)
    invalid_in_skipped: Counter[str] = field(default_factory=Counter)
    refused_keys: int = 0

    def clear(self) -> None:
        self.skipped.clear()
        self.invalid_in_skipped.clear()
        self.refused_keys = 0


class Window:
    """The newest ``capacity`` accepted events, columnar. ``add`` is O(models) and allocation-free
    except when a model is seen for the first time."""

    def __init__(self, name: str, capacity: int, vocabulary: Vocabulary) -> None:
        if capacity < 1:
            raise ValueError("window capacity must be at least 1")
        self.name = name
        self.capacity = capacity
        self.vocabulary = vocabulary
        self.counters = WindowCounters()
        self._keys = np.zeros(capacity, dtype=np.int64)
        self._side = np.full(capacity, NO_ACTION, dtype=np.int8)
        self._symbol = np.zeros(capacity, dtype=np.int16)
        self._fallback = np.zeros(capacity, dtype=np.bool_)
        self._conf = np.empty((0, capacity), dtype=np.float64)
        self._action = np.empty((0, capacity), dtype=np.int8)
        self._variant = np.empty((0, capacity), dtype=np.int8)
        self._flags = np.empty((0, capacity), dtype=np.uint8)
        self._row_of: dict[int, int] = {}
        self._size = 0
        self._next = 0

    # ---- filling ---------------------------------------------------------------------------------

    def add(self, event: Event) -> None:
        at = self._next
        self._next = (at + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)
        vocab = self.vocabulary
        self._keys[at] = event.stream_id.packed()
        self._side[at] = vocab.actions.code(event.side) if event.side else NO_ACTION
        self._symbol[at] = vocab.symbols.code(event.symbol or OTHER_LABEL)
        self._fallback[at] = event.fallback
        self._action[:, at] = NO_ACTION
        self._flags[:, at] = 0
        for vote in event.votes:
            row = self._row(vote.model)
            if row is None:
                self.counters.refused_keys += 1
                continue
            self._conf[row, at] = vote.confidence
            self._action[row, at] = vocab.actions.code(vote.action)
            self._variant[row, at] = vocab.variants.code(vote.variant) if vote.variant else -1
            self._flags[row, at] = (SHADOW if vote.shadow else 0) | (INACTIVE if vote.inactive else 0)
        for model in event.invalid_models:
            row = self._row(model)
            if row is not None:
                self._flags[row, at] |= INVALID
        self.counters.refused_keys += event.refused_keys

    def note_skip(self, skip: Skip) -> None:
        self.counters.skipped[skip.reason] += 1
        self.counters.invalid_in_skipped.update(skip.invalid_models)
        self.counters.refused_keys += skip.refused_keys

    def _row(self, model: str) -> int | None:
        code = self.vocabulary.models.code(model)
        if code is None:
            return None
        row = self._row_of.get(code)
        if row is None:
            row = self._add_row(code)
        return row

    def _add_row(self, code: int) -> int:
        capacity = self.capacity
        self._conf = np.vstack([self._conf, np.full((1, capacity), np.nan)])
        self._action = np.vstack([self._action, np.full((1, capacity), NO_ACTION, dtype=np.int8)])
        self._variant = np.vstack([self._variant, np.full((1, capacity), -1, dtype=np.int8)])
        self._flags = np.vstack([self._flags, np.zeros((1, capacity), dtype=np.uint8)])
        self._row_of[code] = len(self._row_of)
        return self._row_of[code]

    def retain_from(self, packed_key: int) -> int:
        """Keep only events with a packed ID >= ``packed_key`` (a new cutover); returns how many left."""
        order = self._order()
        keep = order[self._keys[order] >= packed_key]
        dropped = self._size - keep.size
        if dropped:
            self._compact(keep)
        return dropped

    def clear(self) -> None:
        self._compact(np.empty(0, dtype=np.intp))
        self.counters.clear()

    def reverse(self) -> None:
        """Flip chronology: a backfill reads newest-first (XREVRANGE) and adds in that order."""
        self._compact(self._order()[::-1])

    def _compact(self, keep: npt.NDArray[np.intp]) -> None:
        count = keep.size
        for name in ("_keys", "_side", "_symbol", "_fallback"):
            column = getattr(self, name)
            column[:count] = column[keep]
        for name in ("_conf", "_action", "_variant", "_flags"):
            matrix = getattr(self, name)
            matrix[:, :count] = matrix[:, keep]
        self._size = count
        self._next = count % self.capacity

    # ---- reading ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._size

    def _order(self) -> npt.NDArray[np.intp]:
        """Slot indices from oldest to newest."""
        if self._size < self.capacity:
            return np.arange(self._size, dtype=np.intp)
        return (np.arange(self.capacity, dtype=np.intp) + self._next) % self.capacity

    def keys(self) -> npt.NDArray[np.int64]:
        return self._keys[self._order()]

    def first_last_ms(self) -> tuple[int, int] | None:
        if not self._size:
            return None
        keys = self.keys()
        return int(keys[0]) >> SEQ_BITS, int(keys[-1]) >> SEQ_BITS

    def models(self) -> list[str]:
        names = self.vocabulary.models.names
        return [names[code] for code in self._row_of]

    def model(self, name: str) -> ModelColumns | None:
        code = self.vocabulary.models.lookup(name)
        row = self._row_of.get(code) if code is not None else None
        if row is None:
            return None
        order = self._order()
        actions = self._action[row, order]
        voted = actions != NO_ACTION
        picked = order[voted]
        invalid_here = int(np.count_nonzero(self._flags[row, order] & INVALID))
        return ModelColumns(
            confidence=self._conf[row, picked],
            action=actions[voted],
            variant=self._variant[row, picked],
            flags=self._flags[row, picked],
            symbol=self._symbol[picked],
            invalid=invalid_here + self.counters.invalid_in_skipped.get(name, 0),
        )

    def sides(self) -> npt.NDArray[np.int8]:
        return self._side[self._order()]

    def fallback(self) -> npt.NDArray[np.bool_]:
        return self._fallback[self._order()]

    def vote_matrix(self) -> npt.NDArray[np.int8]:
        """Actions as (models, events), oldest event first; NO_ACTION where a model did not vote."""
        return self._action[:, self._order()]

    def nbytes(self) -> int:
        arrays = (self._keys, self._side, self._symbol, self._fallback, self._conf, self._action)
        return sum(a.nbytes for a in (*arrays, self._variant, self._flags))


class RecentTimes:
    """Stream-ID milliseconds of the newest accepted events, for the event rate; a bounded ring."""

    def __init__(self, capacity: int) -> None:
        self._ms = np.zeros(capacity, dtype=np.int64)
        self._size = 0
        self._next = 0

    def add(self, ms: int) -> None:
        self._ms[self._next] = ms
        self._next = (self._next + 1) % self._ms.size
        self._size = min(self._size + 1, self._ms.size)

    def clear(self) -> None:
        self._size = 0
        self._next = 0

    def count_since(self, since_ms: int) -> tuple[int, bool]:
        """Events with ms >= since_ms, and whether the ring was too small to hold them all."""
        values = self._ms[: self._size]
        count = int(np.count_nonzero(values >= since_ms))
        saturated = self._size == self._ms.size and count == self._size
        return count, saturated

    def values(self) -> npt.NDArray[np.int64]:
        return self._ms[: self._size]

    def newest_ms(self) -> int | None:
        if not self._size:
            return None
        return int(self._ms[(self._next - 1) % self._ms.size])


def window_pair(
    post_capacity: int,
    baseline_capacity: int,
    *,
    max_models: int = 32,
    max_actions: int = 16,
    max_variants: int = 64,
    max_symbols: int = 1024,
) -> tuple[Window, Window]:
    """The post window and the baseline, sharing one vocabulary."""
    vocabulary = Vocabulary.bounded(max_models, max_actions, max_variants, max_symbols)
    return Window("post", post_capacity, vocabulary), Window("pre", baseline_capacity, vocabulary)
