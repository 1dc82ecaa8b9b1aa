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
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import RedisServer, envelope, payload
from daemonkit import add_entry, make_settings, tailing, wait_until, write_atomically
from eventkit import CUTOVER, CUTOVER_MS, event, healthy_entries, fill, healthy_events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli import as_json, check

from quantum_gate import daemon as daemon_module
from quantum_gate.breakdown import report_depth
from quantum_gate.cli import evaluate_once
from quantum_gate.config import GateSettings
from quantum_gate.contract import ContractLimits, Event, Skip, Vote, parse_entry
from quantum_gate.cutover import Cutover
from quantum_gate.daemon import Daemon
from quantum_gate.exporter import make_registry
from quantum_gate.gate import FAIL, PASS, VERDICTS, evaluate
from quantum_gate.report import dumps, gate_document
from quantum_gate.stream import read_after
from quantum_gate.streamids import PACKED_MS_MAX, StreamId
from quantum_gate.windows import Window, window_pair

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
    for stream_id in (StreamId(PACKED_MS_MAX + 1, 0), StreamId(9_999_999_999_999, 0), StreamId(2**64 - 1, 2**64 - 1)):
        assert parse_entry(stream_id, fields, LIMITS) == Skip("stream_id_out_of_range")


def test_window_notes_an_out_of_range_event_instead_of_raising() -> None:
    """An Event built elsewhere (not through parse_entry) with a far-future ID: noted, not an OverflowError."""
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
    assert document["verdict"] == PASS
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
        wait_until(lambda: daemon.accepted_total == 20, 10, "the backlog")
        add_entry(client, stream_key, vote_fields({"xgb": ("BUY", 0.6)}), FAR)
        add_entry(client, stream_key, vote_fields({"xgb": ("BUY", 0.6)}), "*")
        add_entry(client, stream_key, {"event_type": "other"}, "*")
        add_entry(client, stream_key, vote_fields({"xgb": ("BUY", 0.6)}), MAX_ID)
        wait_until(lambda: daemon.entries_read_total == 24, 10, "the far-future entries to be read")
        daemon.evaluation_tick()
        snapshot = daemon.snapshot()
        assert snapshot.redis_up
        assert snapshot.skipped_total == {"stream_id_out_of_range": 4}  # the ID decides first
        assert daemon.evaluation_errors_total == 0
        assert daemon.document is not None
        assert daemon.document["windows"]["post"]["skipped"] == {"stream_id_out_of_range": 4}
        assert len(daemon.post) == 20
        assert str(daemon.last_id) == MAX_ID
    # A restart reads the same stream from scratch: the windows are built, the skips counted.
    restarted = Daemon(settings)
    with tailing(restarted):
        wait_until(lambda: restarted.result is None and len(restarted.post) == 20, 10, "the backfill")
        restarted.evaluation_tick()
        assert restarted.redis_up and restarted.evaluation_errors_total == 0
        assert restarted.skipped_total == {"stream_id_out_of_range": 4}
        assert restarted.accepted_total == 20
        assert restarted.document is not None and restarted.document["windows"]["post"]["events"] == 20


# ---- 16.2 window statistics are functions of the events in the window ------------------------------------


def test_skip_notes_age_out_with_the_events_around_them() -> None:
    post, pre = window_pair(3, 3)
    post.add(event(CUTOVER_MS, {"xgb": ("BUY", 0.5)}))
    post.note_skip(Skip("no_valid_votes", ("xgb",)), StreamId(CUTOVER_MS + 1, 0))
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
    post.note_skip(Skip("no_valid_votes", ("xgb",)), StreamId(CUTOVER_MS + 4_500, 0))
    for item in events[5:8]:
        post.add(item)
    gate = GateSettings(min_events=5, min_samples=5)
    assert evaluate(post, pre, CUTOVER, gate, now=0.0, rate_per_minute=None).verdict == FAIL
    for item in events[8:]:
        post.add(item)
    result = evaluate(post, pre, CUTOVER, gate, now=0.0, rate_per_minute=None)
    assert result.verdict == PASS, result.reasons
    assert result.models["xgb"].post.invalid_votes == 0


def test_cutover_moving_forward_keeps_the_notes_after_it() -> None:
    post, _ = window_pair(10, 10)
    post.note_skip(Skip("bad_json"), StreamId(CUTOVER_MS + 1, 0))
    post.add(event(CUTOVER_MS + 2, {"xgb": ("BUY", 0.5)}))
    post.note_skip(Skip("wrong_event_type"), StreamId(CUTOVER_MS + 3, 0))
    post.retain_from(StreamId(CUTOVER_MS + 2, 0).packed())
    assert post.notes().skipped == {"wrong_event_type": 1}


def test_skip_notes_are_bounded_by_the_window_capacity_whatever_the_order() -> None:
    forward, _ = window_pair(4, 4)
    backward, _ = window_pair(4, 4)
    skips = [(Skip("bad_json" if ms % 2 else "no_payload"), StreamId(ms, 0)) for ms in range(1, 40)]
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
    assert post.notes().refused_models == {"newmodel": 1}  # three junk models still in the window
    for index in range(4, 10):  # the junk ages out; the new model gets a code once one is free
        post.add(event(CUTOVER_MS + index, {"newmodel": ("HOLD", 0.5)}))
    assert post.models() == ["newmodel"]
    columns = post.model("newmodel")
    assert columns is not None and columns.confidence.size == 5
    assert post.notes().refused_keys == 0  # the refusal aged out with its event
    result = evaluate(post, pre, CUTOVER, SMALL_GATE, now=0.0, rate_per_minute=None)
    assert result.models["newmodel"].gated
    assert result.verdict == FAIL  # the collapsed new model is gated, not waved through
    assert any(reason.startswith("newmodel: hold") for reason in result.reasons)


def test_model_cap_keeps_a_model_the_baseline_still_holds() -> None:
    post, pre = window_pair(2, 2, max_models=1)
    pre.add(event(CUTOVER_MS - 1, {"old": ("BUY", 0.5)}))
    for index in range(3):
        post.add(event(CUTOVER_MS + index, {"new": ("BUY", 0.5)}))
    assert post.models() == [] and pre.models() == ["old"]
    assert post.notes().refused_models == {"new": 2}  # the window holds 2 events, both refused "new"


def test_label_caps_release_actions_symbols_and_variants() -> None:
    post, pre = window_pair(3, 3, max_actions=5, max_variants=2, max_symbols=3)
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
    assert result.verdict == FAIL
    assert result.post.refused_models == {"brand_new": 1}
    assert any("1 model key(s) refused" in reason and "'brand_new'" in reason for reason in result.reasons)


def test_a_key_refused_by_the_contract_fails_the_gate_too() -> None:
    post, pre = window_pair(50, 50)
    for item in healthy_events(20, CUTOVER_MS):
        post.add(item)
    post.add(event(CUTOVER_MS + 60_000, {"xgb": ("BUY", 0.5)}, refused=1))  # e.g. a 65-character key
    result = evaluate(post, pre, CUTOVER, SMALL_GATE, now=0.0, rate_per_minute=None)
    assert result.verdict == FAIL
    assert result.post.refused_model_keys == 1
