"""The four services in-process against the real stack, on one topic prefix, for hostile-input tests.

A test plays only the outside world: the legacy circuit registry (to give a depot its feeder circuits)
and HTTP clients. Everything else (topology, envelope write port, balancing, the adapter) is real.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from contracts.base import Message
from contracts.events import LegacyCircuitUpdated, LegacyCircuitUpdatedPayload
from contracts.topics import topic_for
from libs.platform.messaging.kafka import create_producer
from libs.platform.messaging.topics_admin import ensure_topics, wanted_topics
from libs.platform.settings import PlatformSettings
from services.balancing.bootstrap import DEFINITION as BALANCING
from services.compatibility_adapter.bootstrap import DEFINITION as ADAPTER
from services.envelope_lifecycle.bootstrap import DEFINITION as ENVELOPES
from services.topology.bootstrap import DEFINITION as TOPOLOGY
from tests.support import eventually
from tests.support_services import RunningService, auth_headers, running_service

DEFINITIONS = {"topology": TOPOLOGY, "envelope_lifecycle": ENVELOPES, "balancing": BALANCING,
               "compatibility_adapter": ADAPTER}
WRITE = auth_headers()


@dataclass
class Services:
    settings: PlatformSettings
    running: dict[str, RunningService]
    producer: AIOKafkaProducer

    def __getitem__(self, name: str) -> RunningService:
        return self.running[name]

    async def send(self, message: Message) -> None:
        """Publish as an outside producer would (here: the legacy circuit registry)."""
        spec = topic_for(message)
        await self.producer.send_and_wait(self.settings.topic(spec.name), message.to_bytes(), key=spec.key_for(message))


@pytest.fixture(scope="package")
async def services(settings: PlatformSettings) -> AsyncIterator[Services]:
    own = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}sec{uuid.uuid4().hex[:4]}."})
    await ensure_topics(own)  # once, before four services race to create them
    producer = create_producer(own, "security-test-legacy")
    await producer.start()
    try:
        async with AsyncExitStack() as stack:
            running = {
                name: await stack.enter_async_context(running_service(definition, own))
                for name, definition in DEFINITIONS.items()
            }
            yield Services(settings=own, running=running, producer=producer)
    finally:
        await producer.stop()
        await drop_topics(own)
        conn = await asyncpg.connect(own.postgres_dsn)
        try:
            for definition in DEFINITIONS.values():
                await conn.execute(f'DROP SCHEMA IF EXISTS "{definition.schema(own)}" CASCADE')
        finally:
            await conn.close()


async def drop_topics(settings: PlatformSettings) -> None:
    """Delete this run's prefixed topics: a shared broker's partitions (and open files) are finite."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="security-tests-cleanup")
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        mine = [name for name in wanted_topics(settings) if name in existing]
        if mine:
            await admin.delete_topics(mine)
    except Exception as exc:  # cleanup only: never fail the tests for it
        print(f"could not delete test topics of {settings.topic_prefix}: {exc}")
    finally:
        await admin.close()


@dataclass(frozen=True)
class Depot:
    depot_id: uuid.UUID
    circuit_id: uuid.UUID
    microgrid_id: uuid.UUID
    grid_connection_id: uuid.UUID


async def resynced_depot(services: Services, capacity_watts: int = 400_000) -> Depot:
    """A depot with one feeder circuit, resynced into a microgrid that every service knows."""
    depot_id, circuit_id = uuid.uuid4(), uuid.uuid4()
    await services.send(
        LegacyCircuitUpdated.create(
            LegacyCircuitUpdatedPayload(
                circuit_id=circuit_id,
                depot_id=depot_id,
                name="Feeder A",
                default_capacity_watts=capacity_watts,
                fail_safe_capacity_watts=capacity_watts // 4,
            ),
            producer="legacy",
            occurred_at=datetime.now(UTC),
        )
    )
    topology = services["topology"].client

    async def resynced() -> dict | None:
        r = await topology.post(f"/api/depot/{depot_id}/microgrid/resync", headers=WRITE)
        body = r.json()
        return body if r.status_code == 200 and body["result"]["feeder_circuit_ids"] else None

    body = await eventually(resynced)
    microgrid_id = uuid.UUID(body["microgrid_id"])
    [grid_connection] = body["result"]["added_node_ids"] or [None]
    if grid_connection is None:
        view = (await topology.get(f"/api/microgrid/{microgrid_id}/topology", headers=WRITE)).json()
        grid_connection = view["result"]["nodes"][0]["node_id"]
    adapter = services["compatibility_adapter"].ctx.pool
    await eventually(lambda: adapter.fetchval("SELECT 1 FROM circuit_alias WHERE circuit_id = $1", circuit_id))
    return Depot(depot_id, circuit_id, microgrid_id, uuid.UUID(str(grid_connection)))
