"""The forked baseline reader (`windows.parallel_min_events`) must give exactly what the sequential
backfill gives: same events, same label codes after ``Window.rebind``, same gate document."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
import redis
from conftest import RedisServer, envelope, payload
from eventkit import CUTOVER_MS, event, write_entries

from quantum_gate.config import Settings
from quantum_gate.config_loading import load_settings
from quantum_gate.connection import connect
from quantum_gate.cutover import Cutover
from quantum_gate.gate import evaluate
from quantum_gate.oneshot import evaluate_once
from quantum_gate.pipeline import new_windows
from quantum_gate.report import gate_document
from quantum_gate.stream import load_windows, load_windows_in_parallel
from quantum_gate.streamids import StreamId
from quantum_gate.windows import Window, window_pair

MODELS = ("xgb", "lgbm", "nhits", "patchtst", "tft")


def mixed_entries(count: int, seed: int) -> list[tuple[str, dict[str, str]]]:
    """Models that come and go, odd actions and variants, symbols, skips: labels interned in a
    different order on each side of the cutover, so the two vocabularies really differ."""
    rng = random.Random(seed)
    entries = []
    for index in range(count):
        ms = CUTOVER_MS - count * 500 + index * 1000
        if rng.random() < 0.05:
            entries.append((f"{ms}-0", {"event_type": "trade.intent", "payload": "[1, 2]"}))
            continue
        post = ms >= CUTOVER_MS
        models = rng.sample(MODELS[::-1] if post else MODELS, rng.randint(1, len(MODELS)))
        votes: dict[str, tuple[str, float] | dict[str, Any]] = {
            model: {
                "action": rng.choice(("BUY", "SELL", "HOLD", "WAIT") if post else ("HOLD", "BUY", "SELL")),
                "confidence": round(rng.random() * 1.1, 4),
                "model": rng.choice((f"{model}_v{rng.randint(1, 3)}", f"{model}_fallback_rules")),
            }
            for model in models
        }
        symbol = rng.choice(("ETHUSDT", "BTCUSDT", "SOLUSDT", "A2ZUSDT"))
        entries.append((f"{ms}-0", envelope(payload(votes, symbol=symbol, side=rng.choice(("BUY", "SELL"))))))
    return entries


def settings_for(server: RedisServer, key: str, size: int) -> Settings:
    return load_settings(
        None,
        environ={},
        overrides={
            "redis.url": server.url,
            "redis.stream": key,
            "windows.post": size,
            "windows.baseline": size,
            "gate.min_events": min(size, 200),
            "gate.min_samples": min(size, 200),
        },
    )


def decoded(window: Window) -> dict[str, object]:
    """A window as names, not codes: what must agree whichever process filled it."""
    vocab = window.vocabulary
    models = {}
    for name in window.models():
        columns = window.model(name)
        assert columns is not None
        models[name] = {
            "confidence": columns.confidence.tolist(),
            "action": [vocab.actions.names[code] for code in columns.action],
            "variant": [vocab.variants.names[code] if code >= 0 else None for code in columns.variant],
            "symbol": [vocab.symbols.names[code] for code in columns.symbol],
            "invalid": columns.invalid,
        }
    return {
        "keys": window.keys().tolist(),
        "sides": [vocab.actions.names[code] if code >= 0 else None for code in window.sides()],
        "fallback": window.fallback().tolist(),
        "skipped": dict(window.counters.skipped),
        "models": models,
    }


@pytest.mark.parametrize("size", [50, 2000])
def test_parallel_baseline_equals_the_sequential_one(
    redis_server: RedisServer, stream_key: str, size: int
) -> None:
    client: redis.Redis = redis_server.admin()
    write_entries(client, stream_key, mixed_entries(600, seed=size))
    settings = settings_for(redis_server, stream_key, size)
    cutover = StreamId(CUTOVER_MS, 0)

    post_seq, pre_seq = new_windows(settings)
    reader = connect(settings)
    try:
        sequential = load_windows(reader, settings, cutover, post_seq, pre_seq)
    finally:
        reader.close()
    post_par, pre_template = new_windows(settings)
    parallel, pre_par = load_windows_in_parallel(settings, cutover, post_par, pre_template)

    assert pre_par.vocabulary is post_par.vocabulary
    assert (parallel.read, parallel.newest) == (sequential.read, sequential.newest)
    assert decoded(post_par) == decoded(post_seq)
    assert decoded(pre_par) == decoded(pre_seq)
    assert len(pre_par) > 0 and len(post_par) > 0

    def document(post: Window, pre: Window) -> dict[str, object]:
        result = evaluate(post, pre, Cutover(cutover, "after"), settings.gate, now=0.0, rate_per_minute=None)
        loaded: dict[str, object] = json.loads(
            json.dumps(gate_document(result, stream=stream_key), default=str)
        )
        return loaded

    assert document(post_par, pre_par) == document(post_seq, pre_seq)


def test_rebind_refuses_models_beyond_the_target_cap() -> None:
    target_post, _ = window_pair(10, 10, max_models=2)
    target_post.vocabulary.models.code("a")
    target_post.vocabulary.models.code("b")
    _, other = window_pair(10, 10, max_models=5)
    other.add(event(1000, {"c": ("BUY", 0.4), "a": ("SELL", 0.6)}))
    other.rebind(target_post.vocabulary)
    assert other.models() == ["a"]
    assert other.counters.refused_keys == 1
    columns = other.model("a")
    assert columns is not None and columns.confidence.tolist() == [0.6]


def test_check_uses_the_forked_reader_and_agrees(redis_server: RedisServer, stream_key: str) -> None:
    client: redis.Redis = redis_server.admin()
    write_entries(client, stream_key, mixed_entries(400, seed=3))
    settings = settings_for(redis_server, stream_key, 1000)
    forked = settings.model_copy(
        update={"windows": settings.windows.model_copy(update={"parallel_min_events": 10})}
    )
    cutover = Cutover(StreamId(CUTOVER_MS, 0), "after")
    sequential, _, _ = evaluate_once(
        settings.model_copy(
            update={"windows": settings.windows.model_copy(update={"parallel_min_events": 0})}
        ),
        cutover,
        now=1.0,
    )
    parallel, _, _ = evaluate_once(forked, cutover, now=1.0)
    assert parallel.verdict == sequential.verdict
    assert parallel.models.keys() == sequential.models.keys()
    for name, report in parallel.models.items():
        assert report.post == sequential.models[name].post
        assert report.pre == sequential.models[name].pre


def test_forked_reader_reports_redis_errors(stream_key: str) -> None:
    settings = load_settings(
        None, environ={}, overrides={"redis.url": "redis://127.0.0.1:1/0", "redis.stream": stream_key}
    )
    post, pre = new_windows(settings)
    with pytest.raises(redis.ConnectionError):
        load_windows_in_parallel(settings, StreamId(CUTOVER_MS, 0), post, pre)
