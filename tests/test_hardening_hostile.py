"""Hardening, hostile input (issue 6, item 4): thousands of poisonous entries through the live daemon,
and a nasty fuzz of ``contract.parse_entry`` (deep, huge, binary), checked against the contract's spec.

The daemon must not crash, must count every entry under a reason (accepted + skipped == written), and
keep its memory and its metric label sets bounded however much garbage arrives.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from conftest import RedisServer
from hardening_kit import COMPACT_VARIANTS, DaemonProcess, Metrics, xadd_many
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantum_gate.checks import CHECKS
from quantum_gate.contract import ContractLimits, Event, Skip, SkipReason, parse_entry
from quantum_gate.streamids import StreamId
from quantum_gate.verdicts import Verdict

Fields = dict[bytes, bytes]
LIMITS = ContractLimits()
DEEP = 100_000
MAX_MODELS, MAX_ACTIONS, MAX_KEY = 32, 16, 64  # the configured defaults the daemon runs with


def envelope(payload: bytes | str) -> Fields:
    body = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload
    return {
        b"event_type": b"trade.intent",
        b"payload": body,
        b"trace_id": b"",
        b"correlation_id": b"00000000-0000-4000-8000-000000000000",
        b"timestamp": b"2026-01-10T05:47:45.847268",
        b"source": b"ai-engine",
    }


def with_breakdown(breakdown: Any, **extra: Any) -> Fields:
    return envelope(json.dumps({"symbol": "BTCUSDT", "side": "BUY", "model_breakdown": breakdown, **extra}))


def vote(action: Any = "BUY", confidence: Any = 0.61, model: Any = "xgb_main") -> dict[str, Any]:
    return {"action": action, "confidence": confidence, "model": model}


WRONG_TYPES: list[Any] = [None, True, 0, -1, 1e308, "", "x", [], [1], {}, {"a": 1}, "0.5", [0.5]]


def binary_entries(rng: random.Random) -> Iterator[Fields]:
    """Binary keys and values, with and without the envelope's field names."""
    for _ in range(1000):
        count = rng.randint(1, 6)
        yield {rng.randbytes(rng.randint(1, 40)): rng.randbytes(rng.randint(0, 200)) for _ in range(count)}
    for _ in range(500):
        yield envelope(rng.randbytes(rng.randint(1, 2000)))
    for _ in range(200):
        yield {b"event_type": rng.randbytes(12), b"payload": rng.randbytes(64), b"\xff\x00": b"\x00\xff"}


def deep_and_huge_entries(rng: random.Random) -> Iterator[Fields]:
    """100,000-deep nesting (as the payload and inside a vote) and 2 MB payloads."""
    for _ in range(10):
        yield envelope("[" * DEEP + "]" * DEEP)
        yield envelope('{"a":' * DEEP + "1" + "}" * DEEP)
        yield envelope('{"model_breakdown": {"xgb": ' + "[" * DEEP + "]" * DEEP + "}}")
    for _ in range(5):
        yield with_breakdown({"xgb": vote()}, padding="p" * 2_000_000)
        yield envelope(b"{" + rng.randbytes(2_000_000))


def number_entries() -> Iterator[Fields]:
    """NaN, Infinity (Python json.dumps writes them), huge integers, out-of-range confidences."""
    for special in ("NaN", "Infinity", "-Infinity", "1e999", "9" * 400, "-0.0", "1.05", "-3"):
        xgb = '{"xgb": {"action": "BUY", "confidence": ' + special + "}"
        for _ in range(60):
            yield envelope(
                '{"side": "SELL", "model_breakdown": '
                + xgb
                + ', "lgbm": {"action": "SELL", "confidence": 0.4}}}'
            )
            yield envelope('{"model_breakdown": ' + xgb + "}}")


