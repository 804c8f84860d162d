"""The alias read model: circuit-carrying nodes per microgrid (from topology events) and legacy circuits."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from contracts.enums import AssetType, NodeType
from contracts.events import LegacyCircuitUpdatedPayload, TopologyUpdatedPayload
from contracts.records import LegacyCircuitRecord
from libs.domain.circuit_alias import AliasRow


async def apply_topology(conn: asyncpg.Connection, topology: TopologyUpdatedPayload, now: datetime) -> bool:
    """Replace the microgrid's alias rows with the tree at this version; an older version is ignored."""
    applied = await conn.fetchval(
        "INSERT INTO microgrid_topology (microgrid_id, depot_id, version, updated_at) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (microgrid_id) DO UPDATE SET depot_id = excluded.depot_id, version = excluded.version,"
        " updated_at = excluded.updated_at WHERE microgrid_topology.version < excluded.version"
        " RETURNING 1",
        topology.microgrid_id,
        topology.depot_id,
        topology.version,
        now,
    )
    if applied is None:
        return False
    await conn.execute("DELETE FROM circuit_alias WHERE microgrid_id = $1", topology.microgrid_id)
    rows = [
        (topology.microgrid_id, n.node_id, n.attached_asset_id, n.node_type.value, n.managed)
        for n in topology.nodes
        if n.attached_asset_type == AssetType.CIRCUIT and n.attached_asset_id is not None
    ]
    if rows:
        await conn.executemany(
            "INSERT INTO circuit_alias (microgrid_id, node_id, circuit_id, node_type, managed)"
            " VALUES ($1, $2, $3, $4, $5)",
            rows,
        )
    return True


async def rows_for_circuit(conn: asyncpg.Connection | asyncpg.Pool, circuit_id: UUID) -> list[AliasRow]:
    records = await conn.fetch(
        "SELECT circuit_id, microgrid_id, node_id, node_type, managed FROM circuit_alias WHERE circuit_id = $1",
        circuit_id,
    )
    return [
        AliasRow(
            circuit_id=r["circuit_id"],
            microgrid_id=r["microgrid_id"],
            node_id=r["node_id"],
            node_type=NodeType(r["node_type"]),
            managed=r["managed"],
        )
        for r in records
    ]


async def save_legacy_circuit(conn: asyncpg.Connection, circuit: LegacyCircuitUpdatedPayload, now: datetime) -> None:
    await conn.execute(
        "INSERT INTO legacy_circuit (circuit_id, depot_id, parent_circuit_id, name, default_capacity_watts,"
        " fail_safe_capacity_watts, removed, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT (circuit_id) DO UPDATE SET depot_id = excluded.depot_id,"
        " parent_circuit_id = excluded.parent_circuit_id, name = excluded.name,"
        " default_capacity_watts = excluded.default_capacity_watts,"
        " fail_safe_capacity_watts = excluded.fail_safe_capacity_watts, removed = excluded.removed,"
        " updated_at = excluded.updated_at",
        circuit.circuit_id,
        circuit.depot_id,
        circuit.parent_circuit_id,
        circuit.name,
        circuit.default_capacity_watts,
        circuit.fail_safe_capacity_watts,
        circuit.removed,
        now,
    )


async def legacy_circuit(conn: asyncpg.Connection | asyncpg.Pool, circuit_id: UUID) -> LegacyCircuitRecord | None:
    r = await conn.fetchrow(
        "SELECT circuit_id, depot_id, parent_circuit_id, name, default_capacity_watts, fail_safe_capacity_watts,"
        " removed FROM legacy_circuit WHERE circuit_id = $1",
        circuit_id,
    )
    return LegacyCircuitRecord(**dict(r)) if r else None


async def topology_version_for_circuit(conn: asyncpg.Connection | asyncpg.Pool, circuit_id: UUID) -> int:
    """The topology version an alias of `circuit_id` was resolved against: the newest version of a microgrid
    carrying the circuit, else of the microgrid of the circuit's depot; 0 when no such topology is known."""
    version = await conn.fetchval(
        "SELECT max(t.version) FROM microgrid_topology t WHERE t.microgrid_id IN"
        " (SELECT microgrid_id FROM circuit_alias WHERE circuit_id = $1)"
        " OR t.depot_id IN (SELECT depot_id FROM legacy_circuit WHERE circuit_id = $1)",
        circuit_id,
    )
    return int(version or 0)
