"""The deployment ledger: rows from the daemon's events, the SQLite file, its readers, its failures, and a
real daemon that keeps its history across a restart (docs/ledger.md)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, FakeSystemd, RedisServer
from daemonkit import daemon_process, write_atomically
from eventkit import (
    CUTOVER_MS,
    collapsed_entries,
    collapsed_vote,
    event,
    healthy_entries,
    healthy_events,
    run_gate,
)

from quantum_gate.cutover import Cutover
from quantum_gate.gate import GateResult
from quantum_gate.history import render_history
from quantum_gate.ledger import CutoverHistory, LedgerRow, cutover_identity, default_ledger_path
from quantum_gate.ledger_store import LedgerError, connect, read_history, rows, upsert
from quantum_gate.ledger_writer import LedgerWriter
from quantum_gate.streamids import StreamId


def systemd_cutover(ms: int, invocation: str) -> Cutover:
    return Cutover(
        stream_id=StreamId(ms), source="systemd", unit="quantum-ai-engine.service", invocation_id=invocation
    )


def gate_at(cutover: Cutover, healthy: bool, count: int = 200) -> GateResult:
    if healthy:
        events = healthy_events(count, start_ms=cutover.stream_id.ms)
    else:
        events = [event(cutover.stream_id.ms + i, {"lgbm": collapsed_vote(i)}) for i in range(count)]
    return run_gate(events, cutover=cutover)


def row(identity: str, adopted_at: float, **fields: Any) -> LedgerRow:
    return LedgerRow(
        identity=identity,
        source="systemd",
        label="quantum-ai-engine.service",
        cutover_at="2026-01-10T05:43:15+00:00",
        cutover_stream_id="1768023795000-0",
        cutover_ms=1768023795000,
        adopted_at=adopted_at,
        **fields,
    )


# ---- CutoverHistory: the current cutover's row (pure) -------------------------------------------------


def test_history_records_min_events_verdict_changes_reports_and_supersession() -> None:
    first = systemd_cutover(CUTOVER_MS, "inv-1")
    history = CutoverHistory(min_events=200)
    [adopted] = history.adopt(first, now=CUTOVER_MS / 1000 + 1, provenance={"cutover": first.to_json()})
    assert adopted.identity == cutover_identity(first) == f"systemd:inv-1@{CUTOVER_MS}-0"
    assert adopted.reached_min_events_at is None and adopted.last_verdict is None

    early = gate_at(first, healthy=False, count=150)
    [evaluated] = history.evaluated(early, now=CUTOVER_MS / 1000 + 60)
    assert evaluated.last_verdict == "INSUFFICIENT_DATA" and evaluated.reached_min_events_at is None
    assert history.evaluated(early, now=CUTOVER_MS / 1000 + 61) == []  # nothing changed: nothing to write

    complete = gate_at(first, healthy=False)
    [reached] = history.evaluated(complete, now=CUTOVER_MS / 1000 + 120)
    assert reached.verdict_at_min_events == "FAIL" and reached.last_verdict == "FAIL"
    assert reached.seconds_to_min_events == pytest.approx(120)
    assert reached.verdict_changes == 1  # INSUFFICIENT_DATA -> FAIL
    assert reached.models == {"lgbm": "FAIL"}
    assert any("lgbm: majority" in reason for reason in reached.last_reasons)
    [with_report] = history.report_written("/reports/quality_gate_1.json", first)
    assert with_report.reports == ("/reports/quality_gate_1.json",)

    second = systemd_cutover(CUTOVER_MS + 500_000, "inv-2")
    superseded, new = history.adopt(second, now=CUTOVER_MS / 1000 + 600)
    assert superseded.identity == reached.identity and superseded.superseded_at == CUTOVER_MS / 1000 + 600
    assert superseded.verdict_at_min_events == "FAIL"  # what it was, kept
    assert new.identity == cutover_identity(second) and new.superseded_at is None
    assert history.adopt(second, now=CUTOVER_MS / 1000 + 601) == []  # the same cutover again: no change


def test_a_report_written_after_its_cutover_was_superseded_goes_to_its_own_row() -> None:
    """The evaluation runs outside the lock: the engine may restart between the verdict and the report
    file (the demo's third act did). The report belongs to the cutover it was evaluated for, never to
    the one adopted meanwhile (found by CI: a ledger row with no reports beside a report file)."""
    first, second = systemd_cutover(CUTOVER_MS, "inv-1"), systemd_cutover(CUTOVER_MS + 500_000, "inv-2")
    history = CutoverHistory(200)
    history.adopt(first, now=1.0)
    history.evaluated(gate_at(first, healthy=False), now=CUTOVER_MS / 1000 + 120)
    history.adopt(second, now=CUTOVER_MS / 1000 + 600)
    [late] = history.report_written("/reports/quality_gate_1.json", first)
    assert late.identity == cutover_identity(first) and late.reports == ("/reports/quality_gate_1.json",)
    assert late.superseded_at == CUTOVER_MS / 1000 + 600  # still superseded: only the report was added
    assert history.current is not None and history.current.reports == ()
    unknown = systemd_cutover(CUTOVER_MS + 900_000, "inv-never-adopted")
    assert history.report_written("/reports/x.json", unknown) == []


def test_a_restarted_daemon_continues_the_row_it_wrote() -> None:
    cutover = systemd_cutover(CUTOVER_MS, "inv-1")
    before = CutoverHistory(200)
    before.adopt(cutover, now=1.0)
    [done] = before.evaluated(gate_at(cutover, healthy=True), now=CUTOVER_MS / 1000 + 30)
    after = CutoverHistory(200, resumed={done.identity: done})
    [resumed] = after.adopt(cutover, now=CUTOVER_MS / 1000 + 999)
    assert resumed == done  # reached_min_events_at, the verdict at 200 and the counts survive
    assert after.evaluated(gate_at(cutover, healthy=True), now=CUTOVER_MS / 1000 + 1000) == []


def test_an_evaluation_of_another_cutover_is_not_recorded() -> None:
    history = CutoverHistory(200)
    history.adopt(systemd_cutover(CUTOVER_MS, "inv-1"), now=1.0)
    assert history.evaluated(gate_at(systemd_cutover(CUTOVER_MS, "inv-2"), healthy=True), now=2.0) == []
    assert (
        CutoverHistory(200).evaluated(gate_at(systemd_cutover(CUTOVER_MS, "x"), healthy=True), now=2.0) == []
    )


# ---- the file ---------------------------------------------------------------------------------------


def test_upsert_read_and_retention_by_rows_and_age(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    connection = connect(path)
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    now = 10_000_000.0
    for index in range(5):
        upsert(connection, row(f"id-{index}", now + index), max_rows=3, max_age_days=365, now=now + index)
    assert [r.identity for r in read_history(path, 10)] == ["id-4", "id-3", "id-2"]  # newest first, 3 kept
    upsert(connection, row("id-4", now + 4, last_verdict="PASS"), max_rows=3, max_age_days=365, now=now + 4)
    assert read_history(path, 1)[0].last_verdict == "PASS"  # the same identity is updated, not duplicated
    upsert(connection, row("id-new", now + 3 * 86400), max_rows=10, max_age_days=2, now=now + 3 * 86400)
    assert [r.identity for r in read_history(path, 10)] == ["id-new"]  # the others are older than 2 days
    connection.close()


def test_every_field_survives_the_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    original = row(
        "systemd:inv@1-0",
        5.0,
        provenance={"cutover": {"unit": "u"}, "deployment": None},
        reached_min_events_at=7.5,
        seconds_to_min_events=2.5,
        verdict_at_min_events="PASS",
        borderline_at_min_events=True,
        last_verdict="FAIL",
        last_reasons=("lgbm: hold 0.9 (must be <= 0.85)",),
        models={"lgbm": "FAIL", "xgb": "PASS"},
        borderline=("lgbm hold",),
        last_evaluated_at=9.0,
        verdict_changes=3,
        reports=("/r/a.json", "/r/b.json"),
        superseded_at=11.0,
    )
    connection = connect(path)
    upsert(connection, original, max_rows=10, max_age_days=365, now=5.0)
    connection.close()
    assert read_history(path, 5) == [original]


def test_readers_read_while_the_writer_writes(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    writer = LedgerWriter(path, max_rows=1000, max_age_days=365, clock=lambda: 1e9)
    writer.open()
    writer.start()
    seen: list[int] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            while len(seen) < 200:
                seen.append(len(read_history(path, 1000)))
        except BaseException as exc:
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    for index in range(300):
        writer.submit([row(f"id-{index}", 1e9 + index)])
        if index % 10 == 0:
            assert writer.flush(5)
    reader.join(30)
    assert writer.flush(5)
    writer.stop()
    assert errors == []
    assert seen == sorted(seen)  # the reader only ever saw committed, growing states
    assert len(read_history(path, 1000)) == 300
    assert writer.state().up and writer.state().writes_total == 300 and writer.state().errors_total == 0


def test_history_command_reads_the_file_while_it_is_open_for_writing(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    connection = connect(path)
    upsert(
        connection,
        row("systemd:inv-1@1768023795000-0", 1e9, last_verdict="PASS"),
        max_rows=9,
        max_age_days=9,
        now=1e9,
    )
    connection.execute("BEGIN IMMEDIATE")  # a writer in the middle of a transaction
    connection.execute("UPDATE cutovers SET last_verdict = 'FAIL'")
    done = run_cli("history", "--ledger", str(path), "--json")
    connection.rollback()
    connection.close()
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert [c["last_verdict"] for c in found["cutovers"]] == ["PASS"]


def test_a_corrupt_or_missing_file_is_one_line_for_readers(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.sqlite3"
    corrupt.write_bytes(b"this is not an SQLite database, not even close" * 100)
    with pytest.raises(LedgerError) as raised:
        read_history(corrupt, 10)
    assert raised.value.reason == "corrupt"
    for path, expected in ((corrupt, "not a database"), (tmp_path / "absent.sqlite3", "no such file")):
        done = run_cli("history", "--ledger", str(path))
        assert done.returncode == 1
        assert done.stderr.count("\n") == 1 and expected in done.stderr and "Traceback" not in done.stderr
    done = run_cli("history")
    assert done.returncode == 1 and "no ledger file given" in done.stderr
    done = run_cli("history", "--ledger", str(corrupt), "--limit", "0")
    assert done.returncode == 1 and "from 1 to 1000" in done.stderr


@pytest.mark.parametrize("obstacle", ["directory", "under_a_file", "corrupt"])
def test_an_unusable_ledger_is_counted_and_the_writer_keeps_going(tmp_path: Path, obstacle: str) -> None:
    path = tmp_path / "ledger.sqlite3"
    if obstacle == "directory":
        path.mkdir()
    elif obstacle == "under_a_file":
        (tmp_path / "file").write_text("x")
        path = tmp_path / "file" / "ledger.sqlite3"
    else:
        path.write_bytes(b"garbage" * 1000)
    writer = LedgerWriter(path, max_rows=10, max_age_days=1, clock=lambda: 1.0)
    assert writer.open() == {}
    state = writer.state()
    assert not state.up and state.errors_total == 1 and state.reason in {"unwritable", "corrupt"}
    writer.start()
    writer.submit([row("a", 1.0)])
    assert writer.flush(5)
    writer.stop()
    assert writer.state().errors_total == 2 and not writer.state().up


def test_a_full_disk_is_counted_and_recovers(tmp_path: Path) -> None:
    """SQLite's own page limit stands in for a full disk: the same SQLITE_FULL error a write gets."""
    path = tmp_path / "ledger.sqlite3"
    writer = LedgerWriter(path, max_rows=100_000, max_age_days=365, clock=lambda: 1.0)
    writer.open()
    assert writer._connection is not None
    pages = writer._connection.execute("PRAGMA page_count").fetchone()[0]
    writer._connection.execute(f"PRAGMA max_page_count = {pages + 2}")
    writer.start()
    big = "x" * 20_000
    writer.submit([row(f"id-{i}", 1.0 + i, last_reasons=(big,)) for i in range(20)])
    assert writer.flush(5)
    state = writer.state()
    assert not state.up and state.reason == "full" and state.errors_total >= 1
    writer.submit([row("small", 99.0)])  # the writer reconnects (no page cap now) and goes on
    assert writer.flush(5)
    writer.stop()
    assert writer.state().up and any(r.identity == "small" for r in read_history(path, 100))


def test_default_path_follows_systemd_state_directory(tmp_path: Path) -> None:
    assert default_ledger_path(None, {}) is None
    assert default_ledger_path(None, {"STATE_DIRECTORY": "/var/lib/qg:/var/lib/other"}) == Path(
        "/var/lib/qg/ledger.sqlite3"
    )
    assert default_ledger_path(tmp_path / "x.db", {"STATE_DIRECTORY": "/var/lib/qg"}) == tmp_path / "x.db"


def test_history_table_says_what_each_cutover_did() -> None:
    now = 1768023795.0 + 7200
    text = render_history(
        [
            row(
                "systemd:0123456789abcdef@1768023795000-0",
                1.0,
                seconds_to_min_events=754,
                verdict_at_min_events="PASS",
                borderline_at_min_events=True,
                last_verdict="FAIL",
                reports=("/var/lib/qg/reports/quality_gate_20260110T060000000Z.json",),
                superseded_at=5.0,
            )
        ],
        now,
    )
    header, line = text.splitlines()
    assert header.split()[:3] == ["cutover", "(UTC)", "age"]
    assert "2026-01-10T05:43:15Z" in line and "2h00m" in line and "12m34s" in line
    assert "PASS (borderline)" in line and "FAIL (final)" in line
    assert "quantum-ai-engine.service 0123456789ab" in line
    assert line.endswith("quality_gate_20260110T060000000Z.json")
    assert render_history([], now) == "no cutovers recorded yet"


# ---- the daemon, for real -----------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quantum_gate", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )


FAST: dict[str, Any] = {
    "redis": {"block_ms": 200, "backoff_max_seconds": 0.5},
    "cutover": {"poll_seconds": 0.2},
    "daemon": {"shutdown_timeout_seconds": 3},
    "windows": {"baseline": 50},
}


def test_three_cutovers_are_kept_across_a_daemon_restart(
    redis_server: RedisServer, stream_key: str, tmp_path: Path, fake_systemd: FakeSystemd
) -> None:
    client = redis_server.admin()
    ledger = tmp_path / "state" / "ledger.sqlite3"
    start = int(time.time()) - 3000
    acts = [(start, "inv-1", False), (start + 1000, "inv-2", True), (start + 2000, "inv-3", False)]
    workdir = tmp_path / "daemon"
    with daemon_process(
        workdir, redis_server.url, stream_key, "--ledger", str(ledger), config=FAST
    ) as daemon:
        for number, (entered, invocation, healthy) in enumerate(acts, start=1):
            fake_systemd.restart(entered=entered, invocation=invocation, restarts=number - 1)
            daemon.wait_value("quantum_gate_cutovers_total", number, timeout=15)
            make = healthy_entries if healthy else collapsed_entries
            write_atomically(client, stream_key, make(200, entered * 1000 + 1000, 1000))
            daemon.wait_log("gate.completed", count=number, timeout=20)
        history = daemon.wait_for(
            lambda: (
                h
                if len((h := daemon.json("/history"))["cutovers"]) == 3 and h["cutovers"][0]["reports"]
                else None
            ),
            10,
            "three cutovers in /history",
        )
        assert daemon.value("quantum_gate_ledger_up") == 1
        assert daemon.value("quantum_gate_ledger_errors_total") == 0
        code, _ = daemon.terminate(within=5)
        assert code == 0
    rows_before = history["cutovers"]
    assert [r["verdict_at_min_events"] for r in rows_before] == ["FAIL", "PASS", "FAIL"]  # newest first
    assert [r["identity"].split("@")[0] for r in rows_before] == [
        "systemd:inv-3",
        "systemd:inv-2",
        "systemd:inv-1",
    ]
    assert all(r["reports"] and Path(r["reports"][0]).is_file() for r in rows_before)
    assert rows_before[0]["superseded_at"] is None and rows_before[1]["superseded_at"] is not None
    for r in rows_before:
        assert r["seconds_to_min_events"] is not None and r["seconds_to_min_events"] > 0

    done = run_cli("history", "--ledger", str(ledger))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 4
    assert [("FAIL" in lines[1]), ("PASS" in lines[2]), ("FAIL" in lines[3])] == [True, True, True]
    assert "(final)" in lines[2] and "(final)" not in lines[1]

    with daemon_process(
        tmp_path / "again", redis_server.url, stream_key, "--ledger", str(ledger), config=FAST
    ) as again:
        again.wait_value("quantum_gate_cutovers_total", 1, timeout=15)
        after = again.wait_for(
            lambda: h if (h := again.json("/history"))["cutovers"] else None, 10, "/history"
        )
        limited = again.json("/history?limit=2")
        misspelt = again.get("/history?limits=2")
        assert (
            misspelt is not None and misspelt[0] == 400 and b"unknown query parameter 'limits'" in misspelt[1]
        )
        again.terminate(within=5)
    assert [r["identity"] for r in after["cutovers"]] == [r["identity"] for r in rows_before]
    assert [r["verdict_at_min_events"] for r in after["cutovers"]] == ["FAIL", "PASS", "FAIL"]
    assert after["cutovers"][0]["reached_min_events_at"] == rows_before[0]["reached_min_events_at"]
    assert len(limited["cutovers"]) == 2


def test_without_a_ledger_history_says_so_and_nothing_is_exported(
    redis_server: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    after = str(int(time.time()) - 100)
    with daemon_process(tmp_path, redis_server.url, stream_key, "--after", after, config=FAST) as daemon:
        answer = daemon.wait_for(lambda: daemon.get("/history"), 10, "/history")
        assert answer[0] == 404 and b"no ledger configured" in answer[1]
        assert daemon.value("quantum_gate_ledger_up") is None
        daemon.terminate(within=5)


def test_an_unwritable_ledger_never_stops_the_gate(
    redis_server: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    blocked = tmp_path / "ledger-is-a-directory"
    blocked.mkdir()
    client = redis_server.admin()
    cutover = int(time.time()) - 600
    write_atomically(client, stream_key, healthy_entries(200, cutover * 1000 + 1000, 1000))
    with daemon_process(
        tmp_path / "d",
        redis_server.url,
        stream_key,
        "--after",
        str(cutover),
        "--ledger",
        str(blocked),
        config=FAST,
    ) as daemon:
        daemon.wait_log("gate.completed", timeout=20)
        assert daemon.json("/gate")["verdict"] == "PASS"
        assert daemon.value("quantum_gate_ledger_up") == 0
        errors = daemon.value("quantum_gate_ledger_errors_total")
        assert errors is not None and errors >= 1
        assert len(daemon.events("ledger.unavailable")) == 1  # logged once, not per write
        unusable = daemon.get("/history")
        assert unusable is not None and unusable[0] == 503
        code, _ = daemon.terminate(within=5)
        assert code == 0


def test_ledger_file_is_sqlite_wal(tmp_path: Path) -> None:
    writer = LedgerWriter(tmp_path / "l.sqlite3", max_rows=5, max_age_days=1)
    writer.open()
    writer.stop()
    with sqlite3.connect(tmp_path / "l.sqlite3") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 1
    assert rows(connect(tmp_path / "l.sqlite3", read_only=True), 5) == []
