"""``quantum-gate run`` as operators and systemd run it: a real subprocess, a private redis-server,
the stand-in systemctl first on PATH (or ``--after``), HTTP on a free port, JSON log lines on stderr
read back as data. Every wait is bounded; every daemon is stopped with SIGTERM and must exit 0 in 5 s.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import REPO, FakeSystemd, RedisServer, envelope, free_port, payload
from daemonkit import DaemonProcess, base_env, daemon_process, wait_until, write_atomically
from eventkit import collapsed_entries, healthy_entries

FAST: dict[str, Any] = {
    "redis": {"block_ms": 200, "backoff_max_seconds": 0.5},
    "cutover": {"poll_seconds": 0.2},
    "daemon": {"shutdown_timeout_seconds": 3},
}


def now_ms() -> int:
    return int(time.time() * 1000)


def config(**sections: dict[str, Any]) -> dict[str, Any]:
    merged = {name: dict(values) for name, values in FAST.items()}
    for name, values in sections.items():
        merged.setdefault(name, {}).update(values)
    return merged


def stop_cleanly(daemon: DaemonProcess) -> None:
    code, seconds = daemon.terminate(within=5)
    assert code == 0, daemon.stderr()
    assert seconds < 5
    stopped = daemon.events("daemon.stopped")
    assert len(stopped) == 1 and stopped[0]["clean"] is True
    assert daemon.not_json() == [], "every stderr line must be a JSON log line"


def reports(directory: Path) -> list[Path]:
    return sorted(directory.glob("quality_gate_*.json"))


# ---- backlog, live events, a unit restart, SIGTERM ------------------------------------------------------


def test_run_backlog_live_events_and_a_unit_restart(
    redis_server: RedisServer, stream_key: str, tmp_path: Path, fake_systemd: FakeSystemd
) -> None:
    client = redis_server.admin()
    c1 = now_ms() // 1000 - 900
    base = c1 * 1000
    write_atomically(client, stream_key, healthy_entries(30, base - 100_000, 1000))
    write_atomically(client, stream_key, healthy_entries(20, base, 1000))
    fake_systemd.restart(entered=c1, invocation="inv-1")
    with daemon_process(
        tmp_path, redis_server.url, stream_key, config=config(windows={"baseline": 20})
    ) as daemon:
        daemon.wait_value("quantum_gate_window_events", 20, window="post")
        assert daemon.value("quantum_gate_window_events", window="pre") == 20
        assert daemon.value("quantum_gate_systemd_up") == 1
        assert daemon.value("quantum_gate_cutover_known") == 1
        assert daemon.value("quantum_gate_cutover_timestamp_seconds") == c1
        assert daemon.value("quantum_gate_cutovers_total") == 1
        gate = daemon.wait_for(lambda: d if (d := daemon.json("/gate")).get("windows") else None, 10, "/gate")
        assert gate["windows"]["pre"]["first_id_ms"] == base - 100_000 + 10_000  # newest 20 before
        assert gate["windows"]["pre"]["last_id_ms"] == base - 100_000 + 29_000
        assert gate["cutover"]["invocation_id"] == "inv-1"
        assert daemon.wait_log("daemon.ready")[0]["post_events"] == 20

        write_atomically(client, stream_key, healthy_entries(10, base + 100_000, 1000))
        daemon.wait_value("quantum_gate_window_events", 30, window="post")
        assert daemon.value("quantum_gate_last_event_timestamp_seconds") == (base + 109_000) / 1000

        c2 = c1 + 105
        fake_systemd.restart(entered=c2, invocation="inv-2", restarts=1)
        daemon.wait_value("quantum_gate_cutovers_total", 2)
        assert daemon.value("quantum_gate_cutover_timestamp_seconds") == c2
        assert daemon.value("quantum_gate_window_events", window="post") == 5
        assert daemon.value("quantum_gate_window_events", window="pre") == 20
        detected = daemon.wait_log("cutover.detected", count=2)
        assert [d["invocation_id"] for d in detected] == ["inv-1", "inv-2"]
        assert detected[1]["post_events_kept"] == 5 and detected[1]["previous"] == f"{base}-0"
        gate = daemon.wait_for(
            lambda: d if (d := daemon.json("/gate"))["cutover"]["invocation_id"] == "inv-2" else None,
            10,
            "/gate to show the new cutover",
        )
        assert gate["windows"]["post"]["first_id_ms"] == base + 105_000
        assert gate["windows"]["pre"]["last_id_ms"] == base + 104_000
        stop_cleanly(daemon)


# ---- the automatic gate at the 200th event, the hook, a later verdict change -----------------------


HOOK = """\
import json, os, sys
with open(sys.argv[1], "a", encoding="utf-8") as out:
    out.write(json.dumps({
        "verdict": os.environ.get("QUANTUM_GATE_VERDICT"),
        "report": os.environ.get("QUANTUM_GATE_REPORT"),
        "argv": sys.argv[1:],
    }) + "\\n")
