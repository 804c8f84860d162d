"""One topology service for this package's tests, run in-process against the real stack.

Tests never share a microgrid: each makes its own depot and ids, so they can share the service.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.events import LegacyCircuitUpdated, LegacyCircuitUpdatedPayload
from libs.platform.clock import ManualClock
from libs.platform.settings import PlatformSettings
from services.topology.bootstrap import DEFINITION
from tests.support import eventually, publish_as_owner
from tests.support_services import RunningService, auth_headers, running_service

WRITE = auth_headers("operator:read", "operator:write")
READ = auth_headers("operator:read")
START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="package")
async def topology(settings: PlatformSettings) -> AsyncIterator[RunningService]:
    async with running_service(DEFINITION, settings, clock=ManualClock(START)) as svc:
        yield svc


@pytest.fixture
def clock(topology: RunningService) -> ManualClock:
    clock: ManualClock = topology.ctx.clock
    clock.set(START)
    return clock


def circuit(
    depot_id: uuid.UUID,
    name: str,
    *,
    parent: uuid.UUID | None = None,
    removed: bool = False,
    circuit_id: uuid.UUID | None = None,
) -> LegacyCircuitUpdated:
    payload = LegacyCircuitUpdatedPayload(
        circuit_id=circuit_id or uuid.uuid4(),
        depot_id=depot_id,
        parent_circuit_id=parent,
        name=name,
        default_capacity_watts=400_000,
        fail_safe_capacity_watts=100_000,
        removed=removed,
    )
    return LegacyCircuitUpdated.create(payload, producer="legacy", occurred_at=datetime.now(UTC))


async def resync_until(
    svc: RunningService, depot_id: uuid.UUID, feeders: int, records: int | None = None
) -> dict[str, Any]:
    """Resync once the service has consumed all `records` legacy circuit records sent for the depot.

    Waiting for the read model first (not retrying resync) matters: a resync that saw only part of the
    records would build the microgrid from them and the next one would bump the version again.
    """

    async def consumed() -> bool:
        known = await svc.ctx.pool.fetchval("SELECT count(*) FROM legacy_circuit WHERE depot_id = $1", depot_id)
        return known >= (records if records is not None else feeders)

    await eventually(consumed, timeout=30, interval=0.05)
    r = await svc.client.post(f"/api/depot/{depot_id}/microgrid/resync", headers=WRITE)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert len(body["result"]["feeder_circuit_ids"]) == feeders, body
    return body


async def depot_with_feeders(
    svc: RunningService, settings: PlatformSettings, producer: Any, count: int = 1
) -> tuple[uuid.UUID, dict[str, Any]]:
    """A new depot with `count` feeder circuits, resynced: (depot_id, resync body)."""
    depot_id = uuid.uuid4()
    for i in range(count):
        await publish_as_owner(producer, settings, circuit(depot_id, f"Feeder {i + 1}"))
    return depot_id, await resync_until(svc, depot_id, count)


def node(node_id: uuid.UUID, name: str, node_type: str, parent: uuid.UUID | None = None, **extra: Any) -> dict:
    body = {
        "node_id": str(node_id),
        "name": name,
        "node_type": node_type,
        "parent_node_id": str(parent) if parent else None,
    }
    body.update({k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in extra.items()})
    return body


def as_input(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored node (from a response) as a topology-write node (without `managed`/`children`)."""
    return {k: v for k, v in stored.items() if k not in ("managed", "microgrid_id", "children")}
