"""The circuit-facing effective capacity per circuit, as the last changed/reconciled event set it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from contracts.events import EffectiveCircuitCapacityPayload


@dataclass(frozen=True)
class CircuitCapacity:
    circuit_id: UUID
    microgrid_id: UUID
    node_id: UUID
    effective_capacity_watts: int
    projection_trigger: str
    basis: str
    binding_envelope_id: UUID | None
    evaluated_at: datetime
    projected_at: datetime | None  # the last projection's evaluation (a reconciliation leaves it)


async def current(
    conn: asyncpg.Connection | asyncpg.Pool, circuit_id: UUID, *, lock: bool = False
) -> CircuitCapacity | None:
    r = await conn.fetchrow(
        "SELECT circuit_id, microgrid_id, node_id, effective_capacity_watts, projection_trigger, basis,"
        " binding_envelope_id, evaluated_at, projected_at FROM circuit_capacity WHERE circuit_id = $1"
        + (" FOR UPDATE" if lock else ""),
        circuit_id,
    )
    return CircuitCapacity(**dict(r)) if r else None


async def save(
    conn: asyncpg.Connection, capacity: EffectiveCircuitCapacityPayload, source_event_id: UUID, *, projected: bool
) -> None:
    """Hold `capacity` as the circuit-facing value; `projected` for the envelope service's projection
    (then it is also the last projection), False for a cycle's reconciliation."""
    await conn.execute(
        "INSERT INTO circuit_capacity (circuit_id, microgrid_id, node_id, effective_capacity_watts,"
        " projection_trigger, basis, binding_envelope_id, evaluated_at, source_event_id, projected_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, CASE WHEN $10 THEN $8::timestamptz END)"
        " ON CONFLICT (circuit_id) DO UPDATE SET"
        " microgrid_id = excluded.microgrid_id, node_id = excluded.node_id,"
        " effective_capacity_watts = excluded.effective_capacity_watts,"
        " projection_trigger = excluded.projection_trigger, basis = excluded.basis,"
        " binding_envelope_id = excluded.binding_envelope_id, evaluated_at = excluded.evaluated_at,"
        " source_event_id = excluded.source_event_id,"
        " projected_at = CASE WHEN $10 THEN excluded.evaluated_at ELSE circuit_capacity.projected_at END",
        capacity.circuit_id,
        capacity.microgrid_id,
        capacity.node_id,
        capacity.effective_capacity_watts,
        capacity.projection_trigger.value,
        capacity.basis,
        capacity.binding_envelope_id,
        capacity.evaluated_at,
        source_event_id,
        projected,
    )


async def mark_projected(conn: asyncpg.Connection, circuit_id: UUID, evaluated_at: datetime) -> None:
    """A projection older than the held (reconciled) value: remember it was seen, keep the value."""
    await conn.execute(
        "UPDATE circuit_capacity SET projected_at = $2 WHERE circuit_id = $1 AND"
        " (projected_at IS NULL OR projected_at < $2)",
        circuit_id,
        evaluated_at,
    )
