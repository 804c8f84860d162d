"""HTTP payloads of the operator console (a role of the balancing service): the operator picture and the what-if."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import Field, model_validator

from contracts.base import Contract, UtcDateTime, Watts
from contracts.enums import (
    ConstraintType,
    CycleOutcome,
    EnvelopeStatus,
    EnvelopeType,
    NodeType,
    ProjectionTrigger,
    ReasonCode,
)
from contracts.records import BreachRecord, CapabilityStatusProjectionRecord, EnvelopeBlockRecord

MAX_WHAT_IF_BLOCKS = 96  # a day of 15-minute blocks


class Viewer(Contract):
    """Who is looking, so the page shows write controls only to `operator:write` tokens."""

    subject: str
    scopes: list[str]
    can_write: bool


class BaselineLimit(Contract):
    node_limit_id: UUID
    constraint_type: ConstraintType
    limit_watts: int


class NodeEnvelope(Contract):
    envelope_id: UUID
    envelope_type: EnvelopeType
    constraint_type: ConstraintType
    status: EnvelopeStatus
    source_ref: str
    current_limit_watts: int | None = Field(description="Limit of the block covering now; null: not binding now")


class ConsoleNode(Contract):
    """One node of the tree, with what limits it and what it got."""

    node_id: UUID
    parent_node_id: UUID | None
    name: str
    node_type: NodeType
    depth: int
    baseline_limits: list[BaselineLimit]
    envelopes: list[NodeEnvelope]
    effective_limit_watts: int | None = Field(description="Most restrictive limit in the latest cycle")
    effective_limit_source: str | None = Field(description="Where it came from: NODE_LIMIT, TOU_LIMIT, ...")
    effective_limit_ref: str | None = None
    measured_watts: int | None = None
    measured_at: UtcDateTime | None = None
    telemetry_state: Literal["FRESH", "STALE", "MISSING", "INVALID"] | None = Field(
        default=None, description="At the picture's timestamp (meters and connectors only)"
    )
    fallback: str | None = Field(default=None, description="What the latest cycle used instead of a stale reading")
    requested_watts: int | None = None
    allocated_watts: int | None = None
    binding_constraint_ref: str | None = None
    binding_source: str | None = None


class CircuitCapacityView(Contract):
    node_id: UUID
    circuit_id: UUID
    effective_capacity_watts: int
    previous_capacity_watts: int | None
    reason: ProjectionTrigger = Field(description="What changed it: ENVELOPE_CHANGE, ENVELOPE_LIFECYCLE, ...")
    basis: str = Field(description="Where the value comes from: PRIMARY_FORECAST, FALLBACK_FORECAST, GAP_POLICY, "
                       "FAIL_SAFE, TOU_LIMIT, ...")
    evaluated_at: UtcDateTime


class ConnectorOutcome(Contract):
    node_id: UUID
    requested_watts: int
    allocated_watts: int
    binding_constraint_ref: str | None = None
    binding_source: str | None = None


class ConsoleCycle(Contract):
    cycle_id: UUID
    ended_at: UtcDateTime
    outcome: CycleOutcome
    reason_codes: list[ReasonCode]
    source: str
    total_requested_watts: int
    total_allocated_watts: int
    breaches: list[BreachRecord]
    connectors: list[ConnectorOutcome]


class NodeOutcome(Contract):
    node_id: UUID
    requested_watts: int
    allocated_watts: int
    effective_limit_watts: int | None


class ConsoleChange(Contract):
    """The data of a `changed` server-sent event: the latest cycle, so the page shows it before reloading."""

    latest_cycle: ConsoleCycle | None
    nodes: list[NodeOutcome] = Field(description="The latest cycle's allocation per checked node")


class EnvelopeTransition(Contract):
    transition: str
    previous_status: EnvelopeStatus | None
    status: EnvelopeStatus
    at: UtcDateTime


class ConsoleEnvelope(Contract):
    envelope_id: UUID
    node_id: UUID
    envelope_type: EnvelopeType
    constraint_type: ConstraintType
    status: EnvelopeStatus
    source_ref: str
    origin_control_point_id: UUID | None
    effective_from: UtcDateTime
    effective_to: UtcDateTime
    blocks: list[EnvelopeBlockRecord]
    transitions: list[EnvelopeTransition]


class TimelinePoint(Contract):
    at: UtcDateTime
    requested_watts: int
    drawn_watts: int | None
    allocated_watts: int
    effective_limit_watts: int | None


class TimelineBand(Contract):
    envelope_id: UUID
    envelope_type: EnvelopeType
    start: UtcDateTime
    end: UtcDateTime
    limit_watts: int


class NodeTimeline(Contract):
    """One grid connection or feeder circuit over the last hours, one point per cycle."""

    node_id: UUID
    name: str
    node_type: NodeType
    circuit_id: UUID | None
    points: list[TimelinePoint]
    bands: list[TimelineBand]


class OperatorPicture(Contract):
    """GET /api/operator/microgrids/{microgrid_id}: the whole operator picture of one depot's microgrid."""

    microgrid_id: UUID
    depot_id: UUID
    topology_version: int
    timestamp: UtcDateTime
    freshness_threshold_seconds: int
    viewer: Viewer
    nodes: list[ConsoleNode]
    circuit_capacities: list[CircuitCapacityView]
    capability_status: list[CapabilityStatusProjectionRecord]
    cycles: list[ConsoleCycle]
    envelopes: list[ConsoleEnvelope]
    timelines: list[NodeTimeline]


