"""The tail's Redis connection as the daemon sees it: which node it reads and whether that moved (a
failover, a Cluster slot moving), the replica's link, and whether Redis is up, in one line when not.

Only the tail thread calls it (every Redis command runs there); what it records is read under the
windows' lock.
"""

from __future__ import annotations

import threading

import redis
import structlog

from quantum_gate.config import Settings
from quantum_gate.connection import Endpoint, cluster_endpoint, sentinel_endpoint_current
from quantum_gate.failover import EndpointWatch, ReplicaStatus, replica_status
from quantum_gate.redis_state import describe_redis_error, is_wrong_type, key_type, wrong_type_message
from quantum_gate.streamids import StreamId

log = structlog.get_logger("quantum_gate")


class RedisLink:
    """Endpoint, failovers, replica link and the up/condition state of the tail's connection."""

    def __init__(self, settings: Settings, lock: threading.RLock) -> None:
        self.settings = settings
        self.lock = lock
        self.endpoints = EndpointWatch()  # the node read now; failovers seen (Sentinel)
        self.replica: ReplicaStatus | None = None
        self.up = False
        self.condition: str | None = None  # what is wrong with Redis, one line (None while up)
        self.stream_type: str | None = None  # TYPE of the stream key as last seen: stream, none, string...
        self.state_logged = False  # the first outcome is logged even when it is "down"

    def connected(self, endpoint: Endpoint) -> None:
        """After every (re)connection: note the node, and say so when it is another (a failover)."""
        with self.lock:
            previous = self.endpoints.connected(endpoint)
            if endpoint.role != "replica":
                self.replica = None
        if previous is not None:
            log.warning(
                "redis.failover",
                role=endpoint.role,
                address=endpoint.address,
                previous=previous.address,
                failovers=self.endpoints.failovers,
            )
        if endpoint.fallback:
            log.warning("redis.replica_fallback", address=endpoint.address, reason="no replica is up")

    def follows_sentinel(self) -> bool:
        endpoint = self.endpoints.endpoint
        return endpoint is not None and endpoint.topology == "sentinel"

    def check_endpoint(self, client: redis.Redis) -> None:
        """With Sentinel: reconnect when the sentinels name another node (a graceful failover leaves the
        old master readable); read the replica's link state from INFO replication (the replica only)."""
        endpoint = self.endpoints.endpoint
        if endpoint is not None and endpoint.topology == "cluster":  # the slot may have moved (resharding)
            moved = cluster_endpoint(client, self.settings.redis.stream)
            with self.lock:
                self.endpoints.endpoint = moved
            return
        if endpoint is None or endpoint.topology != "sentinel":
            return
        if not sentinel_endpoint_current(self.settings, endpoint):
            raise redis.ConnectionError(f"the sentinels no longer name {endpoint.address} ({endpoint.role})")
        if endpoint.role == "replica":
            status = replica_status(client.info("replication"))
            with self.lock:
                self.replica = status

    def condition_of(self, client: redis.Redis | None, exc: BaseException) -> str:
        """The Redis condition in one line; a WRONGTYPE names the key and what it holds (TYPE)."""
        if not is_wrong_type(exc) or client is None:
            return describe_redis_error(exc)
        key = self.settings.redis.stream
        try:
            held = key_type(client, key)
        except redis.RedisError:
            held = "key of another type"
        with self.lock:
            self.stream_type = held
        return wrong_type_message(key, held)

    def set_state(
        self,
        up: bool,
        resume_after: StreamId | None,
        exc: BaseException | None = None,
        condition: str | None = None,
    ) -> None:
        """Redis is up, or down for ``condition``; logged once per change (and the first outcome)."""
        with self.lock:
            moved = self.up != up or (not up and condition != self.condition)
            changed = moved or not self.state_logged
            self.up = up
            self.condition = None if up else condition
            self.state_logged = True
        if not changed:
            return
        if up:
            log.info(
                "stream.reconnected", redis=self.settings.redis.redacted_url(), resume_after=str(resume_after)
            )
        else:
            log.warning(
                "stream.disconnected",
                redis=self.settings.redis.redacted_url(),
                error=type(exc).__name__ if exc else None,
                condition=condition,
                detail=redis_detail(exc),
            )


def redis_detail(exc: BaseException | None) -> str | None:
    if exc is None:
        return None
    return str(exc).splitlines()[0][:200] if str(exc) else None