"""


def test_run_writes_the_report_at_the_200th_event_and_on_verdict_changes(
    redis_server: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    client = redis_server.admin()
    cut = now_ms() - 1_800_000
    write_atomically(client, stream_key, healthy_entries(20, cut - 60_000, 1000))
    write_atomically(client, stream_key, healthy_entries(150, cut, 1000))
    hook, hook_out = tmp_path / "hook.py", tmp_path / "hook.jsonl"
    hook.write_text(HOOK, encoding="utf-8")
    settings = config(
        windows={"post": 200},
        daemon={"on_gate_complete": [sys.executable, str(hook), str(hook_out)]},
    )
    report_dir = tmp_path / "reports"
    with daemon_process(
        tmp_path, redis_server.url, stream_key, "--after", f"{cut}-0", config=settings
    ) as daemon:
        write_atomically(client, stream_key, healthy_entries(49, cut + 200_000, 1000))
        daemon.wait_for(
            lambda: daemon.json("/gate").get("progress", {}).get("events") == 199, 10, "an evaluation at 199"
        )
        assert reports(report_dir) == [] and daemon.events("gate.completed") == []

        write_atomically(client, stream_key, healthy_entries(1, cut + 300_000, 1000))
        completed = daemon.wait_log("gate.completed")
        assert completed[0]["verdict"] == "PASS" and completed[0]["post_events"] == 200
        written = daemon.wait_for(lambda: reports(report_dir), 5, "the report")
        assert len(written) == 1 and completed[0]["report"] == str(written[0])
        assert written[0].with_suffix(".md").exists()
        document = json.loads(written[0].read_text(encoding="utf-8"))
        assert document["verdict"] == "PASS" and document["progress"]["events"] == 200
        assert "# Quality gate: PASS" in written[0].with_suffix(".md").read_text(encoding="utf-8")
        assert daemon.value("quantum_gate_reports_written_total") == 1

        hook_calls = daemon.wait_for(
            lambda: hook_out.read_text(encoding="utf-8").splitlines() if hook_out.exists() else None,
            10,
            "the hook",
        )
        assert [json.loads(line) for line in hook_calls] == [
            {"verdict": "PASS", "report": str(written[0]), "argv": [str(hook_out)]}
        ]
        assert daemon.wait_log("hook.finished")[0]["returncode"] == 0

        # The deployment collapses: 200 HOLD@0.5 events replace the window -> FAIL -> a second report.
        write_atomically(client, stream_key, collapsed_entries(200, cut + 400_000, 1000))
        daemon.wait_value("quantum_gate_verdict", 1, verdict="fail")
        daemon.wait_for(lambda: len(reports(report_dir)) == 2, 5, "the second report")
        newest = json.loads(reports(report_dir)[-1].read_text(encoding="utf-8"))
        assert newest["verdict"] == "FAIL"
        assert len(list(report_dir.glob("quality_gate_*.md"))) == 2
        assert daemon.value("quantum_gate_alert_active", alert="collapse") == 1
        raised = daemon.wait_log("alert.raised")
        assert any(alert["alert"] == "collapse" for alert in raised)
        assert len(daemon.events("gate.completed")) == 1  # once per cutover; changes only add reports
        assert len(hook_out.read_text(encoding="utf-8").splitlines()) == 1
        stop_cleanly(daemon)


# ---- Redis killed and restarted ------------------------------------------------------------------------


def test_run_survives_redis_killed_and_restarted_without_loss_or_double_count(
    own_redis: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    cut = now_ms() - 600_000
    write_atomically(own_redis.admin(), stream_key, healthy_entries(40, cut, 100))
    written = 40
    with daemon_process(tmp_path, own_redis.url, stream_key, "--after", str(cut), config=config()) as daemon:
        daemon.wait_value("quantum_gate_window_events", written, window="post")
        daemon.wait_for(
            lambda: daemon.get("/healthz") == (200, b'{"status":"ok","reason":"ok"}\n'), 10, "healthy"
        )
        next_ms = cut + 10_000
        for _ in range(2):
            # Entries written just before the kill are persisted (AOF, fsync always) but maybe unread.
            written += write_atomically(own_redis.admin(), stream_key, healthy_entries(15, next_ms, 100))
            next_ms += 10_000
            own_redis.kill()
            daemon.wait_value("quantum_gate_redis_up", 0)
            status = daemon.get("/healthz")
            assert status is not None and status[0] == 503 and b"redis unreachable" in status[1]
            own_redis.start()
            daemon.wait_value("quantum_gate_redis_up", 1)
            written += write_atomically(own_redis.admin(), stream_key, healthy_entries(5, next_ms, 100))
            next_ms += 10_000
            daemon.wait_value("quantum_gate_window_events", written, window="post")
        assert daemon.value("quantum_gate_events_accepted_total") == written
        assert daemon.value("quantum_gate_entries_read_total") == written
        assert daemon.value("quantum_gate_events_lost_total") == 0
        gate = daemon.wait_for(
            lambda: d if (d := daemon.json("/gate"))["progress"]["events"] == written else None, 10, "/gate"
        )
        assert gate["windows"]["post"]["events"] == written
        daemon.wait_for(lambda: (daemon.get("/healthz") or (0,))[0] == 200, 10, "healthy again")
        assert len(daemon.events("stream.disconnected")) == 2
        assert len(daemon.events("stream.reconnected")) == 3  # the first connection, then two resumes
        stop_cleanly(daemon)


# ---- systemd unavailable as a subprocess ---------------------------------------------------------------


@pytest.mark.parametrize("cause", ["systemctl_missing", "no_bus"])
def test_run_without_systemd_keeps_running_and_fails_closed(
    cause: str, redis_server: RedisServer, stream_key: str, tmp_path: Path, fake_systemd: FakeSystemd
) -> None:
    write_atomically(redis_server.admin(), stream_key, healthy_entries(250, now_ms() - 400_000, 1000))
    env = base_env()
    if cause == "systemctl_missing":
        empty = tmp_path / "empty-bin"
        empty.mkdir()
        env["PATH"] = str(empty)  # no systemctl anywhere on PATH
    else:
        fake_systemd.set(stderr="Failed to connect to bus: No such file or directory")
    with daemon_process(tmp_path, redis_server.url, stream_key, config=config(), env=env) as daemon:
        daemon.wait_value("quantum_gate_verdict", 1, verdict="insufficient_data")
        assert daemon.value("quantum_gate_systemd_up") == 0
        assert daemon.value("quantum_gate_cutover_known") == 0
        assert daemon.value("quantum_gate_verdict", verdict="pass") == 0
        assert (daemon.value("quantum_gate_systemd_errors_total", reason=cause) or 0) >= 1
        unavailable = daemon.wait_log("cutover.unavailable")
        assert unavailable[0]["reason"] == cause
        failed = daemon.value("quantum_gate_systemd_errors_total", reason=cause) or 0
        daemon.wait_for(  # three more failed polls: still running, still one log line
            lambda: (daemon.value("quantum_gate_systemd_errors_total", reason=cause) or 0) >= failed + 3,
            10,
            "three more failed systemctl polls",
        )
        daemon.assert_alive()
        assert len(daemon.events("cutover.unavailable")) == 1
        assert daemon.get("/healthz") == (200, b'{"status":"ok","reason":"ok"}\n')
        assert daemon.json("/gate")["cutover"]["error"]
        stop_cleanly(daemon)


# ---- /gate equals check --json --------------------------------------------------------------------------

SKIPS: list[dict[str, str]] = [
    {"intent_type": "entry", "symbol": "ETHUSDT", "action": "BUY", "side": "LONG"},
    {"event_type": "trade.intent", "payload": "{not json", "source": "ai-engine"},
    {"event_type": "trade.intent", "payload": json.dumps({"symbol": "X", "side": "BUY"}), "source": "bot"},
    {"event_type": "order.filled", "payload": "{}"},
    {"data": json.dumps({"symbol": "BTCUSDT"})},
]


def strip_clock(document: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in document.items() if k not in {"evaluated_at", "evaluated_at_seconds"}}
    out["progress"] = {
        k: v for k, v in document["progress"].items() if k not in {"rate_per_minute", "eta_seconds"}
    }
    return out


def test_gate_endpoint_equals_check_json(redis_server: RedisServer, stream_key: str, tmp_path: Path) -> None:
    client = redis_server.admin()
    cut = now_ms() - 300_000
    models = ("xgb", "lgbm", "nhits")
    entries = healthy_entries(60, cut - 120_000, 1000, models=models)
    entries += healthy_entries(120, cut, 1000, models=models, fallback_every=3)
    entries += collapsed_entries(40, cut + 150_000, 1000, models=("patchtst",))
    for index, fields in enumerate(SKIPS):  # skipped entries on both sides of the cutover
        entries.append((f"{cut - 119_500 + index * 20_000}-0", fields))
        entries.append((f"{cut + 190_500 + index * 1000}-0", fields))
    entries.append((f"{cut + 200_000}-0", envelope(payload({"xgb": ("BUY", 1.05)}))))
    entries.sort(key=lambda entry: int(entry[0].split("-")[0]))
    write_atomically(client, stream_key, entries)
    args = ["--after", f"{cut}-0", "--window", "150", "--baseline", "50"]
    settings = config(gate={"min_events": 100, "min_samples": 30})
    with daemon_process(tmp_path, redis_server.url, stream_key, *args, config=settings) as daemon:
        served = daemon.wait_for(  # retention comes with the first XINFO reading, after the first tick
            lambda: d if (d := daemon.json("/gate")).get("retention") else None, 10, "a full /gate document"
        )
        checked = subprocess.run(
            [
                *(sys.executable, "-m", "quantum_gate", "check", "--json", "--redis-url", redis_server.url),
                *("--stream", stream_key, "--config", str(tmp_path / "config.yaml"), *args),
            ],
            capture_output=True,
            timeout=60,
            cwd=REPO,
            env=base_env(),
            check=False,
        )
        stop_cleanly(daemon)
    assert checked.returncode == 2, checked.stderr  # FAIL: patchtst collapsed
    expected = json.loads(checked.stdout)
    assert served["verdict"] == expected["verdict"] == "FAIL"
    assert strip_clock(served) == strip_clock(expected)
    assert served["models"]["xgb"]["post"]["out_of_range"] == 1
    assert served["windows"]["post"]["skipped"] and served["windows"]["pre"]["skipped"]
    # One definition (pipeline.rate_from_windows) over the same windows: rate and ETA differ only by
    # the seconds between the daemon's tick and check's run (the rate's span ends at "now").
    assert served["progress"]["rate_per_minute"] == pytest.approx(
        expected["progress"]["rate_per_minute"], rel=0.1
    )
    assert served["progress"]["eta_seconds"] == expected["progress"]["eta_seconds"]  # reached: both 0


# ---- configuration refused at start ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "flags", "env", "key"),
    [
        ("gate:\n  majority_max: 1.7\n", [], {}, "gate.majority_max"),
        ("", ["--interval", "-5"], {}, "daemon.interval_seconds"),
        ("daemon:\n  interval_seconds: -1\n", [], {}, "daemon.interval_seconds"),
        ("gate:\n  majority_maximum: 0.7\n", [], {}, "gate.majority_maximum"),
        ("colour: blue\n", [], {}, "colour"),
        ("", [], {"QUANTUM_GATE_GATE_MAJORITY_MAX": "1.7"}, "gate.majority_max"),
        ("", [], {"QUANTUM_GATE_GATE_COLOUR": "blue"}, "QUANTUM_GATE_GATE_COLOUR"),
        ("", ["--listen", "nowhere"], {}, "daemon.listen"),
    ],
)
def test_bad_configuration_is_refused_at_start_with_one_line(
    yaml_text: str, flags: list[str], env: dict[str, str], key: str, tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    argv = [sys.executable, "-m", "quantum_gate", "run", "--config", str(path), "--redis-url"]
    argv += [f"redis://127.0.0.1:{free_port()}/0", "--listen", f"127.0.0.1:{free_port()}", *flags]
    done = subprocess.run(argv, capture_output=True, timeout=30, cwd=REPO, env=base_env(**env), check=False)
    lines = done.stderr.decode().splitlines()
    assert done.returncode == 1
    assert len(lines) == 1 and key in lines[0], lines
    assert done.stdout == b""


# ---- the password never shows --------------------------------------------------------------------------


class PasswordRedis(RedisServer):
    password: str = ""

    def admin(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5, password=self.password)


def test_password_from_a_file_never_appears_in_output(tmp_path: Path, stream_key: str) -> None:
    secret = f"pw-{uuid.uuid4().hex}"
    wrong = f"wrong-{uuid.uuid4().hex}"
    server = PasswordRedis(tmp_path / "redis", extra_args=("--requirepass", secret))
    server.password = secret
    server.start()
    try:
        cut = now_ms() - 300_000
        write_atomically(server.admin(), stream_key, healthy_entries(30, cut, 1000))
        password_file = tmp_path / "redis-password"
        password_file.write_text(secret + "\n", encoding="utf-8")
        password_file.chmod(0o600)
        env = base_env(QUANTUM_GATE_REDIS_PASSWORD_FILE=str(password_file))
        args = ["--after", str(cut), "--log-level", "debug"]
        with daemon_process(
            tmp_path / "file", server.url, stream_key, *args, config=config(), env=env
        ) as daemon:
            daemon.wait_value("quantum_gate_window_events", 30, window="post")
            daemon.wait_value("quantum_gate_redis_up", 1)
            served = b"".join(
                (daemon.get(path) or (0, b""))[1] for path in ("/metrics", "/gate", "/", "/healthz")
            )
            stop_cleanly(daemon)
        assert secret.encode() not in served
        assert secret not in daemon.stderr() + daemon.stdout()

        # A wrong password in the URL: refused by Redis, said in the log, never printed.
        url = f"redis://:{wrong}@127.0.0.1:{server.port}/0"
        with daemon_process(
            tmp_path / "url", url, stream_key, *args, config=config(), env=base_env()
        ) as daemon:
            disconnected = daemon.wait_log("stream.disconnected")
            assert daemon.value("quantum_gate_redis_up") == 0
            assert disconnected[0]["redis"] == f"redis://***@127.0.0.1:{server.port}/0"
            stop_cleanly(daemon)
        assert wrong not in daemon.stderr() + daemon.stdout()

        # An unreadable password file: refused at start, one line, exit 1.
        env = base_env(QUANTUM_GATE_REDIS_PASSWORD_FILE=str(tmp_path / "missing"))
        done = subprocess.run(
            [sys.executable, "-m", "quantum_gate", "run", "--redis-url", server.url, *args],
            capture_output=True,
            timeout=30,
            cwd=REPO,
            env=env,
            check=False,
        )
        assert done.returncode == 1 and done.stderr.decode().count("\n") == 1, done.stderr
        assert "redis.password_file" in done.stderr.decode()
    finally:
        server.stop()


# ---- SIGTERM and SIGINT end to end ----------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_daemon_within_5_seconds_even_with_redis_down(
    signum: int, tmp_path: Path, stream_key: str
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: the tail is in its backoff
    with daemon_process(tmp_path, url, stream_key, "--after", "0", config=config()) as daemon:
        daemon.wait_log("daemon.ready")
        daemon.wait_value("quantum_gate_redis_up", 0)
        code, seconds = daemon.terminate(within=5, signum=signum)
        assert (code, seconds < 5) == (0, True)
        assert daemon.not_json() == []
        assert len(daemon.events("daemon.stopped")) == 1


def test_unknown_command_line_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "quantum_gate", "run", "--bogus"],
        capture_output=True,
        timeout=30,
        cwd=REPO,
        env=base_env(),
        check=False,
    )
    assert done.returncode == 1 and len(done.stderr.decode().splitlines()) == 1


def test_wait_helpers_are_bounded() -> None:
    started = time.monotonic()
    with pytest.raises(AssertionError, match="timed out"):
        wait_until(lambda: False, 0.1, "nothing")
    assert time.monotonic() - started < 1


# ---- the way systemd runs it: sd_notify, the watchdog, the credential -----------------------------------


def test_run_as_systemd_would_notify_watchdog_and_credential(tmp_path: Path, stream_key: str) -> None:
    secret = f"cred-{uuid.uuid4().hex}"
    server = PasswordRedis(tmp_path / "redis", extra_args=("--requirepass", secret))
    server.password = secret
    server.start()
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        cut = now_ms() - 300_000
        write_atomically(server.admin(), stream_key, healthy_entries(30, cut, 1000))
        notify_path = tmp_path / "notify.sock"
        notify.bind(str(notify_path))
        notify.settimeout(0.05)
        credentials = tmp_path / "credentials"  # what LoadCredential=redis-password:... provides
        credentials.mkdir()
        (credentials / "redis-password").write_text(secret, encoding="utf-8")
        env = base_env(
            NOTIFY_SOCKET=str(notify_path), WATCHDOG_USEC="30000000", CREDENTIALS_DIRECTORY=str(credentials)
        )
        messages: list[str] = []

        def pump() -> list[str]:
            try:
                while True:
                    messages.append(notify.recv(4096).decode())
            except TimeoutError:
                return messages

        def received(wanted: str) -> bool:
            return any(message.startswith(wanted) for message in pump())

        with daemon_process(
            tmp_path / "d", server.url, stream_key, "--after", str(cut), config=config(), env=env
        ) as daemon:
            daemon.wait_for(lambda: received("READY=1"), 10, "READY=1")
            daemon.wait_for(lambda: received("STATUS=verdict INSUFFICIENT_DATA; post 30/200"), 10, "STATUS=")
            daemon.wait_for(
                lambda: pump().count("WATCHDOG=1") >= 2, 10, "two WATCHDOG=1 (one per evaluation)"
            )
            assert daemon.wait_log("daemon.ready")[0]["post_events"] == 30  # READY after the windows
            assert daemon.value("quantum_gate_redis_up") == 1
            stop_cleanly(daemon)
        assert "STOPPING=1" in pump()
        assert secret not in daemon.stderr() + daemon.stdout()
    finally:
        notify.close()
        server.stop()


@dataclass
class SilentRedis:
    url: str
    accepted: list[socket.socket]

    def connections(self) -> int:
        return len(self.accepted)


@contextmanager
def silent_redis() -> Iterator[SilentRedis]:
    """A TCP port that accepts connections and never answers: every Redis command hangs. It counts
    the connections, so a test can wait until the daemon is blocked on one instead of sleeping."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.05)  # the accept loop's cadence, to notice the stop flag
    silent = SilentRedis(f"redis://127.0.0.1:{listener.getsockname()[1]}/0", [])
    stop = threading.Event()

    def accept_forever() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            silent.accepted.append(connection)  # held open, never read from or answered

    thread = threading.Thread(target=accept_forever, name="silent-redis", daemon=True)
    thread.start()
    try:
        yield silent
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
        for connection in silent.accepted:
            connection.close()


