"""Rendering one ``GateResult``: the JSON document (``check --json``, ``/gate``, report files), the
Markdown report, and the compact terminal table. Markdown and the table are drawn from the JSON
document, so every surface says the same thing. The files they are written to, and their retention,
are ``report_files``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from quantum_gate.checks import plain_number, readable
from quantum_gate.compare import delta
from quantum_gate.depth_markdown import depth_markdown, provenance_markdown
from quantum_gate.formatting import duration
from quantum_gate.formatting import num as _num
from quantum_gate.formatting import pct as _pct
from quantum_gate.gate import GateResult
from quantum_gate.modelstats import votes
from quantum_gate.streamids import ms_to_iso
from quantum_gate.verdicts import Verdict

SCHEMA = "quantum-gate/gate/v1"


def gate_document(
    result: GateResult,
    *,
    stream: str,
    cutover_error: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The one machine-readable answer. Field names are a contract (docs/cli.md)."""
    cutover: dict[str, Any] = (
        result.cutover.to_json()
        if result.cutover
        else {"stream_id": None, "timestamp": None, "source": "unknown", "error": cutover_error}
    )
    models = {
        name: {
            "verdict": report.verdict,
            "gated": report.gated,
            "sporadic": report.sporadic,
            "post": report.post.to_json(),
            "pre": report.pre.to_json(),
            "delta": delta(report.pre, report.post),
            "checks": [check.to_json() for check in report.checks],
        }
        for name, report in result.models.items()
    }
    progress = result.progress
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "verdict": result.verdict,
        "reasons": list(result.reasons),
        "evaluated_at": _iso_seconds(result.evaluated_at),
        "evaluated_at_seconds": result.evaluated_at,
        "stream": stream,
        "cutover": cutover,
        "windows": {
            "post": _window_json(result.post.to_json()),
            "pre": _window_json(result.pre.to_json()),
        },
        "progress": {
            "events": progress.events,
            "min_events": progress.min_events,
            "rate_per_minute": progress.rate_per_minute,
            "eta_seconds": progress.eta_seconds,
        },
        "thresholds": result.thresholds.model_dump(mode="json"),
        "models": models,
        "sporadic_models": sporadic_models(result),
        "ensemble": {
            "post": result.ensemble_post.to_json(),
            "pre": result.ensemble_pre.to_json(),
            "delta": delta(result.ensemble_pre, result.ensemble_post),
        },
        "comparison": {name: report.comparison for name, report in result.models.items()},
        "borderline": [{"model": model, **check.to_json()} for model, check in result.borderline()],
        "verdict_borderline": result.verdict_borderline(),
    }
    document["recommendation"] = recommendation(document)
    if extra:
        document.update(extra)
    return document


def recommendation(document: dict[str, Any]) -> str:
    """The report's lead paragraph: the verdict, how sure it is, and what to do (from the document)."""
    verdict = document["verdict"]
    events = document["progress"]["events"]
    borderline = document.get("borderline") or []
    shaky = ", ".join(f"{item['model']} {item['name']}" for item in borderline)
    if verdict == Verdict.INSUFFICIENT_DATA:
        why = document["reasons"][0] if document["reasons"] else "not enough data"
        return f"INSUFFICIENT_DATA: {why}. No recommendation until the gate can decide."
    if verdict == Verdict.PASS:
        changes = _largest_changes(document)
        if not borderline:
            return (
                f"PASS, solid: every check clears its threshold with its whole 95 % interval "
                f"({events} events). Safe to promote.{changes}"
            )
        return (
            f"PASS, borderline on {shaky}: the 95 % interval reaches the threshold, so more events may "
            f"flip it. Wait for {max(2 * events, events + 200)} events before promoting.{changes}"
        )
    failing = "; ".join(document["reasons"][:3])
    if document.get("verdict_borderline"):  # every failing check's interval reaches its threshold
        return (
            f"FAIL, borderline: {failing}. Every failing value's 95 % interval reaches its threshold; "
            "do not promote on this evidence, and expect more events to decide it."
        )
    return f"FAIL: {failing}. Do not promote: patch the models and restart the engine (a new cutover)."


def _largest_changes(document: dict[str, Any], count: int = 3) -> str:
    """' Largest pre -> post changes: lgbm majority 0.86 -> 0.55, ...' (empty without a baseline)."""
    changes: list[tuple[float, str]] = []
    for name, model in document["models"].items():
        if not model["gated"] or not model["pre"]["samples"]:
            continue
        for field_name, title in (("majority_share", "majority"), ("hold_share", "HOLD"), ("std", "std")):
            before, after = model["pre"][field_name], model["post"][field_name]
            if before is not None and after is not None and before != after:
                changes.append((abs(after - before), f"{name} {title} {before:.3g} -> {after:.3g}"))
    if not changes:
        return ""
    changes.sort(key=lambda item: -item[0])
    return " Largest pre -> post changes: " + ", ".join(text for _, text in changes[:count]) + "."


