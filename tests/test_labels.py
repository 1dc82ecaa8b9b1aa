"""Issue 17 items 1 and 3: action labels compared in their normal form (spelling variants counted, never
a fail-open), and sporadic models (one stray vote of a typo key must not hold a cutover hostage).

The 300-event HOLD collapse spelled four ways is run through the pure core (parse_entry -> windows ->
evaluate) and through ``quantum-gate check`` against a private redis-server.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import RedisServer, envelope, payload
from daemonkit import document_of, make_settings, tailing, write_atomically
from eventkit import (
    CUTOVER,
    CUTOVER_MS,
    collapsed_vote,
    event,
    healthy_events,
    healthy_vote,
    run_gate,
    write_entries,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs
from test_cli import CUTOVER_ISO, as_json, check
from test_statuspage import NOW, Page, snapshot

from quantum_gate.config import ConfigError, GateSettings, Settings
from quantum_gate.config_loading import load_settings
from quantum_gate.contract import (
    ContractLimits,
    Event,
    Skip,
    Vote,
    _vote,
    as_bytes_fields,
    normal_label,
    parse_entry,
)
from quantum_gate.daemon import Daemon
from quantum_gate.exporter import make_registry
from quantum_gate.gate import evaluate, is_sporadic
from quantum_gate.report import gate_document, render_markdown, render_table
from quantum_gate.statuspage import render_status_page
from quantum_gate.streamids import StreamId
from quantum_gate.verdicts import Verdict
from quantum_gate.windows import Window, window_pair

LIMITS = ContractLimits()
POST_MS = CUTOVER_MS + 1000
SPELLINGS = ("HOLD", "hold", "Hold", "HOLD ")  # the four spellings of one action, in turn
ACTIONS = ("BUY", "SELL", "HOLD", "LONG", "Short_Squeeze")


# ---- 17.1: the four-spelling HOLD collapse ---------------------------------------------------------


def respelled_hold_fields(count: int, start_ms: int = POST_MS) -> list[tuple[str, dict[str, str]]]:
    """``count`` real-format entries after the cutover: one model (xgb) votes HOLD every time, spelled
    as SPELLINGS in turn, with healthy (spread) confidences so only the action checks can catch it."""
    return [
        (
            f"{start_ms + index * 1000}-0",
            envelope(payload({"xgb": (SPELLINGS[index % 4], healthy_vote(index)[1])}, side="BUY")),
        )
        for index in range(count)
    ]


def parsed_windows(entries: list[tuple[str, dict[str, str]]]) -> tuple[Window, Window]:
    post, pre = window_pair(2000, 2000)
    for stream_id, fields in entries:
        ms, seq = stream_id.split("-")
        parsed = parse_entry(StreamId(int(ms), int(seq)), as_bytes_fields(fields), LIMITS)
        assert isinstance(parsed, Event)
        post.add(parsed)
    return post, pre


def test_regression_hold_spelled_four_ways_fails_majority_and_hold_in_the_pure_gate() -> None:
    """Regression (issue 17.1): four spellings at 25 % each cleared majority (<= 70 %) and HOLD (<= 85 %)."""
    post, pre = parsed_windows(respelled_hold_fields(300))
    result = evaluate(post, pre, CUTOVER, GateSettings(), now=NOW, rate_per_minute=2.0)
    assert result.verdict == Verdict.FAIL
    xgb = result.models["xgb"]
    assert xgb.post.action_counts == {"HOLD": 300}
    assert xgb.post.hold_share == 1.0 and xgb.post.majority_share == 1.0
    assert {check.name for check in xgb.failed()} == {"majority", "hold"}
    assert "xgb: majority 1 (must be <= 0.7)" in result.reasons
    assert "xgb: hold 1 (must be <= 0.85)" in result.reasons
    assert xgb.post.action_label_variants == 225  # hold, Hold and "HOLD " in 3 of every 4 votes
    assert xgb.pre.action_label_variants == 0


def test_regression_hold_spelled_four_ways_fails_check_against_redis(
    redis_server: RedisServer, stream_key: str
) -> None:
    client = redis_server.admin()
    write_entries(client, stream_key, respelled_hold_fields(300))
    result = check(redis_server, stream_key, "--after", CUTOVER_ISO, "--json")
    assert result.returncode == 2, result.stdout + result.stderr
    document = as_json(result)
    assert document["verdict"] == "FAIL"
    assert "xgb: majority 1 (must be <= 0.7)" in document["reasons"]
    assert "xgb: hold 1 (must be <= 0.85)" in document["reasons"]
    xgb = document["models"]["xgb"]
    assert xgb["post"]["action_shares"] == {"HOLD": 1.0}
    assert xgb["post"]["action_label_variants"] == 225
    table = check(redis_server, stream_key, "--after", CUTOVER_ISO)
    assert table.returncode == 2
    assert (
        "labels: xgb (post) 225 of 300 votes spelled an action differently from its normal form "
        "(counted as that form)"
    ) in table.stdout.splitlines()


def test_label_variants_are_a_window_statistic_that_ages_out() -> None:
    """A function of the votes in the window (so ``check`` and the daemon agree), not a counter."""
    post, pre = window_pair(100, 100)
    entries = respelled_hold_fields(100) + [
        (f"{POST_MS + 200_000 + index}-0", envelope(payload({"xgb": ("HOLD", 0.5)}))) for index in range(60)
    ]
    for stream_id, fields in entries:
        ms, seq = stream_id.split("-")
        parsed = parse_entry(StreamId(int(ms), int(seq)), as_bytes_fields(fields), LIMITS)
        assert isinstance(parsed, Event)
        post.add(parsed)
    result = evaluate(post, pre, CUTOVER, GateSettings(min_events=1), now=NOW, rate_per_minute=None)
    # the newest 100: events 60..99 of the respelled run (30 respelled), then 60 canonical ones
    assert result.models["xgb"].post.action_label_variants == 30


def test_label_variants_reach_the_metrics_report_and_status_page() -> None:
    post, pre = parsed_windows(respelled_hold_fields(300))
    snap = snapshot(post, pre)
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in make_registry(lambda: snap).collect()
        for sample in family.samples
    }
    name = "quantum_gate_model_action_label_variants"
    assert samples[(name, (("model", "xgb"), ("window", "post")))] == 225
    assert samples[(name, (("model", "xgb"), ("window", "pre")))] == 0
    assert (
        samples[
            ("quantum_gate_model_action_share", (("action", "HOLD"), ("model", "xgb"), ("window", "post")))
        ]
        == 1
    )
    actions = {labels for (metric, labels) in samples if metric == "quantum_gate_model_action_share"}
    assert all(dict(labels)["action"] in {"BUY", "SELL", "HOLD"} for labels in actions)

    assert snap.evaluation.document is not None
    markdown = render_markdown(snap.evaluation.document)
    assert "## Action label spellings" in markdown
    assert "- labels: xgb (post) 225 of 300 votes spelled an action differently" in markdown
    page = Page(render_status_page(snap, NOW))
    assert "label spellings" in " ".join(page.text)
    row = render_status_page(snap, NOW).split("<tr data-model='xgb'>")[1].split("</tr>")[0]
    assert "<span class=warn>225</span><span class=sub>pre 0</span>" in row


# ---- 17.1: the normal form, in the fast parse path and the reference parser --------------------------


@st.composite
def spelling(draw: st.DrawFn, action: str) -> str:
    """A case and whitespace variant of ``action``: each letter upper or lower, padding on either side."""
    cased = "".join(draw(st.sampled_from([char.upper(), char.lower()])) for char in action)
    pad = st.text(alphabet=" \t\n\r\x0b\x0c\u00a0\u2003\u3000", max_size=3)
    return draw(pad) + cased + draw(pad)


# Where case folding and upper-casing part ways (capital sharp s, ligatures, dotted I, final sigma).
FOLDING = ("\u1e9eUY", "stra\u00dfe", "\u0130tem", "\ufb03x", "\u03c3\u03c2", " \u1e9e ", "\u00df" * 40)


def any_action() -> st.SearchStrategy[str]:
    return st.sampled_from(ACTIONS).flatmap(spelling) | st.sampled_from(FOLDING) | st.text(max_size=70)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(ACTIONS).flatmap(lambda action: st.tuples(st.just(action), spelling(action))))
def test_every_case_and_whitespace_variant_is_its_actions_normal_form(pair: tuple[str, str]) -> None:
    action, spelt = pair
    vote = _vote("xgb", {"action": spelt, "confidence": 0.5}, LIMITS)
    assert vote is not None
    assert vote.action == action.upper()
    assert vote.respelled == (spelt != action.upper())


@settings(max_examples=500, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["xgb", "lgbm", "nhits", "tft", "fallback"]),
        st.fixed_dictionaries(
            {"action": any_action(), "confidence": st.floats(-0.5, 1.5) | st.integers(0, 1)},
            optional={"model": st.text(max_size=5), "shadow": st.booleans(), "inactive": st.booleans()},
        ),
        min_size=1,
        max_size=5,
    ),
    any_action(),
)
def test_the_inlined_fast_parse_equals_the_reference_parser(breakdown: dict[str, Any], side: str) -> None:
    """``_event_from_breakdown`` inlines ``_vote`` for the shapes JSON produces: both must normalise
    (and count respellings, and apply the limits to the normal form) identically."""
    text = json.dumps({"symbol": "BTCUSDT", "side": side, "model_breakdown": breakdown})
    parsed = parse_entry(StreamId(1, 0), {b"event_type": b"trade.intent", b"payload": text.encode()}, LIMITS)
    expected = {key: _vote(key, value, LIMITS) for key, value in breakdown.items() if key != "fallback"}
    valid = {key: vote for key, vote in expected.items() if vote is not None}
    if not valid:
        assert isinstance(parsed, Skip)
        assert parsed.reason == "no_valid_votes"
        return
    assert isinstance(parsed, Event)
    assert {vote.model: vote for vote in parsed.votes} == valid
    assert set(parsed.invalid_models) == {key for key, vote in expected.items() if vote is None}
    side_normal = normal_label(side)
    kept = side_normal and len(side_normal) <= LIMITS.max_key_length and side_normal.isprintable()
    assert parsed.side == (side_normal if kept else None)  # one printable line (docs/contract.md)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_the_normal_form_is_idempotent_upper_case_and_stripped(label: str) -> None:
    normal = normal_label(label)
    assert normal_label(normal) == normal
    assert normal == normal.strip() == normal.upper()
    assert normal_label(label.swapcase()) == normal or label.swapcase().casefold() != label.casefold()


def test_whitespace_only_action_is_an_invalid_vote_not_a_label() -> None:
    text = json.dumps(
        {
            "model_breakdown": {
                "xgb": {"action": "  ", "confidence": 0.5},
                "lgbm": {"action": "buy", "confidence": 0.6},
            }
        }
    )
    parsed = parse_entry(StreamId(1, 0), {b"event_type": b"trade.intent", b"payload": text.encode()}, LIMITS)
    assert isinstance(parsed, Event)
    assert parsed.invalid_models == ("xgb",)
    assert parsed.votes == (Vote("lgbm", "BUY", 0.6, None, False, False, True),)


def test_canonical_labels_are_not_counted_as_variants() -> None:
    text = json.dumps(
        {
            "side": " sell",
            "model_breakdown": {
                m: {"action": a, "confidence": 0.5}
                for m, a in zip("abcd", ("BUY", "SELL", "HOLD", "LONG"), strict=True)
            },
        }
    )
    parsed = parse_entry(StreamId(1, 0), {b"event_type": b"trade.intent", b"payload": text.encode()}, LIMITS)
    assert isinstance(parsed, Event)
    assert [vote.respelled for vote in parsed.votes] == [False] * 4
    assert parsed.side == "SELL"


# ---- 17.3: sporadic models ---------------------------------------------------------------------------


def with_typo(events: list[Event], at: int, model: str = "typo_modl") -> list[Event]:
    """One stray vote of a typo model key in event ``at``."""
    stray = Vote(model, "BUY", 0.61, None, False, False)
    return [
        item._replace(votes=(*item.votes, stray)) if index == at else item
        for index, item in enumerate(events)
    ]


def test_regression_one_stray_vote_of_a_typo_model_does_not_block_a_pass() -> None:
    """Regression (issue 17.3): ``typo_modl`` with 1 vote was gated with 1 of 200 samples, and the
    verdict stayed INSUFFICIENT_DATA for the whole cutover (no report, no hook)."""
    result = run_gate(with_typo(healthy_events(300, POST_MS), at=150))
    assert result.verdict == Verdict.PASS, result.reasons
    typo = result.models["typo_modl"]
    assert typo.sporadic and not typo.gated
    assert typo.post.samples == 1
    assert [report.name for report in result.gated()] == ["lgbm", "xgb"]
    document = gate_document(result, stream="s")
    assert document["sporadic_models"] == {"typo_modl": {"votes": 1, "share": 1 / 300}}
    assert document["models"]["typo_modl"]["sporadic"] is True
    assert document["models"]["xgb"]["sporadic"] is False
    line = (
        "sporadic: typo_modl cast 1 vote in 300 post-cutover events (0.3%), below gate.sporadic_share 5.0% "
        "and gate.min_samples 200 (before the cutover too): not gated"
    )
    assert line in render_table(document).splitlines()
    assert f"## Sporadic models (not gated)\n\n- {line}" in render_markdown(document)


def test_a_stray_vote_that_is_invalid_is_sporadic_too() -> None:
    events = healthy_events(300, POST_MS)
    events[10] = events[10]._replace(invalid_models=("typo_modl",))
    result = run_gate(events)
    assert result.verdict == Verdict.PASS, result.reasons
    assert result.models["typo_modl"].sporadic and result.models["typo_modl"].post.invalid_votes == 1


def test_a_real_new_model_that_collapses_fails_once_it_has_enough_votes() -> None:
    """A new model votes in every event: gated from its first votes, so the gate waits for it, then FAILs."""
    events = [
        event(POST_MS + index, {"xgb": healthy_vote(index), "newm": collapsed_vote(index)})
        for index in range(260)
    ]
    early = run_gate(events[:150], settings=GateSettings(min_events=100))
    assert early.verdict == Verdict.INSUFFICIENT_DATA
    assert early.models["newm"].gated and not early.models["newm"].sporadic
    assert "newm: 150 of 200 samples" in early.reasons
    late = run_gate(events)
    assert late.verdict == Verdict.FAIL
    assert "newm: hold 1 (must be <= 0.85)" in late.reasons
    assert late.collapsed_models() == ["newm"]


def test_a_new_model_with_a_few_votes_above_the_share_blocks_the_gate() -> None:
    """15 votes in 250 events (6 % >= 5 %): a model starting up is gated, INSUFFICIENT_DATA until 200."""
    events = [
        item._replace(votes=(*item.votes, Vote("newm", *collapsed_vote(index), None, False, False)))
        if index >= 235
        else item
        for index, item in enumerate(healthy_events(250, POST_MS))
    ]
    result = run_gate(events)
    assert result.verdict == Verdict.INSUFFICIENT_DATA
    assert result.reasons == ("newm: 15 of 200 samples",)
    assert not result.models["newm"].sporadic


@pytest.mark.parametrize(("share", "cast", "events"), [(0.07, 7, 100), (0.05, 10, 200), (0.03, 3, 100)])
def test_a_model_at_exactly_the_share_is_gated(share: float, cast: int, events: int) -> None:
    """``votes / events >= share`` is gated, as documented, with no floating-point surprise at the line."""
    stats = run_gate(healthy_events(events, POST_MS)).models["xgb"].post
    at_share = dataclasses.replace(stats, samples=cast - 1, invalid_votes=1)  # invalid votes count too
    below = dataclasses.replace(stats, samples=cast - 1, invalid_votes=0)
    gate = GateSettings(sporadic_share=share)
    assert not is_sporadic(at_share, events, gate)
    assert is_sporadic(below, events, gate)


def test_a_model_that_voted_regularly_before_the_cutover_and_rarely_after_stays_gated() -> None:
    """Rare after the cutover but regular in the baseline: a broken model, not noise (fail closed)."""
    post = [
        item._replace(votes=(*item.votes, Vote("tft", *healthy_vote(index, 2), None, False, False)))
        if index in (10, 200)
        else item
        for index, item in enumerate(healthy_events(300, POST_MS))
    ]
    pre = healthy_events(100, CUTOVER_MS - 200_000, models=("xgb", "lgbm", "tft"))
    result = run_gate(post, pre)
    assert result.verdict == Verdict.INSUFFICIENT_DATA
    assert result.reasons == ("tft: 2 of 200 samples",)
    assert result.models["tft"].gated and not result.models["tft"].sporadic
    stray_before = [pre[0], *healthy_events(99, CUTOVER_MS - 99_000)]  # 1 tft vote in 100 baseline events
    typo = run_gate(post, stray_before)
    assert typo.models["tft"].pre.samples == 1
    assert typo.verdict == Verdict.PASS and typo.models["tft"].sporadic


def test_a_rare_model_with_min_samples_votes_is_gated_whatever_its_share() -> None:
    """200 collapsed votes in 5000 events (4 %, below the share): it can be judged, so it is gated."""
    events = healthy_events(5000, POST_MS)
    events = [
        item._replace(votes=(*item.votes, Vote("rare", "HOLD", 0.5, None, False, False)))
        if index % 25 == 0
        else item
        for index, item in enumerate(events)
    ]
    post, pre = window_pair(5000, 10)
    for item in events:
        post.add(item)
    result = evaluate(post, pre, CUTOVER, GateSettings(), now=NOW, rate_per_minute=None)
    assert result.models["rare"].post.samples == 200
    assert result.models["rare"].gated and not result.models["rare"].sporadic
    assert result.verdict == Verdict.FAIL
    assert "rare: hold 1 (must be <= 0.85)" in result.reasons


def test_included_models_are_never_sporadic_and_zero_share_gates_every_model() -> None:
    events = with_typo(healthy_events(300, POST_MS), at=3)
    included = run_gate(events, settings=GateSettings(include_models=("xgb", "lgbm", "typo_modl")))
    assert included.verdict == Verdict.INSUFFICIENT_DATA
    assert included.reasons == ("typo_modl: 1 of 200 samples",)
    assert included.models["typo_modl"].gated and not included.models["typo_modl"].sporadic
    every = run_gate(events, settings=GateSettings(sporadic_share=0.0))
    assert every.verdict == Verdict.INSUFFICIENT_DATA and every.reasons == ("typo_modl: 1 of 200 samples",)
    excluded = run_gate(events, settings=GateSettings(exclude_models=("typo_modl",)))
    assert excluded.verdict == Verdict.PASS
    assert not excluded.models["typo_modl"].sporadic  # excluded, which says more than sporadic


def test_sporadic_share_is_validated_and_read_from_the_environment() -> None:
    assert Settings().gate.sporadic_share == 0.05
    assert load_settings(environ={"QUANTUM_GATE_GATE_SPORADIC_SHARE": "0.1"}).gate.sporadic_share == 0.1
    with pytest.raises(ConfigError, match=r"gate\.sporadic_share"):
        load_settings(environ={"QUANTUM_GATE_GATE_SPORADIC_SHARE": "1.5"})


def test_sporadic_models_reach_the_metrics_and_status_page() -> None:
    post, pre = window_pair(2000, 2000)
    for item in with_typo(healthy_events(300, POST_MS), at=7):
        post.add(item)
    snap = snapshot(post, pre)
    document = snap.evaluation.document
    assert document is not None and document["verdict"] == Verdict.PASS
    values = {
        (sample.name, sample.labels.get("model")): sample.value
        for family in make_registry(lambda: snap).collect()
        for sample in family.samples
    }
    assert values[("quantum_gate_model_sporadic", "typo_modl")] == 1
    assert values[("quantum_gate_model_sporadic", "xgb")] == 0
    assert values[("quantum_gate_model_gated", "typo_modl")] == 0
    html = render_status_page(snap, NOW)
    text = " ".join(Page(html).text)
    assert "Sporadic, not gated" in text
    assert "typo_modl : 1 vote in 300 post-cutover events (0.3%)" in text  # the key in <code>
    row = html.split("<tr data-model='typo_modl'>")[1].split("</tr>")[0]
    assert "sporadic" in row


def typo_entries(count: int, start_ms: int = POST_MS, typo_at: int = 120) -> list[tuple[str, dict[str, str]]]:
    """Healthy xgb and lgbm votes in ``count`` real-format entries; one stray ``typo_modl`` vote."""

    def votes(index: int) -> dict[str, tuple[str, float] | dict[str, Any]]:
        cast: dict[str, tuple[str, float] | dict[str, Any]] = {
            "xgb": healthy_vote(index),
            "lgbm": healthy_vote(index, 1),
        }
        if index == typo_at:
            cast["typo_modl"] = ("BUY", 0.61)
        return cast

    return [
        (f"{start_ms + index * 1000}-0", envelope(payload(votes(index), side=("BUY", "SELL")[index % 2])))
        for index in range(count)
    ]


def test_check_passes_with_a_stray_typo_vote_against_redis(
    redis_server: RedisServer, stream_key: str
) -> None:
    client: redis.Redis = redis_server.admin()
    write_entries(client, stream_key, typo_entries(250))
    result = check(redis_server, stream_key, "--after", CUTOVER_ISO, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    document = as_json(result)
    assert document["verdict"] == "PASS"
    assert document["sporadic_models"] == {"typo_modl": {"votes": 1, "share": 1 / 250}}


# ---- the daemon: the automatic gate completes, and its document equals check's ------------------------


def test_the_daemon_completes_the_automatic_gate_despite_a_stray_typo_vote(
    redis_server: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    """Regression (issue 17.3): "no report, no hook" while a 1-vote typo model was gated."""
    cut = int(time.time() * 1000) - 600_000
    write_atomically(redis_server.admin(), stream_key, typo_entries(250, cut))
    daemon = Daemon(make_settings(redis_server.url, stream_key, tmp_path, {"cutover": {"after": f"{cut}-0"}}))
    with capture_logs() as logs, tailing(daemon):
        daemon.evaluator.tick()
    completed = [entry for entry in logs if entry["event"] == "gate.completed"]
    assert len(completed) == 1 and completed[0]["verdict"] == Verdict.PASS
    (report,) = tmp_path.glob("quality_gate_*.json")
    document = json.loads(report.read_text(encoding="utf-8"))
    assert document["sporadic_models"] == {"typo_modl": {"votes": 1, "share": 1 / 250}}
    assert "## Sporadic models (not gated)" in report.with_suffix(".md").read_text(encoding="utf-8")


def test_the_daemon_and_check_count_the_same_label_variants(
    redis_server: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    cut = int(time.time() * 1000) - 600_000
    write_atomically(redis_server.admin(), stream_key, respelled_hold_fields(300, cut))
    daemon = Daemon(make_settings(redis_server.url, stream_key, tmp_path, {"cutover": {"after": f"{cut}-0"}}))
    with tailing(daemon):
        daemon.evaluator.tick()
        from_daemon = document_of(daemon)["models"]["xgb"]
    result = check(redis_server, stream_key, "--after", str(cut), "--json")
    assert result.returncode == 2
    from_check = as_json(result)["models"]["xgb"]
    assert from_daemon["post"]["action_label_variants"] == from_check["post"]["action_label_variants"] == 225
    assert from_daemon["post"] == from_check["post"]
    assert document_of(daemon)["verdict"] == Verdict.FAIL
