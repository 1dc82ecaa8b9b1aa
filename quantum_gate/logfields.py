"""How the daemon's log lines name a cutover (``cutover.detected``, ``stream.backfilled``,
``gate.completed``): the same fields wherever it appears."""

from __future__ import annotations

from typing import Any

from quantum_gate.cutover import Cutover


def cutover_fields(cutover: Cutover) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "cutover": cutover.timestamp,
        "cutover_id": str(cutover.stream_id),
        "source": cutover.source,
        "invocation_id": cutover.invocation_id,
    }
    if cutover.identity_key is not None:  # docker and kubernetes
        fields.update(identity=cutover.identity_key, label=cutover.label)
    if cutover.rollout is not None:
        fields["rollout_complete"] = cutover.rollout.complete
    return fields
