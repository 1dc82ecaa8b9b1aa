"""Compact columnar windows of accepted events (numpy), bounded by count, over bounded label tables.

A ``Window`` is a ring of the newest ``capacity`` events. Per event it keeps the packed stream ID, the
ensemble side, the symbol and the fallback flag; per model (a row, added when the model first votes)
the confidence, the action, the variant and the shadow/inactive/invalid flags. That is 12 bytes per
event plus 11 per model vote, instead of a ~1 KB Python object graph (docs/benchmarks.md measures it).

One object, three jobs in three classes: ``columns.WindowColumns`` stores (the ring, the write stage,
the notes), ``WindowViews`` reads (chronological read-only views, frozen copies), and ``Window``
fills (``add``, the ingest hot path, and cutover moves). They share one set of attributes, so ``add``
writes the ring's fields directly, per event, with no method call or extra object in between. The
label tables are ``vocabulary.Vocabulary``'s, the notes ``notes.Note``.

Pure: no I/O, no clock. The daemon and ``check`` both fill windows through ``Window.add``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Self, TypeVar, cast

import numpy as np
import numpy.typing as npt

from quantum_gate.columns import INACTIVE, INVALID, NO_ACTION, RESPELLED, SHADOW, WindowColumns
from quantum_gate.contract import Event, Skip, SkipReason
from quantum_gate.notes import Note, WindowCounters
from quantum_gate.streamids import INT64_MAX, SEQ_BITS, SEQ_MAX, StreamId
from quantum_gate.vocabulary import OTHER_LABEL, Vocabulary

_Computed = TypeVar("_Computed")


@dataclass
class ModelColumns:
    """One model's votes in window order (only events where it voted validly)."""

    confidence: npt.NDArray[np.float64]
    action: npt.NDArray[np.int8]
    variant: npt.NDArray[np.int8]
    flags: npt.NDArray[np.uint8]
    symbol: npt.NDArray[np.int16]
    invalid: int


class WindowViews(WindowColumns):
    """What a window's readers see: its events oldest first, as read-only views of the columns (valid
    until the window changes), and frozen copies to read outside the lock that guards the window."""

    name: str
    # What was computed from a frozen copy (which never changes), kept with it; None on a live window.
    _memo: dict[Hashable, Any] | None = None

    def memoized(self, key: Hashable, compute: Callable[[], _Computed]) -> _Computed:
        """``compute()``, kept with a frozen copy for as long as the copy lives (the daemon reuses the
        copy of an unchanged baseline across evaluations, so its statistics are computed once);
        computed afresh on every call on a live window, which may change in between."""
        memo = self._memo
        if memo is None:
            return compute()
        if key not in memo:
            memo[key] = compute()
        return cast(_Computed, memo[key])

    def revision(self) -> int:
        """A number that moves on whenever what the window holds changes (staged adds: when they are
        flushed, which this does first), so a frozen copy of an unchanged window can be reused."""
        if self._staged_keys:
            self._flush()
        return self._revision

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
        return list(self.memoized("models", self._models))

    def _models(self) -> list[str]:
        if not self._row_of:
            return []
        live = self._live_rows()
        names = self.vocabulary.models.names
        return [names[code] for code, row in self._row_of.items() if live[row]]

    def model(self, name: str) -> ModelColumns | None:
        """``name``'s votes in window order; None when it holds none (valid or invalid)."""
        return self.memoized(("model", name), lambda: self._model(name))

    def _model(self, name: str) -> ModelColumns | None:
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

    def frozen_copy(self, vocabulary: Vocabulary) -> Self:
        """The events this window holds now, copied oldest first, with its notes and counters, over
        ``vocabulary`` (a ``Vocabulary.frozen_copy`` of this window's, shared by a pair's copies).

        What the evaluation reads once the lock is released: the numpy copies are cheap next to the
        evaluation, and the copy never changes, so its read-only views stay valid however long the
        evaluation takes. Read it only: it is never added to (its columns hold exactly its events)."""
        self._flush()  # the twin takes the fields as they are after the stage is written
        # Not copy.copy: it would go through __setstate__ and register the twin with the live
        # vocabulary, a list the tail thread may be rewriting outside the lock (a fresh baseline).
        twin = type(self).__new__(type(self))
        twin.__dict__.update(self.__dict__)
        twin.counters = WindowCounters(Counter(self.counters.skipped), self.counters.refused_keys)
        self._copy_in_order(twin)
        twin._bind(vocabulary)
        twin._memo = {}
        return twin

    def _bind(self, vocabulary: Vocabulary) -> None:
        """Use ``vocabulary`` from now on (and be one of its windows)."""
        self.vocabulary = vocabulary
        vocabulary.register(self)

    def __setstate__(self, state: dict[str, Any]) -> None:  # unpickled (the forked baseline): re-register
        self.__dict__.update(state)
        self.vocabulary.register(self)


