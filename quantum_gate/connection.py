"""Every Redis connection form in one place: a plain address, Sentinel, or a Redis Cluster.

``parse_redis_url`` is pure: it turns ``redis.url`` into a ``RedisTarget`` or raises ``ValueError`` with
one line that names the problem (never the password). ``open_client`` builds the client and says which
endpoint it reached (``Endpoint``: role and address, for ``quantum_gate_redis_endpoint_info``).

Forms (docs/redis.md):

* ``redis://``, ``rediss://``, ``unix://``: redis-py's own ``from_url``, unchanged.
* ``redis+sentinel://[user:pass@]host:port[,host:port...]/<master>[/<db>][?read_from=replica]``
  (``rediss+sentinel://`` for TLS): the sentinels are asked (``SENTINEL MASTERS`` / ``SENTINEL
  REPLICAS``, read-only) where the master, or a live replica, is; the client then connects to that one
  address directly. Nothing else talks to the master when a replica is read. ``user:pass`` are the
  data node's; the sentinels' own credentials are ``redis.sentinel_username`` and the sentinel password
  (``resolve_sentinel_password``).
* ``redis+cluster://[user:pass@]host:port[,host:port...]`` (``rediss+cluster://`` for TLS): any
  reachable nodes as seeds; redis-py's ``RedisCluster`` reads the slot map (``CLUSTER SLOTS``) and
  follows ``MOVED``/``ASK``, so the stream is read from whichever node owns its slot.

Why the Sentinel client connects to one discovered address rather than using ``master_for``: the daemon
must know exactly which node it reads (the endpoint metric, the failover counter, the rollback check on
every reconnect), and a pool that may rotate between replicas or silently fall back to the master per
connection could not say so. Every reconnect asks the sentinels again.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import parse_qsl, unquote

import redis
from redis.cluster import ClusterNode
from redis.sentinel import MasterNotFoundError, Sentinel

from quantum_gate.config_loading import MAX_PASSWORD_BYTES, read_small_text_file, resolve_redis_password

if TYPE_CHECKING:
    from quantum_gate.config import Settings

Topology = Literal["direct", "sentinel", "cluster"]
PLAIN_SCHEMES = frozenset({"redis", "rediss", "unix"})
SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}  # scheme -> TLS
CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}
DEFAULT_PORTS: dict[Topology, int] = {"direct": 6379, "sentinel": 26379, "cluster": 6379}
SENTINEL_CREDENTIAL = "redis-sentinel-password"
SENTINEL_PASSWORD_ENV = "QUANTUM_GATE_REDIS_SENTINEL_PASSWORD"  # noqa: S105 - a variable name
MAX_HOSTS = 16  # seeds or sentinels; more is a typo, not a topology


@dataclass(frozen=True)
class RedisTarget:
    """What ``redis.url`` names. ``hosts`` are the sentinels (Sentinel) or the seed nodes (Cluster)."""

    topology: Topology
    tls: bool = False
    hosts: tuple[tuple[str, int], ...] = ()
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    master_name: str | None = None
    db: int = 0
    read_from: Literal["master", "replica"] = "master"


@dataclass(frozen=True)
class Endpoint:
    """The node a client reads: ``role`` is master or replica (what Sentinel or the slot map said),
    or ``direct`` for a plain URL, whose role quantum-gate does not ask (that would need ``ROLE`` or
    ``INFO``, outside ``+@read +@connection``). ``fallback`` is True when a replica was asked for and
    none was up, so the master is read."""

    topology: Topology
    role: str
    address: str
    fallback: bool = False


def topology_of(url: str) -> Topology:
    scheme = url.partition("://")[0].lower()
    if scheme in SENTINEL_SCHEMES:
        return "sentinel"
    if scheme in CLUSTER_SCHEMES:
        return "cluster"
    return "direct"


def parse_redis_url(url: str) -> RedisTarget:
    """The target of ``url``; ``ValueError`` with one line (never the password) when it is not valid."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or (
        scheme not in PLAIN_SCHEMES and scheme not in SENTINEL_SCHEMES and scheme not in CLUSTER_SCHEMES
    ):
        raise ValueError(
            "must start with redis://, rediss://, unix://, redis+sentinel://, rediss+sentinel://, "
            "redis+cluster:// or rediss+cluster://"
        )
    if scheme in PLAIN_SCHEMES:
        return RedisTarget(topology="direct", tls=scheme == "rediss")
    topology: Topology = "sentinel" if scheme in SENTINEL_SCHEMES else "cluster"
    tls = SENTINEL_SCHEMES.get(scheme, False) or CLUSTER_SCHEMES.get(scheme, False)
    _refuse_delimiter_in_credentials(rest)
    rest, _, fragment = rest.partition("#")
    if fragment:
        raise ValueError("a #fragment has no meaning in a Redis URL")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, at, hostlist = netloc.rpartition("@")
    username, password = _credentials(userinfo) if at else (None, None)
    hosts = _hosts(hostlist, DEFAULT_PORTS[topology])
    options = _options(query, topology)
    if topology == "cluster":
        if path.strip("/") not in {"", "0"}:
            raise ValueError("a Redis Cluster has only database 0: nothing may follow the hosts but /0")
        return RedisTarget("cluster", tls, hosts, username, password)
    master_name, db = _master_and_db(path)
    return RedisTarget("sentinel", tls, hosts, username, password, master_name, db, options)


