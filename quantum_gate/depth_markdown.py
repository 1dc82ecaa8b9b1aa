"""Markdown (and terminal text) for the report-depth keys of the gate document: cutover provenance,
stream retention, the per-symbol breakdown, action transition matrices and confidence histograms.

Drawn from the JSON document only (like the rest of report.py), so a report file and ``/gate`` say
the same thing. Pure. Text bars use ``#`` so they read the same in a terminal and a Git viewer.
"""

from __future__ import annotations

import shlex
from typing import Any

from quantum_gate.formatting import num as _num
from quantum_gate.formatting import pct as _pct

BAR_WIDTH = 25
ACTIONS = ("BUY", "SELL", "HOLD", "other")


def _fence(text: str) -> list[str]:
    longest, run = 0, 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return [fence, *text.splitlines(), fence]


def _hours(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# ---- provenance ------------------------------------------------------------------------------------


def _source_provenance_markdown(cutover: dict[str, Any]) -> list[str]:
    """docker and kubernetes: what started, its identity, its state or rollout, image and labels."""
    state = f" (state {cutover['active_state']})" if cutover.get("active_state") else ""
    lines = [f"- Deployment: {cutover['label']}{state}", f"- Identity: `{cutover.get('identity')}`"]
    if cutover.get("source") == "docker":
        restarts = cutover.get("n_restarts")
        lines.append(f"- StartedAt: `{cutover.get('active_enter_timestamp')}`, RestartCount {restarts}")
    rollout = cutover.get("rollout")
    if rollout:
        lines.append(f"- Rollout: {'complete' if rollout['complete'] else rollout['reason']}")
    lines += [f"- {key}: `{value}`" for key, value in (cutover.get("provenance") or {}).items()]
    return lines


def provenance_markdown(document: dict[str, Any]) -> list[str]:
    cutover = document.get("cutover") or {}
    lines = ["", "## Cutover provenance", ""]
    if cutover.get("unit"):
        lines += [
            f"- Unit: `{cutover['unit']}` (state {cutover.get('active_state') or 'unknown'}, "
            f"restarts {cutover.get('n_restarts') if cutover.get('n_restarts') is not None else 'unknown'})",
            f"- InvocationID: `{cutover.get('invocation_id') or 'unknown'}`",
            f"- ActiveEnterTimestamp: `{cutover.get('active_enter_timestamp') or 'unknown'}`",
        ]
    elif cutover.get("label"):  # a container or a Kubernetes Deployment
        lines += _source_provenance_markdown(cutover)
    else:
        source = cutover.get("source")
        why = "fixed by hand (`--after`)" if source == "after" else "unknown"
        lines.append(f"- Unit, InvocationID, ActiveEnterTimestamp: none, the cutover was {why}")
    lines.append(
        f"- Stream ID: `{cutover.get('stream_id')}` ({cutover.get('timestamp') or 'time unknown'}, "
        f"source {cutover.get('source')})"
    )
    deployment = document.get("deployment")
    if deployment:
        argv = shlex.join(deployment["argv"])
        state = deployment["error"] or f"exit {deployment['returncode']}"
        if deployment.get("truncated"):
            state += ", output truncated"
        when = f" at {deployment['captured_at']}" if deployment["captured_at"] else ""
        lines.append(f"- Deployment info: `{argv}`{when} ({state}):")
        lines += ["", *(f"  {line}" for line in _fence(deployment["output"] or "(no output)"))]
    else:
        lines.append("- Deployment info: not configured (`report.deployment_info`)")
    notes = document.get("notes") or {}
    for key, title in (("config", "Notes (config)"), ("operator", "Operator note")):
        text = notes.get(key)
        if text:
            lines += [f"- {title}:", "", *(f"  > {line}" for line in str(text).splitlines())]
    return lines


# ---- retention -------------------------------------------------------------------------------------


def retention_markdown(document: dict[str, Any]) -> list[str]:
    retention = document.get("retention")
    if retention is None:
        return []
    trimmed = retention["trimmed"]
    lines = [
        "",
        "## Stream retention",
        "",
        f"- The stream holds {retention['length']} entries covering {_hours(retention['covers_seconds'])} "
        f"({retention['first_entry_at']} .. {retention['last_entry_at']}), "
        f"{_num(retention['entry_rate_per_minute'], 2)} entries/min",
        f"- Entries added: {retention['entries_added']}; removed so far: {trimmed}"
        + ("" if retention["trimming"] else " (not trimming yet: MAXLEN not reached)"),
    ]
    for kind, title in (("baseline", "Baseline"), ("post_window", "Post window")):
        if retention["risks"].get(kind):
            lines.append(f"- {title}: **AT RISK**: {retention['reasons'].get(kind)}")
        else:
            lines.append(f"- {title}: safe from trimming")
    return lines


# ---- per-symbol breakdown --------------------------------------------------------------------------


def _biggest_move(row: dict[str, Any]) -> str:
    pre, post = row["pre"]["action_shares"], row["post"]["action_shares"]
    label = max(ACTIONS, key=lambda a: (abs(post[a] - pre[a]), a))
    return f"{label} {_pct(pre[label])} -> {_pct(post[label])}"


def _headline(row: dict[str, Any]) -> str:
    return (
        f"`{row['symbol']}` changed most (change {_num(row['change'], 2)}: {_biggest_move(row)}, "
        f"mean {_num(row['pre']['mean'])} -> {_num(row['post']['mean'])}, "
        f"std {_num(row['pre']['std'])} -> {_num(row['post']['std'])}; "
        f"n {row['pre']['samples']} -> {row['post']['samples']})"
    )


def _gated(document: dict[str, Any], name: str) -> str:
    model = document.get("models", {}).get(name)
    if model is None or model.get("gated"):
        return ""
    return " (not gated)"


def symbols_markdown(document: dict[str, Any]) -> list[str]:
    symbols = document.get("symbols")
    if not symbols or not symbols["models"]:
        return []
    lines = [
        "",
        "## Per-symbol breakdown",
        "",
        f"Per model, the {symbols['top_n']} symbols that changed most pre -> post, ranked by "
        f"{symbols['ranked_by']}. Symbols with fewer than {symbols['min_ranked_samples']} votes on a side "
        "rank after the others; the rest are pooled in *other*. Shares are of the model's votes.",
        "",
    ]
    for name, model in symbols["models"].items():
        ranked = [row for row in model["symbols"] if row["change"] is not None]
        headline = _headline(ranked[0]) if ranked else "no symbol on both sides"
        lines.append(f"- **{name}**{_gated(document, name)}: {headline}")
    for name, model in symbols["models"].items():
        rows = list(model["symbols"])
        if model["other"]:
            rows.append({"symbol": f"*other ({model['other']['symbols']} symbols)*", **model["other"]})
        labels = [a for a in ACTIONS if a != "other" or any(_has_other(row) for row in rows)]
        header = ["symbol", "n pre -> post", *(f"{a} pre -> post" for a in labels)]
        header += ["mean pre -> post", "std pre -> post", "change"]
        lines += [
            "",
            f"### {name}{_gated(document, name)}: {model['distinct']} symbols",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
        ]
        for row in rows:
            pre, post = row["pre"], row["post"]
            symbol = row["symbol"] if row["symbol"].startswith("*") else f"`{row['symbol']}`"
            cells = [symbol, f"{pre['samples']} -> {post['samples']}"]
            cells += [f"{_share(pre, a)} -> {_share(post, a)}" for a in labels]
            cells += [
                f"{_num(pre['mean'])} -> {_num(post['mean'])}",
                f"{_num(pre['std'])} -> {_num(post['std'])}",
                _num(row["change"], 2),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _share(side: dict[str, Any], action: str) -> str:
    return _pct(side["action_shares"][action]) if side["samples"] else "-"


def _has_other(row: dict[str, Any]) -> bool:
    return bool(row["pre"]["action_counts"]["other"] or row["post"]["action_counts"]["other"])


def symbols_text(symbols: dict[str, Any], limit: int = 5) -> list[str]:
    """A few lines per model for ``diagnose``: the symbols that changed most."""
    lines = ["", f"== per symbol: the {limit} that changed most pre -> post (of the top {symbols['top_n']})"]
    for name, model in symbols["models"].items():
        lines.append(f"{name}: {model['distinct']} symbols")
        for row in model["symbols"][:limit]:
            pre, post = row["pre"], row["post"]
            moved = _biggest_move(row) if row["change"] is not None else "one side only"
            lines.append(
                f"  {row['symbol']:<14} n {pre['samples']:>5} -> {post['samples']:<5} {moved:<24} "
                f"std {_num(pre['std'])} -> {_num(post['std'])}  change {_num(row['change'], 2)}"
            )
        if model["other"]:
            other = model["other"]
            counts = f"n {other['pre']['samples']} -> {other['post']['samples']}"
            lines.append(f"  other ({other['symbols']} symbols) {counts}")
    return lines


# ---- transitions -----------------------------------------------------------------------------------


def transitions_markdown(document: dict[str, Any]) -> list[str]:
    transitions = document.get("transitions")
    if not transitions or not transitions["models"]:
        return []
    labels: list[str] = transitions["labels"]
    lines = [
        "",
        "## Action transitions",
        "",
        "How each model's action changes from one decision to the next on the same symbol. Rows: the "
        "previous action, columns: the next one, cells: count (row share). *Stuck* is the share of "
        "self-transitions (BUY -> BUY, SELL -> SELL, HOLD -> HOLD, other -> other).",
    ]
    for name, sides in transitions["models"].items():
        pre, post = sides["pre"], sides["post"]
        shown = [
            i
            for i, label in enumerate(labels)
            if label != "other" or any(_row_col_used(side, i) for side in (pre, post))
        ]
        dominant = post["dominant"]
        move = (
            f"; dominant move post {dominant['from']} -> {dominant['to']} ({_pct(dominant['share'])})"
            if dominant
            else ""
        )
        header = ["from \\ to", *(f"pre {labels[i]}" for i in shown), *(f"post {labels[i]}" for i in shown)]
        lines += [
            "",
            f"### {name}{_gated(document, name)}: "
            f"stuck {_pct(pre['self_share'])} -> {_pct(post['self_share'])}{move}",
            "",
            f"Transitions: pre {pre['transitions']} over {pre['symbols']} symbols, "
            f"post {post['transitions']} over {post['symbols']} symbols.",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
        ]
        for i in shown:
            cells = [labels[i]]
            for side in (pre, post):
                shares = side["row_shares"][i]
                cells += [f"{side['counts'][i][j]} ({_pct(shares[j]) if shares else '-'})" for j in shown]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _row_col_used(side: dict[str, Any], index: int) -> bool:
    counts = side["counts"]
    return bool(sum(counts[index]) or sum(row[index] for row in counts))


# ---- histograms ------------------------------------------------------------------------------------


def _bar(share: float, scale: float) -> str:
    """``share`` of the window as a bar; ``scale`` (the largest share drawn) fills BAR_WIDTH."""
    if share <= 0 or scale <= 0:
        return ""
    return "#" * max(1, round(share / scale * BAR_WIDTH))


def _bin_label(edges: list[float], index: int) -> str:
    left = "[" if index == 0 else "("
    return f"{left}{edges[index]:.2f}, {edges[index + 1]:.2f}]"


def histogram_lines(name: str, histograms: dict[str, Any], sides: dict[str, Any]) -> list[str]:
    edges: list[float] = histograms["edges"]
    pre, post = sides["pre"], sides["post"]
    label_width = len(_bin_label(edges, len(edges) - 2)) + 1
    cell_width = 6 + 1 + 6 + 2 + BAR_WIDTH + 1
    scale = max(
        (count / side["total"] for side in (pre, post) if side["total"] for count in side["counts"]),
        default=0.0,
    )
    head = f"{'':<{label_width}} {'pre  n=' + str(pre['total']):<{cell_width}}  post n={post['total']}"
    lines = [f"{name}: confidence (bars share of the window; the longest = {scale * 100:.1f}%)", head]
    for i in range(len(edges) - 1):
        marker = "!" if edges[i] >= 1.0 else " "  # right of 1.0: out of the contract's range
        cells = []
        for side in (pre, post):
            count, total = side["counts"][i], side["total"]
            share = f"{count / total * 100:5.1f}%" if total else "     -"
            bar = _bar(count / total if total else 0.0, scale)
            cells.append(f"{count:>6} {share} |{bar:<{BAR_WIDTH}}|")
        lines.append(f"{_bin_label(edges, i) + marker:<{label_width}} {cells[0]}  {cells[1]}".rstrip())
    folded = [
        f"{side_name}: {side['below']} below {edges[0]:g} (in the first bin), "
        f"{side['above']} above {edges[-1]:g} (in the last bin)"
        for side_name, side in (("pre", pre), ("post", post))
        if side["below"] or side["above"]
    ]
    lines += folded
    return lines


def histograms_markdown(document: dict[str, Any]) -> list[str]:
    histograms = document.get("histograms")
    if not histograms or not histograms["models"]:
        return []
    edges = histograms["edges"]
    width = edges[1] - edges[0]
    lines = [
        "",
        "## Confidence histograms",
        "",
        f"{histograms['bins']} bins of {width:.3g} over [{histograms['lo']:g}, {histograms['hi']:g}], "
        "right-closed, so a value on an edge (0.5, 0.75, 1.0) sits at the top of the bar left of it. "
        "Rows marked `!` are above 1.0: out of the contract's range, kept raw. Bars show the share of "
        "the window's votes on one scale per model, so pre and post compare even when their sizes differ.",
    ]
    for name, sides in histograms["models"].items():
        lines += ["", *_fence("\n".join(histogram_lines(name + _gated(document, name), histograms, sides)))]
    return lines


def depth_markdown(document: dict[str, Any]) -> list[str]:
    """Everything after the gate's own sections: retention, symbols, transitions, histograms."""
    return [
        *retention_markdown(document),
        *symbols_markdown(document),
        *transitions_markdown(document),
        *histograms_markdown(document),
    ]


def diagnose_depth_text(document: dict[str, Any]) -> list[str]:
    """``diagnose``'s terminal addendum: who is stuck (self-transitions), and where it changed."""
    lines: list[str] = []
    transitions = document.get("transitions")
    if transitions and transitions["models"]:
        lines += ["", "== action transitions on the same symbol: stuck (self-transition share) pre -> post"]
        for name, sides in transitions["models"].items():
            pre, post = sides["pre"], sides["post"]
            dominant = post["dominant"]
            move = (
                f", dominant {dominant['from']} -> {dominant['to']} {_pct(dominant['share'])}"
                if dominant
                else ""
            )
            lines.append(
                f"{name}: stuck {_pct(pre['self_share'])} -> {_pct(post['self_share'])} "
                f"({pre['transitions']} -> {post['transitions']} transitions{move})"
            )
    symbols = document.get("symbols")
    if symbols and symbols["models"]:
        lines += symbols_text(symbols)
    return lines
