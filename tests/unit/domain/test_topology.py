from dataclasses import replace

import pytest

from contracts.enums import AssetType, NodeStatus, NodeType, ReasonCode
from libs.domain.topology import TopologyRule, validate_topology
from libs.domain.topology_edits import replace_topology
from tests.unit.domain.scenario import MICROGRID, connector, depot_nodes, grid_connection, node


def rules(violations):
    return {(v.rule, v.node_ids) for v in violations}


def edited(**changes):
    """The reference depot as an operator's edited copy: node id -> its new fields, or None to remove it."""
    out = []
    for n in depot_nodes():
        if n.node_id not in changes:
            out.append(n)
        elif changes[n.node_id] is not None:
            out.append(replace(n, **changes[n.node_id]))
    return out


@pytest.mark.req("FR-002")
def test_reference_depot_is_a_valid_tree():
    assert validate_topology(MICROGRID, depot_nodes()) == ()


@pytest.mark.req("FR-002")
def test_one_microgrid_may_hold_several_grid_connections():
    nodes = [
        *depot_nodes(),
        grid_connection("gc2", "feeder-2"),
        node("cp9", "gc2", NodeType.CHARGE_POINT),
        connector("k9", "cp9"),
    ]
    assert validate_topology(MICROGRID, nodes) == ()


def _valid_path_to(node_id, node_type):
    """gc1 and a node ``node_id`` of ``node_type`` below it, every link allowed."""
    if node_type is NodeType.CONNECTOR:
        return [grid_connection("gc1"), node("cp", "gc1", NodeType.CHARGE_POINT), node(node_id, "cp", node_type)]
    return [grid_connection("gc1"), node(node_id, "gc1", node_type)]


@pytest.mark.req("FR-002")
@pytest.mark.parametrize(
    ("child_type", "parent_type"),
    [
        (NodeType.CONNECTOR, NodeType.CIRCUIT),
        (NodeType.CONNECTOR, NodeType.GRID_CONNECTION),
        (NodeType.CHARGE_POINT, NodeType.CONNECTOR),
        (NodeType.GRID_CONNECTION, NodeType.CONNECTOR),
        (NodeType.GRID_CONNECTION, NodeType.CIRCUIT),
        (NodeType.CIRCUIT, NodeType.CHARGE_POINT),
        (NodeType.CHARGE_POINT, NodeType.CHARGE_POINT),
        (NodeType.VIRTUAL, NodeType.CONNECTOR),
        (NodeType.CIRCUIT, NodeType.POWER_SOURCE),
    ],
)
def test_a_node_type_under_a_parent_type_the_model_does_not_allow_is_refused(child_type, parent_type):
    nodes = [*_valid_path_to("x", parent_type), node("y", "x", child_type)]
    if parent_type is NodeType.GRID_CONNECTION:
        nodes = [grid_connection("gc1"), node("y", "gc1", child_type)]
    found = [v for v in validate_topology(MICROGRID, nodes) if v.rule is TopologyRule.PARENT_TYPE_NOT_ALLOWED]
    parent_id = "gc1" if parent_type is NodeType.GRID_CONNECTION else "x"
    assert [v.node_ids for v in found] == [("y", parent_id)]
    assert f"{child_type.value} under {parent_type.value}" in found[0].detail


@pytest.mark.req("FR-002")
@pytest.mark.parametrize(
    ("child_type", "parent_type"),
    [
        (NodeType.CIRCUIT, NodeType.GRID_CONNECTION),
        (NodeType.CIRCUIT, NodeType.CIRCUIT),
        (NodeType.CHARGE_POINT, NodeType.CIRCUIT),
        (NodeType.CHARGE_POINT, NodeType.GRID_CONNECTION),
        (NodeType.CONNECTOR, NodeType.CHARGE_POINT),
        (NodeType.POWER_SOURCE, NodeType.CIRCUIT),
        (NodeType.VIRTUAL, NodeType.CHARGE_POINT),
    ],
)
def test_the_parent_types_of_the_model_are_accepted(child_type, parent_type):
    nodes = [grid_connection("gc1"), node("y", "gc1", child_type)]
    if parent_type is not NodeType.GRID_CONNECTION:
        nodes = [*_valid_path_to("x", parent_type), node("y", "x", child_type)]
    assert validate_topology(MICROGRID, nodes) == ()


