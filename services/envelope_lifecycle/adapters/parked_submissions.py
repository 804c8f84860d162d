"""Envelope commands waiting for their node's topology (read-your-writes across services)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from contracts.commands import SubmitOperatingEnvelope
from libs.platform.messaging.parked import ParkedMessages

_PARKED = ParkedMessages("parked_submission", SubmitOperatingEnvelope)


async def park(conn: asyncpg.Connection, message: SubmitOperatingEnvelope, deadline: datetime) -> None:
    await _PARKED.park(conn, message, deadline, node_id=message.payload.node_id)


async def take_known(conn: asyncpg.Connection, microgrid_id: UUID) -> list[SubmitOperatingEnvelope]:
    """Remove and return the microgrid's parked commands whose node is now known, oldest first."""
    return await _PARKED.take(
        conn,
        "p.microgrid_id = $1 AND n.microgrid_id = p.microgrid_id AND n.node_id = p.node_id",
        microgrid_id,
        using="microgrid_node n",
    )


async def take_expired(conn: asyncpg.Connection, now: datetime, limit: int = 1) -> list[SubmitOperatingEnvelope]:
    """Remove and return commands whose wait is over (skipping rows another replica is handling)."""
    return await _PARKED.take_expired(conn, now, limit)
