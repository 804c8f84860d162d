"""What a cycle decides, against the real stack: aggregate and ancestor caps, fallback demand, fail-safe."""

from __future__ import annotations

import json
from datetime import timedelta
from uuid import UUID

import pytest

from contracts.enums import CapabilityType, CycleOutcome, NodeType, ReasonCode, SourceMode
from contracts.events import ConstraintBreachDetected, CycleCompleted, DemandResolved
from libs.platform.clock import ManualClock
from tests.integration.balancing.conftest import T0, Feed
from tests.integration.balancing.depot import Depot
from tests.support import TopicReader
from tests.support_services import RunningService, auth_headers

pytestmark = pytest.mark.integration
OPERATOR = auth_headers("operator:write", "operator:read", subject="operator-anna")


def of(depot: Depot, records: list) -> list:
    return [r for r in records if r.key == str(depot.microgrid_id).encode()]


@pytest.mark.req("FR-003", "FR-005", "FR-006", "FR-012", "FR-014", "NFR-003")
async def test_aggregate_breach_while_every_node_is_under_its_own_cap(
    service: RunningService, feed: Feed, clock: ManualClock
) -> None:
    depot = Depot(aggregate_cap_watts=80_000)
    gc1 = depot.grid_connection("GC1", cap_watts=60_000)
    gc2 = depot.grid_connection("GC2", cap_watts=60_000)
    connectors = [depot.connector(f"K{g}{i}", gc) for g, gc in ((1, gc1), (2, gc2)) for i in range(3)]
    await feed.setup(depot)
    # Only LOAD_BALANCING is enforced (FR-014): a peak-shaving point's cap is configuration, not a limit.
    await feed.send(depot.control_point_event(T0, CapabilityType.PEAK_SHAVING, {"aggregate_cap_watts": 1_000}))
    await feed.until(depot, lambda s: len(s.control_points) == 2)
    # 5 kW of other load behind each meter, 45 kW asked per grid connection: 50 of 60 kW each, 100 of 80 in all.
    telemetry = depot.telemetry(T0, meters={gc1: 5_000, gc2: 5_000}, demands=dict.fromkeys(connectors, 15_000))
    await feed.telemetry(depot, telemetry)

    response = await service.client.post(
        f"/api/microgrid/{depot.microgrid_id}/rebalance", headers={**OPERATOR, "Idempotency-Key": "agg-1"}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["microgrid_id"] == str(depot.microgrid_id) and body["timestamp"]
    result = body["result"]
    assert result["reason_codes"] == [ReasonCode.AGGREGATE_CAP_EXCEEDED]
    assert result["outcome"] == CycleOutcome.CURTAILED
    [breach] = result["breaches"]
    assert breach["node_id"] is None
    assert breach["constraint_ref"] == str(depot.lb_control_point_id)
    assert (breach["effective_demand_watts"], breach["resolved_limit_watts"]) == (100_000, 80_000)
    assert breach["source_mode"] == SourceMode.MEASURED
    summary = result["allocation_summary"]
    by_node = {UUID(n["node_id"]): n for n in summary["by_node"]}
    assert summary["total_allocated_watts"] == 70_000  # the aggregate cap less the 10 kW not under control
    assert all(by_node[gc]["allocated_watts"] <= 55_000 for gc in (gc1, gc2))
    assert all(11_666 <= by_node[c]["allocated_watts"] <= 11_667 for c in connectors)  # an equal share
    audit = result["audit"]
    assert (audit["actor"], audit["source"], audit["request_key"]) == ("operator-anna", "OPERATOR_HTTP", "agg-1")
    assert audit["inputs_digest"] and result["started_at"] and result["ended_at"]

    topics = ("microgrid.constraint_breach_detected", "microgrid.cycle_completed")
    async with TopicReader(feed.settings, *topics) as reader:
        records = await reader.wait_for(
            lambda rs: {r.topic for r in of(depot, rs)} >= {feed.settings.topic(t) for t in topics}
        )
    mine = of(depot, records)
    breaches = [ConstraintBreachDetected.model_validate_json(r.value) for r in mine if "breach" in r.topic]
    assert [b.payload.reason_code for b in breaches] == [ReasonCode.AGGREGATE_CAP_EXCEEDED]
    [completed] = [CycleCompleted.model_validate_json(r.value) for r in mine if "cycle_completed" in r.topic]
    assert str(completed.payload.cycle_id) == result["cycle_id"]

    status = await service.client.get(f"/api/microgrid/{depot.microgrid_id}/status", headers=OPERATOR)
    assert status.status_code == 200
    assert [b["breach_id"] for b in status.json()["open_breaches"]] == [breach["breach_id"]]
    assert status.json()["reason_codes"] == [ReasonCode.AGGREGATE_CAP_EXCEEDED]


@pytest.mark.req("FR-004", "NFR-002")
async def test_stale_telemetry_uses_the_fallback_rule_and_says_so(
    service: RunningService, feed: Feed, clock: ManualClock
) -> None:
    depot = Depot()
    gc = depot.grid_connection("GC", cap_watts=50_000)
    k1, k2 = depot.connector("K1", gc), depot.connector("K2", gc)
    depot.fallback(gc, 20_000)
    await feed.setup(depot)
    await feed.telemetry(depot, depot.telemetry(T0 - timedelta(minutes=10), meters={gc: 8_000}))
    await feed.telemetry(depot, depot.telemetry(T0, demands={k1: 10_000, k2: 10_000}))
    request = depot.rebalance(T0)
    await feed.send(request)

    cycle = await feed.cycle(request.payload.request_key)

    assert cycle.result.reason_codes == [ReasonCode.TELEMETRY_STALE_FALLBACK_USED]
    assert cycle.result.outcome is CycleOutcome.APPLIED  # enforcement goes on under partial telemetry
    assert cycle.result.allocation_summary.total_allocated_watts == 20_000
    async with TopicReader(feed.settings, "microgrid.demand_resolved") as reader:
        records = await reader.wait_for(lambda rs: bool(of(depot, rs)))
    [resolved] = [DemandResolved.model_validate_json(r.value) for r in of(depot, records)]
    assert resolved.payload.source_mode is SourceMode.FALLBACK_DERIVED
    meter = next(u for u in resolved.payload.inputs_used if u.node_id == gc)
    assert (meter.source_mode, meter.effective_demand_watts, meter.measured_demand_watts) == (
        SourceMode.FALLBACK_DERIVED, 20_000, 8_000
    )
    assert meter.freshness_threshold_seconds == 60 and meter.fallback_inputs["telemetry_state"] == "STALE"


@pytest.mark.req("NFR-004", "FR-004")
async def test_no_telemetry_and_no_fallback_fails_safe_and_answers_503(
    service: RunningService, feed: Feed, clock: ManualClock
) -> None:
    depot = Depot()
    gc = depot.grid_connection("GC", cap_watts=50_000)
    k1 = depot.connector("K1", gc)
    await feed.setup(depot)
    await feed.telemetry(depot, depot.telemetry(T0 - timedelta(hours=1), meters={gc: 8_000}))
    await feed.telemetry(depot, depot.telemetry(T0, demands={k1: 10_000}))

    response = await service.client.post(
        f"/api/microgrid/{depot.microgrid_id}/rebalance", headers=OPERATOR, json={"request_key": "blind-1"}
    )

    assert response.status_code == 503, response.text
    body = response.json()
    assert body["reason_code"] == ReasonCode.TELEMETRY_INSUFFICIENT
    assert body["missing_inputs"] == [str(gc)] and body["safe_action_taken"]
    stored = await feed.cycle("blind-1")
    assert body["details"]["cycle_id"] == str(stored.result.cycle_id)
    assert stored.result.allocation_summary.total_allocated_watts == 0  # the lowest safe allocation
    got = await service.client.get(
        f"/api/microgrid/{depot.microgrid_id}/cycles/{stored.result.cycle_id}", headers=OPERATOR
    )
    assert got.status_code == 200 and ReasonCode.TELEMETRY_INSUFFICIENT in got.json()["result"]["reason_codes"]


@pytest.mark.req("FR-001", "FR-003", "FR-005")
async def test_a_cycle_on_a_subtree_respects_its_ancestors_caps(
    service: RunningService, feed: Feed, clock: ManualClock
) -> None:
    depot = Depot()
    gc = depot.grid_connection("GC", cap_watts=30_000)
    branch_a = depot.add("A", NodeType.CIRCUIT, gc, cap_watts=50_000)
    branch_b = depot.add("B", NodeType.CIRCUIT, gc)
    point_a = depot.add("A-CP", NodeType.CHARGE_POINT, branch_a)
    a1, a2 = depot.connector("A1", point_a), depot.connector("A2", point_a)
    b1 = depot.connector("B1", branch_b)
    await feed.setup(depot)
    await feed.telemetry(depot, depot.telemetry(T0, demands={a1: 20_000, a2: 20_000, b1: 20_000}))

    response = await service.client.post(
        f"/api/microgrid/{depot.microgrid_id}/rebalance", headers=OPERATOR, json={"node_id": str(branch_a)}
    )

    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert result["node_id"] == str(branch_a)
    by_node = {UUID(n["node_id"]): n for n in result["allocation_summary"]["by_node"]}
    assert set(by_node) == {gc, branch_a, point_a, a1, a2}  # the scope and its ancestors, not the sibling branch
    # B1 is outside the scope: its 20 kW counts as load, leaving 10 kW of the grid connection's 30 kW.
    assert by_node[a1]["allocated_watts"] + by_node[a2]["allocated_watts"] == 10_000
    assert by_node[a1]["binding_constraint_ref"] == str(depot.limit_ids[gc])
    assert result["reason_codes"] == [ReasonCode.ANCESTOR_CAP_EXCEEDED]
    [breach] = result["breaches"]
    assert (breach["node_id"], breach["resolved_limit_watts"]) == (str(gc), 30_000)
    assert json.loads(response.text)["result"]["outcome"] == CycleOutcome.CURTAILED
