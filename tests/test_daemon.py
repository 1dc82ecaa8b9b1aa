"""The daemon in process: a real Redis, the real tail thread, the stand-in systemctl; evaluation driven
by the test (``evaluator.tick``/``tracker.watch``), metrics read through the project's registry and
logs captured as data. The subprocess path is exercised in test_daemon_process.py.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import FakeSystemd, RedisServer, envelope, free_port, payload
from daemonkit import (
    add_entry,
    cutover_of,
    document_of,
    make_settings,
    tailing,
    wait_until,
    write_atomically,
)
from eventkit import collapsed_entries, healthy_entries
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from quantum_gate import ingestor as ingestor_module
from quantum_gate.cutover import Cutover, Rollout
from quantum_gate.daemon import Daemon
from quantum_gate.exporter import make_registry
from quantum_gate.gate_hook import run_hook
from quantum_gate.httpapp import HttpApp
from quantum_gate.statuspage import render_status_page
from quantum_gate.streamids import SEQ_BITS, StreamId


def now_ms() -> int:
    return int(time.time() * 1000)


def key_ms(keys: np.ndarray[Any, Any]) -> list[int]:
    return [int(key) >> SEQ_BITS for key in keys]


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def named(logs: Sequence[Mapping[str, Any]], event: str) -> list[Mapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == event]


FLAT = {"intent_type": "entry", "symbol": "ETHUSDT", "action": "BUY", "side": "LONG", "confidence": "0.7"}


# ---- start: backlog on both sides of a fixed cutover, then live events --------------------------------


def test_backlog_builds_both_windows_then_live_events_follow(
    redis_server: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    client = redis_server.admin()
    cut = now_ms() - 600_000
    write_atomically(client, stream_key, healthy_entries(50, cut - 100_000, 1000))  # cut-100s .. cut-51s
    add_entry(client, stream_key, FLAT, f"{cut - 50_500}-0")  # a skipped entry inside the baseline's span
    write_atomically(
        client, stream_key, healthy_entries(30, cut, 1000)
    )  # the first one exactly at the cutover
    add_entry(client, stream_key, FLAT, f"{cut + 40_000}-0")
    settings = make_settings(
        redis_server.url,
        stream_key,
        tmp_path,
        {"cutover": {"after": f"{cut}-0"}, "windows": {"baseline": 20}},
    )
    daemon = Daemon(settings)
    registry = make_registry(daemon.snapshot)
    with capture_logs() as logs, tailing(daemon):
        daemon.evaluator.tick()
        # Post: everything at or after the cutover. Baseline: the newest 20 *before* it, not overall.
        assert key_ms(daemon.windows.post.keys()) == [cut + 1000 * i for i in range(30)]
        assert key_ms(daemon.windows.pre.keys()) == [cut - 100_000 + 1000 * i for i in range(30, 50)]
        assert sample(registry, "quantum_gate_window_events", window="post") == 30
        assert sample(registry, "quantum_gate_window_events", window="pre") == 20
        assert sample(registry, "quantum_gate_cutover_known") == 1
        assert sample(registry, "quantum_gate_cutover_timestamp_seconds") == cut / 1000
        assert sample(registry, "quantum_gate_cutovers_total") == 1
        assert sample(registry, "quantum_gate_events_accepted_total") == 50
        assert sample(registry, "quantum_gate_events_skipped_total", reason="no_event_type") == 2
        assert sample(registry, "quantum_gate_systemd_up") is None  # a fixed cutover never asks systemd
        assert sample(registry, "quantum_gate_verdict", verdict="insufficient_data") == 1
        assert sample(registry, "quantum_gate_verdict", verdict="pass") == 0
        assert sample(registry, "quantum_gate_model_samples", model="xgb", window="post") == 30
        assert sample(registry, "quantum_gate_model_samples", model="xgb", window="pre") == 20
        assert sample(registry, "quantum_gate_redis_up") == 1
        # Live events arrive through XREAD BLOCK.
        write_atomically(client, stream_key, healthy_entries(10, cut + 100_000, 1000))
        wait_until(lambda: len(daemon.windows.post) == 40, 5, "10 live events in the post window")
        daemon.evaluator.tick()
        assert sample(registry, "quantum_gate_model_samples", model="lgbm", window="post") == 40
        assert sample(registry, "quantum_gate_events_accepted_total") == 60
        assert sample(registry, "quantum_gate_last_event_timestamp_seconds") == (cut + 109_000) / 1000
        assert sample(registry, "quantum_gate_window_events", window="pre") == 20
    backfilled = named(logs, "stream.backfilled")
    assert [(e["post_events"], e["baseline_events"]) for e in backfilled] == [(30, 20)]
    detected = named(logs, "cutover.detected")
    assert len(detected) == 1 and detected[0]["cutover_id"] == f"{cut}-0"
    assert detected[0]["source"] == "after"
    changes = named(logs, "gate.verdict_changed")
    assert [c["verdict"] for c in changes] == ["INSUFFICIENT_DATA"]  # state changes, not every tick


def test_the_200th_event_requests_an_immediate_evaluation(
    redis_server: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    client = redis_server.admin()
    cut = now_ms() - 600_000
    write_atomically(client, stream_key, healthy_entries(199, cut, 1000))
    settings = make_settings(redis_server.url, stream_key, tmp_path, {"cutover": {"after": str(cut)}})
    daemon = Daemon(settings)
    with tailing(daemon):
        daemon.evaluator.tick()
        assert not daemon.evaluator.state().requested
        assert daemon.evaluator.state().reports_written_total == 0
        add_entry(client, stream_key, healthy_entries(1, cut + 300_000, 1)[0][1], f"{cut + 300_000}-0")
        wait_until(lambda: daemon.evaluator.state().requested, 5, "the tail to request the automatic gate")
        with capture_logs() as logs:
            daemon.evaluator.tick()
            daemon.evaluator.tick()  # a second tick: no second completion
    completed = named(logs, "gate.completed")
    assert len(completed) == 1 and completed[0]["verdict"] == "PASS" and completed[0]["post_events"] == 200
    reports = sorted(tmp_path.glob("quality_gate_*"))
    assert [p.suffix for p in reports] == [".json", ".md"]


# ---- start-up: no evaluation request is lost before the scheduler runs --------------------------------


def test_a_request_made_before_the_evaluation_job_exists_is_honoured(tmp_path: Path, stream_key: str) -> None:
    """The tail asks for the first evaluation once its catch-up is done; a request that comes before
    the scheduler's job exists is remembered and honoured when the job is made, not left to the first
    interval (60 s here)."""
    settings = make_settings(
        f"redis://127.0.0.1:{free_port()}/0",
        stream_key,
        tmp_path,
        {"daemon": {"interval_seconds": 60}, "cutover": {"after": "1000-0"}},
    )
    daemon = Daemon(settings)
    daemon.evaluator.request()
    daemon.evaluator.start(None, 1.0)
    try:
        wait_until(lambda: daemon.evaluator.state().evaluations_total == 1, 10, "the early request")
    finally:
        daemon.evaluator.stop()


def test_min_events_during_a_rollout_is_not_asked_for_at_every_batch(tmp_path: Path, stream_key: str) -> None:
    """Reaching min_events asks for the automatic gate at once, but not while a rollout holds the gate:
    that would evaluate back to back for the whole rollout; new events keep their half-interval pace."""
    settings = make_settings(f"redis://127.0.0.1:{free_port()}/0", stream_key, tmp_path, {})
    evaluator = Daemon(settings).evaluator
    rolling = Cutover(StreamId(1000, 0), source="kubernetes", rollout=Rollout(2, 1, 1, True))
    done = replace(rolling, rollout=Rollout(2, 2, 0, True))
    min_events = settings.gate.min_events
    evaluator.events_arrived(rolling, min_events + 50, fresh=False)
    assert evaluator.state().due is None  # not asked for
    evaluator.events_arrived(rolling, min_events + 60, fresh=True)
    assert evaluator.state().due is not None  # fresh events: the usual half-interval pace
    evaluator.due = None
    evaluator.requested.clear()
    evaluator.events_arrived(done, min_events + 60, fresh=False)
    due = evaluator.state().due
    assert due is not None and due <= time.monotonic()  # complete: asked for now


def test_startup_makes_the_evaluation_job_before_the_tail_starts(
    redis_server: RedisServer, stream_key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The phases in order (startup, main loop, shutdown): by the time the tail can ask for an
    evaluation, the job it asks exists, so the first evaluation follows the backfill at once."""
    cut = now_ms() - 600_000
    write_atomically(redis_server.admin(), stream_key, healthy_entries(20, cut, 1000))
    settings = make_settings(
        redis_server.url,
        stream_key,
        tmp_path,
        {"daemon": {"interval_seconds": 60}, "cutover": {"after": str(cut)}},
    )
    daemon = Daemon(settings)
    monkeypatch.setattr(daemon, "_install_signals", lambda server: None)  # the test runner's stay
    scheduled_first: list[bool] = []
    start_tail = daemon.ingestor.start

    def start() -> threading.Thread:
        scheduled_first.append(daemon.evaluator.job is not None)
        return start_tail()

    monkeypatch.setattr(daemon.ingestor, "start", start)
    assert daemon.startup()
    try:
        assert scheduled_first == [True]
        wait_until(lambda: daemon.evaluator.state().evaluations_total >= 1, 10, "the first evaluation")
    finally:
        daemon.stopping.set()
        daemon.main_loop()  # returns at once: asked to stop
        daemon.shutdown()
    assert daemon.snapshot().windows.events == {"post": 20, "pre": 0}


