"""Legacy circuit alias resolution (ARCHITECTURE.md section 2): circuit_id -> microgrid node.

A legacy ``circuit_id`` resolves to the one node whose attached asset is that CIRCUIT. No match, or
several, is a failure with the Appendix A reason code; the compatibility adapter does the I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from contracts.enums import AssetType, ReasonCode
from libs.domain.effective_constraints import managed_circuit_id
from libs.domain.topology import MicrogridNode


@dataclass(frozen=True, slots=True)
class AliasResolution:
    circuit_id: str
    node_id: str | None
    reason_code: ReasonCode | None
    matching_node_ids: tuple[str, ...]

    @property
    def resolved(self) -> bool:
        return self.node_id is not None


def resolve_circuit_alias(nodes: Iterable[MicrogridNode], circuit_id: str) -> AliasResolution:
    """For rebalance and scheduler paths: zero or several matches -> CIRCUIT_ALIAS_NOT_RESOLVABLE."""
    matches = _matches(nodes, circuit_id)
    if len(matches) == 1:
        return AliasResolution(circuit_id, matches[0].node_id, None, (matches[0].node_id,))
    return AliasResolution(circuit_id, None, ReasonCode.CIRCUIT_ALIAS_NOT_RESOLVABLE, tuple(m.node_id for m in matches))


def resolve_policy_scope(nodes: Iterable[MicrogridNode], circuit_id: str) -> AliasResolution:
    """For TOU limits: the target must be one managed first-level GRID_CONNECTION node.

    Several candidates -> LEGACY_POLICY_SCOPE_AMBIGUOUS; none, or a node that is not a managed
    grid connection -> LIMIT_SCOPE_TRANSLATION_FAILED.
    """
    matches = _matches(nodes, circuit_id)
    ids = tuple(m.node_id for m in matches)
    if len(matches) > 1:
        return AliasResolution(circuit_id, None, ReasonCode.LEGACY_POLICY_SCOPE_AMBIGUOUS, ids)
    if not matches or managed_circuit_id(matches[0]) != circuit_id:
        return AliasResolution(circuit_id, None, ReasonCode.LIMIT_SCOPE_TRANSLATION_FAILED, ids)
    return AliasResolution(circuit_id, matches[0].node_id, None, ids)


def _matches(nodes: Iterable[MicrogridNode], circuit_id: str) -> list[MicrogridNode]:
    found = [n for n in nodes if n.attached_asset_type is AssetType.CIRCUIT and n.attached_asset_id == circuit_id]
    return sorted(found, key=lambda n: n.node_id)
