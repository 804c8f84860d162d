"""Pure parts of the topology service: resync, status normalisation and freshness, the tree view."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from contracts.enums import AssetType, NodeStatus, NodeType
from contracts.records import LegacyCircuitRecord, MicrogridNodeRecord
from services.topology.capability_status import freshness_seconds, normalise_operational_status
from services.topology.resync import managed_node_id, resynced_nodes
from services.topology.views import build_tree

MG = uuid.UUID("00000000-0000-0000-0000-0000000000aa")
DEPOT = uuid.UUID("00000000-0000-0000-0000-0000000000dd")


def feeder(name: str) -> LegacyCircuitRecord:
    return LegacyCircuitRecord(
        circuit_id=uuid.uuid4(), depot_id=DEPOT, name=name, default_capacity_watts=1, fail_safe_capacity_watts=1
    )


def gc(circuit: LegacyCircuitRecord, **extra) -> MicrogridNodeRecord:
    return MicrogridNodeRecord(
        node_id=managed_node_id(MG, circuit.circuit_id),
        microgrid_id=MG,
        name=circuit.name,
        node_type=NodeType.GRID_CONNECTION,
        attached_asset_type=AssetType.CIRCUIT,
        attached_asset_id=circuit.circuit_id,
        managed=True,
        **extra,
    )


@pytest.mark.req("FR-010")
def test_resync_maps_each_feeder_to_one_managed_grid_connection_deterministically() -> None:
    a, b = feeder("A"), feeder("B")
    nodes = resynced_nodes(MG, [], [a, b])
    assert nodes == sorted([gc(a), gc(b)], key=lambda n: str(n.node_id))
    assert resynced_nodes(MG, nodes, [b, a]) == nodes  # same input, same output, whatever the order


@pytest.mark.req("FR-010")
def test_resync_keeps_operator_nodes_and_operational_fields_and_drops_stale_managed_nodes() -> None:
    a, b = feeder("A"), feeder("B")
    operator = MicrogridNodeRecord(
        node_id=uuid.uuid4(), microgrid_id=MG, parent_node_id=gc(a).node_id, name="CP", node_type=NodeType.CHARGE_POINT
    )
    current = [gc(a, status=NodeStatus.MAINTENANCE, display_order=3), gc(b), operator]
    renamed = a.model_copy(update={"name": "A renamed"})
    after = {n.node_id: n for n in resynced_nodes(MG, current, [renamed])}
    assert set(after) == {gc(a).node_id, operator.node_id}
    kept = after[gc(a).node_id]
    assert (kept.name, kept.status, kept.display_order) == ("A renamed", NodeStatus.MAINTENANCE, 3)
    assert after[operator.node_id] == operator


@pytest.mark.req("FR-021")
def test_boolean_status_is_normalised_and_the_raw_value_kept() -> None:
    assert normalise_operational_status(True, None) == ("ON", {"raw_operational_status": True})
    assert normalise_operational_status(False, {"x": 1}) == ("OFF", {"x": 1, "raw_operational_status": False})
    assert normalise_operational_status("true", None) == ("true", None)  # free-form text stays as sent


@pytest.mark.req("NFR-008")
def test_freshness_is_whole_seconds_since_observation_and_never_negative() -> None:
    t = datetime(2030, 1, 1, tzinfo=UTC)
    assert freshness_seconds(t, t + timedelta(seconds=59, milliseconds=900)) == 59
    assert freshness_seconds(t, t - timedelta(seconds=5)) == 0


@pytest.mark.req("FR-007")
def test_tree_view_nests_children_in_display_order_then_name() -> None:
    root = uuid.uuid4()
    nodes = [
        MicrogridNodeRecord(node_id=root, microgrid_id=MG, name="GC", node_type=NodeType.GRID_CONNECTION),
        MicrogridNodeRecord(
            node_id=uuid.uuid4(),
            microgrid_id=MG,
            parent_node_id=root,
            name="b",
            node_type=NodeType.CIRCUIT,
            display_order=1,
        ),
        MicrogridNodeRecord(
            node_id=uuid.uuid4(),
            microgrid_id=MG,
            parent_node_id=root,
            name="z",
            node_type=NodeType.CIRCUIT,
            display_order=0,
        ),
        MicrogridNodeRecord(
            node_id=uuid.uuid4(),
            microgrid_id=MG,
            parent_node_id=root,
            name="a",
            node_type=NodeType.CIRCUIT,
            display_order=1,
        ),
    ]
    [tree] = build_tree(reversed(nodes))
    assert [c.name for c in tree.children] == ["z", "a", "b"]
