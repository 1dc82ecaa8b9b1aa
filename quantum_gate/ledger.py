"""The deployment ledger: one row per adopted cutover, kept in SQLite across daemon restarts.

* ``CutoverHistory`` (pure, clock passed in) turns the daemon's events — a cutover adopted, an evaluation,
  a report written — into the row of the current cutover, and says when that row changed.
* ``LedgerWriter`` owns the file: one thread, one connection, one short transaction per changed row,
  never on the tail thread. Rows waiting to be written are coalesced per cutover, so the queue is
  bounded by the number of cutovers, not of evaluations. A corrupt, locked, read-only or full file is
  counted and logged once per change of state; the gate goes on without the ledger.
* ``read_history`` opens the file read-only (``quantum-gate history``, ``/history``); WAL mode lets it
  read while the daemon writes.

Nothing here talks to Redis. Schema and retention: docs/ledger.md.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog

from quantum_gate.cutover import Cutover
from quantum_gate.gate import GateResult
from quantum_gate.verdicts import Verdict

log = structlog.get_logger("quantum_gate.ledger")

SCHEMA_VERSION = 1
_BUSY_TIMEOUT_SECONDS = 2.0  # a reader holding a lock delays a write at most this long, then it is counted
_COLUMNS = (
    "identity",
    "source",
    "label",
    "cutover_at",
    "cutover_stream_id",
    "cutover_ms",
    "provenance",
    "adopted_at",
    "reached_min_events_at",
    "seconds_to_min_events",
    "verdict_at_min_events",
    "borderline_at_min_events",
    "last_verdict",
    "last_reasons",
    "models",
    "borderline",
    "last_evaluated_at",
    "verdict_changes",
    "reports",
    "superseded_at",
)
_JSON_COLUMNS = frozenset({"provenance", "last_reasons", "models", "borderline", "reports"})
_CREATE = f"""
CREATE TABLE IF NOT EXISTS cutovers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    identity TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    label TEXT,
    cutover_at TEXT NOT NULL,
    cutover_stream_id TEXT NOT NULL,
    cutover_ms INTEGER NOT NULL,
    provenance TEXT NOT NULL DEFAULT '{{}}',
    adopted_at REAL NOT NULL,
    reached_min_events_at REAL,
    seconds_to_min_events REAL,
    verdict_at_min_events TEXT,
    borderline_at_min_events INTEGER,
    last_verdict TEXT,
    last_reasons TEXT NOT NULL DEFAULT '[]',
    models TEXT NOT NULL DEFAULT '{{}}',
    borderline TEXT NOT NULL DEFAULT '[]',
    last_evaluated_at REAL,
    verdict_changes INTEGER NOT NULL DEFAULT 0,
    reports TEXT NOT NULL DEFAULT '[]',
    superseded_at REAL
);
CREATE INDEX IF NOT EXISTS cutovers_by_adoption ON cutovers (adopted_at);
PRAGMA user_version = {SCHEMA_VERSION};
"""
MAX_REPORTS_PER_ROW = 20  # the newest report paths of one cutover (a flapping verdict writes many)
MAX_REASONS_PER_ROW = 10
MAX_RESUMABLE_ROWS = 1000  # earlier rows a returning cutover can continue (bounded like the file)


class LedgerError(Exception):
    """The ledger file cannot be used; ``reason`` is a bounded label (metrics), the message one line."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class LedgerRow:
    identity: str
    source: str
    label: str | None
    cutover_at: str
    cutover_stream_id: str
    cutover_ms: int
    adopted_at: float
    provenance: dict[str, Any] = field(default_factory=dict)
    reached_min_events_at: float | None = None
    seconds_to_min_events: float | None = None
    verdict_at_min_events: str | None = None
    borderline_at_min_events: bool | None = None
    last_verdict: str | None = None
    last_reasons: tuple[str, ...] = ()
    models: dict[str, str] = field(default_factory=dict)
    borderline: tuple[str, ...] = ()
    last_evaluated_at: float | None = None
    verdict_changes: int = 0
    reports: tuple[str, ...] = ()
    superseded_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("last_reasons", "borderline", "reports"):
            data[name] = list(data[name])
        return data