# ---- a restart of the unit -----------------------------------------------------------------------------


def test_unit_restart_moves_the_cutover(
    redis_server: RedisServer, stream_key: str, tmp_path: Path, fake_systemd: FakeSystemd
) -> None:
    client = redis_server.admin()
    c1 = now_ms() // 1000 - 600  # systemd reports whole seconds
    base = c1 * 1000
    write_atomically(client, stream_key, healthy_entries(30, base - 100_000, 1000))
    write_atomically(client, stream_key, healthy_entries(20, base, 1000))  # base .. base+19s
    fake_systemd.restart(entered=c1, invocation="inv-1")
    settings = make_settings(redis_server.url, stream_key, tmp_path, {"windows": {"baseline": 20}})
    daemon = Daemon(settings)
    registry = make_registry(daemon.snapshot)
    with capture_logs() as logs, tailing(daemon):
        assert len(daemon.windows.post) == 20 and len(daemon.windows.pre) == 20
        assert sample(registry, "quantum_gate_systemd_up") == 1
        assert sample(registry, "quantum_gate_cutovers_total") == 1
        write_atomically(client, stream_key, healthy_entries(10, base + 100_000, 1000))  # +100s .. +109s
        wait_until(lambda: len(daemon.windows.post) == 30, 5, "live events")

        # The unit restarts at +105 s: a new InvocationID and ActiveEnterTimestamp.
        c2 = c1 + 105
        fake_systemd.restart(entered=c2, invocation="inv-2", restarts=1)
        daemon.tracker.watch()
        wait_until(lambda: daemon.tracker.state().cutovers_total == 2, 5, "the restart to be adopted")
        assert cutover_of(daemon).stream_id == StreamId(c2 * 1000, 0)
        assert cutover_of(daemon).invocation_id == "inv-2"
        # Post restarts at the new cutover and keeps the events already read with ID >= it ...
        assert key_ms(daemon.windows.post.keys()) == [base + 1000 * i for i in range(105, 110)]
        # ... and the baseline becomes the newest 20 events before it.
        expected_pre = [base + 1000 * i for i in range(5, 20)] + [base + 1000 * i for i in range(100, 105)]
        assert key_ms(daemon.windows.pre.keys()) == expected_pre
        daemon.evaluator.tick()
        assert sample(registry, "quantum_gate_cutovers_total") == 2
        assert sample(registry, "quantum_gate_cutover_timestamp_seconds") == c2
        assert sample(registry, "quantum_gate_window_events", window="post") == 5
        assert document_of(daemon)["cutover"]["invocation_id"] == "inv-2"

        # Polling the same unit state again is not a restart.
        daemon.tracker.watch()
        assert daemon.tracker.state().pending is None and daemon.tracker.state().cutovers_total == 2

        # A restart within the same second: only the InvocationID changes, still a new cutover.
        fake_systemd.restart(entered=c2, invocation="inv-3", restarts=2)
        daemon.tracker.watch()
        wait_until(lambda: daemon.tracker.state().cutovers_total == 3, 5, "the same-second restart")
        assert len(daemon.windows.post) == 5

        # A start time that moves backwards rebuilds both windows from Redis.
        fake_systemd.restart(entered=c1, invocation="inv-4", restarts=3)
        daemon.tracker.watch()
        wait_until(lambda: daemon.tracker.state().cutovers_total == 4, 5, "the backwards cutover")
        assert key_ms(daemon.windows.post.keys())[:1] == [base] and len(daemon.windows.post) == 30
        assert len(daemon.windows.pre) == 20
    detected = named(logs, "cutover.detected")
    assert [d["invocation_id"] for d in detected] == ["inv-1", "inv-2", "inv-3", "inv-4"]
    assert detected[1]["previous"] == f"{base}-0"
    assert detected[1]["post_events_kept"] == 5
    assert detected[1]["baseline_events"] == 20
    assert detected[1]["cutover_id"] == f"{c2 * 1000}-0"


