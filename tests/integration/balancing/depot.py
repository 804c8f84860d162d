"""A depot described as the upstream events balancing consumes, published straight to its topics.

Tests (and benchmarks/balancing_service.py) build a tree here, then publish topology_updated,
node_limit_updated, control points, legacy circuits and telemetry with a plain producer, as the
owning services would, without running those services.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from contracts import events as ev
from contracts.base import Message
from contracts.enums import (
    AssetType,
    CapabilityState,
    CapabilityType,
    ConstraintType,
    ControlSource,
    LimitSourceType,
    NodeType,
    RebalanceSource,
)
from contracts.records import (
    ConnectorDemandRecord,
    FallbackRuleRecord,
    MicrogridNodeRecord,
    TelemetryReadingRecord,
)

PRODUCER = "test-feed"


@dataclass
class Depot:
    microgrid_id: UUID = field(default_factory=uuid.uuid4)
    depot_id: UUID = field(default_factory=uuid.uuid4)
    version: int = 1
    nodes: list[MicrogridNodeRecord] = field(default_factory=list)
    limits: dict[UUID, int] = field(default_factory=dict)  # node_id -> CONSUMPTION_CAP watts
    limit_ids: dict[UUID, UUID] = field(default_factory=dict)
    fallback_rules: list[FallbackRuleRecord] = field(default_factory=list)
    circuits: dict[UUID, tuple[int, int]] = field(default_factory=dict)  # circuit_id -> (default, fail-safe)
    aggregate_cap_watts: int | None = None
    lb_control_point_id: UUID = field(default_factory=uuid.uuid4)

    def add(
        self,
        name: str,
        node_type: NodeType,
        parent: UUID | None = None,
        *,
        cap_watts: int | None = None,
        asset: AssetType | None = None,
    ) -> UUID:
        node_id = uuid.uuid4()
        self.nodes.append(
            MicrogridNodeRecord(
                node_id=node_id,
                microgrid_id=self.microgrid_id,
                parent_node_id=parent,
                name=name,
                node_type=node_type,
                attached_asset_type=asset,
                attached_asset_id=uuid.uuid4() if asset else None,
                managed=False,
            )
        )
        if cap_watts is not None:
            self.limits[node_id] = cap_watts
            self.limit_ids[node_id] = uuid.uuid4()
        return node_id

    def grid_connection(
        self, name: str, *, cap_watts: int | None = None, circuit: tuple[int, int] | None = None
    ) -> UUID:
        """A first-level GRID_CONNECTION; with `circuit` (default, fail-safe W) a managed feeder node."""
        if circuit is None:
            return self.add(name, NodeType.GRID_CONNECTION, cap_watts=cap_watts)
        node_id = self.add(name, NodeType.GRID_CONNECTION, cap_watts=cap_watts, asset=AssetType.CIRCUIT)
        node = self.nodes[-1]
        self.nodes[-1] = node.model_copy(update={"managed": True})
        assert node.attached_asset_id is not None
        self.circuits[node.attached_asset_id] = circuit
        return node_id

    def circuit_of(self, node_id: UUID) -> UUID:
        node = next(n for n in self.nodes if n.node_id == node_id)
        assert node.attached_asset_id is not None
        return node.attached_asset_id

    def connector(self, name: str, parent: UUID) -> UUID:
        """A connector under ``parent``; under a charge point of its own when ``parent`` is not one
        (connectors sit only under charge points)."""
        if next(n for n in self.nodes if n.node_id == parent).node_type is not NodeType.CHARGE_POINT:
            parent = self.add(f"{name}-CP", NodeType.CHARGE_POINT, parent)
        return self.add(name, NodeType.CONNECTOR, parent, asset=AssetType.CONNECTOR)

    def fallback(self, node_id: UUID, watts: int) -> None:
        self.fallback_rules.append(FallbackRuleRecord(node_id=node_id, fallback_demand_watts=watts))

    # ---- the events -------------------------------------------------------------------------------

    def setup_events(self, now: datetime) -> list[Message]:
        """Legacy circuits, topology, node limits and the LOAD_BALANCING control point."""
        out: list[Message] = []
        for circuit_id, (default, fail_safe) in self.circuits.items():
            out.append(
                ev.LegacyCircuitUpdated.create(
                    ev.LegacyCircuitUpdatedPayload(
                        circuit_id=circuit_id,
                        depot_id=self.depot_id,
                        name=f"feeder {circuit_id}",
                        default_capacity_watts=default,
                        fail_safe_capacity_watts=fail_safe,
                    ),
                    producer=PRODUCER,
                    occurred_at=now,
                )
            )
        out.append(self.topology_event(now))
        for node_id, watts in self.limits.items():
            out.append(
                ev.NodeLimitUpdated.create(
                    ev.NodeLimitUpdatedPayload(
                        node_limit_id=self.limit_ids[node_id],
                        microgrid_id=self.microgrid_id,
                        node_id=node_id,
                        constraint_type=ConstraintType.CONSUMPTION_CAP,
                        limit_watts=watts,
                        source_type=LimitSourceType.PHYSICAL_DERIVED,
                        updated_at=now,
                        updated_by="test",
                    ),
                    producer=PRODUCER,
                    occurred_at=now,
                )
            )
        if self.aggregate_cap_watts is not None:
            out.append(
                self.control_point_event(
                    now, CapabilityType.LOAD_BALANCING, {"aggregate_cap_watts": self.aggregate_cap_watts},
                    control_point_id=self.lb_control_point_id,
                )
            )
        return out

    def topology_event(self, now: datetime) -> ev.TopologyUpdated:
        return ev.TopologyUpdated.create(
            ev.TopologyUpdatedPayload(
                microgrid_id=self.microgrid_id,
                depot_id=self.depot_id,
                version=self.version,
                updated_by="test",
                nodes=self.nodes,
                fallback_rules=self.fallback_rules,
            ),
            producer=PRODUCER,
            occurred_at=now,
        )

    def control_point_event(
        self,
        now: datetime,
        capability: CapabilityType,
        local_config: dict[str, Any],
        *,
        control_point_id: UUID | None = None,
    ) -> ev.CapabilityControlPointUpdated:
        return ev.CapabilityControlPointUpdated.create(
            ev.CapabilityControlPointUpdatedPayload(
                control_point_id=control_point_id or uuid.uuid4(),
                microgrid_id=self.microgrid_id,
                node_id=None,
                capability_type=capability,
                state=CapabilityState.ENABLED,
                control_source=ControlSource.LOCAL,
                local_config=local_config,
                updated_by="test",
            ),
            producer=PRODUCER,
            occurred_at=now,
        )

    def telemetry(
        self,
        observed_at: datetime,
        *,
        meters: dict[UUID, int] | None = None,
        demands: dict[UUID, int] | None = None,
        min_watts: int = 0,
    ) -> ev.TelemetryReported:
        """Meter readings (W through the node) and connector requests (W), all observed at `observed_at`."""
        return ev.TelemetryReported.create(
            ev.TelemetryReportedPayload(
                microgrid_id=self.microgrid_id,
                readings=[
                    TelemetryReadingRecord(node_id=n, measured_demand_watts=w, observed_at=observed_at)
                    for n, w in (meters or {}).items()
                ],
                demands=[
                    ConnectorDemandRecord(node_id=n, requested_watts=w, min_watts=min_watts, observed_at=observed_at)
                    for n, w in (demands or {}).items()
                ],
            ),
            producer=PRODUCER,
            occurred_at=observed_at,
        )

    def rebalance(
        self,
        now: datetime,
        *,
        request_key: str | None = None,
        node_id: UUID | None = None,
        source: RebalanceSource = RebalanceSource.SCHEDULER,
        expected_topology_version: int | None = None,
        circuit_id: UUID | None = None,
    ) -> ev.RebalanceRequested:
        key = request_key or f"test:{uuid.uuid4()}"
        return ev.RebalanceRequested.create(
            ev.RebalanceRequestedPayload(
                microgrid_id=self.microgrid_id,
                node_id=node_id,
                source=source,
                correlation_id=key,
                request_key=key,
                requested_by="test-scheduler",
                expected_topology_version=expected_topology_version,
                circuit_id=circuit_id,
            ),
            producer=PRODUCER,
            occurred_at=now,
            correlation_id=key,
        )
