"""What one balancing cycle decided, with enough provenance to explain and replay it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from contracts.enums import ConstraintType, CycleOutcome, NodeType, ReasonCode, RebalanceSource, SourceMode
from libs.domain.allocation import AllocationState
from libs.domain.circuit_capacity import CircuitCapacityResolution
from libs.domain.demand import DemandResolution
from libs.domain.effective_constraints import EffectiveConstraint
from libs.domain.limits import ConstraintSource
from libs.domain.topology import TopologyViolation


@dataclass(frozen=True, slots=True)
class Binding:
    """The cap that limited a connector: on ``node_id`` (None: the aggregate)."""

    node_id: str | None
    constraint_type: ConstraintType
    constraint_ref: str
    source: ConstraintSource
    limit_watts: int
    headroom_watts: int  # what the cap left for controllable load once uncontrolled load was counted


@dataclass(frozen=True, slots=True)
class NodeAllocation:
    node_id: str
    node_type: NodeType
    requested_watts: int  # connectors: the request; other nodes: the sum requested in the subtree
    allocated_watts: int
    uncontrolled_watts: int  # load in the subtree this cycle does not control
    state: AllocationState | None = None  # connectors only
    min_watts: int = 0
    binding: Binding | None = None


@dataclass(frozen=True, slots=True)
class AllocationSummary:
    total_requested_watts: int
    total_allocated_watts: int
    nodes: tuple[NodeAllocation, ...]  # the checked nodes, in tree preorder


@dataclass(frozen=True, slots=True)
class Breach:
    breach_id: str
    microgrid_id: str
    node_id: str | None  # None: the microgrid-wide aggregate cap
    constraint_type: ConstraintType
    constraint_ref: str
    reason_code: ReasonCode
    effective_demand_watts: int
    resolved_limit_watts: int
    source_mode: SourceMode
    detected_at: datetime

    @property
    def excess_watts(self) -> int:
        return self.effective_demand_watts - self.resolved_limit_watts


@dataclass(frozen=True, slots=True)
class CycleAudit:
    rebalance_source: RebalanceSource | None
    correlation_id: str | None
    legacy_alias_applied: bool


@dataclass(frozen=True, slots=True)
class CycleResult:
    cycle_id: str
    microgrid_id: str
    node_id: str | None
    topology_version: int
    started_at: datetime
    ended_at: datetime
    evaluated_at: datetime
    outcome: CycleOutcome
    reason_codes: tuple[ReasonCode, ...]
    allocation_summary: AllocationSummary
    breaches: tuple[Breach, ...]
    demand_resolutions: tuple[DemandResolution, ...]
    effective_constraints: tuple[EffectiveConstraint, ...]
    circuit_capacities: tuple[CircuitCapacityResolution, ...]
    topology_violations: tuple[TopologyViolation, ...]
    expected_topology_version: int | None
    missing_inputs: tuple[str, ...]  # scopes with neither usable telemetry nor a fallback rule
    safe_action_taken: str | None
    audit: CycleAudit
    inputs_digest: str
