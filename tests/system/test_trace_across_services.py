"""One legacy event gives one trace: the compatibility adapter, balancing and every hop between.

Runs against the four services as processes (tests/system/conftest.py), reading the spans they export
to the local trace files, as an operator would with `mgrid trace`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest
from opentelemetry import propagate, trace
from typer.testing import CliRunner

from contracts.events import (
    CycleCompleted,
    LegacyCircuitUpdated,
    LegacyCircuitUpdatedPayload,
    LegacyRebalanceRequested,
    LegacyRebalanceRequestedPayload,
)
from libs.platform.observability.trace_store import read_spans, trace_dir
from simulator.transport import SimulatorSettings
from tests.support import TopicReader, eventually, publish_as_owner
from tests.support_services import auth_headers
from tools.cli import app as mgrid_cli

pytestmark = [pytest.mark.system, pytest.mark.req("NFR-003", "NFR-005", "FR-015")]


async def test_one_legacy_event_is_one_trace_through_adapter_and_balancing(
    system_settings: SimulatorSettings, kafka
) -> None:
    s = system_settings
    now = datetime.now(UTC)
    depot_id, circuit_id = uuid.uuid4(), uuid.uuid4()
    # The legacy circuit registry announces a feeder; the operator resyncs the depot's microgrid from it.
    await publish_as_owner(kafka, s, LegacyCircuitUpdated.create(
        LegacyCircuitUpdatedPayload(circuit_id=circuit_id, depot_id=depot_id, name="Feeder A",
                                    default_capacity_watts=200_000, fail_safe_capacity_watts=50_000),
        producer="legacy-registry", occurred_at=now))
    async with httpx.AsyncClient(timeout=30) as http:
        async def resynced() -> bool:
            r = await http.post(f"{s.topology_url}/api/depot/{depot_id}/microgrid/resync", headers=auth_headers())
            return r.status_code == 200 and str(circuit_id) in r.json()["result"]["feeder_circuit_ids"]

        await eventually(resynced, timeout=30, interval=0.2)

        async def alias_known() -> bool:  # the adapter has the circuit alias from topology_updated
            r = await http.get(f"{s.compatibility_adapter_url}/api/circuit/{circuit_id}/tou_limits",
                               headers=auth_headers())
            return r.status_code == 200

        await eventually(alias_known, timeout=30, interval=0.2)

    # A legacy producer, itself traced, emits the legacy event.
    tracer = trace.get_tracer("legacy-producer")
    correlation_id = f"trace-test-{uuid.uuid4()}"
    legacy = LegacyRebalanceRequested.create(LegacyRebalanceRequestedPayload(circuit_id=circuit_id),
                                             producer="legacy", occurred_at=now, correlation_id=correlation_id)
    with tracer.start_as_current_span("legacy load_balancer.rebalance_requested send") as root:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        await publish_as_owner(kafka, s, legacy, headers=carrier)
        trace_id = format(root.get_span_context().trace_id, "032x")
        root_span_id = format(root.get_span_context().span_id, "016x")

    async with TopicReader(s, "microgrid.cycle_completed") as reader:
        await reader.wait_for(lambda rs: any(
            CycleCompleted.model_validate_json(r.value).correlation_id == correlation_id for r in rs), timeout=60)

    def spans_of_trace() -> list:
        return [x for x in read_spans(trace_dir()).spans if x.trace_id == trace_id]

    async def complete_trace() -> list | None:
        spans = spans_of_trace()
        names = {(x.service, x.name) for x in spans}
        wanted = any(svc == "balancing" and "microgrid.cycle_completed publish" in n for svc, n in names)
        return spans if wanted else None

    spans = await eventually(complete_trace, timeout=30, interval=0.2)
    by_id = {x.span_id: x for x in spans}

    def ancestors(span) -> list:
        chain = []
        while span.parent_span_id and span.parent_span_id in by_id:
            span = by_id[span.parent_span_id]
            chain.append(span)
        return chain

    adapter_consume = next(x for x in spans if x.service == "compatibility_adapter"
                           and x.name.endswith("load_balancer.rebalance_requested process"))
    assert adapter_consume.parent_span_id == root_span_id
    adapter_publish = next(x for x in spans if x.service == "compatibility_adapter"
                           and x.name.endswith("microgrid.rebalance_requested publish"))
    assert adapter_consume in ancestors(adapter_publish)
    balancing_consume = next(x for x in spans if x.service == "balancing"
                             and x.name.endswith("microgrid.rebalance_requested process"))
    assert balancing_consume.parent_span_id == adapter_publish.span_id
    completed_publish = next(x for x in spans if x.service == "balancing"
                             and x.name.endswith("microgrid.cycle_completed publish"))
    assert balancing_consume in ancestors(completed_publish)
    assert {x.service for x in spans} >= {"compatibility_adapter", "balancing"}

    # The cycle's domain steps are child spans carrying the ids, outcome and reason codes.
    [cycle_span] = [x for x in spans if x.service == "balancing" and x.name == "balancing_cycle"]
    assert balancing_consume in ancestors(cycle_span)
    assert cycle_span.attributes["correlation.id"] == correlation_id
    assert cycle_span.attributes["outcome"] in ("APPLIED", "CURTAILED", "REJECTED")
    assert "reason_codes" in cycle_span.attributes
    steps = [x.name for x in sorted(spans, key=lambda x: x.start_ns) if x.parent_span_id == cycle_span.span_id]
    assert steps == ["topology_check", "demand_resolution", "constraint_evaluation", "allocation"]

    # Balancing counted the cycle (Prometheus text on its /metrics).
    async with httpx.AsyncClient(timeout=30) as http:
        metrics = (await http.get(f"{s.balancing_url}/metrics")).text
    assert "mgrid_cycles_total{" in metrics

    # The operator's view: `mgrid trace <correlation id>` prints the tree across both services.
    result = CliRunner().invoke(mgrid_cli, ["trace", correlation_id])
    assert result.exit_code == 0, result.output
    assert "compatibility_adapter" in result.output and "balancing" in result.output