def wrong_type_entries() -> Iterator[Fields]:
    """Every field of the wrong type, and each envelope field missing."""
    for wrong in WRONG_TYPES:
        for _ in range(20):
            yield envelope(json.dumps(wrong))  # the payload itself
            yield with_breakdown(wrong)
            yield with_breakdown({"xgb": wrong})
            yield with_breakdown({"xgb": vote(action=wrong)})
            yield with_breakdown({"xgb": vote(confidence=wrong)})
            yield with_breakdown({"xgb": vote(model=wrong)}, symbol=wrong, side=wrong)
            yield with_breakdown({"xgb": vote(), "fallback": wrong})
    for name in (b"event_type", b"payload"):
        for _ in range(50):
            fields = envelope(json.dumps({"model_breakdown": {"xgb": vote()}}))
            del fields[name]
            yield fields


def label_entries(tag: str) -> Iterator[Fields]:
    """10,000 distinct model keys, enormous labels, thousands of distinct labels, escapes."""
    for index in range(1000):
        yield with_breakdown({f"m{tag}_{index}_{k}": vote() for k in range(10)})
    yield with_breakdown({f"wide{tag}_{k}": vote() for k in range(10_000)})
    big = "L" * 100_000
    for _ in range(20):
        yield with_breakdown({big: vote()})
        yield with_breakdown({"xgb": vote(action=big)})
        yield with_breakdown({"xgb": vote(model=big)}, symbol=big, side=big)
    for index in range(3000):
        yield with_breakdown(
            {"xgb": vote(action=f"A{tag}{index}", model=f"V{tag}{index}")},
            symbol=f"S{tag}{index}",
            side=f"D{tag}{index}",
        )
    for _ in range(50):
        yield with_breakdown({'x"g\\b\n\t\u2028': vote(action='B"U\\Y\n', model="\x00")})


def hostile_entries(rng: random.Random, tag: str) -> Iterator[Fields]:
    """Thousands of entries, each poisonous in its own way; ``tag`` makes label values unique per pass."""
    yield from binary_entries(rng)
    yield from deep_and_huge_entries(rng)
    yield from number_entries()
    yield from wrong_type_entries()
    yield from label_entries(tag)


def rss_mib(daemon: DaemonProcess) -> float:
    return daemon.rss_kib() / 1024


def label_report(metrics: Metrics) -> dict[str, set[str]]:
    return metrics.label_values()


# Its own waits add up to 330 s (30 + 2 x (120 + 30)); the suite-wide 120 s cut it short on a loaded
# machine (CI run with other jobs: killed while parsing a scrape at 120 s, not stuck).
@pytest.mark.timeout(360)
def test_hostile_entries_by_the_thousand_are_all_counted_and_bounded(
    redis_server: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    admin = redis_server.admin()
    rng = random.Random(6)
    daemon = DaemonProcess(redis_server.url, stream_key, tmp_path / "daemon", args=["--window", "20000"])
    try:
        daemon.start()
        xadd_many(admin, stream_key, 300)  # healthy events first: the gate has something to compute
        daemon.wait_until(lambda m: m.get("verdict", verdict="pass") == 1, timeout=30, what="PASS")
        rss_healthy = rss_mib(daemon)
        written = 300
        checkpoints: list[float] = []
        for tag in ("a", "b"):  # the same poison twice: memory and labels must not grow with it
            batch = list(hostile_entries(rng, tag))
            for start in range(0, len(batch), 200):
                pipe = admin.pipeline(transaction=False)
                for fields in batch[start : start + 200]:
                    pipe.xadd(stream_key, fields)  # type: ignore[arg-type]
                pipe.execute()
            written += len(batch)
            xadd_many(admin, stream_key, 1)  # a healthy last entry, a barrier for the counts
            written += 1
            seen = daemon.wait_until(
                lambda m, n=written: m.get("entries_read_total") == n,  # type: ignore[misc]
                timeout=120,
                what=f"{written} entries read",
            )
            evaluations = seen.value("evaluations_total")
            seen = daemon.wait_until(
                lambda m, e=evaluations: m.value("evaluations_total") >= e + 2,  # type: ignore[misc]
                timeout=30,
                what="two evaluations over the poisoned windows",
            )
            checkpoints.append(rss_mib(daemon))
            accepted = seen.value("events_accepted_total")
            skipped = seen.family("events_skipped_total")
            assert accepted + sum(skipped.values()) == written, (accepted, skipped)
            assert {labels[0][1] for labels in skipped} <= set(SkipReason)
            assert seen.value("redis_up") == 1
            assert seen.value("evaluation_errors_total") == 0
        daemon.assert_alive()
        final = seen
    finally:
        daemon.close()

    labels = label_report(final)
    print(
        f"hostile: {written:,} entries; RSS healthy {rss_healthy:.1f} MiB, after pass 1 "
        f"{checkpoints[0]:.1f} MiB, after pass 2 {checkpoints[1]:.1f} MiB; "
        f"/metrics {len(final.text):,} bytes, "
        + ", ".join(f"{name}={len(values)}" for name, values in sorted(labels.items()))
    )
    by_reason = {key[0][1]: value for key, value in final.family("events_skipped_total").items()}
    for reason in ("no_event_type", "wrong_event_type", "no_payload", "payload_too_large", "bad_json"):
        assert by_reason[reason] > 0, reason
    for reason in ("payload_not_object", "breakdown_not_object", "empty_model_breakdown", "no_valid_votes"):
        assert by_reason[reason] > 0, reason
    assert len(labels["model"]) <= MAX_MODELS
    assert len(labels["action"]) <= MAX_ACTIONS + 1
    assert labels["reason"] <= set(SkipReason)  # --after: no systemd error reasons either
    assert labels["window"] <= {"pre", "post"}
    assert labels.get("check", set()) <= set(CHECKS)
    assert labels["verdict"] <= {verdict.lower() for verdict in Verdict}
    assert max(len(value) for values in labels.values() for value in values) <= MAX_KEY
    assert len(final.text) < 512 * 1024, "the /metrics page grew with the poison"
    assert final.value("model_keys_refused_total") > 0
    assert checkpoints[0] - rss_healthy < 200, "the first pass of poison cost over 200 MiB"
    assert checkpoints[1] <= checkpoints[0] * 1.10 + 5, (
        "memory kept growing with a second pass of the same poison"
    )


# ---- fuzzing the parser --------------------------------------------------------------------------

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=80)
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=70), inner, max_size=5),
    max_leaves=40,
)


