"""The status page served at ``/``: one self-contained HTML page drawn from one daemon snapshot.

What a person needs to decide whether the new deployment is healthy, and why: the verdict and its
reasons, the cutover, the post window's progress to ``min_events``, a per-model table with every check
and its threshold, pre -> post deltas, and pre vs post confidence histograms as inline SVG.

No external assets and no script (a ``<meta>`` refresh reloads it), so it works offline; a
Content-Security-Policy forbids loading anything. Everything that came from the stream or from
systemd (model keys, actions, variants, unit names, invocation IDs, reasons that quote them) is
untrusted and goes through ``_e`` (HTML escaping, quotes included) before it reaches the page.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from html import escape
from typing import Any

from quantum_gate.checks import CHECK_SPECS, CHECKS, plain_number, readable
from quantum_gate.cutover import Rollout
from quantum_gate.exporter import Snapshot
from quantum_gate.formatting import duration
from quantum_gate.formatting import num as _num
from quantum_gate.formatting import pct as _pct
from quantum_gate.histograms import Histogram
from quantum_gate.history import HEADER as HISTORY_HEADER
from quantum_gate.history import cells as history_cells
from quantum_gate.verdicts import Verdict

NO_EVALUATION = "NO EVALUATION YET"
# CSS class per verdict; looked up, never built from input.
VERDICT_CLASS = {
    Verdict.PASS: "pass",
    Verdict.FAIL: "fail",
    Verdict.INSUFFICIENT_DATA: "insufficient",
    NO_EVALUATION: "none",
}
# Shown in percent, headed by their titles, in the gate's order: all from the one table of checks.
SHARE_CHECKS = frozenset(spec.name for spec in CHECK_SPECS if spec.share)
COUNT_CHECKS = frozenset(spec.name for spec in CHECK_SPECS if spec.count)
CHECK_TITLES = {spec.name: spec.title for spec in CHECK_SPECS}
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

STYLE = """
:root{--fg:#1d2330;--muted:#5f6b7a;--line:#d9dee5;--bg:#f6f7f9;--card:#fff;--pass:#1a7f37;
--fail:#c62828;--insufficient:#9a6700;--none:#57606a;--post:#2f6fdf;--pre:#e07b00}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
color:var(--fg);background:var(--bg)}
main{max-width:1280px;margin:0 auto;padding:16px 20px 40px}
h1,h2,h3{margin:0 0 8px;font-weight:600}
h2{font-size:16px;margin-top:22px}
code{font:12px/1.3 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#eef1f5;
padding:1px 4px;border-radius:3px;word-break:break-all}
.top{display:flex;flex-wrap:wrap;gap:16px;align-items:stretch}
.verdict{flex:1 1 420px;border-radius:8px;padding:14px 18px;color:#fff}
.verdict.pass{background:var(--pass)}.verdict.fail{background:var(--fail)}
.verdict.insufficient{background:var(--insufficient)}.verdict.none{background:var(--none)}
.verdict .label{text-transform:uppercase;letter-spacing:.08em;font-size:12px;opacity:.85}
.verdict h1{font-size:34px;letter-spacing:.02em;margin:2px 0 6px}
.verdict ul{margin:6px 0 0;padding-left:20px}
.verdict li{margin:1px 0}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px}
.facts{flex:1 1 300px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:16px;margin-top:16px}
dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:3px 12px;margin:0}
dt{color:var(--muted)}dd{margin:0;overflow-wrap:anywhere}
.bar{height:14px;background:#e6e9ee;border-radius:7px;overflow:hidden;margin:6px 0}
.bar span{display:block;height:100%;background:var(--post)}
.bar.done span{background:var(--pass)}
table{border-collapse:collapse;width:100%;background:var(--card);border:1px solid var(--line)}
th,td{padding:4px 6px;font-size:13px;border-bottom:1px solid var(--line);text-align:right;vertical-align:top}
td{white-space:nowrap}
/* Every table fits from 1024 px up (tests/test_statuspage_browser.py): the models table, the widest,
wraps inside its cells (the baseline line at its comma, a variant name anywhere, a chip after "_"),
so its columns shrink to fit instead of pushing the variants column out of sight. */
#models td,th,.sub{white-space:normal}
th .sub,#models .sub{overflow-wrap:normal}
#models code{word-break:normal;overflow-wrap:anywhere}
.nw{white-space:nowrap}
th .sub{white-space:nowrap}
td:first-child{overflow-wrap:anywhere}
table.narrow{width:auto;min-width:min(420px,100%)}
th{background:#eef1f5;font-weight:600;font-size:12px}
th:first-child,td:first-child{text-align:left}
.scroll{overflow-x:auto}
.sub{display:block;color:var(--muted);font-size:11px}
.ok{color:var(--pass)}.bad{color:var(--fail);font-weight:600}.warn{color:var(--insufficient)}
td.ok{background:#eaf6ec}td.bad{background:#fdecea}
td.borderline{outline:2px dashed var(--insufficient);outline-offset:-3px}
.borderline-note{margin-top:12px;padding:8px 12px;border-radius:6px;background:#fffbe6;
border:1px solid #e6c200}
.chip{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;color:#fff;max-width:100%;
text-align:center}
.chip.pass{background:var(--pass)}.chip.fail{background:var(--fail)}
.chip.insufficient{background:var(--insufficient)}.chip.none{background:var(--none)}
.banner{margin-top:12px;padding:8px 12px;border-radius:6px;background:#fff4e5;border:1px solid #f0c36d}
.hists{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:16px}
.hist-card h3{font-size:14px}
.legend{font-size:12px;color:var(--muted)}
.swatch{display:inline-block;width:10px;height:10px;margin:0 4px 0 8px;vertical-align:-1px}
svg.hist{display:block;width:100%;height:auto}
footer{margin-top:26px;color:var(--muted);font-size:12px}
footer a{color:inherit}
"""


# ---- formatting ------------------------------------------------------------------------------------


def _e(value: object) -> str:
    """Escape for HTML text and quoted attributes alike."""
    return escape(str(value), quote=True)


def _utc(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float | None) -> str:
    return duration(seconds, missing="unknown")


def _signed(value: float | None, *, share: bool) -> str:
    if value is None:
        return ""
    if share:
        return "±0pp" if abs(value) < 0.0005 else f"{value * 100:+.1f}pp"
    return "±0" if abs(value) < 0.0005 else f"{value:+.3f}"


def _pre_post(pre: float | None, post: float | None, *, share: bool) -> str:
    """A table cell: the post value, and under it the baseline value and the change."""
    shown = _pct(post) if share else _num(post)
    if pre is None:
        return f"{shown}<span class=sub>pre -</span>"
    change = _signed(post - pre, share=share) if post is not None else ""
    before = _pct(pre) if share else _num(pre)
    # Two unbreakable halves: a narrow column wraps after the comma, never between "pre" and its value.
    after = f" <span class=nw>{change}</span>" if change else ""
    return f"{shown}<span class=sub><span class=nw>pre {before}{',' if change else ''}</span>{after}</span>"


def _check_value(check: dict[str, Any]) -> str:
    """The value with as many digits as it takes to read the way the check decided: a failing
    majority of 0.70004 is "70.004%" under "≤ 70%", never "70.0%"."""
    name, value = check["name"], check["value"]
    if value is None:
        return "-"
    if name in COUNT_CHECKS:
        return f"{value:.0f}"
    comparator, threshold = check["comparator"], check["threshold"]
    if name in SHARE_CHECKS:
        return readable(value, comparator, threshold, digits=1, style="f", scale=100) + "%"
    return readable(value, comparator, threshold, digits=4, style="f")


def _threshold(name: str, comparator: str, threshold: float) -> str:
    if name in SHARE_CHECKS:  # as the operator wrote it, in percent: 0.7 -> 70%, 0.70049 -> 70.049%
        shown = f"{(Decimal(plain_number(threshold)) * 100).normalize():f}%"
    else:
        shown = plain_number(threshold)
    return f"{'≤' if comparator == '<=' else '≥' if comparator == '>=' else comparator} {shown}"


def _bound(name: str, value: float) -> str:
    """An interval bound: a share in percent with one decimal, anything else with four."""
    return f"{value * 100:.1f}%" if name in SHARE_CHECKS else f"{value:.4f}"


def _interval(name: str, check: dict[str, Any]) -> str:
    """The 95 % interval under a check's value, and "borderline" when it straddles the threshold."""
    interval = check.get("interval")
    if not interval:
        return ""
    low, high = (_bound(name, value) for value in interval)
    note = " · borderline" if check.get("borderline") else ""
    return f"<span class=sub>95% {_e(low)} to {_e(high)}{note}</span>"


def _interval_text(name: str, interval: list[float]) -> str:
    return f" {_e(_bound(name, interval[0]))} to {_e(_bound(name, interval[1]))}"


def _borderline_note(document: dict[str, Any]) -> str:
    """Says it out loud when the verdict rests on checks that more events may flip."""
    items = document.get("borderline") or []
    if not items:
        return ""
    listed = "".join(
        f"<li><b>{_e(item['model'])}</b> {_e(CHECK_TITLES.get(item['name'], item['name']))} "
        f"{_e(_check_value(item))}: 95% interval"
        f"{_interval_text(item['name'], item['interval'])} straddles "
        f"{_e(_threshold(item['name'], item['comparator'], item['threshold']))}</li>"
        for item in items
    )
    return (
        f"<section class=borderline-note id=borderline><b>Borderline {_e(document['verdict'])}</b>: "
        "the verdict follows the thresholds, but these checks could flip as events arrive."
        f"<ul>{listed}</ul><p>{_e(document.get('recommendation') or '')}</p></section>"
    )


def _recent_cutovers(snap: Snapshot, now: float) -> str:
    """The ledger's newest rows (absent without a ledger)."""
    ledger = snap.ledger
    if ledger is None:
        return ""
    if not ledger.up:
        return (
            f"<section><h2>Recent cutovers</h2><p class=warn>The ledger {_e(ledger.path)} is unavailable "
            f"({_e(ledger.reason or 'unknown')}); the gate goes on without it.</p></section>"
        )
    if not ledger.recent:
        return "<section><h2>Recent cutovers</h2><p>No cutover recorded yet.</p></section>"
    head = "".join(f"<th>{_e(title)}</th>" for title in HISTORY_HEADER)
    rows = []
    for row in ledger.recent:
        values = history_cells(row, now)
        report = values[-1]
        link = f"<a href='/reports/{_e(report)}'>{_e(report)}</a>" if row.reports else "-"
        rows.append(
            f"<tr data-identity='{_e(row.identity)}'>"
            + "".join(f"<td>{_e(value)}</td>" for value in values[:-1])
            + f"<td>{link}</td></tr>"
        )
    return (
        "<section><h2>Recent cutovers <span class=sub>from the ledger, newest first "
        "(<a href='/history'>/history</a>)</span></h2>"
        f"<div class=scroll><table id=history><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div></section>"
    )


def _chip(verdict: str) -> str:
    # <wbr>: INSUFFICIENT_DATA may break after its "_" in a narrow column (the text stays the same).
    label = _e(verdict).replace("_", "_<wbr>")
    return f"<span class='chip {VERDICT_CLASS.get(verdict, 'none')}'>{label}</span>"


# ---- sections --------------------------------------------------------------------------------------


def _verdict_block(snap: Snapshot, document: dict[str, Any] | None) -> str:
    verdict = document["verdict"] if document else NO_EVALUATION
    reasons: list[str] = list(document.get("reasons", [])) if document else []
    if document is None:
        items = "<li>waiting for the first evaluation (the windows are being read from Redis)</li>"
    elif reasons:
        items = "".join(f"<li>{_e(reason)}</li>" for reason in reasons)
    else:
        events = document["progress"]["events"]
        items = f"<li>every gated model passes every check over {events} post-cutover events</li>"
    return (
        f"<section class='verdict {VERDICT_CLASS.get(verdict, 'none')}' aria-live=polite>"
        "<div class=label>quality gate verdict</div>"
        f"<h1 id=verdict>{_e(verdict)}</h1>"
        f"<div class=label>why</div><ul id=reasons>{items}</ul></section>"
    )


def _facts(snap: Snapshot, now: float) -> str:
    settings = snap.settings
    if settings.cutover.after:
        systemd = "not asked (cutover fixed with --after)"
    elif snap.systemd_up is None:
        systemd = "not asked yet"
    elif snap.systemd_up:
        systemd = "<span class=ok>answering</span>"
    else:
        systemd = f"<span class=bad>unavailable</span>: {_e(snap.systemd_reason or 'unknown')}"
    evaluated = "never"
    if snap.last_evaluation_at is not None:
        age = now - snap.last_evaluation_at
        stale = age > settings.daemon.staleness_limit()
        evaluated = (
            f"{_e(_utc(snap.last_evaluation_at))} "
            f"<span class={'bad' if stale else 'sub'}>"
            f"({_duration(age)} ago{', STALE' if stale else ''})</span>"
        )
    raised = [name for name, active in sorted(snap.alerts.items()) if active]
    alerts = (
        ", ".join(f"<span class=bad>{_e(name)}</span>" for name in raised) or "<span class=ok>none</span>"
    )
    condition = f"<span id=redis-condition>{_e(snap.redis_condition or 'not connected yet')}</span>"
    redis = "<span class=ok>up</span>" if snap.redis_up else f"<span class=bad>down</span>: {condition}"
    reports = f"{snap.reports_written_total} <span class=sub>{_e(settings.daemon.report_dir)}</span>"
    if snap.report_errors_total:
        reports += f" <span class=bad>({snap.report_errors_total} could not be written)</span>"
    rows = [
        ("stream", f"<code>{_e(settings.redis.stream)}</code> {_stream_state(snap.stream_type)}"),
        ("Redis", f"{redis} <span class=sub>{_e(settings.redis.redacted_url())}</span>"),
        (_SOURCE_NAMES.get(snap.cutover_source, "systemd"), systemd),
        ("last evaluation", evaluated),
        ("evaluations", f"{snap.evaluations_total} ({snap.evaluation_errors_total} failed)"),
        ("alerts raised", alerts),
        ("reports written", reports),
    ]
    return "<section class='card facts' id=facts><dl>" + _dl(rows) + "</dl></section>"


def _stream_state(stream_type: str | None) -> str:
    """Whether the key exists and is a stream (quantum_gate_stream_exists), as last seen."""
    if stream_type is None:
        return "<span class=sub id=stream-state>(not read yet)</span>"
    if stream_type == "stream":
        return "<span class=ok id=stream-state>exists</span>"
    if stream_type == "none":
        return "<span class=bad id=stream-state>does not exist on this Redis</span>"
    return f"<span class=bad id=stream-state>is a {_e(stream_type)}, not a stream</span>"


_SOURCE_NAMES = {"docker": "Docker", "kubernetes": "Kubernetes"}


def _dl(rows: list[tuple[str, str]]) -> str:
    return "".join(f"<dt>{_e(label)}</dt><dd>{value}</dd>" for label, value in rows)


def _cutover_card(snap: Snapshot, document: dict[str, Any] | None, now: float) -> str:
    cutover = snap.cutover
    if cutover is None:
        why = snap.systemd_reason or "not found yet"
        body = (
            "<p class=bad>Cutover unknown: the verdict is never PASS without one.</p>"
            f"<dl>{_dl([('why', _e(why)), ('cutovers adopted', str(snap.cutovers_total))])}</dl>"
        )
        return f"<section class=card id=cutover><h2>Cutover</h2>{body}</section>"
    seconds = cutover.stream_id.seconds
    rows = [
        ("time", f"{_e(_utc(seconds))}"),
        ("age", f"{_duration(now - seconds)}"),
        ("source", _e(cutover.source) + (f" <code>{_e(cutover.unit)}</code>" if cutover.unit else "")),
    ]
    if cutover.label is not None:  # docker and kubernetes
        rows += [("deployment", _e(cutover.label)), ("identity", f"<code>{_e(cutover.identity_key)}</code>")]
    else:
        rows.append(
            ("invocation", f"<code>{_e(cutover.invocation_id)}</code>" if cutover.invocation_id else "-")
        )
    if cutover.rollout is not None:
        rows.append(("rollout", _rollout_html(cutover.rollout)))
    if cutover.active_state or cutover.n_restarts is not None:
        restarts = "-" if cutover.n_restarts is None else str(cutover.n_restarts)
        rows.append(("unit state", f"{_e(cutover.active_state or '-')}, NRestarts {restarts}"))
    rows += [
        ("stream ID", f"<code>{_e(cutover.stream_id)}</code>"),
        ("cutovers adopted", f"{snap.cutovers_total} <span class=sub>since the daemon started</span>"),
    ]
    rows += [(key, _e(value)) for key, value in cutover.provenance]
    pending = ""
    evaluated_for = (document or {}).get("cutover", {}).get("stream_id")
    if document is not None and evaluated_for != str(cutover.stream_id):
        pending = "<p class=warn>A new cutover was adopted; its first evaluation is on its way.</p>"
    return f"<section class=card id=cutover><h2>Cutover</h2><dl>{_dl(rows)}</dl>{pending}</section>"


def _progress_card(snap: Snapshot, document: dict[str, Any] | None, now: float) -> str:
    """Counts, rate and ETA of the evaluation the verdict, the reasons and the models table come from,
    so the page never shows "125 of 200" next to "126". Only before the first evaluation does the card
    show the live windows (and says so)."""
    minimum = snap.settings.gate.min_events
    events, baseline = snap.window_events.get("post", 0), snap.window_events.get("pre", 0)
    rate, eta_seconds, since = snap.rate_per_minute, None, now
    counted = "read so far; not evaluated yet"
    if document is not None:
        evaluated = document["progress"]
        minimum, events, rate = evaluated["min_events"], evaluated["events"], evaluated["rate_per_minute"]
        eta_seconds, since = evaluated["eta_seconds"], document["evaluated_at_seconds"]
        baseline = document["windows"]["pre"]["events"]
        counted = f"at the last evaluation, {_e(_utc(since))}"
    elif rate and rate > 0 and events < minimum:
        eta_seconds = (minimum - events) * 60.0 / rate
    horizon = _duration(snap.settings.windows.rate_horizon_seconds).replace("m00s", " min")
    share = min(events / minimum, 1.0) if minimum else 1.0
    done = events >= minimum
    if done:
        eta = "<span class=ok>reached</span>"
    elif eta_seconds is not None:
        eta = f"{_duration(eta_seconds)} <span class=sub>(about {_e(_utc(since + eta_seconds))})</span>"
    else:
        eta = "unknown (no events lately)"
    rows = [
        (
            "post window",
            f"<b id=post-events>{events}</b> of {minimum} events <span class=sub>{counted}</span>",
        ),
        ("rate", f"{_num(rate, 2)} events/min <span class=sub>(stream-ID time, last {horizon})</span>"),
        ("ETA to gate", eta),
        ("baseline", f"<span id=baseline-events>{baseline}</span> events before the cutover"),
        (
            "read from the stream",
            f"{snap.entries_read_total} entries since the daemon started "
            "<span class=sub>each counted once, and still counted after trimming removes it</span>",
        ),
        ("accepted", f"{snap.accepted_total} of them fed the gate <span class=sub>the rest: skipped</span>"),
    ]
    if snap.stream_length is not None:
        rows.append(
            (
                "stream length now",
                f"{snap.stream_length} entries in Redis "
                "<span class=sub>(XLEN, every few seconds: what the producer's trimming left)</span>",
            )
        )
    warning = ""
    if snap.post_window_truncated:
        warning = (
            "<p class=warn>The stream was trimmed past the cutover: "
            "the first post-cutover events are gone.</p>"
        )
    bar = f"<div class='bar{' done' if done else ''}'><span style='width:{share * 100:.1f}%'></span></div>"
    return (
        f"<section class=card id=progress><h2>Post-window progress</h2>{bar}"
        f"<dl>{_dl(rows)}</dl>{warning}</section>"
    )


def _actions(models: dict[str, Any]) -> list[str]:
    seen: dict[str, None] = dict.fromkeys(("BUY", "SELL", "HOLD"))
    for model in models.values():
        for side in ("post", "pre"):
            seen.update(dict.fromkeys(model[side]["action_shares"]))
    return list(seen)


def _models_table(document: dict[str, Any]) -> str:
    models: dict[str, Any] = document["models"]
    if not models:
        return "<h2>Models</h2><p>No model has voted in either window yet.</p>"
    actions = _actions(models)
    head = (
        "<tr><th>model</th><th>verdict</th><th>samples</th><th>presence</th>"
        + "".join(f"<th>{_e(action)}</th>" for action in actions)
        + "<th>std</th><th>P10-P90</th><th>top value</th><th>variants (post)</th>"
        + "<th>label spellings<span class=sub>votes respelled</span></th></tr>"
    )
    rows = []
    for name, model in models.items():
        post, pre = model["post"], model["pre"]
        verdict = _chip(model["verdict"]) if model["gated"] else _not_gated(model)
        cells = [
            f"<td><b>{_e(name)}</b></td>",
            f"<td>{verdict}</td>",
            f"<td>{post['samples']}<span class=sub>pre {pre['samples']}</span></td>",
            f"<td>{_pre_post(pre['presence'], post['presence'], share=True)}</td>",
        ]
        for action in actions:
            before = pre["action_shares"].get(action, 0.0) if pre["samples"] else None
            after = post["action_shares"].get(action, 0.0) if post["samples"] else None
            cells.append(f"<td>{_pre_post(before, after, share=True)}</td>")
        cells += [
            f"<td>{_pre_post(pre['std'], post['std'], share=False)}</td>",
            f"<td>{_pre_post(pre['p10_p90'], post['p10_p90'], share=False)}</td>",
            f"<td>{_top_value(post, pre)}</td>",
            f"<td>{_variants(post['variants'])}</td>",
            f"<td>{_respelled(post, pre)}</td>",
        ]
        rows.append(f"<tr data-model='{_e(name)}'>{''.join(cells)}</tr>")
    return (
        "<h2>Models <span class=sub>post window; under each value the baseline and the change</span></h2>"
        f"<div class=scroll><table id=models><thead>{head}</thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>" + _sporadic(document)
    )


def _not_gated(model: dict[str, Any]) -> str:
    if model.get("sporadic"):
        return "<span class=warn>sporadic</span><span class=sub>not gated</span>"
    return "<span class=sub>not gated</span>"


def _respelled(post: dict[str, Any], pre: dict[str, Any]) -> str:
    """Votes whose action label was a spelling variant (``hold``, ``Hold ``), counted as its normal form."""
    after, before = post.get("action_label_variants", 0), pre.get("action_label_variants", 0)
    shown = f"<span class=warn>{after}</span>" if after else "0"
    return f"{shown}<span class=sub>pre {before}</span>"


def _sporadic(document: dict[str, Any]) -> str:
    """Models that voted after the cutover too rarely to be gated: listed, never dropped silently."""
    sporadic: dict[str, Any] = document.get("sporadic_models") or {}
    if not sporadic:
        return ""
    share = document["thresholds"].get("sporadic_share")
    events = document["windows"]["post"]["events"]
    items = "".join(
        f"<li data-model='{_e(name)}'><code>{_e(name)}</code>: {entry['votes']} "
        f"vote{'' if entry['votes'] == 1 else 's'} in {events} post-cutover events "
        f"({_pct(entry['share'])})</li>"
        for name, entry in sporadic.items()
    )
    return (
        f"<p class=warn id=sporadic>Sporadic, not gated (fewer than {_pct(share, 0)} of the events and "
        f"fewer than {document['thresholds'].get('min_samples')} votes, after the cutover and before it):"
        f"</p><ul>{items}</ul>"
    )


def _top_value(post: dict[str, Any], pre: dict[str, Any]) -> str:
    if post["top_value"] is None:
        return "-"
    share = post["top_value_share"]
    before = (
        f"pre {_pct(pre['top_value_share'])} at {pre['top_value']:g}"
        if pre["top_value"] is not None
        else "pre -"
    )
    return f"{_pct(share)} at {post['top_value']:g}<span class=sub>{_e(before)}</span>"


def _variants(variants: dict[str, int]) -> str:
    if not variants:
        return "-"
    ranked = sorted(variants.items(), key=lambda item: (-item[1], item[0]))
    # <wbr> after each "_": a narrow column breaks nhits_fallback_rules between its words, not inside one
    shown = "<br>".join(
        f"<code>{_e(name).replace('_', '_<wbr>')}</code> {count}" for name, count in ranked[:2]
    )
    return shown + (f"<span class=sub>+{len(ranked) - 2} more</span>" if len(ranked) > 2 else "")


def _checks_table(document: dict[str, Any]) -> str:
    gated = {name: model for name, model in document["models"].items() if model["gated"]}
    if not gated:
        return ""
    thresholds: dict[str, str] = {}
    for model in gated.values():
        for check in model["checks"]:
            thresholds.setdefault(
                check["name"], _threshold(check["name"], check["comparator"], check["threshold"])
            )
    names = [name for name in CHECKS if name in thresholds]
    head = "<tr><th>model</th>" + "".join(
        f"<th>{_e(CHECK_TITLES.get(name, name))}<span class=sub>{_e(thresholds[name])}</span></th>"
        for name in names
    )
    rows = []
    for model_name, model in gated.items():
        by_name = {check["name"]: check for check in model["checks"]}
        cells = [f"<td><b>{_e(model_name)}</b> {_chip(model['verdict'])}</td>"]
        for name in names:
            check = by_name.get(name)
            if check is None:
                cells.append("<td>-</td>")
                continue
            passed = bool(check["passed"])
            mark = "✓" if passed else "✗"
            borderline = bool(check.get("borderline"))
            classes = ("ok" if passed else "bad") + (" borderline" if borderline else "")
            cells.append(
                f"<td class='{classes}' data-check='{_e(name)}' "
                f"data-passed={'true' if passed else 'false'} "
                f"data-borderline={'true' if borderline else 'false'}>"
                f"{mark} {_check_value(check)}{_interval(name, check)}</td>"
            )
        rows.append(f"<tr data-model='{_e(model_name)}'>{''.join(cells)}</tr>")
    return (
        "<h2>Checks <span class=sub>post window, each with its threshold</span></h2>"
        f"<div class=scroll><table id=checks><thead>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


# ---- histograms ------------------------------------------------------------------------------------

SVG_W, SVG_H = 340, 170
PLOT_L, PLOT_R, PLOT_T, PLOT_B = 34, 330, 12, 140


def histogram_svg(model: str, pre: Histogram | None, post: Histogram | None) -> str:
    """Pre (orange outline) vs post (blue bars), each as a share of its own window's samples."""
    sample = post or pre
    if sample is None:
        return ""
    lo, hi = sample.lo, sample.hi
    width, height = PLOT_R - PLOT_L, PLOT_B - PLOT_T

    def share_of(hist: Histogram | None) -> list[float]:
        if hist is None or not hist.total:
            return []
        return [count / hist.total for count in hist.counts]

    post_shares, pre_shares = share_of(post), share_of(pre)
    top = max([*post_shares, *pre_shares, 0.0]) or 1.0
    top = min(1.0, _nice_ceiling(top))

    def x(value: float) -> float:
        return PLOT_L + (value - lo) / (hi - lo) * width

    def y(share: float) -> float:
        return PLOT_B - share / top * height

    parts = [
        f"<svg class=hist data-model='{_e(model)}' xmlns='http://www.w3.org/2000/svg' "
        f"viewBox='0 0 {SVG_W} {SVG_H}' role=img aria-label='confidence histogram of {_e(model)}'>",
        f"<title>{_e(model)}: confidence, pre vs post (share of samples per bin)</title>",
        f"<rect x='{PLOT_L}' y='{PLOT_T}' width='{width}' height='{height}' "
        "fill='#fafbfc' stroke='#d9dee5'/>",
    ]
    for fraction in (0.5, 1.0):
        level = y(top * fraction)
        parts.append(
            f"<line x1='{PLOT_L}' x2='{PLOT_R}' y1='{level:.1f}' y2='{level:.1f}' stroke='#e6e9ee'/>"
            f"<text x='{PLOT_L - 4}' y='{level + 4:.1f}' font-size='10' text-anchor='end' "
            f"fill='#5f6b7a'>{top * fraction * 100:.0f}%</text>"
        )
    if post is not None and post_shares:
        edges = post.edges()
        for index, share in enumerate(post_shares):
            if share <= 0:
                continue
            left, right = x(edges[index]), x(edges[index + 1])
            parts.append(
                f"<rect class=post x='{left + 0.5:.1f}' y='{y(share):.1f}' "
                f"width='{max(right - left - 1, 1):.1f}' "
                f"height='{PLOT_B - y(share):.1f}' fill='#2f6fdf' fill-opacity='0.75'/>"
            )
    if pre is not None and pre_shares:
        edges = pre.edges()
        points = [f"{x(edges[0]):.1f},{PLOT_B}"]
        for index, share in enumerate(pre_shares):
            points.append(f"{x(edges[index]):.1f},{y(share):.1f}")
            points.append(f"{x(edges[index + 1]):.1f},{y(share):.1f}")
        points.append(f"{x(edges[-1]):.1f},{PLOT_B}")
        parts.append(
            f"<polyline class=pre points='{' '.join(points)}' "
            "fill='none' stroke='#e07b00' stroke-width='1.6'/>"
        )
    if lo < 1.0 < hi:
        at = x(1.0)
        parts.append(
            f"<line x1='{at:.1f}' x2='{at:.1f}' y1='{PLOT_T}' y2='{PLOT_B}' stroke='#c62828' "
            "stroke-dasharray='3 3'/>"
            f"<text x='{at + 3:.1f}' y='{PLOT_T + 10}' font-size='9' fill='#c62828'>&gt; 1</text>"
        )
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        if lo <= tick <= hi:
            parts.append(
                f"<line x1='{x(tick):.1f}' x2='{x(tick):.1f}' y1='{PLOT_B}' y2='{PLOT_B + 4}' "
                "stroke='#5f6b7a'/>"
                f"<text x='{x(tick):.1f}' y='{PLOT_B + 15}' font-size='10' text-anchor='middle' "
                f"fill='#5f6b7a'>{tick:g}</text>"
            )
    parts.append(
        f"<text x='{(PLOT_L + PLOT_R) / 2:.0f}' y='{SVG_H - 2}' font-size='10' text-anchor='middle' "
        "fill='#5f6b7a'>confidence</text></svg>"
    )
    return "".join(parts)


def _nice_ceiling(value: float) -> float:
    for step in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0):
        if value <= step:
            return step
    return 1.0


def _histograms(snap: Snapshot, document: dict[str, Any] | None) -> str:
    if not snap.histograms:
        return ""
    cards = []
    for model, sides in snap.histograms.items():
        pre, post = sides.get("pre"), sides.get("post")
        counts = (
            f"<span class=swatch style='background:#2f6fdf'></span>post n={post.total if post else 0}"
            f"<span class=swatch style='background:#e07b00'></span>pre n={pre.total if pre else 0}"
        )
        outside = sum(hist.above + hist.below for hist in (pre, post) if hist is not None)
        note = f" <span class=bad>{outside} beyond the axis</span>" if outside else ""
        gated = document is not None and document["models"].get(model, {}).get("gated", False)
        chip = _chip(document["models"][model]["verdict"]) if gated and document else ""
        cards.append(
            f"<div class='card hist-card'><h3>{_e(model)} {chip}</h3>"
            f"{histogram_svg(model, pre, post)}<div class=legend>{counts}{note}</div></div>"
        )
    return (
        "<h2>Confidence histograms <span class=sub>share of each window's samples per 0.05 bin; "
        "bars = post, outline = pre; right of the dashed line is out of range</span></h2>"
        f"<div class=hists id=histograms>{''.join(cards)}</div>"
    )


# ---- ensemble and skips ----------------------------------------------------------------------------


def _ensemble(document: dict[str, Any]) -> str:
    ensemble = document["ensemble"]
    pre, post = ensemble["pre"], ensemble["post"]
    sides = sorted(set(pre["side_shares"]) | set(post["side_shares"]))
    rows = [
        ("events", f"{post['events']}<span class=sub>pre {pre['events']}</span>"),
        ("rule fallback fired", _pre_post(pre["fallback_share"], post["fallback_share"], share=True)),
        ("agreement on the modal vote", _pre_post(pre["agreement"], post["agreement"], share=True)),
        (
            "BUY and SELL votes at once",
            _pre_post(pre["hard_disagree_share"], post["hard_disagree_share"], share=True),
        ),
    ]
    rows += [
        (
            f"side {side}",
            _pre_post(pre["side_shares"].get(side), post["side_shares"].get(side, 0.0), share=True),
        )
        for side in sides
    ]
    cells = "".join(f"<tr><td>{_e(label)}</td><td>{value}</td></tr>" for label, value in rows)
    return (
        "<section><h2>Ensemble <span class=sub>reported, not gated: the engine never publishes HOLD, "
        "so its side is biased</span></h2>"
        f"<table id=ensemble class=narrow><tbody>{cells}</tbody></table></section>"
    )


def _skips(snap: Snapshot, document: dict[str, Any] | None) -> str:
    post = document["windows"]["post"]["skipped"] if document else {}
    pre = document["windows"]["pre"]["skipped"] if document else {}
    reasons = sorted(set(snap.skipped_total) | set(post) | set(pre))
    extra = [
        ("entries trimmed before they were read", snap.lost_total),
        ("stream resets", snap.resets_total),
        ("model keys refused by the caps", snap.refused_total),
    ]
    rows = (
        "".join(
            f"<tr><td><code>{_e(reason)}</code></td><td>{snap.skipped_total.get(reason, 0)}</td>"
            f"<td>{post.get(reason, 0)}</td><td>{pre.get(reason, 0)}</td></tr>"
            for reason in reasons
        )
        or "<tr><td colspan=4>none: every entry read so far fed the gate</td></tr>"
    )
    others = "".join(f"<tr><td>{_e(label)}</td><td colspan=3>{count}</td></tr>" for label, count in extra)
    return (
        "<section><h2>Skipped entries "
        "<span class=sub>entries that do not feed the gate, by reason</span></h2>"
        "<table id=skips class=narrow><thead><tr><th>reason</th><th>since start</th><th>post window</th>"
        f"<th>baseline</th></tr></thead><tbody>{rows}{others}</tbody></table></section>"
    )


# ---- the page --------------------------------------------------------------------------------------


def refresh_seconds(snap: Snapshot) -> int:
    return int(min(max(round(snap.settings.daemon.interval_seconds), 2), 30))


def render_status_page(snap: Snapshot, now: float) -> str:
    document = snap.document
    verdict = document["verdict"] if document else NO_EVALUATION
    refresh = refresh_seconds(snap)
    banners = []
    if snap.systemd_waiting_since is not None:
        banners.append("systemd is not answering yet: the cutover is unknown, Redis is not read yet.")
    elif not snap.redis_up:
        condition = snap.redis_condition or "unreachable"
        said = f"is {condition}" if condition.startswith("unreachable") else f"is not usable: {condition}"
        banners.append(f"Redis {said}. The numbers below are from the last data read.")
    if (
        snap.last_evaluation_at is not None
        and now - snap.last_evaluation_at > snap.settings.daemon.staleness_limit()
    ):
        banners.append("The last evaluation is stale: do not trust this verdict.")
    body = [
        "<main>",
        "<div class=top>",
        _verdict_block(snap, document),
        _facts(snap, now),
        "</div>",
        "".join(f"<p class=banner>{_e(text)}</p>" for text in banners),
        "<div class=grid>",
        _cutover_card(snap, document, now),
        _progress_card(snap, document, now),
        "</div>",
    ]
    if document is not None:
        body.append(_borderline_note(document))
    if document is not None:
        body += [_models_table(document), _checks_table(document)]
    body.append(_histograms(snap, document))
    if document is not None:
        body.append(_ensemble(document))
    body.append(_skips(snap, document))
    body.append(_recent_cutovers(snap, now))
    body.append(
        f"<footer>quantum-gate {_e(snap.version)} · page drawn {_e(_utc(now))}, "
        f"refreshes every {refresh} s · "
        "<a href='/gate'>/gate</a> (JSON, as <code>check --json</code>) · <a href='/metrics'>/metrics</a> · "
        "<a href='/healthz'>/healthz</a></footer></main>"
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
        f"<meta http-equiv=refresh content='{refresh}'>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        "<link rel=icon href='data:,'>"
        f"<title>{_e(verdict)} · quantum-gate</title><style>{STYLE}</style></head><body>"
        + "".join(body)
        + "</body></html>"
    )


def _rollout_html(rollout: Rollout) -> str:
    if rollout.complete:
        pods = f"{rollout.updated} of {rollout.replicas} pods"
        return f"<span class=ok>complete</span> <span class=sub>{pods}</span>"
    return (
        f"<span class=warn id=rollout>{_e(rollout.reason())}</span> "
        "<span class=sub>the gate waits for the rollout: old and new pods both write</span>"
    )
