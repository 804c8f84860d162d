"""Rebalance requests: keys claimed by the HTTP door, and requests waiting for a topology version."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from contracts.events import RebalanceRequested
from libs.platform.messaging.parked import ParkedMessages

_PENDING = ParkedMessages("pending_rebalances", RebalanceRequested)


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
    await _PENDING.park(conn, message, deadline, expected_topology_version=expected_version)


async def take_ready(conn: asyncpg.Connection, microgrid_id: UUID, known_version: int) -> list[RebalanceRequested]:
    """Remove and return the requests this topology version satisfies, oldest deadline first."""
    return await _PENDING.take(conn, "p.microgrid_id = $1 AND p.expected_topology_version <= $2", microgrid_id,
                               known_version)


async def take_expired(conn: asyncpg.Connection, now: datetime, limit: int = 50) -> list[RebalanceRequested]:
    """Remove and return requests whose wait is over (skipping rows another replica is handling)."""
    return await _PENDING.take_expired(conn, now, limit)
