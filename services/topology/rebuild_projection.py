"""Rebuild the capability-status projection from the append-only history (D-017, FR-025).

`mgrid topology rebuild-projection [--microgrid-id ID]` (services/topology/cli.py). Safe while the
service runs: it works in one transaction that holds the projection's rows, and uses the same
projection rule as live ingest, so the result is identical.
"""

from __future__ import annotations

import asyncio
from uuid import UUID

import asyncpg

from libs.platform.db import create_pool
from libs.platform.settings import PlatformSettings
from services.topology.adapters import status_store
from services.topology.bootstrap import DEFINITION


async def rebuild(pool: asyncpg.Pool, microgrid_id: UUID | None = None) -> int:
    """Rebuild (one microgrid's, or every) latest-status rows; returns how many rows it built."""
    async with pool.acquire() as conn, conn.transaction():
        # Ingest folds into the projection under row locks; this lock keeps it out for the rebuild.
        await conn.execute("LOCK TABLE capability_status_projection IN SHARE ROW EXCLUSIVE MODE")
        return await status_store.rebuild_projection(conn, microgrid_id)


async def rebuild_with_settings(settings: PlatformSettings, microgrid_id: UUID | None = None) -> int:
    pool = await create_pool(settings.postgres_dsn, DEFINITION.schema(settings), max_size=1)
    try:
        return await rebuild(pool, microgrid_id)
    finally:
        await pool.close()


def main(microgrid_id: UUID | None = None) -> int:
    return asyncio.run(rebuild_with_settings(DEFINITION.settings_type(), microgrid_id))

