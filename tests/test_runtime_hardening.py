"""The daemon's runtime edges (issues 16.5-16.8, 16.10, 17.7, 10.3, 10.4): secrets in every URL form,
strict query parameters, HEAD, a hung systemctl at start-up, the real Redis condition, report errors
and retention, late-cutover counting, warnings as JSON, and what check says about the stream key.

Real redis-server instances, real daemon subprocesses and the stand-in systemctl on PATH wherever the
behaviour is at the process level; every wait is bounded and polls a condition.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import REPO, FakeSystemd, RedisServer, free_port
from daemonkit import (
    base_env,
    daemon_process,
    make_settings,
    tailing,
    wait_until,
    write_atomically,
)
from eventkit import entry_fields, healthy_entries
from redis._parsers.base import BaseParser  # redis-py's own reply parser, for LOADING
from redis.backoff import NoBackoff
from redis.retry import Retry
from structlog.testing import capture_logs
from test_gate_http import Served, request, serve, snapshot_for  # noqa: F401 - `serve` is a fixture

from quantum_gate.config import redact_url
from quantum_gate.config_loading import load_settings
from quantum_gate.daemon import Daemon
from quantum_gate.gate_hook import hook_environment, run_hook
from quantum_gate.httpapp import health
from quantum_gate.redis_state import describe_redis_error
from quantum_gate.report_files import prune_reports, report_stamp, reports_to_remove
from quantum_gate.report_folder import ReportFiles

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


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quantum_gate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env if env is not None else base_env(),
        check=False,
    )


# ---- 16.5: secrets ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0?password=hunter2", "redis://127.0.0.1:6379/0?password=***"),
        ("redis://h/0?username=bob&password=hunter2&db=1", "redis://h/0?username=bob&password=***&db=1"),
        ("rediss://u:hunter2@h:6380/0?ssl_password=hunter2", "rediss://***@h:6380/0?ssl_password=***"),
        ("unix:///run/redis.sock?db=0&password=hunter2", "unix:///run/redis.sock?db=0&password=***"),
        ("redis://h/0?Password=hunter2", "redis://h/0?Password=***"),
        ("redis://h/0?socket_timeout=3", "redis://h/0?socket_timeout=3"),
    ],
)
def test_every_password_form_redis_py_accepts_is_redacted(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "hunter2" not in redact_url(url)


class PasswordRedis(RedisServer):
    password: str = ""

    def admin(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5, password=self.password)


@pytest.fixture
def password_redis(tmp_path: Path) -> Iterator[PasswordRedis]:
    server = PasswordRedis(tmp_path / "redis", extra_args=("--requirepass", f"pw-{uuid.uuid4().hex}"))
    server.password = server.extra_args[1]
    server.start()
    yield server
    server.stop()


def test_a_query_password_never_reaches_the_log_or_the_pages(
    password_redis: PasswordRedis, stream_key: str, tmp_path: Path
) -> None:
    secret = password_redis.password
    cut = now_ms() - 300_000
    write_atomically(password_redis.admin(), stream_key, healthy_entries(30, cut, 1000))
    url = f"redis://127.0.0.1:{password_redis.port}/0?password={secret}"
    args = ("--after", str(cut), "--log-level", "debug")
    with daemon_process(tmp_path, url, stream_key, *args, config=config(), env=base_env()) as daemon:
        daemon.wait_value("quantum_gate_window_events", 30, window="post")  # the password worked
        served = b"".join(
            (daemon.get(path) or (0, b""))[1] for path in ("/", "/gate", "/metrics", "/healthz")
        )
        assert b"password=***" in served  # the status page shows the URL, redacted
        starting = daemon.wait_log("daemon.starting")[0]
        assert starting["redis"] == f"redis://127.0.0.1:{password_redis.port}/0?password=***"
    assert secret.encode() not in served
    assert secret not in daemon.stderr() + daemon.stdout()


HOOK = """\
import json, os, sys
with open(sys.argv[1], "w", encoding="utf-8") as out:
    json.dump(dict(os.environ), out)
