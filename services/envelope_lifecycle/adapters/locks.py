"""The per-microgrid lock every state change of this service takes first.

Receipt, withdrawal, timer evaluation and health changes of one microgrid all read the last projected
capacity and write the next one; serialising them (across replicas too) keeps "emit exactly once when
the value changes" true and keeps timers of one microgrid evaluated in order. A transaction-level
advisory lock is released by commit or rollback, so it cannot leak. The key includes the schema so
parallel test sessions on one database never contend.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

_KEY = "hashtextextended(current_schema() || ':envelope_lifecycle:' || $1::text, 0)"


async def lock_microgrid(conn: asyncpg.Connection, microgrid_id: UUID) -> None:
    """Wait for, then hold until the transaction ends, the microgrid's lock."""
    await conn.execute(f"SELECT pg_advisory_xact_lock({_KEY})", str(microgrid_id))


async def try_lock_microgrid(conn: asyncpg.Connection, microgrid_id: UUID) -> bool:
    """Take the microgrid's lock if free; False when another transaction (or replica) holds it."""
    return bool(await conn.fetchval(f"SELECT pg_try_advisory_xact_lock({_KEY})", str(microgrid_id)))
