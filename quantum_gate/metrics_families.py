"""The building blocks of every ``quantum_gate_*`` metric family, shared by the live families
(``metrics_live``) and the gate's (``metrics_gate``): a gauge or a counter under the project's prefix,
and a fixed list of families that ``generate_latest`` can format as if it were a registry.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

PREFIX = "quantum_gate_"


def gauge(name: str, doc: str, value: float | None = None, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
    family = GaugeMetricFamily(PREFIX + name, doc, labels=list(labels) or None)
    if value is not None and not labels:
        family.add_metric([], float(value))
    return family


def counter(
    name: str, doc: str, value: float | None = None, labels: tuple[str, ...] = ()
) -> CounterMetricFamily:
    family = CounterMetricFamily(PREFIX + name, doc, labels=list(labels) or None)
    if value is not None and not labels:
        family.add_metric([], float(value))
    return family


class Families:
    """What ``generate_latest`` needs of a registry: ``collect()`` over a fixed list of families."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)