"""


def test_the_hook_gets_only_what_it_needs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = f"pw-{uuid.uuid4().hex}"
    monkeypatch.setenv("QUANTUM_GATE_REDIS_URL", f"redis://:{secret}@127.0.0.1:1/0")
    monkeypatch.setenv("QUANTUM_GATE_REDIS_PASSWORD", secret)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("LC_TIME", "C")
    hook, out = tmp_path / "hook.py", tmp_path / "hook.json"
    hook.write_text(HOOK, encoding="utf-8")
    settings = make_settings(
        "redis://127.0.0.1:1/0",
        "k",
        tmp_path,
        {"daemon": {"on_gate_complete": [sys.executable, str(hook), str(out)]}},
    )
    with capture_logs() as logs:
        run_hook(settings.daemon, os.environ, tmp_path / "quality_gate_x.json", "PASS")
        wait_until(lambda: [e for e in logs if e["event"] == "hook.finished"], 10, "the hook")
    seen: dict[str, str] = json.loads(out.read_text(encoding="utf-8"))
    assert secret not in json.dumps(seen)
    assert seen["QUANTUM_GATE_VERDICT"] == "PASS"
    assert seen["QUANTUM_GATE_REPORT"] == str(tmp_path / "quality_gate_x.json")
    assert seen["PATH"] == os.environ["PATH"] and seen["LC_TIME"] == "C"
    inherited = {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR"}
    # what the interpreter itself may add to a child's environment
    allowed = inherited | {"QUANTUM_GATE_VERDICT", "QUANTUM_GATE_REPORT", "LC_CTYPE"}
    assert {name for name in seen if not name.startswith("LC_")} <= allowed, sorted(seen)


def test_hook_environment_is_an_allowlist() -> None:
    env = hook_environment(
        {"PATH": "/bin", "QUANTUM_GATE_REDIS_URL": "redis://:x@h/0", "LC_ALL": "C", "SECRET": "x"},
        "FAIL",
        None,
    )
    assert env == {"PATH": "/bin", "LC_ALL": "C", "QUANTUM_GATE_VERDICT": "FAIL", "QUANTUM_GATE_REPORT": ""}


# ---- 16.6 and 16.10: query parameters and HEAD over real HTTP -------------------------------------------


@pytest.mark.parametrize(
    "query",
    ["requires=pass", "Require=pass", "require=", "require", "require=pass&require=not_fail", "require=Pass"],
)
def test_a_typo_in_the_webhook_query_is_400_not_200(serve: Served, query: str) -> None:  # noqa: F811
    serve.snap = snapshot_for("FAIL")
    for method, body in (("GET", None), ("POST", b"{}")):
        status, answer = request(serve.port, method, f"/gate?{query}", body)
        assert status == 400, (method, query, answer)
        assert answer.count(b"\n") == 1 and b"require" in answer.lower()


def test_every_endpoint_refuses_parameters_it_does_not_take(serve: Served) -> None:  # noqa: F811
    serve.snap = snapshot_for("PASS")
    for path in ("/metrics?name=x", "/healthz?verbose=1", "/?refresh=1", "/gate?verdict=pass"):
        status, answer = request(serve.port, "GET", path)
        assert status == 400 and b"unknown query parameter" in answer, (path, answer)
    assert request(serve.port, "GET", "/gate?require=pass")[0] == 200
    assert request(serve.port, "GET", "/gate?require=not_fail")[0] == 200


def raw_exchange(port: int, text: bytes) -> bytes:
    """One HTTP/1.0 exchange on a raw socket: everything the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(text)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("path", ["/gate", "/metrics", "/healthz", "/", "/nowhere", "/gate?require=x"])
def test_head_sends_the_headers_of_get_and_no_body(serve: Served, path: str) -> None:  # noqa: F811
    serve.snap = snapshot_for("PASS")
    # The snapshot is fixed, but /metrics also carries the process's own figures (CPU seconds, GC
    # counts), whose text can grow by a digit between two requests: HEAD is compared with the GETs
    # around it, in a round where those two agree.
    for _ in range(5):
        got = raw_exchange(serve.port, f"GET {path} HTTP/1.0\r\n\r\n".encode())
        head = raw_exchange(serve.port, f"HEAD {path} HTTP/1.0\r\n\r\n".encode())
        again = raw_exchange(serve.port, f"GET {path} HTTP/1.0\r\n\r\n".encode())
        get_headers, _, get_body = got.partition(b"\r\n\r\n")
        if len(again.partition(b"\r\n\r\n")[2]) == len(get_body):
            break
    head_headers, _, head_body = head.partition(b"\r\n\r\n")
    assert get_body and head_body == b""
    assert head_headers.split(b"\r\n")[0] == get_headers.split(b"\r\n")[0]  # same status line
    length = [line for line in head_headers.split(b"\r\n") if line.lower().startswith(b"content-length")]
    assert length == [f"Content-Length: {len(get_body)}".encode()]


