"""The Redis edge: paged XREVRANGE backfills, XREAD tailing, XINFO for gaps and resets.

Read commands only (XREVRANGE, XRANGE, XREAD, XINFO; the client's HELLO/CLIENT SETINFO handshake). No
consumer group, no write, ever: the product must work under an ACL user limited to ``+@read
+@connection`` (tests/test_readonly.py proves it with ``ACL LOG``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import redis

from quantum_gate.config import Settings, resolve_redis_password
from quantum_gate.contract import ContractLimits, Event, Skip, parse_entry
from quantum_gate.streamids import StreamId
from quantum_gate.windows import Window

RawEntry = tuple[bytes, dict[bytes, bytes]]
MAX_SEQ = 2**64 - 1


def connect(settings: Settings) -> redis.Redis:
    """A client for the configured URL; the password from the URL, a file or the systemd credential."""
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
    return redis.Redis.from_url(settings.redis.url, **kwargs)


def limits_from(settings: Settings) -> ContractLimits:
    contract = settings.contract
    return ContractLimits(
        max_models_per_entry=contract.max_models,
        max_key_length=contract.max_key_length,
        max_payload_bytes=contract.max_payload_bytes,
    )


def entry_id(raw: bytes) -> StreamId | None:
    ms, sep, seq = raw.partition(b"-")
    try:
        return StreamId(int(ms), int(seq)) if sep else None
    except ValueError:
        return None


def previous_id(stream_id: StreamId) -> StreamId:
    """The ID just before, so that ``XREAD`` (exclusive) starts at ``stream_id`` itself."""
    if stream_id.seq:
        return StreamId(stream_id.ms, stream_id.seq - 1)
    return StreamId(max(stream_id.ms - 1, 0), MAX_SEQ if stream_id.ms else 0)


def parse_raw(raw: RawEntry, limits: ContractLimits) -> tuple[StreamId | None, Event | Skip]:
    stream_id = entry_id(raw[0])
    if stream_id is None:
        return None, Skip("bad_stream_id")
    fields = raw[1] if isinstance(raw[1], dict) else {}
    return stream_id, parse_entry(stream_id, fields, limits)


def revrange_pages(
    client: redis.Redis, key: str, upper: str, lower: str, page_size: int
) -> Iterator[list[RawEntry]]:
    """XREVRANGE in pages of at most ``page_size``, continuing exclusively after the last ID seen."""
    while True:
        page: list[RawEntry] = client.xrevrange(key, max=upper, min=lower, count=page_size)
        if not page:
            return
        yield page
        if len(page) < page_size:
            return
        upper = "(" + page[-1][0].decode("ascii")


@dataclass
class Backfill:
    read: int = 0
    newest: StreamId | None = None


def fill_newest(
    client: redis.Redis,
    key: str,
    window: Window,
    *,
    upper: str,
    lower: str,
    page_size: int,
    limits: ContractLimits,
    on_accepted: Callable[[Event], None] | None = None,
    on_page: Callable[[], None] | None = None,
) -> Backfill:
    """Fill ``window`` with the newest accepted events in [lower, upper], reading newest-first and
    stopping once the window is full; skips met on the way are counted in the window."""
    result = Backfill()
    for page in revrange_pages(client, key, upper, lower, page_size):
        if on_page is not None:  # once per page, skipped entries included (a stop request)
            on_page()
        for raw in page:
            stream_id, parsed = parse_raw(raw, limits)
            result.read += 1
            if result.newest is None and stream_id is not None:
                result.newest = stream_id
            if isinstance(parsed, Skip):
                window.note_skip(parsed)
                continue
            window.add(parsed)
            if on_accepted is not None:
                on_accepted(parsed)
            if len(window) >= window.capacity:
                window.reverse()
                return result
    window.reverse()
    return result


def load_windows(
    client: redis.Redis,
    settings: Settings,
    cutover: StreamId,
    post: Window,
    pre: Window,
    on_accepted: Callable[[Event], None] | None = None,
    on_page: Callable[[], None] | None = None,
) -> Backfill:
    """The post window (newest events with ID >= cutover) and the baseline (newest before it)."""
    key, page, limits = settings.redis.stream, settings.redis.page_size, limits_from(settings)
    newest = fill_newest(
        client,
        key,
        post,
        upper="+",
        lower=str(cutover),
        page_size=page,
        limits=limits,
        on_accepted=on_accepted,
        on_page=on_page,
    )
    older = fill_newest(
        client,
        key,
        pre,
        upper=cutover.exclusive(),
        lower="-",
        page_size=page,
        limits=limits,
        on_accepted=on_accepted,
        on_page=on_page,
    )
    return Backfill(read=newest.read + older.read, newest=newest.newest or older.newest)


def read_after(
    client: redis.Redis, key: str, after: StreamId, count: int, block_ms: int | None
) -> list[RawEntry]:
    """XREAD entries with ID > ``after`` (BLOCK when ``block_ms`` is set); [] on a quiet stream."""
    reply = client.xread({key: str(after)}, count=count, block=block_ms)
    if not reply:
        return []
    if isinstance(reply, dict):  # RESP3 answers with a map
        entries = next(iter(reply.values()), [])
        return list(entries[0] if entries and isinstance(entries[0], list) else entries)
    return list(reply[0][1])


@dataclass(frozen=True)
class StreamInfo:
    length: int
    entries_added: int | None
    last_generated: StreamId | None
    first: StreamId | None
    last: StreamId | None


def stream_info(client: redis.Redis, key: str) -> StreamInfo | None:
    """XINFO STREAM, or None when the key does not exist (deleted, or never written)."""
    try:
        info = client.xinfo_stream(key)
    except redis.ResponseError as exc:
        if "no such key" in str(exc).lower():
            return None
        raise
    first, last = info.get("first-entry"), info.get("last-entry")
    generated = info.get("last-generated-id")
    added = info.get("entries-added")
    return StreamInfo(
        length=int(info.get("length", 0)),
        entries_added=int(added) if added is not None else None,
        last_generated=entry_id(generated) if isinstance(generated, bytes) else None,
        first=entry_id(first[0]) if first else None,
        last=entry_id(last[0]) if last else None,
    )


@dataclass
class GapTracker:
    """Counts entries that were trimmed before we read them, and stream resets (DEL, XTRIM to 0).

    Pure bookkeeping over successive ``StreamInfo`` readings. Loss is settled at sync points, when the
    last ID we read equals the stream's last generated ID: everything added since the previous sync
    that we did not read was lost. While we lag, nothing is concluded yet.
    """

    synced_added: int | None = None
    read_since_sync: int = 0
    lost: int = 0
    resets: int = 0
    missing: bool = False
    last_length: int | None = None
    last_added: int | None = None
    last_entry: StreamId | None = None

    def note_read(self, count: int) -> None:
        self.read_since_sync += count

    def observe(self, info: StreamInfo | None, last_read: StreamId | None) -> str | None:
        """Feed one XINFO reading; returns "reset" or "lost" when something happened, else None."""
        if info is None:
            existed = self.last_length is not None and not self.missing
            self.missing = True
            self.synced_added = None
            if existed:  # a key that never existed (the daemon started first) was not deleted
                self.resets += 1
                return "reset"
            return None
        event: str | None = None
        recreated = self.missing or (
            self.synced_added is not None
            and info.entries_added is not None
            and info.entries_added < self.synced_added
        )
        emptied = info.length == 0 and (self.last_length or 0) > 0
        if (recreated and not self.missing) or emptied or self._wiped(info):
            self.resets += 1
            event = "reset"
        if recreated:
            self.synced_added = None
        self.missing = False
        self.last_length = info.length
        self.last_added = info.entries_added
        self.last_entry = info.last
        if info.entries_added is None or info.last_generated is None:
            return event
        if last_read is not None and last_read >= info.last_generated:
            if self.synced_added is not None:
                gap = info.entries_added - self.synced_added - self.read_since_sync
                if gap > 0:
                    self.lost += gap
                    event = event or "lost"
            self.synced_added = info.entries_added
            self.read_since_sync = 0
        return event

    def _wiped(self, info: StreamInfo) -> bool:
        """Emptied and refilled between two readings (``XTRIM MAXLEN 0`` while the producer writes):
        every entry of the previous reading is gone although far fewer were added than it held, which
        no ``MAXLEN`` trim can do (it keeps at least as many as it is given)."""
        if self.last_entry is None or self.last_added is None or info.entries_added is None:
            return False
        if info.length == 0 or info.first is None or info.first <= self.last_entry:
            return False
        added = info.entries_added - self.last_added
        return added >= 0 and added * 2 < (self.last_length or 0)
