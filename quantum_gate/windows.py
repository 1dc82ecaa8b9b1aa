"""Compact columnar windows of accepted events (numpy), bounded by count, plus bounded label tables.

A ``Window`` is a ring of the newest ``capacity`` events. Per event it keeps the packed stream ID, the
ensemble side, the symbol and the fallback flag; per model (a row, added when the model first votes)
the confidence, the action, the variant and the shadow/inactive/invalid flags. That is 12 bytes per
event plus 11 per model vote, instead of a ~1 KB Python object graph (docs/benchmarks.md measures it).

Pure: no I/O, no clock. The daemon and ``check`` both fill windows through ``Window.add``.
"""

from __future__ import annotations

import copy
import weakref
from collections import Counter
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, NamedTuple, Self, TypeVar

import numpy as np
import numpy.typing as npt

from quantum_gate.contract import Event, Skip
from quantum_gate.streamids import INT64_MAX, SEQ_BITS, SEQ_MAX, StreamId

NO_ACTION = -1
_Cell = TypeVar("_Cell", bound=np.generic)
SHADOW, INACTIVE, INVALID = 1, 2, 4
RESPELLED = 8  # the vote's raw action label differed from its normal form (contract.normal_label)
OTHER_LABEL = "other"
BASE_ACTIONS = ("BUY", "SELL", "HOLD")


class _CodeTable:
    """Interns names to small codes, reusing released ones: what label and model tables share. The
    bound is on *current* cardinality: ``Vocabulary.make_room`` releases codes no window holds any
    more, and a released code is reused for the next new name. Codes below ``_fixed`` are never
    released."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._codes: dict[str, int] = {}
        self.names: list[str] = []  # by code; a released code keeps its old name until reused
        self.full = limit <= 0
        self._free: list[int] = []
        self._fixed = 0

    def _intern(self, name: str) -> int:
        if self._free:
            code = self._free.pop()
            self.names[code] = name
        else:
            code = len(self.names)
            self.names.append(name)
        self._codes[name] = code
        self.full = len(self._codes) >= self.limit
        return code

    def lookup(self, name: str) -> int | None:
        return self._codes.get(name)

    def frozen_copy(self) -> Self:
        """An independent copy. ``dict``/``list`` copies are single C calls, atomic under the GIL, so a
        baseline being filled outside the daemon's lock may intern a name meanwhile without tearing it."""
        twin = copy.copy(self)
        twin._codes, twin.names, twin._free = dict(self._codes), list(self.names), list(self._free)
        return twin

    def _release(self, in_use: set[int]) -> list[int]:
        """Free every code not in ``in_use`` (nor fixed); returns the freed codes."""
        freed = [
            (name, code) for name, code in self._codes.items() if code >= self._fixed and code not in in_use
        ]
        for name, code in freed:
            del self._codes[name]
            self._free.append(code)
        self.full = len(self._codes) >= self.limit
        return [code for _, code in freed]


class LabelTable(_CodeTable):
    """Interns strings to small codes; once full, unknown names share the code of ``other``.

    Bounded on purpose: every code may become a Prometheus label value or a dict key in a report.
    """

    def __init__(self, limit: int, preset: Iterable[str] = ()) -> None:
        super().__init__(limit)
        self.overflowed = 0
        for name in (*preset, OTHER_LABEL):
            self._intern(name)
        self._fixed = len(self.names)  # the preset labels and ``other`` are never released

    def code(self, name: str) -> int:
        found = self._codes.get(name)
        if found is not None:
            return found
        if len(self._codes) >= self.limit:
            self.overflowed += 1
            return self._codes[OTHER_LABEL]
        return self._intern(name)

    def release(self, in_use: set[int]) -> int:
        """Free every code not in ``in_use`` (never a preset label or ``other``); returns how many."""
        return len(self._release(in_use))