# ---- 16.7: SIGTERM while the start-up systemctl query hangs ----------------------------------------------


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_sigterm_during_a_hung_startup_systemctl_query(
    redis_server: RedisServer, stream_key: str, tmp_path: Path, fake_systemd: FakeSystemd
) -> None:
    fake_systemd.set(hang_seconds=600)  # a wedged systemd: never answers (a child of its own sleeps)
    settings = config(cutover={"timeout_seconds": 60})  # as measured in the issue
    with daemon_process(
        tmp_path / "d", redis_server.url, stream_key, config=settings, env=base_env()
    ) as daemon:
        pid = daemon.wait_for(fake_systemd.hanging, 10, "systemctl to start")
        answer = daemon.get("/healthz")
        assert answer is not None and answer[0] == 503
        reason = json.loads(answer[1])["reason"]
        assert reason.startswith("systemd not answering"), reason
        assert "redis" not in reason
        code, _ = daemon.terminate(within=5)  # TimeoutStopSec=15 in the unit; 60 s before the fix
        assert code == 0
        assert daemon.not_json() == []
    wait_until(lambda: not alive(pid), 5, "the hung systemctl to be killed with the daemon")


# ---- 16.8 / 10.4: the real Redis condition, the stream's existence ---------------------------------------


def healthz_reason(daemon: Any) -> str | None:
    answer = daemon.get("/healthz")
    return json.loads(answer[1])["reason"] if answer is not None and answer[0] == 503 else None


