"""The HTTP door's results, read from microgrid.cycle_completed by this process only while it waits for one.

`POST /api/circuit/{id}/rebalance_load` answers with its cycle's result (ARCHITECTURE.md: the HTTP routes
answer with the cycle result). Reading every cycle of the fleet in the adapter's consumer group to keep
those few cost a fetch a cycle for the broker to serve and the adapter to take in and pass over: 1.5-1.9
ms of CPU a cycle at 60 depots (docs/performance.md, fifteenth round). So this reader has no consumer
group and its partitions stay paused, nothing fetched, while no request of this process waits:

- a new request is watched before it is committed: an idle reader first moves to the partitions' end,
  so the cycle requested after that is read and nothing before it;
- a request is watched for `compat_result_watch_s` (a client collecting a 202 PENDING later finds the
  result kept); a repeat of a request whose result was never kept (the watch ended, or the process that
  asked stopped) is looked for from the offsets at the request's recorded time;
- a result found is kept (`cycle_result`) and signalled as before, so the door's wait is unchanged; one
  that breaks its contract goes to the adapter's dead-letter topic (INVALID_MESSAGE), never answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from contracts.events import CycleCompleted, CycleCompletedSummary
from contracts.topics import topic_for
from libs.platform.messaging.dead_letter import DeadLetter
from libs.platform.messaging.kafka import client_options
from libs.platform.messaging.unit_of_work import UnitOfWork
from libs.platform.observability import get_metrics
from libs.platform.result_waiter import result_channel
from services.compatibility_adapter.adapters import cycle_results, translation_audit
from services.compatibility_adapter.settings import CompatibilityAdapterContext

log = logging.getLogger(__name__)

# The Redis channel a kept result is signalled on (the door's wait listens to it).
CYCLE_RESULT = "compatibility_adapter.cycle_result"

# A repeat looks from this long before its request was recorded (the broker stamps records by its own clock).
SINCE_MARGIN = timedelta(seconds=5)
# How long a request waits for the reader to be positioned before it goes on regardless (then at worst
# answers 202 PENDING, as for a slow cycle): the door never wedges on the reader.
_POSITION_WAIT_S = 5.0
_POLL_MS = 50
# A fetch in flight holds the connection (the broker answers one request at a time on it): the positioning
# of a request that comes just as the reader paused waits for it, so fetches wait at most this long.
_FETCH_WAIT_MS = 100


class CycleResultReader:
    """One per adapter process (`ServiceContext.memory`); `run` is its loop, `watch` is for the door."""

    def __init__(self) -> None:
        self._ctx: CompatibilityAdapterContext | None = None
        self._watching: dict[str, float] = {}  # request key -> monotonic instant the watch ends
        self._to_position: list[tuple[datetime | None, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._running = asyncio.Event()  # the loop is up (a request arriving as the service starts waits for it)
        self._reading = False  # partitions resumed, positioned at or before the end of every watched request
        self._consumer: AIOKafkaConsumer | None = None
        self.records_read = 0

    @property
    def reading(self) -> bool:
        return self._reading

    async def watch(self, request_key: str, since: datetime | None = None) -> None:
        """Read for this request's cycle from now on (`since`: from that instant on); returns once the
        reader is positioned to find it. Without a running reader (in `_POSITION_WAIT_S`) it goes on: the door
        then answers 202 PENDING, and a repeat looks for the result from the request's time."""
        if not self._running.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._running.wait(), timeout=_POSITION_WAIT_S)
        ctx = self._ctx
        if ctx is None:
            log.warning("cycle result reader not running; request %s goes on unwatched", request_key)
            return
        # At least as long as the door waits for it.
        until = time.monotonic() + max(ctx.settings.compat_result_watch_s, ctx.settings.compat_rebalance_wait_s)
        self._watching[request_key] = max(until, self._watching.get(request_key, until))
        if self._reading and since is None:
            return  # reading already, from at or before the end: the cycle asked for after this is found
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._to_position.append((since, done))
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout=_POSITION_WAIT_S)
        except TimeoutError:
            log.warning("cycle result reader not positioned in %.0f s; the request goes on", _POSITION_WAIT_S)

    def watched(self) -> list[str]:
        """The request keys read for now."""
        return list(self._watching)

    def forget(self, request_key: str) -> None:
        """Stop watching (the request was refused: no cycle will come)."""
        self._watching.pop(request_key, None)

    async def run(self, ctx: CompatibilityAdapterContext) -> None:
        topic = ctx.settings.topic(topic_for(CycleCompleted).name)
        consumer = AIOKafkaConsumer(
            **client_options(ctx.settings), group_id=None, enable_auto_commit=False,
            client_id=f"{ctx.name}-cycle-results", fetch_max_wait_ms=_FETCH_WAIT_MS,
        )
        await consumer.start()
        try:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - an assigned topic is not in metadata yet
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            if not tps:
                raise RuntimeError(f"{topic} has no partitions known")
            consumer.assign(tps)
            consumer.pause(*tps)
            self._consumer, self._ctx = consumer, ctx
            self._running.set()
            if self._watching:  # restarted after a crash: requests still waiting read on from the end
                self._to_position.append((None, asyncio.get_running_loop().create_future()))
            while True:
                await self._position(consumer, tps)
                self._end_watches()
                if not self._watching:
                    self._idle(consumer, tps)
                    if not self._to_position:
                        await self._wake.wait()
                    continue
                batch = await consumer.getmany(timeout_ms=_POLL_MS)
                for records in batch.values():
                    for record in records:
                        await self._read(record)
        finally:
            self._running.clear()
            self._ctx, self._consumer, self._reading = None, None, False
            for _, done in self._to_position:
                if not done.done():
                    done.set_result(None)
            self._to_position.clear()
            await consumer.stop()

    def paused(self) -> set[TopicPartition]:
        return set(self._consumer.paused()) if self._consumer is not None else set()

    def _idle(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
        if self._reading:
            consumer.pause(*tps)
            self._reading = False
        self._wake.clear()

    def _end_watches(self) -> None:
        now = time.monotonic()
        for key in [k for k, until in self._watching.items() if until <= now]:
            self._watching.pop(key, None)

    async def _position(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
        while self._to_position:
            since, done = self._to_position.pop(0)
            try:
                if since is None:
                    if not self._reading:  # the ends asked for directly: a seek_to_end waits on the fetcher
                        for tp, end in (await consumer.end_offsets(tps)).items():
                            consumer.seek(tp, end)
                else:
                    await self._seek_back(consumer, tps, since)
                consumer.resume(*tps)
                self._reading = True
            except Exception:  # broker away: the request goes on; a repeat of it looks back by time
                log.warning("cycle result reader could not position itself", exc_info=True)
            finally:
                if not done.done():
                    done.set_result(None)

    async def _seek_back(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition], since: datetime) -> None:
        """Each partition from its first record at `since` or later, unless it is reading from earlier."""
        at_ms = int((since - SINCE_MARGIN).timestamp() * 1000)
        found = await consumer.offsets_for_times({tp: at_ms for tp in tps})
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            hit = found.get(tp)
            target = hit.offset if hit is not None else ends[tp]
            current = await consumer.position(tp) if self._reading else None
            if current is None or target < current:
                consumer.seek(tp, target)

    async def _read(self, record: Any) -> None:
        self.records_read += 1
        try:
            cycle = CycleCompletedSummary.decode(record.value)
        except (ValidationError, ValueError):
            return  # not a cycle this door asked for that it can tell: balancing's consumers police the topic
        key = cycle.payload.audit.request_key
        ctx = self._ctx
        if not key or key not in self._watching or ctx is None:
            return
        try:
            async with ctx.unit_of_work() as uow:
                await _keep(uow, key, cycle)
        except ValidationError as exc:  # the whole result breaks its contract: never answered, dead-lettered
            self._watching.pop(key, None)
            await self._dead_letter(ctx, record, str(exc))
            return
        except Exception:  # the database away: a repeat of the request looks for it again by time
            log.warning("cycle result for %s not kept", key, exc_info=True)
            return
        self._watching.pop(key, None)

    async def _dead_letter(self, ctx: CompatibilityAdapterContext, record: Any, error: str) -> None:
        log.error("dead-lettering %s[%d]@%d: INVALID_MESSAGE %s", record.topic, record.partition, record.offset, error)
        letter = DeadLetter(
            consumer_group=ctx.name, topic=record.topic, partition=record.partition, offset=record.offset,
            key=record.key, value=record.value or b"", headers=tuple((k, bytes(v)) for k, v in record.headers or ()),
            reason="INVALID_MESSAGE", error=error, attempts=0,
        )
        if letter.size() > ctx.settings.dead_letter_max_bytes:
            letter = letter.excerpt(ctx.settings.dead_letter_excerpt_bytes)
        if ctx.dead_letters is not None:
            await ctx.dead_letters.publish(letter)
            get_metrics().count_dead_letter(topic=record.topic, reason="INVALID_MESSAGE")


async def _keep(uow: UnitOfWork, request_key: str, cycle: CycleCompletedSummary) -> None:
    """Keep the result of a cycle this adapter's HTTP door requested, validated whole (pydantic's
    ValidationError if it breaks its contract), and signal it at commit."""
    if await translation_audit.requested(uow.conn, request_key):
        await cycle_results.save(uow.conn, request_key, cycle.complete().payload)
        uow.signal_after_commit(result_channel(uow.settings, CYCLE_RESULT, request_key))
