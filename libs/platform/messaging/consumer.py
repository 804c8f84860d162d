"""Event consumption with exactly-once effects over at-least-once delivery.

For every record, in partition order:
1. decode and validate against the topic's one contract model; failure -> dead letter at once;
2. open a unit of work, claim the inbox row (consumer group + event id): a duplicate does nothing;
3. run the handler inside that transaction, so state, outgoing events and inbox row commit together;
4. a transient failure retries with backoff a bounded number of times, then dead-letters;
   a `PermanentHandlerError` dead-letters at once;
5. only then commit the offset. A crash before 5 redelivers; the inbox makes the redelivery a no-op.

faststream subscribes (one consumer in the service's group for all its topics) with the manual
ack policy, because its Kafka default commits before the handler runs (at-most-once). We do not use
faststream's telemetry middleware because trace context must survive the outbox hop: the relay
re-injects the stored context, and here we extract it from the Kafka headers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import ValidationError

from contracts.base import Message
from contracts.topics import BY_NAME
from libs.platform.messaging.dead_letter import DeadLetter, DeadLetterPublisher
from libs.platform.messaging.unit_of_work import Signaller, UnitOfWork, unit_of_work
from libs.platform.observability.logs import bind_context
from libs.platform.settings import PlatformSettings

log = logging.getLogger(__name__)
tracer = trace.get_tracer("mgrid.consumer")

Handler = Callable[[Message, UnitOfWork], Awaitable[None]]


async def _raw_body(msg: Any) -> Any:
    # We validate against the topic's contract ourselves; faststream must not guess by content-type.
    return msg.body


class PermanentHandlerError(Exception):
    """The message is valid but can never be handled (e.g. it names an unknown microgrid): dead-letter it."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass
class ConsumerStats:
    processed: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    last_progress_monotonic: float = field(default_factory=time.monotonic)
    last_error: str | None = None


