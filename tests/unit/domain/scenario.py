"""Small builders for domain test scenarios (a reference depot and its records)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts.enums import (
    AssetType,
    ConstraintType,
    EnvelopeStatus,
    EnvelopeType,
    LimitSourceType,
    NodeStatus,
    NodeType,
)
from libs.domain.cycle_inputs import ConnectorDemand, CycleInputs
from libs.domain.demand import FallbackRule, TelemetryReading
from libs.domain.envelopes import EnvelopeBlock, OperatingEnvelope
from libs.domain.limits import NodeLimit
from libs.domain.topology import Microgrid, MicrogridNode

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
MG = "mg-1"
MICROGRID = Microgrid(MG, "depot-1", 7)


def node(
    node_id: str,
    parent: str | None,
    node_type: NodeType,
    *,
    asset: tuple[AssetType, str] | None = None,
    status: NodeStatus = NodeStatus.ACTIVE,
    microgrid_id: str = MG,
) -> MicrogridNode:
    return MicrogridNode(
        node_id=node_id,
        microgrid_id=microgrid_id,
        parent_node_id=parent,
        name=node_id.upper(),
        node_type=node_type,
        attached_asset_type=asset[0] if asset else None,
        attached_asset_id=asset[1] if asset else None,
        status=status,
    )


def grid_connection(node_id: str, circuit_id: str | None = None) -> MicrogridNode:
    return node(node_id, None, NodeType.GRID_CONNECTION, asset=(AssetType.CIRCUIT, circuit_id) if circuit_id else None)


def connector(node_id: str, parent: str, status: NodeStatus = NodeStatus.ACTIVE) -> MicrogridNode:
    return node(node_id, parent, NodeType.CONNECTOR, status=status)


def depot_nodes() -> list[MicrogridNode]:
    """gc1 (feeder-1) -> c1 -> cp1 -> k1, k2 ; gc1 -> cp2 -> k3."""
    return [
        grid_connection("gc1", "feeder-1"),
        node("c1", "gc1", NodeType.CIRCUIT),
        node("cp1", "c1", NodeType.CHARGE_POINT),
        connector("k1", "cp1"),
        connector("k2", "cp1"),
        node("cp2", "gc1", NodeType.CHARGE_POINT),
        connector("k3", "cp2"),
    ]


def limit(
    node_id: str,
    watts: int,
    constraint_type: ConstraintType = ConstraintType.CONSUMPTION_CAP,
    *,
    ref: str | None = None,
    source: LimitSourceType = LimitSourceType.MANUAL,
) -> NodeLimit:
    return NodeLimit(ref or f"nl-{node_id}-{constraint_type.value}", MG, node_id, constraint_type, watts, source)


def reading(
    node_id: str, watts: int = 0, *, age_s: float = 0, generation: int = 0, valid: bool = True
) -> TelemetryReading:
    return TelemetryReading(node_id, NOW - timedelta(seconds=age_s), watts, generation, valid)


def demand(node_id: str, watts: int, min_watts: int = 0, *, priority: int = 0, weight: int = 1) -> ConnectorDemand:
    return ConnectorDemand(node_id, watts, min_watts, priority, weight)


def rule(node_id: str, assumed: int, margin: int = 0) -> FallbackRule:
    return FallbackRule(node_id, assumed, margin)


def envelope(
    envelope_id: str,
    node_id: str,
    envelope_type: EnvelopeType,
    *blocks: tuple[int, int, int],
    status: EnvelopeStatus = EnvelopeStatus.ACTIVE,
    constraint_type: ConstraintType = ConstraintType.CONSUMPTION_CAP,
    origin: str | None = None,
    window: tuple[int, int] = (-120, 120),
) -> OperatingEnvelope:
    """Blocks are (from_minutes, to_minutes, target_watts) relative to NOW."""
    minutes = timedelta(minutes=1)
    return OperatingEnvelope(
        envelope_id=envelope_id,
        microgrid_id=MG,
        node_id=node_id,
        envelope_type=envelope_type,
        constraint_type=constraint_type,
        effective_from=NOW + window[0] * minutes,
        effective_to=NOW + window[1] * minutes,
        status=status,
        blocks=tuple(EnvelopeBlock(NOW + a * minutes, NOW + b * minutes, target_watts=w) for a, b, w in blocks),
        origin_control_point_id=origin,
        source_ref=f"src-{envelope_id}",
    )


def cycle_inputs(nodes: list[MicrogridNode] | None = None, **kwargs: object) -> CycleInputs:
    return CycleInputs(
        cycle_id=str(kwargs.pop("cycle_id", "cycle-1")),
        microgrid=kwargs.pop("microgrid", MICROGRID),  # type: ignore[arg-type]
        nodes=tuple(depot_nodes() if nodes is None else nodes),
        now=NOW,
        **kwargs,  # type: ignore[arg-type]
    )


def allocated(result: object, node_id: str) -> int:
    for n in result.allocation_summary.nodes:  # type: ignore[attr-defined]
        if n.node_id == node_id:
            return n.allocated_watts
    raise KeyError(node_id)


def node_result(result: object, node_id: str):  # noqa: ANN201
    for n in result.allocation_summary.nodes:  # type: ignore[attr-defined]
        if n.node_id == node_id:
            return n
    raise KeyError(node_id)
