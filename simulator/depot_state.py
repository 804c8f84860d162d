"""What the simulator knows about its depot during a run: names to ids, the microgrid, the tree version.

Authored things (circuits, charge points, connectors, control points) get their ids from the run's
`Identities`; the microgrid id and the managed GRID_CONNECTION node ids are the topology service's,
learned from its answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from contracts.api.topology import TopologyNodeInput
from contracts.enums import AssetType, NodeType
from simulator.depot import DepotLayout, NodeSpec
from simulator.identity import Identities
from simulator.scenario import UNKNOWN_CIRCUIT

ASSET_TYPE_OF_NODE = {
    NodeType.CHARGE_POINT: AssetType.CHARGE_POINT,
    NodeType.CONNECTOR: AssetType.CONNECTOR,
    NodeType.POWER_SOURCE: AssetType.POWER_SOURCE,
}
LOAD_BALANCING_CONTROL_POINT = "load-balancing"


@dataclass
class DepotState:
    layout: DepotLayout
    ids: Identities
    depot_id: UUID
    microgrid_id: UUID | None = None
    version: int = 0
    node_ids: dict[str, UUID] = field(default_factory=dict)
    # The operator's copy of the tree as last written or read (what the next edit is authored on).
    tree: list[TopologyNodeInput] = field(default_factory=list)

    @classmethod
    def create(cls, layout: DepotLayout, ids: Identities) -> DepotState:
        state = cls(layout=layout, ids=ids, depot_id=ids.of("depot", layout.name))
        for placed in layout.nodes():
            if placed.node.name not in {n.name for n in layout.managed_grid_connections()}:
                state.node_ids[placed.node.name] = ids.of("node", placed.node.name)
        return state

    # -- names <-> ids --------------------------------------------------------------------------

    def circuit_id(self, name: str) -> UUID:
        # The unknown circuit is still deterministic: a legacy producer names an id nobody registered.
        return self.ids.of("circuit", name if name != UNKNOWN_CIRCUIT else "never-registered")

    def node_id(self, name: str) -> UUID:
        try:
            return self.node_ids[name]
        except KeyError:
            raise KeyError(f"node {name!r} has no id yet (managed nodes get theirs from resync)") from None

    def node_name(self, node_id: UUID | str | None) -> str | None:
        if node_id is None:
            return None
        wanted = UUID(str(node_id))
        for name, known in self.node_ids.items():
            if known == wanted:
                return name
        return str(node_id)

    def circuit_name(self, circuit_id: UUID | str) -> str:
        wanted = UUID(str(circuit_id))
        for c in self.layout.circuits:
            if self.circuit_id(c.name) == wanted:
                return c.name
        if self.circuit_id(UNKNOWN_CIRCUIT) == wanted:
            return UNKNOWN_CIRCUIT
        return str(circuit_id)

    def control_point_id(self, name: str) -> UUID:
        return self.ids.of("control-point", name)

    def learn_managed_nodes(self, nodes: list[TopologyNodeInput]) -> None:
        """Map each managed grid connection (by its feeder circuit) to the node id resync gave it."""
        by_circuit = {n.attached_asset_id: n.node_id for n in nodes
                      if n.node_type is NodeType.GRID_CONNECTION and n.attached_asset_type is AssetType.CIRCUIT}
        for gc in self.layout.managed_grid_connections():
            assert gc.circuit is not None
            node_id = by_circuit.get(self.circuit_id(gc.circuit))
            if node_id is not None:
                self.node_ids[gc.name] = node_id

    # -- the authored tree ------------------------------------------------------------------------

    def authored_tree(self, managed: list[TopologyNodeInput]) -> list[TopologyNodeInput]:
        """The whole desired node list: resync's managed nodes as they are, plus every layout node."""
        managed_ids = {n.node_id for n in managed}
        nodes = list(managed)
        for placed in self.layout.nodes():
            node_id = self.node_id(placed.node.name)
            if node_id in managed_ids:
                continue
            nodes.append(self._node_input(placed.node, placed.parent, placed.display_order))
        return nodes

    def _node_input(self, node: NodeSpec, parent: str | None, order: int) -> TopologyNodeInput:
        asset_type, asset_id = None, None
        if node.circuit is not None:
            asset_type, asset_id = AssetType.CIRCUIT, self.circuit_id(node.circuit)
        elif node.type in ASSET_TYPE_OF_NODE:
            asset_type, asset_id = ASSET_TYPE_OF_NODE[node.type], self.ids.of("asset", node.name)
        return TopologyNodeInput(
            node_id=self.node_id(node.name),
            parent_node_id=self.node_id(parent) if parent else None,
            name=node.name,
            node_type=node.type,
            attached_asset_type=asset_type,
            attached_asset_id=asset_id,
            display_order=order,
        )
