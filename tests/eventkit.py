"""Builders shared by the core tests: events, windows and real-format stream entries.

Pure tests build ``Event`` objects directly; Redis tests write real-format entries with the
``payload``/``envelope`` writers from conftest, at chosen stream IDs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import redis
from conftest import envelope, payload

from quantum_gate.config import GateSettings
from quantum_gate.contract import Event, Vote
from quantum_gate.cutover import Cutover
from quantum_gate.gate import GateResult, evaluate
from quantum_gate.streamids import StreamId
from quantum_gate.windows import Window, window_pair

ACTIONS = ("BUY", "SELL", "HOLD")
CUTOVER_MS = 1_768_023_795_000  # 2026-01-10T05:43:15Z
CUTOVER = Cutover(StreamId(CUTOVER_MS, 0), source="after")

VoteSpec = tuple[str, float]


def event(
    ms: int,
    votes: Mapping[str, VoteSpec | Vote],
    *,
    seq: int = 0,
    side: str | None = "BUY",
    symbol: str | None = "BTCUSDT",
    fallback: bool = False,
    invalid: Sequence[str] = (),
    refused: int = 0,
) -> Event:
    built = tuple(
        spec if isinstance(spec, Vote) else Vote(model, spec[0], spec[1], f"{model}_main", False, False)
        for model, spec in votes.items()
    )
    return Event(StreamId(ms, seq), symbol, side, fallback, built, tuple(invalid), refused)


def healthy_vote(index: int, offset: int = 0) -> VoteSpec:
    """Deterministic healthy votes: BUY/SELL/HOLD a third each, confidences spread over 0.30..0.894."""
    action = ACTIONS[(index + offset) % 3]
    confidence = round(0.30 + 0.006 * ((index * 37 + offset * 11) % 100), 6)
    return action, confidence


def collapsed_vote(index: int) -> VoteSpec:
    del index
    return "HOLD", 0.5


def healthy_events(
    count: int,
    start_ms: int,
    models: Sequence[str] = ("xgb", "lgbm"),
    step_ms: int = 1000,
    fallback_every: int = 0,
) -> list[Event]:
    return [
        event(
            start_ms + index * step_ms,
            {model: healthy_vote(index, offset) for offset, model in enumerate(models)},
            side=("BUY", "SELL")[index % 2],
            fallback=bool(fallback_every) and index % fallback_every == 0,
        )
        for index in range(count)
    ]


def fill(window: Window, events: Iterable[Event]) -> Window:
    for item in events:
        window.add(item)
    return window


def windows_of(
    post_events: Iterable[Event],
    pre_events: Iterable[Event] = (),
    post_capacity: int = 2000,
    pre_capacity: int = 2000,
) -> tuple[Window, Window]:
    post, pre = window_pair(post_capacity, pre_capacity)
    fill(post, post_events)
    fill(pre, pre_events)
    return post, pre


def run_gate(
    post_events: Iterable[Event],
    pre_events: Iterable[Event] = (),
    settings: GateSettings | None = None,
    cutover: Cutover | None = CUTOVER,
) -> GateResult:
    post, pre = windows_of(post_events, pre_events)
    return evaluate(post, pre, cutover, settings or GateSettings(), now=1_768_030_000.0, rate_per_minute=2.0)


# ---- real-format entries in Redis ------------------------------------------------------------------


def entry_fields(
    votes: Mapping[str, VoteSpec], *, side: str = "BUY", fallback: bool = False
) -> dict[str, str]:
    return envelope(payload(dict(votes), side=side, fallback=fallback))


def write_entries(client: redis.Redis, key: str, entries: Iterable[tuple[str, Mapping[str, str]]]) -> int:
    """XADD each (stream ID, fields) in order, pipelined; returns how many were written."""
    written = 0
    with client.pipeline(transaction=False) as pipe:
        for stream_id, fields in entries:
            values: dict[Any, Any] = dict(fields)
            pipe.xadd(key, values, id=stream_id)
            written += 1
        pipe.execute()
    return written


def healthy_entries(
    count: int, start_ms: int, step_ms: int, models: Sequence[str] = ("xgb", "lgbm"), fallback_every: int = 4
) -> list[tuple[str, dict[str, str]]]:
    return [
        (
            f"{start_ms + index * step_ms}-0",
            entry_fields(
                {model: healthy_vote(index, offset) for offset, model in enumerate(models)},
                side=("BUY", "SELL")[index % 2],
                fallback=bool(fallback_every) and index % fallback_every == 0,
            ),
        )
        for index in range(count)
    ]


def collapsed_entries(
    count: int, start_ms: int, step_ms: int, models: Sequence[str] = ("xgb", "lgbm")
) -> list[tuple[str, dict[str, str]]]:
    return [
        (f"{start_ms + index * step_ms}-0", entry_fields(dict.fromkeys(models, ("HOLD", 0.5)), side="SELL"))
        for index in range(count)
    ]
