"""The per-microgrid lock every state change of this service takes first.

Receipt, withdrawal, timer evaluation and health changes of one microgrid all read the last projected
capacity and write the next one; serialising them (across replicas too) keeps "emit exactly once when
the value changes" true and keeps timers of one microgrid evaluated in order. A transaction-level
advisory lock is released by commit or rollback, so it cannot leak (libs/platform/advisory_locks.py).
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from libs.platform.advisory_locks import lock_for_transaction, try_lock_for_transaction


async def lock_microgrid(conn: asyncpg.Connection, microgrid_id: UUID) -> None:
    """Wait for, then hold until the transaction ends, the microgrid's lock."""
    await lock_for_transaction(conn, "envelope_lifecycle", microgrid_id)


async def try_lock_microgrid(conn: asyncpg.Connection, microgrid_id: UUID) -> bool:
    """Take the microgrid's lock if free; False when another transaction (or replica) holds it."""
    return await try_lock_for_transaction(conn, "envelope_lifecycle", microgrid_id)