@pytest.mark.req("FR-002")
def test_a_cycle_over_a_tree_that_breaks_the_parent_type_rules_is_rejected():
    from libs.domain.cycle import run_balancing_cycle
    from tests.unit.domain.scenario import cycle_inputs

    nodes = [grid_connection("gc1"), node("c1", "gc1", NodeType.CIRCUIT), connector("k1", "c1")]
    result = run_balancing_cycle(cycle_inputs(nodes))
    assert result.reason_codes == (ReasonCode.TOPOLOGY_INVALID,)
    assert [(v.rule, v.node_ids) for v in result.topology_violations] == [
        (TopologyRule.PARENT_TYPE_NOT_ALLOWED, ("k1", "c1"))
    ]


@pytest.mark.req("FR-002")
def test_reparent_that_introduces_a_cycle_is_rejected_and_names_the_loop():
    # Edge case: "Reparent operation introduces a topology cycle."
    result = replace_topology(MICROGRID, depot_nodes(), edited(c1={"parent_node_id": "cp1"}), authored_version=7)
    assert not result.accepted
    assert result.reason_code is ReasonCode.TOPOLOGY_INVALID
    assert (TopologyRule.CYCLE, ("c1", "cp1")) in rules(result.violations)
    assert result.microgrid.version == 7  # nothing applied
    assert result.nodes == tuple(depot_nodes())


@pytest.mark.req("FR-002")
def test_node_that_is_its_own_parent_is_a_cycle():
    nodes = [*depot_nodes(), node("v1", "v1", NodeType.VIRTUAL)]
    assert (TopologyRule.CYCLE, ("v1",)) in rules(validate_topology(MICROGRID, nodes))


@pytest.mark.req("FR-002")
def test_removing_a_node_with_children_would_orphan_them():
    # Edge case: "Node is detached from root (orphan)."
    result = replace_topology(MICROGRID, depot_nodes(), edited(cp1=None), authored_version=7)
    assert not result.accepted
    found = rules(result.violations)
    assert (TopologyRule.ORPHAN_NODE, ("k1", "cp1")) in found
    assert (TopologyRule.ORPHAN_NODE, ("k2", "cp1")) in found


@pytest.mark.req("FR-010")
def test_an_asset_cannot_be_a_topology_parent():
    # The parent must be a node of the tree; pointing at a source asset id leaves the node orphaned.
    nodes = [*depot_nodes(), connector("k4", "charge-point-asset-17")]
    assert (TopologyRule.ORPHAN_NODE, ("k4", "charge-point-asset-17")) in rules(validate_topology(MICROGRID, nodes))


@pytest.mark.req("FR-010")
def test_an_asset_may_be_referenced_by_one_node_only():
    nodes = [*depot_nodes()]
    nodes[1] = replace(nodes[1], attached_asset_type=AssetType.CIRCUIT, attached_asset_id="feeder-1")
    assert (TopologyRule.ASSET_REFERENCED_TWICE, ("c1", "gc1")) in rules(validate_topology(MICROGRID, nodes))


@pytest.mark.req("FR-010")
def test_asset_reference_needs_both_type_and_id():
    incomplete = {"attached_asset_type": AssetType.CHARGE_POINT, "attached_asset_id": None}
    result = replace_topology(MICROGRID, depot_nodes(), edited(cp1=incomplete), authored_version=7)
    assert (TopologyRule.ASSET_REFERENCE_INCOMPLETE, ("cp1",)) in rules(result.violations)


@pytest.mark.req("FR-002")
def test_node_of_another_microgrid_is_rejected():
    nodes = [*depot_nodes(), connector("k4", "cp2")]
    nodes[-1] = replace(nodes[-1], microgrid_id="mg-other")
    assert (TopologyRule.NODE_IN_OTHER_MICROGRID, ("k4",)) in rules(validate_topology(MICROGRID, nodes))
    # A node id the caller knows is owned by another microgrid cannot join this one either.
    found = validate_topology(MICROGRID, depot_nodes(), foreign_node_ids={"k3": "mg-2"})
    assert (TopologyRule.NODE_IN_OTHER_MICROGRID, ("k3",)) in rules(found)


