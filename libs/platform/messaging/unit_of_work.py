"""One Postgres transaction: the state change, the outgoing events (outbox) and the inbox row together."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg
import orjson
from opentelemetry import propagate

from contracts.base import EncodedMessage, Message
from contracts.topics import topic_for
from libs.platform.messaging.outbox_pack import OutboxRow, pack
from libs.platform.settings import PlatformSettings

# One NOTIFY channel per schema: a commit wakes its own service's relay. With one channel for the whole
# server, every commit of any service woke every relay (and every test's and benchmark run's) for a claim
# that found nothing: ~90 empty passes a second in each idle service at 45 cycles/s. Hashed, because a
# channel's name is at most 63 bytes; the statement below names it the same way from current_schema().
OUTBOX_CHANNEL_PREFIX = "mgrid_outbox_"


def outbox_channel(schema: str) -> str:
    return OUTBOX_CHANNEL_PREFIX + hashlib.md5(schema.encode(), usedforsecurity=False).hexdigest()


# The same name in SQL: wakes the relay of the schema the statement writes to.
NOTIFY_OUTBOX = f"pg_notify('{OUTBOX_CHANNEL_PREFIX}' || md5(current_schema()), '')"


_WRITE_OUTBOX = (
    "WITH written AS ("
    " INSERT INTO outbox (event_id, topic, key, value, headers, messages)"
    # In the order given: the relay publishes by id.
    " SELECT e, t, k, v, h, m FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::bytea[], $5::jsonb[], $6::int[])"
    " WITH ORDINALITY AS u(e, t, k, v, h, m, n) ORDER BY n RETURNING 1)"
    f" SELECT {NOTIFY_OUTBOX} FROM (SELECT count(*) FROM written) AS done"
)
log = logging.getLogger(__name__)

# Wakes whoever waits on these channels (libs.platform.result_waiter), in one round trip.
Signaller = Callable[[Sequence[str]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One outbox row as written: a message, or a pack of several (`outbox_pack`), and the messages in it."""

    row: OutboxRow  # the row's event id, topic, key, value and headers: a pack's are its first message's but the value
    messages: list[OutboxRow]

    @classmethod
    def single(cls, message: OutboxRow) -> OutboxEntry:
        return cls(message, [message])

    @classmethod
    def packed(cls, messages: list[OutboxRow]) -> OutboxEntry:
        event_id, topic, key, _, headers = messages[0]
        return cls((event_id, topic, key, pack(messages), headers), messages)


def _handoff_key(entry: OutboxEntry) -> UUID:
    """A row's event id as the relay looks it up (asyncpg's UUIDs hash as uuid.UUID)."""
    event_id = entry.row[0]
    return event_id if isinstance(event_id, UUID) else UUID(str(event_id))


class OutboxHandoff:
    """The rows this process's units wrote to the outbox (offered as they commit), kept for its relay (issue 13).

    The relay still claims rows from the table, in id order (the table is the truth: rows of another
    replica, rows left by a crash); it reads back the payloads only of rows it does not find here. A
    curtailed depot's cycle writes ~250 KB in ~110 rows, which the relay read back from Postgres on every
    cycle. Bounded in bytes, not rows (a pack is a cycle's ~280 KB): past `max_bytes` of values held (while
    the broker is away and commits go on) the oldest rows are forgotten; the relay reads them from the table.
    """

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        # A row's messages and their values' size, by the row's event id (asyncpg's UUIDs hash as uuid.UUID).
        self._rows: dict[UUID, tuple[list[OutboxRow], int]] = {}
        self._max_bytes = max_bytes
        self._bytes = 0

    @property
    def held_bytes(self) -> int:
        return self._bytes

    def offer(self, entries: Sequence[OutboxEntry]) -> None:
        """Rows written by a transaction about to commit (withdrawn if it does not)."""
        kept = self._rows
        for entry in entries:
            key = _handoff_key(entry)
            size = sum(len(message[3]) for message in entry.messages)
            replaced = kept.pop(key, None)
            if replaced is not None:
                self._bytes -= replaced[1]
            kept[key] = (entry.messages, size)
            self._bytes += size
        if self._bytes > self._max_bytes:
            for event_id in list(kept):  # oldest first: insertion order
                if self._bytes <= self._max_bytes:
                    break
                self._bytes -= kept.pop(event_id)[1]

    def withdraw(self, entries: Sequence[OutboxEntry]) -> None:
        """Rows offered by a unit that then failed to commit (or may have): forgotten here."""
        for entry in entries:
            self.take(_handoff_key(entry))

    def take(self, event_id: UUID) -> list[OutboxRow] | None:
        found = self._rows.pop(event_id, None)
        if found is None:
            return None
        self._bytes -= found[1]
        return found[0]

    def __len__(self) -> int:
        return len(self._rows)