def test_healthz_and_page_name_wrongtype_with_key_and_type(
    redis_server: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    admin = redis_server.admin()
    admin.set(stream_key, "not a stream")
    args = ("--after", "0")
    with daemon_process(
        tmp_path, redis_server.url, stream_key, *args, config=config(), env=base_env()
    ) as daemon:
        wanted = f"redis WRONGTYPE: key {stream_key} is a string, not a stream"
        daemon.wait_for(lambda: healthz_reason(daemon) == wanted, 10, "/healthz naming WRONGTYPE")
        assert daemon.value("quantum_gate_stream_exists") == 0
        page = (daemon.get("/") or (0, b""))[1].decode()
        assert f"key {stream_key} is a string, not a stream" in page
        assert "is a string, not a stream</span>" in page  # the stream row says it too
        admin.delete(stream_key)
        daemon.wait_value("quantum_gate_stream_exists", 0)
        daemon.wait_for(
            lambda: "does not exist on this Redis" in (daemon.get("/") or (0, b""))[1].decode(),
            10,
            "the page saying the stream does not exist",
        )
        write_atomically(admin, stream_key, healthy_entries(3, now_ms() - 10_000, 1000))
        daemon.wait_value("quantum_gate_stream_exists", 1)
        daemon.wait_value("quantum_gate_redis_up", 1)


@pytest.mark.parametrize("credential", ["none", "wrong"])
def test_healthz_names_noauth_and_wrongpass(
    credential: str, password_redis: PasswordRedis, stream_key: str, tmp_path: Path
) -> None:
    port = password_redis.port
    url = f"redis://127.0.0.1:{port}/0" if credential == "none" else f"redis://:nope@127.0.0.1:{port}/0"
    code = "NOAUTH" if credential == "none" else "WRONGPASS"
    with daemon_process(tmp_path, url, stream_key, "--after", "0", config=config(), env=base_env()) as daemon:
        reason = daemon.wait_for(lambda: healthz_reason(daemon), 10, "/healthz to answer 503")
        daemon.wait_for(lambda: (healthz_reason(daemon) or "").startswith(f"redis {code}: "), 10, code)
        assert "unreachable" not in (healthz_reason(daemon) or ""), reason
        assert code in (daemon.get("/") or (0, b""))[1].decode()


def test_healthz_says_unreachable_only_when_it_is(stream_key: str, tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with daemon_process(tmp_path, url, stream_key, "--after", "0", config=config(), env=base_env()) as daemon:
        seen: list[str] = []

        def detailed() -> str | None:
            reason = healthz_reason(daemon)
            if reason:
                seen.append(reason)
            return reason if reason and reason.startswith("redis unreachable (") else None

        daemon.wait_for(detailed, 10, "/healthz to name the unreachable Redis")
        # before the first connection attempt ends it says so, never a bare "unreachable"
        assert set(seen) <= {"redis not connected yet"} | {
            r for r in seen if r.startswith("redis unreachable (")
        }


def test_busy_loading_and_paused_as_redis_py_reports_them(own_redis: RedisServer) -> None:
    """BUSY and a paused server from a real redis-server; LOADING as redis-py parses Redis's reply."""
    admin = own_redis.admin()
    admin.config_set("busy-reply-threshold", 100)
    script = (
        "local t0 = redis.call('TIME') repeat local t = redis.call('TIME') until t[1] - t0[1] >= 2 return 1"
    )
    runner = threading.Thread(target=lambda: redis.Redis(port=own_redis.port).eval(script, 0), daemon=True)
    runner.start()
    probe = redis.Redis(port=own_redis.port, socket_timeout=5)

    def busy() -> str | None:
        try:
            probe.xrevrange("k", count=1)
        except redis.RedisError as exc:
            return describe_redis_error(exc)
        return None

    condition = wait_until(busy, 5, "BUSY while the script runs")
    assert condition.startswith("BUSY: Redis is busy running a script"), condition
    runner.join(timeout=10)

    loading = BaseParser.parse_error("LOADING Redis is loading the dataset in memory")  # type: ignore[no-untyped-call]
    assert describe_redis_error(loading) == "LOADING: Redis is loading the dataset in memory"

    admin.client_pause(2000, all=True)  # ends by itself
    no_retries = Retry(NoBackoff(), 0)  # redis-py would otherwise retry the timeout until the pause ends
    paused = redis.Redis(
        port=own_redis.port, socket_timeout=0.3, socket_connect_timeout=0.3, retry=no_retries
    )
    with pytest.raises(redis.TimeoutError) as caught:
        paused.xrevrange("k", count=1)
    assert describe_redis_error(caught.value).startswith("timeout: no answer")
    assert "paused" in describe_redis_error(caught.value)


def test_busy_in_the_tail_reaches_healthz(own_redis: RedisServer, stream_key: str, tmp_path: Path) -> None:
    """A daemon that meets a Redis busy running a script says BUSY, then recovers when it ends. (A
    script that starts while the tail's XREAD BLOCK is in flight is not seen: Redis answers that
    XREAD after the script.)"""
    admin = own_redis.admin()
    admin.config_set("busy-reply-threshold", 100)
    write_atomically(admin, stream_key, healthy_entries(3, now_ms() - 10_000, 1000))
    settings = make_settings(own_redis.url, stream_key, tmp_path, {"cutover": {"after": "0"}})
    daemon = Daemon(settings)
    script = (
        "local t0 = redis.call('TIME') repeat local t = redis.call('TIME') until t[1] - t0[1] >= 3 return 1"
    )
    runner = threading.Thread(target=lambda: redis.Redis(port=own_redis.port).eval(script, 0), daemon=True)
    runner.start()
    probe = redis.Redis(port=own_redis.port, socket_timeout=5)

    def busy() -> bool:
        try:
            probe.ping()
        except redis.ResponseError as exc:
            return "BUSY" in str(exc)
        return False

    wait_until(busy, 5, "the script to make Redis BUSY")
    with tailing(daemon):

        def busy_reason() -> str | None:
            why = health(daemon.snapshot(), time.time())[1]
            return why if why.startswith("redis BUSY: ") else None

        reason = wait_until(busy_reason, 10, "/healthz naming BUSY")
        runner.join(timeout=10)
        wait_until(lambda: daemon.ingestor.state().redis_up, 10, "Redis back once the script ended")
        assert daemon.ingestor.state().redis_condition is None
    assert "unreachable" not in reason


def test_check_and_diagnose_on_a_missing_key_say_so_in_one_line(
    redis_server: RedisServer, stream_key: str
) -> None:
    missing = stream_key.replace("trade", "trad")
    for command in ("check", "diagnose"):
        done = run_cli(command, "--redis-url", redis_server.url, "--stream", missing, "--after", "0")
        assert done.returncode == 2, done
        assert done.stderr == f"quantum-gate: stream {missing} does not exist on this Redis\n"
        assert done.stdout == ""


def test_check_on_a_key_of_another_type_names_key_and_type(
    redis_server: RedisServer, stream_key: str
) -> None:
    redis_server.admin().hset(stream_key, "a", "b")
    for command in ("check", "diagnose"):
        done = run_cli(command, "--redis-url", redis_server.url, "--stream", stream_key, "--after", "0")
        assert done.returncode == 1, done
        assert done.stderr == f"quantum-gate: redis: WRONGTYPE: key {stream_key} is a hash, not a stream\n"


# ---- 10.3: check --report-dir never loses the verdict -----------------------------------------------------


@pytest.mark.parametrize("output", ["text", "json"])
@pytest.mark.parametrize("blocker", ["is_a_file", "parent_is_a_file"])
def test_check_prints_the_verdict_before_a_report_dir_that_cannot_be_written(
    output: str, blocker: str, redis_server: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    cut = now_ms() - 400_000
    write_atomically(redis_server.admin(), stream_key, healthy_entries(250, cut, 1000))
    occupied = tmp_path / "reports"
    occupied.write_text("a file where the folder should be\n", encoding="utf-8")
    target = occupied if blocker == "is_a_file" else occupied / "sub"
    args = ["check", "--redis-url", redis_server.url, "--stream", stream_key, "--after", str(cut)]
    args += ["--report-dir", str(target)] + (["--json"] if output == "json" else [])
    done = run_cli(*args)
    assert done.returncode == 3, done
    if output == "json":
        assert json.loads(done.stdout)["verdict"] == "PASS"
    else:
        assert done.stdout.startswith("quantum-gate: PASS\n")
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"quantum-gate: report not written: {occupied}")
    assert ("Not a directory" in done.stderr) or ("File exists" in done.stderr), done.stderr


def test_daemon_report_failure_is_counted_logged_once_and_not_fatal(
    redis_server: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    """The folder is fine at start (a file there is refused at start, in one line) and turns into a
    file while the daemon runs: every report due from then on fails, is counted, is logged once."""
    folder = tmp_path / "reports"
    folder.mkdir()
    cut = now_ms() - 400_000
    admin = redis_server.admin()
    write_atomically(admin, stream_key, healthy_entries(199, cut, 1000))
    args = ("--after", str(cut), "--report-dir", str(folder))
    with daemon_process(
        tmp_path / "d", redis_server.url, stream_key, *args, config=config(), env=base_env()
    ) as d:
        d.wait_value("quantum_gate_window_events", 199, window="post")
        folder.rmdir()
        folder.write_text("not a folder any more\n", encoding="utf-8")
        write_atomically(admin, stream_key, healthy_entries(60, cut + 200_000, 1000))  # the gate completes
        d.wait_value("quantum_gate_report_errors_total", 1)
        assert d.json("/gate")["verdict"] == "PASS"
        collapsed = [
            (f"{cut + 300_000 + index}-0", entry_fields({"xgb": ("HOLD", 0.5), "lgbm": ("HOLD", 0.5)}))
            for index in range(1, 1800)
        ]
        write_atomically(admin, stream_key, collapsed)  # the verdict changes: a second report is due
        d.wait_value("quantum_gate_verdict", 1, verdict="fail")
        d.wait_value("quantum_gate_report_errors_total", 2)
        assert d.process.poll() is None
        failed = d.events("report.failed")
        assert len(failed) == 1, failed  # once per change of the failure, not once per report
        assert str(folder) in failed[0]["error"]
        assert d.value("quantum_gate_reports_written_total") == 0


# ---- 16.10: report retention ------------------------------------------------------------------------------


def test_reports_to_remove_keeps_the_newest_and_drops_the_old() -> None:
    now = 1_768_023_795.0
    stems = [f"quality_gate_{report_stamp(now - age)}" for age in (0, 10, 20, 30, 86_400 * 40)]
    assert reports_to_remove(
        [*stems, "notes", "quality_gate_x"], keep=3, max_age_seconds=None, now=now
    ) == sorted(stems[3:])
    assert reports_to_remove(stems, keep=10, max_age_seconds=86_400 * 30, now=now) == [stems[4]]
    assert reports_to_remove(stems, keep=10, max_age_seconds=None, now=now) == []


def test_the_daemon_bounds_its_report_folder(tmp_path: Path) -> None:
    """A flapping cutover wrote 4 reports in 10 s: with reports_keep 2, two pairs stay."""
    settings = load_settings(
        overrides={"daemon.report_dir": str(tmp_path), "daemon.reports_keep": 2}, environ={}
    ).daemon
    (tmp_path / "operator-notes.md").write_text("mine\n", encoding="utf-8")
    clock = 1_768_023_795.0
    files = ReportFiles(settings, lambda: clock)
    document = json.loads(json.dumps(snapshot_for("PASS").evaluation.document))
    written = []
    for second in range(4):
        document["evaluated_at_seconds"] = clock - 10 + second * 2.5
        written.append(files.write(document))
    survivors = [path for path in written[2:] if path is not None]
    expected = (
        {"operator-notes.md"} | {p.name for p in survivors} | {p.with_suffix(".md").name for p in survivors}
    )
    assert {path.name for path in tmp_path.iterdir()} == expected
    assert (tmp_path / "operator-notes.md").exists()
    assert files.removed_total == 4 and files.written_total == 4 and files.errors_total == 0
    assert prune_reports(tmp_path / "missing", keep=1, max_age_seconds=None, now=clock) == []


# ---- 17.7: a cutover known only after start counts the first backfill -----------------------------------


def test_a_late_cutover_counts_the_backfilled_events_once(
    redis_server: RedisServer, stream_key: str, tmp_path: Path, fake_systemd: FakeSystemd
) -> None:
    admin = redis_server.admin()
    start = now_ms() - 600_000
    cut_ms = start + 300_000
    write_atomically(admin, stream_key, healthy_entries(300, start, 1000))  # 300 before the cutover
    write_atomically(admin, stream_key, healthy_entries(300, cut_ms, 500)[::2][:150])  # 150 after
    bot = {"event_type": "trade.intent", "payload": json.dumps({"symbol": "X"}), "source": "bot"}
    write_atomically(admin, stream_key, [(f"{cut_ms + 200_000 + i}-0", bot) for i in range(5)])  # 5 skips
    long_key = {"xgb": ("BUY", 0.61), "m" * 100: ("SELL", 0.4)}  # a model key over max_key_length: refused
    write_atomically(admin, stream_key, [(f"{cut_ms + 210_000}-0", entry_fields(long_key))])
    settings = make_settings(redis_server.url, stream_key, tmp_path, {"cutover": {"after": None}})
    daemon = Daemon(settings)  # systemd: the unit never started, so no cutover at start
    with tailing(daemon):
        wait_until(lambda: daemon.tracker.state().systemd_up is False, 5, "systemd to be asked")
        assert daemon.ingestor.state().accepted_total == 0
        live = healthy_entries(20, now_ms() - 5_000, 100)
        write_atomically(admin, stream_key, live)
        write_atomically(admin, stream_key, [(f"{now_ms()}-0", bot)])
        write_atomically(admin, stream_key, [(f"{now_ms() + 1}-0", entry_fields(long_key))])
        wait_until(
            lambda: daemon.ingestor.state().accepted_total == 21 and daemon.ingestor.state().skipped_total,
            5,
            "the live entries",
        )
        assert daemon.ingestor.state().refused_total == 1
        fake_systemd.restart(entered=cut_ms / 1000)
        daemon.tracker.watch()
        wait_until(
            lambda: daemon.tracker.state().cutover is not None and not daemon.tracker.state().pending,
            10,
            "the cutover",
        )
        held = len(daemon.windows.post) + len(daemon.windows.pre)
        assert (len(daemon.windows.post), len(daemon.windows.pre)) == (172, 300)
        assert (
            daemon.ingestor.state().accepted_total == held == 472
        )  # each event once: 21 live + 451 backfilled
        assert sum(daemon.ingestor.state().skipped_total.values()) == 6
        assert daemon.ingestor.state().entries_read_total == 478
        assert daemon.ingestor.state().refused_total == 2  # the live one and the backlog one, each once


# ---- 16.10: numpy warnings are JSON log lines -----------------------------------------------------------


def test_python_warnings_are_json_log_lines() -> None:
    code = (
        "from quantum_gate import logs; logs.configure(); import numpy as np; np.sum(np.array([1e308] * 2))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=REPO, check=False
    )
    lines = done.stderr.splitlines()
    assert lines and all(line.startswith("{") for line in lines), done.stderr
    event = json.loads(lines[0])
    assert (event["event"], event["category"]) == ("python.warning", "RuntimeWarning")


def test_hostile_confidences_keep_the_daemon_log_pure_json(
    redis_server: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    cut = now_ms() - 400_000
    entries = [
        (
            f"{cut + index * 1000}-0",
            entry_fields({"xgb": ("BUY" if index % 3 else "SELL", 1e308 * (-1) ** index)}),
        )
        for index in range(250)
    ]
    write_atomically(redis_server.admin(), stream_key, entries)
    with daemon_process(
        tmp_path, redis_server.url, stream_key, "--after", str(cut), config=config(), env=base_env()
    ) as daemon:
        daemon.wait_value("quantum_gate_verdict", 1, verdict="fail")
        code, _ = daemon.terminate(within=5)
        assert code == 0
    assert daemon.not_json() == [], daemon.not_json()[:5]
