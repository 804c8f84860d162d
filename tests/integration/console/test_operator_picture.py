"""The operator read model and its route, and the what-if, against the real stack.

The picture is checked against the cycle the API returned; the what-if is checked against the cycle
that applying the same change really produces.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest

from contracts import events as ev
from contracts.enums import ConstraintType, LimitSourceType, LimitStatus, ProjectionTrigger
from libs.platform.clock import ManualClock
from tests.integration.balancing.conftest import T0, Feed
from tests.integration.balancing.depot import PRODUCER, Depot
from tests.support import eventually
from tests.support_services import RunningService, auth_headers

pytestmark = pytest.mark.integration
WRITER = auth_headers("operator:read", "operator:write", subject="operator-anna")
READER = auth_headers("operator:read", subject="viewer-vic")


async def _depot(feed: Feed) -> tuple[Depot, UUID, UUID, list[UUID]]:
    depot = Depot(aggregate_cap_watts=120_000)
    gc1 = depot.grid_connection("GC1", cap_watts=60_000, circuit=(60_000, 20_000))
    gc2 = depot.grid_connection("GC2", cap_watts=60_000)
    connectors = [depot.connector(f"K{g}{i}", gc) for g, gc in ((1, gc1), (2, gc2)) for i in range(2)]
    await feed.setup(depot)
    await feed.telemetry(depot, depot.telemetry(T0, meters={gc1: 5_000, gc2: 5_000},
                                                demands=dict.fromkeys(connectors, 22_000)))
    return depot, gc1, gc2, connectors


async def _picture_with(service: RunningService, depot: Depot, cycle_id: str, headers: dict) -> dict:
    async def shown() -> dict | None:
        r = await service.client.get(f"/api/operator/microgrids/{depot.microgrid_id}", headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        return body if body["cycles"] and body["cycles"][0]["cycle_id"] == cycle_id else None

    return await eventually(shown, timeout=30)


async def test_the_picture_agrees_with_the_cycle_and_is_kept_from_events(
    service: RunningService, feed: Feed, clock: ManualClock
) -> None:
    depot, gc1, gc2, connectors = await _depot(feed)
    r = await service.client.post(f"/api/microgrid/{depot.microgrid_id}/rebalance",
                                  headers={**WRITER, "Idempotency-Key": f"pic-{depot.microgrid_id}"})
    assert r.status_code == 200, r.text
    cycle = r.json()["result"]

    picture = await _picture_with(service, depot, cycle["cycle_id"], WRITER)

    assert picture["depot_id"] == str(depot.depot_id) and picture["viewer"]["can_write"] is True
    nodes = {n["node_id"]: n for n in picture["nodes"]}
    # tree preorder (a connector hangs under its own charge point: the parent-type rules)
    assert [n["name"] for n in picture["nodes"]][:4] == ["GC1", "K10-CP", "K10", "K11-CP"]
    for allocation in cycle["allocation_summary"]["by_node"]:
        node = nodes[allocation["node_id"]]
        assert node["allocated_watts"] == allocation["allocated_watts"]
        assert node["requested_watts"] == allocation["requested_watts"]
        assert node["effective_limit_watts"] == allocation["effective_limit_watts"]
    assert nodes[str(gc2)]["baseline_limits"][0]["limit_watts"] == 60_000
    assert nodes[str(gc2)]["effective_limit_source"] == "NODE_LIMIT"
    assert nodes[str(gc1)]["measured_watts"] == 5_000 and nodes[str(gc1)]["telemetry_state"] == "FRESH"
    [latest] = [c for c in picture["cycles"] if c["cycle_id"] == cycle["cycle_id"]]
    assert latest["outcome"] == cycle["outcome"] and latest["reason_codes"] == cycle["reason_codes"]
    assert {c["node_id"] for c in latest["connectors"]} == {str(c) for c in connectors}
    timeline = {t["node_id"]: t for t in picture["timelines"]}
    assert set(timeline) == {str(gc1), str(gc2)} and timeline[str(gc1)]["circuit_id"] == str(depot.circuit_of(gc1))
    [point] = timeline[str(gc1)]["points"]
    assert point["drawn_watts"] == 5_000 and point["allocated_watts"] == nodes[str(gc1)]["allocated_watts"]

    # The same picture by depot; a read-only token sees it without write rights.
    by_depot = await service.client.get(f"/api/operator/depots/{depot.depot_id}", headers=READER)
    assert by_depot.status_code == 200
    assert by_depot.json()["nodes"] == picture["nodes"] and by_depot.json()["viewer"]["can_write"] is False
    assert (await service.client.get(f"/api/operator/microgrids/{depot.microgrid_id}")).status_code == 401

    # Telemetry goes stale: the node is marked, and the next cycle names the fallback it used.
    clock.advance(timedelta(seconds=120))
    stale = await service.client.get(f"/api/operator/microgrids/{depot.microgrid_id}", headers=READER)
    assert {n["telemetry_state"] for n in stale.json()["nodes"] if n["measured_watts"] is not None} == {"STALE"}

    explained = await service.client.get(
        f"/api/operator/microgrids/{depot.microgrid_id}/cycles/{cycle['cycle_id']}/explanation", headers=READER)
    assert explained.status_code == 200
    assert cycle["cycle_id"] in explained.json()["explanation"]


async def test_what_if_predicts_the_cycle_the_change_produces_and_stores_nothing(
    service: RunningService, feed: Feed, clock: ManualClock
) -> None:
    depot, gc1, gc2, connectors = await _depot(feed)
    url = f"/api/operator/microgrids/{depot.microgrid_id}/what-if"
    before_cycles = await feed.cycles_of(depot)
    proposal = {"node_limit": {"node_id": str(gc2), "constraint_type": "CONSUMPTION_CAP", "limit_watts": 25_000}}

    assert (await service.client.post(url, json=proposal, headers=READER)).status_code == 403
    r = await service.client.post(url, json=proposal, headers=WRITER)

    assert r.status_code == 200, r.text
    preview = r.json()
    assert preview["stored"] is False and preview["kind"] == "node_limit"
    changes = {c["node_id"]: c for c in preview["connectors"]}
    assert {changes[str(c)]["change"] for c in connectors[2:]} == {"LOSES"}
    assert sum(changes[str(c)]["after_watts"] for c in connectors[2:]) == 20_000  # 25 kW less 5 kW of other load
    assert await feed.cycles_of(depot) == before_cycles  # no cycle stored
    audited = await service.ctx.pool.fetchval(
        "SELECT actor FROM console_previews WHERE preview_id = $1", UUID(preview["preview_id"]))
    assert audited == "operator-anna"

    # Apply the very change: the real cycle gives what the preview said.
    limit = ev.NodeLimitUpdatedPayload(node_limit_id=depot.limit_ids[gc2], microgrid_id=depot.microgrid_id,
                                       node_id=gc2, constraint_type=ConstraintType.CONSUMPTION_CAP,
                                       limit_watts=25_000, source_type=LimitSourceType.MANUAL,
                                       status=LimitStatus.ACTIVE, updated_at=T0 + timedelta(seconds=1),
                                       updated_by="operator-anna")
    await feed.send(ev.NodeLimitUpdated.create(limit, producer=PRODUCER, occurred_at=T0))
    await feed.until(depot, lambda s: any(x.limit_watts == 25_000 for x in s.node_limits))
    applied = await service.client.post(f"/api/microgrid/{depot.microgrid_id}/rebalance",
                                        headers={**WRITER, "Idempotency-Key": f"apply-{depot.microgrid_id}"})
    assert applied.status_code == 200, applied.text
    real = {n["node_id"]: n["allocated_watts"] for n in applied.json()["result"]["allocation_summary"]["by_node"]}
    assert {k: c["after_watts"] for k, c in changes.items()} == {str(c): real[str(c)] for c in connectors}
    assert preview["after"]["outcome"] == applied.json()["result"]["outcome"]


async def test_what_if_envelope_and_legacy_tou_limit(service: RunningService, feed: Feed, clock: ManualClock) -> None:
    depot, gc1, gc2, connectors = await _depot(feed)
    url = f"/api/operator/microgrids/{depot.microgrid_id}/what-if"
    block = {"block_from": (T0 - timedelta(minutes=5)).isoformat(), "block_to": (T0 + timedelta(hours=1)).isoformat()}

    envelope = {"envelope": {"node_id": str(gc1), "envelope_type": "OVERRIDE", "blocks": [
        {**block, "max_limit_watts": 15_000}]}}
    r = await service.client.post(url, json=envelope, headers=WRITER)
    assert r.status_code == 200, r.text
    after = {c["node_id"]: c for c in r.json()["connectors"]}
    assert sum(after[str(c)]["after_watts"] for c in connectors[:2]) == 10_000
    assert all(after[str(c)]["binding_after"] for c in connectors[:2])

    tou = {"tou_limit": {"circuit_id": str(depot.circuit_of(gc1)), "periods": [
        {"start": block["block_from"], "end": block["block_to"], "limit_watts": 25_000}]}}
    r = await service.client.post(url, json=tou, headers=WRITER)
    assert r.status_code == 200, r.text
    assert sum(c["after_watts"] for c in r.json()["connectors"] if c["node_id"] in map(str, connectors[:2])) == 20_000

    unmanaged = {"tou_limit": {"circuit_id": str(gc2), "periods": tou["tou_limit"]["periods"]}}
    r = await service.client.post(url, json=unmanaged, headers=WRITER)
    assert r.status_code == 422 and r.json()["reason_code"] == "LIMIT_SCOPE_TRANSLATION_FAILED"
    two = {**envelope, **proposal_node(gc2)}
    assert (await service.client.post(url, json=two, headers=WRITER)).status_code == 422


def proposal_node(node_id: UUID) -> dict:
    return {"node_limit": {"node_id": str(node_id), "limit_watts": 1}}


async def test_circuit_capacity_shows_its_reason_basis_and_the_value_it_replaced(
    service: RunningService, feed: Feed, clock: ManualClock
) -> None:
    depot, gc1, gc2, connectors = await _depot(feed)
    circuit = depot.circuit_of(gc1)

    def changed(watts: int, previous: int | None, minute: int, basis: str) -> ev.EffectiveCircuitCapacityChanged:
        payload = ev.EffectiveCircuitCapacityPayload(
            microgrid_id=depot.microgrid_id, node_id=gc1, circuit_id=circuit, effective_capacity_watts=watts,
            projection_trigger=ProjectionTrigger.ENVELOPE_LIFECYCLE if previous is None
            else ProjectionTrigger.ENVELOPE_CHANGE,
            previous_capacity_watts=previous, basis=basis, evaluated_at=T0 + timedelta(minutes=minute))
        return ev.EffectiveCircuitCapacityChanged.create(payload, producer="envelope_lifecycle", occurred_at=T0)

    await feed.send(changed(40_000, 60_000, 1, "PRIMARY_FORECAST"), changed(20_000, None, 2, "FAIL_SAFE"))

    async def shown() -> list | None:
        r = await service.client.get(f"/api/operator/microgrids/{depot.microgrid_id}", headers=READER)
        found = r.json()["circuit_capacities"]
        return found if found and found[0]["effective_capacity_watts"] == 20_000 else None

    [capacity] = await eventually(shown, timeout=30)
    assert (capacity["previous_capacity_watts"], capacity["reason"], capacity["basis"]) == (
        40_000, "ENVELOPE_LIFECYCLE", "FAIL_SAFE")
    assert capacity["circuit_id"] == str(circuit)
