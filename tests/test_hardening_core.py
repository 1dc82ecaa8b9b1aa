"""The second hardening round on the core (issue 16 items 1-4, issue 17 item 2).

* far-future stream IDs (beyond the packed int64 range) are a counted skip, never a traceback;
* every window statistic is a function of the events in the window, the same in ``check`` and the
  daemon (a property test feeds both the same random stream, hostile entries included);
* the caps bound the labels *currently* in the windows, and a refused model key never PASSes;
* after a stream reset with lower IDs the daemon rewinds and counts the new stream exactly;
* ``quantum_gate_model_keys_refused_total`` counts each refusal once.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from conftest import RedisServer, envelope, payload
from daemonkit import (
    add_entry,
    daemon_process,
    document_of,
    make_settings,
    tailing,
    wait_until,
    write_atomically,
)
from eventkit import CUTOVER, CUTOVER_MS, event, fill, healthy_entries, healthy_events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli import as_json, check

from quantum_gate import ingestor as ingestor_module
from quantum_gate.breakdown import report_depth
from quantum_gate.config import GateSettings
from quantum_gate.contract import ContractLimits, Event, Skip, SkipReason, Vote, parse_entry
from quantum_gate.cutover import Cutover
from quantum_gate.daemon import Daemon
from quantum_gate.exporter import make_registry
from quantum_gate.gate import evaluate
from quantum_gate.httpapp import HttpApp
from quantum_gate.oneshot import evaluate_once
from quantum_gate.report import dumps, gate_document
from quantum_gate.statuspage import render_status_page
from quantum_gate.stream import read_after
from quantum_gate.streamids import PACKED_MS_MAX, StreamId
from quantum_gate.verdicts import Verdict
from quantum_gate.windows import window_pair

MAX_ID = "18446744073709551615-18446744073709551615"
FAR = "9999999999999-0"  # the example: 2286-11-20
LIMITS = ContractLimits()
SMALL_GATE = GateSettings(min_events=3, min_samples=3)


def now_ms() -> int:
    return int(time.time() * 1000)


def vote_fields(votes: Mapping[str, tuple[str, float] | dict[str, Any]]) -> dict[str, str]:
    return envelope(payload(dict(votes)))


# ---- 16.1 far-future stream IDs ------------------------------------------------------------------------


def test_ids_beyond_the_packed_range_are_a_skip_reason() -> None:
    fields = {key.encode(): value.encode() for key, value in vote_fields({"xgb": ("BUY", 0.6)}).items()}
    last_windowable = StreamId(PACKED_MS_MAX, 2**64 - 1)
    assert isinstance(parse_entry(last_windowable, fields, LIMITS), Event)
    for stream_id in (
        StreamId(PACKED_MS_MAX + 1, 0),
        StreamId(9_999_999_999_999, 0),
        StreamId(2**64 - 1, 2**64 - 1),
    ):
        assert parse_entry(stream_id, fields, LIMITS) == Skip(SkipReason.STREAM_ID_OUT_OF_RANGE)


def test_window_notes_an_out_of_range_event_instead_of_raising() -> None:
    """An Event built elsewhere (not by parse_entry) with a far-future ID: noted, not an OverflowError."""
    post, _ = window_pair(5, 5)
    post.add(event(CUTOVER_MS, {"xgb": ("BUY", 0.5)}))
    post.add(event(2**64 - 1, {"xgb": ("BUY", 0.5)}, seq=2**64 - 1))
    assert len(post) == 1
    assert post.notes().skipped == {"stream_id_out_of_range": 1}


def test_check_answers_on_a_stream_with_far_future_ids(redis_server: RedisServer, stream_key: str) -> None:
    client = redis_server.admin()
    write_atomically(client, stream_key, healthy_entries(250, CUTOVER_MS, 1000))
    write_atomically(client, stream_key, [(FAR, vote_fields({"xgb": ("BUY", 0.6)}))])
    add_entry(client, stream_key, vote_fields({"xgb": ("BUY", 0.6)}), "*")  # 9999999999999-1
    add_entry(client, stream_key, vote_fields({"xgb": ("BUY", 0.6)}), MAX_ID)
    result = check(redis_server, stream_key, "--after", str(CUTOVER_MS), "--json")
    assert "Traceback" not in result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
    document = as_json(result)
    assert document["verdict"] == Verdict.PASS
    assert document["windows"]["post"]["events"] == 250
    assert document["windows"]["post"]["skipped"] == {"stream_id_out_of_range": 3}


def test_daemon_keeps_tailing_past_far_future_ids_and_a_restart_builds_its_windows(
    redis_server: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    client = redis_server.admin()
    cut = now_ms() - 600_000
    write_atomically(client, stream_key, healthy_entries(20, cut, 1000))
    settings = make_settings(redis_server.url, stream_key, tmp_path, {"cutover": {"after": str(cut)}})
    daemon = Daemon(settings)
    with tailing(daemon):
        wait_until(lambda: daemon.ingestor.state().accepted_total == 20, 10, "the backlog")
        add_entry(client, stream_key, vote_fields({"xgb": ("BUY", 0.6)}), FAR)
        add_entry(client, stream_key, vote_fields({"xgb": ("BUY", 0.6)}), "*")
        add_entry(client, stream_key, {"event_type": "other"}, "*")
        add_entry(client, stream_key, vote_fields({"xgb": ("BUY", 0.6)}), MAX_ID)
        wait_until(
            lambda: daemon.ingestor.state().entries_read_total == 24, 10, "the far-future entries to be read"
        )
        daemon.evaluator.tick()
        snapshot = daemon.snapshot()
        assert snapshot.tail.redis_up
        assert snapshot.tail.skipped_total == {"stream_id_out_of_range": 4}  # the ID decides first
        assert daemon.evaluator.state().evaluation_errors_total == 0
        assert document_of(daemon)["windows"]["post"]["skipped"] == {"stream_id_out_of_range": 4}
        assert len(daemon.windows.post) == 20
        assert str(daemon.ingestor.state().last_id) == MAX_ID
        app = HttpApp(daemon.snapshot, daemon.clock, render_status_page)  # every face still answers
        for path in ("/metrics", "/gate", "/"):
            assert app.handle(path)[0] in {200, 503}, path
        metrics = app.handle("/metrics")[2].decode()
        assert 'quantum_gate_events_skipped_total{reason="stream_id_out_of_range"} 4.0' in metrics
    # A restart reads the same stream from scratch: the windows are built, the skips counted.
    restarted = Daemon(settings)
    with tailing(restarted):
        wait_until(
            lambda: restarted.evaluator.state().result is None and len(restarted.windows.post) == 20,
            10,
            "the backfill",
        )
        restarted.evaluator.tick()
        assert (
            restarted.ingestor.state().redis_up and restarted.evaluator.state().evaluation_errors_total == 0
        )
        assert restarted.ingestor.state().skipped_total == {"stream_id_out_of_range": 4}
        assert restarted.ingestor.state().accepted_total == 20
        assert document_of(restarted)["windows"]["post"]["events"] == 20


# ---- 16.2 window statistics are functions of the events in the window ------------------------------------


def test_skip_notes_age_out_with_the_events_around_them() -> None:
    post, _ = window_pair(3, 3)
    post.add(event(CUTOVER_MS, {"xgb": ("BUY", 0.5)}))
    post.note_skip(Skip(SkipReason.NO_VALID_VOTES, ("xgb",)), StreamId(CUTOVER_MS + 1, 0))
    post.add(event(CUTOVER_MS + 2, {"xgb": ("SELL", 0.6)}))
    columns = post.model("xgb")
    assert columns is not None and columns.invalid == 1
    assert post.notes().skipped == {"no_valid_votes": 1}
    for ms in range(CUTOVER_MS + 3, CUTOVER_MS + 6):
        post.add(event(ms, {"xgb": ("HOLD", 0.7)}))
    columns = post.model("xgb")
    assert columns is not None and columns.invalid == 0  # older than every event held now
    assert post.notes().skipped == {}
    assert post.counters.skipped == {"no_valid_votes": 1}  # the lifetime total still says it happened


def test_one_bad_entry_fails_the_gate_only_while_the_window_spans_it() -> None:
    """The issue's case: a skipped entry's invalid vote used to fail the daemon's gate for good."""
    post, pre = window_pair(10, 10)
    events = healthy_events(30, CUTOVER_MS)
    for item in events[:5]:
        post.add(item)
    post.note_skip(Skip(SkipReason.NO_VALID_VOTES, ("xgb",)), StreamId(CUTOVER_MS + 4_500, 0))
    for item in events[5:8]:
        post.add(item)
    gate = GateSettings(min_events=5, min_samples=5)
    assert evaluate(post, pre, CUTOVER, gate, now=0.0, rate_per_minute=None).verdict == Verdict.FAIL
    for item in events[8:]:
        post.add(item)
    result = evaluate(post, pre, CUTOVER, gate, now=0.0, rate_per_minute=None)
    assert result.verdict == Verdict.PASS, result.reasons
    assert result.models["xgb"].post.invalid_votes == 0