@dataclass
class UnitOfWork:
    conn: asyncpg.Connection
    settings: PlatformSettings
    published: list[Message | EncodedMessage] = field(default_factory=list)
    # Outbox rows recorded by publish(), written in one statement just before the commit.
    _outbox_rows: list[OutboxEntry] = field(default_factory=list)
    # The rows written by flush_outbox: handed to the relay once the transaction has committed.
    written_rows: list[OutboxEntry] = field(default_factory=list)
    signals: list[str] = field(default_factory=list)
    committed_callbacks: list[Callable[[], None]] = field(default_factory=list)

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once this transaction committed (metrics: a retried handler must not count twice)."""
        self.committed_callbacks.append(callback)

    def signal_after_commit(self, channel: str) -> None:
        """Wake whoever waits on `channel` (libs.platform.result_waiter) once this transaction commits."""
        self.signals.append(channel)

    async def publish(self, message: Message) -> None:
        """Record `message` in the outbox; it is sent only if this transaction commits."""
        await self.publish_all([message])

    async def publish_all(self, messages: Sequence[Message | EncodedMessage], *, packed: bool = False) -> None:
        """Record several messages, in the given order; all of a unit's messages are written in one statement.

        An `EncodedMessage` (Message.encode) goes in as its bytes: the cycle's hot path serialises once.
        `packed`: the messages share one outbox row (`outbox_pack`), for a unit that emits many at once."""
        if not messages:
            return
        # Keep the trace context of the request that caused these events (ARCHITECTURE.md section 3).
        trace_headers: dict[str, str] = {}
        propagate.inject(trace_headers)
        rows = []
        trace = orjson.dumps(trace_headers)[1:-1]  # the request's trace context, the same on every row
        for message in messages:
            if isinstance(message, EncodedMessage):
                topic, key, value = topic_for(message.message_type).name, message.key, message.value
            else:
                spec = topic_for(message)
                topic, key, value = spec.name, spec.key_for(message), message.to_bytes()
            headers = orjson.dumps(
                {"event_id": str(message.event_id), "event_type": message.event_type,
                 "correlation_id": message.correlation_id}
            )
            if trace:
                headers = headers[:-1] + b"," + trace + b"}"
            rows.append((message.event_id, self.settings.topic(topic), key, value, headers.decode()))
        if packed and len(rows) > 1:
            self._outbox_rows.append(OutboxEntry.packed(rows))
        else:
            self._outbox_rows.extend(OutboxEntry.single(row) for row in rows)
        self.published.extend(messages)

    async def flush_outbox(self) -> None:
        """Write the recorded messages to the outbox (in the unit's transaction, before it commits) and
        wake the relay at commit (a notification is delivered then, never for a rolled-back event)."""
        if not self._outbox_rows:
            return
        entries, self._outbox_rows = self._outbox_rows, []
        self.written_rows.extend(entries)
        rows = [e.row for e in entries]
        # One round trip for rows and wake-up: COPY costs two (COPY, then the data), the NOTIFY a third.
        await self.conn.execute(
            _WRITE_OUTBOX,
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
            [r[3] for r in rows],
            [r[4] for r in rows],
            [len(e.messages) for e in entries],
        )

    async def claim_inbox_many(self, consumer_group: str, events: Sequence[tuple[str, str]]) -> set[str]:
        """Claim a batch's (event_id, topic) pairs in one statement; returns the ids seen for the first time."""
        rows = await self.conn.fetch(
            "INSERT INTO inbox (consumer_group, event_id, topic)"
            " SELECT $1, e, t FROM unnest($2::text[], $3::text[]) AS u(e, t)"
            " ON CONFLICT DO NOTHING RETURNING event_id",
            consumer_group,
            [e for e, _ in events],
            [t for _, t in events],
        )
        return {r["event_id"] for r in rows}

    async def claim_inbox(self, consumer_group: str, event_id: str, topic: str) -> bool:
        """True the first time this consumer group sees `event_id`; False for a redelivery."""
        row = await self.conn.fetchval(
            "INSERT INTO inbox (consumer_group, event_id, topic) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING RETURNING 1",
            consumer_group,
            event_id,
            topic,
        )
        return row is not None


@asynccontextmanager
async def unit_of_work(
    pool: asyncpg.Pool,
    settings: PlatformSettings,
    signaller: Signaller | None = None,
    handoff: OutboxHandoff | None = None,
) -> AsyncIterator[UnitOfWork]:
    """Commit on success, roll back on error; wake the outbox relay when events were recorded, and
    send the unit's signals after the commit (never before: a woken waiter must find the committed row).
    `handoff`: this process's relay's, given the unit's outbox rows as it commits (it then need not read them back)."""
    async with pool.acquire() as conn:
        offered: Sequence[OutboxEntry] = ()
        try:
            async with conn.transaction():
                uow = UnitOfWork(conn=conn, settings=settings)
                yield uow
                await uow.flush_outbox()
                if handoff is not None and uow.written_rows:
                    # Offered before the COMMIT: its NOTIFY can wake the relay before this coroutine runs
                    # again, and a relay that found nothing here read every row back (a cycle's pack, a
                    # quarter of the adapter's passes). The relay only claims committed rows, so an
                    # offered row of a unit that does not commit is never sent; it is withdrawn below.
                    offered = uow.written_rows
                    handoff.offer(offered)
        except BaseException:
            if offered and handoff is not None:
                handoff.withdraw(offered)  # rolled back, or the commit's fate unknown: the table decides
            raise
    for callback in uow.committed_callbacks:
        try:
            callback()
        except Exception:  # the commit stands; an observer's failure must not turn it into an error
            log.exception("after-commit callback failed")
    if signaller is not None and uow.signals:
        await signaller(list(dict.fromkeys(uow.signals)))  # a batch may signal one console twice
