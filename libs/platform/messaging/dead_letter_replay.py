"""Bringing dead letters back (issue 15, defect 5): read a group's dead-letter topic, replay, count.

- `read_letters`: every letter on `dlq.<group>` with why it was dead-lettered and where it came from
  (the `dlq.*` headers the consumer wrote), and how often it was replayed.
- `replay`: sends a letter's original key, value and headers back to its original topic, so it takes
  the normal path: contract validation, the inbox (a message already handled is a no-op), the handler.
  Each replay is audited in the group's schema (`dead_letter_replays`) in the same step: the audit
  row commits only once the broker acknowledged the message.
- `DeadLetterCounts`: letters per group and how many were replayed, for the `/metrics` gauge.

A replayed message reaches every consumer group of its topic; groups that handled it already find
its inbox row and do nothing. An INVALID_MESSAGE letter would be dead-lettered again by every group,
so it is replayed only when asked explicitly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from contracts.topics import DEAD_LETTER_PARTITIONS, dead_letter_topic
from libs.platform.messaging.kafka import client_options
from libs.platform.settings import PlatformSettings

log = logging.getLogger(__name__)
INVALID_MESSAGE = "INVALID_MESSAGE"
REPLAY_HEADER = "mgrid.replayed_from"


@dataclass(frozen=True)
class Letter:
    dlq_topic: str
    partition: int
    offset: int
    timestamp_ms: int
    reason: str
    error: str
    original_topic: str
    original_partition: int
    original_offset: int
    attempts: int
    event_id: str | None
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    replays: int = 0
    # Too big to dead-letter whole: the letter holds an excerpt; the record stays at its original position.
    excerpted: bool = False

    @property
    def position(self) -> str:
        """Where the letter is: `<partition>:<offset>` on the dead-letter topic (what `--letter` takes)."""
        return f"{self.partition}:{self.offset}"

    @property
    def original_position(self) -> str:
        return f"{self.original_topic}[{self.original_partition}]@{self.original_offset}"

    def replay_headers(self) -> list[tuple[str, bytes]]:
        """The original headers (trace context, event id) without the dead-letter ones, plus where from."""
        kept = [(k, v) for k, v in self.headers if not k.startswith("dlq.") and k != REPLAY_HEADER]
        return [*kept, (REPLAY_HEADER, f"{self.dlq_topic}:{self.position}".encode())]

    @classmethod
    def from_record(cls, record: object) -> Letter:
        headers = tuple((k, bytes(v)) for k, v in (getattr(record, "headers", None) or ()))
        h = {k: v.decode(errors="replace") for k, v in headers}

        def number(name: str) -> int:
            try:
                return int(h.get(name, "-1"))
            except ValueError:
                return -1

        value = getattr(record, "value", None)
        return cls(
            dlq_topic=record.topic,  # type: ignore[attr-defined]
            partition=record.partition,  # type: ignore[attr-defined]
            offset=record.offset,  # type: ignore[attr-defined]
            timestamp_ms=record.timestamp,  # type: ignore[attr-defined]
            reason=h.get("dlq.reason", "?"),
            error=h.get("dlq.error", ""),
            original_topic=h.get("dlq.original_topic", ""),
            original_partition=number("dlq.original_partition"),
            original_offset=number("dlq.original_offset"),
            attempts=number("dlq.attempts"),
            event_id=h.get("event_id"),
            key=getattr(record, "key", None),
            value=value if value is not None else b"",
            headers=headers,
            excerpted=h.get("dlq.excerpt") == "true",
        )


def dlq_topic_of(settings: PlatformSettings, group: str) -> str:
    """`group` is the service name (the consumer group without the topic prefix)."""
    return settings.topic(dead_letter_topic(settings.unprefixed(group)))


async def _letters_consumer(settings: PlatformSettings) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        **client_options(settings), group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    return consumer


async def read_letters(
    settings: PlatformSettings, group: str, conn: asyncpg.Connection | None = None, *, timeout_s: float = 30.0
) -> list[Letter]:
    """Every letter now on the group's dead-letter topic, oldest first per partition."""
    topic = dlq_topic_of(settings, group)
    consumer = await _letters_consumer(settings)
    letters: list[Letter] = []
    try:
        if topic not in await consumer.topics():
            return []
        consumer.subscribe([topic])  # no group: every partition, from the beginning
        deadline = time.monotonic() + timeout_s
        while not consumer.assignment():
            if time.monotonic() > deadline:
                return []  # no such topic: no letters
            await consumer.getmany(timeout_ms=100)
        partitions = sorted(consumer.assignment())
        ends = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end within {timeout_s}s")
            batch = await consumer.getmany(*partitions, timeout_ms=200)
            for tp, records in batch.items():
                letters.extend(Letter.from_record(r) for r in records if r.offset < ends[tp])
    finally:
        await consumer.stop()
    letters.sort(key=lambda letter: (letter.partition, letter.offset))
    if conn is not None:
        replays = await replay_counts(conn, group)
        letters = [replace(letter, replays=replays.get((letter.partition, letter.offset), 0)) for letter in letters]
    return letters