def test_cutover_moving_forward_keeps_the_notes_after_it() -> None:
    post, _ = window_pair(10, 10)
    post.note_skip(Skip(SkipReason.BAD_JSON), StreamId(CUTOVER_MS + 1, 0))
    post.add(event(CUTOVER_MS + 2, {"xgb": ("BUY", 0.5)}))
    post.note_skip(Skip(SkipReason.WRONG_EVENT_TYPE), StreamId(CUTOVER_MS + 3, 0))
    post.retain_from(StreamId(CUTOVER_MS + 2, 0).packed())
    assert post.notes().skipped == {"wrong_event_type": 1}


def test_skip_notes_are_bounded_by_the_window_capacity_whatever_the_order() -> None:
    forward, _ = window_pair(4, 4)
    backward, _ = window_pair(4, 4)
    skips = [
        (Skip(SkipReason.BAD_JSON if ms % 2 else SkipReason.NO_PAYLOAD), StreamId(ms, 0))
        for ms in range(1, 40)
    ]
    for skip, stream_id in skips:
        forward.note_skip(skip, stream_id)
    for skip, stream_id in reversed(skips):
        backward.note_skip(skip, stream_id)
    assert forward.notes() == backward.notes()
    assert sum(forward.notes().skipped.values()) == 4  # the newest four, ms 36..39
    assert forward.notes().skipped == {"bad_json": 2, "no_payload": 2}