def cutover_identity(cutover: Cutover) -> str:
    """A stable text key for "this deployment": the source's own identity plus the cutover's stream ID."""
    key, stream_id = cutover.identity()
    return f"{cutover.source}:{key or '-'}@{stream_id}"


def cutover_label(cutover: Cutover) -> str | None:
    """What an operator recognises: the unit, container or deployment (or nothing for --after)."""
    return getattr(cutover, "label", None) or cutover.unit


# ---- the current cutover's row (pure) --------------------------------------------------------------


class CutoverHistory:
    """The row of the cutover being gated. Each method returns the rows that changed (to be written)."""

    def __init__(self, min_events: int, resumed: Mapping[str, LedgerRow] | None = None) -> None:
        self.min_events = min_events
        self.current: LedgerRow | None = None
        self._resumed = dict(resumed or {})  # rows read back at start: a restart continues its row

    def adopt(
        self, cutover: Cutover, now: float, provenance: Mapping[str, Any] | None = None
    ) -> list[LedgerRow]:
        identity = cutover_identity(cutover)
        changed: list[LedgerRow] = []
        previous = self.current
        if previous is not None and previous.identity == identity:
            return []
        if previous is not None and previous.superseded_at is None:
            superseded = replace(previous, superseded_at=now)
            changed.append(superseded)
            # A cutover that comes back (A -> B -> A) continues its own row, as after a restart.
            self._resumed[previous.identity] = superseded
            while len(self._resumed) > MAX_RESUMABLE_ROWS:
                del self._resumed[next(iter(self._resumed))]
        resumed = self._resumed.pop(identity, None)
        if resumed is not None:
            row = replace(resumed, superseded_at=None)
        else:
            row = LedgerRow(
                identity=identity,
                source=cutover.source,
                label=cutover_label(cutover),
                cutover_at=cutover.timestamp,
                cutover_stream_id=str(cutover.stream_id),
                cutover_ms=cutover.stream_id.ms,
                adopted_at=now,
                provenance=dict(provenance or {}),
            )
        self.current = row
        changed.append(row)
        return changed

    def evaluated(self, result: GateResult, now: float) -> list[LedgerRow]:
        """The row after an evaluation of the current cutover; [] when nothing worth writing changed."""
        row = self.current
        if row is None or result.cutover is None or cutover_identity(result.cutover) != row.identity:
            return []
        models: dict[str, str] = {report.name: report.verdict for report in result.gated()}
        borderline = tuple(f"{model} {check.name}" for model, check in result.borderline())
        reasons = tuple(result.reasons[:MAX_REASONS_PER_ROW])
        updated = replace(
            row, last_verdict=result.verdict, last_reasons=reasons, models=models, borderline=borderline
        )
        if row.last_verdict is not None and row.last_verdict != result.verdict:
            updated = replace(updated, verdict_changes=row.verdict_changes + 1)
        if row.reached_min_events_at is None and _complete(result):
            cutover_seconds = row.cutover_ms / 1000
            updated = replace(
                updated,
                reached_min_events_at=now,
                seconds_to_min_events=max(now - cutover_seconds, 0.0),
                verdict_at_min_events=result.verdict,
                borderline_at_min_events=result.verdict_borderline(),
            )
        if _same_but_time(updated, row):
            self.current = replace(updated, last_evaluated_at=now)
            return []
        self.current = replace(updated, last_evaluated_at=now)
        return [self.current]

    def report_written(self, path: Path | str, cutover: Cutover) -> list[LedgerRow]:
        """The report goes to the row of the cutover it was evaluated for: the evaluation runs outside
        the lock, so the cutover may have been superseded (its row kept for resuming) in the meantime."""
        identity = cutover_identity(cutover)
        if self.current is not None and self.current.identity == identity:
            self.current = _with_report(self.current, path)
            return [self.current]
        superseded = self._resumed.get(identity)
        if superseded is None:
            return []
        self._resumed[identity] = _with_report(superseded, path)
        return [self._resumed[identity]]


