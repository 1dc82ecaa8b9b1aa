"""The ledger file and its readers as a careless operator or a hostile disk leaves them: rows edited by
hand, a file from a newer quantum-gate, a file deleted or replaced under the running writer, odd
``?limit=`` values (docs/ledger.md)."""

from __future__ import annotations

import gc
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from conftest import REPO
from eventkit import CUTOVER_MS, healthy_events, run_gate

from quantum_gate.cutover import Cutover
from quantum_gate.exporter import Snapshot
from quantum_gate.httpapp import history_response
from quantum_gate.ledger import CutoverHistory, LedgerRow, cutover_identity
from quantum_gate.ledger_store import SCHEMA_VERSION, LedgerError, connect, read_history, upsert
from quantum_gate.ledger_writer import LedgerWriter
from quantum_gate.streamids import StreamId


def row(identity: str, adopted_at: float) -> LedgerRow:
    return LedgerRow(
        identity=identity,
        source="after",
        label=None,
        cutover_at="2026-01-10T05:43:15+00:00",
        cutover_stream_id="1768023795000-0",
        cutover_ms=1768023795000,
        adopted_at=adopted_at,
    )


def ledger_with_one_row(path: Path) -> None:
    connection = connect(path)
    upsert(connection, row("after:-@1768023795000-0", 1.0), max_rows=10, max_age_days=36500, now=1.0)
    connection.close()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quantum_gate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE cutovers SET models = 'not json'",
        "UPDATE cutovers SET reports = '{\"a\": 1}'",
        "UPDATE cutovers SET cutover_ms = 'abc'",
        "UPDATE cutovers SET seconds_to_min_events = 'soon'",
    ],
)
def test_a_hand_edited_row_is_a_corrupt_ledger_not_a_crash(tmp_path: Path, edit: str) -> None:
    path = tmp_path / "ledger.sqlite3"
    ledger_with_one_row(path)
    with sqlite3.connect(path) as connection:
        connection.execute(edit)
    connection.close()
    with pytest.raises(LedgerError) as raised:
        read_history(path, 10)
    assert raised.value.reason == "corrupt"
    done = run_cli("history", "--ledger", str(path))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and "ledger" in done.stderr
    # The daemon's writer opens the same file at start: it reports it and runs on without it.
    writer = LedgerWriter(path, max_rows=10, max_age_days=36500, clock=lambda: 2.0)
    assert writer.open() == {}
    state = writer.state()
    assert not state.up and state.reason == "corrupt" and state.errors_total == 1
    writer.stop()


def test_the_writer_leaves_a_ledger_from_a_newer_version_alone(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    ledger_with_one_row(path)
    future = SCHEMA_VERSION + 1
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version = {future}")
    connection.close()
    writer = LedgerWriter(path, max_rows=10, max_age_days=36500, clock=lambda: 2.0)
    assert writer.open() == {}
    state = writer.state()
    assert not state.up and state.reason == "schema"
    writer.start()
    writer.submit([row("after:-@1768023796000-0", 2.0)])
    assert writer.flush(5)
    writer.stop()
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == future
        assert connection.execute("SELECT count(*) FROM cutovers").fetchone()[0] == 1
    connection.close()


@pytest.mark.parametrize("replacement", ["deleted", "garbage"])
def test_a_ledger_file_deleted_or_replaced_under_the_writer_is_noticed(
    tmp_path: Path, replacement: str
) -> None:
    """The writer must not go on writing into an unlinked inode (the rows would vanish with it) while it
    says the ledger is up: it reopens the path, which recreates the file or finds the garbage."""
    path = tmp_path / "ledger.sqlite3"
    writer = LedgerWriter(path, max_rows=10, max_age_days=36500, clock=lambda: 2.0)
    writer.open()
    writer.start()
    writer.submit([row("first", 1.0)])
    assert writer.flush(5)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    if replacement == "garbage":
        path.write_bytes(b"not a database at all " * 500)
    writer.submit([row("second", 2.0)])
    assert writer.flush(5)
    state = writer.state()
    writer.stop()
    if replacement == "deleted":
        assert state.up
        assert [found.identity for found in read_history(path, 10)] == ["second"]
    else:
        assert not state.up and state.reason == "corrupt"
        assert path.read_bytes().startswith(b"not a database")


@pytest.mark.parametrize(
    "query",
    ["limit=%C2%B2", "limit=\u00b2", "limit=\u0661\u0660", "limit=" + "9" * 5000, "limit=+5"],
)
def test_history_limit_that_is_not_a_plain_number_is_400_not_an_error(query: str) -> None:
    """``str.isdigit`` says yes to superscripts and to 5,000 digits, which ``int`` then refuses (a 500)."""
    snap = cast(Snapshot, SimpleNamespace(ledger=None))
    status, _kind, body = history_response(snap, f"/history?{query}")
    assert status == 400 and b"limit must be a whole number" in body


def test_a_cutover_that_comes_back_continues_its_own_row() -> None:
    """A -> B -> A (a cutover source that flips back, e.g. a rollback to the same deployment): A's row
    keeps its time to min_events, verdict at min_events, reports and adoption time; it is not replaced
    by a blank row that the file's upsert would then write over the old one."""
    first = Cutover(StreamId(CUTOVER_MS), source="systemd", unit="u.service", invocation_id="inv-a")
    second = Cutover(StreamId(CUTOVER_MS + 60_000), source="systemd", unit="u.service", invocation_id="inv-b")
    history = CutoverHistory(min_events=200)
    history.adopt(first, now=CUTOVER_MS / 1000 + 1)
    [reached] = history.evaluated(
        run_gate(healthy_events(200, start_ms=CUTOVER_MS), cutover=first), now=CUTOVER_MS / 1000 + 30
    )
    [with_report] = history.report_written("reports/quality_gate_a.json", first)
    history.adopt(second, now=CUTOVER_MS / 1000 + 90)
    superseded_b, back = history.adopt(first, now=CUTOVER_MS / 1000 + 120)
    assert superseded_b.identity == cutover_identity(second) and superseded_b.superseded_at is not None
    assert back.identity == reached.identity and back.superseded_at is None
    assert back.adopted_at == with_report.adopted_at
    assert back.verdict_at_min_events == reached.verdict_at_min_events == "PASS"
    assert back.seconds_to_min_events == reached.seconds_to_min_events
    assert back.reports == ("reports/quality_gate_a.json",)


@pytest.fixture
def read_only_copy_of_a_ledger(tmp_path: Path) -> Iterator[Path]:
    """A ledger (WAL mode, daemon stopped: no -wal or -shm beside it) on a file system mounted read-only,
    as a backup or an operator without write access to the state directory sees it. Root bypasses
    directory permissions, so only a read-only mount shows what SQLite does there."""
    mount_point = tmp_path / "ro"
    mount_point.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
            capture_output=True,
            check=False,
        ).returncode
    ):
        pytest.skip("needs root and mount(8) to make a read-only file system")
    try:
        path = mount_point / "ledger.sqlite3"
        ledger_with_one_row(path)
        assert not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists()
        remount = ["mount", "-o", "remount,ro", str(mount_point)]
        subprocess.run(remount, capture_output=True, check=True)
        yield path
    finally:
        subprocess.run(["umount", str(mount_point)], capture_output=True, check=False)


