"""Results of the cycles the adapter requested, keyed by request key (from microgrid.cycle_completed)."""

from __future__ import annotations

import asyncpg

from contracts.records import CycleResultRecord


async def save(conn: asyncpg.Connection, request_key: str, cycle: CycleResultRecord) -> None:
    await conn.execute(
        "INSERT INTO cycle_result (request_key, correlation_id, cycle_id, microgrid_id, result, ended_at)"
        " VALUES ($1, $2, $3, $4, $5::jsonb, $6) ON CONFLICT (request_key) DO NOTHING",
        request_key,
        cycle.audit.correlation_id,
        cycle.cycle_id,
        cycle.microgrid_id,
        cycle.model_dump_json(),
        cycle.ended_at,
    )


async def by_request_key(conn: asyncpg.Connection | asyncpg.Pool, request_key: str) -> CycleResultRecord | None:
    raw = await conn.fetchval("SELECT result FROM cycle_result WHERE request_key = $1", request_key)
    return CycleResultRecord.model_validate_json(raw) if raw is not None else None
