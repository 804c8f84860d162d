"""Rebalance requests: keys claimed by the HTTP door, and requests waiting for a topology version."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from contracts.events import RebalanceRequested


@dataclass(frozen=True)
class ClaimedRequest:
    request_key: str
    microgrid_id: UUID
    node_id: UUID | None
    event_id: UUID


async def claim_request_key(
    conn: asyncpg.Connection, *, request_key: str, microgrid_id: UUID, node_id: UUID | None, event_id: UUID,
    requested_at: datetime,
) -> ClaimedRequest:
    """The request recorded under this key: ours when the key is new, else the first one."""
    await conn.execute(
        "INSERT INTO rebalance_requests (request_key, microgrid_id, node_id, event_id, requested_at)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (request_key) DO NOTHING",
        request_key,
        microgrid_id,
        node_id,
        event_id,
        requested_at,
    )
    row = await conn.fetchrow("SELECT * FROM rebalance_requests WHERE request_key = $1", request_key)
    assert row is not None
    return ClaimedRequest(row["request_key"], row["microgrid_id"], row["node_id"], row["event_id"])


async def defer(
    conn: asyncpg.Connection, message: RebalanceRequested, expected_version: int, deadline: datetime
) -> None:
    await conn.execute(
        "INSERT INTO pending_rebalances (event_id, microgrid_id, expected_topology_version, message, deadline)"
        " VALUES ($1, $2, $3, $4::jsonb, $5) ON CONFLICT (event_id) DO NOTHING",
        message.event_id,
        message.payload.microgrid_id,
        expected_version,
        message.model_dump_json(),
        deadline,
    )


async def take_ready(conn: asyncpg.Connection, microgrid_id: UUID, known_version: int) -> list[RebalanceRequested]:
    """Remove and return the requests this topology version satisfies, oldest deadline first."""
    rows = await conn.fetch(
        "DELETE FROM pending_rebalances WHERE microgrid_id = $1 AND expected_topology_version <= $2"
        " RETURNING message, deadline, event_id",
        microgrid_id,
        known_version,
    )
    rows = sorted(rows, key=lambda r: (r["deadline"], str(r["event_id"])))
    return [RebalanceRequested.model_validate_json(r["message"]) for r in rows]


async def take_expired(conn: asyncpg.Connection, now: datetime, limit: int = 50) -> list[RebalanceRequested]:
    """Remove and return requests whose wait is over (skipping rows another replica is handling)."""
    rows = await conn.fetch(
        "DELETE FROM pending_rebalances WHERE event_id IN ("
        " SELECT event_id FROM pending_rebalances WHERE deadline <= $1 ORDER BY deadline, event_id"
        " LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING message",
        now,
        limit,
    )
    return [RebalanceRequested.model_validate_json(r["message"]) for r in rows]
