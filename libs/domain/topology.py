"""Microgrid topology: the node tree and its invariants.

The tree is authoritative physical topology: the Microgrid is the implicit root, first-level nodes
(``parent_node_id = None``) are GRID_CONNECTIONs, and every other node hangs below one of them.
`validate_topology` checks a whole node set at once and names every rule broken with the nodes
involved; `TopologyIndex` is the same walk kept for the balancing cycle (preorder, subtree ranges).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from contracts.enums import AssetType, NodeStatus, NodeType
from libs.domain.memo import MicrogridMemo


@dataclass(frozen=True, slots=True)
class Microgrid:
    microgrid_id: str
    depot_id: str
    version: int


@dataclass(frozen=True, slots=True)
class MicrogridNode:
    node_id: str
    microgrid_id: str
    parent_node_id: str | None
    name: str
    node_type: NodeType
    attached_asset_type: AssetType | None = None
    attached_asset_id: str | None = None
    status: NodeStatus = NodeStatus.ACTIVE
    display_order: int = 0


# Which node types each node type may hang under (the spec's model: a grid connection feeds circuits
# and charge points, a charge point holds connectors). Types not listed may sit under anything but a
# CONNECTOR, which is a leaf. First-level nodes are GRID_CONNECTIONs (FIRST_LEVEL_NOT_GRID_CONNECTION).
# A VIRTUAL node only groups: the rule looks through it to the nearest physical node above.
ALLOWED_PARENT_TYPES: dict[NodeType, frozenset[NodeType]] = {
    NodeType.GRID_CONNECTION: frozenset(),
    NodeType.CIRCUIT: frozenset({NodeType.GRID_CONNECTION, NodeType.CIRCUIT}),
    NodeType.CHARGE_POINT: frozenset({NodeType.CIRCUIT, NodeType.GRID_CONNECTION}),
    NodeType.CONNECTOR: frozenset({NodeType.CHARGE_POINT}),
}


class TopologyRule(StrEnum):
    """The tree invariant a rejected topology breaks (reported as ``violated_rule``)."""

    DUPLICATE_NODE_ID = "DUPLICATE_NODE_ID"
    NODE_IN_OTHER_MICROGRID = "NODE_IN_OTHER_MICROGRID"
    UNKNOWN_NODE = "UNKNOWN_NODE"
    FIRST_LEVEL_NOT_GRID_CONNECTION = "FIRST_LEVEL_NOT_GRID_CONNECTION"
    MISSING_GRID_CONNECTION = "MISSING_GRID_CONNECTION"
    ORPHAN_NODE = "ORPHAN_NODE"
    PARENT_TYPE_NOT_ALLOWED = "PARENT_TYPE_NOT_ALLOWED"
    CYCLE = "CYCLE"
    ASSET_REFERENCED_TWICE = "ASSET_REFERENCED_TWICE"
    ASSET_REFERENCE_INCOMPLETE = "ASSET_REFERENCE_INCOMPLETE"


@dataclass(frozen=True, slots=True)
class TopologyViolation:
    rule: TopologyRule
    node_ids: tuple[str, ...]
    detail: str


class TopologyIndex:
    """A validated walk of one node set: preorder positions, parents and subtree ranges.

    Children are visited in ``node_id`` order, so the preorder (and everything built on it) does not
    depend on the order the nodes were passed in. Nodes not reachable from a first-level node are
    left out of the walk and reported as violations.
    """

    __slots__ = (
        "nodes",
        "violations",
        "order",
        "position",
        "parent_pos",
        "subtree_end",
        "nodes_at",
        "types_at",
        "alloc_parent",
        "alloc_end",
        "alloc_node",
        "id_rank",
        "live_at",
        "live_connector",
        "inner",
        "connectors",
        "live_connectors",
        "first_level",
        "own_load_at",
    )

    def __init__(
        self,
        microgrid: Microgrid,
        nodes: Iterable[MicrogridNode],
        foreign_node_ids: Mapping[str, str] | None = None,
    ) -> None:
        violations: list[TopologyViolation] = []
        by_id: dict[str, MicrogridNode] = {}
        duplicates: set[str] = set()
        for node in sorted(nodes, key=_node_sort_key):
            if node.node_id in by_id:
                duplicates.add(node.node_id)
            else:
                by_id[node.node_id] = node
        for node_id in sorted(duplicates):
            violations.append(
                TopologyViolation(TopologyRule.DUPLICATE_NODE_ID, (node_id,), "node id appears more than once")
            )
        foreign = foreign_node_ids or {}
        children: dict[str | None, list[str]] = {}
        assets: dict[tuple[AssetType, str], list[str]] = {}
        for node_id, node in by_id.items():
            if node.microgrid_id != microgrid.microgrid_id:
                violations.append(_other_microgrid(node_id, node.microgrid_id))
            elif node_id in foreign:
                violations.append(_other_microgrid(node_id, foreign[node_id]))
            parent = node.parent_node_id
            if parent is None and node.node_type is not NodeType.GRID_CONNECTION:
                violations.append(
                    TopologyViolation(
                        TopologyRule.FIRST_LEVEL_NOT_GRID_CONNECTION,
                        (node_id,),
                        f"first-level node is {node.node_type.value}, must be GRID_CONNECTION",
                    )
                )
            if parent is not None and parent not in by_id:
                violations.append(
                    TopologyViolation(
                        TopologyRule.ORPHAN_NODE,
                        (node_id, parent),
                        f"parent {parent} is not a node of this microgrid",
                    )
                )
            elif parent is not None:
                above = _physical_parent(by_id, by_id[parent])
                allowed = ALLOWED_PARENT_TYPES.get(node.node_type)
                if above is not None and (
                    above.node_type is NodeType.CONNECTOR or (allowed is not None and above.node_type not in allowed)
                ):
                    violations.append(_parent_type(node, above))
            children.setdefault(parent, []).append(node_id)
            if (node.attached_asset_type is None) != (node.attached_asset_id is None):
                violations.append(
                    TopologyViolation(
                        TopologyRule.ASSET_REFERENCE_INCOMPLETE,
                        (node_id,),
                        "attached_asset_type and attached_asset_id must be set together",
                    )
                )
            elif node.attached_asset_type is not None:
                assets.setdefault((node.attached_asset_type, node.attached_asset_id), []).append(node_id)  # type: ignore[arg-type]
        for (asset_type, asset_id), holders in sorted(assets.items()):
            if len(holders) > 1:
                violations.append(
                    TopologyViolation(
                        TopologyRule.ASSET_REFERENCED_TWICE,
                        tuple(holders),
                        f"{asset_type.value} {asset_id} is referenced by {len(holders)} nodes",
                    )
                )
        if not any(by_id[n].node_type is NodeType.GRID_CONNECTION for n in children.get(None, ())):
            violations.append(
                TopologyViolation(
                    TopologyRule.MISSING_GRID_CONNECTION, (), "the microgrid has no first-level GRID_CONNECTION"
                )
            )

        # Preorder walk from the first-level nodes; children lists are already in node_id order.
        order: list[str] = []
        parent_pos: list[int] = []
        subtree_end: list[int] = []
        position: dict[str, int] = {}
        stack: list[tuple[str, int]] = [(n, -1) for n in reversed(children.get(None, ()))]
        while stack:
            node_id, ppos = stack.pop()
            position[node_id] = len(order)
            order.append(node_id)
            parent_pos.append(ppos)
            subtree_end.append(0)
            kids = children.get(node_id)
            if kids:
                me = len(order) - 1
                stack.extend((k, me) for k in reversed(kids))
        for pos in range(len(order) - 1, -1, -1):
            end = subtree_end[pos] or pos + 1
            subtree_end[pos] = end
            ppos = parent_pos[pos]
            if ppos >= 0 and subtree_end[ppos] < end:
                subtree_end[ppos] = end
        if len(order) < len(by_id):
            violations.extend(_cycles(by_id, position))

        self.nodes = by_id
        self.violations = tuple(sorted(violations, key=_violation_sort_key))
        self.order = order
        self.position = position
        self.parent_pos = parent_pos
        self.subtree_end = subtree_end
        # Compiled once with the index (see `compiled_topology`), for the cycle's per-position work:
        self.nodes_at = [by_id[node_id] for node_id in order]  # the node at each preorder position
        self.types_at = [node.node_type for node in self.nodes_at]
        # The allocation tree: position 0 is the microgrid (aggregate caps), the node at p is p + 1.
        self.alloc_parent = [-1, *(p + 1 for p in parent_pos)]
        self.alloc_end = [len(order) + 1, *(e + 1 for e in subtree_end)]
        self.alloc_node = list(range(1, len(order) + 1))  # kept as ints: a cycle's request columns share them
        self.id_rank = [0] * len(order)  # each position's rank in node_id order (the tie-break order)
        for rank, node_id in enumerate(by_id):  # by_id was filled in node_id order
            at = position.get(node_id)
            if at is not None:
                self.id_rank[at] = rank
        # Static per version, for the cycle's walks: whether each node and every ancestor is ACTIVE, the
        # live connectors (what an unscoped cycle controls), and the positions of the connectors (leaves
        # of a valid tree) and of every other node, each in preorder.
        live_at = [False] * len(order)
        for pos, node in enumerate(self.nodes_at):
            ppos = parent_pos[pos]
            live_at[pos] = (ppos < 0 or live_at[ppos]) and node.status is NodeStatus.ACTIVE
        self.live_at = live_at
        is_connector = [node.node_type is NodeType.CONNECTOR for node in self.nodes_at]
        self.live_connector = [a and b for a, b in zip(live_at, is_connector, strict=True)]
        self.inner = [pos for pos, c in enumerate(is_connector) if not c]
        self.connectors = [pos for pos, c in enumerate(is_connector) if c]
        self.live_connectors = [pos for pos in self.connectors if live_at[pos]]
        self.first_level = [pos for pos, p in enumerate(parent_pos) if p < 0]
        # Nodes whose base is more than their children's even unmetered: a connector (its request, when
        # the cycle does not control it) and a power source (its generation).
        own_load = (NodeType.CONNECTOR, NodeType.POWER_SOURCE)
        self.own_load_at = [kind in own_load for kind in self.types_at]

    @property
    def valid(self) -> bool:
        return not self.violations

    def ancestors(self, node_id: str) -> list[str]:
        """Strict ancestors, nearest first."""
        out: list[str] = []
        pos = self.parent_pos[self.position[node_id]]
        while pos >= 0:
            out.append(self.order[pos])
            pos = self.parent_pos[pos]
        return out

    def subtree(self, node_id: str) -> list[str]:
        """The node and its descendants, in preorder."""
        pos = self.position[node_id]
        return self.order[pos : self.subtree_end[pos]]

    def is_in_subtree(self, node_id: str, root_id: str) -> bool:
        root = self.position[root_id]
        pos = self.position.get(node_id, -1)
        return root <= pos < self.subtree_end[root]


# Per microgrid (one version each: a new version replaces the old), bounded by the nodes kept (memo.py).
_COMPILED: MicrogridMemo[str, tuple[tuple[MicrogridNode, ...], Microgrid, TopologyIndex]] = MicrogridMemo()


def compiled_topology(microgrid: Microgrid, nodes: tuple[MicrogridNode, ...]) -> TopologyIndex:
    """The `TopologyIndex` of ``nodes``, compiled once per microgrid and topology version.

    A memo, not state: the index is a pure function of its arguments and is never changed after it
    is built. It is reused while the same microgrid arrives at the same version with the same nodes
    (the same tuple, or an equal one: a version names one tree, but callers such as tests may reuse
    a version number for another tree, so equality is checked rather than assumed).
    """
    key = microgrid.microgrid_id
    hit = _COMPILED.get(key)
    if hit is not None and hit[1] == microgrid and (hit[0] is nodes or hit[0] == nodes):
        if hit[0] is not nodes:
            _COMPILED.put(key, (nodes, microgrid, hit[2]), len(nodes))  # next time the identity check suffices
        return hit[2]
    index = TopologyIndex(microgrid, nodes)
    _COMPILED.put(key, (nodes, microgrid, index), len(nodes))
    return index


def validate_topology(
    microgrid: Microgrid,
    nodes: Iterable[MicrogridNode],
    foreign_node_ids: Mapping[str, str] | None = None,
) -> tuple[TopologyViolation, ...]:
    """Every tree invariant the node set breaks; empty when the topology is valid.

    ``foreign_node_ids`` maps node ids already owned by another microgrid to that microgrid's id
    (the caller knows them; a node may belong to exactly one microgrid).
    """
    return TopologyIndex(microgrid, nodes, foreign_node_ids).violations


def _node_sort_key(node: MicrogridNode) -> tuple[str, str, str]:
    # A duplicate id keeps the same survivor whatever the input order.
    return (node.node_id, node.microgrid_id, node.parent_node_id or "")


def _physical_parent(by_id: dict[str, MicrogridNode], parent: MicrogridNode) -> MicrogridNode | None:
    """``parent``, or the nearest non-VIRTUAL node above it (None: none, or the chain loops or breaks)."""
    seen: set[str] = set()
    node: MicrogridNode | None = parent
    while node is not None and node.node_type is NodeType.VIRTUAL:
        if node.node_id in seen or node.parent_node_id is None:
            return None
        seen.add(node.node_id)
        node = by_id.get(node.parent_node_id)
    return node


def _parent_type(node: MicrogridNode, parent: MicrogridNode) -> TopologyViolation:
    kind, under = node.node_type, parent.node_type
    if under is NodeType.CONNECTOR:
        why = "a CONNECTOR is a leaf: nothing may sit under it"
    elif kind is NodeType.GRID_CONNECTION:
        why = "a GRID_CONNECTION sits only at the first level"
    else:
        names = " or ".join(sorted(t.value for t in ALLOWED_PARENT_TYPES[kind]))
        why = f"a {kind.value} sits only under a {names}"
    return TopologyViolation(
        TopologyRule.PARENT_TYPE_NOT_ALLOWED,
        (node.node_id, parent.node_id),
        f"{kind.value} under {under.value}: {why}",
    )


def _other_microgrid(node_id: str, other: str) -> TopologyViolation:
    return TopologyViolation(TopologyRule.NODE_IN_OTHER_MICROGRID, (node_id,), "node belongs to another microgrid")


def _cycles(by_id: dict[str, MicrogridNode], reached: dict[str, int]) -> list[TopologyViolation]:
    """Parent-pointer cycles among the nodes the walk did not reach (each reported once)."""
    out: list[TopologyViolation] = []
    settled: set[str] = set(reached)
    for start in by_id:
        if start in settled:
            continue
        path: list[str] = []
        on_path: set[str] = set()
        node_id: str | None = start
        while node_id is not None and node_id in by_id and node_id not in settled and node_id not in on_path:
            path.append(node_id)
            on_path.add(node_id)
            node_id = by_id[node_id].parent_node_id
        if node_id is not None and node_id in on_path:
            loop = path[path.index(node_id) :]
            first = loop.index(min(loop))  # start the reported loop at its smallest id, for stable output
            loop = loop[first:] + loop[:first]
            out.append(
                TopologyViolation(TopologyRule.CYCLE, tuple(loop), "parent links form a cycle: " + " -> ".join(loop))
            )
        settled.update(path)
    return out


def _violation_sort_key(v: TopologyViolation) -> tuple[int, tuple[str, ...]]:
    return (list(TopologyRule).index(v.rule), v.node_ids)
