"""Every command, run as the installed ``quantum-gate`` console script, against a corpus of broken inputs.

Each case must end with exit 1, exactly one line on stderr that starts ``quantum-gate:`` and names the
problem, nothing on stdout, and no traceback (issue 16.9). The run is bounded: an input the commands
did not refuse at start would leave ``run`` or ``demo`` running, and the subprocess timeout fails the
case. Tests run as root, so "unreadable" is made real without permissions: ``/proc/self/mem`` is a
regular file whose read fails with EIO for anyone, a FIFO would block an ``open`` forever, a directory
or a device stands where a file belongs, and a path runs below a regular file (ENOTDIR).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import IN_CI, REPO, RedisServer, free_port
from daemonkit import wait_until

CONSOLE_SCRIPT = REPO / ".venv" / "bin" / "quantum-gate"
CUTOVER_ISO = "2026-01-10T05:43:15Z"
SECRET = b"s3cr\xe9t-\xff\xfe-tail"  # a password file in Latin-1: its bytes must never be printed
TIMEOUT = 30


@dataclass(frozen=True)
class Broken:
    """One broken input: the arguments and environment that carry it, and what the line must say."""

    args: tuple[str | bytes, ...]
    fragment: str
    env: dict[str, str] = field(default_factory=dict)
    never_shown: tuple[str, ...] = ()


def script() -> str:
    if not CONSOLE_SCRIPT.exists():
        message = f"{CONSOLE_SCRIPT} missing: `make .venv/.installed` installs the console script"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return str(CONSOLE_SCRIPT)


def run(argv: list[str | bytes], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    clean = {name: value for name, value in os.environ.items() if not name.startswith("QUANTUM_GATE_")}
    clean.pop("CREDENTIALS_DIRECTORY", None)
    clean.update(env)
    return subprocess.run(
        [script(), *argv], capture_output=True, timeout=TIMEOUT, env=clean, cwd=cwd, check=False
    )


def assert_one_line(result: subprocess.CompletedProcess[bytes], case: Broken) -> None:
    stderr = result.stderr.decode("utf-8", "backslashreplace")
    assert result.returncode == 1, stderr
    assert b"Traceback" not in result.stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("quantum-gate: "), stderr
    assert case.fragment in lines[0], stderr
    assert result.stdout == b""
    for secret in case.never_shown:
        assert secret not in stderr


# ---- the corpus --------------------------------------------------------------------------------------

Maker = Callable[[Path], Broken]


def _file(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


def _fifo(tmp: Path, name: str) -> Path:
    path = tmp / name
    os.mkfifo(path)
    return path


def _config(path: Path | str, fragment: str) -> Broken:
    return Broken(("--config", str(path)), fragment)


CONFIG_FILES: dict[str, Maker] = {
    "latin1": lambda t: _config(
        _file(t, "c.yaml", "report:\n  notes: café\n".encode("latin-1")), "not UTF-8"
    ),
    "utf16": lambda t: _config(_file(t, "c.yaml", "gate:\n  min_events: 5\n".encode("utf-16")), "not UTF-8"),
    "binary": lambda t: _config(_file(t, "c.yaml", bytes(range(256)) * 8), "not UTF-8"),
    "directory": lambda t: _config(t, "is a directory"),
    "fifo": lambda t: _config(_fifo(t, "c.yaml"), "not a regular file"),
    "device": lambda t: _config("/dev/zero", "not a regular file"),
    "unreadable": lambda t: _config("/proc/self/mem", "Input/output error"),
    "missing": lambda t: _config(t / "absent.yaml", "No such file or directory"),
    "below a file": lambda t: _config(_file(t, "plain", b"x") / "c.yaml", "Not a directory"),
    "nested": lambda t: _config(_file(t, "c.yaml", b"gate: " + b"[" * 5000 + b"]" * 5000), "nested too deep"),
    "duplicate": lambda t: _config(_file(t, "c.yaml", b"gate:\n  std_min: 0.1\n  std_min: 0.2\n"), "twice"),
    "boolean": lambda t: _config(_file(t, "c.yaml", b"gate:\n  min_events: true\n"), "gate.min_events"),
    "huge number": lambda t: _config(
        _file(t, "c.yaml", b"gate:\n  std_min: " + b"9" * 5000), "cannot be read"
    ),
}


def _password(tmp: Path, password: Path, fragment: str) -> Broken:
    """A settings file whose redis.password_file is ``password``."""
    config = tmp / "pw.yaml"
    config.write_text(f"redis:\n  password_file: {password}\n", encoding="utf-8")
    return Broken(("--config", str(config)), fragment, never_shown=("s3cr", "tail", "\\x", "\\u"))


def _credential(tmp: Path) -> Broken:
    credentials = tmp / "credentials"
    credentials.mkdir()
    (credentials / "redis-password").write_bytes(SECRET)
    return Broken(
        (), "not UTF-8", env={"CREDENTIALS_DIRECTORY": str(credentials)}, never_shown=("s3cr", "tail")
    )


PASSWORD_FILES: dict[str, Maker] = {
    "latin1": lambda t: _password(t, _file(t, "pw", SECRET + b"\n"), "not UTF-8"),
    "directory": lambda t: _password(t, t, "is a directory"),
    "fifo": lambda t: _password(t, _fifo(t, "pw"), "not a regular file"),
    "credential": _credential,
}

CUTOVERS: dict[str, Maker] = {
    "ambiguous zone": lambda t: Broken(("--after", "Sat 2026-01-10 05:43:15 CST"), "is ambiguous"),
    "wrong weekday": lambda t: Broken(("--after", "Fri 2026-01-10 05:43:15 UTC"), "is a Sat"),
    "not UTF-8": lambda t: Broken(("--after", b"2026-01-10T05:43:15\xff"), "cutover:"),
}

URLS: dict[str, Maker] = {
    "hash": lambda t: Broken(
        ("--redis-url", "redis://:12345#tail@127.0.0.1/0"), "'#'", never_shown=("12345", "tail")
    ),
    "db name": lambda t: Broken(("--redis-url", "redis://127.0.0.1:6379/abc"), "must be a number"),
    "db query": lambda t: Broken(("--redis-url", "redis://127.0.0.1:6379/0?db=x"), "invalid value for 'db'"),
}

REPORT_DIRS: dict[str, Maker] = {
    "a file": lambda t: Broken(("--report-dir", str(_file(t, "reports", b""))), "is not a directory"),
    "below a file": lambda t: Broken(
        ("--report-dir", str(_file(t, "f", b"") / "reports")), "is not a directory"
    ),
}


LEDGERS: dict[str, Maker] = {
    "not a database": lambda t: Broken(
        ("--ledger", str(_file(t, "l.db", b"not sqlite \xff" * 64))), "ledger"
    ),
    "directory": lambda t: Broken(("--ledger", str(t)), "ledger"),
    "fifo": lambda t: Broken(("--ledger", str(_fifo(t, "l.db"))), "ledger"),
    "unreadable": lambda t: Broken(("--ledger", "/proc/self/mem"), "ledger"),
}


def base_args(command: str, case: Broken) -> list[str | bytes]:
    """What each command needs besides the broken input, pointing nowhere real: a Redis port nobody
    listens on and a free HTTP port. Reaching either would mean the input was not refused at start."""
    given = {arg for arg in case.args if isinstance(arg, str) and arg.startswith("--")}
    if command == "history":
        return [] if "--ledger" in given else ["--ledger", "absent.db"]
    args: list[str | bytes] = [] if "--after" in given else ["--after", CUTOVER_ISO]
    if command != "cutover" and "--redis-url" not in given:
        args += ["--redis-url", f"redis://127.0.0.1:{free_port()}/0"]
    if command == "run":
        args += ["--listen", f"127.0.0.1:{free_port()}", "--interval", "1"]
        if "--report-dir" not in given:
            args += ["--report-dir", "reports"]
    return args


def cases(kind: str, corpus: dict[str, Maker], commands: tuple[str, ...]) -> list[object]:
    return [
        pytest.param(command, make, id=f"{command}-{kind}-{name}")
        for command in commands
        for name, make in corpus.items()
    ]


@pytest.mark.parametrize(
    ("command", "make"),
    cases("config", CONFIG_FILES, ("check", "diagnose", "cutover", "run", "history"))
    + cases("password", PASSWORD_FILES, ("check", "diagnose", "run"))
    + cases("after", CUTOVERS, ("check", "diagnose", "cutover", "run"))
    + cases("url", URLS, ("check", "diagnose", "run"))
    # check is not refused at start: it prints the verdict first, then exit 3 (test_runtime_hardening.py)
    + cases("report-dir", REPORT_DIRS, ("run",))
    + cases("ledger", LEDGERS, ("history",)),
)
def test_every_command_refuses_broken_input_in_one_line(command: str, make: Maker, tmp_path: Path) -> None:
    case = make(tmp_path)
    result = run([command, *case.args, *base_args(command, case)], case.env, tmp_path)
    assert_one_line(result, case)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--listen", "[::1"], "cannot listen"),
        (["--listen", "[not-v6]:9731"], "cannot listen"),
        (["--speed", "nan"], "--speed"),
        (["--report-dir", "reports-file"], "is not a directory"),
    ],
)
def test_demo_refuses_broken_input_in_one_line(args: list[str], fragment: str, tmp_path: Path) -> None:
    (tmp_path / "reports-file").write_bytes(b"")
    result = run(["demo", *args], {}, tmp_path)
    assert_one_line(result, Broken(tuple(args), fragment))


# ---- IPv6: `--listen [::1]:P` binds (issue 16.10) ------------------------------------------------------


def ipv6_loopback_port() -> int:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
            return int(probe.getsockname()[1])
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")


def healthz(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://[::1]:{port}/healthz", timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def ready_line(stderr: Path) -> dict[str, object] | None:
    for line in stderr.read_text(encoding="utf-8").splitlines():
        if line.startswith("{") and (entry := json.loads(line)).get("event") == "daemon.ready":
            return dict(entry)
    return None


def test_run_listens_on_ipv6_loopback(redis_server: RedisServer, stream_key: str, tmp_path: Path) -> None:
    port = ipv6_loopback_port()
    argv = [
        script(), "run", "--listen", f"[::1]:{port}", "--after", CUTOVER_ISO, "--interval", "1",
        "--redis-url", redis_server.url, "--stream", stream_key, "--report-dir", str(tmp_path / "reports"),
    ]  # fmt: skip
    stderr = tmp_path / "stderr.log"
    with stderr.open("wb") as err:
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, cwd=tmp_path)
    try:
        status = wait_until(lambda: healthz(port) or (process.poll() is not None and -1) or None, 20, "[::1]")
        assert status in {200, 503}, stderr.read_text(encoding="utf-8")  # 503 until the first evaluation
        ready = wait_until(lambda: ready_line(stderr), 20, "daemon.ready")
        assert ready["listen"] == f"[::1]:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=15)
    assert code == 0, stderr.read_text(encoding="utf-8")