class ModelTable(_CodeTable):
    """Distinct model keys, capped: a key beyond the cap is refused (the window counts it), never
    relabelled, because merging unknown models into one bucket would gate a model that does not exist.
    The cap bounds the models *currently* in the windows: codes no window holds are released."""

    def code(self, name: str) -> int | None:
        found = self._codes.get(name)
        if found is not None:
            return found
        if len(self._codes) >= self.limit:
            return None
        return self._intern(name)

    def release(self, in_use: set[int]) -> list[int]:
        """Free every code not in ``in_use``; returns the freed codes."""
        return self._release(in_use)


@dataclass
class Vocabulary:
    """Label tables shared by the pre and post windows so their codes compare.

    It also knows its windows (weakly), because a label is free only when no window holds it.
    """

    models: ModelTable
    actions: LabelTable
    variants: LabelTable
    symbols: LabelTable
    # Bumped whenever an event leaves a window: a release scan can only find something new after one.
    evictions: int = 0
    _windows: list[weakref.ref[Window]] = field(default_factory=list, repr=False)
    _scanned: tuple[int, int] | None = field(default=None, repr=False)
    # Held while a release rewrites other windows' rows: the daemon fills a fresh baseline outside its
    # lock (a cutover moving forward) while the evaluation reads the post window under it.
    guard: AbstractContextManager[Any] = field(default_factory=nullcontext, repr=False)

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

    def __getstate__(self) -> dict[str, Any]:  # weak references do not pickle (the forked baseline)
        state = dict(self.__dict__)
        state["_windows"], state["_scanned"], state["guard"] = [], None, nullcontext()
        return state

    def frozen_copy(self) -> Vocabulary:
        """The tables as they are now, for window copies read outside the lock (never grown)."""
        return Vocabulary(
            models=self.models.frozen_copy(),
            actions=self.actions.frozen_copy(),
            variants=self.variants.frozen_copy(),
            symbols=self.symbols.frozen_copy(),
            evictions=self.evictions,
        )

    def register(self, window: Window) -> None:
        self._windows = [ref for ref in self._windows if ref() is not None and ref() is not window]
        self._windows.append(weakref.ref(window))

    def windows(self) -> list[Window]:
        return [
            window for ref in self._windows if (window := ref()) is not None and window.vocabulary is self
        ]

    def crowded(self) -> bool:
        return self.models.full or self.actions.full or self.variants.full or self.symbols.full

    def make_room(self, event: Event, adding: Window) -> None:
        """Before ``adding`` takes ``event``: if a full table meets a name it does not know, release
        the codes no window holds any more (the slot ``adding`` is about to overwrite counts as gone).
        A scan costs O(models x capacity) and runs only then, and only when something can have left
        a window since the last one found nothing to free."""
        tables = self._tables_needing_room(event)
        if not tables:
            return
        evicting = adding._next if adding._size >= adding.capacity else -1
        stamp = (self.evictions, evicting)
        if stamp == self._scanned:
            return
        self._scanned = stamp
        with self.guard:
            windows = self.windows()
            in_use: dict[str, set[int]] = {name: set() for name in tables}
            for window in windows:
                window._labels_in_use(in_use, evicting if window is adding else -1)
            if "models" in tables:
                freed = self.models.release(in_use["models"])
                for window in windows:
                    window._release_rows(freed)
            for name in ("actions", "variants", "symbols"):
                if name in tables:
                    getattr(self, name).release(in_use[name])

    def _tables_needing_room(self, event: Event) -> list[str]:
        tables: list[str] = []
        votes = event.votes
        if self.models.full:
            known = self.models._codes
            if any(vote[0] not in known for vote in votes) or any(
                m not in known for m in event.invalid_models
            ):
                tables.append("models")
        if self.actions.full:
            known = self.actions._codes
            if any(vote[1] not in known for vote in votes) or (event.side and event.side not in known):
                tables.append("actions")
        if self.variants.full:
            known = self.variants._codes
            if any(vote[3] and vote[3] not in known for vote in votes):
                tables.append("variants")
        if self.symbols.full and (event.symbol or OTHER_LABEL) not in self.symbols._codes:
            tables.append("symbols")
        return tables


