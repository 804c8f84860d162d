"""The circuit alias rule: exactly one node carrying the circuit resolves; anything else fails with the
Compatibility Matrix's reason code for that door."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from contracts.enums import NodeType, ReasonCode
from services.compatibility_adapter.alias_resolution import (
    AliasFailure,
    AliasRow,
    AliasScope,
    AliasTarget,
    resolve_circuit_alias,
)

CIRCUIT = UUID("00000000-0000-0000-0000-0000000000c1")
OTHER = UUID("00000000-0000-0000-0000-0000000000c2")


def row(circuit: UUID = CIRCUIT, node_type: NodeType = NodeType.GRID_CONNECTION, **kw: object) -> AliasRow:
    return AliasRow(
        circuit_id=circuit,
        microgrid_id=kw.pop("microgrid_id", uuid4()),  # type: ignore[arg-type]
        node_id=kw.pop("node_id", uuid4()),
        node_type=node_type,
        managed=True,
    )  # type: ignore[arg-type]


@pytest.mark.req("FR-015")
@pytest.mark.parametrize("scope", list(AliasScope))
def test_exactly_one_node_resolves_to_its_microgrid_and_node(scope: AliasScope) -> None:
    target_row = row()
    result = resolve_circuit_alias(CIRCUIT, [target_row, row(OTHER)], scope)
    assert result == AliasTarget(CIRCUIT, target_row.microgrid_id, target_row.node_id, NodeType.GRID_CONNECTION, True)


@pytest.mark.req("FR-016", "NFR-006")
@pytest.mark.parametrize(
    ("scope", "reason"),
    [
        (AliasScope.REBALANCE, ReasonCode.CIRCUIT_ALIAS_NOT_RESOLVABLE),
        (AliasScope.LIMIT, ReasonCode.LIMIT_SCOPE_TRANSLATION_FAILED),
    ],
)
def test_unmapped_circuit_fails_with_the_doors_reason_code(scope: AliasScope, reason: ReasonCode) -> None:
    result = resolve_circuit_alias(CIRCUIT, [row(OTHER)], scope)
    assert isinstance(result, AliasFailure)
    assert result.reason_code == reason
    assert result.candidates == ()


@pytest.mark.req("FR-016", "NFR-006")
@pytest.mark.parametrize(
    ("scope", "reason"),
    [
        (AliasScope.REBALANCE, ReasonCode.CIRCUIT_ALIAS_NOT_RESOLVABLE),
        (AliasScope.LIMIT, ReasonCode.LEGACY_POLICY_SCOPE_AMBIGUOUS),
    ],
)
def test_circuit_on_several_nodes_fails_instead_of_guessing(scope: AliasScope, reason: ReasonCode) -> None:
    rows = [row(), row()]
    result = resolve_circuit_alias(CIRCUIT, rows, scope)
    assert isinstance(result, AliasFailure)
    assert result.reason_code == reason
    assert sorted(result.candidates) == sorted((r.microgrid_id, r.node_id) for r in rows)


def test_the_same_node_listed_twice_is_one_match() -> None:
    mg, node = uuid4(), uuid4()
    result = resolve_circuit_alias(CIRCUIT, [row(microgrid_id=mg, node_id=node)] * 2)
    assert isinstance(result, AliasTarget)


@pytest.mark.req("FR-016")
@pytest.mark.parametrize("node_type", [NodeType.CHARGE_POINT, NodeType.CONNECTOR, NodeType.VIRTUAL])
def test_a_limit_needs_a_node_that_can_carry_one(node_type: NodeType) -> None:
    result = resolve_circuit_alias(CIRCUIT, [row(node_type=node_type)], AliasScope.LIMIT)
    assert isinstance(result, AliasFailure)
    assert result.reason_code == ReasonCode.LIMIT_SCOPE_TRANSLATION_FAILED
    # A rebalance only needs the scope, whatever the node is.
    assert isinstance(resolve_circuit_alias(CIRCUIT, [row(node_type=node_type)]), AliasTarget)


def test_failure_lists_candidates_in_a_stable_order() -> None:
    rows = [row() for _ in range(4)]
    first = resolve_circuit_alias(CIRCUIT, rows)
    second = resolve_circuit_alias(CIRCUIT, list(reversed(rows)))
    assert first == second
