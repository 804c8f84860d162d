"""One model per event of the spec's Event Dictionary, plus the events the spec implies but does not name.

Each payload carries at least the spec's "Key Payload" and the whole record a consumer needs for its
own read model. Topic names are the event names (see contracts.topics).
"""

from __future__ import annotations

from typing import Any, ClassVar, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from contracts.base import MAX_NODES, Contract, Flag, Message, Name, PositiveVersion, UtcDateTime, Version, Watts
from contracts.enums import (
    AliasPath,
    EnvelopeStatus,
    ForecastSourceHealth,
    ProjectionTrigger,
    ReasonCode,
    RebalanceSource,
    SourceMode,
)
from contracts.records import (
    BreachRecord,
    CapabilityControlPointRecord,
    CapabilityStatusEventRecord,
    ConnectorDemandRecord,
    CycleResultRecord,
    DemandResolutionRecord,
    FallbackRuleRecord,
    MicrogridNodeRecord,
    NodeLimitRecord,
    OperatingEnvelopeRecord,
    TelemetryReadingRecord,
)

# ---- topology service -------------------------------------------------------------------------


class TopologyUpdatedPayload(Contract):
    microgrid_id: UUID
    depot_id: UUID
    version: PositiveVersion
    updated_by: Name
    nodes: list[MicrogridNodeRecord] = Field(description="The whole tree at this version")
    fallback_rules: list[FallbackRuleRecord] = Field(default_factory=list)


class TopologyUpdated(Message):
    EVENT_TYPE: ClassVar[str] = "microgrid.topology_updated"
    payload: TopologyUpdatedPayload


class NodeLimitUpdatedPayload(NodeLimitRecord):
    updated_by: Name


class NodeLimitUpdated(Message):
    EVENT_TYPE: ClassVar[str] = "microgrid.node_limit_updated"
    payload: NodeLimitUpdatedPayload


class CapabilityControlPointUpdatedPayload(CapabilityControlPointRecord):
    updated_by: Name


class CapabilityControlPointUpdated(Message):
    EVENT_TYPE: ClassVar[str] = "microgrid.capability_control_point_updated"
    payload: CapabilityControlPointUpdatedPayload


class CapabilityStatusRecorded(Message):
    EVENT_TYPE: ClassVar[str] = "microgrid.capability_status.recorded"
    payload: CapabilityStatusEventRecord


# ---- envelope-lifecycle service ---------------------------------------------------------------


class OperatingEnvelopeReceived(Message):
    """Operating envelope accepted by the write port (status PENDING or ACTIVE)."""

    EVENT_TYPE: ClassVar[str] = "microgrid.operating_envelope_received"
    payload: OperatingEnvelopeRecord


class OperatingEnvelopeRejectedPayload(Contract):
    microgrid_id: UUID
    envelope_id: UUID
    node_id: UUID | None = None
    source_ref: str
    reason_code: ReasonCode
    violated_rule: str
    details: dict[str, Any] = Field(default_factory=dict)
    envelope: OperatingEnvelopeRecord | None = None


class OperatingEnvelopeRejected(Message):
    """An envelope failed validation: stored as REJECTED with its reason, never silently dropped."""

    EVENT_TYPE: ClassVar[str] = "microgrid.operating_envelope_rejected"
    payload: OperatingEnvelopeRejectedPayload


class OperatingEnvelopeLifecycleEvaluatedPayload(Contract):
    envelope_id: UUID
    microgrid_id: UUID
    origin_control_point_id: UUID | None = None
    node_id: UUID
    status: EnvelopeStatus
    previous_status: EnvelopeStatus
    evaluated_at: UtcDateTime
    timer_kind: str = Field(description="BLOCK_BOUNDARY, EXPIRY, WITHDRAWAL or HEALTH_CHANGE")
    envelope: OperatingEnvelopeRecord
    forecast_source_health: ForecastSourceHealth | None = Field(
        default=None, description="Health of the envelope's origin forecast source, when it has one"
    )


class OperatingEnvelopeLifecycleEvaluated(Message):
    EVENT_TYPE: ClassVar[str] = "microgrid.operating_envelope_lifecycle_evaluated"
    payload: OperatingEnvelopeLifecycleEvaluatedPayload


