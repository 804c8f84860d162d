"""Where spans go, and how domain attributes are named and typed on them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

from contracts.enums import CycleOutcome, ReasonCode
from libs.platform.observability.trace_store import JsonlSpanExporter
from libs.platform.observability.tracing import span_attributes, span_exporter


def test_span_attributes_name_ids_with_dots_and_make_lists_string_arrays() -> None:
    attrs = span_attributes(
        {"messaging.system": "kafka"},
        microgrid_id="mg-1",
        cycle_id=7,
        reason_codes=(ReasonCode.TOPOLOGY_INVALID,),
        node_id=None,
        outcome=CycleOutcome.REJECTED,
        evaluated_at=datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
    )
    assert attrs == {
        "messaging.system": "kafka",
        "microgrid.id": "mg-1",
        "cycle.id": 7,
        "reason_codes": ["TOPOLOGY_INVALID"],
        "outcome": "REJECTED",
        "evaluated_at": "2026-01-02T03:04:00+00:00",
    }


def test_without_an_otlp_endpoint_spans_go_to_the_service_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MGRID_OTLP_ENDPOINT", raising=False)
    monkeypatch.setenv("MGRID_TRACE_FILE_DIR", str(tmp_path))
    exporter, destination = span_exporter("topology")
    assert isinstance(exporter, JsonlSpanExporter)
    assert destination == str(tmp_path / "topology.jsonl")


@pytest.mark.parametrize(
    "endpoint", ["http://collector:4318", "http://collector:4318/", "http://collector:4318/v1/traces"]
)
def test_an_otlp_endpoint_sends_spans_over_otlp_http(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    monkeypatch.setenv("MGRID_OTLP_ENDPOINT", endpoint)
    exporter, destination = span_exporter("topology")
    assert isinstance(exporter, OTLPSpanExporter)
    assert destination == "http://collector:4318/v1/traces"
    exporter.shutdown()