class Note(NamedTuple):
    """Something about one entry of a window's range that the columns do not hold: a skipped entry
    (``reason``), or the refused keys of an accepted event (``reason`` None). Keyed by the entry's
    packed ID so it ages out with the events around it."""

    key: int
    reason: str | None
    invalid_models: tuple[str, ...] = ()
    refused_keys: int = 0  # by the contract: keys too long, or beyond max_models per entry
    refused_models: tuple[str, ...] = ()  # by the max_models cap of the vocabulary


@dataclass(frozen=True)
class NoteSummary:
    """A window's notes, as statistics of the window: only notes of entries the window still spans."""

    skipped: dict[str, int]
    invalid: dict[str, int]
    refused_keys: int
    refused_models: dict[str, int]


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
    """Lifetime totals of what this window was offered: never aged, never read by the gate (whose
    numbers come from ``Window.notes``). The daemon's first backfill adds them to its counters."""

    skipped: Counter[str] = field(default_factory=Counter)
    refused_keys: int = 0

    def clear(self) -> None:
        self.skipped.clear()
        self.refused_keys = 0


class Window:
    """The newest ``capacity`` accepted events, columnar.

    ``add`` is O(models) and cheap: it assigns the event its ring slot and interns its labels at once
    (so ``len``, ``models`` and the label codes are always current), but stages the column writes in
    small flat lists that are scattered into the numpy arrays in one vectorised step per batch (at most
    ``STAGE_EVENTS`` events, never more than the capacity, so a batch never wraps onto itself). Every
    reader flushes the stage first; nothing outside this class can tell the difference, except speed:
    one numpy scalar store costs about as much as twenty list appends.
    """

    STAGE_EVENTS = 4096

    def __init__(self, name: str, capacity: int, vocabulary: Vocabulary) -> None:
        if capacity < 1:
            raise ValueError("window capacity must be at least 1")
        self.name = name
        self.capacity = capacity
        self.vocabulary = vocabulary
        self.counters = WindowCounters()
        # np.zeros of a large size is lazily zeroed memory: a big window costs RSS only as it fills.
        self._keys = np.zeros(capacity, dtype=np.int64)
        self._side = np.zeros(capacity, dtype=np.int8)  # every event writes its side before it is read
        self._symbol = np.zeros(capacity, dtype=np.int16)
        self._fallback = np.zeros(capacity, dtype=np.bool_)
        self._conf = np.empty((0, capacity), dtype=np.float64)
        self._action = np.empty((0, capacity), dtype=np.int8)
        self._variant = np.empty((0, capacity), dtype=np.int8)
        self._flags = np.empty((0, capacity), dtype=np.uint8)
        self._row_of: dict[int, int] = {}
        self._row_by_name: dict[str, int] = {}
        self._free_rows: list[int] = []  # rows of released models, reused before the matrices grow
        self._size = 0
        self._next = 0
        # Skips and refusals, keyed by packed ID; statistics read only those the window still spans
        # (``notes``). At most ``capacity`` are kept: the newest, whatever order they arrived in.
        self._notes: list[Note] = []
        self._summary: NoteSummary | None = None
        vocabulary.register(self)
        # The stage: per event its packed key, and (slot, side, symbol, fallback); per valid vote
        # (row, slot, action, variant, flags) and its confidence; per invalid model (row, slot).
        self._stage_limit = min(self.STAGE_EVENTS, capacity)
        self._stage_room = self._stage_limit
        # The label tables' own dicts, for lookups without a method call (interning still goes through
        # ``code``, so caps and overflow counters behave exactly as before).
        self._action_codes = vocabulary.actions._codes
        self._symbol_codes = vocabulary.symbols._codes
        self._variant_codes = vocabulary.variants._codes
        self._staged_keys: list[int] = []
        self._staged_events: list[int] = []
        self._staged_votes: list[int] = []
        self._staged_conf: list[float] = []
        self._staged_invalid: list[int] = []

    # ---- filling ---------------------------------------------------------------------------------

    def add(self, event: Event) -> None:  # noqa: PLR0912, PLR0915 - inlined lookups: the ingest hot path
        stream_id = event.stream_id
        seq = stream_id.seq
        packed = (stream_id.ms << SEQ_BITS) | (seq if seq < SEQ_MAX else SEQ_MAX)  # StreamId.packed()
        if packed > INT64_MAX:  # parse_entry skips these already; an Event built elsewhere is noted too
            self.note_skip(_OUT_OF_RANGE, stream_id)
            return
        vocab = self.vocabulary
        if vocab.crowded():  # a table at its cap: free labels no window holds before refusing one
            vocab.make_room(event, self)
        at = self._next
        following = at + 1
        self._next = following if following < self.capacity else 0
        if self._size < self.capacity:
            self._size += 1
        else:
            vocab.evictions += 1
        self._summary = None  # an eviction may move the oldest event, and with it the notes in range
        action_codes = self._action_codes
        side = event.side
        if side:
            side_code = action_codes.get(side)
            if side_code is None:
                side_code = vocab.actions.code(side)
        else:
            side_code = NO_ACTION
        symbol = event.symbol or OTHER_LABEL
        symbol_code = self._symbol_codes.get(symbol)
        if symbol_code is None:
            symbol_code = vocab.symbols.code(symbol)
        self._staged_keys.append(packed)
        self._staged_events.extend((at, side_code, symbol_code, 1 if event.fallback else 0))
        rows, variant_codes = self._row_by_name, self._variant_codes
        staged_votes, staged_conf = self._staged_votes, self._staged_conf
        refused_models: list[str] | None = None
        for model, action, confidence, variant, shadow, inactive, respelled in event.votes:
            row = rows.get(model)
            if row is None:
                row = self._row(model)
                if row is None:
                    refused_models = [*(refused_models or ()), model]
                    continue
            action_code = action_codes.get(action)
            if action_code is None:
                action_code = vocab.actions.code(action)
            if variant:
                variant_code = variant_codes.get(variant)
                if variant_code is None:
                    variant_code = vocab.variants.code(variant)
            else:
                variant_code = -1
            if shadow or inactive or respelled:
                flags = (SHADOW if shadow else 0) | (INACTIVE if inactive else 0)
                if respelled:
                    flags |= RESPELLED
                staged_votes.extend((row, at, action_code, variant_code, flags))
            else:
                staged_votes.extend((row, at, action_code, variant_code, 0))
            staged_conf.append(confidence)
        if event.invalid_models:
            for model in event.invalid_models:
                row = self._row(model)
                if row is not None:
                    self._staged_invalid.extend((row, at))
                else:
                    refused_models = [*(refused_models or ()), model]
        if event.refused_keys or refused_models:
            refused = tuple(refused_models or ())
            self._note(Note(packed, None, (), event.refused_keys, refused))
            self.counters.refused_keys += event.refused_keys + len(refused)
        self._stage_room -= 1
        if self._stage_room <= 0:
            self._flush()

    def _flush(self) -> None:
        """Scatter the staged events into the columns (slots within one stage are distinct)."""
        count = len(self._staged_keys)
        if not count:
            return
        events = np.array(self._staged_events, dtype=np.intp).reshape(count, 4)
        slots = events[:, 0]
        self._keys[slots] = self._staged_keys
        self._side[slots] = events[:, 1]
        self._symbol[slots] = events[:, 2]
        self._fallback[slots] = events[:, 3] != 0
        if self._action.shape[0]:  # free rows too: a reused row must hold no vote in any used slot
            self._action[:, slots] = NO_ACTION
            self._flags[:, slots] = 0
        if self._staged_votes:
            votes = np.array(self._staged_votes, dtype=np.intp).reshape(-1, 5)
            at = (votes[:, 0], votes[:, 1])
            self._conf[at] = self._staged_conf
            self._action[at] = votes[:, 2]
            self._variant[at] = votes[:, 3]
            self._flags[at] = votes[:, 4]
        if self._staged_invalid:
            invalid = np.array(self._staged_invalid, dtype=np.intp).reshape(-1, 2)
            np.bitwise_or.at(self._flags, (invalid[:, 0], invalid[:, 1]), np.uint8(INVALID))
        self._drop_stage()

    def _drop_stage(self) -> None:
        self._stage_room = self._stage_limit
        self._staged_keys.clear()
        self._staged_events.clear()
        self._staged_votes.clear()
        self._staged_conf.clear()
        self._staged_invalid.clear()

    def note_skip(self, skip: Skip, stream_id: StreamId | None = None) -> None:
        """A skipped entry of this window's range; ``stream_id`` None (an entry without a readable ID)
        is kept as the newest position."""
        key = stream_id.packed_clamped() if stream_id is not None else INT64_MAX
        self.counters.skipped[skip.reason] += 1
        self.counters.refused_keys += skip.refused_keys
        self._note(Note(key, skip.reason, skip.invalid_models, skip.refused_keys))

    def _note(self, note: Note) -> None:
        self._notes.append(note)
        self._summary = None
        if len(self._notes) > 2 * self.capacity:  # amortised: prune to ``capacity`` now and then
            self._prune_notes()

    def _prune_notes(self) -> None:
        """Keep the notes the window still spans: all of its range while it is not full, else only
        those at or after its oldest event; of those, the newest ``capacity``. A function of the
        notes and the events, not of their arrival order, so ``check`` (newest first) and the daemon
        (oldest first) keep the same ones."""
        notes = self._notes
        if self._size >= self.capacity:
            if self._staged_keys:
                self._flush()
            floor = int(self._keys.min())
            notes = [note for note in notes if note.key >= floor]
        if len(notes) > self.capacity:
            notes.sort(key=itemgetter(0))
            notes = notes[-self.capacity :]
        self._notes = notes

    def notes(self) -> NoteSummary:
        """Skip reasons, invalid votes in skipped entries and refused keys, over the window's span."""
        if self._summary is None:
            self._prune_notes()
            skipped: Counter[str] = Counter()
            invalid: Counter[str] = Counter()
            refused_models: Counter[str] = Counter()
            refused = 0
            for note in self._notes:
                if note.reason is not None:
                    skipped[note.reason] += 1
                if note.invalid_models:
                    invalid.update(note.invalid_models)
                if note.refused_models:
                    refused_models.update(note.refused_models)
                refused += note.refused_keys + len(note.refused_models)
            self._summary = NoteSummary(
                skipped=dict(sorted(skipped.items())),
                invalid=dict(invalid),
                refused_keys=refused,
                refused_models=dict(sorted(refused_models.items())),
            )
        return self._summary

    def _row(self, model: str) -> int | None:
        code = self.vocabulary.models.code(model)
        if code is None:
            return None
        row = self._row_of.get(code)
        if row is None:
            row = self._free_rows.pop() if self._free_rows else self._add_row()
            self._row_of[code] = row
            self._row_by_name[model] = row
        return row

    def _live_rows(self, evicting: int = -1) -> npt.NDArray[np.bool_]:
        """Per row: does the model hold a vote or an invalid vote in an occupied slot (other than
        ``evicting``, the slot an add is about to overwrite)?"""
        if self._staged_keys:
            self._flush()
        used = self._size
        held = (self._action[:, :used] != NO_ACTION) | ((self._flags[:, :used] & INVALID) != 0)
        if 0 <= evicting < used:
            held[:, evicting] = False
        return np.asarray(held.any(axis=1), dtype=np.bool_)

    def _labels_in_use(self, in_use: dict[str, set[int]], evicting: int) -> None:
        """Add the codes this window holds to ``in_use`` (only for the tables named in it: a scan of
        the vote matrix is the expensive part, and a full symbol table needs only the symbol column)."""
        if self._staged_keys:
            self._flush()
        used = self._size
        occupied = np.ones(used, dtype=np.bool_)
        if 0 <= evicting < used:
            occupied[evicting] = False
        if "models" in in_use:
            live = self._live_rows(evicting)
            in_use["models"].update(code for code, row in self._row_of.items() if live[row])
        if "actions" in in_use or "variants" in in_use:
            voted = self._action[:, :used][:, occupied]
            if "actions" in in_use:
                codes = np.concatenate((voted[voted >= 0], self._side[:used][occupied]))
                in_use["actions"].update(int(code) for code in np.unique(codes) if code >= 0)
            if "variants" in in_use:
                variants = self._variant[:, :used][:, occupied][voted != NO_ACTION]
                in_use["variants"].update(int(code) for code in np.unique(variants) if code >= 0)
        if "symbols" in in_use:
            in_use["symbols"].update(int(code) for code in np.unique(self._symbol[:used][occupied]))

    def _release_rows(self, codes: list[int]) -> None:
        """The vocabulary released these model codes: their rows (empty here) become free."""
        for code in codes:
            row = self._row_of.pop(code, None)
            if row is not None:
                self._free_rows.append(row)
        if codes:
            self._row_by_name = {
                name: row for name, row in self._row_by_name.items() if row not in self._free_rows
            }

    def _add_row(self) -> int:
        # Only the slots that hold events (staged ones included) are copied and initialised: the rest
        # of a large, mostly empty window is never touched, so it costs address space, not RSS. Every
        # slot gets its NO_ACTION / zero flags when an event is flushed into it.
        used = min(self._size, self.capacity)
        self._conf = _grown(self._conf, np.nan, used)
        self._action = _grown(self._action, NO_ACTION, used)
        self._variant = _grown(self._variant, -1, used)
        self._flags = _grown(self._flags, 0, used)
        return int(self._flags.shape[0]) - 1

    def retain_from(self, packed_key: int) -> int:
        """Keep only events with a packed ID >= ``packed_key`` (a new cutover); returns how many left."""
        order = self._order()
        keep = order[self._keys[order] >= packed_key]
        dropped = self._size - keep.size
        if dropped:
            self._compact(keep)
        self._notes = [note for note in self._notes if note.key >= packed_key]
        self._summary = None
        return dropped

    def reverse(self) -> None:
        """Flip chronology: a backfill reads newest-first (XREVRANGE) and adds in that order."""
        self._compact(self._order()[::-1])

    def _compact(self, keep: npt.NDArray[np.intp]) -> None:
        self._flush()
        count = keep.size
        for name in ("_keys", "_side", "_symbol", "_fallback"):
            column = getattr(self, name)
            column[:count] = column[keep]
        for name in ("_conf", "_action", "_variant", "_flags"):
            matrix = getattr(self, name)
            matrix[:, :count] = matrix[:, keep]
        if count < self._size:
            self.vocabulary.evictions += 1
        self._size = count
        self._next = count % self.capacity
        self._summary = None

    def rebind(self, vocabulary: Vocabulary) -> None:
        """Re-express every label code in ``vocabulary`` (a window filled in another process with a
        vocabulary of its own joins its partner's). Caps apply as if the labels were interned here:
        a model the target refuses loses its row and its votes are counted as refused keys."""
        self._flush()
        own = self.vocabulary
        used = self._size
        keep_rows: list[int] = []
        row_of: dict[int, int] = {}
        row_by_name: dict[str, int] = {}
        for code, row in self._row_of.items():
            name = own.models.names[code]
            target = vocabulary.models.code(name)
            if target is None:
                held = (self._action[row, :used] != NO_ACTION) | ((self._flags[row, :used] & INVALID) != 0)
                for key in self._keys[:used][held].tolist():  # as if refused when added here
                    self._note(Note(int(key), None, (), 0, (name,)))
                self.counters.refused_keys += int(np.count_nonzero(held))
                continue
            row_of[target] = len(keep_rows)
            row_by_name[name] = len(keep_rows)
            keep_rows.append(row)
        self._conf, self._action = self._conf[keep_rows], self._action[keep_rows]
        self._variant, self._flags = self._variant[keep_rows], self._flags[keep_rows]
        self._row_of, self._row_by_name, self._free_rows = row_of, row_by_name, []
        voted = self._action[:, :used] != NO_ACTION
        _recode(self._action, own.actions, vocabulary.actions, used)
        _recode(self._side, own.actions, vocabulary.actions, used)
        _recode(self._variant, own.variants, vocabulary.variants, used, voted)
        _recode(self._symbol, own.symbols, vocabulary.symbols, used)
        self.vocabulary = vocabulary
        vocabulary.register(self)
        self._action_codes = vocabulary.actions._codes
        self._symbol_codes = vocabulary.symbols._codes
        self._variant_codes = vocabulary.variants._codes

    # ---- reading ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._size

    def _order(self) -> npt.NDArray[np.intp]:
        """Slot indices from oldest to newest (flushing the stage first: every reader comes here)."""
        if self._staged_keys:
            self._flush()
        if self._size < self.capacity:
            return np.arange(self._size, dtype=np.intp)
        return (np.arange(self.capacity, dtype=np.intp) + self._next) % self.capacity

    def _chronological(self, column: npt.NDArray[_Cell]) -> npt.NDArray[_Cell]:
        """``column`` (slots on the last axis) from oldest to newest, read-only: what indexing with
        ``_order()`` gives. Not wrapped (a backfilled window, or a ring not yet full): a read-only view,
        no copy. Wrapped: one concatenation of the two contiguous halves. A view is valid until the
        window changes; readers use it at once under the daemon's lock, or read a ``frozen_copy``."""
        if self._staged_keys:
            self._flush()
        size, start = self._size, self._next
        if size < self.capacity or start == 0:  # not wrapped: slots [0, size) are already in order
            ordered = column[..., :size]
        else:
            ordered = np.concatenate((column[..., start:], column[..., :start]), axis=-1)
        ordered.flags.writeable = False
        return ordered

    def keys(self) -> npt.NDArray[np.int64]:
        return self._chronological(self._keys)

    def held_keys(self) -> set[int]:
        """The packed IDs of the entries this window holds: its events and its noted entries."""
        return set(self.keys().tolist()) | {note.key for note in self._notes}

    def first_last_ms(self) -> tuple[int, int] | None:
        if not self._size:
            return None
        keys = self.keys()
        return int(keys[0]) >> SEQ_BITS, int(keys[-1]) >> SEQ_BITS

    def models(self) -> list[str]:
        """The models with a vote (valid or invalid) among the events the window holds now."""
        if not self._row_of:
            return []
        live = self._live_rows()
        names = self.vocabulary.models.names
        return [names[code] for code, row in self._row_of.items() if live[row]]

    def model(self, name: str) -> ModelColumns | None:
        code = self.vocabulary.models.lookup(name)
        row = self._row_of.get(code) if code is not None else None
        if row is None:
            return None
        ordered = self._chronological
        actions = ordered(self._action[row])
        flags = ordered(self._flags[row])
        voted = actions != NO_ACTION
        invalid_here = int(np.count_nonzero(flags & INVALID))
        if not invalid_here and not voted.any():  # its votes aged out: as if it never voted here
            return None
        invalid = invalid_here + self.notes().invalid.get(name, 0)
        if voted.all():  # the usual case: the model voted in every event of the window
            return ModelColumns(
                confidence=ordered(self._conf[row]),
                action=actions,
                variant=ordered(self._variant[row]),
                flags=flags,
                symbol=ordered(self._symbol),
                invalid=invalid,
            )
        picked = self._order()[voted]
        return ModelColumns(
            confidence=self._conf[row, picked],
            action=actions[voted],
            variant=self._variant[row, picked],
            flags=flags[voted],
            symbol=self._symbol[picked],
            invalid=invalid,
        )

    def sides(self) -> npt.NDArray[np.int8]:
        return self._chronological(self._side)

    def fallback(self) -> npt.NDArray[np.bool_]:
        return self._chronological(self._fallback)

    def vote_matrix(self) -> npt.NDArray[np.int8]:
        """Actions as (models, events), oldest event first; NO_ACTION where a model did not vote."""
        return self._chronological(self._action)

    def frozen_copy(self, vocabulary: Vocabulary) -> Window:
        """The events this window holds now, copied oldest first, with its notes and counters, over
        ``vocabulary`` (a ``Vocabulary.frozen_copy`` of this window's, shared by a pair's copies).

        What the evaluation reads once the lock is released: the numpy copies are cheap next to the
        evaluation, and the copy never changes, so its read-only views stay valid however long the
        evaluation takes. Read it only: it is never added to (its columns hold exactly its events)."""
        order = self._order()  # flushes the stage
        # Not copy.copy: it would go through __setstate__ and register the twin with the live
        # vocabulary, a list the tail thread may be rewriting outside the lock (a fresh baseline).
        twin = Window.__new__(Window)
        twin.__dict__.update(self.__dict__)
        twin.vocabulary = vocabulary
        twin.counters = WindowCounters(Counter(self.counters.skipped), self.counters.refused_keys)
        twin._keys, twin._side = self._keys[order], self._side[order]
        twin._symbol, twin._fallback = self._symbol[order], self._fallback[order]
        twin._conf, twin._action = self._conf[:, order], self._action[:, order]
        twin._variant, twin._flags = self._variant[:, order], self._flags[:, order]
        twin._row_of, twin._row_by_name = dict(self._row_of), dict(self._row_by_name)
        twin._free_rows, twin._notes = list(self._free_rows), list(self._notes)
        twin._next = 0  # slots [0, size) are in order: nothing wraps
        twin._action_codes = vocabulary.actions._codes
        twin._symbol_codes = vocabulary.symbols._codes
        twin._variant_codes = vocabulary.variants._codes
        twin._staged_keys, twin._staged_events, twin._staged_votes = [], [], []
        twin._staged_conf, twin._staged_invalid = [], []
        vocabulary.register(twin)
        return twin

    def nbytes(self) -> int:
        arrays = (self._keys, self._side, self._symbol, self._fallback, self._conf, self._action)
        return sum(a.nbytes for a in (*arrays, self._variant, self._flags))

    def __setstate__(self, state: dict[str, Any]) -> None:  # unpickled (the forked baseline): re-register
        self.__dict__.update(state)
        self.vocabulary.register(self)