@pytest.mark.req("FR-002")
def test_first_level_nodes_must_be_grid_connections():
    nodes = [*depot_nodes(), node("pv", None, NodeType.POWER_SOURCE)]
    assert (TopologyRule.FIRST_LEVEL_NOT_GRID_CONNECTION, ("pv",)) in rules(validate_topology(MICROGRID, nodes))
    assert (TopologyRule.MISSING_GRID_CONNECTION, ()) in rules(validate_topology(MICROGRID, []))


@pytest.mark.req("FR-002")
def test_concurrent_edit_on_an_old_version_conflicts():
    # Edge case: "Concurrent topology edits produce version conflict."
    result = replace_topology(MICROGRID, depot_nodes(), edited(k3=None), authored_version=6)
    assert not result.accepted
    assert result.reason_code is ReasonCode.TOPOLOGY_VERSION_CONFLICT
    assert (result.expected_version, result.actual_version) == (6, 7)
    replaced = replace_topology(MICROGRID, depot_nodes(), depot_nodes()[:3], authored_version=5)
    assert replaced.reason_code is ReasonCode.TOPOLOGY_VERSION_CONFLICT


@pytest.mark.req("FR-002")
def test_valid_replacement_applies_as_a_whole_and_bumps_the_version():
    nodes = [
        *edited(cp2={"parent_node_id": "c1"}, k3={"status": NodeStatus.MAINTENANCE}),
        replace(node("cp3", "c1", NodeType.CHARGE_POINT), attached_asset_type=AssetType.CHARGE_POINT,
                attached_asset_id="cp-asset-3"),
        connector("k5", "cp3"),
    ]
    result = replace_topology(MICROGRID, depot_nodes(), nodes, authored_version=7)
    assert result.accepted and result.violations == ()
    assert result.microgrid.version == 8
    by_id = {n.node_id: n for n in result.nodes}
    assert by_id["cp2"].parent_node_id == "c1"
    assert by_id["cp3"].attached_asset_id == "cp-asset-3"
    assert by_id["k3"].status is NodeStatus.MAINTENANCE


@pytest.mark.req("FR-002")
def test_one_bad_node_rejects_the_whole_replacement():
    nodes = [*depot_nodes(), connector("k5", "cp2"), connector("k1", "cp2"), connector("k6", "nope")]
    result = replace_topology(MICROGRID, depot_nodes(), nodes, authored_version=7)
    assert not result.accepted
    assert {(TopologyRule.ORPHAN_NODE, ("k6", "nope")), (TopologyRule.DUPLICATE_NODE_ID, ("k1",))} <= rules(
        result.violations
    )
    assert result.microgrid.version == 7
    assert result.nodes == tuple(depot_nodes())


def test_violations_do_not_depend_on_input_order():
    nodes = [*depot_nodes(), node("a", "b", NodeType.VIRTUAL), node("b", "a", NodeType.VIRTUAL)]
    assert validate_topology(MICROGRID, nodes) == validate_topology(MICROGRID, list(reversed(nodes)))


@pytest.mark.req("FR-002")
def test_a_virtual_grouping_node_is_looked_through():
    grouped = [
        grid_connection("gc1"),
        node("v", "gc1", NodeType.VIRTUAL),
        node("cp", "v", NodeType.CHARGE_POINT),
        connector("k", "cp"),
    ]
    assert validate_topology(MICROGRID, grouped) == ()
    wrong = [grid_connection("gc1"), node("v", "gc1", NodeType.VIRTUAL), connector("k", "v")]
    found = validate_topology(MICROGRID, wrong)
    assert [(v.rule, v.node_ids) for v in found] == [(TopologyRule.PARENT_TYPE_NOT_ALLOWED, ("k", "gc1"))]


def test_the_compiled_topology_is_reused_per_version_but_never_for_another_tree():
    from libs.domain.topology import compiled_topology

    nodes = tuple(depot_nodes())
    first = compiled_topology(MICROGRID, nodes)
    assert compiled_topology(MICROGRID, nodes) is first
    assert compiled_topology(MICROGRID, tuple(depot_nodes())) is first  # an equal tree at that version
    other = (*nodes, node("cp9", "gc1", NodeType.CHARGE_POINT))
    again = compiled_topology(MICROGRID, other)  # same version number, another tree: compiled afresh
    assert again is not first and "cp9" in again.position
    assert compiled_topology(replace(MICROGRID, version=8), nodes) is not again
