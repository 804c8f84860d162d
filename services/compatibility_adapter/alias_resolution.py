"""The circuit alias rule: a legacy circuit_id names exactly one microgrid_id + node_id, or fails.

Pure: the caller loads the alias rows (nodes whose attached asset is a CIRCUIT, from the topology
events) and this decides. ARCHITECTURE.md section 2, Compatibility Matrix, Appendix A.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from contracts.enums import NodeType, ReasonCode

# Nodes a TOU_LIMIT (a consumption cap) can sit on: the managed feeder node or a circuit node below it.
# A CIRCUIT asset attached to a charge point, connector, power source or virtual node is not a limit scope.
LIMIT_SCOPE_NODE_TYPES = frozenset({NodeType.GRID_CONNECTION, NodeType.CIRCUIT})


class AliasScope(StrEnum):
    """What the alias is resolved for: it decides which Appendix A code a failure carries."""

    REBALANCE = "REBALANCE"  # legacy event, HTTP rebalance, periodic job
    LIMIT = "LIMIT"  # TOU limits: the circuit's schedule scope


@dataclass(frozen=True, slots=True)
class AliasRow:
    """One microgrid node with an attached CIRCUIT asset, as the latest topology shows it."""

    circuit_id: UUID
    microgrid_id: UUID
    node_id: UUID
    node_type: NodeType
    managed: bool = False


@dataclass(frozen=True, slots=True)
class AliasTarget:
    circuit_id: UUID
    microgrid_id: UUID
    node_id: UUID
    node_type: NodeType
    managed: bool


@dataclass(frozen=True, slots=True)
class AliasFailure:
    circuit_id: UUID
    reason_code: ReasonCode
    detail: str
    candidates: tuple[tuple[UUID, UUID], ...] = ()  # (microgrid_id, node_id) of every match


def resolve_circuit_alias(
    circuit_id: UUID, rows: Iterable[AliasRow], scope: AliasScope = AliasScope.REBALANCE
) -> AliasTarget | AliasFailure:
    """Exactly one node carrying the circuit resolves; none or several fail deterministically (D-022).

    REBALANCE: none or several -> CIRCUIT_ALIAS_NOT_RESOLVABLE.
    LIMIT: none, or a node that cannot carry a limit -> LIMIT_SCOPE_TRANSLATION_FAILED;
           several -> LEGACY_POLICY_SCOPE_AMBIGUOUS.
    """
    matches = sorted(
        {(r.microgrid_id, r.node_id): r for r in rows if r.circuit_id == circuit_id}.values(),
        key=lambda r: (str(r.microgrid_id), str(r.node_id)),
    )
    candidates = tuple((r.microgrid_id, r.node_id) for r in matches)
    limit = scope is AliasScope.LIMIT
    if not matches:
        reason = ReasonCode.LIMIT_SCOPE_TRANSLATION_FAILED if limit else ReasonCode.CIRCUIT_ALIAS_NOT_RESOLVABLE
        return AliasFailure(circuit_id, reason, "no microgrid node is attached to this circuit")
    if len(matches) > 1:
        reason = ReasonCode.LEGACY_POLICY_SCOPE_AMBIGUOUS if limit else ReasonCode.CIRCUIT_ALIAS_NOT_RESOLVABLE
        return AliasFailure(
            circuit_id, reason, f"{len(matches)} microgrid nodes are attached to this circuit", candidates
        )
    (row,) = matches
    if limit and row.node_type not in LIMIT_SCOPE_NODE_TYPES:
        return AliasFailure(
            circuit_id,
            ReasonCode.LIMIT_SCOPE_TRANSLATION_FAILED,
            f"the circuit is attached to a {row.node_type.value} node, which cannot carry a limit",
            candidates,
        )
    return AliasTarget(circuit_id, row.microgrid_id, row.node_id, row.node_type, row.managed)
