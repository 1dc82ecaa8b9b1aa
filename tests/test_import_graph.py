"""The package's import graph, read from the source with ``ast``: no cycle, and the layers point down
(the daemon and the pipeline never import the command line)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "quantum_gate"


# One known cycle whose back edge is an import inside a function (left to its own work, outside the
# pipeline's): config's validators import connection's URL parsing, which imports config (through
# config_loading). Any other cycle, or this one becoming a module-level import, fails below. (The demo's
# former cycle with its Kubernetes story is gone: both import Act and Simulator from demo_story.)
KNOWN_LAZY_EDGES = (("config", "connection"),)


# Where a module was split by job, its lower part never imports the parts built on it: the shared base
# stays below the edges (the pure ledger row below its SQLite file, the TLS context below the file that
# configures it, the settings models below their loading).
BASES_BELOW_THEIR_EDGES = {
    "cutover": {"cutover_docker", "cutover_kubernetes", "cutover_sources"},
    "ledger": {"ledger_store", "ledger_writer"},
    "ledger_store": {"ledger_writer"},
    "tlscontext": {"webconfig"},
    "basicauth": {"webconfig"},
    "config": {"config_loading"},
    "stream_gaps": {"stream"},
    "report": {"report_files"},
}
# Every module split out of another sits below the command line too.
SPLIT_OUT = sorted(set().union(*BASES_BELOW_THEIR_EDGES.values()))


def runtime_nodes(tree: ast.Module) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (imports for annotations only)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in {"TYPE_CHECKING", "typing.TYPE_CHECKING"}:
            skipped.update(id(inner) for child in node.body for inner in ast.walk(child))
    return [node for node in ast.walk(tree) if id(node) not in skipped]


def package_imports(*, top_level_only: bool = False) -> dict[str, set[str]]:
    """Module name -> the package modules it imports at run time, at any depth of its source (lazy
    imports in functions count too: a lazy import still makes the layers point the wrong way)."""
    modules = {path.stem for path in PACKAGE.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.glob("*.py"):
        found: set[str] = set()
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in tree.body if top_level_only else runtime_nodes(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("quantum_gate"):
                target = node.module.removeprefix("quantum_gate").lstrip(".")
                if target:
                    found.add(target.split(".")[0])
                else:  # from quantum_gate import logs
                    found.update(alias.name for alias in node.names if alias.name in modules)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("quantum_gate."):
                        found.add(alias.name.split(".")[1])
        graph[path.stem] = (found & modules) - {path.stem}
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph.get(module, ()))
    return seen


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path of module names, or None (depth-first search with colours)."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def test_the_graph_is_read_from_the_source() -> None:
    graph = package_imports()
    assert {"cli", "daemon", "pipeline", "gate", "windows"} <= set(graph)
    assert "oneshot" in graph["cli"] and "pipeline" in graph["oneshot"]
    assert "pipeline" in reachable(graph, "daemon") and "pipeline" in graph["evaluator"]
    assert "pipeline" in graph["shared_windows"]
    assert "gate" in graph["pipeline"] and "windows" in graph["pipeline"]


def test_the_import_graph_has_no_cycle() -> None:
    graph = package_imports()
    for source, target in KNOWN_LAZY_EDGES:
        graph[source].discard(target)
    assert find_cycle(graph) is None


def test_no_cycle_among_module_level_imports() -> None:
    top_level = package_imports(top_level_only=True)
    assert find_cycle(top_level) is None
    assert not any(target in top_level[source] for source, target in KNOWN_LAZY_EDGES)


@pytest.mark.parametrize(
    "module",
    [
        "daemon",
        "pipeline",
        "oneshot",
        "exporter",
        "httpapp",
        "statuspage",
        "demo_story",
        "daemon_state",
        "gate",
        "windows",
        *SPLIT_OUT,
    ],
)
def test_lower_layers_never_reach_the_command_line(module: str) -> None:
    assert "cli" not in reachable(package_imports(), module)


# The daemon's parts (docs/architecture.md, "Thread model") and which other parts each may import: the
# daemon wires them, the ingestor drives the cutover tracker's adoption, and the evaluator is handed
# callables, so it imports neither the tail's parts nor the tracker.
DAEMON_PARTS: dict[str, set[str]] = {
    "shared_windows": set(),
    "tail_progress": set(),
    "logfields": set(),
    "systemd_notify": set(),
    "ledger_feed": set(),
    "alerts": set(),
    "gate_hook": set(),
    "report_folder": set(),
    "redis_link": set(),
    "backfill": {"shared_windows", "tail_progress", "logfields"},
    "stream_watch": {"shared_windows", "tail_progress", "redis_link"},
    "cutover_tracker": {"backfill", "ledger_feed", "logfields", "shared_windows", "tail_progress"},
    "ingestor": {
        "backfill",
        "cutover_tracker",
        "redis_link",
        "shared_windows",
        "stream_watch",
        "tail_progress",
    },
    "evaluator": {
        "alerts",
        "gate_hook",
        "ledger_feed",
        "logfields",
        "report_folder",
        "shared_windows",
        "systemd_notify",
    },
}


@pytest.mark.parametrize("part", sorted(DAEMON_PARTS))
def test_the_daemons_parts_import_only_the_parts_below_them(part: str) -> None:
    graph = package_imports()
    assert graph[part] & set(DAEMON_PARTS) <= DAEMON_PARTS[part]
    assert not reachable(graph, part) & {"daemon", "cli", "demo"}  # only the daemon wires the parts


def test_only_the_daemon_and_its_parts_import_the_parts() -> None:
    graph = package_imports()
    importers = {module for module, targets in graph.items() if targets & set(DAEMON_PARTS)}
    assert importers <= {"daemon", *DAEMON_PARTS}


# What the daemon publishes (``daemon_state``: the parts' frozen states, composed into the exporter's
# Snapshot) is data below the parts that fill it: whoever reads it never reaches a part (Redis,
# subprocesses, the scheduler).
PUBLISHED_STATE_READERS = (
    "exporter",
    "metrics_live",
    "httpapp",
    "statuspage",
    "statuspage_cards",
    "statuspage_tables",
    "statuspage_histograms",
)


def test_the_published_state_sits_below_the_parts_and_its_readers_reach_none() -> None:
    graph = package_imports()
    assert not graph["daemon_state"]  # data only: the package's types it names are for annotations
    importers = {module for module, targets in graph.items() if "daemon_state" in targets}
    assert {"ingestor", "cutover_tracker", "evaluator", "shared_windows", "exporter"} <= importers
    for reader in PUBLISHED_STATE_READERS:
        assert not reachable(graph, reader) & {*DAEMON_PARTS, "daemon", "cli"}, reader


def test_apscheduler_is_contained_in_the_evaluator() -> None:
    users = set()
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if any(name.split(".")[0] == "apscheduler" for name in names):
                users.add(path.stem)
    assert users == {"evaluator"}


@pytest.mark.parametrize(("base", "edges"), sorted(BASES_BELOW_THEIR_EDGES.items()))
def test_a_base_never_reaches_the_modules_split_from_it(base: str, edges: set[str]) -> None:
    graph = package_imports()
    for source, target in KNOWN_LAZY_EDGES:  # config's validators reach connection, which loads settings
        graph[source].discard(target)
    assert edges <= set(graph)  # the modules exist: a rename must update this table
    assert not reachable(graph, base) & edges


def test_the_cycle_finder_finds_one() -> None:
    """The detector itself can fail: the old daemon -> cli -> daemon loop is found."""
    graph = {"daemon": {"cli", "gate"}, "cli": {"daemon", "gate"}, "gate": set()}
    assert find_cycle(graph) == ["cli", "daemon", "cli"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
