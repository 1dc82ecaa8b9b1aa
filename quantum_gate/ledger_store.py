"""The deployment ledger's SQLite file: schema, one upsert per changed row with retention, readers.

``connect`` opens it in WAL mode for the one writer (``ledger_writer.LedgerWriter``) or read-only;
``read_history`` reads it read-only (``quantum-gate history``, ``/history``): WAL mode lets it read
while the daemon writes. A row this code did not write, a corrupt, locked, read-only or full file is a
``LedgerError`` with a bounded reason. Schema and retention: docs/ledger.md.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from quantum_gate.ledger import LedgerRow

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


class LedgerError(Exception):
    """The ledger file cannot be used; ``reason`` is a bounded label (metrics), the message one line."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


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
        raise LedgerError(error_reason(exc), f"ledger {path}: {exc}") from None
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


def error_reason(exc: sqlite3.Error) -> str:
    """The bounded label (metrics, logs) for what SQLite said."""
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
        raise LedgerError(error_reason(exc), f"ledger: {exc}") from None
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
