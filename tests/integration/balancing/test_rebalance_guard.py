"""The rebalance-time guard: get_effective_circuit_capacity reconciles drift, and never asks for a second cycle."""

from __future__ import annotations

import uuid
from datetime import timedelta
from uuid import UUID

import pytest

from contracts.enums import ConstraintType, EnvelopeStatus, EnvelopeType, ProjectionTrigger
from contracts.events import (
    EffectiveCircuitCapacityChanged,
    EffectiveCircuitCapacityPayload,
    EffectiveCircuitCapacityReconciled,
    OperatingEnvelopeReceived,
)
from contracts.records import EnvelopeBlockRecord, OperatingEnvelopeRecord
from libs.platform.clock import ManualClock
from tests.integration.balancing.conftest import T0, Feed
from tests.integration.balancing.depot import PRODUCER, Depot
from tests.support import TopicReader
from tests.support_services import RunningService

pytestmark = pytest.mark.integration
RECONCILED = "compatibility.effective_circuit_capacity_reconciled"
REQUESTED = "microgrid.rebalance_requested"
COMPLETED = "microgrid.cycle_completed"


def tou_limit(depot: Depot, node_id: UUID, watts: int) -> OperatingEnvelopeRecord:
    start, end = T0 - timedelta(hours=1), T0 + timedelta(hours=1)
    return OperatingEnvelopeRecord(
        envelope_id=uuid.uuid4(),
        microgrid_id=depot.microgrid_id,
        node_id=node_id,
        envelope_type=EnvelopeType.TOU_LIMIT,
        constraint_type=ConstraintType.CONSUMPTION_CAP,
        effective_from=start,
        effective_to=end,
        source_ref=f"tou:{uuid.uuid4()}",
        status=EnvelopeStatus.ACTIVE,
        received_at=start,
        blocks=[EnvelopeBlockRecord(block_from=start, block_to=end, target_watts=watts)],
    )


@pytest.mark.req("FR-028", "FR-027", "FR-005")
async def test_guard_reconciles_a_drifted_feeder_capacity_without_a_second_cycle(
    service: RunningService, feed: Feed, clock: ManualClock
) -> None:
    depot = Depot()
    gc = depot.grid_connection("GC1", circuit=(100_000, 40_000))
    k1, k2 = depot.connector("K1", gc), depot.connector("K2", gc)
    circuit_id = depot.circuit_of(gc)
    await feed.setup(depot)
    envelope = tou_limit(depot, gc, 55_000)
    # The last projection still says 70 kW (its update was missed); the TOU limit in force says 55 kW.
    projected = EffectiveCircuitCapacityPayload(
        microgrid_id=depot.microgrid_id, node_id=gc, circuit_id=circuit_id, effective_capacity_watts=70_000,
        projection_trigger=ProjectionTrigger.ENVELOPE_CHANGE, basis="TOU_LIMIT",
        evaluated_at=T0 - timedelta(minutes=30),
    )
    await feed.send(
        OperatingEnvelopeReceived.create(envelope, producer=PRODUCER, occurred_at=T0),
        EffectiveCircuitCapacityChanged.create(projected, producer=PRODUCER, occurred_at=T0),
    )
    await feed.until(depot, lambda s: bool(s.envelopes) and gc in s.circuit_capacities)
    await feed.telemetry(depot, depot.telemetry(T0, demands={k1: 40_000, k2: 40_000}))
    request = depot.rebalance(T0)
    await feed.send(request)

    cycle = await feed.cycle(request.payload.request_key)

    gc_row = next(n for n in cycle.result.allocation_summary.by_node if n.node_id == gc)
    assert gc_row.effective_limit_watts == 55_000  # the reconciled value is the node's cap in this cycle
    assert cycle.result.allocation_summary.total_allocated_watts == 55_000
    async with TopicReader(feed.settings, RECONCILED, REQUESTED, COMPLETED) as reader:
        # Each topic's records arrive in their own fetches: wait until all three have been read.
        records = await reader.wait_for(
            lambda rs: all(
                any(r.topic.endswith(t) and mine(depot, r) for r in rs) for t in (COMPLETED, REQUESTED, RECONCILED)
            )
        )
    [reconciled] = [EffectiveCircuitCapacityReconciled.model_validate_json(r.value) for r in records
                    if r.topic.endswith(RECONCILED) and mine(depot, r)]
    p = reconciled.payload
    assert (p.node_id, p.circuit_id, p.effective_capacity_watts, p.previous_capacity_watts) == (
        gc, circuit_id, 55_000, 70_000
    )
    assert p.projection_trigger is ProjectionTrigger.REBALANCE_GUARD
    assert (p.binding_envelope_id, p.basis) == (envelope.envelope_id, "TOU_LIMIT")
    assert reconciled.correlation_id == request.correlation_id
    assert [r for r in records if r.topic.endswith(REQUESTED) and mine(depot, r)] and all(
        r.value == request.to_bytes() for r in records if r.topic.endswith(REQUESTED) and mine(depot, r)
    )  # the only rebalance request is ours: the guard asked for none
    assert await feed.cycles_of(depot) == 1

    # The next cycle finds the value already reconciled: nothing to correct, nothing emitted.
    again = depot.rebalance(T0)
    await feed.send(again)
    await feed.cycle(again.payload.request_key)
    async with TopicReader(feed.settings, RECONCILED, COMPLETED) as reader:
        records = await reader.wait_for(  # both topics read (each arrives in its own fetches)
            lambda rs: sum(1 for r in rs if r.topic.endswith(COMPLETED) and mine(depot, r)) == 2
            and any(r.topic.endswith(RECONCILED) and mine(depot, r) for r in rs)
        )
    assert sum(1 for r in records if r.topic.endswith(RECONCILED) and mine(depot, r)) == 1
    assert (await feed.state(depot)).circuit_capacities[gc].trigger is ProjectionTrigger.REBALANCE_GUARD


def mine(depot: Depot, record: object) -> bool:
    return record.key == str(depot.microgrid_id).encode()  # type: ignore[attr-defined]
