"""Topology read model: the latest node tree of each microgrid, from microgrid.topology_updated."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from contracts.events import TopologyUpdatedPayload
from contracts.records import MicrogridNodeRecord


async def replace_topology(conn: asyncpg.Connection, payload: TopologyUpdatedPayload) -> bool:
    """Store the tree at `payload.version`; False (nothing stored) when a newer version is already known."""
    stored = await conn.fetchval(
        "SELECT version FROM microgrid WHERE microgrid_id = $1 FOR UPDATE", payload.microgrid_id
    )
    if stored is not None and stored >= payload.version:
        return False  # out-of-order or replayed version: the read model only moves forward
    await conn.execute(
        "INSERT INTO microgrid (microgrid_id, depot_id, version) VALUES ($1, $2, $3)"
        " ON CONFLICT (microgrid_id) DO UPDATE SET depot_id = EXCLUDED.depot_id, version = EXCLUDED.version",
        payload.microgrid_id,
        payload.depot_id,
        payload.version,
    )
    await conn.execute("DELETE FROM microgrid_node WHERE microgrid_id = $1", payload.microgrid_id)
    await conn.executemany(
        "INSERT INTO microgrid_node (microgrid_id, node_id, parent_node_id, name, node_type,"
        " attached_asset_type, attached_asset_id, managed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        [
            (
                payload.microgrid_id,
                n.node_id,
                n.parent_node_id,
                n.name,
                n.node_type.value,
                n.attached_asset_type.value if n.attached_asset_type else None,
                n.attached_asset_id,
                n.managed,
            )
            for n in payload.nodes
        ],
    )
    return True


async def node(conn: asyncpg.Connection, microgrid_id: UUID, node_id: UUID) -> MicrogridNodeRecord | None:
    row = await conn.fetchrow(
        "SELECT * FROM microgrid_node WHERE microgrid_id = $1 AND node_id = $2", microgrid_id, node_id
    )
    return _node(row) if row else None


async def nodes_attached_to(conn: asyncpg.Connection, asset_id: UUID) -> list[MicrogridNodeRecord]:
    """Every node (in any microgrid) whose attached asset is `asset_id`, in a stable order."""
    rows = await conn.fetch(
        "SELECT * FROM microgrid_node WHERE attached_asset_id = $1 ORDER BY microgrid_id, node_id", asset_id
    )
    return [_node(r) for r in rows]


async def managed_nodes(conn: asyncpg.Connection, microgrid_id: UUID) -> list[MicrogridNodeRecord]:
    rows = await conn.fetch(
        "SELECT * FROM microgrid_node WHERE microgrid_id = $1 AND managed ORDER BY node_id", microgrid_id
    )
    return [_node(r) for r in rows]


def _node(row: asyncpg.Record) -> MicrogridNodeRecord:
    return MicrogridNodeRecord(
        node_id=row["node_id"],
        microgrid_id=row["microgrid_id"],
        parent_node_id=row["parent_node_id"],
        name=row["name"],
        node_type=row["node_type"],
        attached_asset_type=row["attached_asset_type"],
        attached_asset_id=row["attached_asset_id"],
        managed=row["managed"],
    )
