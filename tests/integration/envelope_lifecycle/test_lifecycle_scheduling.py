"""Scheduled lifecycle evaluation: PENDING -> ACTIVE -> EXPIRED at block boundaries and expiry, from durable
timers; a restart loses none; two replicas fire each timer once. Time is a ManualClock plus explicit
`evaluate_due_timers(ctx, instant)` calls, never sleeps."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from libs.platform.clock import ManualClock
from libs.platform.settings import PlatformSettings
from services.envelope_lifecycle.bootstrap import DEFINITION
from services.envelope_lifecycle.service import evaluate_due_timers
from tests.integration.envelope_lifecycle.conftest import (
    DEFAULT_W,
    READ,
    T0,
    WRITE,
    Depot,
    block,
    envelope_body,
    events_for,
    make_depot,
    service_settings,
)
from tests.support import TopicReader, eventually
from tests.support_services import RunningService, running_service

pytestmark = pytest.mark.integration
H = timedelta(hours=1)
CAPACITY = "compatibility.effective_circuit_capacity_changed"
LIFECYCLE = "microgrid.operating_envelope_lifecycle_evaluated"


async def capacity_of(svc: RunningService, depot: Depot) -> dict[str, Any]:
    r = await svc.client.get(f"/internal/microgrid/{depot.microgrid_id}/effective-circuit-capacity", headers=READ)
    assert r.status_code == 200, r.text
    [circuit] = [c for c in r.json()["result"]["circuits"] if c["circuit_id"] == str(depot.circuit_id)]
    return circuit


async def status_of(svc: RunningService, depot: Depot, envelope_id: str) -> str:
    r = await svc.client.get(depot.path(f"/{envelope_id}"), headers=READ)
    assert r.status_code == 200, r.text
    status: str = r.json()["result"]["envelope"]["status"]
    return status


@pytest.mark.req("FR-026", "FR-027", "FR-029", "FR-032", "NFR-011")
async def test_envelope_is_activated_changes_block_and_expires_only_by_scheduled_evaluation(
    service: RunningService, clock: ManualClock, settings: PlatformSettings, kafka: Any
) -> None:
    depot = await make_depot(service, settings, kafka)
    body = envelope_body(
        depot.grid_connection_id,
        start=1 * H,
        end=3 * H,
        blocks=[block(1 * H, 2 * H, 80_000), block(2 * H, 3 * H, 60_000)],
    )
    r = await service.client.post(depot.path(), json=body, headers=WRITE)
    assert r.status_code == 201, r.text
    envelope = r.json()["result"]["envelope"]
    assert envelope["status"] == "PENDING" and envelope["received_at"] == T0.isoformat().replace("+00:00", "Z")
    envelope_id = envelope["envelope_id"]
    # Not active yet: the healthy forecast has no block at T0, the gap policy keeps the circuit default.
    assert (await capacity_of(service, depot))["effective_capacity_watts"] == DEFAULT_W

    # FR-032: time passing does not change status at read time; only the scheduler moves it.
    clock.set(T0 + 1 * H + timedelta(minutes=5))
    assert await status_of(service, depot, envelope_id) == "PENDING"

    await evaluate_due_timers(service.ctx, T0 + 1 * H)  # activation at the first block boundary
    assert await status_of(service, depot, envelope_id) == "ACTIVE"
    first = await capacity_of(service, depot)
    assert (first["effective_capacity_watts"], first["basis"], first["projection_trigger"]) == (
        80_000,
        "PRIMARY_FORECAST",
        "ENVELOPE_LIFECYCLE",
    )
    assert first["binding_envelope_id"] == envelope_id and first["evaluated_at"].startswith("2030-06-01T13:00:00")

    await evaluate_due_timers(service.ctx, T0 + 2 * H)  # block change
    assert (await capacity_of(service, depot))["effective_capacity_watts"] == 60_000

    await evaluate_due_timers(service.ctx, T0 + 3 * H)  # expiry: baseline restored by recomputation (D-021)
    assert await status_of(service, depot, envelope_id) == "EXPIRED"
    restored = await capacity_of(service, depot)
    assert (restored["effective_capacity_watts"], restored["basis"]) == (DEFAULT_W, "CIRCUIT_DEFAULT")

    r = await service.client.get(depot.path(f"/{envelope_id}"), headers=READ)
    history = [
        (e["transition"], e["previous_status"], e["status"], e["evaluated_at"]) for e in r.json()["result"]["entries"]
    ]
    assert history == [
        ("RECEIVED", None, "PENDING", "2030-06-01T12:00:00Z"),
        ("BLOCK_BOUNDARY", "PENDING", "ACTIVE", "2030-06-01T13:00:00Z"),
        ("BLOCK_BOUNDARY", "ACTIVE", "ACTIVE", "2030-06-01T14:00:00Z"),
        ("EXPIRY", "ACTIVE", "EXPIRED", "2030-06-01T15:00:00Z"),
    ]

    # Each value change was emitted exactly once, with the lifecycle trigger, in order.
    async with TopicReader(settings, CAPACITY, LIFECYCLE) as reader:

        async def published() -> list[dict[str, Any]] | None:
            changes = await events_for(reader, depot.microgrid_id, CAPACITY)
            return changes if len(changes) >= 3 else None

        changes = await eventually(published, timeout=30)
        lifecycle = await events_for(reader, depot.microgrid_id, LIFECYCLE)
    assert [
        (c["previous_capacity_watts"], c["effective_capacity_watts"], c["projection_trigger"]) for c in changes
    ] == [
        (DEFAULT_W, 80_000, "ENVELOPE_LIFECYCLE"),
        (80_000, 60_000, "ENVELOPE_LIFECYCLE"),
        (60_000, DEFAULT_W, "ENVELOPE_LIFECYCLE"),
    ]
    assert [(e["timer_kind"], e["status"]) for e in lifecycle] == [
        ("BLOCK_BOUNDARY", "ACTIVE"),
        ("BLOCK_BOUNDARY", "ACTIVE"),
        ("EXPIRY", "EXPIRED"),
    ]
    assert all(e["envelope"]["blocks"] and e["envelope"]["status"] == e["status"] for e in lifecycle)


@pytest.mark.req("FR-032")
async def test_background_loop_evaluates_due_timers_on_the_service_clock(
    settings: PlatformSettings, kafka: Any
) -> None:
    isolated = service_settings(
        settings,
        topic_prefix=f"{settings.topic_prefix}loop{uuid.uuid4().hex[:4]}.",
        lifecycle_scheduler_enabled=True,
        lifecycle_scheduler_interval_s=0.05,
    )
    clock = ManualClock(T0)
    async with running_service(DEFINITION, isolated, clock) as svc:
        depot = await make_depot(svc, isolated, kafka)
        body = envelope_body(
            depot.grid_connection_id, envelope_type="OVERRIDE", start=H, end=2 * H, blocks=[block(H, 2 * H, 50_000)]
        )
        r = await svc.client.post(depot.path(), json=body, headers=WRITE)
        envelope_id = r.json()["result"]["envelope"]["envelope_id"]
        clock.set(T0 + H)

        async def activated() -> bool:
            return await status_of(svc, depot, envelope_id) == "ACTIVE"

        await eventually(activated, timeout=10)


# ---- durability: restart and replicas ----------------------------------------------------------------


@pytest.fixture
async def isolated(settings: PlatformSettings) -> AsyncIterator[Any]:
    """Settings with a private prefix (own topics, consumer group and schema): replicas of one service."""
    yield service_settings(settings, topic_prefix=f"{settings.topic_prefix}r{uuid.uuid4().hex[:6]}.")


async def _outbox_drained(svc: RunningService) -> bool:
    return await svc.ctx.pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0


@pytest.mark.req("FR-032", "NFR-011")
async def test_timers_due_while_the_service_was_down_fire_once_after_restart(isolated: Any, kafka: Any) -> None:
    async with running_service(DEFINITION, isolated, ManualClock(T0)) as first:
        depot = await make_depot(first, isolated, kafka)
        body = envelope_body(
            depot.grid_connection_id, start=H, end=3 * H, blocks=[block(H, 2 * H, 70_000), block(2 * H, 3 * H, 65_000)]
        )
        r = await first.client.post(depot.path(), json=body, headers=WRITE)
        envelope_id = uuid.UUID(r.json()["result"]["envelope"]["envelope_id"])
        pending = await first.ctx.pool.fetch(
            "SELECT timer_id, fire_at FROM lifecycle_timer WHERE envelope_id = $1 AND done_at IS NULL ORDER BY fire_at",
            envelope_id,
        )
        assert [p["fire_at"] for p in pending] == [T0 + H, T0 + 2 * H, T0 + 3 * H]
    # The service is stopped with all three timers owed; it comes back four hours later.

    async with running_service(DEFINITION, isolated, ManualClock(T0 + 4 * H)) as second:
        # Start-up alone evaluated them, in order, each at its own scheduled instant.
        history = await second.ctx.pool.fetch(
            "SELECT transition, status, evaluated_at, timer_id FROM envelope_lifecycle_history"
            " WHERE envelope_id = $1 ORDER BY history_id",
            envelope_id,
        )
        assert [(h["transition"], h["status"], h["evaluated_at"]) for h in history] == [
            ("RECEIVED", "PENDING", T0),
            ("BLOCK_BOUNDARY", "ACTIVE", T0 + H),
            ("BLOCK_BOUNDARY", "ACTIVE", T0 + 2 * H),
            ("EXPIRY", "EXPIRED", T0 + 3 * H),
        ]
        assert [h["timer_id"] for h in history[1:]] == [p["timer_id"] for p in pending]
        again = await evaluate_due_timers(second.ctx, T0 + 5 * H)
        assert again.fired == []
        outcomes = await second.ctx.pool.fetch(
            "SELECT outcome FROM lifecycle_timer WHERE envelope_id = $1", envelope_id
        )
        assert [o["outcome"] for o in outcomes] == ["FIRED"] * 3
        await eventually(lambda: _outbox_drained(second), timeout=30)

    async with TopicReader(isolated, LIFECYCLE, CAPACITY) as reader:

        async def all_published() -> list[dict[str, Any]] | None:
            found = await events_for(reader, depot.microgrid_id, LIFECYCLE)
            return found if len(found) >= 3 else None

        lifecycle = await eventually(all_published, timeout=30)
        capacity = await events_for(reader, depot.microgrid_id, CAPACITY)
    assert [(e["timer_kind"], e["evaluated_at"]) for e in lifecycle] == [
        ("BLOCK_BOUNDARY", "2030-06-01T13:00:00Z"),
        ("BLOCK_BOUNDARY", "2030-06-01T14:00:00Z"),
        ("EXPIRY", "2030-06-01T15:00:00Z"),
    ]
    assert [c["effective_capacity_watts"] for c in capacity] == [70_000, 65_000, DEFAULT_W]


@pytest.mark.req("FR-032", "NFR-011")
async def test_two_replicas_evaluating_concurrently_fire_each_timer_once(isolated: Any, kafka: Any) -> None:
    async with (
        running_service(DEFINITION, isolated, ManualClock(T0)) as a,
        running_service(DEFINITION, isolated, ManualClock(T0)) as b,
    ):
        depots = [await make_depot(a, isolated, kafka) for _ in range(6)]
        for depot in depots:
            blocks = [block(i * H, (i + 1) * H, 50_000 + 1_000 * i) for i in range(4)]
            body = envelope_body(depot.grid_connection_id, start=0 * H, end=4 * H, blocks=blocks)
            r = await (a if depots.index(depot) % 2 else b).client.post(depot.path(), json=body, headers=WRITE)
            assert r.status_code == 201, r.text
        owed = await a.ctx.pool.fetchval("SELECT count(*) FROM lifecycle_timer WHERE done_at IS NULL")
        assert owed == 6 * 4  # three block boundaries after receipt plus expiry, per depot

        by_a: list[int] = []
        by_b: list[int] = []
        for hour in (1, 2, 3, 4):
            ra, rb = await asyncio.gather(
                evaluate_due_timers(a.ctx, T0 + hour * H), evaluate_due_timers(b.ctx, T0 + hour * H)
            )
            by_a += ra.fired
            by_b += rb.fired
        assert by_a and by_b  # both replicas really evaluated, side by side
        assert not set(by_a) & set(by_b)
        assert len(by_a) + len(by_b) == len(set(by_a + by_b)) == owed

        per_timer = await a.ctx.pool.fetch(
            "SELECT t.timer_id, t.outcome, count(h.history_id) AS evaluations FROM lifecycle_timer t"
            " LEFT JOIN envelope_lifecycle_history h ON h.timer_id = t.timer_id GROUP BY t.timer_id, t.outcome"
        )
        assert {(r["outcome"], r["evaluations"]) for r in per_timer} == {("FIRED", 1)}
        final = await a.ctx.pool.fetch("SELECT DISTINCT status FROM operating_envelope")
        assert [f["status"] for f in final] == ["EXPIRED"]


@pytest.mark.req("FR-032")
async def test_a_timer_that_keeps_failing_is_given_up_and_only_then_later_instants_proceed(
    service: RunningService, clock: ManualClock, settings: PlatformSettings, kafka: Any
) -> None:
    depot = await make_depot(service, settings, kafka)
    body = envelope_body(
        depot.grid_connection_id, envelope_type="OVERRIDE", start=0 * H, end=2 * H, blocks=[block(0 * H, 2 * H, 50_000)]
    )
    r = await service.client.post(depot.path(), json=body, headers=WRITE)
    good = uuid.UUID(r.json()["result"]["envelope"]["envelope_id"])
    # A row this code cannot read (as if written by a broken release), with a timer due before the good one.
    broken = uuid.uuid4()
    await service.ctx.pool.execute(
        "INSERT INTO operating_envelope (envelope_id, microgrid_id, node_id, envelope_type, constraint_type,"
        " effective_from, effective_to, source_ref, status, received_at, submission_digest, submitted_by)"
        " VALUES ($1, $2, $3, 'BOGUS', 'CONSUMPTION_CAP', $4, $5, 'broken', 'ACTIVE', $4, '-', 'test')",
        broken,
        depot.microgrid_id,
        depot.grid_connection_id,
        T0,
        T0 + 3 * H,
    )
    await service.ctx.pool.execute(
        "INSERT INTO lifecycle_timer (microgrid_id, kind, fire_at, envelope_id) VALUES ($1, 'BLOCK_BOUNDARY', $2, $3)",
        depot.microgrid_id,
        T0 + H,
        broken,
    )
    attempts = service.ctx.settings.lifecycle_timer_max_attempts  # type: ignore[attr-defined]
    for attempt in range(1, attempts + 1):
        await evaluate_due_timers(service.ctx, T0 + 2 * H)
        expected = "EXPIRED" if attempt == attempts else "ACTIVE"  # order holds until the broken one is given up
        assert await status_of(service, depot, str(good)) == expected
    [failed] = await service.ctx.pool.fetch(
        "SELECT outcome, attempts, last_error FROM lifecycle_timer WHERE envelope_id = $1", broken
    )
    assert (failed["outcome"], failed["attempts"]) == ("FAILED", attempts) and failed["last_error"]
