"""The one-shot commands' evaluation (``check``, ``diagnose``): both windows read once from Redis (in
parallel for big windows), the deployment command and XINFO run once, then the pipeline's
``evaluate_document``, the same path the daemon takes. A key that does not exist or holds another type
is said in one line (``redis_state``). Not for the daemon: the parallel read forks.
"""

from __future__ import annotations

from typing import Any

import redis

from quantum_gate.config import Settings
from quantum_gate.connection import connect
from quantum_gate.cutover import Cutover
from quantum_gate.gate import GateResult
from quantum_gate.pipeline import evaluate_document, new_windows, rate_from_windows
from quantum_gate.provenance import capture_deployment_info
from quantum_gate.redis_state import StreamMissing, StreamWrongType, is_wrong_type, key_type
from quantum_gate.retention import retention_for_windows
from quantum_gate.stream import load_windows, load_windows_in_parallel, stream_info
from quantum_gate.windows import Window


def load_pair(settings: Settings, cutover: Cutover) -> tuple[Window, Window]:
    """Both windows read from Redis (in parallel for big windows); a key of another type in one line."""
    post, pre = new_windows(settings)
    parallel = settings.windows.parallel_min_events
    try:
        if parallel and min(post.capacity, pre.capacity) >= parallel:
            _, pre = load_windows_in_parallel(settings, cutover.stream_id, post, pre)
        else:
            client = connect(settings)
            try:
                load_windows(client, settings, cutover.stream_id, post, pre)
            finally:
                client.close()
    except redis.ResponseError as exc:
        if is_wrong_type(exc):
            raise StreamWrongType(settings.redis.stream, stream_key_type(settings)) from None
        raise
    return post, pre


def evaluate_once(settings: Settings, cutover: Cutover, now: float) -> tuple[GateResult, Window, Window]:
    post, pre = load_pair(settings, cutover)
    result, _ = evaluate_document(post, pre, cutover, settings, now)
    return result, post, pre


def missing_stream(settings: Settings, post: Window, pre: Window) -> StreamMissing | None:
    """For check and diagnose: empty windows from a key that does not exist (one TYPE, asked only
    when both windows are empty) are said as such, not as an ordinary INSUFFICIENT_DATA."""
    if len(post) or len(pre) or sum(post.counters.skipped.values()) or sum(pre.counters.skipped.values()):
        return None
    return StreamMissing(settings.redis.stream) if stream_key_type(settings) == "none" else None


def stream_key_type(settings: Settings) -> str:
    """TYPE of the stream key (``none`` when missing), to say what is wrong in one line."""
    client = connect(settings)
    try:
        return key_type(client, settings.redis.stream)
    finally:
        client.close()


def check_document(
    settings: Settings, post: Window, pre: Window, cutover: Cutover, now: float, *, operator_note: str | None
) -> tuple[GateResult, dict[str, Any]]:
    """check's evaluation: the deployment command and XINFO run here, the rest is the pipeline's."""
    report = settings.report
    deployment = capture_deployment_info(
        report.deployment_info,
        timeout=report.deployment_info_timeout_seconds,
        max_bytes=report.deployment_info_max_bytes,
    )
    client = connect(settings)
    try:
        info = stream_info(client, settings.redis.stream)
    finally:
        client.close()
    retention = retention_for_windows(
        info,
        post=post,
        pre=pre,
        cutover=cutover,
        min_events=settings.gate.min_events,
        rate_per_minute=rate_from_windows(post, pre, now, settings.windows.rate_horizon_seconds),
        now_ms=int(now * 1000),
    )
    return evaluate_document(
        post,
        pre,
        cutover,
        settings,
        now,
        deployment=deployment,
        retention=retention,
        operator_note=operator_note,
    )
