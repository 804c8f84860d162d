"""Read-your-writes across services (issue 15, defect 7): an envelope naming a node written to the topology
a moment ago, which this service has not seen yet, waits for the topology before it is judged; a node
that never comes is rejected after the wait, saying so."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from contracts.commands import SubmitOperatingEnvelope, SubmitOperatingEnvelopePayload
from contracts.enums import ConstraintType, EnvelopeType, NodeType
from contracts.events import TopologyUpdated, TopologyUpdatedPayload
from contracts.records import EnvelopeBlockRecord, MicrogridNodeRecord
from libs.platform.clock import ManualClock
from libs.platform.settings import PlatformSettings
from services.envelope_lifecycle.topology_wait import expire_parked_submissions
from tests.integration.envelope_lifecycle.conftest import READ, T0, WRITE, Depot, block, envelope_body, make_depot
from tests.integration.envelope_lifecycle.test_write_port import envelopes
from tests.support import eventually, publish_as_owner
from tests.support_services import RunningService

pytestmark = pytest.mark.integration
H = timedelta(hours=1)


def topology_with(depot: Depot, node_id: uuid.UUID) -> TopologyUpdated:
    nodes = [
        depot.feeder_node(),
        MicrogridNodeRecord(node_id=node_id, microgrid_id=depot.microgrid_id, parent_node_id=depot.grid_connection_id,
                            name="New branch", node_type=NodeType.CIRCUIT),
    ]
    payload = TopologyUpdatedPayload(microgrid_id=depot.microgrid_id, depot_id=depot.depot_id, version=2,
                                     updated_by="test", nodes=nodes)
    return TopologyUpdated.create(payload, producer="topology", occurred_at=T0)


def submit_command(depot: Depot, node_id: uuid.UUID, ref: str) -> SubmitOperatingEnvelope:
    return SubmitOperatingEnvelope.create(
        SubmitOperatingEnvelopePayload(
            microgrid_id=depot.microgrid_id, node_id=node_id, envelope_type=EnvelopeType.TOU_LIMIT,
            constraint_type=ConstraintType.CONSUMPTION_CAP, effective_from=T0, effective_to=T0 + 2 * H,
            source_ref=ref,
            blocks=[EnvelopeBlockRecord(block_from=T0, block_to=T0 + 2 * H, max_limit_watts=20_000)],
        ),
        producer="compatibility_adapter",
        occurred_at=T0,
    )


@pytest.mark.req("FR-026")
async def test_an_http_envelope_right_after_a_topology_write_waits_for_the_node(
    service: RunningService, clock: ManualClock, settings: PlatformSettings, kafka: Any
) -> None:
    depot = await make_depot(service, settings, kafka)
    new_node = uuid.uuid4()
    # the topology service has the node already; this service hears of it a moment later
    await publish_as_owner(kafka, settings, topology_with(depot, new_node))
    body = envelope_body(new_node, start=0 * H, end=3 * H, blocks=[block(0 * H, H, 50_000)])
    response = await service.client.post(depot.path(), json=body, headers=WRITE)
    assert response.status_code == 201, response.text
    assert response.json()["result"]["envelope"]["status"] == "ACTIVE"


@pytest.mark.req("FR-026")
async def test_an_envelope_command_for_a_node_not_seen_yet_is_judged_when_the_topology_arrives(
    service: RunningService, clock: ManualClock, settings: PlatformSettings, kafka: Any
) -> None:
    depot = await make_depot(service, settings, kafka)
    new_node = uuid.uuid4()
    await publish_as_owner(kafka, settings, submit_command(depot, new_node, "legacy-tou:early"))
    await eventually(lambda: service.ctx.pool.fetchval(
        "SELECT count(*) = 1 FROM parked_submission WHERE node_id = $1", new_node))
    await publish_as_owner(kafka, settings, topology_with(depot, new_node))

    async def stored() -> list[dict[str, Any]]:
        return await envelopes(service, depot, node_id=str(new_node))

    [envelope] = await eventually(stored, timeout=30)
    assert envelope["status"] == "ACTIVE"
    history = await service.client.get(depot.path(f"/{envelope['envelope_id']}"), headers=READ)
    assert [e["transition"] for e in history.json()["result"]["entries"]] == ["RECEIVED"]


@pytest.mark.req("FR-026")
async def test_an_envelope_command_whose_node_never_comes_is_rejected_after_the_wait_saying_so(
    service: RunningService, clock: ManualClock, settings: PlatformSettings, kafka: Any
) -> None:
    depot = await make_depot(service, settings, kafka)
    never = uuid.uuid4()
    await publish_as_owner(kafka, settings, submit_command(depot, never, "legacy-tou:never"))
    await eventually(lambda: service.ctx.pool.fetchval(
        "SELECT count(*) = 1 FROM parked_submission WHERE node_id = $1", never))
    assert await envelopes(service, depot, node_id=str(never)) == []  # waiting, not judged yet
    clock.advance(timedelta(seconds=10))
    await expire_parked_submissions(service.ctx)

    async def rejected() -> list[dict[str, Any]]:
        return await envelopes(service, depot, node_id=str(never), status="REJECTED")

    [envelope] = await eventually(rejected, timeout=10)
    assert envelope["violated_rule"] == "TARGET_NODE_IN_MICROGRID"
    assert "after waiting 5 s for the microgrid's topology" in envelope["rejection_reason"]