def _with_report(row: LedgerRow, path: Path | str) -> LedgerRow:
    return replace(row, reports=(*row.reports, str(path))[-MAX_REPORTS_PER_ROW:])


def _complete(result: GateResult) -> bool:
    """The automatic gate's moment: min_events reached and a verdict that is not INSUFFICIENT_DATA."""
    return (
        result.progress.events >= result.progress.min_events and result.verdict != Verdict.INSUFFICIENT_DATA
    )


def _same_but_time(first: LedgerRow, second: LedgerRow) -> bool:
    return replace(first, last_evaluated_at=None) == replace(second, last_evaluated_at=None)


# ---- the file ---------------------------------------------------------------------------------------


def connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """A connection in WAL mode (writer) or read-only (readers); LedgerError with a one-line reason."""
    try:
        if read_only:
            if not path.is_file():
                raise LedgerError("missing", f"ledger {path}: no such file")
            connection = _open_read_only(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_SECONDS, check_same_thread=False)
            try:
                _refuse_newer_schema(connection, path)
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
                connection.executescript(_CREATE)
            except BaseException:
                connection.close()  # a failed open must not keep the file open (the writer retries)
                raise
        connection.row_factory = sqlite3.Row
        return connection
    except sqlite3.DatabaseError as exc:
        raise LedgerError(_reason(exc), f"ledger {path}: {exc}") from None
    except OSError as exc:
        raise LedgerError("unwritable", f"ledger {path}: {exc.strerror or exc}") from None


def _open_read_only(path: Path) -> sqlite3.Connection:
    """``mode=ro``; when SQLite cannot open a WAL file that way because it may not create the ``-shm``
    beside it (a read-only file system or directory) and no ``-wal`` exists (no writer has anything
    uncommitted, and none could start there), the file is read as immutable: it cannot change."""
    uri = path.resolve().as_uri()
    connection = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=_BUSY_TIMEOUT_SECONDS)
    try:
        connection.execute("PRAGMA user_version").fetchone()  # SQLite opens the file lazily
    except sqlite3.OperationalError as exc:
        connection.close()
        if "unable to open" not in str(exc) or Path(f"{path}-wal").exists():
            raise
        connection = sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True)
    return connection


def _refuse_newer_schema(connection: sqlite3.Connection, path: Path) -> None:
    """A file a newer quantum-gate wrote is left alone: writing it would set its schema version back
    (``_CREATE``) and fill its rows without the columns this version does not know."""
    found = int(connection.execute("PRAGMA user_version").fetchone()[0])
    if found > SCHEMA_VERSION:
        connection.close()
        raise LedgerError(
            "schema", f"ledger {path}: schema {found} is newer than this quantum-gate's {SCHEMA_VERSION}"
        )


def _reason(exc: sqlite3.Error) -> str:
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return "locked"
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return "corrupt"
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return "unwritable"
    if "full" in text or "disk i/o" in text:
        return "full"
    return "error"


# Facts recorded once per cutover. A daemon that started while the file was unusable could not read its
# rows back and starts the same cutover's row afresh: its later write must not replace them.
_ONCE = (
    "reached_min_events_at",
    "seconds_to_min_events",
    "verdict_at_min_events",
    "borderline_at_min_events",
)
_ASSIGNMENTS = {
    "adopted_at": "adopted_at = MIN(cutovers.adopted_at, excluded.adopted_at)",
    **{
        name: f"{name} = CASE WHEN cutovers.reached_min_events_at IS NULL THEN excluded.{name} "
        f"ELSE cutovers.{name} END"
        for name in _ONCE
    },
}


def upsert(
    connection: sqlite3.Connection, row: LedgerRow, *, max_rows: int, max_age_days: float, now: float
) -> None:
    """One transaction: write the row, then drop what retention no longer keeps."""
    values = row.to_json()
    params = [json.dumps(values[name]) if name in _JSON_COLUMNS else values[name] for name in _COLUMNS]
    assignments = ", ".join(_ASSIGNMENTS.get(name, f"{name} = excluded.{name}") for name in _COLUMNS[1:])
    with connection:
        connection.execute(
            f"INSERT INTO cutovers ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "  # noqa: S608 - column names are constants
            f"ON CONFLICT(identity) DO UPDATE SET {assignments}",
            params,
        )
        connection.execute("DELETE FROM cutovers WHERE adopted_at < ?", (now - max_age_days * 86400,))
        connection.execute(
            "DELETE FROM cutovers WHERE id NOT IN "
            "(SELECT id FROM cutovers ORDER BY adopted_at DESC, id DESC LIMIT ?)",
            (max_rows,),
        )