def _refuse_delimiter_in_credentials(rest: str) -> None:
    """The host list ends at the first '/', '?' or '#'; an '@' after it means a user name or password
    holds one of them unencoded. Said without any part of the URL: the rest of the password would
    otherwise be shown as a host, a parameter or a path in the error."""
    ends = [found for found in (rest.find(mark) for mark in "/?#") if found >= 0]
    if "@" in rest[min(ends, default=len(rest)) :]:
        raise ValueError(
            "an '@' after the host list: percent-encode '/', '?' and '#' in the user name or password "
            "(%2F, %3F, %23); the credentials are not shown"
        )


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    user, colon, secret = userinfo.partition(":")
    if not colon:  # redis-py's reading of redis://secret@host: a lone value is the password
        return None, unquote(user) or None
    return unquote(user) or None, unquote(secret) or None


def _hosts(hostlist: str, default_port: int) -> tuple[tuple[str, int], ...]:
    if not hostlist:
        raise ValueError("no host: give at least one host:port before the path")
    found: list[tuple[str, int]] = []
    for raw in hostlist.split(","):
        item = raw.strip()
        if not item:
            raise ValueError("an empty host in the comma-separated list")
        if item.startswith("["):  # [IPv6]:port
            host, bracket, tail = item[1:].partition("]")
            if not bracket or (tail and not tail.startswith(":")):
                raise ValueError(f"host {item!r}: an IPv6 address is written [address]:port")
            port_text = tail[1:]
        else:
            host, _, port_text = item.partition(":")
        if not host:
            raise ValueError(f"host {item!r}: no host name")
        port = default_port
        if port_text:
            if not port_text.isdigit() or not 0 < int(port_text) <= 65535:
                raise ValueError(f"host {item!r}: the port must be a number from 1 to 65535")
            port = int(port_text)
        found.append((host, port))
    if len(found) > MAX_HOSTS:
        raise ValueError(f"{len(found)} hosts: at most {MAX_HOSTS}")
    return tuple(found)


def _options(query: str, topology: Topology) -> Literal["master", "replica"]:
    read_from: Literal["master", "replica"] = "master"
    for name, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if name != "read_from":
            shown = "" if "password" in name.lower() else f" {name!r}"
            raise ValueError(f"unknown URL parameter{shown} (only read_from=master|replica is known)")
        if topology != "sentinel":
            raise ValueError("read_from is for redis+sentinel:// only")
        if value not in {"master", "replica"}:
            raise ValueError(f"read_from must be master or replica, not {value!r}")
        read_from = cast(Literal["master", "replica"], value)
    return read_from


def _master_and_db(path: str) -> tuple[str, int]:
    parts = [unquote(part) for part in path.split("/")] if path else []
    if parts and parts[-1] == "":
        parts.pop()  # one trailing slash
    if not parts or not parts[0]:
        raise ValueError("no master name: redis+sentinel://host:port[,host:port...]/<master-name>[/<db>]")
    if len(parts) > 2:
        raise ValueError("too many path parts: /<master-name>[/<db>]")
    db = 0
    if len(parts) == 2:
        if not (parts[1].isascii() and parts[1].isdigit()):  # isdigit alone accepts '²', which int() refuses
            raise ValueError(f"the database must be a number, not {parts[1]!r}")
        db = int(parts[1])
    return parts[0], db


def redact_multi_host(url: str) -> str:
    """``scheme://***@hosts/path`` for the Sentinel and Cluster forms: the user name goes too (it is
    half of a credential), and so does any query value of a parameter whose name mentions a password."""
    scheme, _, rest = url.partition("://")
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    _userinfo, at, hostlist = netloc.rpartition("@")
    shown = f"{scheme}://" + ("***@" if at else "") + hostlist + slash + path
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        shown += "?" + "&".join(f"{k}={'***' if 'password' in k.lower() else v}" for k, v in pairs)
    return shown


