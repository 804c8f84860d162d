"""The result waiter against the real Redis and Postgres: a committed result's signal wakes the waiter at
once; without a signal (or without Redis) it still finds the result by re-reading."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import redis.asyncio as aioredis

from libs.platform.db import create_pool, migrate
from libs.platform.messaging.unit_of_work import unit_of_work
from libs.platform.result_waiter import redis_signaller, result_channel, wait_for_result
from libs.platform.settings import PlatformSettings

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(settings: PlatformSettings):
    schema = "".join(c if c.isalnum() else "_" for c in settings.topic_prefix) + "waiter"
    pool = await create_pool(settings.postgres_dsn, schema)
    await migrate(pool, schema)
    await pool.execute("CREATE TABLE IF NOT EXISTS results (key text PRIMARY KEY, value text NOT NULL)")
    client = aioredis.from_url(settings.redis_url)
    yield pool, client
    await client.aclose()
    await pool.execute(f'DROP SCHEMA "{schema}" CASCADE')
    await pool.close()


async def test_the_commit_signal_wakes_the_waiter_long_before_its_fallback_read(store, settings) -> None:
    pool, client = store
    key = str(uuid.uuid4())
    channel = result_channel(settings, "test.result", key)

    async def fetch() -> str | None:
        return await pool.fetchval("SELECT value FROM results WHERE key = $1", key)

    async def produce() -> None:
        await asyncio.sleep(0.3)  # the other side is busy for a while (this is the producer, not a wait)
        async with unit_of_work(pool, settings, redis_signaller(client)) as uow:
            await uow.conn.execute("INSERT INTO results VALUES ($1, 'done')", key)
            uow.signal_after_commit(channel)

    started = time.monotonic()
    found, _ = await asyncio.gather(
        wait_for_result(client=client, channel=channel, fetch=fetch, timeout_s=20, fallback_poll_s=10), produce()
    )
    assert found == "done"
    assert time.monotonic() - started < 5, "woken by the signal, not by the 10 s fallback read"


async def test_a_rolled_back_unit_sends_no_signal(store, settings) -> None:
    pool, client = store
    channel = result_channel(settings, "test.result", str(uuid.uuid4()))
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    with pytest.raises(RuntimeError):
        async with unit_of_work(pool, settings, redis_signaller(client)) as uow:
            uow.signal_after_commit(channel)
            raise RuntimeError("state change failed")
    assert await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5) is None
    await pubsub.aclose()


async def test_every_signal_of_a_committed_unit_arrives_once(store, settings) -> None:
    """A batch's unit signals several channels, one of them twice: each is published once, in one round trip."""
    pool, client = store
    channels = [result_channel(settings, "test.result", str(uuid.uuid4())) for _ in range(3)]
    pubsub = client.pubsub()
    await pubsub.subscribe(*channels)
    for _ in channels:
        await pubsub.get_message(timeout=1)  # the subscribe confirmations
    async with unit_of_work(pool, settings, redis_signaller(client)) as uow:
        for channel in [*channels, channels[0]]:
            uow.signal_after_commit(channel)
    received: list[str] = []
    deadline = time.monotonic() + 5
    while len(received) < len(channels) and time.monotonic() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message is not None:
            received.append(message["channel"].decode())
    assert received == channels
    assert await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.3) is None  # not twice
    await pubsub.aclose()


async def test_without_redis_the_waiter_still_finds_the_result_by_re_reading(store, settings) -> None:
    pool, _ = store
    key = str(uuid.uuid4())
    await pool.execute("INSERT INTO results VALUES ($1, 'done')", key)
    unreachable = aioredis.from_url("redis://127.0.0.1:1/0")
    found = await wait_for_result(
        client=unreachable,
        channel="nowhere",
        fetch=lambda: pool.fetchval("SELECT value FROM results WHERE key = $1", key),
        timeout_s=5,
        fallback_poll_s=0.1,
    )
    assert found == "done"
    await unreachable.aclose()
