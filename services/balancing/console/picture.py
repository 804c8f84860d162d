"""The whole operator picture of one microgrid, from balancing's read models and the console's tables.

Everything read here is kept current by balancing's consumer (docs/console.md): nothing is asked of
another service at request time. Values a cycle decided (effective limit and its source, allocation,
binding constraint, fallback used) are the latest stored cycle's; telemetry freshness is judged at
the picture's `now` by the domain's own rule.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import asyncpg

from contracts.api.console import (
    BaselineLimit,
    ConnectorOutcome,
    ConsoleCycle,
    ConsoleEnvelope,
    ConsoleNode,
    NodeEnvelope,
    NodeTimeline,
    OperatorPicture,
    TimelineBand,
    Viewer,
)
from contracts.enums import AssetType, ConstraintType, LimitStatus, NodeType
from contracts.records import CycleResultRecord
from libs.domain import CycleResult, EffectiveConstraint, decode_cycle_output
from libs.domain.demand import TelemetryReading, telemetry_state
from libs.domain.envelopes import LIVE_STATUSES
from libs.domain.from_records import domain_envelope
from libs.platform.http import ApiError
from services.balancing.adapters import cycles, read_models
from services.balancing.adapters.read_models import MicrogridState
from services.balancing.console import store
from services.balancing.cycle_inputs import domain_reading
from services.balancing.views import _projection  # the status route's card, so both show the same freshness

CYCLES_SHOWN = 20
TIMELINE_HOURS = 6
_REPORTED = (ConstraintType.CONSUMPTION_CAP, ConstraintType.NET_CAP)  # as cycle_records reports a node's limit


def ref_sources(state: MicrogridState) -> dict[str, str]:
    """Constraint ref -> its kind, so a published cycle's binding refs can be named."""
    out: dict[str, str] = {str(x.node_limit_id): "NODE_LIMIT" for x in state.node_limits}
    out.update({str(e.envelope_id): e.envelope_type.value for e in state.envelopes})
    out.update({str(c): "CIRCUIT" for c in state.circuits})
    out.update({str(cp.control_point_id): "AGGREGATE_CAP" for cp in state.control_points})
    return out


def _connectors(record: CycleResultRecord, sources: dict[str, str]) -> list[ConnectorOutcome]:
    return [
        ConnectorOutcome(
            node_id=n.node_id,
            requested_watts=n.requested_watts,
            allocated_watts=n.allocated_watts,
            binding_constraint_ref=n.binding_constraint_ref,
            binding_source=sources.get(n.binding_constraint_ref or ""),
        )
        for n in record.allocation_summary.by_node
        if n.node_type is NodeType.CONNECTOR
    ]


def console_cycle(record: CycleResultRecord, sources: dict[str, str]) -> ConsoleCycle:
    return ConsoleCycle(
        cycle_id=record.cycle_id,
        ended_at=record.ended_at,
        outcome=record.outcome,
        reason_codes=record.reason_codes,
        source=record.audit.source.value,
        total_requested_watts=record.allocation_summary.total_requested_watts,
        total_allocated_watts=record.allocation_summary.total_allocated_watts,
        breaches=record.breaches,
        connectors=_connectors(record, sources),
    )


def _reported_limit(result: CycleResult | None) -> dict[str, EffectiveConstraint]:
    limits: dict[str, EffectiveConstraint] = {}
    if result is None:
        return limits
    for constraint_type in reversed(_REPORTED):
        for c in result.effective_constraints:
            if c.node_id is not None and c.constraint_type is constraint_type:
                limits[c.node_id] = c
    return limits