# ---- 16.3 caps bound current cardinality; a refusal never passes ---------------------------------------


def test_model_cap_releases_models_that_left_both_windows() -> None:
    post, pre = window_pair(5, 5, max_models=3)
    junk = [event(CUTOVER_MS + index, {f"junk{index}": ("BUY", 0.5)}) for index in range(3)]
    for item in junk:
        post.add(item)
    post.add(event(CUTOVER_MS + 3, {"newmodel": ("HOLD", 0.5)}))
    assert post.model("newmodel") is None  # three junk models still in the window: refused
    for index in range(4, 10):  # the junk ages out; the new model gets a code once one is free
        post.add(event(CUTOVER_MS + index, {"newmodel": ("HOLD", 0.5)}))
    columns = post.model("newmodel")
    assert columns is not None and columns.confidence.size == 5
    assert post.models() == ["newmodel"]
    assert post.notes().refused_keys == 0  # the refusals aged out with their events
    result = evaluate(post, pre, CUTOVER, SMALL_GATE, now=0.0, rate_per_minute=None)
    assert result.models["newmodel"].gated
    assert result.verdict == Verdict.FAIL  # the collapsed new model is gated, not waved through
    assert any(reason.startswith("newmodel: hold") for reason in result.reasons)


def test_model_cap_keeps_a_model_the_baseline_still_holds() -> None:
    post, pre = window_pair(2, 2, max_models=1)
    pre.add(event(CUTOVER_MS - 1, {"old": ("BUY", 0.5)}))
    for index in range(3):
        post.add(event(CUTOVER_MS + index, {"new": ("BUY", 0.5)}))
    assert post.models() == [] and pre.models() == ["old"]
    assert post.notes().refused_models == {"new": 2}  # the window holds 2 events, both refused "new"


