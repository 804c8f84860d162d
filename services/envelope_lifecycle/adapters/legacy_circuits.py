"""Legacy circuit read model (default and fail-safe capacities), from legacy_circuit.circuit_updated."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from contracts.events import LegacyCircuitUpdatedPayload
from contracts.records import LegacyCircuitRecord


async def upsert_circuit(conn: asyncpg.Connection, circuit: LegacyCircuitUpdatedPayload) -> None:
    await conn.execute(
        "INSERT INTO legacy_circuit (circuit_id, depot_id, parent_circuit_id, name, default_capacity_watts,"
        " fail_safe_capacity_watts, removed) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (circuit_id) DO UPDATE SET depot_id = EXCLUDED.depot_id,"
        " parent_circuit_id = EXCLUDED.parent_circuit_id, name = EXCLUDED.name,"
        " default_capacity_watts = EXCLUDED.default_capacity_watts,"
        " fail_safe_capacity_watts = EXCLUDED.fail_safe_capacity_watts, removed = EXCLUDED.removed",
        circuit.circuit_id,
        circuit.depot_id,
        circuit.parent_circuit_id,
        circuit.name,
        circuit.default_capacity_watts,
        circuit.fail_safe_capacity_watts,
        circuit.removed,
    )


async def circuit(conn: asyncpg.Connection, circuit_id: UUID) -> LegacyCircuitRecord | None:
    row = await conn.fetchrow("SELECT * FROM legacy_circuit WHERE circuit_id = $1", circuit_id)
    return LegacyCircuitRecord(**dict(row)) if row else None
