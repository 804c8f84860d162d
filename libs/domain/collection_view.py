"""The operational collection view (FR-018, FR-019): resource sets, and the physical check of candidates.

Optimisation and energy-management code may work on flat sets of resources (all charge points in a
subtree, a logical group) without walking the tree. Whatever allocation it proposes is only a
candidate: `validate_candidate_allocation` checks it against the physical tree's limits, with the
same effective constraints and uncontrolled loads as the balancing cycle. Connectors the candidate
does not mention keep drawing (counted as load at no less than their request).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from contracts.enums import AssetType, ConstraintType, NodeStatus, NodeType
from libs.domain.cycle_inputs import CycleInputs
from libs.domain.physical_view import PhysicalView
from libs.domain.topology import Microgrid, MicrogridNode, TopologyIndex


@dataclass(frozen=True, slots=True)
class ResourceQuery:
    """Which resources to collect; every given filter must match (empty filters match everything)."""

    subtree_root_id: str | None = None
    node_types: frozenset[NodeType] = frozenset()
    attached_asset_types: frozenset[AssetType] = frozenset()
    statuses: frozenset[NodeStatus] = frozenset()
    group_member_ids: frozenset[str] | None = None  # a logical group defined outside the tree


@dataclass(frozen=True, slots=True)
class ResourceSet:
    query: ResourceQuery
    node_ids: tuple[str, ...]  # in tree preorder


def select_resources(microgrid: Microgrid, nodes: Iterable[MicrogridNode], query: ResourceQuery) -> ResourceSet:
    index = TopologyIndex(microgrid, nodes)
    if query.subtree_root_id is not None:
        if query.subtree_root_id not in index.position:
            return ResourceSet(query, ())
        candidates = index.subtree(query.subtree_root_id)
    else:
        candidates = index.order
    picked = []
    for node_id in candidates:
        node = index.nodes[node_id]
        if query.node_types and node.node_type not in query.node_types:
            continue
        if query.attached_asset_types and node.attached_asset_type not in query.attached_asset_types:
            continue
        if query.statuses and node.status not in query.statuses:
            continue
        if query.group_member_ids is not None and node_id not in query.group_member_ids:
            continue
        picked.append(node_id)
    return ResourceSet(query, tuple(picked))


class CandidateProblem(StrEnum):
    TOPOLOGY_INVALID = "TOPOLOGY_INVALID"
    UNKNOWN_NODE = "UNKNOWN_NODE"
    NOT_A_CONNECTOR = "NOT_A_CONNECTOR"
    NODE_UNAVAILABLE = "NODE_UNAVAILABLE"
    NEGATIVE_POWER = "NEGATIVE_POWER"
    BELOW_MINIMUM = "BELOW_MINIMUM"  # above 0 but below the connector's minimum: an unusable trickle
    CAP_EXCEEDED = "CAP_EXCEEDED"


@dataclass(frozen=True, slots=True)
class CandidateViolation:
    problem: CandidateProblem
    node_id: str | None  # None: the aggregate (or the whole topology)
    detail: str
    constraint_type: ConstraintType | None = None
    constraint_ref: str | None = None
    limit_watts: int | None = None
    resulting_watts: int | None = None


@dataclass(frozen=True, slots=True)
class CandidateValidation:
    violations: tuple[CandidateViolation, ...]

    @property
    def valid(self) -> bool:
        return not self.violations


def validate_candidate_allocation(inputs: CycleInputs, candidate: Mapping[str, int]) -> CandidateValidation:
    """Check a candidate ``{connector node_id: watts}`` against every physical cap before it may be applied."""
    index = TopologyIndex(inputs.microgrid, inputs.nodes)
    if not index.valid:
        rules = ", ".join(sorted({v.rule.value for v in index.violations}))
        return CandidateValidation(
            (CandidateViolation(CandidateProblem.TOPOLOGY_INVALID, None, f"topology is invalid: {rules}"),)
        )
    problems: list[CandidateViolation] = []
    usable: dict[str, int] = {}
    for node_id, watts in sorted(candidate.items()):
        node = index.nodes.get(node_id)
        if node is None or node_id not in index.position:
            problems.append(CandidateViolation(CandidateProblem.UNKNOWN_NODE, node_id, "not a node of this topology"))
        elif node.node_type is not NodeType.CONNECTOR:
            problems.append(
                CandidateViolation(
                    CandidateProblem.NOT_A_CONNECTOR, node_id, f"{node.node_type.value} is not allocatable"
                )
            )
        elif watts < 0:
            problems.append(CandidateViolation(CandidateProblem.NEGATIVE_POWER, node_id, f"{watts} W"))
        else:
            usable[node_id] = watts
    view = PhysicalView(inputs, index, usable.keys())
    mins = {d.node_id: d.min_watts for d in inputs.connector_demands}
    order = index.order
    n = len(order)
    load = [0] * n
    for node_id, watts in usable.items():
        pos = index.position[node_id]
        if watts > 0 and not view.controllable[pos]:
            problems.append(
                CandidateViolation(CandidateProblem.NODE_UNAVAILABLE, node_id, "node or an ancestor not ACTIVE")
            )
            continue
        if 0 < watts < mins.get(node_id, 0):
            problems.append(
                CandidateViolation(
                    CandidateProblem.BELOW_MINIMUM, node_id, f"{watts} W is below the minimum {mins[node_id]} W"
                )
            )
        load[pos] = watts
    for pos in range(n - 1, 0, -1):
        p = index.parent_pos[pos]
        if p >= 0:
            load[p] += load[pos]
    total = sum(load[pos] for pos in range(n) if index.parent_pos[pos] < 0)
    for pos in [-1, *range(n)]:
        room = view.headroom(pos)
        placed = total if pos < 0 else load[pos]
        if room is not None and placed > max(0, room.watts):
            c = room.constraint
            where = None if pos < 0 else order[pos]
            problems.append(
                CandidateViolation(
                    CandidateProblem.CAP_EXCEEDED,
                    where,
                    f"{placed} W placed where {c.constraint_type.value} {c.limit_watts} W "
                    f"leaves {max(0, room.watts)} W",
                    c.constraint_type,
                    c.binding.ref,
                    c.limit_watts,
                    placed,
                )
            )
    return CandidateValidation(tuple(problems))
