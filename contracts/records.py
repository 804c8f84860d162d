"""Records of the spec's Contract Definitions, as they travel in events and HTTP payloads.

Events carry whole records (ARCHITECTURE.md section 3) so a consumer can keep its own read model
from the topics alone.
"""

from __future__ import annotations

from typing import Any, Self
from uuid import UUID

from pydantic import Field, model_validator

from contracts.base import (
    INT32_MAX,
    Contract,
    Flag,
    Int32,
    JsonDocument,
    Name,
    Ref,
    SignedWatts,
    Text100,
    Text200,
    Text500,
    Text2000,
    UtcDateTime,
    Version,
    Watts,
    whole_number,
)
from contracts.enums import (
    AssetType,
    CapabilityState,
    CapabilityType,
    ConstraintType,
    ControlSource,
    CycleOutcome,
    EnvelopeStatus,
    EnvelopeType,
    LimitSourceType,
    LimitStatus,
    NodeStatus,
    NodeType,
    ReasonCode,
    RebalanceSource,
    SourceMode,
)

PositiveInt32 = whole_number(ge=1, le=INT32_MAX)


class MicrogridRecord(Contract):
    microgrid_id: UUID
    depot_id: UUID
    version: Version


class MicrogridNodeFields(Contract):
    """What an operator authors about a node; the record adds what the system owns."""

    node_id: UUID
    parent_node_id: UUID | None = None
    name: Name
    node_type: NodeType
    attached_asset_type: AssetType | None = None
    attached_asset_id: UUID | None = None
    status: NodeStatus = NodeStatus.ACTIVE
    display_order: Int32 = 0

    @model_validator(mode="after")
    def _asset_pair(self) -> Self:
        if (self.attached_asset_type is None) != (self.attached_asset_id is None):
            raise ValueError("attached_asset_type and attached_asset_id are set together or not at all")
        return self


class MicrogridNodeRecord(MicrogridNodeFields):
    microgrid_id: UUID
    managed: Flag = Field(
        default=False,
        description="True for first-level GRID_CONNECTION nodes built by depot resync from a feeder circuit.",
    )


class NodeLimitRecord(Contract):
    node_limit_id: UUID
    microgrid_id: UUID
    node_id: UUID
    constraint_type: ConstraintType
    limit_watts: Watts
    source_type: LimitSourceType
    status: LimitStatus = LimitStatus.ACTIVE
    updated_at: UtcDateTime


class FallbackRuleRecord(Contract):
    """How a node's demand is derived when telemetry is stale or missing (spec: fallback demand rules)."""

    node_id: UUID
    fallback_demand_watts: Watts | None = Field(
        default=None, description="Assumed demand of the node when measurement is unusable."
    )
    assume_requested: Flag = Field(
        default=True, description="For connectors: assume they draw what they requested (conservative)."
    )


class CapabilityControlPointRecord(Contract):
    control_point_id: UUID
    microgrid_id: UUID
    node_id: UUID | None = None
    capability_type: CapabilityType
    state: CapabilityState
    control_source: ControlSource
    description: Text2000 = ""
    local_config: JsonDocument | None = None
    external_config_type: Text200 | None = None
    external_config_ref: Text500 | None = None
    schedule_ref: Text200 | None = None
    active: Flag = True

    @model_validator(mode="after")
    def _schedule_ref_only_local(self) -> CapabilityControlPointRecord:
        # D-015 / FR-022
        if self.schedule_ref is not None and self.control_source != ControlSource.LOCAL:
            raise ValueError("schedule_ref is valid only when control_source=LOCAL (FR-022)")
        return self


class CapabilityStatusEventRecord(Contract):
    status_event_id: UUID
    microgrid_id: UUID
    control_point_id: UUID
    node_id: UUID | None = None
    capability_type: CapabilityType
    operational_status: Name
    reported_by: ControlSource
    observed_at: UtcDateTime
    ingested_at: UtcDateTime
    source_event_ref: Text200 | None = None
    status_detail: JsonDocument | None = None


class CapabilityStatusProjectionRecord(Contract):
    microgrid_id: UUID
    control_point_id: UUID
    node_id: UUID | None = None
    capability_type: CapabilityType
    latest_operational_status: str
    reported_by: ControlSource
    last_observed_at: UtcDateTime
    last_ingested_at: UtcDateTime
    freshness_seconds: int
    status_detail: dict[str, Any] | None = None


