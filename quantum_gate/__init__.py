"""quantum-gate: a cutover-aware quality gate and Prometheus exporter for the trade.intent stream."""

__version__ = "0.1.0"
