"""Versioned topology edits: the operator's new node set is checked as a whole against the version it was
authored on (the topology service replaces the tree whole: POST /api/microgrid/{id}/topology).

Either the new tree satisfies every tree invariant (version + 1), or nothing changes and the rejection
says why: ``TOPOLOGY_VERSION_CONFLICT`` with expected and actual versions (HTTP 409), or
``TOPOLOGY_INVALID`` with each rule broken and the nodes involved (422).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from contracts.enums import ReasonCode
from libs.domain.topology import (
    Microgrid,
    MicrogridNode,
    TopologyViolation,
    validate_topology,
)


@dataclass(frozen=True, slots=True)
class TopologyEditResult:
    accepted: bool
    microgrid: Microgrid
    nodes: tuple[MicrogridNode, ...]
    reason_code: ReasonCode | None = None
    violations: tuple[TopologyViolation, ...] = ()
    expected_version: int | None = None
    actual_version: int | None = None


def replace_topology(
    microgrid: Microgrid,
    current_nodes: Iterable[MicrogridNode],
    new_nodes: Iterable[MicrogridNode],
    authored_version: int,
    foreign_node_ids: Mapping[str, str] | None = None,
) -> TopologyEditResult:
    """Replace the whole node set, all or nothing, if it was authored on the current version."""
    current = tuple(current_nodes)
    if authored_version != microgrid.version:
        return _conflict(microgrid, current, authored_version)
    return _judge(microgrid, current, tuple(new_nodes), foreign_node_ids)


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
    foreign_node_ids: Mapping[str, str] | None,
) -> TopologyEditResult:
    violations = validate_topology(microgrid, candidate, foreign_node_ids)
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