_OUT_OF_RANGE = Skip(SkipReason.STREAM_ID_OUT_OF_RANGE)


class Window(WindowViews):
    """The newest ``capacity`` accepted events, columnar.

    ``add`` is O(models) and cheap: it assigns the event its ring slot and interns its labels at once
    (so ``len``, ``models`` and the label codes are always current), but stages the column writes
    (``WindowColumns``). Nothing outside can tell the difference, except speed.
    """

    def __init__(self, name: str, capacity: int, vocabulary: Vocabulary) -> None:
        super().__init__(capacity, vocabulary)
        self.name = name
        self._bind(vocabulary)

    def _bind(self, vocabulary: Vocabulary) -> None:
        super()._bind(vocabulary)
        # The label tables' own dicts, for lookups without a method call (interning still goes through
        # ``code``, so caps and overflow counters behave exactly as before).
        self._action_codes = vocabulary.actions.codes
        self._symbol_codes = vocabulary.symbols.codes
        self._variant_codes = vocabulary.variants.codes

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

    def note_skip(self, skip: Skip, stream_id: StreamId | None = None) -> None:
        """A skipped entry of this window's range; ``stream_id`` None (an entry without a readable ID)
        is kept as the newest position."""
        key = stream_id.packed_clamped() if stream_id is not None else INT64_MAX
        self.counters.skipped[skip.reason] += 1
        self.counters.refused_keys += skip.refused_keys
        self._note(Note(key, skip.reason, skip.invalid_models, skip.refused_keys))

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

    # ---- cutover moves and joins -----------------------------------------------------------------

    def retain_from(self, packed_key: int) -> int:
        """Keep only events with a packed ID >= ``packed_key`` (a new cutover); returns how many left."""
        order = self._order()
        keep = order[self._keys[order] >= packed_key]
        dropped = self._size - keep.size
        if dropped:
            self._compact(keep)
        self._notes = [note for note in self._notes if note.key >= packed_key]
        self._changed()
        return dropped

    def reverse(self) -> None:
        """Flip chronology: a backfill reads newest-first (XREVRANGE) and adds in that order."""
        self._compact(self._order()[::-1])

    def rebind(self, vocabulary: Vocabulary) -> None:
        """Re-express every label code in ``vocabulary`` (a window filled in another process with a
        vocabulary of its own joins its partner's). Caps apply as if the labels were interned here:
        a model the target refuses loses its row and its votes are counted as refused keys."""
        self._flush()
        names = self.vocabulary.models.names
        keep_rows: list[int] = []
        row_of: dict[int, int] = {}
        row_by_name: dict[str, int] = {}
        for code, row in self._row_of.items():
            name = names[code]
            target = vocabulary.models.code(name)
            if target is None:
                held = self._held(row)
                for key in self._keys[: self._size][held].tolist():  # as if refused when added here
                    self._note(Note(int(key), None, (), 0, (name,)))
                self.counters.refused_keys += int(np.count_nonzero(held))
                continue
            row_of[target] = len(keep_rows)
            row_by_name[name] = len(keep_rows)
            keep_rows.append(row)
        self._conf, self._action = self._conf[keep_rows], self._action[keep_rows]
        self._variant, self._flags = self._variant[keep_rows], self._flags[keep_rows]
        self._row_of, self._row_by_name, self._free_rows = row_of, row_by_name, []
        self._recode_labels(vocabulary)
        self._bind(vocabulary)


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