def _fallbacks(result: CycleResult | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for res in result.demand_resolutions if result else ():
        if res.node_id is not None and res.fallback_basis is not None and res.node_id not in out:
            out[res.node_id] = f"{res.fallback_basis.value} {res.effective_demand_watts} W"
    return out


def _depths(state: MicrogridState) -> dict[UUID, int]:
    parent = {n.node_id: n.parent_node_id for n in state.topology.nodes} if state.topology else {}
    depths: dict[UUID, int] = {}

    def depth(node_id: UUID) -> int:
        if node_id not in depths:
            up = parent.get(node_id)
            depths[node_id] = 0 if up is None or up not in parent else depth(up) + 1
        return depths[node_id]

    for node_id in parent:
        depth(node_id)
    return depths


def _ordered_nodes(state: MicrogridState) -> list:
    """Tree preorder (children by display_order, name), so the page can draw it as it comes."""
    nodes = state.topology.nodes if state.topology else []
    children: dict[UUID | None, list] = {}
    ids = {n.node_id for n in nodes}
    for n in nodes:
        children.setdefault(n.parent_node_id if n.parent_node_id in ids else None, []).append(n)
    for kids in children.values():
        kids.sort(key=lambda n: (n.display_order or 0, n.name, str(n.node_id)))
    out: list = []

    def walk(parent: UUID | None) -> None:
        for n in children.get(parent, []):
            out.append(n)
            walk(n.node_id)

    walk(None)
    return out


async def operator_picture(
    pool: asyncpg.Pool, microgrid_id: UUID, *, now: datetime, freshness_seconds: int, viewer: Viewer
) -> OperatorPicture:
    async with pool.acquire() as conn:
        state = await read_models.load_microgrid_state(conn, microgrid_id)
        if state.topology is None:
            raise ApiError.not_found(f"microgrid {microgrid_id} is not known to the console")
        latest = await cycles.latest_cycle(conn, microgrid_id)
        recent = await store.recent_cycles(conn, microgrid_id, CYCLES_SHOWN)
        transitions = await store.transitions(conn, microgrid_id)
        capacities = await store.circuit_capacities(conn, microgrid_id)
        timeline_nodes = [
            n for n in state.topology.nodes
            if n.node_type in (NodeType.GRID_CONNECTION, NodeType.CIRCUIT)
        ]
        points = await store.timeline(
            conn, microgrid_id, [n.node_id for n in timeline_nodes], now - timedelta(hours=TIMELINE_HOURS)
        )
    decided = decode_cycle_output(latest.output) if latest else None
    allocations = {str(n.node_id): n for n in latest.result.allocation_summary.by_node} if latest else {}
    bindings = {n.node_id: n.binding for n in decided.allocation_summary.nodes} if decided else {}
    limits = _reported_limit(decided)
    fallbacks = _fallbacks(decided)
    sources = ref_sources(state)
    readings = {r.node_id: r for r in state.readings}
    demands = {d.node_id: d for d in state.demands}
    depths = _depths(state)

    nodes: list[ConsoleNode] = []
    for n in _ordered_nodes(state):
        key = str(n.node_id)
        reading = readings.get(n.node_id)
        alloc = allocations.get(key)
        limit = limits.get(key)
        binding = bindings.get(key)
        metered = reading is not None or n.node_type is NodeType.CONNECTOR
        state_now = telemetry_state(domain_reading(reading) if reading else None, now, freshness_seconds)
        demand = demands.get(n.node_id)
        if reading is None and demand is not None:
            # A connector reports its request, not a meter reading: its freshness is the request's.
            state_now = telemetry_state(TelemetryReading(key, demand.observed_at, demand.requested_watts), now,
                                        freshness_seconds)
        nodes.append(
            ConsoleNode(
                node_id=n.node_id,
                parent_node_id=n.parent_node_id,
                name=n.name,
                node_type=n.node_type,
                depth=depths.get(n.node_id, 0),
                baseline_limits=[
                    BaselineLimit(node_limit_id=x.node_limit_id, constraint_type=x.constraint_type,
                                  limit_watts=x.limit_watts)
                    for x in state.node_limits if x.node_id == n.node_id and x.status is LimitStatus.ACTIVE
                ],
                envelopes=[
                    NodeEnvelope(envelope_id=e.envelope_id, envelope_type=e.envelope_type,
                                 constraint_type=e.constraint_type, status=e.status, source_ref=e.source_ref,
                                 current_limit_watts=domain_envelope(e).limit_at(now))
                    for e in state.envelopes
                    if e.node_id == n.node_id and e.status in LIVE_STATUSES
                ],
                effective_limit_watts=limit.limit_watts if limit else None,
                effective_limit_source=limit.binding.source.value if limit else None,
                effective_limit_ref=limit.binding.ref if limit else None,
                measured_watts=reading.measured_demand_watts if reading else None,
                measured_at=reading.observed_at if reading else None,
                telemetry_state=state_now.value if metered else None,
                fallback=fallbacks.get(key),
                requested_watts=alloc.requested_watts if alloc else None,
                allocated_watts=alloc.allocated_watts if alloc else None,
                binding_constraint_ref=binding.constraint_ref if binding else None,
                binding_source=binding.source.value if binding else None,
            )
        )

    envelopes = [
        ConsoleEnvelope(
            envelope_id=e.envelope_id, node_id=e.node_id, envelope_type=e.envelope_type,
            constraint_type=e.constraint_type, status=e.status, source_ref=e.source_ref,
            origin_control_point_id=e.origin_control_point_id, effective_from=e.effective_from,
            effective_to=e.effective_to, blocks=e.blocks, transitions=transitions.get(e.envelope_id, []),
        )
        for e in sorted(state.envelopes, key=lambda e: (e.effective_from, str(e.envelope_id)))
    ]
    since = now - timedelta(hours=TIMELINE_HOURS)
    timelines = [
        NodeTimeline(
            node_id=n.node_id, name=n.name, node_type=n.node_type,
            circuit_id=n.attached_asset_id if n.attached_asset_type is AssetType.CIRCUIT else None,
            points=points.get(n.node_id, []),
            bands=[
                TimelineBand(envelope_id=e.envelope_id, envelope_type=e.envelope_type, start=b.block_from,
                             end=b.block_to, limit_watts=b.target_watts if b.target_watts is not None
                             else b.max_limit_watts)
                for e in state.envelopes if e.node_id == n.node_id and e.status.value != "REJECTED"
                for b in e.blocks
                if b.block_to >= since and (b.target_watts is not None or b.max_limit_watts is not None)
            ],
        )
        for n in timeline_nodes
    ]
    return OperatorPicture(
        microgrid_id=microgrid_id,
        depot_id=state.topology.depot_id,
        topology_version=state.topology.version,
        timestamp=now,
        freshness_threshold_seconds=freshness_seconds,
        viewer=viewer,
        nodes=nodes,
        circuit_capacities=capacities,
        capability_status=[_projection(s, now) for s in state.capability_status],
        cycles=[console_cycle(r, sources) for r in recent],
        envelopes=envelopes,
        timelines=timelines,
    )


async def microgrid_of_depot(pool: asyncpg.Pool, depot_id: UUID) -> UUID:
    found = await pool.fetchval(
        "SELECT microgrid_id FROM microgrids WHERE depot_id = $1 ORDER BY version DESC LIMIT 1", depot_id
    )
    if found is None:
        raise ApiError.not_found(f"depot {depot_id} has no microgrid known to the console")
    return found


async def known_microgrids(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT microgrid_id, depot_id, version FROM microgrids ORDER BY updated_at DESC")
