"""The Redis edge: paged XREVRANGE backfills, XREAD tailing, XINFO for gaps and resets.

Read commands only (XREVRANGE, XRANGE, XREAD, XINFO; the client's HELLO/CLIENT SETINFO handshake). No
consumer group, no write, ever: the product must work under an ACL user limited to ``+@read
+@connection`` (tests/test_hardening_access.py proves it with ``ACL LOG``).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import redis

from quantum_gate.config import Settings
from quantum_gate.connection import connect
from quantum_gate.contract import ContractLimits, Event, Skip, SkipReason, parse_entry
from quantum_gate.stream_gaps import StreamInfo
from quantum_gate.streamids import StreamId
from quantum_gate.vocabulary import Vocabulary
from quantum_gate.windows import Window

RawEntry = tuple[bytes, dict[bytes, bytes]]
MAX_SEQ = 2**64 - 1


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
        return None, Skip(SkipReason.BAD_STREAM_ID)
    fields = raw[1] if isinstance(raw[1], dict) else {}
    return stream_id, parse_entry(stream_id, fields, limits)


def revrange_pages(
    client: redis.Redis, key: str, upper: str, lower: str, page_size: int
) -> Iterator[list[RawEntry]]:
    """XREVRANGE in pages of at most ``page_size``, continuing exclusively after the last ID seen."""
    pages = _raw_revrange_pages(client, key, upper, lower, page_size)
    try:
        for page in pages:
            yield [_raw_entry(raw) for raw in page]
    finally:
        pages.close()


def _raw_entry(raw: Any) -> RawEntry:
    """One entry as ``client.xrevrange`` returns it: (ID, fields as a dict of bytes)."""
    if raw is None:  # what redis-py's own callback makes of a nil entry
        return (None, None)  # type: ignore[return-value]
    fields = raw[1]
    if type(fields) is list:
        pairs = iter(fields)
        fields = dict(zip(pairs, pairs, strict=False))
    elif fields is None:
        fields = {}
    return (raw[0], fields)


def _raw_revrange_pages(
    client: redis.Redis, key: str, upper: str, lower: str, page_size: int
) -> Generator[list[Any], None, None]:
    """XREVRANGE pages as the wire gives them (``[id, [field, value, ...]]``, or ``(id, dict)`` on the
    fallback path), never an unbounded read. Entries are never decoded here.

    Read-ahead: as soon as a full page arrives, the request for the next one goes out (its exclusive
    start is known from the page's last ID), so Redis builds page N+1 while the caller parses page N.
    This borrows one connection from the client's pool and bypasses redis-py's per-entry callback
    (the caller builds the field dict itself). Any connection error or timeout on that path drops the
    connection and continues from the same bound through ``client.xrevrange``, i.e. with redis-py's
    own retry policy and exceptions, exactly as before. If the caller stops early, the one reply still
    in flight is read and discarded so the connection goes back to the pool clean.
    """
    bound: str | bytes = upper
    if _can_read_ahead(client):
        resume = yield from _read_ahead_pages(client, key, upper, lower, page_size)
        if resume is None:
            return
        bound = resume
    while True:
        plain: list[Any] = client.xrevrange(key, max=bound, min=lower, count=page_size)  # type: ignore[assignment]
        if not plain:
            return
        yield plain
        if len(plain) < page_size:
            return
        bound = b"(" + plain[-1][0]


def _read_ahead_pages(
    client: redis.Redis, key: str, upper: str, lower: str, page_size: int
) -> Generator[list[Any], None, str | bytes | None]:
    """The read-ahead path of ``_raw_revrange_pages``. Returns None when the range is exhausted, or,
    after a connection error or timeout, the bound of the first page not yet handed out."""
    pool = client.connection_pool
    connection: Any = pool.get_connection()
    bound: str | bytes = upper  # the start of the first page not yet handed to the caller
    in_flight = False  # a request was sent whose reply has not been read
    try:
        connection.send_command("XREVRANGE", key, bound, lower, "COUNT", page_size)
        in_flight = True
        while in_flight:
            try:
                page = connection.read_response()
            finally:  # read, or raised (ResponseError: read; anything else: disconnected below)
                in_flight = False
            if not page:
                return None
            full = len(page) >= page_size
            following = b"(" + page[-1][0]
            if full:
                try:
                    connection.send_command("XREVRANGE", key, following, lower, "COUNT", page_size)
                    in_flight = True
                except (redis.ConnectionError, redis.TimeoutError):
                    connection.disconnect()  # this page still goes out; the rest by the plain path
            yield page
            if not full:
                return None
            bound = following
    except (redis.ConnectionError, redis.TimeoutError):
        connection.disconnect()  # the page at `bound` was not read: the plain path asks again
    except redis.ResponseError:
        raise  # e.g. WRONGTYPE or NOPERM: the reply was read, the connection is fine
    except GeneratorExit:
        raise  # the caller stopped early: the reply in flight is discarded below
    except BaseException:
        connection.disconnect()  # interrupted mid-reply: the connection state is unknown
        raise
    finally:
        if in_flight:
            _discard_reply(connection)
        pool.release(connection)
    return bound


def _can_read_ahead(client: redis.Redis) -> bool:
    """A pooled plain client (not a single-connection one, whose connection is shared and locked)."""
    return (
        isinstance(client, redis.Redis)
        and getattr(client, "connection", None) is None
        and isinstance(client.connection_pool, redis.ConnectionPool)
    )


def _discard_reply(connection: Any) -> None:
    try:
        connection.read_response()
    except Exception:  # any trouble: the connection is simply not reused
        connection.disconnect()


@dataclass
class Backfill:
    read: int = 0
    newest: StreamId | None = None


def fill_newest(  # noqa: PLR0912 - the backfill's inlined hot loop, one branch per outcome
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
    on_skip: Callable[[StreamId | None, Skip], None] | None = None,
) -> Backfill:
    """Fill ``window`` with the newest accepted events in [lower, upper], reading newest-first and
    stopping once the window is full; skips met on the way are counted in the window (and passed to
    ``on_skip`` with their ID, for the daemon's counters).

    Each entry goes through exactly what ``parse_raw`` does (inlined: this is ``check``'s hot loop).
    """
    result = Backfill()
    read = 0
    newest: StreamId | None = None
    add, note_skip = window.add, window.note_skip
    room = window.capacity - len(window)  # each add fills one slot until the window is full
    pages = _raw_revrange_pages(client, key, upper, lower, page_size)
    try:
        for page in pages:
            if on_page is not None:  # once per page, skipped entries included (a stop request)
                on_page()
            for raw in page:
                read += 1
                stream_id = entry_id(raw[0]) if raw is not None and raw[0] is not None else None
                if stream_id is None:
                    note_skip(_BAD_STREAM_ID)
                    if on_skip is not None:
                        on_skip(None, _BAD_STREAM_ID)
                    continue
                if newest is None:
                    newest = stream_id
                fields = raw[1]
                if type(fields) is list:
                    pairs = iter(fields)
                    fields = dict(zip(pairs, pairs, strict=False))
                elif not isinstance(fields, dict):
                    fields = {}
                parsed = parse_entry(stream_id, fields, limits)
                if type(parsed) is Skip:
                    note_skip(parsed, stream_id)
                    if on_skip is not None:
                        on_skip(stream_id, parsed)
                    continue
                add(parsed)  # type: ignore[arg-type]
                if on_accepted is not None:
                    on_accepted(parsed)  # type: ignore[arg-type]
                room -= 1
                if room <= 0:
                    window.reverse()
                    result.read, result.newest = read, newest
                    return result
    finally:
        pages.close()
    window.reverse()
    result.read, result.newest = read, newest
    return result


_BAD_STREAM_ID = Skip(SkipReason.BAD_STREAM_ID)


def fill_post(
    client: redis.Redis,
    settings: Settings,
    cutover: StreamId,
    post: Window,
    *,
    on_accepted: Callable[[Event], None] | None = None,
    on_page: Callable[[], None] | None = None,
    on_skip: Callable[[StreamId | None, Skip], None] | None = None,
) -> Backfill:
    """The post window: the newest accepted events with ID >= cutover."""
    return fill_newest(
        client, settings.redis.stream, post, upper="+", lower=str(cutover),
        page_size=settings.redis.page_size, limits=limits_from(settings),
        on_accepted=on_accepted, on_page=on_page, on_skip=on_skip,
    )  # fmt: skip


def fill_baseline(
    client: redis.Redis,
    settings: Settings,
    cutover: StreamId,
    pre: Window,
    *,
    on_accepted: Callable[[Event], None] | None = None,
    on_page: Callable[[], None] | None = None,
    on_skip: Callable[[StreamId | None, Skip], None] | None = None,
) -> Backfill:
    """The baseline: the newest accepted events with ID < cutover (none before 0-0, whose exclusive
    bound "(0-0" Redis refuses)."""
    if cutover == StreamId(0, 0):
        return Backfill()
    return fill_newest(
        client, settings.redis.stream, pre, upper=cutover.exclusive(), lower="-",
        page_size=settings.redis.page_size, limits=limits_from(settings),
        on_accepted=on_accepted, on_page=on_page, on_skip=on_skip,
    )  # fmt: skip


def load_windows(  # noqa: PLR0917 - the daemon's and check's shared signature, kept as it is
    client: redis.Redis,
    settings: Settings,
    cutover: StreamId,
    post: Window,
    pre: Window,
    on_accepted: Callable[[Event], None] | None = None,
    on_page: Callable[[], None] | None = None,
    on_skip: Callable[[StreamId | None, Skip], None] | None = None,
) -> Backfill:
    """The post window (newest events with ID >= cutover) and the baseline (newest before it)."""
    hooks: dict[str, Any] = {"on_accepted": on_accepted, "on_page": on_page, "on_skip": on_skip}
    newest = fill_post(client, settings, cutover, post, **hooks)
    older = fill_baseline(client, settings, cutover, pre, **hooks)
    return Backfill(read=newest.read + older.read, newest=newest.newest or older.newest)


def load_windows_in_parallel(
    settings: Settings, cutover: StreamId, post: Window, pre: Window
) -> tuple[Backfill, Window]:
    """``load_windows`` with the baseline read by a forked child while this process reads the post
    window: parsing is CPU-bound Python, so two large windows take about half the time on two cores.
    Returns the backfill and the filled baseline (a new window in ``post``'s vocabulary; ``pre`` only
    gives its name and capacity).

    For one-shot commands only (``check``, ``diagnose``): fork is safe in a single-threaded process,
    not in the daemon. The child fills a window with a vocabulary of its own and sends it back
    pickled; ``Window.rebind`` then moves its codes into ``post``'s vocabulary.
    """
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    own = post.vocabulary
    limits = (own.models.limit, own.actions.limit, own.variants.limit, own.symbols.limit)
    child = context.Process(
        target=_baseline_child, args=(settings, cutover, pre.name, pre.capacity, limits, sender), daemon=True
    )
    child.start()
    sender.close()
    try:
        client = connect(settings)
        try:
            newest = fill_post(client, settings, cutover, post)
        finally:
            client.close()
        outcome = receiver.recv()
    except EOFError:
        raise redis.RedisError("the baseline reader stopped without an answer") from None
    finally:
        receiver.close()
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    if isinstance(outcome, BaseException):
        raise outcome
    baseline, older = outcome
    baseline.rebind(post.vocabulary)
    return Backfill(read=newest.read + older.read, newest=newest.newest or older.newest), baseline


def _baseline_child(  # noqa: PLR0917 - the argument tuple of a multiprocessing target
    settings: Settings,
    cutover: StreamId,
    name: str,
    capacity: int,
    limits: tuple[int, int, int, int],
    sender: Connection,
) -> None:
    """In the forked child: fill a baseline window of its own and send it back, or the error."""
    outcome: object
    try:
        baseline = Window(name, capacity, Vocabulary.bounded(*limits))
        client = connect(settings)
        try:
            older = fill_baseline(client, settings, cutover, baseline)
        finally:
            client.close()
        outcome = (baseline, older)
    except Exception as exc:  # every failure goes back to the parent to be reported
        outcome = exc
    try:
        sender.send(outcome)
    except Exception as exc:  # e.g. an exception that does not pickle
        sender.send(redis.RedisError(f"baseline reader failed: {type(exc).__name__}: {exc}"))
    finally:
        sender.close()


def read_after(
    client: redis.Redis, key: str, after: StreamId, count: int, block_ms: int | None
) -> list[RawEntry]:
    """XREAD entries with ID > ``after`` (BLOCK when ``block_ms`` is set); [] on a quiet stream."""
    reply: Any = client.xread({key: str(after)}, count=count, block=block_ms)
    if not reply:
        return []
    if isinstance(reply, dict):  # RESP3 answers with a map
        entries: Any = next(iter(reply.values()), [])
        return list(entries[0] if entries and isinstance(entries[0], list) else entries)
    return list(reply[0][1])


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
