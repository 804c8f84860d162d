"""Backpressure between consumer groups: a producer of work holds back while its consumer is behind.

Past the bend, a fleet's triggers keep coming; the adapter translating every one of them at once only
moves the backlog from its topic to balancing's and takes from balancing the CPU its cycles need, so
fewer cycles complete the more are offered (docs/performance.md). Each service reports its backlog to
Redis, one entry per process: its consumer's records fetched-visible but not handled (summed over its
assigned partitions), plus the outbox rows its relay has still to publish (`OutboxRelay.undelivered`: a
consumer whose relay fell behind has done the work but not delivered it, and its lag alone looked
small). A service upstream of it pauses the topics that feed it work while the sum is above `high`, and
resumes below `low`. The held records wait in Kafka, in order, and nothing is skipped:
pausing a partition only stops fetching it. A report older than `fresh_s` is ignored, so a downstream
service that died holds nothing back for long.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Collection
from typing import Any

from libs.platform.settings import PlatformSettings

log = logging.getLogger(__name__)

REPORT_EVERY_S = 0.5
FRESH_S = 3.0


def backlog_key(settings: PlatformSettings, group: str) -> str:
    return f"{settings.topic_prefix}mgrid:backlog:{group}"


def instance_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


async def report_backlog_forever(
    redis: Any, settings: PlatformSettings, group: str, backlog: Callable[[], int], *, every_s: float = REPORT_EVERY_S
) -> None:
    """Write this process's backlog (with when it was read) every `every_s` seconds."""
    key, instance = backlog_key(settings, group), instance_name()
    while True:
        try:
            await redis.hset(key, instance, f"{backlog()}:{time.time():.3f}")
            await redis.expire(key, int(FRESH_S * 10))
        except Exception as exc:  # Redis away: upstream then sees no fresh report and holds nothing back
            log.debug("backlog report failed: %r", exc)
        await asyncio.sleep(every_s)


async def read_backlog(redis: Any, settings: PlatformSettings, group: str, *, fresh_s: float = FRESH_S) -> int | None:
    """The group's backlog summed over its processes' fresh reports; None when none is fresh."""
    entries = await redis.hgetall(backlog_key(settings, group))
    now, total, fresh = time.time(), 0, False
    for raw in entries.values():
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        count, _, at = text.partition(":")
        try:
            if now - float(at) <= fresh_s:
                total += int(count)
                fresh = True
        except ValueError:
            continue
    return total if fresh else None


class Holder:
    """Decides, from the downstream backlog, whether the feeding topics are held (hysteresis)."""

    def __init__(self, high: int, low: int) -> None:
        if not 0 <= low < high:
            raise ValueError("backpressure needs 0 <= low < high")
        self.high, self.low, self.holding = high, low, False

    def update(self, backlog: int | None) -> bool:
        if backlog is None:  # nothing fresh from downstream: do not hold on a guess
            self.holding = False
        elif backlog >= self.high:
            self.holding = True
        elif backlog <= self.low:
            self.holding = False
        return self.holding


async def hold_while_behind_forever(
    redis: Any,
    settings: PlatformSettings,
    consumer: Any,
    *,
    downstream_group: str,
    topics: Collection[str],
    high: int,
    low: int,
    every_s: float = REPORT_EVERY_S / 2,
) -> None:
    """Pause `consumer`'s `topics` while `downstream_group` is `high` records behind, until it is at `low`."""
    holder = Holder(high, low)
    while True:
        try:
            backlog = await read_backlog(redis, settings, downstream_group)
        except Exception as exc:
            log.debug("backlog read failed: %r", exc)
            backlog = None
        was = holder.holding
        if holder.update(backlog) != was:
            log.info("%s %s: %s is %s records behind", "holding" if holder.holding else "releasing",
                     sorted(topics), downstream_group, backlog)
        consumer.hold(topics if holder.holding else ())
        await asyncio.sleep(every_s)
