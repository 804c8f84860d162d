"""SQL for capability control points (configuration only; runtime status lives in status_store)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from uuid import UUID

import asyncpg

from contracts.enums import CapabilityType
from contracts.records import CapabilityControlPointRecord

_COLUMNS = (
    "control_point_id, microgrid_id, node_id, capability_type, state, control_source, description,"
    " local_config, external_config_type, external_config_ref, schedule_ref, active"
)


def _control_point(row: asyncpg.Record) -> CapabilityControlPointRecord:
    data = dict(row)
    data["local_config"] = json.loads(data["local_config"]) if data["local_config"] is not None else None
    return CapabilityControlPointRecord(**data)


async def get_control_point(
    conn: asyncpg.Connection, control_point_id: UUID, *, lock: bool = False
) -> CapabilityControlPointRecord | None:
    """With `lock`, hold the row (FOR SHARE) so it cannot be deactivated before this transaction ends."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM capability_control_point WHERE control_point_id = $1" + (" FOR SHARE" if lock else ""),
        control_point_id,
    )
    return _control_point(row) if row else None


async def list_control_points(
    conn: asyncpg.Connection,
    microgrid_id: UUID,
    *,
    capability_type: CapabilityType | None = None,
    node_id: UUID | None = None,
    whole_microgrid_only: bool = False,
    include_inactive: bool = False,
) -> list[CapabilityControlPointRecord]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM capability_control_point WHERE microgrid_id = $1"
        " AND ($2::text IS NULL OR capability_type = $2)"
        " AND ($3::uuid IS NULL OR node_id = $3)"
        " AND (NOT $4 OR node_id IS NULL)"
        " AND ($5 OR active)"
        " ORDER BY capability_type, node_id NULLS FIRST, control_point_id",
        microgrid_id,
        capability_type.value if capability_type else None,
        node_id,
        whole_microgrid_only,
        include_inactive,
    )
    return [_control_point(r) for r in rows]


async def active_control_point_for_scope(
    conn: asyncpg.Connection, microgrid_id: UUID, node_id: UUID | None, capability_type: CapabilityType
) -> CapabilityControlPointRecord | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM capability_control_point WHERE microgrid_id = $1"
        " AND node_id IS NOT DISTINCT FROM $2 AND capability_type = $3 AND active",
        microgrid_id,
        node_id,
        capability_type.value,
    )
    return _control_point(row) if row else None


async def save_control_point(conn: asyncpg.Connection, cp: CapabilityControlPointRecord) -> None:
    await conn.execute(
        f"INSERT INTO capability_control_point ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        " ON CONFLICT (control_point_id) DO UPDATE SET state = EXCLUDED.state,"
        " control_source = EXCLUDED.control_source, description = EXCLUDED.description,"
        " local_config = EXCLUDED.local_config, external_config_type = EXCLUDED.external_config_type,"
        " external_config_ref = EXCLUDED.external_config_ref, schedule_ref = EXCLUDED.schedule_ref,"
        " active = EXCLUDED.active",
        cp.control_point_id,
        cp.microgrid_id,
        cp.node_id,
        cp.capability_type.value,
        cp.state.value,
        cp.control_source.value,
        cp.description,
        json.dumps(cp.local_config) if cp.local_config is not None else None,
        cp.external_config_type,
        cp.external_config_ref,
        cp.schedule_ref,
        cp.active,
    )


async def deactivate_control_points_of_nodes(
    conn: asyncpg.Connection, microgrid_id: UUID, node_ids: Iterable[UUID]
) -> list[CapabilityControlPointRecord]:
    """Deactivate the active control points targeting removed nodes; returns them as they now are."""
    rows = await conn.fetch(
        f"UPDATE capability_control_point SET active = false"
        f" WHERE microgrid_id = $1 AND node_id = ANY($2::uuid[]) AND active RETURNING {_COLUMNS}",
        microgrid_id,
        list(node_ids),
    )
    return sorted((_control_point(r) for r in rows), key=lambda cp: str(cp.control_point_id))
