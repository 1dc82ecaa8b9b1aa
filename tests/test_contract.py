"""The trade.intent contract: the published fixtures, every skip reason, votes, caps, and totality."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from conftest import envelope, load_fixture_entries, payload
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantum_gate.contract import (
    FALLBACK_KEY,
    ContractLimits,
    Event,
    Skip,
    SkipReason,
    Vote,
    _short_string,
    _vote,
    as_bytes_fields,
    decode_json,
    normal_label,
    parse_entry,
)
from quantum_gate.report import dumps
from quantum_gate.stream import parse_raw
from quantum_gate.streamids import StreamId, parse_stream_id

LIMITS = ContractLimits()
SID = StreamId(1_768_024_065_847, 0)


def parse(fields: dict[str, str], limits: ContractLimits = LIMITS) -> Event | Skip:
    return parse_entry(SID, as_bytes_fields(fields), limits)


def accepted(fields: dict[str, str], limits: ContractLimits = LIMITS) -> Event:
    result = parse(fields, limits)
    assert isinstance(result, Event), result
    return result


def skipped(fields: dict[str, str], limits: ContractLimits = LIMITS) -> Skip:
    result = parse(fields, limits)
    assert isinstance(result, Skip), result
    return result


def raw_envelope(payload_text: str) -> dict[str, str]:
    return envelope(payload_text)


def votes_by_model(event: Event) -> dict[str, Vote]:
    return {vote.model: vote for vote in event.votes}


# ---- the published fixtures ------------------------------------------------------------------------


FIXTURES = load_fixture_entries()


def fixture(source: str, index: int = 0) -> dict[str, Any]:
    matches = [entry for entry in FIXTURES if entry["source"] == source]
    return matches[index]


def fixture_parse(entry: dict[str, Any], extra: dict[str, str] | None = None) -> Event | Skip:
    stream_id = parse_stream_id(entry["id"]) if "id" in entry else StreamId(0, 0)
    fields = {**entry["fields"], **(extra or {})}
    return parse_entry(stream_id, as_bytes_fields(fields), LIMITS)


def test_fixture_file_is_the_one_described() -> None:
    assert len(FIXTURES) == 8
    assert all("note" in entry and "fields" in entry for entry in FIXTURES)


def test_fixture_ai_engine_verbatim_probe_entries() -> None:
    first = fixture_parse(fixture("tmp/truthmap_probe.out", 0))
    assert isinstance(first, Event)
    assert first.stream_id == StreamId(1_771_110_235_658, 0)
    assert first.symbol == "BTCUSDT"
    assert first.side == "SELL"
    assert first.fallback is True
    votes = votes_by_model(first)
    assert sorted(votes) == ["lgbm", "xgb"]  # `fallback` is not a model
    assert votes["xgb"] == Vote("xgb", "HOLD", 0.9957418441772461, "vunknown", False, False)
    assert votes["lgbm"] == Vote("lgbm", "HOLD", 0.9916517101581528, "vv5", False, False)
    assert first.invalid_models == ()
    assert first.refused_keys == 0

    second = fixture_parse(fixture("tmp/truthmap_probe.out", 1))
    assert isinstance(second, Event)
    assert second.symbol == "A2ZUSDT"
    assert second.fallback is True
    assert second.votes == (Vote("patchtst", "HOLD", 0.5, "vunknown", False, False),)


def test_fixture_trading_bot_entries_have_no_model_breakdown() -> None:
    bot = [entry for entry in FIXTURES if entry["fields"].get("source") == "trading-bot"]
    assert len(bot) == 2
    for entry in bot:
        assert fixture_parse(entry) == Skip(SkipReason.NO_MODEL_BREAKDOWN)


def test_fixture_flat_variant_has_no_event_type() -> None:
    flat = fixture("SYSTEM_DIAGNOSTIC_REPORT_FEB8_2026.md")
    assert "id" not in flat
    assert fixture_parse(flat) == Skip(SkipReason.NO_EVENT_TYPE)


def test_fixture_abridged_patchtst_shadow_doc_entry() -> None:
    entry = fixture("PATCHTST_SHADOW_MODE_PROOF_PACK.md")
    assert fixture_parse(entry) == Skip(SkipReason.NO_EVENT_TYPE)  # the doc did not show the envelope
    event = fixture_parse(entry, {"event_type": "trade.intent"})
    assert isinstance(event, Event)
    votes = votes_by_model(event)
    assert sorted(votes) == ["lgbm", "nhits", "patchtst", "xgb"]
    assert votes["lgbm"].confidence == 0.75
    assert votes["lgbm"].variant == "lgbm_fallback_rules"
    assert votes["nhits"].variant == "nhits_fallback_rules"
    assert votes["patchtst"].shadow is True
    assert votes["patchtst"].variant == "patchtst_shadow"
    assert [vote.shadow for name, vote in sorted(votes.items()) if name != "patchtst"] == [False] * 3
    assert event.fallback is False
    assert event.side == "BUY"


def test_fixture_cutover_doc_entry_keeps_lgbm_1_05_raw() -> None:
    event = fixture_parse(fixture("CUTOVER_BASED_GATING_IMPLEMENTATION.md"))
    assert isinstance(event, Event)
    votes = votes_by_model(event)
    assert sorted(votes) == ["lgbm", "xgb"]
    assert votes["lgbm"].confidence == 1.05  # never sigmoid-reshaped (that would give ~0.741)
    assert votes["lgbm"].action == "SELL"
    assert votes["xgb"].confidence == 0.9866303205490112
    assert event.symbol is None and event.side is None  # abridged payload: only model_breakdown
    assert event.fallback is False


def test_fixture_forensic_doc_entry_five_models_and_fallback() -> None:
    entry = fixture("VPS_FORENSIC_AUDIT_2026-03-03.md")
    assert fixture_parse(entry) == Skip(SkipReason.NO_EVENT_TYPE)
    event = fixture_parse(entry, {"event_type": "trade.intent"})
    assert isinstance(event, Event)
    votes = votes_by_model(event)
    assert sorted(votes) == ["lgbm", "nhits", "patchtst", "tft", "xgb"]
    assert "fallback" not in votes
    assert event.fallback is True  # even though this fallback carries no confidence
    assert votes["nhits"].confidence == 1.0
    assert votes["tft"] == Vote("tft", "HOLD", 0.6828, None, False, False)
    assert event.invalid_models == ()


# ---- skip reasons ----------------------------------------------------------------------------------


SKIP_CASES: dict[str, dict[str, str]] = {
    "no_event_type": {"payload": payload({"xgb": ("BUY", 0.8)})},
    "wrong_event_type": {"event_type": "trade.executed", "payload": payload({"xgb": ("BUY", 0.8)})},
    "no_payload": {"event_type": "trade.intent"},
    "bad_json": raw_envelope('{"model_breakdown": {"xgb": '),
    "payload_not_object": raw_envelope(
        '[{"model_breakdown": {"xgb": {"action": "BUY", "confidence": 0.8}}}]'
    ),
    "no_model_breakdown": raw_envelope(json.dumps({"symbol": "BTCUSDT", "side": "BUY"})),
    "breakdown_not_object": raw_envelope(json.dumps({"model_breakdown": [["xgb", "BUY", 0.8]]})),
    "empty_model_breakdown": raw_envelope(json.dumps({"model_breakdown": {}})),
    "no_valid_votes": raw_envelope(json.dumps({"model_breakdown": {"xgb": {"action": "BUY"}}})),
}


@pytest.mark.parametrize("reason", sorted(SKIP_CASES))
def test_each_skip_reason(reason: str) -> None:
    assert skipped(SKIP_CASES[reason]).reason == reason


def test_every_skip_reason_is_reachable() -> None:
    seen = {skipped(fields).reason for fields in SKIP_CASES.values()}
    too_large = ContractLimits(max_payload_bytes=1024)
    seen.add(skipped(raw_envelope(payload({"xgb": ("BUY", 0.8)}, symbol="X" * 2000)), too_large).reason)
    bad_id = parse_raw((b"not-an-id", {b"event_type": b"trade.intent"}), LIMITS)
    assert bad_id == (None, Skip(SkipReason.BAD_STREAM_ID))
    seen.add(bad_id[1].reason)
    far = parse_raw(
        (b"9999999999999-0", as_bytes_fields(raw_envelope(payload({"xgb": ("BUY", 0.8)})))), LIMITS
    )
    assert far == (StreamId(9_999_999_999_999, 0), Skip(SkipReason.STREAM_ID_OUT_OF_RANGE))
    seen.add(far[1].reason)
    assert seen == set(SkipReason)


def test_skip_reasons_are_the_label_values_they_always_were() -> None:
    """``SkipReason`` replaced a tuple of strings: the same values in the same order (the exporter's
    series order), and each reads as its bare value wherever it is printed or serialised."""
    assert [reason.value for reason in SkipReason] == [
        "no_event_type",
        "wrong_event_type",
        "no_payload",
        "payload_too_large",
        "bad_json",
        "payload_not_object",
        "no_model_breakdown",
        "breakdown_not_object",
        "empty_model_breakdown",
        "no_valid_votes",
        "bad_stream_id",
        "stream_id_out_of_range",
    ]
    for reason in SkipReason:
        assert str(reason) == f"{reason}" == reason.value
        assert json.dumps({reason: [reason]}) == f'{{"{reason.value}": ["{reason.value}"]}}'
        assert dumps({reason: [reason]}, indent=False) == f'{{"{reason.value}":["{reason.value}"]}}'.encode()


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"event_type": "trade.intent", "payload": ""}, "no_payload"),
        ({"event_type": "", "payload": "{}"}, "wrong_event_type"),
        ({"event_type": "TRADE.INTENT", "payload": "{}"}, "wrong_event_type"),
        (
            {"data": json.dumps({"model_breakdown": {"xgb": {"action": "BUY", "confidence": 0.8}}})},
            "no_event_type",
        ),
        (raw_envelope("null"), "payload_not_object"),
        (raw_envelope('"a string"'), "payload_not_object"),
        (raw_envelope("42"), "payload_not_object"),
        (raw_envelope(json.dumps({"model_breakdown": None})), "no_model_breakdown"),
        (raw_envelope(json.dumps({"model_breakdown": "xgb"})), "breakdown_not_object"),
        (raw_envelope("{'model_breakdown': {}}"), "bad_json"),  # a Python repr is not JSON
        (raw_envelope(json.dumps({"model_breakdown": {"fallback": {"action": "BUY"}}})), "no_valid_votes"),
    ],
)
def test_more_skip_shapes(fields: dict[str, str], reason: str) -> None:
    assert skipped(fields).reason == reason


def test_payload_limit_is_inclusive() -> None:
    text = payload({"xgb": ("BUY", 0.8)})
    exact = ContractLimits(max_payload_bytes=len(text.encode()))
    assert isinstance(parse(raw_envelope(text), exact), Event)
    smaller = ContractLimits(max_payload_bytes=len(text.encode()) - 1)
    assert skipped(raw_envelope(text), smaller).reason == "payload_too_large"


# ---- votes -----------------------------------------------------------------------------------------


def breakdown_envelope(breakdown: dict[str, Any], **payload_keys: Any) -> dict[str, str]:
    return raw_envelope(
        json.dumps({"symbol": "ETHUSDT", "side": "SELL", **payload_keys, "model_breakdown": breakdown})
    )


@pytest.mark.parametrize(
    "bad_vote",
    [
        {"action": "BUY", "confidence": True},  # bool is not a confidence
        {"action": "BUY", "confidence": False},
        {"action": "BUY", "confidence": "0.8"},
        {"action": "BUY", "confidence": None},
        {"action": "BUY"},
        {"confidence": 0.8},
        {"action": "", "confidence": 0.8},
        {"action": 1, "confidence": 0.8},
        {"action": "BUY", "confidence": [0.8]},
        {"action": "B" * 65, "confidence": 0.8},
        "BUY",
        None,
        [0.8],
    ],
)
def test_invalid_votes_are_counted_per_model(bad_vote: Any) -> None:
    event = accepted(breakdown_envelope({"xgb": {"action": "BUY", "confidence": 0.8}, "lgbm": bad_vote}))
    assert [vote.model for vote in event.votes] == ["xgb"]
    assert event.invalid_models == ("lgbm",)


def test_entry_with_only_invalid_votes_is_no_valid_votes_and_names_them() -> None:
    result = skipped(
        breakdown_envelope(
            {
                "xgb": {"action": "BUY", "confidence": True},
                "lgbm": {"action": "SELL"},
                "fallback": {"action": "BUY", "confidence": 0.68},
            }
        )
    )
    assert result == Skip(SkipReason.NO_VALID_VOTES, ("xgb", "lgbm"), 0)


def test_nan_in_python_json_payload_is_an_invalid_vote_not_bad_json() -> None:
    text = json.dumps(
        {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "model_breakdown": {
                "xgb": {"action": "BUY", "confidence": math.nan},
                "lgbm": {"action": "BUY", "confidence": math.inf},
                "nhits": {"action": "HOLD", "confidence": -math.inf},
                "tft": {"action": "SELL", "confidence": 0.61},
            },
        }
    )
    assert "NaN" in text and "Infinity" in text  # what Python's json.dumps really writes
    event = accepted(raw_envelope(text))
    assert [(vote.model, vote.confidence) for vote in event.votes] == [("tft", 0.61)]
    assert event.invalid_models == ("xgb", "lgbm", "nhits")


def test_integer_confidences_are_numbers_and_huge_ones_invalid() -> None:
    huge = "1" + "0" * 400  # a valid JSON number that no float can hold
    text = (
        '{"model_breakdown": {"xgb": {"action": "BUY", "confidence": 1}, '
        f'"lgbm": {{"action": "BUY", "confidence": {huge}}}}}}}'
    )
    event = accepted(raw_envelope(text))
    assert event.votes == (Vote("xgb", "BUY", 1.0, None, False, False),)
    assert isinstance(event.votes[0].confidence, float)
    assert event.invalid_models == ("lgbm",)


@pytest.mark.parametrize("confidence", [1.05, 1.01, 1.0, -0.2, 0.0, 7.5])
def test_confidences_are_kept_raw_never_reshaped(confidence: float) -> None:
    event = accepted(breakdown_envelope({"lgbm": {"action": "SELL", "confidence": confidence}}))
    assert event.votes[0].confidence == confidence


def test_unknown_actions_are_kept_as_their_own_label() -> None:
    event = accepted(breakdown_envelope({"xgb": {"action": "LONG", "confidence": 0.7}}))
    assert event.votes[0].action == "LONG"


def test_vote_flags_and_variant() -> None:
    event = accepted(
        breakdown_envelope(
            {
                "patchtst": {"action": "HOLD", "confidence": 0.6, "model": "patchtst_shadow", "shadow": True},
                "nhits": {
                    "action": "BUY",
                    "confidence": 0.65,
                    "model": "nhits_fallback_rules",
                    "inactive": True,
                    "inactive_reason": "fallback_rules",
                },
                "xgb": {"action": "BUY", "confidence": 0.9, "model": 12, "shadow": "yes", "inactive": 1},
            }
        )
    )
    votes = votes_by_model(event)
    assert (votes["patchtst"].shadow, votes["patchtst"].inactive) == (True, False)
    assert (votes["nhits"].shadow, votes["nhits"].inactive) == (False, True)
    assert votes["nhits"].variant == "nhits_fallback_rules"
    assert (votes["xgb"].variant, votes["xgb"].shadow, votes["xgb"].inactive) == (None, False, False)


def test_unknown_payload_keys_are_ignored() -> None:
    event = accepted(
        breakdown_envelope(
            {"xgb": {"action": "BUY", "confidence": 0.9}},
            rl_action=None,
            ai_harvest_policy={"mode": "swing"},
            total_models="four",
        )
    )
    assert event.symbol == "ETHUSDT" and event.side == "SELL"


def test_symbol_and_side_bounded() -> None:
    event = accepted(
        breakdown_envelope({"xgb": {"action": "BUY", "confidence": 0.9}}, symbol="S" * 33, side=5)
    )
    assert event.symbol is None
    assert event.side is None


def test_fallback_is_never_a_model_but_sets_the_flag() -> None:
    with_fallback = accepted(raw_envelope(payload({"xgb": ("HOLD", 0.5)}, fallback=True)))
    assert with_fallback.fallback is True
    assert [vote.model for vote in with_fallback.votes] == ["xgb"]
    assert "fallback" not in with_fallback.invalid_models
    without = accepted(raw_envelope(payload({"xgb": ("HOLD", 0.5)})))
    assert without.fallback is False


# ---- caps ------------------------------------------------------------------------------------------


def test_key_length_cap_refuses_and_counts() -> None:
    breakdown = {
        "k" * 64: {"action": "BUY", "confidence": 0.6},
        "k" * 65: {"action": "BUY", "confidence": 0.6},
        "x" * 500: {"action": "SELL", "confidence": 0.7},
    }
    event = accepted(breakdown_envelope(breakdown))
    assert [vote.model for vote in event.votes] == ["k" * 64]
    assert event.refused_keys == 2


def test_models_per_entry_cap_refuses_and_counts() -> None:
    breakdown = {f"m{index:02d}": {"action": "BUY", "confidence": 0.5 + index / 100} for index in range(40)}
    breakdown["fallback"] = {"action": "BUY", "confidence": 0.68}
    event = accepted(breakdown_envelope(breakdown))
    assert len(event.votes) == 32
    assert [vote.model for vote in event.votes] == [f"m{index:02d}" for index in range(32)]
    assert event.refused_keys == 8
    assert event.fallback is True


def test_invalid_votes_count_towards_the_entry_cap() -> None:
    limits = ContractLimits(max_models_per_entry=2)
    breakdown = {
        "a": {"action": "BUY"},
        "b": {"action": "BUY", "confidence": 0.5},
        "c": {"action": "BUY", "confidence": 0.6},
    }
    event = accepted(breakdown_envelope(breakdown), limits)
    assert event.invalid_models == ("a",)
    assert [vote.model for vote in event.votes] == ["b"]
    assert event.refused_keys == 1


def test_refused_keys_are_reported_even_when_the_entry_is_skipped() -> None:
    limits = ContractLimits(max_key_length=4)
    result = skipped(breakdown_envelope({"toolong": {"action": "BUY", "confidence": 0.6}}), limits)
    assert result == Skip(SkipReason.NO_VALID_VOTES, (), 1)


# ---- labels must survive every output (JSON, UTF-8 Markdown, Prometheus) ---------------------------


def test_strings_from_the_stream_are_encodable_text() -> None:
    """Python's json.dumps writes a lone surrogate as the escape \\ud800; the stdlib decoder accepts it.
    A string that cannot be encoded as UTF-8 must never become a model key, action, variant or symbol:
    the JSON report (orjson), the Markdown file and Prometheus labels would all fail on it."""
    text = json.dumps(
        {
            "symbol": "\ud800BTC",
            "side": "BUY",
            "model_breakdown": {
                "\ud800xgb": {"action": "BUY", "confidence": 0.8},
                "lgbm": {"action": "B\udc00", "confidence": 0.7},
                "nhits": {"action": "BUY", "confidence": 0.6, "model": "v\ud800"},
                "tft": {"action": "SELL", "confidence": 0.55},
            },
        }
    )
    result = parse(raw_envelope(text))
    assert isinstance(result, Event)
    strings = [result.symbol, result.side, *result.invalid_models]
    for vote in result.votes:
        strings += [vote.model, vote.action, vote.variant]
    unencodable = [value for value in strings if value is not None and not _is_utf8(value)]
    assert unencodable == []
    assert "tft" in {vote.model for vote in result.votes}


def _is_utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# ---- totality (hypothesis) ------------------------------------------------------------------------


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.binary(max_size=20), st.binary(max_size=200), max_size=8))
def test_any_bytes_mapping_is_an_event_or_a_skip(fields: dict[bytes, bytes]) -> None:
    result = parse_entry(SID, fields, LIMITS)
    assert isinstance(result, Event | Skip)
    if isinstance(result, Skip):
        assert isinstance(result.reason, SkipReason)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=10)
    | st.sampled_from(["BUY", "SELL", "HOLD", "fallback", "model_breakdown", "confidence", "action"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(max_size=8) | st.sampled_from(["action", "confidence", "model", "shadow", "fallback"]),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@st.composite
def spelt_action(draw: st.DrawFn) -> str:
    """A case and whitespace variant of every action (issue 17): one action to the gate, however spelt."""
    action = draw(st.sampled_from(["BUY", "SELL", "HOLD", "LONG"]))
    cased = "".join(draw(st.sampled_from([char.upper(), char.lower()])) for char in action)
    padding = st.text(alphabet=" \t\r\n\u00a0\u2003", max_size=2)
    return draw(padding) + cased + draw(padding)


votes_strategy = (
    st.fixed_dictionaries(
        {},
        optional={
            "action": st.sampled_from(["BUY", "SELL", "HOLD", "", "LONG", "  "])
            | spelt_action()
            | json_values,
            "confidence": st.floats(allow_nan=True, allow_infinity=True) | json_values,
            "model": json_values,
            "shadow": json_values,
            "inactive": json_values,
        },
    )
    | json_values
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        json_values,
        st.fixed_dictionaries(
            {
                "model_breakdown": st.dictionaries(st.text(max_size=70), votes_strategy, max_size=6)
                | json_values
            },
            optional={"symbol": json_values, "side": json_values},
        ),
    ),
    st.sampled_from(["whole", "truncated"]),
)
def test_any_json_payload_is_an_event_or_a_skip(value: Any, encoding: str) -> None:
    text = json.dumps(value).encode()
    if encoding == "truncated":
        text = text[: len(text) // 2]
    result = parse_entry(SID, {b"event_type": b"trade.intent", b"payload": text}, LIMITS)
    assert isinstance(result, Event | Skip)
    if isinstance(result, Event):
        assert result.votes
        for vote in result.votes:
            assert isinstance(vote.confidence, float) and math.isfinite(vote.confidence)
            assert vote.model != "fallback"
            assert isinstance(vote.action, str) and vote.action
            assert vote.action == normal_label(vote.action)  # every spelling arrives in its normal form
            if vote.action in {"BUY", "SELL", "HOLD", "LONG"}:
                raw = value["model_breakdown"][vote.model]["action"]
                assert vote.respelled == (raw != vote.action)
    else:
        assert isinstance(result.reason, SkipReason)


# ---- the inlined hot path against the reference parser (hypothesis) --------------------------------


def reference_parse(text: bytes, limits: ContractLimits) -> Event | Skip | None:
    """``parse_entry`` after the envelope checks, written with the reference ``_vote`` for every key
    (None when the payload is no breakdown object at all: those skips are not the loop's)."""
    decoded = decode_json(text)
    breakdown = decoded.get("model_breakdown") if isinstance(decoded, dict) else None
    if not isinstance(breakdown, dict) or not breakdown:
        return None
    votes: list[Vote] = []
    invalid: list[str] = []
    refused, room, fallback = 0, limits.max_models_per_entry, False
    for key, value in breakdown.items():
        if key == FALLBACK_KEY:
            fallback = True
        elif room <= 0 or len(key) > limits.max_key_length or not key.isprintable():
            refused += 1
        else:
            room -= 1
            vote = _vote(key, value, limits)
            if vote is None:
                invalid.append(key)
            else:
                votes.append(vote)
    if not votes:
        return Skip(SkipReason.NO_VALID_VOTES, tuple(invalid), refused)
    side = decoded.get("side")
    side = _short_string(normal_label(side) if isinstance(side, str) else side, limits.max_key_length)
    symbol = _short_string(decoded.get("symbol"), limits.max_symbol_length)
    return Event(SID, symbol, side, fallback, tuple(votes), tuple(invalid), refused)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.text(max_size=8) | st.sampled_from(["xgb", "lgbm", "fallback", "k" * 65, "bad\nkey"]),
        votes_strategy
        | st.fixed_dictionaries(
            {"action": spelt_action(), "confidence": st.floats(allow_nan=True, allow_infinity=True)},
            optional={
                "model": json_values | st.sampled_from(["v" * 64, "v" * 65, "a\nb", ""]),
                "shadow": json_values,
                "inactive": json_values,
            },
        ),
        max_size=6,
    ),
    json_values,
    json_values | spelt_action(),
    st.integers(1, 4),
)
def test_the_inlined_hot_path_equals_the_reference_parser_on_any_breakdown(
    breakdown: dict[str, Any], symbol: Any, side: Any, models_per_entry: int
) -> None:
    """``_event_from_breakdown`` inlines ``_vote`` for the exact types JSON produces; every shape (any
    value, NaN and infinite confidences, key caps, fallback, symbol and side) must parse exactly as the
    reference does, vote for vote (tests/test_labels.py holds the label spellings alike)."""
    limits = ContractLimits(max_models_per_entry=models_per_entry)
    text = json.dumps({"symbol": symbol, "side": side, "model_breakdown": breakdown}).encode()
    expected = reference_parse(text, limits)
    result = parse_entry(SID, {b"event_type": b"trade.intent", b"payload": text}, limits)
    if expected is None:
        assert isinstance(result, Skip)
    else:
        assert result == expected
