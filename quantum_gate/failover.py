"""Failover bookkeeping for the daemon, pure: which node it reads, how often that changed, and whether
a new master's stream ends before what was already counted (a rollback).

A rollback happens when the old master acknowledged writes that never reached the replica promoted in
its place: the daemon counted entries that no longer exist anywhere. Nothing can bring them back; the
daemon counts the rollback, keeps the events already in its windows (they were real events when read),
and moves its read position back to the new master's last generated ID, so that new entries, whose IDs
may be lower than the lost ones, are read rather than skipped by ``XREAD`` (docs/operations.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quantum_gate.connection import Endpoint
from quantum_gate.stream_gaps import StreamInfo
from quantum_gate.streamids import StreamId


@dataclass(frozen=True)
class Rollback:
    counted_up_to: StreamId  # the last ID the daemon had counted
    resume_after: StreamId  # the new master's last generated ID: reading continues after it


def detect_rollback(info: StreamInfo | None, last_counted: StreamId | None) -> Rollback | None:
    """A rollback when the stream exists but its last generated ID is below the last ID counted.

    A missing key is not a rollback: that is a deleted stream, which the reset accounting
    (``GapTracker``) reports. ``last-generated-id`` rather than the last entry: entries deleted after
    they were counted (XDEL, trimming) still moved it, so only a node that never saw them is below."""
    if info is None or last_counted is None or last_counted == StreamId(0, 0):
        return None
    end = info.last_generated or info.last
    if end is None or end >= last_counted:
        return None
    return Rollback(counted_up_to=last_counted, resume_after=end)


@dataclass
class EndpointWatch:
    """The node read now, and how many reconnects landed on another node than the one before."""

    endpoint: Endpoint | None = None
    failovers: int = 0

    def connected(self, endpoint: Endpoint) -> Endpoint | None:
        """Record a (re)connection; returns the previous endpoint when this one is a failover: Sentinel
        named a different node (master or replica) than the last connection's."""
        previous, self.endpoint = self.endpoint, endpoint
        if previous is None or endpoint.topology != "sentinel" or previous.address == endpoint.address:
            return None
        self.failovers += 1
        return previous


@dataclass(frozen=True)
class ReplicaStatus:
    """From ``INFO replication`` on the replica being read (never the master)."""

    link_up: bool
    last_io_seconds: float | None  # master_last_io_seconds_ago; -1 from Redis (no link) -> None


def replica_status(info: dict[str, Any]) -> ReplicaStatus:
    """Parse redis-py's ``INFO replication`` dict (values already typed by redis-py)."""
    link_up = str(info.get("master_link_status", "")).lower() == "up"
    raw = info.get("master_last_io_seconds_ago")
    try:
        seconds = float(raw) if raw is not None else None
    except (TypeError, ValueError):
        seconds = None
    return ReplicaStatus(
        link_up=link_up, last_io_seconds=seconds if seconds is not None and seconds >= 0 else None
    )
