"""The top of the status page: the verdict and its reasons, the facts (stream, Redis, cutover source,
evaluations, alerts, reports), the cutover card and the post window's progress to ``min_events``.
"""

from __future__ import annotations

from typing import Any

from quantum_gate.cutover import Rollout
from quantum_gate.exporter import Snapshot
from quantum_gate.formatting import num
from quantum_gate.statuspage_html import NO_EVALUATION, VERDICT_CLASS, dl_rows, duration_text, esc, utc_text


def verdict_block(snap: Snapshot, document: dict[str, Any] | None) -> str:
    verdict = document["verdict"] if document else NO_EVALUATION
    reasons: list[str] = list(document.get("reasons", [])) if document else []
    if document is None:
        items = "<li>waiting for the first evaluation (the windows are being read from Redis)</li>"
    elif reasons:
        items = "".join(f"<li>{esc(reason)}</li>" for reason in reasons)
    else:
        events = document["progress"]["events"]
        items = f"<li>every gated model passes every check over {events} post-cutover events</li>"
    return (
        f"<section class='verdict {VERDICT_CLASS.get(verdict, 'none')}' aria-live=polite>"
        "<div class=label>quality gate verdict</div>"
        f"<h1 id=verdict>{esc(verdict)}</h1>"
        f"<div class=label>why</div><ul id=reasons>{items}</ul></section>"
    )


def facts_card(snap: Snapshot, now: float) -> str:
    settings, tail, cutovers, evaluation = snap.settings, snap.tail, snap.cutovers, snap.evaluation
    if settings.cutover.after:
        systemd = "not asked (cutover fixed with --after)"
    elif cutovers.systemd_up is None:
        systemd = "not asked yet"
    elif cutovers.systemd_up:
        systemd = "<span class=ok>answering</span>"
    else:
        systemd = f"<span class=bad>unavailable</span>: {esc(cutovers.systemd_reason or 'unknown')}"
    evaluated = "never"
    if evaluation.last_evaluation_at is not None:
        age = now - evaluation.last_evaluation_at
        stale = age > settings.daemon.staleness_limit()
        evaluated = (
            f"{esc(utc_text(evaluation.last_evaluation_at))} "
            f"<span class={'bad' if stale else 'sub'}>"
            f"({duration_text(age)} ago{', STALE' if stale else ''})</span>"
        )
    raised = [name for name, active in sorted(evaluation.alerts.items()) if active]
    alerts = (
        ", ".join(f"<span class=bad>{esc(name)}</span>" for name in raised) or "<span class=ok>none</span>"
    )
    condition = f"<span id=redis-condition>{esc(tail.redis_condition or 'not connected yet')}</span>"
    redis = "<span class=ok>up</span>" if tail.redis_up else f"<span class=bad>down</span>: {condition}"
    reports = f"{evaluation.reports_written_total} <span class=sub>{esc(settings.daemon.report_dir)}</span>"
    if evaluation.report_errors_total:
        reports += f" <span class=bad>({evaluation.report_errors_total} could not be written)</span>"
    rows = [
        ("stream", f"<code>{esc(settings.redis.stream)}</code> {_stream_state(tail.stream_type)}"),
        ("Redis", f"{redis} <span class=sub>{esc(settings.redis.redacted_url())}</span>"),
        (_SOURCE_NAMES.get(cutovers.source, "systemd"), systemd),
        ("last evaluation", evaluated),
        ("evaluations", f"{evaluation.evaluations_total} ({evaluation.evaluation_errors_total} failed)"),
        ("alerts raised", alerts),
        ("reports written", reports),
    ]
    return "<section class='card facts' id=facts><dl>" + dl_rows(rows) + "</dl></section>"


def _stream_state(stream_type: str | None) -> str:
    """Whether the key exists and is a stream (quantum_gate_stream_exists), as last seen."""
    if stream_type is None:
        return "<span class=sub id=stream-state>(not read yet)</span>"
    if stream_type == "stream":
        return "<span class=ok id=stream-state>exists</span>"
    if stream_type == "none":
        return "<span class=bad id=stream-state>does not exist on this Redis</span>"
    return f"<span class=bad id=stream-state>is a {esc(stream_type)}, not a stream</span>"


_SOURCE_NAMES = {"docker": "Docker", "kubernetes": "Kubernetes"}


