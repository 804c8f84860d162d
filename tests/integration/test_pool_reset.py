"""Pooled connections: reset in full only when their session was changed (libs.platform.db)."""

from __future__ import annotations

import uuid

import pytest

from libs.platform.db import changes_session, create_pool
from libs.platform.settings import PlatformSettings

pytestmark = pytest.mark.integration


async def _with_one_connection(settings: PlatformSettings):  # noqa: ANN202
    schema = f"pool_reset_{uuid.uuid4().hex[:8]}"
    return schema, await create_pool(settings.postgres_dsn, schema, min_size=1, max_size=1)


async def test_a_connection_that_changed_its_session_comes_back_reset(settings: PlatformSettings) -> None:
    schema, pool = await _with_one_connection(settings)
    try:
        async with pool.acquire() as conn:
            changes_session(conn)
            pid = conn.get_server_pid()
            await conn.execute("SET synchronous_commit = off")
            await conn.execute("SELECT pg_advisory_lock(4242)")
            await conn.execute("LISTEN pool_reset_test")
        async with pool.acquire() as conn:
            assert conn.get_server_pid() == pid  # the same session, handed out again
            assert await conn.fetchval("SHOW synchronous_commit") == "on"
            held = await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
            )
            assert held == 0
            assert await conn.fetchval("SELECT count(*) FROM pg_listening_channels()") == 0
    finally:
        await pool.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await pool.close()


async def test_a_unit_of_works_connection_is_not_reset_and_keeps_nothing_of_its_transaction(
    settings: PlatformSettings,
) -> None:
    """No reset round trip for a transaction's connection: what it set was transaction-scoped and ended
    with it, and a transaction left open is rolled back on release."""
    schema, pool = await _with_one_connection(settings)
    try:
        async with pool.acquire() as conn:  # a session change nobody declared: no reset undoes it
            await conn.execute("SET application_name = 'not_reset'")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW application_name") == "not_reset"
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit = off")
            await conn.execute("SELECT pg_advisory_xact_lock(4243)")
        conn = await pool.acquire()
        tx = conn.transaction()
        await tx.start()
        await conn.execute("SET LOCAL application_name = 'left_open'")
        await pool.release(conn)  # with its transaction still open
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SHOW synchronous_commit") == "on"
            held = await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
            )
            assert held == 0
            assert await conn.fetchval("SHOW application_name") != "left_open"
    finally:
        await pool.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await pool.close()
