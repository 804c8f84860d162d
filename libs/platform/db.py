"""Postgres access for one service: a pool pinned to the service's own schema, and plain-SQL migrations.

The migration runner is a few lines of our own: numbered `.sql` files applied in order, each in its
own transaction, recorded in `<schema>.schema_migrations`, serialised by an advisory lock so several
replicas can start at once. (Smaller and clearer than bringing in a migration tool for this.)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from libs.platform.advisory_locks import advisory_lock_key

PLATFORM_MIGRATIONS = Path(__file__).parent / "migrations"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _checked_schema(schema: str) -> str:
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    return schema


# Backend pids of pooled connections whose session was changed (a SET, a LISTEN, a session advisory
# lock): only these get the full reset when released. asyncpg's default reset is a fifth round trip
# (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL) on every release, paid by every unit of work,
# whose state is all transaction-scoped (SET LOCAL, pg_advisory_xact_lock) and ends with it.
_SESSION_CHANGED: set[int] = set()


def changes_session(conn: Any) -> None:
    """Say that `conn` (pooled) is about to change its session: released, it is reset in full."""
    _SESSION_CHANGED.add(conn.get_server_pid())


async def _reset_changed_session(conn: asyncpg.Connection) -> None:
    # asyncpg has already rolled back an open transaction and dropped the connection's listeners.
    pid = conn.get_server_pid()
    if pid in _SESSION_CHANGED:
        query = conn.get_reset_query()
        if query:
            await conn.execute(query)
        _SESSION_CHANGED.discard(pid)


async def create_pool(
    dsn: str, schema: str, *, min_size: int = 1, max_size: int = 10, create_schema: bool = True
) -> asyncpg.Pool:
    """A pool whose connections see only `schema` (then public) on their search_path.

    `create_schema=False` for a service role, which may not create schemas (the owner did).
    """
    schema = _checked_schema(schema)
    if create_schema:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        except (asyncpg.UniqueViolationError, asyncpg.DuplicateSchemaError):
            pass  # a replica starting at the same moment created it between the check and the insert
        finally:
            await conn.close()
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        server_settings={"search_path": f'"{schema}"'},
        reset=_reset_changed_session,
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
    lock_key = advisory_lock_key("migrate", schema)
    applied: list[str] = []
    async with pool.acquire() as conn:
        changes_session(conn)
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


async def prepare_service_schema(
    owner_dsn: str | None, service_dsn: str, schema: str, migrations: Path | None, append_only: tuple[str, ...]
) -> list[str]:
    """A service's start-up: migrate as the owner and grant the service's role (when they differ)."""
    if owner_dsn is None:
        return await prepare_schema(service_dsn, schema, migrations, service_role=None)
    owner, role = urlsplit(owner_dsn).username, urlsplit(service_dsn).username
    return await prepare_schema(
        owner_dsn, schema, migrations, service_role=role if role and role != owner else None, append_only=append_only
    )


async def prepare_schema(
    owner_dsn: str,
    schema: str,
    service_migrations: Path | None,
    *,
    service_role: str | None,
    append_only: tuple[str, ...] = (),
) -> list[str]:
    """As the schema owner: create the schema, migrate it, and grant `service_role` its rights there.

    The service role may read and write its tables but not change their shape (no DDL, not the
    owner), and may only INSERT and SELECT the append-only ones (docs/security.md, Database roles).
    Grants are re-applied on every start, so a table a new migration adds gets them too.
    """
    pool = await create_pool(owner_dsn, schema, min_size=1, max_size=1)
    try:
        applied = await migrate(pool, schema, service_migrations)
        if service_role:
            async with pool.acquire() as conn, conn.transaction():
                # Replicas starting together grant at once, and Postgres refuses concurrent updates of
                # one catalog row ("tuple concurrently updated"): one at a time, under the migration lock.
                await conn.execute("SELECT pg_advisory_xact_lock($1)", advisory_lock_key("migrate", schema))
                await conn.execute(grant_statements(schema, service_role, append_only))
        return applied
    finally:
        await pool.close()


def grant_statements(schema: str, role: str, append_only: tuple[str, ...]) -> str:
    s, r = _checked_schema(schema), _quoted_role(role)
    statements = [
        f'GRANT USAGE ON SCHEMA "{s}" TO {r}',
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{s}" TO {r}',
        f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA "{s}" TO {r}',
        # The migration record is the owner's.
        f'REVOKE INSERT, UPDATE, DELETE ON "{s}".schema_migrations FROM {r}',
        *(f'REVOKE UPDATE, DELETE ON "{s}"."{_checked_schema(t)}" FROM {r}' for t in append_only),
    ]
    return ";\n".join(statements)


def _quoted_role(role: str) -> str:
    if not _SCHEMA_NAME.match(role):
        raise ValueError(f"invalid role name {role!r}")
    return f'"{role}"'