def test_sigterm_is_bounded_even_when_redis_hangs_and_a_second_signal_forces(
    tmp_path: Path, stream_key: str
) -> None:
    with silent_redis() as silent:
        url = silent.url
        with daemon_process(tmp_path / "one", url, stream_key, "--after", "1-0", config=config()) as daemon:
            daemon.wait_for(silent.connections, 10, "the tail to block on the silent server")
            code, seconds = daemon.terminate(within=5)
            assert code == 0 and seconds < 5
            assert daemon.events("daemon.stopped")[0]["clean"] is False  # it gave up waiting, as designed
        before = silent.connections()
        with daemon_process(tmp_path / "two", url, stream_key, "--after", "1-0", config=config()) as daemon:
            daemon.wait_for(
                lambda: silent.connections() > before, 10, "the tail to block on the silent server"
            )
            daemon.send(signal.SIGTERM)
            daemon.wait_log("daemon.stopping")
            started = time.monotonic()
            daemon.send(signal.SIGTERM)
            assert daemon.process.wait(timeout=5) == 1
            assert time.monotonic() - started < 1


def test_sigterm_does_not_wait_for_a_hanging_systemctl_poll(
    redis_server: RedisServer, stream_key: str, tmp_path: Path, fake_systemd: FakeSystemd
) -> None:
    fake_systemd.set(entered=1700000000, invocation="inv-slow")
    settings = config(cutover={"poll_seconds": 0.2, "timeout_seconds": 10})
    with daemon_process(
        tmp_path / "d", redis_server.url, stream_key, config=settings, env=base_env()
    ) as daemon:
        daemon.wait_value("quantum_gate_cutover_known", 1)
        fake_systemd.set(entered=1700000000, invocation="inv-slow", hang_seconds=8)
        daemon.wait_for(fake_systemd.hanging, 5, "a systemctl poll stuck in an 8 s hang")
        code, seconds = daemon.terminate(within=5)
        assert code == 0 and seconds < 5
