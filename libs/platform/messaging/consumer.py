"""Event consumption with exactly-once effects over at-least-once delivery, in batches.

One consumer per service (its consumer group, all its topics). Handlers are keyed by message type;
each type's topic comes from the registry (`contracts.topics`), so a handler is only ever called with
its own type. Each poll returns a batch of records, in partition order, and the batch is handled to
completion before its offsets are committed:
1. decode and validate each record against its topic's one contract model; an invalid one is
   dead-lettered (the dead letter is written before the offset moves past it);
2. the valid ones run together in one unit of work: one inbox claim for the batch (a redelivered
   event id does nothing), every handler in order, the outgoing events in one outbox write, one
   commit. If any handler fails for a reason of its own, the batch is rolled back and its records
   run again one by one, each in its own unit of work, so only the guilty record is dead-lettered;
3. failures are told apart by whose fault they are (`failures.classify`): a dependency that is down
   pauses the partitions and retries, with capped backoff, for as long as it takes; a failure the
   message causes (bad data for a column, a `PermanentHandlerError`) is dead-lettered at once; an
   unknown error is retried a bounded number of times, then dead-lettered;
   With `consumer_lanes` > 1 (balancing) the batch is first split by record key into that many lanes,
   each its own unit of work, run concurrently: one microgrid's records stay in one lane, in order,
   while different microgrids' cycles overlap their database round trips (issue 13);
4. only then may the batch's offsets be committed: those of `consumer_commit_interval_s` of batches in
   one request, and at once when idle, on revocation and at stop. A crash before that redelivers them;
   the inbox makes the redelivery a no-op.
5. under load (batches ending less than `_BUSY_WITHIN_S` apart) the next poll waits `consumer_linger_ms`,
   so the records arriving meanwhile share a batch: one transaction, one outbox write, one relay pass
   and one fetch for several instead of each. After a quiet spell, or a full batch (more records already
   wait), the next record is polled at once.
The consumer never commits past a record that was neither handled nor dead-lettered: a dead letter
too big for the broker is replaced by one carrying a size-capped excerpt, and when even that cannot
be written (the broker is down) the consumer pauses and retries.

Why our own loop on aiokafka rather than a faststream subscriber: we need one transaction and one
offset commit per batch across topics, partition pause/resume during an outage, and commits of the
exact offsets handled. faststream's manual-ack path commits the consumer's position and swallows a
handler's exception, which skipped records silently when a dead letter could not be written.
Trace context is extracted from the Kafka headers, so a trace survives the outbox hop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka import errors as kafka_errors
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import ValidationError

from contracts.base import Message
from contracts.topics import subscribed_topic
from libs.platform.messaging.dead_letter import DeadLetter, DeadLetterPublisher
from libs.platform.messaging.failures import FailureKind, classify
from libs.platform.messaging.kafka import create_consumer
from libs.platform.messaging.unit_of_work import OutboxHandoff, Signaller, UnitOfWork, unit_of_work
from libs.platform.observability.logs import bind_context
from libs.platform.settings import PlatformSettings

log = logging.getLogger(__name__)
tracer = trace.get_tracer("mgrid.consumer")

Handler = Callable[[Message, UnitOfWork], Awaitable[None]]

# How long a poll waits for records before looping (the broker answers at once when records come).
_POLL_TIMEOUT_MS = 500
# Batches handled less than this apart mean records keep coming: the consumer lingers (consumer_linger_ms).
_BUSY_WITHIN_S = 0.1
# How long a revocation waits for the batch in flight, so a partition is handed over committed.
_HANDOVER_WAIT_S = 10.0


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
    batches: int = 0
    batch_fallbacks: int = 0
    passed_over: int = 0  # records no handler had anything to do with (ServiceDefinition.passes_over)
    last_progress_monotonic: float = field(default_factory=time.monotonic)
    last_error: str | None = None
    # Set while the consumer is paused, waiting for a dependency to come back (readiness shows it).
    waiting_for_dependency: str | None = None


@dataclass(slots=True)
class Delivery:
    """One record as received: where it came from, and its message if it decoded."""

    record: Any
    topic: str  # without the run's topic prefix
    headers: tuple[tuple[str, bytes], ...]
    message: Message | None
    invalid_reason: str = ""

    @property
    def event_id(self) -> str:
        assert self.message is not None
        return str(self.message.event_id)


class _BatchFallback(Exception):
    """A handler in a batch failed for a reason of the message: run the batch's records one by one."""


