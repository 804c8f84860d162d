"""Capability control points and their latest operational status: the inputs of forecast-source health."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from contracts.records import CapabilityControlPointRecord, CapabilityStatusEventRecord


@dataclass(frozen=True, slots=True)
class ControlPointState:
    """What health needs to know of a control point: where it points and whether it is in use."""

    control_point_id: UUID
    microgrid_id: UUID
    node_id: UUID | None
    in_use: bool  # active and enabled
    latest_status: str | None
    status_observed_at: datetime | None


async def upsert_control_point(conn: asyncpg.Connection, cp: CapabilityControlPointRecord) -> None:
    await conn.execute(
        "INSERT INTO capability_control_point (control_point_id, microgrid_id, node_id, capability_type, state,"
        " active) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (control_point_id) DO UPDATE SET"
        " microgrid_id = EXCLUDED.microgrid_id, node_id = EXCLUDED.node_id,"
        " capability_type = EXCLUDED.capability_type, state = EXCLUDED.state, active = EXCLUDED.active",
        cp.control_point_id,
        cp.microgrid_id,
        cp.node_id,
        cp.capability_type.value,
        cp.state.value,
        cp.active,
    )


async def record_status(conn: asyncpg.Connection, status: CapabilityStatusEventRecord) -> bool:
    """Keep the latest status by observation time; False when `status` is older than what is stored."""
    row = await conn.fetchval(
        "INSERT INTO capability_status_latest (control_point_id, microgrid_id, operational_status, observed_at,"
        " status_event_id) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (control_point_id) DO UPDATE SET"
        " operational_status = EXCLUDED.operational_status, observed_at = EXCLUDED.observed_at,"
        " status_event_id = EXCLUDED.status_event_id"
        " WHERE capability_status_latest.observed_at <= EXCLUDED.observed_at RETURNING 1",
        status.control_point_id,
        status.microgrid_id,
        status.operational_status,
        status.observed_at,
        status.status_event_id,
    )
    return row is not None


async def control_point_state(conn: asyncpg.Connection, control_point_id: UUID) -> ControlPointState | None:
    """The control point and its latest status; None when neither its record nor any status is known."""
    row = await conn.fetchrow(
        "SELECT $1::uuid AS control_point_id, coalesce(cp.microgrid_id, s.microgrid_id) AS microgrid_id,"
        " cp.node_id, coalesce(cp.active AND cp.state = 'enabled', true) AS in_use,"
        " s.operational_status, s.observed_at"
        " FROM (SELECT 1) one"
        " LEFT JOIN capability_control_point cp ON cp.control_point_id = $1"
        " LEFT JOIN capability_status_latest s ON s.control_point_id = $1",
        control_point_id,
    )
    if row is None or row["microgrid_id"] is None:
        return None
    return ControlPointState(
        control_point_id=row["control_point_id"],
        microgrid_id=row["microgrid_id"],
        node_id=row["node_id"],
        in_use=row["in_use"],
        latest_status=row["operational_status"],
        status_observed_at=row["observed_at"],
    )