async def replay_counts(conn: asyncpg.Connection | asyncpg.Pool, group: str) -> dict[tuple[int, int], int]:
    try:
        rows = await conn.fetch(
            "SELECT dlq_partition, dlq_offset, count(*) AS n FROM dead_letter_replays WHERE consumer_group = $1"
            " GROUP BY dlq_partition, dlq_offset",
            group,
        )
    except asyncpg.UndefinedTableError:  # the service has not started since the audit table came
        return {}
    return {(r["dlq_partition"], r["dlq_offset"]): int(r["n"]) for r in rows}


async def with_original(settings: PlatformSettings, letter: Letter, *, timeout_s: float = 10.0) -> Letter:
    """An excerpted letter completed with the original record, read back from its original position."""
    if not letter.excerpted:
        return letter
    tp = TopicPartition(letter.original_topic, letter.original_partition)
    consumer = await _letters_consumer(settings)
    try:
        consumer.assign([tp])
        consumer.seek(tp, letter.original_offset)
        batch = await consumer.getmany(tp, timeout_ms=int(timeout_s * 1000), max_records=1)
        records = [r for r in batch.get(tp, []) if r.offset == letter.original_offset]
    finally:
        await consumer.stop()
    if not records:
        raise LookupError(f"letter {letter.position}: the original at {letter.original_position} is gone")
    original = records[0]
    headers = tuple((k, bytes(v)) for k, v in (original.headers or ()))
    event_id = dict(headers).get("event_id")
    return replace(
        letter,
        key=original.key,
        value=original.value if original.value is not None else b"",
        headers=headers,
        event_id=event_id.decode(errors="replace") if event_id is not None else letter.event_id,
        excerpted=False,
    )


def select_letters(
    letters: Sequence[Letter],
    *,
    positions: Iterable[str] = (),
    every: bool = False,
    reason: str | None = None,
    include_invalid: bool = False,
    again: bool = False,
) -> list[Letter]:
    """The letters a replay command names: by position, or all (optionally of one reason); letters
    replayed before and INVALID_MESSAGE ones only when asked."""
    wanted = set(positions)
    chosen = [
        letter
        for letter in letters
        if (every or letter.position in wanted)
        and (reason is None or letter.reason == reason)
        and (include_invalid or letter.reason != INVALID_MESSAGE)
        and (again or letter.replays == 0)
    ]
    return chosen


async def replay(
    conn: asyncpg.Connection, producer: AIOKafkaProducer, group: str, letters: Sequence[Letter], *, actor: str
) -> int:
    """Send each letter back to its original topic, audited; returns how many were replayed."""
    done = 0
    for letter in letters:
        if not letter.original_topic:
            raise ValueError(f"letter {letter.position} does not say where it came from")
        if letter.excerpted:
            raise ValueError(f"letter {letter.position} holds an excerpt: complete it with with_original first")
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO dead_letter_replays (consumer_group, dlq_topic, dlq_partition, dlq_offset,"
                " original_topic, original_partition, original_offset, event_id, reason, replayed_by)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                group, letter.dlq_topic, letter.partition, letter.offset, letter.original_topic,
                letter.original_partition, letter.original_offset, letter.event_id, letter.reason, actor,
            )
            # the audit row commits only if the broker took the message back
            await producer.send_and_wait(
                letter.original_topic, value=letter.value, key=letter.key, headers=letter.replay_headers()
            )
        done += 1
    return done


class DeadLetterCounts:
    """Letters on one group's dead-letter topic and how many were replayed, refreshed by `run`."""

    def __init__(self, settings: PlatformSettings, group: str, pool: asyncpg.Pool) -> None:
        self._settings, self._pool = settings, pool
        self.group = settings.unprefixed(group)
        self.topic = dlq_topic_of(settings, group)
        self.letters = 0
        self.replayed = 0
        self._consumer: AIOKafkaConsumer | None = None

    async def refresh(self) -> None:
        if self._consumer is None:
            self._consumer = await _letters_consumer(self._settings)
        partitions = [TopicPartition(self.topic, p) for p in range(DEAD_LETTER_PARTITIONS)]
        if partitions:
            ends = await self._consumer.end_offsets(partitions)
            starts = await self._consumer.beginning_offsets(partitions)
            self.letters = sum(ends[tp] - starts[tp] for tp in partitions)
        self.replayed = int(
            await self._pool.fetchval(
                "SELECT count(DISTINCT (dlq_partition, dlq_offset)) FROM dead_letter_replays WHERE consumer_group = $1",
                self.group,
            )
        )

    async def run(self, interval_s: float = 15.0) -> None:
        try:
            while True:
                try:
                    await self.refresh()
                except Exception:  # broker or database away: keep the last counts, try again later
                    log.debug("dead-letter counts not refreshed", exc_info=True)
                await asyncio.sleep(interval_s)
        finally:
            if self._consumer is not None:
                with contextlib.suppress(Exception):
                    await self._consumer.stop()
                self._consumer = None

    def readings(self) -> list[tuple[int, dict[str, str]]]:
        return [
            (self.letters, {"group": self.group, "state": "total"}),
            (self.replayed, {"group": self.group, "state": "replayed"}),
        ]
