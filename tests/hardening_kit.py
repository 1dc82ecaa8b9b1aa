"""Harness for the hardening tests: the real daemon as a child process, scraped over HTTP.

``DaemonProcess`` (the shared kit's, ``bench/kit_daemon.py``) runs ``quantum-gate run`` exactly as an operator
would (its own process, so the tests can SIGSTOP, SIGTERM and measure its RSS), points it at a private
``redis-server`` and reads its state only through ``/metrics`` and its JSON log lines. Waiting is
always "poll an observable until a predicate holds or a deadline passes"; a timeout fails with the last
metrics and the log tail. This module adds the fast writers of real-format entries.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

import redis

# The daemon harness is the shared kit's; these names stay importable from here.
from bench.kit import EARLY_CUTOVER, quantum_gate_argv
from bench.kit_daemon import DaemonProcess, Metrics, http_get, vm_rss_kib

__all__ = [
    "COMPACT_VARIANTS",
    "EARLY_CUTOVER",
    "DaemonProcess",
    "Metrics",
    "compact_envelope",
    "http_get",
    "quantum_gate_argv",
    "vm_rss_kib",
    "xadd_entries",
    "xadd_many",
]


# ---- writing real-format entries fast ------------------------------------------------------------


def compact_envelope(index: int) -> dict[bytes, bytes]:
    """A real-format AI-engine envelope with a small, healthy, varied payload (about 420 bytes)."""
    actions = ("BUY", "SELL", "HOLD")
    votes = {
        model: {
            "action": actions[(index + offset) % 3],
            "confidence": round(0.30 + 0.006 * ((index * 37 + offset * 11) % 100), 6),
            "model": f"{model}_main",
        }
        for offset, model in enumerate(("xgb", "lgbm", "nhits"))
    }
    body = {
        "symbol": ("BTCUSDT", "ETHUSDT", "SOLUSDT")[index % 3],
        "side": ("BUY", "SELL")[index % 2],
        "confidence": 0.7,
        "model": "ensemble",
        "model_breakdown": votes,
    }
    return {
        b"event_type": b"trade.intent",
        b"payload": json.dumps(body).encode(),
        b"trace_id": b"",
        b"correlation_id": f"00000000-0000-4000-8000-{index:012d}".encode(),
        b"timestamp": b"2026-01-10T05:47:45.847268",
        b"source": b"ai-engine",
    }


COMPACT_VARIANTS = [compact_envelope(index) for index in range(300)]


def xadd_many(
    client: redis.Redis,
    key: str,
    count: int,
    *,
    batch: int = 2000,
    fields: Sequence[Mapping[bytes, bytes]] = COMPACT_VARIANTS,
    maxlen: int | None = None,
) -> int:
    """Pipelined ``XADD key [MAXLEN ~ n] * ...`` with auto IDs, ``batch`` per round trip."""
    written = 0
    variants = [dict(variant) for variant in fields]
    while written < count:
        size = min(batch, count - written)
        pipe = client.pipeline(transaction=False)
        for offset in range(size):
            pipe.xadd(key, variants[(written + offset) % len(variants)], maxlen=maxlen, approximate=True)  # type: ignore[arg-type]
        pipe.execute()
        written += size
    return written


def xadd_entries(client: redis.Redis, key: str, entries: Iterable[Mapping[bytes | str, bytes | str]]) -> int:
    written = 0
    pipe = client.pipeline(transaction=False)
    for fields in entries:
        pipe.xadd(key, dict(fields))  # type: ignore[arg-type]
        written += 1
    pipe.execute()
    return written
