"""Test support: polling with a deadline (never sleeps to wait for messages) and Kafka readers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from contracts.base import Message
from contracts.topics import topic_for
from libs.platform.messaging.kafka import client_options
from libs.platform.settings import PlatformSettings

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T]], *, timeout: float = 30.0, interval: float = 0.05) -> T:
    """Poll `check` until it returns a truthy value or the deadline passes (then fail with the last value)."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


class TopicReader:
    """Reads everything on some topics from the beginning (its own group-less consumer)."""

    def __init__(self, settings: PlatformSettings, *topics: str, prefixed: bool = True) -> None:
        self._names = [settings.topic(t) if prefixed else t for t in topics]
        self._consumer = AIOKafkaConsumer(
            *self._names,
            **client_options(settings),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        self.records: list = []

    async def __aenter__(self) -> TopicReader:
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def poll(self) -> list:
        batch = await self._consumer.getmany(timeout_ms=100)
        for records in batch.values():
            self.records.extend(records)
        return self.records

    async def wait_for(self, predicate: Callable[[list], bool], timeout: float = 30.0) -> list:
        # a one-tuple, so that a predicate met by no records (an empty list, falsy) still ends the wait
        async def check() -> tuple[list] | None:
            records = await self.poll()
            return (records,) if predicate(records) else None

        (records,) = await eventually(check, timeout=timeout)
        return records


async def publish_as_owner(
    producer: AIOKafkaProducer, settings: PlatformSettings, *messages: Message, headers: dict[str, str] | None = None
) -> None:
    """Send each message to its (prefixed) topic with the registry's key, as its owner's outbox relay would."""
    kafka_headers = [(k, v.encode()) for k, v in (headers or {}).items()]
    for message in messages:
        spec = topic_for(message)
        await producer.send_and_wait(
            settings.topic(spec.name), message.to_bytes(), key=spec.key_for(message), headers=kafka_headers
        )


async def delete_topics_with_prefix(settings: PlatformSettings, prefix: str) -> int:
    """Delete a test run's topics and their ACLs (best effort: a broker already gone is not a test failure)."""
    from libs.platform.messaging.topics_admin import retire

    try:
        return await retire(settings, prefix)
    except Exception:  # noqa: BLE001 - cleanup must never fail the run
        return 0
