"""Envelope commands waiting for their node's topology (read-your-writes across services)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from contracts.commands import SubmitOperatingEnvelope


async def park(conn: asyncpg.Connection, message: SubmitOperatingEnvelope, deadline: datetime) -> None:
    await conn.execute(
        "INSERT INTO parked_submission (event_id, microgrid_id, node_id, message, deadline)"
        " VALUES ($1, $2, $3, $4::jsonb, $5) ON CONFLICT (event_id) DO NOTHING",
        message.event_id,
        message.payload.microgrid_id,
        message.payload.node_id,
        message.model_dump_json(),
        deadline,
    )


async def take_known(conn: asyncpg.Connection, microgrid_id: UUID) -> list[SubmitOperatingEnvelope]:
    """Remove and return the microgrid's parked commands whose node is now known, oldest first."""
    rows = await conn.fetch(
        "DELETE FROM parked_submission p USING microgrid_node n"
        " WHERE p.microgrid_id = $1 AND n.microgrid_id = p.microgrid_id AND n.node_id = p.node_id"
        " RETURNING p.message, p.deadline, p.event_id",
        microgrid_id,
    )
    rows = sorted(rows, key=lambda r: (r["deadline"], str(r["event_id"])))
    return [SubmitOperatingEnvelope.model_validate_json(r["message"]) for r in rows]


async def take_expired(conn: asyncpg.Connection, now: datetime, limit: int = 1) -> list[SubmitOperatingEnvelope]:
    """Remove and return commands whose wait is over (skipping rows another replica is handling)."""
    rows = await conn.fetch(
        "DELETE FROM parked_submission WHERE event_id IN ("
        " SELECT event_id FROM parked_submission WHERE deadline <= $1 ORDER BY deadline, event_id"
        " LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING message",
        now,
        limit,
    )
    return [SubmitOperatingEnvelope.model_validate_json(r["message"]) for r in rows]