def test_history_reads_a_ledger_on_a_read_only_file_system(read_only_copy_of_a_ledger: Path) -> None:
    path = read_only_copy_of_a_ledger
    assert [found.identity for found in read_history(path, 10)] == ["after:-@1768023795000-0"]
    done = run_cli("history", "--ledger", str(path), "--json")
    assert done.returncode == 0, done.stderr
    assert '"after:-@1768023795000-0"' in done.stdout
    # The daemon's writer still says it cannot write there (and does not crash).
    writer = LedgerWriter(path, max_rows=10, max_age_days=36500, clock=lambda: 2.0)
    assert writer.open() == {}
    assert writer.state().reason == "unwritable"
    writer.stop()


def test_a_failed_open_does_not_keep_the_file_open(tmp_path: Path) -> None:
    """The writer retries the file on every write; a failed open that leaves its descriptor behind
    would pile one up per retry (and keep a deleted or unmounted file busy)."""
    path = tmp_path / "ledger.sqlite3"
    path.write_bytes(b"not a database at all " * 500)
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("needs /proc")
    before = {entry.name for entry in fds.iterdir()}
    gc.disable()  # a leaked connection must not be rescued by a collection in between
    try:
        for _ in range(5):
            with pytest.raises(LedgerError):
                connect(path)
        now_open = [
            os.readlink(fds / name)
            for name in {e.name for e in fds.iterdir()} - before
            if (fds / name).exists()
        ]
    finally:
        gc.enable()
    assert str(path) not in now_open


def test_a_row_rewritten_after_a_start_without_the_file_keeps_what_it_recorded(tmp_path: Path) -> None:
    """A daemon that restarts while the file is locked or not yet mounted cannot read its rows back, so
    it starts the same cutover's row afresh; when the file works again, that blank row must not
    overwrite the recorded adoption, time to min_events and verdict at min_events (the audit trail)."""
    path = tmp_path / "ledger.sqlite3"
    recorded = replace(
        row("after:-@1768023795000-0", 100.0),
        reached_min_events_at=200.0,
        seconds_to_min_events=95.0,
        verdict_at_min_events="FAIL",
        borderline_at_min_events=False,
        last_verdict="FAIL",
    )
    connection = connect(path)
    upsert(connection, recorded, max_rows=10, max_age_days=36500, now=300.0)
    restarted = replace(
        row("after:-@1768023795000-0", 5000.0),
        reached_min_events_at=5010.0,
        seconds_to_min_events=4905.0,
        verdict_at_min_events="PASS",
        borderline_at_min_events=True,
        last_verdict="PASS",
    )
    upsert(connection, restarted, max_rows=10, max_age_days=36500, now=5010.0)
    connection.close()
    [found] = read_history(path, 10)
    assert found.adopted_at == 100.0
    assert (found.reached_min_events_at, found.seconds_to_min_events) == (200.0, 95.0)
    assert (found.verdict_at_min_events, found.borderline_at_min_events) == ("FAIL", False)
    assert found.last_verdict == "PASS"  # the latest verdict is the latest
