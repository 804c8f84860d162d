"""The compatibility adapter running in-process against the real stack, and the legacy/microgrid
producers the tests play (topology, legacy producers, schedulers, envelope and balancing services)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from contracts.base import Message
from contracts.enums import AssetType, CycleOutcome, NodeType, ReasonCode
from contracts.events import CycleCompleted, RebalanceRequested, TopologyUpdated, TopologyUpdatedPayload
from contracts.records import AllocationSummaryRecord, CycleAuditRecord, CycleResultRecord, MicrogridNodeRecord
from contracts.topics import topic_for
from libs.platform.messaging.kafka import create_producer
from libs.platform.settings import PlatformSettings
from services.compatibility_adapter.bootstrap import DEFINITION
from services.compatibility_adapter.settings import CompatibilityAdapterSettings
from tests.support import TopicReader, eventually
from tests.support_services import RunningService, running_service


@dataclass
class Adapter:
    service: RunningService
    settings: CompatibilityAdapterSettings
    producer: AIOKafkaProducer

    async def send(self, message: Message) -> None:
        """Publish as the other side would (legacy producer, scheduler, envelope or balancing service)."""
        spec = topic_for(message)
        await self.producer.send_and_wait(self.settings.topic(spec.name), message.to_bytes(), key=spec.key_for(message))

    async def outbox(self, topic: str) -> list[Message]:
        """Everything the adapter ever wrote to its outbox for `topic`: what it published or will publish."""
        rows = await self.service.ctx.pool.fetch(
            "SELECT value FROM outbox WHERE topic = $1 ORDER BY id", self.settings.topic(topic)
        )
        spec_message = _message_type(topic)
        return [spec_message.model_validate_json(r["value"]) for r in rows]

    async def outbox_drained(self) -> bool:
        return await self.service.ctx.pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0


def _message_type(topic: str) -> type[Message]:
    from contracts.topics import BY_NAME

    return BY_NAME[topic].message


@pytest.fixture(scope="package")
async def adapter(settings: PlatformSettings) -> AsyncIterator[Adapter]:
    own = CompatibilityAdapterSettings(**settings.model_dump() | {"compat_rebalance_wait_s": 15.0})
    producer = create_producer(own, "compat-test-legacy")
    await producer.start()
    try:
        async with running_service(DEFINITION, own) as service:
            yield Adapter(service=service, settings=own, producer=producer)
    finally:
        await producer.stop()
    conn = await asyncpg.connect(own.postgres_dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{DEFINITION.schema(own)}" CASCADE')
    finally:
        await conn.close()


@dataclass(frozen=True)
class Site:
    """One microgrid whose managed grid connection carries `circuit_id` (as a depot resync builds it)."""

    microgrid_id: uuid.UUID
    depot_id: uuid.UUID
    node_id: uuid.UUID
    circuit_id: uuid.UUID

    def topology(self, version: int = 1, extra: list[MicrogridNodeRecord] | None = None) -> TopologyUpdated:
        grid_connection = MicrogridNodeRecord(
            node_id=self.node_id,
            microgrid_id=self.microgrid_id,
            name="Feeder 1",
            node_type=NodeType.GRID_CONNECTION,
            attached_asset_type=AssetType.CIRCUIT,
            attached_asset_id=self.circuit_id,
            managed=True,
        )
        payload = TopologyUpdatedPayload(
            microgrid_id=self.microgrid_id,
            depot_id=self.depot_id,
            version=version,
            updated_by="test",
            nodes=[grid_connection, *(extra or [])],
        )
        return TopologyUpdated.create(payload, producer="topology", occurred_at=datetime.now(UTC))


def new_site() -> Site:
    return Site(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4())


async def known_site(adapter: Adapter) -> Site:
    """A site whose topology the adapter has taken in."""
    site = new_site()
    await adapter.send(site.topology())
    await eventually(
        lambda: adapter.service.ctx.pool.fetchval("SELECT 1 FROM circuit_alias WHERE circuit_id = $1", site.circuit_id)
    )
    return site


async def play_balancing(adapter: Adapter, circuit_id: uuid.UUID) -> RebalanceRequested:
    """Wait for the adapter's cycle request and complete it as the balancing service would."""
    async with TopicReader(adapter.settings, "microgrid.rebalance_requested") as reader:

        def mine(rs: list) -> list[RebalanceRequested]:
            found = [RebalanceRequested.model_validate_json(r.value) for r in rs]
            return [m for m in found if m.payload.circuit_id == circuit_id]

        [request] = mine(await reader.wait_for(mine))
    now = datetime.now(UTC)
    cycle = CycleResultRecord(
        cycle_id=uuid.uuid4(),
        microgrid_id=request.payload.microgrid_id,
        node_id=request.payload.node_id,
        topology_version=1,
        started_at=now,
        ended_at=now,
        outcome=CycleOutcome.CURTAILED,
        # deliberately out of precedence order: the adapter answers in precedence order
        reason_codes=[ReasonCode.NODE_CAP_EXCEEDED, ReasonCode.ANCESTOR_CAP_EXCEEDED],
        allocation_summary=AllocationSummaryRecord(total_allocated_watts=11_000, total_requested_watts=22_000),
        audit=CycleAuditRecord(
            actor=request.payload.requested_by,
            source=request.payload.source,
            correlation_id=request.correlation_id,
            request_key=request.payload.request_key,
            inputs_digest="sha256:test",
        ),
    )
    await adapter.send(CycleCompleted.create(cycle, producer="balancing", occurred_at=now, causation=request))
    return request