_OUT_OF_RANGE = Skip("stream_id_out_of_range")


def _recode(
    column: npt.NDArray[np.integer],
    source: LabelTable,
    target: LabelTable,
    used: int,
    voted: npt.NDArray[np.bool_] | None = None,
) -> None:
    """Map label codes (>= 0) of ``source`` to ``target`` in place, over slots [0, used); in a vote
    matrix only where the model voted (other cells hold whatever an earlier event left there)."""
    mapping = np.array([target.code(name) for name in source.names], dtype=np.int64)
    values = column[..., :used]
    present = values >= 0 if voted is None else (values >= 0) & voted
    values[present] = mapping[values[present].astype(np.intp)]


def _grown(matrix: npt.NDArray[_Cell], fill: float, used: int) -> npt.NDArray[_Cell]:
    """``matrix`` with one more row; rows and the new row are only written in slots [0, used)."""
    rows = matrix.shape[0]
    grown = np.empty((rows + 1, matrix.shape[1]), dtype=matrix.dtype)
    grown[:rows, :used] = matrix[:, :used]
    grown[rows, :used] = fill
    return grown


def frozen_pair(post: Window, pre: Window) -> tuple[Window, Window]:
    """Frozen copies of a (post, pre) pair sharing one copied vocabulary, so their codes still compare.
    Take it under the lock that guards the live pair; read the copies anywhere."""
    vocabulary = post.vocabulary.frozen_copy()
    return post.frozen_copy(vocabulary), pre.frozen_copy(vocabulary)


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
