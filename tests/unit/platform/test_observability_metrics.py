"""/metrics serves the project's instruments in Prometheus text format."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from contracts.enums import AliasPath, CycleOutcome, EnvelopeStatus, ReasonCode
from libs.platform.observability.metrics import Metrics, build_meter_provider, metrics_router
from libs.platform.observability.tracing import service_resource


@pytest.fixture
def scrape() -> Iterator[tuple[Metrics, TestClient]]:
    # A registry of its own: the process-wide one belongs to setup_observability.
    registry = CollectorRegistry()
    provider = build_meter_provider(service_resource("balancing"), registry)
    app = FastAPI()
    app.include_router(metrics_router(registry))
    yield Metrics(provider.get_meter("mgrid")), TestClient(app)
    provider.shutdown()


def _samples(client: TestClient) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            labels = frozenset((k, v) for k, v in s.labels.items() if not k.startswith("otel_scope"))
            out[(s.name, labels)] = s.value
    return out


def test_counter_appears_after_increment(scrape: tuple[Metrics, TestClient]) -> None:
    metrics, client = scrape
    metrics.count_breach(reason_code=ReasonCode.NODE_CAP_EXCEEDED)
    metrics.count_breach(reason_code=ReasonCode.NODE_CAP_EXCEEDED)
    assert _samples(client)[("mgrid_breaches_total", frozenset({("reason_code", "NODE_CAP_EXCEEDED")}))] == 2
    assert "# TYPE mgrid_breaches_total counter" in client.get("/metrics").text


def test_every_instrument_is_exported_under_its_prometheus_name(scrape: tuple[Metrics, TestClient]) -> None:
    metrics, client = scrape
    metrics.record_cycle(outcome=CycleOutcome.CURTAILED, duration_seconds=0.004)
    metrics.count_alias_translation(path=AliasPath.LEGACY_EVENT)
    metrics.count_alias_failure(reason_code=ReasonCode.CIRCUIT_ALIAS_NOT_RESOLVABLE)
    metrics.count_envelope_transition(from_status=EnvelopeStatus.PENDING, to_status=EnvelopeStatus.ACTIVE)
    metrics.record_outbox_lag(seconds=0.03, topic="microgrid.cycle_completed")
    metrics.count_dead_letter(topic="microgrid.rebalance_requested", reason="VALIDATION_FAILED")
    metrics.observe_outbox_pending(lambda: 3)
    metrics.observe_consumer_lag(lambda: [(7, {"group": "balancing", "topic": "t", "partition": "0"})])
    samples = _samples(client)

    def value(name: str, **labels: str) -> float:
        return samples[(name, frozenset(labels.items()))]

    assert value("mgrid_cycles_total", outcome="CURTAILED") == 1
    assert value("mgrid_cycle_duration_seconds_count", outcome="CURTAILED") == 1
    assert value("mgrid_cycle_duration_seconds_bucket", outcome="CURTAILED", le="0.005") == 1
    assert value("mgrid_cycle_duration_seconds_bucket", outcome="CURTAILED", le="0.0025") == 0
    assert value("mgrid_alias_translations_total", path="LEGACY_EVENT") == 1
    assert value("mgrid_alias_failures_total", reason_code="CIRCUIT_ALIAS_NOT_RESOLVABLE") == 1
    assert value("mgrid_envelope_transitions_total", from_status="PENDING", to_status="ACTIVE") == 1
    assert value("mgrid_outbox_lag_seconds_count", topic="microgrid.cycle_completed") == 1
    assert (
        value("mgrid_dead_letters_total", topic="microgrid.rebalance_requested", reason="VALIDATION_FAILED")
        == 1
    )
    assert value("mgrid_outbox_pending") == 3
    assert value("mgrid_consumer_lag", group="balancing", topic="t", partition="0") == 7


def test_a_failing_gauge_callback_does_not_break_the_scrape(scrape: tuple[Metrics, TestClient]) -> None:
    metrics, client = scrape

    def broken() -> float:
        raise RuntimeError("relay gone")

    metrics.observe_outbox_pending(broken)
    metrics.observe_outbox_pending(lambda: 5)
    assert _samples(client)[("mgrid_outbox_pending", frozenset())] == 5