def test_label_caps_release_actions_symbols_and_variants() -> None:
    post, _ = window_pair(3, 3, max_actions=5, max_variants=2, max_symbols=3)
    for index in range(12):
        vote = Vote("xgb", f"ACT{index}", 0.5, f"variant{index}", False, False)
        post.add(event(CUTOVER_MS + index, {"xgb": vote}, symbol=f"SYM{index}"))
    vocabulary = post.vocabulary
    columns = post.model("xgb")
    assert columns is not None
    actions = [vocabulary.actions.names[code] for code in columns.action.tolist()]
    symbols = [vocabulary.symbols.names[code] for code in columns.symbol.tolist()]
    variants = [vocabulary.variants.names[code] for code in columns.variant.tolist()]
    # One free code each for actions and variants, two for symbols. A code is freed only when the event
    # holding its label leaves the window (so a name waits for room): never stuck on the first names.
    assert actions == ["ACT9", "other", "other"]
    assert variants == ["variant9", "other", "other"]
    assert symbols == ["SYM9", "SYM10", "other"]
    assert len(vocabulary.actions.names) == 5
    assert len(vocabulary.variants.names) == 2
    assert len(vocabulary.symbols.names) == 3


def test_a_refused_model_key_fails_the_gate_with_a_reason_naming_it() -> None:
    post, pre = window_pair(100, 100, max_models=2)
    fill(pre, healthy_events(20, CUTOVER_MS - 100_000))
    fill(post, healthy_events(20, CUTOVER_MS))
    post.add(event(CUTOVER_MS + 50_000, {"xgb": ("BUY", 0.5), "brand_new": ("HOLD", 0.5)}))
    result = evaluate(post, pre, CUTOVER, SMALL_GATE, now=0.0, rate_per_minute=None)
    assert result.verdict == Verdict.FAIL
    assert result.post.refused_models == {"brand_new": 1}
    assert any("1 model key(s) refused" in reason and "'brand_new'" in reason for reason in result.reasons)


def test_a_key_refused_by_the_contract_fails_the_gate_too() -> None:
    post, pre = window_pair(50, 50)
    for item in healthy_events(20, CUTOVER_MS):
        post.add(item)
    post.add(event(CUTOVER_MS + 60_000, {"xgb": ("BUY", 0.5)}, refused=1))  # e.g. a 65-character key
    result = evaluate(post, pre, CUTOVER, SMALL_GATE, now=0.0, rate_per_minute=None)
    assert result.verdict == Verdict.FAIL
    assert result.post.refused_model_keys == 1


# ---- 16.4 a stream reset with lower IDs: rewind and count exactly -----------------------------------------


