"""The service's reads, for operators and adapters: envelopes, their lifecycle history, projected
capacities, forecast-source health. Reads never change state (FR-032): statuses are what the scheduler
last set."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from contracts.api.envelope_lifecycle import (
    EffectiveCircuitCapacityView,
    EnvelopeHistory,
    EnvelopeLifecycleEntry,
    ForecastSourceView,
    OperatingEnvelopeView,
    ProjectionFailureView,
)
from contracts.enums import EnvelopeStatus
from services.envelope_lifecycle.adapters import circuit_capacity, envelopes, forecast_sources
from services.envelope_lifecycle.adapters.envelopes import StoredEnvelope


def envelope_view(env: StoredEnvelope) -> OperatingEnvelopeView:
    return OperatingEnvelopeView(
        envelope_id=env.envelope_id,
        microgrid_id=env.microgrid_id,
        origin_control_point_id=env.origin_control_point_id,
        node_id=env.node_id,
        envelope_type=env.envelope_type,
        constraint_type=env.constraint_type,
        effective_from=env.effective_from,
        effective_to=env.effective_to,
        source_ref=env.source_ref,
        status=env.status,
        received_at=env.received_at,
        blocks=list(env.blocks),
        rejection_reason=env.rejection_reason,
        violated_rule=env.violated_rule,
        rejection_details=env.rejection_details or None,
        submitted_by=env.submitted_by,
        claimed_by=env.claimed_by,
    )


async def list_envelopes(
    pool: asyncpg.Pool,
    *,
    microgrid_id: UUID,
    node_id: UUID | None = None,
    statuses: tuple[EnvelopeStatus, ...] | None = None,
) -> list[OperatingEnvelopeView]:
    async with pool.acquire() as conn:
        found = await envelopes.search(conn, microgrid_id, node_id=node_id, statuses=statuses)
    return [envelope_view(e) for e in found]


async def envelope_history(pool: asyncpg.Pool, *, microgrid_id: UUID, envelope_id: UUID) -> EnvelopeHistory | None:
    async with pool.acquire() as conn:
        env = await envelopes.by_id(conn, envelope_id)
        if env is None or env.microgrid_id != microgrid_id:
            return None
        entries = await envelopes.history(conn, envelope_id)
    return EnvelopeHistory(
        envelope=envelope_view(env),
        entries=[
            EnvelopeLifecycleEntry(
                envelope_id=e.envelope_id,
                transition=e.transition,
                previous_status=e.previous_status,
                status=e.status,
                evaluated_at=e.evaluated_at,
                timer_id=e.timer_id,
                detail=e.detail,
            )
            for e in entries
        ],
    )


async def effective_circuit_capacities(pool: asyncpg.Pool, *, microgrid_id: UUID) -> EffectiveCircuitCapacityView:
    async with pool.acquire() as conn:
        circuits = await circuit_capacity.of_microgrid(conn, microgrid_id)
        failures = await circuit_capacity.failures(conn, microgrid_id)
    return EffectiveCircuitCapacityView(
        circuits=circuits,
        failures=[ProjectionFailureView(**dict(f)) for f in failures],
    )


async def forecast_source_health(pool: asyncpg.Pool, *, microgrid_id: UUID) -> list[ForecastSourceView]:
    async with pool.acquire() as conn:
        sources = await forecast_sources.of_microgrid(conn, microgrid_id)
    return [
        ForecastSourceView(
            control_point_id=s.control_point_id,
            node_id=s.node_id,
            health=s.health,
            last_forecast_received_at=s.last_forecast_received_at,
            health_changed_at=s.health_changed_at,
        )
        for s in sources
    ]
