"""Settings: defaults < YAML < environment < flags; bad values refused in one line naming the key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from quantum_gate.config import ConfigError, Settings, parse_listen, redact_url
from quantum_gate.config_loading import load_settings, resolve_redis_password
from quantum_gate.connection import resolve_sentinel_password


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "quantum-gate.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_seed_thresholds() -> None:
    settings = load_settings(environ={})
    gate = settings.gate
    assert (gate.min_events, gate.min_samples) == (200, 200)
    assert (gate.majority_max, gate.hold_max, gate.std_min, gate.p10_p90_min) == (0.70, 0.85, 0.05, 0.12)
    assert (gate.constant_std_min, gate.constant_width_min) == (0.01, 0.001)
    assert (gate.out_of_range_max, gate.invalid_votes_max) == (0.0, 0.0)
    assert gate.suspect_constants == (0.5, 0.65, 0.68, 0.72, 0.75)
    assert settings.redis.url == "redis://127.0.0.1:6379/0"
    assert settings.redis.stream == "quantum:stream:trade.intent"
    assert settings.redis.page_size == 1000
    assert (settings.windows.post, settings.windows.baseline) == (2000, 2000)
    assert settings.cutover.unit == "quantum-ai-engine.service"
    assert (settings.contract.max_models, settings.contract.max_key_length) == (32, 64)


def test_settings_are_frozen() -> None:
    settings = load_settings(environ={})
    with pytest.raises(ValueError, match="frozen"):
        settings.gate.majority_max = 0.9  # type: ignore[misc]


def test_precedence_yaml_then_environment_then_flags(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "gate:\n  majority_max: 0.6\n  hold_max: 0.8\n  min_events: 50\n  min_samples: 50\n"
        "windows:\n  post: 100\n",
    )
    settings = load_settings(
        path,
        environ={"QUANTUM_GATE_GATE_HOLD_MAX": "0.75", "QUANTUM_GATE_GATE_MIN_EVENTS": "60"},
        overrides={"gate.min_events": 70, "windows.post": None},
    )
    assert settings.gate.majority_max == 0.6  # YAML
    assert settings.gate.hold_max == 0.75  # environment beats YAML
    assert settings.gate.min_events == 70  # flag beats environment
    assert settings.windows.post == 100  # a None flag changes nothing


def test_environment_lists() -> None:
    settings = load_settings(
        environ={
            "QUANTUM_GATE_GATE_EXCLUDE_MODELS": "[patchtst, tft]",
            "QUANTUM_GATE_GATE_SUSPECT_CONSTANTS": "[0.5]",
        }
    )
    assert settings.gate.exclude_models == ("patchtst", "tft")
    assert settings.gate.suspect_constants == (0.5,)
    assert settings.gate.gates("xgb") and not settings.gate.gates("tft")


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            "gate:\n  majority_max: 1.7\n",
            r"^config: gate\.majority_max: .*less than or equal to 1 \(got 1\.7\)$",
        ),
        ("gate:\n  majority: 0.7\n", r"^config: gate\.majority: unknown key"),
        ("gates:\n  majority_max: 0.7\n", r"^config: gates: unknown key"),
        ("gate:\n  hold_max: high\n", r"^config: gate\.hold_max: "),
        ("gate:\n  min_events: 0\n", r"^config: gate\.min_events: "),
        ("redis:\n  page_size: 1001\n", r"^config: redis\.page_size: .*1000"),
        ("redis:\n  url: http://example.com\n", r"^config: redis\.url: .*redis://"),
        (
            "gate:\n  min_events: 300\nwindows:\n  post: 200\n",
            r"gate\.min_events \(300\) exceeds windows\.post",
        ),
        ("- gate\n", r"top level must be a mapping"),
        ("gate: [\n", r"is not valid YAML"),
        # settings that can never pass (issue 17.4)
        (
            "gate:\n  min_events: 100\n  min_samples: 300\nwindows:\n  post: 250\n",
            r"^config: gate\.min_samples \(300\) exceeds windows\.post \(250\)$",
        ),
        # YAML quirks (issue 16.10): booleans are not numbers, inf/nan are not thresholds ...
        ("gate:\n  min_events: true\n", r"^config: gate\.min_events: true/false is not a value"),
        ("gate:\n  min_samples: yes\n", r"^config: gate\.min_samples: true/false"),
        ("gate:\n  suspect_constants: [0.5, on]\n", r"^config: gate\.suspect_constants: true/false"),
        ("cutover:\n  unit: off\n", r"^config: cutover\.unit: true/false"),
        ("gate:\n  std_min: .inf\n", r"^config: gate\.std_min: .*finite number \(got inf\)$"),
        ("gate:\n  majority_max: .nan\n", r"^config: gate\.majority_max: .*finite number"),
        ("gate:\n  p10_p90_min: -.inf\n", r"^config: gate\.p10_p90_min: "),
        ("alerts:\n  low_rate_per_minute: .inf\n", r"^config: alerts\.low_rate_per_minute: .*finite"),
        ("gate:\n  suspect_constants: [.nan]\n", r"^config: gate\.suspect_constants\.0: .*finite"),
        # ... and an interval has a floor (MIN_SECONDS = 0.1 s; 1 s for the horizons)
        ("daemon:\n  interval_seconds: 1e-9\n", r"^config: daemon\.interval_seconds: .*equal to 0\.1"),
        ("cutover:\n  poll_seconds: 0.001\n", r"^config: cutover\.poll_seconds: .*equal to 0\.1"),
        ("redis:\n  socket_timeout_seconds: 1e-9\n", r"^config: redis\.socket_timeout_seconds: "),
        ("daemon:\n  stale_after_seconds: 0.5\n", r"^config: daemon\.stale_after_seconds: .*equal to 1"),
        ("alerts:\n  stall_seconds: 0.001\n", r"^config: alerts\.stall_seconds: .*equal to 1"),
        # ... and a key given twice is refused, not last-wins
        (
            "gate:\n  min_events: 200\n  hold_max: 0.8\n  min_events: 300\n",
            r": line 4: gate\.min_events: the key appears twice",
        ),
        ("gate:\n  hold_max: 0.8\ngate:\n  majority_max: 0.6\n", r": line 3: gate: the key appears twice"),
        ("gate: {std_min: 0.1, std_min: 0.2}\n", r": line 1: gate\.std_min: the key appears twice"),
        ("gate: " + "[" * 5000 + "]" * 5000 + "\n", r"nested too deeply"),
        ("gate:\n  min_events: " + "9" * 4000 + "\n", r"^config: gate\.min_events: .{1,300}$"),
        ("gate:\n  min_events: " + "9" * 5000 + "\n", r": a value cannot be read \(Exceeds the limit"),
        ("report:\n  notes: 2026-13-45\n", r": a value cannot be read \(month must be in 1\.\.12\)$"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(tmp_path: Path, yaml_text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(write(tmp_path, yaml_text), environ={})
    assert "\n" not in str(caught.value)


def test_aliases_are_not_duplicates_and_recursion_is_refused(tmp_path: Path) -> None:
    shared = "windows: &w {post: 300, baseline: 300}\n"
    assert load_settings(write(tmp_path, shared), environ={}).windows.post == 300
    with pytest.raises(ConfigError) as caught:  # a self-referencing list: one line, not a hang
        load_settings(write(tmp_path, "gate:\n  suspect_constants: &x [0.5, *x]\n"), environ={})
    assert str(caught.value).startswith("config: gate.suspect_constants")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("name", "value"), [("GATE_STD_MIN", "inf"), ("GATE_HOLD_MAX", "nan")])
def test_environment_inf_and_nan_are_refused(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match="finite number"):
        load_settings(environ={f"QUANTUM_GATE_{name}": value})


@pytest.mark.parametrize("seconds", [0.1, 0.5, 3600])
def test_interval_floor_is_inclusive(seconds: float) -> None:
    assert (
        load_settings(overrides={"daemon.interval_seconds": seconds}, environ={}).daemon.interval_seconds
        == seconds
    )


# ---- files that are not what they should be (issue 16.9): one line, never a traceback, never a hang ---


def test_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("report:\n  notes: d\u00e9ploiement\n".encode("latin-1"))
    with pytest.raises(
        ConfigError, match=r"^config file .*latin1\.yaml: not UTF-8 text \(invalid byte at offset 18\)$"
    ):
        load_settings(path, environ={})


def test_config_file_that_is_a_directory_fifo_device_or_too_large(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # opening it for reading would block until a writer came: it must not be opened so
    large = tmp_path / "large.yaml"
    large.write_bytes(b"# " + b"x" * (1 << 20) + b"\n")
    for path, message in [
        (tmp_path, "is a directory, not a file"),
        (fifo, "not a regular file"),
        (Path("/dev/zero"), "not a regular file"),
        (large, "larger than 1048576 bytes"),
        (Path("/proc/self/mem"), "Input/output error"),  # a regular file that root cannot read either
        (tmp_path / "large.yaml" / "below-a-file.yaml", "Not a directory"),
    ]:
        with pytest.raises(ConfigError) as caught:
            load_settings(path, environ={})
        assert str(caught.value) == f"config file {path}: {message}"


def test_dev_null_is_an_empty_config_file() -> None:
    assert load_settings(Path(os.devnull), environ={}) == Settings()


def test_password_file_that_is_not_utf8_is_one_line_without_the_bytes(tmp_path: Path) -> None:
    secret = b"s3cr\xe9t-\xff\xfe-tail"
    path = tmp_path / "password"
    path.write_bytes(secret + b"\n")
    settings = load_settings(overrides={"redis.password_file": str(path)}, environ={})
    with pytest.raises(ConfigError) as caught:
        resolve_redis_password(settings, {})
    message = str(caught.value)
    assert message == f"redis.password_file {path}: not UTF-8 text (invalid byte at offset 4)"
    assert "s3cr" not in message and "tail" not in message and "\\x" not in message
    os.mkfifo(tmp_path / "fifo")
    fifo = load_settings(overrides={"redis.password_file": str(tmp_path / "fifo")}, environ={})
    with pytest.raises(ConfigError, match="not a regular file"):
        resolve_redis_password(fifo, {})
    credentials = tmp_path / "creds"
    (credentials / "redis-password").mkdir(parents=True)  # the credential path is a directory
    with pytest.raises(ConfigError, match="is a directory"):
        resolve_redis_password(Settings(), {"CREDENTIALS_DIRECTORY": str(credentials)})


def test_sentinel_password_file_that_is_not_utf8_or_a_fifo(tmp_path: Path) -> None:
    path = tmp_path / "sentinel-pw"
    path.write_bytes(b"s3cr\xe9t-tail\n")
    os.mkfifo(tmp_path / "fifo")
    for given, message in [
        (path, "not UTF-8 text (invalid byte at offset 4)"),
        (tmp_path / "fifo", "not a regular file"),
    ]:
        settings = load_settings(
            overrides={
                "redis.url": "redis+sentinel://127.0.0.1:1/mymaster",
                "redis.sentinel_password_file": str(given),
            },
            environ={},
        )
        with pytest.raises(ConfigError) as caught:
            resolve_sentinel_password(settings, {})
        assert str(caught.value) == f"redis.sentinel_password_file {given}: {message}"


def test_empty_yaml_is_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, ""), environ={}) == Settings()


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file .*missing\.yaml"):
        load_settings(tmp_path / "missing.yaml", environ={})


def test_unknown_environment_setting_is_refused() -> None:
    with pytest.raises(ConfigError, match="QUANTUM_GATE_GATE_MAJORITY: not a quantum-gate setting"):
        load_settings(environ={"QUANTUM_GATE_GATE_MAJORITY": "0.7"})
    # the password and the config path are not settings keys, and are not refused
    settings = load_settings(environ={"QUANTUM_GATE_REDIS_PASSWORD": "x", "QUANTUM_GATE_CONFIG": "/nowhere"})
    assert settings == Settings()


def test_bad_environment_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^config: gate\.majority_max: "):
        load_settings(environ={"QUANTUM_GATE_GATE_MAJORITY_MAX": "1.7"})


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:notaport/0", "redis://127.0.0.1:99999/0", "redis://:secret@127.0.0.1:x/0"]
)
def test_redis_url_with_a_bad_port_is_a_config_error(url: str) -> None:
    """Without this, redis-py raised a bare ValueError from deep inside ``check``: a traceback."""
    with pytest.raises(ConfigError, match=r"^config: redis\.url: ") as caught:
        load_settings(overrides={"redis.url": url}, environ={})
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("redis://127.0.0.1:6379/abc", "database after the host must be a number"),  # was db 0, silently
        ("redis://127.0.0.1:6379/1/2", "database after the host must be a number"),  # was db 12
        ("redis://127.0.0.1:6379/0?db=abc", "invalid value for 'db' in the URL"),  # was a traceback
        ("redis://127.0.0.1:6379/0?socket_timeout=soon", "invalid value for 'socket_timeout'"),
        ("redis://:12345#tail@127.0.0.1/0", "has a '#'"),  # was port 12345 on localhost, logged verbatim
        ("redis://user:pa#ss@127.0.0.1:6379/0", "has a '#'"),
    ],
)
def test_redis_urls_that_redis_py_would_misread_are_refused(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(overrides={"redis.url": url}, environ={})
    message = str(caught.value)
    assert message.startswith("config: redis.url: ") and fragment in message
    for secret in ("12345", "tail", "pa#ss", "abc", "soon"):
        assert secret not in message.replace("'db'", "")


@pytest.mark.parametrize(
    "url",
    ["redis://127.0.0.1:6379", "redis://127.0.0.1:6379/", "redis://h/15", "unix:///run/redis.sock?db=2"],
)
def test_redis_urls_with_or_without_a_database(url: str) -> None:
    assert load_settings(overrides={"redis.url": url}, environ={}).redis.url == url


def test_password_never_in_repr_or_errors() -> None:
    settings = load_settings(overrides={"redis.url": "redis://user:hunter2@127.0.0.1:6379/0"}, environ={})
    assert "hunter2" not in repr(settings)
    assert settings.redis.redacted_url() == "redis://***@127.0.0.1:6379/0"
    with pytest.raises(ConfigError) as caught:
        load_settings(overrides={"redis.url": "http://user:hunter2@127.0.0.1/0"}, environ={})
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:pw@host:6380/1", "redis://***@host:6380/1"),
        ("rediss://user:pw@host/0", "rediss://***@host/0"),
        # a '#' in the password: urlsplit would call the rest a fragment and show it (issue 17.5)
        ("redis://:12345#tail@host/0", "redis://***@host/0"),
        ("redis://u:a#b@c@host:6379/0", "redis://***@host:6379/0"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_password_sources_in_order(tmp_path: Path) -> None:
    password_file = tmp_path / "pw"
    password_file.write_text("from-file\n", encoding="utf-8")
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "redis-password").write_text("from-credential", encoding="utf-8")
    with_file = load_settings(overrides={"redis.password_file": str(password_file)}, environ={})
    environ = {"CREDENTIALS_DIRECTORY": str(credentials), "QUANTUM_GATE_REDIS_PASSWORD": "from-env"}
    assert resolve_redis_password(with_file, environ) == "from-file"
    plain = Settings()
    assert resolve_redis_password(plain, environ) == "from-credential"
    assert resolve_redis_password(plain, {"QUANTUM_GATE_REDIS_PASSWORD": "from-env"}) == "from-env"
    assert resolve_redis_password(plain, {}) is None
    missing = load_settings(overrides={"redis.password_file": str(tmp_path / "nope")}, environ={})
    with pytest.raises(ConfigError, match=r"redis\.password_file"):
        resolve_redis_password(missing, {})


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("127.0.0.1:9731", ("127.0.0.1", 9731)),
        ("[::1]:80", ("::1", 80)),
        ("[::]:9731", ("::", 9731)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_parse_listen(value: str, parsed: tuple[str, int]) -> None:
    assert parse_listen(value) == parsed


@pytest.mark.parametrize(
    "value", ["9731", "host:", ":80", "host:99999", "host:http", "::1:80", "[::1:80", "::1]:80", "[nope]:80"]
)
def test_bad_listen(value: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen(value)
