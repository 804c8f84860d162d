"""SQL for baseline node limits. Rows are never deleted: a replaced limit stays, INACTIVE, as history."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

import asyncpg

from contracts.enums import LimitStatus
from contracts.records import NodeLimitRecord

_COLUMNS = "node_limit_id, microgrid_id, node_id, constraint_type, limit_watts, source_type, status, updated_at"


def _limit(row: asyncpg.Record) -> NodeLimitRecord:
    return NodeLimitRecord(**dict(row))


async def active_limits(
    conn: asyncpg.Connection, microgrid_id: UUID, node_id: UUID | None = None
) -> list[NodeLimitRecord]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM node_limit WHERE microgrid_id = $1 AND status = 'ACTIVE'"
        " AND ($2::uuid IS NULL OR node_id = $2) ORDER BY node_id, constraint_type",
        microgrid_id,
        node_id,
    )
    return [_limit(r) for r in rows]


async def get_limits(conn: asyncpg.Connection, node_limit_ids: Iterable[UUID]) -> dict[UUID, NodeLimitRecord]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM node_limit WHERE node_limit_id = ANY($1::uuid[])", list(node_limit_ids)
    )
    return {r["node_limit_id"]: _limit(r) for r in rows}


async def save_limit(conn: asyncpg.Connection, limit: NodeLimitRecord) -> None:
    await conn.execute(
        f"INSERT INTO node_limit ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT (node_limit_id) DO UPDATE SET limit_watts = EXCLUDED.limit_watts,"
        " source_type = EXCLUDED.source_type, status = EXCLUDED.status, updated_at = EXCLUDED.updated_at",
        limit.node_limit_id,
        limit.microgrid_id,
        limit.node_id,
        limit.constraint_type.value,
        limit.limit_watts,
        limit.source_type.value,
        limit.status.value,
        limit.updated_at,
    )


async def deactivate_limits_of_nodes(
    conn: asyncpg.Connection, microgrid_id: UUID, node_ids: Iterable[UUID], now: datetime
) -> list[NodeLimitRecord]:
    """Deactivate the active limits of removed nodes; returns them as they now are."""
    rows = await conn.fetch(
        f"UPDATE node_limit SET status = $4, updated_at = $3"
        f" WHERE microgrid_id = $1 AND node_id = ANY($2::uuid[]) AND status = 'ACTIVE'"
        f" RETURNING {_COLUMNS}",
        microgrid_id,
        list(node_ids),
        now,
        LimitStatus.INACTIVE.value,
    )
    return sorted((_limit(r) for r in rows), key=lambda limit: str(limit.node_limit_id))
