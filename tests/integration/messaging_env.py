"""The environment the platform's messaging tests run in (backbone, dead-letter replay, outbox relay).

Each test gets a fresh topic prefix (so offsets start clean), a private schema with the platform's
outbox and inbox and an `effects` table that handlers write to, and a started producer; all are
removed afterwards. The consumer group is `backbone`, its dead letters go to `dlq.backbone`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from contracts.base import Message
from contracts.events import TopologyUpdated, TopologyUpdatedPayload
from contracts.records import MicrogridNodeRecord
from libs.platform.db import create_pool, migrate
from libs.platform.messaging.consumer import EventConsumer, Handler
from libs.platform.messaging.dead_letter import DeadLetterPublisher
from libs.platform.messaging.kafka import create_producer
from libs.platform.messaging.topics_admin import ensure_topics
from libs.platform.messaging.unit_of_work import UnitOfWork
from libs.platform.settings import PlatformSettings

TOPIC = "microgrid.topology_updated"
GROUP = "backbone"

MessagingEnv = tuple[PlatformSettings, asyncpg.Pool, AIOKafkaProducer]


def topology_event(version: int = 1) -> TopologyUpdated:
    mg = uuid.uuid4()
    node = MicrogridNodeRecord(node_id=uuid.uuid4(), microgrid_id=mg, name="GC1", node_type="GRID_CONNECTION")
    payload = TopologyUpdatedPayload(
        microgrid_id=mg, depot_id=uuid.uuid4(), version=version, updated_by="t", nodes=[node]
    )
    return TopologyUpdated.create(payload, producer="test", occurred_at=datetime.now(UTC))


@asynccontextmanager
async def messaging_env(
    settings: PlatformSettings, *, schema_suffix: str = GROUP, client_id: str, dead_letters: bool = True
) -> AsyncIterator[MessagingEnv]:
    """Topics (and `dlq.backbone` unless `dead_letters=False`), a migrated schema with `effects`, a producer."""
    s = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}{uuid.uuid4().hex[:6]}."})
    await ensure_topics(s, extra={s.topic(f"dlq.{GROUP}"): 1} if dead_letters else None)
    schema = "".join(c if c.isalnum() else "_" for c in s.topic_prefix) + schema_suffix
    pool = await create_pool(s.postgres_dsn, schema)
    await migrate(pool, schema)
    await pool.execute("CREATE TABLE IF NOT EXISTS effects (event_id uuid NOT NULL, microgrid_id uuid NOT NULL)")
    producer = create_producer(s, client_id)
    await producer.start()
    try:
        yield s, pool, producer
    finally:
        await producer.stop()
        await pool.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await pool.close()


async def record_effect(message: Message, uow: UnitOfWork) -> None:
    """The handlers' one visible effect: a row per applied event."""
    await uow.conn.execute(
        "INSERT INTO effects (event_id, microgrid_id) VALUES ($1, $2)", message.event_id, message.payload.microgrid_id
    )


def consumer_for(
    s: PlatformSettings,
    pool: asyncpg.Pool,
    producer: AIOKafkaProducer,
    handler: Handler = record_effect,
    passes_over: Callable[[Any], bool] | None = None,
) -> EventConsumer:
    return EventConsumer(
        group=GROUP,
        handlers={TopologyUpdated: handler},
        passes_over={TopologyUpdated: passes_over} if passes_over else None,
        pool=pool,
        settings=s,
        dead_letters=DeadLetterPublisher(producer, s),
    )


async def start_consuming(s: PlatformSettings, consumer: EventConsumer) -> EventConsumer:
    await consumer.start()
    return consumer