def rows(connection: sqlite3.Connection, limit: int) -> list[LedgerRow]:
    """The newest ``limit`` rows, newest first."""
    try:
        found = connection.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM cutovers ORDER BY adopted_at DESC, id DESC LIMIT ?",  # noqa: S608 - constants
            (limit,),
        ).fetchall()
    except sqlite3.DatabaseError as exc:
        raise LedgerError(_reason(exc), f"ledger: {exc}") from None
    try:
        return [_row(record) for record in found]
    except (ValueError, TypeError) as exc:  # a row edited by hand or by another program
        raise LedgerError("corrupt", f"ledger: a row this quantum-gate did not write ({exc})") from None


# The type each column must hold (None allowed where the column is nullable): a row that holds anything
# else was not written by this code, and reading it on would fail later, in a page or a table.
_NULLABLE = frozenset(
    {
        "label",
        "reached_min_events_at",
        "seconds_to_min_events",
        "verdict_at_min_events",
        "borderline_at_min_events",
        "last_verdict",
        "last_evaluated_at",
        "superseded_at",
    }
)
_KINDS: dict[str, tuple[type, ...]] = {
    "identity": (str,),
    "source": (str,),
    "label": (str,),
    "cutover_at": (str,),
    "cutover_stream_id": (str,),
    "cutover_ms": (int,),
    "provenance": (dict,),
    "adopted_at": (int, float),
    "reached_min_events_at": (int, float),
    "seconds_to_min_events": (int, float),
    "verdict_at_min_events": (str,),
    "borderline_at_min_events": (int,),
    "last_verdict": (str,),
    "last_reasons": (list,),
    "models": (dict,),
    "borderline": (list,),
    "last_evaluated_at": (int, float),
    "verdict_changes": (int,),
    "reports": (list,),
    "superseded_at": (int, float),
}


def _check_kinds(data: Mapping[str, Any]) -> None:
    for name, kinds in _KINDS.items():
        value = data[name]
        if value is None and name in _NULLABLE:
            continue
        if not isinstance(value, kinds) or isinstance(value, bool):
            raise ValueError(f"{name} holds {type(value).__name__} {str(value)[:40]!r}")


def _row(record: sqlite3.Row) -> LedgerRow:
    data = {name: record[name] for name in _COLUMNS}
    for name in _JSON_COLUMNS:
        data[name] = json.loads(data[name]) if data[name] else None
        if data[name] is None:
            data[name] = {} if name in {"provenance", "models"} else []
    _check_kinds(data)
    return LedgerRow(
        **{
            **data,
            "provenance": data["provenance"] or {},
            "models": data["models"] or {},
            "last_reasons": tuple(data["last_reasons"] or ()),
            "borderline": tuple(data["borderline"] or ()),
            "reports": tuple(data["reports"] or ()),
            "borderline_at_min_events": (
                None if data["borderline_at_min_events"] is None else bool(data["borderline_at_min_events"])
            ),
        }
    )


def read_history(path: Path, limit: int) -> list[LedgerRow]:
    """The newest rows of a ledger file, read-only (safe while the daemon writes)."""
    connection = connect(path, read_only=True)
    try:
        return rows(connection, limit)
    finally:
        connection.close()


# ---- the daemon's writer -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerState:
    """What the metrics and the page show of the ledger."""

    path: str
    up: bool
    reason: str | None
    writes_total: int
    errors_total: int
    recent: tuple[LedgerRow, ...]


