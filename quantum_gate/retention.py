"""Stream retention: how much time and how many entries the stream covers, and whether trimming
(``XADD ... MAXLEN ~ N`` at the producer) is about to take what the gate needs.

``assess_retention`` is pure (an ``XINFO STREAM`` reading and the window state in, a ``Retention``
out). ``RetentionWatch`` only logs state changes (``retention.warning`` / ``retention.cleared``).

Two risks, each a gauge ``quantum_gate_retention_risk{kind}`` (docs/retention.md):

* ``baseline``: the stream no longer holds (or, before the post window completes, will no longer
  hold) the oldest baseline event, so a restarted daemon or a ``check`` re-reading the stream would
  compare against a smaller or no baseline.
* ``post_window``: at the current event rate the post window cannot reach ``min_events`` before the
  oldest post-cutover entries are trimmed, i.e. the time the stream covers is shorter than the time
  from the cutover to ``min_events``; or that already happened.

Both are only asserted once the stream is trimming (``entries-added`` > ``length``): before that its
MAXLEN is unknown, and the span it covers is still growing. An entry survives about as long as the
span the stream covers now (``last - first``), which assumes the entry rate stays what it was over
that span.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from quantum_gate.gate import progress
from quantum_gate.streamids import ms_to_iso
from quantum_gate.windows import Window

if TYPE_CHECKING:
    from quantum_gate.cutover import Cutover
    from quantum_gate.stream_gaps import StreamInfo

RISK_KINDS = ("baseline", "post_window")
log = structlog.get_logger("quantum_gate")


@dataclass(frozen=True)
class Retention:
    length: int
    entries_added: int | None
    first_ms: int | None
    last_ms: int | None
    trimming: bool
    risks: dict[str, bool]
    reasons: dict[str, str]

    @property
    def trimmed(self) -> int | None:
        """Entries removed so far (trimmed or deleted): entries-added - length."""
        return None if self.entries_added is None else max(self.entries_added - self.length, 0)

    @property
    def covers_seconds(self) -> float | None:
        if self.first_ms is None or self.last_ms is None:
            return None
        return (self.last_ms - self.first_ms) / 1000.0

    @property
    def entry_rate_per_minute(self) -> float | None:
        """Entries of any kind per minute over the span the stream covers."""
        if self.first_ms is None or self.last_ms is None or self.last_ms == self.first_ms or self.length < 2:
            return None
        # Integers until one division, so a gauge reads 62.0 rather than 62.00000000000001.
        return (self.length - 1) * 60_000 / (self.last_ms - self.first_ms)

    def to_json(self) -> dict[str, Any]:
        return {
            "length": self.length,
            "entries_added": self.entries_added,
            "trimmed": self.trimmed,
            "trimming": self.trimming,
            "first_entry_at": ms_to_iso(self.first_ms) if self.first_ms is not None else None,
            "last_entry_at": ms_to_iso(self.last_ms) if self.last_ms is not None else None,
            "covers_seconds": self.covers_seconds,
            "entry_rate_per_minute": self.entry_rate_per_minute,
            "risks": dict(self.risks),
            "reasons": dict(self.reasons),
        }


def assess_retention(
    info: StreamInfo | None,
    *,
    cutover_ms: int | None,
    baseline_first_ms: int | None,
    post_events: int,
    min_events: int,
    eta_seconds: float | None,
    now_ms: int,
) -> Retention | None:
    """None when the stream does not exist (the reset counters say that)."""
    if info is None:
        return None
    first_ms = info.first.ms if info.first is not None else None
    last_ms = info.last.ms if info.last is not None else None
    trimming = info.entries_added is not None and info.entries_added > info.length
    risks = dict.fromkeys(RISK_KINDS, False)
    reasons: dict[str, str] = {}
    covers = (last_ms - first_ms) if first_ms is not None and last_ms is not None else None
    if trimming and cutover_ms is not None and first_ms is not None and covers is not None:
        complete_ms = now_ms + int(eta_seconds * 1000) if eta_seconds is not None else None
        # ---- the baseline
        if baseline_first_ms is not None and first_ms > baseline_first_ms:
            risks["baseline"] = True
            reasons["baseline"] = (
                f"trimming already removed the oldest baseline events (oldest entry {ms_to_iso(first_ms)}, "
                f"baseline starts {ms_to_iso(baseline_first_ms)}): a re-read gets a smaller baseline"
            )
        elif baseline_first_ms is None and first_ms >= cutover_ms:
            risks["baseline"] = True
            reasons["baseline"] = "nothing before the cutover is left in the stream: there is no baseline"
        elif (
            baseline_first_ms is not None
            and complete_ms is not None
            and post_events < min_events
            and baseline_first_ms + covers < complete_ms
        ):
            risks["baseline"] = True
            reasons["baseline"] = (
                f"at the current rate trimming reaches the baseline around "
                f"{ms_to_iso(baseline_first_ms + covers)}, before the post window completes around "
                f"{ms_to_iso(complete_ms)}"
            )
        # ---- the post window
        if post_events < min_events:
            if first_ms > cutover_ms:
                risks["post_window"] = True
                reasons["post_window"] = (
                    f"the stream already trimmed post-cutover entries (oldest entry {ms_to_iso(first_ms)}) "
                    f"while the post window holds {post_events} of {min_events} events"
                )
            elif complete_ms is not None and complete_ms - cutover_ms > covers:
                risks["post_window"] = True
                reasons["post_window"] = (
                    f"at the current rate the post window needs {_hours(complete_ms - cutover_ms)} from the "
                    f"cutover to reach {min_events} events, but the stream covers only {_hours(covers)}"
                )
    return Retention(
        length=info.length,
        entries_added=info.entries_added,
        first_ms=first_ms,
        last_ms=last_ms,
        trimming=trimming,
        risks=risks,
        reasons=reasons,
    )


def _hours(ms: int) -> str:
    return f"{ms / 3_600_000:.1f} h"


def retention_for_windows(
    info: StreamInfo | None,
    *,
    post: Window,
    pre: Window,
    cutover: Cutover | None,
    min_events: int,
    rate_per_minute: float | None,
    now_ms: int,
) -> Retention | None:
    """``assess_retention`` with the window state the daemon or ``check`` holds."""
    span = pre.first_last_ms()
    events = len(post)
    return assess_retention(
        info,
        cutover_ms=cutover.stream_id.ms if cutover is not None else None,
        baseline_first_ms=span[0] if span else None,
        post_events=events,
        min_events=min_events,
        eta_seconds=progress(events, min_events, rate_per_minute).eta_seconds,
        now_ms=now_ms,
    )


class RetentionWatch:
    """Logs when a retention risk appears or goes away (state changes, not every reading)."""

    def __init__(self) -> None:
        self.active = dict.fromkeys(RISK_KINDS, False)

    def observe(self, retention: Retention | None, stream: str) -> None:
        for kind in RISK_KINDS:
            at_risk = retention is not None and retention.risks[kind]
            if at_risk == self.active[kind]:
                continue
            self.active[kind] = at_risk
            if retention is not None and at_risk:
                log.warning(
                    "retention.warning",
                    kind=kind,
                    stream=stream,
                    reason=retention.reasons.get(kind),
                    length=retention.length,
                    entries_added=retention.entries_added,
                    covers_seconds=retention.covers_seconds,
                )
            else:
                log.info("retention.cleared", kind=kind, stream=stream)
