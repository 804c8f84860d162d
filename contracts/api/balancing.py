"""HTTP payloads of the balancing service: rebalance, cycle reads and microgrid status."""

from __future__ import annotations

from uuid import UUID

from pydantic import Field

from contracts.base import Contract, Name, PositiveVersion, UtcDateTime
from contracts.enums import ConstraintType, EnvelopeStatus, EnvelopeType, ProjectionTrigger, ReasonCode
from contracts.records import BreachRecord, CapabilityStatusProjectionRecord, CycleResultRecord


class RebalanceRequest(Contract):
    """POST /api/microgrid/{microgrid_id}/rebalance body (all optional; an empty body is a whole-microgrid cycle)."""

    request_key: Name | None = Field(
        default=None,
        description="Idempotency key (or the Idempotency-Key header): the same key returns the same cycle.",
    )
    node_id: UUID | None = Field(default=None, description="Optional subtree scope (D-001)")
    expected_topology_version: PositiveVersion | None = Field(
        default=None, description="Balance only on this topology version or a newer one"
    )


class CycleResultResponse(Contract):
    """The spec's 200 answer: microgrid_id, timestamp, result."""

    microgrid_id: UUID
    timestamp: UtcDateTime
    result: CycleResultRecord


class RebalanceAcceptedResponse(Contract):
    """202: the request is recorded but its cycle did not finish within the wait; poll with the key."""

    microgrid_id: UUID
    timestamp: UtcDateTime
    request_key: str
    status: str = "PENDING"


class ActiveEnvelopeSummary(Contract):
    envelope_id: UUID
    node_id: UUID
    envelope_type: EnvelopeType
    constraint_type: ConstraintType
    status: EnvelopeStatus
    effective_from: UtcDateTime
    effective_to: UtcDateTime
    source_ref: str
    current_limit_watts: int | None = Field(description="Limit of the block covering the status timestamp")


class CircuitCapacitySummary(Contract):
    node_id: UUID
    circuit_id: UUID
    effective_capacity_watts: int
    projection_trigger: ProjectionTrigger
    evaluated_at: UtcDateTime


class MicrogridStatusResponse(Contract):
    """GET /api/microgrid/{microgrid_id}/status: latest cycle, breaches, envelopes, capability status."""

    microgrid_id: UUID
    timestamp: UtcDateTime
    topology_version: int | None
    latest_cycle: CycleResultRecord | None
    reason_codes: list[ReasonCode] = Field(description="The latest cycle's, in the spec's precedence order")
    open_breaches: list[BreachRecord] = Field(description="Breaches of the latest cycle")
    active_envelopes: list[ActiveEnvelopeSummary]
    effective_circuit_capacities: list[CircuitCapacitySummary]
    capability_status: list[CapabilityStatusProjectionRecord]