class LedgerWriter:
    """One thread writes; ``submit`` only records the row (coalesced per cutover) and wakes it."""

    def __init__(
        self,
        path: Path,
        *,
        max_rows: int,
        max_age_days: float,
        recent: int = 10,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.max_rows = max_rows
        self.max_age_days = max_age_days
        self.recent_limit = recent
        self.clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pending: dict[str, LedgerRow] = {}
        self._connection: sqlite3.Connection | None = None
        # The file the connection has open: a file deleted or replaced under it is reopened by path, or
        # the rows would go on into an unlinked inode while the ledger says it is up.
        self._file: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None
        self._writing = False  # a batch is being written (flush waits for it)
        self._state = LedgerState(str(path), False, "not opened yet", 0, 0, ())

    # ---- start (on the main thread) -----------------------------------------------------------------

    def open(self) -> dict[str, LedgerRow]:
        """Open the file and read back its rows (a restart continues them); {} when it cannot."""
        try:
            found = rows(self._connect(), self.max_rows)
        except LedgerError as exc:
            self._failed(exc)
            return {}
        self._set(up=True, reason=None, recent=tuple(found[: self.recent_limit]))
        log.info("ledger.opened", path=str(self.path), rows=len(found))
        return {row.identity: row for row in found}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ledger", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._connection is not None:
            with contextlib.suppress(sqlite3.Error):
                self._connection.close()

    # ---- any thread ------------------------------------------------------------------------------------

    def submit(self, changed: list[LedgerRow]) -> None:
        if not changed:
            return
        with self._lock:
            for row in changed:
                self._pending[row.identity] = row
        self._wake.set()

    def state(self) -> LedgerState:
        with self._lock:
            return self._state

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything submitted so far is written or failed (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._pending and not self._writing:
                    return True
            time.sleep(0.01)
        return False

    # ---- the writer thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                batch, self._pending = self._pending, {}
                self._writing = bool(batch)
            if batch:
                self._write(batch)
            with self._lock:
                self._writing = False
            if self._stop.is_set():
                with self._lock:
                    if not self._pending:
                        return

    def _write(self, batch: dict[str, LedgerRow]) -> None:
        try:
            if self._connection is not None and _file_identity(self.path) != self._file:
                log.warning("ledger.reopened", path=str(self.path), why="the file was deleted or replaced")
                self._reconnect_later()
            connection = self._connection or self._connect()
            for row in batch.values():
                upsert(
                    connection,
                    row,
                    max_rows=self.max_rows,
                    max_age_days=self.max_age_days,
                    now=self.clock(),
                )
            recent = tuple(rows(connection, self.recent_limit))
        except (LedgerError, sqlite3.Error) as exc:
            error = (
                exc
                if isinstance(exc, LedgerError)
                else LedgerError(_reason(exc), f"ledger {self.path}: {exc}")
            )
            self._failed(error)
            self._reconnect_later()
            return
        was_down = not self.state().up
        with self._lock:
            self._state = replace(
                self._state,
                up=True,
                reason=None,
                writes_total=self._state.writes_total + len(batch),
                recent=recent,
            )
        if was_down:
            log.info("ledger.available", path=str(self.path))

    def _connect(self) -> sqlite3.Connection:
        self._connection = connect(self.path)
        self._file = _file_identity(self.path)
        return self._connection

    def _reconnect_later(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(sqlite3.Error):
                self._connection.close()
        self._connection = None

    def _failed(self, exc: LedgerError) -> None:
        with self._lock:
            changed = self._state.up or self._state.reason != exc.reason
            self._state = replace(
                self._state, up=False, reason=exc.reason, errors_total=self._state.errors_total + 1
            )
        if changed:
            log.error("ledger.unavailable", path=str(self.path), reason=exc.reason, error=exc.message)

    def _set(self, *, up: bool, reason: str | None, recent: tuple[LedgerRow, ...]) -> None:
        with self._lock:
            self._state = replace(self._state, up=up, reason=reason, recent=recent)


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_dev, found.st_ino


def default_ledger_path(configured: Path | None, environ: Mapping[str, str]) -> Path | None:
    """``ledger.path`` when set; else ``$STATE_DIRECTORY/ledger.sqlite3`` under systemd's StateDirectory=
    (its first entry when it lists several); else no ledger."""
    if configured is not None:
        return configured
    state = environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(state) / "ledger.sqlite3" if state else None
