"""The outbox relay: publishes committed outbox rows, in id order, with an idempotent producer.

Rows are claimed with FOR UPDATE SKIP LOCKED inside a transaction that also holds a transaction-level
advisory lock, so several replicas can run a relay safely and per-key order is kept (only one
publishes at a time; the others skip). A row is marked published only after the broker acknowledged
it (acks=all), so a crash between send and mark re-sends it: consumers deduplicate by event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from libs.platform.messaging.unit_of_work import OUTBOX_CHANNEL
from libs.platform.settings import PlatformSettings

log = logging.getLogger(__name__)
tracer = trace.get_tracer("mgrid.outbox")


class OutboxRelay:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        settings: PlatformSettings,
        schema: str,
        on_published: Callable[..., None] | None = None,
    ) -> None:
        self._pool = pool
        self._producer = producer
        self._settings = settings
        self._lock_key = int.from_bytes(hashlib.sha256(f"outbox:{schema}".encode()).digest()[:8], "big", signed=True)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None
        self._on_published = on_published
        self.last_publish_lag_s: float = 0.0
        self.published_total = 0
        self.pending_rows = 0  # last known backlog, for the outbox_pending gauge (read during scrapes)

    async def start(self) -> None:
        self._listener = await self._pool.acquire()
        await self._listener.add_listener(OUTBOX_CHANNEL, self._on_notify)
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._listener is not None:
            # Shutting down with the database gone must still finish: the connection dies with the pool.
            with contextlib.suppress(Exception):
                await self._listener.remove_listener(OUTBOX_CHANNEL, self._on_notify)
                await self._pool.release(self._listener)
            self._listener = None

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    async def pending(self) -> int:
        return int(await self._pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"))

    async def _run(self) -> None:
        while True:
            try:
                sent = await self.publish_batch()
            except asyncio.CancelledError:
                raise
            except Exception:  # broker or database hiccup: keep the rows, try again shortly
                log.exception("outbox relay batch failed; will retry")
                sent = 0
                await asyncio.sleep(1.0)
            if sent == 0:
                self.pending_rows = 0
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self._settings.outbox_poll_interval_s)
                except TimeoutError:
                    pass

    async def publish_batch(self) -> int:
        """Publish up to one batch of unpublished rows; returns how many were sent."""
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", self._lock_key):
                return 0
            rows = await conn.fetch(
                "SELECT id, topic, key, value, headers, created_at FROM outbox WHERE published_at IS NULL"
                " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self._settings.outbox_batch_size,
            )
            if not rows:
                return 0
            futures = []
            for row in rows:
                headers: dict[str, str] = json.loads(row["headers"])
                parent = propagate.extract(headers)
                with tracer.start_as_current_span(
                    f"{row['topic']} publish",
                    context=parent,
                    kind=SpanKind.PRODUCER,
                    attributes={
                        "messaging.system": "kafka",
                        "messaging.destination.name": row["topic"],
                        "messaging.message.id": headers.get("event_id", ""),
                        "correlation.id": headers.get("correlation_id", ""),
                    },
                ):
                    # The consumer's span becomes a child of this publish span.
                    carrier = {k: v for k, v in headers.items() if k not in ("traceparent", "tracestate")}
                    propagate.inject(carrier)
                    kafka_headers = [(k, v.encode()) for k, v in carrier.items()]
                    futures.append(
                        await self._producer.send(
                            row["topic"], value=bytes(row["value"]), key=bytes(row["key"]), headers=kafka_headers
                        )
                    )
            await asyncio.gather(*futures)
            await conn.execute(
                "UPDATE outbox SET published_at = clock_timestamp() WHERE id = ANY($1::bigint[])",
                [r["id"] for r in rows],
            )
            now = time.time()
            self.last_publish_lag_s = max(0.0, now - rows[0]["created_at"].timestamp())
            self.published_total += len(rows)
            self.pending_rows = max(0, self.pending_rows - len(rows)) if len(rows) < self._settings.outbox_batch_size \
                else await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            if self._on_published:
                for row in rows:
                    self._on_published(seconds=max(0.0, now - row["created_at"].timestamp()), topic=row["topic"])
            return len(rows)
