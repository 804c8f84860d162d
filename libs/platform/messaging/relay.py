"""The outbox relay: publishes committed outbox rows, in id order, with an idempotent producer.

The relay works on one connection of its own that holds a session advisory lock per schema, so
several replicas can run a relay safely and per-key order is kept: only the holder publishes, the
others stand by and take over when its session ends (process killed, database restarted). A row is
deleted (or, with a retention, marked published) only after the broker acknowledged it (acks=all), so a
crash between send and delete re-sends it: consumers deduplicate by event id.

How a batch goes (issue 15, defect 1; issue 13, relay):
- every row is handed to the producer first and the acknowledgements gathered after, so one batch
  costs about one broker round trip (the producer packs them into 1 MB batches);
- the rows that were acknowledged are deleted in one statement, even when others failed, so a retry
  never re-sends them (with `outbox_retention_s` > 0 they are marked published and kept that long:
  tests audit what a service emitted that way; a fleet's cycles put hundreds of KB a cycle through
  the outbox, and Kafka already keeps what was published);
- a row the broker can never take (too large, invalid topic) is parked with its reason and the rest
  flows on; it is counted (`mgrid_outbox_parked`) and readiness reports it until an operator acts
  (`mgrid outbox parked|requeue`, docs/operations.md);
- a transient failure (broker down) leaves the row to the next pass, with capped backoff.
- a row may be a pack of several messages (`outbox_pack`, a balancing cycle's events): its messages go
  in order like rows, and the row is deleted once all were acknowledged. If one of them fails, the whole
  row stays (a transient failure) or is parked (an unsendable one), so its other messages are sent again
  later: consumers deduplicate by event id, as after a crash between send and delete.

The relay sleeps until a commit wakes it (Postgres NOTIFY sent by the unit of work at commit on its
schema's own channel, which reaches every replica of that service and no other service), with a slow
poll as a fallback for a lost listener connection; after a pass that took every waiting row it sleeps
again rather than claim once more. A relay standing by (another replica holds the lock) ignores those
wakes and asks for the lock once a poll interval. The rows its own process wrote it takes from an in-process hand-off
(`OutboxHandoff`, offered just before COMMIT), reading only their ids from the table; the table still
decides what goes and in which order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    UnsupportedForMessageFormatError,
)
from aiokafka.partitioner import DefaultPartitioner
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from libs.platform.advisory_locks import advisory_lock_key
from libs.platform.db import changes_session
from libs.platform.messaging.outbox_pack import OutboxRow, unpack
from libs.platform.messaging.unit_of_work import OutboxHandoff, outbox_channel
from libs.platform.settings import PlatformSettings

log = logging.getLogger(__name__)
tracer = trace.get_tracer("mgrid.outbox")

# Errors that sending the same bytes again can never cure.
_UNSENDABLE = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    InvalidTopicError,
    UnsupportedForMessageFormatError,
    TypeError,
    ValueError,
)
_RETRY_INITIAL_S = 0.2
_RETRY_MAX_S = 5.0
_PRUNE_EVERY_S = 60.0
_PARTITIONER = DefaultPartitioner()
_PARTITION_CACHE_SIZE = 100_000
_TRACE_KEYS = frozenset({"traceparent", "tracestate"})  # W3C trace context: the relay's span replaces them


def is_unsendable(exc: BaseException) -> bool:
    return isinstance(exc, _UNSENDABLE)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


@dataclass
class BatchResult:
    """What one pass did: messages acknowledged; rows parked, and left for a retry (transient failure)."""

    sent: int = 0
    parked: list[tuple[int, str]] = field(default_factory=list)
    retry: int = 0
    retry_error: BaseException | None = None
    # The claim took every row waiting when it ran (fewer messages than a batch): another pass now would
    # find only rows committed since, and their NOTIFY wakes the relay (issue 13: that pass was a round
    # trip after every batch, and found nothing almost every time).
    drained: bool = False

    @property
    def claimed(self) -> int:
        return self.sent + len(self.parked) + self.retry


@dataclass(slots=True)
class ClaimedRow:
    """An outbox row a pass publishes: its id, when it was written, its messages in order (one, or a
    pack's), and why it cannot be read if it cannot (a damaged pack: parked with that reason)."""

    id: int
    created_at: datetime
    messages: list[OutboxRow]
    unreadable: str | None = None

    @classmethod
    def from_table(cls, row: asyncpg.Record) -> ClaimedRow:
        if row["messages"] == 1:
            message = (row["event_id"], row["topic"], bytes(row["key"]), bytes(row["value"]), row["headers"])
            return cls(row["id"], row["created_at"], [message])
        try:
            return cls(row["id"], row["created_at"], unpack(bytes(row["value"])))
        except (ValueError, UnicodeDecodeError) as exc:
            return cls(row["id"], row["created_at"], [], str(exc))


# The next rows to publish, in id order: rows while the messages before them are fewer than $1 (a pack
# counts its messages, so one pass stays about a batch of messages however they are packed).
_CLAIM = (
    "SELECT {columns} FROM (SELECT {columns}, sum(messages) OVER (ORDER BY id) - messages AS before FROM outbox"
    " WHERE published_at IS NULL AND parked_at IS NULL ORDER BY id LIMIT $1) AS next WHERE before < $1 ORDER BY id"
)
_WHOLE_ROW = "id, event_id, topic, key, value, headers, created_at, messages"


@dataclass(frozen=True)
class OutboxBacklog:
    """The outbox as last read: rows waiting, the oldest one's write time, rows parked."""

    pending: int = 0
    oldest_pending_at: datetime | None = None
    parked: int = 0
    oldest_parked: str | None = None  # "id 42 (topic): reason" of the first parked row

    def oldest_pending_age_s(self, now: float | None = None) -> float:
        if self.oldest_pending_at is None:
            return 0.0
        return max(0.0, (now if now is not None else time.time()) - self.oldest_pending_at.timestamp())


class OutboxRelay:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        settings: PlatformSettings,
        schema: str,
        on_published: Callable[..., None] | None = None,
        on_parked: Callable[..., None] | None = None,
        handoff: OutboxHandoff | None = None,
    ) -> None:
        """`handoff`: the rows this process's units committed, so a pass need not read their payloads back."""
        self._pool = pool
        self._handoff = handoff
        self._producer = producer
        self._settings = settings
        self._lock_key = advisory_lock_key("outbox", schema)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None
        self._locked = False  # this relay holds the schema's session advisory lock: it alone publishes
        self._channel = ""  # its outbox's NOTIFY channel, named when it connects
        self._batch_lock = asyncio.Lock()  # one operation at a time on the relay's connection
        self._on_published = on_published
        self._on_parked = on_parked
        self.last_publish_lag_s: float = 0.0
        self.published_total = 0
        self.parked_total = 0
        # Last read of the outbox, for the gauges (read during scrapes, so never a query there).
        self.backlog = OutboxBacklog()
        self._backlog_read_at = 0.0
        self._pruned_at = time.monotonic()
        # (monotonic time, highest id published by then): rows up to the id are pruned once old enough
        self._published_marks: list[tuple[float, int]] = []
        # Partitions per topic and the partition of each recent (topic, key): murmur2 in Python costs.
        self._partitions: dict[str, list[int]] = {}
        self._partition_by_key: dict[tuple[str, bytes, int], int] = {}

    @property
    def pending_rows(self) -> int:
        return self.backlog.pending

    @property
    def undelivered(self) -> int:
        """Rows committed and waiting for this relay: the outbox's pending rows when this relay is the one
        that publishes them (it holds the schema's lock), else 0 (another replica's relay counts them, so
        replicas' reports add up to the outbox once). Work a consumer has done but not yet delivered:
        backpressure counts it with the consumer's lag (issue 13: past the bend the relay fell behind while
        the consumer's lag looked small, and upstream kept feeding it)."""
        return self.backlog.pending if self._locked else 0

    async def start(self) -> None:
        with contextlib.suppress(Exception):  # no database yet: the loop connects when it can
            await self._connection()
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self._disconnect()

    def wake(self) -> None:
        """Publish now (an in-process writer that just committed can call this instead of waiting)."""
        self._wake.set()

    async def _connection(self) -> asyncpg.Connection:
        """The relay's own connection: it listens for commits, holds the relay lock, claims and marks.

        One connection for all of it keeps a batch at two round trips (claim, mark), instead of a
        transaction's five (begin, lock, claim, mark, commit) and a pool release.
        """
        if self._conn is not None and self._conn.is_closed():
            await self._disconnect()  # the database restarted: the lock went with the old session
        if self._conn is None:
            conn = await self._pool.acquire()
            changes_session(conn)  # LISTEN, SET, the relay lock: all undone when it goes back to the pool
            try:
                # The channel of the schema this connection writes to, as the outbox insert names it.
                self._channel = outbox_channel(await conn.fetchval("SELECT current_schema()"))
                await conn.add_listener(self._channel, self._on_notify)
                # No wait for the WAL flush when marking rows sent (measured ~10 ms of the relay delay
                # on a busy box): a mark lost in a crash only re-sends rows, which consumers deduplicate.
                # Index scans only: the outbox is a queue whose heap fills with dead rows between vacuums
                # (thousands of changes), while its statistics say "empty", so the cached generic plans
                # of the claim, the read-back and the delete were sequential scans of every dead page
                # (~220 buffers a delete of two rows in the adapter, 0.57 ms, against 5 by the key).
                await conn.execute("SET synchronous_commit = off; SET enable_seqscan = off")
            except BaseException:
                await self._pool.release(conn, timeout=1.0)
                raise
            self._conn, self._locked = conn, False
        return self._conn

    async def _disconnect(self) -> None:
        conn, locked, self._conn, self._locked = self._conn, self._locked, None, False
        if conn is not None:
            # Shutting down with the database gone must still finish: the connection dies with the pool.
            with contextlib.suppress(Exception):
                await conn.remove_listener(self._channel, self._on_notify)
            if locked:
                # (a terminated pool has taken the connection back already: is_closed() itself raises then)
                with contextlib.suppress(Exception):
                    if not conn.is_closed():
                        await conn.execute("SELECT pg_advisory_unlock($1)", self._lock_key, timeout=1.0)
            with contextlib.suppress(Exception):
                await self._pool.release(conn, timeout=1.0)

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    async def pending(self) -> int:
        return int(
            await self._pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL AND parked_at IS NULL")
        )

    async def read_backlog(self) -> OutboxBacklog:
        """Count what waits and what is parked now (one query over the two small partial indexes)."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT count(*) FILTER (WHERE parked_at IS NULL) AS pending,"
                " min(created_at) FILTER (WHERE parked_at IS NULL) AS oldest,"
                " count(*) FILTER (WHERE parked_at IS NOT NULL) AS parked"
                " FROM outbox WHERE published_at IS NULL"
            )
            first = None
            if row["parked"]:
                first_row = await conn.fetchrow(
                    "SELECT id, topic, parked_reason FROM outbox WHERE parked_at IS NOT NULL AND published_at IS NULL"
                    " ORDER BY id LIMIT 1"
                )
                if first_row is not None:
                    first = f"id {first_row['id']} ({first_row['topic']}): {first_row['parked_reason']}"
        self.backlog = OutboxBacklog(
            pending=int(row["pending"]), oldest_pending_at=row["oldest"], parked=int(row["parked"]), oldest_parked=first
        )
        self._backlog_read_at = time.monotonic()
        return self.backlog

    def readiness(self) -> bool | str:
        """For /ready: True, or a message naming the parked rows (the service works on; an operator acts)."""
        b = self.backlog
        if b.parked:
            return f"{b.parked} outbox row(s) parked, cannot be published; first {b.oldest_parked}"
        return True

    async def _run(self) -> None:
        delay = _RETRY_INITIAL_S
        while True:
            # Cleared before the pass: a commit landing during it wakes the next wait at once.
            self._wake.clear()
            try:
                result = await self.publish_batch()
                # Read at most once per poll interval under load (a query per batch would slow it), at
                # once when a row was parked (readiness names it), and on every idle poll.
                if result.parked or time.monotonic() - self._backlog_read_at >= self._settings.outbox_poll_interval_s:
                    await self.read_backlog()
                await self._prune_if_due()
            except asyncio.CancelledError:
                raise
            except Exception:  # database hiccup: keep the rows (and the last known backlog), try again
                log.warning("outbox relay pass failed; retrying in %.1f s", delay, exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_S)
                continue
            if result.retry:
                log.warning("outbox relay: %d row(s) not acknowledged (%r); retrying in %.1f s",
                            result.retry, result.retry_error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_S)
                continue
            delay = _RETRY_INITIAL_S
            if not self._locked:
                # Standing by: every commit of the schema (the holder's too) sends a NOTIFY, and waking on
                # each was a query a commit for a lock that is not free. Ask once a poll interval: a holder
                # whose session ended is replaced that soon, and its rows wait in the table meanwhile.
                await asyncio.sleep(self._settings.outbox_poll_interval_s)
            elif result.claimed == 0 or result.drained:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._settings.outbox_poll_interval_s)

    async def publish_batch(self) -> BatchResult:
        """Publish up to one batch of waiting rows: sent ones marked, unsendable ones parked."""
        async with self._batch_lock:
            try:
                return await self._publish_batch(await self._connection())
            except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError):
                await self._disconnect()
                raise

    async def _publish_batch(self, conn: asyncpg.Connection) -> BatchResult:
        result = BatchResult()
        if not self._locked:
            # Several replicas may run a relay: the one holding the lock publishes, the others stand by
            # (and take over when its session ends), so rows go out in id order, each once.
            self._locked = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_key))
            if not self._locked:
                return result
        rows = await self._claim(conn)
        if not rows:
            return result
        result.drained = sum(len(row.messages) for row in rows) < self._settings.outbox_batch_size
        owners = [index for index, row in enumerate(rows) for _ in row.messages]
        messages = [message for row in rows for message in row.messages]
        outcomes = await self._send_all(messages)
        failed = [(at, exc) for at, exc in enumerate(outcomes) if exc is not None]
        if any(is_unsendable(exc) for _, exc in failed) and len(failed) > 1:
            # The broker fails a whole produce batch for one oversized record: find the culprit alone.
            retried = [await self._send_one(messages[at]) for at, _ in failed]
            failed = [(at, exc) for (at, _), exc in zip(failed, retried, strict=True) if exc is not None]
        # A row fails with its messages' failure, an unsendable one first (it is parked, never retried).
        failures: dict[int, BaseException] = {
            index: ValueError(row.unreadable) for index, row in enumerate(rows) if row.unreadable
        }
        for at, exc in failed:
            known = failures.get(owners[at])
            if known is None or (is_unsendable(exc) and not is_unsendable(known)):
                failures[owners[at]] = exc
        sent = [row for index, row in enumerate(rows) if index not in failures]
        if sent:
            ids = [r.id for r in sent]
            if self._settings.outbox_retention_s > 0:
                await conn.execute(
                    "UPDATE outbox SET published_at = clock_timestamp() WHERE id = ANY($1::bigint[])", ids
                )
            else:  # the default: nothing keeps a published row (Kafka has it); one write less per event
                await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", ids)
        for index, exc in failures.items():
            if is_unsendable(exc):
                reason = _reason(exc)
                await conn.execute(
                    "UPDATE outbox SET parked_at = clock_timestamp(), parked_reason = $2 WHERE id = $1",
                    rows[index].id,
                    reason,
                )
                result.parked.append((rows[index].id, reason))
            else:
                result.retry += 1
                result.retry_error = exc
        self._account(sent, result)
        return result

    async def _claim(self, conn: asyncpg.Connection) -> list[ClaimedRow]:
        """The next batch of waiting rows in id order, each with its messages.

        With a hand-off, only the rows' ids are read first; messages come from the hand-off, and from the
        table only for rows not found there (another replica's, a crash's, or forgotten)."""
        size = self._settings.outbox_batch_size
        if self._handoff is None or not len(self._handoff):
            found = await conn.fetch(_CLAIM.format(columns=_WHOLE_ROW), size)
            return [ClaimedRow.from_table(row) for row in found]
        claimed = await conn.fetch(_CLAIM.format(columns="id, event_id, created_at"), size)
        rows: dict[int, ClaimedRow] = {}
        for claim in claimed:
            kept = self._handoff.take(claim["event_id"])
            if kept is not None:
                rows[claim["id"]] = ClaimedRow(claim["id"], claim["created_at"], kept)
        unknown = [claim["id"] for claim in claimed if claim["id"] not in rows]
        if unknown:
            for row in await conn.fetch(f"SELECT {_WHOLE_ROW} FROM outbox WHERE id = ANY($1::bigint[])", unknown):
                rows[row["id"]] = ClaimedRow.from_table(row)
        # In id order (only the holder of the relay lock deletes rows, so each is found; one gone is skipped).
        return [rows[claim["id"]] for claim in claimed if claim["id"] in rows]

    def _account(self, sent: Sequence[ClaimedRow], result: BatchResult) -> None:
        now = time.time()
        result.sent = sum(len(row.messages) for row in sent)
        self.published_total += result.sent
        if sent:
            self.last_publish_lag_s = max(0.0, now - sent[0].created_at.timestamp())
            top, at = max(r.id for r in sent), time.monotonic()
            if self._published_marks and at - self._published_marks[-1][0] < 10.0:
                self._published_marks[-1] = (self._published_marks[-1][0], top)  # a few marks a minute suffice
            else:
                self._published_marks.append((at, top))
            if self._on_published:
                # One lag per topic and batch, its oldest row's: a cycle's hundred breach events were a
                # hundred histogram records of the same lag, a fifth of the relay's time.
                oldest: dict[str, datetime] = {}
                for row in sent:
                    for message in row.messages:
                        oldest.setdefault(message[1], row.created_at)
                for topic, created_at in oldest.items():
                    self._on_published(seconds=max(0.0, now - created_at.timestamp()), topic=topic)
        for row_id, reason in result.parked:
            self.parked_total += 1
            log.error("outbox row %d parked: it can never be published as it is: %s", row_id, reason)
            if self._on_parked:
                self._on_parked(reason=reason.split(":", 1)[0])

    async def _send_all(self, messages: Sequence[OutboxRow]) -> list[BaseException | None]:
        """Hand every message to the producer, then wait for all acknowledgements; None where acknowledged.

        Messages go as record batches, one per partition (producer.send_batch): a cycle hands over a hundred
        breach events, and the producer's per-record path (a future, a lookup, a size check each) cost more
        than building the events. Messages keep their order within each partition, which is per-key order.
        """
        out: list[BaseException | None] = [None] * len(messages)
        self._partitions = {}
        batches: dict[tuple[str, int], list[tuple[Any, list[int]]]] = {}
        for group in _trace_groups(messages):
            # One publish span per run of messages of one trace and topic, not per message: a curtailed
            # cycle's hundred breach events cost one span, and each consumer's span still hangs under it.
            with self._publish_span(group) as carrier_of:
                topic = group[0][1][1]
                try:
                    partitions = await self._partitions_of(topic)  # once per run: a cycle's breaches are one
                except Exception as exc:  # refused before sending (e.g. no such topic)
                    for index, _, _ in group:
                        out[index] = exc
                    continue
                for index, (_, _, key, value, _), headers in group:
                    try:
                        target = (topic, self._partition_of(topic, key, partitions))
                        self._append(batches.setdefault(target, []), index, key, value, carrier_of(headers))
                    except Exception as exc:  # refused before sending (e.g. too large for a batch)
                        out[index] = exc
        sent: list[tuple[asyncio.Future[Any], list[int]]] = []
        for (topic, partition), builders in batches.items():
            for builder, indexes in builders:
                try:
                    sent.append((await self._producer.send_batch(builder, topic, partition=partition), indexes))
                except Exception as exc:
                    for index in indexes:
                        out[index] = exc
        acks = await asyncio.gather(*(future for future, _ in sent), return_exceptions=True)
        for (_, indexes), ack in zip(sent, acks, strict=True):
            if isinstance(ack, BaseException):
                for index in indexes:
                    out[index] = ack
        return out

    def _append(self, builders: list[tuple[Any, list[int]]], index: int, key: bytes, value: bytes,
                headers: list[tuple[str, bytes]]) -> None:
        """Add a record to the partition's last batch, or to a new one when that is full."""
        if builders and builders[-1][0].append(timestamp=None, key=key, value=value, headers=headers) is not None:
            builders[-1][1].append(index)
            return
        builder = self._producer.create_batch()
        if builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
            raise MessageSizeTooLargeError(f"a record of {len(value)} bytes does not fit a batch")
        builders.append((builder, [index]))

    async def _partitions_of(self, topic: str) -> list[int]:
        partitions = self._partitions.get(topic)
        if partitions is None:  # read once per pass from the producer's metadata (partitions can be added)
            partitions = self._partitions[topic] = sorted(await self._producer.partitions_for(topic))
        return partitions

    def _partition_of(self, topic: str, key: bytes, partitions: list[int]) -> int:
        """The partition the producer's default partitioner picks for `key` (murmur2, as Java clients do)."""
        cached = (topic, key, len(partitions))
        found = self._partition_by_key.get(cached)
        if found is None:
            if len(self._partition_by_key) > _PARTITION_CACHE_SIZE:
                self._partition_by_key.clear()
            found = self._partition_by_key[cached] = _PARTITIONER(key, partitions, partitions)
        return found

    async def _send_one(self, message: OutboxRow) -> BaseException | None:
        try:
            [outcome] = await self._send_all([message])
        except Exception as exc:
            return exc
        return outcome

    @contextlib.contextmanager
    def _publish_span(self, group: list[tuple[int, OutboxRow, dict[str, str]]]):  # type: ignore[no-untyped-def]
        _, first, first_headers = group[0]
        topic = first[1]
        attributes: dict[str, Any] = {
            "messaging.system": "kafka",
            "messaging.destination.name": topic,
            "correlation.id": first_headers.get("correlation_id", ""),
            "messaging.batch.message_count": len(group),
        }
        if len(group) == 1:
            attributes["messaging.message.id"] = first_headers.get("event_id", "")
        with tracer.start_as_current_span(
            f"{topic} publish",
            context=propagate.extract(first_headers),
            kind=SpanKind.PRODUCER,
            attributes=attributes,
        ):
            trace_carrier: dict[str, str] = {}
            propagate.inject(trace_carrier)
            # Per message of a run (a cycle's hundred breaches): its own headers but those the span's trace
            # context replaces, then that context's, encoded once for the run.
            trace_pairs = [(k, v.encode()) for k, v in trace_carrier.items()]
            replaced = _TRACE_KEYS | trace_carrier.keys()

            def carrier_of(headers: dict[str, str]) -> list[tuple[str, bytes]]:
                return [(k, v.encode()) for k, v in headers.items() if k not in replaced] + trace_pairs

            yield carrier_of

    async def _prune_if_due(self) -> None:
        """Delete rows published longer ago than the retention (they stay readable for that long)."""
        now = time.monotonic()
        if self._settings.outbox_retention_s <= 0 or now - self._pruned_at < _PRUNE_EVERY_S:
            return
        self._pruned_at = now
        cutoff = now - self._settings.outbox_retention_s
        old = [mark for mark in self._published_marks if mark[0] <= cutoff]
        if not old:
            return
        self._published_marks = [mark for mark in self._published_marks if mark[0] > cutoff]
        await self._pool.execute(
            "DELETE FROM outbox WHERE id <= $1 AND published_at IS NOT NULL", max(m[1] for m in old)
        )


def _trace_groups(messages: Sequence[OutboxRow]) -> list[list[tuple[int, OutboxRow, dict[str, str]]]]:
    """The messages in runs of one (trace, topic), in order; each with its index and parsed headers.

    Only consecutive messages join a run, so sending run after run keeps their order (per-key order)."""
    groups: list[list[tuple[int, OutboxRow, dict[str, str]]]] = []
    last: tuple[str, str] | None = None
    for index, message in enumerate(messages):
        headers: dict[str, str] = orjson.loads(message[4])
        run = (headers.get("traceparent", ""), message[1])
        if run != last:
            groups.append([])
            last = run
        groups[-1].append((index, message, headers))
    return groups


def relay_metrics(relay: OutboxRelay) -> dict[str, Callable[[], float]]:
    """The relay's gauges, read from its last backlog reading (no query during a scrape)."""
    return {
        "pending": lambda: relay.backlog.pending,
        "oldest_pending_age_s": lambda: relay.backlog.oldest_pending_age_s(),
        "parked": lambda: relay.backlog.parked,
    }
