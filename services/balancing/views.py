"""Operator reads from balancing's own tables: one cycle, and the microgrid's status."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from contracts.api.balancing import (
    ActiveEnvelopeSummary,
    CircuitCapacitySummary,
    MicrogridStatusResponse,
)
from contracts.records import CapabilityStatusEventRecord, CapabilityStatusProjectionRecord
from libs.domain.envelopes import LIVE_STATUSES
from libs.domain.from_records import domain_envelope
from libs.platform.http import ApiError
from services.balancing.adapters import cycles, read_models
from services.balancing.adapters.cycles import StoredCycle


async def cycle_of_microgrid(pool: asyncpg.Pool, microgrid_id: UUID, cycle_id: UUID) -> StoredCycle:
    found = await cycles.cycle_by_id(pool, cycle_id, with_inputs=False)
    if found is None or found.result.microgrid_id != microgrid_id:
        raise ApiError.not_found(f"cycle {cycle_id} of microgrid {microgrid_id} not found")
    return found


async def microgrid_status(pool: asyncpg.Pool, microgrid_id: UUID, now: datetime) -> MicrogridStatusResponse:
    async with pool.acquire() as conn:
        state = await read_models.load_microgrid_state(conn, microgrid_id)
        latest = await cycles.latest_cycle(conn, microgrid_id)
    if state.topology is None and latest is None:
        raise ApiError.not_found(f"microgrid {microgrid_id} is not known to balancing")
    result = latest.result if latest else None
    return MicrogridStatusResponse(
        microgrid_id=microgrid_id,
        timestamp=now,
        topology_version=state.topology.version if state.topology else None,
        latest_cycle=result,
        reason_codes=list(result.reason_codes) if result else [],
        open_breaches=list(result.breaches) if result else [],
        active_envelopes=[
            ActiveEnvelopeSummary(
                envelope_id=e.envelope_id,
                node_id=e.node_id,
                envelope_type=e.envelope_type,
                constraint_type=e.constraint_type,
                status=e.status,
                effective_from=e.effective_from,
                effective_to=e.effective_to,
                source_ref=e.source_ref,
                current_limit_watts=domain_envelope(e).limit_at(now),
            )
            for e in state.envelopes
            if e.status in LIVE_STATUSES
        ],
        effective_circuit_capacities=[
            CircuitCapacitySummary(
                node_id=c.node_id,
                circuit_id=c.circuit_id,
                effective_capacity_watts=c.capacity_watts,
                projection_trigger=c.trigger,
                evaluated_at=c.evaluated_at,
            )
            for c in sorted(state.circuit_capacities.values(), key=lambda c: str(c.node_id))
        ],
        capability_status=[_projection(s, now) for s in state.capability_status],
    )


def _projection(status: CapabilityStatusEventRecord, now: datetime) -> CapabilityStatusProjectionRecord:
    return CapabilityStatusProjectionRecord(
        microgrid_id=status.microgrid_id,
        control_point_id=status.control_point_id,
        node_id=status.node_id,
        capability_type=status.capability_type,
        latest_operational_status=status.operational_status,
        reported_by=status.reported_by,
        last_observed_at=status.observed_at,
        last_ingested_at=status.ingested_at,
        freshness_seconds=max(0, int((now - status.observed_at).total_seconds())),
        status_detail=status.status_detail,
    )
