"""The daemon's own alerts (docs/alerting.md): a low event rate and a collapsed model, raised and
cleared once per change after each evaluation, and logged when they change."""

from __future__ import annotations

from typing import Any

import structlog

from quantum_gate.config import Settings
from quantum_gate.gate import GateResult

log = structlog.get_logger("quantum_gate")


class Alerts:
    """Each alert's state; ``update`` logs only the changes (raised, cleared)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.active: dict[str, bool] = {"low_event_rate": False, "collapse": False}

    def update(self, result: GateResult) -> None:
        rate = result.progress.rate_per_minute
        threshold = self.settings.alerts.low_rate_per_minute
        states = {
            "low_event_rate": rate is not None and rate < threshold,
            "collapse": bool(result.collapsed_models()),
        }
        for alert, active in states.items():
            if active == self.active[alert]:
                continue
            self.active[alert] = active
            details: dict[str, Any] = (
                {"rate_per_minute": round(rate or 0.0, 3), "threshold": threshold}
                if alert == "low_event_rate"
                else {"models": result.collapsed_models()}
            )
            if active:
                log.warning("alert.raised", alert=alert, **details)
            else:
                log.info("alert.cleared", alert=alert, **details)
