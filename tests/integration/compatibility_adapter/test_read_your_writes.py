"""Read-your-writes across services (issue 15, defect 7): a legacy call right after a resync names a
circuit the adapter has not mapped yet; it waits for the topology before judging, and a circuit that
never gets mapped is refused after the wait, saying so."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.integration.compatibility_adapter.conftest import Adapter, new_site
from tests.integration.compatibility_adapter.test_tou_limits_route import SCHEDULE, WRITE

pytestmark = pytest.mark.integration


@pytest.mark.req("FR-016")
async def test_a_tou_post_right_after_a_resync_waits_for_the_circuit_mapping(adapter: Adapter) -> None:
    site = new_site()
    # the topology service has attached the circuit; the adapter hears of it a moment later
    post = asyncio.create_task(
        adapter.service.client.post(f"/api/circuit/{site.circuit_id}/tou_limits", json=SCHEDULE, headers=WRITE)
    )
    await adapter.send(site.topology())
    response = await post
    assert response.status_code == 202, response.text
    assert response.json()["node_id"] == str(site.node_id)


@pytest.mark.req("FR-016")
async def test_a_circuit_never_mapped_is_refused_after_the_wait_saying_so(adapter: Adapter) -> None:
    response = await adapter.service.client.post(
        f"/api/circuit/{uuid.uuid4()}/tou_limits", json=SCHEDULE, headers=WRITE
    )
    assert response.status_code == 422
    assert "after waiting 5 s for the topology" in response.json()["message"]