def test_reset_to_lower_ids_rewinds_and_counts_the_new_stream_exactly(
    redis_server: RedisServer, stream_key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingestor_module, "XINFO_EVERY_SECONDS", 0.05)
    client = redis_server.admin()
    cut = now_ms() - 600_000
    write_atomically(client, stream_key, healthy_entries(30, cut, 10_000))  # cut .. cut+290 s
    settings = make_settings(redis_server.url, stream_key, tmp_path, {"cutover": {"after": str(cut)}})
    daemon = Daemon(settings)
    with tailing(daemon):
        wait_until(lambda: daemon.ingestor.state().accepted_total == 30, 10, "the backlog")
        wait_until(lambda: daemon.ingestor.state().synced_added == 30, 10, "XINFO to see the stream")
        # A restore / a replica behind: the key recreated with IDs below the last one read, some before
        # the cutover (not re-read: the baseline's business) and 12 after it (plus one skipped entry).
        client.delete(stream_key)
        write_atomically(client, stream_key, healthy_entries(5, cut - 50_000, 1000))
        write_atomically(client, stream_key, healthy_entries(12, cut + 1, 1000))
        add_entry(client, stream_key, {"event_type": "other"}, f"{cut + 20_001}-0")  # no old ID reused
        wait_until(
            lambda: daemon.ingestor.state().accepted_total == 42,
            10,
            "the new stream's entries after the cutover",
        )
        wait_until(
            lambda: daemon.ingestor.state().synced_added == 18, 10, "XINFO to sync with the new stream"
        )
        assert daemon.ingestor.state().entries_read_total == 43
        assert daemon.ingestor.state().skipped_total == {"wrong_event_type": 1}
        assert daemon.ingestor.state().resets_total == 1 and daemon.ingestor.state().lost_total == 0
        assert str(daemon.ingestor.state().last_id) == f"{cut + 20_001}-0"
        assert len(daemon.windows.post) == 42  # the windows keep what they held (docs/architecture.md)


@pytest.mark.parametrize(
    ("kept", "new"),
    [(25, 6), (20, 0)],
    ids=[
        "failover: a replica lacking our last 5 entries, then 6 new ones below our position",
        "restore of an older backup: nothing new",
    ],
)
def test_reset_keeping_entries_already_read_counts_only_the_new_ones(
    redis_server: RedisServer,
    stream_key: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    kept: int,
    new: int,
) -> None:
    monkeypatch.setattr(ingestor_module, "XINFO_EVERY_SECONDS", 0.05)
    client = redis_server.admin()
    cut = now_ms() - 600_000
    old = healthy_entries(30, cut, 10_000)  # cut .. cut+290 s
    write_atomically(client, stream_key, old)
    settings = make_settings(redis_server.url, stream_key, tmp_path, {"cutover": {"after": str(cut)}})
    daemon = Daemon(settings)
    with tailing(daemon):
        wait_until(lambda: daemon.ingestor.state().accepted_total == 30, 10, "the backlog")
        wait_until(lambda: daemon.ingestor.state().synced_added == 30, 10, "XINFO to see the stream")
        client.delete(stream_key)
        write_atomically(client, stream_key, old[:kept])  # the same entries, same IDs
        newest_kept = int(old[kept - 1][0].split("-")[0])
        fresh = healthy_entries(new, newest_kept + 1, 1000)  # below the last ID read (cut+290 s)
        if fresh:
            write_atomically(client, stream_key, fresh)
        wait_until(lambda: daemon.ingestor.state().resets_total == 1, 10, "the reset")
        wait_until(
            lambda: daemon.ingestor.state().synced_added == kept + new,
            10,
            "XINFO to sync with the new stream",
        )
        assert daemon.ingestor.state().accepted_total == 30 + new  # nothing counted twice, nothing new missed
        assert daemon.ingestor.state().entries_read_total == 30 + new
        assert len(daemon.windows.post) == 30 + new
        assert str(daemon.ingestor.state().last_id) == (fresh[-1][0] if fresh else old[kept - 1][0])


# ---- 17.2 each refusal counted once ----------------------------------------------------------------------


