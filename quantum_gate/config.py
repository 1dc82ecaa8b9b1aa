"""The settings: one frozen pydantic ``Settings`` of sections, each key with its bounds and validators.

Unknown keys and bad values are refused (``config_loading`` turns the refusal into one ``ConfigError``
line naming the key). Built from defaults < YAML file < ``QUANTUM_GATE_*`` environment < command-line
flags by ``config_loading.load_settings``. The Redis password is never part of this model: it comes
from the URL, a file, or the systemd credential ``redis-password``
(``config_loading.resolve_redis_password``), and the URL is only ever shown redacted (``redact_url``).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from redis.connection import parse_url as redis_parse_url

# The smallest interval any *_seconds setting takes (docs/configuration.md): below it a "poll" or a
# "timeout" is a busy loop or an instant failure, never what an operator meant (1e-9 s was accepted).
MIN_SECONDS = 0.1
_DB_PATH_RE = re.compile(r"^/?(\d{1,9})?/?$")


class ConfigError(ValueError):
    """A configuration problem, said in one line that names the key."""


class _Section(BaseModel):
    # allow_inf_nan=False: .inf / .nan are YAML floats, and a threshold of nan or inf can never pass.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans(cls, value: Any, info: ValidationInfo) -> Any:
        """YAML reads true/yes/on as booleans and pydantic would take them as 1 (``min_events: true``).
        No setting is a boolean, so a boolean anywhere, also inside a list, is a mistake."""
        values = value if isinstance(value, list | tuple) else [value]
        if any(isinstance(item, bool) for item in values):
            raise ValueError(
                "true/false is not a value for this key (YAML reads yes/no/on/off as booleans; "
                "quote text, write numbers as numbers)"
            )
        return value


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
    socket_timeout_seconds: float = Field(10.0, ge=MIN_SECONDS, le=300)
    backoff_max_seconds: float = Field(10.0, ge=MIN_SECONDS, le=300)

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, value: str) -> str:
        """Refuse what redis-py would misread or raise on later. The messages never quote the URL."""
        from quantum_gate.connection import parse_redis_url, topology_of  # noqa: PLC0415 - it imports us

        if "#" in value:  # urlsplit ends the authority at '#': ":12345#tail@host" became port 12345
            raise ValueError("has a '#' (write '#' in a password as %23); the URL is not shown")
        if topology_of(value) != "direct":
            parse_redis_url(value)  # Sentinel and Cluster forms: ValueError names what is wrong
            return value
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - urllib validates the port lazily; redis-py would raise it later
        except ValueError:
            raise ValueError("the port must be a number from 0 to 65535") from None
        if parts.scheme not in {"redis", "rediss", "unix"}:
            raise ValueError(
                "must start with redis://, rediss://, unix://, redis+sentinel://, rediss+sentinel://, "
                "redis+cluster:// or rediss+cluster://"
            )
        if parts.scheme != "unix" and not _DB_PATH_RE.match(parts.path):
            # redis-py silently uses db 0 for /abc (and db 12 for /1/2)
            raise ValueError("the database after the host must be a number (redis://host:6379/0)")
        try:  # ?db=abc, ?socket_timeout=x: redis-py raises these only when it connects
            redis_parse_url(value)  # type: ignore[no-untyped-call]
        except ValueError as exc:
            raise ValueError(str(exc).split(" in connection URL")[0].lower() + " in the URL") from None
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
    poll_seconds: float = Field(5.0, ge=MIN_SECONDS, le=3600)
    timeout_seconds: float = Field(5.0, ge=MIN_SECONDS, le=120)

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
    rate_horizon_seconds: float = Field(600.0, ge=1, le=86_400)
    # No effect since the rate is counted from the windows (pipeline.rate_from_windows); accepted so
    # configuration files that set it still load.
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
    min_events: int = Field(200, ge=1, le=10_000_000)
    min_samples: int = Field(200, ge=1, le=10_000_000)
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
    interval_seconds: float = Field(15.0, ge=MIN_SECONDS, le=3600)
    report_dir: Path = Path("reports")
    on_gate_complete: tuple[str, ...] = ()
    on_gate_complete_timeout_seconds: float = Field(60.0, ge=MIN_SECONDS, le=3600)
    stale_after_seconds: float | None = Field(None, ge=1)
    shutdown_timeout_seconds: float = Field(4.0, ge=MIN_SECONDS, le=60)
    # Report retention (the daemon's own report_dir): the newest `reports_keep` pairs are kept, and
    # pairs older than `reports_max_age_days` are removed; a flapping cutover writes one per change.
    reports_keep: int = Field(200, ge=1, le=1_000_000)
    reports_max_age_days: float | None = Field(90.0, gt=0, le=36_500)

    @field_validator("listen")
    @classmethod
    def _listen_form(cls, value: str) -> str:
        parse_listen(value)
        return value

    def staleness_limit(self) -> float:
        """When /healthz calls the last evaluation stale: three missed ticks plus slack by default."""
        return self.stale_after_seconds or self.interval_seconds * 3 + 30


class HttpSettings(_Section):
    """The listener's protection: the web configuration file (TLS, basic auth, headers) and the limits
    that keep hostile or slow clients from holding it (docs/security.md)."""

    web_config_file: Path | None = None
    workers: int = Field(8, ge=1, le=256)
    max_connections: int = Field(512, ge=8, le=65_536)
    request_timeout_seconds: float = Field(5.0, gt=0, le=300)
    write_timeout_seconds: float = Field(10.0, gt=0, le=300)
    max_request_line_bytes: int = Field(8192, ge=256, le=65_536)
    max_header_bytes: int = Field(16_384, ge=1024, le=1_048_576)
    max_body_bytes: int = Field(1_048_576, ge=0, le=1_048_576)  # the handler refuses more anyway
    auth_cache_seconds: float = Field(60.0, ge=0, le=3600)


class AlertSettings(_Section):
    low_rate_per_minute: float = Field(2.0, ge=0)
    stall_seconds: float = Field(900.0, ge=1)


class ReportSettings(_Section):
    top_symbols: int = Field(20, ge=1, le=1000)
    histogram_bins: int = Field(20, ge=2, le=200)
    deployment_info: tuple[str, ...] = ()
    deployment_info_timeout_seconds: float = Field(10.0, ge=MIN_SECONDS, le=300)
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
    http: HttpSettings = HttpSettings()
    alerts: AlertSettings = AlertSettings()
    report: ReportSettings = ReportSettings()
    ledger: LedgerSettings = LedgerSettings()

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        """Settings under which the gate could never PASS are refused at start, not discovered later."""
        post = self.windows.post
        if self.gate.min_events > post:
            raise ValueError(f"gate.min_events ({self.gate.min_events}) exceeds windows.post ({post})")
        if self.gate.min_samples > post:  # a model votes at most once per event in the window
            raise ValueError(f"gate.min_samples ({self.gate.min_samples}) exceeds windows.post ({post})")
        return self


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT``; an IPv6 address in brackets (``[::1]:9731``). The host comes back unbracketed."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be HOST:PORT")
    if host.startswith("[") or host.endswith("]") or ":" in host:
        inner = host.removeprefix("[").removesuffix("]")
        if not (host.startswith("[") and host.endswith("]")):
            raise ValueError("must be HOST:PORT, with an IPv6 address in brackets ([::1]:9731)")
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            raise ValueError("must be HOST:PORT; the part in brackets must be an IPv6 address") from None
        return inner, int(port)
    return host, int(port)


def redact_url(url: str) -> str:
    """The URL as it may be shown: user:password@ becomes ***@, and the value of every query
    parameter that can carry a secret (redis-py passes ``?password=``, ``?ssl_password=`` ... to the
    connection as keyword arguments) becomes ***. ``username`` and the other parameters stay."""
    scheme, sep, rest = url.partition("://")
    if sep and "#" in rest and "@" in rest:
        # urlsplit ends the authority at '#', so a password with '#' would show as a "fragment": hide
        # everything up to the last '@' instead (more than needed is fine; less never is).
        shown, asked, query = rest.rpartition("@")[2].partition("?")
        return f"{scheme}://***@{shown}" + (f"?{_redact_query(query)}" if asked else "")
    parts = urlsplit(url)
    query = _redact_query(parts.query)
    if parts.password is None and parts.username is None:
        netloc = parts.netloc
    else:
        host = parts.hostname or ""
        netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    if "://" not in url:
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    # by hand: urlunsplit drops the empty authority of unix:///path
    return (
        f"{parts.scheme}://{netloc}{parts.path}"
        + (f"?{query}" if query else "")
        + (f"#{parts.fragment}" if parts.fragment else "")
    )


# Query parameter names (case-insensitive substrings) whose values are secrets.
_SECRET_PARAMETERS = ("pass", "secret", "token", "credential", "auth")


def _redact_query(query: str) -> str:
    if not query:
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(_is_secret(name) for name, _ in pairs):
        return query
    return urlencode([(name, "***" if _is_secret(name) else value) for name, value in pairs], safe="*")


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_PARAMETERS)
