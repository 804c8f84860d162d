"""Versioned topology edits: a batch is checked as a whole against the version it was authored on.

Either every edit applies and the result satisfies every tree invariant (version + 1), or nothing
applies and the rejection says why: ``TOPOLOGY_VERSION_CONFLICT`` with expected and actual
versions (HTTP 409), or ``TOPOLOGY_INVALID`` with each rule broken and the nodes involved (422).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from contracts.enums import AssetType, NodeStatus, ReasonCode
from libs.domain.topology import (
    Microgrid,
    MicrogridNode,
    TopologyRule,
    TopologyViolation,
    validate_topology,
)


@dataclass(frozen=True, slots=True)
class AddNode:
    node: MicrogridNode


@dataclass(frozen=True, slots=True)
class RemoveNode:
    node_id: str


@dataclass(frozen=True, slots=True)
class ReparentNode:
    node_id: str
    new_parent_node_id: str | None


@dataclass(frozen=True, slots=True)
class AttachAsset:
    """Attach (or, with both fields None, detach) the source asset a node references."""

    node_id: str
    asset_type: AssetType | None
    asset_id: str | None


@dataclass(frozen=True, slots=True)
class ChangeNodeStatus:
    node_id: str
    status: NodeStatus


TopologyEdit = AddNode | RemoveNode | ReparentNode | AttachAsset | ChangeNodeStatus


@dataclass(frozen=True, slots=True)
class TopologyEditResult:
    accepted: bool
    microgrid: Microgrid
    nodes: tuple[MicrogridNode, ...]
    reason_code: ReasonCode | None = None
    violations: tuple[TopologyViolation, ...] = ()
    expected_version: int | None = None
    actual_version: int | None = None


def apply_topology_edits(
    microgrid: Microgrid,
    nodes: Iterable[MicrogridNode],
    edits: Sequence[TopologyEdit],
    authored_version: int,
    foreign_node_ids: Mapping[str, str] | None = None,
) -> TopologyEditResult:
    """Apply ``edits`` in order to the current topology, all or nothing."""
    current = tuple(nodes)
    if authored_version != microgrid.version:
        return _conflict(microgrid, current, authored_version)
    by_id = {n.node_id: n for n in current}
    edit_violations: list[TopologyViolation] = []
    for edit in edits:
        if isinstance(edit, AddNode):
            if edit.node.node_id in by_id:
                edit_violations.append(
                    TopologyViolation(TopologyRule.DUPLICATE_NODE_ID, (edit.node.node_id,), "node already exists")
                )
            else:
                by_id[edit.node.node_id] = edit.node
            continue
        node = by_id.get(edit.node_id)
        if node is None:
            edit_violations.append(
                TopologyViolation(
                    TopologyRule.UNKNOWN_NODE, (edit.node_id,), f"{type(edit).__name__} names an unknown node"
                )
            )
        elif isinstance(edit, RemoveNode):
            del by_id[edit.node_id]
        elif isinstance(edit, ReparentNode):
            by_id[edit.node_id] = replace(node, parent_node_id=edit.new_parent_node_id)
        elif isinstance(edit, AttachAsset):
            by_id[edit.node_id] = replace(node, attached_asset_type=edit.asset_type, attached_asset_id=edit.asset_id)
        else:
            by_id[edit.node_id] = replace(node, status=edit.status)
    return _judge(microgrid, current, tuple(by_id.values()), edit_violations, foreign_node_ids)


def replace_topology(
    microgrid: Microgrid,
    current_nodes: Iterable[MicrogridNode],
    new_nodes: Iterable[MicrogridNode],
    authored_version: int,
    foreign_node_ids: Mapping[str, str] | None = None,
) -> TopologyEditResult:
    """Replace the whole node set, with the same version check and invariants as edits."""
    current = tuple(current_nodes)
    if authored_version != microgrid.version:
        return _conflict(microgrid, current, authored_version)
    return _judge(microgrid, current, tuple(new_nodes), [], foreign_node_ids)


def _conflict(microgrid: Microgrid, current: tuple[MicrogridNode, ...], authored: int) -> TopologyEditResult:
    return TopologyEditResult(
        accepted=False,
        microgrid=microgrid,
        nodes=current,
        reason_code=ReasonCode.TOPOLOGY_VERSION_CONFLICT,
        expected_version=authored,
        actual_version=microgrid.version,
    )


def _judge(
    microgrid: Microgrid,
    current: tuple[MicrogridNode, ...],
    candidate: tuple[MicrogridNode, ...],
    edit_violations: list[TopologyViolation],
    foreign_node_ids: Mapping[str, str] | None,
) -> TopologyEditResult:
    violations = tuple(edit_violations) + validate_topology(microgrid, candidate, foreign_node_ids)
    if violations:
        return TopologyEditResult(
            accepted=False,
            microgrid=microgrid,
            nodes=current,
            reason_code=ReasonCode.TOPOLOGY_INVALID,
            violations=violations,
            expected_version=microgrid.version,
            actual_version=microgrid.version,
        )
    ordered = tuple(sorted(candidate, key=lambda n: n.node_id))
    return TopologyEditResult(accepted=True, microgrid=replace(microgrid, version=microgrid.version + 1), nodes=ordered)
