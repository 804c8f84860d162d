"""Least privilege in the database: each service's role is refused what an attacker holding it would try.

The schemas are migrated exactly as a service starts (as the owner, granting the service's role), under
this session's prefix; then the test connects as each service role and tries to rewrite its audit
history, to switch off the append-only guard, to run DDL, and to read another service's schema.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator

import asyncpg
import pytest

from libs.platform import stack_credentials as sc
from libs.platform.db import prepare_service_schema
from libs.platform.settings import PlatformSettings
from tools.run_cli import SERVICES

pytestmark = pytest.mark.integration

# What issue 14 found open: status history, envelope lifecycle history, translation audit, cycles, breaches.
APPEND_ONLY = {
    "topology": ("capability_status_event",),
    "envelope_lifecycle": ("envelope_lifecycle_history",),
    "compatibility_adapter": ("translation_audit",),
    "balancing": ("cycles", "cycle_input_parts"),
}
# One ordinary table per service, to read across schemas.
SOME_TABLE = {
    "topology": "microgrid",
    "envelope_lifecycle": "operating_envelope",
    "compatibility_adapter": "circuit_alias",
    "balancing": "microgrids",
}


def _definition(service: str):  # noqa: ANN202 - a ServiceDefinition
    return importlib.import_module(f"services.{service}.bootstrap").DEFINITION


@pytest.fixture(scope="module")
async def roles(settings: PlatformSettings) -> AsyncIterator[dict[str, str]]:
    """Each service's role DSN, after its schema was migrated and granted as at start-up."""
    credentials = sc.load()
    if credentials is None:
        pytest.skip("the stack under test has no generated roles (not the local stack)")
    dsns = {}
    for service in SERVICES:
        own = sc.for_service(settings, service)
        definition = _definition(service)
        await prepare_service_schema(
            own.postgres_owner_dsn, own.postgres_dsn, definition.schema(own), definition.migrations,
            definition.append_only_tables,
        )
        dsns[service] = own.postgres_dsn
    yield dsns


async def _connect(dsn: str, schema: str) -> asyncpg.Connection:
    return await asyncpg.connect(dsn, server_settings={"search_path": f'"{schema}"'})


def test_append_only_tables_are_declared_by_each_service() -> None:
    assert {s: _definition(s).append_only_tables for s in SERVICES} == APPEND_ONLY


async def test_service_roles_hold_no_dangerous_attribute(roles: dict[str, str], settings: PlatformSettings) -> None:
    conn = await asyncpg.connect(settings.postgres_owner_dsn or settings.postgres_dsn)
    try:
        rows = await conn.fetch(
            "SELECT rolname, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolreplication FROM pg_roles"
            " WHERE rolname = ANY($1::text[])",
            [sc.postgres_role(s) for s in SERVICES] + [sc.POSTGRES_OWNER],
        )
    finally:
        await conn.close()
    assert len(rows) == len(SERVICES) + 1
    assert [r["rolname"] for r in rows if any(r[k] for k in list(r.keys())[1:])] == []


@pytest.mark.parametrize(("service", "table"), [(s, t) for s, ts in APPEND_ONLY.items() for t in ts])
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {t} SET {c} = {c}",
        "DELETE FROM {t}",
        "TRUNCATE {t}",
        "ALTER TABLE {t} DISABLE TRIGGER ALL",
        "DROP TABLE {t}",
    ],
)
async def test_a_service_role_cannot_rewrite_or_unguard_its_append_only_history(
    roles: dict[str, str], settings: PlatformSettings, service: str, table: str, statement: str
) -> None:
    schema = _definition(service).schema(settings)
    conn = await _connect(roles[service], schema)
    try:
        column = await conn.fetchval(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2"
            " ORDER BY ordinal_position LIMIT 1", schema, table,
        )
        assert column is not None, "the role can see its own table's columns"
        # It may read and append: the refusals below are about rewriting, not about access.
        await conn.fetchval(f"SELECT count(*) FROM {table}")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(statement.format(t=table, c=column))
    finally:
        await conn.close()


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize(
    "statement",
    [
        "SET session_replication_role = replica",
        "CREATE TABLE mine (x int)",
        "CREATE SCHEMA mine",
        "CREATE TEMP TABLE mine (x int)",
        "COPY (SELECT 1) TO PROGRAM 'true'",
        "CREATE TABLE public.mine (x int)",
    ],
)
async def test_a_service_role_runs_no_ddl_and_no_superuser_command(
    roles: dict[str, str], settings: PlatformSettings, service: str, statement: str
) -> None:
    conn = await _connect(roles[service], _definition(service).schema(settings))
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_role_cannot_touch_another_services_schema(
    roles: dict[str, str], settings: PlatformSettings, service: str
) -> None:
    conn = await _connect(roles[service], _definition(service).schema(settings))
    try:
        for other in SERVICES:
            if other == service:
                continue
            target = f'"{_definition(other).schema(settings)}".{SOME_TABLE[other]}'
            for statement in (f"SELECT * FROM {target}", f"DELETE FROM {target}", f"TRUNCATE {target}"):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(statement)
    finally:
        await conn.close()


async def test_replicas_starting_together_all_prepare_the_schema(settings: PlatformSettings) -> None:
    """`--replicas N` starts N processes of a service at once: each migrates and grants on start. Postgres
    refuses concurrent GRANTs on one catalog row ("tuple concurrently updated"), so they take turns."""
    import asyncio
    import uuid

    if sc.load() is None:
        pytest.skip("the stack under test has no generated roles (not the local stack)")
    own = sc.for_service(settings, "compatibility_adapter")
    definition = _definition("compatibility_adapter")
    schema = f"replicas_{uuid.uuid4().hex[:8]}_compatibility_adapter"
    starts = [
        prepare_service_schema(
            own.postgres_owner_dsn, own.postgres_dsn, schema, definition.migrations, definition.append_only_tables
        )
        for _ in range(4)
    ]
    try:
        applied = await asyncio.gather(*starts)
        assert sorted(len(a) for a in applied)[-1] > 0 and sum(1 for a in applied if a) == 1  # migrated once
        conn = await _connect(own.postgres_dsn, schema)
        try:
            assert await conn.fetchval("SELECT count(*) FROM translation_audit") == 0  # granted
        finally:
            await conn.close()
    finally:
        conn = await asyncpg.connect(own.postgres_owner_dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()
