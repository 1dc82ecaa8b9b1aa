"""``/metrics`` in the format the scraper asks for: OpenMetrics 1.0 when the Accept header lists it
(Prometheus does, first), the text format otherwise; and the process's own families beside
the gate's, as every exporter has them. Over real HTTP, parsed with prometheus_client's strict parsers."""

from __future__ import annotations

import http.client
from collections.abc import Iterable

import pytest
from prometheus_client.core import Metric
from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.parser import text_string_to_metric_families as parse_text
from test_gate_http import Served, serve, snapshot_for

from quantum_gate.exporter import GateCollector, Snapshot
from quantum_gate.httpapp import wants_openmetrics

__all__ = ["serve"]  # the fixture, imported for its name

# What Prometheus 2.x/3.x sends (scrape_protocols' default order) and what curl sends.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
TIME_VARYING = ("process_", "python_gc_")  # CPU seconds, RSS and GC counts move between two scrapes


def parse_openmetrics(text: str) -> list[Metric]:
    """prometheus_client's strict OpenMetrics parser (untyped upstream): raises on any defect."""
    return list(openmetrics_parser.text_string_to_metric_families(text))  # type: ignore[no-untyped-call]


def scrape(port: int, accept: str | None) -> tuple[str, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/metrics", headers={"Accept": accept} if accept is not None else {})
        response = connection.getresponse()
        assert response.status == 200
        return response.getheader("Content-Type") or "", response.read().decode("utf-8")
    finally:
        connection.close()


def gate_samples(families: Iterable[Metric]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in families:
        for sample in family.samples:
            if sample.name.startswith(TIME_VARYING) or sample.name.endswith("_created"):
                continue
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


@pytest.mark.parametrize("verdict", ["PASS", "FAIL", "INSUFFICIENT_DATA"])
def test_prometheus_gets_openmetrics_with_the_same_samples_as_the_text_format(
    serve: Served, verdict: str
) -> None:
    serve.snap = snapshot_for(verdict)
    kind, openmetrics = scrape(serve.port, PROMETHEUS_ACCEPT)
    assert kind == "application/openmetrics-text; version=1.0.0; charset=utf-8"
    assert openmetrics.endswith("# EOF\n") and openmetrics.count("# EOF") == 1
    plain_kind, plain = scrape(serve.port, None)
    assert plain_kind.startswith("text/plain; version=")  # prometheus_client's CONTENT_TYPE_LATEST
    strict = gate_samples(parse_openmetrics(openmetrics))
    loose = gate_samples(parse_text(plain))
    assert strict == loose
    assert strict[("quantum_gate_verdict", (("verdict", verdict.lower()),))] == 1.0
    # A second scrape of the same evaluation takes the gate's families from the per-format cache.
    assert gate_samples(parse_openmetrics(scrape(serve.port, PROMETHEUS_ACCEPT)[1])) == strict


def test_the_process_families_are_exported_beside_the_gates(serve: Served) -> None:
    serve.snap = snapshot_for("PASS")
    names = {family.name for family in parse_text(scrape(serve.port, "text/plain")[1])}
    assert {"process_resident_memory_bytes", "process_cpu_seconds", "python_info"} <= names
    assert "python_gc_objects_collected" in names
    assert "quantum_gate_verdict" in names


def test_collect_and_render_give_the_same_families() -> None:
    snap: Snapshot = snapshot_for("FAIL")
    collector = GateCollector(lambda: snap)
    rendered = {family.name for family in parse_openmetrics(collector.render(openmetrics=True).decode())}
    assert rendered == {family.name for family in collector.collect()}


def test_a_broken_snapshot_still_answers_in_both_formats() -> None:
    def broken() -> Snapshot:
        raise RuntimeError("the daemon's state is gone")

    collector = GateCollector(broken)
    [family] = parse_openmetrics(collector.render(openmetrics=True).decode())
    assert family.name == "quantum_gate_snapshot_up" and family.samples[0].value == 0.0
    assert "quantum_gate_snapshot_up 0.0" in collector.render().decode()


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (PROMETHEUS_ACCEPT, True),
        ("application/openmetrics-text", True),
        ("Application/OpenMetrics-Text; version=1.0.0", True),
        ("text/plain;version=0.0.4,application/openmetrics-text;version=1.0.0;q=0.1", True),
        ("application/openmetrics-text;q=0, text/plain", False),  # q=0: "not acceptable"
        ("application/openmetrics-text;q=zero", True),  # a malformed weight is ignored
        ("text/plain", False),
        ("*/*", False),
        ("", False),
    ],
)
def test_which_accept_headers_get_openmetrics(accept: str, expected: bool) -> None:
    assert wants_openmetrics(accept) is expected
