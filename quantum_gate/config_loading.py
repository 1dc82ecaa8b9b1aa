"""Loading the settings: defaults < YAML file < ``QUANTUM_GATE_*`` environment < command-line flags.

``load_settings`` merges the four into one frozen ``config.Settings``; unknown keys and bad values are
refused with one line naming the key (``ConfigError``). Files are read bounded (``read_small_text_file``:
a FIFO or a device is refused). The Redis password comes from the URL, a file, or the systemd
credential ``redis-password`` (``resolve_redis_password``), never from the settings model.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from quantum_gate.config import ConfigError, Settings

ENV_PREFIX = "QUANTUM_GATE_"
# Environment variables with the prefix that are not settings keys.
ENV_NOT_SETTINGS = frozenset(
    {"QUANTUM_GATE_CONFIG", "QUANTUM_GATE_REDIS_PASSWORD", "QUANTUM_GATE_REDIS_SENTINEL_PASSWORD"}
)
CREDENTIAL_NAME = "redis-password"
# A settings file or a password file larger than this is not one: refuse it rather than read it all.
MAX_CONFIG_BYTES = 1_048_576
MAX_PASSWORD_BYTES = 65_536


def load_settings(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the one settings object. ``overrides`` are dotted keys from flags (``gate.min_events``)."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = _read_yaml(path) if path else {}
    for dotted, value in _environment_overrides(environ).items():
        _set_dotted(data, dotted, value)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(data, dotted, value)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None


def read_small_text_file(path: Path, what: str, max_bytes: int) -> str:
    """A regular file of at most ``max_bytes`` bytes of UTF-8, or a ConfigError that names ``what`` and
    the path and never shows the content. A FIFO or a device is refused before it is read: opening a
    FIFO blocks until a writer comes, and /dev/zero never ends."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"{what} {path}: {exc.strerror or exc}") from None
    try:
        status = os.fstat(descriptor)
        if stat.S_ISDIR(status.st_mode):
            raise ConfigError(f"{what} {path}: is a directory, not a file")
        if not stat.S_ISREG(status.st_mode) and not _is_dev_null(status):
            raise ConfigError(f"{what} {path}: not a regular file")
        data = _read_at_most(descriptor, max_bytes + 1)
    except OSError as exc:
        raise ConfigError(f"{what} {path}: {exc.strerror or exc}") from None
    finally:
        os.close(descriptor)
    if len(data) > max_bytes:
        raise ConfigError(f"{what} {path}: larger than {max_bytes} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:  # the offset, never the bytes: they may be a secret
        raise ConfigError(f"{what} {path}: not UTF-8 text (invalid byte at offset {exc.start})") from None


def _is_dev_null(status: os.stat_result) -> bool:
    """``--config /dev/null`` is the usual way to say "no file": an empty file, not a device to refuse."""
    try:
        null = os.stat(os.devnull)
    except OSError:
        return False
    return stat.S_ISCHR(status.st_mode) and status.st_rdev == null.st_rdev


def _read_at_most(descriptor: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(descriptor, min(limit - size, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _read_yaml(path: Path) -> dict[str, Any]:
    text = read_small_text_file(path, "config file", MAX_CONFIG_BYTES)
    try:
        duplicate = _first_duplicate_key(yaml.compose(text, Loader=yaml.SafeLoader))
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {path}:{where} is not valid YAML") from None
    except RecursionError:
        raise ConfigError(f"config file {path}: nested too deeply to be a settings file") from None
    except ValueError as exc:  # a constructor's own error: 2026-13-45 as a date, a 5000-digit integer
        raise ConfigError(f"config file {path}: a value cannot be read ({_short(str(exc), 60)})") from None
    if duplicate is not None:
        key, line = duplicate
        raise ConfigError(
            f"config file {path}: line {line}: {key}: the key appears twice (which one was meant?)"
        )
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping of sections")
    return loaded


def _first_duplicate_key(node: yaml.Node | None) -> tuple[str, int] | None:
    """The first key a mapping repeats, dotted, with its line (PyYAML lets the last one win silently)."""
    seen_nodes: set[int] = set()  # aliases share nodes: each is walked once, also a recursive one
    pending: list[tuple[yaml.Node, tuple[str, ...]]] = [] if node is None else [(node, ())]
    while pending:
        current, path = pending.pop()
        if id(current) in seen_nodes:
            continue
        seen_nodes.add(id(current))
        if isinstance(current, yaml.SequenceNode):
            pending.extend((item, path) for item in current.value)
        if not isinstance(current, yaml.MappingNode):
            continue
        keys: set[tuple[str, str]] = set()
        for key_node, value_node in current.value:
            name = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            if isinstance(key_node, yaml.ScalarNode):
                if (key_node.tag, key_node.value) in keys:
                    return ".".join((*path, name)), key_node.start_mark.line + 1
                keys.add((key_node.tag, key_node.value))
            pending.append((value_node, (*path, name)))
    return None


def _environment_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    known = {
        f"{ENV_PREFIX}{section}_{key}".upper(): f"{section}.{key}"
        for section, model in Settings.model_fields.items()
        for key in model.annotation.model_fields  # type: ignore[union-attr]
    }
    found: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name in ENV_NOT_SETTINGS:
            continue
        dotted = known.get(name)
        if dotted is None:
            raise ConfigError(f"environment {name}: not a quantum-gate setting")
        found[dotted] = _env_value(name, raw)
    return found


def _env_value(name: str, raw: str) -> Any:
    """Scalars stay strings for pydantic to coerce; lists are written as YAML/JSON (``[a, b]``)."""
    if raw.lstrip().startswith("["):
        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"environment {name}: not a valid list") from None
    return raw


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    section, _, key = dotted.partition(".")
    target = data.setdefault(section, {})
    if not isinstance(target, dict):
        raise ConfigError(f"{section}: must be a mapping")
    target[key] = value


def _one_line(exc: ValidationError) -> str:
    error = exc.errors()[0]
    key = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    if not key:  # a rule across keys (Settings._coherent): its message names them
        return f"config: {message}{more}"
    given = error.get("input")
    shown = "" if isinstance(given, dict) or "url" in key else f" (got {_short(repr(given))})"
    return f"config: {key}: {message}{shown}{more}"


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def resolve_redis_password(settings: Settings, environ: Mapping[str, str] | None = None) -> str | None:
    """The password from, in order: the password file setting, the systemd credential
    ``redis-password`` (``$CREDENTIALS_DIRECTORY``), ``QUANTUM_GATE_REDIS_PASSWORD``; else None (the
    URL may still carry one). Never logged."""
    environ = os.environ if environ is None else environ
    candidates: list[Path] = []
    if settings.redis.password_file is not None:
        candidates.append(settings.redis.password_file)
    credentials = environ.get("CREDENTIALS_DIRECTORY")
    if credentials:
        candidates.append(Path(credentials) / CREDENTIAL_NAME)
    for index, candidate in enumerate(candidates):
        explicit = index == 0 and settings.redis.password_file is not None
        if not explicit and not candidate.exists():
            continue
        text = read_small_text_file(candidate, "redis.password_file", MAX_PASSWORD_BYTES)
        return text.rstrip("\r\n")
    return environ.get("QUANTUM_GATE_REDIS_PASSWORD") or None
