"""Node limits and capability control points over HTTP, with their events on Kafka."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from contracts.events import CapabilityControlPointUpdated, NodeLimitUpdated
from tests.integration.topology.conftest import READ, WRITE, as_input, depot_with_feeders, node
from tests.support import TopicReader
from tests.support_services import auth_headers

pytestmark = pytest.mark.integration


async def microgrid_with_nodes(topology, settings, kafka) -> dict[str, Any]:
    """A microgrid: managed GC -> charge point -> connector, plus a VIRTUAL group under the GC."""
    _, body = await depot_with_feeders(topology, settings, kafka)
    mg = body["result"]["microgrid"]["microgrid_id"]
    gc = uuid.UUID(body["result"]["added_node_ids"][0])
    [gc_node] = (await topology.client.get(f"/api/microgrid/{mg}/topology", headers=READ)).json()["result"]["nodes"]
    cp, con, group = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    r = await topology.client.post(
        f"/api/microgrid/{mg}/topology",
        headers=WRITE,
        json={
            "version": 1,
            "nodes": [
                as_input(gc_node),
                node(cp, "CP", "CHARGE_POINT", gc),
                node(con, "Connector", "CONNECTOR", cp),
                node(group, "Depot bays", "VIRTUAL", gc),
            ],
        },
    )
    assert r.status_code == 200, r.text
    return {"mg": mg, "gc": str(gc), "cp": str(cp), "con": str(con), "virtual": str(group)}


def limit(node_id: str, watts: int, constraint: str = "CONSUMPTION_CAP", **extra: Any) -> dict[str, Any]:
    return {"node_id": node_id, "constraint_type": constraint, "limit_watts": watts, "source_type": "MANUAL", **extra}


async def events_of(settings, topic: str, model, microgrid_id: str, count: int) -> list:
    async with TopicReader(settings, topic) as reader:

        def mine(records: list) -> list:
            events = [model.model_validate_json(r.value) for r in records]
            return [e for e in events if str(e.payload.microgrid_id) == microgrid_id]

        await reader.wait_for(lambda rs: len(mine(rs)) >= count)
        return mine(reader.records)


@pytest.mark.req("FR-007", "NFR-003")
async def test_node_limits_one_active_per_node_and_constraint_type(topology, settings, kafka) -> None:
    t = await microgrid_with_nodes(topology, settings, kafka)
    mg = t["mg"]
    url = f"/api/microgrid/{mg}/node-limits"
    first = await topology.client.post(
        url,
        headers=WRITE,
        json={"limits": [limit(t["gc"], 400_000), limit(t["gc"], 50_000, "GENERATION_CAP"), limit(t["con"], 22_000)]},
    )
    assert first.status_code == 200, first.text
    assert first.json()["microgrid_id"] == mg
    old_gc = first.json()["result"]["limits"][0]

    # A new limit for the same node + constraint type replaces the active one.
    second = await topology.client.post(url, headers=WRITE, json={"limits": [limit(t["gc"], 300_000)]})
    assert second.status_code == 200
    [replaced] = second.json()["result"]["replaced"]
    assert replaced["node_limit_id"] == old_gc["node_limit_id"] and replaced["status"] == "INACTIVE"
    new_gc = second.json()["result"]["limits"][0]

    active = (await topology.client.get(url, headers=READ)).json()["result"]["limits"]
    assert sorted((x["node_id"], x["constraint_type"], x["limit_watts"]) for x in active) == sorted(
        [
            (t["gc"], "CONSUMPTION_CAP", 300_000),
            (t["gc"], "GENERATION_CAP", 50_000),
            (t["con"], "CONSUMPTION_CAP", 22_000),
        ]
    )
    only_con = (await topology.client.get(f"{url}?node_id={t['con']}", headers=READ)).json()["result"]["limits"]
    assert [x["node_id"] for x in only_con] == [t["con"]]

    # Updating by id changes it in place; an identical write changes nothing and publishes nothing.
    update = await topology.client.post(
        url, headers=WRITE, json={"limits": [limit(t["gc"], 250_000, node_limit_id=new_gc["node_limit_id"])]}
    )
    assert update.json()["result"]["replaced"] == []
    same = await topology.client.post(
        url, headers=WRITE, json={"limits": [limit(t["gc"], 250_000, node_limit_id=new_gc["node_limit_id"])]}
    )
    assert same.json()["result"]["limits"][0]["updated_at"] == update.json()["result"]["limits"][0]["updated_at"]

    # 3 first + (1 deactivated + 1 new) + 1 update = 6 events, none for the identical write.
    events = await events_of(settings, "microgrid.node_limit_updated", NodeLimitUpdated, mg, 6)
    assert len(events) == 6
    assert {e.payload.updated_by for e in events} == {"test-operator"}
    assert [e.payload.limit_watts for e in events[-3:]] == [400_000, 300_000, 250_000]
    assert events[-3].payload.status == "INACTIVE"


@pytest.mark.req("FR-007")
@pytest.mark.parametrize(
    "case, rule",
    [
        ("virtual_node", "NODE_TYPE_NOT_LIMITABLE"),
        ("unknown_node", "NODE_LIMIT_UNKNOWN_NODE"),
        ("duplicate_pair", "DUPLICATE_NODE_LIMIT"),
    ],
)
async def test_node_limit_validation_is_422_and_writes_nothing(topology, settings, kafka, case, rule) -> None:
    t = await microgrid_with_nodes(topology, settings, kafka)
    limits = {
        "virtual_node": [limit(t["virtual"], 100_000)],
        "unknown_node": [limit(str(uuid.uuid4()), 100_000)],
        "duplicate_pair": [limit(t["cp"], 100_000), limit(t["cp"], 90_000)],
    }[case]
    r = await topology.client.post(f"/api/microgrid/{t['mg']}/node-limits", headers=WRITE, json={"limits": limits})
    assert r.status_code == 422
    assert r.json()["reason_code"] == "VALIDATION_FAILED" and r.json()["violated_rule"] == rule
    assert (await topology.client.get(f"/api/microgrid/{t['mg']}/node-limits", headers=READ)).json()["result"][
        "limits"
    ] == []


def control_point(capability: str, source: str = "LOCAL", node_id: str | None = None, **extra: Any) -> dict:
    return {"capability_type": capability, "state": "enabled", "control_source": source, "node_id": node_id, **extra}


@pytest.mark.req("FR-013", "FR-020", "FR-022", "NFR-003")
async def test_control_points_for_every_capability_type_and_their_invariants(topology, settings, kafka) -> None:
    t = await microgrid_with_nodes(topology, settings, kafka)
    mg = t["mg"]
    base = f"/api/microgrid/{mg}/control-points"
    ids = {c: uuid.uuid4() for c in ("LOAD_BALANCING", "PEAK_SHAVING", "DER", "ENERGY_OPTIMISATION")}
    bodies = {
        "LOAD_BALANCING": control_point(
            "LOAD_BALANCING", local_config={"aggregate_cap_watts": 400_000}, schedule_ref="lb-schedule-1"
        ),
        # Opaque references to configuration another bounded context owns (D-024).
        "PEAK_SHAVING": control_point(
            "PEAK_SHAVING",
            "EXTERNAL",
            node_id=t["gc"],
            external_config_type="OSCP_CONFIGURATION",
            external_config_ref="oscp-cfg-42",
        ),
        "DER": control_point("DER", "EXTERNAL"),
        "ENERGY_OPTIMISATION": control_point("ENERGY_OPTIMISATION", state="disabled"),
    }
    for capability, body in bodies.items():
        r = await topology.client.post(f"{base}/{ids[capability]}", headers=WRITE, json=body)
        assert r.status_code == 200, r.text
        assert r.json()["result"]["created"] is True

    listed = (await topology.client.get(base, headers=READ)).json()["result"]["control_points"]
    assert {p["control_point"]["capability_type"] for p in listed} == set(ids)
    # Configuration and runtime status are separate parts of the answer (FR-020); no status yet.
    assert all(p["status"] is None for p in listed)
    peak = (await topology.client.get(f"{base}?capability_type=PEAK_SHAVING", headers=READ)).json()["result"]
    assert [p["control_point"]["external_config_ref"] for p in peak["control_points"]] == ["oscp-cfg-42"]
    by_node = (await topology.client.get(f"{base}?node_id={t['gc']}", headers=READ)).json()["result"]
    assert [p["control_point"]["control_point_id"] for p in by_node["control_points"]] == [str(ids["PEAK_SHAVING"])]

    # schedule_ref only for LOCAL (D-015, FR-022).
    r = await topology.client.post(
        f"{base}/{ids['DER']}", headers=WRITE, json=control_point("DER", "EXTERNAL", schedule_ref="nope")
    )
    assert r.status_code == 422 and r.json()["violated_rule"] == "SCHEDULE_REF_ONLY_LOCAL"
    # At most one active control point per microgrid + node + capability type.
    r = await topology.client.post(f"{base}/{uuid.uuid4()}", headers=WRITE, json=control_point("DER", "EXTERNAL"))
    assert r.status_code == 422 and r.json()["violated_rule"] == "ONE_ACTIVE_CONTROL_POINT_PER_SCOPE"
    # ... but the same capability on another node is another scope.
    r = await topology.client.post(
        f"{base}/{uuid.uuid4()}", headers=WRITE, json=control_point("DER", "EXTERNAL", node_id=t["cp"])
    )
    assert r.status_code == 200
    # Target node must exist in this microgrid; scope of an existing point never changes.
    r = await topology.client.post(
        f"{base}/{uuid.uuid4()}", headers=WRITE, json=control_point("DER", node_id=str(uuid.uuid4()))
    )
    assert r.status_code == 422 and r.json()["violated_rule"] == "CONTROL_POINT_UNKNOWN_NODE"
    r = await topology.client.post(
        f"{base}/{ids['DER']}", headers=WRITE, json=control_point("PEAK_SHAVING", "EXTERNAL")
    )
    assert r.status_code == 422 and r.json()["violated_rule"] == "CONTROL_POINT_SCOPE_IMMUTABLE"
    # The aggregate cap must be whole non-negative watts.
    r = await topology.client.post(
        f"{base}/{ids['LOAD_BALANCING']}",
        headers=WRITE,
        json=control_point("LOAD_BALANCING", local_config={"aggregate_cap_watts": -5}),
    )
    assert r.status_code == 422 and r.json()["violated_rule"] == "AGGREGATE_CAP_INVALID"

    # Upsert by id: a change publishes, an identical write does not.
    changed = await topology.client.post(
        f"{base}/{ids['DER']}", headers=WRITE, json=control_point("DER", "EXTERNAL", state="disabled")
    )
    assert changed.json()["result"] | {"control_point": None} == {
        "control_point": None,
        "created": False,
        "changed": True,
    }
    same = await topology.client.post(
        f"{base}/{ids['DER']}", headers=WRITE, json=control_point("DER", "EXTERNAL", state="disabled")
    )
    assert same.json()["result"]["changed"] is False

    events = await events_of(
        settings, "microgrid.capability_control_point_updated", CapabilityControlPointUpdated, mg, 6
    )
    assert len(events) == 6  # 4 created + 1 on another node + 1 change
    lb = next(e for e in events if e.payload.capability_type == "LOAD_BALANCING")
    assert lb.payload.local_config == {"aggregate_cap_watts": 400_000} and lb.payload.schedule_ref == "lb-schedule-1"
    assert events[-1].payload.state == "disabled" and events[-1].payload.updated_by == "test-operator"


async def test_routes_need_a_token_and_the_right_scope(topology, settings, kafka) -> None:
    t = await microgrid_with_nodes(topology, settings, kafka)
    url = f"/api/microgrid/{t['mg']}/node-limits"
    assert (await topology.client.get(url)).status_code == 401
    r = await topology.client.post(url, headers=READ, json={"limits": [limit(t["gc"], 1)]})
    assert r.status_code == 403 and r.json()["reason_code"] == "FORBIDDEN"
    r = await topology.client.get(url, headers=auth_headers("integration:write"))
    assert r.status_code == 403
