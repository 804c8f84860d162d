"""Depot layouts: the legacy feeder circuits and the electrical tree a scenario plays against.

A layout file (`simulator/scenarios/depots/<name>.yaml`) names everything by human names; the run's
`Identities` turn names into UUIDs. First-level GRID_CONNECTION nodes that name a `circuit` are the
managed ones: depot resync builds them from the feeder circuit, the simulator learns their node ids
from the topology service, and authors everything below them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.enums import NodeType

DEPOTS_DIR = Path(__file__).resolve().parent / "scenarios" / "depots"


class LayoutModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CircuitSpec(LayoutModel):
    """One legacy circuit as the circuit registry publishes it (legacy_circuit.circuit_updated)."""

    name: str
    parent: str | None = Field(default=None, description="Parent circuit name; none for a feeder circuit")
    default_capacity_watts: int = Field(ge=0)
    fail_safe_capacity_watts: int = Field(ge=0)


class NodeSpec(LayoutModel):
    name: str = Field(min_length=1, max_length=200)
    type: NodeType
    circuit: str | None = Field(default=None, description="Attached legacy circuit (CIRCUIT asset)")
    limit_watts: int | None = Field(default=None, ge=0, description="Baseline CONSUMPTION_CAP node limit")
    fallback_demand_watts: int | None = Field(default=None, ge=0, description="Fallback demand rule")
    forecast_source: str | None = Field(default=None, description="External forecast source targeting it")
    connectors: int = Field(default=0, ge=0, le=8, description="Shorthand: N CONNECTOR children '<name>/<i>'")
    max_watts: int | None = Field(default=None, ge=0, description="Connector: the charger's maximum power")
    min_watts: int = Field(default=1380, ge=0, description="Connector: lowest power a vehicle can charge at")
    generation_watts: int | None = Field(default=None, ge=0, description="POWER_SOURCE: peak generation")
    metered: bool = True
    children: list[NodeSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _shape(self) -> NodeSpec:
        if self.connectors and self.type is not NodeType.CHARGE_POINT:
            raise ValueError(f"{self.name}: only a CHARGE_POINT has connectors")
        if self.type is NodeType.CONNECTOR and self.children:
            raise ValueError(f"{self.name}: a CONNECTOR is a leaf")
        return self

    def expanded_children(self) -> list[NodeSpec]:
        generated = [
            NodeSpec(name=f"{self.name}/{i}", type=NodeType.CONNECTOR, max_watts=self.max_watts,
                     min_watts=self.min_watts)
            for i in range(1, self.connectors + 1)
        ]
        return [*self.children, *generated]


class ForecastSourceSpec(LayoutModel):
    """An external forecast source (OSCP-like), configured as an EXTERNAL control point on a node."""

    name: str
    node: str


class DepotLayout(LayoutModel):
    name: str
    description: str = ""
    aggregate_cap_watts: int | None = Field(default=None, ge=0)
    circuits: list[CircuitSpec] = Field(default_factory=list)
    tree: list[NodeSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> DepotLayout:
        circuits = {c.name for c in self.circuits}
        names: set[str] = set()
        for placed in walk(self.tree):
            node = placed.node
            if node.name in names:
                raise ValueError(f"node name {node.name!r} is used twice")
            names.add(node.name)
            if node.circuit is not None and node.circuit not in circuits:
                raise ValueError(f"{node.name}: unknown circuit {node.circuit!r}")
        for top in self.tree:
            if top.type is not NodeType.GRID_CONNECTION:
                raise ValueError(f"{top.name}: first-level nodes are GRID_CONNECTIONs")
        for c in self.circuits:
            if c.parent is not None and c.parent not in circuits:
                raise ValueError(f"circuit {c.name}: unknown parent {c.parent!r}")
        return self

    # -- derived views ------------------------------------------------------------------------

    def nodes(self) -> list[PlacedNode]:
        return list(walk(self.tree))

    def node(self, name: str) -> PlacedNode:
        for placed in walk(self.tree):
            if placed.node.name == name:
                return placed
        raise KeyError(f"depot {self.name} has no node {name!r}")

    def circuit(self, name: str) -> CircuitSpec:
        for c in self.circuits:
            if c.name == name:
                return c
        raise KeyError(f"depot {self.name} has no circuit {name!r}")

    def managed_grid_connections(self) -> list[NodeSpec]:
        """First-level GRID_CONNECTIONs on a feeder circuit: built by resync, not by the operator."""
        return [n for n in self.tree if n.circuit is not None]

    def connectors(self) -> list[PlacedNode]:
        return [p for p in walk(self.tree) if p.node.type is NodeType.CONNECTOR]

    def forecast_sources(self) -> list[ForecastSourceSpec]:
        return [ForecastSourceSpec(name=p.node.forecast_source, node=p.node.name)
                for p in walk(self.tree) if p.node.forecast_source]

    def grid_connection_of(self, name: str) -> str:
        placed = self.node(name)
        return placed.path[0]

    def subtree(self, name: str) -> list[PlacedNode]:
        return [p for p in walk(self.tree) if name in p.path]


@dataclass(frozen=True)
class PlacedNode:
    """A node with its ancestry: `path` runs from its grid connection down to itself (names)."""

    node: NodeSpec
    parent: str | None
    path: tuple[str, ...]
    display_order: int


def walk(tree: list[NodeSpec]) -> Iterator[PlacedNode]:
    """Preorder, children in file order (connectors generated after explicit children)."""

    def visit(node: NodeSpec, parent: str | None, path: tuple[str, ...], order: int) -> Iterator[PlacedNode]:
        here = (*path, node.name)
        yield PlacedNode(node, parent, here, order)
        for i, child in enumerate(node.expanded_children()):
            yield from visit(child, node.name, here, i)

    for i, top in enumerate(tree):
        yield from visit(top, None, (), i)


def load_depot(name: str, directory: Path = DEPOTS_DIR) -> DepotLayout:
    path = directory / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in directory.glob("*.yaml")))
        raise FileNotFoundError(f"no depot layout {name!r} in {directory} (known: {known})")
    return DepotLayout.model_validate(yaml.safe_load(path.read_text()))
