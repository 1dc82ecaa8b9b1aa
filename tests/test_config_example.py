"""config.example.yaml documents every setting with its default, and the reference docs keep up with
the code: every key in docs/configuration.md, every exported metric in docs/metrics.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from conftest import REPO, RedisServer
from daemonkit import make_settings, tailing, write_atomically
from eventkit import healthy_entries

from quantum_gate.config import Settings
from quantum_gate.config_loading import ENV_PREFIX, load_settings
from quantum_gate.connection import connect
from quantum_gate.daemon import Daemon
from quantum_gate.exporter import make_registry

EXAMPLE = REPO / "config.example.yaml"


def settings_keys() -> list[tuple[str, str]]:
    return [
        (section, key)
        for section, field in Settings.model_fields.items()
        for key in field.annotation.model_fields  # type: ignore[union-attr]
    ]


def test_the_example_loads_and_equals_the_defaults() -> None:
    assert load_settings(EXAMPLE, environ={}) == Settings()


def test_the_example_lists_every_key_with_a_comment() -> None:
    loaded: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    listed = [(section, key) for section, values in loaded.items() for key in values]
    assert sorted(listed) == sorted(settings_keys())
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^  [a-z_0-9]+:", line):
            assert lines[index - 1].lstrip().startswith("# "), f"no comment above {line.strip()!r}"


def test_the_example_holds_no_password() -> None:
    loaded = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert "@" not in loaded["redis"]["url"]


def test_configuration_doc_names_every_key_and_its_environment_variable() -> None:
    text = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    for section, key in settings_keys():
        assert f"`{key}`" in text, f"{section}.{key} is not documented"
        assert f"`{ENV_PREFIX}{section.upper()}_{key.upper()}`" in text


def test_metrics_doc_lists_every_exported_family(
    redis_server: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    """Scrape a daemon whose every conditional family is present and compare with the doc."""
    client = redis_server.admin()
    write_atomically(client, stream_key, healthy_entries(40, 1_000_000, 1000))
    settings = make_settings(redis_server.url, stream_key, tmp_path, {"cutover": {"after": "1020000-0"}})
    daemon = Daemon(settings)
    with tailing(daemon):
        daemon.ingestor.watch.observe(connect(settings))  # the XINFO reading the tail takes every 5 s, now
        daemon.evaluator.tick()
        with daemon.windows.lock:  # a source that failed once and answers now: both families present
            daemon.tracker.systemd_up = True
            daemon.tracker.systemd_errors["no_bus"] += 1
        names: set[str] = set()
        for family in make_registry(daemon.snapshot).collect():
            names.update(sample.name for sample in family.samples)
    documented = set(re.findall(r"`(quantum_gate_[a-z0-9_]+)`", (REPO / "docs" / "metrics.md").read_text()))
    runtime = {name for name in names if not name.startswith("quantum_gate_")}  # the process's own
    missing = sorted(names - runtime - documented)
    assert missing == [], f"exported but not in docs/metrics.md: {missing}"
    assert "process_resident_memory_bytes" in runtime and "python_info" in runtime
    assert "`process_resident_memory_bytes`" in (REPO / "docs" / "metrics.md").read_text()
    assert {"quantum_gate_verdict", "quantum_gate_systemd_up", "quantum_gate_retention_risk"} <= names