class EffectiveCircuitCapacityPayload(Contract):
    microgrid_id: UUID
    node_id: UUID
    circuit_id: UUID
    effective_capacity_watts: Watts
    projection_trigger: ProjectionTrigger
    previous_capacity_watts: Watts | None = None
    basis: str = Field(description="Why this value: FORECAST, FALLBACK, FAIL_SAFE, GAP_POLICY, TOU_LIMIT, ...")
    binding_envelope_id: UUID | None = None
    forecast_source_health: ForecastSourceHealth | None = None
    evaluated_at: UtcDateTime


class EffectiveCircuitCapacityChanged(Message):
    EVENT_TYPE: ClassVar[str] = "compatibility.effective_circuit_capacity_changed"
    payload: EffectiveCircuitCapacityPayload


class EffectiveCircuitCapacityReconciled(Message):
    EVENT_TYPE: ClassVar[str] = "compatibility.effective_circuit_capacity_reconciled"
    payload: EffectiveCircuitCapacityPayload


# ---- balancing service ------------------------------------------------------------------------


class RebalanceRequestedPayload(Contract):
    microgrid_id: UUID
    node_id: UUID | None = Field(default=None, description="Optional subtree scope (D-001)")
    source: RebalanceSource
    correlation_id: Name
    request_key: Name = Field(description="Idempotency key: one cycle per key")
    requested_by: Name
    expected_topology_version: Version | None = None
    circuit_id: UUID | None = Field(default=None, description="Legacy alias that led here, if any")


class RebalanceRequested(Message):
    EVENT_TYPE: ClassVar[str] = "microgrid.rebalance_requested"
    payload: RebalanceRequestedPayload


class DemandResolvedPayload(Contract):
    microgrid_id: UUID
    cycle_id: UUID
    source_mode: SourceMode = Field(description="FALLBACK_DERIVED when any checked scope used fallback")
    inputs_used: list[DemandResolutionRecord]


class DemandResolved(Message):
    EVENT_TYPE: ClassVar[str] = "microgrid.demand_resolved"
    payload: DemandResolvedPayload


class ConstraintBreachDetected(Message):
    EVENT_TYPE: ClassVar[str] = "microgrid.constraint_breach_detected"
    payload: BreachRecord


# 100 breaches at the contract's longest values weigh ~45 KB: with 1,500 nodes allocated the event stays
# inside its 768 KiB budget (tests/unit/contracts/test_limits.py builds that worst case).
MAX_EMBEDDED_BREACHES = 100


class CycleCompleted(Message):
    EVENT_TYPE: ClassVar[str] = "microgrid.cycle_completed"
    payload: CycleResultRecord

    @field_validator("payload")
    @classmethod
    def _breaches_capped(cls, payload: CycleResultRecord) -> CycleResultRecord:
        return payload.with_breaches_capped(MAX_EMBEDDED_BREACHES)


# ---- views: a heavy message read for a few fields (contracts.topics.VIEWS) -----------------------
# A view is not a contract of its own: the topic's one model stays the definition, and a view is never
# published. Its fields are the model's, with the same bounds; what it does not name is skipped without
# being turned into Python objects, which is most of the cost of reading a large message.


