"""The pipeline (windows -> evaluated document) and the frozen window copies the daemon evaluates
outside its lock: the same numbers as the live windows, independent of them afterwards, and a tail
thread that keeps ingesting while an evaluation is in flight."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import RedisServer, envelope, payload
from daemonkit import make_settings, tailing, wait_until, write_atomically
from eventkit import (
    CUTOVER,
    CUTOVER_MS,
    collapsed_entries,
    event,
    healthy_entries,
    healthy_events,
    healthy_vote,
)
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from quantum_gate import evaluator as evaluator_module
from quantum_gate.config import Settings
from quantum_gate.contract import Skip, SkipReason
from quantum_gate.cutover import Cutover
from quantum_gate.daemon import Daemon
from quantum_gate.histograms import window_histograms
from quantum_gate.modelstats import ModelView, ensemble_stats, model_stats
from quantum_gate.pipeline import evaluate_document, rate_from_windows
from quantum_gate.shared_windows import SharedWindows
from quantum_gate.streamids import SEQ_BITS, StreamId
from quantum_gate.windows import Window, frozen_pair, window_pair

NOW = CUTOVER_MS / 1000 + 900.0
SETTINGS = Settings.model_validate({"gate": {"min_events": 50, "min_samples": 20}})


def busy_pair() -> tuple[Window, Window]:
    """Small rings that wrapped, a model cap that released a model's row and reused it, skips and
    invalid votes noted on both sides: every part of a window a copy has to carry."""
    post, pre = window_pair(40, 30, max_models=3)
    older = healthy_events(40, CUTOVER_MS - 80_000, models=("xgb", "lgbm", "nhits"))
    newer = healthy_events(30, CUTOVER_MS - 35_000, models=("xgb", "lgbm"))  # nhits ages out of the ring
    for index, item in enumerate([*older, *newer]):
        if index % 9 == 0:
            pre.note_skip(Skip(SkipReason.BAD_JSON), StreamId(item.stream_id.ms, 1))
        pre.add(item)
    later = healthy_events(50, CUTOVER_MS, models=("xgb", "tft"))  # tft: a fourth model takes nhits' row
    for index, item in enumerate(later):
        post.add(item)
        if index % 7 == 0:
            post.add(event(item.stream_id.ms, {"xgb": ("HOLD", 0.5)}, seq=1, invalid=("lgbm",)))
    return post, pre


def test_a_frozen_pair_evaluates_exactly_like_the_live_pair() -> None:
    post, pre = busy_pair()
    assert len(post) == 40 and len(pre) == 30  # both wrapped
    frozen_post, frozen_pre = frozen_pair(post, pre)
    live = evaluate_document(post, pre, CUTOVER, SETTINGS, NOW)
    frozen = evaluate_document(frozen_post, frozen_pre, CUTOVER, SETTINGS, NOW)
    assert frozen[1] == live[1]
    assert frozen[0].models == live[0].models
    assert live[1]["models"]["tft"]["post"]["samples"] > 0  # the released-and-reused row is read


def test_a_frozen_pair_does_not_follow_the_live_pair() -> None:
    post, pre = busy_pair()
    registered = [ref() for ref in post.vocabulary._windows]
    frozen_post, frozen_pre = frozen_pair(post, pre)
    # The copies never enter the live vocabulary's list of windows: the tail thread may be registering
    # a fresh baseline in it outside the lock while the copies are taken.
    assert [ref() for ref in post.vocabulary._windows] == registered
    assert frozen_post.vocabulary is frozen_pre.vocabulary is not post.vocabulary
    before = evaluate_document(frozen_post, frozen_pre, CUTOVER, SETTINGS, NOW)[1]
    keys = frozen_post.keys().copy()
    for item in healthy_events(25, CUTOVER_MS + 60_000, models=("patchtst", "nhits", "xgb")):
        post.add(item)  # new models: the live vocabulary releases and reuses codes
    assert post.keys().tolist() != keys.tolist()
    assert frozen_post.keys().tolist() == keys.tolist()
    assert "patchtst" not in frozen_post.models()
    assert evaluate_document(frozen_post, frozen_pre, CUTOVER, SETTINGS, NOW)[1] == before


def test_what_is_computed_from_a_frozen_copy_is_kept_with_it_and_never_from_a_live_window() -> None:
    post, pre = busy_pair()
    frozen_post, _ = frozen_pair(post, pre)
    suspects = SETTINGS.gate.suspect_constants
    assert ModelView.of(frozen_post, "xgb") is ModelView.of(frozen_post, "xgb")
    assert model_stats(frozen_post, "xgb", suspects) is model_stats(frozen_post, "xgb", suspects)
    assert ensemble_stats(frozen_post) is ensemble_stats(frozen_post)
    assert ModelView.of(post, "xgb") is not ModelView.of(post, "xgb")  # a live window may change between
    assert model_stats(post, "xgb", suspects) is not model_stats(post, "xgb", suspects)
    assert model_stats(frozen_post, "xgb", (0.75,)) != model_stats(frozen_post, "xgb", (0.5,))  # keyed


def test_the_copy_of_an_unchanged_baseline_is_handed_out_again_and_any_change_makes_a_new_one() -> None:
    shared = SharedWindows(SETTINGS)
    shared.post, shared.pre = busy_pair()
    first_post, first_pre = shared.frozen()
    second_post, second_pre = shared.frozen()
    assert second_pre is first_pre  # unchanged baseline: the same copy, statistics and all
    assert second_post is not first_post  # the post window is copied at every evaluation
    changes: list[Callable[[Window], object]] = [
        lambda pre: pre.add(event(CUTOVER_MS - 1_000, {"xgb": ("SELL", 0.61)})),
        lambda pre: pre.note_skip(Skip(SkipReason.BAD_JSON), StreamId(CUTOVER_MS - 999, 0)),
        lambda pre: pre.retain_from(int(pre.keys()[3])),
        lambda pre: pre.reverse(),
    ]
    for change in changes:
        change(shared.pre)
        changed_pre = shared.frozen()[1]
        assert changed_pre is not first_pre
        assert shared.frozen()[1] is changed_pre
        first_pre = changed_pre
    shared.pre = Window("pre", 30, shared.post.vocabulary)  # a new baseline (a cutover's backfill)
    assert shared.frozen()[1] is not first_pre
    assert len(shared.frozen()[1]) == 0


_STEPS = st.lists(
    st.tuples(
        st.sampled_from(["post", "post", "pre", "skip_pre", "retain_pre", "reverse_pre", "new_pre"]),
        st.integers(0, 2**16),
    ),
    max_size=40,
)
_MODELS = ("xgb", "lgbm", "nhits", "tft")  # four models against a cap of three: rows are released


@hypothesis_settings(max_examples=60, deadline=None)
@given(_STEPS)
def test_a_reused_baseline_copy_evaluates_exactly_like_a_fresh_copy(steps: list[tuple[str, int]]) -> None:
    """The daemon evaluates the copy of an unchanged baseline again, with its kept statistics, next to
    a fresh copy of the post window in a newer vocabulary. After any sequence of changes, the document
    and the histograms equal those of fresh copies of both windows."""
    shared = SharedWindows(SETTINGS)
    shared.post, shared.pre = window_pair(12, 9, max_models=3, max_symbols=4)
    ms = CUTOVER_MS - 60_000
    for step, seed in steps:
        ms += 1 + seed % 3
        chosen = [model for bit, model in enumerate(_MODELS) if seed >> bit & 1] or ["xgb"]
        votes = {model: healthy_vote(seed, offset) for offset, model in enumerate(chosen)}
        symbol = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT")[seed % 5]
        if step == "post":
            shared.post.add(event(ms + 120_000, votes, symbol=symbol, side=("BUY", "SELL")[seed % 2]))
        elif step == "pre":
            shared.pre.add(event(ms, votes, symbol=symbol))
        elif step == "skip_pre":
            shared.pre.note_skip(Skip(SkipReason.BAD_JSON, invalid_models=("lgbm",)), StreamId(ms, 0))
        elif step == "retain_pre" and len(shared.pre):
            shared.pre.retain_from(int(shared.pre.keys()[seed % len(shared.pre)]))
        elif step == "reverse_pre":
            shared.pre.reverse()
        elif step == "new_pre":
            shared.pre = Window("pre", 9, shared.post.vocabulary)
        kept_post, kept_pre = shared.frozen()
        fresh_post, fresh_pre = frozen_pair(shared.post, shared.pre)
        kept = evaluate_document(kept_post, kept_pre, CUTOVER, SETTINGS, NOW)
        fresh = evaluate_document(fresh_post, fresh_pre, CUTOVER, SETTINGS, NOW)
        assert kept[1] == fresh[1]
        assert window_histograms(kept_post, kept_pre) == window_histograms(fresh_post, fresh_pre)


def test_the_rate_is_the_windows_events_within_the_horizon() -> None:
    post, pre = busy_pair()
    now = (int(post.keys()[-1]) >> SEQ_BITS) / 1000 + 30.0  # 30 s after the newest event
    assert len(post) == post.capacity  # wrapped: the post window alone is the newest contiguous run
    held = sorted((post.keys() >> SEQ_BITS).tolist())
    within = [ms for ms in held if ms >= now * 1000 - 60_000]
    span_ms = max(now * 1000 - within[0], 60_000)
    assert rate_from_windows(post, pre, now, 60) == pytest.approx(len(within) * 60_000 / span_ms)
    result, document = evaluate_document(post, pre, CUTOVER, SETTINGS.model_copy(), now)
    assert document["progress"]["rate_per_minute"] == result.progress.rate_per_minute
    assert result.progress.rate_per_minute == rate_from_windows(
        post, pre, now, SETTINGS.windows.rate_horizon_seconds
    )


def test_a_flow_faster_than_the_windows_hold_is_measured_over_the_span_they_cover() -> None:
    """30 events a minute into a post window of 40: the window covers 78 s of a 600 s horizon. The
    rate is taken over those 78 s (about 30/min), not spread over the horizon with a baseline from
    before the evicted events (which read 9/min before this rule)."""
    post, pre = window_pair(40, 30)
    for item in healthy_events(30, CUTOVER_MS - 400_000, step_ms=2000):
        pre.add(item)
    for item in healthy_events(100, CUTOVER_MS, step_ms=2000):  # 100 events, the newest 40 kept
        post.add(item)
    newest = (int(post.keys()[-1]) >> SEQ_BITS) / 1000
    rate = rate_from_windows(post, pre, newest + 1.0, 600)
    assert rate == pytest.approx(40 * 60 / 79.0)
    # not wrapped: baseline and post window together are one run since the baseline's oldest event
    post2, pre2 = window_pair(200, 30)
    for item in healthy_events(30, CUTOVER_MS - 60_000, step_ms=2000):
        pre2.add(item)
    for item in healthy_events(100, CUTOVER_MS, step_ms=2000):
        post2.add(item)
    newest2 = (int(post2.keys()[-1]) >> SEQ_BITS) / 1000
    span_s = newest2 + 1.0 - (CUTOVER_MS - 60_000) / 1000
    assert rate_from_windows(post2, pre2, newest2 + 1.0, 600) == pytest.approx(130 * 60 / span_s)


def test_without_a_cutover_the_rate_is_unknown_not_zero() -> None:
    post, pre = window_pair(40, 30)
    result, document = evaluate_document(post, pre, None, SETTINGS, NOW)
    assert result.progress.rate_per_minute is None and document["progress"]["rate_per_minute"] is None
    assert result.progress.eta_seconds is None and result.verdict == "INSUFFICIENT_DATA"


def test_the_tail_thread_ingests_while_an_evaluation_is_in_flight(
    redis_server: RedisServer, stream_key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The evaluation is held inside ``evaluate_document`` until the test has seen the tail thread take
    new entries; with the evaluation under the windows' lock, the tail would wait and this would fail."""
    client = redis_server.admin()
    cut = int(time.time() * 1000) - 300_000
    write_atomically(client, stream_key, healthy_entries(60, cut - 100_000, 1000))
    write_atomically(client, stream_key, collapsed_entries(40, cut, 1000))
    settings = make_settings(redis_server.url, stream_key, tmp_path, {"cutover": {"after": f"{cut}-0"}})
    daemon = Daemon(settings)
    in_flight, release, returned = threading.Event(), threading.Event(), threading.Event()
    real = evaluate_document

    def slow(*args: Any, **kwargs: Any) -> Any:
        in_flight.set()
        release.wait(30)  # bounded, and longer than the wait below: a broken test never hangs the suite
        returned.set()
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluator_module, "evaluate_document", slow)
    with tailing(daemon):
        wait_until(lambda: daemon.ingestor.state().accepted_total == 100, 10, "the backlog")
        ticking = threading.Thread(target=daemon.evaluator.tick, name="test-evaluation", daemon=True)
        ticking.start()
        try:
            wait_until(in_flight.is_set, 10, "the evaluation to start")
            fresh = [(f"{cut + 200_000 + i}-0", envelope(payload({"xgb": ("BUY", 0.7)}))) for i in range(25)]
            write_atomically(client, stream_key, fresh)
            # Read without the lock: a condition that took it would itself wait for the evaluation.
            wait_until(
                lambda: daemon.ingestor.state().accepted_total == 125, 10, "ingestion during the evaluation"
            )
            assert not returned.is_set()  # it progressed while the evaluation was held
            assert daemon.snapshot().tail.accepted_total == 125  # and the HTTP snapshot does not wait either
        finally:
            release.set()
            ticking.join(20)
        assert not ticking.is_alive()
        snap = daemon.snapshot()
    assert snap.evaluation.evaluations_total == 1
    result = snap.evaluation.result
    assert result is not None and result.post.events == 40  # what the copy held when taken
    assert snap.windows.events["post"] == 65


