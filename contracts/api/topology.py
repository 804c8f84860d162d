"""HTTP request and response payloads of the topology service (see docs/topology.md).

Records (nodes, limits, control points, status events) are the ones in `contracts.records`; this module
only adds what the HTTP surface needs around them: write requests, views and the spec's 200 shape
(`microgrid_id`, `timestamp`, `result`).
"""

from __future__ import annotations

from typing import Generic, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from contracts.base import (
    MAX_NODES,
    Contract,
    Flag,
    JsonObject,
    Name,
    Text200,
    Text500,
    Text2000,
    UtcDateTime,
    Version,
    Watts,
)
from contracts.enums import (
    AssetType,
    CapabilityState,
    CapabilityType,
    ConstraintType,
    ControlSource,
    LimitSourceType,
    LimitStatus,
    NodeStatus,
    NodeType,
)
from contracts.events import EffectiveCircuitCapacityPayload
from contracts.records import (
    CapabilityControlPointRecord,
    CapabilityStatusEventRecord,
    CapabilityStatusProjectionRecord,
    FallbackRuleRecord,
    MicrogridNodeFields,
    MicrogridNodeRecord,
    MicrogridRecord,
    NodeLimitRecord,
    OperatingEnvelopeRecord,
)

ResultT = TypeVar("ResultT")


class MicrogridResponse(BaseModel, Generic[ResultT]):
    """The spec's 200 body: the microgrid it concerns, when it was answered, and the result."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    microgrid_id: UUID
    timestamp: UtcDateTime
    result: ResultT


# ---- topology ----------------------------------------------------------------------------------


class TopologyNodeInput(MicrogridNodeFields):
    """One node of the desired tree. `managed` is not accepted: only resync manages nodes."""


class TopologyReplaceRequest(Contract):
    """POST /api/microgrid/{microgrid_id}/topology: the full desired node list (replace)."""

    version: Version = Field(description="The topology version this edit was authored on")
    nodes: list[TopologyNodeInput] = Field(max_length=MAX_NODES)
    fallback_rules: list[FallbackRuleRecord] = Field(default_factory=list, max_length=MAX_NODES)
    depot_id: UUID | None = Field(
        default=None,
        description="Only to create the depot's microgrid with this microgrid_id on a first write (version 0)",
    )


class TopologyTreeNode(MicrogridNodeRecord):
    children: list[TopologyTreeNode] = Field(default_factory=list)


class TopologyView(Contract):
    """The physical topology view (tree): first-level nodes with their subtrees, in display order."""

    microgrid: MicrogridRecord
    nodes: list[TopologyTreeNode]
    fallback_rules: list[FallbackRuleRecord] = Field(default_factory=list)


class TopologyWriteResult(Contract):
    microgrid: MicrogridRecord
    changed: bool
    added_node_ids: list[UUID] = Field(default_factory=list)
    removed_node_ids: list[UUID] = Field(default_factory=list)
    updated_node_ids: list[UUID] = Field(default_factory=list)
    deactivated_node_limit_ids: list[UUID] = Field(default_factory=list)
    deactivated_control_point_ids: list[UUID] = Field(default_factory=list)


class ResyncResult(TopologyWriteResult):
    created: bool = Field(description="True when this resync created the depot's microgrid")
    feeder_circuit_ids: list[UUID] = Field(description="The depot's top-level feeder circuits resync used")


class ResourceQuery(Contract):
    """Which nodes a resource set collects; every given filter must match (empty filters match all)."""

    subtree_root_node_id: UUID | None = None
    node_types: list[NodeType] = Field(default_factory=list)
    attached_asset_types: list[AssetType] = Field(default_factory=list)
    statuses: list[NodeStatus] = Field(default_factory=list)


class ResourceSet(Contract):
    """One resource set of the operational collection view, its nodes in tree preorder."""

    key: str = Field(description="node_type:<TYPE>, subtree:<node_id>:node_type:<TYPE>, or query")
    query: ResourceQuery
    node_ids: list[UUID]


class CollectionView(Contract):
    """The operational collection view (FR-018): resource sets, by default by node type overall and per
    grid-connection subtree; with query filters, the one set they select."""

    microgrid: MicrogridRecord
    resource_sets: list[ResourceSet]


# ---- node limits -------------------------------------------------------------------------------


class NodeLimitInput(Contract):
    node_limit_id: UUID | None = Field(default=None, description="Omit to create; give to update that limit")
    node_id: UUID
    constraint_type: ConstraintType
    limit_watts: Watts
    source_type: LimitSourceType
    status: LimitStatus = LimitStatus.ACTIVE


class NodeLimitsRequest(Contract):
    """POST /api/microgrid/{microgrid_id}/node-limits: create or update limits, all or nothing."""

    limits: list[NodeLimitInput] = Field(min_length=1, max_length=1_000)


class NodeLimitsWriteResult(Contract):
    limits: list[NodeLimitRecord] = Field(description="The written limits, in request order")
    replaced: list[NodeLimitRecord] = Field(
        default_factory=list, description="Previously active limits deactivated by a new one for the same pair"
    )


class NodeLimitsView(Contract):
    limits: list[NodeLimitRecord]


# ---- capability control points and status ------------------------------------------------------


class ControlPointInput(Contract):
    """POST /api/microgrid/{microgrid_id}/control-points/{control_point_id}: the whole record (upsert)."""

    node_id: UUID | None = Field(default=None, description="Null: whole microgrid; else the subtree root node")
    capability_type: CapabilityType
    state: CapabilityState
    control_source: ControlSource
    description: Text2000 = ""
    local_config: JsonObject | None = None
    external_config_type: Text200 | None = None
    external_config_ref: Text500 | None = None
    schedule_ref: Text200 | None = Field(default=None, description="Only for control_source=LOCAL")
    active: Flag = True


class ControlPointWriteResult(Contract):
    control_point: CapabilityControlPointRecord
    created: bool
    changed: bool


class ControlPointView(Contract):
    control_point: CapabilityControlPointRecord
    status: CapabilityStatusProjectionRecord | None = None


class ControlPointsView(Contract):
    control_points: list[ControlPointView]


class StatusEventInput(Contract):
    """One capability status observation. A JSON boolean status is normalised to ON/OFF (raw value kept)."""

    operational_status: StrictBool | Name = Field(description="Free-form text, or a raw controller boolean")
    reported_by: ControlSource | None = Field(default=None, description="Defaults to the control point's source")
    observed_at: UtcDateTime
    source_event_ref: Name = Field(description="Upstream event identity: the idempotency key within a microgrid")
    status_detail: JsonObject | None = None


class DepotStatusEventInput(StatusEventInput):
    """Whole-microgrid status by depot: name the control point, or its capability type (node_id null)."""

    control_point_id: UUID | None = None
    capability_type: CapabilityType | None = None


class StatusEventRecorded(Contract):
    event: CapabilityStatusEventRecord
    replayed: bool = Field(description="True when source_event_ref was already recorded: the original is returned")


class StatusHistoryPage(Contract):
    events: list[CapabilityStatusEventRecord]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page; null at the end")


# ---- depot -------------------------------------------------------------------------------------


class DepotMicrogridView(Contract):
    """GET /api/depot/{depot_id}/microgrid: tree, active envelopes and effective circuit capacities."""

    microgrid: MicrogridRecord
    nodes: list[TopologyTreeNode]
    fallback_rules: list[FallbackRuleRecord] = Field(default_factory=list)
    active_envelopes: list[OperatingEnvelopeRecord]
    effective_circuit_capacities: list[EffectiveCircuitCapacityPayload]
