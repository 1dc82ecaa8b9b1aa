"""The Redis edge against a real private redis-server: paging, windows around a cutover, regressions."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
import redis
from conftest import RedisServer, envelope, free_port, payload
from eventkit import (
    CUTOVER_MS,
    collapsed_entries,
    entry_fields,
    healthy_entries,
    write_entries,
)

from quantum_gate.config import GateSettings, Settings
from quantum_gate.config_loading import load_settings
from quantum_gate.connection import connect
from quantum_gate.contract import Skip
from quantum_gate.gate import evaluate
from quantum_gate.stream import (
    entry_id,
    fill_newest,
    limits_from,
    load_windows,
    parse_raw,
    previous_id,
    read_after,
    revrange_pages,
    stream_info,
)
from quantum_gate.streamids import StreamId, parse_stream_id
from quantum_gate.verdicts import Verdict
from quantum_gate.windows import Window, window_pair

CUTOVER = StreamId(CUTOVER_MS, 0)


class Recorder:
    """A read-through proxy that records the stream commands the product sends."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def xrevrange(self, name: str, max: str = "+", min: str = "-", count: int | None = None) -> Any:
        self.calls.append(("xrevrange", {"max": max, "min": min, "count": count}))
        return self._client.xrevrange(name, max=max, min=min, count=count)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def settings_for(server: RedisServer, key: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"redis.url": server.url, "redis.stream": key, **overrides}
    return load_settings(overrides=values, environ={})


@pytest.fixture
def client(redis_server: RedisServer) -> redis.Redis:
    return redis_server.admin()


def dense_ids(count: int, start_ms: int) -> list[str]:
    """Three entries per millisecond: continuation must respect the sequence, not only the ms."""
    return [f"{start_ms + index // 3}-{index % 3}" for index in range(count)]


# ---- paging ----------------------------------------------------------------------------------------


@pytest.fixture
def logged_server(own_redis: RedisServer) -> RedisServer:
    """A private server whose slow log records every command with its arguments (threshold 0)."""
    admin = own_redis.admin()
    admin.config_set("slowlog-log-slower-than", 0)
    admin.config_set("slowlog-max-len", 100_000)
    admin.slowlog_reset()
    return own_redis


def logged_xrevranges(server: RedisServer, key: str) -> list[list[str]]:
    """The XREVRANGE commands the server saw for ``key``, oldest first, as argument lists."""
    entries = server.admin().slowlog_get(100_000)
    commands = [entry["command"].decode().split(" ") for entry in reversed(entries)]
    return [args[2:] for args in commands if args[0].upper() == "XREVRANGE" and args[1] == key]


def decoded(bound: str | bytes) -> str:
    return bound.decode() if isinstance(bound, bytes) else bound


