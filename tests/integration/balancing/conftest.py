"""One balancing service for this package's tests, on a ManualClock, fed straight through Kafka.

Each test builds its own depot (its own microgrid id), publishes the upstream events to the topics
as their owners would (`depot.publish`), waits until balancing's read models hold them, then asks
for cycles. Nothing sleeps: every wait polls with a deadline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from aiokafka import AIOKafkaProducer

from contracts.base import Message
from libs.platform.clock import ManualClock
from libs.platform.settings import PlatformSettings
from services.balancing.adapters import cycles, read_models
from services.balancing.adapters.cycles import StoredCycle
from services.balancing.adapters.read_models import MicrogridState
from services.balancing.bootstrap import DEFINITION
from services.balancing.settings import BalancingSettings
from tests.integration.balancing.depot import Depot
from tests.support import eventually, publish_as_owner
from tests.support_services import RunningService, running_service

T0 = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
TOPOLOGY_WAIT_S = 2.0


def service_settings(settings: PlatformSettings) -> BalancingSettings:
    knobs: dict[str, Any] = {
        "telemetry_freshness_seconds": 60,
        "topology_wait_s": TOPOLOGY_WAIT_S,
        "pending_sweep_interval_s": 0.1,
        "rebalance_wait_s": 15.0,
    }
    return BalancingSettings(**{**settings.model_dump(), **knobs})


@pytest.fixture(scope="package")
async def service(settings: PlatformSettings) -> AsyncIterator[RunningService]:
    async with running_service(DEFINITION, service_settings(settings), ManualClock(T0)) as svc:
        yield svc


@pytest.fixture
def clock(service: RunningService) -> ManualClock:
    clock: ManualClock = service.ctx.clock
    clock.set(T0)
    return clock


@dataclass
class Feed:
    """Publishes upstream events and waits until balancing has applied them."""

    service: RunningService
    kafka: AIOKafkaProducer
    settings: PlatformSettings

    async def send(self, *messages: Message) -> None:
        await publish_as_owner(self.kafka, self.settings, *messages)

    async def state(self, depot: Depot) -> MicrogridState:
        async with self.service.ctx.pool.acquire() as conn:
            return await read_models.load_microgrid_state(conn, depot.microgrid_id)

    async def until(self, depot: Depot, ready: Callable[[MicrogridState], bool]) -> MicrogridState:
        async def check() -> MicrogridState | None:
            state = await self.state(depot)
            return state if ready(state) else None

        return await eventually(check, timeout=30)

    async def setup(self, depot: Depot, now: datetime = T0) -> MicrogridState:
        await self.send(*depot.setup_events(now))
        return await self.until(
            depot,
            lambda s: s.topology is not None
            and s.topology.version == depot.version
            and len(s.node_limits) == len(depot.limits)
            and len(s.circuits) == len(depot.circuits)
            and (depot.aggregate_cap_watts is None or bool(s.control_points)),
        )

    async def telemetry(self, depot: Depot, message: Message) -> MicrogridState:
        await self.send(message)
        readings = {r.node_id: r.observed_at for r in message.payload.readings}
        demands = {d.node_id: d.observed_at for d in message.payload.demands}
        return await self.until(
            depot,
            lambda s: all(readings.get(r.node_id, r.observed_at) == r.observed_at for r in s.readings)
            and {r.node_id for r in s.readings} >= set(readings)
            and {d.node_id for d in s.demands} >= set(demands)
            and all(demands.get(d.node_id, d.observed_at) == d.observed_at for d in s.demands),
        )

    async def cycle(self, request_key: str) -> StoredCycle:
        async def check() -> StoredCycle | None:
            return await cycles.cycle_by_request_key(self.service.ctx.pool, request_key)

        return await eventually(check, timeout=30)

    async def cycle_by_id(self, cycle_id: str) -> StoredCycle:
        found = await cycles.cycle_by_id(self.service.ctx.pool, UUID(cycle_id))
        assert found is not None
        return found

    async def cycles_of(self, depot: Depot) -> int:
        return int(
            await self.service.ctx.pool.fetchval(
                "SELECT count(*) FROM cycles WHERE microgrid_id = $1", depot.microgrid_id
            )
        )


@pytest.fixture
def feed(service: RunningService, kafka: AIOKafkaProducer, settings: PlatformSettings) -> Feed:
    return Feed(service, kafka, settings)