class EnvelopeBlockRecord(Contract):
    block_from: UtcDateTime
    block_to: UtcDateTime
    min_limit_watts: Watts | None = None
    max_limit_watts: Watts | None = None
    target_watts: Watts | None = None


class OperatingEnvelopeRecord(Contract):
    envelope_id: UUID
    microgrid_id: UUID
    origin_control_point_id: UUID | None = None
    node_id: UUID
    envelope_type: EnvelopeType
    constraint_type: ConstraintType
    effective_from: UtcDateTime
    effective_to: UtcDateTime
    source_ref: Ref
    status: EnvelopeStatus
    received_at: UtcDateTime
    blocks: list[EnvelopeBlockRecord] = Field(default_factory=list)
    rejection_reason: str | None = None


class LegacyCircuitRecord(Contract):
    """A circuit of the legacy circuit domain, as its registry publishes it (ARCHITECTURE.md section 9)."""

    circuit_id: UUID
    depot_id: UUID
    parent_circuit_id: UUID | None = None
    name: Name
    default_capacity_watts: Watts
    fail_safe_capacity_watts: Watts
    removed: Flag = False


class TelemetryReadingRecord(Contract):
    node_id: UUID
    measured_demand_watts: SignedWatts | None = Field(default=None, description="Consumption through the node")
    measured_generation_watts: SignedWatts | None = Field(
        default=None, description="Local generation (POWER_SOURCE)"
    )
    observed_at: UtcDateTime
    valid: Flag = True


class ConnectorDemandRecord(Contract):
    node_id: UUID
    requested_watts: Watts
    min_watts: Watts = 0
    priority: Int32 = Field(default=0, description="Higher is served first when minimums do not all fit")
    weight: PositiveInt32 = Field(default=1, description="Share weight in max-min fair allocation")
    session_ref: Text100 | None = None
    observed_at: UtcDateTime


class DemandResolutionRecord(Contract):
    node_id: UUID | None = Field(description="Checked scope; null for the aggregate (whole microgrid)")
    source_mode: SourceMode
    effective_demand_watts: int
    measured_demand_watts: int | None = None
    observed_at: UtcDateTime | None = None
    freshness_threshold_seconds: int
    fallback_inputs: dict[str, Any] | None = None


class BreachRecord(Contract):
    breach_id: UUID
    microgrid_id: UUID
    cycle_id: UUID
    node_id: UUID | None = None
    constraint_ref: str = Field(description="node_limit_id, envelope_id, circuit capacity or aggregate cap ref")
    constraint_type: ConstraintType
    reason_code: ReasonCode
    effective_demand_watts: int
    resolved_limit_watts: int
    source_mode: SourceMode
    detected_at: UtcDateTime


class NodeAllocationRecord(Contract):
    node_id: UUID
    node_type: NodeType
    allocated_watts: int
    requested_watts: int
    effective_limit_watts: int | None = None
    binding_constraint_ref: str | None = None


class AllocationSummaryRecord(Contract):
    total_allocated_watts: int
    total_requested_watts: int
    by_node: list[NodeAllocationRecord] = Field(default_factory=list)


class CycleAuditRecord(Contract):
    actor: str
    source: RebalanceSource
    correlation_id: str
    request_key: str | None = None
    policy_versions: dict[str, Any] = Field(default_factory=dict)
    inputs_digest: str


class CycleResultRecord(Contract):
    """The spec's Cycle Result Payload."""

    cycle_id: UUID
    microgrid_id: UUID
    node_id: UUID | None = None
    topology_version: int
    started_at: UtcDateTime
    ended_at: UtcDateTime
    outcome: CycleOutcome
    reason_codes: list[ReasonCode]
    allocation_summary: AllocationSummaryRecord
    breaches: list[BreachRecord] = Field(default_factory=list)
    breaches_total: int | None = Field(
        default=None,
        ge=0,
        description="Set when `breaches` lists only the first of the cycle's breaches (cycle_completed embeds at "
        "most MAX_EMBEDDED_BREACHES, so the event fits its budget on the largest trees): how many there were. "
        "Every breach is also its own microgrid.constraint_breach_detected event and is kept with the cycle.",
    )
    audit: CycleAuditRecord

    def with_breaches_capped(self, limit: int) -> CycleResultRecord:
        """This record with at most `limit` breaches (the first, in the cycle's deterministic order)."""
        if len(self.breaches) <= limit:
            return self
        return self.model_copy(update={"breaches": self.breaches[:limit], "breaches_total": len(self.breaches)})
