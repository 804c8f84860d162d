"""What the services still owe a run before it may end (NFR-007, issue 15 defect 8): pure, synthetic records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from contracts.enums import (
    ConstraintType,
    CycleOutcome,
    EnvelopeStatus,
    EnvelopeType,
    ProjectionTrigger,
    RebalanceSource,
)
from contracts.events import (
    CycleCompleted,
    EffectiveCircuitCapacityChanged,
    EffectiveCircuitCapacityPayload,
    OperatingEnvelopeLifecycleEvaluated,
    OperatingEnvelopeLifecycleEvaluatedPayload,
    OperatingEnvelopeReceived,
    RebalanceRequested,
    RebalanceRequestedPayload,
)
from contracts.records import (
    AllocationSummaryRecord,
    CycleAuditRecord,
    CycleResultRecord,
    EnvelopeBlockRecord,
    OperatingEnvelopeRecord,
)
from simulator.clock import DEFAULT_ANCHOR
from simulator.depot import load_depot
from simulator.depot_state import DepotState
from simulator.follow_through import loose_ends
from simulator.identity import Identities, run_namespace
from simulator.transport import Observed

pytestmark = pytest.mark.req("NFR-007")
T0 = datetime(2030, 1, 7, 6, tzinfo=UTC)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


@pytest.fixture
def state() -> DepotState:
    s = DepotState.create(load_depot("single-grid-connection"), Identities(run_namespace("t", 1, DEFAULT_ANCHOR)))
    s.microgrid_id = uuid4()
    return s


def observed(*messages: object) -> list[Observed]:
    return [Observed(i, m.EVENT_TYPE, 0, i, float(i), message=m) for i, m in enumerate(messages)]  # type: ignore[attr-defined]


def envelope(state: DepotState, *, received: float = 0.0, boundary: float = 2.0) -> OperatingEnvelopeRecord:
    blocks = [EnvelopeBlockRecord(block_from=at(-60), block_to=at(boundary), max_limit_watts=100000),
              EnvelopeBlockRecord(block_from=at(boundary), block_to=at(3600), max_limit_watts=60000)]
    return OperatingEnvelopeRecord(
        envelope_id=uuid4(), microgrid_id=state.microgrid_id, node_id=uuid4(), envelope_type=EnvelopeType.FORECAST,
        constraint_type=ConstraintType.CONSUMPTION_CAP, effective_from=at(-60), effective_to=at(3600),
        source_ref="forecast", status=EnvelopeStatus.ACTIVE, received_at=at(received), blocks=blocks)


def evaluated(record: OperatingEnvelopeRecord, when: float, status: EnvelopeStatus = EnvelopeStatus.ACTIVE
              ) -> OperatingEnvelopeLifecycleEvaluated:
    payload = OperatingEnvelopeLifecycleEvaluatedPayload(
        envelope_id=record.envelope_id, microgrid_id=record.microgrid_id, node_id=record.node_id, status=status,
        previous_status=EnvelopeStatus.ACTIVE, evaluated_at=at(when), timer_kind="BLOCK_BOUNDARY", envelope=record)
    return OperatingEnvelopeLifecycleEvaluated.create(payload, producer="envelope_lifecycle", occurred_at=at(when))


def capacity_changed(state: DepotState) -> EffectiveCircuitCapacityChanged:
    payload = EffectiveCircuitCapacityPayload(
        microgrid_id=state.microgrid_id, node_id=uuid4(), circuit_id=uuid4(), effective_capacity_watts=60000,
        projection_trigger=ProjectionTrigger.ENVELOPE_LIFECYCLE, previous_capacity_watts=100000, basis="FORECAST",
        evaluated_at=at(2))
    return EffectiveCircuitCapacityChanged.create(payload, producer="envelope_lifecycle", occurred_at=at(2))


def requested(state: DepotState, key: str, causation: object | None = None) -> RebalanceRequested:
    payload = RebalanceRequestedPayload(microgrid_id=state.microgrid_id, source=RebalanceSource.ENVELOPE_CHANGE,
                                        correlation_id="c", request_key=key, requested_by="compatibility_adapter")
    return RebalanceRequested.create(payload, producer="compatibility_adapter", occurred_at=at(2),
                                     causation=causation)  # type: ignore[arg-type]


def cycle(state: DepotState, key: str) -> CycleCompleted:
    result = CycleResultRecord(
        cycle_id=uuid4(), microgrid_id=state.microgrid_id, topology_version=2, started_at=at(2), ended_at=at(2),
        outcome=CycleOutcome.APPLIED, reason_codes=[],
        allocation_summary=AllocationSummaryRecord(total_allocated_watts=0, total_requested_watts=0, by_node=[]),
        audit=CycleAuditRecord(actor="t", source=RebalanceSource.ENVELOPE_CHANGE, correlation_id="c",
                               request_key=key, inputs_digest="d"))
    return CycleCompleted.create(result, producer="balancing", occurred_at=at(2))


def test_a_boundary_passed_on_the_scenario_clock_is_owed_until_the_scheduler_evaluated_it(state: DepotState) -> None:
    record = envelope(state, boundary=2.0)
    received = OperatingEnvelopeReceived.create(record, producer="envelope_lifecycle", occurred_at=at(0))
    assert loose_ends(observed(received), state, at(1.9)) == []  # not due yet
    assert len(loose_ends(observed(received), state, at(2.05))) == 1
    assert loose_ends(observed(received, evaluated(record, 2.0)), state, at(2.05)) == []


def test_boundaries_before_receipt_and_after_the_envelope_ended_are_not_owed(state: DepotState) -> None:
    late = envelope(state, received=5.0, boundary=2.0)  # the boundary was behind it when it arrived
    received = OperatingEnvelopeReceived.create(late, producer="envelope_lifecycle", occurred_at=at(5))
    assert loose_ends(observed(received), state, at(6)) == []
    record = envelope(state, boundary=2.0)
    withdrawn = evaluated(record, 1.0, EnvelopeStatus.WITHDRAWN)
    received = OperatingEnvelopeReceived.create(record, producer="envelope_lifecycle", occurred_at=at(0))
    assert loose_ends(observed(received, withdrawn), state, at(3)) == []


def test_a_capacity_change_is_owed_its_rebalance_request_and_the_request_its_cycle(state: DepotState) -> None:
    change = capacity_changed(state)
    assert [str(e) for e in loose_ends(observed(change), state, at(3))] == [
        f"capacity change {change.event_id}: no rebalance requested for it yet"]
    request = requested(state, "capacity-change:x", causation=change)
    assert [str(e) for e in loose_ends(observed(change, request), state, at(3))] == [
        "rebalance request capacity-change:x: no cycle yet"]
    assert loose_ends(observed(change, request, cycle(state, "capacity-change:x")), state, at(3)) == []


def test_another_depots_records_are_not_this_runs_business(state: DepotState) -> None:
    other = DepotState.create(load_depot("single-grid-connection"), Identities(run_namespace("t", 2, DEFAULT_ANCHOR)))
    other.microgrid_id = uuid4()
    assert loose_ends(observed(capacity_changed(other), requested(other, "k")), state, at(3)) == []


def test_a_cycle_answered_over_http_is_owed_until_it_is_published(state: DepotState) -> None:
    published = cycle(state, "sim-rebalance-1")
    answered = {published.payload.cycle_id}
    assert [str(e) for e in loose_ends([], state, at(3), answered)] == [
        f"cycle {published.payload.cycle_id}: answered, not published yet"]
    assert loose_ends(observed(published), state, at(3), answered) == []
