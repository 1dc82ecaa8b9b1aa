"""The trade.intent contract: one stream entry's fields -> an accepted ``Event`` or a named ``Skip``.

Pure and total: any mapping of bytes to bytes yields one of the two, never an exception (a hypothesis
test holds us to that). Only the AI-engine envelope with a ``model_breakdown`` object feeds the gate;
every other entry is skipped under a ``SkipReason`` so it is counted, never dropped.
See docs/contract.md (and the producer's own contract, docs/reference/producer-contract.md).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

import orjson

from quantum_gate.streamids import PACKED_MS_MAX, StreamId

EVENT_TYPE = b"trade.intent"
FALLBACK_KEY = "fallback"


class SkipReason(StrEnum):
    """Why an entry was skipped: the ``reason`` label of ``events_skipped_total``, in the contract's
    order. An enum so a misspelt reason is a type error, never a counted or exported label; each value
    is the label itself (a ``str``), so documents, metrics and logs read exactly as the strings did."""

    NO_EVENT_TYPE = "no_event_type"
    WRONG_EVENT_TYPE = "wrong_event_type"
    NO_PAYLOAD = "no_payload"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    BAD_JSON = "bad_json"
    PAYLOAD_NOT_OBJECT = "payload_not_object"
    NO_MODEL_BREAKDOWN = "no_model_breakdown"
    BREAKDOWN_NOT_OBJECT = "breakdown_not_object"
    EMPTY_MODEL_BREAKDOWN = "empty_model_breakdown"
    NO_VALID_VOTES = "no_valid_votes"
    BAD_STREAM_ID = "bad_stream_id"
    STREAM_ID_OUT_OF_RANGE = "stream_id_out_of_range"


@dataclass(frozen=True, slots=True)
class ContractLimits:
    """Bounds that keep a hostile producer from exploding memory or metric labels."""

    max_models_per_entry: int = 32
    max_key_length: int = 64
    max_payload_bytes: int = 1_048_576
    max_symbol_length: int = 32


class Vote(NamedTuple):
    model: str
    action: str  # the normal form (``normal_label``), never the raw spelling
    confidence: float
    variant: str | None
    shadow: bool
    inactive: bool
    respelled: bool = False  # the raw action label differed from its normal form (counted per model)


class Event(NamedTuple):
    stream_id: StreamId
    symbol: str | None
    side: str | None
    fallback: bool
    votes: tuple[Vote, ...]
    invalid_models: tuple[str, ...]
    refused_keys: int


class Skip(NamedTuple):
    reason: SkipReason
    invalid_models: tuple[str, ...] = ()
    refused_keys: int = 0


def parse_entry(  # noqa: PLR0911 - one return per named skip reason, in the contract's order
    stream_id: StreamId, fields: Mapping[bytes, bytes], limits: ContractLimits
) -> Event | Skip:
    if stream_id.ms > PACKED_MS_MAX:  # after 2039-09-07: valid in Redis, but no window can hold it
        return _OUT_OF_RANGE
    event_type = fields.get(b"event_type")
    if event_type is None:
        return Skip(SkipReason.NO_EVENT_TYPE)
    if event_type != EVENT_TYPE:
        return Skip(SkipReason.WRONG_EVENT_TYPE)
    raw_payload = fields.get(b"payload")
    if raw_payload is None or raw_payload == b"":
        return Skip(SkipReason.NO_PAYLOAD)
    if len(raw_payload) > limits.max_payload_bytes:
        return Skip(SkipReason.PAYLOAD_TOO_LARGE)
    try:
        payload = _orjson_loads(raw_payload)  # decode_json inlined: its fast path
    except _OrjsonError:
        payload = decode_json(raw_payload)
        if payload is _BAD_JSON:
            return Skip(SkipReason.BAD_JSON)
    if not isinstance(payload, dict):
        return Skip(SkipReason.PAYLOAD_NOT_OBJECT)
    breakdown = payload.get("model_breakdown")
    if breakdown is None:
        return Skip(SkipReason.NO_MODEL_BREAKDOWN)
    if not isinstance(breakdown, dict):
        return Skip(SkipReason.BREAKDOWN_NOT_OBJECT)
    if not breakdown:
        return Skip(SkipReason.EMPTY_MODEL_BREAKDOWN)
    return _event_from_breakdown(stream_id, payload, breakdown, limits)


_OUT_OF_RANGE = Skip(SkipReason.STREAM_ID_OUT_OF_RANGE)


def normal_label(label: str) -> str:
    """An action label's normal form: surrounding whitespace stripped, compared case-insensitively
    (Unicode case folding), written upper-case. ``HOLD``, ``hold``, ``Hold`` and ``HOLD `` are one
    action, so spelling variants cannot split a collapse into several healthy-looking shares
    (issue 17). Idempotent: ``normal_label(normal_label(x)) == normal_label(x)``."""
    return label.strip().casefold().upper()


# Labels already in normal form that the producer sends nearly always: no work on the hot path.
_NORMAL_ACTIONS = frozenset({"BUY", "SELL", "HOLD"})

_orjson_loads, _OrjsonError = orjson.loads, orjson.JSONDecodeError
_new_tuple = tuple.__new__  # builds the NamedTuples below without their Python-level __new__
_INF = math.inf


def _event_from_breakdown(  # noqa: PLR0912 - the inlined hot loop; _vote is its readable reference
    stream_id: StreamId, payload: dict[str, Any], breakdown: dict[str, Any], limits: ContractLimits
) -> Event | Skip:
    # The hot loop of `check` and of the daemon's backfill: ``_vote`` inlined for the shapes JSON
    # decoding produces (exact dict / str / float / int); anything else takes ``_vote`` itself.
    votes: list[Vote] = []
    invalid: list[str] = []
    refused = 0
    fallback = False
    max_key = limits.max_key_length
    room = limits.max_models_per_entry  # model keys this entry may still hold
    inf = _INF
    new, vote_type = _new_tuple, Vote
    normal_actions = _NORMAL_ACTIONS
    for key, value in breakdown.items():
        if key == FALLBACK_KEY:
            fallback = True
            continue
        # A key that is not one printable line (a line break, a control character) would rewrite the
        # report it is printed in (a "# Quality gate: PASS" heading): refused, like a key too long.
        if room <= 0 or len(key) > max_key or not key.isprintable():
            refused += 1
            continue
        room -= 1
        if type(value) is dict:
            action = value.get("action")
            confidence = value.get("confidence")
            if type(confidence) is float and type(action) is str:
                if action in normal_actions:
                    respelled = False
                else:  # normal_label inlined; the limits apply to the normal form
                    raw, action = action, action.strip().casefold().upper()
                    respelled = action != raw
                if action and len(action) <= max_key and action.isprintable():
                    if -inf < confidence < inf:  # finite: NaN and infinities compare False
                        variant = value.get("model")
                        if (
                            type(variant) is not str
                            or not variant
                            or len(variant) > max_key
                            or not variant.isprintable()
                        ):
                            variant = None
                        shadow = value.get("shadow") is True
                        inactive = value.get("inactive") is True
                        votes.append(
                            new(vote_type, (key, action, confidence, variant, shadow, inactive, respelled))
                        )
                    else:
                        invalid.append(key)
                    continue
        vote = _vote(key, value, limits)
        if vote is None:
            invalid.append(key)
        else:
            votes.append(vote)
    if not votes:
        return Skip(SkipReason.NO_VALID_VOTES, tuple(invalid), refused)
    symbol = payload.get("symbol")
    if (
        type(symbol) is not str
        or not symbol
        or len(symbol) > limits.max_symbol_length
        or not symbol.isprintable()
    ):
        symbol = _short_string(symbol, limits.max_symbol_length)
    side = payload.get("side")
    if type(side) is str and side not in normal_actions:
        side = normal_label(side)  # the ensemble's side shares the action labels' normal form
    if type(side) is not str or not side or len(side) > max_key or not side.isprintable():
        side = _short_string(side, max_key)
    return _new_tuple(Event, (stream_id, symbol, side, fallback, tuple(votes), tuple(invalid), refused))


def _vote(model: str, value: Any, limits: ContractLimits) -> Vote | None:
    """A valid vote: ``action`` a string whose normal form (``normal_label``) is non-empty and at most
    ``max_key_length`` characters, ``confidence`` a finite real number (not a bool).

    The vote carries the action's normal form, and ``respelled`` says the raw label differed from it.
    Confidences outside [0, 1] are kept raw (the gate reports them as a contract violation); they are
    never reshaped, unlike the producer's own sigmoid "fix". The reference form of the inlined fast
    path in ``_event_from_breakdown``.
    """
    if not isinstance(value, dict):
        return None
    raw_action = value.get("action")
    confidence = value.get("confidence")
    if not isinstance(raw_action, str):
        return None
    action = normal_label(raw_action)
    if not action or len(action) > limits.max_key_length or not action.isprintable():
        return None
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        return None
    confidence = float(confidence) if isinstance(confidence, float) else _int_to_float(confidence)
    if not math.isfinite(confidence):
        return None
    return Vote(
        model=model,
        action=action,
        confidence=confidence,
        variant=_short_string(value.get("model"), limits.max_key_length),
        shadow=value.get("shadow") is True,
        inactive=value.get("inactive") is True,
        respelled=action != raw_action,
    )


def _int_to_float(number: int) -> float:
    try:
        return float(number)
    except OverflowError:  # a 400-digit integer from a hostile producer
        return math.inf


def _short_string(value: Any, limit: int) -> str | None:
    if isinstance(value, str) and value and len(value) <= limit and value.isprintable():
        return value
    return None


_BAD_JSON = object()


def decode_json(raw: bytes) -> Any:
    """orjson first (fast); the stdlib only when orjson refuses, because the producer writes Python
    ``json.dumps`` output, which may hold ``NaN``/``Infinity`` that orjson rejects. A NaN confidence
    then becomes one invalid vote instead of costing the whole event."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        decoded = json.loads(raw)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return _BAD_JSON
    if b"\\u" in raw and _has_lone_surrogate(raw):
        return _without_surrogates(decoded)
    return decoded


def _has_lone_surrogate(raw: bytes) -> bool:
    """The stdlib decodes ``"\\ud800"`` (which Python's ``json.dumps`` writes) into a string that is
    not valid UTF-8; orjson refused it, which is why we are here. Such a string must never become a
    model key, label or report text (orjson, Prometheus and Markdown would all fail on it)."""
    return _LONE_SURROGATE.search(raw) is not None


def _without_surrogates(decoded: Any) -> Any:
    """Re-decode with every lone surrogate replaced by ``?``; on pathological depth, bad_json."""
    try:
        text = json.dumps(decoded, ensure_ascii=False, allow_nan=True)
        return json.loads(text.encode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return _BAD_JSON


# \uD800-\uDBFF not followed by \uDC00-\uDFFF, or \uDC00-\uDFFF on its own (case-insensitive hex).
_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


def as_bytes_fields(fields: Mapping[str, str]) -> dict[bytes, bytes]:
    """Fixture/test helper: fields as Redis returns them (bytes), from a JSON dump's strings."""
    return {key.encode(): value.encode() for key, value in fields.items()}