def sporadic_models(result: GateResult) -> dict[str, dict[str, Any]]:
    """Models that voted after the cutover too rarely to be gated (gate.is_sporadic), with their
    post-window vote count and share of the post window's events: reported, never dropped silently."""
    events = result.post.events
    return {
        report.name: {
            "votes": votes(report.post),
            "share": votes(report.post) / events if events else None,
        }
        for report in result.sporadic()
    }


def _window_json(summary: dict[str, Any]) -> dict[str, Any]:
    for side in ("first_id_ms", "last_id_ms"):
        ms = summary.get(side)
        summary[side.replace("_id_ms", "_event_at")] = ms_to_iso(ms) if ms is not None else None
    return summary


def _iso_seconds(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def dumps(document: dict[str, Any], *, indent: bool = True) -> bytes:
    option = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY | (orjson.OPT_INDENT_2 if indent else 0)
    return orjson.dumps(document, option=option)


# ---- text ------------------------------------------------------------------------------------------


def _arrow(before: str, after: str) -> str:
    return f"{before} -> {after}"


def _duration(seconds: float | None) -> str:
    return duration(seconds, missing="unknown", days=False)  # an ETA in hours: "30h00m", not "1d06h"


def _model_rows(document: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, model in document["models"].items():
        post, pre = model["post"], model["pre"]
        rows.append(
            [
                name + ("" if model["gated"] else " (sporadic)" if model.get("sporadic") else " (not gated)"),
                model["verdict"] if model["gated"] else "-",
                str(post["samples"]),
                _arrow(_pct(pre["hold_share"]), _pct(post["hold_share"])),
                _arrow(_pct(pre["majority_share"]), _pct(post["majority_share"])),
                _arrow(_num(pre["std"]), _num(post["std"])),
                _arrow(_num(pre["p10_p90"]), _num(post["p10_p90"])),
                _pct(post["top_value_share"]),
            ]
        )
    return rows


MODEL_HEADER = [
    "model",
    "verdict",
    "n",
    "HOLD pre->post",
    "majority pre->post",
    "std pre->post",
    "P10-P90 pre->post",
    "top value",
]


def _align(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def sporadic_lines(document: dict[str, Any]) -> list[str]:
    """One line per sporadic model: its votes, and the rule that left it ungated."""
    thresholds = document["thresholds"]
    events = document["windows"]["post"]["events"]
    return [
        f"sporadic: {name} cast {entry['votes']} vote{'' if entry['votes'] == 1 else 's'} in {events} "
        f"post-cutover events ({_pct(entry['share'])}), below gate.sporadic_share "
        f"{_pct(thresholds.get('sporadic_share'))} and gate.min_samples {thresholds.get('min_samples')} "
        "(before the cutover too): not gated"
        for name, entry in document.get("sporadic_models", {}).items()
    ]


def label_variant_lines(document: dict[str, Any]) -> list[str]:
    """One line per model and window with votes whose action label was a spelling variant."""
    lines = []
    for name, model in document["models"].items():
        for side in ("post", "pre"):
            stats = model[side]
            count = stats.get("action_label_variants", 0)
            if count:
                lines.append(
                    f"labels: {name} ({side}) {count} of {stats['samples']} votes spelled an action "
                    "differently from its normal form (counted as that form)"
                )
    return lines


def render_table(document: dict[str, Any]) -> str:
    """What a person reads at a glance in a terminal."""
    cutover = document["cutover"]
    progress = document["progress"]
    windows = document["windows"]
    lines = [f"quantum-gate: {document['verdict']}"]
    if cutover["stream_id"]:
        lines.append(
            f"cutover   {cutover['timestamp']} ({cutover['source']}, stream ID {cutover['stream_id']})"
        )
    else:
        lines.append(f"cutover   unknown: {cutover.get('error') or 'not found'}")
    rate = progress["rate_per_minute"]
    line = f"post      {progress['events']}/{progress['min_events']} events"
    if progress["events"] < progress["min_events"]:
        line += f", rate {_num(rate, 2)}/min, ETA {_duration(progress['eta_seconds'])}"
    lines.append(line)
    lines.append(f"baseline  {windows['pre']['events']} events before the cutover")
    skipped = {**windows["pre"]["skipped"]}
    for reason, count in windows["post"]["skipped"].items():
        skipped[reason] = skipped.get(reason, 0) + count
    if skipped:
        lines.append(
            "skipped   " + ", ".join(f"{reason} {count}" for reason, count in sorted(skipped.items()))
        )
    if document["models"]:
        lines.append("")
        lines.extend(_align([MODEL_HEADER, *_model_rows(document)]))
    notes = sporadic_lines(document) + label_variant_lines(document)
    if notes:
        lines.append("")
        lines.extend(notes)
    if document["reasons"]:
        lines.append("")
        lines.extend(f"why: {reason}" for reason in document["reasons"])
    for item in document.get("borderline") or []:
        low, high = item["interval"]
        lines.append(
            f"borderline: {item['model']} {item['name']} {item['value']:.4g}, 95% interval {low:.4g} to "
            f"{high:.4g} straddles {item['threshold']:g}"
        )
    if document.get("recommendation") and document["verdict"] != Verdict.INSUFFICIENT_DATA:
        lines += ["", f"recommendation: {document['recommendation']}"]
    return "\n".join(lines)


def render_markdown(document: dict[str, Any]) -> str:
    cutover = document["cutover"]
    lines = [
        f"# Quality gate: {document['verdict']}",
        "",
        f"- Evaluated: {document['evaluated_at']} (UTC)",
        f"- Stream: `{document['stream']}`",
        f"- Cutover: {cutover['timestamp'] or 'unknown'} (source {cutover['source']}, "
        f"stream ID `{cutover['stream_id']}`)",
    ]
    if cutover.get("unit"):
        lines.append(
            f"- Unit: `{cutover['unit']}`, InvocationID `{cutover.get('invocation_id')}`, "
            f"ActiveEnterTimestamp `{cutover.get('active_enter_timestamp')}`"
        )
    progress = document["progress"]
    lines.append(
        f"- Post window: {progress['events']} / {progress['min_events']} events; "
        f"baseline: {document['windows']['pre']['events']} events"
    )
    lines += [
        "",
        "## Deployment recommendation",
        "",
        document.get("recommendation") or recommendation(document),
    ]
    lines += provenance_markdown(document)
    if document["reasons"]:
        lines += ["", "## Why", ""] + [f"- {reason}" for reason in document["reasons"]]
    if document["models"]:
        header = MODEL_HEADER
        rows = _model_rows(document)
        lines += ["", "## Models", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    sporadic = sporadic_lines(document)
    if sporadic:
        lines += ["", "## Sporadic models (not gated)", ""] + [f"- {line}" for line in sporadic]
    variants = label_variant_lines(document)
    if variants:
        lines += ["", "## Action label spellings", ""] + [f"- {line}" for line in variants]
    for name, model in document["models"].items():
        if not model["gated"]:
            continue
        lines += [
            "",
            f"### {name}: {model['verdict']}",
            "",
            "| check | value | 95 % interval | threshold | passed |",
            "|---|---|---|---|---|",
        ]
        for check in model["checks"]:
            mark = "yes" if check["passed"] else "**NO**"
            if check.get("borderline"):
                mark += " (borderline)"
            interval = check.get("interval")
            span = f"{interval[0]:.4f} to {interval[1]:.4f}" if interval else "-"
            value, comparator, threshold = check["value"], check["comparator"], check["threshold"]
            # as many digits as it takes to read as the check decided: never "0.0500 | >= 0.05 | NO"
            shown = "-" if value is None else readable(value, comparator, threshold, digits=4, style="f")
            lines.append(
                f"| {check['name']} | {shown} | {span} | {comparator} {plain_number(threshold)} | {mark} |"
            )
        post = model["post"]
        if post["variants"]:
            lines.append("")
            lines.append("Variants: " + ", ".join(f"`{k}` {v}" for k, v in post["variants"].items()))
    ensemble = document["ensemble"]
    lines += [
        "",
        "## Ensemble",
        "",
        "| window | events | fallback share | agreement | hard disagree |",
        "|---|---|---|---|---|",
    ]
    for side in ("pre", "post"):
        stats = ensemble[side]
        lines.append(
            f"| {side} | {stats['events']} | {_pct(stats['fallback_share'])} | "
            f"{_pct(stats['agreement'])} | {_pct(stats['hard_disagree_share'])} |"
        )
    skipped = document["windows"]["post"]["skipped"]
    if skipped:
        lines += ["", "## Skipped entries (post window)", ""]
        lines += [f"- `{reason}`: {count}" for reason, count in skipped.items()]
    lines += depth_markdown(document)  # retention, per-symbol, transitions, histograms (when present)
    lines.append("")
    return "\n".join(lines)