class _ViewOf(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class CycleAuditSummary(_ViewOf):
    """CycleAuditRecord's keys: who asked for the cycle."""

    correlation_id: str
    request_key: str | None = None


class CycleResultSummary(_ViewOf):
    """CycleResultRecord without its allocations and breaches (a row per node: tens of KB)."""

    cycle_id: UUID
    microgrid_id: UUID
    audit: CycleAuditSummary


class CycleCompletedSummary(Message):
    """microgrid.cycle_completed for a consumer that keeps only the few cycles it asked for (the
    compatibility adapter): the summary is validated on receipt, the whole message on `complete()`."""

    EVENT_TYPE: ClassVar[str] = CycleCompleted.EVENT_TYPE
    payload: CycleResultSummary
    _raw: bytes = PrivateAttr(default=b"")

    @classmethod
    def decode(cls, raw: bytes | str) -> Self:
        view = cls.model_validate_json(raw)
        view._raw = raw.encode() if isinstance(raw, str) else bytes(raw)
        return view

    def complete(self) -> CycleCompleted:
        """The whole message, parsed and validated now (raises pydantic.ValidationError)."""
        if not self._raw:
            raise ValueError("a CycleCompletedSummary built without decode() has no message to complete")
        return CycleCompleted.decode(self._raw)


# ---- telemetry (implied by the spec: Telemetry Ingest actor) ----------------------------------


class TelemetryReportedPayload(Contract):
    microgrid_id: UUID
    readings: list[TelemetryReadingRecord] = Field(default_factory=list, max_length=MAX_NODES)
    demands: list[ConnectorDemandRecord] = Field(default_factory=list, max_length=MAX_NODES)


class TelemetryReported(Message):
    EVENT_TYPE: ClassVar[str] = "microgrid.telemetry_reported"
    payload: TelemetryReportedPayload


# ---- compatibility adapter --------------------------------------------------------------------


class CircuitAliasAppliedPayload(Contract):
    circuit_id: UUID
    microgrid_id: UUID
    node_id: UUID
    path: AliasPath
    legacy_ref: str = Field(description="Legacy event id, HTTP request key or schedule ref translated")
    rebalance_request_key: str | None = None


class CircuitAliasApplied(Message):
    EVENT_TYPE: ClassVar[str] = "compatibility.circuit_alias_applied"
    payload: CircuitAliasAppliedPayload


class CircuitAliasFailedPayload(Contract):
    circuit_id: UUID
    path: AliasPath
    reason_code: ReasonCode
    legacy_ref: str
    details: dict[str, Any] = Field(default_factory=dict)


class CircuitAliasFailed(Message):
    """The alias-failure event carrying CIRCUIT_ALIAS_NOT_RESOLVABLE (Compatibility Matrix)."""

    EVENT_TYPE: ClassVar[str] = "compatibility.circuit_alias_failed"
    payload: CircuitAliasFailedPayload


class SchedulerDispatchFailedPayload(Contract):
    circuit_id: UUID | None = None
    microgrid_id: UUID | None = None
    schedule_ref: str
    scheduled_for: UtcDateTime
    reason_code: ReasonCode
    action_taken: str = "CYCLE_SKIPPED"


class SchedulerDispatchFailed(Message):
    """Auditable scheduler error: a periodic job could not be dispatched and its cycle was skipped."""

    EVENT_TYPE: ClassVar[str] = "compatibility.scheduler_dispatch_failed"
    payload: SchedulerDispatchFailedPayload


# ---- legacy inputs the adapter consumes -------------------------------------------------------


class LegacyRebalanceRequestedPayload(Contract):
    circuit_id: UUID
    requested_by: Name = "legacy"


class LegacyRebalanceRequested(Message):
    """`load_balancer.rebalance_requested(circuit_id)`: the legacy event; event_id is its idempotency key."""

    EVENT_TYPE: ClassVar[str] = "load_balancer.rebalance_requested"
    payload: LegacyRebalanceRequestedPayload


class ScheduledRebalancePeriodicPayload(Contract):
    """`ScheduledEventRebalancePeriodic{circuit_id}` or `{microgrid_id}`: exactly one of the two."""

    circuit_id: UUID | None = None
    microgrid_id: UUID | None = None
    schedule_ref: Name
    scheduled_for: UtcDateTime

    @model_validator(mode="after")
    def _exactly_one_target(self) -> ScheduledRebalancePeriodicPayload:
        if (self.circuit_id is None) == (self.microgrid_id is None):
            raise ValueError("exactly one of circuit_id and microgrid_id must be given")
        return self


class ScheduledRebalancePeriodic(Message):
    EVENT_TYPE: ClassVar[str] = "scheduler.rebalance_periodic"
    payload: ScheduledRebalancePeriodicPayload


class LegacyCircuitUpdatedPayload(Contract):
    circuit_id: UUID
    depot_id: UUID
    parent_circuit_id: UUID | None = None
    name: Name
    default_capacity_watts: Watts
    fail_safe_capacity_watts: Watts
    removed: Flag = False


class LegacyCircuitUpdated(Message):
    """A legacy circuit record from the circuit registry (the simulator plays it)."""

    EVENT_TYPE: ClassVar[str] = "legacy_circuit.circuit_updated"
    payload: LegacyCircuitUpdatedPayload