def test_refused_model_keys_are_counted_once(
    redis_server: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    client = redis_server.admin()
    cut = now_ms() - 600_000
    three = {"a": ("BUY", 0.4), "b": ("SELL", 0.6), "c": ("HOLD", 0.5)}
    write_atomically(client, stream_key, [(f"{cut + i}-0", vote_fields(three)) for i in range(5)])
    settings = make_settings(
        redis_server.url,
        stream_key,
        tmp_path,
        {"cutover": {"after": str(cut)}, "contract": {"max_models": 2}},
    )
    daemon = Daemon(settings)
    registry = make_registry(daemon.snapshot)
    with tailing(daemon):
        wait_until(lambda: daemon.ingestor.state().accepted_total == 5, 10, "the backlog")
        assert registry.get_sample_value("quantum_gate_model_keys_refused_total") == 5  # "c" x 5
        tail = [(f"{cut + 10 + i}-0", vote_fields({"a": ("BUY", 0.4), "d": ("SELL", 0.5)})) for i in range(4)]
        long_key = "k" * 65  # over contract.max_key_length: refused by the contract, in a skipped entry
        tail.append((f"{cut + 20}-0", vote_fields({long_key: ("BUY", 0.5)})))
        write_atomically(client, stream_key, tail)
        wait_until(lambda: daemon.ingestor.state().entries_read_total == 10, 10, "the tail")
        assert daemon.ingestor.state().skipped_total == {"no_valid_votes": 1}
        assert registry.get_sample_value("quantum_gate_model_keys_refused_total") == 5 + 4 + 1


# ---- 16.2 property: check and the daemon give the same document for the same stream ------------------------

MODELS = ("xgb", "lgbm", "nhits")
ACTIONS = ("BUY", "SELL", "HOLD", "hold ", "Sell", "WAIT")
LONG_KEY = "k" * 65

confidences = st.one_of(st.sampled_from([0.5, 0.65, 1.05, -0.1]), st.floats(0.0, 1.0, width=32))
valid_vote = st.tuples(st.sampled_from(ACTIONS), confidences).map(
    lambda spec: {"action": spec[0], "confidence": spec[1], "model": "main"}
)
bad_vote = st.sampled_from([{"action": "BUY", "confidence": "x"}, {"action": "", "confidence": 0.5}, "nope"])
breakdowns = st.dictionaries(
    st.sampled_from((*MODELS, LONG_KEY, "fallback")),
    st.one_of(valid_vote, valid_vote, valid_vote, bad_vote),
    max_size=4,
)


@st.composite
def entry_fields(draw: st.DrawFn) -> dict[str, str]:
    kind = draw(st.sampled_from(["vote"] * 6 + ["flat", "bad_json", "array", "no_breakdown"]))
    if kind == "flat":
        return {"symbol": "ETHUSDT", "action": "BUY"}
    if kind == "bad_json":
        return {"event_type": "trade.intent", "payload": "{not json"}
    if kind == "array":
        return {"event_type": "trade.intent", "payload": "[1, 2]"}
    if kind == "no_breakdown":
        return {"event_type": "trade.intent", "payload": json.dumps({"symbol": "X"})}
    body = {
        "symbol": draw(st.sampled_from(["BTCUSDT", "ETHUSDT", ""])),
        "side": draw(st.sampled_from(["BUY", "SELL"])),
        "model_breakdown": draw(breakdowns),
    }
    return {"event_type": "trade.intent", "payload": json.dumps(body)}


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[tuple[str, dict[str, str]]], int, int]:
    """Entries with increasing IDs (some sharing a millisecond), maybe far-future ones last; the
    cutover's position and how many entries exist before the daemon starts."""
    count = draw(st.integers(0, 40))
    ms, seq = CUTOVER_MS - 20, 0
    entries: list[tuple[str, dict[str, str]]] = []
    for _ in range(count):
        if draw(st.integers(0, 4)) == 0 and entries:
            seq += 1
        else:
            ms, seq = ms + draw(st.integers(1, 3)), 0
        entries.append((f"{ms}-{seq}", draw(entry_fields())))
    far = sorted(set(draw(st.lists(st.integers(PACKED_MS_MAX + 1, 2**64 - 1), max_size=2))))
    entries += [(f"{value}-0", draw(entry_fields())) for value in far]
    cut = draw(st.integers(0, len(entries)))
    started_with = draw(st.integers(0, len(entries)))
    return entries, cut, started_with


