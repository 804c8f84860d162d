"""Postgres access for one service: a pool pinned to the service's own schema, and plain-SQL migrations.

The migration runner is a few lines of our own: numbered `.sql` files applied in order, each in its
own transaction, recorded in `<schema>.schema_migrations`, serialised by an advisory lock so several
replicas can start at once. (Smaller and clearer than bringing in a migration tool for this.)
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import asyncpg

PLATFORM_MIGRATIONS = Path(__file__).parent / "migrations"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _checked_schema(schema: str) -> str:
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    return schema


async def create_pool(dsn: str, schema: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections see only `schema` (then public) on their search_path."""
    schema = _checked_schema(schema)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, server_settings={"search_path": f'"{schema}"'}
    )
    assert pool is not None
    return pool


def _migration_files(*folders: Path) -> list[tuple[str, Path]]:
    files: list[tuple[str, Path]] = []
    for prefix, folder in zip(("platform", "service"), folders, strict=False):
        for path in sorted(folder.glob("*.sql")):
            files.append((f"{prefix}/{path.name}", path))
    return files


async def migrate(pool: asyncpg.Pool, schema: str, service_migrations: Path | None = None) -> list[str]:
    """Apply the platform's then the service's pending migrations; returns the names applied."""
    schema = _checked_schema(schema)
    folders = [PLATFORM_MIGRATIONS] + ([service_migrations] if service_migrations else [])
    lock_key = int.from_bytes(hashlib.sha256(f"migrate:{schema}".encode()).digest()[:8], "big", signed=True)
    applied: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", lock_key)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
            for name, path in _migration_files(*folders):
                if name in done:
                    continue
                async with conn.transaction():
                    await conn.execute(path.read_text())
                    await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
                applied.append(name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", lock_key)
    return applied
