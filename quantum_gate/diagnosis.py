"""The collapse diagnosis the seed ran by hand (prove_hardcoded_values.py), as a pure function of a
window: top exact confidence values, per-action ranges, suspect constants, variants, fallback share."""

from __future__ import annotations

from typing import Any

import numpy as np

from quantum_gate.windows import Window


def diagnose_window(window: Window, suspects: tuple[float, ...], top_n: int = 10) -> dict[str, Any]:
    fallback = window.fallback()
    return {
        "events": len(window),
        "fallback_share": float(np.mean(fallback)) if fallback.size else None,
        "models": {name: diagnose_model(window, name, suspects, top_n) for name in sorted(window.models())},
    }


def diagnose_model(window: Window, model: str, suspects: tuple[float, ...], top_n: int) -> dict[str, Any]:
    columns = window.model(model)
    vocab = window.vocabulary
    if columns is None or not columns.confidence.size:
        return {"samples": 0, "invalid_votes": columns.invalid if columns else 0}
    values = columns.confidence
    samples = int(values.size)
    uniques, counts = np.unique(values, return_counts=True)
    ranked = np.argsort(-counts, kind="stable")[:top_n]
    per_action: dict[str, Any] = {}
    for code in np.unique(columns.action):
        picked = values[columns.action == code]
        per_action[vocab.actions.names[int(code)]] = {
            "count": int(picked.size),
            "min": float(picked.min()),
            "max": float(picked.max()),
            "mean": float(picked.mean()),
        }
    variant_codes, variant_counts = np.unique(columns.variant, return_counts=True)
    return {
        "samples": samples,
        "unique_values": int(uniques.size),
        "top_values": [
            {"value": float(uniques[i]), "count": int(counts[i]), "share": int(counts[i]) / samples}
            for i in ranked
        ],
        "per_action": per_action,
        "suspect_constants": {
            f"{constant:g}": {
                "count": int(np.count_nonzero(values == constant)),
                "share": float(np.count_nonzero(values == constant)) / samples,
            }
            for constant in suspects
        },
        "variants": {
            (vocab.variants.names[int(code)] if code >= 0 else "(none)"): int(count)
            for code, count in zip(variant_codes, variant_counts, strict=True)
        },
        "out_of_range": int(np.count_nonzero((values < 0) | (values > 1))),
        "invalid_votes": columns.invalid,
    }


def render_diagnosis(document: dict[str, Any]) -> str:
    lines = [f"quantum-gate diagnose: cutover {document['cutover']['timestamp'] or 'unknown'}"]
    for side in ("post", "pre"):
        window = document["windows"][side]
        share = window["fallback_share"]
        lines.append("")
        lines.append(
            f"== {side} window: {window['events']} events, fallback share "
            + ("-" if share is None else f"{share * 100:.1f}%")
        )
        for name, model in window["models"].items():
            if not model["samples"]:
                lines.append(f"{name}: no valid votes (invalid {model['invalid_votes']})")
                continue
            # Every value the document holds: --top bounded it already, for the text as for the JSON.
            top = ", ".join(
                f"{t['value']:g} x{t['count']} ({t['share'] * 100:.1f}%)" for t in model["top_values"]
            )
            lines.append(f"{name}: n={model['samples']} unique={model['unique_values']} top: {top}")
            suspects = [
                f"{value} {entry['share'] * 100:.1f}%"
                for value, entry in model["suspect_constants"].items()
                if entry["count"]
            ]
            if suspects:
                lines.append(f"  at suspect constants: {', '.join(suspects)}")
            for action, stats in model["per_action"].items():
                lines.append(
                    f"  {action:<5} n={stats['count']:<6} range {stats['min']:.4g}..{stats['max']:.4g} "
                    f"mean {stats['mean']:.4g}"
                )
            lines.append("  variants: " + ", ".join(f"{k} {v}" for k, v in model["variants"].items()))
            if model["out_of_range"]:
                lines.append(f"  out of [0, 1]: {model['out_of_range']} (contract violation; kept raw)")
    return "\n".join(lines)