def cutover_card(snap: Snapshot, document: dict[str, Any] | None, now: float) -> str:
    cutovers = snap.cutovers
    cutover = cutovers.cutover
    if cutover is None:
        why = cutovers.systemd_reason or "not found yet"
        body = (
            "<p class=bad>Cutover unknown: the verdict is never PASS without one.</p>"
            f"<dl>{dl_rows([('why', esc(why)), ('cutovers adopted', str(cutovers.cutovers_total))])}</dl>"
        )
        return f"<section class=card id=cutover><h2>Cutover</h2>{body}</section>"
    seconds = cutover.stream_id.seconds
    rows = [
        ("time", f"{esc(utc_text(seconds))}"),
        ("age", f"{duration_text(now - seconds)}"),
        ("source", esc(cutover.source) + (f" <code>{esc(cutover.unit)}</code>" if cutover.unit else "")),
    ]
    if cutover.label is not None:  # docker and kubernetes
        rows += [
            ("deployment", esc(cutover.label)),
            ("identity", f"<code>{esc(cutover.identity_key)}</code>"),
        ]
    else:
        rows.append(
            ("invocation", f"<code>{esc(cutover.invocation_id)}</code>" if cutover.invocation_id else "-")
        )
    if cutover.rollout is not None:
        rows.append(("rollout", _rollout_html(cutover.rollout)))
    if cutover.active_state or cutover.n_restarts is not None:
        restarts = "-" if cutover.n_restarts is None else str(cutover.n_restarts)
        rows.append(("unit state", f"{esc(cutover.active_state or '-')}, NRestarts {restarts}"))
    rows += [
        ("stream ID", f"<code>{esc(cutover.stream_id)}</code>"),
        ("cutovers adopted", f"{cutovers.cutovers_total} <span class=sub>since the daemon started</span>"),
    ]
    rows += [(key, esc(value)) for key, value in cutover.provenance]
    pending = ""
    evaluated_for = (document or {}).get("cutover", {}).get("stream_id")
    if document is not None and evaluated_for != str(cutover.stream_id):
        pending = "<p class=warn>A new cutover was adopted; its first evaluation is on its way.</p>"
    return f"<section class=card id=cutover><h2>Cutover</h2><dl>{dl_rows(rows)}</dl>{pending}</section>"


def _rollout_html(rollout: Rollout) -> str:
    if rollout.complete:
        pods = f"{rollout.updated} of {rollout.replicas} pods"
        return f"<span class=ok>complete</span> <span class=sub>{pods}</span>"
    return (
        f"<span class=warn id=rollout>{esc(rollout.reason())}</span> "
        "<span class=sub>the gate waits for the rollout: old and new pods both write</span>"
    )


def progress_card(snap: Snapshot, document: dict[str, Any] | None, now: float) -> str:
    """Counts, rate and ETA of the evaluation the verdict, the reasons and the models table come from,
    so the page never shows "125 of 200" next to "126". Only before the first evaluation does the card
    show the live windows (and says so)."""
    tail, windows = snap.tail, snap.windows
    minimum = snap.settings.gate.min_events
    events, baseline = windows.events.get("post", 0), windows.events.get("pre", 0)
    rate, eta_seconds, since = windows.rate_per_minute, None, now
    counted = "read so far; not evaluated yet"
    if document is not None:
        evaluated = document["progress"]
        minimum, events, rate = evaluated["min_events"], evaluated["events"], evaluated["rate_per_minute"]
        eta_seconds, since = evaluated["eta_seconds"], document["evaluated_at_seconds"]
        baseline = document["windows"]["pre"]["events"]
        counted = f"at the last evaluation, {esc(utc_text(since))}"
    elif rate and rate > 0 and events < minimum:
        eta_seconds = (minimum - events) * 60.0 / rate
    horizon = duration_text(snap.settings.windows.rate_horizon_seconds).replace("m00s", " min")
    share = min(events / minimum, 1.0) if minimum else 1.0
    done = events >= minimum
    if done:
        eta = "<span class=ok>reached</span>"
    elif eta_seconds is not None:
        about = esc(utc_text(since + eta_seconds))
        eta = f"{duration_text(eta_seconds)} <span class=sub>(about {about})</span>"
    else:
        eta = "unknown (no events lately)"
    rows = [
        (
            "post window",
            f"<b id=post-events>{events}</b> of {minimum} events <span class=sub>{counted}</span>",
        ),
        ("rate", f"{num(rate, 2)} events/min <span class=sub>(stream-ID time, last {horizon})</span>"),
        ("ETA to gate", eta),
        ("baseline", f"<span id=baseline-events>{baseline}</span> events before the cutover"),
        (
            "read from the stream",
            f"{tail.entries_read_total} entries since the daemon started "
            "<span class=sub>each counted once, and still counted after trimming removes it</span>",
        ),
        ("accepted", f"{tail.accepted_total} of them fed the gate <span class=sub>the rest: skipped</span>"),
    ]
    if tail.stream_length is not None:
        rows.append(
            (
                "stream length now",
                f"{tail.stream_length} entries in Redis "
                "<span class=sub>(XLEN, every few seconds: what the producer's trimming left)</span>",
            )
        )
    warning = ""
    if tail.post_window_truncated:
        warning = (
            "<p class=warn>The stream was trimmed past the cutover: "
            "the first post-cutover events are gone.</p>"
        )
    bar = f"<div class='bar{' done' if done else ''}'><span style='width:{share * 100:.1f}%'></span></div>"
    return (
        f"<section class=card id=progress><h2>Post-window progress</h2>{bar}"
        f"<dl>{dl_rows(rows)}</dl>{warning}</section>"
    )
