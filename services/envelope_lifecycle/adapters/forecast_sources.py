"""Forecast sources (one per origin control point that sent a forecast) and their last evaluated health."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from contracts.enums import ForecastSourceHealth


@dataclass(frozen=True, slots=True)
class StoredForecastSource:
    microgrid_id: UUID
    control_point_id: UUID
    node_id: UUID | None  # the node the control point targets, if known
    health: ForecastSourceHealth
    last_forecast_received_at: datetime
    health_changed_at: datetime


async def get(conn: asyncpg.Connection, microgrid_id: UUID, control_point_id: UUID) -> StoredForecastSource | None:
    rows = await _select(conn, "fs.microgrid_id = $1 AND fs.control_point_id = $2", microgrid_id, control_point_id)
    return rows[0] if rows else None


async def of_microgrid(conn: asyncpg.Connection, microgrid_id: UUID) -> list[StoredForecastSource]:
    return await _select(conn, "fs.microgrid_id = $1", microgrid_id)


async def save(
    conn: asyncpg.Connection,
    *,
    microgrid_id: UUID,
    control_point_id: UUID,
    health: ForecastSourceHealth,
    last_forecast_received_at: datetime,
    health_changed_at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO forecast_source (microgrid_id, control_point_id, health,"
        " last_forecast_received_at, health_changed_at) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (microgrid_id, control_point_id) DO UPDATE SET health = EXCLUDED.health,"
        " last_forecast_received_at = EXCLUDED.last_forecast_received_at,"
        " health_changed_at = EXCLUDED.health_changed_at",
        microgrid_id,
        control_point_id,
        health.value,
        last_forecast_received_at,
        health_changed_at,
    )


async def _select(conn: asyncpg.Connection, where: str, *args: object) -> list[StoredForecastSource]:
    rows = await conn.fetch(
        "SELECT fs.*, cp.node_id FROM forecast_source fs"
        " LEFT JOIN capability_control_point cp ON cp.control_point_id = fs.control_point_id"
        f" WHERE {where} ORDER BY fs.control_point_id",
        *args,
    )
    return [
        StoredForecastSource(
            microgrid_id=r["microgrid_id"],
            control_point_id=r["control_point_id"],
            node_id=r["node_id"],
            health=ForecastSourceHealth(r["health"]),
            last_forecast_received_at=r["last_forecast_received_at"],
            health_changed_at=r["health_changed_at"],
        )
        for r in rows
    ]