class EventConsumer:
    """Routes each subscribed topic of one consumer group to its handler."""

    def __init__(
        self,
        *,
        group: str,
        handlers: Mapping[str, Handler],
        pool: asyncpg.Pool,
        settings: PlatformSettings,
        dead_letters: DeadLetterPublisher,
        on_dead_letter: Callable[[str, str], None] | None = None,
        signaller: Signaller | None = None,
    ) -> None:
        unknown = [t for t in handlers if t not in BY_NAME]
        if unknown:
            raise ValueError(f"no contract registered for topics {unknown}")
        self.group = settings.topic(group)
        self._handlers = dict(handlers)
        self._pool = pool
        self._settings = settings
        self._dead_letters = dead_letters
        self._on_dead_letter = on_dead_letter
        self._signaller = signaller
        self.stats = ConsumerStats()
        self._subscriber: Any = None
        self._next_offsets: dict[tuple[str, int], int] = {}

    def subscribe(self, broker: KafkaBroker) -> None:
        topics = [self._settings.topic(t) for t in sorted(self._handlers)]

        self._subscriber = broker.subscriber(
            *topics,
            group_id=self.group,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.MANUAL,
            max_poll_records=100,
            # Pick a record up within ~50 ms instead of the 500 ms default fetch wait: cycles are latency-bound.
            fetch_max_wait_ms=50,
            decoder=_raw_body,
        )

        @self._subscriber
        async def on_record(body: Any, msg: KafkaMessage) -> None:  # noqa: ARG001 - body decoded by us
            await self.process(msg.raw_message)
            await msg.ack()

    def lag(self) -> list[tuple[int, dict[str, str]]]:
        """Records not yet handled per assigned partition (high watermark - next offset), for the gauge."""
        consumer = getattr(self._subscriber, "consumer", None)
        if consumer is None:
            return []
        readings = []
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue
            # a partition not handled yet in this process counts from the watermark: no false lag at start
            done = self._next_offsets.get((tp.topic, tp.partition), high)
            labels = {"group": self.group, "topic": tp.topic, "partition": str(tp.partition)}
            readings.append((max(0, high - done), labels))
        return readings

    async def pending_records(self) -> int:
        """Records on the assigned partitions past the group's committed offsets, asked of the broker now.

        Fresh requests (not the cached watermark), so a consumer stuck without fetching still shows.
        """
        consumer = getattr(self._subscriber, "consumer", None)
        if consumer is None:
            return 0
        partitions = list(consumer.assignment())
        if not partitions:
            return 0
        ends = await consumer.end_offsets(partitions)
        pending = 0
        for tp in partitions:
            committed = await consumer.committed(tp)
            pending += max(0, ends[tp] - (committed or 0))
        return pending

    async def process(self, record: Any) -> None:
        """Handle one ConsumerRecord to completion: effect committed, duplicate skipped, or dead-lettered."""
        topic = self._settings.unprefixed(record.topic)
        headers = tuple((k, bytes(v)) for k, v in (record.headers or ()))
        carrier = {k: v.decode(errors="replace") for k, v in headers}
        try:
            message = BY_NAME[topic].message.model_validate_json(record.value)
        except (ValidationError, ValueError, KeyError) as exc:
            await self._dead_letter(record, headers, "INVALID_MESSAGE", str(exc), attempts=0)
            self._mark_done(record)
            return
        with tracer.start_as_current_span(
            f"{record.topic} process",
            context=propagate.extract(carrier),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": record.topic,
                "messaging.consumer.group.name": self.group,
                "messaging.message.id": str(message.event_id),
                "messaging.kafka.offset": record.offset,
                "correlation.id": message.correlation_id,
                "microgrid.id": str(getattr(message.payload, "microgrid_id", "") or ""),
            },
        ) as span, bind_context(
            correlation_id=message.correlation_id, microgrid_id=getattr(message.payload, "microgrid_id", None)
        ):
            await self._handle_with_retries(record, headers, topic, message, span)
        self._mark_done(record)

    def _mark_done(self, record: Any) -> None:
        self._next_offsets[(record.topic, record.partition)] = record.offset + 1
        self.stats.last_progress_monotonic = time.monotonic()

    async def _handle_with_retries(
        self, record: Any, headers: tuple[tuple[str, bytes], ...], topic: str, message: Message, span: Any
    ) -> None:
        handler = self._handlers[topic]
        delay = self._settings.consumer_backoff_initial_s
        for attempt in range(1, self._settings.consumer_max_attempts + 1):
            try:
                async with unit_of_work(self._pool, self._settings, self._signaller) as uow:
                    if not await uow.claim_inbox(self.group, str(message.event_id), topic):
                        self.stats.duplicates += 1
                        span.set_attribute("mgrid.duplicate", True)
                        return
                    await handler(message, uow)
                self.stats.processed += 1
                return
            except PermanentHandlerError as exc:
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                await self._dead_letter(record, headers, exc.reason, str(exc), attempts=attempt)
                return
            except Exception as exc:  # transient until proven otherwise: retry with backoff
                self.stats.last_error = repr(exc)
                log.warning("handler failed (attempt %d) on %s: %r", attempt, topic, exc)
                if attempt == self._settings.consumer_max_attempts:
                    span.set_status(Status(StatusCode.ERROR, repr(exc)))
                    await self._dead_letter(record, headers, "HANDLER_FAILED", repr(exc), attempts=attempt)
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._settings.consumer_backoff_max_s)

    async def _dead_letter(
        self, record: Any, headers: tuple[tuple[str, bytes], ...], reason: str, error: str, attempts: int
    ) -> None:
        log.error("dead-lettering %s[%d]@%d: %s %s", record.topic, record.partition, record.offset, reason, error)
        await self._dead_letters.publish(
            DeadLetter(
                consumer_group=self.group,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key=record.key,
                value=record.value if record.value is not None else b"",
                headers=headers,
                reason=reason,
                error=error,
                attempts=attempts,
            )
        )
        self.stats.dead_lettered += 1
        if self._on_dead_letter:
            self._on_dead_letter(record.topic, reason)
