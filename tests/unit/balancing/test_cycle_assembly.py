"""Balancing's pure steps: read models -> cycle inputs, the rebalance guard, and the result records."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, timedelta, timezone
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings

from contracts.base import encode_json
from contracts.enums import (
    CapabilityType,
    CycleOutcome,
    ProjectionTrigger,
    ReasonCode,
    RebalanceSource,
    SourceMode,
)
from contracts.records import (
    TelemetryReadingRecord,
)
from libs.domain import ENGINE_VERSION, run_balancing_cycle
from libs.domain.cycle_inputs import CycleInputs
from libs.domain.cycle_result import LazyRecords
from services.balancing.adapters.read_models import CircuitCapacity, MicrogridState
from services.balancing.cycle_records import cycle_result_record, demand_resolved_payload
from services.balancing.rebalance_guard import reconcile_circuit_capacities
from tests.unit.balancing.cycle_builders import (
    CIRCUIT,
    GC,
    LB,
    METER,
    MG,
    NOW,
    control_point,
    inputs,
    request,
    state,
)
from tests.unit.domain.strategies import depots


def test_inputs_carry_the_managed_circuit_aggregate_cap_and_skip_value_less_fallback_rules() -> None:
    got = inputs()
    assert [(c.circuit_id, c.default_capacity_watts) for c in got.circuit_capacities] == [(str(CIRCUIT), 100_000)]
    assert [(c.control_point_id, c.limit_watts) for c in got.aggregate_caps] == [(str(LB), 80_000)]
    assert got.fallback_rules == ()  # a rule without watts has nothing to fall back on
    assert got.microgrid.version == 3 and got.rebalance_source is RebalanceSource.SCHEDULER


@pytest.mark.req("FR-014")
def test_only_an_active_microgrid_wide_load_balancing_point_caps_the_aggregate() -> None:
    points = [
        control_point({"aggregate_cap_watts": 1}, capability=CapabilityType.PEAK_SHAVING),
        control_point({"aggregate_cap_watts": 2}, node_id=GC),
        control_point({"aggregate_cap_watts": 3}, active=False),
    ]
    assert inputs(state(control_points=points)).aggregate_caps == ()


@pytest.mark.req("NFR-004")
def test_an_unreadable_aggregate_cap_fails_safe_at_zero() -> None:
    got = inputs(state(control_points=[control_point({"aggregate_cap_watts": "lots"})]))
    assert [(c.control_point_id, c.limit_watts) for c in got.aggregate_caps] == [(str(LB), 0)]


def test_a_reading_that_measured_nothing_is_not_valid_telemetry() -> None:
    blank = TelemetryReadingRecord(node_id=METER, observed_at=NOW)
    [reading] = inputs(state(readings=[blank])).telemetry
    assert reading.valid is False


def test_an_unknown_microgrid_gives_an_empty_tree_that_the_cycle_rejects() -> None:
    result = run_balancing_cycle(inputs(MicrogridState(topology=None)))
    assert result.outcome is CycleOutcome.REJECTED and ReasonCode.TOPOLOGY_INVALID in result.reason_codes


@pytest.mark.req("FR-028")
def test_guard_reconciles_drift_from_the_last_projection_or_the_default() -> None:
    cycle_inputs = inputs()
    known = CircuitCapacity(GC, CIRCUIT, 70_000, ProjectionTrigger.ENVELOPE_CHANGE, NOW)
    [fix] = reconcile_circuit_capacities(cycle_inputs, {GC: known})
    assert (fix.effective_capacity_watts, fix.previous_capacity_watts, fix.basis) == (55_000, 70_000, "TOU_LIMIT")
    assert fix.projection_trigger is ProjectionTrigger.REBALANCE_GUARD
    in_sync = CircuitCapacity(GC, CIRCUIT, 55_000, ProjectionTrigger.ENVELOPE_CHANGE, NOW)
    assert reconcile_circuit_capacities(cycle_inputs, {GC: in_sync}) == []
    # Nothing projected yet: the circuit-facing value is the circuit's default capacity.
    [from_default] = reconcile_circuit_capacities(cycle_inputs, {})
    assert from_default.previous_capacity_watts == 100_000
    assert reconcile_circuit_capacities(inputs(state(envelopes=[])), {}) == []


@pytest.mark.req("FR-006", "FR-012", "NFR-003")
def test_result_records_carry_limits_breaches_audit_and_demand() -> None:
    cycle_inputs = inputs()
    result = run_balancing_cycle(cycle_inputs)
    record = cycle_result_record(result, inputs=cycle_inputs, request=request(), started_at=NOW, ended_at=NOW)
    rows = {n.node_id: n for n in record.allocation_summary.by_node}
    assert rows[GC].effective_limit_watts == 55_000  # TOU envelope tighter than the 100 kW feeder default
    assert record.allocation_summary.total_allocated_watts == 50_000  # 55 kW less 5 kW metered load
    assert record.reason_codes == [ReasonCode.ANCESTOR_CAP_EXCEEDED]
    assert {b.cycle_id for b in record.breaches} == {record.cycle_id}
    assert record.audit.policy_versions["topology_version"] == 3 and record.audit.inputs_digest == result.inputs_digest
    assert record.audit.policy_versions["engine_version"] == ENGINE_VERSION
    demand = demand_resolved_payload(result)
    assert demand.source_mode is SourceMode.MEASURED and any(u.node_id == METER for u in demand.inputs_used)


def test_the_record_is_the_one_built_model_by_model() -> None:
    """The record is validated once from plain data; it equals the record built a model and a UUID at a time."""
    from contracts.records import (
        AllocationSummaryRecord,
        BreachRecord,
        CycleAuditRecord,
        CycleResultRecord,
        NodeAllocationRecord,
    )
    from services.balancing.cycle_records import policy_versions

    cycle_inputs = inputs()
    result = run_balancing_cycle(cycle_inputs)
    record = cycle_result_record(result, inputs=cycle_inputs, request=request(), started_at=NOW, ended_at=NOW)
    by_type = {r.node_id: r for r in record.allocation_summary.by_node}
    expected = CycleResultRecord(
        cycle_id=UUID(result.cycle_id), microgrid_id=UUID(result.microgrid_id), node_id=None,
        topology_version=result.topology_version, started_at=NOW, ended_at=NOW, outcome=result.outcome,
        reason_codes=list(result.reason_codes),
        allocation_summary=AllocationSummaryRecord(
            total_allocated_watts=result.allocation_summary.total_allocated_watts,
            total_requested_watts=result.allocation_summary.total_requested_watts,
            by_node=[NodeAllocationRecord(
                node_id=UUID(n.node_id), node_type=n.node_type, allocated_watts=n.allocated_watts,
                requested_watts=n.requested_watts,
                effective_limit_watts=by_type[UUID(n.node_id)].effective_limit_watts,
                binding_constraint_ref=by_type[UUID(n.node_id)].binding_constraint_ref,
            ) for n in result.allocation_summary.nodes],
        ),
        breaches=[BreachRecord(
            breach_id=UUID(b.breach_id), microgrid_id=UUID(b.microgrid_id), cycle_id=UUID(result.cycle_id),
            node_id=UUID(b.node_id) if b.node_id else None, constraint_ref=b.constraint_ref,
            constraint_type=b.constraint_type, reason_code=b.reason_code,
            effective_demand_watts=b.effective_demand_watts, resolved_limit_watts=b.resolved_limit_watts,
            source_mode=b.source_mode, detected_at=b.detected_at,
        ) for b in result.breaches],
        audit=CycleAuditRecord(
            actor=request().requested_by, source=request().source, correlation_id=request().correlation_id,
            request_key=request().request_key, policy_versions=policy_versions(cycle_inputs),
            inputs_digest=result.inputs_digest,
        ),
    )
    assert record.breaches and record == expected
    assert record.model_dump_json() == expected.model_dump_json()


def test_the_record_read_from_the_cycles_columns_is_the_one_read_from_its_node_records() -> None:
    """cycle_record_document reads a fresh result's per-node and breach columns (no record built per node
    or breach); a result whose nodes and breaches are plain records gives the same document."""
    import dataclasses

    from services.balancing.cycle_records import cycle_record_document

    cycle_inputs = inputs()
    fresh = run_balancing_cycle(cycle_inputs)
    assert fresh.allocation_summary.nodes.columns() is not None
    summary = fresh.allocation_summary
    built = dataclasses.replace(
        fresh,
        allocation_summary=dataclasses.replace(summary, nodes=tuple(summary.nodes)),
        breaches=tuple(fresh.breaches),
    )
    args = {"inputs": cycle_inputs, "request": request(), "started_at": NOW, "ended_at": NOW}
    from_columns = cycle_record_document(run_balancing_cycle(cycle_inputs), **args)
    from_records = cycle_record_document(built, **args)
    assert from_columns["allocation_summary"]["by_node"]
    assert any(n["binding_constraint_ref"] for n in from_columns["allocation_summary"]["by_node"])
    assert from_columns["breaches"]
    assert encode_json(from_columns) == encode_json(from_records)


def test_the_cycle_is_serialised_once_into_the_bytes_its_models_would_write() -> None:
    """encode_cycle and Message.encode (the cycle's hot path) write exactly what the models write: the row,
    each breach row and event, demand_resolved, and cycle_completed with its breaches capped."""
    from contracts.events import (
        MAX_EMBEDDED_BREACHES,
        ConstraintBreachDetected,
        CycleCompleted,
        DemandResolved,
        RebalanceRequested,
    )
    from contracts.records import BreachRecord, CycleResultRecord
    from contracts.topics import topic_for
    from services.balancing.cycle_records import cycle_record_document, demand_resolved_document, encode_cycle

    cycle_inputs = inputs()
    result = run_balancing_cycle(cycle_inputs)
    document = cycle_record_document(result, inputs=cycle_inputs, request=request(), started_at=NOW, ended_at=NOW)
    # Many breaches: cycle_completed embeds the first MAX_EMBEDDED_BREACHES, the row keeps them all.
    [breach] = document["breaches"][:1]
    document["breaches"] = [
        {**breach, "breach_id": str(uuid.uuid4())} for _ in range(MAX_EMBEDDED_BREACHES + 3)
    ]
    encoded = encode_cycle(document)
    record = CycleResultRecord.model_validate_json(encoded.record_json)
    assert encoded.record_json == record.model_dump_json().encode()
    assert [b.encode() for b in map(BreachRecord.model_dump_json, record.breaches)] == encoded.breach_jsons

    cause = RebalanceRequested.create(request(), producer="test", occurred_at=NOW)
    later = NOW + timedelta(microseconds=1500)
    event = CycleCompleted.encode(
        encoded.event_json, key=str(MG), producer="balancing", occurred_at=later, causation=cause
    )
    model = CycleCompleted.create(record, producer="balancing", occurred_at=later, causation=cause,
                                  event_id=event.event_id)
    assert event.value == model.to_bytes()
    assert event.key == topic_for(model).key_for(model) and event.decode() == model
    assert model.payload.breaches_total == MAX_EMBEDDED_BREACHES + 3

    breach_event = ConstraintBreachDetected.encode(
        encoded.breach_jsons[0], key=str(MG), producer="balancing", occurred_at=later, causation=cause
    )
    assert breach_event.value == ConstraintBreachDetected.create(
        record.breaches[0], producer="balancing", occurred_at=later, causation=cause, event_id=breach_event.event_id
    ).to_bytes()

    demand = DemandResolved.encode(
        encode_json(demand_resolved_document(result)), key=str(MG), producer="balancing", occurred_at=later,
        causation=cause,
    )
    assert demand.value == DemandResolved.create(
        demand_resolved_payload(result), producer="balancing", occurred_at=later, causation=cause,
        event_id=demand.event_id,
    ).to_bytes()


def test_timeline_points_are_the_cycles_grid_connections_and_circuits_with_what_they_drew() -> None:
    from libs.domain.demand import TelemetryReading
    from services.balancing.console.store import timeline_points
    from services.balancing.cycle_records import cycle_record_document

    cycle_inputs = inputs()
    result = run_balancing_cycle(cycle_inputs)
    document = cycle_record_document(result, inputs=cycle_inputs, request=request(), started_at=NOW, ended_at=NOW)
    gc = next(n for n in document["allocation_summary"]["by_node"] if n["node_id"] == str(GC))
    measured = TelemetryReading(node_id=str(GC), observed_at=NOW, measured_watts=12_345)
    [point] = timeline_points(document, [measured])
    assert point == (str(GC), gc["requested_watts"], 12_345, gc["allocated_watts"], 55_000)
    # A reading that measured nothing is no drawn value (not 0 W); other node types draw no point.
    nothing = TelemetryReading(node_id=str(GC), observed_at=NOW, valid=False)
    assert timeline_points(document, [nothing]) == [(str(GC), gc["requested_watts"], None, gc["allocated_watts"],
                                                     55_000)]


def test_a_cycle_run_by_its_own_request_answers_with_the_bytes_the_model_would_write() -> None:
    """POST /rebalance answers a cycle it ran from the record's stored bytes (no read back, no parse): the
    same bytes as the response model, whatever the clock's time zone."""
    from contracts.api.balancing import CycleResultResponse
    from contracts.records import CycleResultRecord
    from services.balancing.cycle_records import cycle_record_document, encode_cycle
    from services.balancing.routes import _json, _json_record

    cycle_inputs = inputs()
    result = run_balancing_cycle(cycle_inputs)
    document = cycle_record_document(result, inputs=cycle_inputs, request=request(), started_at=NOW, ended_at=NOW)
    encoded = encode_cycle(document, result.missing_inputs)
    record = CycleResultRecord.model_validate_json(encoded.record_json)
    assert record.allocation_summary.by_node and encoded.missing_inputs == tuple(result.missing_inputs)
    east = timezone(timedelta(hours=2))
    for at in (NOW + timedelta(microseconds=1234), (NOW + timedelta(seconds=1)).astimezone(east)):
        fast = _json_record(MG, at, encoded.record_json)
        model = _json(CycleResultResponse(microgrid_id=MG, timestamp=at, result=record))
        assert fast.body == model.body
        assert fast.media_type == model.media_type


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cycle_inputs=depots())
def test_the_demand_resolved_payload_read_from_the_cycles_columns_says_what_each_resolution_record_says(
    cycle_inputs: CycleInputs,
) -> None:
    """demand_resolved_document reads a fresh result's resolution columns (no record made per scope); each
    entry carries, field by field, what the record of that scope says, for measured, fallback, generation
    and aggregate resolutions alike."""
    from services.balancing.cycle_records import demand_resolved_document

    fresh = run_balancing_cycle(cycle_inputs)
    assert isinstance(fresh.demand_resolutions, LazyRecords) and fresh.demand_resolutions.columns() is not None
    used = demand_resolved_document(fresh)["inputs_used"]
    records = tuple(run_balancing_cycle(cycle_inputs).demand_resolutions)
    assert len(used) == len(records)
    for entry, r in zip(used, records, strict=True):
        assert entry == {
            "node_id": r.node_id or None,
            "source_mode": r.source_mode,
            "effective_demand_watts": r.effective_demand_watts,
            "measured_demand_watts": r.measured_watts,
            "observed_at": r.observed_at.astimezone(UTC) if r.observed_at is not None else None,
            "freshness_threshold_seconds": r.freshness_threshold_seconds,
            "fallback_inputs": {
                "role": r.role.value,
                "telemetry_state": r.telemetry_state.value,
                "age_seconds": r.age_seconds,
                "fallback_basis": r.fallback_basis.value if r.fallback_basis else None,
                "fallback_rule": None if r.fallback_rule is None else dataclasses.asdict(r.fallback_rule),
                "fail_safe_limit_watts": r.fail_safe_limit_watts,
            },
        }
