"""The parent-type rules of the tree (libs.domain.topology) on topology writes and resync: 422 TOPOLOGY_INVALID."""

from __future__ import annotations

import uuid

import pytest

from contracts.enums import NodeType
from contracts.records import MicrogridNodeRecord
from services.topology.adapters import microgrid_store
from tests.integration.topology.conftest import READ, WRITE, as_input, circuit, depot_with_feeders, node
from tests.support import eventually, publish_as_owner


@pytest.mark.req("FR-002")
@pytest.mark.parametrize(
    ("child", "parent"),
    [("CONNECTOR", "CIRCUIT"), ("CHARGE_POINT", "CONNECTOR"), ("GRID_CONNECTION", "CONNECTOR")],
)
async def test_a_write_breaking_a_parent_type_rule_is_422_naming_the_rule_and_nodes(
    topology, settings, kafka, child, parent
) -> None:
    _, body = await depot_with_feeders(topology, settings, kafka)
    mg = body["result"]["microgrid"]["microgrid_id"]
    [gc] = (await topology.client.get(f"/api/microgrid/{mg}/topology", headers=READ)).json()["result"]["nodes"]
    gc_id = uuid.UUID(gc["node_id"])
    x, y = uuid.uuid4(), uuid.uuid4()
    if parent == "CONNECTOR":  # a valid way down to the connector, then the wrong child under it
        cp = uuid.uuid4()
        nodes = [as_input(gc), node(cp, "CP", "CHARGE_POINT", gc_id), node(x, "X", parent, cp)]
    else:
        nodes = [as_input(gc), node(x, "X", parent, gc_id)]
    nodes.append(node(y, "Y", child, x))
    r = await topology.client.post(f"/api/microgrid/{mg}/topology", json={"version": 1, "nodes": nodes}, headers=WRITE)
    assert r.status_code == 422, r.text
    error = r.json()
    assert error["reason_code"] == "TOPOLOGY_INVALID"
    assert error["violated_rule"] == "PARENT_TYPE_NOT_ALLOWED"
    [violation] = error["details"]["violations"]
    assert violation["node_ids"] == [str(y), str(x)]
    assert f"{child} under {parent}" in violation["detail"]
    after = (await topology.client.get(f"/api/microgrid/{mg}/topology", headers=READ)).json()["result"]
    assert after["microgrid"]["version"] == 1 and len(after["nodes"]) == 1


@pytest.mark.req("FR-002")
async def test_a_resync_that_would_keep_a_tree_breaking_the_rules_is_refused(topology, settings, kafka) -> None:
    depot_id, body = await depot_with_feeders(topology, settings, kafka)
    mg = uuid.UUID(body["result"]["microgrid"]["microgrid_id"])
    [gc] = body["result"]["added_node_ids"]
    # A tree stored before the rule existed: a connector straight under a circuit.
    circuit_node, connector = uuid.uuid4(), uuid.uuid4()
    async with topology.ctx.pool.acquire() as conn:
        stored = await microgrid_store.load_nodes(conn, mg)
        legacy = [
            MicrogridNodeRecord(
                node_id=circuit_node,
                microgrid_id=mg,
                parent_node_id=uuid.UUID(gc),
                name="C",
                node_type=NodeType.CIRCUIT,
            ),
            MicrogridNodeRecord(
                node_id=connector, microgrid_id=mg, parent_node_id=circuit_node, name="K", node_type=NodeType.CONNECTOR
            ),
        ]
        await microgrid_store.replace_nodes(conn, mg, [*stored, *legacy])

    # A second feeder appears; the resync that would add it keeps the broken tree, so it is refused.
    await publish_as_owner(kafka, settings, circuit(depot_id, "Feeder 2"))

    async def refused() -> dict | None:
        r = await topology.client.post(f"/api/depot/{depot_id}/microgrid/resync", headers=WRITE)
        return r.json() if r.status_code == 422 else None

    error = await eventually(refused, timeout=30, interval=0.2)
    assert error["reason_code"] == "TOPOLOGY_INVALID" and error["violated_rule"] == "PARENT_TYPE_NOT_ALLOWED"
    assert error["details"]["violations"][0]["node_ids"] == [str(connector), str(circuit_node)]
    after = (await topology.client.get(f"/api/microgrid/{mg}/topology", headers=READ)).json()["result"]
    assert after["microgrid"]["version"] == 1