def test_a_result_for_a_superseded_cutover_is_never_served(
    redis_server: RedisServer, stream_key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The evaluation runs outside the lock, so the cutover (or its rollout) can change under it: that
    result is dropped and the evaluation asked for again; and the verdict already served for the
    previous state is withdrawn the moment the state changes (found by the Kubernetes demo: a PASS of
    revision 2 on /metrics next to rollout_complete 0 of the rollback)."""
    client = redis_server.admin()
    cut = int(time.time() * 1000) - 600_000
    write_atomically(client, stream_key, healthy_entries(250, cut, 1000))
    settings = make_settings(
        redis_server.url,
        stream_key,
        tmp_path,
        {"cutover": {"after": f"{cut}-0"}, "daemon": {"interval_seconds": 60}},
    )
    daemon = Daemon(settings)
    real = evaluate_document
    later = Cutover(StreamId(cut + 200_000), source="after")

    def moved_meanwhile(*args: Any, **kwargs: Any) -> Any:
        with daemon.windows.lock:  # what adopting a cutover does, while this evaluation is outside the lock
            daemon.windows.set_cutover(later)
        return real(*args, **kwargs)

    with tailing(daemon):
        wait_until(lambda: daemon.ingestor.state().accepted_total == 250, 10, "the backlog")
        daemon.evaluator.tick()
        served = daemon.snapshot()
        assert served.evaluation.result is not None and served.evaluation.result.verdict == "PASS"
        monkeypatch.setattr(evaluator_module, "evaluate_document", moved_meanwhile)
        daemon.evaluator.tick()
        snap = daemon.snapshot()
    # the old PASS withdrawn, the new result dropped
    assert snap.evaluation.result is None and snap.evaluation.document is None
    assert snap.evaluation.evaluations_total == 1
    assert daemon.evaluator.state().due is not None  # and the evaluation asked for again
