"""The feeder-circuit compatibility projection: forecast, fallback forecast, fail-safe and gap policy as the
spec's Operating-Envelope Compatibility Policy says, driven by forecast-source health (age and capability
status), and deterministic failures for scopes that cannot project (D-022)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from contracts.enums import AssetType, NodeType
from contracts.events import TopologyUpdated, TopologyUpdatedPayload
from contracts.records import MicrogridNodeRecord
from libs.platform.clock import ManualClock
from libs.platform.settings import PlatformSettings
from services.envelope_lifecycle.service import evaluate_due_timers
from tests.integration.envelope_lifecycle.conftest import (
    DEFAULT_W,
    FAIL_SAFE_W,
    READ,
    T0,
    WRITE,
    Depot,
    add_control_point,
    block,
    envelope_body,
    events_for,
    make_depot,
    status_event,
)
from tests.support import TopicReader, eventually, publish_as_owner
from tests.support_services import RunningService

pytestmark = pytest.mark.integration
H = timedelta(hours=1)
M = timedelta(minutes=1)
CAPACITY = "compatibility.effective_circuit_capacity_changed"
LIFECYCLE = "microgrid.operating_envelope_lifecycle_evaluated"


async def capacity(svc: RunningService, depot: Depot) -> dict[str, Any]:
    r = await svc.client.get(f"/internal/microgrid/{depot.microgrid_id}/effective-circuit-capacity", headers=READ)
    assert r.status_code == 200, r.text
    view: dict[str, Any] = r.json()["result"]
    return view


async def current(svc: RunningService, depot: Depot) -> tuple[int, str, str | None]:
    [c] = (await capacity(svc, depot))["circuits"]
    return c["effective_capacity_watts"], c["basis"], c["forecast_source_health"]


async def submit(svc: RunningService, depot: Depot, body: dict[str, Any]) -> str:
    r = await svc.client.post(depot.path(), json=body, headers=WRITE)
    assert r.status_code == 201, r.text
    envelope_id: str = r.json()["result"]["envelope"]["envelope_id"]
    return envelope_id


async def published_changes(settings: PlatformSettings, depot: Depot, count: int) -> list[dict[str, Any]]:
    async with TopicReader(settings, CAPACITY) as reader:

        async def enough() -> list[dict[str, Any]] | None:
            found = await events_for(reader, depot.microgrid_id, CAPACITY)
            return found if len(found) >= count else None

        found: list[dict[str, Any]] = await eventually(enough, timeout=30)
        return found


@pytest.mark.req("FR-030", "FR-029", "FR-032", "NFR-011")
async def test_stale_forecast_source_switches_to_fallback_then_fail_safe(
    service: RunningService, clock: ManualClock, settings: PlatformSettings, kafka: Any
) -> None:
    depot = await make_depot(service, settings, kafka)
    source = await add_control_point(service, settings, kafka, depot)
    node = depot.grid_connection_id
    fallback = await submit(
        service,
        depot,
        envelope_body(
            node, envelope_type="FALLBACK", origin=source, start=0 * H, end=H, blocks=[block(0 * H, H, 60_000)]
        ),
    )
    forecast = await submit(
        service, depot, envelope_body(node, origin=source, start=0 * H, end=2 * H, blocks=[block(0 * H, 2 * H, 80_000)])
    )
    assert await current(service, depot) == (80_000, "PRIMARY_FORECAST", "HEALTHY")

    # Ten minutes without a new forecast: the source is stale, the valid fallback forecast applies.
    await evaluate_due_timers(service.ctx, T0 + 10 * M)
    assert await current(service, depot) == (60_000, "FALLBACK_FORECAST", "STALE")
    # Thirty minutes: offline; the fallback still applies, the value does not change (no event).
    await evaluate_due_timers(service.ctx, T0 + 30 * M)
    assert await current(service, depot) == (60_000, "FALLBACK_FORECAST", "OFFLINE")
    # The value before the last change is kept, not overwritten by an unchanged re-evaluation.
    [view] = (await capacity(service, depot))["circuits"]
    assert view["previous_capacity_watts"] == 80_000
    # The fallback forecast ends: no valid fallback, so the circuit's fail-safe capacity.
    await evaluate_due_timers(service.ctx, T0 + H)
    assert await current(service, depot) == (FAIL_SAFE_W, "FAIL_SAFE", "OFFLINE")

    # A fresh forecast from the source makes it healthy again: the primary forecast applies.
    clock.set(T0 + 70 * M)
    await submit(
        service,
        depot,
        envelope_body(node, origin=source, start=70 * M, end=2 * H, blocks=[block(70 * M, 2 * H, 90_000)]),
    )
    assert await current(service, depot) == (80_000, "PRIMARY_FORECAST", "HEALTHY")  # lowest active block

    r = await service.client.get(f"/internal/microgrid/{depot.microgrid_id}/forecast-sources", headers=READ)
    [health] = r.json()["result"]
    assert (health["control_point_id"], health["health"], health["node_id"]) == (str(source), "HEALTHY", str(node))

    changes = await published_changes(settings, depot, 4)
    assert [
        (c["effective_capacity_watts"], c["basis"], c["projection_trigger"], c["evaluated_at"]) for c in changes
    ] == [
        (80_000, "PRIMARY_FORECAST", "ENVELOPE_CHANGE", "2030-06-01T12:00:00Z"),
        (60_000, "FALLBACK_FORECAST", "ENVELOPE_LIFECYCLE", "2030-06-01T12:10:00Z"),
        (FAIL_SAFE_W, "FAIL_SAFE", "ENVELOPE_LIFECYCLE", "2030-06-01T13:00:00Z"),
        (80_000, "PRIMARY_FORECAST", "ENVELOPE_CHANGE", "2030-06-01T13:10:00Z"),
    ]
    assert changes[2]["binding_envelope_id"] is None and changes[1]["binding_envelope_id"] == fallback
    r = await service.client.get(depot.path(f"/{forecast}"), headers=READ)
    health_entries = [
        e["detail"]["forecast_source_health"]
        for e in r.json()["result"]["entries"]
        if e["transition"] == "HEALTH_CHANGE"
    ]
    assert health_entries == ["STALE", "OFFLINE", "HEALTHY"]


@pytest.mark.req("FR-030", "FR-031")
async def test_a_source_whose_forecasts_ended_still_goes_stale_and_says_so(
    service: RunningService, clock: ManualClock, settings: PlatformSettings, kafka: Any
) -> None:
    depot = await make_depot(service, settings, kafka)
    source = await add_control_point(service, settings, kafka, depot)
    forecast = await submit(
        service,
        depot,
        envelope_body(
            depot.grid_connection_id, origin=source, start=0 * H, end=5 * M, blocks=[block(0 * H, 5 * M, 80_000)]
        ),
    )
    await evaluate_due_timers(service.ctx, T0 + 5 * M)  # forecast over, source healthy: the gap policy
    assert await current(service, depot) == (DEFAULT_W, "GAP_POLICY", "HEALTHY")
    await evaluate_due_timers(service.ctx, T0 + 10 * M)  # no newer forecast: stale, no fallback: fail-safe
    assert await current(service, depot) == (FAIL_SAFE_W, "FAIL_SAFE", "STALE")

    # Balancing learns the health from the lifecycle stream, so the change is announced on the last forecast.
    async with TopicReader(settings, LIFECYCLE) as reader:

        async def announced() -> list[dict[str, Any]] | None:
            found = [
                e for e in await events_for(reader, depot.microgrid_id, LIFECYCLE) if e["timer_kind"] == "HEALTH_CHANGE"
            ]
            return found or None

        [change] = await eventually(announced, timeout=30)
    assert (change["envelope_id"], change["status"], change["forecast_source_health"]) == (forecast, "EXPIRED", "STALE")


@pytest.mark.req("FR-030")
async def test_forecast_source_reported_offline_by_capability_status_uses_fail_safe(
    service: RunningService, clock: ManualClock, settings: PlatformSettings, kafka: Any
) -> None:
    depot = await make_depot(service, settings, kafka)
    source = await add_control_point(service, settings, kafka, depot)
    await submit(
        service,
        depot,
        envelope_body(
            depot.grid_connection_id, origin=source, start=0 * H, end=2 * H, blocks=[block(0 * H, 2 * H, 85_000)]
        ),
    )
    assert await current(service, depot) == (85_000, "PRIMARY_FORECAST", "HEALTHY")

    clock.set(T0 + 2 * M)
    await publish_as_owner(kafka, settings, status_event(depot, source, "ERROR", T0 + 2 * M))

    async def offline() -> bool:
        return await current(service, depot) == (FAIL_SAFE_W, "FAIL_SAFE", "OFFLINE")

    await eventually(offline, timeout=30)
    clock.set(T0 + 4 * M)
    await publish_as_owner(kafka, settings, status_event(depot, source, "ONLINE", T0 + 4 * M))

    async def recovered() -> bool:
        return await current(service, depot) == (85_000, "PRIMARY_FORECAST", "HEALTHY")

    await eventually(recovered, timeout=30)
    changes = await published_changes(settings, depot, 3)
    assert [(c["effective_capacity_watts"], c["projection_trigger"]) for c in changes] == [
        (85_000, "ENVELOPE_CHANGE"),
        (FAIL_SAFE_W, "ENVELOPE_LIFECYCLE"),
        (85_000, "ENVELOPE_LIFECYCLE"),
    ]


@pytest.mark.req("FR-031", "FR-029", "FR-027")
async def test_healthy_forecast_without_active_block_applies_the_gap_policy(
    service: RunningService, clock: ManualClock, settings: PlatformSettings, kafka: Any
) -> None:
    depot = await make_depot(service, settings, kafka)
    node = depot.grid_connection_id
    # A forecast with no origin control point has no source that could go stale: always healthy.
    await submit(
        service,
        depot,
        envelope_body(node, start=0 * H, end=2 * H, blocks=[block(0 * H, 30 * M, 70_000), block(H, 2 * H, 75_000)]),
    )
    await submit(
        service,
        depot,
        envelope_body(node, envelope_type="TOU_LIMIT", start=H, end=2 * H, blocks=[block(H, 2 * H, 72_000)]),
    )
    assert await current(service, depot) == (70_000, "PRIMARY_FORECAST", "HEALTHY")

    await evaluate_due_timers(service.ctx, T0 + 30 * M)  # healthy, but no active forecast block: the gap
    assert await current(service, depot) == (DEFAULT_W, "GAP_POLICY", "HEALTHY")
    await evaluate_due_timers(service.ctx, T0 + H)  # forecast 75 kW, tightened by the TOU limit
    assert await current(service, depot) == (72_000, "TOU_LIMIT", "HEALTHY")
    await evaluate_due_timers(service.ctx, T0 + 2 * H)
    assert await current(service, depot) == (DEFAULT_W, "CIRCUIT_DEFAULT", None)

    changes = await published_changes(settings, depot, 4)
    assert [c["effective_capacity_watts"] for c in changes] == [70_000, DEFAULT_W, 72_000, DEFAULT_W]


@pytest.mark.req("FR-029", "FR-027")
async def test_unmapped_or_ambiguous_scopes_fail_deterministically_and_other_nodes_do_not_project(
    service: RunningService, clock: ManualClock, settings: PlatformSettings, kafka: Any
) -> None:
    depot = await make_depot(service, settings, kafka)
    # Managed grid connection without a feeder circuit: accepted (it applies in balancing), not projected.
    await submit(
        service,
        depot,
        envelope_body(
            depot.unmapped_gc_id, envelope_type="OVERRIDE", start=0 * H, end=H, blocks=[block(0 * H, H, 10_000)]
        ),
    )
    # Not a consumption cap: accepted, the circuit projection does not move.
    await submit(
        service,
        depot,
        envelope_body(
            depot.grid_connection_id,
            envelope_type="OVERRIDE",
            constraint_type="GENERATION_CAP",
            start=0 * H,
            end=H,
            blocks=[block(0 * H, H, 5_000)],
        ),
    )
    view = await capacity(service, depot)
    assert [(f["node_id"], f["reason_code"]) for f in view["failures"]] == [
        (str(depot.unmapped_gc_id), "LIMIT_SCOPE_TRANSLATION_FAILED")
    ]
    assert [c["effective_capacity_watts"] for c in view["circuits"]] == [DEFAULT_W]

    # The feeder circuit also attached to a branch node: the mapping is ambiguous, never guessed.
    nodes = [
        depot.feeder_node(),
        MicrogridNodeRecord(
            node_id=uuid.uuid4(),
            microgrid_id=depot.microgrid_id,
            name="Shadow",
            parent_node_id=depot.grid_connection_id,
            node_type=NodeType.CIRCUIT,
            attached_asset_type=AssetType.CIRCUIT,
            attached_asset_id=depot.circuit_id,
        ),
    ]
    topology = TopologyUpdatedPayload(
        microgrid_id=depot.microgrid_id, depot_id=depot.depot_id, version=2, updated_by="test", nodes=nodes
    )
    await publish_as_owner(kafka, settings, TopologyUpdated.create(topology, producer="topology", occurred_at=T0))

    async def ambiguous() -> list[tuple[str, str]] | None:
        found = [(f["node_id"], f["reason_code"]) for f in (await capacity(service, depot))["failures"]]
        return found if (str(depot.grid_connection_id), "LEGACY_POLICY_SCOPE_AMBIGUOUS") in found else None

    await eventually(ambiguous, timeout=30)
    assert await current(service, depot) == (DEFAULT_W, "CIRCUIT_DEFAULT", None)  # the last good value stands
