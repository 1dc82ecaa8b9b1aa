"""One frozen settings object: defaults < YAML file < ``QUANTUM_GATE_*`` environment < command-line flags.

Unknown keys and bad values are refused with one line naming the key (``ConfigError``). The Redis
password is never part of this model: it comes from the URL, a file, or the systemd credential
``redis-password`` (``resolve_redis_password``), and the URL is only ever shown redacted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ENV_PREFIX = "QUANTUM_GATE_"
# Environment variables with the prefix that are not settings keys.
ENV_NOT_SETTINGS = frozenset(
    {"QUANTUM_GATE_CONFIG", "QUANTUM_GATE_REDIS_PASSWORD", "QUANTUM_GATE_REDIS_SENTINEL_PASSWORD"}
)
CREDENTIAL_NAME = "redis-password"


class ConfigError(ValueError):
    """A configuration problem, said in one line that names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RedisSettings(_Section):
    url: str = Field("redis://127.0.0.1:6379/0", repr=False)
    stream: str = Field("quantum:stream:trade.intent", min_length=1)
    password_file: Path | None = None
    # CA bundle that signs the server's certificate for rediss:// (default: the system trust store).
    tls_ca_file: Path | None = None
    # The sentinels' own ACL user and password file (redis+sentinel:// only; docs/redis.md).
    sentinel_username: str | None = None
    sentinel_password_file: Path | None = None
    page_size: int = Field(1000, ge=1, le=1000)
    read_count: int = Field(1000, ge=1, le=10_000)
    block_ms: int = Field(1000, ge=1, le=60_000)
    socket_timeout_seconds: float = Field(10.0, gt=0, le=300)
    backoff_max_seconds: float = Field(10.0, gt=0, le=300)

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, value: str) -> str:
        from quantum_gate.connection import parse_redis_url, topology_of  # noqa: PLC0415 - it imports us

        if topology_of(value) != "direct":
            parse_redis_url(value)  # Sentinel and Cluster forms: ValueError names what is wrong
            return value
        parts = urlsplit(value)
        if parts.scheme not in {"redis", "rediss", "unix"}:
            raise ValueError(
                "must start with redis://, rediss://, unix://, redis+sentinel://, rediss+sentinel://, "
                "redis+cluster:// or rediss+cluster://"
            )
        try:
            parts.port  # noqa: B018 - urllib validates the port lazily; redis-py would raise it later
        except ValueError:
            raise ValueError("the port must be a number from 0 to 65535") from None
        return value

    def redacted_url(self) -> str:
        from quantum_gate.connection import redact_multi_host, topology_of  # noqa: PLC0415 - it imports us

        if topology_of(self.url) != "direct":  # several hosts: urlsplit cannot read their ports
            return redact_multi_host(self.url)
        return redact_url(self.url)


# Names that go into a docker/kubectl argv: never one that starts with "-" (it would read as a flag).
_CONTAINER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
_DEPLOYMENT_RE = re.compile(r"^(?:[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?/)?[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?$")


class CutoverSettings(_Section):
    # systemd (the unit's last start), docker (a container's start), kubernetes (a Deployment's
    # rollout) or fixed (``after``); a set ``after`` always wins, as it did before sources existed.
    source: Literal["systemd", "docker", "kubernetes", "fixed"] = "systemd"
    unit: str = Field("quantum-ai-engine.service", min_length=1)
    after: str | None = None
    systemctl: str = "systemctl"
    container: str = "quantum-ai-engine"
    docker: str = "docker"
    docker_host: str | None = None  # docker -H: unix:///var/run/docker.sock, tcp://..., ssh://...
    deployment: str = "quantum-trader/ai-engine"  # [NAMESPACE/]NAME
    kubectl: str = "kubectl"
    poll_seconds: float = Field(5.0, gt=0, le=3600)
    timeout_seconds: float = Field(5.0, gt=0, le=120)

    @field_validator("container")
    @classmethod
    def _container_name(cls, value: str) -> str:
        if not _CONTAINER_RE.match(value):
            raise ValueError("must be a container name or ID (letters, digits, _ . -; not starting with -)")
        return value

    @field_validator("deployment")
    @classmethod
    def _deployment_name(cls, value: str) -> str:
        if not _DEPLOYMENT_RE.match(value):
            raise ValueError("must be [NAMESPACE/]NAME in Kubernetes' lower-case DNS form")
        return value

    @model_validator(mode="after")
    def _fixed_needs_after(self) -> Self:
        if self.source == "fixed" and not self.after:
            raise ValueError("cutover.source fixed needs cutover.after")
        return self

    def effective_source(self) -> str:
        return "fixed" if self.after else self.source


