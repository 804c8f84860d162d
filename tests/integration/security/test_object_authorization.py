"""Object-level authorization (OWASP API1, issue 14): a token for microgrid A gets 404 on every route of
microgrid B, on all four services, and changes nothing of B's.

The walk is generated from each service's OpenAPI document, so a new route is covered (or the test
fails naming it) without anyone remembering to add it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from libs.platform.auth import Grant
from libs.platform.clock import ManualClock
from libs.platform.runtime import ServiceDefinition, build_app
from libs.platform.settings import PlatformSettings
from services.balancing.bootstrap import DEFINITION as BALANCING
from services.compatibility_adapter.bootstrap import DEFINITION as COMPATIBILITY_ADAPTER
from services.envelope_lifecycle.bootstrap import DEFINITION as ENVELOPE_LIFECYCLE
from services.topology.bootstrap import DEFINITION as TOPOLOGY
from tests.integration.topology.conftest import START, as_input, circuit, node, resync_until
from tests.support import eventually, publish_as_owner
from tests.support_services import RunningService, auth_headers, running_service

pytestmark = pytest.mark.integration

SERVICES: dict[str, ServiceDefinition] = {
    "topology": TOPOLOGY,
    "envelope_lifecycle": ENVELOPE_LIFECYCLE,
    "balancing": BALANCING,
    "compatibility_adapter": COMPATIBILITY_ADAPTER,
}
SCOPES = ("operator:read", "operator:write", "integration:write")
ADMIN = auth_headers(*SCOPES)
# Routes that name no microgrid, depot or circuit: what a token outside every grant gets there.
NO_OBJECT_ROUTES = {
    ("GET", "/health"): 200,
    ("GET", "/ready"): None,  # readiness of the process, whatever it answers: no tenant data
    ("GET", "/api/compatibility/translations"): 403,  # counts over every microgrid: platform grant only
    ("GET", "/api/operator/microgrids"): 200,  # the console's directory: only the microgrids granted
}


@dataclass
class Victim:
    """Microgrid B with its depot, feeder circuit, node, limit and control point: what the attacker aims at."""

    depot_id: uuid.UUID
    microgrid_id: uuid.UUID
    node_id: uuid.UUID
    circuit_id: uuid.UUID
    control_point_id: uuid.UUID
    topology_version: int

    def path_value(self, name: str) -> str:
        known = {
            "microgrid_id": self.microgrid_id,
            "depot_id": self.depot_id,
            "circuit_id": self.circuit_id,
            "control_point_id": self.control_point_id,
            # B's ids that need no setup: the 404 must come before any lookup of them
            "envelope_id": uuid.uuid5(self.microgrid_id, "envelope"),
            "cycle_id": uuid.uuid5(self.microgrid_id, "cycle"),
        }
        if name not in known:
            raise AssertionError(f"path parameter {{{name}}} is new: teach this test which of B's ids to use")
        return str(known[name])


@pytest.fixture(scope="module")
async def services(settings: PlatformSettings) -> AsyncIterator[dict[str, RunningService]]:
    running: dict[str, RunningService] = {}
    stack = []
    try:
        for name, definition in SERVICES.items():
            context = running_service(definition, settings, clock=ManualClock(START) if name == "topology" else None)
            running[name] = await context.__aenter__()
            stack.append(context)
        yield running
    finally:
        for context in reversed(stack):
            await context.__aexit__(None, None, None)


async def make_victim(services: dict[str, RunningService], settings: PlatformSettings, kafka: Any) -> Victim:
    topology = services["topology"]
    depot_id = uuid.uuid4()
    feeder = circuit(depot_id, "Feeder B")
    await publish_as_owner(kafka, settings, feeder)
    resync = (await resync_until(topology, depot_id, feeders=1))["result"]
    microgrid_id = uuid.UUID(resync["microgrid"]["microgrid_id"])
    [node_id] = [uuid.UUID(n) for n in resync["added_node_ids"]]
    mg = f"/api/microgrid/{microgrid_id}"
    limit = {"node_id": str(node_id), "constraint_type": "CONSUMPTION_CAP", "limit_watts": 50_000,
             "source_type": "MANUAL"}
    r = await topology.client.post(f"{mg}/node-limits", json={"limits": [limit]}, headers=ADMIN)
    assert r.status_code == 200, r.text
    control_point_id = uuid.uuid4()
    r = await topology.client.post(
        f"{mg}/control-points/{control_point_id}",
        json={"capability_type": "LOAD_BALANCING", "state": "enabled", "control_source": "LOCAL"},
        headers=ADMIN,
    )
    assert r.status_code == 200, r.text
    circuit_id = feeder.payload.circuit_id

    async def adapter_knows_the_circuit() -> bool:
        r = await services["compatibility_adapter"].client.get(
            f"/api/circuit/{circuit_id}/effective_capacity", headers=ADMIN
        )
        return r.status_code == 200 and r.json().get("microgrid_id") == str(microgrid_id)

    await eventually(adapter_knows_the_circuit, timeout=30)
    return Victim(depot_id, microgrid_id, node_id, circuit_id, control_point_id, resync["microgrid"]["version"])


async def victim_state(topology: RunningService, victim: Victim) -> dict[str, Any]:
    mg = f"/api/microgrid/{victim.microgrid_id}"
    limits = (await topology.client.get(f"{mg}/node-limits", headers=ADMIN)).json()["result"]["limits"]
    tree = (await topology.client.get(f"{mg}/topology", headers=ADMIN)).json()["result"]
    points = (await topology.client.get(f"{mg}/control-points", headers=ADMIN)).json()["result"]
    return {"limits": limits, "tree": tree, "control_points": points}


def operations(definition: ServiceDefinition) -> list[tuple[str, str, dict[str, Any]]]:
    document = build_app(definition).openapi()
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]


async def test_every_route_of_every_service_answers_404_for_another_microgrids_ids(
    services: dict[str, RunningService], settings: PlatformSettings, kafka: Any
) -> None:
    victim = await make_victim(services, settings, kafka)
    before = await victim_state(services["topology"], victim)
    # Every scope, every route's rights: only the grant (microgrid A and depot A) stands between it and B.
    attacker = auth_headers(
        *SCOPES, subject="depot-a-operator", grant=Grant(microgrids=frozenset({uuid.uuid4()}),
                                                          depots=frozenset({uuid.uuid4()}))
    )
    walked, exempt, failures = 0, 0, []
    for service_name, definition in SERVICES.items():
        client = services[service_name].client
        for method, template, operation in operations(definition):
            names = re.findall(r"{(\w+)}", template)
            if not names:
                expected = NO_OBJECT_ROUTES.get((method, template), "missing")
                assert expected != "missing", f"{method} {template} names no object: add it to NO_OBJECT_ROUTES"
                r = await client.request(method, template, headers=attacker)
                if expected is not None and r.status_code != expected:
                    failures.append(f"{service_name} {method} {template}: {r.status_code} (wanted {expected})")
                exempt += 1
                continue
            path = template
            for name in names:
                path = path.replace(f"{{{name}}}", victim.path_value(name))
            body = {} if "requestBody" in operation else None
            r = await client.request(method, path, json=body, headers=attacker)
            if r.status_code != 404 or r.json().get("reason_code") != "NOT_FOUND":
                failures.append(f"{service_name} {method} {template}: {r.status_code} {r.text[:200]}")
            walked += 1

    print(f"object authorization: {walked} routes with ids walked with B's ids, {exempt} id-free routes checked")
    assert not failures, "\n".join(failures)
    assert walked >= 20  # the four services' id routes (today 22): a walk that found none proves nothing
    assert await victim_state(services["topology"], victim) == before


async def test_a_depot_a_token_cannot_raise_depot_bs_node_limit(
    services: dict[str, RunningService], settings: PlatformSettings, kafka: Any
) -> None:
    # The finding: a token for depot A raised B's node limit from 50 kW to 500 kW.
    victim = await make_victim(services, settings, kafka)
    topology = services["topology"]
    token_a = auth_headers(*SCOPES, grant=Grant(microgrids=frozenset({uuid.uuid4()})))
    token_b = auth_headers(*SCOPES, grant=Grant(microgrids=frozenset({victim.microgrid_id})))
    raise_to_500 = {"limits": [{"node_id": str(victim.node_id), "constraint_type": "CONSUMPTION_CAP",
                                "limit_watts": 500_000, "source_type": "MANUAL"}]}
    url = f"/api/microgrid/{victim.microgrid_id}/node-limits"

    refused = await topology.client.post(url, json=raise_to_500, headers=token_a)
    unseen = await topology.client.get(url, headers=token_a)
    seen = await topology.client.get(url, headers=token_b)

    assert refused.status_code == 404, refused.text
    assert unseen.status_code == 404, unseen.text
    assert seen.status_code == 200
    assert [lim["limit_watts"] for lim in seen.json()["result"]["limits"]] == [50_000]


async def test_depot_and_circuit_routes_follow_the_depot_grant(
    services: dict[str, RunningService], settings: PlatformSettings, kafka: Any
) -> None:
    victim = await make_victim(services, settings, kafka)
    own_depot = auth_headers(*SCOPES, grant=Grant(depots=frozenset({victim.depot_id})))
    own_microgrid = auth_headers(*SCOPES, grant=Grant(microgrids=frozenset({victim.microgrid_id})))
    other = auth_headers(*SCOPES, grant=Grant(depots=frozenset({uuid.uuid4()})))
    depot_url = f"/api/depot/{victim.depot_id}/microgrid"
    circuit_url = f"/api/circuit/{victim.circuit_id}/effective_capacity"
    topology, adapter = services["topology"].client, services["compatibility_adapter"].client

    for headers in (own_depot, own_microgrid):
        assert (await topology.get(depot_url, headers=headers)).status_code == 200
        assert (await adapter.get(circuit_url, headers=headers)).status_code == 200
    assert (await topology.get(depot_url, headers=other)).status_code == 404
    assert (await adapter.get(circuit_url, headers=other)).status_code == 404
    # An unknown circuit and a foreign one answer alike: existence is not revealed.
    unknown = await adapter.get(f"/api/circuit/{uuid.uuid4()}/effective_capacity", headers=other)
    assert unknown.status_code == 404


async def test_refusals_never_name_another_microgrids_id(
    services: dict[str, RunningService], settings: PlatformSettings, kafka: Any
) -> None:
    victim = await make_victim(services, settings, kafka)
    mine = await make_victim(services, settings, kafka)
    topology = services["topology"].client
    token = auth_headers(*SCOPES, grant=Grant(microgrids=frozenset({mine.microgrid_id})))
    mg = f"/api/microgrid/{mine.microgrid_id}"
    tree = (await topology.get(f"{mg}/topology", headers=token)).json()["result"]
    stolen = node(victim.node_id, "B's grid connection", "GRID_CONNECTION")
    own = [as_input(n) for n in tree["nodes"]]

    replaced = await topology.post(
        f"{mg}/topology", json={"version": tree["microgrid"]["version"], "nodes": [*own, stolen]}, headers=token
    )
    moved = await topology.post(
        f"{mg}/control-points/{victim.control_point_id}",
        json={"capability_type": "LOAD_BALANCING", "state": "enabled", "control_source": "LOCAL"},
        headers=token,
    )

    for refusal in (replaced, moved):
        assert refusal.status_code == 422, refusal.text
        assert str(victim.microgrid_id) not in refusal.text
        assert str(victim.depot_id) not in refusal.text


async def test_a_body_depot_id_is_checked_like_a_path_id(
    services: dict[str, RunningService], settings: PlatformSettings, kafka: Any
) -> None:
    # A token for a fresh microgrid M must not bind someone else's depot to it on M's first write.
    topology = services["topology"]
    their_depot, mine = uuid.uuid4(), uuid.uuid4()
    await publish_as_owner(kafka, settings, circuit(their_depot, "Their feeder"))
    token = auth_headers(*SCOPES, grant=Grant(microgrids=frozenset({mine})))
    first_write = {"version": 0, "nodes": [node(uuid.uuid4(), "GC", "GRID_CONNECTION")], "depot_id": str(their_depot)}

    r = await topology.client.post(f"/api/microgrid/{mine}/topology", json=first_write, headers=token)

    assert r.status_code == 404, r.text
    created = await topology.ctx.pool.fetchval("SELECT count(*) FROM microgrid WHERE depot_id = $1", their_depot)
    assert created == 0
    allowed = auth_headers(*SCOPES, grant=Grant(microgrids=frozenset({mine}), depots=frozenset({their_depot})))
    r = await topology.client.post(f"/api/microgrid/{mine}/topology", json=first_write, headers=allowed)
    assert r.status_code == 200, r.text
