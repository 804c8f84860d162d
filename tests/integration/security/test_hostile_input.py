"""Hostile and careless input at every door: a 422 in the spec's error shape naming the field, never a
500, never a partial write, never a weaker limit (issue 14, "Bad input").

Each case was found by probing the running system: on the old main they answered 500 (NUL, lone
surrogate, NaN, integers past the column type, over-long text), or were taken in the wrong sense
(`true` as 1 W, `0` as false, `0.5` as a time), or were accepted and then lost (a rebalance on
topology version 2^40, a TOU replacement at 2^63 W).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts.base import MAX_NODES
from contracts.topics import BY_NAME
from tests.integration.security.conftest import WRITE, Depot, Services, resynced_depot
from tests.support import eventually

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
LATER = NOW + timedelta(days=30)


def _raw(body: Any) -> bytes:
    # ensure_ascii keeps lone surrogates and NaN as the JSON text a hostile client sends
    return json.dumps(body, ensure_ascii=True, allow_nan=True).encode()


async def _post(services: Services, service: str, path: str, body: Any) -> Any:
    return await services[service].client.post(
        path, content=_raw(body), headers=WRITE | {"Content-Type": "application/json"}
    )


def _assert_refused(response: Any, field: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["reason_code"] == "VALIDATION_FAILED"
    assert body["violated_rule"] == "request_schema"
    fields = {part for error in body["details"] for part in error["loc"]}
    assert field in fields, body["details"]


@pytest.fixture(scope="module")
async def depot(services: Services) -> Depot:
    return await resynced_depot(services)


def _node(**overrides: Any) -> dict[str, Any]:
    return {"node_id": str(uuid.uuid4()), "name": "Charger bay", "node_type": "CIRCUIT"} | overrides


def _control_point(**overrides: Any) -> dict[str, Any]:
    return {
        "capability_type": "LOAD_BALANCING", "state": "enabled", "control_source": "LOCAL", "local_config": {}
    } | overrides


def _status(**overrides: Any) -> dict[str, Any]:
    return {"operational_status": "ON", "observed_at": NOW.isoformat(), "source_event_ref": "ev-1"} | overrides


def _block(**overrides: Any) -> dict[str, Any]:
    return {"block_from": NOW.isoformat(), "block_to": LATER.isoformat(), "max_limit_watts": 100_000} | overrides


def _envelope(node_id: str, **block: Any) -> dict[str, Any]:
    return {
        "node_id": node_id, "envelope_type": "OVERRIDE", "constraint_type": "CONSUMPTION_CAP",
        "effective_from": NOW.isoformat(), "effective_to": LATER.isoformat(), "source_ref": f"s-{uuid.uuid4()}",
        "blocks": [_block(**block)],
    }


def _limit(node_id: str, watts: Any) -> dict[str, Any]:
    return {"limits": [{"node_id": node_id, "constraint_type": "CONSUMPTION_CAP", "limit_watts": watts,
                        "source_type": "MANUAL"}]}


# (case, service, path template, body builder, the field the 422 must name)
CASES: list[tuple[str, str, str, Any, str]] = [
    ("nul in a node name", "topology", "/api/microgrid/{mg}/topology",
     lambda d: {"version": 1, "nodes": [_node(name="bay\x00")]}, "name"),
    ("lone surrogate in a node name", "topology", "/api/microgrid/{mg}/topology",
     lambda d: {"version": 1, "nodes": [_node(name="bay \ud800")]}, "name"),
    ("display_order 2^31", "topology", "/api/microgrid/{mg}/topology",
     lambda d: {"version": 1, "nodes": [_node(display_order=2**31)]}, "display_order"),
    ("topology version 2^40", "topology", "/api/microgrid/{mg}/topology",
     lambda d: {"version": 2**40, "nodes": []}, "version"),
    ("limit_watts 2^63", "topology", "/api/microgrid/{mg}/node-limits",
     lambda d: _limit(str(d.grid_connection_id), 2**63), "limit_watts"),
    ("limit_watts 10^30", "topology", "/api/microgrid/{mg}/node-limits",
     lambda d: _limit(str(d.grid_connection_id), 10**30), "limit_watts"),
    ("limit_watts above 10 GW", "topology", "/api/microgrid/{mg}/node-limits",
     lambda d: _limit(str(d.grid_connection_id), 10_000_000_001), "limit_watts"),
    ("limit_watts true", "topology", "/api/microgrid/{mg}/node-limits",
     lambda d: _limit(str(d.grid_connection_id), True), "limit_watts"),
    ("NaN in local_config", "topology", "/api/microgrid/{mg}/control-points/{cp}",
     lambda d: _control_point(local_config={"cap_watts": float("nan")}), "local_config"),
    ("Infinity in local_config", "topology", "/api/microgrid/{mg}/control-points/{cp}",
     lambda d: _control_point(local_config={"nested": [{"x": float("inf")}]}), "local_config"),
    ("nul in a local_config key", "topology", "/api/microgrid/{mg}/control-points/{cp}",
     lambda d: _control_point(local_config={"a\x00": 1}), "local_config"),
    ("nul in description", "topology", "/api/microgrid/{mg}/control-points/{cp}",
     lambda d: _control_point(description="x\x00y"), "description"),
    ("active 0", "topology", "/api/microgrid/{mg}/control-points/{cp}",
     lambda d: _control_point(active=0), "active"),
    ("Infinity in status_detail", "topology", "/api/microgrid/{mg}/control-points/{cp}/status-events",
     lambda d: _status(status_detail={"soc": float("-inf")}), "status_detail"),
    ("operational_status of 201 characters", "topology", "/api/microgrid/{mg}/control-points/{cp}/status-events",
     lambda d: _status(operational_status="x" * 201), "operational_status"),
    ("nul in operational_status", "topology", "/api/microgrid/{mg}/control-points/{cp}/status-events",
     lambda d: _status(operational_status="ON\x00"), "operational_status"),
    ("observed_at as a number", "topology", "/api/microgrid/{mg}/control-points/{cp}/status-events",
     lambda d: _status(observed_at=0.5), "observed_at"),
    ("block watts 2^63", "envelope_lifecycle", "/internal/microgrid/{mg}/operating-envelopes",
     lambda d: _envelope(str(d.grid_connection_id), max_limit_watts=2**63), "max_limit_watts"),
    ("nul in source_ref", "envelope_lifecycle", "/internal/microgrid/{mg}/operating-envelopes",
     lambda d: _envelope(str(d.grid_connection_id)) | {"source_ref": "s\x00"}, "source_ref"),
    ("rebalance on topology version 2^40", "balancing", "/api/microgrid/{mg}/rebalance",
     lambda d: {"expected_topology_version": 2**40}, "expected_topology_version"),
    ("TOU limit 2^63", "compatibility_adapter", "/api/circuit/{circuit}/tou_limits",
     lambda d: {"periods": [{"start": NOW.isoformat(), "end": LATER.isoformat(), "limit_watts": 2**63}]},
     "limit_watts"),
]


@pytest.mark.parametrize(("case", "service", "path", "body", "field"), CASES, ids=[c[0] for c in CASES])
async def test_bad_input_is_a_422_naming_the_field(
    services: Services, depot: Depot, case: str, service: str, path: str, body: Any, field: str
) -> None:
    url = path.format(mg=depot.microgrid_id, circuit=depot.circuit_id, cp=uuid.uuid4())
    _assert_refused(await _post(services, service, url, body(depot)), field)


async def test_a_time_query_parameter_is_not_a_number(services: Services, depot: Depot) -> None:
    url = f"/api/microgrid/{depot.microgrid_id}/control-points/{uuid.uuid4()}/status-events"
    for value in ("0.5", "1700000000"):
        response = await services["topology"].client.get(url, params={"to": value}, headers=WRITE)
        _assert_refused(response, "to")


async def test_a_hostile_status_history_cursor_is_a_422(services: Services, depot: Depot) -> None:
    import base64

    point = f"/api/microgrid/{depot.microgrid_id}/control-points/{uuid.uuid4()}"
    created = await services["topology"].client.post(point, json=_control_point(), headers=WRITE)
    assert created.status_code == 200, created.text
    url = f"{point}/status-events"
    for raw in (f"{NOW.isoformat()}|{2**70}", "2030-01-01T00:00:00|1", "\x00|1"):
        cursor = base64.urlsafe_b64encode(raw.encode()).decode()
        response = await services["topology"].client.get(url, params={"cursor": cursor}, headers=WRITE)
        assert response.status_code == 422, (raw, response.text)


async def test_nothing_is_stored_from_a_refused_write(services: Services, depot: Depot) -> None:
    topology = services["topology"].client
    url = f"/api/microgrid/{depot.microgrid_id}/topology"
    before = (await topology.get(url, headers=WRITE)).json()["result"]["microgrid"]["version"]
    nodes = [_node(parent_node_id=str(depot.grid_connection_id)), _node(name="bad\x00")]
    _assert_refused(await _post(services, "topology", url, {"version": before, "nodes": nodes}), "name")
    after = (await topology.get(url, headers=WRITE)).json()["result"]["microgrid"]["version"]
    assert after == before


async def test_a_topology_whose_event_cannot_fit_the_broker_is_refused_with_413(
    services: Services, depot: Depot
) -> None:
    """1,500 nodes (the most a microgrid may have) with 200-character names: a body under the 1 MiB HTTP
    limit whose topology_updated event would outgrow the topic's budget (on the old main a body like it
    was accepted, then the relay could not publish the event and blocked the outbox for good)."""
    depot = await resynced_depot(services)
    topology = services["topology"].client
    url = f"/api/microgrid/{depot.microgrid_id}/topology"
    current = (await topology.get(url, headers=WRITE)).json()["result"]
    version = current["microgrid"]["version"]
    grid_connection = {k: v for k, v in current["nodes"][0].items() if k not in ("children", "microgrid_id", "managed")}
    nodes = [grid_connection] + [
        _node(name=f"{i:05d}" + "é" * 195, parent_node_id=str(depot.grid_connection_id), node_type="CIRCUIT")
        for i in range(MAX_NODES - 1)
    ]
    body = json.dumps({"version": version, "nodes": nodes}, ensure_ascii=False).encode()
    assert len(body) < 1_048_576
    response = await topology.post(url, content=body, headers=WRITE | {"Content-Type": "application/json"})
    assert response.status_code == 413, response.text[:500]
    refusal = response.json()
    assert refusal["reason_code"] == "PAYLOAD_TOO_LARGE"
    assert refusal["details"]["topic"] == "microgrid.topology_updated"
    assert refusal["details"]["size_bytes"] > BY_NAME["microgrid.topology_updated"].max_bytes
    after = (await topology.get(url, headers=WRITE)).json()["result"]["microgrid"]["version"]
    assert after == version  # nothing stored, nothing in the outbox


async def test_too_many_nodes_is_a_422(services: Services, depot: Depot) -> None:
    nodes = [_node(node_type="CIRCUIT") for _ in range(2_980)]
    response = await _post(services, "topology", f"/api/microgrid/{depot.microgrid_id}/topology",
                           {"version": 1, "nodes": nodes})
    _assert_refused(response, "nodes")


async def test_the_services_still_answer_after_the_hostile_inputs(services: Services, depot: Depot) -> None:
    for name, path in (("topology", f"/api/microgrid/{depot.microgrid_id}/topology"),
                       ("compatibility_adapter", f"/api/circuit/{depot.circuit_id}/tou_limits")):
        response = await eventually(
            lambda name=name, path=path: _ok(services[name].client.get(path, headers=WRITE))
        )
        assert response.status_code == 200


async def _ok(request: Any) -> Any:
    response = await request
    return response if response.status_code == 200 else None