class WindowSettings(_Section):
    post: int = Field(2000, ge=1, le=10_000_000)
    baseline: int = Field(2000, ge=1, le=10_000_000)
    rate_horizon_seconds: float = Field(600.0, gt=0, le=86_400)
    rate_max_events: int = Field(100_000, ge=10, le=10_000_000)
    parallel_min_events: int = Field(20_000, ge=0, le=10_000_000)


class ContractSettings(_Section):
    max_models: int = Field(32, ge=1, le=1000)
    max_key_length: int = Field(64, ge=1, le=1024)
    max_payload_bytes: int = Field(1_048_576, ge=1024, le=64 * 1_048_576)
    max_actions: int = Field(16, ge=4, le=127)
    max_variants: int = Field(64, ge=1, le=127)
    max_symbols: int = Field(1024, ge=1, le=32_767)


class GateSettings(_Section):
    min_events: int = Field(200, ge=1)
    min_samples: int = Field(200, ge=1)
    majority_max: float = Field(0.70, gt=0, le=1)
    hold_max: float = Field(0.85, gt=0, le=1)
    std_min: float = Field(0.05, ge=0)
    p10_p90_min: float = Field(0.12, ge=0)
    constant_std_min: float = Field(0.01, ge=0)
    constant_width_min: float = Field(0.001, ge=0)
    out_of_range_max: float = Field(0.0, ge=0, le=1)
    invalid_votes_max: float = Field(0.0, ge=0, le=1)
    suspect_constants: tuple[float, ...] = (0.5, 0.65, 0.68, 0.72, 0.75)
    include_models: tuple[str, ...] = ()
    exclude_models: tuple[str, ...] = ()
    # A model rare after the cutover (fewer than min_samples votes, under this share of the events) and
    # before it is reported as sporadic and not gated (gate.is_sporadic).
    sporadic_share: float = Field(0.05, ge=0, le=1)

    def gates(self, model: str) -> bool:
        if model in self.exclude_models:
            return False
        return not self.include_models or model in self.include_models


class DaemonSettings(_Section):
    listen: str = "127.0.0.1:9731"
    interval_seconds: float = Field(15.0, gt=0, le=3600)
    report_dir: Path = Path("reports")
    on_gate_complete: tuple[str, ...] = ()
    on_gate_complete_timeout_seconds: float = Field(60.0, gt=0, le=3600)
    stale_after_seconds: float | None = Field(None, gt=0)
    shutdown_timeout_seconds: float = Field(4.0, gt=0, le=60)

    @field_validator("listen")
    @classmethod
    def _listen_form(cls, value: str) -> str:
        parse_listen(value)
        return value

    def staleness_limit(self) -> float:
        """When /healthz calls the last evaluation stale: three missed ticks plus slack by default."""
        return self.stale_after_seconds or self.interval_seconds * 3 + 30


class AlertSettings(_Section):
    low_rate_per_minute: float = Field(2.0, ge=0)
    stall_seconds: float = Field(900.0, gt=0)


class ReportSettings(_Section):
    top_symbols: int = Field(20, ge=1, le=1000)
    histogram_bins: int = Field(20, ge=2, le=200)
    deployment_info: tuple[str, ...] = ()
    deployment_info_timeout_seconds: float = Field(10.0, gt=0, le=300)
    deployment_info_max_bytes: int = Field(4096, ge=64, le=1_048_576)
    notes: str = ""


class LedgerSettings(_Section):
    # None: $STATE_DIRECTORY/ledger.sqlite3 under systemd's StateDirectory=, else no ledger (docs/ledger.md)
    path: Path | None = None
    max_rows: int = Field(1000, ge=1, le=1_000_000)
    max_age_days: float = Field(365.0, gt=0, le=36_500)


class Settings(_Section):
    redis: RedisSettings = RedisSettings()
    cutover: CutoverSettings = CutoverSettings()
    windows: WindowSettings = WindowSettings()
    contract: ContractSettings = ContractSettings()
    gate: GateSettings = GateSettings()
    daemon: DaemonSettings = DaemonSettings()
    alerts: AlertSettings = AlertSettings()
    report: ReportSettings = ReportSettings()
    ledger: LedgerSettings = LedgerSettings()

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.gate.min_events > self.windows.post:
            raise ValueError(
                f"gate.min_events ({self.gate.min_events}) exceeds windows.post ({self.windows.post})"
            )
        return self


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be HOST:PORT")
    return host.strip("[]"), int(port)


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


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


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror or exc}") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {path}:{where} is not valid YAML") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping of sections")
    return loaded


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
    shown = "" if isinstance(given, dict) or "url" in key else f" (got {given!r})"
    return f"config: {key}: {message}{shown}{more}"


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
        try:
            return candidate.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"redis.password_file {candidate}: {exc.strerror or exc}") from None
    return environ.get("QUANTUM_GATE_REDIS_PASSWORD") or None