@st.composite
def spelt_action(draw: st.DrawFn) -> str:
    """A case and whitespace variant of every action (issue 17: spellings must not split a collapse)."""
    action = draw(st.sampled_from(["BUY", "SELL", "HOLD", "LONG", "other"]))
    cased = "".join(draw(st.sampled_from([char.upper(), char.lower()])) for char in action)
    padding = st.text(alphabet=" \t\n\u00a0\u3000", max_size=2)
    return draw(padding) + cased + draw(padding)


actions = (
    st.sampled_from(["BUY", "SELL", "HOLD", "", "buy", " ", "A" * 65, " " + "a" * 64 + " ", "\u00df" * 40])
    | spelt_action()
    | json_values
)
confidences = (
    st.sampled_from([0.5, 1.0, 1.05, -0.0, math.nan, math.inf, -math.inf, 10**400 // 10**399]) | json_values
)
votes = st.fixed_dictionaries(
    {"action": actions, "confidence": confidences},
    optional={"model": st.text(max_size=70) | json_values, "shadow": json_values, "inactive": json_values},
)
model_keys = st.sampled_from(["xgb", "lgbm", "fallback", "", "k" * 64, "k" * 65]) | st.text(max_size=80)
breakdowns = st.dictionaries(model_keys, votes | json_values, max_size=40) | json_values
payload_objects = st.fixed_dictionaries(
    {"model_breakdown": breakdowns}, optional={"symbol": json_values, "side": json_values}
)


@st.composite
def payload_bytes(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["object", "value", "deep", "huge", "binary", "truncated"]))
    if kind == "object":
        return json.dumps(draw(payload_objects)).encode()
    if kind == "value":
        return json.dumps(draw(json_values)).encode()
    if kind == "deep":
        depth = draw(st.integers(min_value=1, max_value=DEEP))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"model_breakdown":', "}")]))
        return (opener * depth + draw(st.sampled_from(["1", "[]", "{}", "NaN"])) + closer * depth).encode()
    if kind == "huge":
        size = draw(st.integers(min_value=LIMITS.max_payload_bytes - 64, max_value=3 * 1_048_576))
        return json.dumps(
            {"model_breakdown": {"xgb": {"action": "BUY", "confidence": 0.5}}, "p": "x" * size}
        ).encode()
    if kind == "binary":
        return draw(st.binary(max_size=300))
    text = json.dumps(draw(payload_objects)).encode()
    return text[: draw(st.integers(min_value=0, max_value=len(text)))]


@st.composite
def entry_fields(draw: st.DrawFn) -> dict[bytes, bytes]:
    fields = draw(st.dictionaries(st.binary(max_size=12), st.binary(max_size=40), max_size=4))
    if draw(st.booleans()):
        fields[b"event_type"] = draw(
            st.sampled_from([b"trade.intent", b"trade.intent ", b"TRADE.INTENT", b""])
        )
    if draw(st.integers(min_value=0, max_value=9)):
        fields[b"payload"] = draw(payload_bytes())
    return fields


def decoded(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def spec_vote(value: Any) -> tuple[str, float, str | None] | None:
    """The contract (docs/contract.md, "Votes") for one model's vote, written independently: the action
    in its normal form (whitespace stripped, case folded, upper-case), limits on the normal form."""
    if not isinstance(value, dict):
        return None
    action, confidence = value.get("action"), value.get("confidence")
    action = action.strip().casefold().upper() if isinstance(action, str) else ""
    if not 0 < len(action) <= LIMITS.max_key_length:
        return None
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        return None
    try:
        number = float(confidence)
    except OverflowError:
        return None
    if not math.isfinite(number):
        return None
    variant = value.get("model")
    keep = isinstance(variant, str) and 0 < len(variant) <= LIMITS.max_key_length
    return action, number, variant if keep else None


def check_against_spec(fields: Mapping[bytes, bytes], result: Event | Skip) -> None:
    assert isinstance(result, Event | Skip)
    if isinstance(result, Skip):
        assert isinstance(result.reason, SkipReason)
        assert result.refused_keys >= 0
        return
    assert fields.get(b"event_type") == b"trade.intent"
    raw = fields[b"payload"]
    assert len(raw) <= LIMITS.max_payload_bytes
    payload = decoded(raw)
    assert isinstance(payload, dict) and isinstance(payload.get("model_breakdown"), dict)
    breakdown: dict[str, Any] = payload["model_breakdown"]
    considered = [key for key in breakdown if key != "fallback" and len(key) <= LIMITS.max_key_length]
    considered = considered[: LIMITS.max_models_per_entry]
    expected = {key: spec_vote(breakdown[key]) for key in considered}
    got = {vote.model: (vote.action, vote.confidence, vote.variant) for vote in result.votes}
    assert got == {key: value for key, value in expected.items() if value is not None}
    assert set(result.invalid_models) == {key for key, value in expected.items() if value is None}
    assert len(result.votes) + len(result.invalid_models) <= LIMITS.max_models_per_entry
    assert result.fallback == ("fallback" in breakdown)
    assert all(math.isfinite(vote.confidence) for vote in result.votes)
    assert result.symbol is None or 0 < len(result.symbol) <= LIMITS.max_symbol_length
    assert result.side is None or 0 < len(result.side) <= LIMITS.max_key_length
    assert result.side is None or result.side == result.side.strip().upper()  # its normal form


@settings(
    max_examples=int(os.environ.get("QG_FUZZ_EXAMPLES", "400")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(entry_fields())
def test_fuzz_parse_entry_deep_huge_binary_matches_the_contract(fields: dict[bytes, bytes]) -> None:
    result = parse_entry(StreamId(1_768_023_795_000, 7), fields, LIMITS)
    check_against_spec(fields, result)


def test_fuzz_corpus_of_the_live_test_matches_the_contract() -> None:
    """The live test's poison, parsed directly, so a failure names the entry."""
    for fields in hostile_entries(random.Random(7), "x"):
        check_against_spec(fields, parse_entry(StreamId(1, 0), fields, LIMITS))
    for variant in COMPACT_VARIANTS[:10]:
        assert isinstance(parse_entry(StreamId(1, 0), variant, LIMITS), Event)