# ---- systemd cannot be asked ---------------------------------------------------------------------------


@pytest.mark.parametrize("cause", ["systemctl_missing", "no_bus", "never_started"])
def test_without_systemd_the_daemon_runs_but_never_passes(
    cause: str, redis_server: RedisServer, stream_key: str, tmp_path: Path, fake_systemd: FakeSystemd
) -> None:
    client = redis_server.admin()
    start = now_ms() - 400_000
    write_atomically(client, stream_key, healthy_entries(250, start, 1000))  # would PASS with a cutover
    missing = tmp_path / "nowhere" / "systemctl"
    extra: dict[str, Any] = {}
    if cause == "systemctl_missing":
        extra = {"cutover": {"systemctl": str(missing)}}
    elif cause == "no_bus":
        fake_systemd.set(stderr="Failed to connect to bus: No such file or directory")
    else:
        fake_systemd.set(entered=None)  # ActiveEnterTimestamp= (the unit never started)
    daemon = Daemon(make_settings(redis_server.url, stream_key, tmp_path, extra))
    registry = make_registry(daemon.snapshot)
    with capture_logs() as logs, tailing(daemon):
        daemon.evaluator.tick()
        daemon.tracker.watch()  # a second failed poll: the same state, not logged again
        assert sample(registry, "quantum_gate_systemd_up") == 0
        assert sample(registry, "quantum_gate_cutover_known") == 0
        assert sample(registry, "quantum_gate_systemd_errors_total", reason=cause) == 2
        assert sample(registry, "quantum_gate_verdict", verdict="pass") == 0
        assert sample(registry, "quantum_gate_verdict", verdict="insufficient_data") == 1
        assert "cutover unknown" in document_of(daemon)["reasons"]
        assert document_of(daemon)["cutover"]["error"]
        # It keeps running: live events are still read.
        write_atomically(client, stream_key, healthy_entries(3, now_ms() - 5000, 1000))
        wait_until(lambda: daemon.ingestor.state().accepted_total == 3, 5, "live events without a cutover")
        assert sample(registry, "quantum_gate_redis_up") == 1

        # systemd answers again: the cutover is adopted and the gate can pass.
        if cause == "systemctl_missing":
            missing.parent.mkdir()
            shutil.copy(fake_systemd.bin_dir / "systemctl", missing)
        fake_systemd.restart(entered=start // 1000, invocation="inv-back")
        daemon.tracker.watch()
        wait_until(lambda: daemon.tracker.state().cutover is not None, 5, "the cutover once systemd answers")
        daemon.evaluator.tick()
        assert sample(registry, "quantum_gate_systemd_up") == 1
        assert sample(registry, "quantum_gate_verdict", verdict="pass") == 1

        # systemd goes away again: the last known cutover is kept.
        fake_systemd.set(stderr="Failed to connect to bus: Connection refused")
        daemon.tracker.watch()
        daemon.evaluator.tick()
        assert sample(registry, "quantum_gate_systemd_up") == 0
        assert sample(registry, "quantum_gate_cutover_known") == 1
        assert sample(registry, "quantum_gate_verdict", verdict="pass") == 1
    unavailable = named(logs, "cutover.unavailable")
    assert [u["reason"] for u in unavailable] == [cause, "no_bus"]
    assert unavailable[1]["keeping"] is not None
    assert len(named(logs, "cutover.available")) == 1


# ---- /healthz, /gate, / ------------------------------------------------------------------------------


def test_healthz_is_200_only_with_redis_up_and_a_fresh_evaluation(
    redis_server: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    client = redis_server.admin()
    write_atomically(client, stream_key, healthy_entries(5, now_ms() - 10_000, 1000))
    clock = [time.time()]
    settings = make_settings(redis_server.url, stream_key, tmp_path, {"cutover": {"after": "0-1"}})
    daemon = Daemon(settings, clock=lambda: clock[0])
    app = HttpApp(daemon.snapshot, daemon.clock, render_status_page)
    with tailing(daemon):
        status, _, body = app.handle("/healthz")
        assert (status, b"no evaluation yet" in body) == (503, True)
        assert app.handle("/gate")[0] == 503
        daemon.evaluator.tick()
        assert app.handle("/healthz")[0] == 200
        assert app.handle("/gate")[0] == 200
        status, content_type, page = app.handle("/")
        assert status == 200 and content_type.startswith("text/html") and b"INSUFFICIENT_DATA" in page
        assert app.handle("/nope")[0] == 404
        clock[0] += settings.daemon.staleness_limit() + 1  # no evaluation for too long
        status, _, body = app.handle("/healthz")
        assert status == 503 and b"last evaluation" in body

    down = Daemon(make_settings(f"redis://127.0.0.1:{free_port()}/0", stream_key, tmp_path))
    down_app = HttpApp(down.snapshot, down.clock, render_status_page)
    with tailing(down):  # READY even with Redis down: it serves what it knows, redis_up says the rest
        down.evaluator.tick()
        status, _, body = down_app.handle("/healthz")
        assert status == 503 and b"redis unreachable" in body
        assert make_registry(down.snapshot).get_sample_value("quantum_gate_redis_up") == 0


# ---- alerts ------------------------------------------------------------------------------------------


def test_collapse_and_low_rate_alerts_are_state_changes(
    redis_server: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    client = redis_server.admin()
    cut = now_ms() - 1_200_000  # 20 minutes ago: nothing inside the 10-minute rate horizon
    write_atomically(client, stream_key, collapsed_entries(200, cut, 1000))
    settings = make_settings(
        redis_server.url, stream_key, tmp_path, {"cutover": {"after": str(cut)}, "windows": {"post": 250}}
    )
    daemon = Daemon(settings)
    registry = make_registry(daemon.snapshot)
    with capture_logs() as logs, tailing(daemon):
        daemon.evaluator.tick()
        daemon.evaluator.tick()
        assert sample(registry, "quantum_gate_verdict", verdict="fail") == 1
        assert sample(registry, "quantum_gate_alert_active", alert="collapse") == 1
        assert sample(registry, "quantum_gate_alert_active", alert="low_event_rate") == 1
        assert sample(registry, "quantum_gate_model_collapsed", model="xgb") == 1
        assert sample(registry, "quantum_gate_check_passing", model="xgb", check="majority") == 0
        assert sample(registry, "quantum_gate_check_value", model="xgb", check="majority") == 1.0
        assert sample(registry, "quantum_gate_check_threshold", check="majority") == 0.7
        assert sample(registry, "quantum_gate_event_rate_per_minute") == 0
        # 250 healthy events in the last few minutes replace the collapsed window and lift the rate.
        write_atomically(client, stream_key, healthy_entries(250, now_ms() - 260_000, 1000))
        wait_until(lambda: daemon.ingestor.state().accepted_total == 450, 5, "the healthy events")
        daemon.evaluator.tick()
        assert sample(registry, "quantum_gate_verdict", verdict="pass") == 1
        assert sample(registry, "quantum_gate_alert_active", alert="collapse") == 0
        assert sample(registry, "quantum_gate_alert_active", alert="low_event_rate") == 0
        rate = sample(registry, "quantum_gate_event_rate_per_minute")
        assert rate is not None and rate > 20
    raised = {(e["alert"], tuple(e.get("models", ()))) for e in named(logs, "alert.raised")}
    assert raised == {("collapse", ("lgbm", "xgb")), ("low_event_rate", ())}
    assert sorted(e["alert"] for e in named(logs, "alert.cleared")) == ["collapse", "low_event_rate"]


# ---- the stream deleted under the daemon -----------------------------------------------------------


def test_stream_deleted_keeps_windows_counts_reset_and_goes_on(
    redis_server: RedisServer, stream_key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingestor_module, "XINFO_EVERY_SECONDS", 0.05)
    client = redis_server.admin()
    cut = now_ms() - 600_000
    write_atomically(client, stream_key, healthy_entries(20, cut, 1000))
    daemon = Daemon(make_settings(redis_server.url, stream_key, tmp_path, {"cutover": {"after": str(cut)}}))
    registry = make_registry(daemon.snapshot)
    with capture_logs() as logs, tailing(daemon):
        client.delete(stream_key)
        wait_until(lambda: daemon.ingestor.state().resets_total == 1, 5, "the reset to be noticed")
        assert len(daemon.windows.post) == 20
        add_entry(client, stream_key, envelope(payload({"xgb": ("BUY", 0.6)})), f"{now_ms()}-0")
        wait_until(lambda: len(daemon.windows.post) == 21, 5, "the first event of the new stream")
        assert sample(registry, "quantum_gate_stream_resets_total") == 1
    assert len(named(logs, "stream.reset")) == 1


# ---- failures that must not kill the tail, secrets that must not leak ----------------------------------


def test_tail_survives_a_password_file_that_disappears(
    redis_server: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    password_file = tmp_path / "redis-password"
    password_file.write_text("", encoding="utf-8")  # empty: no AUTH against the password-less server
    settings = make_settings(
        redis_server.url,
        stream_key,
        tmp_path,
        {"cutover": {"after": "1-0"}, "redis": {"password_file": str(password_file)}},
    )
    daemon = Daemon(settings)
    with capture_logs() as logs, tailing(daemon):
        wait_until(lambda: daemon.ingestor.state().redis_up, 5, "the first connection")
        password_file.unlink()
        redis_server.admin().client_kill_filter(_type="normal", skipme=True)  # force a reconnect
        wait_until(lambda: named(logs, "stream.failed"), 5, "stream.failed")
        assert daemon.ingestor.state().redis_up is False
        password_file.write_text("", encoding="utf-8")
        wait_until(lambda: daemon.ingestor.state().redis_up, 5, "the reconnect once the file is back")
        add_entry(redis_server.admin(), stream_key, envelope(payload({"xgb": ("BUY", 0.6)})), f"{now_ms()}-0")
        wait_until(lambda: len(daemon.windows.post) == 1, 5, "an event after the recovery")
    failed = named(logs, "stream.failed")[0]
    assert failed["error"] == "ConfigError" and "redis.password_file" in failed["detail"]


HOOK = """\
import json, os, sys
with open(sys.argv[1], "w", encoding="utf-8") as out:
    json.dump({k: v for k, v in os.environ.items() if k.startswith("QUANTUM_GATE_")}, out)
"""


def test_the_hook_gets_verdict_and_report_but_never_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stream_key: str
) -> None:
    monkeypatch.setenv("QUANTUM_GATE_REDIS_PASSWORD", "hunter2-never-shown")
    monkeypatch.setenv("QUANTUM_GATE_REDIS_SENTINEL_PASSWORD", "sentinel-never-shown")  # issue 11
    hook, out = tmp_path / "hook.py", tmp_path / "hook.json"
    hook.write_text(HOOK, encoding="utf-8")
    settings = make_settings(
        "redis://127.0.0.1:1/0",
        stream_key,
        tmp_path,
        {"daemon": {"on_gate_complete": [sys.executable, str(hook), str(out)]}},
    )
    with capture_logs() as logs:
        run_hook(settings.daemon, os.environ, tmp_path / "quality_gate_x.json", "FAIL")
        wait_until(lambda: named(logs, "hook.finished"), 10, "the hook")
    seen = json.loads(out.read_text(encoding="utf-8"))
    assert seen == {
        "QUANTUM_GATE_VERDICT": "FAIL",
        "QUANTUM_GATE_REPORT": str(tmp_path / "quality_gate_x.json"),
    }


def test_ready_and_redis_up_0_while_the_key_is_not_a_stream(
    redis_server: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    client = redis_server.admin()
    client.set(stream_key, "not a stream")  # WRONGTYPE on every read until someone fixes the key
    settings = make_settings(
        redis_server.url,
        stream_key,
        tmp_path,
        {"cutover": {"after": "1-0"}, "redis": {"backoff_max_seconds": 0.2}},
    )
    daemon = Daemon(settings)
    with capture_logs() as logs, tailing(daemon):  # READY must come, or systemd would kill it in a loop
        assert daemon.ingestor.state().redis_up is False
        client.delete(stream_key)
        add_entry(client, stream_key, envelope(payload({"xgb": ("SELL", 0.4)})), f"{now_ms()}-0")
        wait_until(lambda: len(daemon.windows.post) == 1, 5, "the event once the key is a stream")
        wait_until(
            lambda: daemon.ingestor.state().redis_up,
            5,
            "redis_up 1 again (no reconnect happens after WRONGTYPE)",
        )
    disconnected = named(logs, "stream.disconnected")
    assert len(disconnected) == 1 and "WRONGTYPE" in disconnected[0]["detail"]
