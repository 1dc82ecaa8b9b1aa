"""The daemon's ledger writer: one thread, one connection, one short transaction per changed row.

It never runs on the tail thread. Rows waiting to be written are coalesced per cutover, so the queue is
bounded by the number of cutovers, not of evaluations. A corrupt, locked, read-only or full file is
counted and logged once per change of state; the gate goes on without the ledger (docs/ledger.md).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import structlog

from quantum_gate.ledger import LedgerRow
from quantum_gate.ledger_store import LedgerError, connect, error_reason, rows, upsert

log = structlog.get_logger("quantum_gate.ledger")


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
                else LedgerError(error_reason(exc), f"ledger {self.path}: {exc}")
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
