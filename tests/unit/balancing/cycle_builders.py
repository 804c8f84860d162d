"""Builders of a small depot's read models, request and cycle inputs, shared by balancing's unit tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from uuid import UUID

from contracts.enums import (
    AssetType,
    CapabilityState,
    CapabilityType,
    ConstraintType,
    ControlSource,
    EnvelopeStatus,
    EnvelopeType,
    LimitSourceType,
    NodeType,
    RebalanceSource,
)
from contracts.events import RebalanceRequestedPayload
from contracts.records import (
    CapabilityControlPointRecord,
    ConnectorDemandRecord,
    EnvelopeBlockRecord,
    FallbackRuleRecord,
    LegacyCircuitRecord,
    MicrogridNodeRecord,
    NodeLimitRecord,
    OperatingEnvelopeRecord,
    TelemetryReadingRecord,
)
from services.balancing.adapters.read_models import MicrogridState, TopologySnapshot
from services.balancing.cycle_inputs import CycleSettings, assemble_cycle_inputs

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)
MG, DEPOT, CIRCUIT = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
GC, METER, K1, K2 = (uuid.uuid4() for _ in range(4))
LB = uuid.uuid4()


def node(node_id: UUID, node_type: NodeType, parent: UUID | None = None, asset: tuple | None = None):
    asset_type, asset_id = asset or (None, None)
    return MicrogridNodeRecord(
        node_id=node_id, microgrid_id=MG, parent_node_id=parent, name=str(node_id)[:8], node_type=node_type,
        attached_asset_type=asset_type, attached_asset_id=asset_id,
    )


def tou(watts: int) -> OperatingEnvelopeRecord:
    return OperatingEnvelopeRecord(
        envelope_id=uuid.uuid4(), microgrid_id=MG, node_id=GC, envelope_type=EnvelopeType.TOU_LIMIT,
        constraint_type=ConstraintType.CONSUMPTION_CAP, effective_from=NOW - timedelta(hours=1),
        effective_to=NOW + timedelta(hours=1), source_ref="tou", status=EnvelopeStatus.ACTIVE, received_at=NOW,
        blocks=[EnvelopeBlockRecord(block_from=NOW - timedelta(hours=1), block_to=NOW + timedelta(hours=1),
                                    target_watts=watts)],
    )


def control_point(config: dict, *, capability=CapabilityType.LOAD_BALANCING, node_id=None, active=True):
    return CapabilityControlPointRecord(
        control_point_id=LB if capability is CapabilityType.LOAD_BALANCING else uuid.uuid4(), microgrid_id=MG,
        node_id=node_id, capability_type=capability, state=CapabilityState.ENABLED,
        control_source=ControlSource.LOCAL, local_config=config, active=active,
    )


def state(**overrides) -> MicrogridState:
    base = dict(
        topology=TopologySnapshot(
            microgrid_id=MG, depot_id=DEPOT, version=3,
            nodes=[
                node(GC, NodeType.GRID_CONNECTION, asset=(AssetType.CIRCUIT, CIRCUIT)),
                node(METER, NodeType.CHARGE_POINT, GC),  # connectors sit under a charge point
                node(K1, NodeType.CONNECTOR, METER),
                node(K2, NodeType.CONNECTOR, METER),
            ],
            fallback_rules=[FallbackRuleRecord(node_id=METER, fallback_demand_watts=None)],
        ),
        node_limits=[NodeLimitRecord(
            node_limit_id=uuid.uuid4(), microgrid_id=MG, node_id=METER, constraint_type=ConstraintType.CONSUMPTION_CAP,
            limit_watts=90_000, source_type=LimitSourceType.MANUAL, updated_at=NOW,
        )],
        control_points=[control_point({"aggregate_cap_watts": 80_000})],
        envelopes=[tou(55_000)],
        circuits={CIRCUIT: LegacyCircuitRecord(
            circuit_id=CIRCUIT, depot_id=DEPOT, name="feeder", default_capacity_watts=100_000,
            fail_safe_capacity_watts=40_000,
        )},
        readings=[TelemetryReadingRecord(node_id=METER, measured_demand_watts=5_000, observed_at=NOW)],
        demands=[ConnectorDemandRecord(node_id=k, requested_watts=30_000, observed_at=NOW) for k in (K1, K2)],
    )
    return MicrogridState(**{**base, **overrides})


def request(**overrides) -> RebalanceRequestedPayload:
    fields = dict(microgrid_id=MG, source=RebalanceSource.SCHEDULER, correlation_id="c", request_key="k",
                  requested_by="scheduler")
    return RebalanceRequestedPayload(**{**fields, **overrides})


def inputs(s: MicrogridState | None = None, **req):
    return assemble_cycle_inputs(
        state=s or state(), request=request(**req), cycle_id=uuid.uuid4(), now=NOW, rotation=0,
        settings=CycleSettings(freshness_threshold_seconds=60),
    )
