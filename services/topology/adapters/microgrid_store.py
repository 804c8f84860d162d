"""SQL for the Microgrid aggregate: the microgrid row (version), its nodes and fallback rules.

Every write path locks the microgrid row first (`lock_*`), so topology, limit and control-point writes
of one microgrid are serialised and the version check cannot race.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from uuid import UUID

import asyncpg

from contracts.records import FallbackRuleRecord, MicrogridNodeRecord, MicrogridRecord

_MICROGRID = "SELECT microgrid_id, depot_id, version FROM microgrid"


def _microgrid(row: asyncpg.Record | None) -> MicrogridRecord | None:
    return MicrogridRecord(**dict(row)) if row else None


async def get_microgrid(conn: asyncpg.Connection, microgrid_id: UUID) -> MicrogridRecord | None:
    return _microgrid(await conn.fetchrow(f"{_MICROGRID} WHERE microgrid_id = $1", microgrid_id))


async def get_microgrid_of_depot(conn: asyncpg.Connection, depot_id: UUID) -> MicrogridRecord | None:
    return _microgrid(await conn.fetchrow(f"{_MICROGRID} WHERE depot_id = $1", depot_id))


async def lock_microgrid(conn: asyncpg.Connection, microgrid_id: UUID) -> MicrogridRecord | None:
    return _microgrid(await conn.fetchrow(f"{_MICROGRID} WHERE microgrid_id = $1 FOR UPDATE", microgrid_id))


async def lock_microgrid_of_depot(conn: asyncpg.Connection, depot_id: UUID) -> MicrogridRecord | None:
    return _microgrid(await conn.fetchrow(f"{_MICROGRID} WHERE depot_id = $1 FOR UPDATE", depot_id))


async def create_microgrid_if_absent(conn: asyncpg.Connection, microgrid_id: UUID, depot_id: UUID) -> bool:
    """Insert at version 0; False when the id or the depot already has a microgrid (1 depot = 1 microgrid)."""
    created = await conn.fetchval(
        "INSERT INTO microgrid (microgrid_id, depot_id, version) VALUES ($1, $2, 0)"
        " ON CONFLICT DO NOTHING RETURNING true",
        microgrid_id,
        depot_id,
    )
    return bool(created)


async def advance_version(conn: asyncpg.Connection, microgrid_id: UUID, expected: int) -> int:
    """version + 1, only if still `expected` (the optimistic-concurrency guard in SQL as well)."""
    new_version = await conn.fetchval(
        "UPDATE microgrid SET version = version + 1 WHERE microgrid_id = $1 AND version = $2 RETURNING version",
        microgrid_id,
        expected,
    )
    if new_version is None:
        raise RuntimeError(f"microgrid {microgrid_id} left version {expected} while locked")
    return int(new_version)


# ---- nodes -------------------------------------------------------------------------------------

_NODE_COLUMNS = (
    "node_id, microgrid_id, parent_node_id, name, node_type, attached_asset_type, attached_asset_id,"
    " status, display_order, managed"
)


async def load_nodes(conn: asyncpg.Connection, microgrid_id: UUID) -> list[MicrogridNodeRecord]:
    rows = await conn.fetch(
        f"SELECT {_NODE_COLUMNS} FROM microgrid_node WHERE microgrid_id = $1 ORDER BY node_id", microgrid_id
    )
    return [MicrogridNodeRecord(**dict(r)) for r in rows]


async def nodes_owned_elsewhere(
    conn: asyncpg.Connection, microgrid_id: UUID, node_ids: Iterable[UUID]
) -> dict[str, str]:
    """node_id -> owning microgrid_id, for the given ids that belong to another microgrid."""
    rows = await conn.fetch(
        "SELECT node_id, microgrid_id FROM microgrid_node WHERE node_id = ANY($1::uuid[]) AND microgrid_id <> $2",
        list(node_ids),
        microgrid_id,
    )
    return {str(r["node_id"]): str(r["microgrid_id"]) for r in rows}


async def replace_nodes(conn: asyncpg.Connection, microgrid_id: UUID, nodes: Sequence[MicrogridNodeRecord]) -> None:
    # Delete-then-insert: swapping asset references between nodes never trips the unique index midway.
    await conn.execute("DELETE FROM microgrid_node WHERE microgrid_id = $1", microgrid_id)
    await conn.executemany(
        f"INSERT INTO microgrid_node ({_NODE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        [
            (
                n.node_id,
                microgrid_id,
                n.parent_node_id,
                n.name,
                n.node_type.value,
                n.attached_asset_type.value if n.attached_asset_type else None,
                n.attached_asset_id,
                n.status.value,
                n.display_order,
                n.managed,
            )
            for n in nodes
        ],
    )


# ---- fallback rules ----------------------------------------------------------------------------


async def load_fallback_rules(conn: asyncpg.Connection, microgrid_id: UUID) -> list[FallbackRuleRecord]:
    rows = await conn.fetch(
        "SELECT node_id, fallback_demand_watts, assume_requested FROM fallback_rule"
        " WHERE microgrid_id = $1 ORDER BY node_id",
        microgrid_id,
    )
    return [FallbackRuleRecord(**dict(r)) for r in rows]


async def replace_fallback_rules(
    conn: asyncpg.Connection, microgrid_id: UUID, rules: Sequence[FallbackRuleRecord]
) -> None:
    await conn.execute("DELETE FROM fallback_rule WHERE microgrid_id = $1", microgrid_id)
    await conn.executemany(
        "INSERT INTO fallback_rule (node_id, microgrid_id, fallback_demand_watts, assume_requested)"
        " VALUES ($1, $2, $3, $4)",
        [(r.node_id, microgrid_id, r.fallback_demand_watts, r.assume_requested) for r in rules],
    )
