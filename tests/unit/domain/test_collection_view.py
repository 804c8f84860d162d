from dataclasses import replace

import pytest

from contracts.enums import AssetType, NodeStatus, NodeType
from libs.domain.collection_view import (
    CandidateProblem,
    ResourceQuery,
    select_resources,
    validate_candidate_allocation,
)
from libs.domain.cycle import run_balancing_cycle
from libs.domain.limits import AggregateCap
from tests.unit.domain.scenario import MICROGRID, cycle_inputs, demand, depot_nodes, limit, node, reading

INPUTS = cycle_inputs(
    node_limits=(limit("c1", 30_000), limit("gc1", 50_000)),
    aggregate_caps=(AggregateCap("cp-lb", 45_000),),
    telemetry=(reading("c1", 8_000),),
    connector_demands=(demand("k1", 22_000, 6_000), demand("k2", 22_000), demand("k3", 22_000)),
)


@pytest.mark.req("FR-018")
def test_resource_sets_by_subtree_type_asset_status_and_group():
    nodes = depot_nodes()
    nodes[2] = replace(nodes[2], attached_asset_type=AssetType.CHARGE_POINT, attached_asset_id="cp-asset-1")
    nodes[6] = replace(nodes[6], status=NodeStatus.UNAVAILABLE)
    connectors = ResourceQuery(node_types=frozenset({NodeType.CONNECTOR}))
    assert select_resources(MICROGRID, nodes, connectors).node_ids == ("k1", "k2", "k3")
    in_c1 = replace(connectors, subtree_root_id="c1")
    assert select_resources(MICROGRID, nodes, in_c1).node_ids == ("k1", "k2")
    available = replace(connectors, statuses=frozenset({NodeStatus.ACTIVE}))
    assert select_resources(MICROGRID, nodes, available).node_ids == ("k1", "k2")
    assets = ResourceQuery(attached_asset_types=frozenset({AssetType.CHARGE_POINT}))
    assert select_resources(MICROGRID, nodes, assets).node_ids == ("cp1",)
    fleet_a = ResourceQuery(group_member_ids=frozenset({"k3", "k1", "ghost"}))
    assert select_resources(MICROGRID, nodes, fleet_a).node_ids == ("k1", "k3")
    assert select_resources(MICROGRID, nodes, ResourceQuery(subtree_root_id="ghost")).node_ids == ()


@pytest.mark.req("FR-019")
def test_the_cycles_own_allocation_passes_physical_validation():
    result = run_balancing_cycle(INPUTS)
    candidate = {
        n.node_id: n.allocated_watts for n in result.allocation_summary.nodes if n.node_type is NodeType.CONNECTOR
    }
    assert validate_candidate_allocation(INPUTS, candidate).valid


@pytest.mark.req("FR-019")
def test_a_candidate_over_any_physical_cap_is_refused_with_the_cap_named():
    verdict = validate_candidate_allocation(INPUTS, {"k1": 12_000, "k2": 12_000, "k3": 22_000})
    assert not verdict.valid
    found = {(v.problem, v.node_id, v.constraint_ref, v.resulting_watts) for v in verdict.violations}
    assert (CandidateProblem.CAP_EXCEEDED, "c1", "nl-c1-CONSUMPTION_CAP", 24_000) in found  # 8 kW uncontrolled
    assert (CandidateProblem.CAP_EXCEEDED, None, "cp-lb", 46_000) in found


@pytest.mark.req("FR-019")
def test_connectors_outside_the_candidate_still_count_as_load():
    # Optimising only the c1 group: k3 keeps its 22 kW request, so the aggregate has 15 kW left.
    assert validate_candidate_allocation(INPUTS, {"k1": 7_000, "k2": 7_000}).valid
    verdict = validate_candidate_allocation(INPUTS, {"k1": 11_000, "k2": 11_000})
    assert {v.node_id for v in verdict.violations} == {"gc1", None}


@pytest.mark.req("FR-019")
def test_candidate_targets_must_be_live_connectors_at_usable_power():
    nodes = [*depot_nodes()]
    nodes[6] = replace(nodes[6], status=NodeStatus.MAINTENANCE)
    inputs = replace(INPUTS, nodes=(*nodes, node("v", "gc1", NodeType.VIRTUAL)))
    verdict = validate_candidate_allocation(inputs, {"k1": 3_000, "k3": 1_000, "v": 5, "ghost": 1, "k2": -1})
    assert {(v.problem, v.node_id) for v in verdict.violations} == {
        (CandidateProblem.BELOW_MINIMUM, "k1"),
        (CandidateProblem.NODE_UNAVAILABLE, "k3"),
        (CandidateProblem.NOT_A_CONNECTOR, "v"),
        (CandidateProblem.UNKNOWN_NODE, "ghost"),
        (CandidateProblem.NEGATIVE_POWER, "k2"),
    }
