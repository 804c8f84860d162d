"""Read views of a microgrid: the physical tree, the operational collection view, the depot view (FR-007, FR-018)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from uuid import UUID

import asyncpg

from contracts.api.topology import (
    CollectionView,
    DepotMicrogridView,
    ResourceQuery,
    TopologyTreeNode,
    TopologyView,
)
from contracts.records import MicrogridNodeRecord, MicrogridRecord
from services.topology.adapters import microgrid_store, read_models
from services.topology.collection_view import resource_sets
from services.topology.service import NotFound


def build_tree(nodes: Iterable[MicrogridNodeRecord]) -> list[TopologyTreeNode]:
    """Nested first-level nodes; siblings by display_order, then name, then node_id (stable for UIs)."""
    children: dict[UUID | None, list[MicrogridNodeRecord]] = {}
    for node in nodes:
        children.setdefault(node.parent_node_id, []).append(node)

    def subtree(parent: UUID | None) -> list[TopologyTreeNode]:
        ordered = sorted(children.get(parent, ()), key=lambda n: (n.display_order, n.name, str(n.node_id)))
        return [TopologyTreeNode(**n.model_dump(), children=subtree(n.node_id)) for n in ordered]

    return subtree(None)


async def _microgrid(conn: asyncpg.Connection, microgrid_id: UUID) -> MicrogridRecord:
    microgrid = await microgrid_store.get_microgrid(conn, microgrid_id)
    if microgrid is None:
        raise NotFound(f"Microgrid {microgrid_id} not found")
    return microgrid


async def topology_view(*, conn: asyncpg.Connection, microgrid_id: UUID) -> TopologyView:
    async with conn.transaction(isolation="repeatable_read", readonly=True):  # one consistent version
        microgrid = await _microgrid(conn, microgrid_id)
        nodes = await microgrid_store.load_nodes(conn, microgrid_id)
        rules = await microgrid_store.load_fallback_rules(conn, microgrid_id)
    return TopologyView(microgrid=microgrid, nodes=build_tree(nodes), fallback_rules=rules)


async def collection_view(
    *, conn: asyncpg.Connection, microgrid_id: UUID, query: ResourceQuery | None = None
) -> CollectionView:
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        microgrid = await _microgrid(conn, microgrid_id)
        nodes = await microgrid_store.load_nodes(conn, microgrid_id)
    return CollectionView(microgrid=microgrid, resource_sets=resource_sets(microgrid, nodes, query))


async def depot_view(*, conn: asyncpg.Connection, depot_id: UUID) -> DepotMicrogridView:
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        microgrid = await microgrid_store.get_microgrid_of_depot(conn, depot_id)
        if microgrid is None:
            raise NotFound(f"Depot {depot_id} has no microgrid (resync it first)")
        mg_id = microgrid.microgrid_id
        nodes: Sequence[MicrogridNodeRecord] = await microgrid_store.load_nodes(conn, mg_id)
        return DepotMicrogridView(
            microgrid=microgrid,
            nodes=build_tree(nodes),
            fallback_rules=await microgrid_store.load_fallback_rules(conn, mg_id),
            active_envelopes=await read_models.active_envelopes(conn, mg_id),
            effective_circuit_capacities=await read_models.effective_capacities(conn, mg_id),
        )
