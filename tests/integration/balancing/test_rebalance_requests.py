"""Rebalance requests from every door become exactly one cycle each, on the topology version they name."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from contracts.enums import CycleOutcome, ReasonCode, RebalanceSource
from libs.platform.clock import ManualClock
from tests.integration.balancing.conftest import T0, TOPOLOGY_WAIT_S, Feed
from tests.integration.balancing.depot import Depot
from tests.support import TopicReader, eventually
from tests.support_services import RunningService, auth_headers

pytestmark = pytest.mark.integration
OPERATOR = auth_headers("operator:write", "operator:read")
COMPLETED = "microgrid.cycle_completed"


async def small_depot(feed: Feed) -> Depot:
    depot = Depot()
    gc = depot.grid_connection("GC", cap_watts=40_000)
    k1 = depot.connector("K1", gc)
    await feed.setup(depot)
    await feed.telemetry(depot, depot.telemetry(T0, demands={k1: 11_000}))
    return depot


async def processed(feed: Feed, event_id: object) -> bool:
    return bool(await feed.service.ctx.pool.fetchval("SELECT 1 FROM inbox WHERE event_id = $1", str(event_id)))


@pytest.mark.req("FR-001", "NFR-001", "NFR-003")
async def test_the_same_request_twice_gives_one_cycle(service: RunningService, feed: Feed, clock: ManualClock) -> None:
    depot = await small_depot(feed)
    url = f"/api/microgrid/{depot.microgrid_id}/rebalance"

    first = await service.client.post(url, headers={**OPERATOR, "Idempotency-Key": "twice-1"})
    second = await service.client.post(url, headers=OPERATOR, json={"request_key": "twice-1"})
    # The same key arriving by another door (the consumer) runs nothing either.
    repeat = depot.rebalance(T0, request_key="twice-1")
    await feed.send(repeat)
    await eventually(lambda: processed(feed, repeat.event_id))

    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.json()["result"] == second.json()["result"]
    assert first.json()["result"]["outcome"] == CycleOutcome.APPLIED
    assert await feed.cycles_of(depot) == 1
    async with TopicReader(feed.settings, COMPLETED) as reader:
        await reader.wait_for(lambda rs: any(r.key == str(depot.microgrid_id).encode() for r in rs))
        await reader.poll()
    assert sum(1 for r in reader.records if r.key == str(depot.microgrid_id).encode()) == 1

    reused = await service.client.post(
        url, headers={**OPERATOR, "Idempotency-Key": "twice-1"}, json={"node_id": str(depot.nodes[0].node_id)}
    )
    assert reused.status_code == 409 and reused.json()["reason_code"] == ReasonCode.CONFLICT


@pytest.mark.req("FR-015")
async def test_a_legacy_alias_request_delivered_twice_is_one_cycle_and_says_so(
    service: RunningService, feed: Feed, clock: ManualClock
) -> None:
    depot = await small_depot(feed)
    request = depot.rebalance(
        T0, source=RebalanceSource.LEGACY_ALIAS, node_id=depot.nodes[0].node_id, circuit_id=depot.nodes[0].node_id
    )
    await feed.send(request, request)

    cycle = await feed.cycle(request.payload.request_key)
    await eventually(lambda: processed(feed, request.event_id))

    assert cycle.result.reason_codes == [ReasonCode.LEGACY_ALIAS_TRANSLATION_APPLIED]
    assert cycle.result.audit.source is RebalanceSource.LEGACY_ALIAS
    assert await feed.cycles_of(depot) == 1


@pytest.mark.req("FR-001", "FR-005")
async def test_a_request_for_a_topology_version_not_yet_seen_waits_for_it_or_is_rejected(
    service: RunningService, feed: Feed, clock: ManualClock
) -> None:
    depot = await small_depot(feed)
    ahead = depot.rebalance(T0, expected_topology_version=2)
    await feed.send(ahead)
    await eventually(lambda: processed(feed, ahead.event_id))
    assert await feed.cycles_of(depot) == 0  # never balanced on the stale tree

    depot.version = 2
    await feed.send(depot.topology_event(T0))
    cycle = await feed.cycle(ahead.payload.request_key)
    assert (cycle.result.topology_version, cycle.result.outcome) == (2, CycleOutcome.APPLIED)

    stale = await service.client.post(
        f"/api/microgrid/{depot.microgrid_id}/rebalance", headers=OPERATOR, json={"expected_topology_version": 1}
    )
    assert stale.status_code == 409, stale.text
    conflict = stale.json()
    assert (conflict["reason_code"], conflict["expected_version"], conflict["actual_version"]) == (
        ReasonCode.TOPOLOGY_VERSION_CONFLICT, 1, 2
    )
    assert (await feed.cycle_by_id(conflict["details"]["cycle_id"])).result.outcome is CycleOutcome.REJECTED

    too_far = depot.rebalance(T0, expected_topology_version=5)
    await feed.send(too_far)
    await eventually(lambda: processed(feed, too_far.event_id))
    clock.advance(timedelta(seconds=TOPOLOGY_WAIT_S + 1))
    rejected = await feed.cycle(too_far.payload.request_key)
    assert rejected.result.outcome is CycleOutcome.REJECTED
    assert rejected.result.reason_codes == [ReasonCode.TOPOLOGY_VERSION_CONFLICT]
    assert rejected.result.allocation_summary.total_allocated_watts == 0


async def test_rebalance_needs_a_write_scope_and_a_known_microgrid(
    service: RunningService, feed: Feed, clock: ManualClock
) -> None:
    depot = await small_depot(feed)
    url = f"/api/microgrid/{depot.microgrid_id}/rebalance"

    assert (await service.client.post(url)).status_code == 401
    assert (await service.client.post(url, headers=auth_headers("operator:read"))).status_code == 403
    integration = await service.client.post(url, headers=auth_headers("integration:write"))
    assert integration.status_code == 200, integration.text
    unknown = await service.client.post(f"/api/microgrid/{uuid.uuid4()}/rebalance", headers=OPERATOR)
    assert unknown.status_code == 404
    outside = await service.client.post(url, headers=OPERATOR, json={"node_id": str(uuid.uuid4())})
    assert outside.status_code == 422, outside.text  # a scope outside the tree: REJECTED, TOPOLOGY_INVALID
    assert (outside.json()["reason_code"], outside.json()["violated_rule"]) == ("TOPOLOGY_INVALID", "UNKNOWN_NODE")
    status = await service.client.get(
        f"/api/microgrid/{depot.microgrid_id}/status", headers=auth_headers("operator:read")
    )
    assert status.status_code == 200
    assert status.json()["latest_cycle"]["cycle_id"] == outside.json()["details"]["cycle_id"]
    assert status.json()["reason_codes"] == [ReasonCode.TOPOLOGY_INVALID]
