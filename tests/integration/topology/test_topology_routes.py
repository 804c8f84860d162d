"""Topology, resync and depot routes over HTTP, with the events on Kafka (the real stack)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts.enums import EnvelopeStatus, ProjectionTrigger
from contracts.events import (
    EffectiveCircuitCapacityChanged,
    EffectiveCircuitCapacityPayload,
    EffectiveCircuitCapacityReconciled,
    OperatingEnvelopeLifecycleEvaluated,
    OperatingEnvelopeLifecycleEvaluatedPayload,
    OperatingEnvelopeReceived,
    TopologyUpdated,
)
from contracts.records import EnvelopeBlockRecord, OperatingEnvelopeRecord
from services.topology.resync import managed_node_id
from tests.integration.topology.conftest import (
    READ,
    WRITE,
    as_input,
    circuit,
    depot_with_feeders,
    node,
    resync_until,
)
from tests.support import TopicReader, eventually, publish_as_owner

pytestmark = pytest.mark.integration


async def topology_events(settings, microgrid_id: str, count: int) -> list[TopologyUpdated]:
    async with TopicReader(settings, "microgrid.topology_updated") as reader:

        def mine(records: list) -> list[TopologyUpdated]:
            events = [TopologyUpdated.model_validate_json(r.value) for r in records]
            return [e for e in events if str(e.payload.microgrid_id) == microgrid_id]

        await reader.wait_for(lambda rs: len(mine(rs)) >= count)
        return mine(reader.records)


async def write_tree(client, microgrid_id: str, version: int, nodes: list[dict], **extra: Any):
    return await client.post(
        f"/api/microgrid/{microgrid_id}/topology", json={"version": version, "nodes": nodes, **extra}, headers=WRITE
    )


@pytest.mark.req("FR-007", "FR-009", "FR-010", "NFR-003")
async def test_resync_builds_managed_grid_connections_from_top_level_feeders(topology, settings, kafka) -> None:
    depot_id = uuid.uuid4()
    feeder_a, feeder_b = circuit(depot_id, "Feeder A"), circuit(depot_id, "Feeder B")
    for message in (
        feeder_a,
        feeder_b,
        circuit(depot_id, "Sub-circuit", parent=feeder_a.payload.circuit_id),  # not top level
        circuit(depot_id, "Old feeder", removed=True),  # removed
    ):
        await publish_as_owner(kafka, settings, message)

    body = await resync_until(topology, depot_id, feeders=2, records=4)
    result = body["result"]
    microgrid_id = result["microgrid"]["microgrid_id"]
    assert body["microgrid_id"] == microgrid_id and body["timestamp"]
    assert result["microgrid"] == {"microgrid_id": microgrid_id, "depot_id": str(depot_id), "version": 1}
    expected = {str(managed_node_id(uuid.UUID(microgrid_id), c.payload.circuit_id)) for c in (feeder_a, feeder_b)}
    assert set(result["added_node_ids"]) == expected

    tree = (await topology.client.get(f"/api/microgrid/{microgrid_id}/topology", headers=READ)).json()["result"]
    assert {n["node_id"] for n in tree["nodes"]} == expected
    for n in tree["nodes"]:
        assert n["node_type"] == "GRID_CONNECTION" and n["parent_node_id"] is None and n["managed"] is True
        assert n["attached_asset_type"] == "CIRCUIT"
    assert {n["attached_asset_id"] for n in tree["nodes"]} == {
        str(feeder_a.payload.circuit_id),
        str(feeder_b.payload.circuit_id),
    }

    again = (await topology.client.post(f"/api/depot/{depot_id}/microgrid/resync", headers=WRITE)).json()["result"]
    assert again["changed"] is False and again["created"] is False and again["microgrid"]["version"] == 1

    [event] = await topology_events(settings, microgrid_id, 1)
    assert event.payload.version == 1 and event.payload.depot_id == depot_id
    assert event.payload.updated_by == "test-operator" and event.producer == "topology"
    assert {str(n.node_id) for n in event.payload.nodes} == expected


@pytest.mark.req("FR-009")
async def test_first_resync_of_a_depot_creates_its_microgrid_even_before_any_feeder(topology, settings, kafka) -> None:
    depot_id = uuid.uuid4()
    # The depot is known from its circuit records, but none is a live feeder yet.
    await publish_as_owner(kafka, settings, circuit(depot_id, "Planned feeder", removed=True))
    first = await resync_until(topology, depot_id, feeders=0, records=1)
    assert first["result"]["created"] is True
    result = first["result"]
    assert result["created"] is True and result["changed"] is False
    assert result["microgrid"]["depot_id"] == str(depot_id) and result["microgrid"]["version"] == 0
    second = (await topology.client.post(f"/api/depot/{depot_id}/microgrid/resync", headers=WRITE)).json()
    assert second["result"]["created"] is False and second["microgrid_id"] == first["microgrid_id"]


async def test_resync_of_a_depot_no_circuit_record_names_answers_404_and_creates_nothing(topology) -> None:
    # Issue 14: a typo in a depot id created an empty microgrid.
    depot_id = uuid.uuid4()

    response = await topology.client.post(f"/api/depot/{depot_id}/microgrid/resync", headers=WRITE)

    assert response.status_code == 404, response.text
    assert response.json()["reason_code"] == "NOT_FOUND"
    count = await topology.ctx.pool.fetchval("SELECT count(*) FROM microgrid WHERE depot_id = $1", depot_id)
    assert count == 0


@pytest.mark.req("FR-002", "FR-007", "FR-010")
async def test_resync_keeps_operator_nodes_and_follows_feeder_changes(topology, settings, kafka) -> None:
    depot_id, body = await depot_with_feeders(topology, settings, kafka, count=1)
    mg = body["result"]["microgrid"]["microgrid_id"]
    [gc] = body["result"]["added_node_ids"]
    cp = uuid.uuid4()
    stored = (await topology.client.get(f"/api/microgrid/{mg}/topology", headers=READ)).json()["result"]["nodes"]
    r = await write_tree(topology.client, mg, 1, [as_input(stored[0]), node(cp, "CP 1", "CHARGE_POINT", uuid.UUID(gc))])
    assert r.status_code == 200, r.text

    # A second feeder appears: one new managed node, the operator's charge point untouched, version + 1.
    feeder_2 = circuit(depot_id, "Feeder 2")
    await publish_as_owner(kafka, settings, feeder_2)
    result = (await resync_until(topology, depot_id, feeders=2))["result"]
    assert result["changed"] is True and result["microgrid"]["version"] == 3
    assert result["added_node_ids"] == [str(managed_node_id(uuid.UUID(mg), feeder_2.payload.circuit_id))]
    assert result["removed_node_ids"] == []

    # The first feeder is removed while the charge point still hangs below it: resync refuses (orphan).
    first_circuit = stored[0]["attached_asset_id"]
    await publish_as_owner(
        kafka, settings, circuit(depot_id, "Feeder 1", removed=True, circuit_id=uuid.UUID(first_circuit))
    )

    async def refused() -> dict | None:
        r = await topology.client.post(f"/api/depot/{depot_id}/microgrid/resync", headers=WRITE)
        return r.json() if r.status_code == 422 else None

    error = await eventually(refused, timeout=30, interval=0.2)
    assert error["reason_code"] == "TOPOLOGY_INVALID" and error["violated_rule"] == "ORPHAN_NODE"
    assert str(cp) in error["details"]["violations"][0]["node_ids"]


@pytest.mark.req("FR-002", "FR-007", "FR-010", "FR-018", "NFR-003")
async def test_topology_replace_bumps_version_once_and_publishes_whole_tree(topology, settings, kafka) -> None:
    _, body = await depot_with_feeders(topology, settings, kafka)
    mg = body["result"]["microgrid"]["microgrid_id"]
    gc = uuid.UUID(body["result"]["added_node_ids"][0])
    stored = (await topology.client.get(f"/api/microgrid/{mg}/topology", headers=READ)).json()["result"]["nodes"]
    circuit_node, cp, con1, con2, pv = (uuid.uuid4() for _ in range(5))
    nodes = [
        as_input(stored[0]) | {"display_order": 1},
        node(circuit_node, "Sub-circuit", "CIRCUIT", gc, attached_asset_type="CIRCUIT", attached_asset_id=uuid.uuid4()),
        node(
            cp, "CP 1", "CHARGE_POINT", circuit_node, attached_asset_type="CHARGE_POINT", attached_asset_id=uuid.uuid4()
        ),
        node(con1, "Connector 1", "CONNECTOR", cp, display_order=1),
        node(con2, "Connector 2", "CONNECTOR", cp, display_order=0),
        node(pv, "PV", "POWER_SOURCE", gc, attached_asset_type="POWER_SOURCE", attached_asset_id=uuid.uuid4()),
    ]
    rules = [{"node_id": str(con1), "fallback_demand_watts": 11_000, "assume_requested": True}]
    r = await write_tree(topology.client, mg, 1, nodes, fallback_rules=rules)
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    assert result["microgrid"]["version"] == 2
    assert set(result["added_node_ids"]) == {str(i) for i in (circuit_node, cp, con1, con2, pv)}
    assert result["updated_node_ids"] == [str(gc)]

    # The physical view: nested, siblings in display order.
    view = (await topology.client.get(f"/api/microgrid/{mg}/topology", headers=READ)).json()["result"]
    [root] = view["nodes"]
    assert root["node_id"] == str(gc) and root["managed"] is True
    sub = next(c for c in root["children"] if c["node_type"] == "CIRCUIT")
    assert [c["name"] for c in sub["children"][0]["children"]] == ["Connector 2", "Connector 1"]
    assert view["fallback_rules"] == [rules[0] | {"node_id": str(con1)}]

    # The operational collection view: resource sets by node type and by grid-connection subtree.
    sets = (await topology.client.get(f"/api/microgrid/{mg}/topology?view=collection", headers=READ)).json()
    by_key = {s["key"]: set(s["node_ids"]) for s in sets["result"]["resource_sets"]}
    assert by_key["node_type:CONNECTOR"] == {str(con1), str(con2)}
    assert by_key[f"subtree:{gc}:node_type:POWER_SOURCE"] == {str(pv)}
    # A query: the charge points and power sources of the sub-circuit's subtree.
    query = {
        "view": "collection",
        "subtree_root_node_id": str(circuit_node),
        "node_type": ["CHARGE_POINT", "CONNECTOR"],
    }
    picked = (await topology.client.get(f"/api/microgrid/{mg}/topology", params=query, headers=READ)).json()
    [one] = picked["result"]["resource_sets"]
    assert one["key"] == "query" and one["node_ids"] == [str(cp), *sorted((str(con1), str(con2)))]

    events = await topology_events(settings, mg, 2)
    assert [e.payload.version for e in events] == [1, 2]
    assert len(events[1].payload.nodes) == 6
    assert [str(f.node_id) for f in events[1].payload.fallback_rules] == [str(con1)]


@pytest.mark.req("FR-011", "FR-009")
async def test_stale_version_is_409_with_expected_and_actual(topology, settings, kafka) -> None:
    _, body = await depot_with_feeders(topology, settings, kafka)
    mg = body["result"]["microgrid"]["microgrid_id"]
    stored = (await topology.client.get(f"/api/microgrid/{mg}/topology", headers=READ)).json()["result"]["nodes"]
    r = await write_tree(topology.client, mg, 0, [as_input(n) for n in stored])
    assert r.status_code == 409
    assert r.json() == {
        "reason_code": "TOPOLOGY_VERSION_CONFLICT",
        "message": r.json()["message"],
        "expected_version": 0,
        "actual_version": 1,
    }


@pytest.mark.req("FR-010")
async def test_a_node_naming_an_asset_type_without_its_id_is_422_and_changes_nothing(topology, settings, kafka) -> None:
    _, body = await depot_with_feeders(topology, settings, kafka)
    mg = body["result"]["microgrid"]["microgrid_id"]
    stored = (await topology.client.get(f"/api/microgrid/{mg}/topology", headers=READ)).json()["result"]["nodes"]
    [gc] = body["result"]["added_node_ids"]
    half_attached = node(uuid.uuid4(), "CP", "CHARGE_POINT", uuid.UUID(gc), attached_asset_type="CHARGE_POINT")
    r = await write_tree(topology.client, mg, 1, [*(as_input(n) for n in stored), half_attached])
    assert r.status_code == 422
    assert r.json()["reason_code"] == "VALIDATION_FAILED"
    after = (await topology.client.get(f"/api/microgrid/{mg}/topology", headers=READ)).json()["result"]
    assert after["microgrid"]["version"] == 1


@pytest.mark.req("FR-011")
async def test_two_concurrent_writes_on_one_version_exactly_one_wins(topology, settings, kafka) -> None:
    _, body = await depot_with_feeders(topology, settings, kafka)
    mg = body["result"]["microgrid"]["microgrid_id"]
    gc = uuid.UUID(body["result"]["added_node_ids"][0])
    stored = (await topology.client.get(f"/api/microgrid/{mg}/topology", headers=READ)).json()["result"]["nodes"]
    a = [as_input(stored[0]), node(uuid.uuid4(), "A", "CIRCUIT", gc)]
    b = [as_input(stored[0]), node(uuid.uuid4(), "B", "CIRCUIT", gc)]
    for _ in range(3):  # several rounds, each two writers on the same version
        version = (await topology.client.get(f"/api/microgrid/{mg}/topology", headers=READ)).json()["result"][
            "microgrid"
        ]["version"]
        ra, rb = await asyncio.gather(
            write_tree(topology.client, mg, version, a), write_tree(topology.client, mg, version, b)
        )
        assert sorted([ra.status_code, rb.status_code]) == [200, 409]
        loser = ra if ra.status_code == 409 else rb
        assert loser.json()["expected_version"] == version and loser.json()["actual_version"] == version + 1
    final = (await topology.client.get(f"/api/microgrid/{mg}/topology", headers=READ)).json()["result"]
    assert final["microgrid"]["version"] == 4


@pytest.mark.req("FR-002", "FR-010")
@pytest.mark.parametrize(
    "case, rule",
    [
        ("cycle", "CYCLE"),
        ("orphan", "ORPHAN_NODE"),
        ("first_level_not_grid_connection", "FIRST_LEVEL_NOT_GRID_CONNECTION"),
        ("asset_twice", "ASSET_REFERENCED_TWICE"),
        ("managed_node_removed", "MANAGED_NODE_REMOVED"),
        ("managed_node_reparented", "MANAGED_NODE_CHANGED"),
        ("fallback_rule_unknown_node", "FALLBACK_RULE_UNKNOWN_NODE"),
    ],
)
async def test_tree_rules_are_422_topology_invalid_and_change_nothing(topology, settings, kafka, case, rule) -> None:
    _, body = await depot_with_feeders(topology, settings, kafka)
    mg = body["result"]["microgrid"]["microgrid_id"]
    gc_id = uuid.UUID(body["result"]["added_node_ids"][0])
    [gc] = (await topology.client.get(f"/api/microgrid/{mg}/topology", headers=READ)).json()["result"]["nodes"]
    gc = as_input(gc)
    x, y = uuid.uuid4(), uuid.uuid4()
    asset = uuid.uuid4()
    extra: dict[str, Any] = {}
    nodes = {
        "cycle": [gc, node(x, "X", "CIRCUIT", y), node(y, "Y", "CIRCUIT", x)],
        "orphan": [gc, node(x, "X", "CIRCUIT", uuid.uuid4())],
        "first_level_not_grid_connection": [gc, node(x, "X", "CIRCUIT")],
        "asset_twice": [
            gc,
            node(x, "X", "CHARGE_POINT", gc_id, attached_asset_type="CHARGE_POINT", attached_asset_id=asset),
            node(y, "Y", "CHARGE_POINT", gc_id, attached_asset_type="CHARGE_POINT", attached_asset_id=asset),
        ],
        "managed_node_removed": [node(x, "Operator GC", "GRID_CONNECTION")],
        "managed_node_reparented": [node(x, "Operator GC", "GRID_CONNECTION"), gc | {"parent_node_id": str(x)}],
        "fallback_rule_unknown_node": [gc],
    }[case]
    if case == "fallback_rule_unknown_node":
        extra["fallback_rules"] = [{"node_id": str(uuid.uuid4()), "fallback_demand_watts": 1000}]
    r = await write_tree(topology.client, mg, 1, nodes, **extra)
    assert r.status_code == 422, r.text
    error = r.json()
    assert error["reason_code"] == "TOPOLOGY_INVALID"
    assert rule in {v["rule"] for v in error["details"]["violations"]}
    assert error["violated_rule"] == error["details"]["violations"][0]["rule"]
    after = (await topology.client.get(f"/api/microgrid/{mg}/topology", headers=READ)).json()["result"]
    assert after["microgrid"]["version"] == 1 and len(after["nodes"]) == 1


@pytest.mark.req("FR-009", "FR-011")
async def test_unknown_microgrid_is_404_and_a_first_write_naming_the_depot_creates_it(topology) -> None:
    mg, depot, gc = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    nodes = [node(gc, "GC", "GRID_CONNECTION")]
    r = await write_tree(topology.client, str(mg), 0, nodes)
    assert r.status_code == 404 and r.json()["reason_code"] == "NOT_FOUND"

    r = await write_tree(topology.client, str(mg), 0, nodes, depot_id=str(depot))
    assert r.status_code == 200, r.text
    assert r.json()["result"]["microgrid"] == {"microgrid_id": str(mg), "depot_id": str(depot), "version": 1}
    depot_view = (await topology.client.get(f"/api/depot/{depot}/microgrid", headers=READ)).json()
    assert depot_view["microgrid_id"] == str(mg)

    # One depot, one microgrid: another microgrid id for the same depot is refused.
    r = await write_tree(
        topology.client, str(uuid.uuid4()), 0, [node(uuid.uuid4(), "GC", "GRID_CONNECTION")], depot_id=str(depot)
    )
    assert r.status_code == 409 and r.json()["reason_code"] == "CONFLICT"
    # A resync of that depot finds the same microgrid.
    resync = (await topology.client.post(f"/api/depot/{depot}/microgrid/resync", headers=WRITE)).json()
    assert resync["microgrid_id"] == str(mg) and resync["result"]["created"] is False


@pytest.mark.req("FR-007", "FR-009")
async def test_depot_view_shows_tree_active_envelopes_and_effective_capacities(topology, settings, kafka) -> None:
    depot_id, body = await depot_with_feeders(topology, settings, kafka)
    mg = uuid.UUID(body["result"]["microgrid"]["microgrid_id"])
    gc = uuid.UUID(body["result"]["added_node_ids"][0])
    [feeder] = body["result"]["feeder_circuit_ids"]
    now = datetime.now(UTC).replace(microsecond=0)
    envelope = OperatingEnvelopeRecord(
        envelope_id=uuid.uuid4(),
        microgrid_id=mg,
        node_id=gc,
        envelope_type="FORECAST",
        constraint_type="CONSUMPTION_CAP",
        effective_from=now,
        effective_to=now + timedelta(hours=1),
        source_ref="oscp:1",
        status="ACTIVE",
        received_at=now,
        blocks=[EnvelopeBlockRecord(block_from=now, block_to=now + timedelta(hours=1), target_watts=250_000)],
    )
    capacity = EffectiveCircuitCapacityPayload(
        microgrid_id=mg,
        node_id=gc,
        circuit_id=uuid.UUID(feeder),
        effective_capacity_watts=250_000,
        projection_trigger="ENVELOPE_CHANGE",
        basis="FORECAST",
        binding_envelope_id=envelope.envelope_id,
        evaluated_at=now,
    )
    await publish_as_owner(
        kafka, settings, OperatingEnvelopeReceived.create(envelope, producer="envelope_lifecycle", occurred_at=now)
    )
    await publish_as_owner(
        kafka,
        settings,
        EffectiveCircuitCapacityChanged.create(capacity, producer="envelope_lifecycle", occurred_at=now),
    )

    async def view(predicate) -> dict | None:
        r = await topology.client.get(f"/api/depot/{depot_id}/microgrid", headers=READ)
        assert r.status_code == 200
        return r.json() if predicate(r.json()["result"]) else None

    shown = await eventually(lambda: view(lambda v: v["active_envelopes"] and v["effective_circuit_capacities"]))
    assert shown["microgrid_id"] == str(mg)
    result = shown["result"]
    assert [n["node_id"] for n in result["nodes"]] == [str(gc)]
    assert result["active_envelopes"][0]["envelope_id"] == str(envelope.envelope_id)
    assert result["active_envelopes"][0]["blocks"][0]["target_watts"] == 250_000
    assert result["effective_circuit_capacities"][0]["effective_capacity_watts"] == 250_000

    # Expiry takes the envelope out of the active set; a reconciliation updates the capacity.
    later = now + timedelta(hours=1)
    expired = OperatingEnvelopeLifecycleEvaluatedPayload(
        envelope_id=envelope.envelope_id,
        microgrid_id=mg,
        node_id=gc,
        status="EXPIRED",
        previous_status="ACTIVE",
        evaluated_at=later,
        timer_kind="EXPIRY",
        envelope=envelope.model_copy(update={"status": EnvelopeStatus.EXPIRED}),
    )
    reconciled = capacity.model_copy(
        update={
            "effective_capacity_watts": 400_000,
            "evaluated_at": later,
            "projection_trigger": ProjectionTrigger.REBALANCE_GUARD,
            "basis": "GAP_POLICY",
        }
    )
    await publish_as_owner(
        kafka,
        settings,
        OperatingEnvelopeLifecycleEvaluated.create(expired, producer="envelope_lifecycle", occurred_at=later),
    )
    await publish_as_owner(
        kafka, settings, EffectiveCircuitCapacityReconciled.create(reconciled, producer="balancing", occurred_at=later)
    )
    await eventually(
        lambda: view(
            lambda v: (
                not v["active_envelopes"]
                and v["effective_circuit_capacities"][0]["effective_capacity_watts"] == 400_000
            )
        )
    )

    missing = await topology.client.get(f"/api/depot/{uuid.uuid4()}/microgrid", headers=READ)
    assert missing.status_code == 404


@pytest.mark.req("FR-002")
async def test_removing_a_node_deactivates_its_limits_and_control_points(topology, settings, kafka) -> None:
    _, body = await depot_with_feeders(topology, settings, kafka)
    mg = body["result"]["microgrid"]["microgrid_id"]
    gc = uuid.UUID(body["result"]["added_node_ids"][0])
    [gc_node] = (await topology.client.get(f"/api/microgrid/{mg}/topology", headers=READ)).json()["result"]["nodes"]
    cp = uuid.uuid4()
    assert (
        await write_tree(topology.client, mg, 1, [as_input(gc_node), node(cp, "CP", "CHARGE_POINT", gc)])
    ).status_code == 200
    limit = await topology.client.post(
        f"/api/microgrid/{mg}/node-limits",
        headers=WRITE,
        json={
            "limits": [
                {
                    "node_id": str(cp),
                    "constraint_type": "CONSUMPTION_CAP",
                    "limit_watts": 22_000,
                    "source_type": "MANUAL",
                }
            ]
        },
    )
    assert limit.status_code == 200, limit.text
    point = uuid.uuid4()
    r = await topology.client.post(
        f"/api/microgrid/{mg}/control-points/{point}",
        headers=WRITE,
        json={"node_id": str(cp), "capability_type": "LOAD_BALANCING", "state": "enabled", "control_source": "LOCAL"},
    )
    assert r.status_code == 200, r.text

    r = await write_tree(topology.client, mg, 2, [as_input(gc_node)])
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    assert result["removed_node_ids"] == [str(cp)]
    assert result["deactivated_node_limit_ids"] == [limit.json()["result"]["limits"][0]["node_limit_id"]]
    assert result["deactivated_control_point_ids"] == [str(point)]
    limits = (await topology.client.get(f"/api/microgrid/{mg}/node-limits", headers=READ)).json()["result"]["limits"]
    assert limits == []
