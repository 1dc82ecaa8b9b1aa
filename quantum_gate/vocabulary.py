"""The label tables a pair of windows shares: model keys, actions, variants and symbols as small codes.

Every table is capped, because every code may become a Prometheus label value or a dict key in a
report. The cap bounds the *current* cardinality: when a full table meets a new name, the vocabulary
releases the codes no window holds any more (``Vocabulary.make_room``) and reuses them.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from quantum_gate.contract import Event

if TYPE_CHECKING:
    from quantum_gate.columns import WindowColumns

OTHER_LABEL = "other"
BASE_ACTIONS = ("BUY", "SELL", "HOLD")


class _CodeTable:
    """Interns names to small codes, reusing released ones: what label and model tables share. The
    bound is on *current* cardinality: ``Vocabulary.make_room`` releases codes no window holds any
    more, and a released code is reused for the next new name. The ``preset`` codes are never
    released. What a full table does with a new name is its subclass's choice (``code``)."""

    def __init__(self, limit: int, preset: Iterable[str] = ()) -> None:
        self.limit = limit
        # name -> code, for lookups without a method call on the hot path: read it, never write it
        # (interning goes through ``code``, so caps and overflow counts hold).
        self.codes: dict[str, int] = {}
        self.names: list[str] = []  # by code; a released code keeps its old name until reused
        self.full = limit <= 0
        self._free: list[int] = []
        for name in preset:
            self._intern(name)
        self._fixed = len(self.names)

    def _intern(self, name: str) -> int:
        if self._free:
            code = self._free.pop()
            self.names[code] = name
        else:
            code = len(self.names)
            self.names.append(name)
        self.codes[name] = code
        self.full = len(self.codes) >= self.limit
        return code

    def _code_or_none(self, name: str) -> int | None:
        """The name's code, interned if there is room; None if the table is full and does not know it."""
        found = self.codes.get(name)
        if found is not None or len(self.codes) >= self.limit:
            return found
        return self._intern(name)

    def lookup(self, name: str) -> int | None:
        return self.codes.get(name)

    def frozen_copy(self) -> Self:
        """An independent copy. ``dict``/``list`` copies are single C calls, atomic under the GIL, so a
        baseline being filled outside the daemon's lock may intern a name meanwhile without tearing it."""
        twin = copy.copy(self)
        twin.codes, twin.names, twin._free = dict(self.codes), list(self.names), list(self._free)
        return twin

    def release(self, in_use: set[int]) -> list[int]:
        """Free every code not in ``in_use`` (nor preset); returns the freed codes."""
        freed = [
            (name, code) for name, code in self.codes.items() if code >= self._fixed and code not in in_use
        ]
        for name, code in freed:
            del self.codes[name]
            self._free.append(code)
        self.full = len(self.codes) >= self.limit
        return [code for _, code in freed]


class LabelTable(_CodeTable):
    """Labels (actions, variants, symbols); once full, unknown names share the code of ``other``, which
    is always present and, like the preset labels, never released."""

    def __init__(self, limit: int, preset: Iterable[str] = ()) -> None:
        super().__init__(limit, (*preset, OTHER_LABEL))
        self.overflowed = 0

    def code(self, name: str) -> int:
        found = self._code_or_none(name)
        if found is None:
            self.overflowed += 1
            return self.codes[OTHER_LABEL]
        return found


class ModelTable(_CodeTable):
    """Distinct model keys, capped: a key beyond the cap is refused (the window counts it), never
    relabelled, because merging unknown models into one bucket would gate a model that does not exist.
    The cap bounds the models *currently* in the windows: codes no window holds are released."""

    def code(self, name: str) -> int | None:
        return self._code_or_none(name)


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
    _windows: list[weakref.ref[WindowColumns]] = field(default_factory=list, repr=False)
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

    def register(self, window: WindowColumns) -> None:
        self._windows = [ref for ref in self._windows if ref() is not None and ref() is not window]
        self._windows.append(weakref.ref(window))

    def windows(self) -> list[WindowColumns]:
        return [
            window for ref in self._windows if (window := ref()) is not None and window.vocabulary is self
        ]

    def crowded(self) -> bool:
        return self.models.full or self.actions.full or self.variants.full or self.symbols.full

    def make_room(self, event: Event, adding: WindowColumns) -> None:
        """Before ``adding`` takes ``event``: if a full table meets a name it does not know, release
        the codes no window holds any more (the slot ``adding`` is about to overwrite counts as gone).
        A scan costs O(models x capacity) and runs only then, and only when something can have left
        a window since the last one found nothing to free."""
        tables = self._tables_needing_room(event)
        if not tables:
            return
        evicting = adding._slot_to_overwrite()
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
            known = self.models.codes
            if any(vote[0] not in known for vote in votes) or any(
                m not in known for m in event.invalid_models
            ):
                tables.append("models")
        if self.actions.full:
            known = self.actions.codes
            if any(vote[1] not in known for vote in votes) or (event.side and event.side not in known):
                tables.append("actions")
        if self.variants.full:
            known = self.variants.codes
            if any(vote[3] and vote[3] not in known for vote in votes):
                tables.append("variants")
        if self.symbols.full and (event.symbol or OTHER_LABEL) not in self.symbols.codes:
            tables.append("symbols")
        return tables
