"""Backpressure against the real Kafka and Redis: a held topic waits in Kafka, then flows, nothing skipped;
a downstream group's backlog is read from its processes' fresh reports."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import redis.asyncio as aioredis

from libs.platform.messaging.backpressure import backlog_key, read_backlog, report_backlog_forever
from libs.platform.settings import PlatformSettings
from tests.integration.messaging_env import TOPIC, consumer_for, start_consuming, topology_event
from tests.support import eventually

pytestmark = pytest.mark.integration


async def test_a_held_topic_waits_in_kafka_and_flows_in_order_once_released(backbone_env) -> None:
    s, pool, producer = backbone_env
    consumer = consumer_for(s, pool, producer)
    consumer.hold([TOPIC])
    broker = await start_consuming(s, consumer)
    try:
        events = [topology_event(version=v) for v in (1, 2, 3)]
        for event in events:
            await producer.send_and_wait(s.topic(TOPIC), event.to_bytes(), key=b"one-key")
        await eventually(lambda: _pending_is(consumer, 3))  # on the broker, past the group's offset
        deadline = time.monotonic() + 2.0  # several polls of the consumer's loop: none takes them
        while time.monotonic() < deadline:
            assert consumer.stats.processed == 0
            await asyncio.sleep(0.1)
        consumer.hold(())
        await eventually(lambda: _processed_is(consumer, 3))
        rows = await pool.fetch("SELECT event_id FROM effects")
        assert sorted(r["event_id"] for r in rows) == sorted(e.event_id for e in events)
    finally:
        await broker.stop()


async def _pending_is(consumer, n: int) -> bool:  # noqa: ANN001
    return await consumer.pending_records() == n


async def _processed_is(consumer, n: int) -> bool:  # noqa: ANN001
    return consumer.stats.processed == n


async def test_a_groups_backlog_is_the_sum_of_its_processes_fresh_reports(settings: PlatformSettings) -> None:
    s = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}{uuid.uuid4().hex[:6]}."})
    redis = aioredis.from_url(s.redis_url)
    reporter = asyncio.create_task(report_backlog_forever(redis, s, "downstream", lambda: 42, every_s=0.05))
    try:
        assert await read_backlog(redis, s, "nobody") is None  # no report: no backlog known
        await eventually(lambda: _backlog_is(redis, s, 42))
        await redis.hset(backlog_key(s, "downstream"), "another-replica", f"8:{time.time():.3f}")
        await eventually(lambda: _backlog_is(redis, s, 50))
        await redis.hset(backlog_key(s, "downstream"), "another-replica", f"900:{time.time() - 60:.3f}")  # stale
        await eventually(lambda: _backlog_is(redis, s, 42))
    finally:
        reporter.cancel()
        await redis.delete(backlog_key(s, "downstream"))
        await redis.aclose()


async def _backlog_is(redis, s: PlatformSettings, n: int) -> bool:  # noqa: ANN001
    return await read_backlog(redis, s, "downstream") == n
