"""The last effective capacity projected to each managed feeder circuit, and scopes that cannot project."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from contracts.enums import ReasonCode
from contracts.events import EffectiveCircuitCapacityPayload


async def last_projected(conn: asyncpg.Connection, circuit_id: UUID) -> EffectiveCircuitCapacityPayload | None:
    row = await conn.fetchrow("SELECT * FROM effective_circuit_capacity WHERE circuit_id = $1", circuit_id)
    return _payload(row) if row else None


async def of_microgrid(conn: asyncpg.Connection, microgrid_id: UUID) -> list[EffectiveCircuitCapacityPayload]:
    rows = await conn.fetch(
        "SELECT * FROM effective_circuit_capacity WHERE microgrid_id = $1 ORDER BY circuit_id", microgrid_id
    )
    return [_payload(r) for r in rows]


async def save(conn: asyncpg.Connection, p: EffectiveCircuitCapacityPayload) -> None:
    """The latest projection; `previous_capacity_watts` stays the value before the last actual change."""
    await conn.execute(
        "INSERT INTO effective_circuit_capacity (circuit_id, microgrid_id, node_id, effective_capacity_watts, basis,"
        " binding_envelope_id, forecast_source_health, projection_trigger, evaluated_at, previous_capacity_watts)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (circuit_id) DO UPDATE SET"
        " previous_capacity_watts = CASE WHEN effective_circuit_capacity.effective_capacity_watts"
        "  <> EXCLUDED.effective_capacity_watts THEN effective_circuit_capacity.effective_capacity_watts"
        "  ELSE effective_circuit_capacity.previous_capacity_watts END,"
        " microgrid_id = EXCLUDED.microgrid_id, node_id = EXCLUDED.node_id,"
        " effective_capacity_watts = EXCLUDED.effective_capacity_watts, basis = EXCLUDED.basis,"
        " binding_envelope_id = EXCLUDED.binding_envelope_id,"
        " forecast_source_health = EXCLUDED.forecast_source_health,"
        " projection_trigger = EXCLUDED.projection_trigger, evaluated_at = EXCLUDED.evaluated_at",
        p.circuit_id,
        p.microgrid_id,
        p.node_id,
        p.effective_capacity_watts,
        p.basis,
        p.binding_envelope_id,
        p.forecast_source_health.value if p.forecast_source_health else None,
        p.projection_trigger.value,
        p.evaluated_at,
        p.previous_capacity_watts,
    )


async def record_failure(
    conn: asyncpg.Connection, microgrid_id: UUID, node_id: UUID, reason_code: ReasonCode, detail: str, at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO projection_failure (microgrid_id, node_id, reason_code, detail, evaluated_at)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (microgrid_id, node_id) DO UPDATE SET"
        " reason_code = EXCLUDED.reason_code, detail = EXCLUDED.detail, evaluated_at = EXCLUDED.evaluated_at",
        microgrid_id,
        node_id,
        reason_code.value,
        detail,
        at,
    )


async def clear_failure(conn: asyncpg.Connection, microgrid_id: UUID, node_id: UUID) -> None:
    await conn.execute("DELETE FROM projection_failure WHERE microgrid_id = $1 AND node_id = $2", microgrid_id, node_id)


async def failures(conn: asyncpg.Connection, microgrid_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT node_id, reason_code, detail, evaluated_at FROM projection_failure WHERE microgrid_id = $1"
        " ORDER BY node_id",
        microgrid_id,
    )


def _payload(row: asyncpg.Record) -> EffectiveCircuitCapacityPayload:
    return EffectiveCircuitCapacityPayload(
        microgrid_id=row["microgrid_id"],
        node_id=row["node_id"],
        circuit_id=row["circuit_id"],
        effective_capacity_watts=row["effective_capacity_watts"],
        projection_trigger=row["projection_trigger"],
        previous_capacity_watts=row["previous_capacity_watts"],
        basis=row["basis"],
        binding_envelope_id=row["binding_envelope_id"],
        forecast_source_health=row["forecast_source_health"],
        evaluated_at=row["evaluated_at"],
    )
