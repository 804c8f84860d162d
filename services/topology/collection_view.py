"""The operational collection view (FR-018): resource sets selected by the domain's `select_resources`.

Without a query the view offers the sets an energy-management client usually starts from: every node
type over the whole microgrid, and every node type within each first-level GRID_CONNECTION subtree.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from contracts.api.topology import ResourceQuery, ResourceSet
from contracts.enums import NodeType
from contracts.records import MicrogridNodeRecord, MicrogridRecord
from libs.domain import collection_view as domain
from libs.domain.from_records import domain_microgrid, domain_node


def resource_sets(
    microgrid: MicrogridRecord, nodes: Sequence[MicrogridNodeRecord], query: ResourceQuery | None = None
) -> list[ResourceSet]:
    if query is not None:
        return [_select(microgrid, nodes, "query", query)]
    roots = sorted((n.node_id for n in nodes if n.parent_node_id is None), key=str)
    wanted = [(f"node_type:{t.value}", ResourceQuery(node_types=[t])) for t in NodeType] + [
        (f"subtree:{root}:node_type:{t.value}", ResourceQuery(subtree_root_node_id=root, node_types=[t]))
        for root in roots
        for t in NodeType
    ]
    sets = (_select(microgrid, nodes, key, q) for key, q in wanted)
    return [s for s in sets if s.node_ids]


def _select(
    microgrid: MicrogridRecord, nodes: Sequence[MicrogridNodeRecord], key: str, query: ResourceQuery
) -> ResourceSet:
    picked = domain.select_resources(
        domain_microgrid(microgrid),
        [domain_node(n) for n in nodes],
        domain.ResourceQuery(
            subtree_root_id=str(query.subtree_root_node_id) if query.subtree_root_node_id else None,
            node_types=frozenset(query.node_types),
            attached_asset_types=frozenset(query.attached_asset_types),
            statuses=frozenset(query.statuses),
        ),
    )
    return ResourceSet(key=key, query=query, node_ids=[UUID(i) for i in picked.node_ids])
