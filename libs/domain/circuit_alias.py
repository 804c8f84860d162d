"""Legacy circuit alias resolution (ARCHITECTURE.md section 2, the Compatibility Matrix, Appendix A).

A legacy ``circuit_id`` resolves to the one node whose attached asset is that CIRCUIT; none or several
is a failure, never a guess (D-022). What the alias is resolved for decides the rule and the code:

- REBALANCE (legacy event, HTTP rebalance, periodic job): the scope may be any node; none or several
  matches -> CIRCUIT_ALIAS_NOT_RESOLVABLE.
- LIMIT (TOU limits, a schedule's scope): the spec maps it "to the target managed node", the managed
  scope anchor, a first-level GRID_CONNECTION node (built by depot resync). Several matches ->
  LEGACY_POLICY_SCOPE_AMBIGUOUS; none, or one that is not a managed grid connection ->
  LIMIT_SCOPE_TRANSLATION_FAILED.

Pure: the caller loads the candidate rows (the adapter from its alias read model, ids as UUIDs; the
cycle's callers from domain nodes with `alias_rows`, ids as strings) and this decides.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar
from uuid import UUID

from contracts.enums import AssetType, NodeType, ReasonCode
from libs.domain.effective_constraints import managed_circuit_id
from libs.domain.topology import MicrogridNode

Id = TypeVar("Id", str, UUID)


class AliasScope(StrEnum):
    """What the alias is resolved for: it decides the rule and which Appendix A code a failure carries."""

    REBALANCE = "REBALANCE"  # legacy event, HTTP rebalance, periodic job
    LIMIT = "LIMIT"  # TOU limits: the circuit's schedule scope


@dataclass(frozen=True, slots=True)
class AliasRow(Generic[Id]):
    """One microgrid node with an attached CIRCUIT asset, as the latest topology shows it."""

    circuit_id: Id
    microgrid_id: Id
    node_id: Id
    node_type: NodeType
    managed: bool = False


@dataclass(frozen=True, slots=True)
class AliasTarget(Generic[Id]):
    circuit_id: Id
    microgrid_id: Id
    node_id: Id
    node_type: NodeType
    managed: bool


@dataclass(frozen=True, slots=True)
class AliasFailure(Generic[Id]):
    circuit_id: Id
    reason_code: ReasonCode
    detail: str
    candidates: tuple[tuple[Id, Id], ...] = ()  # (microgrid_id, node_id) of every match

    @property
    def node_ids(self) -> tuple[Id, ...]:
        return tuple(node_id for _, node_id in self.candidates)


def resolve_circuit_alias(
    circuit_id: Id, rows: Iterable[AliasRow[Id]], scope: AliasScope = AliasScope.REBALANCE
) -> AliasTarget[Id] | AliasFailure[Id]:
    """Exactly one node carrying the circuit resolves (for LIMIT, a managed grid connection); else a failure.

    The same node listed twice is one match; candidates are in a stable order.
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
    # Spec: "Managed scope anchors are represented by GRID_CONNECTION nodes".
    if limit and not (row.managed and row.node_type is NodeType.GRID_CONNECTION):
        return AliasFailure(
            circuit_id,
            ReasonCode.LIMIT_SCOPE_TRANSLATION_FAILED,
            f"the circuit is attached to {'a managed' if row.managed else 'an unmanaged'} {row.node_type.value}"
            " node, not to a managed grid connection",
            candidates,
        )
    return AliasTarget(circuit_id, row.microgrid_id, row.node_id, row.node_type, row.managed)


def alias_rows(nodes: Iterable[MicrogridNode], circuit_id: str) -> list[AliasRow[str]]:
    """The domain nodes that carry ``circuit_id``, as alias rows (managed: a first-level grid connection)."""
    return [
        AliasRow(circuit_id, n.microgrid_id, n.node_id, n.node_type, managed=managed_circuit_id(n) == circuit_id)
        for n in nodes
        if n.attached_asset_type is AssetType.CIRCUIT and n.attached_asset_id == circuit_id
    ]
