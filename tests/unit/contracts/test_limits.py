"""Every input bounded at the door, in `contracts` (issue 14, "Bad input"), and every message a write can
cause within its topic's size budget, with the budgets inside the broker's limit."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from contracts.api.balancing import RebalanceRequest
from contracts.api.compatibility_adapter import LegacyTouSchedule
from contracts.api.envelope_lifecycle import OperatingEnvelopeSubmission
from contracts.api.topology import ControlPointInput, NodeLimitInput, StatusEventInput, TopologyReplaceRequest
from contracts.base import MAX_ENVELOPE_BLOCKS, MAX_JSON_OBJECT_BYTES, MAX_NODES, MAX_WATTS
from contracts.commands import SubmitOperatingEnvelope, SubmitOperatingEnvelopePayload
from contracts.enums import (
    ConstraintType,
    EnvelopeStatus,
    EnvelopeType,
    ForecastSourceHealth,
    NodeType,
    ReasonCode,
    RebalanceSource,
    SourceMode,
)
from contracts.events import (
    CapabilityControlPointUpdated,
    CapabilityControlPointUpdatedPayload,
    CapabilityStatusRecorded,
    CycleCompleted,
    DemandResolved,
    DemandResolvedPayload,
    OperatingEnvelopeLifecycleEvaluated,
    OperatingEnvelopeLifecycleEvaluatedPayload,
    OperatingEnvelopeRejected,
    OperatingEnvelopeRejectedPayload,
    TelemetryReported,
    TelemetryReportedPayload,
)
from contracts.message_sizes import MessageTooLarge, check_fits
from contracts.records import (
    AllocationSummaryRecord,
    BreachRecord,
    CapabilityStatusEventRecord,
    ConnectorDemandRecord,
    CycleAuditRecord,
    CycleResultRecord,
    DemandResolutionRecord,
    EnvelopeBlockRecord,
    NodeAllocationRecord,
    OperatingEnvelopeRecord,
    TelemetryReadingRecord,
)
from contracts.topics import BROKER_MAX_MESSAGE_BYTES, BY_NAME, TOPICS, topic_for
from tools.contracts_cli import asyncapi_document, openapi_documents

NOW = datetime(2030, 1, 1, tzinfo=UTC)
NODE = str(uuid.uuid4())


def _refused(model: type[BaseModel], data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    assert field in {part for e in caught.value.errors() for part in e["loc"]}, caught.value.errors()


def _limit(watts: Any) -> dict[str, Any]:
    return {"node_id": NODE, "constraint_type": "CONSUMPTION_CAP", "limit_watts": watts, "source_type": "MANUAL"}


def _status(**fields: Any) -> dict[str, Any]:
    return {"operational_status": "ON", "observed_at": NOW.isoformat(), "source_event_ref": "e"} | fields


def _point(**fields: Any) -> dict[str, Any]:
    return {"capability_type": "LOAD_BALANCING", "state": "enabled", "control_source": "LOCAL"} | fields


# ---- bounds at the door ---------------------------------------------------------------------------------


@pytest.mark.parametrize("watts", [2**63, 10**30, MAX_WATTS + 1, -1, True, 1.5, "100"])
def test_watts_are_whole_numbers_in_a_physical_range(watts: Any) -> None:
    _refused(NodeLimitInput, _limit(watts), "limit_watts")


def test_ten_gigawatts_is_still_a_limit() -> None:
    assert NodeLimitInput.model_validate(_limit(MAX_WATTS)).limit_watts == MAX_WATTS


@pytest.mark.parametrize("text", ["a\x00b", "lone \ud800 surrogate", "x" * 201, ""])
def test_text_is_bounded_and_storable(text: str) -> None:
    _refused(StatusEventInput, _status(operational_status=text), "operational_status")


@pytest.mark.parametrize(
    "detail",
    [
        {"soc": float("nan")},
        {"soc": float("inf")},
        {"deep": [[{"x": -float("inf")}]]},
        {"nul\x00key": 1},
        {"text": "nul\x00"},
        {"text": "\udfff"},
        {"blob": "x" * MAX_JSON_OBJECT_BYTES},
        {"d": {"d": {"d": {"d": {"d": {"d": {"d": {"d": {"d": {"d": 1}}}}}}}}}},
    ],
)
def test_free_form_json_is_finite_storable_and_bounded(detail: dict[str, Any]) -> None:
    _refused(StatusEventInput, _status(status_detail=detail), "status_detail")
    _refused(ControlPointInput, _point(local_config=detail), "local_config")


def test_reasonable_free_form_json_is_taken() -> None:
    detail = {"soc": 0.42, "modes": ["a", "b"], "nested": {"ok": True, "n": None}}
    assert StatusEventInput.model_validate(_status(status_detail=detail)).status_detail == detail


@pytest.mark.parametrize("active", [0, 1, "true", "yes"])
def test_booleans_are_booleans(active: Any) -> None:
    _refused(ControlPointInput, _point(active=active), "active")


@pytest.mark.parametrize("instant", [0.5, 1_700_000_000, "0.5", "1700000000", " 17e8 "])
def test_instants_are_iso_8601_not_numbers(instant: Any) -> None:
    _refused(StatusEventInput, _status(observed_at=instant), "observed_at")


def test_integers_fit_their_postgres_columns() -> None:
    node = {"node_id": NODE, "name": "n", "node_type": "CIRCUIT"}
    _refused(TopologyReplaceRequest, {"version": 0, "nodes": [node | {"display_order": 2**31}]}, "display_order")
    _refused(TopologyReplaceRequest, {"version": 2**31, "nodes": []}, "version")
    _refused(RebalanceRequest, {"expected_topology_version": 2**40}, "expected_topology_version")
    _refused(RebalanceRequest, {"expected_topology_version": True}, "expected_topology_version")
    block = {"block_from": NOW.isoformat(), "block_to": (NOW + timedelta(hours=1)).isoformat(), "target_watts": 2**63}
    envelope = {"node_id": NODE, "envelope_type": "OVERRIDE", "constraint_type": "NET_CAP", "source_ref": "s",
                "effective_from": NOW.isoformat(), "effective_to": (NOW + timedelta(hours=1)).isoformat()}
    _refused(OperatingEnvelopeSubmission, envelope | {"blocks": [block]}, "target_watts")
    period = {"start": NOW.isoformat(), "end": (NOW + timedelta(hours=1)).isoformat(), "limit_watts": 2**63}
    _refused(LegacyTouSchedule, {"periods": [period]}, "limit_watts")


def test_a_microgrid_has_at_most_max_nodes() -> None:
    nodes = [{"node_id": str(uuid.uuid4()), "name": "n", "node_type": "CIRCUIT"} for _ in range(MAX_NODES + 1)]
    _refused(TopologyReplaceRequest, {"version": 0, "nodes": nodes}, "nodes")


def test_the_openapi_and_asyncapi_documents_show_the_limits() -> None:
    schemas = openapi_documents()["topology"]["components"]["schemas"]
    watts = schemas["NodeLimitInput"]["properties"]["limit_watts"]
    assert (watts["minimum"], watts["maximum"], watts["type"]) == (0, MAX_WATTS, "integer")
    status = schemas["StatusEventInput"]["properties"]["operational_status"]["anyOf"][1]
    assert status["maxLength"] == 200 and status["pattern"] == "^[^\\x00]*$"
    channels = asyncapi_document()["channels"]
    budget = BY_NAME["microgrid.topology_updated"].max_bytes
    assert channels["microgrid_topology_updated"]["x-max-message-bytes"] == budget


# ---- message size budgets ---------------------------------------------------------------------------------


def test_every_topic_has_a_budget_inside_the_broker_limit_with_margin() -> None:
    for spec in TOPICS:
        assert 0 < spec.max_bytes <= BROKER_MAX_MESSAGE_BYTES * 3 // 4, spec.name


def _u() -> uuid.UUID:
    return uuid.uuid4()


def _longest(enum: Any) -> Any:
    return max(enum, key=lambda member: len(member.value))


def _worst_block(i: int) -> EnvelopeBlockRecord:
    start = NOW + timedelta(minutes=i)
    return EnvelopeBlockRecord(block_from=start, block_to=start + timedelta(minutes=1), min_limit_watts=MAX_WATTS,
                               max_limit_watts=MAX_WATTS, target_watts=MAX_WATTS)


def _worst_envelope() -> OperatingEnvelopeRecord:
    return OperatingEnvelopeRecord(
        envelope_id=_u(), microgrid_id=_u(), origin_control_point_id=_u(), node_id=_u(),
        envelope_type=_longest(EnvelopeType), constraint_type=_longest(ConstraintType),
        effective_from=NOW, effective_to=NOW + timedelta(days=9), source_ref="r" * 300,
        status=EnvelopeStatus.PENDING, received_at=NOW,
        blocks=[_worst_block(i) for i in range(MAX_ENVELOPE_BLOCKS)], rejection_reason="x" * 2_000,
    )


def _worst_cycle() -> CycleCompleted:
    """A cycle at the contract's limits: every node allocated with the longest values, and three active
    node limits per node referenced in its policy versions."""
    big = -(10**15)  # a sum over many nodes; wider than any one watts field
    by_node = [
        NodeAllocationRecord(node_id=_u(), node_type=_longest(NodeType), allocated_watts=big, requested_watts=big,
                             effective_limit_watts=big, binding_constraint_ref=f"envelope:{_u()}:NET_CAP")
        for _ in range(MAX_NODES)
    ]
    # Three breaches on every node: the event embeds the first MAX_EMBEDDED_BREACHES of them.
    breaches = [
        BreachRecord(breach_id=_u(), microgrid_id=_u(), cycle_id=_u(), node_id=_u(),
                     constraint_ref=f"envelope:{_u()}:NET_CAP", constraint_type=c, reason_code=_longest(ReasonCode),
                     effective_demand_watts=big, resolved_limit_watts=big, source_mode=_longest(SourceMode),
                     detected_at=NOW)
        for _ in range(MAX_NODES) for c in list(ConstraintType)[:3]
    ]
    limits = {str(_u()): NOW.isoformat() for _ in range(3 * MAX_NODES)}
    result = CycleResultRecord(
        cycle_id=_u(), microgrid_id=_u(), node_id=_u(), topology_version=2**31 - 1, started_at=NOW, ended_at=NOW,
        outcome="REJECTED", reason_codes=list(ReasonCode),
        allocation_summary=AllocationSummaryRecord(total_allocated_watts=big, total_requested_watts=big,
                                                   by_node=by_node),
        breaches=breaches,
        audit=CycleAuditRecord(actor="a" * 200, source=_longest(RebalanceSource), correlation_id="c" * 200,
                               request_key="k" * 200, policy_versions={"node_limits": limits}, inputs_digest="d" * 64),
    )
    return CycleCompleted.create(result, producer="balancing", occurred_at=NOW, correlation_id="c" * 200)


def _worst_messages() -> list[Any]:
    envelope = _worst_envelope()
    common: dict[str, Any] = {"producer": "p" * 100, "occurred_at": NOW, "correlation_id": "c" * 200}
    detail = {"k": "v" * (MAX_JSON_OBJECT_BYTES - 20)}
    return [
        _worst_cycle(),
        DemandResolved.create(DemandResolvedPayload(
            microgrid_id=_u(), cycle_id=_u(), source_mode=SourceMode.FALLBACK_DERIVED,
            inputs_used=[DemandResolutionRecord(
                node_id=_u(), source_mode=SourceMode.FALLBACK_DERIVED, effective_demand_watts=-(10**15),
                measured_demand_watts=-MAX_WATTS, observed_at=NOW, freshness_threshold_seconds=2**31 - 1,
                fallback_inputs={"fallback_demand_watts": MAX_WATTS, "assume_requested": True,
                                 "requested_watts": MAX_WATTS, "min_watts": MAX_WATTS},
            ) for _ in range(MAX_NODES)],
        ), **common),
        TelemetryReported.create(TelemetryReportedPayload(
            microgrid_id=_u(),
            readings=[TelemetryReadingRecord(node_id=_u(), measured_demand_watts=-MAX_WATTS,
                                             measured_generation_watts=-MAX_WATTS, observed_at=NOW)
                      for _ in range(MAX_NODES)],
            demands=[ConnectorDemandRecord(node_id=_u(), requested_watts=MAX_WATTS, min_watts=MAX_WATTS,
                                           priority=-(2**31), weight=2**31 - 1, session_ref="s" * 100, observed_at=NOW)
                     for _ in range(MAX_NODES)],
        ), **common),
        SubmitOperatingEnvelope.create(SubmitOperatingEnvelopePayload(
            microgrid_id=_u(), node_id=_u(), origin_control_point_id=_u(), envelope_type=EnvelopeType.FORECAST,
            constraint_type=ConstraintType.CONSUMPTION_CAP, effective_from=NOW, effective_to=NOW + timedelta(days=9),
            source_ref="r" * 300, blocks=envelope.blocks, submitted_by="s" * 200,
            supersedes_source_refs=["r" * 300] * 20,
        ), **common),
        OperatingEnvelopeLifecycleEvaluated.create(OperatingEnvelopeLifecycleEvaluatedPayload(
            envelope_id=_u(), microgrid_id=_u(), origin_control_point_id=_u(), node_id=_u(),
            status=EnvelopeStatus.ACTIVE, previous_status=EnvelopeStatus.PENDING, evaluated_at=NOW,
            timer_kind="BLOCK_BOUNDARY", envelope=envelope, forecast_source_health=_longest(ForecastSourceHealth),
        ), **common),
        OperatingEnvelopeRejected.create(OperatingEnvelopeRejectedPayload(
            microgrid_id=_u(), envelope_id=_u(), node_id=_u(), source_ref="r" * 300,
            reason_code=ReasonCode.ENVELOPE_INVALID, violated_rule="ENVELOPE_INVARIANTS",
            # the write port reports at most 20 problems (service._REPORTED_PROBLEMS)
            details={"message": "m" * 300, "problems": ["p" * 300] * 20, "problem_count": MAX_ENVELOPE_BLOCKS},
            envelope=envelope,
        ), **common),
        CapabilityStatusRecorded.create(CapabilityStatusEventRecord(
            status_event_id=_u(), microgrid_id=_u(), control_point_id=_u(), node_id=_u(),
            capability_type="ENERGY_OPTIMISATION", operational_status="o" * 200, reported_by="EXTERNAL",
            observed_at=NOW, ingested_at=NOW, source_event_ref="s" * 200, status_detail=detail,
        ), **common),
        CapabilityControlPointUpdated.create(CapabilityControlPointUpdatedPayload(
            control_point_id=_u(), microgrid_id=_u(), node_id=_u(), capability_type="ENERGY_OPTIMISATION",
            state="disabled", control_source="LOCAL", description="d" * 2_000, local_config=detail,
            external_config_type="t" * 200, external_config_ref="r" * 500, schedule_ref="s" * 200,
            updated_by="u" * 200,
        ), **common),
    ]


@pytest.mark.parametrize("message", _worst_messages(), ids=lambda m: m.EVENT_TYPE)
def test_the_worst_case_message_at_the_contract_limits_fits_its_topic(message: Any) -> None:
    size = check_fits(message)
    assert size <= topic_for(message).max_bytes


def test_cycle_completed_embeds_at_most_its_cap_of_breaches_and_says_how_many_there_were() -> None:
    from contracts.events import MAX_EMBEDDED_BREACHES

    cycle = _worst_cycle()
    assert len(cycle.payload.breaches) == MAX_EMBEDDED_BREACHES
    assert cycle.payload.breaches_total == 3 * MAX_NODES
    again = CycleCompleted.model_validate_json(cycle.to_bytes())
    assert again.payload.breaches == cycle.payload.breaches
    few = cycle.payload.model_copy(update={"breaches": cycle.payload.breaches[:3], "breaches_total": None})
    assert CycleCompleted.create(few, producer="balancing", occurred_at=NOW).payload.breaches_total is None


def test_a_message_over_its_budget_is_refused() -> None:
    cycle = _worst_cycle()
    bigger = cycle.payload.allocation_summary.by_node * 3
    over = cycle.model_copy(update={"payload": cycle.payload.model_copy(update={
        "allocation_summary": cycle.payload.allocation_summary.model_copy(update={"by_node": bigger})})})
    with pytest.raises(MessageTooLarge) as caught:
        check_fits(over)
    assert caught.value.topic == "microgrid.cycle_completed"
    assert caught.value.size_bytes > caught.value.budget_bytes == BY_NAME["microgrid.cycle_completed"].max_bytes
    assert json.loads(json.dumps(str(caught.value)))


def test_a_kafka_record_with_a_nul_or_nan_fails_decoding_so_it_is_dead_lettered_not_retried() -> None:
    """The same bounds hold for records on the topics: a NUL in a text field or NaN in free-form JSON is
    a decode failure (dead letter at once), never a database error the consumer would retry."""
    from contracts.events import LegacyCircuitUpdated, LegacyCircuitUpdatedPayload
    from contracts.topics import decode

    good = LegacyCircuitUpdated.create(
        LegacyCircuitUpdatedPayload(circuit_id=_u(), depot_id=_u(), name="Feeder", default_capacity_watts=1,
                                    fail_safe_capacity_watts=1),
        producer="legacy", occurred_at=NOW,
    )
    decode("legacy_circuit.circuit_updated", good.to_bytes())
    raw = good.to_bytes()
    for bad in (raw.replace(b'"Feeder"', b'"Fee\\u0000der"'),
                raw.replace(b'"Feeder"', b'"Fee\\ud800der"'),
                raw.replace(b'"default_capacity_watts":1', b'"default_capacity_watts":9223372036854775808')):
        with pytest.raises(ValidationError):
            decode("legacy_circuit.circuit_updated", bad)
    status = CapabilityStatusRecorded.create(CapabilityStatusEventRecord(
        status_event_id=_u(), microgrid_id=_u(), control_point_id=_u(), capability_type="DER",
        operational_status="ON", reported_by="EXTERNAL", observed_at=NOW, ingested_at=NOW, status_detail={"x": 1},
    ), producer="topology", occurred_at=NOW)
    with pytest.raises(ValidationError):
        decode("microgrid.capability_status.recorded", status.to_bytes().replace(b'{"x":1}', b'{"x":NaN}'))
