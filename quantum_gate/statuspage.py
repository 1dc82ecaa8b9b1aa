"""The status page served at ``/``: one self-contained HTML page drawn from one daemon snapshot.

What a person needs to decide whether the new deployment is healthy, and why: the verdict and its
reasons, the cutover, the post window's progress to ``min_events``, a per-model table with every check
and its threshold, pre -> post deltas, and pre vs post confidence histograms as inline SVG.

No external assets and no script (a ``<meta>`` refresh reloads it), so it works offline; a
Content-Security-Policy forbids loading anything. Everything that came from the stream or from
systemd (model keys, actions, variants, unit names, invocation IDs, reasons that quote them) is
untrusted and goes through ``statuspage_html.esc`` (HTML escaping, quotes included) before it reaches
the page. This module puts the page together; its parts are drawn by ``statuspage_cards`` (verdict,
facts, cutover, progress), ``statuspage_tables`` (models, checks, ensemble, skips, recent cutovers)
and ``statuspage_histograms`` (the SVG), from the pieces in ``statuspage_html``.
"""

from __future__ import annotations

from quantum_gate.exporter import Snapshot
from quantum_gate.statuspage_cards import cutover_card, facts_card, progress_card, verdict_block
from quantum_gate.statuspage_histograms import histograms_section
from quantum_gate.statuspage_html import NO_EVALUATION, esc, utc_text
from quantum_gate.statuspage_tables import (
    borderline_note,
    checks_table,
    ensemble_table,
    models_table,
    recent_cutovers,
    skips_table,
)

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


def refresh_seconds(snap: Snapshot) -> int:
    return int(min(max(round(snap.settings.daemon.interval_seconds), 2), 30))


def render_status_page(snap: Snapshot, now: float) -> str:
    document = snap.evaluation.document
    verdict = document["verdict"] if document else NO_EVALUATION
    refresh = refresh_seconds(snap)
    banners = []
    if snap.cutovers.systemd_waiting_since is not None:
        banners.append("systemd is not answering yet: the cutover is unknown, Redis is not read yet.")
    elif not snap.tail.redis_up:
        condition = snap.tail.redis_condition or "unreachable"
        said = f"is {condition}" if condition.startswith("unreachable") else f"is not usable: {condition}"
        banners.append(f"Redis {said}. The numbers below are from the last data read.")
    if (
        snap.evaluation.last_evaluation_at is not None
        and now - snap.evaluation.last_evaluation_at > snap.settings.daemon.staleness_limit()
    ):
        banners.append("The last evaluation is stale: do not trust this verdict.")
    body = [
        "<main>",
        "<div class=top>",
        verdict_block(snap, document),
        facts_card(snap, now),
        "</div>",
        "".join(f"<p class=banner>{esc(text)}</p>" for text in banners),
        "<div class=grid>",
        cutover_card(snap, document, now),
        progress_card(snap, document, now),
        "</div>",
    ]
    if document is not None:
        body.append(borderline_note(document))
    if document is not None:
        body += [models_table(document), checks_table(document)]
    body.append(histograms_section(snap, document))
    if document is not None:
        body.append(ensemble_table(document))
    body.append(skips_table(snap, document))
    body.append(recent_cutovers(snap, now))
    body.append(
        f"<footer>quantum-gate {esc(snap.version)} · page drawn {esc(utc_text(now))}, "
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
        f"<title>{esc(verdict)} · quantum-gate</title><style>{STYLE}</style></head><body>"
        + "".join(body)
        + "</body></html>"
    )
