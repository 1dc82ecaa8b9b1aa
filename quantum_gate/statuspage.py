"""The status page served at ``/``: a self-contained HTML page drawn from one daemon snapshot."""

from __future__ import annotations

from html import escape

from quantum_gate.exporter import Snapshot


def render_status_page(snap: Snapshot, now: float) -> str:
    document = snap.document
    verdict = document["verdict"] if document else "NO EVALUATION YET"
    reasons = "".join(f"<li>{escape(reason)}</li>" for reason in (document or {}).get("reasons", []))
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>quantum-gate</title>"
        '<meta http-equiv="refresh" content="10"></head><body>'
        f"<h1>quantum-gate: <span id=verdict>{escape(verdict)}</span></h1><ul>{reasons}</ul>"
        '<p><a href="/metrics">/metrics</a> · <a href="/gate">/gate</a> · <a href="/healthz">/healthz</a></p>'
        "</body></html>"
    )
