"""Waiting for a result another replica's consumer will commit (an HTTP route answering with a cycle).

Postgres holds the result; Redis only says "look again now". A waiter subscribes to a channel,
reads its result from the database, and sleeps until a signal arrives or a fallback interval passes,
so a lost signal (or Redis being down) costs latency, never correctness.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from libs.platform.settings import PlatformSettings

T = TypeVar("T")
log = logging.getLogger(__name__)


def result_channel(settings: PlatformSettings, kind: str, key: str) -> str:
    """The channel for one awaited result, e.g. ("balancing.cycle", request key); prefixed like topics."""
    return f"{settings.topic_prefix}mgrid.result.{kind}:{key}"


def redis_signaller(client: aioredis.Redis) -> Callable[[Sequence[str]], Awaitable[None]]:
    """Best-effort PUBLISH: a failed signal is logged; waiters still find the result by polling.

    A unit's signals go in one pipelined round trip: a batch of cycles signals two channels per cycle
    (the waiting request, the console), and one awaited PUBLISH each held the batch's offset commit."""

    async def signal(channels: Sequence[str]) -> None:
        if not channels:
            return
        try:
            async with client.pipeline(transaction=False) as pipe:
                for channel in channels:
                    pipe.publish(channel, b"1")
                await pipe.execute()
        except RedisError as exc:
            log.warning("result signals on %s not sent: %r", ", ".join(channels[:3]), exc)

    return signal


async def wait_for_result(
    *,
    client: aioredis.Redis,
    channel: str,
    fetch: Callable[[], Awaitable[T | None]],
    timeout_s: float,
    fallback_poll_s: float = 0.5,
) -> T | None:
    """`fetch()` until it returns a result or `timeout_s` passes, woken early by a signal on `channel`."""
    deadline = time.monotonic() + timeout_s
    pubsub = None
    try:
        pubsub = client.pubsub()
        await pubsub.subscribe(channel)  # before the first read, so a signal in between is not missed
    except RedisError as exc:
        log.warning("waiting on %s without signals: %r", channel, exc)
        pubsub = None
    try:
        while True:
            found = await fetch()
            remaining = deadline - time.monotonic()
            if found is not None or remaining <= 0:
                return found
            pause = min(fallback_poll_s, remaining)
            if pubsub is None:
                await asyncio.sleep(pause)
                continue
            try:
                await pubsub.get_message(ignore_subscribe_messages=True, timeout=pause)
            except RedisError:
                pubsub = None
    finally:
        if pubsub is not None:
            with contextlib.suppress(RedisError):
                await pubsub.unsubscribe(channel)
                await pubsub.aclose()

