"""Settings: defaults < YAML < environment < flags; bad values refused in one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantum_gate.config import (
    ConfigError,
    Settings,
    load_settings,
    parse_listen,
    redact_url,
    resolve_redis_password,
)


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
        tmp_path, "gate:\n  majority_max: 0.6\n  hold_max: 0.8\n  min_events: 50\nwindows:\n  post: 100\n"
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
    ],
)
def test_bad_config_is_one_line_naming_the_key(tmp_path: Path, yaml_text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(write(tmp_path, yaml_text), environ={})
    assert "\n" not in str(caught.value)


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
    ("value", "parsed"), [("127.0.0.1:9731", ("127.0.0.1", 9731)), ("[::1]:80", ("::1", 80))]
)
def test_parse_listen(value: str, parsed: tuple[str, int]) -> None:
    assert parse_listen(value) == parsed


@pytest.mark.parametrize("value", ["9731", "host:", ":80", "host:99999", "host:http"])
def test_bad_listen(value: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen(value)