@pytest.mark.parametrize(("count", "page_size"), [(100, 7), (98, 7), (10, 1), (5, 1000), (0, 3)])
def test_revrange_pages_nothing_lost_or_doubled(
    logged_server: RedisServer, stream_key: str, count: int, page_size: int
) -> None:
    client = logged_server.admin()
    ids = dense_ids(count, CUTOVER_MS)
    write_entries(client, stream_key, [(stream_id, {"n": str(index)}) for index, stream_id in enumerate(ids)])
    pages = list(revrange_pages(client, stream_key, "+", "-", page_size))
    seen = [decoded(raw_id) for page in pages for raw_id, _ in page]
    assert seen == ids[::-1]
    assert [fields for page in pages for _, fields in page] == [
        {b"n": str(i).encode()} for i in range(count)
    ][::-1]
    assert all(0 < len(page) <= page_size for page in pages)
    assert len(pages) == -(-count // page_size)
    # what Redis saw: COUNT page_size every time, each continuation exclusive after the previous page
    commands = logged_xrevranges(logged_server, stream_key)
    assert all(args[2:] == ["COUNT", str(page_size)] for args in commands)
    assert commands[0][:2] == ["+", "-"]
    bounds = [args[0] for args in commands[1:]]
    assert bounds == ["(" + decoded(page[-1][0]) for page in pages if len(page) == page_size]


def test_revrange_pages_fallback_path(client: redis.Redis, stream_key: str) -> None:
    """Through a client that is not a pooled redis.Redis (the fallback path): same pages."""
    ids = dense_ids(50, CUTOVER_MS)
    write_entries(client, stream_key, [(stream_id, {"n": "1"}) for stream_id in ids])
    recorder = Recorder(client)
    pages = list(revrange_pages(cast(redis.Redis, recorder), stream_key, "+", "-", 6))
    assert [decoded(raw_id) for page in pages for raw_id, _ in page] == ids[::-1]
    assert all(call[1]["count"] == 6 for call in recorder.calls)
    assert [decoded(call[1]["max"]) for call in recorder.calls[1:]] == [
        "(" + decoded(page[-1][0]) for page in pages if len(page) == 6
    ]


def test_revrange_pages_respects_bounds(client: redis.Redis, stream_key: str) -> None:
    ids = dense_ids(30, CUTOVER_MS - 5)
    write_entries(client, stream_key, [(stream_id, {"n": "1"}) for stream_id in ids])
    upper = list(revrange_pages(client, stream_key, "+", str(CUTOVER), 4))
    above = [raw_id.decode() for page in upper for raw_id, _ in page]
    assert above == [i for i in ids if parse_stream_id(i) >= CUTOVER][::-1]
    lower = list(revrange_pages(client, stream_key, CUTOVER.exclusive(), "-", 4))
    below = [raw_id.decode() for page in lower for raw_id, _ in page]
    assert below == [i for i in ids if parse_stream_id(i) < CUTOVER][::-1]
    assert (len(above), len(below)) == (15, 15)


def test_fill_newest_stops_when_full_and_keeps_order(logged_server: RedisServer, stream_key: str) -> None:
    client = logged_server.admin()
    write_entries(client, stream_key, healthy_entries(60, CUTOVER_MS, 1000, fallback_every=0))
    window = Window("post", 10, window_pair(1, 1)[0].vocabulary)
    backfill = fill_newest(
        client, stream_key, window, upper="+", lower="-", page_size=4, limits=limits_from(Settings())
    )
    assert len(window) == 10
    assert window.first_last_ms() == (CUTOVER_MS + 50_000, CUTOVER_MS + 59_000)
    keys = window.keys().tolist()
    assert keys == sorted(keys)
    assert backfill.read == 10  # it stopped parsing once the window was full
    assert backfill.newest == StreamId(CUTOVER_MS + 59_000, 0)
    assert 3 <= len(logged_xrevranges(logged_server, stream_key)) <= 4  # at most one page read ahead
    assert client.ping()  # the connection went back to the pool in a usable state
    again = Window("post", 3, window_pair(1, 1)[0].vocabulary)
    fill_newest(client, stream_key, again, upper="+", lower="-", page_size=4, limits=limits_from(Settings()))
    assert again.first_last_ms() == (CUTOVER_MS + 57_000, CUTOVER_MS + 59_000)


def test_default_page_size_is_at_most_1000(logged_server: RedisServer, stream_key: str) -> None:
    client = logged_server.admin()
    write_entries(client, stream_key, healthy_entries(2500, CUTOVER_MS - 1_250_000, 1000, fallback_every=0))
    settings = load_settings(
        overrides={"redis.url": logged_server.url, "redis.stream": stream_key}, environ={}
    )
    post, pre = window_pair(2000, 2000)
    load_windows(client, settings, CUTOVER, post, pre)
    assert (len(post), len(pre)) == (1250, 1250)
    commands = logged_xrevranges(logged_server, stream_key)
    assert commands
    assert {args[2] for args in commands} == {"COUNT"}
    assert max(int(args[3]) for args in commands) == 1000


# ---- windows around a cutover ----------------------------------------------------------------------


def test_windows_are_built_right_around_the_cutover(
    redis_server: RedisServer, client: redis.Redis, stream_key: str
) -> None:
    bot = {
        "event_type": "trade.intent",
        "payload": json.dumps({"symbol": "X", "side": "BUY"}),
        "source": "trading-bot",
    }
    array = envelope("[1, 2, 3]")
    entries: list[tuple[str, dict[str, str]]] = []
    for index in range(30):  # pre region, one skip-worthy entry every fifth
        ms = CUTOVER_MS - 30_000 + index * 1000
        entries.append((f"{ms}-0", entry_fields({"xgb": ("SELL", 0.1 + index / 100)})))
        if index % 5 == 4:
            entries.append((f"{ms}-1", bot))
    entries.append((f"{CUTOVER_MS - 1}-5", entry_fields({"xgb": ("SELL", 0.99)})))  # last moment before
    entries.append((f"{CUTOVER_MS}-0", entry_fields({"xgb": ("BUY", 0.01)})))  # exactly at the cutover: post
    for index in range(1, 21):
        ms = CUTOVER_MS + index * 1000
        entries.append((f"{ms}-0", entry_fields({"xgb": ("BUY", index / 100)})))
        if index % 10 == 0:
            entries.append((f"{ms}-1", array))
    write_entries(client, stream_key, entries)

    settings = settings_for(redis_server, stream_key, **{"redis.page_size": 3})
    post, pre = window_pair(2000, 10)
    connection = connect(settings)
    try:
        load_windows(connection, settings, CUTOVER, post, pre)
    finally:
        connection.close()

    post_votes = post.model("xgb")
    pre_votes = pre.model("xgb")
    assert post_votes is not None and pre_votes is not None
    assert len(post) == 21
    assert post.first_last_ms() == (CUTOVER_MS, CUTOVER_MS + 20_000)
    assert post_votes.confidence.tolist() == [0.01, *[index / 100 for index in range(1, 21)]]
    assert dict(post.counters.skipped) == {"payload_not_object": 2}
    # the baseline: the 10 newest accepted entries strictly before the cutover, oldest first
    assert len(pre) == 10
    assert pre.keys().tolist()[-1] == StreamId(CUTOVER_MS - 1, 5).packed()
    assert pre_votes.confidence.tolist() == pytest.approx(
        [0.1 + index / 100 for index in range(21, 30)] + [0.99]
    )
    assert dict(pre.counters.skipped) == {"no_model_breakdown": 2}  # only the skips met on the way
    assert set(pre_votes.action.tolist()) == {pre.vocabulary.actions.lookup("SELL")}


def test_cutover_newer_than_the_stream(
    client: redis.Redis, redis_server: RedisServer, stream_key: str
) -> None:
    write_entries(client, stream_key, healthy_entries(20, CUTOVER_MS - 100_000, 1000))
    settings = settings_for(redis_server, stream_key)
    post, pre = window_pair(100, 100)
    backfill = load_windows(client, settings, CUTOVER, post, pre)
    assert (len(post), len(pre)) == (0, 20)
    assert backfill.read == 20
    assert backfill.newest == StreamId(CUTOVER_MS - 81_000, 0)


def test_cutover_at_the_very_first_id_has_an_empty_baseline(
    client: redis.Redis, redis_server: RedisServer, stream_key: str
) -> None:
    # `--after 0` once failed: Redis refuses "(0-0" as the baseline's exclusive upper bound.
    write_entries(client, stream_key, healthy_entries(20, CUTOVER_MS - 100_000, 1000))
    settings = settings_for(redis_server, stream_key)
    post, pre = window_pair(100, 100)
    backfill = load_windows(client, settings, StreamId(0, 0), post, pre)
    assert (len(post), len(pre), backfill.read) == (20, 0, 20)


def test_missing_stream_is_empty_not_an_error(
    client: redis.Redis, redis_server: RedisServer, stream_key: str
) -> None:
    settings = settings_for(redis_server, stream_key)
    post, pre = window_pair(100, 100)
    backfill = load_windows(client, settings, CUTOVER, post, pre)
    assert (len(post), len(pre), backfill.read, backfill.newest) == (0, 0, 0, None)
    assert stream_info(client, stream_key) is None


# ---- the upstream bugs, on a real stream -----------------------------------------------------------


def test_regression_baseline_is_the_newest_before_the_cutover_not_the_newest_overall(
    client: redis.Redis, redis_server: RedisServer, stream_key: str
) -> None:
    """Upstream bug 1: "pre" was the newest N events overall, so before/after showed the same numbers.
    Here the engine collapsed before the cutover and is healthy after it: the tables must differ."""
    oldest = [
        (f"{CUTOVER_MS - 900_000 + index}-0", entry_fields({"xgb": ("BUY", 0.9), "lgbm": ("BUY", 0.9)}))
        for index in range(100)
    ]
    write_entries(client, stream_key, oldest)  # older than the baseline: must not be in it
    write_entries(client, stream_key, collapsed_entries(300, CUTOVER_MS - 300_000, 1000))
    write_entries(client, stream_key, healthy_entries(250, CUTOVER_MS, 1000))
    settings = settings_for(redis_server, stream_key, **{"windows.baseline": 300})
    post, pre = window_pair(settings.windows.post, settings.windows.baseline)
    load_windows(client, settings, CUTOVER, post, pre)
    result = evaluate(post, pre, None, GateSettings(), now=CUTOVER_MS / 1000 + 300, rate_per_minute=None)

    assert (len(post), len(pre)) == (250, 300)
    assert int(pre.keys().max()) < CUTOVER.packed() <= int(post.keys().min())
    for model in ("xgb", "lgbm"):
        before, after = result.models[model].pre, result.models[model].post
        assert (before.samples, after.samples) == (300, 250)
        assert before.hold_share == 1.0 and before.std == 0.0 and before.top_value == 0.5
        assert after.hold_share is not None and after.hold_share < 0.4
        assert after.std is not None and after.std > 0.1
        assert before.mean != after.mean
        assert result.models[model].comparison["ks"]["statistic"] > 0.6


def test_regression_json_array_payload_is_skipped_not_a_crash(
    client: redis.Redis, redis_server: RedisServer, stream_key: str
) -> None:
    """Upstream bug 4: one JSON array payload crashed the producer's tools."""
    entries = healthy_entries(210, CUTOVER_MS, 1000, fallback_every=3)
    entries.insert(100, (f"{CUTOVER_MS + 99_000}-1", envelope('[{"model_breakdown": {}}]')))
    write_entries(client, stream_key, entries)
    settings = settings_for(redis_server, stream_key)
    post, pre = window_pair(2000, 2000)
    load_windows(client, settings, CUTOVER, post, pre)
    assert len(post) == 210
    assert dict(post.counters.skipped) == {"payload_not_object": 1}
    result = evaluate(post, pre, None, GateSettings(), now=0.0, rate_per_minute=None)
    assert sorted(result.models) == ["lgbm", "xgb"]


# ---- small pieces ----------------------------------------------------------------------------------


def test_read_after_is_exclusive(client: redis.Redis, stream_key: str) -> None:
    ids = dense_ids(9, CUTOVER_MS)
    write_entries(client, stream_key, [(stream_id, entry_fields({"xgb": ("BUY", 0.5)})) for stream_id in ids])
    after = read_after(client, stream_key, StreamId(CUTOVER_MS + 1, 0), 100, None)
    assert [raw_id.decode() for raw_id, _ in after] == ids[4:]
    assert read_after(client, stream_key, previous_id(CUTOVER), 2, None)[0][0] == str(CUTOVER).encode()
    assert read_after(client, stream_key, StreamId(CUTOVER_MS + 2, 2), 100, 50) == []  # quiet: BLOCK 50 ms


def test_previous_id() -> None:
    assert previous_id(StreamId(10, 3)) == StreamId(10, 2)
    assert previous_id(StreamId(10, 0)) == StreamId(9, 2**64 - 1)
    assert previous_id(StreamId(0, 0)) == StreamId(0, 0)


@pytest.mark.parametrize(
    ("raw", "expected"), [(b"5-6", StreamId(5, 6)), (b"5", None), (b"a-b", None), (b"", None), (b"-", None)]
)
def test_entry_id(raw: bytes, expected: StreamId | None) -> None:
    assert entry_id(raw) == expected


def test_parse_raw_of_a_real_entry() -> None:
    fields = {key.encode(): value.encode() for key, value in envelope(payload({"xgb": ("BUY", 0.7)})).items()}
    stream_id, parsed = parse_raw((b"1768023795000-2", fields), limits_from(Settings()))
    assert stream_id == StreamId(CUTOVER_MS, 2)
    assert not isinstance(parsed, Skip)
    assert parsed.votes[0].confidence == 0.7


def test_stream_info(client: redis.Redis, stream_key: str) -> None:
    write_entries(client, stream_key, [(f"{CUTOVER_MS + i}-0", {"n": "1"}) for i in range(5)])
    info = stream_info(client, stream_key)
    assert info is not None
    assert (info.length, info.first, info.last) == (5, CUTOVER, StreamId(CUTOVER_MS + 4, 0))
    assert info.last_generated == StreamId(CUTOVER_MS + 4, 0)


def test_unreachable_redis_raises_a_redis_error(stream_key: str) -> None:
    settings = load_settings(overrides={"redis.url": f"redis://127.0.0.1:{free_port()}/0"}, environ={})
    post, pre = window_pair(10, 10)
    connection = connect(settings)
    with pytest.raises(redis.ConnectionError):
        load_windows(connection, settings, CUTOVER, post, pre)


def test_healthy_stream_passes_end_to_end(
    client: redis.Redis, redis_server: RedisServer, stream_key: str
) -> None:
    write_entries(client, stream_key, healthy_entries(200, CUTOVER_MS, 1000))
    settings = settings_for(redis_server, stream_key, **{"redis.page_size": 64})
    post, pre = window_pair(2000, 2000)
    load_windows(client, settings, CUTOVER, post, pre)
    from quantum_gate.cutover import Cutover

    result = evaluate(post, pre, Cutover(CUTOVER, "after"), settings.gate, now=0.0, rate_per_minute=None)
    assert result.verdict == Verdict.PASS, result.reasons
    assert result.ensemble_post.fallback_share == pytest.approx(50 / 200)
