"""This tree's evaluation against another tree's, in one process, call by call.

On a machine whose speed drifts (a shared VM can swing by half within minutes), figures from two runs
minutes apart cannot tell a 10 % change from the drift. This script imports the other tree's package
under another name and alternates the two on identical windows, so both see the same machine at each
round, and reports the medians and the median of the paired ratios::

    git worktree add /tmp/qg-old f16e2a8                      # the tree to compare with
    .venv/bin/python -m bench.paired_trees --old /tmp/qg-old --rounds 40

Measured, per round, each on 100,000 + 100,000 synthetic events (``bench.run.synthetic_windows``'s
recipe): ``gate.evaluate`` with the comparison on the live windows ("cold": what ``check`` pays, and the
daemon at its first evaluation after a cutover); this tree's daemon tick (60 new post events, then
``SharedWindows.frozen`` and ``evaluate``); and the daemon's whole tick in both trees (copies,
``pipeline.evaluate_document``, ``histograms.window_histograms``; the other tree copies with
``windows.frozen_pair``). The other tree must have those functions (any tree from f16e2a8 on does).
"""

from __future__ import annotations

import argparse
import importlib
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.run import add_tick_events, markdown_table, synthetic_windows

OLD_PACKAGE = "quantum_gate_old"


def import_other_tree(checkout: Path, into: Path) -> str:
    """Copy ``checkout``'s package into ``into`` as ``quantum_gate_old`` (its absolute imports renamed)
    and put it on ``sys.path``; returns the package name."""
    target = into / OLD_PACKAGE
    shutil.copytree(checkout / "quantum_gate", target)
    for source in target.rglob("*.py"):
        text = source.read_text(encoding="utf-8")
        source.write_text(re.sub(r"\bquantum_gate\b", OLD_PACKAGE, text), encoding="utf-8")
    sys.path.insert(0, str(into))
    return OLD_PACKAGE


def _module(package: str, name: str) -> ModuleType:
    return importlib.import_module(f"{package}.{name}")


class Tree:
    """One tree's windows and the timed steps of its evaluation."""

    def __init__(self, package: str, size: int, seed: int) -> None:
        self.package = package
        self.post, self.pre = synthetic_windows(size, seed, package)
        self.settings = _module(package, "config").Settings()
        self._copy: Callable[[], tuple[Any, Any]]
        if package == "quantum_gate":
            shared = _module(package, "shared_windows").SharedWindows(self.settings)
            shared.post, shared.pre = self.post, self.pre
            self._copy = shared.frozen
        else:
            frozen_pair = _module(package, "windows").frozen_pair
            self._copy = lambda: frozen_pair(self.post, self.pre)

    def add_new_events(self, round_number: int) -> None:
        add_tick_events(self.post, round_number, self.package)

    def cold(self) -> float:
        """ms of ``gate.evaluate`` with the comparison on the live windows."""
        evaluate = _module(self.package, "gate").evaluate
        started = time.perf_counter()
        evaluate(self.post, self.pre, None, self.settings.gate, now=time.time(), rate_per_minute=None)
        return (time.perf_counter() - started) * 1000

    def tick(self) -> float:
        """ms of the copies plus ``gate.evaluate`` with the comparison."""
        evaluate = _module(self.package, "gate").evaluate
        started = time.perf_counter()
        post, pre = self._copy()
        evaluate(post, pre, None, self.settings.gate, now=time.time(), rate_per_minute=None)
        return (time.perf_counter() - started) * 1000

    def whole_tick(self) -> float:
        """ms of the daemon's whole evaluation: copies, the document (with report depth), histograms."""
        pipeline, histograms = _module(self.package, "pipeline"), _module(self.package, "histograms")
        started = time.perf_counter()
        post, pre = self._copy()
        pipeline.evaluate_document(post, pre, None, self.settings, time.time())
        histograms.window_histograms(post, pre)
        return (time.perf_counter() - started) * 1000


def measure(old: Tree, new: Tree, rounds: int) -> list[dict[str, float]]:
    for tree in (old, new):  # first calls (imports, caches; this tree's baseline statistics) untimed
        tree.cold()
        tree.whole_tick()
    results = []
    for round_number in range(rounds):
        row = {"old cold": old.cold(), "new cold": new.cold()}
        old.add_new_events(round_number)
        new.add_new_events(round_number)
        row["new tick"] = new.tick()
        old.add_new_events(round_number)
        new.add_new_events(round_number)
        row["old whole tick"] = old.whole_tick()
        row["new whole tick"] = new.whole_tick()
        results.append(row)
    return results


def report(rows: Sequence[dict[str, float]], size: int) -> str:
    def median(key: str) -> float:
        return statistics.median(row[key] for row in rows)

    def paired(new_key: str, old_key: str) -> float:
        return statistics.median(row[new_key] / row[old_key] for row in rows)

    table = [
        ["`gate.evaluate`, cold (old tree)", f"{median('old cold'):.1f}", ""],
        [
            "`gate.evaluate`, cold (this tree)",
            f"{median('new cold'):.1f}",
            f"{paired('new cold', 'old cold'):.3f}",
        ],
        [
            "daemon tick, copies + `evaluate` (this tree, baseline kept)",
            f"{median('new tick'):.1f}",
            f"{paired('new tick', 'old cold'):.3f}",
        ],
        ["daemon's whole tick (old tree)", f"{median('old whole tick'):.1f}", ""],
        [
            "daemon's whole tick (this tree)",
            f"{median('new whole tick'):.1f}",
            f"{paired('new whole tick', 'old whole tick'):.3f}",
        ],
    ]
    header = [f"{size:,} + {size:,} events, with the comparison", "median ms", "paired ratio to the old tree"]
    return f"{len(rows)} interleaved rounds.\n\n" + markdown_table(header, table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", type=Path, required=True, help="a checkout of the tree to compare with")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--size", type=int, default=100_000, help="events per window")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if not (args.old / "quantum_gate" / "gate.py").is_file():
        parser.error(f"--old {args.old}: no quantum_gate package there")
    with tempfile.TemporaryDirectory(prefix="qg-paired-") as folder:
        package = import_other_tree(args.old, Path(folder))
        old, new = Tree(package, args.size, args.seed), Tree("quantum_gate", args.size, args.seed)
        print(report(measure(old, new, args.rounds), args.size))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
