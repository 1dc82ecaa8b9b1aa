"""A window's storage: the ring of columns (numpy), its model rows, the write stage, and its notes.

Per event the packed stream ID, the ensemble side, the symbol and the fallback flag; per model (a row,
added when the model first votes) the confidence, the action, the variant and the shadow/inactive/
invalid/respelled flags. ``WindowColumns`` keeps them, compacts them, and answers what the vocabulary's
release scan asks (which labels a window still holds). ``windows.Window`` fills and reads them.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import numpy.typing as npt

from quantum_gate.notes import Note, NoteSummary, WindowCounters, spanned, summarize
from quantum_gate.vocabulary import LabelTable, Vocabulary

NO_ACTION = -1
SHADOW, INACTIVE, INVALID = 1, 2, 4
RESPELLED = 8  # the vote's raw action label differed from its normal form (contract.normal_label)
_Cell = TypeVar("_Cell", bound=np.generic)


class WindowColumns:
    """The newest ``capacity`` events' columns as a ring, with the notes of the entries around them.

    Writes are staged: ``Window.add`` appends to small flat lists that ``_flush`` scatters into the
    numpy arrays in one vectorised step per batch (at most ``STAGE_EVENTS`` events, never more than the
    capacity, so a batch never wraps onto itself). Every reader flushes the stage first (``_order``,
    ``_chronological``); one numpy scalar store costs about as much as twenty list appends.
    """

    STAGE_EVENTS = 4096

    def __init__(self, capacity: int, vocabulary: Vocabulary) -> None:
        if capacity < 1:
            raise ValueError("window capacity must be at least 1")
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
        self._revision = 0  # moves on with every change a reader can see (``WindowViews.revision``)
        # The stage: per event its packed key, and (slot, side, symbol, fallback); per valid vote
        # (row, slot, action, variant, flags) and its confidence; per invalid model (row, slot).
        self._stage_limit = min(self.STAGE_EVENTS, capacity)
        self._stage_room = self._stage_limit
        self._staged_keys: list[int] = []
        self._staged_events: list[int] = []
        self._staged_votes: list[int] = []
        self._staged_conf: list[float] = []
        self._staged_invalid: list[int] = []

    def __len__(self) -> int:
        return self._size

    def _changed(self) -> None:
        """Something a reader sees changed: the notes' summary is stale, the revision moves on."""
        self._summary = None
        self._revision += 1

    def nbytes(self) -> int:
        arrays = (self._keys, self._side, self._symbol, self._fallback, self._conf, self._action)
        return sum(a.nbytes for a in (*arrays, self._variant, self._flags))

    # ---- the stage -------------------------------------------------------------------------------

    def _flush(self) -> None:
        """Scatter the staged events into the columns (slots within one stage are distinct)."""
        count = len(self._staged_keys)
        if not count:
            return
        self._revision += 1
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

    # ---- the ring --------------------------------------------------------------------------------

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

    def _slot_to_overwrite(self) -> int:
        """The slot the next event evicts, -1 while the ring is not full."""
        return self._next if self._size >= self.capacity else -1

    def _compact(self, keep: npt.NDArray[np.intp]) -> None:
        """Keep only the slots ``keep``, in that order, as slots [0, len(keep))."""
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
        self._changed()

    def _copy_in_order(self, twin: WindowColumns) -> None:
        """Give ``twin`` copies of these columns, rows and notes, oldest event first in slots [0, size)."""
        order = self._order()  # flushes the stage
        twin._keys, twin._side = self._keys[order], self._side[order]
        twin._symbol, twin._fallback = self._symbol[order], self._fallback[order]
        twin._conf, twin._action = self._conf[:, order], self._action[:, order]
        twin._variant, twin._flags = self._variant[:, order], self._flags[:, order]
        twin._row_of, twin._row_by_name = dict(self._row_of), dict(self._row_by_name)
        twin._free_rows, twin._notes = list(self._free_rows), list(self._notes)
        twin._next = 0  # slots [0, size) are in order: nothing wraps
        twin._staged_keys, twin._staged_events, twin._staged_votes = [], [], []
        twin._staged_conf, twin._staged_invalid = [], []

    # ---- model rows ------------------------------------------------------------------------------

    def _add_row(self) -> int:
        # Only the slots that hold events (staged ones included) are copied and initialised: the rest
        # of a large, mostly empty window is never touched, so it costs address space, not RSS. Every
        # slot gets its NO_ACTION / zero flags when an event is flushed into it.
        used = min(self._size, self.capacity)
        self._revision += 1
        self._conf = _grown(self._conf, np.nan, used)
        self._action = _grown(self._action, NO_ACTION, used)
        self._variant = _grown(self._variant, -1, used)
        self._flags = _grown(self._flags, 0, used)
        return int(self._flags.shape[0]) - 1

    def _held(self, row: int | slice) -> npt.NDArray[np.bool_]:
        """Per used slot (of ``row``, or of each row): a vote or an invalid vote."""
        used = self._size
        held: npt.NDArray[np.bool_] = (self._action[row, :used] != NO_ACTION) | (
            (self._flags[row, :used] & INVALID) != 0
        )
        return held

    def _live_rows(self, evicting: int = -1) -> npt.NDArray[np.bool_]:
        """Per row: does the model hold a vote or an invalid vote in an occupied slot (other than
        ``evicting``, the slot an add is about to overwrite)?"""
        if self._staged_keys:
            self._flush()
        held = self._held(slice(None))
        if 0 <= evicting < self._size:
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
        if codes:
            self._revision += 1
        for code in codes:
            row = self._row_of.pop(code, None)
            if row is not None:
                self._free_rows.append(row)
        if codes:
            self._row_by_name = {
                name: row for name, row in self._row_by_name.items() if row not in self._free_rows
            }

    def _recode_labels(self, target: Vocabulary) -> None:
        """Re-express the action, variant and symbol codes of slots [0, size) in ``target``'s tables
        (the stage flushed, the model rows already moved)."""
        own, used = self.vocabulary, self._size
        self._revision += 1
        voted = self._action[:, :used] != NO_ACTION
        _recode(self._action, own.actions, target.actions, used)
        _recode(self._side, own.actions, target.actions, used)
        _recode(self._variant, own.variants, target.variants, used, voted)
        _recode(self._symbol, own.symbols, target.symbols, used)

    # ---- notes -----------------------------------------------------------------------------------

    def _note(self, note: Note) -> None:
        self._notes.append(note)
        self._changed()
        if len(self._notes) > 2 * self.capacity:  # amortised: prune to ``capacity`` now and then
            self._prune_notes()

    def _prune_notes(self) -> None:
        """Keep only the notes the window still spans (``notes.spanned``)."""
        floor = None
        if self._size >= self.capacity:
            if self._staged_keys:
                self._flush()
            floor = int(self._keys.min())
        self._notes = spanned(self._notes, floor, self.capacity)

    def notes(self) -> NoteSummary:
        """Skip reasons, invalid votes in skipped entries and refused keys, over the window's span."""
        if self._summary is None:
            self._prune_notes()
            self._summary = summarize(self._notes)
        return self._summary


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
