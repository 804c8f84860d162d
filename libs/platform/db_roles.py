"""The database's roles: one owner that runs migrations, one login role per service (least privilege).

Run by the local stack as the cluster's bootstrap superuser (and by docker-compose's init script,
deploy/postgres/init-roles.sh, through `python -m libs.platform.db_roles`). Idempotent: every `up`
re-asserts the attributes and passwords, so a role someone widened by hand is narrowed again.

What each role may do inside a schema is granted by the migration runner (`db.prepare_schema`),
because schemas are created per deployment and per test session (with a random prefix).
"""

from __future__ import annotations

import asyncio
import os

import asyncpg

from libs.platform.stack_credentials import POSTGRES_OWNER, SERVICES, postgres_role

# No role here may bypass row security, replicate, create roles or databases, or be a superuser:
# `session_replication_role`, DISABLE TRIGGER and COPY ... PROGRAM all need one of these.
_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def role_statements(database: str, passwords: dict[str, str]) -> list[str]:
    """SQL that creates or corrects the owner and service roles; `passwords` by role name."""
    db = f'"{database}"'
    roles = [POSTGRES_OWNER, *(postgres_role(s) for s in SERVICES)]
    statements: list[str] = []
    for role in roles:
        statements += [
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {_literal(role)}) "
            f'THEN CREATE ROLE "{role}"; END IF; END $$',
            f'ALTER ROLE "{role}" WITH {_ATTRIBUTES} PASSWORD {_literal(passwords[role])}',
            f'GRANT CONNECT ON DATABASE {db} TO "{role}"',
            # Large values (a cycle's record and output, its cycle_completed in the outbox: ~100 KB each)
            # compressed with lz4 rather than pglz: a 131 KB cycle output cost the backend 0.43 ms instead of
            # 1.27 (issue 13; benchmarks/toast_compression.py). Postgres's own images and Debian's build it in.
            f"ALTER ROLE \"{role}\" SET default_toast_compression = 'lz4'",
        ]
    statements += [
        # Nobody gets anything by default: no temporary tables, no objects in `public`.
        f"REVOKE ALL ON DATABASE {db} FROM PUBLIC",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        # Only the owner creates schemas (one per service, per test session).
        f'GRANT CREATE ON DATABASE {db} TO "{POSTGRES_OWNER}"',
    ]
    return statements


# Schemas created before the owner role existed belong to the bootstrap superuser: hand them and
# everything in them to the owner, so its migrations and grants work on them.
_ADOPT_LEGACY_SCHEMAS = """
DO $$
DECLARE s record; o record;
BEGIN
  FOR s IN SELECT nspname FROM pg_namespace
           WHERE nspowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
             AND nspname NOT LIKE 'pg\\_%' AND nspname NOT IN ('public', 'information_schema') LOOP
    EXECUTE format('ALTER SCHEMA %I OWNER TO %I', s.nspname, '{owner}');
    FOR o IN SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = s.nspname AND c.relkind IN ('r', 'p', 'v', 'm')  LOOP
      EXECUTE format('ALTER TABLE %I.%I OWNER TO %I', s.nspname, o.relname, '{owner}');
    END LOOP;
    FOR o IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = s.nspname AND c.relkind = 'S'
               AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')) LOOP
      EXECUTE format('ALTER SEQUENCE %I.%I OWNER TO %I', s.nspname, o.relname, '{owner}');
    END LOOP;
    FOR o IN SELECT p.oid::regprocedure AS f FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = s.nspname LOOP
      EXECUTE format('ALTER FUNCTION %s OWNER TO %I', o.f, '{owner}');
    END LOOP;
  END LOOP;
END $$
"""


async def ensure_roles(admin_dsn: str, database: str, passwords: dict[str, str]) -> None:
    """Create or correct the roles, as a superuser connected to `database`."""
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        async with conn.transaction():
            for statement in role_statements(database, passwords):
                await conn.execute(statement)
            await conn.execute(_ADOPT_LEGACY_SCHEMAS.format(owner=POSTGRES_OWNER))
    finally:
        await conn.close()


if __name__ == "__main__":  # docker-compose's Postgres init: passwords from the environment
    asyncio.run(
        ensure_roles(
            os.environ["MGRID_POSTGRES_ADMIN_DSN"],
            os.environ.get("MGRID_POSTGRES_DATABASE", "mgrid"),
            {
                POSTGRES_OWNER: os.environ["MGRID_POSTGRES_OWNER_PASSWORD"],
                **{postgres_role(s): os.environ[f"MGRID_POSTGRES_{s.upper()}_PASSWORD"] for s in SERVICES},
            },
        )
    )