def comparable(document: dict[str, Any]) -> dict[str, Any]:
    """The document without what depends on the clock or on the process (rate and ETA over a clock
    and a ring of arrival times, provenance, XINFO retention)."""
    kept = {
        k: v for k, v in document.items() if k not in {"evaluated_at", "evaluated_at_seconds", "retention"}
    }
    kept.pop("deployment", None)
    kept.pop("notes", None)
    kept["progress"] = {
        k: v for k, v in document["progress"].items() if k not in {"rate_per_minute", "eta_seconds"}
    }
    return kept


def assert_same(left: Any, right: Any, path: str = "") -> None:
    """Equal, floats within 1e-9 (a chi-square sums its cells in label-code order, which differs)."""
    if isinstance(left, dict) and isinstance(right, dict):
        assert set(left) == set(right), f"{path}: keys {sorted(set(left) ^ set(right))}"
        for key in left:
            assert_same(left[key], right[key], f"{path}.{key}")
    elif isinstance(left, list) and isinstance(right, list):
        assert len(left) == len(right), f"{path}: {left} != {right}"
        for index, (a, b) in enumerate(zip(left, right, strict=True)):
            assert_same(a, b, f"{path}[{index}]")
    elif isinstance(left, float) and isinstance(right, float):
        assert math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-12) or (
            math.isnan(left) and math.isnan(right)
        ), f"{path}: {left} != {right}"
    else:
        assert left == right, f"{path}: {left!r} != {right!r}"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stream=streams(),
    post_capacity=st.integers(1, 12),
    baseline_capacity=st.integers(1, 8),
    chunk=st.integers(1, 5),
)
def test_check_and_the_daemon_agree_on_any_stream(
    redis_server: RedisServer,
    stream: tuple[list[tuple[str, dict[str, str]]], int, int],
    post_capacity: int,
    baseline_capacity: int,
    chunk: int,
) -> None:
    entries, cut_at, started_with = stream
    if cut_at < len(entries):
        ms, seq = entries[cut_at][0].split("-")
        cut_id = StreamId(int(ms), int(seq))
    else:
        cut_id = StreamId(2**64 - 1, 0)
    cutover = Cutover(cut_id, source="after")
    key = f"test:property:{uuid.uuid4().hex[:12]}"
    client = redis_server.admin()
    config = {
        "cutover": {"after": str(cut_id)},
        "windows": {"post": post_capacity, "baseline": baseline_capacity},
        "gate": {"min_events": min(2, post_capacity), "min_samples": min(2, post_capacity)},
        "redis": {"page_size": 3, "read_count": chunk},
    }
    report_dir = Path(tempfile.mkdtemp(prefix="qg-property-"))
    settings_ = make_settings(redis_server.url, key, report_dir, config)
    now = time.time()
    try:
        # The daemon: starts with part of the stream (backfill), tails the rest in XREAD batches.
        write_atomically(client, key, entries[:started_with]) if started_with else None
        daemon = Daemon(settings_, clock=lambda: now)
        daemon.tracker.propose(cutover)
        daemon.ingestor.catch_up(client)
        write_atomically(client, key, entries[started_with:]) if entries[started_with:] else None
        while batch := read_after(
            client, key, daemon.ingestor.state().last_id or StreamId(0, 0), chunk, None
        ):
            daemon.ingestor.ingest(batch)
        daemon.evaluator.tick()
        assert daemon.evaluator.state().evaluation_errors_total == 0
        # check: the whole stream at once, newest first.
        result, post, pre = evaluate_once(settings_, cutover, now)
        report = settings_.report
        depth = report_depth(post, pre, top_symbols=report.top_symbols, histogram_bins=report.histogram_bins)
        checked = gate_document(result, stream=key, extra=depth)
        assert_same(comparable(checked), comparable(document_of(daemon)))
    finally:
        client.delete(key)
        client.close()
        shutil.rmtree(report_dir, ignore_errors=True)


# ---- Done when: a bounded fuzz of parse_entry + window + gate over any ID and field map -------------------