class MicrogridEntry(Contract):
    microgrid_id: UUID
    depot_id: UUID
    topology_version: int


class MicrogridDirectory(Contract):
    """GET /api/operator/microgrids: the microgrids the console knows, newest first."""

    timestamp: UtcDateTime
    microgrids: list[MicrogridEntry]


class CycleExplanation(Contract):
    cycle_id: UUID
    microgrid_id: UUID
    explanation: str = Field(description="What `mgrid cycle explain` prints")
    connectors: list[ConnectorOutcome]


# ---- what-if -------------------------------------------------------------------------------------


class ProposedNodeLimit(Contract):
    """A baseline limit on a node; replaces the node's active limit of that constraint type."""

    node_id: UUID
    constraint_type: ConstraintType = ConstraintType.CONSUMPTION_CAP
    limit_watts: Watts = Field(le=10**10)


class ProposedBlock(Contract):
    block_from: UtcDateTime
    block_to: UtcDateTime
    max_limit_watts: Watts | None = Field(default=None, le=10**10)
    target_watts: Watts | None = Field(default=None, le=10**10)

    @model_validator(mode="after")
    def _ordered_and_limited(self) -> ProposedBlock:
        if self.block_from >= self.block_to:
            raise ValueError("block_from must be before block_to")
        if self.max_limit_watts is None and self.target_watts is None:
            raise ValueError("a block needs max_limit_watts or target_watts")
        return self


class ProposedEnvelope(Contract):
    node_id: UUID
    envelope_type: Literal[EnvelopeType.OVERRIDE, EnvelopeType.TOU_LIMIT, EnvelopeType.FORECAST] = (
        EnvelopeType.OVERRIDE
    )
    constraint_type: ConstraintType = ConstraintType.CONSUMPTION_CAP
    blocks: list[ProposedBlock] = Field(min_length=1, max_length=MAX_WHAT_IF_BLOCKS)


class ProposedTouPeriod(Contract):
    start: UtcDateTime
    end: UtcDateTime
    limit_watts: Watts = Field(le=10**10)

    @model_validator(mode="after")
    def _ordered(self) -> ProposedTouPeriod:
        if self.start >= self.end:
            raise ValueError("period start must be before its end")
        return self


class ProposedTouLimit(Contract):
    """A legacy TOU schedule for a feeder circuit; replaces the circuit's current TOU limits, as the alias does."""

    circuit_id: UUID
    periods: list[ProposedTouPeriod] = Field(min_length=1, max_length=MAX_WHAT_IF_BLOCKS)


class WhatIfRequest(Contract):
    """POST /api/operator/microgrids/{microgrid_id}/what-if: exactly one proposed change."""

    node_limit: ProposedNodeLimit | None = None
    envelope: ProposedEnvelope | None = None
    tou_limit: ProposedTouLimit | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> WhatIfRequest:
        if sum(x is not None for x in (self.node_limit, self.envelope, self.tou_limit)) != 1:
            raise ValueError("propose exactly one of node_limit, envelope, tou_limit")
        return self

    @property
    def kind(self) -> str:
        return "node_limit" if self.node_limit else "envelope" if self.envelope else "tou_limit"


class CycleSketch(Contract):
    outcome: CycleOutcome
    reason_codes: list[ReasonCode]
    total_requested_watts: int
    total_allocated_watts: int
    breaches: list[BreachRecord]


class ConnectorChange(Contract):
    node_id: UUID
    name: str
    requested_watts: int
    before_watts: int
    after_watts: int
    delta_watts: int
    change: Literal["GAINS", "LOSES", "SAME"]
    binding_after: str | None = Field(description="Binding constraint ref after the change")


class WhatIfResponse(Contract):
    """The cycle the change would produce, beside the cycle the current inputs produce. Nothing stored."""

    microgrid_id: UUID
    timestamp: UtcDateTime
    preview_id: UUID = Field(description="The audit row of this preview")
    kind: str
    before: CycleSketch
    after: CycleSketch
    connectors: list[ConnectorChange]
    stored: bool = False
    published: bool = False