class EventConsumer:
    """Routes each message type's topic of one consumer group to its handler, a batch at a time."""

    def __init__(
        self,
        *,
        group: str,
        handlers: Mapping[type[Message], Handler],
        pool: asyncpg.Pool,
        settings: PlatformSettings,
        dead_letters: DeadLetterPublisher,
        on_dead_letter: Callable[[str, str], None] | None = None,
        signaller: Signaller | None = None,
        passes_over: Mapping[type[Message], Callable[[Any], bool]] | None = None,
        handoff: OutboxHandoff | None = None,
    ) -> None:
        specs = {message: subscribed_topic(message) for message in handlers}
        unknown = [m.__name__ for m, spec in specs.items() if spec is None]
        if unknown:
            raise ValueError(f"no topic registered for messages {unknown}")
        self.group = settings.topic(group)
        # The topic of each message type (the registry holds one model per topic, one topic per model;
        # a handler may take a view of the topic's model instead, decoded as such: contracts.topics.VIEWS).
        self._handlers = {spec.name: handlers[message] for message, spec in specs.items() if spec}
        self._models = {spec.name: message for message, spec in specs.items() if spec}
        strays = [m.__name__ for m in (passes_over or {}) if specs.get(m) is None]
        if strays:
            raise ValueError(f"passes_over names messages without a handler: {strays}")
        self._passes_over = {specs[m].name: predicate for m, predicate in (passes_over or {}).items()}  # type: ignore[union-attr]
        self._pool = pool
        self._settings = settings
        self._dead_letters = dead_letters
        self._on_dead_letter = on_dead_letter
        self._signaller = signaller
        self._handoff = handoff
        self.stats = ConsumerStats()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._batch_done = asyncio.Event()
        self._batch_done.set()
        self._next_offsets: dict[tuple[str, int], int] = {}
        self._lanes = max(1, settings.consumer_lanes)
        self._poll_lock = asyncio.Lock()  # lanes waiting out an outage take turns to poll (keep-alive)
        self._held: frozenset[str] = frozenset()  # topics (prefixed) held back by backpressure
        # Offsets of handled batches not committed yet (settings.consumer_commit_interval_s), since when.
        self._deferred: dict[TopicPartition, int] = {}
        self._deferred_since = 0.0
        self._linger_s = settings.consumer_linger_ms / 1000
        self._last_batch_at = float("-inf")  # when the last batch with records was handled

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        topics = [self._settings.topic(t) for t in sorted(self._handlers)]
        self._consumer = create_consumer(self._settings, client_id=self.group, group_id=self.group)
        self._consumer.subscribe(topics, listener=_HandOver(self))
        await self._consumer.start()
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"consumer-{self.group}")

    async def stop(self, graceful_s: float = 10.0) -> None:
        """Finish the batch in flight (bounded), commit it, leave the group."""
        self._stopping = True
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._batch_done.wait(), graceful_s)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._commit({})  # what was handled is committed before the group is left
                await self._consumer.stop()
            self._consumer = None

    def hold(self, topics: Iterable[str]) -> None:
        """Stop fetching these topics (unprefixed names) until held no more: backpressure
        (libs.platform.messaging.backpressure). Their records wait in Kafka; nothing is skipped."""
        self._held = frozenset(self._settings.topic(t) for t in topics)

    @property
    def backlog(self) -> int:
        """Records visible on the assigned partitions and not handled yet (the lag gauge, summed)."""
        return sum(value for value, _ in self.lag())

    def _apply_holds(self) -> None:
        consumer = self._consumer
        if consumer is None or self.stats.waiting_for_dependency is not None:
            return  # an outage pauses everything; _recovered resumes what is not held
        assigned = consumer.assignment()
        paused = consumer.paused()
        hold = [tp for tp in assigned if tp.topic in self._held and tp not in paused]
        release = [tp for tp in paused if tp.topic not in self._held]
        if hold:
            consumer.pause(*hold)
        if release:
            consumer.resume(*release)

    async def _run(self) -> None:
        assert self._consumer is not None
        while not self._stopping:
            self._apply_holds()
            try:
                polled = await self._consumer.getmany(
                    timeout_ms=_POLL_TIMEOUT_MS, max_records=self._settings.consumer_max_batch
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # aiokafka recovers from broker loss itself; don't spin meanwhile
                self.stats.last_error = repr(exc)
                log.warning("poll failed: %r", exc)
                await asyncio.sleep(self._settings.consumer_backoff_initial_s)
                continue
            if not polled:
                await self._commit({})  # idle: nothing handled waits for a commit
                continue
            self._batch_done.clear()
            records = [r for tp in sorted(polled, key=lambda t: (t.topic, t.partition)) for r in polled[tp]]
            try:
                await self.process_batch(records)
                # Every record is settled (applied, a duplicate, passed over or dead-lettered): its offset
                # may be committed, now or with the batches after it.
                if not self._deferred:
                    self._deferred_since = time.monotonic()
                self._deferred.update({tp: rs[-1].offset + 1 for tp, rs in polled.items() if rs})
                if time.monotonic() - self._deferred_since >= self._settings.consumer_commit_interval_s:
                    await self._commit({})
            finally:
                self._batch_done.set()
            await self._linger_if_busy(full=len(records) >= self._settings.consumer_max_batch)

    async def _linger_if_busy(self, *, full: bool) -> None:
        """Under load, let the next batch gather before polling for it (`consumer_linger_ms`).

        Handled one at a time, a record costs a transaction, an outbox write, a relay pass, a produce
        request and a fetch; a few records gathered share them (a fleet at ~90 cycles/s: 12-13 ms of CPU a
        cycle on all processes instead of 15-16, docs/performance.md, seventeenth round). Only while
        batches end less than `_BUSY_WITHIN_S` apart: at low load the next record is polled at once. Never
        after a full batch (`consumer_max_batch`): the next one is already waiting, and a wait would only
        add its time to every record's latency.
        """
        now = time.monotonic()
        busy = now - self._last_batch_at < _BUSY_WITHIN_S
        self._last_batch_at = now
        if busy and not full and self._linger_s > 0 and not self._stopping:
            await asyncio.sleep(self._linger_s)

    async def _commit(self, batch: Mapping[TopicPartition, int]) -> None:
        """Commit a batch's next offsets, with those of earlier batches still waiting."""
        assert self._consumer is not None
        owned = self._consumer.assignment()
        offsets = {tp: at for tp, at in {**self._deferred, **batch}.items() if tp in owned}
        self._deferred = {}
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (kafka_errors.CommitFailedError, kafka_errors.IllegalStateError) as exc:
            # The partitions moved to another member: it redelivers from the last commit, and the
            # inbox turns what we already applied into no-ops.
            log.warning("offset commit refused after a rebalance: %r", exc)
        except Exception as exc:  # broker away: the next batch's commit covers these offsets too
            self.stats.last_error = repr(exc)
            log.warning("offset commit failed: %r", exc)

    # -- handling ---------------------------------------------------------------------------------

    async def process(self, record: Any) -> None:
        """Handle one ConsumerRecord to completion: effect committed, duplicate skipped, or dead-lettered."""
        await self.process_batch([record])

    async def process_batch(self, records: Sequence[Any]) -> None:
        """Handle every record to completion; returns only when each is applied, a duplicate, passed over
        or dead-lettered."""
        deliveries = [self._decode(record) for record in records]
        for delivery in deliveries:
            if delivery.message is None:
                await self._dead_letter(delivery, "INVALID_MESSAGE", delivery.invalid_reason, attempts=0)
        valid = [d for d in deliveries if d.message is not None and not self._passed_over(d)]
        lanes = self._split_by_key(valid)
        if len(lanes) > 1:
            outcomes = await asyncio.gather(*(self._apply_lane(lane) for lane in lanes), return_exceptions=True)
            for outcome in outcomes:  # every lane has finished: no effect is left running behind a failure
                if isinstance(outcome, BaseException):
                    raise outcome
        elif valid:
            await self._apply_lane(valid)
        for delivery in deliveries:
            self._mark_done(delivery.record)
        # Every record is settled, so any outage is over: resume also when the retry after it found a
        # duplicate (the commit had landed as the connection dropped) or dead-lettered, else the paused
        # partitions stay paused for good.
        self._recovered()

    def _split_by_key(self, valid: list[Delivery]) -> list[list[Delivery]]:
        """The batch in at most `consumer_lanes` lanes by record key, each in the batch's order."""
        if self._lanes == 1 or len(valid) < 2:
            return [valid] if valid else []
        lanes: dict[int, list[Delivery]] = {}
        for delivery in valid:
            lane = zlib.crc32(delivery.record.key or b"") % self._lanes
            lanes.setdefault(lane, []).append(delivery)
        return list(lanes.values())

    async def _apply_lane(self, lane: list[Delivery]) -> None:
        if len(lane) == 1:
            await self._apply_alone(lane[0])
            return
        try:
            await self._until_available(lambda: self._apply_together(lane))
            self.stats.batches += 1
        except _BatchFallback:
            self.stats.batch_fallbacks += 1
            for delivery in lane:
                await self._apply_alone(delivery)

    def _passed_over(self, delivery: Delivery) -> bool:
        predicate = self._passes_over.get(delivery.topic)
        if predicate is None:
            return False
        try:
            passed = bool(predicate(delivery.message))
        except Exception:  # the handler decides what a message it cannot judge deserves
            return False
        if passed:
            self.stats.passed_over += 1
        return passed

    def _decode(self, record: Any) -> Delivery:
        topic = self._settings.unprefixed(record.topic)
        headers = tuple((k, bytes(v)) for k, v in (record.headers or ()))
        try:
            message = self._models[topic].decode(record.value)
        except (ValidationError, ValueError, KeyError, TypeError) as exc:
            return Delivery(record, topic, headers, None, str(exc))
        return Delivery(record, topic, headers, message)

    async def _apply_together(self, batch: list[Delivery]) -> None:
        """Every record of the batch in one unit of work; `_BatchFallback` if one fails by its own fault."""
        try:
            async with unit_of_work(self._pool, self._settings, self._signaller, self._handoff) as uow:
                claimed = await uow.claim_inbox_many(self.group, [(d.event_id, d.topic) for d in batch])
                applied = duplicates = 0
                for delivery in batch:
                    if delivery.event_id not in claimed:
                        duplicates += 1
                        continue
                    claimed.discard(delivery.event_id)  # the same id twice in one batch: the second is a duplicate
                    with self._span(delivery):
                        await self._handlers[delivery.topic](delivery.message, uow)  # type: ignore[arg-type]
                    applied += 1
        except Exception as exc:
            if classify(exc) is FailureKind.DEPENDENCY_UNAVAILABLE:
                raise
            log.info("batch of %d failed (%r); running its records one by one", len(batch), exc)
            raise _BatchFallback from exc
        self.stats.processed += applied
        self.stats.duplicates += duplicates

    async def _apply_alone(self, delivery: Delivery) -> None:
        """One record in its own unit of work, with the retry policy of its failure's kind."""
        attempts = 0
        delay = self._settings.consumer_backoff_initial_s
        while True:
            try:
                async with unit_of_work(self._pool, self._settings, self._signaller, self._handoff) as uow:
                    if not await uow.claim_inbox(self.group, delivery.event_id, delivery.topic):
                        self.stats.duplicates += 1
                        return
                    with self._span(delivery):
                        await self._handlers[delivery.topic](delivery.message, uow)  # type: ignore[arg-type]
                self.stats.processed += 1
                self._recovered()
                return
            except PermanentHandlerError as exc:
                await self._dead_letter(delivery, exc.reason, str(exc), attempts=attempts + 1)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                kind = classify(exc)
                self.stats.last_error = repr(exc)
                if kind is FailureKind.DEPENDENCY_UNAVAILABLE:
                    await self._wait_out_outage(exc, delay)
                elif kind is FailureKind.MESSAGE_DATA:
                    await self._dead_letter(delivery, "DATA_REJECTED", repr(exc), attempts=attempts + 1)
                    return
                else:
                    attempts += 1
                    log.warning("handler failed (attempt %d) on %s: %r", attempts, delivery.topic, exc)
                    if attempts >= self._settings.consumer_max_attempts:
                        await self._dead_letter(delivery, "HANDLER_FAILED", repr(exc), attempts=attempts)
                        return
                    await self._keep_alive_sleep(delay)
                delay = min(delay * 2, self._settings.consumer_backoff_max_s)

    @contextlib.contextmanager
    def _span(self, delivery: Delivery) -> Any:
        message = delivery.message
        assert message is not None
        record = delivery.record
        carrier = {k: v.decode(errors="replace") for k, v in delivery.headers}
        microgrid_id = getattr(message.payload, "microgrid_id", None)
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
                "microgrid.id": str(microgrid_id or ""),
            },
        ) as span, bind_context(correlation_id=message.correlation_id, microgrid_id=microgrid_id):
            try:
                yield span
            except Exception as exc:
                span.set_status(Status(StatusCode.ERROR, repr(exc)))
                raise

    # -- outages ----------------------------------------------------------------------------------

    async def _until_available(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` until it gets past a dependency outage (retried with capped backoff, unbounded)."""
        delay = self._settings.consumer_backoff_initial_s
        while True:
            try:
                await work()
                self._recovered()
                return
            except Exception as exc:
                if classify(exc) is not FailureKind.DEPENDENCY_UNAVAILABLE:
                    raise
                await self._wait_out_outage(exc, delay)
                delay = min(delay * 2, self._settings.consumer_backoff_max_s)

    async def _wait_out_outage(self, exc: BaseException, delay: float) -> None:
        if self.stats.waiting_for_dependency is None:
            log.warning("dependency unavailable, pausing consumption until it is back: %r", exc)
        self.stats.waiting_for_dependency = repr(exc)
        self.stats.last_error = repr(exc)
        if self._consumer is not None:
            self._consumer.pause(*self._consumer.assignment())
        await self._keep_alive_sleep(delay)

    def _recovered(self) -> None:
        if self.stats.waiting_for_dependency is not None:
            log.warning("dependency back, resuming consumption")
            self.stats.waiting_for_dependency = None
            if self._consumer is not None:
                self._consumer.resume(*[tp for tp in self._consumer.paused() if tp.topic not in self._held])

    async def _keep_alive_sleep(self, delay: float) -> None:
        """Sleep, but keep polling (paused) so the group does not evict us during a long outage."""
        deadline = time.monotonic() + delay
        consumer = self._consumer
        while consumer is not None and not self._stopping and time.monotonic() < deadline:
            async with self._poll_lock:
                consumer.pause(*consumer.assignment())
                wait_ms = int(min(0.2, max(0.0, deadline - time.monotonic())) * 1000)
                polled = await consumer.getmany(timeout_ms=wait_ms)
                # A partition assigned meanwhile may have delivered: put it back to be read after the outage.
                for tp, records in polled.items():
                    if records:
                        consumer.seek(tp, records[0].offset)
        remaining = deadline - time.monotonic()
        if remaining > 0:
            await asyncio.sleep(remaining)

    # -- dead letters -----------------------------------------------------------------------------

    async def _dead_letter(self, delivery: Delivery, reason: str, error: str, attempts: int) -> None:
        """Write the dead letter before the offset may move past the record; never give up on it."""
        record = delivery.record
        log.error("dead-lettering %s[%d]@%d: %s %s", record.topic, record.partition, record.offset, reason, error)
        letter = DeadLetter(
            consumer_group=self.group,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value if record.value is not None else b"",
            headers=delivery.headers,
            reason=reason,
            error=error,
            attempts=attempts,
        )
        if letter.size() > self._settings.dead_letter_max_bytes:
            letter = letter.excerpt(self._settings.dead_letter_excerpt_bytes)
        delay = self._settings.consumer_backoff_initial_s
        while True:
            try:
                await self._dead_letters.publish(letter)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not letter.excerpted and classify(exc) is not FailureKind.DEPENDENCY_UNAVAILABLE:
                    # The broker refuses this letter as it is (too large, say): keep the payload out of it.
                    log.warning("dead letter refused (%r); writing it with an excerpt of the payload", exc)
                    letter = letter.excerpt(self._settings.dead_letter_excerpt_bytes)
                    continue
                await self._wait_out_outage(exc, delay)
                delay = min(delay * 2, self._settings.consumer_backoff_max_s)
        self._recovered()
        self.stats.dead_lettered += 1
        if self._on_dead_letter:
            self._on_dead_letter(record.topic, reason)

    # -- progress and lag -------------------------------------------------------------------------

    def _mark_done(self, record: Any) -> None:
        self._next_offsets[(record.topic, record.partition)] = record.offset + 1
        self.stats.last_progress_monotonic = time.monotonic()

    def lag(self) -> list[tuple[int, dict[str, str]]]:
        """Records not yet handled per assigned partition (high watermark - next offset), for the gauge."""
        consumer = self._consumer
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
        consumer = self._consumer
        if consumer is None:
            return 0
        partitions = list(consumer.assignment())
        if not partitions:
            return 0
        ends = await consumer.end_offsets(partitions)
        # One request for every partition (aiokafka's public `committed` asks one partition at a time).
        committed = await consumer._coordinator.fetch_committed_offsets(partitions)  # noqa: SLF001
        pending = 0
        for tp in partitions:
            done = committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0
            pending += max(0, ends[tp] - done)
        return pending


class _HandOver(ConsumerRebalanceListener):
    """Before partitions move to another member, let the batch in flight finish and commit (bounded)."""

    def __init__(self, consumer: EventConsumer) -> None:
        self._owner = consumer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        owner = self._owner
        if owner.stats.waiting_for_dependency is not None:
            return  # the batch is waiting out an outage; it may not finish soon, and the inbox covers it
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(owner._batch_done.wait(), _HANDOVER_WAIT_S)  # noqa: SLF001
            # What was handled is committed before the partitions go: the next owner starts after it.
            await owner._commit({})  # noqa: SLF001

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None