any_ids = st.builds(StreamId, st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
near_limit_ids = st.builds(
    StreamId, st.integers(PACKED_MS_MAX - 3, PACKED_MS_MAX + 3), st.integers(0, 2**64 - 1)
)
raw_payloads = st.one_of(
    st.binary(max_size=40),
    st.builds(lambda body: json.dumps(body).encode(), st.fixed_dictionaries({"model_breakdown": breakdowns})),
    st.builds(
        lambda body, symbol: json.dumps({"model_breakdown": body, "symbol": symbol, "side": symbol}).encode(),
        breakdowns,
        st.text(max_size=40),
    ),
)
field_maps = st.dictionaries(
    st.one_of(st.sampled_from([b"event_type", b"payload"]), st.binary(max_size=8)),
    st.one_of(st.just(b"trade.intent"), raw_payloads),
    max_size=4,
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.one_of(any_ids, near_limit_ids), field_maps), max_size=30),
    st.one_of(any_ids, near_limit_ids),
    st.integers(1, 10),
    st.integers(1, 3),
)
def test_fuzz_parse_window_gate(
    entries: list[tuple[StreamId, dict[bytes, bytes]]], cut: StreamId, capacity: int, max_models: int
) -> None:
    post, pre = window_pair(capacity, capacity, max_models=max_models, max_actions=4, max_symbols=3)
    skipped: Counter[str] = Counter()
    for stream_id, fields in entries:
        parsed = parse_entry(stream_id, fields, LIMITS)
        window = post if stream_id >= cut else pre
        if isinstance(parsed, Skip):
            skipped[parsed.reason] += 1
            window.note_skip(parsed, stream_id)
        else:
            window.add(parsed)
    beyond = sum(1 for stream_id, _ in entries if stream_id.ms > PACKED_MS_MAX)
    assert skipped["stream_id_out_of_range"] == beyond
    assert post.counters.skipped + pre.counters.skipped == skipped
    result = evaluate(post, pre, Cutover(cut, source="after"), SMALL_GATE, now=0.0, rate_per_minute=None)
    document = gate_document(
        result, stream="fuzz", extra=report_depth(post, pre, top_symbols=3, histogram_bins=5)
    )
    assert json.loads(dumps(document))["verdict"] in tuple(Verdict)
    assert len(post) <= capacity and len(pre) <= capacity
    assert len(post.models()) + len(pre.models()) <= 2 * max_models
    assert sum(result.post.skipped.values()) <= min(skipped.total(), capacity)
    if result.post.refused_model_keys:
        assert result.verdict != Verdict.PASS
    if not len(post):
        assert result.verdict != Verdict.PASS


def test_daemon_process_starts_on_a_poisoned_stream_and_keeps_tailing(
    redis_server: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    """`quantum-gate run` as operators start it, on a stream whose newest entries are far-future."""
    client = redis_server.admin()
    cut = now_ms() - 600_000
    write_atomically(client, stream_key, healthy_entries(10, cut, 1000))
    add_entry(client, stream_key, vote_fields({"xgb": ("BUY", 0.6)}), FAR)
    with daemon_process(tmp_path, redis_server.url, stream_key, "--after", str(cut)) as daemon:
        reason = "stream_id_out_of_range"
        daemon.wait_value("quantum_gate_events_skipped_total", 1, reason=reason)
        daemon.wait_value("quantum_gate_window_events", 10, window="post")
        add_entry(client, stream_key, vote_fields({"xgb": ("BUY", 0.6)}), "*")  # 9999999999999-1
        add_entry(client, stream_key, vote_fields({"xgb": ("BUY", 0.6)}), MAX_ID)
        daemon.wait_value("quantum_gate_events_skipped_total", 3, reason=reason)
        assert daemon.value("quantum_gate_redis_up") == 1
        daemon.wait_for(lambda: (daemon.get("/gate") or (0, b""))[0] == 200, 10, "an answer on /gate")
    assert "Traceback" not in daemon.stderr()
    assert not daemon.events("stream.failed")