# ---- building clients (I/O) ---------------------------------------------------------------------------


def resolve_sentinel_password(settings: Settings, environ: Mapping[str, str] | None = None) -> str | None:
    """The sentinels' own password: ``redis.sentinel_password_file``, else the systemd credential
    ``redis-sentinel-password``, else ``QUANTUM_GATE_REDIS_SENTINEL_PASSWORD``; else None. Never logged."""
    environ = os.environ if environ is None else environ
    explicit = settings.redis.sentinel_password_file
    candidates: list[tuple[Path, bool]] = [(explicit, True)] if explicit is not None else []
    credentials = environ.get("CREDENTIALS_DIRECTORY")
    if credentials:
        candidates.append((Path(credentials) / SENTINEL_CREDENTIAL, False))
    for candidate, required in candidates:
        if not required and not candidate.exists():
            continue
        # a regular file of UTF-8, or one line naming the path (never the bytes, never a hang on a FIFO)
        text = read_small_text_file(candidate, "redis.sentinel_password_file", MAX_PASSWORD_BYTES)
        return text.rstrip("\r\n")
    return environ.get(SENTINEL_PASSWORD_ENV) or None


def node_kwargs(settings: Settings, target: RedisTarget, password: str | None) -> dict[str, Any]:
    """Socket, TLS and auth arguments for a data node (Sentinel's discovered node, or Cluster nodes)."""
    # XREAD BLOCK must not outlive the socket timeout, or every idle block would look like an outage.
    timeout = max(settings.redis.socket_timeout_seconds, settings.redis.block_ms / 1000 + 5)
    kwargs: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": settings.redis.socket_timeout_seconds,
    }
    return kwargs | _auth_kwargs(target.username, password, target.tls, settings.redis.tls_ca_file)


def _auth_kwargs(
    username: str | None, password: str | None, tls: bool, ca_file: Path | None
) -> dict[str, Any]:
    """redis-py's keyword arguments for a user, a password and TLS: each only when it is set."""
    kwargs: dict[str, Any] = {}
    if username is not None:
        kwargs["username"] = username
    if password is not None:
        kwargs["password"] = password
    if tls:
        kwargs["ssl"] = True
        if ca_file is not None:
            kwargs["ssl_ca_certs"] = str(ca_file)
    return kwargs


def sentinel_kwargs(settings: Settings, target: RedisTarget) -> dict[str, Any]:
    """How to talk to the sentinels: their own user and password, TLS as the scheme says."""
    kwargs: dict[str, Any] = {
        "socket_timeout": settings.redis.socket_timeout_seconds,
        "socket_connect_timeout": settings.redis.socket_timeout_seconds,
    }
    password = resolve_sentinel_password(settings)
    return kwargs | _auth_kwargs(
        settings.redis.sentinel_username, password, target.tls, settings.redis.tls_ca_file
    )


def open_client(settings: Settings) -> tuple[redis.Redis, Endpoint]:
    """A client for ``redis.url`` and the endpoint it reads. The data node's password comes from the
    URL, else from ``resolve_redis_password`` (file, credential, environment)."""
    target = parse_redis_url(settings.redis.url)
    if target.topology == "direct":
        return _direct_client(settings)
    # As redis-py's from_url does for the plain forms: a password in the URL wins.
    password = target.password or resolve_redis_password(settings)
    if target.topology == "sentinel":
        return _sentinel_client(settings, target, password)
    return _cluster_client(settings, target, password)


def _direct_client(settings: Settings) -> tuple[redis.Redis, Endpoint]:
    """redis://, rediss://, unix://: exactly as before this module existed."""
    password = resolve_redis_password(settings)
    # XREAD BLOCK must not outlive the socket timeout, or every idle block would look like an outage.
    timeout = max(settings.redis.socket_timeout_seconds, settings.redis.block_ms / 1000 + 5)
    kwargs: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": settings.redis.socket_timeout_seconds,
        "decode_responses": False,
    }
    if password is not None:
        kwargs["password"] = password
    if settings.redis.tls_ca_file is not None and settings.redis.url.startswith("rediss://"):
        kwargs["ssl_ca_certs"] = str(settings.redis.tls_ca_file)
    client = redis.Redis.from_url(settings.redis.url, **kwargs)
    options = client.connection_pool.connection_kwargs
    where = options.get("path") or _address(str(options.get("host")), str(options.get("port")))
    return client, Endpoint("direct", "direct", str(where))


