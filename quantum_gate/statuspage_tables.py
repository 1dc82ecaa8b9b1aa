"""The status page's tables: the borderline note, the models (pre -> post), the checks with their
thresholds and intervals, the ensemble, the skipped entries and the ledger's recent cutovers.
"""

from __future__ import annotations

from typing import Any

from quantum_gate.checks import CHECKS
from quantum_gate.exporter import Snapshot
from quantum_gate.formatting import pct
from quantum_gate.history import HEADER as HISTORY_HEADER
from quantum_gate.history import cells as history_cells
from quantum_gate.statuspage_html import (
    CHECK_TITLES,
    check_value,
    chip,
    esc,
    interval_line,
    interval_text,
    pre_post,
    threshold_text,
)


def borderline_note(document: dict[str, Any]) -> str:
    """Says it out loud when the verdict rests on checks that more events may flip."""
    items = document.get("borderline") or []
    if not items:
        return ""
    listed = "".join(
        f"<li><b>{esc(item['model'])}</b> {esc(CHECK_TITLES.get(item['name'], item['name']))} "
        f"{esc(check_value(item))}: 95% interval"
        f"{interval_text(item['name'], item['interval'])} straddles "
        f"{esc(threshold_text(item['name'], item['comparator'], item['threshold']))}</li>"
        for item in items
    )
    return (
        f"<section class=borderline-note id=borderline><b>Borderline {esc(document['verdict'])}</b>: "
        "the verdict follows the thresholds, but these checks could flip as events arrive."
        f"<ul>{listed}</ul><p>{esc(document.get('recommendation') or '')}</p></section>"
    )


def models_table(document: dict[str, Any]) -> str:
    models: dict[str, Any] = document["models"]
    if not models:
        return "<h2>Models</h2><p>No model has voted in either window yet.</p>"
    actions = _actions(models)
    head = (
        "<tr><th>model</th><th>verdict</th><th>samples</th><th>presence</th>"
        + "".join(f"<th>{esc(action)}</th>" for action in actions)
        + "<th>std</th><th>P10-P90</th><th>top value</th><th>variants (post)</th>"
        + "<th>label spellings<span class=sub>votes respelled</span></th></tr>"
    )
    rows = []
    for name, model in models.items():
        post, pre = model["post"], model["pre"]
        verdict = chip(model["verdict"]) if model["gated"] else _not_gated(model)
        cells = [
            f"<td><b>{esc(name)}</b></td>",
            f"<td>{verdict}</td>",
            f"<td>{post['samples']}<span class=sub>pre {pre['samples']}</span></td>",
            f"<td>{pre_post(pre['presence'], post['presence'], share=True)}</td>",
        ]
        for action in actions:
            before = pre["action_shares"].get(action, 0.0) if pre["samples"] else None
            after = post["action_shares"].get(action, 0.0) if post["samples"] else None
            cells.append(f"<td>{pre_post(before, after, share=True)}</td>")
        cells += [
            f"<td>{pre_post(pre['std'], post['std'], share=False)}</td>",
            f"<td>{pre_post(pre['p10_p90'], post['p10_p90'], share=False)}</td>",
            f"<td>{_top_value(post, pre)}</td>",
            f"<td>{_variants(post['variants'])}</td>",
            f"<td>{_respelled(post, pre)}</td>",
        ]
        rows.append(f"<tr data-model='{esc(name)}'>{''.join(cells)}</tr>")
    return (
        "<h2>Models <span class=sub>post window; under each value the baseline and the change</span></h2>"
        f"<div class=scroll><table id=models><thead>{head}</thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>" + _sporadic(document)
    )


def _actions(models: dict[str, Any]) -> list[str]:
    seen: dict[str, None] = dict.fromkeys(("BUY", "SELL", "HOLD"))
    for model in models.values():
        for side in ("post", "pre"):
            seen.update(dict.fromkeys(model[side]["action_shares"]))
    return list(seen)


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
        f"<li data-model='{esc(name)}'><code>{esc(name)}</code>: {entry['votes']} "
        f"vote{'' if entry['votes'] == 1 else 's'} in {events} post-cutover events "
        f"({pct(entry['share'])})</li>"
        for name, entry in sporadic.items()
    )
    return (
        f"<p class=warn id=sporadic>Sporadic, not gated (fewer than {pct(share, 0)} of the events and "
        f"fewer than {document['thresholds'].get('min_samples')} votes, after the cutover and before it):"
        f"</p><ul>{items}</ul>"
    )


def _top_value(post: dict[str, Any], pre: dict[str, Any]) -> str:
    if post["top_value"] is None:
        return "-"
    share = post["top_value_share"]
    before = (
        f"pre {pct(pre['top_value_share'])} at {pre['top_value']:g}"
        if pre["top_value"] is not None
        else "pre -"
    )
    return f"{pct(share)} at {post['top_value']:g}<span class=sub>{esc(before)}</span>"


def _variants(variants: dict[str, int]) -> str:
    if not variants:
        return "-"
    ranked = sorted(variants.items(), key=lambda item: (-item[1], item[0]))
    # <wbr> after each "_": a narrow column breaks nhits_fallback_rules between its words, not inside one
    shown = "<br>".join(
        f"<code>{esc(name).replace('_', '_<wbr>')}</code> {count}" for name, count in ranked[:2]
    )
    return shown + (f"<span class=sub>+{len(ranked) - 2} more</span>" if len(ranked) > 2 else "")


