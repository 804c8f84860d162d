"""The compatibility projection: effective feeder-circuit capacity of managed GRID_CONNECTION nodes.

On every receipt, withdrawal, lifecycle evaluation and forecast-health change, each affected node is
recomputed from scratch with the domain's effective-circuit-capacity resolution (envelope state at the
instant, forecast-source health, the circuit's default and fail-safe capacities). The baseline is never
restored from a saved copy (D-021): when no envelope applies, the recomputation yields it. A change of
the value emits `compatibility.effective_circuit_capacity_changed` once, in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from contracts.base import Message
from contracts.enums import NodeType, ProjectionTrigger, ReasonCode
from contracts.events import EffectiveCircuitCapacityChanged, EffectiveCircuitCapacityPayload
from contracts.records import LegacyCircuitRecord, MicrogridNodeRecord
from libs.domain.circuit_alias import AliasFailure, AliasScope, alias_rows, resolve_circuit_alias
from libs.domain.circuit_capacity import ForecastSource, resolve_effective_circuit_capacity
from libs.domain.effective_constraints import managed_circuit_id
from libs.domain.from_records import domain_envelope, domain_node
from libs.platform.messaging.unit_of_work import UnitOfWork
from services.envelope_lifecycle.adapters import (
    circuit_capacity,
    envelopes,
    forecast_sources,
    legacy_circuits,
    topology,
)
from services.envelope_lifecycle.lifecycle import PRODUCER
from services.envelope_lifecycle.settings import EnvelopeLifecycleSettings

log = logging.getLogger(__name__)

# ---- which circuit a node projects to (D-022) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeederScope:
    node: MicrogridNodeRecord
    circuit: LegacyCircuitRecord


@dataclass(frozen=True, slots=True)
class ScopeFailure:
    reason_code: ReasonCode
    detail: str


def feeder_scope(
    node: MicrogridNodeRecord | None,
    *,
    nodes_on_circuit: list[MicrogridNodeRecord],
    circuit: LegacyCircuitRecord | None,
) -> FeederScope | ScopeFailure | None:
    """The one feeder circuit `node` projects to; None when the node is not a projection scope at all.

    Only a managed (resync-built) first-level GRID_CONNECTION node projects; any other node's envelopes
    apply in balancing only. A managed node that maps to no usable feeder circuit, or to one that other
    nodes claim too, fails with its reason code instead of guessing. `nodes_on_circuit` are all nodes
    the read model knows with the node's circuit attached.
    """
    if node is None or not node.managed:
        return None
    circuit_id = managed_circuit_id(domain_node(node))
    if circuit_id is None:
        if node.parent_node_id is None and node.node_type is NodeType.GRID_CONNECTION:
            return ScopeFailure(
                ReasonCode.LIMIT_SCOPE_TRANSLATION_FAILED, f"managed node {node.node_id} has no attached feeder circuit"
            )
        return None
    candidates = {n.node_id: n for n in [node, *nodes_on_circuit]}
    rows = alias_rows([domain_node(n) for n in candidates.values()], circuit_id)
    mapping = resolve_circuit_alias(circuit_id, rows, AliasScope.LIMIT)
    if isinstance(mapping, AliasFailure):
        return ScopeFailure(mapping.reason_code, f"circuit {circuit_id} maps to nodes {', '.join(mapping.node_ids)}")
    if circuit is None or circuit.removed:
        return ScopeFailure(
            ReasonCode.LIMIT_SCOPE_TRANSLATION_FAILED,
            f"no legacy circuit record for circuit {circuit_id} (default and fail-safe capacity unknown)",
        )
    if circuit.parent_circuit_id is not None:
        return ScopeFailure(
            ReasonCode.LIMIT_SCOPE_TRANSLATION_FAILED,
            f"circuit {circuit_id} is not a feeder circuit (its parent is {circuit.parent_circuit_id})",
        )
    return FeederScope(node, circuit)


# ---- the use case -----------------------------------------------------------------------------------


async def project_nodes(
    uow: UnitOfWork,
    *,
    settings: EnvelopeLifecycleSettings,
    microgrid_id: UUID,
    node_ids: Iterable[UUID],
    at: datetime,
    trigger: ProjectionTrigger,
    causation: Message | None = None,
) -> list[EffectiveCircuitCapacityPayload]:
    """Recompute the projection of each node at `at`; emit and return the values that changed."""
    changed = []
    for node_id in sorted(set(node_ids)):
        payload = await _project_node(uow, settings, microgrid_id, node_id, at, trigger)
        if payload is not None:
            await uow.publish(
                EffectiveCircuitCapacityChanged.create(payload, producer=PRODUCER, occurred_at=at, causation=causation)
            )
            changed.append(payload)
    return changed


async def _project_node(
    uow: UnitOfWork,
    settings: EnvelopeLifecycleSettings,
    microgrid_id: UUID,
    node_id: UUID,
    at: datetime,
    trigger: ProjectionTrigger,
) -> EffectiveCircuitCapacityPayload | None:
    conn = uow.conn
    node = await topology.node(conn, microgrid_id, node_id)
    circuit_id = node.attached_asset_id if node else None
    scope = feeder_scope(
        node,
        nodes_on_circuit=await topology.nodes_attached_to(conn, circuit_id) if circuit_id else [],
        circuit=await legacy_circuits.circuit(conn, circuit_id) if circuit_id else None,
    )
    if scope is None:
        return None
    if isinstance(scope, ScopeFailure):
        log.warning("projection of node %s failed: %s %s", node_id, scope.reason_code, scope.detail)
        await circuit_capacity.record_failure(conn, microgrid_id, node_id, scope.reason_code, scope.detail, at)
        return None
    await circuit_capacity.clear_failure(conn, microgrid_id, node_id)

    live = [e.record() for e in await envelopes.live_on_node(conn, microgrid_id, node_id)]
    sources = await forecast_sources.of_microgrid(conn, microgrid_id)
    resolution = resolve_effective_circuit_capacity(
        circuit_id=str(scope.circuit.circuit_id),
        node_id=str(node_id),
        envelopes=[domain_envelope(r) for r in live if r is not None],
        forecast_sources=[
            ForecastSource(str(s.control_point_id), s.health, str(s.node_id) if s.node_id else None) for s in sources
        ],
        default_capacity_watts=scope.circuit.default_capacity_watts,
        fail_safe_capacity_watts=scope.circuit.fail_safe_capacity_watts,
        now=at,
        gap_policy=settings.forecast_gap_policy,
    )
    last = await circuit_capacity.last_projected(conn, scope.circuit.circuit_id)
    # With nothing projected yet, the circuit-facing value is the circuit's own default capacity.
    previous = last.effective_capacity_watts if last else scope.circuit.default_capacity_watts
    payload = EffectiveCircuitCapacityPayload(
        microgrid_id=microgrid_id,
        node_id=node_id,
        circuit_id=scope.circuit.circuit_id,
        effective_capacity_watts=resolution.effective_capacity_watts,
        projection_trigger=trigger,
        previous_capacity_watts=previous,
        basis=resolution.basis,
        binding_envelope_id=_uuid_or_none(resolution.binding_envelope_id),
        forecast_source_health=resolution.forecast_health,
        evaluated_at=at,
    )
    await circuit_capacity.save(conn, payload)
    return payload if payload.effective_capacity_watts != previous else None


def _uuid_or_none(value: str | None) -> UUID | None:
    return UUID(value) if value is not None else None