def connect(settings: Settings) -> redis.Redis:
    """A client for the configured URL (any form); the one-shot commands need no endpoint."""
    return open_client(settings)[0]


def _sentinel_client(
    settings: Settings, target: RedisTarget, password: str | None
) -> tuple[redis.Redis, Endpoint]:
    assert target.master_name is not None  # parse_redis_url requires it for this form
    sentinel = Sentinel(list(target.hosts), sentinel_kwargs=sentinel_kwargs(settings, target))
    try:
        host, port, role, fallback = _discover(sentinel, target.master_name, target.read_from)
    finally:
        sentinel.close()
    client = redis.Redis(
        host=host, port=port, db=target.db, decode_responses=False, **node_kwargs(settings, target, password)
    )
    return client, Endpoint("sentinel", role, _address(host, port), fallback)


def _discover(sentinel: Sentinel, name: str, read_from: str) -> tuple[str, int, str, bool]:
    """(host, port, role, fell back to the master). ``MasterNotFoundError`` (a ConnectionError) while
    the sentinels agree on no master, e.g. in the seconds between a master's death and the failover."""
    if read_from == "replica":
        replicas = sentinel.discover_slaves(name)
        if replicas:
            host, port = replicas[0]
            return str(host), int(port), "replica", False
    try:
        host, port = sentinel.discover_master(name)
    except MasterNotFoundError:  # its text is the repr of redis-py's internal client: say what it means
        asked = ",".join(_address(str(h), int(p)) for h, p in _sentinel_hosts(sentinel))
        raise MasterNotFoundError(
            f"no sentinel at {asked} names a master {name!r} (sentinels down, a failover under way, "
            "or the wrong master name)"
        ) from None
    return str(host), int(port), "master", read_from == "replica"


def _sentinel_hosts(sentinel: Sentinel) -> list[tuple[str, int]]:
    kwargs = (client.connection_pool.connection_kwargs for client in sentinel.sentinels)
    return [(str(found.get("host")), int(found.get("port", 0))) for found in kwargs]


def sentinel_endpoint_current(settings: Settings, endpoint: Endpoint) -> bool:
    """Whether the sentinels still name ``endpoint`` (the master it was, or a live replica); a demoted
    master keeps answering reads, so without this the daemon would not notice a graceful failover.

    Only a positive answer naming another node says no: when the sentinels cannot be asked (all down,
    or no master agreed on mid-failover), a node that still answers is kept, not dropped blind."""
    target = parse_redis_url(settings.redis.url)
    if target.topology != "sentinel" or target.master_name is None:
        return True
    sentinel = Sentinel(list(target.hosts), sentinel_kwargs=sentinel_kwargs(settings, target))
    try:
        try:
            master = _address(*(str(part) for part in sentinel.discover_master(target.master_name)))
        except (redis.ConnectionError, redis.TimeoutError):
            return True
        if endpoint.role == "replica":
            alive = {_address(str(h), int(p)) for h, p in sentinel.discover_slaves(target.master_name)}
            return endpoint.address in alive
        if master != endpoint.address:
            return False
        # Reading the master because no replica was up: move as soon as one is.
        return not (endpoint.fallback and sentinel.discover_slaves(target.master_name))
    finally:
        sentinel.close()


def _cluster_client(
    settings: Settings, target: RedisTarget, password: str | None
) -> tuple[redis.Redis, Endpoint]:
    nodes = [ClusterNode(host, port) for host, port in target.hosts]  # type: ignore[no-untyped-call]
    try:
        cluster = redis.RedisCluster(
            startup_nodes=nodes, decode_responses=False, **node_kwargs(settings, target, password)
        )
    except redis.exceptions.RedisClusterException as exc:  # not a RedisError: say it in one line as one
        raise redis.ConnectionError(f"cluster: {str(exc).splitlines()[0][:300]}") from None
    endpoint = cluster_endpoint(cluster, settings.redis.stream)
    # RedisCluster is not a redis.Redis subclass, but it has every command the product sends
    # (XREVRANGE, XREAD, XINFO STREAM, PING, CLOSE) with the same signatures; the read-ahead path in
    # stream.py checks isinstance(client, redis.Redis) and so uses the plain path for it.
    return cast(redis.Redis, cluster), endpoint


def cluster_endpoint(client: Any, key: str) -> Endpoint:
    """The node that owns ``key``'s slot, from the client's slot map (no command is sent)."""
    node = client.get_node_from_key(key)
    return Endpoint("cluster", "master", _address(str(node.host), int(node.port)))


def _address(host: str, port: int | str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