def checks_table(document: dict[str, Any]) -> str:
    gated = {name: model for name, model in document["models"].items() if model["gated"]}
    if not gated:
        return ""
    thresholds: dict[str, str] = {}
    for model in gated.values():
        for check in model["checks"]:
            thresholds.setdefault(
                check["name"], threshold_text(check["name"], check["comparator"], check["threshold"])
            )
    names = [name for name in CHECKS if name in thresholds]
    head = "<tr><th>model</th>" + "".join(
        f"<th>{esc(CHECK_TITLES.get(name, name))}<span class=sub>{esc(thresholds[name])}</span></th>"
        for name in names
    )
    rows = []
    for model_name, model in gated.items():
        by_name = {check["name"]: check for check in model["checks"]}
        cells = [f"<td><b>{esc(model_name)}</b> {chip(model['verdict'])}</td>"]
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
                f"<td class='{classes}' data-check='{esc(name)}' "
                f"data-passed={'true' if passed else 'false'} "
                f"data-borderline={'true' if borderline else 'false'}>"
                f"{mark} {check_value(check)}{interval_line(name, check)}</td>"
            )
        rows.append(f"<tr data-model='{esc(model_name)}'>{''.join(cells)}</tr>")
    return (
        "<h2>Checks <span class=sub>post window, each with its threshold</span></h2>"
        f"<div class=scroll><table id=checks><thead>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def ensemble_table(document: dict[str, Any]) -> str:
    ensemble = document["ensemble"]
    pre, post = ensemble["pre"], ensemble["post"]
    sides = sorted(set(pre["side_shares"]) | set(post["side_shares"]))
    rows = [
        ("events", f"{post['events']}<span class=sub>pre {pre['events']}</span>"),
        ("rule fallback fired", pre_post(pre["fallback_share"], post["fallback_share"], share=True)),
        ("agreement on the modal vote", pre_post(pre["agreement"], post["agreement"], share=True)),
        (
            "BUY and SELL votes at once",
            pre_post(pre["hard_disagree_share"], post["hard_disagree_share"], share=True),
        ),
    ]
    rows += [
        (
            f"side {side}",
            pre_post(pre["side_shares"].get(side), post["side_shares"].get(side, 0.0), share=True),
        )
        for side in sides
    ]
    cells = "".join(f"<tr><td>{esc(label)}</td><td>{value}</td></tr>" for label, value in rows)
    return (
        "<section><h2>Ensemble <span class=sub>reported, not gated: the engine never publishes HOLD, "
        "so its side is biased</span></h2>"
        f"<table id=ensemble class=narrow><tbody>{cells}</tbody></table></section>"
    )


def skips_table(snap: Snapshot, document: dict[str, Any] | None) -> str:
    post = document["windows"]["post"]["skipped"] if document else {}
    pre = document["windows"]["pre"]["skipped"] if document else {}
    reasons = sorted(set(snap.tail.skipped_total) | set(post) | set(pre))
    extra = [
        ("entries trimmed before they were read", snap.tail.lost_total),
        ("stream resets", snap.tail.resets_total),
        ("model keys refused by the caps", snap.tail.refused_total),
    ]
    rows = (
        "".join(
            f"<tr><td><code>{esc(reason)}</code></td><td>{snap.tail.skipped_total.get(reason, 0)}</td>"
            f"<td>{post.get(reason, 0)}</td><td>{pre.get(reason, 0)}</td></tr>"
            for reason in reasons
        )
        or "<tr><td colspan=4>none: every entry read so far fed the gate</td></tr>"
    )
    others = "".join(f"<tr><td>{esc(label)}</td><td colspan=3>{count}</td></tr>" for label, count in extra)
    return (
        "<section><h2>Skipped entries "
        "<span class=sub>entries that do not feed the gate, by reason</span></h2>"
        "<table id=skips class=narrow><thead><tr><th>reason</th><th>since start</th><th>post window</th>"
        f"<th>baseline</th></tr></thead><tbody>{rows}{others}</tbody></table></section>"
    )


def recent_cutovers(snap: Snapshot, now: float) -> str:
    """The ledger's newest rows (absent without a ledger)."""
    ledger = snap.ledger
    if ledger is None:
        return ""
    if not ledger.up:
        return (
            f"<section><h2>Recent cutovers</h2><p class=warn>The ledger {esc(ledger.path)} is unavailable "
            f"({esc(ledger.reason or 'unknown')}); the gate goes on without it.</p></section>"
        )
    if not ledger.recent:
        return "<section><h2>Recent cutovers</h2><p>No cutover recorded yet.</p></section>"
    head = "".join(f"<th>{esc(title)}</th>" for title in HISTORY_HEADER)
    rows = []
    for row in ledger.recent:
        values = history_cells(row, now)
        report = values[-1]
        link = f"<a href='/reports/{esc(report)}'>{esc(report)}</a>" if row.reports else "-"
        rows.append(
            f"<tr data-identity='{esc(row.identity)}'>"
            + "".join(f"<td>{esc(value)}</td>" for value in values[:-1])
            + f"<td>{link}</td></tr>"
        )
    return (
        "<section><h2>Recent cutovers <span class=sub>from the ledger, newest first "
        "(<a href='/history'>/history</a>)</span></h2>"
        f"<div class=scroll><table id=history><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div></section>"
    )
