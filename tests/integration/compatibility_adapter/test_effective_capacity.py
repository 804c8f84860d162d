"""The circuit-facing effective capacity: a changed value requests one legacy rebalance, a reconciliation
never does (Operating-Envelope Compatibility Policy, FR-029, FR-033)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from contracts.enums import AliasPath, ProjectionTrigger, RebalanceSource
from contracts.events import (
    EffectiveCircuitCapacityChanged,
    EffectiveCircuitCapacityPayload,
    EffectiveCircuitCapacityReconciled,
    LegacyCircuitUpdated,
    LegacyCircuitUpdatedPayload,
)
from tests.integration.compatibility_adapter.conftest import Adapter, known_site
from tests.support import eventually
from tests.support_services import auth_headers

pytestmark = pytest.mark.integration
READ = auth_headers("operator:read")


def capacity(site, watts: int, trigger: ProjectionTrigger, at: datetime, previous: int | None = None):  # noqa: ANN001, ANN201
    return EffectiveCircuitCapacityPayload(
        microgrid_id=site.microgrid_id,
        node_id=site.node_id,
        circuit_id=site.circuit_id,
        effective_capacity_watts=watts,
        projection_trigger=trigger,
        previous_capacity_watts=previous,
        basis="TOU_LIMIT",
        evaluated_at=at,
    )


@pytest.mark.req("FR-008", "FR-029", "FR-033", "NFR-005", "NFR-006")
async def test_capacity_change_requests_one_legacy_rebalance_and_reconciliation_none(adapter: Adapter) -> None:
    site = await known_site(adapter)
    t0 = datetime.now(UTC)
    await adapter.send(
        LegacyCircuitUpdated.create(
            LegacyCircuitUpdatedPayload(
                circuit_id=site.circuit_id,
                depot_id=site.depot_id,
                name="Feeder 1",
                default_capacity_watts=100_000,
                fail_safe_capacity_watts=20_000,
            ),
            producer="legacy-registry",
            occurred_at=t0,
        )
    )
    url = f"/api/circuit/{site.circuit_id}/effective_capacity"

    async def capacity_view(expected: int) -> dict | None:
        response = await adapter.service.client.get(url, headers=READ)
        body = response.json() if response.status_code == 200 else {}
        return body if body.get("effective_capacity_watts") == expected else None

    baseline = await eventually(lambda: capacity_view(100_000))
    assert (baseline["basis"], baseline["depot_id"], baseline["fail_safe_capacity_watts"]) == (
        "LEGACY_DEFAULT",
        str(site.depot_id),
        20_000,
    )

    changed = EffectiveCircuitCapacityChanged.create(
        capacity(site, 60_000, ProjectionTrigger.ENVELOPE_CHANGE, t0, previous=100_000),
        producer="envelope_lifecycle",
        occurred_at=t0,
    )
    await adapter.send(changed)
    view = await eventually(lambda: capacity_view(60_000))
    assert (view["microgrid_id"], view["node_id"], view["projection_trigger"]) == (
        str(site.microgrid_id),
        str(site.node_id),
        "ENVELOPE_CHANGE",
    )
    assert (await adapter.service.client.get(url, headers=READ)).headers["Deprecation"] == "true"

    reconciled = EffectiveCircuitCapacityReconciled.create(
        capacity(site, 55_000, ProjectionTrigger.REBALANCE_GUARD, t0 + timedelta(seconds=1), previous=60_000),
        producer="balancing",
        occurred_at=t0,
    )
    await adapter.send(reconciled)
    await eventually(lambda: capacity_view(55_000))
    # Replaying the change, and an older change arriving late, request nothing either.
    stale = EffectiveCircuitCapacityChanged.create(
        capacity(site, 70_000, ProjectionTrigger.ENVELOPE_LIFECYCLE, t0 - timedelta(seconds=5)),
        producer="envelope_lifecycle",
        occurred_at=t0,
    )
    for late in (changed, stale):
        await adapter.send(late)
    await eventually(lambda: _consumed(adapter, stale))
    assert await capacity_view(55_000)

    requests = [
        m for m in await adapter.outbox("microgrid.rebalance_requested") if m.payload.circuit_id == site.circuit_id
    ]
    assert len(requests) == 1
    [request] = requests
    assert (request.payload.source, request.payload.microgrid_id, request.payload.node_id) == (
        RebalanceSource.ENVELOPE_CHANGE,
        site.microgrid_id,
        site.node_id,
    )
    assert request.correlation_id == changed.correlation_id
    aliases = [
        m
        for m in await adapter.outbox("compatibility.circuit_alias_applied")
        if m.payload.circuit_id == site.circuit_id
    ]
    assert [a.payload.path for a in aliases] == [AliasPath.CAPACITY_CHANGE]


async def test_unknown_circuit_has_no_effective_capacity(adapter: Adapter) -> None:
    response = await adapter.service.client.get(f"/api/circuit/{uuid.uuid4()}/effective_capacity", headers=READ)
    assert response.status_code == 404


async def _consumed(adapter: Adapter, message) -> bool:  # noqa: ANN001
    return bool(
        await adapter.service.ctx.pool.fetchval("SELECT 1 FROM inbox WHERE event_id = $1", str(message.event_id))
    )


@pytest.mark.req("FR-028", "NFR-007")
async def test_a_boundary_change_requests_its_rebalance_whether_or_not_a_guard_reconciled_it_first(
    adapter: Adapter,
) -> None:
    """Issue 15, defect 8: a rebalance right at a block boundary reconciles the new value (REBALANCE_GUARD)
    while the scheduled evaluation projects the same change. Which event reaches the adapter first used
    to decide whether a second cycle ran; now the projection's change requests its one rebalance in
    either order, and a reconciliation none."""
    site = await known_site(adapter)
    t0 = datetime.now(UTC)
    boundary = capacity(site, 60_000, ProjectionTrigger.ENVELOPE_LIFECYCLE, t0, previous=100_000)
    guard = capacity(site, 60_000, ProjectionTrigger.REBALANCE_GUARD, t0 + timedelta(milliseconds=50),
                     previous=100_000)
    reconciled = EffectiveCircuitCapacityReconciled.create(guard, producer="balancing", occurred_at=t0)
    changed = EffectiveCircuitCapacityChanged.create(boundary, producer="envelope_lifecycle", occurred_at=t0)
    for message in (reconciled, changed):  # the order that used to request nothing
        await adapter.send(message)
    await eventually(lambda: _consumed(adapter, changed))
    requests = [
        m for m in await adapter.outbox("microgrid.rebalance_requested") if m.payload.circuit_id == site.circuit_id
    ]
    assert [r.payload.source for r in requests] == [RebalanceSource.ENVELOPE_CHANGE]
    # the held value stays the newer reconciliation's; replaying the change requests nothing more
    view = (await adapter.service.client.get(f"/api/circuit/{site.circuit_id}/effective_capacity",
                                             headers=READ)).json()
    assert (view["effective_capacity_watts"], view["projection_trigger"]) == (60_000, "REBALANCE_GUARD")
    late = EffectiveCircuitCapacityChanged.create(boundary, producer="envelope_lifecycle", occurred_at=t0)
    await adapter.send(late)
    await eventually(lambda: _consumed(adapter, late))
    assert len([m for m in await adapter.outbox("microgrid.rebalance_requested")
                if m.payload.circuit_id == site.circuit_id]) == 1
