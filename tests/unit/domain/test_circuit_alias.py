"""The circuit alias rule: exactly one node carrying the circuit resolves; anything else fails with the
Compatibility Matrix's reason code for that door. One rule for the adapter (rows with UUIDs), the envelope
projection and the console's what-if (domain nodes, through `alias_rows`)."""

from __future__ import annotations

from dataclasses import replace
from uuid import UUID, uuid4

import pytest

from contracts.enums import AssetType, NodeType, ReasonCode
from contracts.enums import ReasonCode as RC
from libs.domain.circuit_alias import (
    AliasFailure,
    AliasRow,
    AliasScope,
    AliasTarget,
    alias_rows,
    resolve_circuit_alias,
)
from tests.unit.domain.scenario import depot_nodes

CIRCUIT = UUID("00000000-0000-0000-0000-0000000000c1")
OTHER = UUID("00000000-0000-0000-0000-0000000000c2")


def row(
    circuit: UUID = CIRCUIT, node_type: NodeType = NodeType.GRID_CONNECTION, managed: bool = True, **kw: UUID
) -> AliasRow[UUID]:
    return AliasRow(
        circuit_id=circuit,
        microgrid_id=kw.pop("microgrid_id", uuid4()),
        node_id=kw.pop("node_id", uuid4()),
        node_type=node_type,
        managed=managed,
    )


# ---- alias rows (the adapter's read model) -------------------------------------------------------------


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
@pytest.mark.parametrize(
    ("node_type", "managed"),
    [
        (NodeType.CIRCUIT, False),
        (NodeType.CHARGE_POINT, False),
        (NodeType.CONNECTOR, False),
        (NodeType.VIRTUAL, False),
        (NodeType.GRID_CONNECTION, False),  # an operator-authored grid connection is no managed scope
    ],
)
def test_a_limit_needs_the_managed_grid_connection(node_type: NodeType, managed: bool) -> None:
    result = resolve_circuit_alias(CIRCUIT, [row(node_type=node_type, managed=managed)], AliasScope.LIMIT)
    assert isinstance(result, AliasFailure)
    assert result.reason_code == ReasonCode.LIMIT_SCOPE_TRANSLATION_FAILED
    assert len(result.candidates) == 1 and result.detail
    # A rebalance only needs the scope, whatever the node is.
    assert isinstance(resolve_circuit_alias(CIRCUIT, [row(node_type=node_type, managed=managed)]), AliasTarget)


def test_failure_lists_candidates_in_a_stable_order() -> None:
    rows = [row() for _ in range(4)]
    first = resolve_circuit_alias(CIRCUIT, rows)
    second = resolve_circuit_alias(CIRCUIT, list(reversed(rows)))
    assert first == second


# ---- domain nodes (projection scope, what-if) ----------------------------------------------------------


@pytest.mark.req("FR-010")
def test_a_legacy_circuit_resolves_to_the_one_node_that_references_it():
    got = resolve_circuit_alias("feeder-1", alias_rows(depot_nodes(), "feeder-1"))
    assert isinstance(got, AliasTarget) and (got.node_id, got.managed) == ("gc1", True)
    limit = resolve_circuit_alias("feeder-1", alias_rows(depot_nodes(), "feeder-1"), AliasScope.LIMIT)
    assert isinstance(limit, AliasTarget) and limit.node_id == "gc1"


def test_unknown_legacy_circuit_is_not_resolvable():
    # Edge case: "Legacy circuit ID has no resolvable microgrid alias."
    got = resolve_circuit_alias("feeder-404", alias_rows(depot_nodes(), "feeder-404"))
    assert isinstance(got, AliasFailure)
    assert (got.reason_code, got.candidates) == (RC.CIRCUIT_ALIAS_NOT_RESOLVABLE, ())
    limit = resolve_circuit_alias("feeder-404", alias_rows(depot_nodes(), "feeder-404"), AliasScope.LIMIT)
    assert isinstance(limit, AliasFailure) and limit.reason_code is RC.LIMIT_SCOPE_TRANSLATION_FAILED


def test_a_circuit_referenced_twice_is_not_guessed():
    nodes = depot_nodes()
    nodes[1] = replace(nodes[1], attached_asset_type=AssetType.CIRCUIT, attached_asset_id="feeder-1")
    rows = alias_rows(nodes, "feeder-1")
    got = resolve_circuit_alias("feeder-1", rows)
    assert isinstance(got, AliasFailure) and got.reason_code is RC.CIRCUIT_ALIAS_NOT_RESOLVABLE
    ambiguous = resolve_circuit_alias("feeder-1", rows, AliasScope.LIMIT)
    assert isinstance(ambiguous, AliasFailure)
    assert (ambiguous.reason_code, ambiguous.node_ids) == (RC.LEGACY_POLICY_SCOPE_AMBIGUOUS, ("c1", "gc1"))


def test_tou_scope_must_be_a_managed_grid_connection():
    nodes = depot_nodes()
    nodes[1] = replace(nodes[1], attached_asset_type=AssetType.CIRCUIT, attached_asset_id="sub-7")
    rows = alias_rows(nodes, "sub-7")
    got = resolve_circuit_alias("sub-7", rows)
    assert isinstance(got, AliasTarget) and got.node_id == "c1"  # rebalance scope may be any subtree
    limit = resolve_circuit_alias("sub-7", rows, AliasScope.LIMIT)
    assert isinstance(limit, AliasFailure) and limit.reason_code is RC.LIMIT_SCOPE_TRANSLATION_FAILED
