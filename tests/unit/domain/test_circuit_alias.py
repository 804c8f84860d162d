from dataclasses import replace

import pytest

from contracts.enums import AssetType
from contracts.enums import ReasonCode as RC
from libs.domain.circuit_alias import resolve_circuit_alias, resolve_policy_scope
from tests.unit.domain.scenario import depot_nodes


@pytest.mark.req("FR-010")
def test_a_legacy_circuit_resolves_to_the_one_node_that_references_it():
    got = resolve_circuit_alias(depot_nodes(), "feeder-1")
    assert (got.node_id, got.reason_code) == ("gc1", None)
    assert resolve_policy_scope(depot_nodes(), "feeder-1").node_id == "gc1"


def test_unknown_legacy_circuit_is_not_resolvable():
    # Edge case: "Legacy circuit ID has no resolvable microgrid alias."
    got = resolve_circuit_alias(depot_nodes(), "feeder-404")
    assert (got.resolved, got.reason_code, got.matching_node_ids) == (False, RC.CIRCUIT_ALIAS_NOT_RESOLVABLE, ())
    assert resolve_policy_scope(depot_nodes(), "feeder-404").reason_code is RC.LIMIT_SCOPE_TRANSLATION_FAILED


def test_a_circuit_referenced_twice_is_not_guessed():
    nodes = depot_nodes()
    nodes[1] = replace(nodes[1], attached_asset_type=AssetType.CIRCUIT, attached_asset_id="feeder-1")
    assert resolve_circuit_alias(nodes, "feeder-1").reason_code is RC.CIRCUIT_ALIAS_NOT_RESOLVABLE
    ambiguous = resolve_policy_scope(nodes, "feeder-1")
    assert (ambiguous.reason_code, ambiguous.matching_node_ids) == (RC.LEGACY_POLICY_SCOPE_AMBIGUOUS, ("c1", "gc1"))


def test_tou_scope_must_be_a_managed_grid_connection():
    nodes = depot_nodes()
    nodes[1] = replace(nodes[1], attached_asset_type=AssetType.CIRCUIT, attached_asset_id="sub-7")
    assert resolve_circuit_alias(nodes, "sub-7").node_id == "c1"  # rebalance scope may be any subtree
    assert resolve_policy_scope(nodes, "sub-7").reason_code is RC.LIMIT_SCOPE_TRANSLATION_FAILED
